/* Calendars: sets of dates a job skips or keeps to (cron.h), and the dates of an iCalendar
 * file, read by libical. cron.c looks dates up (cron_cal.h's struct cron_dates); this file
 * makes the sets, one copy of each for the life of the process, like the recurrence rules, so
 * that cron_expr stays plain data and a calendar read again unchanged is the same pointer. */
#include <errno.h>
#include <pthread.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libical/ical.h>

#include "array.h"
#include "cron.h"
#include "cron_cal.h"
#include "text.h"

/* ---- the interned sets ---- */

static void *sets; /* tsearch tree of struct cron_dates *, by content */
static pthread_mutex_t sets_mu = PTHREAD_MUTEX_INITIALIZER;

static int by_runs(const void *a, const void *b)
{
	const struct cron_dates *x = a, *y = b;
	if (x->n_runs != y->n_runs)
		return x->n_runs < y->n_runs ? -1 : 1;
	for (size_t i = 0; i < 2 * x->n_runs; i++)
		if (x->run[i] != y->run[i])
			return x->run[i] < y->run[i] ? -1 : 1;
	return 0;
}

static int by_day(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

const struct cron_dates *cron_dates_make(const int64_t *days, size_t n)
{
	int64_t *sorted = n ? malloc(n * sizeof(*sorted)) : NULL;
	struct cron_dates *d = calloc(1, sizeof(*d) + 2 * n * sizeof(int64_t));
	if ((n && !sorted) || !d) {
		free(sorted);
		free(d);
		return NULL;
	}
	if (n) {
		memcpy(sorted, days, n * sizeof(*sorted));
		qsort(sorted, n, sizeof(*sorted), by_day);
	}
	for (size_t i = 0; i < n; i++) {
		if (d->n_runs && sorted[i] <= d->run[2 * d->n_runs - 1] + 1) {
			if (sorted[i] > d->run[2 * d->n_runs - 1]) {
				d->run[2 * d->n_runs - 1] = sorted[i];
				d->n_days++;
			}
			continue;
		}
		d->run[2 * d->n_runs] = d->run[2 * d->n_runs + 1] = sorted[i];
		d->n_runs++;
		d->n_days++;
	}
	free(sorted);
	pthread_mutex_lock(&sets_mu);
	struct cron_dates **at = tsearch(d, &sets, by_runs);
	const struct cron_dates *kept = at ? *at : NULL;
	pthread_mutex_unlock(&sets_mu);
	if (kept != d)
		free(d);
	return kept;
}

size_t cron_dates_count(const struct cron_dates *d)
{
	return d ? d->n_days : 0;
}

/* ---- iCalendar files ---- */

struct ics {
	const char *text;
	int64_t **days;
	size_t *n, *cap;
	char *err;
	size_t errlen;
	int *line;
};

/* The 1-based line of TEXT where the K-th (0-based) line starting with PREFIX (any case) is;
 * 0 if none. */
static int line_of(const char *text, const char *prefix, int k)
{
	int line = 1;
	size_t len = strlen(prefix);
	for (const char *p = text; p && *p; line++) {
		if (strncasecmp(p, prefix, len) == 0 && k-- == 0)
			return line;
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	return 0;
}

/* The line from FROM on that holds WHAT (libical's message ends with the text it refused,
 * its ';' and ',' escaped); FROM if none. */
static int line_holding(const char *text, const char *what, int from)
{
	char want[256];
	size_t n = 0;
	for (const char *s = what; *s && n + 1 < sizeof(want); s++)
		if (!(*s == '\\' && (s[1] == ';' || s[1] == ',')))
			want[n++] = *s;
	want[n] = '\0';
	if (!n)
		return from;
	int line = 1;
	for (const char *p = text; p && *p; line++) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (line >= from && len >= n && memmem(p, len, want, n))
			return line;
		p = eol ? eol + 1 : NULL;
	}
	return from;
}

__attribute__((format(printf, 3, 4))) static int fail(struct ics *x, int line, const char *fmt, ...)
{
	if (x->err && x->errlen)
		TEXT_VA_FORMAT(x->err, x->errlen, fmt);
	*x->line = line;
	return -EINVAL;
}

static int add_day(struct ics *x, int64_t day, int line)
{
	if (*x->n >= CRON_DATES_MAX)
		return fail(x, line,
		            "more than %d dates; a calendar lists holidays and closing days, not "
		            "every day (a schedule says that): split it or shorten its repeating "
		            "events",
		            CRON_DATES_MAX);
	if (array_grow(x->days, *x->n, x->cap, sizeof(**x->days), 64) < 0)
		return -ENOMEM;
	(*x->days)[(*x->n)++] = day;
	return 0;
}

static int64_t day_of(struct icaltimetype t)
{
	return days_from_civil(t.year, t.month, t.day);
}

/* The days of one occurrence starting at S: through the day before its end, at least one. */
static int add_span(struct ics *x, int64_t s, int64_t days, int line)
{
	int rc = 0;
	for (int64_t k = 0; k < (days > 0 ? days : 1) && rc == 0; k++)
		rc = add_day(x, s + k, line);
	return rc;
}

static bool excluded(icalcomponent *ev, int64_t day)
{
	for (icalproperty *p = icalcomponent_get_first_property(ev, ICAL_EXDATE_PROPERTY); p;
	     p = icalcomponent_get_next_property(ev, ICAL_EXDATE_PROPERTY))
		if (day_of(icalproperty_get_exdate(p)) == day)
			return true;
	return false;
}

/* One VEVENT, its BEGIN at LINE. */
static int event_dates(struct ics *x, icalcomponent *ev, int line)
{
	icalproperty *err = icalcomponent_get_first_property(ev, ICAL_XLICERROR_PROPERTY);
	if (err) {
		const char *m = icalproperty_get_xlicerror(err);
		const char *tail = m ? strrchr(m, ':') : NULL;
		return fail(x,
		            tail ? line_holding(x->text, tail + 1 + (tail[1] == ' '), line) : line,
		            "this event cannot be read: %s; fix the line", m ? m : "(libical)");
	}
	struct icaltimetype start = icalcomponent_get_dtstart(ev);
	if (icaltime_is_null_time(start))
		return fail(
		    x, line,
		    "this event has no date; give it DTSTART;VALUE=DATE:YYYYMMDD or remove it");
	if (!start.is_date)
		return fail(
		    x, line_holding(x->text, "DTSTART", line),
		    "this event has a time of day (%04d-%02d-%02d at %02d:%02d); a calendar of "
		    "dates takes all-day events: write DTSTART;VALUE=DATE:%04d%02d%02d, or "
		    "remove the event",
		    start.year, start.month, start.day, start.hour, start.minute, start.year,
		    start.month, start.day);
	struct icaltimetype end = icalcomponent_get_dtend(ev);
	int64_t first = day_of(start), days = icaltime_is_null_time(end) ? 1 : day_of(end) - first;
	if (days > 366)
		return fail(x, line,
		            "this event lasts %lld days; a calendar's event lasts a year at most: "
		            "list the dates, or give the job a schedule that leaves them out",
		            (long long)days);
	int rc = 0;
	icalproperty *rr = icalcomponent_get_first_property(ev, ICAL_RRULE_PROPERTY);
	if (!rr) {
		rc = add_span(x, first, days, line);
	} else {
		struct icalrecurrencetype rule = icalproperty_get_rrule(rr);
		icalrecur_iterator *it = icalrecur_iterator_new(rule, start);
		if (!it)
			return fail(x, line_holding(x->text, "RRULE", line),
			            "the RRULE of this event cannot be used (libical: %s); fix it",
			            icalerror_strerror(icalerrno));
		for (struct icaltimetype t = icalrecur_iterator_next(it);
		     rc == 0 && !icaltime_is_null_time(t) && t.year <= CRON_DATES_LAST_YEAR;
		     t = icalrecur_iterator_next(it))
			if (!excluded(ev, day_of(t)))
				rc = add_span(x, day_of(t), days, line);
		icalrecur_iterator_free(it);
	}
	for (icalproperty *p = icalcomponent_get_first_property(ev, ICAL_RDATE_PROPERTY);
	     p && rc == 0; p = icalcomponent_get_next_property(ev, ICAL_RDATE_PROPERTY)) {
		struct icaldatetimeperiodtype r = icalproperty_get_rdate(p);
		if (!icaltime_is_null_time(r.time))
			rc = add_span(x, day_of(r.time), days, line);
	}
	return rc;
}

int cron_ics_dates(const char *text, int64_t **days, size_t *n, size_t *cap, int *line, char *err,
                   size_t errlen)
{
	struct ics x = {text, days, n, cap, err, errlen, line};
	*line = 0;
	icalcomponent *root = icalparser_parse_string(text);
	bool xroot = root && icalcomponent_isa(root) == ICAL_XROOT_COMPONENT;
	icalcomponent *cal =
	    xroot ? icalcomponent_get_first_component(root, ICAL_VCALENDAR_COMPONENT) : root;
	int rc = 0, k = 0;

	if (!cal || icalcomponent_isa(cal) != ICAL_VCALENDAR_COMPONENT) {
		if (root)
			icalcomponent_free(root);
		return fail(&x, 0,
		            "not an iCalendar file: libical found no whole BEGIN:VCALENDAR ... "
		            "END:VCALENDAR in it; export the calendar again as .ics");
	}
	for (; cal && rc == 0;
	     cal = xroot ? icalcomponent_get_next_component(root, ICAL_VCALENDAR_COMPONENT)
	                 : NULL) {
		icalproperty *e = icalcomponent_get_first_property(cal, ICAL_XLICERROR_PROPERTY);
		if (e) {
			const char *m = icalproperty_get_xlicerror(e);
			const char *tail = m ? strrchr(m, ':') : NULL;
			rc = fail(&x, tail ? line_holding(text, tail + 1 + (tail[1] == ' '), 1) : 0,
			          "this calendar cannot be read: %s; fix the line",
			          m ? m : "(libical)");
		}
		for (icalcomponent *ev =
		         icalcomponent_get_first_component(cal, ICAL_VEVENT_COMPONENT);
		     ev && rc == 0;
		     ev = icalcomponent_get_next_component(cal, ICAL_VEVENT_COMPONENT))
			rc = event_dates(&x, ev, line_of(text, "BEGIN:VEVENT", k++));
	}
	icalcomponent_free(root);
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	return rc;
}
