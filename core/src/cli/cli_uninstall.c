/* pgcrond uninstall: remove what `pgcrond install` made in the history database (the
 * pgcrond schema, pgcrond's own "cron" and "net" compatibility schemas, the role pgcrond_operator
 * when install made it and nothing else needs it), optionally keeping the run history and handing
 * the jobs made in SQL back to a real pg_cron's cron.job, active again. Refused while a
 * daemon is live. Prints each thing it does (or would do, with --dry-run). */
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>

#include "cli.h"
#include "config.h"
#include "ctl.h"
#include "pgconn.h"

/* What install writes on the role it creates (sql/pgcrond--2.sql) and on its cron schema
 * (sql/pg_cron_compat.sql): how uninstall tells them from objects someone else made. */
#define OPERATOR_COMMENT "may ask pgcrond for manual runs: SELECT pgcrond.trigger(job)"
#define CRON_COMMENT "pgcrond: pg_cron compatibility views"
/* ... and on its net schema (sql/pg_net_compat.sql) */
#define NET_COMMENT "pgcrond: pg_net compatibility"
/* 'pgcrond' in ASCII, as hist_install.c: uninstall and install never overlap. */
#define INSTALL_LOCK_KEY "31638874210922084"
#define HISTORY_SCHEMA "pgcrond_history"

static const char usage[] =
    "Usage: pgcrond uninstall [-c FILE] [--keep-history]\n"
    "                         [--restore-pg-cron --to CONNINFO] [--dry-run]\n\n"
    "Remove what pgcrond install made in the history database: the schema pgcrond\n"
    "(job registry, run history, coordination tables), pgcrond's own \"cron\" schema\n"
    "(pg_cron's API; never a real pg_cron's) with the jobs made in SQL, pgcrond's own\n"
    "\"net\" schema (pg_net's API; never a real pg_net's), and the role\n"
    "pgcrond_operator when install created it and nothing else depends on it.\n"
    "Refused while a daemon is live. Job files, the configuration and the plugins'\n"
    "objects in the job databases stay.\n\n"
    "Options:\n"
    "  --keep-history     keep the run history: pgcrond.job_run_details moves to\n"
    "                     " HISTORY_SCHEMA ".job_run_details, with its rows\n"
    "  --restore-pg-cron  first hand the jobs made in SQL back to pg_cron: each\n"
    "                     becomes active again in pg_cron's cron.job (the job of the\n"
    "                     same name and owner, as pgcrond import --disable-source left\n"
    "                     it; a job pg_cron lacks is scheduled there)\n"
    "  --to CONNINFO      the pg_cron server's database holding cron.job (as a\n"
    "                     superuser there); needed by --restore-pg-cron; without a\n"
    "                     password: use PGPASSWORD, ~/.pgpass or service=NAME\n"
    "  --dry-run          print what would be done, change nothing\n"
    "  -c, --config FILE  the main configuration file (default " PGCROND_DEFAULT_CONF ")\n"
    "  -h, --help         show this help\n\n"
    "Exit status: 0 done (or nothing to remove), 64 bad usage (or a password in\n"
    "--to), 65 pg_cron refused a job, 69 a database is unreachable, 73 the server\n"
    "refused a change, 75 a daemon is live (stop it first), 77 a privilege is\n"
    "missing, 78 configuration error.\n";

/* Run SQL (N parameters P, pgconn_exec()); 0, or the exit code after a message naming WHAT.
 * *OUT gets the result when OUT is not NULL (PQclear it). */
static int q(PGconn *c, const char *sql, int n, const char *const *p, const char *what,
             PGresult **out)
{
	char err[1536];
	int rc = pgconn_exec(c, sql, n, p, out, what, err, sizeof(err));

	if (rc == 0)
		return 0;
	fprintf(stderr, "pgcrond uninstall: %s\n", err);
	if (rc == -ENOTCONN)
		return EX_UNAVAILABLE;
	if (rc == -EACCES) {
		fprintf(stderr,
		        "pgcrond uninstall: run it as the role that ran pgcrond install (the "
		        "owner of the schemas), or as a superuser\n");
		return EX_NOPERM;
	}
	return EX_CANTCREAT;
}

/* A daemon answering on the control socket of CONF: EX_TEMPFAIL after saying so, 0 when
 * none answers, or the exit code of another problem (its message printed). */
static int socket_live(const char *conf)
{
	struct ctl_request rq = {.cmd = CTL_STATUS};
	json_t *a = NULL;
	int rc = cli_ctl_call("uninstall", conf, &rq, 5000, true, &a);
	json_decref(a);
	if (rc == EX_UNAVAILABLE)
		return 0; /* no socket, nobody listening */
	if (rc == 0 || rc == EX_TEMPFAIL) {
		fprintf(stderr, "pgcrond uninstall: a pgcrond daemon is running with this "
		                "configuration (its control socket answers); stop it first "
		                "(systemctl stop pgcrond), then run uninstall again\n");
		return EX_TEMPFAIL;
	}
	return rc;
}

/* The SQL jobs of the history database handed back to pg_cron on TO. Returns 0 or an exit
 * code. The pg_cron side commits only when COMMIT_IT. */
static int restore_pg_cron(PGconn *hist, const char *to, bool dry_run, PGconn **pgcron)
{
	char err[1024];
	PGresult *jobs = NULL;
	int rc;

	*pgcron = pgconn_connect_blocking(to, "pgcrond uninstall", err, sizeof(err));
	if (!*pgcron) {
		fprintf(stderr, "pgcrond uninstall: the pg_cron server (--to): %s\n", err);
		return EX_UNAVAILABLE;
	}
	PGconn *pc = *pgcron;
	PGresult *r = NULL;
	rc = q(pc,
	       "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension"
	       " WHERE extname OPERATOR(pg_catalog.=) 'pg_cron')",
	       0, NULL, "the pg_cron server (--to)", &r);
	if (rc)
		return rc;
	bool has = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!has) {
		fprintf(
		    stderr,
		    "pgcrond uninstall: database \"%s\" given by --to has no pg_cron extension; "
		    "give the database of cron.database_name where pg_cron is installed\n",
		    PQdb(pc));
		return EX_CONFIG;
	}
	/* COALESCE is syntax, not a function: there is no pg_catalog.coalesce to name */
	rc = q(hist,
	       "SELECT COALESCE(cron_jobname, jobname), schedule, command, database,"
	       "       username, enabled::pg_catalog.text, jobid"
	       "  FROM pgcrond.job WHERE source OPERATOR(pg_catalog.=) 'sql' AND removed_at IS NULL"
	       " ORDER BY jobid",
	       0, NULL, "reading the jobs made in SQL", &jobs);
	if (rc)
		return rc;
	rc = q(pc, "BEGIN", 0, NULL, "BEGIN on the pg_cron server", NULL);
	for (int i = 0; rc == 0 && i < PQntuples(jobs); i++) {
		const char *name = PQgetvalue(jobs, i, 0), *user = PQgetvalue(jobs, i, 4);
		bool active = PQgetvalue(jobs, i, 5)[0] == 't';
		const char *state = active ? "active" : "inactive";
		const char *find[] = {name, user};
		char what[300];
		snprintf(what, sizeof(what), "handing job \"%s\" back to pg_cron", name);
		/* the job import left there: same name and owner, or the unnamed job that import
		 * named pg_cron-JOBID */
		rc = q(pc,
		       "SELECT jobid FROM cron.job WHERE username OPERATOR(pg_catalog.=) $2"
		       "   AND (jobname OPERATOR(pg_catalog.=) $1"
		       "        OR (jobname IS NULL AND 'pg_cron-' OPERATOR(pg_catalog.||)"
		       "            jobid::pg_catalog.text OPERATOR(pg_catalog.=) $1))"
		       " ORDER BY jobname IS NULL LIMIT 1",
		       2, find, what, &r);
		if (rc)
			break;
		if (PQntuples(r) == 1) {
			const char *p[] = {PQgetvalue(r, 0, 0), active ? "true" : "false"};
			rc = q(pc,
			       "UPDATE cron.job SET active = $2::pg_catalog.bool"
			       " WHERE jobid OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
			       2, p, what, NULL);
			if (rc == 0)
				printf("%s job \"%s\" to pg_cron (pg_cron job %s, owner %s), %s\n",
				       dry_run ? "would hand back" : "handed back", name,
				       PQgetvalue(r, 0, 0), user, state);
		} else {
			const char *p[] = {name,
			                   PQgetvalue(jobs, i, 1),
			                   PQgetvalue(jobs, i, 2),
			                   PQgetvalue(jobs, i, 3),
			                   user,
			                   active ? "true" : "false"};
			PGresult *s = NULL;
			rc = q(pc,
			       "SELECT cron.schedule_in_database($1, $2, $3, $4,"
			       " $5, $6::pg_catalog.bool)",
			       6, p, what, &s);
			if (rc) {
				if (rc == EX_CANTCREAT)
					rc = EX_DATAERR; /* pg_cron refused the job itself */
				fprintf(stderr,
				        "pgcrond uninstall: nothing was handed back and nothing "
				        "removed\n");
			} else {
				printf("%s job \"%s\" to pg_cron (scheduled there as job %s, owner "
				       "%s, schedule %s), %s\n",
				       dry_run ? "would hand back" : "handed back", name,
				       PQgetvalue(s, 0, 0), user, PQgetvalue(jobs, i, 1), state);
			}
			PQclear(s);
		}
		PQclear(r);
	}
	if (rc == 0 && PQntuples(jobs) == 0)
		printf("no jobs made in SQL to hand back to pg_cron\n");
	PQclear(jobs);
	if (rc == 0 && !dry_run)
		rc = q(pc, "COMMIT", 0, NULL, "COMMIT on the pg_cron server", NULL);
	else
		PQclear(PQexec(pc, "ROLLBACK"));
	return rc;
}

/* The history database's side, in HIST's open transaction. */
/* When R (the search for it, cleared here) found it: keep the count its row holds (first
 * column) in N and drop schema SCHEMA (a constant: cron, net or pgcrond) with everything in
 * it. N stays "" when R has no row. */
static int drop_counted(PGconn *hist, PGresult *r, const char *schema, char n[24])
{
	char sql[64], what[64];
	n[0] = '\0';
	if (PQntuples(r) != 1) {
		PQclear(r);
		return 0;
	}
	snprintf(n, 24, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", schema);
	snprintf(what, sizeof(what), "dropping schema %s", schema);
	return q(hist, sql, 0, NULL, what, NULL);
}

/* pgcrond's own compatibility schema SCHEMA (cron or net), told by the comment install wrote
 * on it (COMMENT), its owner (pgcrond's) and no extension EXT (a real pg_cron's or pg_net's
 * is never touched): dropped when found, with *N the jobs made in SQL ("" when not found). */
static int drop_compat(PGconn *hist, const char *schema, const char *comment, const char *ext,
                       char n[24])
{
	const char *p[] = {schema, comment, ext};
	char what[64];
	PGresult *r = NULL;

	snprintf(what, sizeof(what), "looking for pgcrond's %s schema", schema);
	int rc = q(hist,
	           "SELECT (SELECT pg_catalog.count(*) FROM pgcrond.job"
	           "         WHERE source OPERATOR(pg_catalog.=) 'sql' AND removed_at IS NULL)"
	           "  FROM pg_catalog.pg_namespace n"
	           " WHERE n.nspname OPERATOR(pg_catalog.=) $1"
	           "   AND pg_catalog.obj_description(n.oid, 'pg_namespace')"
	           "       OPERATOR(pg_catalog.=) $2"
	           "   AND n.nspowner OPERATOR(pg_catalog.=) (SELECT p.nspowner"
	           "        FROM pg_catalog.pg_namespace p"
	           "        WHERE p.nspname OPERATOR(pg_catalog.=) 'pgcrond')"
	           "   AND NOT EXISTS (SELECT FROM pg_catalog.pg_extension"
	           "                    WHERE extname OPERATOR(pg_catalog.=) $3)",
	           3, p, what, &r);
	return rc ? rc : drop_counted(hist, r, schema, n);
}

static int drop_objects(PGconn *hist, bool keep_history, bool dry_run)
{
	const char *would = dry_run ? "would drop" : "dropped";
	PGresult *r = NULL;
	char n[24];
	int rc;

	if ((rc = drop_compat(hist, "cron", CRON_COMMENT, "pg_cron", n)))
		return rc;
	if (n[0])
		printf("%s schema cron (pgcrond's pg_cron compatibility: cron.job, "
		       "cron.job_run_details, cron.schedule ...) with the %s job(s) made in SQL\n",
		       would, n);
	if ((rc = drop_compat(hist, "net", NET_COMMENT, "pg_net", n)))
		return rc;
	if (n[0])
		printf("%s schema net (pgcrond's pg_net compatibility: net.http_get, "
		       "net.http_post, net.http_delete) with its queue and responses\n",
		       would);

	if (keep_history) {
		rc = q(hist,
		       "SELECT pg_catalog.to_regnamespace('" HISTORY_SCHEMA "') IS NOT NULL,"
		       "       (SELECT pg_catalog.count(*) FROM pgcrond.job_run_details)",
		       0, NULL, "reading the run history", &r);
		if (rc)
			return rc;
		bool taken = PQgetvalue(r, 0, 0)[0] == 't';
		char runs[24];
		snprintf(runs, sizeof(runs), "%s", PQgetvalue(r, 0, 1));
		PQclear(r);
		if (taken) {
			fprintf(stderr,
			        "pgcrond uninstall: --keep-history: schema " HISTORY_SCHEMA
			        " exists (the history of an earlier uninstall?); rename or drop it "
			        "(ALTER SCHEMA " HISTORY_SCHEMA
			        " RENAME TO ...), then run uninstall again; nothing was removed\n");
			return EX_CANTCREAT;
		}
		/* the table and its day partitions, with the sequences their columns own */
		rc = q(
		    hist,
		    "CREATE SCHEMA " HISTORY_SCHEMA ";"
		    " COMMENT ON SCHEMA " HISTORY_SCHEMA " IS"
		    "  'the run history pgcrond uninstall --keep-history kept';"
		    " DO $m$ DECLARE t regclass; BEGIN"
		    "  FOR t IN SELECT p.relid FROM pg_catalog.pg_partition_tree("
		    "              'pgcrond.job_run_details'::pg_catalog.regclass) p"
		    "            JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.relid"
		    "           WHERE c.relnamespace OPERATOR(pg_catalog.=)"
		    "                 'pgcrond'::pg_catalog.regnamespace"
		    "             AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}')"
		    "  LOOP"
		    "   EXECUTE pg_catalog.format('ALTER TABLE %s SET SCHEMA " HISTORY_SCHEMA "',"
		    "                             t);"
		    "  END LOOP;"
		    " END $m$",
		    0, NULL, "moving the run history to schema " HISTORY_SCHEMA, NULL);
		if (rc)
			return rc;
		printf("%s pgcrond.job_run_details (%s runs) to " HISTORY_SCHEMA
		       ".job_run_details\n",
		       dry_run ? "would move" : "moved", runs);
	}

	rc = q(hist,
	       "SELECT pg_catalog.count(*) FROM pg_catalog.pg_depend d"
	       " WHERE d.refclassid OPERATOR(pg_catalog.=) "
	       "'pg_catalog.pg_namespace'::pg_catalog.regclass"
	       "   AND d.refobjid OPERATOR(pg_catalog.=) 'pgcrond'::pg_catalog.regnamespace",
	       0, NULL, "counting the objects of schema pgcrond", &r);
	if (rc || (rc = drop_counted(hist, r, "pgcrond", n)))
		return rc;
	printf("%s schema pgcrond (%s objects: the job registry, %sthe coordination tables, "
	       "functions and views; with them their grants)\n",
	       would, n, keep_history ? "" : "the run history, ");

	/* the role, when install made it: nothing left to depend on it in any database (the
	 * server refuses otherwise, and then it stays) */
	rc = q(hist,
	       "SELECT pg_catalog.shobj_description(oid, 'pg_authid') OPERATOR(pg_catalog.=) "
	       "'" OPERATOR_COMMENT "'"
	       "  FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'pgcrond_operator'",
	       0, NULL, "looking for role pgcrond_operator", &r);
	if (rc)
		return rc;
	bool ours = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
	bool exists = PQntuples(r) == 1;
	PQclear(r);
	if (!ours) {
		if (exists)
			printf("kept role pgcrond_operator: pgcrond install did not create it\n");
		return 0;
	}
	rc = q(hist, "SAVEPOINT role", 0, NULL, "SAVEPOINT", NULL);
	if (rc)
		return rc;
	r = PQexec(hist, "DROP ROLE pgcrond_operator");
	if (PQresultStatus(r) == PGRES_COMMAND_OK) {
		printf("%s role pgcrond_operator (its members lose it)\n", would);
		PQclear(r);
		return q(hist, "RELEASE SAVEPOINT role", 0, NULL, "RELEASE SAVEPOINT", NULL);
	}
	char why[1024];
	printf("kept role pgcrond_operator: %s\n", pgconn_result_error(r, why, sizeof(why)));
	PQclear(r);
	return q(hist, "ROLLBACK TO SAVEPOINT role", 0, NULL, "ROLLBACK TO SAVEPOINT", NULL);
}

int cli_uninstall(int argc, char **argv)
{
	const char *conf, *to = NULL;
	bool keep = false, restore = false, dry_run = false;
	const struct cli_option more[] = {
	    {"keep-history", 0, &keep, NULL},
	    {"restore-pg-cron", 0, &restore, NULL},
	    {"to", 0, NULL, &to},
	    {"dry-run", 0, &dry_run, NULL},
	    {NULL, 0, NULL, NULL},
	};
	struct pgc_config *cfg = NULL;
	PGconn *hist = NULL, *pgcron = NULL;
	PGresult *r = NULL;
	int rc;

	rc = cli_parse_args(argc, argv, usage, &conf, more, 0, 0, NULL);
	if (rc)
		return rc == CLI_HELP ? EX_OK : rc;
	if (restore != (to != NULL)) {
		fprintf(stderr, restore
		                    ? "pgcrond uninstall: --restore-pg-cron needs --to CONNINFO, "
		                      "the database where pg_cron is installed\n"
		                    : "pgcrond uninstall: --to is only for --restore-pg-cron\n");
		return EX_USAGE;
	}
	if (to && pgconn_conninfo_has_password(to)) {
		/* refused before anything is done, as import --from: the argument is already in
		 * the process list, but it need not stay there for a whole uninstall */
		fprintf(
		    stderr,
		    "pgcrond uninstall: --to holds a password, which every local user can read "
		    "in the process list (/proc/PID/cmdline); remove it and give the password "
		    "through PGPASSWORD, a password file (~/.pgpass, or PGPASSFILE) or a "
		    "service (--to 'service=NAME', see pg_service.conf); nothing was changed\n");
		return EX_USAGE;
	}

	rc = socket_live(conf);
	if (rc)
		return rc;
	rc = hist_cli_open("uninstall", conf, NULL, &cfg, &hist);
	if (rc)
		return rc;
	const char *lock[] = {INSTALL_LOCK_KEY};
	rc = q(hist, "BEGIN", 0, NULL, "BEGIN", NULL);
	if (rc == 0)
		rc = q(hist, "SET LOCAL client_min_messages = warning", 0, NULL,
		       "client_min_messages", NULL);
	if (rc == 0)
		rc = q(hist, "SELECT pg_catalog.pg_advisory_xact_lock($1::pg_catalog.int8)", 1,
		       lock, "advisory lock", NULL);
	if (rc == 0)
		rc = q(hist, "SELECT pg_catalog.to_regclass('pgcrond.job') IS NOT NULL", 0, NULL,
		       "looking for schema pgcrond", &r);
	if (rc)
		goto out;
	bool installed = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!installed) {
		printf("nothing to uninstall: no pgcrond schema in database \"%s\"\n",
		       cfg->history_database);
		goto out;
	}
	/* another host's daemon (or one with another state_dir): its coordination session,
	 * recorded in its instance row, is alive (sql/pgcrond--11.sql), unless its row says its
	 * process stopped cleanly: that is its last statement, and its backend may still be
	 * listed for a moment after the process is gone (a loaded server) */
	rc = q(hist,
	       "SELECT pg_catalog.string_agg(i.name, ', ' ORDER BY i.name)"
	       "  FROM pgcrond.instance i JOIN pg_catalog.pg_stat_activity a"
	       "    ON a.pid OPERATOR(pg_catalog.=) i.backend_pid"
	       "   AND a.backend_start OPERATOR(pg_catalog.=) i.backend_start"
	       " WHERE i.stopped_at IS NULL OR i.stop_note IS NULL"
	       "  OR i.stop_note OPERATOR(pg_catalog.<>) 'stopped'",
	       0, NULL, "looking for live instances", &r);
	if (rc)
		goto out;
	if (!PQgetisnull(r, 0, 0)) {
		fprintf(stderr,
		        "pgcrond uninstall: pgcrond is running on database \"%s\" (live instance: "
		        "%s); stop every daemon first, then run uninstall again\n",
		        cfg->history_database, PQgetvalue(r, 0, 0));
		PQclear(r);
		rc = EX_TEMPFAIL;
		goto out;
	}
	PQclear(r);
	if (restore && (rc = restore_pg_cron(hist, to, dry_run, &pgcron)) != 0)
		goto out;
	rc = drop_objects(hist, keep, dry_run);
	if (rc == 0 && !dry_run)
		rc = q(hist, "COMMIT", 0, NULL, "COMMIT", NULL);
	if (rc == 0 && !dry_run)
		printf("pgcrond uninstall: done in database \"%s\"; the job files, %s and the "
		       "plugins' objects in the job databases are left as they were\n",
		       cfg->history_database, conf);
	else if (rc == 0)
		printf("pgcrond uninstall: dry run, nothing changed\n");
out:
	if (hist && PQtransactionStatus(hist) != PQTRANS_IDLE)
		PQclear(PQexec(hist, "ROLLBACK"));
	PQfinish(pgcron);
	PQfinish(hist);
	config_free(&cfg);
	return rc;
}
