/* pgcrond next [--tz ZONE] [--from TIME] [--count N] EXPR: the next fire times of EXPR; with
 * --job NAME [-c FILE], those of a configured job, as the daemon loads it (its zone, its spread).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "cli.h"
#include "config.h"
#include "cron.h"
#include "text.h"

#define NEXT_MAX_COUNT 100000

static const char usage[] =
    "Usage: pgcrond next [--tz ZONE] [--from TIME] [--count N] EXPR\n"
    "       pgcrond next --job NAME [-c FILE] [--from TIME] [--count N]\n"
    "\n"
    "Print the next N (default 5) fire times of the cron expression EXPR after TIME\n"
    "(default now), one per line, in UTC as 2028-02-29T00:00:00Z. With --job, those\n"
    "of job NAME as the daemon runs it: its schedule in its time zone, on the dates\n"
    "its calendar leaves, moved by its spread, after a line that says so (a job made\n"
    "in SQL is read from the history database).\n"
    "\n"
    "Options:\n"
    "  --job NAME    a configured job's fires instead of EXPR's\n"
    "  -c, --config FILE  with --job: the main configuration file (default " PGCROND_DEFAULT_CONF
    ")\n"
    "  --tz ZONE     compute in time zone ZONE, e.g. Europe/Berlin (default UTC)\n"
    "  --from TIME   start after TIME: 2026-03-08T01:00:00Z, 2026-03-08T01:00-05:00,\n"
    "                2026-03-08T01:00+0100, or @UNIXSECONDS (default now)\n"
    "  --count N, -n N  how many times to print, 1-" CLI_STR(
        NEXT_MAX_COUNT) " (default 5)\n"
                        "\n"
                        "EXPR (quote it, or give its fields as separate words):\n"
                        "  minute hour day-of-month month day-of-week   0 3 * * mon-fri\n"
                        "  second minute hour day-of-month month day-of-week   */30 * * * * *\n"
                        "  fields take lists 1,15  ranges 1-5  steps */10 or 0-30/10; month and "
                        "weekday\n"
                        "  names jan-dec, sun-sat; 0 and 7 are Sunday; $ as day-of-month is the "
                        "last day.\n"
                        "  If day-of-month or day-of-week starts with *, a day must match both, "
                        "else\n"
                        "  either (Vixie cron).\n"
                        "  @yearly @annually @monthly @weekly @daily @midnight @hourly @reboot "
                        "(@restart)\n"
                        "  N seconds (1-59): every N seconds\n"
                        "  RRULE:FREQ=...;... an RFC 5545 recurrence rule (docs/calendars.md)\n"
                        "\n"
                        "Exit status: 0 ok (\"never\" for an expression that never fires), 64 bad "
                        "option,\n"
                        "zone, time, count or job name, 65 bad expression, 78 bad configuration.\n";

/* Job NAME of CONF as the daemon loads it into *JOB: a job of the files (*CFG), else one made
 * in SQL (*LOADED: *CFG with them). Free both. Returns 0 or an exit code after a message. */
static int find_job(const char *conf, const char *name, struct pgc_config **cfg,
                    struct pgc_config **loaded, const struct conf_job **job)
{
	char *skipped = NULL;
	int rc = cli_load_config("next", conf, cfg, &skipped);
	if (rc)
		return rc;
	cli_warn_skipped("next", conf, skipped, "their jobs are not looked at");
	free(skipped);
	cli_table_dates("next", cfg);
	if ((*job = config_job(*cfg, name)))
		return 0;
	PGconn *c = cli_history_connect("next", *cfg, "jobs made in SQL not looked at");
	*loaded = cli_with_sql_jobs(c, *cfg);
	/* a job made in SQL that the daemon leaves out: why, as the daemon last said */
	const char *p[] = {name};
	PGresult *r = PQexecParams(c,
	                           "SELECT pg_catalog.format('job \"%s\" (jobid %s, role \"%s\") is"
	                           " not run: %s', jobname, jobid, username, refused) FROM"
	                           " pgcrond.job WHERE jobname OPERATOR(pg_catalog.=) $1 AND"
	                           " refused IS NOT NULL AND removed_at IS NULL",
	                           1, NULL, p, NULL, NULL, 0);
	char *why = PQntuples(r) ? text_escape_dup(PQgetvalue(r, 0, 0), TEXT_FOLD_NEWLINES) : NULL;
	rc = *loaded && (*job = config_job(*loaded, name)) ? 0 : why ? EX_DATAERR : EX_USAGE;
	if (rc == EX_DATAERR)
		fprintf(stderr, "pgcrond next: %s\n", why);
	else if (rc)
		fprintf(stderr,
		        "pgcrond next: no job \"%s\" in %s's job files or among the jobs made in "
		        "SQL (pgcrond list names them)\n",
		        name, conf);
	free(why);
	PQclear(r);
	PQfinish(c);
	return rc;
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
	    {"job", required_argument, NULL, 'j'},
	    {"config", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *zone = NULL, *from = NULL, *count_s = NULL, *job = NULL, *conf = NULL;
	struct pgc_config *cfg = NULL, *loaded = NULL;
	const struct conf_job *cj = NULL;
	char expr[1024], err[512], when[CRON_TIME_BUFSZ];
	size_t elen = 0;
	int nwords = 0, rc = EX_OK, opt;
	bool unread = false;
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
	while ((opt = getopt_long(argc, argv, "-:n:c:h", opts, NULL)) != -1) {
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
		case 'j':
			job = optarg;
			break;
		case 'c':
			conf = optarg;
			break;
		case 'n':
			/* -n=5 as --count=5 */
			count_s = optarg + (optarg[0] == '=');
			break;
		case 'h':
			fputs(usage, stdout);
			return EX_OK;
		default:
			return cli_bad_option("next", opt, argv);
		}
	}
	for (int i = optind; i < argc; i++)
		if (add_word(expr, sizeof(expr), &elen, &nwords, argv[i]) < 0)
			return EX_DATAERR;
	if (job && (nwords || zone)) {
		fprintf(stderr, "pgcrond next: --job %s: %s\n", job,
		        nwords ? "give a job or an expression, not both"
		               : "the job's schedule is read in its own time zone; leave out --tz");
		return EX_USAGE;
	}
	if (!job && conf) {
		fprintf(stderr, "pgcrond next: -c is read for --job only\n");
		return EX_USAGE;
	}
	if (nwords == 0 && !job) {
		fprintf(stderr, "pgcrond next: no expression given\n");
		fputs(usage, stderr);
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
	t = (int64_t)time(NULL);
	if (from && cron_time_parse(from, &t, err, sizeof(err)) < 0) {
		fprintf(stderr, "pgcrond next: --from: %s\n", err);
		return EX_USAGE;
	}
	if (job) {
		if ((rc = find_job(conf ? conf : PGCROND_DEFAULT_CONF, job, &cfg, &loaded, &cj)) !=
		    0)
			goto out;
		const struct conf_job_cal *jc = &cj->more->cal;
		char spread[160], cal[40] = "";
		cli_schedule_tail(jc->spread_ms, cj->cron.offset, jc->skip_dates, jc->only_dates,
		                  spread, sizeof(spread));
		const struct conf_calendar *c =
		    config_calendar(cfg, jc->skip_dates ? jc->skip_dates : jc->only_dates);
		unread = c && !c->dates; /* only the daemon knows its dates */
		if (unread)
			snprintf(cal, sizeof(cal), " (not read here)");
		else if (c)
			snprintf(cal, sizeof(cal), " (%zu date%s)", cron_dates_count(c->dates),
			         cron_dates_count(c->dates) == 1 ? "" : "s");
		printf("job %s: schedule %s%s%s, time zone %s%s\n", cj->name,
		       cj->schedule ? cj->schedule : "none", spread, cal,
		       jc->timezone ? jc->timezone : cfg->timezone,
		       cj->enabled ? "" : " (disabled: it does not fire)");
		e = cj->cron;
		if (!cj->schedule)
			goto out;
	} else if (cron_parse(expr, &e, err, sizeof(err)) < 0) {
		fprintf(stderr, "pgcrond next: %s\n", err);
		return EX_DATAERR;
	} else if (cron_tz_open(zone ? zone : "UTC", &tz, err, sizeof(err)) < 0) {
		fprintf(stderr, "pgcrond next: --tz: %s\n", err);
		return EX_USAGE;
	}

	if (e.kind == CRON_REBOOT) {
		printf("@reboot: runs once when the daemon starts\n");
		goto out;
	}
	for (long i = 0; i < count; i++) {
		t = cron_next(&e, cj ? (cj->more->cal.tz ? cj->more->cal.tz : cfg->tz) : tz, t);
		if (t == CRON_NEVER) { /* (a calendar not read here: its jobs fire on no date) */
			if (i == 0)
				printf("%s\n", cj && unread ? "unknown" : "never");
			break;
		}
		if (cron_time_format(t, when, sizeof(when)) < 0)
			break;
		printf("%s\n", when);
	}
out:
	cron_tz_free(&tz);
	config_free(&loaded);
	config_free(&cfg);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "pgcrond next: writing the output failed\n");
		rc = EX_IOERR;
	}
	return rc;
}
