/* aim-patchify: images in, a stream of U8 patches out.
 *
 * List the inputs (files, directories, ImageFolder roots, WebDataset tar
 * shards, or a list of paths on stdin), then epoch by epoch: gather a
 * batch of items in walk order, decode and transform them in parallel
 * (each sample's pixels depend only on its bytes, and its augmentation
 * only on seed, epoch and id), cut them into patches and write one record
 * per batch. Bad images are named, skipped and counted. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "fileio.h"
#include "image.h"
#include "imgbatch.h"
#include "imgsrc.h"
#include "imgstamp.h"
#include "manifest.h"
#include "labels.h"
#include "stream.h"
#include "stream_thread.h"
#include "transform.h"

static const char usage[] =
	"Usage: aim-patchify [options] [PATH...]\n"
	"Decode images, resize and crop them (or augment them for training), cut\n"
	"them into patches and write a stream of U8 patches. A PATH is an image, a\n"
	"directory (walked recursively, sorted), an ImageFolder root or a WebDataset\n"
	"tar shard; without PATH, or with -, paths are read one per line from stdin.\n"
	"\n"
	"Transform:\n"
	"  --preset NAME        a family's published preprocessing: aim-v1 (resize 256,\n"
	"                       crop 224, ImageNet mean/std: the defaults) or\n"
	"                       aimv2-224, aimv2-336, aimv2-448 (resize the shorter side\n"
	"                       to S, crop S, CLIP mean/std); options given explicitly win\n"
	"  --transform val|train  val (default): bicubic resize of the shorter side to\n"
	"                       R, centre crop S, as torchvision/Pillow do; train:\n"
	"                       random resized crop S (bicubic) + horizontal flip\n"
	"  --size S             output side in pixels (default 224)\n"
	"  --resize R           val: shorter side before the crop (default ceil(S/0.875))\n"
	"  --scale LO,HI        train: crop area fraction (default 0.4,1)\n"
	"  --ratio LO,HI        train: crop aspect ratio (default 0.75,1.3333)\n"
	"  --translate N        train: shift instead of the resized crop: an S x S window\n"
	"                       of the image padded with N zeros on every side, at a\n"
	"                       random place, not resampled (torchvision RandomCrop(S,\n"
	"                       padding=N, pad_if_needed=True)); for images of side S\n"
	"  --no-flip            train: no horizontal flip\n"
	"  --jitter B[,C[,S]]   train: colour jitter strengths for brightness, contrast,\n"
	"                       saturation (torchvision ColorJitter; default off)\n"
	"  --seed N             seed of the augmentation and shuffling (default 0)\n"
	"  --epochs N           emit the data N times, fresh augmentation each time;\n"
	"                       records carry aim.epoch (default 1)\n"
	"  --shuffle            shuffle each epoch\n"
	"  --shuffle-buffer N   samples held when shuffling tar shards (default 1000)\n"
	"  --log-augment FILE   train: write each sample's crop, flip and jitter as TSV\n"
	"Patches:\n"
	"  --patch P            patch side (default 14); S must be a multiple of P\n"
	"  --channels 1|3       3: RGB (default); 1: grayscale, as convert('L')\n"
	"  --mean LIST          per-channel mean recorded for consumers\n"
	"                       (default 0.485,0.456,0.406; 1 channel: 0.449)\n"
	"  --std LIST           per-channel std (default 0.229,0.224,0.225; 1 channel: 0.226)\n"
	"Inputs:\n"
	"  --classes auto|folder|none  directories as ImageFolder roots: auto (default)\n"
	"                       when a directory holds subdirectories and no images of\n"
	"                       its own; folder: always; none: never (labels -1)\n"
	"  --labels FILE        labels from NAME LABEL lines (LABEL a class name or\n"
	"                       index; NAME an image's path or file name), e.g. for\n"
	"                       a flat validation folder\n"
	"  --classes-file FILE  with --labels: the class list, one name per line\n"
	"                       (default: the sorted class names of the labels)\n"
	"  --shard I/N          only every N-th image of the listing, from the I-th\n"
	"  --max-pixels N       skip images with more pixels (default 178956970)\n"
	"  --strict             stop at the first bad image (as --max-errors 0)\n"
	"  --max-errors N       stop and fail when more than N images are bad; with N or\n"
	"                       fewer, exit 0 (default: skip every bad image, exit 1)\n"
	"  --errors FILE        write NAME<TAB>REASON of every bad image to FILE\n"
	"Incremental runs:\n"
	"  --list               print the listing as NAME, SIZE, MTIME[, SHA256] (TSV)\n"
	"                       instead of decoding anything\n"
	"  --skip-done FILE     skip images FILE lists with their current size and mtime\n"
	"                       (a manifest: --list or aim-retrieve --list output)\n"
	"  --checksum           --list: add each file's SHA-256; --skip-done: an image is\n"
	"                       done only if its SHA-256 matches too\n"
	"Output:\n"
	"  -o, --output FILE    output file (default standard output)\n"
	"  --batch B            images per record (default 64)\n"
	"  --level N            zstd level of the stream, 0 = uncompressed (default 1)\n"
	"Common:\n"
	"  --threads N          decoding threads (default: all cores); output is the same\n"
	"  -q, --quiet          no progress messages\n"
	"  -v, --verbose        more messages\n"
	"  --help, --version\n";

enum {
	OPT_TRANSFORM = AIM_OPT_FIRST_TOOL, OPT_SIZE, OPT_RESIZE, OPT_SCALE, OPT_RATIO,
	OPT_NO_FLIP, OPT_TRANSLATE, OPT_JITTER, OPT_SEED, OPT_EPOCHS, OPT_SHUFFLE, OPT_SHUFFLE_BUFFER,
	OPT_LOG_AUGMENT, OPT_PATCH, OPT_CHANNELS, OPT_MEAN, OPT_STD, OPT_CLASSES, OPT_SHARD,
	OPT_MAX_PIXELS, OPT_STRICT, OPT_BATCH, OPT_LEVEL, OPT_PRESET, OPT_MAX_ERRORS, OPT_ERRORS,
	OPT_LIST, OPT_SKIP_DONE, OPT_CHECKSUM, OPT_LABELS, OPT_CLASSES_FILE,
};

typedef struct {
	const char *output, *log_augment, *errors, *skip_done, *labels, *classes_file;
	int64_t max_errors; /* -1: skip every bad image, fail at the end if any */
	int list, checksum;
	int train, size, resize, patch, channels, batch, level;
	int shard_i, shard_n, shuffle, shuffle_buffer, epochs_set;
	const char *train_only; /* a train option given, for the check with val */
	const char *crop_shape; /* --scale or --ratio given, for the check with --translate */
	double mean[3], std[3];
	int nmean, nstd;
	const char *preset;
	int size_set;
	aim_classes_mode classes;
	aim_train_aug aug;
	uint64_t seed;
	int64_t epochs, max_pixels;
	char **inputs;
	int ninputs;
} options;

/* Fill what the command line left unset from --preset NAME (the resize
 * follows the preset's crop fraction, also for an explicit --size). */
static void apply_preset(options *o)
{
	const aim_preset *p = aim_preset_find(o->preset);
	if (!p)
		aim_usage_error("--preset: expected aim-v1, aimv2-224, aimv2-336 or aimv2-448, not '%s'",
				o->preset);
	if (o->channels != 3)
		aim_usage_error("--preset %s is for RGB images (--channels 3)", o->preset);
	if (!o->size_set)
		o->size = p->size;
	if (!o->resize && !o->train && p->full)
		o->resize = o->size;
	if (!o->nmean) {
		o->nmean = 3;
		memcpy(o->mean, p->mean, sizeof o->mean);
	}
	if (!o->nstd) {
		o->nstd = 3;
		memcpy(o->std, p->std, sizeof o->std);
	}
}

static void parse_pair(const char *opt, const char *arg, double *lo, double *hi, double min)
{
	double v[2];
	if (aim_opt_floats(opt, arg, v, 2) != 2 || !(v[0] >= min) || !(v[1] >= v[0]))
		aim_usage_error("%s: expected LO,HI with %g <= LO <= HI", opt, min);
	*lo = v[0];
	*hi = v[1];
}

static void parse_options(options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"output", required_argument, 0, 'o'},
		{"transform", required_argument, 0, OPT_TRANSFORM},
		{"size", required_argument, 0, OPT_SIZE},
		{"resize", required_argument, 0, OPT_RESIZE},
		{"scale", required_argument, 0, OPT_SCALE},
		{"ratio", required_argument, 0, OPT_RATIO},
		{"no-flip", no_argument, 0, OPT_NO_FLIP},
		{"translate", required_argument, 0, OPT_TRANSLATE},
		{"jitter", required_argument, 0, OPT_JITTER},
		{"seed", required_argument, 0, OPT_SEED},
		{"epochs", required_argument, 0, OPT_EPOCHS},
		{"shuffle", no_argument, 0, OPT_SHUFFLE},
		{"shuffle-buffer", required_argument, 0, OPT_SHUFFLE_BUFFER},
		{"log-augment", required_argument, 0, OPT_LOG_AUGMENT},
		{"patch", required_argument, 0, OPT_PATCH},
		{"channels", required_argument, 0, OPT_CHANNELS},
		{"mean", required_argument, 0, OPT_MEAN},
		{"std", required_argument, 0, OPT_STD},
		{"classes", required_argument, 0, OPT_CLASSES},
		{"labels", required_argument, 0, OPT_LABELS},
		{"classes-file", required_argument, 0, OPT_CLASSES_FILE},
		{"shard", required_argument, 0, OPT_SHARD},
		{"max-pixels", required_argument, 0, OPT_MAX_PIXELS},
		{"strict", no_argument, 0, OPT_STRICT},
		{"batch", required_argument, 0, OPT_BATCH},
		{"level", required_argument, 0, OPT_LEVEL},
		{"preset", required_argument, 0, OPT_PRESET},
		{"max-errors", required_argument, 0, OPT_MAX_ERRORS},
		{"errors", required_argument, 0, OPT_ERRORS},
		{"list", no_argument, 0, OPT_LIST},
		{"skip-done", required_argument, 0, OPT_SKIP_DONE},
		{"checksum", no_argument, 0, OPT_CHECKSUM},
		AIM_COMMON_LONGOPTS,
		{0, 0, 0, 0},
	};
	memset(o, 0, sizeof *o);
	o->size = 224;
	o->patch = 14;
	o->channels = 3;
	o->batch = 64;
	o->level = 1;
	o->shard_n = 1;
	o->epochs = 1;
	o->shuffle_buffer = 1000;
	o->max_pixels = AIM_IMAGE_DEFAULT_MAX_PIXELS;
	o->classes = AIM_CLASSES_AUTO;
	o->max_errors = -1;
	aim_train_aug_default(&o->aug);
	double jit[3];
	int c, n;
	while ((c = getopt_long(argc, argv, "o:" AIM_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case 'o': o->output = optarg; break;
		case OPT_TRANSFORM:
			if (!strcmp(optarg, "val"))
				o->train = 0;
			else if (!strcmp(optarg, "train"))
				o->train = 1;
			else
				aim_usage_error("--transform: expected val or train, not '%s'", optarg);
			break;
		case OPT_SIZE:
			o->size = (int)aim_opt_int("--size", optarg, 1, 16384);
			o->size_set = 1;
			break;
		case OPT_PRESET: o->preset = optarg; break;
		case OPT_RESIZE: o->resize = (int)aim_opt_int("--resize", optarg, 1, 65536); break;
		case OPT_SCALE:
			o->train_only = o->crop_shape = "--scale";
			parse_pair("--scale", optarg, &o->aug.scale_lo, &o->aug.scale_hi, 1e-9);
			if (o->aug.scale_hi > 1)
				aim_usage_error("--scale: HI must be at most 1");
			break;
		case OPT_RATIO:
			o->train_only = o->crop_shape = "--ratio";
			parse_pair("--ratio", optarg, &o->aug.ratio_lo, &o->aug.ratio_hi, 1e-9);
			break;
		case OPT_TRANSLATE:
			o->aug.translate = (int)aim_opt_int("--translate", optarg, 0, 4096);
			o->train_only = "--translate";
			break;
		case OPT_NO_FLIP:
			o->aug.flip = 0;
			o->train_only = "--no-flip";
			break;
		case OPT_JITTER:
			o->train_only = "--jitter";
			n = aim_opt_floats("--jitter", optarg, jit, 3);
			for (int i = 0; i < n; i++)
				if (!(jit[i] >= 0))
					aim_usage_error("--jitter: strengths must be >= 0");
			o->aug.brightness = n > 0 ? jit[0] : 0;
			o->aug.contrast = n > 1 ? jit[1] : 0;
			o->aug.saturation = n > 2 ? jit[2] : 0;
			break;
		case OPT_SEED: o->seed = (uint64_t)aim_opt_int("--seed", optarg, 0, INT64_MAX); break;
		case OPT_EPOCHS:
			o->epochs = aim_opt_int("--epochs", optarg, 1, INT64_MAX);
			o->epochs_set = 1;
			break;
		case OPT_SHUFFLE: o->shuffle = 1; break;
		case OPT_SHUFFLE_BUFFER:
			o->shuffle_buffer = (int)aim_opt_int("--shuffle-buffer", optarg, 1, 1 << 24);
			break;
		case OPT_LOG_AUGMENT:
			o->log_augment = optarg;
			o->train_only = "--log-augment";
			break;
		case OPT_PATCH: o->patch = (int)aim_opt_int("--patch", optarg, 1, 4096); break;
		case OPT_CHANNELS:
			o->channels = (int)aim_opt_int("--channels", optarg, 1, 3);
			if (o->channels == 2)
				aim_usage_error("--channels: expected 1 or 3");
			break;
		case OPT_MEAN: o->nmean = aim_opt_floats("--mean", optarg, o->mean, 3); break;
		case OPT_STD:
			o->nstd = aim_opt_floats("--std", optarg, o->std, 3);
			for (int i = 0; i < o->nstd; i++)
				if (!(o->std[i] > 0))
					aim_usage_error("--std: values must be positive");
			break;
		case OPT_CLASSES:
			if (!strcmp(optarg, "auto"))
				o->classes = AIM_CLASSES_AUTO;
			else if (!strcmp(optarg, "folder"))
				o->classes = AIM_CLASSES_FOLDER;
			else if (!strcmp(optarg, "none"))
				o->classes = AIM_CLASSES_NONE;
			else
				aim_usage_error("--classes: expected auto, folder or none, not '%s'", optarg);
			break;
		case OPT_LABELS: o->labels = optarg; break;
		case OPT_CLASSES_FILE: o->classes_file = optarg; break;
		case OPT_SHARD: aim_opt_shard("--shard", optarg, &o->shard_i, &o->shard_n); break;
		case OPT_MAX_PIXELS:
			o->max_pixels = aim_opt_int("--max-pixels", optarg, 1, INT64_MAX);
			break;
		case OPT_STRICT: o->max_errors = 0; break;
		case OPT_MAX_ERRORS:
			o->max_errors = aim_opt_int("--max-errors", optarg, 0, INT64_MAX);
			break;
		case OPT_ERRORS: o->errors = optarg; break;
		case OPT_LIST: o->list = 1; break;
		case OPT_SKIP_DONE: o->skip_done = optarg; break;
		case OPT_CHECKSUM: o->checksum = 1; break;
		case OPT_BATCH: o->batch = (int)aim_opt_int("--batch", optarg, 1, 1 << 20); break;
		case OPT_LEVEL: o->level = (int)aim_opt_int("--level", optarg, 0, 19); break;
		default: aim_common_option(c, optarg); break;
		}
	}
	if (o->list && (o->skip_done || o->errors))
		aim_usage_error("--list decodes nothing: --skip-done and --errors do not apply");
	if (o->train && o->resize)
		aim_usage_error("--resize applies to --transform val only");
	if (!o->train && o->train_only)
		aim_usage_error("%s applies to --transform train only", o->train_only);
	if (o->aug.translate >= 0 && o->crop_shape)
		aim_usage_error("%s shapes the resized crop, which --translate replaces", o->crop_shape);
	if (o->preset)
		apply_preset(o);
	if (o->size % o->patch)
		aim_usage_error("--size %d is not a multiple of --patch %d", o->size, o->patch);
	if (!o->resize)
		o->resize = aim_val_resize_for(o->size);
	const double mean3[3] = {0.485, 0.456, 0.406}, std3[3] = {0.229, 0.224, 0.225};
	if (!o->nmean) {
		o->nmean = o->channels;
		if (o->channels == 3)
			memcpy(o->mean, mean3, sizeof mean3);
		else
			o->mean[0] = 0.449;
	}
	if (!o->nstd) {
		o->nstd = o->channels;
		if (o->channels == 3)
			memcpy(o->std, std3, sizeof std3);
		else
			o->std[0] = 0.226;
	}
	if (o->classes_file && !o->labels)
		aim_usage_error("--classes-file needs --labels");
	if (o->nmean != o->channels || o->nstd != o->channels)
		aim_usage_error("--mean and --std need %d value%s for --channels %d", o->channels,
				o->channels > 1 ? "s" : "", o->channels);
	o->inputs = argv + optind;
	o->ninputs = argc - optind;
}

/* The listing in argument order; "-" (or no PATH) reads paths from stdin
 * at that place, once. */
static void build_listing(const options *o, aim_imglist *l)
{
	int stdin_read = 0;
	if (o->ninputs == 0 && isatty(STDIN_FILENO))
		aim_usage_error("no PATH given and standard input is a terminal");
	for (int i = 0; i < (o->ninputs ? o->ninputs : 1); i++) {
		if (o->ninputs && strcmp(o->inputs[i], "-")) {
			if (aim_imglist_add(l, o->inputs[i], o->classes) < 0)
				aim_die("%s", aim_errmsg());
		} else if (!stdin_read) {
			stdin_read = 1;
			if (aim_imglist_add_lines(l, stdin, o->classes) < 0)
				aim_die("stdin: %s", aim_errmsg());
		}
	}
	if (l->n == 0)
		aim_die("no images found");
	if (o->labels && aim_imglist_apply_labels(l, o->labels, o->classes_file) < 0)
		aim_die("%s", aim_errmsg());
}

/* ---- output ---------------------------------------------------------------- */

static void set_meta(aim_record *r, const char *key, const char *value)
{
	if (!value || aim_record_set_meta(r, key, value) < 0)
		aim_die("out of memory");
}

/* Writing runs in its own thread (stream_thread.h), one batch behind the
 * decoding: while the workers decode batch k+1 into one buffer, batch k is
 * serialised, compressed and written from the other. */
typedef struct {
	aim_record rec;
	uint8_t *patches;
	int64_t *label, *id;
} outbatch;

typedef struct {
	aim_writer *w;
	aim_writer_thread thread;
	aim_outfile log;
	int log_open;
	int64_t written, records;
	char *classes_json, *mean_json, *std_json;
} output;

/* End the program if writing failed (quietly with status 0 when the reader
 * downstream has gone). */
static void writer_check(output *out, int status)
{
	if (status == AIM_EPIPE)
		exit(AIM_EXIT_OK);
	if (status < 0) {
		aim_warn("%s", aim_errmsg());
		aim_writer_abort(out->w);
		exit(AIM_EXIT_FAILURE);
	}
}

static int write_batch(const options *o, const aim_imglist *l, output *out,
		       aim_imgslot *slots, int n, outbatch *b, int64_t epoch)
{
	int K = (o->size / o->patch) * (o->size / o->patch);
	size_t P = (size_t)o->channels * o->patch * o->patch;
	json_t *names = json_array();
	if (!names)
		aim_die("out of memory");
	int m = 0;
	for (int i = 0; i < n; i++) {
		if (!slots[i].ok)
			continue;
		if (m != i)
			memmove(b->patches + (size_t)m * K * P, b->patches + (size_t)i * K * P,
				(size_t)K * P);
		b->label[m] = l->items[slots[i].item].label;
		b->id[m] = slots[i].item;
		json_array_append_new(names, json_string(l->items[slots[i].item].name));
		m++;
	}
	if (m > 0) {
		aim_record *r = &b->rec;
		aim_record_init(r);
		int64_t ps[3] = {m, K, (int64_t)P}, bs[1] = {m};
		char buf[64];
		if (!aim_record_add_ref(r, "patches", AIM_U8, 3, ps, b->patches) ||
		    !aim_record_add_ref(r, "label", AIM_I64, 1, bs, b->label) ||
		    !aim_record_add_ref(r, "id", AIM_I64, 1, bs, b->id))
			aim_die("%s", aim_errmsg());
		char *nj = json_dumps(names, JSON_COMPACT | JSON_ENSURE_ASCII);
		set_meta(r, "aim.names", nj);
		free(nj);
		if (out->records == 0)
			set_meta(r, "aim.classes", out->classes_json);
		snprintf(buf, sizeof buf, "%d", o->patch);
		set_meta(r, "aim.patch", buf);
		snprintf(buf, sizeof buf, "[%d,%d]", o->size / o->patch, o->size / o->patch);
		set_meta(r, "aim.grid", buf);
		snprintf(buf, sizeof buf, "%d", o->channels);
		set_meta(r, "aim.channels", buf);
		set_meta(r, "aim.mean", out->mean_json);
		set_meta(r, "aim.std", out->std_json);
		if (o->epochs_set || o->train) {
			snprintf(buf, sizeof buf, "%" PRId64, epoch);
			set_meta(r, "aim.epoch", buf);
		}
		writer_check(out, aim_writer_thread_submit(&out->thread, &b->rec));
		out->records++;
		out->written += m;
	}
	if (out->log_open)
		for (int i = 0; i < n; i++) {
			const aim_train_draw *d = &slots[i].draw;
			if (!slots[i].ok)
				continue;
			fprintf(out->log.fp, "%" PRId64 "\t%" PRId64 "\t%d\t%d\t%d\t%d\t%d\t%.17g\t%.17g\t%.17g\t%c%c%c\n",
				epoch, slots[i].item, d->top, d->left, d->h, d->w, d->flip,
				d->brightness, d->contrast, d->saturation,
				"bcs"[d->jitter_order[0]], "bcs"[d->jitter_order[1]],
				"bcs"[d->jitter_order[2]]);
		}
	json_decref(names);
	return m > 0;
}

/* ---- the batch loop ------------------------------------------------------ */

typedef struct {
	int64_t bad, shard_errors;
	aim_outfile errors; /* --errors */
	int errors_open;
} counts;

/* Name a bad input on stderr and in the --errors file. AIM_ERR once there
 * are more than --max-errors. */
static int note_bad(const options *o, counts *n, const char *name, const char *reason)
{
	aim_warn("%s: %s", name, reason);
	if (n->errors_open) {
		aim_tsv_put(n->errors.fp, name);
		fputc('\t', n->errors.fp);
		aim_tsv_put(n->errors.fp, reason);
		fputc('\n', n->errors.fp);
	}
	return o->max_errors >= 0 && n->bad + n->shard_errors > o->max_errors ? AIM_ERR : AIM_OK;
}

/* Up to --batch items in walk order into slots (tar members are read
 * here, files later by the workers). Returns the number gathered (0 at the
 * end of the epoch), or AIM_ERR to stop (a shard failed, beyond --max-errors). */
static int gather_batch(const options *o, aim_imgwalk *w, const unsigned char *bad,
			aim_imgslot *slots, counts *n)
{
	int got = 0;
	while (got < o->batch) {
		aim_imgnext nx;
		int rc = aim_imgwalk_next(w, &nx);
		if (rc == 0)
			break;
		if (rc < 0) { /* "SHARD: reason" */
			char msg[512];
			snprintf(msg, sizeof msg, "%s", aim_errmsg());
			char *sep = strstr(msg, ": ");
			if (sep)
				*sep = 0;
			n->shard_errors++;
			if (note_bad(o, n, msg, sep ? sep + 2 : "cannot be read") < 0)
				return AIM_ERR;
			continue;
		}
		if (bad[nx.item]) { /* reported in an earlier epoch */
			free(nx.data);
			continue;
		}
		slots[got++] = (aim_imgslot){.item = nx.item, .data = nx.data, .len = nx.len};
	}
	return got;
}

/* Name each bad image of the batch on stderr, in the order of the batch,
 * and remember it. AIM_ERR beyond --max-errors. */
static int report_bad(const options *o, const aim_imglist *l, const aim_imgslot *slots,
		      int count, unsigned char *bad, counts *n)
{
	for (int i = 0; i < count; i++)
		if (!slots[i].ok) {
			bad[slots[i].item] = 1;
			n->bad++;
			if (note_bad(o, n, l->items[slots[i].item].name, slots[i].err) < 0)
				return AIM_ERR;
		}
	return AIM_OK;
}

/* ---- incremental runs ------------------------------------------------------ */

/* --skip-done: deselect the items the manifest records with their current
 * stamp. Returns how many. */
static int64_t skip_done(const options *o, const aim_imglist *l, unsigned char *selected)
{
	aim_manifest done;
	aim_manifest_init(&done);
	if (aim_manifest_read(&done, o->skip_done) < 0)
		aim_die("--skip-done: %s", aim_errmsg());
	int64_t skipped = aim_imglist_drop_done(l, selected, &done, o->checksum);
	if (skipped < 0)
		aim_die("%s", aim_errmsg());
	if (aim_self.verbose)
		aim_info("%s: %" PRId64 " of the listed images are up to date", o->skip_done, skipped);
	aim_manifest_free(&done);
	return skipped;
}

int main(int argc, char **argv)
{
	options o;
	aim_prog_init("aim-patchify", usage);
	parse_options(&o, argc, argv);
	aim_apply_threads();

	aim_imglist l;
	aim_imglist_init(&l);
	build_listing(&o, &l);
	unsigned char *selected = malloc((size_t)l.n);
	unsigned char *bad = calloc((size_t)l.n, 1);
	if (!selected || !bad)
		aim_die("out of memory");
	int64_t nselected = 0;
	for (int64_t i = 0; i < l.n; i++)
		nselected += selected[i] = i % o.shard_n == o.shard_i;
	if (nselected == 0)
		aim_die("--shard %d/%d selects none of the %" PRId64 " images", o.shard_i,
			o.shard_n, l.n);
	if (o.list) {
		if (aim_imglist_list(&l, selected, o.checksum, o.output) < 0)
			aim_die("%s", aim_errmsg());
		free(selected);
		free(bad);
		aim_imglist_free(&l);
		return AIM_EXIT_OK;
	}
	int64_t up_to_date = o.skip_done ? skip_done(&o, &l, selected) : 0;
	nselected -= up_to_date;

	output out = {0};
	out.classes_json = aim_imglist_classes_json(&l);
	out.mean_json = aim_meta_floats(o.mean, o.nmean);
	out.std_json = aim_meta_floats(o.std, o.nstd);
	if (!out.classes_json || !out.mean_json || !out.std_json)
		aim_die("out of memory");
	out.w = aim_writer_open(o.output, o.level, 0);
	if (!out.w)
		aim_die("%s", aim_errmsg());
	if (o.log_augment) {
		if (aim_out_open(&out.log, o.log_augment, 0) < 0)
			aim_die("%s", aim_errmsg());
		out.log_open = 1;
		fprintf(out.log.fp, "epoch\tid\ttop\tleft\theight\twidth\tflip\tbrightness"
				    "\tcontrast\tsaturation\torder\n");
	}

	aim_imgcut cut = {o.train, o.size, o.resize, o.patch, o.channels, o.max_pixels, o.aug, o.seed};
	int K = (o.size / o.patch) * (o.size / o.patch);
	size_t P = (size_t)o.channels * o.patch * o.patch;
	size_t sample_bytes = (size_t)K * P;
	aim_imgslot *slots = calloc((size_t)o.batch, sizeof *slots);
	outbatch ob[2];
	if (!slots)
		aim_die("out of memory");
	for (int i = 0; i < 2; i++) {
		ob[i].patches = malloc(sample_bytes * o.batch);
		ob[i].label = malloc(sizeof(int64_t) * o.batch);
		ob[i].id = malloc(sizeof(int64_t) * o.batch);
		if (!ob[i].patches || !ob[i].label || !ob[i].id)
			aim_die("out of memory");
	}
	int cur = 0;
	counts n = {0};
	if (o.errors) {
		if (aim_out_open(&n.errors, o.errors, 0) < 0)
			aim_die("%s", aim_errmsg());
		n.errors_open = 1;
	}
	if (aim_writer_thread_start(&out.thread, out.w) < 0)
		aim_die("%s", aim_errmsg());
	aim_progress pg;
	aim_progress_start(&pg, 10);
	for (int64_t epoch = 0; epoch < o.epochs; epoch++) {
		aim_imgwalk *w = aim_imgwalk_new(&l, selected, o.shuffle, o.seed, epoch,
						 o.shuffle_buffer);
		if (!w)
			aim_die("%s", aim_errmsg());
		int got;
		while ((got = gather_batch(&o, w, bad, slots, &n)) > 0) {
			aim_imgbatch_decode(&cut, &l, epoch, slots, got, ob[cur].patches, sample_bytes);
			if (report_bad(&o, &l, slots, got, bad, &n) < 0)
				goto failed;
			if (write_batch(&o, &l, &out, slots, got, &ob[cur], epoch))
				cur ^= 1; /* the other buffer's write has been waited for */
			int64_t seen = out.written + n.bad * (epoch + 1), total = nselected * o.epochs;
			aim_progress_count(&pg, seen, "images", total ? (double)seen / (double)total : -1,
					   "epoch %" PRId64 ", %" PRId64 " skipped", epoch, n.bad);
		}
		aim_imgwalk_free(w);
		if (got < 0)
			goto failed;
	}
	writer_check(&out, aim_writer_thread_stop(&out.thread));
	aim_progress_end(&pg);
	if (out.log_open && aim_out_commit(&out.log) < 0)
		aim_die("%s", aim_errmsg());
	int rc = aim_writer_close(out.w);
	if (rc == AIM_EPIPE)
		return AIM_EXIT_OK;
	if (rc < 0)
		aim_die("%s", aim_errmsg());
	if (n.errors_open && aim_out_commit(&n.errors) < 0)
		aim_die("%s", aim_errmsg());
	char done_s[64] = "";
	if (o.skip_done)
		snprintf(done_s, sizeof done_s, ", %" PRId64 " up to date", up_to_date);
	int status = AIM_EXIT_OK;
	if (n.bad || n.shard_errors) {
		aim_warn("%" PRId64 " images written, %" PRId64 " skipped%s%s", out.written, n.bad,
			 n.shard_errors ? ", and tar shards failed to read" : "", done_s);
		if (o.max_errors < 0)
			status = AIM_EXIT_FAILURE;
	} else {
		aim_info("%" PRId64 " images written in %" PRId64 " records%s", out.written,
			 out.records, done_s);
	}
	free(slots);
	for (int i = 0; i < 2; i++) {
		free(ob[i].patches);
		free(ob[i].label);
		free(ob[i].id);
	}
	free(selected);
	free(bad);
	free(out.classes_json);
	free(out.mean_json);
	free(out.std_json);
	aim_imglist_free(&l);
	return status;

failed:
	writer_check(&out, aim_writer_thread_stop(&out.thread));
	if (o.max_errors == 0)
		aim_warn("stopped at the first bad input (--strict or --max-errors 0)");
	else
		aim_warn("stopped: more than %" PRId64 " bad inputs (--max-errors)", o.max_errors);
	if (out.log_open)
		aim_out_abort(&out.log);
	if (n.errors_open && aim_out_commit(&n.errors) < 0)
		aim_warn("%s", aim_errmsg());
	aim_writer_abort(out.w);
	return AIM_EXIT_FAILURE;
}
