#ifndef PGCROND_PGNET_H
#define PGCROND_PGNET_H

/* pg_net's queue, served by the daemon (docs/sql-api.md, "pg_net's API"). Where `pgcrond
 * install` made schema "net" in the history database (sql/pg_net_compat.sql), net.http_get,
 * net.http_post and net.http_delete queue a request in net.http_request_queue, whose trigger
 * NOTIFYs pgcrond_net at commit. This module LISTENs for that on a connection of its own to
 * the history database; a notification only wakes it up: it then claims committed requests
 * (pgcrond.net_claim: deleted as they are returned, rows another instance holds skipped, so
 * each is sent once), sends them through the daemon's HTTP client, and writes each response
 * into net._http_response with the role that asked (pgcrond.net_respond), which row-level
 * security shows to that role only. It claims again after every (re)connect and once a
 * minute (the safety net for a notification sent while it did not listen), and deletes the
 * responses older than pg_net.ttl (pgcrond.net_expire) at the same pace.
 *
 * Bounded: at most PGNET_MAX_OUTSTANDING requests claimed and not yet answered in the
 * database at once; the rest wait in the queue table. Nothing here blocks the loop. */

#include <stdint.h>

struct event_base;
struct httpc;
struct pgnet;

#define PGNET_MAX_OUTSTANDING 256
#define PGNET_SWEEP_MS 60000

/* Serve the queue of the history database HISTORY_NAME (the databases key, for log lines)
 * at CONNINFO (copied) through HTTP (borrowed: it must outlive the pgnet), keeping a
 * response body up to MAX_RESPONSE bytes (http_client.pg_net_max_response): one cut there
 * keeps its start in content and says so in error_msg. */
int pgnet_new(struct event_base *base, const char *history_name, const char *conninfo,
              struct httpc *http, int64_t max_response, struct pgnet **out)
    __attribute__((warn_unused_result));
/* A reload's MAX_RESPONSE: for the requests sent from now on. */
void pgnet_configure(struct pgnet *pn, int64_t max_response);
/* Stops: requests in flight are dropped (they were claimed: they get no response row). */
void pgnet_free(struct pgnet **pn);

#endif
