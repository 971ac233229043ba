/* pgcrond next [--tz ZONE] [--from TIME] [--count N] EXPR: the next fire times of EXPR. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cron.h"

#define NEXT_MAX_COUNT 100000

static void usage(FILE *out)
{
	fprintf(out,
	        "Usage: pgcrond next [--tz ZONE] [--from TIME] [--count N] EXPR\n"
	        "\n"
	        "Print the next N (default 5) fire times of the cron expression EXPR after TIME\n"
	        "(default now), one per line, in UTC as 2028-02-29T00:00:00Z.\n"
	        "\n"
	        "Options:\n"
	        "  --tz ZONE     compute in time zone ZONE, e.g. Europe/Berlin (default UTC)\n"
	        "  --from TIME   start after TIME: 2026-03-08T01:00:00Z, 2026-03-08T01:00-05:00,\n"
	        "                2026-03-08T01:00+0100, or @UNIXSECONDS (default now)\n"
	        "  --count N     how many times to print, 1-%d (default 5)\n"
	        "\n"
	        "EXPR (quote it, or give its fields as separate words):\n"
	        "  minute hour day-of-month month day-of-week   0 3 * * mon-fri\n"
	        "  second minute hour day-of-month month day-of-week   */30 * * * * *\n"
	        "  fields take lists 1,15  ranges 1-5  steps */10 or 0-30/10; month and weekday\n"
	        "  names jan-dec, sun-sat; 0 and 7 are Sunday; $ as day-of-month is the last day.\n"
	        "  If day-of-month or day-of-week starts with *, a day must match both, else\n"
	        "  either (Vixie cron).\n"
	        "  @yearly @annually @monthly @weekly @daily @midnight @hourly @reboot (@restart)\n"
	        "  N seconds (1-59): every N seconds\n"
	        "\n"
	        "Exit status: 0 ok (\"never\" for an expression that never fires), 64 bad option,\n"
	        "zone, time or count, 65 bad expression.\n",
	        NEXT_MAX_COUNT);
}

/* Expression words are joined with single blanks: 0 3 '*' '*' '*' works. */
static int add_word(char *expr, size_t size, size_t *len, int *nwords, const char *word)
{
	int n = snprintf(expr + *len, size - *len, "%s%s", *nwords ? " " : "", word);
	if (n < 0 || (size_t)n >= size - *len) {
		fprintf(stderr, "pgcrond next: the expression is too long (over %zu bytes)\n",
		        size - 1);
		return -1;
	}
	*len += (size_t)n;
	(*nwords)++;
	return 0;
}

int cli_next(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"tz", required_argument, NULL, 'z'},
	    {"from", required_argument, NULL, 'f'},
	    {"count", required_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *zone = "UTC", *from = NULL, *count_s = NULL;
	char expr[1024], err[512], when[CRON_TIME_BUFSZ];
	size_t elen = 0;
	int nwords = 0, rc = EX_OK, opt;
	cron_tz *tz = NULL;
	cron_expr e;
	int64_t t;
	long count = 5;

	/* 0, not 1: glibc then also forgets a bundle (-xy) an earlier call stopped inside */
	optind = 0;
	opterr = 0;
	/* Options may come among the expression's words: "-" hands each word back in order
	 * (opt 1), whatever POSIXLY_CORRECT says; the words after "--" are all the expression's. */
	expr[0] = '\0';
	while ((opt = getopt_long(argc, argv, "-:n:h", opts, NULL)) != -1) {
		switch (opt) {
		case 1:
			if (add_word(expr, sizeof(expr), &elen, &nwords, optarg) < 0)
				return EX_DATAERR;
			break;
		case 'z':
			zone = optarg;
			break;
		case 'f':
			from = optarg;
			break;
		case 'n':
			/* -n=5 as --count=5 */
			count_s = optarg + (optarg[0] == '=');
			break;
		case 'h':
			usage(stdout);
			return EX_OK;
		default:
			return cli_bad_option("next", opt, argv);
		}
	}
	for (int i = optind; i < argc; i++)
		if (add_word(expr, sizeof(expr), &elen, &nwords, argv[i]) < 0)
			return EX_DATAERR;
	if (nwords == 0) {
		fprintf(stderr, "pgcrond next: no expression given\n");
		usage(stderr);
		return EX_USAGE;
	}
	if (count_s) {
		char *end;
		errno = 0;
		count = strtol(count_s, &end, 10);
		if (errno || end == count_s || *end || count < 1 || count > NEXT_MAX_COUNT) {
			fprintf(stderr,
			        "pgcrond next: --count must be a number from 1 to %d, not \"%s\"\n",
			        NEXT_MAX_COUNT, count_s);
			return EX_USAGE;
		}
	}
	if (from) {
		if (cron_time_parse(from, &t, err, sizeof(err)) < 0) {
			fprintf(stderr, "pgcrond next: --from: %s\n", err);
			return EX_USAGE;
		}
	} else {
		t = (int64_t)time(NULL);
	}
	if (cron_parse(expr, &e, err, sizeof(err)) < 0) {
		fprintf(stderr, "pgcrond next: %s\n", err);
		return EX_DATAERR;
	}
	if (cron_tz_open(zone, &tz, err, sizeof(err)) < 0) {
		fprintf(stderr, "pgcrond next: --tz: %s\n", err);
		return EX_USAGE;
	}

	if (e.kind == CRON_REBOOT) {
		printf("@reboot: runs once when the daemon starts\n");
		goto out;
	}
	for (long i = 0; i < count; i++) {
		t = cron_next(&e, tz, t);
		if (t == CRON_NEVER) {
			if (i == 0)
				printf("never\n");
			break;
		}
		if (cron_time_format(t, when, sizeof(when)) < 0)
			break;
		printf("%s\n", when);
	}
out:
	cron_tz_free(&tz);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "pgcrond next: writing the output failed\n");
		rc = EX_IOERR;
	}
	return rc;
}
