#ifndef PGCROND_JBATCH_H
#define PGCROND_JBATCH_H

/* Items (JSON objects) an owner writes to the database on pgcrond's own session, in
 * batches, each statement an item of the session's outbox (ownsess.h, through the owner's
 * listener: notify_queue): one statement in flight at a time, holding the oldest items
 * waiting, at most JBATCH_MAX_ITEMS of them and JBATCH_MAX_BYTES of their JSON (an item
 * larger than that goes alone), so a backlog after an outage never makes a jsonb past the
 * server's or libpq's limits. The items of a statement that fails, or whose connection is
 * lost before its answer, go back in front of those added since and are sent again: at once
 * on a new connection, after a failure following the session's backoff (ownsess_queue_later).
 * A statement the server refuses for its data (SQLSTATE
 * classes 21-23, 54000) is halved at once instead, until the item refused goes alone and is dropped
 * (its owner says so). Any other item is written at least once, in order. The manual
 * triggers' outcomes (triggers.c) and pg_net's responses (pgnet.c) go this way. */

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "ownsess.h"

struct notify;

#define JBATCH_MAX_ITEMS 1000
#define JBATCH_MAX_BYTES (8 << 20)

/* Each statement's answer, after its N items were written (OK), put back (KEPT) or refused
 * for their data and dropped (neither): RES is its result, its error result, or NULL (no
 * answer; valid during the call only). */
typedef void (*jbatch_answer_fn)(void *arg, const PGresult *res, bool ok, bool kept, size_t n);

struct jbatch {
	struct notify **n; /* the owner's session, borrowed (the owner may replace it) */
	const char *sql;   /* a constant: $1 is the batch, a jsonb array of items */
	jbatch_answer_fn answered;
	void *arg;
	size_t max_items, max_bytes; /* JBATCH_MAX_ITEMS and JBATCH_MAX_BYTES (a test's own) */
	size_t full_items;           /* max_items while no item is being refused */
	json_t *waiting, *sending;   /* sending: the items of the statement in flight, or NULL */
	struct ownsess_item item;    /* the next statement; queued: nothing else goes */
};

/* B (in its owner) set up, with nothing waiting. -ENOMEM. */
int jbatch_init(struct jbatch *b, struct notify **n, const char *sql, jbatch_answer_fn answered,
                void *arg) __attribute__((warn_unused_result));
void jbatch_free(struct jbatch *b);

/* ITEM (stolen, also on failure) waits for the next statement, which goes at once if none is
 * in flight. -ENOMEM. */
int jbatch_add(struct jbatch *b, json_t *item) __attribute__((warn_unused_result));
/* The session reconnected (call it from on_listening): the statement in flight, dropped
 * without an answer, is put back, the delay forgotten, and the next statement sent. */
void jbatch_lost(struct jbatch *b);

/* The steps without the session, for the unit test: the next statement's document (malloc'd;
 * NULL: nothing waits, or ENOMEM) with its items moved to SENDING; and SENDING put back in
 * front of the items waiting. */
char *jbatch_take(struct jbatch *b) __attribute__((warn_unused_result));
void jbatch_unsend(struct jbatch *b);

#endif
