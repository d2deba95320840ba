/* PyTorch checkpoint loading.
 *
 *   test_pth [DIR]
 *
 * DIR holds checkpoints written by torch and what they contain
 * (tests/ref/make_pth_fixtures.py; manifest.txt describes the cases). With
 * no argument the small set committed under tests/data/pth is used, so the
 * test runs where torch is not installed; tests/ref/test_pth_torch.sh runs
 * the full set generated at test time. Independently of DIR, hand-built
 * pickles check the restricted reader's refusals and limits, and every
 * truncation and byte flip of a valid pickle must fail cleanly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "err.h"
#include "pickle.h"
#include "pth.h"
#include "record.h"

/* ---- cases from a fixture directory ------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf) {
		buf[n] = 0;
		*len = (size_t)n;
	}
	return buf;
}

static char *join(const char *dir, const char *file)
{
	char *s;
	if (asprintf(&s, "%s/%s", dir, file) < 0) {
		perror("asprintf");
		exit(1);
	}
	return s;
}

/* CASE.expect: name TAB dtype TAB d0,d1,.. TAB offset TAB nbytes, per line. */
static void check_load(const char *dir, const char *pth, const char *expect)
{
	char *path = join(dir, pth), *epath = join(dir, expect), *bpath = join(dir, expect);
	strcpy(bpath + strlen(bpath) - strlen("expect"), "bin"); /* CASE.expect -> CASE.bin */
	size_t elen = 0, blen = 0;
	char *etext = slurp(epath, &elen), *blob = slurp(bpath, &blen);
	CHECK_MSG(etext && blob, "cannot read %s or %s", epath, bpath);
	aim_record r;
	aim_record_init(&r);
	int rc = aim_pth_load(path, &r);
	CHECK_MSG(rc == 0, "%s: %s", path, aim_errmsg());
	int i = 0;
	for (char *line = etext ? strtok(etext, "\n") : NULL; line && rc == 0;
	     line = strtok(NULL, "\n"), i++) {
		char name[512], dtype[16], shape[256];
		unsigned long long off, nbytes;
		if (sscanf(line, "%511[^\t]\t%15[^\t]\t%255[^\t]\t%llu\t%llu", name, dtype, shape, &off,
			   &nbytes) != 5) {
			shape[0] = 0; /* a 0-dim tensor has an empty shape field */
			CHECK_MSG(sscanf(line, "%511[^\t]\t%15[^\t]\t\t%llu\t%llu", name, dtype, &off,
					 &nbytes) == 4, "bad line in %s: %s", epath, line);
		}
		CHECK_MSG(i < r.n, "%s: only %d tensors, expected more (%s)", path, r.n, name);
		if (i >= r.n)
			break;
		aim_tensor *t = &r.t[i];
		CHECK_MSG(!strcmp(t->name, name), "%s: tensor %d is '%s', expected '%s'", path, i,
			  t->name, name);
		CHECK_MSG(!strcmp(aim_dtype_name(t->dtype), dtype), "%s: %s: dtype %s, expected %s",
			  path, name, aim_dtype_name(t->dtype), dtype);
		char got[256];
		aim_shape_str(t->ndim, t->shape, got, sizeof got);
		char want[260];
		snprintf(want, sizeof want, "[%s]", shape);
		for (char *c = want; *c; c++) /* "2,3" -> "[2, 3]" like aim_shape_str */
			if (*c == ',') {
				memmove(c + 2, c + 1, strlen(c + 1) + 1);
				c[1] = ' ';
			}
		CHECK_MSG(!strcmp(got, want), "%s: %s: shape %s, expected %s", path, name, got, want);
		CHECK_MSG(t->nbytes == nbytes && off + nbytes <= blen &&
				  !memcmp(t->data, blob + off, nbytes),
			  "%s: %s: data differs from torch's (%zu bytes, expected %llu)", path, name,
			  t->nbytes, nbytes);
	}
	CHECK_MSG(rc != 0 || i == r.n, "%s: %d tensors, expected %d", path, r.n, i);
	aim_record_free(&r);
	free(etext);
	free(blob);
	free(path);
	free(epath);
	free(bpath);
}

static void check_fail(const char *dir, const char *pth, const char *text)
{
	char *path = join(dir, pth);
	aim_record r;
	aim_record_init(&r);
	int rc = aim_pth_load(path, &r);
	CHECK_MSG(rc == AIM_ERR, "%s: loaded, expected an error with '%s'", path, text);
	if (rc) {
		CHECK_MSG(strstr(aim_errmsg(), text), "%s: message '%s' lacks '%s'", path, aim_errmsg(),
			  text);
		CHECK_MSG(!strncmp(aim_errmsg(), path, strlen(path)), "message '%s' does not name %s",
			  aim_errmsg(), path);
	}
	CHECK_MSG(r.n == 0, "%s: failed load left %d tensors", path, r.n);
	aim_record_free(&r);
	free(path);
}

static int run_manifest(const char *dir)
{
	size_t len;
	char *mpath = join(dir, "manifest.txt");
	char *text = slurp(mpath, &len);
	free(mpath);
	CHECK_MSG(text, "cannot read %s/manifest.txt", dir);
	if (!text)
		return 0;
	int cases = 0;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char kind[8], pth[256];
		int used = 0;
		if (sscanf(line, "%7s %255s %n", kind, pth, &used) < 2)
			continue;
		if (!strcmp(kind, "load"))
			check_load(dir, pth, line + used);
		else if (!strcmp(kind, "fail"))
			check_fail(dir, pth, line + used);
		else
			CHECK_MSG(0, "bad manifest line: %s", line);
		cases++;
	}
	free(text);
	return cases;
}

/* Loading appends; a clash with a tensor already in the record fails and
 * leaves the record as it was. */
static void check_append(const char *dir)
{
	char *path = join(dir, "dtypes.pth");
	aim_record r;
	aim_record_init(&r);
	int64_t shape[1] = {1};
	aim_record_add(&r, "other", AIM_F32, 1, shape, NULL);
	CHECK(aim_pth_load(path, &r) == 0 && r.n > 1 && !strcmp(r.t[0].name, "other"));
	int n = r.n;
	CHECK(aim_pth_load(path, &r) == AIM_ERR && r.n == n);
	CHECK(strstr(aim_errmsg(), "appears twice"));
	CHECK(aim_pth_sniff(path) == 1);
	aim_record_free(&r);
	free(path);
	path = join(dir, "manifest.txt");
	CHECK(aim_pth_sniff(path) == 0);
	free(path);
	CHECK(aim_pth_sniff("/nonexistent/x.pth") == 0);
}

/* ---- hand-built pickles -------------------------------------------------- */

typedef struct {
	unsigned char b[1 << 16];
	size_t n;
} pk;

static void put(pk *p, const void *s, size_t n)
{
	memcpy(p->b + p->n, s, n);
	p->n += n;
}
static void op(pk *p, unsigned char c) { p->b[p->n++] = c; }
static void ustr(pk *p, const char *s)
{
	uint32_t n = (uint32_t)strlen(s);
	op(p, 'X');
	put(p, &n, 4);
	put(p, s, n);
}
static void glob(pk *p, const char *mod, const char *name)
{
	op(p, 'c');
	put(p, mod, strlen(mod));
	op(p, '\n');
	put(p, name, strlen(name));
	op(p, '\n');
}
static void int1(pk *p, unsigned v)
{
	op(p, 'K');
	op(p, (unsigned char)v);
}

/* _rebuild_tensor_v2(storage(FloatStorage, key, numel), offset, (n,), (1,), False, OrderedDict()) */
static void tensor1d(pk *p, const char *key, unsigned numel, unsigned offset, unsigned n)
{
	glob(p, "torch._utils", "_rebuild_tensor_v2");
	op(p, '(');
	op(p, '(');
	ustr(p, "storage");
	glob(p, "torch", "FloatStorage");
	ustr(p, key);
	ustr(p, "cpu");
	int1(p, numel);
	op(p, 't');
	op(p, 'Q');
	int1(p, offset);
	int1(p, n);
	op(p, 0x85);
	int1(p, 1);
	op(p, 0x85);
	op(p, 0x89);
	glob(p, "collections", "OrderedDict");
	op(p, ')');
	op(p, 'R');
	op(p, 't');
	op(p, 'R');
}

static void valid_pickle(pk *p)
{
	p->n = 0;
	put(p, "\x80\x02", 2);
	op(p, '}');
	op(p, 'q');
	op(p, 0);
	op(p, '(');
	ustr(p, "a.weight");
	tensor1d(p, "0", 6, 2, 4);
	ustr(p, "b");
	op(p, 'h');
	op(p, 0); /* the dict itself: a cycle, skipped as it holds no new names... */
	op(p, 'u');
	op(p, '.');
}

static int parse(const pk *p, aim_pickle_tensors *ts)
{
	return aim_pickle_parse_state_dict(p->b, p->n, "mem", ts);
}

static void expect_error(const pk *p, const char *text)
{
	aim_pickle_tensors ts;
	int rc = parse(p, &ts);
	CHECK_MSG(rc == AIM_ERR && strstr(aim_errmsg(), text), "expected '%s', got rc %d '%s'", text,
		  rc, rc ? aim_errmsg() : "");
	CHECK(ts.n == 0 && ts.t == NULL);
}

/* Graphs that would make the walk explode stop at whichever limit comes
 * first: the visit budget or the memory budget. */
static void expect_bounded(const pk *p)
{
	aim_pickle_tensors ts;
	int rc = parse(p, &ts);
	CHECK_MSG(rc == AIM_ERR && (strstr(aim_errmsg(), "too deep or too large") ||
				    strstr(aim_errmsg(), "bytes of memory")),
		  "expected a limit, got rc %d '%s'", rc, rc ? aim_errmsg() : "");
	CHECK(ts.n == 0 && ts.t == NULL);
}

static void check_pickles(void)
{
	pk *p = calloc(1, sizeof *p);
	aim_pickle_tensors ts;

	/* A dict holding a tensor and itself: the cycle is walked until the
	 * depth limit, which is an error, never a hang. */
	valid_pickle(p);
	expect_bounded(p);

	/* The same without the cycle parses to one tensor. */
	p->n = 0;
	put(p, "\x80\x02", 2);
	op(p, '}');
	op(p, '(');
	ustr(p, "a.weight");
	tensor1d(p, "0", 6, 2, 4);
	op(p, 'u');
	op(p, '.');
	CHECK(parse(p, &ts) == 0 && ts.n == 1);
	if (ts.n == 1) {
		CHECK(!strcmp(ts.t[0].name, "a.weight") && !strcmp(ts.t[0].storage_key, "0"));
		CHECK(ts.t[0].dtype == AIM_F32 && ts.t[0].ndim == 1 && ts.t[0].shape[0] == 4);
		CHECK(ts.t[0].offset == 2 && ts.t[0].extent == 4 && ts.t[0].storage_numel == 6);
	}
	aim_pickle_tensors_free(&ts);

	/* Every truncation and every single-byte change must fail or succeed
	 * cleanly (the sanitizer build watches the memory accesses). */
	pk *q = calloc(1, sizeof *q);
	int ok = 0;
	for (size_t cut = 0; cut < p->n; cut++) {
		memcpy(q->b, p->b, cut);
		q->n = cut;
		CHECK(parse(q, &ts) == AIM_ERR);
	}
	for (size_t at = 0; at < p->n; at++)
		for (int v = 0; v < 256; v += 7) {
			memcpy(q, p, sizeof *q);
			q->b[at] = (unsigned char)v;
			if (parse(q, &ts) == 0) {
				ok++;
				aim_pickle_tensors_free(&ts);
			}
		}
	CHECK(ok > 0); /* some flips (e.g. in the name) still parse */
	free(q);

	/* A global outside the whitelist: refused by name, before any call. */
	p->n = 0;
	put(p, "\x80\x02", 2);
	glob(p, "os", "system");
	ustr(p, "echo hi");
	op(p, 0x85);
	op(p, 'R');
	op(p, '.');
	expect_error(p, "mem: refuses pickle global 'os.system' (loading a model never executes code)");

	/* unprintable bytes in the refused name are not echoed */
	p->n = 0;
	glob(p, "x\033[2J", "y");
	op(p, '.');
	expect_error(p, "refuses pickle global 'x?[2J.y'");

	/* a storage class outside the table is named as such */
	p->n = 0;
	glob(p, "torch", "Float8_e4m3fnStorage");
	op(p, '.');
	expect_error(p, "storage class 'torch.Float8_e4m3fnStorage' is not supported");

	/* memo, stack and integer limits */
	p->n = 0;
	op(p, 'h');
	op(p, 3);
	expect_error(p, "memo index 3 was never stored");
	p->n = 0;
	op(p, 's');
	expect_error(p, "stack underflow");
	p->n = 0;
	op(p, ']');
	op(p, '(');
	op(p, 'a'); /* items below a MARK are out of reach */
	expect_error(p, "stack underflow");
	p->n = 0;
	put(p, "\x8a\x09", 2);
	put(p, "123456789", 9);
	expect_error(p, "too large");
	p->n = 0;
	for (int i = 0; i < 5000; i++)
		op(p, '(');
	expect_error(p, "MARKs nested deeper");
	p->n = 0;
	put(p, "X\xff\xff\xff\x7f", 5);
	expect_error(p, "runs past the end");
	p->n = 0;
	op(p, 'r');
	put(p, "\xff\xff\xff\xff", 4);
	expect_error(p, "stack underflow"); /* nothing on the stack to memoize */
	p->n = 0;
	op(p, 'N');
	op(p, 'r');
	put(p, "\xff\xff\xff\xff", 4);
	expect_error(p, "memo index 4294967295 too large");
	p->n = 0;
	op(p, 0xfe);
	expect_error(p, "unsupported pickle opcode 0xfe");
	p->n = 0;
	op(p, '}');
	op(p, 'N');
	op(p, 'b');
	expect_error(p, "BUILD on a dict");

	/* A graph that doubles at each level: [[t, t], [t, t]] ... 40 levels
	 * would name 2^40 tensors; the visit budget stops it quickly. */
	p->n = 0;
	put(p, "\x80\x02", 2);
	op(p, '}');
	ustr(p, "x");
	tensor1d(p, "0", 1, 0, 1);
	for (int i = 0; i < 40; i++) {
		op(p, '2');
		op(p, 0x86);
	}
	op(p, 's');
	op(p, '.');
	expect_bounded(p);

	/* duplicate names after flattening */
	p->n = 0;
	put(p, "\x80\x02", 2);
	op(p, '}');
	op(p, '(');
	ustr(p, "a.b");
	tensor1d(p, "0", 1, 0, 1);
	ustr(p, "a");
	op(p, '}');
	op(p, '(');
	ustr(p, "b");
	tensor1d(p, "0", 1, 0, 1);
	op(p, 'u');
	ustr(p, "other");
	tensor1d(p, "0", 1, 0, 1);
	op(p, 'u');
	op(p, '.');
	expect_error(p, "two tensors are named 'a.b'");
	free(p);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : NULL;
	char def[1024];
	if (!dir) {
		const char *top = getenv("AIM_TOP");
		snprintf(def, sizeof def, "%s/tests/data/pth", top ? top : ".");
		dir = def;
	}
	int cases = run_manifest(dir);
	fprintf(stderr, "%s: %d checkpoint cases\n", dir, cases);
	CHECK(cases > 0);
	check_append(dir);
	check_pickles();
	return check_summary("test_pth");
}
