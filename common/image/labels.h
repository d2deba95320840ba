/* Labels from a file for images that do not sit in class folders, such
 * as the ILSVRC validation set (one flat folder plus a labels file):
 * aim-patchify --labels FILE [--classes-file FILE].
 *
 * The labels file has one `NAME LABEL` line per image (blank lines and
 * lines starting with '#' are skipped). NAME is matched against each
 * listed image's name as listed (its path, or SHARD:MEMBER), else against
 * its file name (the part after the last '/'). LABEL is a class name or a
 * 0-based class index (decimal digits). The class list is the classes
 * file's lines in order (the first word of each, so a synset mapping such
 * as LOC_synset_mapping.txt serves), or else the sorted distinct class
 * names of the labels file (ImageFolder's order when every class occurs);
 * a label that is all digits and no class name is an index into it.
 * Every listed image must have a label; a NAME given twice, an unknown
 * class name or an index past the class list is an error naming the file
 * and line. Lines for images not listed are ignored (a --shard run). */
#ifndef AIM_LABELS_H
#define AIM_LABELS_H

#include "imgsrc.h"

/* Set every item's label and replace l's classes (none when the labels
 * are all indices and no classes file is given). classes_path may be
 * NULL. */
int aim_imglist_apply_labels(aim_imglist *l, const char *labels_path, const char *classes_path);

#endif
