/* Items written in capped batches, put back on failure (see jbatch.h). */
#include "jbatch.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>

#include "notify.h"
#include "pgconn.h"

static void flush(struct jbatch *b);

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flush(arg);
}

static void retry_later(struct jbatch *b)
{
	b->retry_ms = b->retry_ms ? b->retry_ms * 2 : JBATCH_RETRY_MS;
	b->retry_ms = b->retry_ms < JBATCH_RETRY_MAX_MS ? b->retry_ms : JBATCH_RETRY_MAX_MS;
	struct timeval tv = {b->retry_ms / 1000, (b->retry_ms % 1000) * 1000};
	evtimer_add(&b->retry, &tv);
}

int jbatch_init(struct jbatch *b, struct event_base *base, struct notify **n, const char *sql,
                jbatch_answer_fn answered, void *arg)
{
	*b = (struct jbatch){.n = n, .sql = sql, .answered = answered, .arg = arg};
	b->max_items = b->full_items = JBATCH_MAX_ITEMS;
	b->max_bytes = JBATCH_MAX_BYTES;
	evtimer_assign(&b->retry, base, retry_cb, b);
	b->waiting = json_array();
	return b->waiting ? 0 : -ENOMEM;
}

void jbatch_free(struct jbatch *b)
{
	if (event_initialized(&b->retry))
		event_del(&b->retry);
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

static void answered(void *arg, const PGresult *res)
{
	struct jbatch *b = arg;
	size_t n = json_array_size(b->sending);
	bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
	/* a data error (a text the database's encoding cannot hold, say) refuses an item, and
	 * would refuse it every time */
	bool refused = !ok && res && pgconn_data_error(PQresultErrorField(res, PG_DIAG_SQLSTATE));
	if (ok || (refused && n == 1)) { /* written, or the one item refused: dropped */
		json_decref(b->sending);
		b->sending = NULL;
		b->retry_ms = 0;
		if (refused)
			b->max_items = b->full_items;
	} else {
		jbatch_unsend(b);
		if (refused) /* the half that holds the item fails again, until it goes alone */
			b->max_items = n / 2;
		else
			retry_later(b);
	}
	b->answered(b->arg, res, ok, !ok && !refused, n);
	flush(b);
}

/* The next statement, unless one is in flight, a retry waits, or nothing does. */
static void flush(struct jbatch *b)
{
	if (b->sending || evtimer_pending(&b->retry, NULL) || json_array_size(b->waiting) == 0)
		return;
	char *doc = jbatch_take(b);
	const char *p[] = {doc};
	int rc = doc ? notify_query(*b->n, b->sql, p, 1, answered, b) : -ENOMEM;
	free(doc);
	if (rc < 0) {
		jbatch_unsend(b);
		if (rc != -ENOTCONN) /* the session's queue full, or ENOMEM; down: at the connect */
			retry_later(b);
	}
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
	event_del(&b->retry);
	b->retry_ms = 0;
	flush(b);
}
