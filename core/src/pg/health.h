#ifndef PGCROND_HEALTH_H
#define PGCROND_HEALTH_H

/* Does the history database answer? The question /health asks (http.c). The check is a
 * SELECT 1 on the database's own session (ownsess.h), the one the history writes on, with a
 * deadline: a server that is down, refuses, or is stopped (its TCP connection still open)
 * all answer "no" within HEALTH_TIMEOUT_MS. A session down is connected again at once for
 * the check rather than after its backoff. Checks asked while one is under way share its
 * SELECT 1, and an answer is reused for HEALTH_REUSE_MS, so a busy load balancer costs one
 * query a second at most. Fully asynchronous on the daemon's event_base.
 *
 * The SELECT 1 waits its turn behind the statements already in flight or waiting on the
 * session, and takes one turn: it neither jumps ahead of the history's batches nor lets a
 * stream of them push it back. Behind a history statement that runs past HEALTH_TIMEOUT_MS
 * the answer is "no", with the same message as for a silent server: the database did not
 * answer pgcrond within the deadline, and on one session a long statement and a hung server
 * look the same until the statement's own deadline gives the connection up. The check's
 * deadline gives nothing up: the SELECT 1 stays queued and its late answer is kept as the
 * newest one. */

#include <stdbool.h>

struct event_base;
struct health;

#define HEALTH_TIMEOUT_MS 2000
#define HEALTH_REUSE_MS 1000

/* CONNINFO (copied) of the history database, whose own session the check joins. */
int health_new(struct event_base *base, const char *conninfo, struct health **out)
    __attribute__((warn_unused_result));
/* Checks under way are answered "no" (pgcrond is shutting down) first. */
void health_free(struct health **h);

/* FN(ARG, OK, WHY) once: WHY says what went wrong when not OK (never a password), else "".
 * Called at once when a recent answer is reused, else from the loop. -ENOMEM. */
typedef void (*health_fn)(void *arg, bool ok, const char *why);
int health_check(struct health *h, health_fn fn, void *arg) __attribute__((warn_unused_result));

#endif
