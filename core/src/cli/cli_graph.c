/* pgcrond graph: the job graph in Graphviz DOT, each job with its schedule and last status. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "jobgraph.h"
#include "pgconn.h"
#include "plugin.h"
#include "sqljobs.h"
#include "text.h"

static const char usage[] =
    "Usage: pgcrond graph [-c FILE]\n\n"
    "Print the job graph in Graphviz DOT: one node per job with its schedule and the\n"
    "status of its last run (read from the history database when it is reachable), one\n"
    "edge per dependency (`after`, or dashed where a plugin reads another's view).\n\n"
    "  -c, --config FILE  the configuration (default " PGCROND_DEFAULT_CONF ")\n"
    "  -h, --help         this help\n\n"
    "Example: pgcrond graph | dot -Tsvg > jobs.svg\n";

/* Last status per job from the history table on C; an error only costs the colours. */
static void last_statuses(PGconn *c, const struct pgc_config *cfg, char **status)
{
	char err[512];
	PGresult *r = PQexec(c, "SELECT DISTINCT ON (job_name) job_name, status "
	                        "FROM pgcrond.job_run_details ORDER BY job_name, start_time DESC");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "pgcrond graph: last statuses unavailable: %s\n",
		        pgconn_result_error(r, err, sizeof(err)));
	} else {
		for (int row = 0; row < PQntuples(r); row++)
			for (size_t i = 0; i < cfg->n_jobs; i++)
				if (strcmp(cfg->jobs[i].name, PQgetvalue(r, row, 0)) == 0)
					status[i] = strdup(PQgetvalue(r, row, 1));
	}
	PQclear(r);
}

int cli_graph(int argc, char **argv)
{
	const char *conf;
	int rc = cli_parse_args(argc, argv, usage, &conf, NULL, 0, 0, NULL);

	if (rc)
		return rc == CLI_HELP ? EX_OK : rc;

	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL, *merged = NULL;
	struct plugin_registry *reg = NULL;
	PGconn *hist = NULL;
	struct jobgraph g;
	char *skipped = NULL;
	int ret = cli_load_config("graph", conf, &cfg, &skipped);
	if (ret)
		goto out;
	ret = EX_CONFIG;
	cli_warn_skipped("graph", conf, skipped,
	                 "their jobs are not in the graph (the running daemon may still run them)");
	free(skipped);
	/* the jobs made in SQL, and the colours, when the history database can be reached; a
	 * SQL job with a problem is left out, the problem in DL */
	hist = cli_history_connect("graph", cfg, "jobs made in SQL and last statuses not shown");
	if (hist && sqljobs_merge_from(hist, cfg, &merged, &dl) == 0) {
		config_free(&cfg);
		cfg = merged;
	}
	if (plugin_check_config(cfg, &reg, &dl) != 0)
		goto out;
	if (jobgraph_build(cfg, reg, &g, &dl) != 0)
		goto out;

	char **labels = calloc(cfg->n_jobs + 1, sizeof(*labels));
	char **status = calloc(cfg->n_jobs + 1, sizeof(*status));
	if (!labels || !status) {
		free(labels);
		free(status);
		jobgraph_free(&g);
		ret = EX_OSERR;
		goto out;
	}
	for (size_t i = 0; i < cfg->n_jobs; i++) {
		const struct conf_job *j = &cfg->jobs[i];
		const char *what = j->schedule              ? j->schedule
		                   : j->more->notify.listen ? "on notify"
		                                            : "after upstreams";
		if (asprintf(&labels[i], "%s%s%s%s", what,
		             j->more->notify.listen && j->schedule ? " / notify " : "",
		             j->more->notify.listen && j->schedule ? j->more->notify.listen : "",
		             j->enabled ? "" : " (disabled)") < 0)
			labels[i] = NULL;
	}
	if (hist)
		last_statuses(hist, cfg, status);
	dag_write_dot(&g.dag, stdout, (const char *const *)labels, (const char *const *)status);
	text_free_list(labels, cfg->n_jobs);
	text_free_list(status, cfg->n_jobs);
	jobgraph_free(&g);
	ret = EX_OK;
out:
	diag_print(&dl, stderr);
	diag_clear(&dl);
	plugin_registry_free(&reg);
	PQfinish(hist);
	config_free(&cfg);
	return ret;
}
