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

/* SQL, on the listening session of the history database (pinned search_path, and every name
 * qualified all the same): claim request $1 for instance $2, or ($1) up to a batch of
 * unclaimed ones (what came while nobody listened), each answering its id, job, force,
 * requester, whether it waited past its expiry and its action; record the outcomes of a JSON array
 * of {id, outcome} ($1; the last of an id's wins), each announced on
 * PGCROND_TRIGGER_OUTCOME_CHANNEL (history.h). */
#define TRIGGERS_REQUEST_EXPIRY "1 hour"
#define TRIGGERS_SWEEP_BATCH_TEXT "1000"
#define TRIGGERS_SQL_CLAIMED                                                                       \
	" RETURNING id, job_name, force, requested_by, requested_at OPERATOR(pg_catalog.<)"        \
	" (pg_catalog.now() OPERATOR(pg_catalog.-) interval '" TRIGGERS_REQUEST_EXPIRY "'),"       \
	" pg_catalog.to_jsonb(trigger_request.*) OPERATOR(pg_catalog.->>) 'action'"
/* (the request's action, schema step 28: 'drop' its job's waiting runs, pgcrond.drop_waiting;
 * NULL before that step, a run like 'run') */
#define TRIGGERS_SQL_CLAIM_ONE                                                                     \
	"UPDATE pgcrond.trigger_request SET claimed_by = $2, claimed_at = pg_catalog.now()"        \
	" WHERE id OPERATOR(pg_catalog.=) $1::pg_catalog.int8"                                     \
	" AND claimed_at IS NULL" TRIGGERS_SQL_CLAIMED
#define TRIGGERS_SQL_CLAIM_ALL                                                                     \
	"UPDATE pgcrond.trigger_request SET claimed_by = $1, claimed_at = pg_catalog.now()"        \
	" WHERE id OPERATOR(pg_catalog.=) ANY (SELECT id FROM pgcrond.trigger_request"             \
	"  WHERE claimed_at IS NULL ORDER BY id LIMIT " TRIGGERS_SWEEP_BATCH_TEXT                  \
	"  FOR UPDATE SKIP LOCKED)" TRIGGERS_SQL_CLAIMED
/* (the rows' lock is waited for 2 s at most, set in the statement's own transaction before
 * its UPDATE reads a row: a role holding them makes it fail and be sent again later, not keep
 * the session past its connection check) */
#define TRIGGERS_SQL_OUTCOMES                                                                      \
	"WITH o AS (SELECT DISTINCT ON (o.id) o.id, o.outcome"                                     \
	" FROM pg_catalog.set_config('lock_timeout', '2s', true) AS lt, ROWS FROM ("               \
	"  pg_catalog.jsonb_to_recordset($1::pg_catalog.jsonb)"                                    \
	"  AS (id pg_catalog.int8, outcome pg_catalog.text))"                                      \
	"  WITH ORDINALITY AS o(id, outcome, n) ORDER BY o.id, o.n DESC),"                         \
	" u AS (UPDATE pgcrond.trigger_request t SET outcome = o.outcome FROM o"                   \
	"  WHERE t.id OPERATOR(pg_catalog.=) o.id RETURNING t.id, t.outcome)"                      \
	" SELECT pg_catalog.count(pg_catalog.pg_notify('" PGCROND_TRIGGER_OUTCOME_CHANNEL "',"     \
	"  u.id OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) u.outcome)) FROM u"

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
