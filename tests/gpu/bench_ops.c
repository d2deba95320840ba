/* GPU benchmarks of the backend ops, side by side with the CPU backend on
 * the same inputs, at the shapes of a ViT-S/14 batch of 16 and an
 * AIM-600M batch of 8 (224 px, 256 patches): milliseconds per call on
 * each, the ratio, and the GPU's GFLOP/s for GEMMs and attention.
 *   bench_ops [--quick] [--self]           the table (quick: ViT-S only;
 *       self: CPU on both sides, a check of the harness without a GPU)
 *   bench_ops --compare-streams A B TOL    compare two tensor streams
 *       (float tensors, same names and shapes; max |a−b| / max |b| per
 *       tensor <= TOL): used by run.sh for aim-extract cpu vs cuda.
 * Exits 77 without a GPU (benchmarks), 1 on a failed comparison. */
#include <math.h>
#include <time.h>

#include "gpu_common.h"
#include "record.h"
#include "stream.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef void (*bench_fn)(const aim_backend *be, void *ctx);

/* Best of reps calls (after one warm-up), in milliseconds. */
static double time_ms(const aim_backend *be, bench_fn f, void *ctx, int reps)
{
	f(be, ctx);
	be->synchronize();
	double best = INFINITY;
	for (int r = 0; r < reps; r++) {
		double t0 = now();
		f(be, ctx);
		be->synchronize();
		double t = (now() - t0) * 1e3;
		best = t < best ? t : best;
	}
	return best;
}

/* The buffers of one shape, on one backend. */
typedef struct {
	int B, K, D, Hm, H, hd;
	aim_mask_kind mask;
	int *prefix;
	float *x, *w1, *b1, *h, *dh, *dx, *dw1, *db1, *lnw, *lnb, *mean, *rstd;
	float *qkv, *att, *lse, *datt, *dqkv;
} shape_bufs;

static float *buf(const aim_backend *be, size_t n, float scale)
{
	float *host = rand_host(n, scale);
	float *p = be->alloc(n * sizeof(float));
	if (!p) {
		fprintf(stderr, "bench_ops: out of %s memory\n", be->name);
		exit(1);
	}
	be->upload(p, host, n * sizeof(float));
	free(host);
	return p;
}

static void bufs_init(shape_bufs *s, const aim_backend *be)
{
	size_t N = (size_t)s->B * s->K, D = s->D, Hm = s->Hm;
	s->x = buf(be, N * D, 1);
	s->w1 = buf(be, Hm * D, 0.05f);
	s->b1 = buf(be, Hm, 0.1f);
	s->h = buf(be, N * Hm, 1);
	s->dh = buf(be, N * Hm, 1);
	s->dx = buf(be, N * D, 1);
	s->dw1 = buf(be, Hm * D, 1);
	s->db1 = buf(be, Hm, 1);
	s->lnw = buf(be, D, 1);
	s->lnb = buf(be, D, 1);
	s->mean = buf(be, N, 0);
	s->rstd = buf(be, N, 0);
	s->qkv = buf(be, N * 3 * D, 1);
	s->att = buf(be, N * D, 0);
	s->lse = buf(be, (size_t)s->B * s->H * s->K, 0);
	s->datt = buf(be, N * D, 1);
	s->dqkv = buf(be, N * 3 * D, 0);
	be->layernorm_fwd(s->att, s->mean, s->rstd, s->x, s->lnw, s->lnb, (int)N, (int)D, 1e-6f);
}

static void bufs_free(shape_bufs *s, const aim_backend *be)
{
	float *p[] = {s->x, s->w1, s->b1, s->h, s->dh, s->dx, s->dw1, s->db1, s->lnw, s->lnb,
		      s->mean, s->rstd, s->qkv, s->att, s->lse, s->datt, s->dqkv};
	for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
		be->free(p[i]);
}

#define N_(s) ((s)->B * (s)->K)
static void b_fc1_fwd(const aim_backend *be, void *c)
{
	shape_bufs *s = c;
	be->linear_fwd(s->h, s->x, s->w1, s->b1, N_(s), s->D, s->Hm);
}
static void b_fc1_bwd(const aim_backend *be, void *c)
{
	shape_bufs *s = c;
	be->linear_bwd(s->dx, s->dw1, s->db1, s->dh, s->x, s->w1, N_(s), s->D, s->Hm);
}
static void b_ln_fwd(const aim_backend *be, void *c)
{
	shape_bufs *s = c;
	be->layernorm_fwd(s->att, s->mean, s->rstd, s->x, s->lnw, s->lnb, N_(s), s->D, 1e-6f);
}
static void b_ln_bwd(const aim_backend *be, void *c)
{
	shape_bufs *s = c;
	be->layernorm_bwd(s->dx, s->dw1, s->db1, s->datt, s->x, s->lnw, s->mean, s->rstd, N_(s),
			  s->D);
}
static void b_gelu_fwd(const aim_backend *be, void *c)
{
	shape_bufs *s = c;
	be->gelu_fwd(s->dh, s->h, (size_t)N_(s) * s->Hm);
}
static void b_gelu_bwd(const aim_backend *be, void *c)
{
	shape_bufs *s = c;
	be->gelu_bwd(s->dh, s->h, s->h, (size_t)N_(s) * s->Hm);
}
static void b_att_fwd(const aim_backend *be, void *c)
{
	shape_bufs *s = c;
	be->attention_fwd(s->att, s->lse, s->qkv, s->B, s->K, s->H, s->hd, s->mask, s->prefix);
}
static void b_att_bwd(const aim_backend *be, void *c)
{
	shape_bufs *s = c;
	be->attention_bwd(s->dqkv, s->datt, s->qkv, s->att, s->lse, s->B, s->K, s->H, s->hd,
			  s->mask, s->prefix);
}
static void b_softmax(const aim_backend *be, void *c)
{
	shape_bufs *s = c;
	be->softmax_fwd(s->dh, s->h, N_(s), s->Hm);
}

static void row(const char *op, const char *shape, double cpu_ms, double gpu_ms, double flops)
{
	printf("%-22s %-26s cpu %9.3f ms  gpu %8.3f ms  %7.1fx", op, shape, cpu_ms, gpu_ms,
	       cpu_ms / gpu_ms);
	if (flops > 0)
		printf("  gpu %7.0f GFLOP/s", flops / (gpu_ms * 1e-3) / 1e9);
	printf("\n");
}

static void bench_shape(const char *name, int B, int D, int H)
{
	shape_bufs c = {.B = B, .K = 256, .D = D, .Hm = 4 * D, .H = H, .hd = D / H};
	shape_bufs g = c;
	bufs_init(&c, cpu);
	bufs_init(&g, gpu);
	char shape[64];
	const double N = (double)B * c.K;
	snprintf(shape, sizeof shape, "%s N=%.0f D=%d", name, N, D);
	const int creps = 3, greps = 10;

	const char *precs[] = {"fp32", "tf32", "bf16"};
	double cf = time_ms(cpu, b_fc1_fwd, &c, creps), cb = time_ms(cpu, b_fc1_bwd, &c, creps);
	for (int p = 0; p < 3; p++) {
		if (ext.set_precision ? ext.set_precision(precs[p]) < 0 : p > 0)
			continue;
		char op[48];
		snprintf(op, sizeof op, "linear_fwd fc1 %s", precs[p]);
		row(op, shape, cf, time_ms(gpu, b_fc1_fwd, &g, greps), 2 * N * D * 4.0 * D);
		snprintf(op, sizeof op, "linear_bwd fc1 %s", precs[p]);
		row(op, shape, cb, time_ms(gpu, b_fc1_bwd, &g, greps), 4 * N * D * 4.0 * D);
	}
	if (ext.set_precision)
		ext.set_precision("fp32");
	const struct {
		const char *op;
		bench_fn f;
	} simple[] = {
		{"layernorm_fwd", b_ln_fwd},           {"layernorm_bwd", b_ln_bwd},
		{"gelu_fwd (N x 4D)", b_gelu_fwd},     {"gelu_bwd (N x 4D)", b_gelu_bwd},
		{"softmax_fwd (N x 4D)", b_softmax},
	};
	for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
		row(simple[i].op, shape, time_ms(cpu, simple[i].f, &c, creps),
		    time_ms(gpu, simple[i].f, &g, greps), 0);

	int *prefix = xmalloc(sizeof(int) * B);
	for (int b = 0; b < B; b++)
		prefix[b] = 1 + (b * 53) % 255;
	const aim_mask_kind masks[] = {AIM_MASK_NONE, AIM_MASK_PREFIX};
	for (int m = 0; m < 2; m++) {
		c.mask = g.mask = masks[m];
		c.prefix = g.prefix = masks[m] == AIM_MASK_PREFIX ? prefix : NULL;
		/* useful work: all K×K scores bidirectional, about half with a prefix mask */
		double f = 4.0 * B * H * (double)c.K * c.K * c.hd * (m ? 0.5 : 1.0);
		char op[48], sh[64];
		snprintf(sh, sizeof sh, "%s B=%d H=%d hd=%d", name, B, H, c.hd);
		snprintf(op, sizeof op, "attention_fwd %s", m ? "prefix" : "none");
		row(op, sh, time_ms(cpu, b_att_fwd, &c, creps), time_ms(gpu, b_att_fwd, &g, greps), f);
		snprintf(op, sizeof op, "attention_bwd %s", m ? "prefix" : "none");
		row(op, sh, time_ms(cpu, b_att_bwd, &c, creps), time_ms(gpu, b_att_bwd, &g, greps), 2.5 * f);
	}
	free(prefix);
	bufs_free(&c, cpu);
	bufs_free(&g, gpu);
}

/* ---- stream comparison --------------------------------------------------- */

static int is_float(aim_dtype t)
{
	return t == AIM_F32 || t == AIM_F16 || t == AIM_BF16;
}

static int compare_streams(const char *a, const char *b, double tol)
{
	aim_reader *ra = aim_reader_open(&a, 1), *rb = aim_reader_open(&b, 1);
	if (!ra || !rb) {
		fprintf(stderr, "compare: %s\n", aim_errmsg());
		return 1;
	}
	aim_record x, y;
	aim_record_init(&x);
	aim_record_init(&y);
	int bad = 0, records = 0;
	double worst = 0;
	for (;;) {
		int na = aim_reader_next(ra, &x), nb = aim_reader_next(rb, &y);
		if (na < 0 || nb < 0) {
			fprintf(stderr, "compare: %s\n", aim_errmsg());
			bad = 1;
			break;
		}
		if (na != nb) {
			fprintf(stderr, "compare: the streams have different record counts\n");
			bad = 1;
			break;
		}
		if (!na)
			break;
		records++;
		for (int i = 0; i < x.n; i++) {
			const aim_tensor *t = &x.t[i], *u = aim_record_find(&y, t->name);
			if (!is_float(t->dtype))
				continue;
			int64_t n = aim_tensor_numel(t);
			if (!u || aim_tensor_numel(u) != n) {
				fprintf(stderr, "compare: record %d: %s differs in shape\n", records, t->name);
				bad = 1;
				continue;
			}
			float *p = xmalloc(n * sizeof(float)), *q = xmalloc(n * sizeof(float));
			aim_to_f32(p, t);
			aim_to_f32(q, u);
			double ref = 1e-30, err = 0;
			for (int64_t j = 0; j < n; j++) {
				ref = fmax(ref, fabs(p[j]));
				double e = fabs((double)p[j] - q[j]);
				err = e <= err ? err : (isnan(e) ? INFINITY : e);
			}
			worst = fmax(worst, err / ref);
			if (!(err / ref <= tol)) {
				fprintf(stderr, "compare: record %d: %s: rel err %.3g > %.0e\n", records,
					t->name, err / ref, tol);
				bad = 1;
			}
			free(p);
			free(q);
		}
	}
	printf("compare %s %s: %d records, worst rel err %.2e (tol %.0e): %s\n", a, b, records,
	       worst, tol, bad ? "FAIL" : "ok");
	aim_record_free(&x);
	aim_record_free(&y);
	aim_reader_close(ra);
	aim_reader_close(rb);
	return bad || !records;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "--compare-streams"))
		return compare_streams(argv[2], argv[3], atof(argv[4]));
	int quick = 0, self = 0;
	for (int i = 1; i < argc; i++) {
		quick |= !strcmp(argv[i], "--quick");
		self |= !strcmp(argv[i], "--self");
	}
	if (self) { /* the harness itself, CPU on both sides */
		cpu = gpu = aim_backend_cpu();
	} else {
		int rc = gpu_open("bench_ops");
		if (rc)
			return rc;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("bench_ops: %s\n", ext.describe ? ext.describe() : gpu->name);
	printf("bench_ops: best of 3 CPU calls, best of 10 GPU calls (after one warm-up each)\n");
	bench_shape("ViT-S/14 x16", 16, 384, 6);
	if (!quick)
		bench_shape("AIM-600M x8", 8, 1536, 12);
	return 0;
}
