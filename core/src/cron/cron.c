/* Cron expressions: parsing and the next fire time, in a time zone (cron_tz.c).
 *
 * The search works on "local seconds" (wall-clock time written as if it were UTC) with
 * bitsets: whole months are skipped by the month set, the days of a month are found with one
 * 31-bit mask, the time of day with three find-next-bit steps; cron_tz.c gives the spans of
 * constant UTC offset the search walks.
 *
 * This file and cron_tz.c depend on nothing but libc, so the fuzzer can build them alone
 * (tests/fuzz/README.md). */
#include "cron.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cron_cal.h"
#include "cron_tz.h"

/* ---- bit helpers ---- */

static int next_bit(uint64_t set, int from)
{
	if (from >= 64)
		return -1;
	uint64_t m = set & (~UINT64_C(0) << from);
	return m ? __builtin_ctzll(m) : -1;
}

/* ---- parsing ---- */

enum field { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_COUNT };

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static const struct field_spec {
	const char *name; /* for messages */
	int lo, hi;
	const char *const *names; /* three-letter names, the first meaning NAME_BASE */
	int nnames, name_base;
	const char *hint; /* what a person may write instead of an unknown name */
} fields[F_COUNT] = {
    [F_SEC] = {"second", 0, 59, NULL, 0, 0, NULL},
    [F_MIN] = {"minute", 0, 59, NULL, 0, 0, NULL},
    [F_HOUR] = {"hour", 0, 23, NULL, 0, 0, NULL},
    [F_DOM] = {"day-of-month", 1, 31, NULL, 0, 0, NULL},
    [F_MON] = {"month", 1, 12, month_names, 12, 1, "jan-dec or 1-12"},
    [F_DOW] = {"day-of-week", 0, 7, day_names, 7, 0, "sun-sat or 0-7"},
};

/* The macros, as the five fields they stand for; NULL for @reboot (and pg_cron's alias of it,
 * @restart). */
static const struct {
	const char *name;
	const char *fields;
} macros[] = {
    {"yearly", "0 0 1 1 *"}, {"annually", "0 0 1 1 *"}, {"monthly", "0 0 1 * *"},
    {"weekly", "0 0 * * 0"}, {"daily", "0 0 * * *"},    {"midnight", "0 0 * * *"},
    {"hourly", "0 * * * *"}, {"reboot", NULL},          {"restart", NULL},
};

struct parser {
	const char *text; /* the expression without leading/trailing blanks */
	size_t len;
	char *err;
	size_t errlen;
};

/* Case-insensitive: does [S, S+LEN) spell WORD? */
static bool word_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* Writes '"<expression>": <message> (column N)' into ERR; always returns -EINVAL. */
__attribute__((format(printf, 3, 4))) static int fail(const struct parser *ps, const char *at,
                                                      const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!ps->err || ps->errlen == 0)
		return -EINVAL;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	/* A very long expression is quoted by its start; the column still counts in full and
	 * survives any cut, which happens in the middle. */
	char col[32];
	snprintf(col, sizeof(col), " (column %d)", (int)(at - ps->text) + 1);
	size_t clen = strlen(col);
	if (ps->errlen <= clen + 4) {
		snprintf(ps->err, ps->errlen, "%s", col + 1);
		return -EINVAL;
	}
	size_t room = ps->errlen - clen; /* for the head and its NUL */
	int qlen = ps->len > 120 ? 117 : (int)ps->len;
	n = snprintf(ps->err, room, "\"%.*s%s\": %s", qlen, ps->text, ps->len > 120 ? "..." : "",
	             msg);
	size_t used = n < 0 ? 0 : (size_t)n;
	if (used >= room) {
		used = room - 1;
		memcpy(ps->err + used - 3, "...", 3);
	}
	memcpy(ps->err + used, col, clen + 1);
	return -EINVAL;
}

/* A character for a message: printable ASCII as itself, anything else as a hex escape. */
static const char *show_char(char c, char buf[8])
{
	unsigned char u = (unsigned char)c;
	if (u >= 0x21 && u < 0x7f)
		snprintf(buf, 8, "'%c'", c);
	else
		snprintf(buf, 8, "0x%02x", u);
	return buf;
}

/* The digits at *SP (before END) as a number, which stops growing past INT_MAX (anything that
 * big is out of range anyway); *SP moves past them. */
static long read_digits(const char **sp, const char *end)
{
	long v = 0;
	for (; *sp < end && is_digit(**sp); (*sp)++)
		if (v <= INT_MAX)
			v = v * 10 + (**sp - '0');
	return v;
}

static int find_name(const char *const *names, int n, const char *s, size_t len)
{
	for (int i = 0; i < n; i++)
		if (word_is(s, len, names[i]))
			return i;
	return -1;
}

/* One value: a number or, in the month and day-of-week fields, a name. */
static int parse_value(const struct parser *ps, const struct field_spec *f, const char **sp,
                       const char *end, int *out)
{
	const char *s = *sp, *start = s;
	char cb[8];

	if (s < end && is_digit(*s)) {
		long v = read_digits(&s, end);
		if (v < f->lo || v > f->hi)
			return fail(ps, start, "%s %.*s is out of range %d-%d", f->name,
			            (int)(s - start), start, f->lo, f->hi);
		*out = (int)v;
		*sp = s;
		return 0;
	}
	if (s < end && is_alpha(*s)) {
		while (s < end && is_alpha(*s))
			s++;
		size_t len = (size_t)(s - start);
		int i = f->names ? find_name(f->names, f->nnames, start, len) : -1;
		if (i >= 0) {
			*out = f->name_base + i;
			*sp = s;
			return 0;
		}
		bool is_month = find_name(month_names, 12, start, len) >= 0;
		bool is_day = find_name(day_names, 7, start, len) >= 0;
		if (f->names && (is_month || is_day))
			return fail(ps, start, "\"%.*s\" is a %s name, not allowed in the %s field",
			            (int)len, start, is_month ? "month" : "day", f->name);
		if (is_month || is_day)
			return fail(ps, start,
			            "names like \"%.*s\" are allowed only in the month and "
			            "day-of-week fields",
			            (int)len, start);
		if (f->names)
			return fail(ps, start, "unknown %s name \"%.*s\"; use %s", f->name,
			            (int)len, start, f->hint);
		return fail(ps, start, "expected a number in the %s field, found \"%.*s\"", f->name,
		            (int)len, start);
	}
	if (s == end)
		return fail(ps, s, "the %s field ends after %s; expected a value", f->name,
		            show_char(s[-1], cb));
	if (*s == '$')
		return fail(ps, s,
		            "$ (the last day of the month) is allowed only as the whole "
		            "day-of-month field");
	return fail(ps, s, "unexpected character %s in the %s field", show_char(*s, cb), f->name);
}

/* One list element: "*", "*\/n", "v", "a-b", "a-b/n". Sets its values in *BITS (bit v). */
static int parse_element(const struct parser *ps, const struct field_spec *f, const char **sp,
                         const char *end, uint64_t *bits)
{
	const char *s = *sp, *elem = s;
	int lo, hi, step = 1, r;
	char cb[8];

	if (s < end && *s == '*') {
		lo = f->lo;
		hi = f->hi;
		s++;
	} else {
		if ((r = parse_value(ps, f, &s, end, &lo)) < 0)
			return r;
		hi = lo;
		if (s < end && *s == '-') {
			s++;
			if ((r = parse_value(ps, f, &s, end, &hi)) < 0)
				return r;
			if (hi < lo)
				return fail(ps, elem,
				            "range %.*s runs backwards; write the smaller value "
				            "first",
				            (int)(s - elem), elem);
		} else if (s < end && *s == '/') {
			const char *st = s + 1, *q = st;
			while (q < end && *q != ',')
				q++;
			return fail(
			    ps, s,
			    "a step needs * or a range before it: write */%.*s or %.*s-%d/%.*s",
			    (int)(q - st), st, (int)(s - elem), elem, f->hi, (int)(q - st), st);
		}
	}
	if (s < end && *s == '/') {
		s++;
		const char *st = s;
		if (s < end && is_digit(*s)) {
			long v = read_digits(&s, end);
			if (v < 1)
				return fail(ps, st, "step must be at least 1");
			/* a step past any int is a typo, not a wish for "the start alone" */
			if (v > INT_MAX)
				return fail(ps, st, "step %.*s is out of range 1-%d", (int)(s - st),
				            st, INT_MAX);
			/* A step beyond the range is valid: it selects the start alone. */
			step = v > 1000 ? 1000 : (int)v;
		} else if (s < end && is_alpha(*s)) {
			while (s < end && is_alpha(*s))
				s++;
			return fail(ps, st, "a step must be a number, not a name like \"%.*s\"",
			            (int)(s - st), st);
		} else if (s == end) {
			return fail(ps, s, "expected a number after '/' in the %s field", f->name);
		} else {
			return fail(ps, s, "expected a number after '/', found %s",
			            show_char(*s, cb));
		}
	}
	for (int v = lo; v <= hi; v += step)
		*bits |= UINT64_C(1) << v;
	*sp = s;
	return 0;
}

/* A whole field [S, END): a comma-separated list of elements. */
static int parse_field(const struct parser *ps, enum field fi, const char *s, const char *end,
                       uint64_t *bits)
{
	const struct field_spec *f = &fields[fi];
	char cb[8];
	int r;

	*bits = 0;
	for (;;) {
		if ((r = parse_element(ps, f, &s, end, bits)) < 0)
			return r;
		if (s == end)
			break;
		if (*s != ',')
			return fail(ps, s, "unexpected character %s in the %s field",
			            show_char(*s, cb), f->name);
		s++;
	}
	return 0;
}

struct token {
	const char *s, *e;
};

/* "N seconds", pg_cron's interval form, in any case and also without the blank
 * ("30seconds"). The singular "N second" is accepted too: "1 second" is what people write,
 * and no other meaning competes for it.
 * Returns 1 if TOK is that form (parsed into OUT, or an error), 0 if it is not. */
static int parse_interval(const struct parser *ps, const struct token *tok, int ntok,
                          cron_expr *out, int *res)
{
	const char *num = tok[0].s, *p = num, *word;
	size_t wlen;

	while (p < tok[0].e && is_digit(*p))
		p++;
	if (ntok == 2 && p == tok[0].e) {
		word = tok[1].s;
		wlen = (size_t)(tok[1].e - tok[1].s);
	} else if (ntok == 1 && p > num && p < tok[0].e) {
		word = p;
		wlen = (size_t)(tok[0].e - p);
	} else if (ntok == 2) {
		word = tok[1].s;
		wlen = (size_t)(tok[1].e - tok[1].s);
		if (!word_is(word, wlen, "seconds") && !word_is(word, wlen, "second"))
			return 0;
		*res = fail(ps, num, "expected a whole number of seconds (1-59) before \"%.*s\"",
		            (int)wlen, word);
		return 1;
	} else {
		return 0;
	}
	if (!word_is(word, wlen, "seconds") && !word_is(word, wlen, "second"))
		return 0;
	const char *q = num;
	long v = read_digits(&q, p);
	if (v < 1 || v > 59) {
		*res = fail(ps, num,
		            "an interval must be 1 to 59 seconds, not %.*s; for longer intervals "
		            "use a schedule like */5 * * * *",
		            (int)(p - num), num);
		return 1;
	}
	out->kind = CRON_INTERVAL;
	out->interval = (uint32_t)v;
	*res = 0;
	return 1;
}

static int parse_macro(const struct parser *ps, const struct token *tok, int ntok, cron_expr *out)
{
	const char *name = tok[0].s + 1;
	size_t len = (size_t)(tok[0].e - name);

	for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++) {
		if (!word_is(name, len, macros[i].name))
			continue;
		if (ntok > 1)
			return fail(ps, tok[1].s,
			            "unexpected text after %.*s; a macro stands alone",
			            (int)(len + 1), tok[0].s);
		if (!macros[i].fields) {
			out->kind = CRON_REBOOT;
			return 0;
		}
		return cron_parse(macros[i].fields, out, NULL, 0);
	}
	return fail(ps, tok[0].s,
	            "unknown macro \"%.*s\"; expected @yearly, @annually, @monthly, @weekly, "
	            "@daily, @midnight, @hourly, @reboot or @restart",
	            (int)(len + 1), tok[0].s);
}

/* ---- whether it fires ---- */

#define SEC_MASK ((UINT64_C(1) << 60) - 1)

bool cron_can_fire(const cron_expr *e)
{
	if (!e)
		return false;
	if (e->kind == CRON_REBOOT)
		return true;
	if (e->kind == CRON_INTERVAL)
		return e->interval > 0;
	return (e->kind == CRON_CALENDAR || e->kind == CRON_RRULE) && (e->flags & CRON_FIRES);
}

/* Whether calendar E ever fires: once, as it is parsed (CRON_FIRES), not at each cron_next. */
static bool calendar_fires(const cron_expr *e)
{
	/* The longest month each month can have: Feb 29 counts. */
	static const unsigned char max_dim[13] = {0,  31, 29, 31, 30, 31, 30,
	                                          31, 31, 30, 31, 30, 31};

	if (!(e->sec & SEC_MASK) || !(e->min & SEC_MASK) || !(e->hour & 0xffffff) ||
	    !(e->mon & 0x1ffe) || !(e->dow & 0x7f))
		return false;
	if (e->flags & CRON_LAST_DOM)
		return true;
	if (!(e->dom & 0xfffffffe))
		return false;
	/* OR rule: the weekdays alone meet every month. */
	if (!(e->flags & (CRON_DOM_STAR | CRON_DOW_STAR)))
		return true;
	for (int m = 1; m <= 12; m++)
		if ((e->mon >> m & 1) && (e->dom & (uint32_t)((UINT64_C(2) << max_dim[m]) - 2)))
			return true;
	return false;
}

int cron_parse(const char *text, cron_expr *out, char *err, size_t errlen)
{
	struct parser ps = {.err = err, .errlen = errlen};
	struct token tok[7] = {{NULL, NULL}};
	int ntok = 0, r;

	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	if (!text)
		text = "";
	while (isspace((unsigned char)*text))
		text++;
	const char *end = text + strlen(text);
	while (end > text && isspace((unsigned char)end[-1]))
		end--;
	ps.text = text;
	ps.len = (size_t)(end - text);

	if (text == end)
		return fail(&ps, text,
		            "the schedule is empty; write five fields like "
		            "\"0 3 * * *\" or a macro like @daily");
	for (const char *s = text; s < end;) {
		const char *e = s;
		while (e < end && !isspace((unsigned char)*e))
			e++;
		if (ntok == 7)
			break;
		tok[ntok].s = s;
		tok[ntok].e = e;
		ntok++;
		while (e < end && isspace((unsigned char)*e))
			e++;
		s = e;
	}

	if (*text == '@') {
		r = parse_macro(&ps, tok, ntok, out);
		goto out;
	}
	if (ps.len >= 6 && word_is(text, 6, "rrule:")) {
		char msg[256];
		size_t col;
		if ((r = cron_rrule_parse(text, ps.len, out, msg, sizeof(msg), &col)) < 0)
			fail(&ps, text + col, "%s", msg);
		goto out;
	}
	if (ntok <= 2 && parse_interval(&ps, tok, ntok, out, &r))
		goto out;
	if (ntok < 5) {
		r = fail(&ps, end,
		         "expected 5 fields (minute hour day-of-month month day-of-week), or 6 "
		         "with seconds first; found %d",
		         ntok);
		goto out;
	}
	if (ntok > 6) {
		r = fail(&ps, tok[6].s,
		         "too many fields: expected 5 (minute hour day-of-month month "
		         "day-of-week), or 6 with seconds first");
		goto out;
	}

	/* Five fields: minute first, the seconds are implicitly 0. */
	int first = ntok == 6 ? F_SEC : F_MIN;
	uint64_t bits[F_COUNT] = {[F_SEC] = 1};
	for (int fi = first; fi < F_COUNT; fi++) {
		const struct token *t = &tok[fi - first];
		if (fi == F_DOM && t->e - t->s == 1 && *t->s == '$') {
			out->flags |= CRON_LAST_DOM;
			continue;
		}
		if ((r = parse_field(&ps, (enum field)fi, t->s, t->e, &bits[fi])) < 0)
			goto out;
	}
	/* Vixie's rules key on the first character of a field. */
	if (*tok[F_MIN - first].s == '*' || *tok[F_HOUR - first].s == '*')
		out->flags |= CRON_WILDCARD;
	if (*tok[F_DOM - first].s == '*')
		out->flags |= CRON_DOM_STAR;
	if (*tok[F_DOW - first].s == '*')
		out->flags |= CRON_DOW_STAR;
	if (ntok == 6)
		out->flags |= CRON_SECONDS;
	if (bits[F_DOW] & 0x80) /* 7 is Sunday too */
		bits[F_DOW] = (bits[F_DOW] | 1) & 0x7f;
	out->kind = CRON_CALENDAR;
	out->sec = bits[F_SEC];
	out->min = bits[F_MIN];
	out->hour = (uint32_t)bits[F_HOUR];
	out->dom = (uint32_t)bits[F_DOM];
	out->mon = (uint16_t)bits[F_MON];
	out->dow = (uint8_t)bits[F_DOW];
	if (calendar_fires(out))
		out->flags |= CRON_FIRES;
	r = 0;
out:
	if (r < 0)
		memset(out, 0, sizeof(*out));
	return r;
}

/* ---- matching ---- */

/* The days of a month (bit d for day d) that match, given its length and the weekday of
 * its first day. */
static uint32_t month_days(const cron_expr *e, int dim, int wday1)
{
	uint32_t all = (uint32_t)((UINT64_C(2) << dim) - 2);
	uint32_t dom = (e->flags & CRON_LAST_DOM) ? UINT32_C(1) << dim : e->dom & all;
	/* Rotate the weekday set so bit k means day k+1, then repeat it over five weeks. */
	uint64_t w = ((uint64_t)e->dow >> wday1 | (uint64_t)e->dow << (7 - wday1)) & 0x7f;
	w |= w << 7 | w << 14 | w << 21 | w << 28;
	uint32_t dow = (uint32_t)(w << 1) & all;
	if (e->flags & (CRON_DOM_STAR | CRON_DOW_STAR))
		return dom & dow;
	return dom | dow;
}

/* The first matching day at or after DAY, or CRON_NEVER after 401 years without one. */
static int64_t next_day(const cron_expr *e, int64_t day)
{
	int64_t y;
	int m, d;

	if (!(e->mon & 0x1ffe))
		return CRON_NEVER;
	civil_from_days(day, &y, &m, &d);
	for (int i = 0; i < 401 * 13; i++) {
		if (e->mon >> m & 1) {
			int64_t first = day - (d - 1);
			uint32_t days = month_days(e, days_in_month(y, m), weekday(first));
			days &= ~UINT32_C(0) << d;
			if (days)
				return first + __builtin_ctz(days) - 1;
		}
		int m2 = next_bit(e->mon, m + 1);
		if (m2 < 0 || m2 > 12) {
			y++;
			m2 = __builtin_ctz(e->mon & 0x1ffe);
		}
		m = m2;
		d = 1;
		day = days_from_civil(y, m, 1);
	}
	return CRON_NEVER;
}

/* The first matching second of the day at or after SOD, or -1. */
static int next_tod(const cron_expr *e, int sod)
{
	int h = sod / 3600, m = sod / 60 % 60, s = sod % 60, x;

	if (e->hour >> h & 1) {
		if ((e->min >> m & 1) && (x = next_bit(e->sec, s)) >= 0)
			return h * 3600 + m * 60 + x;
		if ((x = next_bit(e->min, m + 1)) >= 0)
			return h * 3600 + x * 60 + next_bit(e->sec, 0);
	}
	if ((x = next_bit(e->hour, h + 1)) < 0)
		return -1;
	return x * 3600 + next_bit(e->min, 0) * 60 + next_bit(e->sec, 0);
}

/* The first matching local time at or after L (local seconds), or CRON_NEVER. */
static int64_t next_local(const cron_expr *e, int64_t l)
{
	if (e->kind == CRON_RRULE)
		return cron_rrule_next_local(e, l);
	int64_t day = floor_div(l, DAY);
	int tod;

	int64_t d = next_day(e, day);
	if (d == CRON_NEVER)
		return CRON_NEVER;
	if (d == day) {
		tod = next_tod(e, (int)(l - day * DAY));
		if (tod >= 0)
			return day * DAY + tod;
		if ((d = next_day(e, day + 1)) == CRON_NEVER)
			return CRON_NEVER;
	}
	return d * DAY + next_tod(e, 0);
}

/* ---- the next fire time ---- */

static int64_t next_fire(const cron_expr *e, const cron_tz *tz, int64_t after)
{
	if (e->kind == CRON_INTERVAL)
		return e->interval > 0 ? after + e->interval : CRON_NEVER;
	if (!cron_can_fire(e) || e->kind == CRON_REBOOT)
		return CRON_NEVER;

	/* A copy with the bits out of range cleared, so nothing below can index past them. */
	cron_expr x = *e;
	x.sec &= SEC_MASK;
	x.min &= SEC_MASK;
	x.dom &= 0xfffffffe;
	x.mon &= 0x1ffe;
	x.dow &= 0x7f;

	int64_t t = after + 1;
	if (cron_tz_is_utc(tz))
		return next_local(&x, t);

	/* Walk the spans of constant offset from the one holding T. In each, the local times
	 * it is responsible for are searched:
	 * - wildcard jobs follow the wall clock: a span covers the local times it shows, so a
	 *   repeated hour is searched twice and a skipped one never;
	 * - fixed-time jobs (cronie): a span also takes the local times skipped just before
	 *   it, firing at its start, and leaves a repeated hour to the span that showed it
	 *   first. The local times owned by successive spans then tile without overlap. */
	bool fixed = !(x.flags & CRON_WILDCARD);
	int64_t owned = T_BEGIN;          /* fixed: local times below belong to earlier spans */
	int64_t memo_lo = 1, memo_at = 0; /* no match in [memo_lo, memo_at), one at memo_at */
	for (int i = 0; i < 4096; i++) {
		struct cron_tz_period p;
		int64_t lo, l;

		cron_tz_period(tz, t, &p);
		if (!fixed)
			lo = t + p.off;
		else if (t > p.start)
			lo = p.start + p.prev > t + p.off ? p.start + p.prev : t + p.off;
		else
			lo = p.start + p.prev;
		if (fixed && lo < owned)
			lo = owned;
		if (lo >= memo_lo && lo <= memo_at) {
			l = memo_at;
		} else {
			if ((l = next_local(&x, lo)) == CRON_NEVER)
				return CRON_NEVER;
			memo_lo = lo;
			memo_at = l;
		}
		if (l < p.end + p.off) {
			int64_t r = l - p.off;
			return fixed && r < p.start ? p.start : r;
		}
		owned = p.end + p.off;
		if (p.end >= T_END)
			return CRON_NEVER;
		t = p.end;
	}
	return CRON_NEVER;
}

/* ---- calendars ---- */

/* The first day at or after DAY that D lets a fire on (ONLY: a day of D; else a day not in
 * D), or CRON_NEVER: runs found by bisection. */
static int64_t dates_allow(const struct cron_dates *d, int64_t day, bool only)
{
	size_t lo = 0, hi = d->n_runs; /* the first run that ends at or after DAY */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (d->run[2 * mid + 1] < day)
			lo = mid + 1;
		else
			hi = mid;
	}
	bool in = lo < d->n_runs && d->run[2 * lo] <= day;
	if (only)
		return in ? day : lo < d->n_runs ? d->run[2 * lo] : CRON_NEVER;
	return in ? d->run[2 * lo + 1] + 1 : day;
}

/* The first instant of local date DAY in TZ: the daily midnight's fire (at the end of a gap
 * that swallows midnight, once in a repeated one), found from 2 days before in UTC, which is
 * a date or more before it in every zone. */
static int64_t day_start(const cron_tz *tz, int64_t day)
{
	static const cron_expr midnight = {.sec = 1,
	                                   .min = 1,
	                                   .hour = 1,
	                                   .dom = 0xfffffffe,
	                                   .mon = 0x1ffe,
	                                   .dow = 0x7f,
	                                   .flags = CRON_DOM_STAR | CRON_DOW_STAR | CRON_FIRES};
	int64_t t = (day - 2) * DAY;
	for (int i = 0; i < 8 && t != CRON_NEVER; i++) {
		t = next_fire(&midnight, tz, t);
		if (t != CRON_NEVER && floor_div(t + cron_tz_offset(tz, t), DAY) >= day)
			return t;
	}
	return CRON_NEVER;
}

/* The first fire from T (a fire of E, before its offset) on a date E's calendar lets it run
 * on: each step leaves a run of dates (skip) or goes to the next date kept (only). */
static int64_t on_dates(const cron_expr *e, const cron_tz *tz, int64_t t)
{
	bool only = e->flags & CRON_ONLY_DATES;
	for (size_t i = 0; t != CRON_NEVER && i <= e->dates->n_runs + 8; i++) {
		int64_t day = floor_div(t + cron_tz_offset(tz, t), DAY);
		int64_t ok = dates_allow(e->dates, day, only);
		if (ok == day || ok == CRON_NEVER || ok > CRON_TIME_MAX / DAY)
			return ok == day ? t : CRON_NEVER;
		int64_t from = day_start(tz, ok);
		if (from == CRON_NEVER)
			return CRON_NEVER;
		t = next_fire(e, tz, from - 1 > t ? from - 1 : t);
	}
	return CRON_NEVER;
}

int64_t cron_next(const cron_expr *e, const cron_tz *tz, int64_t after)
{
	if (!e || after < CRON_TIME_MIN || after > CRON_TIME_MAX)
		return CRON_NEVER;
	if (e->kind == CRON_INTERVAL)
		return next_fire(e, tz, after);
	int64_t t = next_fire(e, tz, after - e->offset);
	if (e->dates && t != CRON_NEVER)
		t = on_dates(e, tz, t);
	return t == CRON_NEVER ? t : t + e->offset;
}

int cron_spread_offset(const char *name, int64_t window)
{
	uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a: fixed, so every instance agrees */
	for (const unsigned char *p = (const unsigned char *)name; p && *p; p++)
		h = (h ^ *p) * UINT64_C(1099511628211);
	return window > 1 ? (int)(h % (uint64_t)window) : 0;
}

int64_t cron_shortest_gap(const cron_expr *e, const cron_tz *tz)
{
	if (e->kind == CRON_INTERVAL)
		return e->interval;
	int64_t gap = INT64_MAX, t = next_fire(e, tz, 946684800); /* 2000-01-01T00:00:00Z */
	for (int i = 0; i < 100000 && t != CRON_NEVER && gap > 1; i++) {
		int64_t u = next_fire(e, tz, t);
		if (u != CRON_NEVER && u - t < gap)
			gap = u - t;
		t = u;
	}
	return gap;
}

/* ---- human time ---- */

int cron_time_format(int64_t t, char *buf, size_t len)
{
	int64_t days = floor_div(t, DAY), y;
	int sod = (int)(t - days * DAY), m, d;

	civil_from_days(days, &y, &m, &d);
	int n = snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m, d,
	                 sod / 3600, sod / 60 % 60, sod % 60);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return 0;
}

/* Exactly N digits at *SP. */
static bool digits(const char **sp, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!is_digit((*sp)[i]))
			return false;
		v = v * 10 + ((*sp)[i] - '0');
	}
	*sp += n;
	*out = v;
	return true;
}

int cron_time_parse(const char *text, int64_t *out, char *err, size_t errlen)
{
	const char *s = text;
	int y, mo, d, h, mi, sec = 0, oh = 0, om = 0, sign = 1;

	if (err && errlen)
		err[0] = '\0';
	if (!text)
		text = s = "";
	if (*s == '@') {
		/* Unix seconds. */
		char *e;
		errno = 0;
		long long v = strtoll(s + 1, &e, 10);
		if (s[1] == '\0' || *e != '\0' || errno || v < CRON_TIME_MIN || v > CRON_TIME_MAX)
			goto bad;
		*out = v;
		return 0;
	}
	if (!digits(&s, 4, &y) || *s++ != '-' || !digits(&s, 2, &mo) || *s++ != '-' ||
	    !digits(&s, 2, &d))
		goto bad;
	if (*s != 'T' && *s != 't' && *s != ' ')
		goto bad;
	s++;
	if (!digits(&s, 2, &h) || *s++ != ':' || !digits(&s, 2, &mi))
		goto bad;
	if (*s == ':') {
		s++;
		if (!digits(&s, 2, &sec))
			goto bad;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '-' ? -1 : 1;
		if (!digits(&s, 2, &oh))
			goto bad;
		if (*s == ':') {
			s++;
			if (!digits(&s, 2, &om))
				goto bad;
		} else if (is_digit(*s) && !digits(&s, 2, &om)) {
			goto bad;
		}
	} else if (*s == '\0') {
		cron_seterr(err, errlen,
		            "time \"%s\" has no zone; add Z for UTC or an offset like +01:00",
		            text);
		return -EINVAL;
	} else {
		goto bad;
	}
	if (*s != '\0' || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
	    mi > 59 || sec > 59 || oh > 23 || om > 59)
		goto bad;
	*out = days_from_civil(y, mo, d) * DAY + h * 3600 + mi * 60 + sec -
	       sign * (oh * 3600 + om * 60);
	return 0;
bad:
	cron_seterr(err, errlen,
	            "invalid time \"%s\"; expected ISO-8601 like 2026-03-08T01:00:00Z or "
	            "2026-03-08T01:00-05:00, or @UNIXSECONDS",
	            text);
	return -EINVAL;
}
