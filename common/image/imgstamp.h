/* Stamps of a listing's items, for incremental runs: the size, mtime and
 * (when asked) SHA-256 of each item's file. A tar member has the stamp of
 * its shard, so a shard that changes has all its members redone. */
#ifndef AIM_IMGSTAMP_H
#define AIM_IMGSTAMP_H

#include "imgsrc.h"
#include "manifest.h"

/* out[i] for every selected item i (selected NULL: all); items whose file
 * cannot be stat'ed get unknown stamps (they are never up to date, and
 * reading them reports why). Files are hashed in parallel. */
int aim_imglist_stamps(const aim_imglist *l, const unsigned char *selected, int hash,
		       aim_stamp *out);

/* The selected items with their stamps, as a manifest (manifest.h) written
 * atomically to path ("-": stdout); nothing is decoded. */
int aim_imglist_list(const aim_imglist *l, const unsigned char *selected, int hash,
		     const char *path);

/* Deselect the items `done` records with their current stamp (only those
 * are stat'ed, and hashed when hash is set). Returns how many, or AIM_ERR. */
int64_t aim_imglist_drop_done(const aim_imglist *l, unsigned char *selected,
			      const aim_manifest *done, int hash);

#endif
