/* The tensor stream and records: round trips, concatenation, raw input,
 * truncation, corruption and every kind of malformed header. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "err.h"
#include "record.h"
#include "safetensors.h"
#include "stream.h"

static char dir[256];

static void path(char *buf, const char *name) { snprintf(buf, 512, "%s/%s", dir, name); }

static void make_record(aim_record *r, int b, int seed)
{
	aim_record_init(r);
	int64_t s3[3] = {b, 2, 3}, s1[1] = {b};
	float f[64];
	uint16_t h[64];
	uint8_t u[64];
	int64_t l[64];
	int32_t i32[64];
	for (int i = 0; i < 64; i++) {
		f[i] = (float)(i * 0.25 - 3 + seed);
		h[i] = aim_f32_to_f16(f[i]);
		u[i] = (uint8_t)(i + seed);
		l[i] = (int64_t)i * 1000000007LL - seed;
		i32[i] = i - 30;
	}
	aim_record_add(r, "patches", AIM_U8, 3, s3, u);
	aim_record_add(r, "features", AIM_F32, 3, s3, f);
	aim_record_add(r, "half", AIM_F16, 3, s3, h);
	aim_record_add(r, "brain", AIM_BF16, 3, s3, h);
	aim_record_add(r, "label", AIM_I64, 1, s1, l);
	aim_record_add(r, "small", AIM_I32, 1, s1, i32);
	char names[256] = "[";
	for (int i = 0; i < b; i++)
		snprintf(names + strlen(names), sizeof names - strlen(names), "%s\"s%d_%d\"", i ? "," : "", seed, i);
	strcat(names, "]");
	aim_record_set_meta(r, "aim.names", names);
	aim_record_set_meta(r, "aim.classes", "[\"a\",\"b\"]");
}

static int same_record(const aim_record *a, const aim_record *b)
{
	if (a->n != b->n || a->nmeta != b->nmeta)
		return 0;
	for (int i = 0; i < a->n; i++) {
		aim_tensor *t = aim_record_find(b, a->t[i].name);
		if (!t || t->dtype != a->t[i].dtype || t->ndim != a->t[i].ndim || t->nbytes != a->t[i].nbytes ||
		    memcmp(t->shape, a->t[i].shape, (size_t)t->ndim * sizeof *t->shape) ||
		    memcmp(t->data, a->t[i].data, t->nbytes))
			return 0;
	}
	for (int i = 0; i < a->nmeta; i++) {
		const char *v = aim_record_get_meta(b, a->meta[i].key);
		if (!v || strcmp(v, a->meta[i].value))
			return 0;
	}
	return 1;
}

static void write_stream(const char *p, int level, int nrec)
{
	aim_writer *w = aim_writer_open(p, level, 0);
	CHECK(w != NULL);
	for (int k = 0; k < nrec; k++) {
		aim_record r;
		make_record(&r, 2 + k % 3, k);
		CHECK(aim_writer_write(w, &r) == 0);
		aim_record_free(&r);
	}
	CHECK(aim_writer_close(w) == 0);
}

/* Read all; returns number of good records, *err = final status. */
static int read_all(const char *const *paths, int n, int *err)
{
	aim_reader *rd = aim_reader_open(paths, n);
	aim_record r;
	aim_record_init(&r);
	int count = 0, rc;
	while ((rc = aim_reader_next(rd, &r)) > 0) {
		aim_record want;
		make_record(&want, 2 + count % 3, count);
		CHECK_MSG(same_record(&r, &want), "record %d differs", count);
		aim_record_free(&want);
		count++;
	}
	*err = rc;
	aim_record_free(&r);
	aim_reader_close(rd);
	return count;
}

static void test_roundtrip(void)
{
	char p[512], q[512];
	int err;
	for (int level = 0; level <= 3; level += 3) {
		path(p, level ? "z.aimt" : "raw.aimt");
		write_stream(p, level, 5);
		const char *ps[] = {p};
		CHECK(read_all(ps, 1, &err) == 5 && err == 0);
	}
	/* Concatenated files: `cat a b` is the records of a then b. */
	path(p, "z.aimt");
	path(q, "cat.aimt");
	char cmd[1600];
	snprintf(cmd, sizeof cmd, "cat %s %s > %s", p, p, q);
	CHECK(system(cmd) == 0);
	aim_reader *rd;
	const char *ps[] = {q};
	rd = aim_reader_open(ps, 1);
	aim_record r;
	aim_record_init(&r);
	int n = 0;
	while (aim_reader_next(rd, &r) > 0)
		n++;
	CHECK(n == 10);
	aim_reader_close(rd);
	aim_record_free(&r);
}

static void corrupt_file(const char *src, const char *dst, long truncate_by, long flip_at)
{
	FILE *f = fopen(src, "rb");
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	unsigned char *b = malloc((size_t)n);
	CHECK(fread(b, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	if (flip_at >= 0)
		b[n - flip_at] ^= 0x5a;
	f = fopen(dst, "wb");
	fwrite(b, 1, (size_t)(n - truncate_by), f);
	fclose(f);
	free(b);
}

static void test_damage(void)
{
	char p[512], q[512];
	int err;
	path(p, "z.aimt");
	path(q, "trunc.aimt");
	corrupt_file(p, q, 7, -1);
	const char *ps[] = {q};
	CHECK(read_all(ps, 1, &err) == 4);
	CHECK(err == AIM_ERR && strstr(aim_errmsg(), "record 4"));
	CHECK(strstr(aim_errmsg(), "trunc.aimt") != NULL);

	/* Flip a byte inside the last frame's compressed payload. */
	corrupt_file(p, q, 0, 12);
	CHECK(read_all(ps, 1, &err) == 4 && err == AIM_ERR);
	fprintf(stderr, "corrupt: %s\n", aim_errmsg());

	path(p, "raw.aimt");
	corrupt_file(p, q, 3, -1);
	CHECK(read_all(ps, 1, &err) == 4 && err == AIM_ERR && strstr(aim_errmsg(), "truncated"));
}

/* Parse a hand-made record with the given header and data length. */
static int parse_raw(const char *json, size_t datalen)
{
	size_t hl = strlen(json), n = 8 + hl + datalen;
	unsigned char *b = calloc(1, n);
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
	memcpy(b + 8, json, hl);
	aim_record r;
	aim_record_init(&r);
	int rc = aim_record_parse(&r, b, n, 1, "x");
	aim_record_free(&r);
	return rc;
}

static void test_malformed(void)
{
	CHECK(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8) == 0);
	const char *bad[] = {
		"",                                                                     /* empty */
		"[1,2]",                                                                /* not an object */
		"{\"a\":",                                                              /* broken JSON */
		"{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}",     /* unknown dtype */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",     /* size mismatch */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",    /* negative dim */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}",     /* reversed */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}",    /* past the end */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		"\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",      /* overlap */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",     /* gap */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		"\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",      /* duplicate */
		"{\"__metadata__\":{\"k\":1}}",                                         /* non-string meta */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", /* overflow */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",    /* 9 dims */
		"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}",                         /* no dtype */
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int rc = parse_raw(bad[i], 8);
		CHECK_MSG(rc == AIM_ERR, "case %zu accepted", i);
		if (rc == AIM_ERR)
			fprintf(stderr, "  rejected %zu: %s\n", i, aim_errmsg());
	}
	/* Absurd header length in the first 8 bytes. */
	unsigned char b[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
	aim_record r;
	aim_record_init(&r);
	CHECK(aim_record_parse(&r, b, sizeof b, 0, "x") == AIM_ERR);
	aim_record_free(&r);
}

/* A U8 tensor of odd length first puts the F32 after it off alignment: the
 * parser must hand out an aligned copy with the same values. */
static void test_unaligned(void)
{
	const char *json = "{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
			   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[3,11]}}";
	size_t hl = strlen(json), n = 8 + hl + 11;
	unsigned char *b = calloc(1, n);
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
	memcpy(b + 8, json, hl);
	float v[2] = {1.5f, -2.25f};
	memcpy(b + 8 + hl + 3, v, 8);
	aim_record r;
	aim_record_init(&r);
	CHECK(aim_record_parse(&r, b, n, 1, "x") == 0);
	aim_tensor *t = aim_record_find(&r, "b");
	CHECK(t && (uintptr_t)t->data % 4 == 0);
	if (t) {
		float got[2];
		memcpy(got, t->data, 8);
		CHECK(got[0] == 1.5f && got[1] == -2.25f);
		CHECK(((float *)t->data)[1] == -2.25f);
	}
	int64_t none[1] = {0};
	(void)none;
	CHECK(aim_record_add(&r, "scalar", AIM_F32, 0, NULL, v) != NULL);
	aim_record_free(&r);
}

static void test_batcher(void)
{
	char p[512];
	path(p, "z.aimt"); /* batches 2,3,4,2,3 = 14 samples */
	const char *ps[] = {p};
	aim_reader *rd = aim_reader_open(ps, 1);
	aim_batcher *b = aim_batcher_new(rd, 4);
	aim_record r;
	aim_record_init(&r);
	int64_t sizes[8], n = 0;
	while (aim_batcher_next(b, &r) > 0 && n < 8) {
		sizes[n++] = r.t[0].shape[0];
		const char *names = aim_record_get_meta(&r, "aim.names");
		CHECK(names != NULL);
		if (n == 1) {
			CHECK(!strcmp(names, "[\"s0_0\",\"s0_1\",\"s1_0\",\"s1_1\"]"));
			/* Sample 2 of the batch is sample 0 of record 1 (seed 1). */
			aim_tensor *u = aim_record_find(&r, "patches");
			CHECK(((uint8_t *)u->data)[2 * 6] == 1);
		}
	}
	CHECK(n == 4 && sizes[0] == 4 && sizes[1] == 4 && sizes[2] == 4 && sizes[3] == 2);
	aim_record_free(&r);
	aim_batcher_free(b);
	aim_reader_close(rd);
}

static void test_safetensors_file(void)
{
	char p[512];
	path(p, "m.safetensors");
	aim_record r;
	make_record(&r, 3, 7);
	CHECK(aim_st_write(p, &r) == 0);
	aim_stfile f;
	CHECK(aim_st_open(&f, p) == 0);
	CHECK(same_record(&r, &f.rec));
	aim_st_close(&f);
	aim_record_free(&r);
	/* A file cut short is refused with its name in the message. */
	char q[512];
	path(q, "cut.safetensors");
	corrupt_file(p, q, 5, -1);
	CHECK(aim_st_open(&f, q) == AIM_ERR && strstr(aim_errmsg(), "cut.safetensors"));
	CHECK(aim_st_open(&f, "/nonexistent/x.safetensors") == AIM_ERR);
}

static void test_conversions(void)
{
	float vals[] = {0.f, -0.f, 1.f, -2.5f, 65504.f, 1e-7f, 6.1e-5f, 3.14159f, 1e9f, INFINITY, NAN};
	for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
		float h = aim_f16_to_f32(aim_f32_to_f16(vals[i]));
		float b = aim_bf16_to_f32(aim_f32_to_bf16(vals[i]));
		if (isnan(vals[i])) {
			CHECK(isnan(h) && isnan(b));
			continue;
		}
		if (isinf(vals[i])) {
			CHECK(h == vals[i] && b == vals[i]);
			continue;
		}
		if (fabsf(vals[i]) <= 65504.f)
			CHECK_MSG(fabsf(h - vals[i]) <= fabsf(vals[i]) * 1e-3f + 6e-8f, "f16 %g -> %g", vals[i], h);
		CHECK_MSG(fabsf(b - vals[i]) <= fabsf(vals[i]) * 8e-3f, "bf16 %g -> %g", vals[i], b);
	}
	CHECK(aim_f32_to_f16(1e9f) == 0x7c00);
	CHECK(aim_f32_to_f16(1.0f) == 0x3c00);
	CHECK(aim_f32_to_bf16(1.0f) == 0x3f80);
	/* round to nearest even: 1 + 2^-11 is halfway between two halves */
	CHECK(aim_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00);
	CHECK(aim_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02);
}

int main(void)
{
	snprintf(dir, sizeof dir, "%s/aim-test-stream-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		return 1;
	test_conversions();
	test_roundtrip();
	test_damage();
	test_malformed();
	test_unaligned();
	test_batcher();
	test_safetensors_file();
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd))
		return 1;
	return check_summary("test_stream");
}
