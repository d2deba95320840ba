/* A restricted reader for the pickle inside a PyTorch checkpoint.
 *
 * torch.save() writes an object graph with Python's pickle: dicts, strings,
 * integers and calls to a few torch functions that rebuild tensors from
 * storages kept beside the pickle (archive/data/N). Unpickling in Python
 * can call any function named in the file, which is how a malicious .pth
 * runs code. This reader never calls anything: it understands the opcodes
 * a state dict uses and a fixed list of globals, and builds plain
 * descriptions of the tensors ("name, dtype, storage key, offset, shape,
 * strides"). Everything else is an error.
 *
 * Accepted opcodes (protocols 2 to 5): PROTO FRAME STOP MARK POP POP_MARK
 * DUP, EMPTY_DICT EMPTY_LIST EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 LIST
 * DICT, SETITEM SETITEMS APPEND APPENDS, BINPUT LONG_BINPUT MEMOIZE BINGET
 * LONG_BINGET, BININT BININT1 BININT2 LONG1, BINFLOAT NEWTRUE NEWFALSE
 * NONE, BINUNICODE BINUNICODE8 SHORT_BINUNICODE, GLOBAL STACK_GLOBAL,
 * REDUCE, BUILD (on an OrderedDict only; the state, torch's _metadata
 * attribute, is dropped) and BINPERSID (torch's storage references).
 *
 * Accepted globals: collections.OrderedDict; torch._utils._rebuild_tensor_v2,
 * _rebuild_parameter, _rebuild_parameter_with_state;
 * torch._tensor._rebuild_from_type_v2 with the types torch.Tensor and
 * torch.nn.parameter.Parameter; the storage classes torch.FloatStorage,
 * HalfStorage, BFloat16Storage, LongStorage, IntStorage, ByteStorage
 * (loaded) and DoubleStorage, ShortStorage, CharStorage, BoolStorage,
 * ComplexFloatStorage, ComplexDoubleStorage (recognised, refused by name;
 * any other torch.*Storage is refused as an unsupported storage class).
 *
 * Limits: stack 1M entries, mark nesting 4096, memo indices < 1M, strings
 * and the whole graph bounded by the input, nesting of the flattened dicts
 * 64 levels, 4 visits per object, names 64 KiB. Every read is bounds checked
 * and all arithmetic on sizes is overflow checked.
 *
 * Memory: everything a parse allocates (objects, stack, memo, the tensor
 * descriptions and their names) is counted, and a parse that would need
 * more than AIM_PICKLE_MEM_FACTOR bytes per byte of pickle plus
 * AIM_PICKLE_MEM_SLACK_MIB MiB fails with a message saying so. The state
 * dicts torch writes need about 15 bytes per byte (85,000 tensors: 8.3 MB
 * of pickle, 124 MB); a crafted 31 KB pickle naming one tensor 60,000
 * times under 30 KB names, which used to take 1.8 GB, is refused. */
#ifndef AIM_PICKLE_H
#define AIM_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

#define AIM_PICKLE_MEM_FACTOR 64
#define AIM_PICKLE_MEM_SLACK_MIB 4

/* One tensor of the state dict: where its elements live in which storage. */
typedef struct {
	char *name;             /* flattened key, e.g. "trunk.blocks.0.mlp.fc1.weight" */
	aim_dtype dtype;        /* from the storage class */
	char *storage_key;      /* the storage's file is <prefix>/data/<storage_key> */
	int64_t storage_numel;  /* elements in that storage, as the pickle says */
	int64_t offset;         /* storage offset, in elements */
	int64_t extent;         /* elements of the storage the view reaches past offset */
	int ndim;
	int64_t shape[AIM_MAX_DIMS];
	int64_t stride[AIM_MAX_DIMS]; /* in elements, all >= 0 */
} aim_pickle_tensor;

typedef struct {
	int n;
	aim_pickle_tensor *t;
} aim_pickle_tensors;

/* Parse a torch data.pkl held in buf[0..len) into the list of its tensors,
 * in the order the pickle stores them. Nested dicts are flattened with "."
 * (the rule is described in pth.h). Checks done here: whitelist, shapes
 * and strides non-negative, the view inside its storage (offset + extent
 * <= storage_numel), dtype supported, at most AIM_MAX_DIMS dimensions,
 * names non-empty valid UTF-8 and unique. `what` names the source in
 * messages. Returns 0, or AIM_ERR with out left empty. Also the fuzzing
 * entry point (tests/fuzz/fuzz_pickle.c). */
int aim_pickle_parse_state_dict(const void *buf, size_t len, const char *what,
				aim_pickle_tensors *out);
void aim_pickle_tensors_free(aim_pickle_tensors *ts);

#endif
