#ifndef PGCROND_CRON_TZ_H
#define PGCROND_CRON_TZ_H

/* Time zones for cron_next(): the zone API cron.h's users see, and what cron.c's search
 * needs of a zone. libc only. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A time zone (the daemon's "timezone"). Opaque; one per zone, shared read-only. */
typedef struct cron_tz cron_tz;

/* Open zone NAME ("UTC", "Europe/Berlin"): its TZif file under $TZDIR, else
 * /usr/share/zoneinfo, is read once (versions 1-4, with the POSIX TZ footer for instants
 * past the table). "UTC" needs no file. Returns 0; -ENOENT for an unknown or malformed name;
 * -EINVAL for a file that is not a usable TZif (e.g. leap-second "right/" zones); -ENOMEM.
 * ERR gets a message in every error case. Free with cron_tz_free(), which sets *TZ to NULL. */
int cron_tz_open(const char *name, cron_tz **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void cron_tz_free(cron_tz **tz);

/* The zone's name as given to cron_tz_open(); "UTC" for a NULL TZ. */
const char *cron_tz_name(const cron_tz *tz);

/* The zone's UTC offset at instant T, in seconds east of Greenwich (+3600 for CET). A NULL
 * TZ is UTC. */
int32_t cron_tz_offset(const cron_tz *tz, int64_t t);

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
