/* Runs' transaction ids (cluster.h: cluster_note_xact, cluster_xact_end; sql/pgcrond--17.sql).
 *
 * A run reports its transaction id before its statement runs (exec.h, on_xid); the id goes
 * to pgcrond.run_xact, so that whoever closes the run after this process is gone (found
 * dead by another instance, sql_reap) can ask the server whether it committed instead of
 * retrying work that is done. Notes gather while a statement is in flight and go in one
 * statement; a run's row is deleted once its history row is written with its end (the
 * closing instance no longer needs it), so the table holds the runs under way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "cluster_priv.h"
#include "log.h"
#include "pgconn.h"

/* $2: lines "run_key TAB xid TAB server"; an empty xid deletes the run's row. A run's last
 * line decides. */
const char cluster_sql_xact[] =
    "WITH v AS (SELECT DISTINCT ON (k) k, x, s FROM (SELECT"
    "  pg_catalog.split_part(l, E'\\t', 1) AS k,"
    "  NULLIF(pg_catalog.split_part(l, E'\\t', 2), '')::pg_catalog.int8 AS x,"
    "  pg_catalog.split_part(l, E'\\t', 3) AS s, i"
    "  FROM pg_catalog.unnest(pg_catalog.string_to_array($2, E'\\n')) WITH ORDINALITY AS u(l, i)"
    "  WHERE l OPERATOR(pg_catalog.<>) '') w ORDER BY k, i DESC),"
    " gone AS (DELETE FROM pgcrond.run_xact r USING v"
    "  WHERE r.instance OPERATOR(pg_catalog.=) $1 AND r.run_key OPERATOR(pg_catalog.=) v.k"
    "   AND v.x IS NULL),"
    /* what a process that died before its runs' ends were written left (two days) */
    " old AS (DELETE FROM pgcrond.run_xact r WHERE r.noted_at OPERATOR(pg_catalog.<)"
    "  (pg_catalog.now() OPERATOR(pg_catalog.-) interval '2 days'))"
    " INSERT INTO pgcrond.run_xact AS r (instance, run_key, xid, server)"
    " SELECT $1, v.k, v.x, v.s FROM v WHERE v.x IS NOT NULL"
    " ON CONFLICT (instance, run_key) DO UPDATE SET xid = EXCLUDED.xid,"
    "  server = EXCLUDED.server, noted_at = pg_catalog.now()";

struct xact_key {
	struct strmap_node node;
	char key[];
};

static void note(struct cluster *c, const char *key, const char *xid, const char *server)
{
	size_t need = strlen(key) + strlen(xid) + strlen(server) + 4;
	if (c->xact_len + need > c->xact_cap) {
		size_t cap = c->xact_cap ? c->xact_cap * 2 : 4096;
		while (cap < c->xact_len + need)
			cap *= 2;
		char *b = realloc(c->xact_buf, cap);
		if (!b)
			return; /* the run is then closed as before: failed, and retried */
		c->xact_buf = b;
		c->xact_cap = cap;
	}
	c->xact_len += (size_t)snprintf(c->xact_buf + c->xact_len, c->xact_cap - c->xact_len,
	                                "%s\t%s\t%s\n", key, xid, server);
	cluster_kick(c);
}

/* Text that the lines' format cannot carry is not noted. */
static bool plain(const char *s)
{
	return s && !strpbrk(s, "\t\n");
}

void cluster_note_xact(struct cluster *c, const char *run_key, const char *xid, const char *server)
{
	if (!c || !c->xact_table || !plain(run_key))
		return;
	struct strmap_node *n = strmap_find(&c->xact_keys, run_key);
	if (!xid || !server) { /* the id is not the run's after all */
		if (n)
			note(c, run_key, "", "");
		return;
	}
	if (!plain(xid) || !plain(server))
		return;
	if (!n) {
		size_t len = strlen(run_key) + 1;
		struct xact_key *k = malloc(sizeof(*k) + len);
		if (!k)
			return;
		memcpy(k->key, run_key, len);
		strmap_insert(&c->xact_keys, &k->node, k->key);
	}
	note(c, run_key, xid, server);
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
		note(c, run_key, "", "");
}

bool cluster_xact_send(struct cluster *c)
{
	if (!c->xact_len || !c->xact_table)
		return false;
	const char *p[] = {c->instance, c->xact_buf};
	c->xact_buf[c->xact_len] = '\0'; /* there is room: each line was written with its NUL */
	cluster_send_stmt(c, OP_XACT, cluster_sql_xact, 2, p);
	c->xact_len = 0;
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
	log_warning("cluster: cannot write runs' transaction ids (pgcrond.run_xact): %s; a run "
	            "closed by another instance after this one died is retried even if it "
	            "committed",
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
