#ifndef PGCROND_HTTPC_H
#define PGCROND_HTTPC_H

/* The HTTP client: libcurl's multi interface driven by the daemon's libevent loop (its
 * sockets and its timer are events on the one event_base), so no request ever blocks the
 * loop, a run or another request, and no thread is started here (name lookups are libcurl's
 * own business: its threaded resolver never blocks the caller; httpc_new warns once when
 * the linked libcurl has no asynchronous resolver, whose lookups would block the loop).
 *
 * Secure and bounded by default: only http:// and https:// URLs, also for redirects; TLS
 * peer and host verified (against http_client.ca_file when set, else the system's CAs); at
 * most max_concurrent requests in flight, the rest wait in order; a request body of at most
 * max_request bytes; a response body kept up to max_response bytes and cut there (the
 * transfer stops: a large response is never buffered whole); at most max_redirects
 * redirects, followed here (not by libcurl): an https:// request never goes on over
 * http://, and a hop to another origin (scheme, host, port) than the submitted URL's gets
 * only the headers that cannot be credentials (Content-Type, Accept, Accept-Language,
 * Content-Language), not the others; a total time per request, counted from its submission (waiting
 * included), and a connection that brings less than one byte in 30 s is given up before that.
 *
 * The callers: the HTTP jobs (sched), the webhook alert sink (alert.c) and whatever serves
 * pg_net's queue: each submits a request and hears its one response. Request headers are
 * never logged by this module (they may carry credentials). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

/* The bounds, as configured (pgcrond.conf's http_client group, whose defaults config.c fills
 * in; docs/configuration.md). */
struct httpc_opts {
	const char *ca_file;        /* PEM bundle of the CAs to trust; NULL: the system's */
	int max_concurrent;         /* requests in flight at once (at least 1) */
	int64_t timeout_ms;         /* a request's total time when its caller sets none */
	int64_t connect_timeout_ms; /* name lookup, TCP and TLS handshakes */
	int64_t max_request;        /* bytes of a request body */
	int64_t max_response;       /* bytes of a response body kept */
	int max_redirects;          /* followed at most; 0: none followed */
};
/* Less than one byte in this long ends a transfer before its timeout (a stalled peer). */
#define HTTPC_LOW_SPEED_TIME_S 30
/* Response headers kept (the rest of a larger block is dropped, never the body). */
#define HTTPC_MAX_HEADERS (64 * 1024)

/* How a request ended. Only HTTPC_OK has a status code (any, 1xx-5xx). */
enum httpc_result {
	HTTPC_OK,        /* a response came: status, headers and (the start of) its body */
	HTTPC_BAD_URL,   /* not a URL, or not an http(s) one: never sent */
	HTTPC_TOO_LARGE, /* the request body is over max_request: never sent */
	HTTPC_RESOLVE,   /* the host name does not resolve */
	HTTPC_CONNECT,   /* no connection (refused, unreachable, connect timeout) */
	HTTPC_TLS,       /* the TLS handshake failed or the certificate is not trusted */
	HTTPC_TIMEOUT,   /* no complete response within the timeout, or a stalled peer */
	HTTPC_REDIRECTS, /* more than max_redirects redirects, or one to a refused scheme */
	HTTPC_PROTOCOL,  /* the server broke HTTP or the connection mid-response */
	HTTPC_CANCELLED, /* httpc_cancel() */
	HTTPC_ERROR,     /* anything else (out of memory, ...) */
};
/* A failure worth trying again later: the name lookup, the connection, a timeout, a
 * connection broken mid-response. (A 5xx status is the caller's to judge.) */
bool httpc_result_transient(enum httpc_result r);

struct httpc_response {
	enum httpc_result result;
	int status;               /* HTTP status code; 0 unless HTTPC_OK */
	const char *content_type; /* the response's Content-Type, NULL if none */
	const char *headers;      /* the final response's header block as received (CRLF
	                           * lines, NUL-terminated), at most HTTPC_MAX_HEADERS */
	size_t headers_len;
	const char *body; /* NUL-terminated; bytes as received (maybe not UTF-8, maybe NULs) */
	size_t body_len;
	bool truncated;     /* the body was over max_response: BODY is its start, the rest
	                     * was not read */
	const char *error;  /* for a person, never NULL: "" for HTTPC_OK; a URL in it is as
	                     * httpc_url_shown prints it (no user info, path nor query) */
	const char *reason; /* ERROR without its "METHOD URL: " (for a caller whose URL's
	                     * path is a secret, a webhook's) */
	int64_t elapsed_ms; /* from submission to the end */
};

/* Called once per submitted request, from the loop: never from inside httpc_submit() or
 * httpc_cancel(). RESP and what it points to live until the callback returns. */
typedef void (*httpc_done_fn)(void *arg, const struct httpc_response *resp);

struct httpc_request {
	const char *method; /* "GET" (NULL), "POST", "PUT", "PATCH", "DELETE", "HEAD" */
	const char *url;    /* http:// or https:// */
	/* "Name: value" lines, without CR or LF; may carry credentials: never logged */
	const char *const *headers;
	size_t n_headers;
	const void *body; /* NULL: none */
	size_t body_len;
	int64_t timeout_ms;   /* total, from submission; 0: the client's timeout */
	int64_t max_response; /* 0: the client's max_response */
	httpc_done_fn on_done;
	void *arg;
};

struct httpc;
struct httpc_call;

/* A client on BASE with the bounds O (copied). 0 with *OUT, or -ENOMEM / -EIO (libcurl
 * cannot be set up). */
int httpc_new(struct event_base *base, const struct httpc_opts *o, struct httpc **out)
    __attribute__((warn_unused_result));
/* New bounds (a reload): requests submitted from now on get them; those in flight keep
 * theirs. max_concurrent applies at once. */
int httpc_configure(struct httpc *c, const struct httpc_opts *o)
    __attribute__((warn_unused_result));
/* Frees the client and every request still known to it, calling no callback. */
void httpc_free(struct httpc **c);

/* Send REQ (everything copied). Returns 0, with *OUT (may be NULL) the call until its
 * on_done runs; or -ENOMEM (also when libcurl, started at the first request, cannot start:
 * a daemon that sends no request never loads it). A bad URL, a body over max_request and the like
 * are not errors here: they end through on_done, from the loop, with a message that says why. */
int httpc_submit(struct httpc *c, const struct httpc_request *req, struct httpc_call **out)
    __attribute__((warn_unused_result));
/* Stop CALL: it ends through its on_done with HTTPC_CANCELLED and WHY as its error. */
void httpc_cancel(struct httpc_call *call, const char *why);
/* Forget CALL: stopped, and its on_done is never called. */
void httpc_drop(struct httpc_call **call);

/* URL fit to be printed: scheme://host[:port]/ followed by "..." when it has a path other
 * than "/", a query or a fragment (any of them may hold a secret: a bot's /bot<TOKEN>/,
 * a hook's path, ?token=); user info dropped. OUT always NUL-terminated; returns 0, or
 * -EINVAL when URL does not parse (OUT then says "(not a URL)"). */
int httpc_url_shown(const char *url, char *out, size_t outlen);
/* Whether URL is one this client sends: libcurl's parser reads it (as CURLOPT_URL does) and
 * pgcrond's rules hold: http:// or https:// only, a host after the "//", a port other than 0.
 * When not, ERR says why for a person, without the URL ("has no host; write it like ..."),
 * to follow the URL as it may be shown. The one check: the configuration's URLs at load
 * (config_check_url), every request and every redirect here. */
bool httpc_url_ok(const char *url, char *err, size_t errlen);

#endif
