/* What the subcommands share: the -c/--config and -h/--help options, and loading the
 * configuration for the commands that must work while a job file is broken. */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "caltables.h"
#include "cli.h"
#include "config.h"
#include "diag.h"
#include "duration.h"
#include "pgconn.h"
#include "sqljobs.h"
#include "text.h"

void cli_next_fire(const struct pgc_config *cfg, const struct conf_job *j, int64_t now, char *out,
                   size_t outlen)
{
	const struct conf_job_cal *cal = &j->more->cal;
	const cron_tz *tz = cal->tz ? cal->tz : cfg->tz; /* the job's own zone, if it has one */
	const struct conf_calendar *c =
	    config_calendar(cfg, cal->skip_dates ? cal->skip_dates : cal->only_dates);
	int64_t t = j->schedule && tz && j->enabled ? cron_next(&j->cron, tz, now) : CRON_NEVER;
	/* a calendar not read here (a table's): the daemon fires on the dates it last read */
	snprintf(out, outlen, "%s",
	         !j->enabled                                  ? "disabled"
	         : c && !c->dates                             ? "unknown (calendar not read)"
	         : j->schedule && j->cron.kind == CRON_REBOOT ? "at startup"
	                                                      : "-");
	if (out[0] == '-' && t != CRON_NEVER && cron_time_format(t, out, outlen) < 0)
		snprintf(out, outlen, "-");
}

void cli_schedule_tail(int64_t spread_ms, int offset_s, const char *skip, const char *only,
                       char *out, size_t outlen)
{
	char d[32];
	int n = 0;
	out[0] = '\0';
	if (spread_ms > 0) {
		duration_format(spread_ms, d, sizeof(d));
		n = snprintf(out, outlen, ", spread %s (+%ds)", d, offset_s);
	}
	if (n >= 0 && (size_t)n < outlen && ((skip && *skip) || (only && *only)))
		snprintf(out + n, outlen - (size_t)n, ", %s %s",
		         skip && *skip ? "skip_dates" : "only_dates", skip && *skip ? skip : only);
}

struct pgc_config *cli_with_sql_jobs(PGconn *conn, const struct pgc_config *cfg)
{
	struct diag_list dl = {0};
	struct pgc_config *merged = NULL;
	/* (a SQL job the daemon leaves out is left out here too; pgcrond.job.refused says why) */
	if (!conn || sqljobs_merge_from(conn, cfg, &merged, &dl) != 0)
		merged = NULL;
	diag_clear(&dl);
	return merged;
}

void cli_table_dates(const char *cmd, struct pgc_config **cfg)
{
	struct config_table_dates *v = NULL;
	size_t n = 0;
	if (caltables_read_now(*cfg, cmd, &v, &n) < 0 || config_set_table_dates(cfg, v, n) < 0)
		fprintf(stderr, "pgcrond %s: out of memory reading the table calendars\n", cmd);
	free(v);
}

int cli_load_config(const char *cmd, const char *conf, struct pgc_config **cfg, char **skipped)
{
	struct diag_list dl = {0};
	char **files = NULL;
	size_t n = 0, len;
	int rc;

	if (skipped)
		*skipped = NULL;
	rc =
	    skipped ? config_load_partial(conf, cfg, &dl, &files, &n) : config_load(conf, cfg, &dl);
	if (rc < 0) {
		diag_print(&dl, stderr);
		if (!dl.n)
			fprintf(stderr, "pgcrond %s: %s: %s\n", cmd, conf, strerror(-rc));
		diag_clear(&dl);
		return rc == -ENOMEM ? EX_OSERR : EX_CONFIG;
	}
	diag_clear(&dl);
	FILE *f = n ? open_memstream(skipped, &len) : NULL;
	for (size_t i = 0; f && i < n; i++)
		fprintf(f, "%s%s", i ? ", " : "", files[i]);
	if (f)
		fclose(f);
	text_free_list(files, n);
	return 0;
}

void cli_warn_skipped(const char *cmd, const char *conf, const char *skipped,
                      const char *consequence)
{
	if (!skipped)
		return;
	fprintf(stderr, "pgcrond %s: warning: %s %s errors (pgcrond check -c %s lists them); %s\n",
	        cmd, skipped, strchr(skipped, ',') ? "have" : "has", conf, consequence);
}

int cli_bad_option(const char *cmd, int opt, char **argv)
{
	const char *word = argv[optind - 1], *next = argv[optind];
	/* A letter refused inside a bundle (-xy) leaves optind on that word, and glibc names it in
	 * optopt: name the letter. optopt is also set for a long option given a value it does not
	 * take (--help=x): name that word. A long option without a letter is 256 and up there
	 * (cli_parse_args): never a letter. */
	bool is_letter = optopt > 0 && optopt < 256;
	bool in_bundle =
	    is_letter && next && next[0] == '-' && next[1] != '-' && strchr(next + 1, optopt);
	bool long_word = word[0] == '-' && word[1] == '-' && !in_bundle;
	char letter[3] = {'-', (char)optopt, '\0'};
	if (opt == ':')
		fprintf(stderr, "pgcrond %s: %s needs a value\n", cmd, word);
	else
		fprintf(stderr, "pgcrond %s: unknown option \"%s\"; see pgcrond %s --help\n", cmd,
		        is_letter && !long_word ? letter : word, cmd);
	return EX_USAGE;
}

void cli_print_table(const char *const *head, const char *cells, size_t rows, int cols,
                     size_t cell_size, unsigned right)
{
	/* widths in columns on a terminal, not bytes (text_width): "étape" takes 5 */
	size_t width[32] = {0}, n = (rows + 1) * (size_t)cols;

	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			size_t c = i % (size_t)cols, w;
			const char *s =
			    i < (size_t)cols ? head[c] : cells + (i - (size_t)cols) * cell_size;
			int pad = (int)(width[c] - (w = text_width(s))), r = right >> c & 1;
			if (pass == 0)
				width[c] = w > width[c] ? w : width[c];
			else if (c == (size_t)cols - 1)
				printf("%s\n", s);
			else /* a right-aligned column is padded on its left */
				printf("%*s%s%*s  ", r ? pad : 0, "", s, r ? 0 : pad, "");
		}
	}
}

void cli_format_span(double s, char *out, size_t outlen)
{
	/* the unit is chosen on the value as printed: 0.9996 s is "1.0 s", not "1000 ms" */
	long long ms = (long long)(s * 1000 + 0.5), tenths = (long long)(s * 10 + 0.5),
	          t = (long long)(s + 0.5);
	if (s < 0)
		snprintf(out, outlen, "-");
	else if (ms < 1000)
		snprintf(out, outlen, "%lld ms", ms);
	else if (tenths < 600)
		snprintf(out, outlen, "%lld.%lld s", tenths / 10, tenths % 10);
	else if (t < 3600)
		snprintf(out, outlen, "%lldm%02llds", t / 60, t % 60);
	else if (t < 86400)
		snprintf(out, outlen, "%lldh%02lldm", t / 3600, t % 3600 / 60);
	else
		snprintf(out, outlen, "%lldd%02lldh", t / 86400, t % 86400 / 3600);
}

int cli_parse_args(int argc, char **argv, const char *usage, const char **conf,
                   const struct cli_option *more, int min_args, int max_args, int *first_arg)
{
	struct option opts[CLI_OPTIONS_MAX + 3] = {
	    {"config", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	};
	char letters[3 * CLI_OPTIONS_MAX + 5] = ":c:h"; /* and up to "x:" an option, and NUL */
	size_t n_more = 0, o = strlen(letters);
	const char *cmd = argv[0];
	int opt;

	for (; more && more[n_more].name; n_more++) {
		const struct cli_option *m = &more[n_more];
		assert(n_more < CLI_OPTIONS_MAX && (m->flag != NULL) != (m->value != NULL));
		/* an option without a letter is told by its place: 256 and up are no letters */
		opts[n_more + 2] =
		    (struct option){m->name, m->value ? required_argument : no_argument, NULL,
		                    m->letter ? m->letter : 256 + (int)n_more};
		if (m->letter) {
			letters[o++] = m->letter;
			if (m->value)
				letters[o++] = ':';
		}
	}
	letters[o] = '\0';
	*conf = PGCROND_DEFAULT_CONF;
	optind = 0; /* glibc: a full restart, also of the ordering another scan chose */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, letters, opts, NULL)) != -1) {
		const struct cli_option *m = NULL;
		for (size_t i = 0; i < n_more && !m; i++)
			if (opt == (more[i].letter ? more[i].letter : 256 + (int)i))
				m = &more[i];
		if (opt == 'c') {
			*conf = optarg;
		} else if (opt == 'h') {
			fputs(usage, stdout);
			return CLI_HELP;
		} else if (opt == ':' && optopt == 'c') {
			fprintf(stderr, "pgcrond %s: %s needs a file name\n", cmd,
			        argv[optind - 1]);
			return EX_USAGE;
		} else if (!m) { /* ':' too: an option without its value */
			return cli_bad_option(cmd, opt, argv);
		} else if (m->value) {
			*m->value = optarg;
		} else {
			*m->flag = true;
		}
	}
	int n = argc - optind;
	if (n < min_args || n > max_args) {
		if (n > max_args)
			fprintf(stderr,
			        "pgcrond %s: unexpected argument \"%s\"; see pgcrond %s --help\n",
			        cmd, argv[optind + max_args], cmd);
		else
			fprintf(stderr, "pgcrond %s: missing argument; see pgcrond %s --help\n",
			        cmd, cmd);
		return EX_USAGE;
	}
	if (first_arg)
		*first_arg = optind;
	return 0;
}

PGconn *cli_history_connect(const char *cmd, const struct pgc_config *cfg, const char *missing)
{
	const struct conf_database *db = config_database(cfg, cfg->history_database);
	char app[64], err[512];
	if (!db)
		return NULL;
	snprintf(app, sizeof(app), "pgcrond %s", cmd);
	PGconn *c = pgconn_connect_blocking(db->conninfo, app, err, sizeof(err));
	if (!c)
		fprintf(stderr, "pgcrond %s: %s%shistory database \"%s\": %s\n", cmd,
		        missing ? missing : "", missing ? ": " : "", db->name, err);
	return c;
}

int cli_resolve_job(const char *cmd, struct pg_conn *conn, const char *arg, char *name,
                    size_t namelen)
{
	/* config_resolve_job's rule, on the registry: a file job's name, a SQL job's jobid,
	 * then the SQL jobs that answer to the name (pgcrond's or the one given in SQL) */
	static const char sql[] =
	    "SELECT jobid, jobname, source, username, cron_jobname,"
	    "       CASE WHEN source OPERATOR(pg_catalog.=) 'file'"
	    "             AND jobname OPERATOR(pg_catalog.=) $1 THEN 0"
	    "            WHEN source OPERATOR(pg_catalog.=) 'sql'"
	    "             AND jobid::pg_catalog.text OPERATOR(pg_catalog.=) $1 THEN 1"
	    "            WHEN source OPERATOR(pg_catalog.=) 'sql' THEN 2 END AS rank"
	    "  FROM pgcrond.job"
	    " WHERE removed_at IS NULL AND (jobname OPERATOR(pg_catalog.=) $1"
	    "       OR cron_jobname OPERATOR(pg_catalog.=) $1"
	    "       OR jobid::pg_catalog.text OPERATOR(pg_catalog.=) $1)"
	    " ORDER BY 6, jobid";
	char arg63[64];
	/* a name longer than a PostgreSQL name was cut to 63 bytes when it was scheduled */
	text_copy(arg63, sizeof(arg63), arg);
	const char *p[] = {arg63};
	PGresult *r = PQexecParams(conn, sql, 1, NULL, p, NULL, NULL, 0);
	int rc = 0;

	text_copy(name, namelen, arg);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		return 0; /* a schema without SQL jobs: the name as written */
	}
	int n = PQntuples(r), best = n ? atoi(PQgetvalue(r, 0, 5)) : 0;
	int same = 0;
	for (int i = 0; i < n && atoi(PQgetvalue(r, i, 5)) == best; i++)
		same++;
	if (n == 0 || PQgetisnull(r, 0, 5)) {
		/* nothing, or only a file job answering to another name: as written */
	} else if (best < 2 || same == 1) {
		text_copy(name, namelen, PQgetvalue(r, 0, 1));
	} else {
		char q[260];
		fprintf(stderr,
		        "pgcrond %s: job name %s is ambiguous, jobs of several roles answer to it; "
		        "give the jobid instead:\n",
		        cmd, text_quote(arg63, q, sizeof(q)));
		for (int i = 0; i < same; i++) {
			char qn[260], role[200];
			fprintf(stderr, "  jobid %s  role \"%s\"  %s%s  pgcrond name %s\n",
			        PQgetvalue(r, i, 0),
			        text_escape_ctl(PQgetvalue(r, i, 3), role, sizeof(role)),
			        PQgetisnull(r, i, 4) ? "unnamed" : "named ",
			        PQgetisnull(r, i, 4)
			            ? ""
			            : text_quote(PQgetvalue(r, i, 4), qn, sizeof(qn)),
			        PQgetvalue(r, i, 1));
		}
		rc = EX_USAGE;
	}
	PQclear(r);
	return rc;
}
