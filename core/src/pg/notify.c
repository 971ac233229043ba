#include "notify.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ownsess.h"
#include "text.h"

struct notify {
	char *name;
	struct notify_callbacks cb;
	/* the database's own session (ownsess.h); the channels wanted are those its client
	 * claims (sess.channels); the owner's queries are items of its outbox (ownsess_ask) */
	struct ownsess_client sess;
	struct stmtq *q;             /* ... and its statements */
	struct ownsess_item listens; /* the LISTEN batch, an item of that outbox ... */
	bool dirty;                  /* ... due: the channels wanted differ from those sent */
	enum {
		NL_DOWN,       /* no connection (no connected() since the last failed()) */
		NL_CONNECTING, /* connected: the first LISTEN batch is not answered yet */
		NL_LISTENING,  /* that batch was answered on this connection */
	} state;
	unsigned connects;
	char **listened; /* LISTENed on this connection */
	size_t n_listened;
	struct log_complaint complaint;
};

static void free_list(char ***v, size_t *n)
{
	text_free_list(*v, *n);
	*v = NULL;
	*n = 0;
}

static bool in_list(const char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

static bool wanted(const struct notify *n, const char *channel)
{
	return in_list((const char *const *)n->sess.channels, n->sess.n_channels, channel);
}

/* The session's failed(): the connection is gone (the session reconnects); the owner's
 * queries were completed as lost, without a call. */
static bool on_conn_failed(void *arg, const char *why, bool was_ready)
{
	struct notify *n = arg;

	free_list(&n->listened, &n->n_listened);
	n->state = NL_DOWN;
	if (n->q->drv.too_old) {
		/* the one line, unless another client of the session (the cluster, on the history
		 * database) or a run's connection said it: no "reconnecting", though the session
		 * tries again, for a server replaced */
		if (conndrv_tell_too_old(&n->q->drv))
			log_error("database \"%s\": %s", n->name, why);
	} else if (n->q->schema_step < 0 && log_complain(&n->complaint, why)) {
		/* (an older schema: the history says it, ownsess_need_steps) */
		log_warning("listener on database %s lost: %s; reconnecting", n->name, why);
	}
	return true;
}

/* What a person (and a test) can tell the listener by: the channels in place now. */
static void log_listening(const struct notify *n)
{
	char list[512] = "";
	size_t len = 0;

	for (size_t i = 0; i < n->n_listened && len < sizeof(list); i++) {
		char quoted[160];
		int w = snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "",
		                 text_quote(n->listened[i], quoted, sizeof(quoted)));
		if (w < 0)
			break;
		len += (size_t)w;
	}
	if (len >= sizeof(list))
		snprintf(list + sizeof(list) - 4, 4, "...");
	log_info("listener on database %s: listening on %s", n->name, *list ? list : "nothing");
}

#define NOTIFY_OF(it) ((struct notify *)((char *)(it)-offsetof(struct notify, listens)))

/* A result of the LISTEN batch in flight (ownsess_begin's each()). */
static void listen_result(struct ownsess_item *it, PGresult *r)
{
	struct notify *n = NOTIFY_OF(it);

	if (!r)
		stmtq_end(n->q);
	else if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		(void)stmtq_note_error(n->q, r);
}

static void listen_done(struct ownsess_item *it, const struct stmtq_result *r)
{
	struct notify *n = NOTIFY_OF(it);

	if (r->failed) {
		stmtq_fail(n->q, r->err, 0);
		return;
	}
	/* the channels changed meanwhile: the next batch goes, and ends the connect if it was
	 * not over, with the new set */
	if (n->dirty)
		ownsess_queue(&n->sess, it);
	if (n->state == NL_CONNECTING && n->dirty)
		return;
	log_listening(n);
	if (n->state == NL_CONNECTING) {
		bool first = n->connects == 0;
		n->connects++;
		n->state = NL_LISTENING;
		if (log_complaint_reset(&n->complaint))
			log_notice("listener on database %s is back", n->name);
		/* the owner may change channels or queue queries from here, not free us */
		if (n->cb.on_listening)
			n->cb.on_listening(n->cb.arg, first);
	}
}

/* One batch (one transaction, so no notification falls between its statements): UNLISTEN
 * the channels LISTENed that are no longer wanted (unless another client of the session
 * wants them), then LISTEN each wanted one. Identifiers are quoted by libpq. The item's
 * send(): nothing while there is no connection or nothing changed. */
static bool send_listens(struct ownsess_item *it)
{
	struct notify *n = NOTIFY_OF(it);
	if (n->state == NL_DOWN || !n->dirty)
		return false;
	PGconn *conn = stmtq_conn(n->q);
	char *sql = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&sql, &len);
	bool ok = f != NULL;

	for (size_t i = 0; ok && i < n->n_listened; i++) {
		const char *ch = n->listened[i];
		if (wanted(n, ch) || ownsess_claimed_elsewhere(&n->sess, ch))
			continue;
		char *qid = PQescapeIdentifier(conn, ch, strlen(ch));
		ok = qid && fprintf(f, "UNLISTEN %s;", qid) > 0;
		PQfreemem(qid);
	}
	const size_t n_wanted = n->sess.n_channels;
	for (size_t i = 0; ok && i < n_wanted; i++) {
		const char *ch = n->sess.channels[i];
		char *qid = PQescapeIdentifier(conn, ch, strlen(ch));
		ok = qid && fprintf(f, "LISTEN %s;", qid) > 0;
		PQfreemem(qid);
	}
	if (f && fclose(f) != 0)
		ok = false;
	char **copy = calloc(n_wanted ? n_wanted : 1, sizeof(*copy));
	for (size_t i = 0; ok && copy && i < n_wanted; i++)
		ok = (copy[i] = strdup(n->sess.channels[i])) != NULL;
	if (!ok || !copy) {
		size_t k = n_wanted;
		if (copy)
			free_list(&copy, &k);
		free(sql);
		stmtq_fail(n->q, "out of memory", 0);
		return true;
	}
	free_list(&n->listened, &n->n_listened);
	n->listened = copy;
	n->n_listened = n_wanted;
	n->dirty = false;
	if (len == 0) { /* no channel: nothing to send */
		free(sql);
		sql = strdup("SELECT");
	}
	int sent = sql ? PQsendQuery(conn, sql) : 0;
	free(sql);
	if (!sent)
		stmtq_fail(n->q, NULL, 0);
	else
		(void)ownsess_begin(it, 0, listen_result);
	return true;
}

/* The channels changed, or a connect: the LISTEN batch, at the session's next turn. */
static void listens_due(struct notify *n)
{
	n->dirty = true;
	if (n->state != NL_DOWN)
		ownsess_queue(&n->sess, &n->listens);
}

static void on_connected(void *arg)
{
	struct notify *n = arg;

	n->state = NL_CONNECTING;
	listens_due(n);
}

static void on_notify(void *arg, const char *channel, const char *extra)
{
	struct notify *n = arg;

	if (n->cb.on_notify)
		n->cb.on_notify(n->cb.arg, channel, extra);
}

static const struct ownsess_ops sess_ops = {
    .connected = on_connected,
    .failed = on_conn_failed,
    .notify = on_notify,
};

int notify_new(struct event_base *base, const char *name, const char *conninfo,
               const struct notify_callbacks *cb, struct notify **out)
{
	struct notify *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->name = strdup(name);
	n->cb = *cb;
	n->listens = (struct ownsess_item){.send = send_listens, .done = listen_done};
	if (!n->name || ownsess_join(&n->sess, base, conninfo, &sess_ops, n) < 0) {
		notify_free(&n); /* no base yet: no events to remove */
		return -ENOMEM;
	}
	n->q = ownsess_q(&n->sess);
	*out = n;
	return 0;
}

void notify_free(struct notify **np)
{
	struct notify *n = *np;
	if (!n)
		return;
	ownsess_leave(&n->sess);
	free_list(&n->listened, &n->n_listened);
	free(n->name);
	free(n);
	*np = NULL;
}

int notify_set_channels(struct notify *n, const char *const *channels, size_t count)
{
	size_t kept = 0;

	/* a reload with the same channels leaves the session alone: no LISTEN batch, no run (a
	 * few channels: quadratic is fine) */
	for (size_t i = 0; i < count; i++)
		kept += wanted(n, channels[i]);
	if (kept == count && count == n->sess.n_channels)
		return 0;
	/* from the end: a release moves the last channel into its place */
	for (size_t i = n->sess.n_channels; i-- > 0;)
		if (!in_list(channels, count, n->sess.channels[i]))
			ownsess_release_channel(&n->sess, n->sess.channels[i]);
	for (size_t i = 0; i < count; i++)
		if (ownsess_claim_channel(&n->sess, channels[i]) < 0)
			return -ENOMEM;
	/* connected: changed in place (the UNLISTENs and the LISTENs in one transaction, so no
	 * notification falls between them); otherwise the connect sends them */
	listens_due(n);
	return 0;
}

int notify_query(struct notify *n, const char *sql, const char *const *params, int n_params,
                 notify_result_fn cb, void *arg, bool bulk)
{
	if (n->state != NL_LISTENING)
		return -ENOTCONN;
	return ownsess_ask(&n->sess, sql, n_params, params, cb, NULL, arg, bulk);
}

int notify_queue(struct notify *n, struct ownsess_item *it)
{
	if (n->state != NL_LISTENING)
		return -ENOTCONN;
	ownsess_queue(&n->sess, it);
	return 0;
}

#define READ_OF(it) ((struct notify_read *)((char *)(it)-offsetof(struct notify_read, it)))

static bool read_send(struct ownsess_item *it)
{
	struct notify_read *r = READ_OF(it);
	r->state = NOTIFY_READ_SENT;
	r->send(r);
	return true;
}

static void read_lost(struct ownsess_item *it, const char *why)
{
	READ_OF(it)->state = NOTIFY_READ_NONE; /* on_listening asks again */
}

static void read_done(struct ownsess_item *it, const struct stmtq_result *res)
{
	struct notify_read *r = READ_OF(it);
	bool again = r->state == NOTIFY_READ_AGAIN;
	r->state = NOTIFY_READ_NONE;
	if (again)
		notify_read_ask(r->n, r);
	r->done(r, res);
}

void notify_read_ask(struct notify *n, struct notify_read *r)
{
	if (r->state == NOTIFY_READ_SENT) {
		r->state = NOTIFY_READ_AGAIN;
	} else if (r->state == NOTIFY_READ_NONE) { /* down: on_listening asks again */
		r->n = n;
		r->it.send = read_send;
		r->it.done = read_done;
		r->it.lost = read_lost;
		r->state = notify_queue(n, &r->it) == 0 ? NOTIFY_READ_QUEUED : NOTIFY_READ_NONE;
	}
}
