/* The object graph of the restricted unpickler, shared by its two passes:
 * pickle.c runs the opcodes into these objects, pickle_flatten.c turns the
 * graph's dicts into named tensor descriptions. Private to those two files.
 * (Two files so that the fuzz build can leave the walk, whose loops are
 * most of a crafted graph's cost, out of comparison tracing.) */
#ifndef AIM_PICKLE_GRAPH_H
#define AIM_PICKLE_GRAPH_H

#include <stdarg.h>
#include <stdio.h>

#include "err.h"
#include "pickle.h"

#define MAX_MARKS 4096u        /* nesting of MARKs on the stack */
#define MAX_DEPTH 64           /* nesting of the flattened dicts */
#define MAX_NAME (64u << 10)   /* bytes of one flattened key path */
#define SLAB_OBJS 1024

/* ---- objects ------------------------------------------------------------ */

typedef enum {
	K_NONE, K_BOOL, K_INT, K_FLOAT, K_STR, K_TUPLE, K_LIST, K_DICT,
	K_GLOBAL, K_STORAGE, K_TENSOR
} kind;

static inline const char *kind_name(kind k)
{
	static const char *names[] = {"None", "bool", "int", "float", "str", "tuple",
				      "list", "dict", "global", "storage", "tensor"};
	return names[k];
}

typedef enum {
	G_ODICT, G_REBUILD_TENSOR, G_REBUILD_PARAM, G_REBUILD_PARAM_STATE,
	G_REBUILD_FROM_TYPE, G_TYPE_TENSOR, G_TYPE_PARAM, G_STORAGE
} global_id;

/* torch's storage classes: the dtype of every tensor comes from here. */
static const struct storage_class {
	const char *name;
	aim_dtype dtype;       /* AIM_DTYPE_INVALID: recognised but not loaded */
	const char *torch_name;
} storage_classes[] = {
	{"FloatStorage", AIM_F32, "float32"},
	{"HalfStorage", AIM_F16, "float16"},
	{"BFloat16Storage", AIM_BF16, "bfloat16"},
	{"LongStorage", AIM_I64, "int64"},
	{"IntStorage", AIM_I32, "int32"},
	{"ByteStorage", AIM_U8, "uint8"},
	{"DoubleStorage", AIM_DTYPE_INVALID, "float64"},
	{"ShortStorage", AIM_DTYPE_INVALID, "int16"},
	{"CharStorage", AIM_DTYPE_INVALID, "int8"},
	{"BoolStorage", AIM_DTYPE_INVALID, "bool"},
	{"ComplexFloatStorage", AIM_DTYPE_INVALID, "complex64"},
	{"ComplexDoubleStorage", AIM_DTYPE_INVALID, "complex128"},
};
#define N_STORAGE_CLASSES (int)(sizeof storage_classes / sizeof storage_classes[0])

typedef struct obj obj;
struct obj {
	kind kind;
	union {
		int64_t i;                                    /* K_BOOL, K_INT */
		double f;                                     /* K_FLOAT */
		struct { const char *s; size_t len; } str;    /* K_STR, points into the input */
		struct { obj **v; size_t n, cap; int ordered; } seq; /* tuple, list, dict (n = 2 x pairs) */
		struct { global_id id; int storage_class; } global;
		struct { int cls; const obj *key; int64_t numel; } storage;
		struct tensor_view *tensor;                   /* K_TENSOR, owned */
	} u;
};

/* Kept apart from obj so that every other object stays small (40 bytes). */
struct tensor_view {
	const obj *storage;
	int64_t offset, extent;
	int ndim; /* may exceed AIM_MAX_DIMS: refused when named */
	int64_t shape[AIM_MAX_DIMS], stride[AIM_MAX_DIMS];
};

/* Objects come from slabs: no allocation per object, one walk to free. */
typedef struct slab {
	struct slab *next;
	size_t used;
	obj o[SLAB_OBJS];
} slab;

typedef struct {
	const unsigned char *start, *p, *end;
	const char *what;
	slab *slabs;          /* every object, freed together */
	size_t nall;
	size_t mem_used, mem_budget; /* bytes this parse has allocated, and may */
	obj **stack;
	size_t sp, capstack;
	size_t marks[MAX_MARKS];
	size_t nmarks;
	obj **memo;
	size_t capmemo, nmemo_set;
} parser;

static inline int perr(parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int perr(parser *ps, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return aim_error("%s: data.pkl: %s", ps->what, msg);
}

/* Every allocation of a parse is counted against a budget proportional to
 * the input (pickle.h): a small file cannot make the reader take much
 * memory, whatever its object graph. */
static inline int charge(parser *ps, size_t bytes)
{
	if (bytes > ps->mem_budget - ps->mem_used)
		return perr(ps, "describing its tensors needs more than %zu bytes of memory "
			    "(%d x its %zu bytes + %d MiB); a crafted or damaged pickle",
			    ps->mem_budget, AIM_PICKLE_MEM_FACTOR, (size_t)(ps->end - ps->start),
			    AIM_PICKLE_MEM_SLACK_MIB);
	ps->mem_used += bytes;
	return 0;
}

/* Flatten the graph under the top-level dict root into out, which the
 * caller passes empty (pickle.h says how); the names are checked and
 * unique. 0, or AIM_ERR with out empty again. */
int pickle_flatten(parser *ps, const obj *root, aim_pickle_tensors *out);

#endif
