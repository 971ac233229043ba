/* libFuzzer target for cron_parse, cron_next and the ISO-8601 helpers (tests/fuzz/README.md).
 * Besides crashes and sanitizer reports it aborts when an invariant breaks:
 *  - a rejection always carries a message quoting the expression;
 *  - cron_next is strictly after its argument, fires at a matching time (UTC, checked with
 *    libc's gmtime_r), skips no earlier match (brute force over short gaps), is a fixed
 *    point (next(r - 1) == r) in every zone, and is CRON_NEVER exactly when
 *    cron_can_fire says so (but for wildcard jobs lost in DST gaps);
 *  - a parsed time formats and parses back to itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool bit(uint64_t set, int i)
{
	return (set >> i) & 1;
}

/* Does instant T (UTC) match E? Written from the rules, not from cron.c. */
static bool matches_utc(const cron_expr *e, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm))
		return false;
	if (!bit(e->sec, tm.tm_sec) || !bit(e->min, tm.tm_min) || !bit(e->hour, tm.tm_hour) ||
	    !bit(e->mon, tm.tm_mon + 1))
		return false;
	bool dom;
	if (e->flags & CRON_LAST_DOM) {
		struct tm next = tm;
		time_t tomorrow = tt + 86400;
		gmtime_r(&tomorrow, &next);
		dom = next.tm_mday == 1;
	} else {
		dom = bit(e->dom, tm.tm_mday);
	}
	bool dow = bit(e->dow, tm.tm_wday);
	if (e->flags & (CRON_DOM_STAR | CRON_DOW_STAR))
		return dom && dow;
	return dom || dow;
}

static void check_next(const cron_expr *e, const cron_tz *tz, int64_t after)
{
	int64_t n = cron_next(e, tz, after);
	bool can = cron_can_fire(e);

	if (e->kind == CRON_REBOOT) {
		if (n != CRON_NEVER)
			abort();
		return;
	}
	/* In a zone with DST a wildcard job may still never fire: its only matches can all
	 * fall into skipped hours (3 *\/70 2 29 3 *\/7 in Europe/Berlin). */
	if (e->kind == CRON_CALENDAR && can != (n != CRON_NEVER) &&
	    !(tz && can && (e->flags & CRON_WILDCARD)))
		abort();
	if (n == CRON_NEVER)
		return;
	if (n <= after)
		abort();
	if (e->kind != CRON_CALENDAR)
		return;
	if (n - 1 <= CRON_TIME_MAX && cron_next(e, tz, n - 1) != n)
		abort();
	if (tz)
		return;
	if (!matches_utc(e, n))
		abort();
	/* No earlier match: scan short gaps second by second (minute by minute without a
	 * seconds field). */
	int64_t stepsz = (e->flags & CRON_SECONDS) ? 1 : 60;
	if ((n - after) / stepsz <= 3000)
		for (int64_t t = after + 1; t < n; t++)
			if ((stepsz == 1 || t % 60 == 0) && matches_utc(e, t))
				abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static cron_tz *zones[3];
	static bool opened;
	char text[257], err[256], buf[CRON_TIME_BUFSZ];
	cron_expr e;
	int64_t t;

	if (!opened) {
		opened = true;
		/* Zones missing on this machine are skipped (NULL would mean UTC twice). */
		if (cron_tz_open("Europe/Berlin", &zones[0], NULL, 0) < 0)
			zones[0] = NULL;
		if (cron_tz_open("America/Santiago", &zones[1], NULL, 0) < 0)
			zones[1] = NULL;
		if (cron_tz_open("Australia/Lord_Howe", &zones[2], NULL, 0) < 0)
			zones[2] = NULL;
	}
	if (size > 256)
		size = 256;
	memcpy(text, data, size);
	text[size] = '\0';

	if (cron_parse(text, &e, err, sizeof(err)) < 0) {
		if (err[0] != '"' || !strstr(err, "(column "))
			abort();
	} else {
		/* An instant from the input's hash: mostly 1900-2200, sometimes anywhere. */
		uint64_t h = 1469598103934665603u;
		for (size_t i = 0; i < size; i++)
			h = (h ^ data[i]) * 1099511628211u;
		int64_t after;
		if (h & 1)
			after = -2208988800 + (int64_t)((h >> 1) % 9467280000u);
		else
			after = CRON_TIME_MIN +
			        (int64_t)((h >> 1) % (uint64_t)(CRON_TIME_MAX - CRON_TIME_MIN));
		check_next(&e, NULL, after);
		for (int i = 0; i < 3; i++)
			if (zones[i])
				check_next(&e, zones[i], after);
	}

	if (cron_time_parse(text, &t, err, sizeof(err)) == 0) {
		int64_t back;
		if (cron_time_format(t, buf, sizeof(buf)) < 0)
			abort();
		if (t >= 0 && t <= CRON_TIME_MAX) {
			if (cron_time_parse(buf, &back, NULL, 0) < 0 || back != t)
				abort();
		}
	}
	return 0;
}
