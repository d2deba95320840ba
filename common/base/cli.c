/* Shared program start: common options, messages, exits, progress. */
#include "cli.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blas_threads.h"
#include "version.h"

aim_prog aim_self = {"aim", "", 0, 0, 0};

/* Optional hook: the backend registry reports which compute backends exist
 * (weak so tools without a model still link). */
__attribute__((weak)) const char *aim_backend_describe(void) { return "cpu (OpenBLAS)"; }

/* How idle worker threads wait. OpenBLAS's pool (threaded GEMMs when
 * OpenBLAS computes them) and OpenMP's (our loops, and oneDNN's products,
 * which run on the same team) take turns on the same cores, and a pool
 * spinning long after its turn starves the other: with both spinning, on 2
 * busy cores a training step ran up to 10x slower, aim-eval 3x. So
 * OpenBLAS's workers always sleep at once (OPENBLAS_THREAD_TIMEOUT).
 * OpenMP's sleep at once too (OMP_WAIT_POLICY=passive) where OpenBLAS
 * computes the GEMMs; where oneDNN does, OpenBLAS only ever runs on one
 * thread (blas_threads.h) and nothing takes turns with the team, so its
 * workers spin a bounded while (GOMP_SPINCOUNT=30000: 0.1-2 ms, as long as
 * the CPU's pause instruction takes) before they sleep:
 * the next parallel loop of a step then finds them awake instead of paying
 * a futex wake-up per loop, which on 2 cores was 14 % of a fine-tuning
 * step in the kernel (aim-probe --tune full on Fashion-MNIST: 707 -> 1,008
 * images/s; aim-train +20 %; aim-extract, whose loops are long, the same).
 * Both libraries read these settings only when they load, so the program
 * starts itself again with them set, unless the user chose values (or
 * AIM_NO_REEXEC is set). */
#define AIM_OMP_SPINCOUNT "30000"

static void set_thread_waits(void)
{
	int omp_chosen = getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT");
	if ((omp_chosen && getenv("OPENBLAS_THREAD_TIMEOUT")) || getenv("AIM_NO_REEXEC"))
		return;
	FILE *f = fopen("/proc/self/cmdline", "rb");
	if (!f)
		return;
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	int whole = feof(f);
	fclose(f);
	if (!whole || n == 0)
		return; /* an argument list too long to rebuild: run on */
	buf[n] = 0;
	char *argv[4096];
	int argc = 0;
	for (size_t i = 0; i < n && argc < 4095; i += strlen(buf + i) + 1)
		argv[argc++] = buf + i;
	argv[argc] = NULL;
	if (!omp_chosen) {
		if (aim_sgemm_env_onednn(NULL))
			setenv("GOMP_SPINCOUNT", AIM_OMP_SPINCOUNT, 1);
		else
			setenv("OMP_WAIT_POLICY", "passive", 1);
	}
	if (!getenv("OPENBLAS_THREAD_TIMEOUT"))
		setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
	execv("/proc/self/exe", argv);
	/* Not re-executed: run on with the libraries' default waits. */
}

void aim_prog_init(const char *name, const char *usage)
{
	set_thread_waits();
	aim_self.name = name;
	aim_self.usage = usage;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	aim_self.threads = n > 0 ? (int)n : 1;
	const char *env = getenv("AIM_THREADS");
	if (env && atoi(env) > 0)
		aim_self.threads = atoi(env);
	/* A closed pipe must surface as EPIPE from write(), which the stream
	 * writer turns into a quiet end instead of death by signal. */
	signal(SIGPIPE, SIG_IGN);
}

void aim_apply_threads(void)
{
	openblas_set_num_threads(aim_self.threads);
	omp_set_num_threads(aim_self.threads);
}

int aim_common_option(int c, const char *arg)
{
	switch (c) {
	case AIM_OPT_HELP:
		fputs(aim_self.usage, stdout);
		exit(fflush(stdout) ? AIM_EXIT_FAILURE : AIM_EXIT_OK);
	case AIM_OPT_VERSION:
		printf("%s (aim) %s\nbackends: %s\n", aim_self.name, AIM_VERSION, aim_backend_describe());
		exit(AIM_EXIT_OK);
	case AIM_OPT_THREADS:
		aim_self.threads = (int)aim_opt_int("--threads", arg, 1, 4096);
		return 1;
	case 'q':
		aim_self.quiet = 1;
		return 1;
	case 'v':
		aim_self.verbose++;
		return 1;
	case '?':
	case ':':
		/* getopt_long has printed the reason. */
		fprintf(stderr, "Try '%s --help' for more information.\n", aim_self.name);
		exit(AIM_EXIT_USAGE);
	default:
		aim_usage_error("unhandled option (internal error)");
	}
}

static void vmsg(const char *kind, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: %s", aim_self.name, kind);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void aim_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
}

void aim_info(const char *fmt, ...)
{
	if (aim_self.quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
}

_Noreturn void aim_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
	exit(AIM_EXIT_FAILURE);
}

_Noreturn void aim_die_status(int status)
{
	if (status == AIM_EPIPE)
		exit(AIM_EXIT_OK); /* downstream has what it wanted */
	fprintf(stderr, "%s: %s\n", aim_self.name, aim_errmsg());
	exit(AIM_EXIT_FAILURE);
}

_Noreturn void aim_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help' for more information.\n", aim_self.name);
	exit(AIM_EXIT_USAGE);
}

long long aim_opt_int(const char *opt, const char *arg, long long min, long long max)
{
	char *end;
	errno = 0;
	long long v = strtoll(arg, &end, 10);
	if (errno || end == arg || *end)
		aim_usage_error("%s: '%s' is not an integer", opt, arg);
	if (v < min || v > max)
		aim_usage_error("%s: %lld is out of range [%lld, %lld]", opt, v, min, max);
	return v;
}

double aim_opt_float(const char *opt, const char *arg, double min, double max)
{
	char *end;
	errno = 0;
	double v = strtod(arg, &end);
	if (errno || end == arg || *end || !isfinite(v))
		aim_usage_error("%s: '%s' is not a number", opt, arg);
	if (v < min || v > max)
		aim_usage_error("%s: %g is out of range [%g, %g]", opt, v, min, max);
	return v;
}

void aim_opt_shard(const char *opt, const char *arg, int *i, int *n)
{
	char *end, *end2;
	long a = strtol(arg, &end, 10);
	if (end == arg || *end != '/')
		aim_usage_error("%s: '%s' is not of the form i/n", opt, arg);
	long b = strtol(end + 1, &end2, 10);
	if (end2 == end + 1 || *end2 || b < 1 || a < 0 || a >= b || b > 1000000)
		aim_usage_error("%s: '%s' needs 0 <= i < n", opt, arg);
	*i = (int)a;
	*n = (int)b;
}

int aim_opt_floats(const char *opt, const char *arg, double *out, int max)
{
	int n = 0;
	const char *p = arg;
	for (;;) {
		char *end;
		errno = 0;
		double v = strtod(p, &end);
		if (errno || end == p || (*end && *end != ',') || !isfinite(v))
			aim_usage_error("%s: '%s' is not a comma-separated list of numbers", opt, arg);
		if (n == max)
			aim_usage_error("%s: at most %d values", opt, max);
		out[n++] = v;
		if (!*end)
			return n;
		p = end + 1;
	}
}

double aim_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void aim_progress_start(aim_progress *p, double every)
{
	p->start = p->last = aim_now();
	p->every = every > 0 ? every : 10;
	p->tty = isatty(STDERR_FILENO);
	const char *env = getenv("AIM_PROGRESS_SECONDS");
	char *end;
	double v = env ? strtod(env, &end) : -1;
	if (env && end != env && !*end && v >= 0)
		p->every = v;
	else if (p->tty)
		p->every = 0.2;
}

static void progress_vprint(aim_progress *p, const char *fmt, va_list ap)
{
	if (p->tty) {
		fprintf(stderr, "\r\033[K%s: ", aim_self.name);
		vfprintf(stderr, fmt, ap);
	} else {
		char stamp[32];
		time_t t = time(NULL);
		struct tm tm;
		strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
		fprintf(stderr, "%s %s: ", stamp, aim_self.name);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	fflush(stderr);
}

/* Rate limit: 1 when a line is due now. */
static int progress_due(aim_progress *p)
{
	if (aim_self.quiet)
		return 0;
	double now = aim_now();
	if (now - p->last < p->every)
		return 0;
	p->last = now;
	return 1;
}

void aim_progress_update(aim_progress *p, const char *fmt, ...)
{
	if (!progress_due(p))
		return;
	va_list ap;
	va_start(ap, fmt);
	progress_vprint(p, fmt, ap);
	va_end(ap);
}

static void print_line(aim_progress *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	progress_vprint(p, fmt, ap);
	va_end(ap);
}

void aim_progress_count(aim_progress *p, int64_t done, const char *unit, double frac,
			const char *fmt, ...)
{
	if (!progress_due(p))
		return;
	double secs = p->last - p->start;
	double rate = secs > 0 ? (double)done / secs : 0;
	char known[64] = "", rest[256] = "";
	if (frac >= 0 && frac <= 1) {
		if (frac > 0) {
			long eta = lround(secs * (1 - frac) / frac);
			snprintf(known, sizeof known, ", %.1f%%, ETA %ld:%02ld:%02ld", 100 * frac,
				 eta / 3600, eta / 60 % 60, eta % 60);
		} else {
			snprintf(known, sizeof known, ", 0.0%%");
		}
	}
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		rest[0] = ',', rest[1] = ' ';
		vsnprintf(rest + 2, sizeof rest - 2, fmt, ap);
		va_end(ap);
	}
	print_line(p, "%lld %s (%.1f %s/s)%s%s", (long long)done, unit, rate, unit, known, rest);
}

void aim_progress_end(aim_progress *p)
{
	if (p->tty && !aim_self.quiet)
		fputs("\r\033[K", stderr);
}
