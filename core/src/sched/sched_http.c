/* An HTTP job's run (docs/jobs.md, "HTTP jobs"): its request goes through the HTTP client
 * (net/httpc.h) instead of the executor, and its end goes through the same run_end() as a
 * SQL run's: one history row, retries, alerts. The history and the log get the method and
 * the URL's scheme, host and port only (httpc_url_shown: user info, path and query may be
 * credentials), and never a header. */
#include <stdio.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpc.h"
#include "log.h"
#include "sched.h"
#include "sched_flow_priv.h"
#include "sched_priv.h"
#include "text.h"

/* Bytes of the response body shown in return_message. */
#define BODY_SHOWN 200

/* The start of BODY as text for a history row: valid UTF-8 (a byte that is not is shown as
 * U+FFFD), control characters as spaces. Returns whether BODY had bytes that are not UTF-8. */
static bool body_text(const char *body, size_t len, char *out, size_t outlen)
{
	size_t o = 0, i = 0;
	bool bad = false;

	if (len > BODY_SHOWN)
		len = text_utf8_prefix(body, len, BODY_SHOWN);
	while (i < len && o + 4 < outlen) {
		size_t ok = text_utf8_invalid_at(body + i, len - i);
		for (size_t k = 0; k < ok && o + 1 < outlen; k++) {
			unsigned char ch = (unsigned char)body[i + k];
			out[o++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
		}
		i += ok;
		if (i < len) {
			bad = true;
			out[o++] = (char)0xef;
			out[o++] = (char)0xbf;
			out[o++] = (char)0xbd;
			i++;
		}
	}
	out[o] = '\0';
	text_utf8_trim(out);
	return bad;
}

static bool expected(const struct conf_http_call *h, int status)
{
	if (!h || h->n_expect == 0)
		return status >= 200 && status <= 299;
	for (size_t i = 0; i < h->n_expect; i++)
		if (h->expect[i] == status)
			return true;
	return false;
}

void sched_http_outcome(const struct run *r, const struct httpc_response *resp,
                        struct flow_outcome *out, char *msg, size_t msglen)
{
	/* the job's expect as configured now (a reload may have changed it; removed: 2xx) */
	const struct conf_http_call *h = r->job->conf->http;
	char body[BODY_SHOWN * 3 + 8], exp[64] = "";
	struct flow_outcome fo = {.message = msg};

	if (resp->result == HTTPC_OK) {
		bool bad = body_text(resp->body, resp->body_len, body, sizeof(body));
		fo.ok = expected(h, resp->status);
		if (!fo.ok && h && h->n_expect) {
			size_t o = 0;
			for (size_t i = 0; i < h->n_expect && o + 8 < sizeof(exp); i++)
				o += (size_t)snprintf(exp + o, sizeof(exp) - o, "%s%d",
				                      i ? ", " : "", h->expect[i]);
		}
		/* a 5xx is the server's trouble of the moment, like a lost connection */
		fo.transient = !fo.ok && resp->status >= 500;
		snprintf(
		    msg, msglen, "HTTP %d%s%s%s%s%s%s%s", resp->status, fo.ok ? "" : " (expected ",
		    fo.ok    ? ""
		    : exp[0] ? exp
		             : "2xx",
		    fo.ok ? "" : ")", resp->body_len ? ": " : "", body,
		    resp->truncated ? " [response over http_client.max_response, cut off]" : "",
		    bad ? " [the body is not UTF-8: invalid bytes shown as U+FFFD]" : "");
	} else {
		fo.timed_out = resp->result == HTTPC_TIMEOUT;
		fo.cancelled = resp->result == HTTPC_CANCELLED;
		fo.transient = httpc_result_transient(resp->result);
		snprintf(msg, msglen, "%s", resp->error);
	}
	text_utf8_trim(msg);
	*out = fo;
}

int sched_http_submit(struct run *r, httpc_done_fn on_done, char *err, size_t errlen)
{
	const struct job *j = r->job;
	const struct conf_http_call *h = j->conf->http;
	struct sched *s = j->s;

	if (!s->http) {
		snprintf(err, errlen, "no HTTP client is set up in this process; not sent");
		return -1;
	}
	const char **hdrs = calloc(h->n_headers + 1, sizeof(*hdrs));
	if (!hdrs) {
		snprintf(err, errlen, "out of memory; not sent");
		return -1;
	}
	/* a body without a Content-Type of its own is JSON, as pg_net's http_post sends */
	bool has_ctype = false;
	size_t n = 0;
	for (; n < h->n_headers; n++)
		has_ctype |= strncasecmp(hdrs[n] = h->headers[n], "Content-Type:", 13) == 0;
	if (h->body && !has_ctype)
		hdrs[n++] = "Content-Type: application/json";
	struct httpc_request req = {
	    .method = h->method,
	    .url = h->url,
	    .headers = hdrs,
	    .n_headers = n,
	    .body = h->body,
	    .body_len = h->body ? strlen(h->body) : 0,
	    .timeout_ms = j->conf->timeout_ms,
	    .on_done = on_done,
	    .arg = r,
	};
	int rc = httpc_submit(s->http, &req, &r->hc); /* copies all of it */
	free(hdrs);
	if (rc < 0) {
		snprintf(err, errlen, "out of memory; not sent");
		return -1;
	}
	return 0;
}

void sched_set_http(struct sched *s, struct httpc *c)
{
	s->http = c;
}

bool sched_http_cancel(struct run *r, const char *why)
{
	if (sched_http_unsent(r)) {
		r->cancelled = true;
		if (!r->mark_ev->why)
			r->mark_ev->why = strdup(why ? why : "cancelled");
		event_active(&r->mark_ev->ev, 0, 0); /* sched.c ends it, having sent nothing */
		return true;
	}
	if (!r->hc)
		return false;
	httpc_cancel(r->hc, why);
	return true;
}
