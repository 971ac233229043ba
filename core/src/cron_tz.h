#ifndef PGCROND_CRON_TZ_H
#define PGCROND_CRON_TZ_H

/* What cron.c's search needs of a time zone beyond cron.h (private to cron.c and
 * cron_tz.c). */

#include <stdbool.h>
#include <stdint.h>

#include "cron.h"

/* A span of constant UTC offset containing some instant: [start, end), offset OFF, the
 * offset before START being PREV. */
struct cron_tz_period {
	int64_t start, end;
	int32_t off, prev;
};

/* The span around instant T (UTC seconds); NULL or UTC: one span for all time. */
void cron_tz_period(const cron_tz *tz, int64_t t, struct cron_tz_period *p);
/* NULL or UTC: local time is UTC time. */
bool cron_tz_is_utc(const cron_tz *tz);

#endif
