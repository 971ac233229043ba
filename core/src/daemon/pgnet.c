/* pg_net's queue, served by the daemon (see pgnet.h). */
#include "pgnet.h"

#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "httpc.h"
#include "jbatch.h"
#include "log.h"
#include "notify.h"
#include "pgconn.h"
#include "text.h"

#define CHANNEL "pgcrond_net"
/* requests claimed by one statement at most */
#define CLAIM_BATCH 100
/* responses older than pg_net.ttl deleted by one statement at most */
#define EXPIRE_BATCH "10000"

struct pgnet_req {
	struct pgnet *pn;
	struct httpc_call *call;
	LIST_ENTRY(pgnet_req) link; /* in its pgnet's reqs */
	long long id;
	char *username;
};

struct pgnet {
	struct notify *n;
	struct httpc *http;
	struct event sweep;
	LIST_HEAD(, pgnet_req) reqs; /* in flight */
	struct jbatch done;          /* responses to write to the database */
	unsigned outstanding;        /* claimed, and not yet answered in the database */
	int64_t max_response;        /* bytes of a body kept (pgnet_configure) */
	bool claiming, claim_again, expiring;
	struct log_complaint complaint;
};

static void claim(struct pgnet *pn);

/* S (LEN bytes) as a JSON string: a byte that is not UTF-8, and NUL (which text cannot
 * hold), as U+FFFD. NULL on ENOMEM. */
static json_t *json_text(const char *s, size_t len)
{
	char *out = malloc(len * 3 + 1);
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0, ok = 0; i < len; i++, ok--) {
		if (ok == 0) /* the bytes valid from here; 0: s[i] is not */
			ok = text_utf8_invalid_at(s + i, len - i) + 1;
		if (ok == 1 || s[i] == '\0') {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
		} else {
			out[o++] = s[i];
		}
	}
	json_t *j = json_stringn(out, o);
	free(out);
	return j;
}

/* The response's header block as a JSON object, as pg_net keeps it: name to value, the last
 * of a repeated name. */
static json_t *headers_json(const char *h, size_t len)
{
	json_t *o = json_object();
	size_t i = 0;
	bool first = true;

	if (!o)
		return NULL;
	while (i < len) {
		size_t e = i;
		while (e < len && h[e] != '\n')
			e++;
		size_t end = e;
		if (end > i && h[end - 1] == '\r')
			end--;
		const char *colon = memchr(h + i, ':', end - i);
		if (!first && colon) {
			size_t nl = (size_t)(colon - (h + i));
			const char *v = colon + 1;
			while (v < h + end && (*v == ' ' || *v == '\t'))
				v++;
			size_t vl = (size_t)(h + end - v);
			while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			json_t *name = json_text(h + i, nl), *val = json_text(v, vl);
			if (name && val)
				json_object_set(o, json_string_value(name), val);
			json_decref(name);
			json_decref(val);
		}
		first = false;
		i = e + 1;
	}
	return o;
}

/* R (a response, or NULL: none) as a row of net._http_response for request ID of USERNAME;
 * ERROR, or R's reason, in error_msg when there is no response. A body cut at the limit is
 * kept and said in error_msg: pg_net stores a body whole, so a row must not look whole when
 * it is not. */
static void add_response(struct pgnet *pn, long long id, const char *username,
                         const struct httpc_response *r, const char *error)
{
	json_t *o = json_object(); /* NULL (ENOMEM): each set fails, and so does the add */

	json_object_set_new(o, "id", json_integer(id));
	json_object_set_new(o, "username", json_string(username));
	if (r && r->result == HTTPC_OK) {
		json_object_set_new(o, "status_code", json_integer(r->status));
		if (r->content_type)
			json_object_set_new(o, "content_type",
			                    json_text(r->content_type, strlen(r->content_type)));
		json_object_set_new(o, "headers", headers_json(r->headers, r->headers_len));
		if (r->body_len > 0)
			json_object_set_new(o, "content", json_text(r->body, r->body_len));
		json_object_set_new(o, "timed_out", json_false());
		if (r->truncated) {
			char msg[400];
			snprintf(
			    msg, sizeof(msg),
			    "the response body was cut at %lld bytes "
			    "(http_client.pg_net_max_response): content holds its start, the "
			    "rest was not read; raise pg_net_max_response in pgcrond.conf (at most "
			    "64MB), or ask the server for less",
			    (long long)r->body_len);
			json_object_set_new(o, "error_msg", json_string(msg));
		}
	} else {
		json_object_set_new(o, "timed_out", json_boolean(r && r->result == HTTPC_TIMEOUT));
		const char *msg = error ? error : r ? r->reason : "error";
		json_object_set_new(o, "error_msg", json_text(msg, strlen(msg)));
	}
	if (jbatch_add(&pn->done, o) < 0) {
		log_error("pg_net request %lld: out of memory; its response is lost", id);
		pn->outstanding -= pn->outstanding > 0; /* answered, as far as it goes */
	}
}

static void req_unlink(struct pgnet_req *q)
{
	LIST_REMOVE(q, link);
	free(q->username);
	free(q);
}

static void on_done(void *arg, const struct httpc_response *r)
{
	struct pgnet_req *q = arg;
	struct pgnet *pn = q->pn;

	add_response(pn, q->id, q->username, r, NULL);
	req_unlink(q);
}

/* The request headers (a JSON object, pg_net's) as "Name: value" lines into HDRS (N of
 * them, each malloc'd); NULL on success, else why the request is not sent. */
static const char *header_lines(const char *json, char ***hdrs, size_t *n)
{
	json_t *o = json ? json_loads(json, JSON_DECODE_ANY, NULL) : NULL;
	const char *k;
	json_t *v;
	const char *why = NULL;

	*hdrs = NULL;
	*n = 0;
	if (!o || json_is_null(o)) {
		json_decref(o);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		return "headers must be a JSON object";
	}
	*hdrs = calloc(json_object_size(o) + 1, sizeof(char *));
	if (!*hdrs) {
		json_decref(o);
		return "out of memory";
	}
	json_object_foreach(o, k, v)
	{
		/* a string as it is, any other value as its JSON */
		char *dumped =
		    json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		const char *val = dumped ? dumped : json_string_value(v);
		char *line = NULL;
		if (val && (strpbrk(k, "\r\n:") || !*k || strpbrk(val, "\r\n")))
			why = "a header name or value holds a line break (or the name a colon, or "
			      "is empty); the request was not sent";
		else if (!val || asprintf(&line, "%s: %s", k, val) < 0)
			why = "out of memory";
		free(dumped);
		if (why)
			break;
		(*hdrs)[(*n)++] = line;
	}
	json_decref(o);
	return why;
}

static void send_row(struct pgnet *pn, const PGresult *res, int i)
{
	long long id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	const char *method = PQgetvalue(res, i, 1), *url = PQgetvalue(res, i, 2);
	const char *username = PQgetvalue(res, i, 6);
	char **hdrs = NULL;
	size_t n_hdrs = 0, body_len = 0;
	unsigned char *body = NULL;
	const char *why =
	    header_lines(PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3), &hdrs, &n_hdrs);
	struct pgnet_req *q = NULL;

	pn->outstanding++;
	if (!why && !PQgetisnull(res, i, 4)) {
		body = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 4), &body_len);
		if (!body)
			why = "out of memory";
	}
	if (!why && (!(q = calloc(1, sizeof(*q))) || !(q->username = strdup(username))))
		why = "out of memory";
	if (why) {
		free(q);
		add_response(pn, id, username, NULL, why);
		goto out;
	}
	char m[16];
	snprintf(m, sizeof(m), "%s", method);
	for (char *c = m; *c; c++)
		*c = (char)toupper((unsigned char)*c);
	long long t = strtoll(PQgetvalue(res, i, 5), NULL, 10);
	struct httpc_request rq = {.method = m,
	                           .url = url,
	                           .headers = (const char *const *)hdrs,
	                           .n_headers = n_hdrs,
	                           .body = body,
	                           .body_len = body_len,
	                           .timeout_ms = t > 0 ? t : 0,
	                           .max_response = pn->max_response,
	                           .on_done = on_done,
	                           .arg = q};
	q->pn = pn;
	q->id = id;
	LIST_INSERT_HEAD(&pn->reqs, q, link);
	if (httpc_submit(pn->http, &rq, &q->call) < 0) {
		add_response(pn, id, username, NULL, "out of memory");
		req_unlink(q);
	}
out:
	text_free_list(hdrs, n_hdrs);
	PQfreemem(body);
}

static void on_claimed(void *arg, const PGresult *res)
{
	struct pgnet *pn = arg;
	char why[512];

	pn->claiming = false;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		if (log_complain(&pn->complaint, NULL))
			log_error("cannot read pg_net's queue (pgcrond.net_claim): %s",
			          res ? pgconn_result_error(res, why, sizeof(why)) : "no result");
		return;
	}
	log_complaint_reset(&pn->complaint);
	int n = PQntuples(res);
	for (int i = 0; i < n; i++)
		send_row(pn, res, i);
	if (n > 0)
		log_debug("pg_net: %d request%s claimed", n, n == 1 ? "" : "s");
	if (n >= CLAIM_BATCH || pn->claim_again) {
		pn->claim_again = false;
		claim(pn);
	}
}

static void claim(struct pgnet *pn)
{
	char nbuf[16];
	unsigned room = PGNET_MAX_OUTSTANDING - pn->outstanding;

	if (pn->claiming || room == 0) {
		pn->claim_again = true;
		return;
	}
	snprintf(nbuf, sizeof(nbuf), "%u", room < CLAIM_BATCH ? room : CLAIM_BATCH);
	const char *p[] = {nbuf};
	if (notify_query(pn->n,
	                 "SELECT id, method, url, headers, body, timeout_milliseconds, username"
	                 " FROM pgcrond.net_claim($1::pg_catalog.int4)",
	                 p, 1, on_claimed, pn, false) == 0)
		pn->claiming = true;
}

static void on_written(void *arg, const PGresult *res, bool ok, bool kept, size_t n)
{
	struct pgnet *pn = arg;
	char why[512];

	if (!ok && !kept) { /* a response the database refuses for its data: dropped, said */
		log_error("pg_net: a response cannot be written to net._http_response (%s); "
		          "dropped: its request stays without a response",
		          pgconn_result_error(res, why, sizeof(why)));
	} else if (!ok) {
		/* refused (a role holding net._http_response's lock past lock_timeout): kept, and
		 * written after a delay, or at the next connect */
		if (log_complain(&pn->complaint, NULL))
			log_error(
			    "pg_net: %zu response%s could not be written to net._http_response "
			    "(%s); trying again",
			    n, n == 1 ? "" : "s",
			    res ? pgconn_result_error(res, why, sizeof(why)) : "no answer");
		return;
	}
	pn->outstanding -= n < pn->outstanding ? (unsigned)n : pn->outstanding;
	if (pn->claim_again) {
		pn->claim_again = false;
		claim(pn);
	}
}

static void on_expired(void *arg, const PGresult *res)
{
	struct pgnet *pn = arg;
	pn->expiring = false;
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    atoi(PQgetvalue(res, 0, 0)) > 0)
		log_debug("pg_net: %s expired response%s deleted", PQgetvalue(res, 0, 0),
		          strcmp(PQgetvalue(res, 0, 0), "1") == 0 ? "" : "s");
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pgnet *pn = arg;
	claim(pn);
	if (!pn->expiring && notify_query(pn->n, "SELECT pgcrond.net_expire(" EXPIRE_BATCH ")",
	                                  NULL, 0, on_expired, pn, false) == 0)
		pn->expiring = true;
}

static void on_notify(void *arg, const char *channel, const char *payload)
{
	(void)payload; /* any role may NOTIFY: only a wake-up, the queue table decides */
	claim(arg);
}

static void on_listening(void *arg, bool first)
{
	struct pgnet *pn = arg;
	/* queries queued on a lost connection were dropped without a call */
	pn->claiming = pn->expiring = false;
	claim(pn);
	jbatch_lost(&pn->done); /* written or not: tried again (a response twice beats none) */
}

int pgnet_new(struct event_base *base, const char *history_name, const char *conninfo,
              struct httpc *http, int64_t max_response, struct pgnet **out)
{
	struct pgnet *pn = calloc(1, sizeof(*pn));
	const char *channels[] = {CHANNEL};
	struct timeval tv = {PGNET_SWEEP_MS / 1000, (PGNET_SWEEP_MS % 1000) * 1000};

	*out = NULL;
	if (!pn ||
	    jbatch_init(&pn->done, &pn->n, "SELECT pgcrond.net_respond($1::pg_catalog.jsonb)",
	                on_written, pn) < 0) {
		free(pn);
		return -ENOMEM;
	}
	pn->http = http;
	pn->max_response = max_response;
	event_assign(&pn->sweep, base, -1, EV_PERSIST, sweep_cb, pn);
	struct notify_callbacks cb = {
	    .on_notify = on_notify, .on_listening = on_listening, .arg = pn};
	int rc = notify_new(base, history_name, conninfo, &cb, &pn->n);
	if (rc == 0)
		rc = notify_set_channels(pn->n, channels, 1);
	if (rc == 0 && event_add(&pn->sweep, &tv) < 0)
		rc = -ENOMEM;
	if (rc < 0) {
		pgnet_free(&pn);
		return rc;
	}
	*out = pn;
	return 0;
}

void pgnet_configure(struct pgnet *pn, int64_t max_response)
{
	pn->max_response = max_response;
}

void pgnet_free(struct pgnet **pnp)
{
	struct pgnet *pn = *pnp;
	if (!pn)
		return;
	if (event_initialized(&pn->sweep))
		event_del(&pn->sweep);
	for (struct pgnet_req *q; (q = LIST_FIRST(&pn->reqs));) {
		httpc_drop(&q->call);
		req_unlink(q);
	}
	notify_free(&pn->n);
	jbatch_free(&pn->done);
	free(pn);
	*pnp = NULL;
}
