/* aim-retrieve: nearest neighbours of feature vectors in a memory bank.
 *
 * Prepare the bank (pool, normalise, or map an index file), then answer
 * the queries record by record as they arrive: exact top-k by inner
 * product, with the retrieval options (near-duplicate cut, diversity,
 * query dropout, self exclusion), written as TSV, as a result stream that
 * `--merge` combines across shards, as a k-NN vote or a contact sheet. */
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "fileio.h"
#include "manifest.h"
#include "retrieve.h"
#include "stream.h"

static const char usage[] =
	"Usage: aim-retrieve --bank BANK [options] [QUERIES...]\n"
	"       aim-retrieve --merge [options] SHARD_RESULTS...\n"
	"Nearest neighbours of query features in a bank of features (exact search).\n"
	"\n"
	"Bank:\n"
	"  --bank BANK          features stream(s) or an index file (repeatable, globs)\n"
	"  --pool mean|max|cls  pooling of per-patch features [B,K,D] (default mean)\n"
	"  --ip                 raw inner product (default: cosine, L2-normalised)\n"
	"  --save-index FILE    write the prepared bank as an index file; without\n"
	"                       QUERIES nothing else is done\n"
	"  --shard I/N          search only shard I of N of the bank (contiguous rows)\n"
	"Updating an index (with --save-index; --bank optional, an index or streams):\n"
	"  --add FEATURES       add the rows of these features streams or index files\n"
	"                       (repeatable, globs, -); a row replaces the bank's row\n"
	"                       of the same name\n"
	"  --remove FILE        drop the rows named in FILE (one name per line, or TSV)\n"
	"  --sync LISTING       keep only what LISTING (aim-patchify --list) lists with\n"
	"                       the size, mtime (and SHA-256) recorded; its order and ids\n"
	"  --commit-every N     write the index after every N added rows, so that a\n"
	"                       killed run loses at most N\n"
	"  --list               print the bank's rows as NAME, SIZE, MTIME[, SHA256] (TSV)\n"
	"Search:\n"
	"  -k K                 neighbours per query (default 10; 20 with --knn)\n"
	"  --max-score T        drop neighbours scoring above T (near-duplicates)\n"
	"  --diverse T          skip a neighbour whose similarity to one already chosen\n"
	"                       exceeds T\n"
	"  --query-dropout P    drop a fraction P of each query's patch tokens (pooling)\n"
	"  --seed N             seed of the query dropout (default 0)\n"
	"  --exclude-self       skip bank entries with the query's name (or id)\n"
	"Output:\n"
	"  -o, --output FILE    output file (default standard output)\n"
	"  --format tsv|stream  TSV lines query, rank, neighbour, score (default) or a\n"
	"                       result stream (neighbors, scores, ...; input of --merge)\n"
	"  --merge              combine result streams of shards into the global top-k\n"
	"  --knn                weighted k-NN classification: print top1 and top5 (%)\n"
	"  --temperature T      k-NN vote temperature (default 0.07)\n"
	"  --json               k-NN result as JSON\n"
	"  --sheet FILE.png     contact sheet: each query image and its neighbours\n"
	"  --image-root DIR     directory the image names are relative to (for --sheet)\n"
	"  --thumb N            thumbnail size in pixels for --sheet (default 96)\n"
	"Common:\n"
	"  --threads N          threads (default: all cores)\n"
	"  -q, --quiet          no progress messages\n"
	"  -v, --verbose        more messages\n"
	"  --help, --version\n";

enum {
	OPT_BANK = AIM_OPT_FIRST_TOOL, OPT_POOL, OPT_IP, OPT_SAVE_INDEX, OPT_SHARD, OPT_MAX_SCORE,
	OPT_DIVERSE, OPT_DROPOUT, OPT_SEED, OPT_EXCLUDE_SELF, OPT_FORMAT, OPT_MERGE, OPT_KNN,
	OPT_TEMPERATURE, OPT_JSON, OPT_SHEET, OPT_IMAGE_ROOT, OPT_THUMB, OPT_ADD, OPT_REMOVE,
	OPT_SYNC, OPT_COMMIT_EVERY, OPT_LIST,
};

typedef struct {
	char **bank, **add;
	int nbank, nadd;
	const char *remove, *sync;
	int64_t commit_every;
	int list;
	int k;
	int pool, pool_set, ip;
	const char *save_index, *output, *sheet, *image_root;
	int shard_i, shard_n;
	double max_score, diverse, dropout, temperature;
	uint64_t seed;
	int exclude_self, stream_out, merge, knn, json, thumb;
	char **inputs;
	int ninputs;
} options;

/* Bank arguments may be globs (quoted so the shell leaves them to us). */
static void add_path(char ***v, int *n, const char *arg)
{
	glob_t g;
	if (strpbrk(arg, "*?[") && glob(arg, 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++) {
			*v = realloc(*v, sizeof(char *) * (size_t)(*n + 1));
			(*v)[(*n)++] = strdup(g.gl_pathv[i]);
		}
		globfree(&g);
		return;
	}
	*v = realloc(*v, sizeof(char *) * (size_t)(*n + 1));
	(*v)[(*n)++] = strdup(arg);
}

static void parse_options(options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		AIM_COMMON_LONGOPTS,
		{"bank", required_argument, 0, OPT_BANK},
		{"pool", required_argument, 0, OPT_POOL},
		{"ip", no_argument, 0, OPT_IP},
		{"save-index", required_argument, 0, OPT_SAVE_INDEX},
		{"shard", required_argument, 0, OPT_SHARD},
		{"max-score", required_argument, 0, OPT_MAX_SCORE},
		{"diverse", required_argument, 0, OPT_DIVERSE},
		{"query-dropout", required_argument, 0, OPT_DROPOUT},
		{"seed", required_argument, 0, OPT_SEED},
		{"exclude-self", no_argument, 0, OPT_EXCLUDE_SELF},
		{"output", required_argument, 0, 'o'},
		{"format", required_argument, 0, OPT_FORMAT},
		{"merge", no_argument, 0, OPT_MERGE},
		{"knn", no_argument, 0, OPT_KNN},
		{"temperature", required_argument, 0, OPT_TEMPERATURE},
		{"json", no_argument, 0, OPT_JSON},
		{"sheet", required_argument, 0, OPT_SHEET},
		{"image-root", required_argument, 0, OPT_IMAGE_ROOT},
		{"thumb", required_argument, 0, OPT_THUMB},
		{"add", required_argument, 0, OPT_ADD},
		{"remove", required_argument, 0, OPT_REMOVE},
		{"sync", required_argument, 0, OPT_SYNC},
		{"commit-every", required_argument, 0, OPT_COMMIT_EVERY},
		{"list", no_argument, 0, OPT_LIST},
		{0, 0, 0, 0},
	};
	memset(o, 0, sizeof *o);
	o->k = -1;
	o->max_score = INFINITY;
	o->diverse = NAN;
	o->temperature = 0.07;
	o->thumb = 96;
	int c;
	while ((c = getopt_long(argc, argv, "k:o:" AIM_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case OPT_BANK: add_path(&o->bank, &o->nbank, optarg); break;
		case OPT_ADD: add_path(&o->add, &o->nadd, optarg); break;
		case OPT_REMOVE: o->remove = optarg; break;
		case OPT_SYNC: o->sync = optarg; break;
		case OPT_COMMIT_EVERY:
			o->commit_every = aim_opt_int("--commit-every", optarg, 1, INT64_MAX);
			break;
		case OPT_LIST: o->list = 1; break;
		case 'k': o->k = (int)aim_opt_int("-k", optarg, 1, 100000); break;
		case OPT_POOL:
			if ((o->pool = aim_pool_parse(optarg)) < 0)
				aim_usage_error("--pool: '%s' is not mean, max or cls", optarg);
			o->pool_set = 1;
			break;
		case OPT_IP: o->ip = 1; break;
		case OPT_SAVE_INDEX: o->save_index = optarg; break;
		case OPT_SHARD: aim_opt_shard("--shard", optarg, &o->shard_i, &o->shard_n); break;
		case OPT_MAX_SCORE: o->max_score = aim_opt_float("--max-score", optarg, -INFINITY, INFINITY); break;
		case OPT_DIVERSE: o->diverse = aim_opt_float("--diverse", optarg, -INFINITY, INFINITY); break;
		case OPT_DROPOUT: o->dropout = aim_opt_float("--query-dropout", optarg, 0, 0.999999); break;
		case OPT_SEED: o->seed = (uint64_t)aim_opt_int("--seed", optarg, 0, INT64_MAX); break;
		case OPT_EXCLUDE_SELF: o->exclude_self = 1; break;
		case 'o': o->output = optarg; break;
		case OPT_FORMAT:
			if (!strcmp(optarg, "stream"))
				o->stream_out = 1;
			else if (strcmp(optarg, "tsv"))
				aim_usage_error("--format: '%s' is not tsv or stream", optarg);
			break;
		case OPT_MERGE: o->merge = 1; break;
		case OPT_KNN: o->knn = 1; break;
		case OPT_TEMPERATURE: o->temperature = aim_opt_float("--temperature", optarg, 1e-6, 1e6); break;
		case OPT_JSON: o->json = 1; break;
		case OPT_SHEET: o->sheet = optarg; break;
		case OPT_IMAGE_ROOT: o->image_root = optarg; break;
		case OPT_THUMB: o->thumb = (int)aim_opt_int("--thumb", optarg, 8, 1024); break;
		default: aim_common_option(c, optarg);
		}
	}
	o->inputs = argv + optind;
	o->ninputs = argc - optind;
	if (o->k < 0 && !o->merge) /* a merge keeps the shards' k unless told */
		o->k = o->knn ? 20 : 10;
	if (o->merge) {
		if (o->nbank || o->save_index || o->shard_n || o->max_score < INFINITY ||
		    !isnan(o->diverse) || o->dropout > 0 || o->exclude_self || o->pool_set || o->ip)
			aim_usage_error("--merge takes result streams only (bank and search options "
					"belong to the shard runs)");
		if (o->ninputs < 1)
			aim_usage_error("--merge needs the shard result streams as arguments");
	} else if (o->nadd || o->remove || o->sync) {
		if (!o->save_index)
			aim_usage_error("--add, --remove and --sync update an index: give --save-index FILE");
		if (o->ninputs || o->shard_n || o->list)
			aim_usage_error("an update takes no queries, --shard or --list (query the index it writes)");
	} else if (o->commit_every) {
		aim_usage_error("--commit-every goes with --add");
	} else if (!o->nbank) {
		aim_usage_error("--bank is required");
	} else if (o->list && (o->ninputs || o->save_index)) {
		aim_usage_error("--list prints the bank; it takes no queries or --save-index");
	}
	if (o->knn && o->stream_out)
		aim_usage_error("--knn prints a summary; it does not combine with --format stream");
	if (o->json && !o->knn)
		aim_usage_error("--json goes with --knn");
	if (!isnan(o->diverse) && o->shard_n)
		aim_usage_error("--diverse needs the whole bank (a merge has no vectors to compare)");
	if (o->dropout > 0 && o->pool_set && o->pool == AIM_POOL_CLS)
		aim_usage_error("--query-dropout does not apply to --pool cls");
}

static void free_options(options *o)
{
	for (int i = 0; i < o->nbank; i++)
		free(o->bank[i]);
	for (int i = 0; i < o->nadd; i++)
		free(o->add[i]);
	free(o->bank);
	free(o->add);
}

/* --- the bank ------------------------------------------------------------ */

static void open_bank(aim_bank *b, const options *o)
{
	int rc;
	if (o->nbank == 1 && aim_bank_is_index(o->bank[0])) {
		rc = aim_bank_open_index(b, o->bank[0]);
		if (!rc && o->pool_set && (int)b->pool != o->pool)
			aim_die("%s: index was built with --pool %s", o->bank[0], aim_pool_name(b->pool));
		if (!rc && o->ip == b->normalized)
			aim_die("%s: index was built %s", o->bank[0],
				b->normalized ? "normalised (cosine); rebuild it with --ip" : "with --ip");
	} else {
		aim_prep p = {o->pool_set ? (aim_pool)o->pool : AIM_POOL_MEAN, !o->ip, 0, 0};
		rc = aim_bank_from_streams(b, (const char *const *)o->bank, o->nbank, &p);
	}
	if (rc)
		aim_die_status(rc);
	if (b->pool == AIM_POOL_CLS && o->dropout > 0)
		aim_die("%s: --query-dropout does not apply to a cls-pooled bank", b->source);
	if (aim_self.verbose)
		aim_info("bank: %lld entries of dimension %lld from %s", (long long)b->n, (long long)b->dim,
		 b->source);
}

static int64_t count_labelled(const aim_bank *b)
{
	int64_t n = 0;
	for (int64_t i = 0; b->label && i < b->n; i++)
		n += b->label[i] >= 0;
	return n;
}

/* --- listing and updating an index -------------------------------------------- */

/* --list: the rows as a manifest. */
static void list_bank(const aim_bank *b, const options *o)
{
	aim_outfile f;
	if (aim_out_open(&f, o->output, 0) < 0)
		aim_die_status(AIM_ERR);
	char buf[32];
	for (int64_t i = 0; i < b->n; i++) {
		aim_stamp st = aim_bank_stamp(b, i);
		aim_manifest_put(f.fp, aim_bank_name(b, i, buf, sizeof buf), &st, b->fsha != NULL);
	}
	if (aim_out_commit(&f) < 0)
		aim_die_status(AIM_ERR);
}

static void read_manifest(aim_manifest *m, const char *opt, const char *path)
{
	aim_manifest_init(m);
	if (path && aim_manifest_read(m, path) < 0)
		aim_die("%s: %s", opt, aim_errmsg());
}

/* Write old + what has been added so far to --save-index (unless that
 * would change nothing). */
static void commit(const aim_bank *old, const aim_bank *added, const aim_update *u,
		   const options *o)
{
	aim_bank nb;
	int changed;
	if (aim_bank_update(&nb, old, added, u, &changed) < 0)
		aim_die_status(AIM_ERR);
	if (changed && aim_bank_save_index(&nb, o->save_index) < 0)
		aim_die_status(AIM_ERR);
	if (aim_self.verbose)
		aim_info("index: %s: %lld entries%s", o->save_index, (long long)nb.n,
			 changed ? "" : " (unchanged, not rewritten)");
	aim_bank_free(&nb);
}

/* --add / --remove / --sync: under the index's lock, read the old bank
 * (mapped, when an index), stream the added features in, and replace the
 * index atomically, also every --commit-every rows. */
static void run_update(const options *o)
{
	char lockpath[4096];
	int lock = -1;
	struct stat st;
	snprintf(lockpath, sizeof lockpath, "%s.lock", o->save_index);
	int regular = stat(o->save_index, &st) != 0 || S_ISREG(st.st_mode); /* not /dev/null */
	if (regular && aim_lock_take(lockpath, &lock) < 0)
		aim_die("%s: not updated: %s", o->save_index, aim_errmsg());
	aim_bank old;
	int have_old = o->nbank > 0;
	if (have_old)
		open_bank(&old, o);
	aim_manifest rm, listing;
	read_manifest(&rm, "--remove", o->remove);
	read_manifest(&listing, "--sync", o->sync);
	aim_update u = {o->remove ? &rm : NULL, o->sync ? &listing : NULL};
	aim_prep p = {o->pool_set ? (aim_pool)o->pool : AIM_POOL_MEAN, !o->ip, 0, 0};
	if (have_old)
		p.pool = old.pool, p.normalize = old.normalized;
	aim_bank added;
	aim_bank_begin(&added, &p, o->nadd ? o->add[0] : "-");
	int64_t committed = 0;
	for (int a = 0; a < o->nadd; a++) {
		if (strcmp(o->add[a], "-") && aim_bank_is_index(o->add[a])) { /* e.g. a shard's */
			aim_bank part;
			if (aim_bank_open_index(&part, o->add[a]) || aim_bank_append_bank(&added, &part))
				aim_die_status(AIM_ERR);
			aim_bank_free(&part);
			continue;
		}
		aim_reader *rd = aim_reader_open((const char *const *)&o->add[a], 1);
		if (!rd)
			aim_die_status(AIM_ERR);
		aim_record rec;
		aim_record_init(&rec);
		int rc;
		while ((rc = aim_reader_next(rd, &rec)) == 1) {
			if (aim_bank_append(&added, &rec, aim_reader_where(rd)) < 0)
				aim_die_status(AIM_ERR);
			if (o->commit_every && added.n - committed >= o->commit_every) {
				commit(have_old ? &old : NULL, &added, &u, o);
				committed = added.n;
			}
		}
		if (rc < 0)
			aim_die_status(rc);
		aim_record_free(&rec);
		aim_reader_close(rd);
	}
	commit(have_old ? &old : NULL, &added, &u, o);
	aim_bank_free(&added);
	if (have_old)
		aim_bank_free(&old);
	aim_manifest_free(&rm);
	aim_manifest_free(&listing);
	aim_lock_release(lock);
}

/* --- outputs -------------------------------------------------------------- */

typedef struct {
	const options *o;
	aim_outfile out;       /* TSV and k-NN summary */
	aim_writer *w;         /* --format stream */
	aim_results sheet;     /* rows kept for --sheet */
	aim_knn_tally knn;     /* --knn */
} sink;

static void sink_open(sink *s, const options *o)
{
	memset(s, 0, sizeof *s);
	s->o = o;
	int rc = o->stream_out ? ((s->w = aim_writer_open(o->output, 3, 0)) ? 0 : AIM_ERR)
			       : aim_out_open(&s->out, o->output, 0);
	if (rc)
		aim_die_status(rc);
}

static void sink_abort(sink *s, int status)
{
	if (s->w)
		aim_writer_abort(s->w);
	else
		aim_out_abort(&s->out);
	aim_die_status(status);
}

/* Weighted k-NN vote per labelled query (aim_knn_tally_add). */
static void vote(sink *s, const aim_results *r)
{
	if (!r->qlabel || !r->nlabel)
		aim_die("--knn needs labels on the queries and on the bank");
	if (aim_knn_tally_add(&s->knn, r, s->o->temperature))
		aim_die("%s", aim_errmsg());
}

/* One answered batch of queries to every output asked for. */
static void emit(sink *s, const aim_results *r)
{
	int rc = 0;
	if (s->o->sheet && aim_results_keep(&s->sheet, r, 256)) /* the first 256 are drawn */
		sink_abort(s, AIM_ERR);
	if (s->o->knn) {
		vote(s, r);
	} else if (s->w) {
		aim_record rec;
		aim_record_init(&rec);
		rc = aim_results_to_record(r, &rec);
		if (!rc)
			rc = aim_writer_write(s->w, &rec);
		aim_record_free(&rec);
	} else {
		aim_results_write_tsv(s->out.fp, r);
		/* Each batch is answered at once: the next query may wait on it. */
		rc = aim_flush(s->out.fp, s->o->output ? s->o->output : "standard output");
	}
	if (rc)
		sink_abort(s, rc);
}

static void sink_close(sink *s)
{
	const options *o = s->o;
	int rc = 0;
	if (o->knn) {
		if (!s->knn.nlab)
			aim_die("--knn: no labelled queries");
		double t1 = 100.0 * s->knn.top1 / s->knn.nlab;
		double t5 = 100.0 * s->knn.top5 / s->knn.nlab;
		if (o->json)
			fprintf(s->out.fp,
				"{\"top1\": %.4f, \"top5\": %.4f, \"queries\": %lld, \"k\": %d, "
				"\"temperature\": %g}\n",
				t1, t5, (long long)s->knn.nlab, s->knn.k, o->temperature);
		else
			fprintf(s->out.fp, "top1 %.2f top5 %.2f\n", t1, t5);
	}
	if (o->sheet && s->sheet.m) {
		int missing = 0;
		if (aim_contact_sheet(o->sheet, &s->sheet, o->image_root, o->thumb, &missing))
			sink_abort(s, AIM_ERR);
		if (missing)
			aim_warn("%s: %d images could not be read (drawn grey)", o->sheet, missing);
	}
	aim_results_free(&s->sheet);
	free(s->knn.work);
	rc = s->w ? aim_writer_close(s->w) : aim_out_commit(&s->out);
	if (rc)
		aim_die_status(rc);
}

/* --- search mode ------------------------------------------------------------ */

/* Where queries come from. Regular files are gathered into large batches
 * (one sgemm over many queries); a pipe is read record by record and each
 * record answered as soon as it is in, so a client may send one query,
 * wait for its answer, then send the next. */
enum { FILE_BATCH = 1024 };

typedef struct {
	aim_reader *rd;
	int batch; /* gather records into batches of FILE_BATCH queries */
} query_source;

static void source_open(query_source *q, const options *o)
{
	memset(q, 0, sizeof *q);
	int regular = 1;
	for (int i = 0; i < o->ninputs; i++)
		regular &= aim_is_regular_file(o->inputs[i]);
	if (o->ninputs == 0)
		regular = aim_is_regular_file("-");
	if (!(q->rd = aim_reader_open((const char *const *)o->inputs, o->ninputs)))
		aim_die_status(AIM_ERR);
	q->batch = regular;
}

static int source_next(query_source *q, aim_record *r)
{
	return aim_reader_next(q->rd, r);
}

static const char *source_where(const query_source *q)
{
	return aim_reader_where(q->rd);
}

static void source_close(query_source *q)
{
	aim_reader_close(q->rd);
}

/* Answer the pending queries and pass the results on. */
static void answer(aim_queries *pd, const aim_bank *b, const options *o, sink *s)
{
	if (pd->m == 0)
		return;
	aim_results r;
	aim_hit *hits = malloc(sizeof(aim_hit) * (size_t)(pd->m * o->k));
	if (!hits || aim_results_alloc(&r, pd->m, o->k, pd->labelled, b->label != NULL))
		aim_die("out of memory (%lld queries)", (long long)pd->m);
	/* Names decide self-matches only when the queries carry names. */
	aim_query_ident qi = {pd->id, pd->named ? pd->name : NULL};
	aim_search_opts so = {o->k, (float)o->max_score, o->knn, o->exclude_self, aim_self.threads};
	if (aim_bank_search_diverse(b, pd->q, pd->m, &so, (float)o->diverse, &qi, hits))
		aim_die_status(AIM_ERR);
	for (int64_t i = 0; i < pd->m; i++) {
		r.qid[i] = pd->id[i];
		if (r.qlabel)
			r.qlabel[i] = pd->label[i];
		r.qname[i] = pd->name[i]; /* handed over */
	}
	if (aim_results_from_hits(&r, b, hits))
		aim_die_status(AIM_ERR);
	emit(s, &r);
	aim_results_free(&r);
	free(hits);
	pd->m = pd->named = pd->labelled = 0;
}

static void run_queries(const aim_bank *b, const options *o, sink *s)
{
	query_source src;
	source_open(&src, o);
	aim_prep p = {b->pool, b->normalized, o->dropout, o->seed};
	aim_record rec;
	aim_record_init(&rec);
	aim_queries pd = {0};
	int64_t seen = 0;
	int rc, warned = 0;
	while ((rc = source_next(&src, &rec)) == 1) {
		int64_t before = pd.m;
		if (aim_queries_add(&pd, &rec, &p, seen, b, source_where(&src))) {
			answer(&pd, b, o, s); /* what came before the bad record */
			sink_abort(s, AIM_ERR);
		}
		seen += pd.m - before;
		/* Features of different trunks live in different spaces. */
		const char *model = aim_record_get_meta(&rec, "aim.model");
		if (!warned && model && b->model && strcmp(model, b->model)) {
			aim_warn("%s: queries come from model %s, the bank from %s",
				 source_where(&src), model, b->model);
			warned = 1;
		}
		if (!src.batch || pd.m >= FILE_BATCH)
			answer(&pd, b, o, s);
	}
	answer(&pd, b, o, s);
	if (rc < 0)
		sink_abort(s, rc);
	aim_record_free(&rec);
	source_close(&src);
	aim_queries_free(&pd);
	if (seen == 0)
		aim_warn("no queries");
}

/* --- merge mode ------------------------------------------------------------- */

static void run_merge(const options *o, sink *s)
{
	int n = o->ninputs;
	aim_reader **rd = calloc((size_t)n, sizeof *rd);
	aim_results *parts = calloc((size_t)n, sizeof *parts);
	const char **what = calloc((size_t)n, sizeof *what);
	aim_record rec;
	aim_record_init(&rec);
	if (!rd || !parts || !what)
		aim_die("out of memory");
	for (int i = 0; i < n; i++)
		if (!(rd[i] = aim_reader_open((const char *const *)&o->inputs[i], 1)))
			aim_die_status(AIM_ERR);
	for (;;) {
		int ended = 0;
		for (int i = 0; i < n; i++) {
			int rc = aim_reader_next(rd[i], &rec);
			if (rc < 0)
				sink_abort(s, rc);
			what[i] = o->inputs[i];
			if (rc == 0) {
				ended++;
				continue;
			}
			if (aim_results_from_record(&parts[i], &rec, aim_reader_where(rd[i])))
				sink_abort(s, AIM_ERR);
		}
		if (ended) {
			if (ended != n)
				aim_die("%s: shard results end at different records", o->inputs[0]);
			break;
		}
		aim_results r;
		if (aim_results_merge(&r, parts, n, o->k > 0 ? o->k : parts[0].k, what))
			sink_abort(s, AIM_ERR);
		emit(s, &r);
		aim_results_free(&r);
		for (int i = 0; i < n; i++)
			aim_results_free(&parts[i]);
	}
	for (int i = 0; i < n; i++)
		aim_reader_close(rd[i]);
	aim_record_free(&rec);
	free(rd), free(parts), free(what);
}

int main(int argc, char **argv)
{
	options o;
	aim_prog_init("aim-retrieve", usage);
	parse_options(&o, argc, argv);
	aim_apply_threads();

	sink s;
	if (o.merge) {
		sink_open(&s, &o);
		run_merge(&o, &s);
		sink_close(&s);
		free_options(&o);
		return AIM_EXIT_OK;
	}

	if (o.nadd || o.remove || o.sync) {
		run_update(&o);
		free_options(&o);
		return AIM_EXIT_OK;
	}
	aim_bank b;
	open_bank(&b, &o);
	if (o.list) {
		list_bank(&b, &o);
		aim_bank_free(&b);
		free_options(&o);
		return AIM_EXIT_OK;
	}
	if (b.n == 0)
		aim_die("%s: empty bank: no samples", b.source);
	int64_t whole = b.n;
	if (o.shard_n)
		aim_bank_shard(&b, o.shard_i, o.shard_n);
	if (o.save_index) {
		int rc = aim_bank_save_index(&b, o.save_index);
		if (rc)
			aim_die_status(rc);
		if (aim_self.verbose)
			aim_info("index: %s (%lld entries)", o.save_index, (long long)b.n);
		if (o.ninputs == 0) {
			aim_bank_free(&b);
			free_options(&o);
			return AIM_EXIT_OK;
		}
	}
	int64_t usable = o.knn ? count_labelled(&b) : whole;
	if (o.knn && usable == 0)
		aim_die("%s: --knn: the bank has no labelled entries", b.source);
	if (o.k > usable && !o.shard_n)
		aim_die("%s: -k %d is larger than the bank (%lld %sentries)", b.source, o.k,
			(long long)usable, o.knn ? "labelled " : "");
	if (o.k > whole)
		aim_die("%s: -k %d is larger than the bank (%lld entries)", b.source, o.k,
			(long long)whole);

	sink_open(&s, &o);
	run_queries(&b, &o, &s);
	sink_close(&s);
	aim_bank_free(&b);
	free_options(&o);
	return AIM_EXIT_OK;
}
