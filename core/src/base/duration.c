/* Durations as people write them in the config: "250ms", "30s", "5m", "2h", "7d", and
 * combinations from the largest unit down ("1h30m"). Whole numbers only, never negative,
 * counted in milliseconds. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "duration.h"
#include "text.h"

#define DURATION_HINT "use a number and a unit: \"30s\", \"5m\", \"2h\", \"7d\""

static const struct {
	const char *name;
	int64_t ms;
} units[] = {
    /* largest first: duration_format walks this table, and the parser requires the
     * units of "1h30m" in this order */
    {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1},
};
#define N_UNITS (sizeof(units) / sizeof(units[0]))

/* The unit spelled at P (longest match, so "ms" is not "m" followed by "s"); its index or
 * -1, with its length in *LEN. */
static int unit_at(const char *p, size_t *len)
{
	int best = -1;
	size_t best_len = 0;

	for (size_t i = 0; i < N_UNITS; i++) {
		size_t l = strlen(units[i].name);
		if (strncmp(p, units[i].name, l) == 0 && !isalpha((unsigned char)p[l]) &&
		    l > best_len) {
			best = (int)i;
			best_len = l;
		}
	}
	*len = best_len;
	return best;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
	if (err && errlen)
		TEXT_VA_FORMAT(err, errlen, fmt); /* a truncated message is still a message */
	return -EINVAL;
}

int duration_parse(const char *text, int64_t *ms, char *err, size_t errlen)
{
	const char *p = text;
	int64_t total = 0;
	int last_unit = -1;

	if (!text || !*text)
		return fail(err, errlen, "an empty string is not a duration; " DURATION_HINT);
	if (*p == '-')
		return fail(err, errlen, "\"%s\" is negative; " DURATION_HINT, text);
	if (*p == '+')
		p++;
	while (*p) {
		int64_t amount = 0;

		if (!isdigit((unsigned char)*p))
			return fail(err, errlen, "\"%s\" is not a duration; " DURATION_HINT, text);
		for (; isdigit((unsigned char)*p); p++) {
			if (amount > (INT64_MAX - 9) / 10)
				return fail(err, errlen,
				            "\"%s\" is too large to count in milliseconds; use a "
				            "smaller amount",
				            text);
			amount = amount * 10 + (*p - '0');
		}
		if (*p == '.' || *p == ',')
			return fail(
			    err, errlen,
			    "\"%s\" has a fraction; use whole numbers and a smaller unit, like "
			    "\"1h30m\" or \"1500ms\"",
			    text);
		if (!*p)
			return fail(err, errlen, "\"%s\" has no unit; " DURATION_HINT, text);
		size_t len;
		int u = unit_at(p, &len);
		if (u < 0) {
			if (isalpha((unsigned char)*p))
				return fail(err, errlen,
				            "\"%s\" has an unknown unit; use ms, s, m, h or d, "
				            "like \"30s\", \"5m\", \"2h\", \"7d\"",
				            text);
			return fail(err, errlen, "\"%s\" is not a duration; " DURATION_HINT, text);
		}
		if (u <= last_unit)
			return fail(
			    err, errlen,
			    "\"%s\" repeats a unit or puts a smaller one first; write the larger "
			    "unit first, each once, like \"1h30m\"",
			    text);
		last_unit = u;
		if (amount > INT64_MAX / units[u].ms || total > INT64_MAX - amount * units[u].ms)
			return fail(
			    err, errlen,
			    "\"%s\" is too large to count in milliseconds; use a smaller amount",
			    text);
		total += amount * units[u].ms;
		p += len;
	}
	if (last_unit < 0) /* "+" alone */
		return fail(err, errlen, "\"%s\" is not a duration; " DURATION_HINT, text);
	/* a ceiling that keeps every "instant + duration" sum far from overflowing */
	if (total > DURATION_MAX_MS)
		return fail(err, errlen, "\"%s\" is longer than 100 years; use a shorter duration",
		            text);
	*ms = total;
	return 0;
}

void duration_format(int64_t ms, char *out, size_t outlen)
{
	size_t o = 0;
	uint64_t rest;

	if (!outlen)
		return;
	out[0] = '\0';
	if (ms == 0) {
		snprintf(out, outlen, "0s");
		return;
	}
	if (ms < 0) {
		/* negate in unsigned arithmetic: -INT64_MIN does not fit in int64_t */
		rest = (uint64_t)0 - (uint64_t)ms;
		o = (size_t)snprintf(out, outlen, "-");
	} else {
		rest = (uint64_t)ms;
	}
	for (size_t i = 0; i < N_UNITS && rest; i++) {
		uint64_t n = rest / (uint64_t)units[i].ms;
		if (!n)
			continue;
		rest -= n * (uint64_t)units[i].ms;
		if (o >= outlen)
			break;
		int w =
		    snprintf(out + o, outlen - o, "%llu%s", (unsigned long long)n, units[i].name);
		if (w < 0 || (size_t)w >= outlen - o) {
			out[o] = '\0'; /* no half components: "1h", not "1h3" */
			break;
		}
		o += (size_t)w;
	}
}
