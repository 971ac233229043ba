#ifndef PGCROND_CRON_H
#define PGCROND_CRON_H

/* Cron expressions: Vixie cron's language exactly, plus pg_cron's extensions ("$" as the
 * day-of-month field, "N seconds") and a six-field form with seconds first. Pure logic: no
 * I/O besides reading a zone's TZif file in cron_tz_open(). See DESIGN.md "Schedules". */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cron_kind {
	CRON_CALENDAR, /* fields matched against the wall clock */
	CRON_INTERVAL, /* "N seconds": N seconds after the previous start */
	CRON_REBOOT,   /* "@reboot": once when the daemon starts, never again */
};

/* flags */
#define CRON_DOM_STAR  0x01 /* day-of-month field starts with '*' */
#define CRON_DOW_STAR  0x02 /* day-of-week field starts with '*' */
#define CRON_LAST_DOM  0x04 /* day-of-month is '$': the last day of the month */
#define CRON_SECONDS   0x08 /* six-field form: the seconds field was given */
#define CRON_WILDCARD  0x10 /* minute or hour field starts with '*': follows the wall clock
                             * across DST changes instead of the fixed-time rule */

/* A compiled expression: one bitset per field. Plain data, copyable. */
typedef struct cron_expr {
	uint64_t sec;  /* bits 0-59 */
	uint64_t min;  /* bits 0-59 */
	uint32_t hour; /* bits 0-23 */
	uint32_t dom;  /* bits 1-31 */
	uint16_t mon;  /* bits 1-12 */
	uint8_t dow;   /* bits 0-6, 0 = Sunday */
	uint8_t flags; /* CRON_* above */
	enum cron_kind kind;
	int interval; /* CRON_INTERVAL: seconds, 1-59 */
} cron_expr;

/* Parse TEXT. On error returns -EINVAL and writes one sentence for a person into ERR,
 * quoting the expression and naming the column (1-based) of the offending character:
 *   "*\/0 * * * *": step must be at least 1 (column 3)   (written without the backslash)
 * ERR may be NULL. */
int cron_parse(const char *text, cron_expr *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* A time zone (the daemon's "timezone"). Opaque; one per zone, shared read-only. */
typedef struct cron_tz cron_tz;

/* Open zone NAME ("UTC", "Europe/Berlin"); returns 0, or -ENOENT for an unknown zone with
 * a message in ERR. */
int cron_tz_open(const char *name, cron_tz **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void cron_tz_free(cron_tz **tz);

#define CRON_NEVER INT64_MIN

/* The first fire instant strictly after AFTER (Unix seconds, UTC) in zone TZ, as Unix
 * seconds; CRON_NEVER if the expression can never fire (0 0 30 2 *), and for @reboot.
 * For CRON_INTERVAL it is AFTER + interval (AFTER being the previous start). Exact over the
 * whole 400-year Gregorian cycle; DST handled as DESIGN.md says (cronie's rules). */
int64_t cron_next(const cron_expr *e, const cron_tz *tz, int64_t after);

/* True if E ever fires (checked without a search): false for 0 0 30 2 * and the like. */
bool cron_can_fire(const cron_expr *e);

#endif
