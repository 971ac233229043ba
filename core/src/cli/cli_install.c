/* pgcrond install: create or upgrade the pgcrond schema in the history database, mirror
 * the configured jobs into pgcrond.job, and create each configured plugin's objects in its
 * jobs' databases. Idempotent: a second run changes nothing and says so. */
#include <errno.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "hist_install.h"
#include "job_kind.h"
#include "pgconn.h"
#include "plugin.h"
#include "text.h"

static const char usage[] =
    "Usage: pgcrond install [-c FILE]\n\n"
    "Create or upgrade the pgcrond schema (run history, job registry, status view) in\n"
    "the history database, record the configured jobs in pgcrond.job, and create the\n"
    "objects of every configured plugin in its jobs' databases. Safe to run again: it\n"
    "changes only what differs. Jobs no longer configured stay in pgcrond.job,\n"
    "disabled, so their history keeps its jobid.\n\n"
    "Options:\n"
    "  -c, --config FILE  the main configuration file (default " PGCROND_DEFAULT_CONF ")\n"
    "  -h, --help         show this help\n\n"
    "The schema SQL is read from $PGCROND_SQL_DIR, default " PGCROND_DEFAULT_SQL_DIR ".\n";

/* The relations a job's plugin maintains, comma-separated, or NULL. */
static char *relations_of(const struct plugin *p, const struct conf_job *job)
{
	struct pgc_relation_decl *rels = NULL;
	size_t n = 0, len;
	char err[256];
	char *s = NULL;
	FILE *f = p && plugin_job_relations(p, job, &rels, &n, err, sizeof(err)) == 0 && n > 0
	              ? open_memstream(&s, &len)
	              : NULL;

	for (size_t i = 0; f && i < n; i++)
		fprintf(f, "%s%s", i ? ", " : "", rels[i].name);
	if (f && fclose(f) != 0) {
		free(s);
		s = NULL;
	}
	plugin_relations_free(&rels);
	return s;
}

/* R's failure (CONN's answer) as pgconn_check() maps it, printed after "pgcrond install: ";
 * 0 when R succeeded. */
static int failed(const PGconn *conn, const PGresult *r, const char *what)
{
	char err[1536];
	int rc = pgconn_check(conn, r, what, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "pgcrond install: %s\n", err);
	return rc;
}

/* pgcrond.conf's bounds into pgcrond.setting, where cron.schedule enforces them (step 12);
 * the step that makes the table ships with this build. */
static int write_limits(PGconn *conn, const struct pgc_config *cfg)
{
	char size[24], jobs[24];
	snprintf(size, sizeof(size), "%d",
	         cfg->max_command_size > 0 ? cfg->max_command_size : CONFIG_MAX_COMMAND_SIZE);
	snprintf(jobs, sizeof(jobs), "%d",
	         cfg->max_jobs_per_role > 0 ? cfg->max_jobs_per_role : CONFIG_MAX_JOBS_PER_ROLE);
	const char *p[] = {size, jobs};
	PGresult *r =
	    PQexecParams(conn,
	                 "INSERT INTO pgcrond.setting (name, value)"
	                 " SELECT n, v FROM (VALUES ('max_command_size', $1::pg_catalog.int8),"
	                 "  ('max_jobs_per_role', $2::pg_catalog.int8)) AS x (n, v)"
	                 " ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
	                 "  WHERE pgcrond.setting.value OPERATOR(pg_catalog.<>) EXCLUDED.value",
	                 2, NULL, p, NULL, NULL, 0);
	int rc = failed(conn, r, "writing max_command_size and max_jobs_per_role") ? -EIO : 0;
	PQclear(r);
	return rc;
}

/* The exit code for a failed install step (RC a negative errno): 69 only when the database
 * went away; 77 when the server refused for want of a privilege (SQLSTATE 42501, with what to
 * grant); 73 for any other refusal. */
static int install_exit(PGconn *conn, int rc)
{
	if (rc == -ENOTCONN || PQstatus(conn) == CONNECTION_BAD)
		return EX_UNAVAILABLE;
	if (rc == -ENOENT)
		return EX_CONFIG; /* no schema files: PGCROND_SQL_DIR */
	if (rc == -EACCES) {
		fprintf(
		    stderr,
		    "pgcrond install: role \"%s\" lacks a privilege that install needs; a "
		    "superuser grants it once (CREATE ROLE pgcrond_operator NOLOGIN; GRANT "
		    "CREATE ON DATABASE %s TO \"%s\"; in each job database also GRANT CREATE ON "
		    "SCHEMA public), then run pgcrond install again as that role; see "
		    "\"Installing with the least privilege\" in pgcrond(8) and docs/security.md\n",
		    PQuser(conn), PQdb(conn), PQuser(conn));
		return EX_NOPERM;
	}
	return EX_CANTCREAT;
}

struct job_counts {
	int added, changed, unchanged, removed;
};

/* Job files own their names: a job made in SQL (cron.schedule) that holds one of NAMES (CFG's
 * jobs) is moved aside to NAME.sql-JOBID, where it goes on running as its owner, and the
 * operator is told whose it is at the job's FILE:LINE. (It was the install that failed, so
 * any role could stop every install by taking a name before the job file did.) Returns how
 * many were moved, or -EIO. */
static int displace_sql_jobs(PGconn *conn, const struct pgc_config *cfg, const char *names)
{
	const char *p[] = {names};
	PGresult *r = PQexecParams(
	    conn,
	    "WITH held AS (SELECT jobid, jobname FROM pgcrond.job"
	    "  WHERE jobname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])"
	    "    AND source OPERATOR(pg_catalog.=) 'sql' AND removed_at IS NULL FOR UPDATE),"
	    " moved AS (UPDATE pgcrond.job j"
	    "   SET jobname = pg_catalog.left(j.jobname, 40) OPERATOR(pg_catalog.||) '.sql-'"
	    "       OPERATOR(pg_catalog.||) j.jobid, updated_at = pg_catalog.now()"
	    "   FROM held WHERE j.jobid OPERATOR(pg_catalog.=) held.jobid"
	    "   RETURNING held.jobname AS was, j.username, j.jobid, j.jobname)"
	    " SELECT was, username, jobid, jobname,"
	    "        pg_catalog.pg_notify('pgcrond_jobs', jobid::pg_catalog.text)"
	    "   FROM moved ORDER BY was",
	    1, NULL, p, NULL, NULL, 0);
	if (failed(conn, r, "moving aside jobs made in SQL that hold a job file's name")) {
		PQclear(r);
		return -EIO;
	}
	int n = PQntuples(r);
	for (int i = 0; i < n; i++) {
		const struct conf_job *job = config_job(cfg, PQgetvalue(r, i, 0));
		fprintf(stderr,
		        "%s:%d: warning: job \"%s\": the name was held by a job that role \"%s\" "
		        "scheduled in SQL (cron.job jobid %s); job files own their names, so that "
		        "job now runs as \"%s\" (it keeps its name in cron.job; tell its owner, or "
		        "remove it with cron.unschedule(%s))\n",
		        job ? job->file : cfg->file, job ? job->line : 0, PQgetvalue(r, i, 0),
		        PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
		        PQgetvalue(r, i, 2));
	}
	PQclear(r);
	return n;
}

/* Mirror the configured jobs into pgcrond.job, inside the install transaction. */
static int sync_jobs(PGconn *conn, const struct pgc_config *cfg, const struct plugin_registry *reg,
                     struct job_counts *n)
{
	static const char upsert[] =
	    "INSERT INTO pgcrond.job AS j (jobname, kind, plugin, command, schedule, database,"
	    "  after, listen, enabled, max_staleness, relation, defined_at, freshness)"
	    " VALUES ($1, $2, $3, $4, $5, $6, $7::pg_catalog.text[], $8, $9::pg_catalog.bool,"
	    "  $10::pg_catalog.int8 OPERATOR(pg_catalog.*) interval '1 millisecond', $11, $12,"
	    "  $13::pg_catalog.int8 OPERATOR(pg_catalog.*) interval '1 millisecond')"
	    " ON CONFLICT (jobname) DO UPDATE"
	    "   SET kind = EXCLUDED.kind, plugin = EXCLUDED.plugin, command = EXCLUDED.command,"
	    "       schedule = EXCLUDED.schedule, database = EXCLUDED.database,"
	    "       after = EXCLUDED.after, listen = EXCLUDED.listen, enabled = EXCLUDED.enabled,"
	    "       max_staleness = EXCLUDED.max_staleness, relation = EXCLUDED.relation,"
	    "       defined_at = EXCLUDED.defined_at, freshness = EXCLUDED.freshness,"
	    "       updated_at = pg_catalog.now(), removed_at = NULL"
	    /* a job made in SQL (cron.schedule) keeps its row: the clash is reported below */
	    /* (a row's IS DISTINCT FROM looks each column's "=" up by name: the pinned path's) */
	    " WHERE j.source OPERATOR(pg_catalog.=) 'file'"
	    "   AND (j.kind, j.plugin, j.command, j.schedule, j.database, j.after, j.listen,"
	    "        j.enabled, j.max_staleness, j.relation, j.removed_at, j.defined_at,"
	    "        j.freshness)"
	    "       IS DISTINCT FROM"
	    "       (EXCLUDED.kind, EXCLUDED.plugin, EXCLUDED.command, EXCLUDED.schedule,"
	    "        EXCLUDED.database, EXCLUDED.after, EXCLUDED.listen, EXCLUDED.enabled,"
	    "        EXCLUDED.max_staleness, EXCLUDED.relation, EXCLUDED.removed_at,"
	    "        EXCLUDED.defined_at, EXCLUDED.freshness)"
	    " RETURNING (xmax OPERATOR(pg_catalog.=) 0)"; /* true: inserted, false: updated; no row:
	                                                     unchanged */
	char **names = calloc(cfg->n_jobs + 1, sizeof(*names));
	char *all = NULL;
	int rc = 0;

	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_jobs; i++)
		names[i] = cfg->jobs[i].name;
	if (!(all = text_pg_array((const char *const *)names, cfg->n_jobs))) {
		free(names);
		return -ENOMEM;
	}
	if (displace_sql_jobs(conn, cfg, all) < 0) {
		free(all);
		free(names);
		return -EIO;
	}
	/* Pipelined, CHUNK statements per round trip: one at a time, 100,000 jobs take 34 s of
	 * round trips. Small chunks, so the answers never fill the socket while we still send. */
	enum { CHUNK = 200 };
	for (size_t first = 0; first < cfg->n_jobs && rc == 0; first += CHUNK) {
		size_t last = first + CHUNK < cfg->n_jobs ? first + CHUNK : cfg->n_jobs;
		bool sent = PQenterPipelineMode(conn);
		for (size_t i = first; i < last && sent; i++) {
			const struct conf_job *job = &cfg->jobs[i];
			char staleness[24], fresh[24], at[4200], shown[1000];
			char *after = text_pg_array((const char *const *)job->after, job->n_after);
			char *rel = job->plugin
			                ? relations_of(plugin_registry_find(reg, job->plugin), job)
			                : NULL;

			snprintf(staleness, sizeof(staleness), "%lld",
			         (long long)job->more->alerts.max_staleness_ms);
			snprintf(fresh, sizeof(fresh), "%lld", (long long)job->more->fresh.sla_ms);
			snprintf(at, sizeof(at), "%s:%d", job->file, job->line);
			const char *p[] = {job->name,
			                   job_kind_name(job->kind),
			                   job->plugin,
			                   job_kind_command(job, shown, sizeof(shown)),
			                   job->schedule,
			                   job->database,
			                   after ? after : "{}",
			                   job->more->notify.listen,
			                   job->enabled ? "true" : "false",
			                   job->more->alerts.max_staleness_ms > 0 ? staleness
			                                                          : NULL,
			                   rel,
			                   at,
			                   job->more->fresh.sla_ms > 0 ? fresh : NULL};
			sent = PQsendQueryParams(conn, upsert, 13, NULL, p, NULL, NULL, 0);
			free(after);
			free(rel);
		}
		if (!sent || !PQpipelineSync(conn)) {
			fprintf(stderr, "pgcrond install: recording the jobs: %s\n",
			        PQerrorMessage(conn));
			rc = -EIO;
			break;
		}
		/* each statement's result and its NULL, then the sync's */
		for (size_t i = first; i < last; i++) {
			PGresult *r = PQgetResult(conn);
			char what[300];
			snprintf(what, sizeof(what), "recording job \"%s\"", cfg->jobs[i].name);
			if (PQresultStatus(r) == PGRES_PIPELINE_ABORTED)
				; /* after the error already reported */
			else if (failed(conn, r, what))
				rc = -EIO;
			else if (PQntuples(r) == 0)
				n->unchanged++;
			else if (PQgetvalue(r, 0, 0)[0] == 't')
				n->added++;
			else
				n->changed++;
			PQclear(r);
			PQclear(PQgetResult(conn)); /* the NULL ending the statement */
		}
		PQclear(PQgetResult(conn));
		if (!PQexitPipelineMode(conn) && rc == 0) {
			fprintf(stderr, "pgcrond install: recording the jobs: %s\n",
			        PQerrorMessage(conn));
			rc = -EIO;
		}
	}
	if (rc == 0) {
		/* Jobs gone from the config keep their row, disabled: their history rows keep a
		 * jobid that resolves, and configuring the job again revives the same jobid. */
		const char *p[] = {all};
		PGresult *r = PQexecParams(
		    conn,
		    "UPDATE pgcrond.job"
		    "   SET enabled = false, removed_at = pg_catalog.now(),"
		    "       updated_at = pg_catalog.now()"
		    " WHERE removed_at IS NULL AND source OPERATOR(pg_catalog.=) 'file'"
		    "   AND jobname OPERATOR(pg_catalog.<>) ALL ($1::pg_catalog.text[])",
		    1, NULL, p, NULL, NULL, 0);
		if (failed(conn, r, "marking removed jobs"))
			rc = -EIO;
		else
			n->removed = atoi(PQcmdTuples(r));
		PQclear(r);
	}
	if (rc == 0) {
		/* and into cron.job, which lists every job as pg_cron's does */
		PGresult *r = PQexec(conn, "SELECT pgcrond.sync_file_jobs()");
		if (failed(conn, r, "listing the file jobs in cron.job"))
			rc = -EIO;
		PQclear(r);
	}
	free(all);
	free(names);
	return rc;
}

/* Plugins in an order where each comes after the configured plugins it reads from. */
static size_t plugin_order(const struct pgc_config *cfg, const struct plugin_registry *reg,
                           const struct plugin **out)
{
	size_t n = 0, placed = 0;

	for (size_t i = 0; i < cfg->n_jobs; i++) {
		const struct plugin *p =
		    cfg->jobs[i].plugin ? plugin_registry_find(reg, cfg->jobs[i].plugin) : NULL;
		bool seen = false;
		for (size_t k = 0; k < n && p; k++)
			seen |= out[k] == p;
		if (p && !seen)
			out[n++] = p;
	}
	/* Selection by rounds: small n, and a cycle (refused by 'pgcrond check') still ends. */
	while (placed < n) {
		size_t pick = placed;
		for (size_t i = placed; i < n; i++) {
			bool ready = true;
			for (const char *const *r = out[i]->decl.reads; r && *r && ready; r++)
				for (size_t k = placed; k < n; k++)
					if (k != i && strcmp(out[k]->name, *r) == 0)
						ready = false;
			if (ready) {
				pick = i;
				break;
			}
		}
		const struct plugin *t = out[placed];
		out[placed] = out[pick];
		out[pick] = t;
		placed++;
	}
	return n;
}

/* sql/refresh.sql: the CONCURRENTLY guard the core calls before a plugin's concurrent
 * refresh, in every database plugin jobs run in. */
static int install_refresh_guard(PGconn *conn, const char *dbname)
{
	char what[512], err[1536];
	snprintf(what, sizeof(what), "refresh guard in database \"%s\"", dbname);
	int rc =
	    hist_apply_file(conn, hist_sql_dir(), "refresh.sql", false, what, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "pgcrond install: %s\n", err);
	return rc;
}

/* A job whose objects were not installed, at its FILE:LINE so the operator can find it. */
__attribute__((format(printf, 2, 3))) static void job_failed(const struct conf_job *job,
                                                             const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s:%d: job \"%s\": ", job->file, job->line, job->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The objects of one job of a plugin with per-job DDL (ABI 1.1 job_install, e.g.
 * sql_view's view and its unique index), statement by statement, values as parameters.
 * EX_OK, EX_CONFIG (the plugin could not build them) or EX_CANTCREAT (the server refused). */
static int install_job_objects(PGconn *conn, const struct plugin *p, const struct conf_job *job,
                               const char *dbname)
{
	struct pgc_run *run = NULL;
	char err[1536];
	int rc = EX_OK;

	if (plugin_build_install(p, job, &run, err, sizeof(err)) != 0) {
		job_failed(job, "%s", err);
		return EX_CONFIG;
	}
	for (size_t i = 0; run && i < run->n_stmts && rc == EX_OK; i++) {
		const struct plugin_stmt *st = &run->stmts[i];
		PGresult *r = PQexecParams(conn, st->sql, st->n_params, NULL,
		                           (const char *const *)st->params, NULL, NULL, 0);
		int qrc = pgconn_check(conn, r, NULL, err, sizeof(err));
		if (qrc < 0) {
			job_failed(job, "cannot create its objects in database \"%s\": %s", dbname,
			           err);
			rc = qrc == -EACCES ? EX_NOPERM : EX_CANTCREAT;
		}
		PQclear(r);
	}
	plugin_run_free(&run);
	return rc;
}

/* Catalog rows that DDL adds (relations, functions, types, schemas; not temporary ones),
 * so an install can say whether it created anything without each plugin saying so. */
static long long catalog_size(PGconn *conn)
{
	PGresult *r = PQexec(
	    conn, "SELECT (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class"
	          "  WHERE relpersistence OPERATOR(pg_catalog.<>) 't')"
	          " OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_proc)"
	          " OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_type)"
	          " OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_namespace"
	          "    WHERE NOT nspname OPERATOR(pg_catalog.~~) 'pg\\_temp\\_%'"
	          "    AND NOT nspname OPERATOR(pg_catalog.~~) 'pg\\_toast\\_temp\\_%')");
	long long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atoll(PQgetvalue(r, 0, 0)) : -1;
	PQclear(r);
	return n;
}

/* The worst of two outcomes: an unreachable database first (run again when it is back),
 * then a plugin's refusal (fix the config), then a missing privilege (77), then refused
 * DDL. */
static int worse(int a, int b)
{
	static const int order[] = {EX_UNAVAILABLE, EX_SOFTWARE,  EX_CONFIG,
	                            EX_NOPERM,      EX_CANTCREAT, EX_OK};
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (a == order[i] || b == order[i])
			return order[i];
	return a;
}

/* A job database during the install: its connections (pinned, and one that resolves names as
 * the jobs' runs do, for their own DDL), whether it cannot be reached, whether the refresh
 * guard is in it, and how many jobs' plugin objects were made and not. */
struct job_db {
	PGconn *conn, *job_conn;
	bool unreachable, too_old, guard_tried;
	int guard_rc; /* install_refresh_guard's, once tried */
	long long before;
	size_t n_failed, n_done;
};

/* DB's connection (S its state), opened on first use; NULL after saying why it cannot be. */
static PGconn *db_conn(const struct conf_database *db, struct job_db *s)
{
	char err[1536];

	if (s->conn || s->unreachable)
		return s->conn;
	s->conn = pgconn_connect_blocking(db->conninfo, "pgcrond install", err, sizeof(err));
	if (!s->conn) {
		fprintf(stderr, "pgcrond install: database \"%s\": %s\n", db->name, err);
		s->unreachable = true;
		s->too_old = errno == ENOTSUP;
		return NULL;
	}
	/* Idempotent DDL says "already exists, skipping" on every run after the first: keep a
	 * re-install quiet. */
	PQclear(PQexec(s->conn, "SET client_min_messages = warning"));
	return s->conn;
}

/* Every job database's server version (pgconn_server_too_old, in the connect), each one
 * connected now and its connection kept for the steps after. EX_UNAVAILABLE when one is too
 * old, after naming each; one that cannot be reached is named and left to the steps that need
 * it (the daemon checks its version when it connects). */
static int check_servers(const struct pgc_config *cfg, struct job_db *dbs)
{
	int rc = EX_OK;
	for (size_t d = 0; d < cfg->n_databases; d++) {
		const struct conf_database *db = &cfg->databases[d];
		if (strcmp(db->name, cfg->history_database) == 0)
			continue;
		if (!db_conn(db, &dbs[d]) && dbs[d].too_old)
			rc = EX_UNAVAILABLE;
	}
	return rc;
}

/* Each configured plugin's install SQL, in every database its jobs use. A failure is
 * reported at the FILE:LINE of every job it leaves without its objects, and the install goes
 * on with the others, so one pass shows every problem. */
static int install_plugins(const struct pgc_config *cfg, const struct plugin_registry *reg,
                           struct job_db *dbs)
{
	const struct plugin **order = calloc(cfg->n_jobs + 1, sizeof(*order));
	char err[1536];
	int rc = EX_OK;

	if (!order)
		return EX_SOFTWARE;
	size_t n = plugin_order(cfg, reg, order);
	for (size_t i = 0; i < n; i++) {
		const struct plugin *p = order[i];
		for (size_t d = 0; d < cfg->n_databases; d++) {
			const struct conf_database *db = &cfg->databases[d];
			struct job_db *s = &dbs[d];
			const char *plugin_err = NULL;
			int plugin_rc = EX_CANTCREAT;
			bool first = true;
			for (size_t j = 0; j < cfg->n_jobs; j++) {
				const struct conf_job *job = &cfg->jobs[j];
				if (!job->plugin || strcmp(job->plugin, p->name) != 0 ||
				    !job->database || strcmp(job->database, db->name) != 0)
					continue;
				if (first && !s->guard_tried && db_conn(db, s)) {
					s->guard_tried = true;
					s->before = catalog_size(s->conn);
					s->guard_rc = install_refresh_guard(s->conn, db->name);
				}
				if (first && s->conn && s->guard_rc == 0 && p->decl.install_sql) {
					int qrc = pgconn_exec(s->conn, p->decl.install_sql, 0, NULL,
					                      NULL, NULL, err, sizeof(err));
					if (qrc < 0)
						plugin_err = err;
					if (qrc == -EACCES)
						plugin_rc = EX_NOPERM;
					/* the next steps share the session: a transaction the
					 * plugin's SQL left open (its own BEGIN failed) is rolled
					 * back, and its SET search_path or SET ROLE undone (the
					 * pinned search_path is the session's default) */
					if (PQtransactionStatus(s->conn) != PQTRANS_IDLE)
						PQclear(PQexec(s->conn, "ROLLBACK"));
					PQclear(PQexec(s->conn, "RESET ALL"));
					PQclear(
					    PQexec(s->conn, "SET client_min_messages = warning"));
				}
				first = false;
				if (!s->conn) {
					job_failed(
					    job, "not installed: database \"%s\" cannot be reached",
					    db->name);
					rc = worse(rc, EX_UNAVAILABLE);
				} else if (s->guard_rc != 0) {
					job_failed(
					    job,
					    "not installed: the refresh guard could not be created "
					    "in database \"%s\" (see above)",
					    db->name);
					rc = worse(rc, s->guard_rc == -EACCES ? EX_NOPERM
					                                      : EX_CANTCREAT);
				} else if (plugin_err) {
					job_failed(
					    job,
					    "plugin \"%s\" cannot create its objects in database "
					    "\"%s\": %s",
					    p->name, db->name, plugin_err);
					rc = worse(rc, plugin_rc);
				} else {
					/* a job's own DDL (sql_view's query, as the operator
					 * wrote it) resolves names as the job's runs do, not on
					 * the pinned path of pgcrond's own statements */
					if (!s->job_conn) {
						s->job_conn = pgconn_connect_blocking_job(
						    db->conninfo, "pgcrond install", err,
						    sizeof(err));
						if (s->job_conn)
							PQclear(PQexec(
							    s->job_conn,
							    "SET client_min_messages = warning"));
					}
					if (!s->job_conn) {
						job_failed(job,
						           "not installed: database \"%s\": %s",
						           db->name, err);
						rc = worse(rc, EX_UNAVAILABLE);
						s->n_failed++;
						continue;
					}
					int jrc =
					    install_job_objects(s->job_conn, p, job, db->name);
					rc = worse(rc, jrc);
					s->n_done += jrc == EX_OK;
					s->n_failed += jrc != EX_OK;
					continue;
				}
				s->n_failed++;
			}
		}
	}
	/* Quiet when nothing was missing: a second install prints no line of its own here. */
	for (size_t d = 0; d < cfg->n_databases; d++) {
		const struct job_db *s = &dbs[d];
		long long after = s->guard_tried ? catalog_size(s->conn) : -1;
		/* "created" only for what was: with a job refused, say how many were not */
		if (after >= 0 && s->before >= 0 && after != s->before && s->n_failed == 0)
			printf("pgcrond install: plugins' objects created in database \"%s\"\n",
			       cfg->databases[d].name);
		else if (after >= 0 && s->before >= 0 && after != s->before && s->n_done > 0)
			printf("pgcrond install: plugins' objects created in database \"%s\" for "
			       "%zu of %zu jobs; the others are listed above\n",
			       cfg->databases[d].name, s->n_done, s->n_done + s->n_failed);
	}
	free(order);
	return rc;
}

/* The sources of JOB that freshness watches: its plugin's (ABI 1.3) and its file's. */
static size_t freshness_sources(const struct plugin_registry *reg, const struct conf_job *job,
                                const char **out, size_t max)
{
	size_t n = 0;
	const struct plugin *p = job->plugin ? plugin_registry_find(reg, job->plugin) : NULL;
	for (size_t i = 0; p && p->decl.sources && p->decl.sources[i] && n < max; i++)
		out[n++] = p->decl.sources[i];
	for (size_t i = 0; i < job->more->fresh.n_sources && n < max; i++)
		out[n++] = job->more->fresh.sources[i];
	return n;
}

/* sql/freshness.sql and a change-counting trigger on every source of the jobs with
 * freshness, in each of their databases (docs/freshness.md). A source that cannot be
 * watched is reported at the FILE:LINE of each job reading it; the daemon would make that
 * job fall back to running every period. */
static int install_freshness(const struct pgc_config *cfg, const struct plugin_registry *reg,
                             struct job_db *dbs)
{
	char err[1536], what[512];
	int rc = EX_OK;

	for (size_t d = 0; d < cfg->n_databases; d++) {
		const struct conf_database *db = &cfg->databases[d];
		PGconn *conn = NULL;
		bool tried = false, broken = false;
		for (size_t j = 0; j < cfg->n_jobs; j++) {
			const struct conf_job *job = &cfg->jobs[j];
			const char *srcs[64];
			if (job->more->fresh.sla_ms <= 0 || !job->database ||
			    strcmp(job->database, db->name) != 0)
				continue;
			size_t n = freshness_sources(reg, job, srcs, 64);
			if (n == 0)
				continue;
			if (!tried) {
				tried = true;
				conn = db_conn(db, &dbs[d]);
				snprintf(what, sizeof(what),
				         "freshness counters in database \"%s\"", db->name);
				broken =
				    !conn || hist_apply_file(conn, hist_sql_dir(), "freshness.sql",
				                             false, what, err, sizeof(err)) != 0;
				if (conn && broken)
					fprintf(stderr, "pgcrond install: %s\n", err);
			}
			if (broken) {
				job_failed(job,
				           "freshness: its sources are not watched in database "
				           "\"%s\" (see above)",
				           db->name);
				rc = worse(rc, conn ? EX_CANTCREAT : EX_UNAVAILABLE);
				continue;
			}
			for (size_t i = 0; i < n; i++) {
				const char *p[] = {srcs[i]};
				PGresult *r = PQexecParams(
				    conn, "SELECT pgcrond.watch_source($1::pg_catalog.regclass)", 1,
				    NULL, p, NULL, NULL, 0);
				if (pgconn_check(conn, r, NULL, err, sizeof(err)) < 0) {
					job_failed(
					    job,
					    "freshness: cannot watch source %s in database "
					    "\"%s\": %s; until it can, the job runs once every "
					    "freshness period",
					    srcs[i], db->name, err);
					rc = worse(rc, EX_CANTCREAT);
				} else if (atoi(PQgetvalue(r, 0, 0)) > 0) {
					printf(
					    "pgcrond install: freshness: watching %s in database "
					    "\"%s\"\n",
					    srcs[i], db->name);
				}
				PQclear(r);
			}
		}
	}
	return rc;
}

int cli_install(int argc, char **argv)
{
	const char *conf;
	struct pgc_config *cfg = NULL;
	struct plugin_registry *reg = NULL;
	struct diag_list dl = {0};
	struct job_counts counts = {0};
	struct job_db *dbs = NULL;
	PGconn *conn = NULL;
	char err[1024];
	int rc, from, to;

	rc = cli_parse_args(argc, argv, usage, &conf, NULL, 0, 0, NULL);
	if (rc)
		return rc == CLI_HELP ? EX_OK : rc;

	rc = hist_cli_open("install", conf, NULL, &cfg, &conn);
	if (rc != EX_OK)
		return rc;

	/* Load the plugins first: a plugin that cannot load stops the install before it
	 * changes anything. */
	int prc = plugin_check_config(cfg, &reg, &dl);
	if (prc < 0) {
		diag_print(&dl, stderr);
		if (prc == -ENOMEM)
			fprintf(stderr, "pgcrond install: out of memory\n");
		rc = prc == -ENOMEM ? EX_SOFTWARE : EX_CONFIG;
		goto out;
	}

	/* Every job database's server, before anything changes: one too old stops the install
	 * (the history database's was checked by hist_cli_open's connect). */
	dbs = calloc(cfg->n_databases + 1, sizeof(*dbs));
	if (!dbs) {
		rc = EX_SOFTWARE;
		goto out;
	}
	rc = check_servers(cfg, dbs);
	if (rc != EX_OK)
		goto out;

	const char *sql_dir = hist_sql_dir();
	int hrc = hist_install_begin(conn, sql_dir, &from, &to, err, sizeof(err));
	if (hrc != 0) {
		fprintf(stderr, "pgcrond install: %s\n", err);
		rc = install_exit(conn, hrc);
		goto out;
	}
	int src = write_limits(conn, cfg);
	if (src == 0)
		src = sync_jobs(conn, cfg, reg, &counts);
	PGresult *r = PQexec(conn, src == 0 ? "COMMIT" : "ROLLBACK");
	if (src == 0)
		src = failed(conn, r, "COMMIT");
	PQclear(r);
	if (src != 0) {
		if (src == -ENOMEM)
			fprintf(stderr, "pgcrond install: out of memory\n");
		rc = src == -ENOMEM ? EX_SOFTWARE : install_exit(conn, src);
		goto out;
	}

	if (from == to && counts.added + counts.changed + counts.removed == 0)
		/* a second install changed nothing and says so in one line */
		printf(
		    "pgcrond install: nothing to change: schema pgcrond is up to date (version "
		    "%d) in database \"%s\"; jobs: 0 added, 0 changed, 0 removed, %d unchanged\n",
		    to, cfg->history_database, counts.unchanged);
	else if (from == to)
		printf("pgcrond install: schema pgcrond is up to date (version %d) in database "
		       "\"%s\"\n",
		       to, cfg->history_database);
	else if (from == 0)
		printf("pgcrond install: schema pgcrond created (version %d) in database \"%s\"\n",
		       to, cfg->history_database);
	else
		printf("pgcrond install: schema pgcrond upgraded from version %d to %d in database "
		       "\"%s\"\n",
		       from, to, cfg->history_database);
	if (from != to || counts.added + counts.changed + counts.removed != 0)
		printf("pgcrond install: jobs: %d added, %d changed, %d removed (kept, disabled), "
		       "%d unchanged\n",
		       counts.added, counts.changed, counts.removed, counts.unchanged);

	rc = install_plugins(cfg, reg, dbs);
	rc = worse(rc, install_freshness(cfg, reg, dbs));
out:
	for (size_t d = 0; dbs && d < cfg->n_databases; d++) {
		PQfinish(dbs[d].conn);
		PQfinish(dbs[d].job_conn);
	}
	free(dbs);
	diag_clear(&dl);
	plugin_registry_free(&reg);
	PQfinish(conn);
	config_free(&cfg);
	return rc;
}
