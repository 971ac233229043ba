/* pgcrond trigger [--force] JOB: ask the running daemon to run JOB now. The request is a row
 * that pgcrond.trigger() writes in the history database (who asked is recorded there), and
 * a NOTIFY with its id wakes the daemon, which claims the row and runs the job. PostgreSQL
 * decides who may ask: the daemon's role, which owns the function, and the members of
 * pgcrond_operator. It works from any host that reaches that database. */
#include <getopt.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "history.h"
#include "pgconn.h"

/* EX_NOPERM: the database refused the role (sysexits has nothing closer) */
#define EXIT_NOPERM 77

static void usage(FILE *out)
{
	fprintf(out,
	        "Usage: pgcrond trigger [-c FILE] [--force] JOB\n\n"
	        "Ask the running daemon to run JOB now, outside its schedule. The request goes\n"
	        "through pgcrond.trigger(JOB) in the history database, which records who asked\n"
	        "and which only the daemon's role and members of pgcrond_operator may execute\n"
	        "(GRANT pgcrond_operator TO alice;). The run shows in 'pgcrond history' with\n"
	        "trigger \"manual\"; the daemon's answer is in pgcrond.trigger_request. A request\n"
	        "made while no daemon runs is served when one starts (within an hour).\n\n"
	        "Options:\n"
	        "  -c, --config FILE  the main configuration file (default %s)\n"
	        "  -f, --force        run JOB even if it is disabled\n"
	        "  -h, --help         show this help\n",
	        PGCROND_DEFAULT_CONF);
}

static int parse_args(int argc, char **argv, const char **conf, bool *force, const char **job)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"force", no_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:fh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			*conf = optarg;
			break;
		case 'f':
			*force = true;
			break;
		case 'h':
			usage(stdout);
			return CLI_HELP;
		case ':':
			fprintf(stderr, "pgcrond trigger: %s needs a value\n", argv[optind - 1]);
			return EX_USAGE;
		default:
			fprintf(
			    stderr,
			    "pgcrond trigger: unknown option \"%s\"; see pgcrond trigger --help\n",
			    argv[optind - 1]);
			return EX_USAGE;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "pgcrond trigger: give one job name; see pgcrond trigger --help\n");
		return EX_USAGE;
	}
	*job = argv[optind];
	return 0;
}

/* Whether JOB is a job made in SQL (pgcrond.job, source sql); *ENABLED says if it is active. */
static bool sql_job_enabled(PGconn *conn, const char *job, bool *enabled)
{
	const char *p[] = {job};
	PGresult *r = PQexecParams(conn,
	                           "SELECT enabled FROM pgcrond.job WHERE jobname = $1"
	                           " AND source = 'sql' AND removed_at IS NULL",
	                           1, NULL, p, NULL, NULL, 0);
	bool found = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
	*enabled = found && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return found;
}

int cli_trigger(int argc, char **argv)
{
	const char *conf = PGCROND_DEFAULT_CONF, *job = NULL;
	bool force = false;
	struct pgc_config *cfg = NULL;
	PGconn *conn = NULL;
	int rc;
	bool sql_enabled = false;

	rc = parse_args(argc, argv, &conf, &force, &job);
	if (rc)
		return rc == CLI_HELP ? EX_OK : rc;

	rc = hist_cli_open("trigger", conf, &cfg, &conn);
	if (rc != EX_OK)
		return rc;
	const struct conf_job *j = config_job(cfg, job);
	if (!j && sql_job_enabled(conn, job, &sql_enabled)) {
		/* a job made in SQL (cron.schedule): the daemon has it too */
	} else if (!j) {
		fprintf(stderr,
		        "pgcrond trigger: no job \"%s\" in %s and its conf.d; "
		        "'pgcrond list' shows the configured jobs\n",
		        job, conf);
		rc = EX_USAGE;
		goto out;
	}
	if ((j ? !j->enabled : !sql_enabled) && !force) {
		fprintf(stderr,
		        "pgcrond trigger: job \"%s\" is disabled (enabled = false); "
		        "'pgcrond trigger --force %s' runs it anyway\n",
		        job, job);
		rc = EX_USAGE;
		goto out;
	}

	const char *params[] = {job, force ? "true" : "false"};
	PGresult *r = PQexecParams(conn, "SELECT pgcrond.trigger($1, $2::boolean)", 2, NULL, params,
	                           NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		char why[512];
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		pgconn_result_error(r, why, sizeof(why));
		if (state && strcmp(state, "42501") == 0) {
			fprintf(stderr,
			        "pgcrond trigger: %s\nrole \"%s\" may not ask for manual runs; a "
			        "superuser or the owner of the pgcrond schema can allow it: GRANT "
			        "pgcrond_operator TO \"%s\";\n",
			        why, PQuser(conn), PQuser(conn));
			rc = EXIT_NOPERM;
		} else if (state && (strcmp(state, "42883") == 0 || strcmp(state, "3F000") == 0)) {
			fprintf(stderr,
			        "pgcrond trigger: %s\nthe history database \"%s\" has no "
			        "pgcrond.trigger(): run 'pgcrond install' to upgrade its schema\n",
			        why, cfg->history_database);
			rc = EX_UNAVAILABLE;
		} else {
			fprintf(stderr, "pgcrond trigger: %s\n", why);
			rc = EX_UNAVAILABLE;
		}
	} else {
		printf(
		    "asked the daemon to run \"%s\" now%s (request %s in pgcrond.trigger_request "
		    "on database \"%s\")\n",
		    job, (j ? !j->enabled : !sql_enabled) ? ", even though it is disabled" : "",
		    PQgetvalue(r, 0, 0), cfg->history_database);
	}
	PQclear(r);
out:
	PQfinish(conn);
	config_free(&cfg);
	return rc;
}
