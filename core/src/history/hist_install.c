/* The schema installer (hist_install.h): "pgcrond install" brings the history database's
 * schema to the newest step, blocking, on the CLI's own connection. */
#include "hist_install.h"

#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ownsess.h"
#include "pgconn.h"

/* The path of the install's transaction (SET LOCAL): as the connection's startup option,
 * restated before each file. */
#define PIN_PATH_SQL "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)"

/* 'pgcrond' in ASCII: the advisory lock two installers serialize on. */
#define INSTALL_LOCK_KEY "31638874210922084"

const char hist_sql_owner_check[] =
    "DO $$ DECLARE o pg_catalog.name; su boolean; BEGIN"
    " SELECT r.rolname, r.rolsuper INTO o, su FROM pg_catalog.pg_namespace n"
    "  JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner"
    "  WHERE n.nspname OPERATOR(pg_catalog.=) 'pgcrond'::pg_catalog.name;"
    " IF o OPERATOR(pg_catalog.<>) CURRENT_USER AND NOT su THEN"
    "  RAISE EXCEPTION 'schema pgcrond in database % is owned by role %, not by %: what that"
    " role put there would run as %, so nothing is installed', pg_catalog.current_database(),"
    " pg_catalog.quote_ident(o), pg_catalog.quote_ident(CURRENT_USER),"
    " pg_catalog.quote_ident(CURRENT_USER) USING ERRCODE = 'insufficient_privilege',"
    " HINT = pg_catalog.format('Check what schema pgcrond holds; if it is pgcrond''s own,"
    " install as %I, or as a superuser ALTER SCHEMA pgcrond OWNER TO %I. A role that may"
    " create schemas in this database must not be the first to create pgcrond.', o,"
    " CURRENT_USER);"
    " END IF; END $$";

int hist_apply_file(PGconn *c, const char *dir, const char *name, bool pin, const char *what,
                    char *err, size_t errlen)
{
	char path[4096], buf[4096], *sql = NULL;
	size_t len = 0, got;
	int rc, w = snprintf(path, sizeof(path), "%s/%s", dir, name);

	if (w < 0 || (size_t)w >= sizeof(path)) {
		snprintf(err, errlen, "%s/%s: path too long", dir, name);
		return -ENAMETOOLONG;
	}
	FILE *f = fopen(path, "re");
	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rc));
		return rc;
	}
	/* With PIN, the file starts on the pinned path (the connection's own, pgconn.h),
	 * whatever the file before it may have set: a name in it never resolves through a schema
	 * other roles can write (CVE-2018-1058), and what it creates binds to pg_catalog's
	 * objects. Then, in the same query, the owner check: schema pgcrond, if there, is the
	 * installer's or a superuser's. */
	FILE *mem = open_memstream(&sql, &len);
	if (mem)
		fprintf(mem, "%s%s;\n", pin ? PIN_PATH_SQL ";\n" : "", hist_sql_owner_check);
	while (mem && (got = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, got, mem);
	rc = ferror(f) ? -EIO : 0;
	fclose(f);
	if (!mem || fclose(mem) != 0)
		rc = -ENOMEM;
	if (rc < 0)
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rc));
	else
		rc = pgconn_exec(c, sql, 0, NULL, NULL, what ? what : path, err, errlen);
	free(sql);
	return rc;
}

const char *hist_sql_dir(void)
{
	const char *env = getenv("PGCROND_SQL_DIR");
	struct stat st;

	if (env && *env)
		return env;
	if (stat(PGCROND_SOURCE_SQL_DIR, &st) == 0 && S_ISDIR(st.st_mode))
		return PGCROND_SOURCE_SQL_DIR;
	return PGCROND_DEFAULT_SQL_DIR;
}

/* The highest N of the pgcrond--N.sql files in DIR (0 if none). */
static int newest_step(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int newest = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		int n, end = 0;
		if (sscanf(e->d_name, "pgcrond--%d.sql%n", &n, &end) == 1 && end > 0 &&
		    e->d_name[end] == '\0' && n > newest && n < 100000)
			newest = n;
	}
	closedir(d);
	return newest;
}

static bool step_applied(PGconn *c, const char *step)
{
	const char *p[] = {step};
	/* (in two statements: naming a missing table would abort the transaction) */
	PGresult *r =
	    PQexec(c, "SELECT pg_catalog.to_regclass('pgcrond.schema_version') IS NOT NULL");
	bool yes = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	           PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!yes)
		return false;
	r = PQexecParams(c,
	                 "SELECT EXISTS (SELECT FROM pgcrond.schema_version"
	                 " WHERE version OPERATOR(pg_catalog.=) $1::pg_catalog.int4)",
	                 1, NULL, p, NULL, NULL, 0);
	yes = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	      PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return yes;
}

int hist_install_begin(struct pg_conn *c, const char *sql_dir, int *from, int *to, char *err,
                       size_t errlen)
{
	const char *lock[] = {INSTALL_LOCK_KEY};
	PGresult *r = NULL;
	int rc, current = 0, version;

	*from = *to = 0;
	rc = pgconn_exec(c, "BEGIN", 0, NULL, NULL, "BEGIN", err, errlen);
	if (rc < 0)
		return rc;
	/* The steps are idempotent DDL: "already exists, skipping" and "does not exist,
	 * skipping" notices are no news to the operator. Warnings and errors still show. */
	rc = pgconn_exec(c, "SET LOCAL client_min_messages = warning", 0, NULL, NULL,
	                 "client_min_messages", err, errlen);
	if (rc < 0)
		goto fail;
	/* Wait for a concurrent installer rather than race it: once it commits, this one
	 * finds the schema current and changes nothing. */
	rc = pgconn_exec(c, PIN_PATH_SQL, 0, NULL, NULL, "pinning search_path", err, errlen);
	if (rc < 0)
		goto fail;
	rc = pgconn_exec(c, "SELECT pg_catalog.pg_advisory_xact_lock($1::pg_catalog.int8)", 1, lock,
	                 NULL, "advisory lock", err, errlen);
	if (rc < 0)
		goto fail;
	/* before anything reads the schema (its schema_version could be another role's view) */
	rc = pgconn_exec(c, hist_sql_owner_check, 0, NULL, NULL, "schema pgcrond", err, errlen);
	if (rc < 0)
		goto fail;
	rc = pgconn_exec(c, "SELECT pg_catalog.to_regclass('pgcrond.schema_version') IS NOT NULL",
	                 0, NULL, &r, "reading the schema version", err, errlen);
	if (rc < 0)
		goto fail;
	bool versioned = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (versioned) {
		rc = pgconn_exec(
		    c, "SELECT coalesce(pg_catalog.max(version), 0) FROM pgcrond.schema_version", 0,
		    NULL, &r, "reading the schema version", err, errlen);
		if (rc < 0)
			goto fail;
		current = atoi(PQgetvalue(r, 0, 0));
		PQclear(r);
	}

	/* Every step up to the newest file, skipping a number with no file and a step already
	 * recorded: step numbers are handed out to branches that merge in any order, so a
	 * database may hold a later step before an earlier one arrives. */
	version = current;
	int newest = newest_step(sql_dir);
	for (int step = 1; step <= newest; step++) {
		char name[64], vbuf[16];
		snprintf(vbuf, sizeof(vbuf), "%d", step);
		if (step_applied(c, vbuf))
			continue;
		snprintf(name, sizeof(name), "pgcrond--%d.sql", step);
		rc = hist_apply_file(c, sql_dir, name, true, NULL, err, errlen);
		if (rc == -ENOENT)
			continue;
		if (rc < 0)
			goto fail;
		if (step > version)
			version = step;
		const char *p[] = {PGCROND_VERSION, vbuf};
		rc = pgconn_exec(c,
		                 "UPDATE pgcrond.schema_version SET pgcrond_version = $1"
		                 " WHERE version OPERATOR(pg_catalog.=) $2::pg_catalog.int4",
		                 2, p, NULL, "recording the version", err, errlen);
		if (rc < 0)
			goto fail;
	}
	if (version == 0) {
		snprintf(err, errlen,
		         "no schema files (pgcrond--1.sql) in %s; set PGCROND_SQL_DIR "
		         "to the directory holding them",
		         sql_dir);
		rc = -ENOENT;
		goto fail;
	}
	rc = hist_apply_file(c, sql_dir, "pg_cron_compat.sql", true, NULL, err, errlen);
	if (rc < 0 && rc != -ENOENT)
		goto fail;
	/* pg_net's API where the database has no "net" schema of its own (docs/sql-api.md) */
	rc = hist_apply_file(c, sql_dir, "pg_net_compat.sql", true, NULL, err, errlen);
	if (rc < 0 && rc != -ENOENT)
		goto fail;
	/* the change counters, where pgcrond.schedule() watches the sources of SQL jobs with
	 * freshness (docs/freshness.md) */
	rc = hist_apply_file(c, sql_dir, "freshness.sql", true, NULL, err, errlen);
	if (rc < 0 && rc != -ENOENT)
		goto fail;
	/* sent as the install commits: the daemons whose session an older schema holds read the
	 * steps again (ownsess_need_steps) */
	const char *channel[] = {OWNSESS_INSTALL_CHANNEL};
	rc = pgconn_exec(c, "SELECT pg_catalog.pg_notify($1, '')", 1, channel, NULL,
	                 "notifying the daemons", err, errlen);
	if (rc < 0)
		goto fail;
	*from = current;
	*to = version;
	return 0;
fail:
	PQclear(PQexec(c, "ROLLBACK"));
	return rc;
}
