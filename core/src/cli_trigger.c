/* pgcrond trigger JOB: ask the running daemon to run JOB now. The request travels as a
 * NOTIFY on the history database, which every instance LISTENs on, so it works from any
 * host that can reach that database, without a control socket. */
#include <getopt.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "history.h"
#include "pgconn.h"

static void usage(FILE *out)
{
	fprintf(out,
	        "Usage: pgcrond trigger [-c FILE] JOB\n\n"
	        "Ask the running daemon to run JOB now, outside its schedule (NOTIFY %s with\n"
	        "the job name on the history database). The run shows in 'pgcrond history' with\n"
	        "trigger \"manual\". Nothing happens if no daemon is running.\n\n"
	        "Options:\n"
	        "  -c, --config FILE  the main configuration file (default %s)\n"
	        "  -h, --help         show this help\n",
	        PGCROND_TRIGGER_CHANNEL, PGCROND_DEFAULT_CONF);
}

int cli_trigger(int argc, char **argv)
{
	const char *conf;
	struct pgc_config *cfg = NULL;
	PGconn *conn = NULL;
	int rc;

	int first;
	rc = cli_parse_config_args(argc, argv, usage, &conf, 1, 1, &first);
	if (rc)
		return rc == CLI_HELP ? EX_OK : rc;
	const char *job = argv[first];

	rc = hist_cli_open("trigger", conf, &cfg, &conn);
	if (rc != EX_OK)
		return rc;
	const struct conf_job *j = config_job(cfg, job);
	if (!j) {
		fprintf(stderr,
		        "pgcrond trigger: no job \"%s\" in %s and its conf.d; "
		        "'pgcrond list' shows the configured jobs\n",
		        job, conf);
		rc = EX_USAGE;
		goto out;
	}

	const char *params[] = {PGCROND_TRIGGER_CHANNEL, job};
	PGresult *r =
	    PQexecParams(conn, "SELECT pg_notify($1, $2)", 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		char why[512];
		fprintf(stderr, "pgcrond trigger: %s\n", pgconn_result_error(r, why, sizeof(why)));
		rc = EX_UNAVAILABLE;
	} else {
		printf("asked the daemon to run \"%s\" now (NOTIFY %s on database \"%s\")%s\n", job,
		       PGCROND_TRIGGER_CHANNEL, cfg->history_database,
		       j->enabled ? "" : "; note: the job is disabled in the config");
	}
	PQclear(r);
out:
	PQfinish(conn);
	config_free(&cfg);
	return rc;
}
