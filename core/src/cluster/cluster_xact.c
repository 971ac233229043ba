/* Runs under way (cluster.h: cluster_note_start, cluster_note_xact, cluster_xact_end;
 * sql/pgcrond--17.sql).
 *
 * As a run of a claimed fire gets its backend, its instance marks its start in
 * pgcrond.run_start, on the connection that made the claim; its transaction id follows
 * when the server gives it (exec.h, on_xid). Whoever closes the run after this process is
 * gone (another instance that found it dead, sql_reap) asks the server whether that
 * transaction committed instead of retrying work that is done, and serves the claims of
 * fires with neither a start mark nor a history row (never run). Marks gather while a
 * statement is in flight and go in one statement; a run's row is deleted once its history
 * row is written with its end, so the table holds the runs under way. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "cluster_priv.h"
#include "log.h"
#include "pgconn.h"

/* $2: lines "KIND TAB run_key TAB a TAB b": S (a start: job, scheduled Unix s or empty), X (a
 * transaction id: xid, server), D (the end is written: the row goes). Per run, a D among
 * its lines deletes; else the values of its lines together are written. */
static const char cluster_sql_xact[] =
    "WITH l AS (SELECT pg_catalog.string_to_array(t, E'\\t') AS f"
    "  FROM pg_catalog.unnest(pg_catalog.string_to_array($2, E'\\n')) AS u(t)"
    "  WHERE t OPERATOR(pg_catalog.<>) ''),"
    " v AS (SELECT f[2] AS k,"
    "  pg_catalog.max(f[3]) FILTER (WHERE f[1] OPERATOR(pg_catalog.=) 'S') AS job,"
    "  pg_catalog.max(NULLIF(f[4], '')) FILTER (WHERE f[1] OPERATOR(pg_catalog.=) 'S')"
    "   ::pg_catalog.int8 AS sched,"
    "  pg_catalog.max(f[3]) FILTER (WHERE f[1] OPERATOR(pg_catalog.=) 'X')::pg_catalog.int8"
    "   AS x,"
    "  pg_catalog.max(f[4]) FILTER (WHERE f[1] OPERATOR(pg_catalog.=) 'X') AS s,"
    "  pg_catalog.bool_or(f[1] OPERATOR(pg_catalog.=) 'D') AS d"
    "  FROM l GROUP BY f[2]),"
    " gone AS (DELETE FROM pgcrond.run_start r USING v"
    "  WHERE r.instance OPERATOR(pg_catalog.=) $1 AND r.run_key OPERATOR(pg_catalog.=) v.k"
    "   AND v.d),"
    /* what a process that died before its runs' ends were written left (two days) */
    " old AS (DELETE FROM pgcrond.run_start r WHERE r.noted_at OPERATOR(pg_catalog.<)"
    "  (pg_catalog.now() OPERATOR(pg_catalog.-) interval '2 days'))"
    " INSERT INTO pgcrond.run_start AS r (instance, run_key, job_name, scheduled_s, xid, server)"
    " SELECT $1, v.k, v.job, v.sched, v.x, v.s FROM v WHERE NOT v.d"
    " ON CONFLICT (instance, run_key) DO UPDATE SET"
    "  job_name = COALESCE(EXCLUDED.job_name, r.job_name),"
    "  scheduled_s = COALESCE(EXCLUDED.scheduled_s, r.scheduled_s),"
    "  xid = COALESCE(EXCLUDED.xid, r.xid), server = COALESCE(EXCLUDED.server, r.server)";

/* Marks waiting to be sent, at most (bytes): while the coordination connection is down they
 * gather; past this, new ones are dropped (a dropped mark makes a takeover retry the run as
 * before, or serve its claim again: what an unmarked run gets). */
#define XACT_BUF_MAX (1 << 20)

struct xact_key {
	struct strmap_node node;
	char key[];
};

static void note(struct cluster *c, char kind, const char *key, const char *a, const char *b)
{
	size_t need = strlen(key) + strlen(a) + strlen(b) + 6;
	if (c->xact_len + need > XACT_BUF_MAX) {
		if (!c->xact_dropped++)
			log_warning(
			    "cluster: %d KiB of run marks wait for the history database; "
			    "new ones are dropped until they are sent (a run without its mark "
			    "is retried by a takeover even if it committed)",
			    XACT_BUF_MAX / 1024);
		return;
	}
	if (c->xact_len + need > c->xact_cap) {
		size_t cap = c->xact_cap ? c->xact_cap * 2 : 4096;
		while (cap < c->xact_len + need)
			cap *= 2;
		char *buf = realloc(c->xact_buf, cap);
		if (!buf)
			return; /* the run is then closed as before: failed, and retried */
		c->xact_buf = buf;
		c->xact_cap = cap;
	}
	c->xact_len += (size_t)snprintf(c->xact_buf + c->xact_len, c->xact_cap - c->xact_len,
	                                "%c\t%s\t%s\t%s\n", kind, key, a, b);
	cluster_kick(c);
}

/* Text that the lines' format cannot carry is not noted. */
static bool plain(const char *s)
{
	return s && !strpbrk(s, "\t\n");
}

bool cluster_marks_runs(const struct cluster *c)
{
	return c && c->xact_table && c->peers_live > 0;
}

static bool noted(struct cluster *c, const char *run_key)
{
	return strmap_find(&c->xact_keys, run_key) != NULL;
}

void cluster_note_start(struct cluster *c, const char *run_key, const char *job,
                        int64_t scheduled_s)
{
	if (!cluster_marks_runs(c) || !plain(run_key) || !plain(job) || noted(c, run_key))
		return;
	size_t len = strlen(run_key) + 1;
	struct xact_key *k = malloc(sizeof(*k) + len);
	if (!k)
		return;
	memcpy(k->key, run_key, len);
	strmap_insert(&c->xact_keys, &k->node, k->key);
	char sched[24] = "";
	if (scheduled_s > 0)
		snprintf(sched, sizeof(sched), "%" PRId64, scheduled_s);
	note(c, 'S', run_key, job, sched);
}

void cluster_note_xact(struct cluster *c, const char *run_key, const char *xid, const char *server)
{
	if (!c || !c->xact_table || !plain(run_key) || !noted(c, run_key))
		return;
	if (!xid || !server) /* the id is not the run's after all: a zero one means none */
		note(c, 'X', run_key, "0", "");
	else if (plain(xid) && plain(server))
		note(c, 'X', run_key, xid, server);
}

void cluster_xact_end(struct cluster *c, const char *run_key)
{
	if (!c)
		return;
	struct xact_key *k =
	    STRMAP_ENTRY(strmap_find(&c->xact_keys, run_key), struct xact_key, node);
	if (!k)
		return;
	strmap_remove(&c->xact_keys, &k->node);
	free(k);
	if (c->xact_table)
		note(c, 'D', run_key, "", "");
}

bool cluster_xact_send(struct cluster *c)
{
	if (!c->xact_len || !c->xact_table)
		return false;
	const char *p[] = {c->instance, c->xact_buf};
	/* there is room: each line was written with its NUL */
	c->xact_buf[c->xact_len] = '\0';
	cluster_send_stmt(c, OP_XACT, cluster_sql_xact, 2, p);
	c->xact_len = 0;
	c->xact_dropped = 0;
	return true;
}

void cluster_xact_done(struct cluster *c, const struct stmtq_result *sr)
{
	if (!sr->failed)
		return;
	if (strcmp(sr->sqlstate, "42P01") == 0) {
		c->xact_table = false;
		return;
	}
	log_warning("cluster: cannot mark runs under way (pgcrond.run_start): %s; a run closed "
	            "by another instance after this one died is retried even if it committed",
	            sr->err);
}

void cluster_xact_free(struct cluster *c)
{
	struct strmap_node *n = strmap_first(&c->xact_keys);
	while (n) {
		struct strmap_node *next = strmap_next(&c->xact_keys, n);
		free(STRMAP_ENTRY(n, struct xact_key, node));
		n = next;
	}
	strmap_free(&c->xact_keys);
	free(c->xact_buf);
	c->xact_buf = NULL;
	c->xact_len = c->xact_cap = 0;
}
