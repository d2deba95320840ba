/* Error reporting for library code.
 *
 * Library functions never print and never exit: on failure they record a
 * one-line message with aim_error() and return a negative status. Only the
 * tools (in tools/) print the message, prefixed with the program name, and
 * choose the exit code. The message is thread-local so parallel workers can
 * fail independently. */
#ifndef AIM_ERR_H
#define AIM_ERR_H

#include <stdarg.h>

/* Exit codes shared by every tool (documented in each man page). */
enum aim_exit {
	AIM_EXIT_OK = 0,
	AIM_EXIT_FAILURE = 1, /* runtime failure: bad input, I/O error, ... */
	AIM_EXIT_USAGE = 2,   /* unknown or bad option */
};

/* Library status codes (negative). */
enum aim_status {
	AIM_OK = 0,
	AIM_ERR = -1,        /* message in aim_errmsg() */
	AIM_EPIPE = -2,      /* downstream closed the pipe: end quietly */
};

/* Record a printf-style message; always returns AIM_ERR. */
int aim_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int aim_verror(const char *fmt, va_list ap);
/* Prefix the current message with "prefix: " (adds context on the way up). */
int aim_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *aim_errmsg(void);
void aim_error_clear(void);

#endif
