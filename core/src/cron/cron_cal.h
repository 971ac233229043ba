#ifndef PGCROND_CRON_CAL_H
#define PGCROND_CRON_CAL_H

/* Helpers shared by cron.c and cron_tz.c (private to them): calendar arithmetic in the
 * proleptic Gregorian calendar, days since 1970-01-01; character classes; error text.
 * libc only. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DAY 86400
/* "No transition" bounds: far outside any time we compute, yet offsets can be added to them
 * without overflow. */
#define T_END ((int64_t)1 << 62)
#define T_BEGIN (-T_END)

/* ---- calendar arithmetic (proleptic Gregorian, days since 1970-01-01) ---- */

static inline int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if (a % b != 0 && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static inline bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static inline int days_in_month(int64_t y, int m)
{
	static const unsigned char dim[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : dim[m];
}

/* Years are counted from March so the leap day ends its year; 400 years are 146097 days. */
static inline int64_t days_from_civil(int64_t y, int m, int d)
{
	if (m <= 2)
		y--;
	int64_t era = floor_div(y, 400);
	int64_t yoe = y - era * 400;               /* 0..399 */
	int64_t mar = m > 2 ? m - 3 : m + 9;       /* March = 0 */
	int64_t doy = (153 * mar + 2) / 5 + d - 1; /* 0..365 */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468; /* 719468: days from 0000-03-01 to 1970-01-01 */
}

static inline void civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
	int64_t z = days + 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097; /* 0..146096 */
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mar = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mar + 2) / 5 + 1);
	*m = (int)(mar < 10 ? mar + 3 : mar - 9);
	*y = era * 400 + yoe + (*m <= 2);
}

/* 0 = Sunday; 1970-01-01 was a Thursday. */
static inline int weekday(int64_t days)
{
	return (int)((days % 7 + 11) % 7);
}

static inline bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static inline bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* ---- recurrence rules (cron_rrule.c, libical: the fuzzer links a stub instead) ---- */

struct cron_expr;
/* TEXT is the whole schedule, LEN characters, starting "RRULE:". Fills OUT's kind, flags and
 * rule; on error -EINVAL (or -ENOMEM) with a message in MSG and the 0-based column in *COL. */
int cron_rrule_parse(const char *text, size_t len, struct cron_expr *out, char *msg, size_t msglen,
                     size_t *col);
/* The first occurrence at or after local time L (local seconds), or CRON_NEVER. */
int64_t cron_rrule_next_local(const struct cron_expr *e, int64_t l);

/* ---- calendars (cron_dates.c) ---- */

/* A set of dates as runs of consecutive days: [run[2i], run[2i + 1]], sorted, apart. */
struct cron_dates {
	size_t n_runs, n_days;
	int64_t run[];
};

/* printf into ERR (ERRLEN bytes; nothing if ERR is NULL). */
void cron_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
