/* pgcrond list: the configured jobs as a table, with each job's next fire time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "config.h"
#include "duration.h"
#include "job_kind.h"
#include "plugin.h"
#include "pgconn.h"
#include "text.h"

enum { COL_NAME, COL_KIND, COL_SCHEDULE, COL_AFTER, COL_LISTEN, COL_ONCE, COL_NEXT, N_COLS };

static const char *const headings[N_COLS] = {"NAME",   "KIND",          "SCHEDULE",  "AFTER",
                                             "LISTEN", "ONCE (FAULTS)", "NEXT (UTC)"};

static const char usage[] =
    "Usage: pgcrond list [-c FILE]\n\n"
    "List the configured jobs: name, kind (plugin NAME VERSION, sql or http),\n"
    "schedule, the jobs it runs after, the channel it listens on, whether a fire is\n"
    "run once when the instance running it is lost with several instances (\"yes\",\n"
    "\"fenced: CLASS\" or, for an HTTP job, \"at most once per attempt\":\n"
    "docs/faults.md), and its next run in UTC as the files say ('pgcrond status'\n"
    "shows the running daemon's view). Jobs made in SQL (cron.schedule) follow, read\n"
    "from the history database when it can be reached (kind \"sql, role NAME, jobid\n"
    "N\").\n\n"
    "Options:\n"
    "  -c, --config FILE  the main configuration file (default " PGCROND_DEFAULT_CONF ")\n"
    "  -h, --help         show this help\n";

/* "a,b,c" or "-" */
static void join_after(const struct conf_job *j, char *out, size_t outlen)
{
	size_t o = 0;

	snprintf(out, outlen, "-");
	for (size_t i = 0; i < j->n_after; i++) {
		int w = snprintf(out + o, outlen - o, "%s%s", i ? "," : "", j->after[i]);
		if (w < 0 || (size_t)w >= outlen - o)
			return; /* cut short: still NUL-terminated */
		o += (size_t)w;
	}
}

/* The KIND column of file job J: its kind's name, a plugin job's plugin and version as the
 * file in plugin_dir says now (REG: NULL when none could be read). */
static void kind_cell(const struct conf_job *j, struct plugin_registry *reg, char *out,
                      size_t outlen)
{
	const struct plugin *p = NULL;
	char perr[256];

	switch (j->kind) {
	case JOB_KIND_PLUGIN:
		if (reg && plugin_registry_get(reg, j->plugin, &p, perr, sizeof(perr)) == 0 && p)
			snprintf(out, outlen, "plugin %s %s", j->plugin, p->version);
		else
			snprintf(out, outlen, "plugin %s (not loadable: pgcrond check)", j->plugin);
		return;
	case JOB_KIND_SQL:
	case JOB_KIND_HTTP:
		snprintf(out, outlen, "%s", job_kind_name(j->kind));
		return;
	}
}

/* The jobs made in SQL, as rows of the history database (NULL when it cannot be reached, with
 * a note on stderr: the file jobs are listed all the same), and *LOADED: CFG with them as the
 * daemon loads them (NULL: none). */
static PGresult *sql_jobs(const struct pgc_config *cfg, struct pgc_config **loaded)
{
	*loaded = NULL;
	PGconn *c = cli_history_connect("list", cfg, "jobs made in SQL not listed");
	if (!c)
		return NULL;
	PGresult *r =
	    PQexec(c, "SELECT jobname, username, schedule, pg_catalog.array_to_string(ARRAY("
	              "SELECT pg_catalog.jsonb_array_elements_text(options OPERATOR(pg_catalog.->)"
	              " 'after')), ','), options OPERATOR(pg_catalog.->>) 'listen', command, jobid,"
	              " cron_jobname, refused"
	              " FROM pgcrond.job WHERE source OPERATOR(pg_catalog.=) 'sql'"
	              " AND removed_at IS NULL ORDER BY jobname");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		r = NULL; /* no schema version 3 yet: no SQL jobs */
	}
	if (r)
		*loaded = cli_with_sql_jobs(c, cfg);
	PQfinish(c);
	return r;
}

int cli_list(int argc, char **argv)
{
	const char *path;
	struct pgc_config *cfg = NULL;
	int rc = cli_parse_args(argc, argv, usage, &path, NULL, 0, 0, NULL);

	if (rc)
		return rc == CLI_HELP ? EX_OK : rc;
	char *skipped = NULL;
	rc = cli_load_config("list", path, &cfg, &skipped);
	if (rc)
		return rc;
	/* what loads is listed; the broken files are named, their jobs are not */
	cli_warn_skipped("list", path, skipped,
	                 "their jobs are not listed (the running daemon may still run them)");
	free(skipped);
	cli_table_dates("list", &cfg);

	struct pgc_config *loaded = NULL;
	PGresult *sql = sql_jobs(cfg, &loaded);
	size_t nf = cfg->n_jobs, n = nf + (sql ? (size_t)PQntuples(sql) : 0);
	char(*cells)[N_COLS][256] = calloc(n ? n : 1, sizeof(*cells));
	if (!cells) {
		fprintf(stderr, "pgcrond list: out of memory\n");
		config_free(&cfg);
		PQclear(sql);
		return EX_OSERR;
	}
	int64_t now = (int64_t)time(NULL);
	/* each plugin's version, as the file on disk says now (NULL: none could be loaded) */
	struct plugin_registry *reg = NULL;
	if (plugin_registry_new(cfg->plugin_dir, &reg) < 0)
		reg = NULL;
	for (size_t i = nf; i < n; i++) {
		/* a SQL job: the same columns, its next fire as the daemon loads it (or why the
		 * daemon leaves it out) */
		int k = (int)(i - nf);
		const struct conf_job *j =
		    loaded ? config_job(loaded, PQgetvalue(sql, k, 0)) : NULL;
		snprintf(cells[i][COL_NAME], 256, "%s", PQgetvalue(sql, k, 0));
		/* whose, and the name its owner gave it where it is not pgcrond's name of it
		 * (docs/sql-api.md, "Job names"): any text, quoted and escaped */
		char role[96], named[200] = "", why[256];
		text_escape_ctl(PQgetvalue(sql, k, 1), role, sizeof(role));
		if (!PQgetisnull(sql, k, 7) && strcmp(PQgetvalue(sql, k, 7), PQgetvalue(sql, k, 0)))
			text_quote(PQgetvalue(sql, k, 7), named, sizeof(named));
		text_format(cells[i][COL_KIND], 256, "sql, role %s, jobid %s%s%s", role,
		            PQgetvalue(sql, k, 6), named[0] ? ", named " : "", named);
		char spread[160] = "";
		const struct conf_job_cal *cal = j ? &j->more->cal : NULL;
		if (cal)
			cli_schedule_tail(cal->spread_ms, j->cron.offset, cal->skip_dates,
			                  cal->only_dates, spread, sizeof(spread));
		snprintf(cells[i][COL_SCHEDULE], 256, "%s%s", PQgetvalue(sql, k, 2), spread);
		snprintf(cells[i][COL_AFTER], 256, "%s",
		         PQgetvalue(sql, k, 3)[0] ? PQgetvalue(sql, k, 3) : "-");
		snprintf(cells[i][COL_LISTEN], 256, "%s",
		         PQgetisnull(sql, k, 4) ? "-" : PQgetvalue(sql, k, 4));
		job_kind_once(JOB_KIND_SQL, PQgetvalue(sql, k, 5), cells[i][COL_ONCE], 256);
		if (j)
			cli_next_fire(cfg, j, now, cells[i][COL_NEXT], 256);
		else /* why the daemon leaves it out, as it last said */
			text_format(cells[i][COL_NEXT], 256, "%s%s",
			            PQgetisnull(sql, k, 8) ? "-" : "not run: ",
			            text_escape_ctl(PQgetvalue(sql, k, 8), why, sizeof(why)));
	}
	for (size_t i = 0; i < nf; i++) {
		const struct conf_job *j = &cfg->jobs[i];
		snprintf(cells[i][COL_NAME], 256, "%s", j->name);
		kind_cell(j, reg, cells[i][COL_KIND], 256);
		const struct conf_job_cal *cal = &j->more->cal;
		char spread[160];
		cli_schedule_tail(cal->spread_ms, j->cron.offset, cal->skip_dates, cal->only_dates,
		                  spread, sizeof(spread));
		if (j->more->fresh.sla_ms > 0) {
			/* freshness: the SLA, beside the schedule if it has one */
			char d[32];
			duration_format(j->more->fresh.sla_ms, d, sizeof(d));
			snprintf(cells[i][COL_SCHEDULE], 256, "%s%s%sfreshness %s",
			         j->schedule ? j->schedule : "", spread, j->schedule ? ", " : "",
			         d);
		} else {
			snprintf(cells[i][COL_SCHEDULE], 256, "%s%s",
			         j->schedule ? j->schedule : "-", spread);
		}
		join_after(j, cells[i][COL_AFTER], 256);
		const char *listen = j->more->notify.listen;
		snprintf(cells[i][COL_LISTEN], 256, "%s", listen ? listen : "-");
		job_kind_once(j->kind, j->command, cells[i][COL_ONCE], 256);
		cli_next_fire(cfg, j, now, cells[i][COL_NEXT], 256);
	}
	cli_print_table(headings, cells[0][0], n, N_COLS, sizeof(cells[0][0]), 0);
	free(cells);
	plugin_registry_free(&reg);
	PQclear(sql);
	config_free(&loaded);
	config_free(&cfg);
	return EX_OK;
}
