#ifndef PGCROND_CRON_H
#define PGCROND_CRON_H

/* Cron expressions: Vixie cron's language exactly, plus pg_cron's extensions ("$" as the
 * day-of-month field, "N seconds") and a six-field form with seconds first. Pure logic: no
 * I/O besides reading a zone's TZif file in cron_tz_open(). See DESIGN.md "Schedules". */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cron_tz.h"

enum cron_kind {
	CRON_CALENDAR, /* fields matched against the wall clock */
	CRON_INTERVAL, /* "N seconds": N seconds after the previous start */
	CRON_REBOOT,   /* "@reboot": once when the daemon starts, never again */
	CRON_RRULE,    /* "RRULE:FREQ=...": an RFC 5545 recurrence rule (cron_rrule.c, libical) */
};

/* flags */
#define CRON_DOM_STAR 0x01 /* day-of-month field starts with '*' */
#define CRON_DOW_STAR 0x02 /* day-of-week field starts with '*' */
#define CRON_LAST_DOM 0x04 /* day-of-month is '$': the last day of the month */
#define CRON_SECONDS 0x08  /* six-field form: the seconds field was given */
#define CRON_WILDCARD                                                                                 \
	0x10                 /* minute or hour field starts with '*', or a rule of FREQ=SECONDLY,     \
	                      * MINUTELY or HOURLY: follows the wall clock across DST changes instead \
	                      * of the fixed-time rule */
#define CRON_FIRES 0x20      /* a calendar that ever fires (cron_can_fire), found by cron_parse */
#define CRON_ONLY_DATES 0x40 /* DATES are the only dates it fires on (only_dates), not skipped */

struct cron_rrule; /* a compiled recurrence rule: immutable, kept until the process exits */
struct cron_dates; /* a set of dates (a calendar's): immutable, kept until the process exits */

/* A compiled expression: one bitset per field. Plain data, copyable. */
typedef struct cron_expr {
	uint64_t sec;            /* bits 0-59 */
	uint64_t min;            /* bits 0-59 */
	uint32_t hour : 24;      /* bits 0-23 (one word with the next two: 100,000 jobs) */
	uint32_t interval : 6;   /* CRON_INTERVAL: seconds, 1-59 */
	enum cron_kind kind : 2; /* (the compiler says when a kind no longer fits) */
	uint32_t dom;            /* bits 1-31 */
	uint16_t mon;            /* bits 1-12 */
	uint8_t dow;             /* bits 0-6, 0 = Sunday */
	uint8_t flags;           /* CRON_* above */
	int offset; /* seconds added to every fire: the job's spread (cron_spread_offset); 0 */
	const struct cron_rrule *rrule; /* CRON_RRULE: the rule, shared by every copy */
	/* a calendar (skip_dates, or only_dates with CRON_ONLY_DATES): a fire whose local date
	 * (in the zone, before OFFSET) is in it does not exist, or with CRON_ONLY_DATES one whose
	 * date is not; NULL: none. Ignored for CRON_INTERVAL and CRON_REBOOT. */
	const struct cron_dates *dates;
} cron_expr;

/* Parse TEXT. On error returns -EINVAL, zeroes *OUT and writes one sentence for a person
 * into ERR, quoting the expression (without its leading and trailing blanks) and naming the
 * column (1-based, within the quoted text) of the offending character:
 *   "*\/0 * * * *": step must be at least 1 (column 3)   (written without the backslash)
 * ERR may be NULL; a message longer than ERRLEN is cut and ends in "...".
 * Macros are matched in any case (@Daily); "N second" is accepted like "N seconds".
 * "RRULE:..." (any case) is a recurrence rule, read by libical in the zone's local time from
 * DTSTART 1970-01-01T00:00:00; COUNT, a UTC or date-only UNTIL and parts that RFC 5545 does not
 * allow with the rule's FREQ are refused (docs/calendars.md). */
int cron_parse(const char *text, cron_expr *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#define CRON_NEVER INT64_MIN

/* The first fire instant strictly after AFTER (Unix seconds, UTC) in zone TZ, as Unix
 * seconds; CRON_NEVER if the expression can never fire (0 0 30 2 *), and for @reboot;
 * also for a wildcard job whose every match falls into a skipped DST hour of TZ
 * (3 *\/70 2 29 3 *\/7 in Europe/Berlin: 02:00:03 on a Sunday March 29 never exists).
 * For CRON_INTERVAL it is AFTER + interval (AFTER being the previous start). Exact over the
 * whole 400-year Gregorian cycle; DST handled as DESIGN.md says (cronie's rules). A recurrence
 * rule has no fire before 1970 or after 2582 (libical's last year). E's offset is added to
 * every fire (AFTER is compared with the fires so moved). E's dates leave out the fires of the
 * dates skipped, or of those not kept (docs/calendars.md). */
int64_t cron_next(const cron_expr *e, const cron_tz *tz, int64_t after);
/* A NULL TZ means UTC. AFTER outside [CRON_TIME_MIN, CRON_TIME_MAX] (years 1-9999) gives
 * CRON_NEVER; results may lie up to a few hundred years past CRON_TIME_MAX. */
#define CRON_TIME_MIN INT64_C(-62135596800) /* 0001-01-01T00:00:00Z */
#define CRON_TIME_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z */

/* True if E ever fires (found once by cron_parse, without a search: CRON_FIRES): false for
 * 0 0 30 2 * and the like, true for @reboot and "N seconds". Exact: under the AND rule every date
 * that exists meets every weekday within the 400-year cycle, so only impossible dates make a
 * schedule dead. */
bool cron_can_fire(const cron_expr *e);

/* A job's spread: the offset, 0 to WINDOW - 1 seconds, that NAME's fires move by (a hash of the
 * name, the same on every instance and every start); 0 without a window. */
int cron_spread_offset(const char *name, int64_t window);

/* The shortest time between two fires of E in zone TZ, in seconds, looked for among its first
 * 100,000 fires after 2000-01-01 (the cron's cycle is shorter for any schedule that fires that
 * often); INT64_MAX if it fires at most once; for "N seconds", N. */
int64_t cron_shortest_gap(const cron_expr *e, const cron_tz *tz);

/* ---- calendars: the dates a job skips or keeps to (cron_dates.c) ---- */

/* The set of the dates DAYS (days since 1970-01-01; any order, repeats allowed): one copy per
 * set for the life of the process, so that cron_expr stays plain data and two equal sets are
 * one pointer. NULL without memory. */
const struct cron_dates *cron_dates_make(const int64_t *days, size_t n);
/* How many dates D holds (NULL: 0). */
size_t cron_dates_count(const struct cron_dates *d);

/* The dates of an iCalendar file's text (RFC 5545, read by libical): each all-day event's
 * (DTSTART;VALUE=DATE), through the day before its DTEND or for its DURATION, and those of its
 * RRULE, RDATE and EXDATE through CRON_DATES_LAST_YEAR; appended to *DAYS (*N of them, *CAP
 * allocated; free it). -EINVAL with a message in ERR and the text's 1-based line in *LINE (0:
 * none) for what cannot be read: no VCALENDAR, a line libical refuses, an event without a
 * date, an event at a time of day, more than CRON_DATES_MAX dates; -ENOMEM. */
#define CRON_DATES_LAST_YEAR 2199
#define CRON_DATES_MAX 100000
int cron_ics_dates(const char *text, int64_t **days, size_t *n, size_t *cap, int *line, char *err,
                   size_t errlen) __attribute__((warn_unused_result));

/* A six-field schedule means two things: pgcrond reads the first field as seconds, pg_cron
 * ignores a sixth field and reads the first five as minute to day-of-week, so
 * "*\/30 * * * * *" runs every 30 seconds here and every 30 minutes there. pgcrond says so
 * where pg_cron could read the schedule: cron.schedule's NOTICE (sql/pg_cron_compat.sql
 * words it the same) and `pgcrond import`; a job file pg_cron never reads. */
struct cron_six {
	/* 'schedule "*\/30 * * * * *" has six fields: pgcrond reads the first as seconds (every 30
	 * seconds); pg_cron ignores a sixth field (every 30 minutes)' */
	char what[3400];
	/* what to write so that both read it alike: 'So that both read it alike, write
	 * "*\/30 * * * *" for pg_cron's reading or "30 seconds" for pgcrond's.' */
	char hint[2300];
	char five[1024];  /* pg_cron's reading, its five fields; "" if they are no schedule */
	char alike[1024]; /* pgcrond's reading written so that pg_cron reads it alike ("30
	                   * seconds"; after a seconds field of 0, the other five); "" if none */
};
/* True with *OUT when TEXT has six fields and pgcrond reads it; false for anything else (five
 * fields, a macro, "N seconds", a schedule pgcrond refuses). (cron_six.c) */
bool cron_six_fields(const char *text, struct cron_six *out);

/* Times as people write them, for "pgcrond next" and messages. */

/* Parse an ISO-8601 instant with a zone designator: 2026-03-08T01:00:00-05:00, ...T01:00Z,
 * offsets as Z, +01, +0100 or +01:00, 'T' or one space between date and time, seconds
 * optional; or "@SECONDS" (Unix seconds). Returns 0, or -EINVAL with a message in ERR. */
int cron_time_parse(const char *text, int64_t *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Format T as UTC ISO-8601, "2028-02-29T00:00:00Z". Returns 0, or -ENOSPC if BUF is too
 * small (CRON_TIME_BUFSZ is always enough). */
#define CRON_TIME_BUFSZ 32
int cron_time_format(int64_t t, char *buf, size_t len);

#endif
