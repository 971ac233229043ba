/* pgcrond check: load the configuration, the plugins its jobs name, and check everything
 * the daemon would refuse, printing every problem as FILE:LINE: message. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "cron.h"
#include "jobgraph.h"
#include "plugin.h"

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: pgcrond check [-c FILE]\n\n"
	    "Check the configuration: syntax, keys, durations, schedules, databases, job names,\n"
	    "plugins and their settings. Prints every problem as FILE:LINE: message and exits\n"
	    "with 78 if there is any, else prints a summary and exits with 0. Warnings\n"
	    "(FILE:LINE: warning: message) say what pgcrond runs but may not be what was\n"
	    "meant, such as a six-field schedule (seconds first here, where pg_cron ignores\n"
	    "a sixth field); they do not change the exit status.\n\n"
	    "Options:\n"
	    "  -c, --config FILE  the main configuration file (default %s)\n"
	    "  -h, --help         show this help\n",
	    PGCROND_DEFAULT_CONF);
}

/* What pgcrond runs as written but may not be what was meant: a six-field schedule, which
 * pg_cron reads otherwise (a job written after a pg_cron one). On stderr; the number. */
static size_t print_warnings(const struct pgc_config *cfg)
{
	size_t n = 0;
	struct cron_six six;

	for (size_t i = 0; i < cfg->n_jobs; i++) {
		const struct conf_job *j = &cfg->jobs[i];
		if (!j->schedule || !cron_six_fields(j->schedule, &six))
			continue;
		fprintf(stderr, "%s:%d: warning: job \"%s\": %s. %s\n", j->file,
		        j->schedule_line ? j->schedule_line : j->line, j->name, six.what, six.hint);
		n++;
	}
	return n;
}

int cli_check(int argc, char **argv)
{
	const char *path;
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	struct plugin_registry *plugins = NULL;
	int rc = cli_parse_args(argc, argv, usage, &path, NULL, 0, 0, NULL);

	if (rc)
		return rc == CLI_HELP ? EX_OK : rc;

	rc = config_load(path, &cfg, &dl);
	if (rc == -ENOMEM)
		goto oom;
	if (cfg) {
		/* Plugins: load each plugin the jobs name from plugin_dir and check the jobs'
		 * plugin settings against it (plugin_load.c, plugin.c). */
		rc = plugin_check_config(cfg, &plugins, &dl);
		if (rc == -ENOMEM)
			goto oom;

		/* The job graph: `after` lists plus the plugins' reads; cycles are named. */
		struct jobgraph g;
		rc = jobgraph_build(cfg, plugins, &g, &dl);
		if (rc == -ENOMEM)
			goto oom;
		if (rc == 0)
			jobgraph_free(&g);
	}

	if (dl.n) {
		diag_print(&dl, stderr);
		fprintf(
		    stderr,
		    "%s: %zu problem%s found; pgcrond would not start with this configuration\n",
		    path, dl.n, dl.n == 1 ? "" : "s");
		rc = EX_CONFIG;
	} else {
		size_t warned = print_warnings(cfg);
		printf("%s: %zu job%s, %zu database%s: OK", path, cfg->n_jobs,
		       cfg->n_jobs == 1 ? "" : "s", cfg->n_databases,
		       cfg->n_databases == 1 ? "" : "s");
		if (warned)
			printf(", %zu warning%s", warned, warned == 1 ? "" : "s");
		printf("\n");
		rc = EX_OK;
	}
	plugin_registry_free(&plugins);
	config_free(&cfg);
	diag_clear(&dl);
	return rc;
oom:
	fprintf(stderr, "pgcrond check: out of memory\n");
	plugin_registry_free(&plugins);
	config_free(&cfg);
	diag_clear(&dl);
	return EX_OSERR;
}
