/* oneDNN's matmul primitive behind one GEMM call (dnnl_gemm.h).
 *
 * Creating a matmul primitive costs a JIT compilation (milliseconds);
 * running it costs microseconds. So primitives live in a table keyed by
 * everything that shapes them and are made once. oneDNN's default
 * scratchpad is one per process, unsafe when two threads run primitives at
 * once (the CPU backend's sample groups do): every primitive here takes
 * the user scratchpad, a buffer per thread, and every thread its own
 * stream. Those per-thread objects are kept in a global list too, so they
 * stay reachable until the process ends. */
#include "dnnl_gemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef AIM_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>

typedef struct {
	int type, ta, tb, M, N, K, lda, ldb, ldc, bias, post, nested;
} gemm_key;

typedef struct gemm_prim {
	gemm_key key;
	dnnl_primitive_t prim;
	dnnl_memory_desc_t a_md, b_md, bias_md, c_md, scratch_md;
	size_t scratch_bytes;
	struct gemm_prim *next; /* hash chain */
} gemm_prim;

#define NBUCKETS 256

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t g_engine;
static gemm_prim *g_table[NBUCKETS];

/* Per-thread stream and scratchpad, listed globally (see the top). */
typedef struct thread_ctx {
	dnnl_stream_t stream;
	void *scratch;
	size_t scratch_bytes;
	struct thread_ctx *next;
} thread_ctx;
static thread_ctx *g_threads;
static __thread thread_ctx *t_ctx;

static void die(const char *what, dnnl_status_t s)
{
	fprintf(stderr, "aim: oneDNN: %s failed (status %d)\n", what, (int)s);
	abort();
}

#define DNNL_CHECK(what, call)                      \
	do {                                        \
		dnnl_status_t s_ = (call);          \
		if (s_ != dnnl_success)             \
			die((what), s_);            \
	} while (0)

static void make_engine(void)
{
	DNNL_CHECK("engine", dnnl_engine_create(&g_engine, dnnl_cpu, 0));
}

static thread_ctx *this_thread(void)
{
	if (t_ctx)
		return t_ctx;
	thread_ctx *c = calloc(1, sizeof *c);
	if (!c)
		die("thread context (out of memory)", dnnl_out_of_memory);
	DNNL_CHECK("stream", dnnl_stream_create(&c->stream, g_engine, dnnl_stream_default_flags));
	pthread_mutex_lock(&g_lock);
	c->next = g_threads;
	g_threads = c;
	pthread_mutex_unlock(&g_lock);
	return t_ctx = c;
}

static void *thread_scratch(thread_ctx *c, size_t bytes)
{
	if (bytes <= c->scratch_bytes)
		return c->scratch;
	free(c->scratch);
	c->scratch = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
	if (!c->scratch)
		die("scratchpad (out of memory)", dnnl_out_of_memory);
	c->scratch_bytes = bytes;
	return c->scratch;
}

static unsigned key_hash(const gemm_key *k)
{
	const int *v = (const int *)k;
	unsigned h = 2166136261u;
	for (size_t i = 0; i < sizeof *k / sizeof(int); i++)
		h = (h ^ (unsigned)v[i]) * 16777619u;
	return h % NBUCKETS;
}

/* Row-major matrix of rows × cols, stored transposed when t. */
static void matrix_md(dnnl_memory_desc_t *md, int rows, int cols, int ld, int t,
		      dnnl_data_type_t dt)
{
	dnnl_dims_t dims = {rows, cols};
	dnnl_dims_t strides = {t ? 1 : ld, t ? ld : 1};
	DNNL_CHECK("memory descriptor", dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides));
}

static gemm_prim *make_prim(const gemm_key *k)
{
	gemm_prim *p = calloc(1, sizeof *p);
	if (!p)
		die("primitive (out of memory)", dnnl_out_of_memory);
	p->key = *k;
	dnnl_data_type_t in = k->type == AIM_GEMM_BF16 ? dnnl_bf16 : dnnl_f32;
	matrix_md(&p->a_md, k->M, k->K, k->lda, k->ta, in);
	matrix_md(&p->b_md, k->K, k->N, k->ldb, k->tb, in);
	matrix_md(&p->c_md, k->M, k->N, k->ldc, 0, dnnl_f32);
	if (k->bias)
		matrix_md(&p->bias_md, 1, k->N, k->N, 0, dnnl_f32);
	dnnl_matmul_desc_t desc;
	DNNL_CHECK("matmul descriptor", dnnl_matmul_desc_init(&desc, &p->a_md, &p->b_md,
							       k->bias ? &p->bias_md : NULL,
							       &p->c_md));
	dnnl_primitive_attr_t attr;
	DNNL_CHECK("attributes", dnnl_primitive_attr_create(&attr));
	DNNL_CHECK("scratchpad mode",
		   dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
	if (k->post) {
		/* the sum onto C, then GELU (in that order, when both) */
		dnnl_post_ops_t po;
		DNNL_CHECK("post-ops", dnnl_post_ops_create(&po));
		if (k->post & AIM_GEMM_ACCUMULATE)
			DNNL_CHECK("sum post-op", dnnl_post_ops_append_sum(po, 1.0f));
		if (k->post & AIM_GEMM_GELU)
			DNNL_CHECK("GELU post-op", dnnl_post_ops_append_eltwise(
							   po, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f));
		DNNL_CHECK("post-ops", dnnl_primitive_attr_set_post_ops(attr, po));
		dnnl_post_ops_destroy(po);
	}
	dnnl_primitive_desc_t pd;
	DNNL_CHECK("matmul primitive descriptor",
		   dnnl_primitive_desc_create(&pd, &desc, attr, g_engine, NULL));
	dnnl_primitive_attr_destroy(attr);
	p->scratch_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
	p->scratch_bytes = dnnl_memory_desc_get_size(&p->scratch_md);
	DNNL_CHECK("matmul primitive", dnnl_primitive_create(&p->prim, pd));
	dnnl_primitive_desc_destroy(pd);
	return p;
}

static gemm_prim *find_prim(const gemm_key *k)
{
	pthread_once(&g_once, make_engine);
	unsigned h = key_hash(k);
	pthread_mutex_lock(&g_lock);
	gemm_prim *p = g_table[h];
	while (p && memcmp(&p->key, k, sizeof *k))
		p = p->next;
	if (!p) {
		/* Made under the lock: two threads meeting a new shape at once
		 * make it once. */
		p = make_prim(k);
		p->next = g_table[h];
		g_table[h] = p;
	}
	pthread_mutex_unlock(&g_lock);
	return p;
}

static dnnl_memory_t wrap(const dnnl_memory_desc_t *md, const void *ptr)
{
	dnnl_memory_t m;
	DNNL_CHECK("memory", dnnl_memory_create(&m, md, g_engine, (void *)ptr));
	return m;
}

void aim_dnnl_gemm(aim_gemm_type type, int ta, int tb, int M, int N, int K, const void *A,
		   int lda, const void *B, int ldb, const float *bias, int post, float *C,
		   int ldc)
{
	gemm_key k;
	memset(&k, 0, sizeof k);
	k.type = type;
	k.ta = !!ta;
	k.tb = !!tb;
	k.M = M;
	k.N = N;
	k.K = K;
	k.lda = lda;
	k.ldb = ldb;
	k.ldc = ldc;
	k.bias = bias != NULL;
	k.post = post & (AIM_GEMM_ACCUMULATE | AIM_GEMM_GELU);
	k.nested = omp_in_parallel();
	gemm_prim *p = find_prim(&k);
	thread_ctx *c = this_thread();
	dnnl_exec_arg_t args[5];
	int n = 0;
	args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, wrap(&p->a_md, A)};
	args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, wrap(&p->b_md, B)};
	args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DST, wrap(&p->c_md, C)};
	if (bias)
		args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, wrap(&p->bias_md, bias)};
	if (p->scratch_bytes)
		args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD,
					      wrap(&p->scratch_md,
						   thread_scratch(c, p->scratch_bytes))};
	DNNL_CHECK("matmul", dnnl_primitive_execute(p->prim, c->stream, n, args));
	DNNL_CHECK("stream wait", dnnl_stream_wait(c->stream));
	for (int i = 0; i < n; i++)
		dnnl_memory_destroy(args[i].memory);
}

int aim_dnnl_available(void) { return 1; }

const char *aim_dnnl_version(void)
{
	static char v[32];
	const dnnl_version_t *d = dnnl_version();
	snprintf(v, sizeof v, "oneDNN %d.%d.%d", d->major, d->minor, d->patch);
	return v;
}

const char *aim_dnnl_isa(void)
{
	switch (dnnl_get_effective_cpu_isa()) {
	case dnnl_cpu_isa_sse41: return "sse41";
	case dnnl_cpu_isa_avx: return "avx";
	case dnnl_cpu_isa_avx2: return "avx2";
	case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
	case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
	case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
	case dnnl_cpu_isa_avx512_core: return "avx512_core";
	case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
	case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
	case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
	default: return "all";
	}
}

int aim_dnnl_native_bf16(void)
{
	/* The ISA values are nested bit sets: each includes the ones below. */
	unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
	return (isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) ==
	       (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}

/* The implementation oneDNN chooses for a representative bf16 product
 * (the trunk's qkv at 512 tokens, dim 384). */
static char g_kernel[64];
static pthread_once_t g_kernel_once = PTHREAD_ONCE_INIT;

static void query_kernel(void)
{
	dnnl_memory_desc_t a, b, c;
	matrix_md(&a, 512, 384, 384, 0, dnnl_bf16);
	matrix_md(&b, 384, 1152, 384, 1, dnnl_bf16);
	matrix_md(&c, 512, 1152, 1152, 0, dnnl_f32);
	dnnl_matmul_desc_t desc;
	dnnl_primitive_desc_t pd;
	if (dnnl_matmul_desc_init(&desc, &a, &b, NULL, &c) != dnnl_success ||
	    dnnl_primitive_desc_create(&pd, &desc, NULL, g_engine, NULL) != dnnl_success)
		return;
	const char *impl = NULL;
	if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
	    impl)
		snprintf(g_kernel, sizeof g_kernel, "%s", impl);
	dnnl_primitive_desc_destroy(pd);
}

const char *aim_dnnl_bf16_kernel(void)
{
	pthread_once(&g_once, make_engine);
	pthread_once(&g_kernel_once, query_kernel);
	return g_kernel[0] ? g_kernel : NULL;
}

#else /* no oneDNN */

int aim_dnnl_available(void) { return 0; }
const char *aim_dnnl_version(void) { return NULL; }
const char *aim_dnnl_isa(void) { return NULL; }
int aim_dnnl_native_bf16(void) { return 0; }
const char *aim_dnnl_bf16_kernel(void) { return NULL; }

void aim_dnnl_gemm(aim_gemm_type type, int ta, int tb, int M, int N, int K, const void *A,
		   int lda, const void *B, int ldb, const float *bias, int post, float *C,
		   int ldc)
{
	(void)type, (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B;
	(void)ldb, (void)bias, (void)post, (void)C, (void)ldc;
	fprintf(stderr, "aim: oneDNN GEMM called in a build without oneDNN\n");
	abort();
}
#endif
