#ifndef PGCROND_TRIGGERS_H
#define PGCROND_TRIGGERS_H

/* Event triggers: the LISTEN side of the daemon. One notify.c listener per database, on the
 * union of the channels its jobs `listen` on (plus pgcrond_trigger on the history database,
 * for manual runs: a notification there carries the id of a row of pgcrond.trigger_request,
 * which only pgcrond.trigger() writes; the daemon claims the row on the listening session
 * and runs the job it names, a disabled one only with force. After each connect it also
 * claims the requests made while it did not listen. Refusals are logged rate-limited.) A
 * notification is debounced per job (debounce.h): the job runs after `debounce` of quiet, never
 * later than `max_delay` after the first unserved one, with the payloads gathered meanwhile.
 * Oversized or malformed payloads are logged and dropped. After a listener RE-connects, each of its
 * jobs runs once without payloads (a full refresh): notifications sent while nobody listened are
 * gone. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct pgc_config;
struct sched;
struct triggers;

/* INSTANCE (copied) names this daemon in the claimed_by column of manual requests. */
int triggers_new(struct event_base *base, struct sched *s, const char *instance,
                 struct triggers **out) __attribute__((warn_unused_result));
/* Listen as CFG says (borrowed only during the call). A job that keeps its name, database
 * and channel keeps its gathered notifications; a database whose conninfo changed gets a
 * new connection. 0 or -ENOMEM. */
int triggers_apply(struct triggers *t, const struct pgc_config *cfg)
    __attribute__((warn_unused_result));
void triggers_free(struct triggers **t);

/* Job NAME has notifications gathered and not yet handed to the scheduler (debouncing):
 * true with their payload count and when its run is due (wall clock, Unix µs). */
bool triggers_job_pending(const struct triggers *t, const char *name, size_t *n_payloads,
                          int64_t *due_us);

#endif
