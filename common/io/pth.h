/* PyTorch checkpoints (torch.save, zip format) read without Python.
 *
 * A torch >= 1.6 checkpoint is a zip archive holding PREFIX/data.pkl (the
 * pickled object graph) and PREFIX/data/KEY (one file per storage, raw
 * little-endian elements), PREFIX being any single directory name. The
 * pickle is read by the restricted reader of pickle.h, which executes
 * nothing and accepts only what a state dict needs; the storages are read
 * with libzip (stored or deflated entries, zip64).
 *
 * Which tensors are loaded, and under which names:
 *  - the top-level object must be a dict (or OrderedDict);
 *  - while that dict holds no tensor directly and exactly one of its values
 *    holds tensors and is a dict, that value is taken instead: so a plain
 *    state dict, {"model": sd, "epoch": 3}, {"state_dict": sd} and
 *    {"state_dict": {"model": sd}} all load as sd's keys unchanged;
 *  - what remains is flattened: tensors in nested dicts, lists and tuples
 *    are named by their keys (or list positions) joined with "." (so
 *    {"model": sd, "ema": sd2} loads as "model.KEY" and "ema.KEY");
 *    numbers, strings and None are ignored;
 *  - dtypes F32, F16, BF16, I64, I32, U8 are loaded as they are; any other
 *    dtype is an error naming the tensor; a view (offset, strides, shared
 *    storage) is copied out as a new contiguous tensor.
 *
 * Every storage entry is read once, whole, and must hold exactly the bytes
 * its zip headers declare (and its CRC must match), also where the tensors
 * use only part of it. Memory, besides the loaded tensors themselves: the
 * pickle (its size) and its parse (at most AIM_PICKLE_MEM_FACTOR = 64 bytes
 * per pickle byte + 4 MiB, pickle.h), and one storage at a time where a
 * storage is shared or only partly used. As views are copied out, the
 * tensors may take at most AIM_PTH_VIEW_FACTOR x the bytes of the storages
 * they come from, plus AIM_PTH_VIEW_SLACK_MIB MiB: weights tied a few times
 * load, a stride-0 view of one element asking for a GiB is refused. Time is
 * O(n log n) in the number of tensors n.
 * The published AIM v1 files (aim_*_attnprobe_backbone.pth, *_head_*.pth)
 * and Hugging Face pytorch_model.bin files are plain state dicts. */
#ifndef AIM_PTH_H
#define AIM_PTH_H

#include "record.h"

#define AIM_PTH_VIEW_FACTOR 8
#define AIM_PTH_VIEW_SLACK_MIB 1

/* Load a torch.save()'d state dict into r (appended, in the pickle's
 * order; names must not already be in r). Returns 0, or AIM_ERR with a
 * message naming the file and the problem, r then as it was. */
int aim_pth_load(const char *path, aim_record *r);

/* 1 if the file starts with the zip magic "PK\3\4" (as a torch >= 1.6
 * checkpoint does), 0 otherwise or if it cannot be read. (Which loader a
 * file needs: aim_weights_kind, weights_kind.h.) */
int aim_pth_sniff(const char *path);

#endif
