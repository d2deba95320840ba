/* The program start every tool shares: common options, messages, exits.
 *
 * Each tool lists AIM_COMMON_LONGOPTS in its getopt_long table and passes
 * any option it does not handle itself to aim_common_option(). Messages
 * are "prog: text" on stderr; stdout carries data only. */
#ifndef AIM_CLI_H
#define AIM_CLI_H

#include <getopt.h>
#include <stdint.h>
#include "err.h"

enum {
	AIM_OPT_HELP = 0x1000,
	AIM_OPT_VERSION,
	AIM_OPT_THREADS,
	AIM_OPT_FIRST_TOOL = 0x1100, /* tools number their long-only options from here */
};

#define AIM_COMMON_LONGOPTS                                      \
	{"help", no_argument, 0, AIM_OPT_HELP},                  \
	{"version", no_argument, 0, AIM_OPT_VERSION},            \
	{"threads", required_argument, 0, AIM_OPT_THREADS},      \
	{"quiet", no_argument, 0, 'q'},                          \
	{"verbose", no_argument, 0, 'v'}
#define AIM_COMMON_SHORTOPTS "qv"

typedef struct {
	const char *name;   /* program name for messages */
	const char *usage;  /* full --help text */
	int threads;        /* --threads (default: all cores) */
	int quiet;          /* -q */
	int verbose;        /* -v */
} aim_prog;

extern aim_prog aim_self; /* the running program, for messages */

/* Set defaults, ignore SIGPIPE (writes then report EPIPE, which the stream
 * writer turns into a quiet end). */
void aim_prog_init(const char *name, const char *usage);
/* Handle a common option or an unknown one ('?'); exits for --help,
 * --version and usage errors. Returns 1 if handled. */
int aim_common_option(int c, const char *arg);
/* Apply --threads to OpenBLAS and to our own parallel loops. */
void aim_apply_threads(void);

/* Messages. */
void aim_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void aim_info(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* unless -q */
_Noreturn void aim_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print aim_errmsg() and exit 1 (or exit 0 quietly for AIM_EPIPE). */
_Noreturn void aim_die_status(int status);
_Noreturn void aim_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Option values: exit with a usage error naming the option if malformed. */
long long aim_opt_int(const char *opt, const char *arg, long long min, long long max);
double aim_opt_float(const char *opt, const char *arg, double min, double max);
/* "i/n" with 0 <= i < n */
void aim_opt_shard(const char *opt, const char *arg, int *i, int *n);
/* Comma-separated floats, e.g. --lr 1e-4,3e-4; returns count (<= max). */
int aim_opt_floats(const char *opt, const char *arg, double *out, int max);

/* Progress: on a terminal a line rewritten in place (5 times a second);
 * otherwise a line every `every` seconds that starts with the UTC time
 * (2026-12-01T21:15:02Z aim-extract: ...); nothing with -q. The
 * environment variable AIM_PROGRESS_SECONDS sets the interval of both. */
typedef struct {
	double start, last;
	double every;
	int tty;
} aim_progress;
void aim_progress_start(aim_progress *p, double every);
/* printf-style status; rate-limited. */
void aim_progress_update(aim_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The common form: "DONE UNIT (RATE UNIT/s)", then ", P%, ETA H:MM:SS" when
 * the fraction of the input consumed is known (frac in [0, 1]; negative
 * when the input's size is not known, as on a pipe), then ", " and the
 * printf-style rest when fmt is not NULL. */
void aim_progress_count(aim_progress *p, int64_t done, const char *unit, double frac,
			const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void aim_progress_end(aim_progress *p);
double aim_now(void); /* monotonic seconds */

#endif
