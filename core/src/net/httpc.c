/* The HTTP client (httpc.h): libcurl's multi interface on the daemon's event loop. libcurl
 * says which sockets to watch (socket_cb) and when to call it back (timer_cb); each socket
 * is a libevent event that hands its readiness to curl_multi_socket_action(). Completions
 * (and refusals, and cancels) are queued and delivered from one event of their own, so a
 * callback never runs inside httpc_submit(), httpc_cancel() or a libcurl callback, and may
 * itself submit or cancel. */
#include "httpc.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "clock.h"
#include "log.h"

enum call_state { CALL_QUEUED, CALL_ACTIVE, CALL_DONE, N_CALL_STATES };

struct httpc_call {
	struct httpc *c;
	enum call_state state;
	TAILQ_ENTRY(httpc_call) link; /* in the list of its state */
	CURL *easy;
	struct curl_slist *hdrs;     /* the request's headers, for the origin of its URL */
	struct curl_slist *plain;    /* those that carry no credentials, for any other origin */
	char *method, *url;          /* URL: the one submitted (messages name it) */
	struct {                     /* followed by redirect(), not by libcurl */
		char *hop, *refused; /* the last one's URL, why one was refused; NULL: none */
		int n, max;          /* followed so far, and the most */
	} redir;
	char *body;
	size_t body_len;
	int64_t submitted_us, deadline_us;
	int64_t max_response;
	int64_t connect_timeout_ms;
	char *ca_file;
	struct { /* the response, so far */
		char *body, *hdr;
		size_t body_len, body_cap, hdr_len, hdr_cap;
		bool truncated;
	} resp;
	char errbuf[CURL_ERROR_SIZE];
	enum httpc_result result;
	char *error; /* set when it ends without libcurl (refused, cancelled) */
	httpc_done_fn on_done;
	void *arg;
};

struct sockev {
	struct event ev;
	struct httpc *c;
};

struct httpc {
	struct event_base *base;
	CURLM *multi;
	struct event timer_ev;
	struct event done_ev;
	struct httpc_opts o;
	char *ca_file;
	TAILQ_HEAD(, httpc_call) calls[N_CALL_STATES]; /* by their state */
	size_t n_active;
};

static bool curl_ready;

static const char *result_name(enum httpc_result r)
{
	static const char *const names[] = {
	    [HTTPC_OK] = "ok",
	    [HTTPC_BAD_URL] = "bad_url",
	    [HTTPC_TOO_LARGE] = "too_large",
	    [HTTPC_RESOLVE] = "resolve",
	    [HTTPC_CONNECT] = "connect",
	    [HTTPC_TLS] = "tls",
	    [HTTPC_TIMEOUT] = "timeout",
	    [HTTPC_REDIRECTS] = "redirects",
	    [HTTPC_PROTOCOL] = "protocol",
	    [HTTPC_CANCELLED] = "cancelled",
	    [HTTPC_ERROR] = "error",
	};
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "error";
}

bool httpc_result_transient(enum httpc_result r)
{
	return r == HTTPC_RESOLVE || r == HTTPC_CONNECT || r == HTTPC_TIMEOUT ||
	       r == HTTPC_PROTOCOL;
}

/* ---- lists ------------------------------------------------------------------------- */

/* K at the end of the list of its state, or out of it. */
static void list_push(struct httpc_call *k)
{
	TAILQ_INSERT_TAIL(&k->c->calls[k->state], k, link);
	k->c->n_active += k->state == CALL_ACTIVE;
}

static void list_remove(struct httpc_call *k)
{
	TAILQ_REMOVE(&k->c->calls[k->state], k, link);
	k->c->n_active -= k->state == CALL_ACTIVE;
}

static void call_free(struct httpc_call *k)
{
	if (k->easy) {
		curl_multi_remove_handle(k->c->multi, k->easy);
		curl_easy_cleanup(k->easy);
	}
	curl_slist_free_all(k->hdrs);
	curl_slist_free_all(k->plain);
	free(k->method);
	free(k->url);
	free(k->redir.hop);
	free(k->redir.refused);
	free(k->body);
	free(k->ca_file);
	free(k->resp.body);
	free(k->resp.hdr);
	free(k->error);
	free(k);
}

/* ---- URLs (their check and how they are shown: httpc_url.c) ------------------------ */

/* URL's scheme, host and port (the port its scheme implies when it names none), in OUT;
 * false when it does not parse. */
static bool url_origin(const char *url, char *out, size_t outlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	bool ok = false;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
		int n = snprintf(out, outlen, "%s://%s:%s", scheme, host, port);
		ok = n > 0 && (size_t)n < outlen;
		for (char *c = out; ok && *c; c++)
			*c = (char)tolower((unsigned char)*c);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return ok;
}

/* Whether A and B have one origin (scheme, host, port): the request's headers go to B. */
static bool same_origin(const char *a, const char *b)
{
	char oa[512], ob[512];
	return url_origin(a, oa, sizeof(oa)) && url_origin(b, ob, sizeof(ob)) &&
	       strcmp(oa, ob) == 0;
}

static bool is_https(const char *url)
{
	return strncasecmp(url, "https://", 8) == 0;
}

/* ---- completions ------------------------------------------------------------------- */

/* K is over: hand it to the completion event. */
static void finish(struct httpc_call *k, enum httpc_result result, const char *error)
{
	struct httpc *c = k->c;
	list_remove(k);
	if (k->easy) {
		curl_multi_remove_handle(c->multi, k->easy); /* keeps the handle's info */
	}
	k->state = CALL_DONE;
	k->result = result;
	if (error && !k->error)
		k->error = strdup(error);
	list_push(k);
	event_active(&c->done_ev, 0, 0);
}

static void start_queued(struct httpc *c);

static void deliver(struct httpc_call *k)
{
	char msg[CURL_ERROR_SIZE + 1536];
	char shown[512];
	long status = 0;
	char *ctype = NULL;
	struct httpc_response resp = {.result = k->result};

	if (k->easy) {
		curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(k->easy, CURLINFO_CONTENT_TYPE, &ctype);
	}
	resp.status = k->result == HTTPC_OK ? (int)status : 0;
	resp.content_type = k->result == HTTPC_OK ? ctype : NULL;
	resp.headers = k->resp.hdr ? k->resp.hdr : "";
	resp.headers_len = k->resp.hdr_len;
	resp.body = k->resp.body ? k->resp.body : "";
	resp.body_len = k->resp.body_len;
	resp.truncated = k->resp.truncated;
	resp.elapsed_ms = (clock_mono_us() - k->submitted_us) / 1000;
	if (k->error) {
		resp.error = resp.reason = k->error;
	} else if (k->result == HTTPC_OK) {
		resp.error = resp.reason = "";
	} else {
		httpc_url_shown(k->url, shown, sizeof(shown));
		int n = snprintf(msg, sizeof(msg), "%s %s: ", k->method, shown);
		size_t at = n > 0 && (size_t)n < sizeof(msg) / 2 ? (size_t)n : 0;
		char *r = msg + at;
		size_t rlen = sizeof(msg) - at;
		switch (k->result) {
		case HTTPC_TIMEOUT:
			snprintf(
			    r, rlen,
			    "no complete response within %lld ms (%zu bytes of body received): %s",
			    (long long)resp.elapsed_ms, k->resp.body_len, k->errbuf);
			break;
		case HTTPC_REDIRECTS:
			if (k->redir.refused) {
				snprintf(r, rlen, "%s", k->redir.refused);
				break;
			}
			snprintf(r, rlen,
			         "%s (http_client.max_redirects = %d; a redirect loop, or a longer "
			         "chain of redirects)",
			         k->errbuf, k->redir.max);
			break;
		case HTTPC_TLS:
			snprintf(r, rlen,
			         "TLS failed: %s (the server's certificate must be trusted: set "
			         "http_client.ca_file to its CA, or use the system's CAs)",
			         k->errbuf);
			break;
		case HTTPC_OK:
		case HTTPC_BAD_URL:
		case HTTPC_TOO_LARGE:
		case HTTPC_RESOLVE:
		case HTTPC_CONNECT:
		case HTTPC_PROTOCOL:
		case HTTPC_CANCELLED:
		case HTTPC_ERROR:
			snprintf(r, rlen, "%s", k->errbuf[0] ? k->errbuf : result_name(k->result));
			break;
		}
		resp.reason = r;
		resp.error = msg;
	}
	k->on_done(k->arg, &resp);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct httpc *c = arg;
	struct httpc_call *k;
	while ((k = TAILQ_FIRST(&c->calls[CALL_DONE])) != NULL) {
		list_remove(k);
		deliver(k);
		call_free(k);
	}
}

static enum httpc_result classify(CURLcode rc, struct httpc_call *k)
{
	switch ((int)rc) { /* (libcurl's codes: the rest are HTTPC_ERROR) */
	case CURLE_OK:
		return HTTPC_OK;
	case CURLE_WRITE_ERROR:
		/* our write callback stopped the transfer at max_response */
		return k->resp.truncated ? HTTPC_OK : HTTPC_ERROR;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_TOO_MANY_REDIRECTS:
		return HTTPC_REDIRECTS;
	case CURLE_URL_MALFORMAT:
		return HTTPC_BAD_URL;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return HTTPC_RESOLVE;
	case CURLE_COULDNT_CONNECT:
		return HTTPC_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return HTTPC_TIMEOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_USE_SSL_FAILED:
		return HTTPC_TLS;
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_BAD_CONTENT_ENCODING:
		return HTTPC_PROTOCOL;
	default:
		return HTTPC_ERROR;
	}
}

static bool redirect(struct httpc_call *k, enum httpc_result *res);

static void check_multi(struct httpc *c)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct httpc_call *k = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&k);
		if (!k)
			continue;
		CURLcode rc = m->data.result;
		enum httpc_result res = classify(rc, k);
		if (res == HTTPC_OK && redirect(k, &res))
			continue; /* the next hop is under way */
		finish(k, res, NULL);
	}
	start_queued(c);
}

/* ---- libcurl's sockets and timer on the loop --------------------------------------- */

static void sock_cb_ev(evutil_socket_t fd, short what, void *arg)
{
	struct sockev *se = arg;
	struct httpc *c = se->c;
	int running;
	int action =
	    (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
	curl_multi_socket_action(c->multi, fd, action, &running);
	check_multi(c);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct httpc *c = userp;
	struct sockev *se = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (se) {
			event_del(&se->ev);
			free(se);
			curl_multi_assign(c->multi, s, NULL);
		}
		return 0;
	}
	if (!se) {
		se = calloc(1, sizeof(*se));
		if (!se)
			return -1;
		se->c = c;
		curl_multi_assign(c->multi, s, se);
	} else {
		event_del(&se->ev);
	}
	short ev = (short)(EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
	                   (what & CURL_POLL_OUT ? EV_WRITE : 0));
	event_assign(&se->ev, c->base, s, ev, sock_cb_ev, se);
	event_add(&se->ev, NULL);
	return 0;
}

static void timer_cb_ev(evutil_socket_t fd, short what, void *arg)
{
	struct httpc *c = arg;
	int running;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_multi(c);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct httpc *c = userp;
	if (timeout_ms < 0) {
		evtimer_del(&c->timer_ev);
		return 0;
	}
	/* 0: as soon as the loop turns, never from inside libcurl */
	clock_event_in(&c->timer_ev, timeout_ms);
	return 0;
}

/* ---- a transfer -------------------------------------------------------------------- */

/* N bytes at PTR after the *LEN of *BUF, NUL-terminated; its room *CAP grows by doubling from
 * FIRST, never past MAX. False: out of memory (nothing added). */
static bool append(char **buf, size_t *len, size_t *cap, const char *ptr, size_t n, size_t first,
                   size_t max)
{
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : first;
		while (c < *len + n + 1)
			c *= 2;
		char *p = realloc(*buf, c < max ? c : max);
		if (!p)
			return false;
		*buf = p;
		*cap = c < max ? c : max;
	}
	memcpy(*buf + *len, ptr, n);
	*len += n;
	(*buf)[*len] = '\0';
	return true;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct httpc_call *k = arg;
	size_t n = size * nmemb;
	size_t room = (size_t)k->max_response - k->resp.body_len;
	size_t take = n < room ? n : room;

	if (!append(&k->resp.body, &k->resp.body_len, &k->resp.body_cap, ptr, take, 4096,
	            (size_t)k->max_response + 1))
		return 0;
	if (take < n) {
		k->resp.truncated = true;
		return 0; /* stops the transfer: the rest is never read */
	}
	return n;
}

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct httpc_call *k = arg;
	size_t n = size * nmemb;

	/* a new response (after a redirect or a 100 Continue): keep the last one's only */
	if (n > 5 && strncmp(ptr, "HTTP/", 5) == 0)
		k->resp.hdr_len = 0;
	if (k->resp.hdr_len + n + 1 > HTTPC_MAX_HEADERS)
		return n; /* dropped, not fatal */
	append(&k->resp.hdr, &k->resp.hdr_len, &k->resp.hdr_cap, ptr, n, 1024, HTTPC_MAX_HEADERS);
	return n;
}

#define SETOPT(e, opt, val)                                                                        \
	do {                                                                                       \
		if (curl_easy_setopt((e), (opt), (val)) != CURLE_OK)                               \
			goto fail;                                                                 \
	} while (0)

/* K's easy handle, set up. false: out of memory or libcurl refused an option. */
static bool setup_easy(struct httpc_call *k, int64_t remaining_ms)
{
	CURL *e = curl_easy_init();
	if (!e)
		return false;
	k->easy = e;
	SETOPT(e, CURLOPT_PRIVATE, k);
	SETOPT(e, CURLOPT_URL, k->redir.hop ? k->redir.hop : k->url);
	SETOPT(e, CURLOPT_NOSIGNAL, 1L);
	SETOPT(e, CURLOPT_ERRORBUFFER, k->errbuf);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85 */
	SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	SETOPT(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	SETOPT(e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SETOPT(e, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (k->ca_file)
		SETOPT(e, CURLOPT_CAINFO, k->ca_file);
	/* redirects are followed by redirect(), not by libcurl: it would send every header to
	 * whatever host a server names (it drops Authorization only) */
	SETOPT(e, CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(e, CURLOPT_TIMEOUT_MS, (long)remaining_ms);
	SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS,
	       (long)(k->connect_timeout_ms < remaining_ms ? k->connect_timeout_ms : remaining_ms));
	SETOPT(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	SETOPT(e, CURLOPT_LOW_SPEED_TIME, (long)HTTPC_LOW_SPEED_TIME_S);
	SETOPT(e, CURLOPT_WRITEFUNCTION, write_cb);
	SETOPT(e, CURLOPT_WRITEDATA, k);
	SETOPT(e, CURLOPT_HEADERFUNCTION, header_cb);
	SETOPT(e, CURLOPT_HEADERDATA, k);
	SETOPT(e, CURLOPT_USERAGENT, "pgcrond/" PGCROND_VERSION);
	SETOPT(e, CURLOPT_HTTPHEADER,
	       k->redir.hop && !same_origin(k->url, k->redir.hop) ? k->plain : k->hdrs);
	/* what the server sends, not decoded: max_response counts the bytes received */
	SETOPT(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
	if (strcmp(k->method, "GET") == 0) {
		SETOPT(e, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(k->method, "HEAD") == 0) {
		SETOPT(e, CURLOPT_NOBODY, 1L);
	} else {
		if (strcmp(k->method, "POST") != 0)
			SETOPT(e, CURLOPT_CUSTOMREQUEST, k->method);
		if (k->body || strcmp(k->method, "POST") == 0) {
			SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)k->body_len);
			SETOPT(e, CURLOPT_POSTFIELDS, k->body ? k->body : "");
		}
	}
	return true;
fail:
	return false;
}

/* The request's headers that may go to another origin than its URL's: what says how the
 * body reads (the CORS-safelisted ones), nothing that could be a credential. */
static bool plain_header(const char *h)
{
	static const char *const plain[] = {
	    "Content-Type:", "Accept:", "Accept-Language:", "Content-Language:", "Expect:"};
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		if (strncasecmp(h, plain[i], strlen(plain[i])) == 0)
			return true;
	return false;
}

static void start_one(struct httpc *c, struct httpc_call *k)
{
	int64_t remaining_ms = (k->deadline_us - clock_mono_us()) / 1000;
	list_remove(k);
	k->state = CALL_ACTIVE;
	list_push(k);
	if (remaining_ms <= 0) {
		snprintf(
		    k->errbuf, sizeof(k->errbuf),
		    "its time ran out while it waited for one of the http_client.max_concurrent "
		    "(%d) connections",
		    c->o.max_concurrent);
		finish(k, HTTPC_TIMEOUT, NULL);
		return;
	}
	if (!setup_easy(k, remaining_ms)) {
		finish(k, HTTPC_ERROR, "cannot set up the request (out of memory?)");
		return;
	}
	CURLMcode mc = curl_multi_add_handle(c->multi, k->easy);
	if (mc != CURLM_OK) {
		curl_easy_cleanup(k->easy);
		k->easy = NULL;
		finish(k, HTTPC_ERROR, curl_multi_strerror(mc));
	}
}

/* K's response (HTTPC_OK) is a redirect to follow: the next hop is under way (true); or
 * it is the response (false, *RES unchanged: not a redirect, no Location, following off);
 * or it is refused, with *RES and errbuf saying why (false). A hop to another origin than
 * the submitted URL's carries only the plain headers (plain_header): the others may be a
 * credential meant for that origin alone. An https:// request never goes on over http://. */
static bool redirect(struct httpc_call *k, enum httpc_result *res)
{
	long status = 0;
	char *loc = NULL, shown[300];
	const char *at = k->redir.hop ? k->redir.hop : k->url;

	curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &status);
	if (k->redir.max <= 0 ||
	    !(status == 301 || status == 302 || status == 303 || status == 307 || status == 308))
		return false;
	if (curl_easy_getinfo(k->easy, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK || !loc)
		return false;
	if (k->redir.n >= k->redir.max) {
		snprintf(k->errbuf, sizeof(k->errbuf), "Maximum (%d) redirects followed",
		         k->redir.max);
		*res = HTTPC_REDIRECTS;
		return false;
	}
	httpc_url_shown(loc, shown, sizeof(shown));
	char why[300], msg[1024];
	msg[0] = '\0';
	if (!httpc_url_ok(loc, why, sizeof(why)))
		snprintf(msg, sizeof(msg), "HTTP %ld redirects to %s, which %s", status, shown,
		         why);
	else if ((is_https(k->url) || is_https(at)) && !is_https(loc))
		snprintf(msg, sizeof(msg),
		         "HTTP %ld redirects to %s: refused, an https:// request is not followed "
		         "to http:// (its headers and body would travel in clear text); call the "
		         "https:// URL the server should redirect to",
		         status, shown);
	if (msg[0]) {
		free(k->redir.refused);
		k->redir.refused = strdup(msg);
		if (!k->redir.refused)
			snprintf(k->errbuf, sizeof(k->errbuf), "a redirect was refused");
		*res = k->redir.refused ? HTTPC_REDIRECTS : HTTPC_ERROR;
		return false;
	}
	char *next = strdup(loc);
	if (!next) {
		snprintf(k->errbuf, sizeof(k->errbuf), "out of memory following a redirect");
		*res = HTTPC_ERROR;
		return false;
	}
	/* the method as libcurl and browsers change it: 303 asks for a GET, and a POST
	 * answered by 301 or 302 becomes one; 307 and 308 keep the method and the body */
	bool to_get = status == 303
	                  ? strcmp(k->method, "HEAD") != 0
	                  : (status == 301 || status == 302) && strcmp(k->method, "POST") == 0;
	if (to_get) {
		char *get = strdup("GET");
		if (!get) {
			free(next);
			snprintf(k->errbuf, sizeof(k->errbuf),
			         "out of memory following a redirect");
			*res = HTTPC_ERROR;
			return false;
		}
		free(k->method);
		k->method = get;
		free(k->body);
		k->body = NULL;
		k->body_len = 0;
	}
	free(k->redir.hop);
	k->redir.hop = next;
	k->redir.n++;
	/* the redirect's own body and headers are not the response */
	k->resp.body_len = 0;
	k->resp.truncated = false;
	k->resp.hdr_len = 0;
	k->errbuf[0] = '\0';
	curl_multi_remove_handle(k->c->multi, k->easy);
	curl_easy_cleanup(k->easy);
	k->easy = NULL;
	int64_t remaining_ms = (k->deadline_us - clock_mono_us()) / 1000;
	if (remaining_ms <= 0) {
		snprintf(k->errbuf, sizeof(k->errbuf), "its time ran out at redirect %d",
		         k->redir.n);
		*res = HTTPC_TIMEOUT;
		return false;
	}
	if (!setup_easy(k, remaining_ms) ||
	    curl_multi_add_handle(k->c->multi, k->easy) != CURLM_OK) {
		if (k->easy)
			curl_easy_cleanup(k->easy);
		k->easy = NULL;
		snprintf(k->errbuf, sizeof(k->errbuf),
		         "cannot set up the request a redirect led to (out of memory?)");
		*res = HTTPC_ERROR;
		return false;
	}
	return true;
}

static void start_queued(struct httpc *c)
{
	while (!TAILQ_EMPTY(&c->calls[CALL_QUEUED]) && c->n_active < (size_t)c->o.max_concurrent)
		start_one(c, TAILQ_FIRST(&c->calls[CALL_QUEUED]));
}

static char *dup_mem(const void *p, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		if (n)
			memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

/* libcurl and the multi handle, made at the first request: a daemon with no HTTP job, webhook
 * or pg_net request never loads TLS (memory, start time). */
static int curl_start(struct httpc *c)
{
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return -ENOMEM; /* what it fails for (its TLS library's start) */
		curl_ready = true;
		/* without an asynchronous resolver libcurl looks names up in the calling thread:
		 * every request would hold the whole loop (runs, timers, the history) for as long
		 * as its DNS takes */
		const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
		if (v && !(v->features & CURL_VERSION_ASYNCHDNS))
			log_warning(
			    "http: the linked libcurl %s has no asynchronous name resolver: "
			    "each HTTP job's or webhook's name lookup blocks the daemon's "
			    "event loop (every job waits meanwhile); install a libcurl built "
			    "with the threaded resolver or c-ares (Debian's and Ubuntu's "
			    "libcurl4 are), or use IP addresses in URLs",
			    v->version ? v->version : "?");
	}
	c->multi = curl_multi_init();
	if (!c->multi)
		return -ENOMEM;
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	return 0;
}

int httpc_submit(struct httpc *c, const struct httpc_request *req, struct httpc_call **out)
{
	if (out)
		*out = NULL;
	if (!c->multi && curl_start(c) < 0)
		return -ENOMEM;
	struct httpc_call *k = calloc(1, sizeof(*k));
	char why[300];
	if (!k)
		return -ENOMEM;
	k->c = c;
	k->on_done = req->on_done;
	k->arg = req->arg;
	k->submitted_us = clock_mono_us();
	int64_t timeout = req->timeout_ms > 0 ? req->timeout_ms : c->o.timeout_ms;
	k->deadline_us = k->submitted_us + timeout * 1000;
	k->max_response = req->max_response > 0 ? req->max_response : c->o.max_response;
	k->connect_timeout_ms = c->o.connect_timeout_ms;
	k->redir.max = c->o.max_redirects;
	k->method = strdup(req->method ? req->method : "GET");
	k->url = strdup(req->url ? req->url : "");
	k->ca_file = c->ca_file ? strdup(c->ca_file) : NULL;
	if (req->body)
		k->body = dup_mem(req->body, req->body_len);
	k->body_len = req->body ? req->body_len : 0;
	if (!k->method || !k->url || (c->ca_file && !k->ca_file) || (req->body && !k->body))
		goto oom;
	for (size_t i = 0; i <= req->n_headers; i++) {
		/* no "Expect: 100-continue" round trip before a body */
		const char *h = i < req->n_headers ? req->headers[i] : "Expect:";
		struct curl_slist *n = curl_slist_append(k->hdrs, h);
		if (!n)
			goto oom;
		k->hdrs = n;
		if (plain_header(h)) {
			if (!(n = curl_slist_append(k->plain, h)))
				goto oom;
			k->plain = n;
		}
	}

	k->state = CALL_QUEUED;
	list_push(k);
	if (out)
		*out = k;
	if (!httpc_url_ok(k->url, why, sizeof(why))) {
		char msg[1024], shown[256];
		/* one libcurl cannot read is not shown: only its parser knows its parts */
		if (httpc_url_shown(k->url, shown, sizeof(shown)) < 0)
			snprintf(msg, sizeof(msg), "the url %s", why);
		else
			snprintf(msg, sizeof(msg), "url %s %s", shown, why);
		finish(k, HTTPC_BAD_URL, msg);
	} else if ((int64_t)k->body_len > c->o.max_request) {
		char msg[200];
		snprintf(
		    msg, sizeof(msg),
		    "the request body has %zu bytes, more than http_client.max_request (%lld); "
		    "not sent",
		    k->body_len, (long long)c->o.max_request);
		finish(k, HTTPC_TOO_LARGE, msg);
	} else {
		start_queued(c);
	}
	return 0;
oom:
	call_free(k);
	return -ENOMEM;
}

void httpc_cancel(struct httpc_call *k, const char *why)
{
	if (!k || k->state == CALL_DONE)
		return;
	finish(k, HTTPC_CANCELLED, why ? why : "cancelled");
	start_queued(k->c);
}

void httpc_drop(struct httpc_call **kp)
{
	struct httpc_call *k = *kp;
	if (!k)
		return;
	struct httpc *c = k->c;
	list_remove(k);
	call_free(k);
	*kp = NULL;
	start_queued(c);
}

/* ---- the client -------------------------------------------------------------------- */

int httpc_configure(struct httpc *c, const struct httpc_opts *o)
{
	char *ca = o->ca_file ? strdup(o->ca_file) : NULL;
	if (o->ca_file && !ca)
		return -ENOMEM;
	free(c->ca_file);
	c->ca_file = ca;
	c->o = *o;
	c->o.ca_file = NULL;
	if (c->o.max_concurrent < 1)
		c->o.max_concurrent = 1; /* none at all would leave every request waiting */
	start_queued(c);
	return 0;
}

int httpc_new(struct event_base *base, const struct httpc_opts *o, struct httpc **out)
{
	struct httpc *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->base = base;
	for (size_t i = 0; i < N_CALL_STATES; i++)
		TAILQ_INIT(&c->calls[i]);
	evtimer_assign(&c->timer_ev, base, timer_cb_ev, c);
	event_assign(&c->done_ev, base, -1, 0, done_cb, c);
	if (httpc_configure(c, o) < 0) {
		httpc_free(&c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

void httpc_free(struct httpc **cp)
{
	struct httpc *c = *cp;
	if (!c)
		return;
	for (size_t i = 0; i < N_CALL_STATES; i++) {
		struct httpc_call *k;
		while ((k = TAILQ_FIRST(&c->calls[i])) != NULL) {
			list_remove(k);
			call_free(k); /* removes its handle: socket_cb frees its events */
		}
	}
	evtimer_del(&c->timer_ev);
	event_del(&c->done_ev);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	free(c->ca_file);
	free(c);
	*cp = NULL;
}
