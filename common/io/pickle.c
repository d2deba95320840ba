/* Restricted unpickler for torch state dicts (see pickle.h for what is
 * accepted). Two passes: run the opcodes into a small object graph (no
 * code is ever called; the whitelisted torch functions are interpreted
 * here), then flatten the graph's dicts into named tensor descriptions
 * (pickle_flatten.c). */
#include <stdlib.h>
#include <string.h>

#include "pickle_graph.h"

#define MAX_STACK (1u << 20)
#define MAX_MEMO (1u << 20)

static const struct allowed_global {
	const char *module, *name;
	global_id id;
} allowed_globals[] = {
	{"collections", "OrderedDict", G_ODICT},
	{"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR},
	{"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM},
	{"torch._utils", "_rebuild_parameter_with_state", G_REBUILD_PARAM_STATE},
	{"torch._tensor", "_rebuild_from_type_v2", G_REBUILD_FROM_TYPE},
	{"torch._tensor", "Tensor", G_TYPE_TENSOR},
	{"torch", "Tensor", G_TYPE_TENSOR},
	{"torch.nn.parameter", "Parameter", G_TYPE_PARAM},
};

static obj *new_obj(parser *ps, kind k)
{
	if (!ps->slabs || ps->slabs->used == SLAB_OBJS) {
		if (charge(ps, sizeof(slab)))
			return NULL;
		slab *sl = malloc(sizeof *sl);
		if (!sl) {
			perr(ps, "out of memory");
			return NULL;
		}
		sl->next = ps->slabs;
		sl->used = 0;
		ps->slabs = sl;
	}
	obj *o = &ps->slabs->o[ps->slabs->used++];
	memset(o, 0, sizeof *o);
	o->kind = k;
	ps->nall++;
	return o;
}

static int seq_push(parser *ps, obj *s, obj *item)
{
	if (s->u.seq.n == s->u.seq.cap) {
		size_t cap = s->u.seq.cap ? 2 * s->u.seq.cap : 8;
		if (charge(ps, (cap - s->u.seq.cap) * sizeof(obj *)))
			return AIM_ERR;
		obj **v = realloc(s->u.seq.v, cap * sizeof *v);
		if (!v)
			return perr(ps, "out of memory");
		s->u.seq.v = v;
		s->u.seq.cap = cap;
	}
	s->u.seq.v[s->u.seq.n++] = item;
	return 0;
}

static void free_objs(parser *ps)
{
	for (slab *sl = ps->slabs, *next; sl; sl = next) {
		for (size_t i = 0; i < sl->used; i++) {
			kind k = sl->o[i].kind;
			if (k == K_TUPLE || k == K_LIST || k == K_DICT)
				free(sl->o[i].u.seq.v);
			else if (k == K_TENSOR)
				free(sl->o[i].u.tensor);
		}
		next = sl->next;
		free(sl);
	}
	free(ps->stack);
	free(ps->memo);
}

/* ---- the stack: Python keeps items below a MARK out of reach; so do we -- */

static size_t floor_of_stack(const parser *ps)
{
	return ps->nmarks ? ps->marks[ps->nmarks - 1] : 0;
}

static int push(parser *ps, obj *o)
{
	if (!o)
		return AIM_ERR;
	if (ps->sp == ps->capstack) {
		if (ps->capstack >= MAX_STACK)
			return perr(ps, "stack deeper than %u entries", MAX_STACK);
		size_t cap = ps->capstack ? 2 * ps->capstack : 64;
		if (charge(ps, (cap - ps->capstack) * sizeof(obj *)))
			return AIM_ERR;
		obj **s = realloc(ps->stack, cap * sizeof *s);
		if (!s)
			return perr(ps, "out of memory");
		ps->stack = s;
		ps->capstack = cap;
	}
	ps->stack[ps->sp++] = o;
	return 0;
}

static obj *pop(parser *ps)
{
	if (ps->sp <= floor_of_stack(ps)) {
		perr(ps, "stack underflow at offset %zu", (size_t)(ps->p - ps->start - 1));
		return NULL;
	}
	return ps->stack[--ps->sp];
}

static obj *top(parser *ps)
{
	if (ps->sp <= floor_of_stack(ps)) {
		perr(ps, "stack underflow at offset %zu", (size_t)(ps->p - ps->start - 1));
		return NULL;
	}
	return ps->stack[ps->sp - 1];
}

/* Pops the innermost mark; returns the stack position it recorded. */
static int pop_mark(parser *ps, size_t *at)
{
	if (!ps->nmarks)
		return perr(ps, "no MARK on the stack at offset %zu", (size_t)(ps->p - ps->start - 1));
	*at = ps->marks[--ps->nmarks];
	return 0;
}

/* ---- reading the input -------------------------------------------------- */

static int need(parser *ps, size_t n)
{
	if ((size_t)(ps->end - ps->p) < n)
		return perr(ps, "truncated at offset %zu (needs %zu more bytes)",
			    (size_t)(ps->p - ps->start), n);
	return 0;
}

static uint64_t read_le(parser *ps, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)ps->p[i] << (8 * i);
	ps->p += n;
	return v;
}

static obj *make_int(parser *ps, int64_t v)
{
	obj *o = new_obj(ps, K_INT);
	if (o)
		o->u.i = v;
	return o;
}

static obj *make_str(parser *ps, uint64_t len)
{
	if ((uint64_t)(ps->end - ps->p) < len) {
		perr(ps, "string of %llu bytes runs past the end at offset %zu",
		     (unsigned long long)len, (size_t)(ps->p - ps->start));
		return NULL;
	}
	obj *o = new_obj(ps, K_STR);
	if (!o)
		return NULL;
	o->u.str.s = (const char *)ps->p;
	o->u.str.len = (size_t)len;
	ps->p += len;
	return o;
}

static int str_is(const obj *o, const char *s)
{
	return o->kind == K_STR && o->u.str.len == strlen(s) && !memcmp(o->u.str.s, s, o->u.str.len);
}

/* "module.name" for messages, unprintable bytes shown as '?', long names cut. */
static void printable_name(char *dst, size_t n, const char *mod, size_t modlen,
			   const char *name, size_t namelen)
{
	size_t total = modlen + 1 + namelen, j = 0;
	for (size_t i = 0; i < total && j + 4 < n; i++) {
		char c = i < modlen ? mod[i] : i == modlen ? '.' : name[i - modlen - 1];
		dst[j++] = (c >= 0x20 && c < 0x7f) ? c : '?';
	}
	if (j < total) {
		memcpy(dst + j, "...", 3);
		j += 3;
	}
	dst[j] = 0;
}

static obj *make_global(parser *ps, const char *mod, size_t modlen, const char *name,
			size_t namelen)
{
#define SAME(s, p, l) (strlen(s) == (l) && !memcmp((s), (p), (l)))
	obj *o = NULL;
	for (size_t i = 0; i < sizeof allowed_globals / sizeof allowed_globals[0]; i++)
		if (SAME(allowed_globals[i].module, mod, modlen) &&
		    SAME(allowed_globals[i].name, name, namelen)) {
			if (!(o = new_obj(ps, K_GLOBAL)))
				return NULL;
			o->u.global.id = allowed_globals[i].id;
			return o;
		}
	if (SAME("torch", mod, modlen))
		for (int i = 0; i < N_STORAGE_CLASSES; i++)
			if (SAME(storage_classes[i].name, name, namelen)) {
				if (!(o = new_obj(ps, K_GLOBAL)))
					return NULL;
				o->u.global.id = G_STORAGE;
				o->u.global.storage_class = i;
				return o;
			}
#undef SAME
	char shown[160];
	printable_name(shown, sizeof shown, mod, modlen, name, namelen);
	if (modlen == 5 && !memcmp(mod, "torch", 5) && namelen > 7 &&
	    !memcmp(name + namelen - 7, "Storage", 7)) {
		perr(ps, "storage class '%s' is not supported; supported dtypes: F32, F16, BF16, I64, I32, U8",
		     shown);
		return NULL;
	}
	aim_error("%s: refuses pickle global '%s' (loading a model never executes code)",
		  ps->what, shown);
	return NULL;
}

/* GLOBAL's argument: "module\nname\n". */
static obj *read_global_text(parser *ps)
{
	const char *parts[2];
	size_t lens[2];
	for (int k = 0; k < 2; k++) {
		const unsigned char *nl = memchr(ps->p, '\n', (size_t)(ps->end - ps->p));
		if (!nl) {
			perr(ps, "GLOBAL without newline at offset %zu", (size_t)(ps->p - ps->start));
			return NULL;
		}
		parts[k] = (const char *)ps->p;
		lens[k] = (size_t)(nl - ps->p);
		ps->p = nl + 1;
	}
	return make_global(ps, parts[0], lens[0], parts[1], lens[1]);
}

/* ---- interpreting the whitelisted callables ----------------------------- */

static int get_int(parser *ps, const obj *o, const char *what, int64_t *v)
{
	if (o->kind != K_INT)
		return perr(ps, "%s is a %s, not an int", what, kind_name(o->kind));
	*v = o->u.i;
	return 0;
}

/* torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
 * backward_hooks[, metadata]) */
static obj *rebuild_tensor(parser *ps, const obj *args)
{
	size_t n = args->u.seq.n;
	obj **a = args->u.seq.v;
	if (n != 6 && n != 7) {
		perr(ps, "_rebuild_tensor_v2 takes 6 or 7 arguments, got %zu", n);
		return NULL;
	}
	if (a[0]->kind != K_STORAGE || a[2]->kind != K_TUPLE || a[3]->kind != K_TUPLE) {
		perr(ps, "_rebuild_tensor_v2 called with (%s, _, %s, %s, ...); expected (storage, offset, tuple, tuple, ...)",
		     kind_name(a[0]->kind), kind_name(a[2]->kind), kind_name(a[3]->kind));
		return NULL;
	}
	const obj *size = a[2], *stride = a[3];
	if (size->u.seq.n != stride->u.seq.n) {
		perr(ps, "tensor with %zu sizes but %zu strides", size->u.seq.n, stride->u.seq.n);
		return NULL;
	}
	if (size->u.seq.n > 64) {
		perr(ps, "tensor with %zu dimensions", size->u.seq.n);
		return NULL;
	}
	obj *t = new_obj(ps, K_TENSOR);
	if (!t || charge(ps, sizeof(struct tensor_view)))
		return NULL;
	if (!(t->u.tensor = calloc(1, sizeof(struct tensor_view)))) {
		t->kind = K_NONE;
		perr(ps, "out of memory");
		return NULL;
	}
	t->u.tensor->storage = a[0];
	t->u.tensor->ndim = (int)size->u.seq.n;
	if (get_int(ps, a[1], "storage offset", &t->u.tensor->offset))
		return NULL;
	if (t->u.tensor->offset < 0) {
		perr(ps, "negative storage offset %lld", (long long)t->u.tensor->offset);
		return NULL;
	}
	/* extent: 1 + sum((size_i - 1) * stride_i), or 0 for an empty tensor */
	int64_t extent = 1, numel = 1;
	for (int d = 0; d < t->u.tensor->ndim; d++) {
		int64_t sz = 0, st = 0, span;
		if (get_int(ps, size->u.seq.v[d], "a size", &sz) ||
		    get_int(ps, stride->u.seq.v[d], "a stride", &st))
			return NULL;
		if (sz < 0 || st < 0) {
			perr(ps, "negative size or stride (%lld, %lld)", (long long)sz, (long long)st);
			return NULL;
		}
		if (sz == 0)
			numel = 0;
		else if (__builtin_mul_overflow(numel, sz, &numel) ||
			 __builtin_mul_overflow(sz - 1, st, &span) ||
			 __builtin_add_overflow(extent, span, &extent)) {
			perr(ps, "tensor size overflows");
			return NULL;
		}
		if (d < AIM_MAX_DIMS) {
			t->u.tensor->shape[d] = sz;
			t->u.tensor->stride[d] = st;
		}
	}
	t->u.tensor->extent = numel ? extent : 0;
	return t;
}

static obj *call(parser *ps, const obj *fn, const obj *args, int depth)
{
	if (fn->kind != K_GLOBAL) {
		perr(ps, "REDUCE on a %s, not a callable", kind_name(fn->kind));
		return NULL;
	}
	if (args->kind != K_TUPLE) {
		perr(ps, "REDUCE with %s arguments, not a tuple", kind_name(args->kind));
		return NULL;
	}
	size_t n = args->u.seq.n;
	obj **a = args->u.seq.v;
	switch (fn->u.global.id) {
	case G_ODICT: {
		if (n != 0) {
			perr(ps, "OrderedDict called with %zu arguments (only OrderedDict() is accepted)", n);
			return NULL;
		}
		obj *d = new_obj(ps, K_DICT);
		if (d)
			d->u.seq.ordered = 1;
		return d;
	}
	case G_REBUILD_TENSOR:
		return rebuild_tensor(ps, args);
	case G_REBUILD_PARAM:       /* (data, requires_grad, backward_hooks) */
	case G_REBUILD_PARAM_STATE: /* (data, requires_grad, backward_hooks, state) */
		if (n != (fn->u.global.id == G_REBUILD_PARAM ? 3u : 4u) || a[0]->kind != K_TENSOR) {
			perr(ps, "_rebuild_parameter called with %zu arguments, first a %s",
			     n, n ? kind_name(a[0]->kind) : "nothing");
			return NULL;
		}
		return a[0];
	case G_REBUILD_FROM_TYPE: { /* (func, new_type, args, state) */
		if (n != 4 || a[1]->kind != K_GLOBAL ||
		    (a[1]->u.global.id != G_TYPE_TENSOR && a[1]->u.global.id != G_TYPE_PARAM) ||
		    depth > 0) {
			perr(ps, "_rebuild_from_type_v2 accepts (func, torch.Tensor or Parameter, args, state)");
			return NULL;
		}
		obj *t = call(ps, a[0], a[2], depth + 1);
		if (t && t->kind != K_TENSOR) {
			perr(ps, "_rebuild_from_type_v2 did not rebuild a tensor");
			return NULL;
		}
		return t;
	}
	default:
		perr(ps, "refuses to call a %s", fn->u.global.id == G_STORAGE ? "storage class" : "type");
		return NULL;
	}
}

/* BINPERSID: torch's ('storage', storage_class, key, location, numel). */
static obj *persistent_load(parser *ps, const obj *pid)
{
	if (pid->kind != K_TUPLE || pid->u.seq.n != 5 || !str_is(pid->u.seq.v[0], "storage")) {
		perr(ps, "persistent id is not ('storage', class, key, location, numel)");
		return NULL;
	}
	obj **a = pid->u.seq.v;
	if (a[1]->kind != K_GLOBAL || a[1]->u.global.id != G_STORAGE) {
		perr(ps, "persistent id names a %s, not a storage class", kind_name(a[1]->kind));
		return NULL;
	}
	if (a[2]->kind != K_STR || a[2]->u.str.len == 0 || a[2]->u.str.len > 64) {
		perr(ps, "storage key is not a short string");
		return NULL;
	}
	for (size_t i = 0; i < a[2]->u.str.len; i++) {
		char c = a[2]->u.str.s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '_' || c == '-')) {
			perr(ps, "storage key has a character outside [A-Za-z0-9_-]");
			return NULL;
		}
	}
	if (a[3]->kind != K_STR) {
		perr(ps, "storage location is a %s, not a string", kind_name(a[3]->kind));
		return NULL;
	}
	int64_t numel = 0;
	if (get_int(ps, a[4], "storage size", &numel))
		return NULL;
	if (numel < 0) {
		perr(ps, "negative storage size");
		return NULL;
	}
	obj *s = new_obj(ps, K_STORAGE);
	if (!s)
		return NULL;
	s->u.storage.cls = a[1]->u.global.storage_class;
	s->u.storage.key = a[2];
	s->u.storage.numel = numel;
	return s;
}

/* ---- the opcode loop ---------------------------------------------------- */

static obj *collect_from_mark(parser *ps, kind k)
{
	size_t at = 0;
	if (pop_mark(ps, &at))
		return NULL;
	obj *o = new_obj(ps, k);
	if (!o)
		return NULL;
	if (k == K_DICT && (ps->sp - at) % 2) {
		perr(ps, "odd number of items for a dict");
		return NULL;
	}
	for (size_t i = at; i < ps->sp; i++)
		if (seq_push(ps, o, ps->stack[i]))
			return NULL;
	ps->sp = at;
	return o;
}

static int add_items_from_mark(parser *ps, kind k)
{
	size_t at = 0;
	if (pop_mark(ps, &at))
		return AIM_ERR;
	if (at <= floor_of_stack(ps))
		return perr(ps, "%s with nothing below its MARK", k == K_DICT ? "SETITEMS" : "APPENDS");
	obj *target = ps->stack[at - 1];
	if (target->kind != k)
		return perr(ps, "%s onto a %s", k == K_DICT ? "SETITEMS" : "APPENDS",
			    kind_name(target->kind));
	if (k == K_DICT && (ps->sp - at) % 2)
		return perr(ps, "odd number of items for SETITEMS");
	for (size_t i = at; i < ps->sp; i++)
		if (seq_push(ps, target, ps->stack[i]))
			return AIM_ERR;
	ps->sp = at;
	return 0;
}

static int memo_put(parser *ps, uint64_t idx)
{
	obj *o = top(ps);
	if (!o)
		return AIM_ERR;
	if (idx >= MAX_MEMO)
		return perr(ps, "memo index %llu too large", (unsigned long long)idx);
	if (idx >= ps->capmemo) {
		size_t cap = ps->capmemo ? ps->capmemo : 64;
		while (cap <= idx)
			cap *= 2;
		if (charge(ps, (cap - ps->capmemo) * sizeof(obj *)))
			return AIM_ERR;
		obj **m = realloc(ps->memo, cap * sizeof *m);
		if (!m)
			return perr(ps, "out of memory");
		memset(m + ps->capmemo, 0, (cap - ps->capmemo) * sizeof *m);
		ps->memo = m;
		ps->capmemo = cap;
	}
	if (!ps->memo[idx])
		ps->nmemo_set++;
	ps->memo[idx] = o;
	return 0;
}

static int memo_get(parser *ps, uint64_t idx)
{
	if (idx >= ps->capmemo || !ps->memo[idx])
		return perr(ps, "memo index %llu was never stored", (unsigned long long)idx);
	return push(ps, ps->memo[idx]);
}

static int run(parser *ps, obj **root)
{
	for (;;) {
		if (ps->p >= ps->end)
			return perr(ps, "ends before STOP");
		size_t at = (size_t)(ps->p - ps->start);
		unsigned op = *ps->p++;
		obj *o, *k, *v;
		switch (op) {
		case 0x80: /* PROTO */
			if (need(ps, 1))
				return AIM_ERR;
			if (*ps->p > 5)
				return perr(ps, "pickle protocol %u is not supported", *ps->p);
			ps->p++;
			break;
		case 0x95: /* FRAME: framing is only a hint for buffered readers */
			if (need(ps, 8))
				return AIM_ERR;
			ps->p += 8;
			break;
		case '.': /* STOP */
			if (!(*root = top(ps)))
				return AIM_ERR;
			return 0;
		case '(': /* MARK */
			if (ps->nmarks == MAX_MARKS)
				return perr(ps, "MARKs nested deeper than %u", MAX_MARKS);
			ps->marks[ps->nmarks++] = ps->sp;
			break;
		case '0': /* POP: the top item, or the mark if the frame is empty */
			if (ps->sp > floor_of_stack(ps))
				ps->sp--;
			else if (pop_mark(ps, &ps->sp))
				return AIM_ERR;
			break;
		case '1': /* POP_MARK */
			if (pop_mark(ps, &ps->sp))
				return AIM_ERR;
			break;
		case '2': /* DUP */
			if (!(o = top(ps)) || push(ps, o))
				return AIM_ERR;
			break;
		case '}': /* EMPTY_DICT */
			if (push(ps, new_obj(ps, K_DICT)))
				return AIM_ERR;
			break;
		case ']': /* EMPTY_LIST */
			if (push(ps, new_obj(ps, K_LIST)))
				return AIM_ERR;
			break;
		case ')': /* EMPTY_TUPLE */
			if (push(ps, new_obj(ps, K_TUPLE)))
				return AIM_ERR;
			break;
		case 't': /* TUPLE */
			if (push(ps, collect_from_mark(ps, K_TUPLE)))
				return AIM_ERR;
			break;
		case 'l': /* LIST */
			if (push(ps, collect_from_mark(ps, K_LIST)))
				return AIM_ERR;
			break;
		case 'd': /* DICT */
			if (push(ps, collect_from_mark(ps, K_DICT)))
				return AIM_ERR;
			break;
		case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
			size_t n = op - 0x84;
			if (ps->sp - floor_of_stack(ps) < n)
				return perr(ps, "stack underflow at offset %zu", at);
			if (!(o = new_obj(ps, K_TUPLE)))
				return AIM_ERR;
			for (size_t i = ps->sp - n; i < ps->sp; i++)
				if (seq_push(ps, o, ps->stack[i]))
					return AIM_ERR;
			ps->sp -= n;
			if (push(ps, o))
				return AIM_ERR;
			break;
		}
		case 's': /* SETITEM */
			if (!(v = pop(ps)) || !(k = pop(ps)) || !(o = top(ps)))
				return AIM_ERR;
			if (o->kind != K_DICT)
				return perr(ps, "SETITEM onto a %s at offset %zu", kind_name(o->kind), at);
			if (seq_push(ps, o, k) || seq_push(ps, o, v))
				return AIM_ERR;
			break;
		case 'u': /* SETITEMS */
			if (add_items_from_mark(ps, K_DICT))
				return AIM_ERR;
			break;
		case 'a': /* APPEND */
			if (!(v = pop(ps)) || !(o = top(ps)))
				return AIM_ERR;
			if (o->kind != K_LIST)
				return perr(ps, "APPEND onto a %s at offset %zu", kind_name(o->kind), at);
			if (seq_push(ps, o, v))
				return AIM_ERR;
			break;
		case 'e': /* APPENDS */
			if (add_items_from_mark(ps, K_LIST))
				return AIM_ERR;
			break;
		case 'q': /* BINPUT */
			if (need(ps, 1) || memo_put(ps, read_le(ps, 1)))
				return AIM_ERR;
			break;
		case 'r': /* LONG_BINPUT */
			if (need(ps, 4) || memo_put(ps, read_le(ps, 4)))
				return AIM_ERR;
			break;
		case 0x94: /* MEMOIZE */
			if (memo_put(ps, ps->nmemo_set))
				return AIM_ERR;
			break;
		case 'h': /* BINGET */
			if (need(ps, 1) || memo_get(ps, read_le(ps, 1)))
				return AIM_ERR;
			break;
		case 'j': /* LONG_BINGET */
			if (need(ps, 4) || memo_get(ps, read_le(ps, 4)))
				return AIM_ERR;
			break;
		case 'J': /* BININT: 4-byte signed */
			if (need(ps, 4) || push(ps, make_int(ps, (int32_t)(uint32_t)read_le(ps, 4))))
				return AIM_ERR;
			break;
		case 'K': /* BININT1 */
			if (need(ps, 1) || push(ps, make_int(ps, (int64_t)read_le(ps, 1))))
				return AIM_ERR;
			break;
		case 'M': /* BININT2 */
			if (need(ps, 2) || push(ps, make_int(ps, (int64_t)read_le(ps, 2))))
				return AIM_ERR;
			break;
		case 0x8a: { /* LONG1: n-byte two's complement, little-endian */
			if (need(ps, 1))
				return AIM_ERR;
			int n = *ps->p++;
			if (n > 8)
				return perr(ps, "integer of %d bytes at offset %zu is too large", n, at);
			if (need(ps, (size_t)n))
				return AIM_ERR;
			uint64_t u = read_le(ps, n);
			if (n > 0 && n < 8 && (u >> (8 * n - 1)) & 1)
				u |= ~(uint64_t)0 << (8 * n); /* sign-extend */
			if (push(ps, make_int(ps, (int64_t)u)))
				return AIM_ERR;
			break;
		}
		case 'G': { /* BINFLOAT: big-endian double */
			if (need(ps, 8))
				return AIM_ERR;
			uint64_t u = 0;
			for (int i = 0; i < 8; i++)
				u = u << 8 | *ps->p++;
			if (!(o = new_obj(ps, K_FLOAT)))
				return AIM_ERR;
			memcpy(&o->u.f, &u, sizeof u);
			if (push(ps, o))
				return AIM_ERR;
			break;
		}
		case 0x88: case 0x89: /* NEWTRUE, NEWFALSE */
			if (!(o = new_obj(ps, K_BOOL)))
				return AIM_ERR;
			o->u.i = op == 0x88;
			if (push(ps, o))
				return AIM_ERR;
			break;
		case 'N': /* NONE */
			if (push(ps, new_obj(ps, K_NONE)))
				return AIM_ERR;
			break;
		case 0x8c: /* SHORT_BINUNICODE */
			if (need(ps, 1) || push(ps, make_str(ps, read_le(ps, 1))))
				return AIM_ERR;
			break;
		case 'X': /* BINUNICODE */
			if (need(ps, 4) || push(ps, make_str(ps, read_le(ps, 4))))
				return AIM_ERR;
			break;
		case 0x8d: /* BINUNICODE8 */
			if (need(ps, 8) || push(ps, make_str(ps, read_le(ps, 8))))
				return AIM_ERR;
			break;
		case 'c': /* GLOBAL */
			if (push(ps, read_global_text(ps)))
				return AIM_ERR;
			break;
		case 0x93: /* STACK_GLOBAL */
			if (!(v = pop(ps)) || !(k = pop(ps)))
				return AIM_ERR;
			if (k->kind != K_STR || v->kind != K_STR)
				return perr(ps, "STACK_GLOBAL with a %s and a %s", kind_name(k->kind),
					    kind_name(v->kind));
			if (push(ps, make_global(ps, k->u.str.s, k->u.str.len, v->u.str.s, v->u.str.len)))
				return AIM_ERR;
			break;
		case 'R': /* REDUCE */
			if (!(v = pop(ps)) || !(k = pop(ps)) || push(ps, call(ps, k, v, 0)))
				return AIM_ERR;
			break;
		case 'b': /* BUILD: only torch's OrderedDict._metadata, dropped */
			if (!(v = pop(ps)) || !(o = top(ps)))
				return AIM_ERR;
			if (o->kind != K_DICT || !o->u.seq.ordered)
				return perr(ps, "BUILD on a %s at offset %zu (only OrderedDict state is accepted)",
					    kind_name(o->kind), at);
			break;
		case 'Q': /* BINPERSID */
			if (!(v = pop(ps)) || push(ps, persistent_load(ps, v)))
				return AIM_ERR;
			break;
		default:
			return perr(ps, "unsupported pickle opcode 0x%02x at offset %zu", op, at);
		}
	}
}

int aim_pickle_parse_state_dict(const void *buf, size_t len, const char *what,
				aim_pickle_tensors *out)
{
	parser ps = {.start = buf, .p = buf, .end = (const unsigned char *)buf + len, .what = what};
	ps.mem_budget = len > (SIZE_MAX - ((size_t)AIM_PICKLE_MEM_SLACK_MIB << 20)) / AIM_PICKLE_MEM_FACTOR
				? SIZE_MAX
				: len * AIM_PICKLE_MEM_FACTOR + ((size_t)AIM_PICKLE_MEM_SLACK_MIB << 20);
	obj *r = NULL;
	out->n = 0;
	out->t = NULL;
	int rc = run(&ps, &r);
	if (!rc && r->kind != K_DICT)
		rc = perr(&ps, "the top-level object is a %s, not a dict of tensors", kind_name(r->kind));
	if (!rc)
		rc = pickle_flatten(&ps, r, out);
	free_objs(&ps);
	return rc;
}
