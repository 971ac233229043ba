/* A six-field schedule read two ways (cron.h, cron_six_fields): pgcrond reads the first field
 * as seconds, pg_cron reads the first five as minute to day-of-week and ignores a sixth.
 * sql/pg_cron_compat.sql's pgcrond.six_fields_note() words it the same for cron.schedule's
 * NOTICE; it_sqljobs compares the two. libc only. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"

/* N when FIELD is "*" (1) or "* /N" (without the blank) with N dividing a minute or an hour
 * into equal steps (1-30 and a divisor of 60); else 0. Only then is "every N" true: "* /45"
 * fires at 0 and 45, 15 apart after 45. */
static int even_step(const char *field)
{
	if (strcmp(field, "*") == 0)
		return 1;
	if (strncmp(field, "*/", 2) != 0 || !field[2] || strspn(field + 2, "0123456789") > 2 ||
	    field[2 + strspn(field + 2, "0123456789")] != '\0')
		return 0;
	int n = atoi(field + 2);
	return n >= 1 && n < 60 && 60 % n == 0 ? n : 0;
}

/* "every N UNITs" or "every UNIT" when F[0] is an even step and F[1..N) are all "*". */
static bool every(char *const *f, int n, const char *unit, char *out, size_t outlen)
{
	int step = even_step(f[0]);
	for (int i = 1; i < n && step; i++)
		if (strcmp(f[i], "*") != 0)
			step = 0;
	if (step == 1)
		snprintf(out, outlen, "every %s", unit);
	else if (step)
		snprintf(out, outlen, "every %d %ss", step, unit);
	return step != 0;
}

bool cron_six_fields(const char *text, struct cron_six *out)
{
	char buf[1024], *f[7];
	int n = 0;
	cron_expr e;

	memset(out, 0, sizeof(*out));
	while (*text && isspace((unsigned char)*text))
		text++;
	size_t len = strlen(text);
	while (len > 0 && isspace((unsigned char)text[len - 1]))
		len--;
	if (len == 0 || len >= sizeof(buf) || *text == '@')
		return false;
	memcpy(buf, text, len);
	buf[len] = '\0';
	for (char *p = buf; *p && n < 7;) {
		f[n++] = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		*p++ = '\0';
		while (*p && isspace((unsigned char)*p))
			p++;
	}
	if (n != 6 || cron_parse(text, &e, NULL, 0) < 0 || !(e.flags & CRON_SECONDS))
		return false;

	char five[sizeof(out->five)], rest[sizeof(out->five)];
	snprintf(five, sizeof(five), "%s %s %s %s %s", f[0], f[1], f[2], f[3], f[4]);
	snprintf(rest, sizeof(rest), "%s %s %s %s %s", f[1], f[2], f[3], f[4], f[5]);
	bool five_ok = cron_parse(five, &e, NULL, 0) == 0;

	/* pgcrond's reading, and a form of it pg_cron reads alike: "N seconds", or the five
	 * fields after a seconds field of 0 */
	char ours[sizeof(rest) + 64], theirs[sizeof(five) + 64];
	if (every(f, 6, "second", ours, sizeof(ours))) {
		int step = even_step(f[0]);
		snprintf(out->alike, sizeof(out->alike), "%d second%s", step, step == 1 ? "" : "s");
	} else {
		snprintf(ours, sizeof(ours), "second %s of \"%s\"", f[0], rest);
		if (strcmp(f[0], "0") == 0)
			snprintf(out->alike, sizeof(out->alike), "%s", rest);
	}
	if (!every(f, 5, "minute", theirs, sizeof(theirs)))
		snprintf(theirs, sizeof(theirs), "as \"%s\"%s", five,
		         five_ok ? "" : ", which is no valid schedule");
	if (five_ok)
		snprintf(out->five, sizeof(out->five), "%s", five);

	/* TEXT without its outer blanks (BUF's inner blanks are NULs now) */
	snprintf(out->what, sizeof(out->what),
	         "schedule \"%.*s\" has six fields: pgcrond reads the first as seconds (%s); "
	         "pg_cron ignores a sixth field (%s)",
	         (int)len, text, ours, theirs);
	const char *no_alike = "has no form pg_cron reads (pg_cron has no seconds field)";
	if (five_ok && out->alike[0])
		snprintf(out->hint, sizeof(out->hint),
		         "So that both read it alike, write \"%s\" for pg_cron's reading or \"%s\" "
		         "for pgcrond's.",
		         out->five, out->alike);
	else if (five_ok)
		snprintf(
		    out->hint, sizeof(out->hint),
		    "So that both read it alike, write \"%s\" for pg_cron's reading; pgcrond's %s.",
		    out->five, no_alike);
	else if (out->alike[0])
		snprintf(out->hint, sizeof(out->hint),
		         "So that both read it alike, write \"%s\" for pgcrond's reading.",
		         out->alike);
	else
		snprintf(out->hint, sizeof(out->hint), "pgcrond's reading %s.", no_alike);
	return true;
}
