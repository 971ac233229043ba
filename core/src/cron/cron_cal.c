/* Helpers shared by cron.c and cron_tz.c (cron_cal.h). */

#include "cron_cal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void cron_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (n < 0)
		err[0] = '\0';
	else if ((size_t)n >= errlen && errlen > 4)
		memcpy(err + errlen - 4, "...", 4);
}
