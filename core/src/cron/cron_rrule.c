/* Recurrence rules, "RRULE:FREQ=...": RFC 5545's language, computed by libical (icalrecur).
 *
 * A rule is read in floating local time from a fixed start, DTSTART = 1970-01-01T00:00:00 in
 * the job's zone: the parts a rule leaves out come from it (midnight, the 1st, a Thursday), and
 * INTERVAL counts from it, so every instance and every restart agree on which weeks of a
 * FREQ=WEEKLY;INTERVAL=2 rule are on. cron.c turns local times into instants with the zone.
 *
 * libical finds an occurrence by stepping one FREQ at a time from DTSTART and dropping steps the
 * BY parts reject, so a search starts from a checkpoint near the time asked for: a DTSTART moved
 * by whole INTERVAL periods, which gives the same occurrences from there on. A rule stepping by
 * seconds, minutes or hours and limited by BY parts (every second of February 29) would step
 * through years of rejected seconds; such a rule is written as the FREQ=DAILY rule with the same
 * occurrences (its times of day listed, the interval's phase applied to the lists), which libical
 * expands a day at a time. Compiled rules are kept by their text for the life of the process, so
 * that cron_expr stays plain data. */
#include <errno.h>
#include <pthread.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libical/ical.h>

#include "cron.h"
#include "cron_cal.h"

#define RULE_MAX 1000   /* characters after "RRULE:" */
#define LAST_YEAR 2582  /* libical finds no occurrence after this year */
#define DENSE_MAX 20000 /* occurrences a search from a checkpoint may step through */

struct cron_rrule {
	struct icalrecurrencetype rule; /* what libical iterates */
	int64_t period;                 /* a checkpoint's step: seconds, or months if by_month */
	bool by_month;                  /* FREQ=MONTHLY or YEARLY */
	/* A daily rule (INTERVAL=1, no BYSETPOS, every time of day listed) takes nothing from
	 * DTSTART: a search starts at the time asked for. libical tries each listed time of each
	 * day against the day's parts, so the day is found first, by the same rule without its
	 * times (DAYS), and the times only on it; LAST_TOD: its last time of day. */
	bool from_start;
	int last_tod;
	struct icalrecurrencetype days;
	char text[]; /* the rule as written, upper case: the key */
};

static const struct part {
	const char *name;
	const char *hint; /* what it takes, for a message */
} parts[] = {
    {"FREQ", "SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY"},
    {"INTERVAL", "a whole number from 1"},
    {"UNTIL", "a local date and time like 20261231T235959"},
    {"WKST", "a weekday: MO, TU, WE, TH, FR, SA or SU"},
    {"BYSECOND", "seconds 0-59, separated by commas"},
    {"BYMINUTE", "minutes 0-59, separated by commas"},
    {"BYHOUR", "hours 0-23, separated by commas"},
    {"BYDAY", "weekdays like MO,TU or, in a MONTHLY or YEARLY rule, 1MO or -1FR"},
    {"BYMONTHDAY", "days 1-31 or -31 to -1 (from the month's end)"},
    {"BYYEARDAY", "days 1-366 or -366 to -1"},
    {"BYWEEKNO", "ISO weeks 1-53 or -53 to -1"},
    {"BYMONTH", "months 1-12"},
    {"BYSETPOS", "positions 1-366 or -366 to -1 within each FREQ period"},
};
enum { P_FREQ, P_INTERVAL, P_UNTIL, P_WKST, P_COUNT = sizeof(parts) / sizeof(parts[0]) };

static bool empty(const short *a)
{
	return a[0] == ICAL_RECURRENCE_ARRAY_MAX;
}

/* ---- the interned rules ---- */

static void *rules; /* tsearch tree of struct cron_rrule *, by text */
static pthread_mutex_t rules_mu = PTHREAD_MUTEX_INITIALIZER;

static int by_text(const void *a, const void *b)
{
	return strcmp(((const struct cron_rrule *)a)->text, ((const struct cron_rrule *)b)->text);
}

/* R's one copy for the process (R is freed if there is one already); NULL without memory. */
static const struct cron_rrule *intern(struct cron_rrule *r)
{
	pthread_mutex_lock(&rules_mu);
	struct cron_rrule **at = tsearch(r, &rules, by_text);
	const struct cron_rrule *kept = at ? *at : NULL;
	pthread_mutex_unlock(&rules_mu);
	if (kept != r)
		free(r);
	return kept;
}

/* ---- sub-daily rules as daily ones ---- */

/* Keep in LIST (terminated, of CAP) only values V with V % STEP == 0; an empty LIST stands for
 * 0..TO (a part left out that the FREQ leaves free) or for 0 (one taken from DTSTART). Returns
 * the number kept. */
static int phase_list(short *list, int cap, bool free_part, int to, int step)
{
	short in[64];
	int n = 0, k = 0;

	if (empty(list)) {
		for (int v = 0; v <= (free_part ? to : 0); v++)
			in[n++] = (short)v;
	} else {
		for (; n < cap && n < 64 && list[n] != ICAL_RECURRENCE_ARRAY_MAX; n++)
			in[n] = list[n];
	}
	for (int i = 0; i < n; i++)
		if (in[i] % step == 0)
			list[k++] = in[i];
	if (k < cap)
		list[k] = ICAL_RECURRENCE_ARRAY_MAX;
	return k;
}

/* A FREQ=SECONDLY, MINUTELY or HOURLY rule R with BY parts, as FREQ=DAILY: its interval must
 * divide a minute, an hour or a day (the phase is then the same every day, from midnight) in a
 * way the lists can say. Returns 0, 1 if no time of day is left (it never fires), or -EINVAL
 * with a message in MSG. */
static int as_daily(struct icalrecurrencetype *r, char *msg, size_t msglen)
{
	static const char *const unit[] = {"second", "minute", "hour"};
	static const char *const freq[] = {"SECOND", "MINUTE", "HOUR"};
	int f = r->freq == ICAL_SECONDLY_RECURRENCE   ? 0
	        : r->freq == ICAL_MINUTELY_RECURRENCE ? 1
	                                              : 2;
	int n = r->interval;
	/* the step in each list: seconds, minutes, hours */
	int ss = 1, ms = 1, hs = 1;

	if (!empty(r->by_year_day)) {
		cron_seterr(
		    msg, msglen,
		    "BYYEARDAY with FREQ=%sLY: pgcrond takes BYYEARDAY in a FREQ=YEARLY rule "
		    "only; use BYMONTH and BYMONTHDAY",
		    freq[f]);
		return -EINVAL;
	}
	if (!empty(r->by_set_pos)) {
		cron_seterr(
		    msg, msglen,
		    "BYSETPOS picks from the occurrences of one %s, which has one; leave it "
		    "out, or use FREQ=DAILY with BYSETPOS",
		    unit[f]);
		return -EINVAL;
	}
	int d = n * (f == 0 ? 1 : f == 1 ? 60 : 3600); /* the step in seconds */
	/* The phase fixes the FREQ's own unit and the coarser ones; a finer part expands. */
	if (d < 60 && 60 % d == 0)
		ss = d;
	else if (d % 60 == 0 && d < 3600 && 3600 % d == 0)
		ss = f == 0 ? 60 : 1, ms = d / 60;
	else if (d % 3600 == 0 && d <= DAY && DAY % d == 0)
		ss = f == 0 ? 60 : 1, ms = f <= 1 ? 60 : 1, hs = d / 3600;
	else {
		cron_seterr(
		    msg, msglen,
		    "INTERVAL=%d with FREQ=%sLY and BY parts: pgcrond computes such a rule when "
		    "its interval divides a minute, an hour or a day evenly (like 15 minutes or 6 "
		    "hours); list the times in BYHOUR and BYMINUTE of a FREQ=DAILY rule instead",
		    n, freq[f]);
		return -EINVAL;
	}
	/* The FREQ leaves free the parts from its own unit up; a finer part left out is
	 * DTSTART's, 0. */
	int a = phase_list(r->by_second, ICAL_BY_SECOND_SIZE, f == 0, 59, ss);
	int b = phase_list(r->by_minute, ICAL_BY_MINUTE_SIZE, f <= 1, 59, ms);
	int c = phase_list(r->by_hour, ICAL_BY_HOUR_SIZE, true, 23, hs);
	r->freq = ICAL_DAILY_RECURRENCE;
	r->interval = 1;
	return a && b && c ? 0 : 1;
}

/* ---- parsing ---- */

/* Check each part of BODY (upper case, LEN characters) alone: NAME=VALUE, a known NAME, once,
 * and a value libical reads. On error writes MSG and *COL (0-based, within BODY). */
static int check_parts(const char *body, size_t len, unsigned *seen, char *msg, size_t msglen,
                       size_t *col)
{
	char one[RULE_MAX + 32];

	*seen = 0;
	for (size_t at = 0; at <= len;) {
		const char *s = body + at;
		const char *e = memchr(s, ';', len - at);
		size_t plen = e ? (size_t)(e - s) : len - at;
		const char *eq = memchr(s, '=', plen);
		*col = at;
		if (plen == 0) {
			cron_seterr(msg, msglen,
			            "an empty part; parts are NAME=VALUE separated by ';'");
			return -EINVAL;
		}
		size_t nlen = eq ? (size_t)(eq - s) : plen;
		int p = 0;
		while (p < P_COUNT &&
		       !(strlen(parts[p].name) == nlen && !memcmp(parts[p].name, s, nlen)))
			p++;
		if (nlen == 5 && !memcmp(s, "COUNT", 5)) {
			cron_seterr(
			    msg, msglen,
			    "COUNT counts fires from the rule's start, 1970-01-01 for pgcrond; "
			    "end the rule with UNTIL instead");
			return -EINVAL;
		}
		if (p == P_COUNT) {
			cron_seterr(
			    msg, msglen,
			    "unknown part \"%.*s\"; a rule has FREQ and may have INTERVAL, UNTIL, "
			    "WKST, BYSECOND, BYMINUTE, BYHOUR, BYDAY, BYMONTHDAY, BYYEARDAY, "
			    "BYWEEKNO, BYMONTH, BYSETPOS",
			    (int)(nlen > 40 ? 40 : nlen), s);
			return -EINVAL;
		}
		if (*seen >> p & 1) {
			cron_seterr(msg, msglen, "%s is given twice; give it once", parts[p].name);
			return -EINVAL;
		}
		*seen |= 1u << p;
		const char *v = eq ? eq + 1 : s + plen;
		int vlen = (int)(s + plen - v);
		bool bad = !eq || vlen == 0;
		if (!bad && p == P_UNTIL && (vlen != 15 || v[8] != 'T'))
			bad = true; /* a date alone, or UTC ("...Z"): not in the job's local time */
		if (!bad) {
			snprintf(one, sizeof(one), "%s%.*s", p == P_FREQ ? "" : "FREQ=YEARLY;",
			         (int)plen, s);
			bad = icalrecurrencetype_from_string(one).freq == ICAL_NO_RECURRENCE;
			icalerror_clear_errno();
		}
		if (bad) {
			cron_seterr(msg, msglen, "%.*s: %s takes %s", (int)(plen > 60 ? 60 : plen),
			            s, parts[p].name, parts[p].hint);
			return -EINVAL;
		}
		at += plen + 1;
	}
	if (!(*seen & 1u << P_FREQ)) {
		*col = 0;
		cron_seterr(msg, msglen,
		            "the rule has no FREQ; start it with FREQ=DAILY or the like");
		return -EINVAL;
	}
	return 0;
}

/* RFC 5545's limits on which BY parts go with which FREQ (libical reads some of them anyway,
 * with its own meaning). */
static int check_combination(const struct icalrecurrencetype *r, char *msg, size_t msglen)
{
	const char *what = NULL;
	for (int i = 0; i < ICAL_BY_DAY_SIZE && r->by_day[i] != ICAL_RECURRENCE_ARRAY_MAX; i++)
		if (icalrecurrencetype_day_position(r->by_day[i]) != 0 &&
		    r->freq != ICAL_MONTHLY_RECURRENCE && r->freq != ICAL_YEARLY_RECURRENCE)
			what = "a numbered BYDAY (like 1MO) goes with FREQ=MONTHLY or YEARLY; give "
			       "the weekday alone (MO)";
	if (!empty(r->by_week_no) && r->freq != ICAL_YEARLY_RECURRENCE)
		what = "BYWEEKNO goes with FREQ=YEARLY only";
	if (!empty(r->by_year_day) && r->freq >= ICAL_DAILY_RECURRENCE &&
	    r->freq != ICAL_YEARLY_RECURRENCE)
		what = "BYYEARDAY does not go with FREQ=DAILY, WEEKLY or MONTHLY; use BYMONTH and "
		       "BYMONTHDAY, or FREQ=YEARLY";
	if (!empty(r->by_month_day) && r->freq == ICAL_WEEKLY_RECURRENCE)
		what = "BYMONTHDAY does not go with FREQ=WEEKLY; use FREQ=MONTHLY or BYDAY";
	if (what)
		cron_seterr(msg, msglen, "%s", what);
	return what ? -EINVAL : 0;
}

static struct icaltimetype local_to_ical(int64_t l)
{
	struct icaltimetype t = icaltime_null_time();
	int64_t y;
	int64_t day = floor_div(l, DAY), sod = l - day * DAY;

	civil_from_days(day, &y, &t.month, &t.day);
	t.year = (int)y;
	t.hour = (int)(sod / 3600);
	t.minute = (int)(sod / 60 % 60);
	t.second = (int)(sod % 60);
	return t;
}

static int64_t ical_to_local(struct icaltimetype t)
{
	return days_from_civil(t.year, t.month, t.day) * DAY + t.hour * 3600 + t.minute * 60 +
	       t.second;
}

/* The checkpoint for a search from local time L: a DTSTART moved by whole periods, one period
 * before the one holding L (libical can report an occurrence of a period that starts before it,
 * a BYWEEKNO week that begins in December). */
static int64_t checkpoint(const struct cron_rrule *r, int64_t l)
{
	if (r->from_start)
		return l;
	if (!r->by_month) {
		int64_t k = floor_div(l, r->period) - 1;
		return k > 0 ? k * r->period : 0;
	}
	int64_t y;
	int m, d;
	civil_from_days(floor_div(l, DAY), &y, &m, &d);
	int64_t k = (floor_div((y - 1970) * 12 + m - 1, r->period) - 1) * r->period;
	if (k <= 0)
		return 0;
	return days_from_civil(1970 + k / 12, (int)(k % 12) + 1, 1) * DAY;
}

/* The first occurrence of RULE from DTSTART that is at or after L, or CRON_NEVER. */
static int64_t first_from(const struct icalrecurrencetype *rule, int64_t dtstart, int64_t l)
{
	icalrecur_iterator *it = icalrecur_iterator_new(*rule, local_to_ical(dtstart));
	int64_t found = CRON_NEVER;

	for (int i = 0; it && i < DENSE_MAX; i++) {
		struct icaltimetype o = icalrecur_iterator_next(it);
		if (icaltime_is_null_time(o))
			break;
		if (ical_to_local(o) >= l) {
			found = ical_to_local(o);
			break;
		}
	}
	if (it)
		icalrecur_iterator_free(it);
	return found;
}

int64_t cron_rrule_next_local(const cron_expr *e, int64_t l)
{
	const struct cron_rrule *r = e->rrule;

	if (!r)
		return CRON_NEVER;
	if (l < 0)
		l = 0;
	if (l >= days_from_civil(LAST_YEAR + 1, 1, 1) * DAY)
		return CRON_NEVER;
	if (!r->from_start)
		return first_from(&r->rule, checkpoint(r, l), l);
	int64_t day = floor_div(l, DAY) * DAY;
	if (l - day > r->last_tod) /* no time of the day is left */
		l = day += DAY;
	int64_t d = first_from(&r->days, day, day);
	if (d == CRON_NEVER)
		return CRON_NEVER;
	return first_from(&r->rule, d > l ? d : l, d > l ? d : l);
}

/* Whether rule R is usable: it fires at all, and a search from a checkpoint never steps through
 * more than DENSE_MAX occurrences (two periods' worth). */
static int check_fires(const struct cron_rrule *r, bool *fires, char *msg, size_t msglen)
{
	cron_expr e = {.rrule = r};
	if (r->from_start) {
		*fires = cron_rrule_next_local(&e, 0) != CRON_NEVER;
		return 0;
	}
	icalrecur_iterator *it = icalrecur_iterator_new(r->rule, local_to_ical(0));
	int n = 0;
	int64_t limit =
	    r->by_month
	        ? days_from_civil(1970 + 2 * r->period / 12, (int)(2 * r->period % 12) + 1, 1) * DAY
	        : 2 * r->period;

	*fires = false;
	if (!it)
		return 0;
	for (;;) {
		struct icaltimetype o = icalrecur_iterator_next(it);
		if (icaltime_is_null_time(o))
			break;
		*fires = true;
		if (ical_to_local(o) >= limit)
			break;
		if (++n == DENSE_MAX) {
			cron_seterr(
			    msg, msglen,
			    "more than %d fires in two of its periods: write it with a shorter "
			    "FREQ (FREQ=DAILY with the same BYHOUR, BYMINUTE, BYSECOND)",
			    DENSE_MAX / 2);
			icalrecur_iterator_free(it);
			return -EINVAL;
		}
	}
	icalrecur_iterator_free(it);
	return 0;
}

static int last_of(const short *list)
{
	int m = 0;
	for (int i = 0; i < 62 && list[i] != ICAL_RECURRENCE_ARRAY_MAX; i++)
		m = list[i] > m ? list[i] : m;
	return m;
}

int cron_rrule_parse(const char *text, size_t len, cron_expr *out, char *msg, size_t msglen,
                     size_t *col)
{
	char body[RULE_MAX + 1];
	unsigned seen;
	int rc;

	*col = 6;
	len -= 6; /* "RRULE:" */
	if (len > RULE_MAX) {
		cron_seterr(msg, msglen, "the rule is longer than %d characters", RULE_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++)
		body[i] = text[6 + i] >= 'a' && text[6 + i] <= 'z' ? (char)(text[6 + i] - 32)
		                                                   : text[6 + i];
	body[len] = '\0';
	if ((rc = check_parts(body, len, &seen, msg, msglen, col)) < 0) {
		*col += 6;
		return rc;
	}
	*col = 6;
	struct icalrecurrencetype rule = icalrecurrencetype_from_string(body);
	icalerror_clear_errno();
	if (rule.freq == ICAL_NO_RECURRENCE) {
		cron_seterr(msg, msglen, "libical cannot read the rule");
		return -EINVAL;
	}
	if ((rc = check_combination(&rule, msg, msglen)) < 0)
		return rc;

	bool wall = rule.freq < ICAL_DAILY_RECURRENCE, never = false;
	bool by = !empty(rule.by_second) || !empty(rule.by_minute) || !empty(rule.by_hour) ||
	          !empty(rule.by_day) || !empty(rule.by_month_day) || !empty(rule.by_month) ||
	          !empty(rule.by_set_pos);
	if (wall && by && (rc = as_daily(&rule, msg, msglen)) != 0) {
		if (rc < 0)
			return rc;
		never = true;
	}
	struct cron_rrule *r = calloc(1, sizeof(*r) + len + 1);
	if (!r) {
		cron_seterr(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	memcpy(r->text, body, len + 1);
	r->rule = rule;
	static const int64_t unit[] = {
	    [ICAL_SECONDLY_RECURRENCE] = 1,     [ICAL_MINUTELY_RECURRENCE] = 60,
	    [ICAL_HOURLY_RECURRENCE] = 3600,    [ICAL_DAILY_RECURRENCE] = DAY,
	    [ICAL_WEEKLY_RECURRENCE] = 7 * DAY, [ICAL_MONTHLY_RECURRENCE] = 1,
	    [ICAL_YEARLY_RECURRENCE] = 12,
	};
	r->by_month = rule.freq >= ICAL_MONTHLY_RECURRENCE;
	r->period = unit[rule.freq] * rule.interval;
	if (rule.freq == ICAL_DAILY_RECURRENCE && rule.interval == 1 && empty(rule.by_set_pos)) {
		/* times left out are DTSTART's, 00:00:00 */
		short *tod[] = {r->rule.by_hour, r->rule.by_minute, r->rule.by_second};
		for (int i = 0; i < 3; i++)
			if (empty(tod[i]))
				tod[i][0] = 0, tod[i][1] = ICAL_RECURRENCE_ARRAY_MAX;
		r->from_start = true;
		r->last_tod = last_of(tod[0]) * 3600 + last_of(tod[1]) * 60 + last_of(tod[2]);
		r->days = r->rule;
		/* whole lists cleared: libical fills in DTSTART's value at [0] only */
		for (int i = 0; i < ICAL_BY_SECOND_SIZE; i++)
			r->days.by_second[i] = ICAL_RECURRENCE_ARRAY_MAX;
		for (int i = 0; i < ICAL_BY_MINUTE_SIZE; i++)
			r->days.by_minute[i] = ICAL_RECURRENCE_ARRAY_MAX;
		for (int i = 0; i < ICAL_BY_HOUR_SIZE; i++)
			r->days.by_hour[i] = ICAL_RECURRENCE_ARRAY_MAX;
	}
	bool fires = false;
	if (!never && (rc = check_fires(r, &fires, msg, msglen)) < 0) {
		free(r);
		return rc;
	}
	if (!(out->rrule = intern(r))) {
		cron_seterr(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	out->kind = CRON_RRULE;
	if (wall)
		out->flags |= CRON_WILDCARD;
	if (fires)
		out->flags |= CRON_FIRES;
	return 0;
}
