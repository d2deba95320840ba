#include "err.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char msg[1024];

int aim_verror(const char *fmt, va_list ap)
{
	vsnprintf(msg, sizeof msg, fmt, ap);
	return AIM_ERR;
}

int aim_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	aim_verror(fmt, ap);
	va_end(ap);
	return AIM_ERR;
}

int aim_error_prefix(const char *fmt, ...)
{
	char prefix[256], old[sizeof msg - 260];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	memcpy(old, msg, sizeof old - 1);
	old[sizeof old - 1] = 0;
	snprintf(msg, sizeof msg, "%.255s: %.760s", prefix, old);
	return AIM_ERR;
}

const char *aim_errmsg(void) { return msg[0] ? msg : "unknown error"; }
void aim_error_clear(void) { msg[0] = 0; }
