/* Items written in capped batches, put back on failure (see jbatch.h). */
#include "jbatch.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "notify.h"
#include "pgconn.h"

#define BATCH_OF(it) ((struct jbatch *)((char *)(it)-offsetof(struct jbatch, item)))

void jbatch_free(struct jbatch *b)
{
	json_decref(b->waiting);
	json_decref(b->sending);
	b->waiting = b->sending = NULL;
}

char *jbatch_take(struct jbatch *b)
{
	size_t n = json_array_size(b->waiting), k = 0, bytes = 2; /* [] */
	while (k < n && k < b->max_items) {
		size_t len = json_dumpb(json_array_get(b->waiting, k), NULL, 0, JSON_COMPACT) + 1;
		if (k > 0 && bytes + len > b->max_bytes)
			break;
		bytes += len;
		k++;
	}
	json_t *batch = k ? json_array() : NULL, *rest = k ? json_array() : NULL;
	bool whole = batch && rest;
	for (size_t i = 0; whole && i < n; i++)
		whole = json_array_append(i < k ? batch : rest, json_array_get(b->waiting, i)) == 0;
	char *doc = whole ? json_dumps(batch, JSON_COMPACT) : NULL;
	if (!doc) {
		json_decref(batch);
		json_decref(rest);
		return NULL;
	}
	json_decref(b->waiting);
	b->waiting = rest;
	b->sending = batch;
	return doc;
}

void jbatch_unsend(struct jbatch *b)
{
	if (!b->sending)
		return;
	json_array_extend(b->sending, b->waiting);
	json_decref(b->waiting);
	b->waiting = b->sending;
	b->sending = NULL;
}

/* The next statement, unless one is in flight or queued (a retry waits), or nothing waits;
 * none while the listener is down: jbatch_lost at the connect. */
static void flush(struct jbatch *b)
{
	if (!b->sending && !b->item.queued && json_array_size(b->waiting) > 0)
		(void)notify_queue(*b->n, &b->item);
}

static void answered(struct ownsess_item *it, const struct stmtq_result *r)
{
	struct jbatch *b = BATCH_OF(it);
	const PGresult *res = r->res ? r->res : r->err_res;
	size_t n = json_array_size(b->sending);
	bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
	/* a data error (a text the database's encoding cannot hold, say) refuses an item, and
	 * would refuse it every time */
	bool refused = !ok && res && pgconn_data_error(PQresultErrorField(res, PG_DIAG_SQLSTATE));
	if (ok || (refused && n == 1)) { /* written, or the one item refused: dropped */
		json_decref(b->sending);
		b->sending = NULL;
		ownsess_item_ok(it);
		if (refused)
			b->max_items = b->full_items;
	} else {
		jbatch_unsend(b);
		if (refused) /* the half that holds the item fails again, until it goes alone */
			b->max_items = n / 2;
		else
			ownsess_queue_later(it->cl, it, OWNSESS_BACKOFF);
	}
	b->answered(b->arg, res, ok, !ok && !refused, n);
	flush(b);
}

/* The statement lost with its connection: its items wait for the next (jbatch_lost). */
static void lost(struct ownsess_item *it, const char *why)
{
	jbatch_unsend(BATCH_OF(it));
}

/* The item's turn: the oldest items, under the caps. */
static bool send_batch(struct ownsess_item *it)
{
	struct jbatch *b = BATCH_OF(it);
	char *doc = jbatch_take(b);
	const char *p[] = {doc};
	if (!doc) { /* nothing waits, or ENOMEM: tried again after the backoff */
		if (json_array_size(b->waiting))
			ownsess_queue_later(it->cl, it, OWNSESS_BACKOFF);
		return false;
	}
	(void)ownsess_push(it, 0, b->sql, 1, p);
	free(doc);
	return true;
}

int jbatch_init(struct jbatch *b, struct notify **n, const char *sql, jbatch_answer_fn answered_fn,
                void *arg)
{
	*b = (struct jbatch){.n = n, .sql = sql, .answered = answered_fn, .arg = arg};
	b->item = (struct ownsess_item){.send = send_batch, .done = answered, .lost = lost};
	b->max_items = b->full_items = JBATCH_MAX_ITEMS;
	b->max_bytes = JBATCH_MAX_BYTES;
	b->waiting = json_array();
	return b->waiting ? 0 : -ENOMEM;
}

int jbatch_add(struct jbatch *b, json_t *item)
{
	if (json_array_append_new(b->waiting, item) < 0)
		return -ENOMEM;
	flush(b);
	return 0;
}

void jbatch_lost(struct jbatch *b)
{
	jbatch_unsend(b);
	ownsess_item_ok(&b->item);
	flush(b);
}
