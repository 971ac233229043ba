/* The listener's replies (http_priv.h), with the headers every reply carries, and what its
 * routes and the page's sessions ask of a request: its peer, a secret compared. */
#include "http_priv.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Send BUF (may be NULL: an empty body) with the headers every reply carries. */
void http_reply_buf(struct evhttp_request *req, int code, const char *reason, const char *type,
                    struct evbuffer *buf)
{
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	evhttp_add_header(hdr, "Content-Type", type);
	evhttp_add_header(hdr, "Cache-Control", "no-store");
	evhttp_add_header(hdr, "X-Content-Type-Options", "nosniff");
	evhttp_send_reply(req, code, reason, buf);
}

void http_reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                const char *body, size_t len)
{
	struct evbuffer *buf = evbuffer_new();
	if (buf)
		evbuffer_add(buf, body, len);
	http_reply_buf(req, code, reason, type, buf);
	if (buf)
		evbuffer_free(buf);
}

/* Reply with J (taken) as JSON. */
void http_reply_json(struct evhttp_request *req, int code, const char *reason, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text) {
		http_reply(req, 500, "Internal Server Error", "text/plain; charset=utf-8",
		           "out of memory\n", 14);
		return;
	}
	http_reply(req, code, reason, "application/json", text, strlen(text));
	free(text);
}

void http_reply_error(struct evhttp_request *req, int code, const char *reason, const char *message)
{
	http_reply_json(req, code, reason, json_pack("{s:s}", "error", message));
}

/* Compare without an early exit, so the time taken tells nothing of the token. */
bool http_same_secret(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;
	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return diff == 0;
}

const char *http_peer(struct evhttp_request *req)
{
	char *peer = NULL;
	ev_uint16_t port = 0;
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	if (c)
		evhttp_connection_get_peer(c, &peer, &port);
	return peer ? peer : "?";
}
