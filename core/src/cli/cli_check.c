/* pgcrond check: load the configuration, the plugins its jobs name, and check everything
 * the daemon would refuse, printing every problem as FILE:LINE: message; then the version of
 * every database's server it can reach. */
#include <errno.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"
#include "conndrv.h"
#include "config.h"
#include "cron.h"
#include "jobgraph.h"
#include "pgconn.h"
#include "plugin.h"

/* How long check waits for the servers, all connected to at once: one not connected by then
 * is not reached, which is no problem (check runs before a reload and on hosts without the
 * databases), since install and the daemon check its version where they connect. */
#define CHECK_CONNECT_MS 3000

static const char usage[] =
    "Usage: pgcrond check [-c FILE] [--offline]\n\n"
    "Check the configuration: syntax, keys, durations, schedules, databases, job names,\n"
    "plugins and their settings; then the server of every database, all connected to at\n"
    "once for 3 s at most: one older than PostgreSQL 14 is a problem, one not reached is\n"
    "a note (install and the daemon check its version where they connect). Prints every\n"
    "problem as FILE:LINE: message and exits with 78 if there is any, else prints a\n"
    "summary and exits with 0. Warnings (FILE:LINE: warning: message) say what pgcrond\n"
    "runs but may not be what was meant, such as a recurrence rule whose UNTIL is\n"
    "past; they do not change the exit status.\n\n"
    "Options:\n"
    "  -c, --config FILE  the main configuration file (default " PGCROND_DEFAULT_CONF ")\n"
    "      --offline      read only the files: connect to no database\n"
    "  -h, --help         show this help\n";

/* What pgcrond runs as written but may not be what was meant: a recurrence rule whose UNTIL
 * is past. On stderr; the number. (No six-field warning: pg_cron never reads a job file.) */
static size_t print_warnings(const struct pgc_config *cfg)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->n_jobs; i++) {
		const struct conf_job *j = &cfg->jobs[i];
		const cron_tz *tz = j->more->cal.tz ? j->more->cal.tz : cfg->tz;
		if (j->cron.kind != CRON_RRULE || cron_next(&j->cron, tz, time(NULL)) != CRON_NEVER)
			continue;
		fprintf(stderr,
		        "%s:%d: warning: job \"%s\": schedule \"%s\" has no fire to come: its "
		        "UNTIL is past; move UNTIL, or remove the job\n",
		        j->file, j->schedule_line ? j->schedule_line : j->line, j->name,
		        j->schedule);
		n++;
	}
	return n;
}

/* ---- the servers --------------------------------------------------------------------- */

enum probe_result { PROBE_WAITING, PROBE_SUPPORTED, PROBE_TOO_OLD, PROBE_NOT_REACHED };

struct probes {
	struct event_base *base;
	size_t waiting;
};

/* One database's server, connected to for its version (the connection driver refuses a
 * server too old at its connect, with pgconn_server_too_old's line). */
struct probe {
	struct conndrv d;
	const struct conf_database *db;
	struct probes *all;
	enum probe_result result;
	char why[512]; /* TOO_OLD, NOT_REACHED: the driver's line (no password: conndrv.h) */
};

static void probe_done(struct probe *p, enum probe_result result, const char *why)
{
	p->result = result;
	snprintf(p->why, sizeof(p->why), "%s", why ? why : "");
	if (--p->all->waiting == 0)
		event_base_loopbreak(p->all->base);
}

static void probe_connected(void *arg)
{
	struct probe *p = arg;

	/* connected is all check asks: the version was checked at the connect */
	conndrv_close(&p->d);
	probe_done(p, PROBE_SUPPORTED, NULL);
}

static void probe_readable(void *arg)
{
	(void)arg; /* nothing is sent, and the connection is closed as soon as it is made */
}

static void probe_failed(void *arg, const char *why, bool was_ready)
{
	struct probe *p = arg;
	char late[64];

	if (p->d.timed_out) { /* the driver's words name connection_check, not check's bound */
		snprintf(late, sizeof(late), "no connection within %d s", CHECK_CONNECT_MS / 1000);
		why = late;
	}
	probe_done(p, p->d.too_old ? PROBE_TOO_OLD : PROBE_NOT_REACHED, why);
}

static const struct conndrv_ops probe_ops = {
    .connected = probe_connected,
    .readable = probe_readable,
    .failed = probe_failed,
};

/* Connect to every database of CFG at once, each within CHECK_CONNECT_MS: a server older than
 * pgcrond supports is a problem in DL at its database's entry; a database not reached is a
 * note on stderr, in the configuration's order. Returns 0 or -ENOMEM. */
static int check_servers(const struct pgc_config *cfg, struct diag_list *dl)
{
	size_t n = cfg->n_databases;
	struct probe *p = n ? calloc(n, sizeof(*p)) : NULL;
	struct probes all = {.base = n ? event_base_new() : NULL, .waiting = n};
	int rc = 0;

	if (n == 0)
		return 0;
	if (!p || !all.base) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char label[96];
		snprintf(label, sizeof(label), "database %s", cfg->databases[i].name);
		conndrv_init(&p[i].d, all.base, &probe_ops, &p[i], label, PGCONN_NOTICES_PER_MIN,
		             60000, CHECK_CONNECT_MS);
		p[i].db = &cfg->databases[i];
		p[i].all = &all;
	}
	/* all started before the loop runs, so their deadlines run together: CHECK_CONNECT_MS
	 * for all of them (a failure at the start is told before conndrv_connect returns) */
	for (size_t i = 0; i < n; i++)
		(void)conndrv_connect(&p[i].d, p[i].db->conninfo, "pgcrond check");
	if (all.waiting)
		event_base_dispatch(all.base);

	for (size_t i = 0; i < n; i++) {
		switch (p[i].result) {
		case PROBE_SUPPORTED:
			break;
		case PROBE_TOO_OLD:
			diag_add(dl, p[i].db->file, p[i].db->line, "database \"%s\": %s",
			         p[i].db->name, p[i].why);
			break;
		case PROBE_WAITING: /* (each driver's deadline ends its wait) */
		case PROBE_NOT_REACHED:
			fprintf(stderr,
			        "pgcrond check: database \"%s\" not reached (%s): its server's "
			        "version is checked by install and at run\n",
			        p[i].db->name, p[i].why[0] ? p[i].why : "no answer");
			break;
		}
	}
out:
	for (size_t i = 0; p && all.base && i < n; i++)
		conndrv_close(&p[i].d);
	if (all.base)
		event_base_free(all.base);
	free(p);
	return rc;
}

int cli_check(int argc, char **argv)
{
	const char *path;
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	struct plugin_registry *plugins = NULL;
	bool offline = false;
	const struct cli_option more[] = {{"offline", 0, &offline, NULL}, {NULL, 0, NULL, NULL}};
	int rc = cli_parse_args(argc, argv, usage, &path, more, 0, 0, NULL);

	if (rc)
		return rc == CLI_HELP ? EX_OK : rc;

	rc = config_load(path, &cfg, &dl);
	if (rc == -ENOMEM || !cfg)
		goto report;
	/* Plugins: load each plugin the jobs name from plugin_dir and check the jobs' plugin
	 * settings against it (plugin_load.c, plugin.c). */
	rc = plugin_check_config(cfg, &plugins, &dl);
	if (rc == -ENOMEM)
		goto report;

	/* The job graph: `after` lists plus the plugins' reads; cycles are named. */
	struct jobgraph g;
	rc = jobgraph_build(cfg, plugins, &g, &dl);
	if (rc == -ENOMEM)
		goto report;
	if (rc == 0)
		jobgraph_free(&g);

	/* The servers, after the files (--offline: none): a reached one too old is a problem
	 * like the files' (install and the daemon would refuse it). */
	if (!offline)
		rc = check_servers(cfg, &dl);
report:
	if (rc == -ENOMEM) {
		fprintf(stderr, "pgcrond check: out of memory\n");
		rc = EX_OSERR;
	} else if (dl.n) {
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
}
