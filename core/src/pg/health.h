#ifndef PGCROND_HEALTH_H
#define PGCROND_HEALTH_H

/* Does the history database answer? The question /health asks (http.c). A connection of
 * its own (application_name "pgcrond health"), kept between checks, runs SELECT 1 with a
 * deadline: a server that is down, refuses, or is stopped (its TCP connection still open)
 * all answer "no" within HEALTH_TIMEOUT_MS. Checks asked while one is under way share it,
 * and an answer is reused for HEALTH_REUSE_MS, so a busy load balancer costs one query a
 * second at most. Fully asynchronous on the daemon's event_base. */

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct health;

#define HEALTH_TIMEOUT_MS 2000
#define HEALTH_REUSE_MS 1000

/* CONNINFO (copied) of the history database. */
int health_new(struct event_base *base, const char *conninfo, struct health **out)
    __attribute__((warn_unused_result));
/* Checks under way are answered "no" (pgcrond is shutting down) first. */
void health_free(struct health **h);

/* FN(ARG, OK, WHY) once: WHY says what went wrong when not OK (never a password), else "".
 * Called at once when a recent answer is reused, else from the loop. -ENOMEM. */
typedef void (*health_fn)(void *arg, bool ok, const char *why);
int health_check(struct health *h, health_fn fn, void *arg) __attribute__((warn_unused_result));

#endif
