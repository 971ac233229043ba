/* Time zones for cron_next(): TZif files (RFC 8536) and their POSIX TZ footer rules, read
 * here rather than through glibc's TZ variable, so that the search can ask for the span of
 * constant UTC offset around an instant, which is what the DST rules need.
 *
 * libc only, like cron.c: the fuzzer builds the two alone (tests/fuzz/README.md). */
#include "cron_tz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron_cal.h"

/* A POSIX TZ rule date: Jn (1-365, no Feb 29), n (0-365), or Mm.w.d; plus the local time
 * of day (may be negative or past 24 h, RFC 8536). */
struct rule_date {
	char kind; /* 'J', 'N', 'M' */
	int n, m, w, d;
	int32_t secs;
};

struct tz_rule {
	int32_t std_off, dst_off; /* seconds east of UTC */
	bool has_dst;
	struct rule_date start, end; /* start in standard time, end in daylight time */
};

struct cron_tz {
	char *name;
	bool utc;
	int32_t ntrans;
	int64_t *trans;     /* ascending UTC instants */
	unsigned char *idx; /* type after each transition */
	int32_t ntypes;
	int32_t *utoff; /* per type */
	bool has_rule;  /* the footer, for instants after the last transition */
	struct tz_rule rule;
};

static int64_t rule_day(const struct rule_date *r, int64_t y)
{
	int64_t jan1 = days_from_civil(y, 1, 1);

	switch (r->kind) {
	case 'J':
		return jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
	case 'N':
		return jan1 + r->n;
	default: {
		int64_t first = days_from_civil(y, r->m, 1);
		int64_t day = first + (r->d - weekday(first) + 7) % 7 + (r->w - 1) * 7;
		while (day >= first + days_in_month(y, r->m))
			day -= 7;
		return day;
	}
	}
}

/* The period around T from the footer rule; BASE is the last table transition. */
static void rule_period(const cron_tz *tz, int64_t t, struct cron_tz_period *p)
{
	const struct tz_rule *r = &tz->rule;
	struct {
		int64_t at;
		int32_t off, prev;
	} c[6], tmp;
	int64_t y, base = tz->ntrans ? tz->trans[tz->ntrans - 1] : T_BEGIN;
	int n = 0, mo, dd;

	civil_from_days(floor_div(t, DAY), &y, &mo, &dd);
	for (int64_t yy = y - 1; yy <= y + 1; yy++) {
		int64_t s = rule_day(&r->start, yy) * DAY + r->start.secs - r->std_off;
		int64_t e = rule_day(&r->end, yy) * DAY + r->end.secs - r->dst_off;
		if (s > base)
			c[n].at = s, c[n].off = r->dst_off, c[n].prev = r->std_off, n++;
		if (e > base)
			c[n].at = e, c[n].off = r->std_off, c[n].prev = r->dst_off, n++;
	}
	for (int i = 1; i < n; i++) /* insertion sort; equal instants keep year order */
		for (int j = i; j > 0 && c[j - 1].at > c[j].at; j--)
			tmp = c[j], c[j] = c[j - 1], c[j - 1] = tmp;
	p->end = T_END;
	for (int i = 0; i < n; i++) {
		if (c[i].at > t) {
			p->end = c[i].at;
			break;
		}
		p->start = c[i].at;
		p->off = c[i].off;
		p->prev = c[i].prev;
	}
}

void cron_tz_period(const cron_tz *tz, int64_t t, struct cron_tz_period *p)
{
	int32_t n = tz ? tz->ntrans : 0;

	if (!tz || tz->utc) {
		*p = (struct cron_tz_period){T_BEGIN, T_END, 0, 0};
		return;
	}
	if (n > 0 && t < tz->trans[n - 1]) {
		/* Largest i with trans[i] <= t, or -1. */
		int32_t lo = -1, hi = n - 1;
		while (hi - lo > 1) {
			int32_t mid = lo + (hi - lo) / 2;
			if (tz->trans[mid] <= t)
				lo = mid;
			else
				hi = mid;
		}
		p->end = tz->trans[lo + 1];
		if (lo < 0) {
			p->start = T_BEGIN;
			p->off = p->prev = tz->utoff[0]; /* type 0 rules before the first one */
		} else {
			p->start = tz->trans[lo];
			p->off = tz->utoff[tz->idx[lo]];
			p->prev = lo > 0 ? tz->utoff[tz->idx[lo - 1]] : tz->utoff[0];
		}
		return;
	}
	/* At or after the last transition: the table's last type, then the footer's rule. */
	p->start = n ? tz->trans[n - 1] : T_BEGIN;
	p->end = T_END;
	if (n) {
		p->off = tz->utoff[tz->idx[n - 1]];
		p->prev = n > 1 ? tz->utoff[tz->idx[n - 2]] : tz->utoff[0];
	} else {
		p->off = p->prev = tz->has_rule ? tz->rule.std_off : tz->utoff[0];
	}
	if (tz->has_rule && tz->rule.has_dst)
		rule_period(tz, t, p);
}

int32_t cron_tz_offset(const cron_tz *tz, int64_t t)
{
	struct cron_tz_period p;
	cron_tz_period(tz, t, &p);
	return p.off;
}

const char *cron_tz_name(const cron_tz *tz)
{
	return tz ? tz->name : "UTC";
}

/* POSIX TZ string parsing, for the TZif footer ("CET-1CEST,M3.5.0,M10.5.0/3"). */

static bool tzs_name(const char **sp)
{
	const char *s = *sp;
	if (*s == '<') {
		while (*s && *s != '>')
			s++;
		if (*s != '>')
			return false;
		*sp = s + 1;
		return true;
	}
	while (is_alpha(*s))
		s++;
	if (s - *sp < 3)
		return false;
	*sp = s;
	return true;
}

static bool tzs_num(const char **sp, int max, int *out)
{
	const char *s = *sp;
	int v = 0;
	if (!is_digit(*s))
		return false;
	while (is_digit(*s)) {
		v = v * 10 + (*s++ - '0');
		if (v > max)
			return false;
	}
	*out = v;
	*sp = s;
	return true;
}

/* [+-]hh[:mm[:ss]], hours up to MAXH. */
static bool tzs_time(const char **sp, int maxh, int32_t *out)
{
	const char *s = *sp;
	int sign = 1, h, m = 0, sec = 0;
	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	if (!tzs_num(&s, maxh, &h))
		return false;
	if (*s == ':') {
		s++;
		if (!tzs_num(&s, 59, &m))
			return false;
		if (*s == ':') {
			s++;
			if (!tzs_num(&s, 59, &sec))
				return false;
		}
	}
	*out = sign * (h * 3600 + m * 60 + sec);
	*sp = s;
	return true;
}

static bool tzs_date(const char **sp, struct rule_date *r)
{
	const char *s = *sp;
	if (*s == 'J') {
		s++;
		r->kind = 'J';
		if (!tzs_num(&s, 365, &r->n) || r->n < 1)
			return false;
	} else if (*s == 'M') {
		s++;
		r->kind = 'M';
		if (!tzs_num(&s, 12, &r->m) || r->m < 1 || *s++ != '.' || !tzs_num(&s, 5, &r->w) ||
		    r->w < 1 || *s++ != '.' || !tzs_num(&s, 6, &r->d))
			return false;
	} else {
		r->kind = 'N';
		if (!tzs_num(&s, 365, &r->n))
			return false;
	}
	r->secs = 7200;
	if (*s == '/') {
		s++;
		if (!tzs_time(&s, 167, &r->secs))
			return false;
	}
	*sp = s;
	return true;
}

static bool tzs_parse(const char *s, struct tz_rule *r)
{
	int32_t off;

	memset(r, 0, sizeof(*r));
	if (!tzs_name(&s) || !tzs_time(&s, 24, &off))
		return false;
	r->std_off = -off; /* POSIX counts west */
	if (!*s)
		return true;
	if (!tzs_name(&s))
		return false;
	r->has_dst = true;
	r->dst_off = r->std_off + 3600;
	if (*s && *s != ',') {
		if (!tzs_time(&s, 24, &off))
			return false;
		r->dst_off = -off;
	}
	if (!*s) {
		/* No rule given: the US rule, as glibc assumes. */
		r->start = (struct rule_date){'M', 0, 3, 2, 0, 7200};
		r->end = (struct rule_date){'M', 0, 11, 1, 0, 7200};
		return true;
	}
	if (*s++ != ',' || !tzs_date(&s, &r->start) || *s++ != ',' || !tzs_date(&s, &r->end))
		return false;
	return *s == '\0';
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_counts {
	uint32_t isut, isstd, leap, time, type, chars;
};

static bool tzif_header(const unsigned char *p, size_t avail, struct tzif_counts *c)
{
	if (avail < 44 || memcmp(p, "TZif", 4) != 0)
		return false;
	c->isut = be32(p + 20);
	c->isstd = be32(p + 24);
	c->leap = be32(p + 28);
	c->time = be32(p + 32);
	c->type = be32(p + 36);
	c->chars = be32(p + 40);
	/* Sizes real files never approach; they keep the arithmetic below from overflowing. */
	return c->isut <= 256 && c->isstd <= 256 && c->leap <= 100000 && c->time <= 100000 &&
	       c->type >= 1 && c->type <= 256 && c->chars <= 100000;
}

static size_t tzif_block(const struct tzif_counts *c, size_t tsize)
{
	return c->time * (tsize + 1) + c->type * 6 + c->chars + c->leap * (tsize + 4) + c->isstd +
	       c->isut;
}

/* Fill TZ from a TZif file's bytes (RFC 8536). */
static int tzif_load(cron_tz *tz, const unsigned char *buf, size_t len)
{
	struct tzif_counts c;
	const unsigned char *p = buf, *end = buf + len;
	size_t tsize = 4;

	if (!tzif_header(p, len, &c))
		return -EINVAL;
	if (buf[4] >= '2') {
		/* Skip the 32-bit block to the 64-bit one. */
		size_t skip = 44 + tzif_block(&c, 4);
		if (skip > len || !tzif_header(p + skip, len - skip, &c))
			return -EINVAL;
		p += skip;
		tsize = 8;
	}
	p += 44;
	if (tzif_block(&c, tsize) > (size_t)(end - p))
		return -EINVAL;
	if (c.leap)
		return -ENOTSUP; /* "right/" zones count leap seconds; Unix time does not */

	tz->ntrans = (int32_t)c.time;
	tz->ntypes = (int32_t)c.type;
	tz->trans = calloc(c.time ? c.time : 1, sizeof(*tz->trans));
	tz->idx = calloc(c.time ? c.time : 1, 1);
	tz->utoff = calloc(c.type, sizeof(*tz->utoff));
	if (!tz->trans || !tz->idx || !tz->utoff)
		return -ENOMEM;
	for (uint32_t i = 0; i < c.time; i++, p += tsize) {
		tz->trans[i] = tsize == 8 ? be64(p) : (int32_t)be32(p);
		if (i > 0 && tz->trans[i] <= tz->trans[i - 1])
			return -EINVAL;
		/* Clamp so offsets can be added without overflow. */
		if (tz->trans[i] < T_BEGIN / 2 || tz->trans[i] > T_END / 2)
			return -EINVAL;
	}
	for (uint32_t i = 0; i < c.time; i++, p++) {
		if (*p >= c.type)
			return -EINVAL;
		tz->idx[i] = *p;
	}
	for (uint32_t i = 0; i < c.type; i++, p += 6) {
		int32_t off = (int32_t)be32(p);
		if (off < -26 * 3600 || off > 26 * 3600)
			return -EINVAL;
		tz->utoff[i] = off;
	}
	p += c.chars + c.leap * (tsize + 4) + c.isstd + c.isut;

	/* Version 2+: "\n<POSIX TZ>\n" rules the time after the table. */
	if (tsize == 8 && p < end && *p == '\n') {
		const unsigned char *nl = memchr(p + 1, '\n', (size_t)(end - p - 1));
		char footer[128];
		size_t flen = nl ? (size_t)(nl - p - 1) : 0;
		if (nl && flen > 0 && flen < sizeof(footer)) {
			memcpy(footer, p + 1, flen);
			footer[flen] = '\0';
			tz->has_rule = tzs_parse(footer, &tz->rule);
		}
	}
	return 0;
}

/* Append the footer rule's transitions up to 2200 to the table, so that the instants that
 * matter are a binary search away instead of a rule evaluation (the fat TZif files stop in
 * 2037, slim ones earlier). Past 2200 the rule is evaluated on the fly. */
#define TZ_EXTEND_UNTIL 2200

static int tz_extend(cron_tz *tz)
{
	const struct tz_rule *r = &tz->rule;
	int64_t y, last = tz->ntrans ? tz->trans[tz->ntrans - 1] : 0;
	int m, d;

	if (!tz->has_rule || !r->has_dst || tz->ntypes + 2 > 256)
		return 0;
	civil_from_days(floor_div(last, DAY), &y, &m, &d);
	if (y >= TZ_EXTEND_UNTIL)
		return 0;
	size_t cap = (size_t)tz->ntrans + (size_t)(TZ_EXTEND_UNTIL - y + 1) * 2;
	int64_t *trans = realloc(tz->trans, cap * sizeof(*trans));
	if (!trans)
		return -ENOMEM;
	tz->trans = trans;
	unsigned char *idx = realloc(tz->idx, cap);
	if (!idx)
		return -ENOMEM;
	tz->idx = idx;
	int32_t *utoff = realloc(tz->utoff, (size_t)(tz->ntypes + 2) * sizeof(*utoff));
	if (!utoff)
		return -ENOMEM;
	tz->utoff = utoff;
	int std = tz->ntypes, dst = tz->ntypes + 1;
	utoff[std] = r->std_off;
	utoff[dst] = r->dst_off;
	tz->ntypes += 2;

	bool have = tz->ntrans > 0;
	for (; y <= TZ_EXTEND_UNTIL; y++) {
		int64_t s = rule_day(&r->start, y) * DAY + r->start.secs - r->std_off;
		int64_t e = rule_day(&r->end, y) * DAY + r->end.secs - r->dst_off;
		int64_t at[2] = {s < e ? s : e, s < e ? e : s};
		int type[2] = {s < e ? dst : std, s < e ? std : dst};
		for (int k = 0; k < 2; k++) {
			if (have && at[k] <= last)
				continue;
			trans[tz->ntrans] = last = at[k];
			idx[tz->ntrans] = (unsigned char)type[k];
			tz->ntrans++;
			have = true;
		}
	}
	return 0;
}

/* Zone names are paths under the zoneinfo directory: keep them there. */
static bool tz_name_ok(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > 200 || name[0] == '/' || name[0] == '.' || strstr(name, "..") ||
	    strstr(name, "//"))
		return false;
	for (const char *s = name; *s; s++)
		if (!is_alpha(*s) && !is_digit(*s) && !strchr("/_+-.", *s))
			return false;
	return true;
}

int cron_tz_open(const char *name, cron_tz **out, char *err, size_t errlen)
{
	const char *dir = getenv("TZDIR");
	char path[512];
	unsigned char *buf = NULL;
	FILE *f = NULL;
	cron_tz *tz;
	int r;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!name || !tz_name_ok(name)) {
		cron_seterr(err, errlen,
		            "invalid time zone name \"%s\"; use a name like Europe/Berlin or UTC",
		            name ? name : "");
		return -ENOENT;
	}
	if (!(tz = calloc(1, sizeof(*tz))) || !(tz->name = malloc(strlen(name) + 1))) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(tz->name, name, strlen(name) + 1);
	if (strcmp(name, "UTC") == 0) {
		tz->utc = true;
		r = 0;
		goto out;
	}

	if (!dir || !*dir)
		dir = "/usr/share/zoneinfo";
	int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		r = -ENAMETOOLONG;
		cron_seterr(err, errlen, "time zone path %s/%s is too long", dir, name);
		goto out;
	}
	if (!(f = fopen(path, "rb"))) {
		r = -ENOENT;
		cron_seterr(
		    err, errlen,
		    "unknown time zone \"%s\" (no %s); use a name like Europe/Berlin or UTC", name,
		    path);
		goto out;
	}
	/* Real TZif files are a few KB; read up to 1 MB and refuse anything larger. */
	size_t cap = 1 << 20, len = 0;
	if (!(buf = malloc(cap + 1))) {
		r = -ENOMEM;
		goto out;
	}
	len = fread(buf, 1, cap + 1, f);
	if (ferror(f) || len > cap) {
		/* A directory (fopen succeeds, reading fails) is not a zone either. */
		r = -ENOENT;
		cron_seterr(err, errlen, "unknown time zone \"%s\" (%s is not a zone file)", name,
		            path);
		goto out;
	}
	r = tzif_load(tz, buf, len);
	if (r == 0)
		r = tz_extend(tz);
	if (r == -ENOTSUP)
		cron_seterr(err, errlen,
		            "time zone \"%s\" counts leap seconds, which Unix time does not; use "
		            "the zone without the \"right/\" prefix",
		            name);
	else if (r == -EINVAL)
		cron_seterr(err, errlen, "time zone \"%s\": %s is not a valid TZif file", name,
		            path);
	if (r == -ENOTSUP)
		r = -EINVAL;
out:
	if (f)
		fclose(f);
	free(buf);
	if (r == -ENOMEM)
		cron_seterr(err, errlen, "out of memory opening time zone \"%s\"", name);
	if (r < 0)
		cron_tz_free(&tz);
	*out = tz;
	return r;
}

void cron_tz_free(cron_tz **tzp)
{
	if (!tzp || !*tzp)
		return;
	cron_tz *tz = *tzp;
	free(tz->name);
	free(tz->trans);
	free(tz->idx);
	free(tz->utoff);
	free(tz);
	*tzp = NULL;
}

bool cron_tz_is_utc(const cron_tz *tz)
{
	return !tz || tz->utc;
}
