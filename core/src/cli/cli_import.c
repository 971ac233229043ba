/* pgcrond import: move the jobs of a server running pg_cron into pgcrond, as SQL jobs in the
 * history database (each keeps its owner, database, active flag and schedule, and runs as its
 * owner) or as job files. Names are kept; an unnamed job, or a name pgcrond cannot carry, gets
 * a stable one made from the source jobid. Expressions whose meaning differs are imported
 * with pg_cron's meaning and a warning. A name that is taken refuses the whole import:
 * nothing is changed. --disable-source then sets the imported jobs inactive in pg_cron. */
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "config.h"
#include "config_sql.h"
#include "cron.h"
#include "pgconn.h"

struct src_job {
	char *jobid, *schedule, *command, *database, *username, *jobname;
	bool active;
	char name[64];   /* pgcrond's name */
	char sched[256]; /* the schedule as pgcrond reads it with pg_cron's meaning */
	bool refused;    /* pgcrond cannot read its schedule */
};

static const char usage[] =
    "Usage: pgcrond import --from CONNINFO [--dry-run] [--to-files DIR]\n"
    "                      [--disable-source] [-c FILE]\n\n"
    "Read cron.job from a server running pg_cron and recreate its jobs in pgcrond:\n"
    "as SQL jobs in the history database (default; each keeps its owner, database,\n"
    "active flag and schedule, and runs as its owner), or as a job file in DIR.\n"
    "Named jobs keep their names; an unnamed job is named pg_cron-JOBID, and a name\n"
    "pgcrond cannot carry becomes its first 39 bytes, each byte other than ASCII\n"
    "letters, digits, _ . and - as \"-\", then -JOBID. Expressions whose meaning\n"
    "differs in pgcrond are imported with pg_cron's meaning, with a warning. A name\n"
    "that is already taken refuses the import: nothing is changed.\n\n"
    "Options:\n"
    "  --from CONNINFO    the pg_cron server's database holding cron.job (connect as\n"
    "                     a superuser there to see every role's jobs); without a\n"
    "                     password: use PGPASSWORD, ~/.pgpass or service=NAME\n"
    "  --dry-run          print what would be done, change nothing\n"
    "  --to-files DIR     write DIR/pg_cron-import.conf instead (file jobs run as\n"
    "                     pgcrond's own role, not as their pg_cron owner)\n"
    "  --disable-source   after importing, set the jobs inactive in pg_cron, so\n"
    "                     nothing runs twice\n"
    "  -c, --config FILE  the main configuration file (default " PGCROND_DEFAULT_CONF ")\n"
    "  -h, --help         show this help\n\n"
    "Exit status: 0 imported, 64 bad usage, 65 a name clash or a schedule pgcrond\n"
    "cannot read, 69 a database is unreachable, 78 configuration error.\n";

static void jobs_free(struct src_job *jobs, int n)
{
	for (int i = 0; jobs && i < n; i++) {
		free(jobs[i].jobid);
		free(jobs[i].schedule);
		free(jobs[i].command);
		free(jobs[i].database);
		free(jobs[i].username);
		free(jobs[i].jobname);
	}
	free(jobs);
}

/* The name pgcrond gives a pg_cron job: its own when pgcrond can carry it, else one made
 * from it (letters, digits, "_", "." and "-" kept, the rest "-") and the source jobid, so a
 * second import names it the same. */
static void pick_name(struct src_job *j)
{
	if (j->jobname && config_valid_job_name(j->jobname)) {
		snprintf(j->name, sizeof(j->name), "%s", j->jobname);
		return;
	}
	if (!j->jobname || !j->jobname[0]) {
		snprintf(j->name, sizeof(j->name), "pg_cron-%s", j->jobid);
		return;
	}
	char base[40];
	size_t o = 0;
	for (const char *p = j->jobname; *p && o < sizeof(base) - 1; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
		base[o++] = ok ? c : '-';
	}
	base[o] = '\0';
	snprintf(j->name, sizeof(j->name), "%s-%s", base, j->jobid);
}

/* The schedule with pg_cron's meaning, and a warning where pgcrond's reading differs. */
static void translate(struct src_job *j)
{
	const char *s = j->schedule;
	char err[256];
	cron_expr e;

	while (*s == ' ' || *s == '\t')
		s++;
	/* pg_cron (1.4) reads five fields and ignores any after them; pgcrond reads a sixth
	 * as seconds first */
	int fields = 0;
	const char *p = s, *end5 = NULL;
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (++fields == 5)
			end5 = p;
	}
	struct cron_six six;
	if (*s != '@' && fields > 5 && end5) {
		snprintf(j->sched, sizeof(j->sched), "%.*s", (int)(end5 - s), s);
		if (cron_six_fields(s, &six))
			/* both readings, as cron.schedule's NOTICE says them */
			fprintf(stderr,
			        "pgcrond import: warning: pg_cron job %s (\"%s\"): %s; imported "
			        "with pg_cron's reading, \"%s\", as it ran there; for pgcrond's, "
			        "change its schedule to \"%s\" after the import\n",
			        j->jobid, j->name, six.what, j->sched,
			        six.alike[0] ? six.alike : s);
		else
			fprintf(
			    stderr,
			    "pgcrond import: warning: pg_cron job %s (\"%s\"): schedule \"%s\" "
			    "has more than five fields; pg_cron ignores the rest and so does the "
			    "import: \"%s\" (pgcrond would read a sixth field as seconds first)\n",
			    j->jobid, j->name, j->schedule, j->sched);
	} else {
		snprintf(j->sched, sizeof(j->sched), "%s", j->schedule);
	}
	if (strncmp(s, "@yearly", 7) == 0 || strncmp(s, "@annually", 9) == 0)
		fprintf(
		    stderr,
		    "pgcrond import: warning: pg_cron job %s (\"%s\"): %s never fired in pg_cron; "
		    "in pgcrond it runs at midnight on January 1\n",
		    j->jobid, j->name, j->schedule);
	if (cron_parse(j->sched, &e, err, sizeof(err)) < 0) {
		fprintf(stderr, "pgcrond import: pg_cron job %s (\"%s\"): schedule %s\n", j->jobid,
		        j->name, err);
		j->refused = true;
	}
}

static int read_source(PGconn *src, struct src_job **out, int *n)
{
	PGresult *r = PQexec(src, "SELECT jobid, schedule, command, database, username, active,"
	                          " jobname FROM cron.job ORDER BY jobid");
	char why[1024];

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(
		    stderr,
		    "pgcrond import: cannot read cron.job on the source: %s; is pg_cron installed "
		    "in that database?\n",
		    pgconn_result_error(r, why, sizeof(why)));
		PQclear(r);
		return EX_UNAVAILABLE;
	}
	*n = PQntuples(r);
	*out = calloc((size_t)*n + 1, sizeof(**out));
	if (!*out) {
		PQclear(r);
		return EX_SOFTWARE;
	}
	for (int i = 0; i < *n; i++) {
		struct src_job *j = &(*out)[i];
		char **f[] = {&j->jobid, &j->schedule, &j->command, &j->database, &j->username};
		for (int c = 0; c < 5; c++)
			*f[c] = strdup(PQgetvalue(r, i, c));
		j->active = PQgetvalue(r, i, 5)[0] == 't';
		j->jobname = PQgetisnull(r, i, 6) ? NULL : strdup(PQgetvalue(r, i, 6));
		pick_name(j);
		translate(j);
	}
	PQclear(r);
	return EX_OK;
}

/* The names already taken in pgcrond, and names given twice by the import itself. */
static int clashes(PGconn *dst, struct src_job *jobs, int n)
{
	int bad = 0;
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < i; k++)
			if (strcmp(jobs[i].name, jobs[k].name) == 0) {
				fprintf(stderr,
				        "pgcrond import: pg_cron jobs %s and %s would both be "
				        "named \"%s\"; rename one in pg_cron (cron.alter_job "
				        "cannot, so unschedule and schedule it again)\n",
				        jobs[k].jobid, jobs[i].jobid, jobs[i].name);
				bad++;
			}
		if (!dst)
			continue;
		const char *p[] = {jobs[i].name};
		PGresult *r =
		    PQexecParams(dst,
		                 "SELECT source, coalesce(defined_at, username, '') FROM"
		                 " pgcrond.job WHERE jobname OPERATOR(pg_catalog.=) $1 AND"
		                 " removed_at IS NULL",
		                 1, NULL, p, NULL, NULL, 0);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
			bool file = strcmp(PQgetvalue(r, 0, 0), "file") == 0;
			fprintf(
			    stderr,
			    "pgcrond import: pg_cron job %s: the name \"%s\" is taken by %s %s; "
			    "rename or remove one of them, then import again\n",
			    jobs[i].jobid, jobs[i].name,
			    file ? "the job file job at" : "a SQL job of role",
			    PQgetvalue(r, 0, 1));
			bad++;
		}
		PQclear(r);
	}
	return bad;
}

/* The jobid the next job drawn from pgcrond.job's sequence gets, without drawing it (a
 * sequence is not rolled back: a dry run that drew would move the real run's ids). 0 if
 * it cannot be read. */
static long long next_jobid(PGconn *dst)
{
	PGresult *r = PQexec(
	    dst, "SELECT coalesce(pg_catalog.pg_sequence_last_value(q.seqrelid) OPERATOR("
	         "pg_catalog.+) q.seqincrement, q.seqstart) FROM pg_catalog.pg_sequence q"
	         " WHERE q.seqrelid OPERATOR(pg_catalog.=) pg_catalog.pg_get_serial_sequence("
	         "'pgcrond.job', 'jobid')::pg_catalog.regclass");
	long long v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
	                  ? atoll(PQgetvalue(r, 0, 0))
	                  : 0;
	PQclear(r);
	return v;
}

/* Whether ROLE can log in to DATABASE on the server of DST's conninfo, tried for real (LOGIN,
 * CONNECT, pg_hba.conf, a password file): the way the job's runs will connect. Says why not
 * in WHY. */
static bool owner_can_log_in(PGconn *dst, const char *role, const char *database, char *why,
                             size_t whylen)
{
	const char *keys[] = {"host", "port", "user", "dbname", "application_name", NULL};
	const char *vals[] = {PQhost(dst), PQport(dst), role, database, "pgcrond import", NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 0);
	bool ok = PQstatus(c) == CONNECTION_OK;
	if (!ok) /* on one line, for the warning's */
		pgconn_error_safe(c, NULL, why, whylen);
	PQfinish(c);
	return ok;
}

static int import_sql(PGconn *dst, struct src_job *jobs, int n, bool dry_run)
{
	char why[1024];
	PGresult *r = PQexec(dst, "BEGIN");
	PQclear(r);
	/* the ids a dry run prints are those the real run will draw, in the same order (as
	 * long as nobody schedules a job in between) */
	long long next = dry_run ? next_jobid(dst) : 0;
	for (int i = 0; i < n; i++) {
		struct src_job *j = &jobs[i];
		/* the owner and database must exist here to run the job */
		const char *p1[] = {j->username, j->database};
		r = PQexecParams(dst,
		                 "SELECT coalesce((SELECT rolcanlogin FROM pg_catalog.pg_roles"
		                 "  WHERE rolname OPERATOR(pg_catalog.=) $1), false),"
		                 " EXISTS (SELECT FROM pg_catalog.pg_database WHERE datname "
		                 "OPERATOR(pg_catalog.=) $2)",
		                 2, NULL, p1, NULL, NULL, 0);
		if (PQresultStatus(r) == PGRES_TUPLES_OK) {
			if (PQgetvalue(r, 0, 0)[0] != 't')
				fprintf(
				    stderr,
				    "pgcrond import: warning: job \"%s\": its owner, role \"%s\", "
				    "cannot log in on pgcrond's server; it will not run until it "
				    "can\n",
				    j->name, j->username);
			if (PQgetvalue(r, 0, 1)[0] != 't')
				fprintf(
				    stderr,
				    "pgcrond import: warning: job \"%s\": database \"%s\" does not "
				    "exist on the history database's server; add a databases entry "
				    "named \"%s\" for it\n",
				    j->name, j->database, j->database);
		}
		PQclear(r);
		/* the owner's login, tried as its runs will: one that cannot log in would see
		 * every run fail with 08001 */
		if (!owner_can_log_in(dst, j->username, j->database, why, sizeof(why)))
			fprintf(
			    stderr,
			    "pgcrond import: warning: job \"%s\": its owner, role \"%s\", cannot "
			    "log in to database \"%s\" (%s); its runs will fail until it can "
			    "(ALTER ROLE ... LOGIN, GRANT CONNECT, pg_hba.conf, a password file)\n",
			    j->name, j->username, j->database, why);
		if (dry_run) {
			/* nothing drawn from the sequence: see next_jobid() */
			printf("would import \"%s\" (pg_cron job %s) as jobid %lld: %s, owner %s, "
			       "database %s%s\n",
			       j->name, j->jobid, next ? next + i : 0LL, j->sched, j->username,
			       j->database, j->active ? "" : ", inactive");
			continue;
		}
		const char *p[] = {
		    j->sched, j->command, j->database, j->username, j->active ? "true" : "false",
		    j->name};
		/* as the table's owner: row-level security lets the row keep its owner, and the
		 * triggers check and mirror it as for cron.schedule */
		r = PQexecParams(
		    dst,
		    "INSERT INTO cron.job (schedule, command, database, username, active,"
		    " jobname) VALUES ($1, $2, $3, $4, $5::pg_catalog.bool, $6) RETURNING jobid",
		    6, NULL, p, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			fprintf(stderr, "pgcrond import: job \"%s\": %s\n", j->name,
			        pgconn_result_error(r, why, sizeof(why)));
			PQclear(r);
			PQclear(PQexec(dst, "ROLLBACK"));
			return EX_DATAERR;
		}
		printf(
		    "imported \"%s\" (pg_cron job %s) as jobid %s: %s, owner %s, database %s%s\n",
		    j->name, j->jobid, PQgetvalue(r, 0, 0), j->sched, j->username, j->database,
		    j->active ? "" : ", inactive");
		PQclear(r);
	}
	r = PQexec(dst, dry_run ? "ROLLBACK" : "COMMIT");
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "pgcrond import: COMMIT: %s\n",
		        pgconn_result_error(r, why, sizeof(why)));
	PQclear(r);
	return ok ? EX_OK : EX_UNAVAILABLE;
}

static int import_files(const char *dir, struct src_job *jobs, int n, bool dry_run)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/pg_cron-import.conf", dir) >= (int)sizeof(path))
		return EX_USAGE;
	struct stat st;
	if (!dry_run && stat(path, &st) == 0) {
		fprintf(stderr,
		        "pgcrond import: %s exists; move it away or import into another "
		        "directory\n",
		        path);
		return EX_CANTCREAT;
	}
	FILE *f = dry_run ? stdout : fopen(path, "wx");
	if (!f) {
		fprintf(stderr, "pgcrond import: cannot create %s: %s\n", path, strerror(errno));
		return EX_CANTCREAT;
	}
	fprintf(f, "# jobs imported from pg_cron by pgcrond import; file jobs run as pgcrond's\n"
	           "# own role (pg_cron ran each as its owner, named in the comments)\njobs = (\n");
	for (int i = 0; i < n; i++) {
		struct src_job *j = &jobs[i];
		char *q[4] = {config_sql_quote(j->name), config_sql_quote(j->command),
		              config_sql_quote(j->sched), config_sql_quote(j->database)};
		fprintf(f,
		        "  # pg_cron job %s, owner %s\n"
		        "  { name = %s; command = %s;\n    schedule = %s; database = %s;%s }%s\n",
		        j->jobid, j->username, q[0] ? q[0] : "\"\"", q[1] ? q[1] : "\"\"",
		        q[2] ? q[2] : "\"\"", q[3] ? q[3] : "\"\"",
		        j->active ? "" : " enabled = false;", i + 1 < n ? "," : "");
		for (int k = 0; k < 4; k++)
			free(q[k]);
	}
	fprintf(f, ");\n");
	if (!dry_run && fclose(f) != 0) {
		fprintf(stderr, "pgcrond import: cannot write %s: %s\n", path, strerror(errno));
		return EX_CANTCREAT;
	}
	if (!dry_run)
		printf("wrote %d job(s) to %s; the databases they name must be configured (pgcrond "
		       "check says so)\n",
		       n, path);
	return EX_OK;
}

static int disable_source(PGconn *src, struct src_job *jobs, int n)
{
	char why[1024];
	for (int i = 0; i < n; i++) {
		if (!jobs[i].active)
			continue;
		const char *p[] = {jobs[i].jobid};
		PGresult *r =
		    PQexecParams(src,
		                 "UPDATE cron.job SET active = false"
		                 " WHERE jobid OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
		                 1, NULL, p, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			fprintf(
			    stderr,
			    "pgcrond import: cannot set pg_cron job %s inactive: %s; set it with "
			    "SELECT cron.alter_job(%s, active := false)\n",
			    jobs[i].jobid, pgconn_result_error(r, why, sizeof(why)), jobs[i].jobid);
			PQclear(r);
			return EX_UNAVAILABLE;
		}
		PQclear(r);
	}
	printf("set the imported jobs inactive in pg_cron\n");
	return EX_OK;
}

int cli_import(int argc, char **argv)
{
	const char *from = NULL, *to_files = NULL, *conf;
	bool dry_run = false, disable = false;
	const struct cli_option more[] = {
	    {"from", 0, NULL, &from},
	    {"dry-run", 0, &dry_run, NULL},
	    {"to-files", 0, NULL, &to_files},
	    {"disable-source", 0, &disable, NULL},
	    {NULL, 0, NULL, NULL},
	};
	struct pgc_config *cfg = NULL;
	struct src_job *jobs = NULL;
	PGconn *src = NULL, *dst = NULL;
	char err[1024];
	int n = 0, rc;

	rc = cli_parse_args(argc, argv, usage, &conf, more, 0, 0, NULL);
	if (rc)
		return rc == CLI_HELP ? EX_OK : rc;
	if (!from) {
		fprintf(stderr,
		        "pgcrond import: --from CONNINFO is needed; see pgcrond import --help\n");
		return EX_USAGE;
	}

	if (pgconn_conninfo_has_password(from)) {
		/* refused before anything is done: the argument is already in the process list,
		 * but it need not stay there for a whole import */
		fprintf(stderr,
		        "pgcrond import: --from holds a password, which every local user can read "
		        "in the process list (/proc/PID/cmdline); remove it and give the password "
		        "through PGPASSWORD, a password file (~/.pgpass, or PGPASSFILE) or a "
		        "service (--from 'service=NAME', see pg_service.conf)\n");
		return EX_USAGE;
	}
	src = pgconn_connect_blocking(from, "pgcrond import", err, sizeof(err));
	if (!src) {
		fprintf(stderr, "pgcrond import: the pg_cron server: %s\n", err);
		return EX_UNAVAILABLE;
	}
	rc = read_source(src, &jobs, &n);
	if (rc != EX_OK)
		goto out;
	if (!to_files) {
		rc = hist_cli_open("import", conf, NULL, &cfg, &dst);
		if (rc != EX_OK)
			goto out;
		PGresult *r = PQexec(
		    dst, "SELECT pg_catalog.to_regclass('pgcrond.job_options') IS NOT NULL AND"
		         " EXISTS (SELECT FROM pg_catalog.pg_trigger"
		         "  WHERE tgname OPERATOR(pg_catalog.=) 'cron_job_sync')");
		bool ready = PQresultStatus(r) == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 't';
		PQclear(r);
		if (!ready) {
			fprintf(stderr, "pgcrond import: the history database has no pgcrond "
			                "cron.job (schema 3): run pgcrond install first (it needs "
			                "no cron schema of pg_cron's there)\n");
			rc = EX_CONFIG;
			goto out;
		}
	}
	int refused = 0;
	for (int i = 0; i < n; i++)
		refused += jobs[i].refused;
	if (refused || clashes(dst, jobs, n)) {
		fprintf(stderr, "pgcrond import: nothing imported\n");
		rc = EX_DATAERR;
		goto out;
	}
	if (n == 0) {
		printf("no jobs in the source's cron.job; nothing to import\n");
		goto out;
	}
	rc =
	    to_files ? import_files(to_files, jobs, n, dry_run) : import_sql(dst, jobs, n, dry_run);
	if (rc == EX_OK && disable && !dry_run)
		rc = disable_source(src, jobs, n);
	else if (rc == EX_OK && disable)
		printf("would set the imported jobs inactive in pg_cron\n");
out:
	jobs_free(jobs, n);
	PQfinish(src);
	PQfinish(dst);
	config_free(&cfg);
	return rc;
}
