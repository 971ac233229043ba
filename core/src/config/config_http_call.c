/* HTTP in the configuration: the main file's http_client = { ... } group (the bounds of the
 * client in net/httpc.h) and a job's http = { ... } group (the request an HTTP job makes).
 * A URL is checked by the HTTP client's own check (httpc_url_ok: libcurl's parser and
 * pgcrond's rules), so that one the client would refuse is a config error with its FILE:LINE
 * instead of a failure at every run. */
#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config_priv.h"
#include "httpc.h"
#include "text.h"

/* ---- URLs -------------------------------------------------------------------------- */

void config_check_url(struct loader *L, const config_setting_t *s, const char *file,
                      const char *what, const char *url)
{
	char why[256], bare[160], shown[160];
	/* printed by pgcrond check and in reload logs: no password, no token */
	if (!httpc_url_ok(url, why, sizeof(why)))
		config_report_at(
		    L, s, file, "%s \"%s\" %s", what,
		    text_escape_ctl(text_url_redact(url, bare, sizeof(bare)), shown, sizeof(shown)),
		    why);
}

/* ---- sizes ------------------------------------------------------------------------- */

/* "1MB", "512kB", "100000" (bytes, 1024-based units). -1 if not a size. */
static int64_t parse_size(const char *s)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (end == s || v < 0 || errno)
		return -1;
	while (*end == ' ')
		end++;
	int64_t mul = 1;
	if (!*end || strcasecmp(end, "B") == 0)
		mul = 1;
	else if (strcasecmp(end, "kB") == 0 || strcasecmp(end, "k") == 0)
		mul = 1024;
	else if (strcasecmp(end, "MB") == 0 || strcasecmp(end, "M") == 0)
		mul = 1024 * 1024;
	else if (strcasecmp(end, "GB") == 0 || strcasecmp(end, "G") == 0)
		mul = 1024LL * 1024 * 1024;
	else
		return -1;
	if (v > INT64_MAX / mul)
		return -1;
	return v * mul;
}

/* KEY's size, from 1kB to MAX (MAX_TEXT as a person writes it), into *DST. */
static void apply_size(struct loader *L, const config_setting_t *s, const char *file,
                       const char *key, int64_t *dst, int64_t max, const char *max_text)
{
	int64_t v = -1;
	int type = config_setting_type(s);

	if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64)
		v = config_setting_get_int64(s);
	else if (type == CONFIG_TYPE_STRING)
		v = parse_size(config_setting_get_string(s));
	else {
		config_report_at(L, s, file, "%s must be a size like \"1MB\" or \"512kB\"", key);
		return;
	}
	if (v < 0) {
		config_report_at(L, s, file,
		                 "%s \"%s\" is not a size; write a number of bytes with kB, MB or "
		                 "GB, like \"1MB\"",
		                 key,
		                 type == CONFIG_TYPE_STRING ? config_setting_get_string(s) : "");
		return;
	}
	if (v < 1024 || v > max) {
		config_report_at(L, s, file,
		                 "%s must be between 1kB and %s (the body is held in memory); "
		                 "write it like \"1MB\"",
		                 key, max_text);
		return;
	}
	*dst = v;
}

/* ---- http_client = { ... } ----------------------------------------------------------- */

#define HC(field) offsetof(struct pgc_config, http_client.field)
const struct key_spec config_http_client_keys[] = {
    {"ca_file", K_STRING, HC(ca_file), "\"/etc/pgcrond/ca.pem\"", NULL, 0, false, NULL},
    {"max_concurrent", K_INT, HC(max_concurrent), "16", NULL, 1, false, NULL},
    {"timeout", K_DURATION, HC(timeout_ms), "\"30s\"", NULL, 1, false, NULL},
    {"connect_timeout", K_DURATION, HC(connect_timeout_ms), "\"10s\"", NULL, 1, false, NULL},
    {"max_request", K_CUSTOM, 0, "\"1MB\"", NULL, 0, false, NULL},
    {"max_response", K_CUSTOM, 0, "\"1MB\"", NULL, 0, false, NULL},
    {"pg_net_max_response", K_CUSTOM, 0, "\"64MB\"", NULL, 0, false, NULL},
    {"max_redirects", K_INT, HC(max_redirects), "5", NULL, 0, false, NULL},
    {NULL, 0, 0, NULL, NULL, 0, false, NULL},
};

void config_parse_http_client(struct loader *L, const config_setting_t *s, const char *file)
{
	struct conf_http_client *h = &L->cfg->http_client;

	if (!config_setting_is_group(s)) {
		config_report_at(L, s, file,
		                 "http_client must be a group like http_client = { ca_file = "
		                 "\"/etc/pgcrond/ca.pem\"; max_concurrent = 16; };");
		return;
	}
	h->line = setting_line(s);
	int n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
		const char *name = config_setting_name(m);
		const struct key_spec *k = config_find_key(config_http_client_keys, name);
		if (!k) {
			config_report_unknown(L, m, file, config_http_client_keys,
			                      " in http_client",
			                      "http_client takes ca_file, max_concurrent, timeout, "
			                      "connect_timeout, max_request, max_response, "
			                      "pg_net_max_response and max_redirects "
			                      "(pgcrond.conf(5))");
		} else if (strcmp(name, "max_request") == 0) {
			apply_size(L, m, file, name, &h->max_request, CONFIG_HTTP_MAX_BYTES,
			           "256MB");
		} else if (strcmp(name, "max_response") == 0) {
			apply_size(L, m, file, name, &h->max_response, CONFIG_HTTP_MAX_BYTES,
			           "256MB");
		} else if (strcmp(name, "pg_net_max_response") == 0) {
			apply_size(L, m, file, name, &h->pg_net_max_response,
			           CONFIG_PG_NET_MAX_BYTES, "64MB");
		} else if (config_apply_key(L, m, k, L->cfg, file)) {
			if (strcmp(name, "max_redirects") == 0 && h->max_redirects > 50) {
				config_report_at(L, m, file,
				                 "max_redirects is %d; at most 50 are followed "
				                 "(5 is plenty for real services)",
				                 h->max_redirects);
			} else if (strcmp(name, "max_concurrent") == 0 &&
			           h->max_concurrent > 10000) {
				config_report_at(
				    L, m, file,
				    "max_concurrent is %d; at most 10000 (each is an open "
				    "connection)",
				    h->max_concurrent);
			}
		}
	}
}

void config_http_client_finish(struct loader *L)
{
	struct conf_http_client *h = &L->cfg->http_client;

	if (!h->ca_file)
		return;
	char *p = config_join_path(L, L->main_dir, h->ca_file);
	if (!p)
		return;
	free(h->ca_file);
	h->ca_file = p;
	/* a file of public certificates: it must be there and readable, not secret */
	if (access(p, R_OK) != 0)
		config_report(L, L->cfg->file, h->line,
		              "http_client.ca_file \"%s\" cannot be read: %s; give the PEM file of "
		              "the CAs to trust (readable by the user pgcrond runs as), or remove "
		              "ca_file to trust the system's CAs",
		              p, strerror(errno));
}

/* ---- a job's http = { ... } ---------------------------------------------------------- */

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", NULL};

static const char *http_keys_hint = "http takes url, method, headers, body and expect";

const struct key_spec config_http_call_keys[] = {
    {"url", K_STRING, offsetof(struct conf_http_call, url), "\"https://host.example/hook\"", NULL,
     0, false, NULL},
    {"method", K_STRING, offsetof(struct conf_http_call, method), "\"POST\"", NULL, 0, false, NULL},
    {"headers", K_CUSTOM, 0, "[ \"Content-Type: application/json\" ]", NULL, 0, false, NULL},
    {"body", K_STRING, offsetof(struct conf_http_call, body), "\"{}\"", NULL, 0, true, NULL},
    {"expect", K_CUSTOM, 0, "[ 200, 201 ]", NULL, 0, false, NULL},
    {NULL, 0, 0, NULL, NULL, 0, false, NULL},
};

static bool header_ok(const char *h)
{
	const char *colon = strchr(h, ':');
	if (!colon || colon == h)
		return false;
	for (const char *c = h; c < colon; c++) /* an RFC 9110 token */
		if (!isalnum((unsigned char)*c) && !strchr("!#$%&'*+-.^_`|~", *c))
			return false;
	for (const char *c = colon; *c; c++)
		if ((unsigned char)*c < 0x20 && *c != '\t')
			return false;
	return true;
}

/* Each header's value is never put in a message: it may be a credential. */
static void parse_headers(struct loader *L, const config_setting_t *s, const char *file,
                          struct conf_http_call *h)
{
	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		config_report_at(L, s, file,
		                 "headers must be a list of \"Name: value\" strings like "
		                 "[ \"Content-Type: application/json\" ]");
		return;
	}
	int n = config_setting_length(s);
	h->headers = calloc(n ? (size_t)n : 1, sizeof(*h->headers));
	if (!h->headers) {
		L->oom = true;
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v = config_setting_type(e) == CONFIG_TYPE_STRING
		                    ? config_setting_get_string(e)
		                    : NULL;
		if (!v || !header_ok(v)) {
			config_report_at(
			    L, e, file,
			    "headers: entry %d is not \"Name: value\" (a name of letters, "
			    "digits and -, a colon, then the value without line breaks)",
			    i + 1);
			continue;
		}
		if (text_utf8_invalid_at(v, strlen(v)) != strlen(v)) {
			config_report_at(
			    L, e, file,
			    "headers: entry %d is not valid UTF-8; save the file as UTF-8", i + 1);
			continue;
		}
		h->headers[h->n_headers++] = config_dup_str(L, v);
	}
}

static void parse_expect(struct loader *L, const config_setting_t *s, const char *file,
                         struct conf_http_call *h)
{
	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		config_report_at(L, s, file,
		                 "expect must be a list of status codes like [ 200, 201 ]");
		return;
	}
	int n = config_setting_length(s);
	if (n == 0) {
		config_report_at(L, s, file,
		                 "expect is empty; list the status codes that mean success, like "
		                 "[ 200, 201 ], or remove it (any 2xx)");
		return;
	}
	h->expect = calloc((size_t)n, sizeof(*h->expect));
	if (!h->expect) {
		L->oom = true;
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		int t = config_setting_type(e);
		long long v = t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64
		                  ? config_setting_get_int64(e)
		                  : -1;
		if (v < 100 || v > 599) {
			config_report_at(
			    L, e, file,
			    "expect: each status code is a number from 100 to 599, like "
			    "[ 200, 201 ]");
			continue;
		}
		h->expect[h->n_expect++] = (int)v;
	}
}

void config_parse_http_call(struct loader *L, const config_setting_t *s, const char *file,
                            struct conf_job *j)
{
	if (!config_setting_is_group(s)) {
		config_report_at(L, s, file,
		                 "http must be a group like http = { url = "
		                 "\"https://host.example/hook\"; method = \"POST\"; };");
		return;
	}
	struct conf_http_call *h = calloc(1, sizeof(*h));
	if (!h) {
		L->oom = true;
		return;
	}
	config_http_call_free(&j->http);
	j->http = h;
	h->line = setting_line(s);
	int n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
		const char *name = config_setting_name(m);
		const struct key_spec *k = config_find_key(config_http_call_keys, name);
		if (!k)
			config_report_unknown(L, m, file, config_http_call_keys, " in http",
			                      http_keys_hint);
		else if (strcmp(name, "expect") == 0)
			parse_expect(L, m, file, h);
		else if (strcmp(name, "headers") == 0)
			parse_headers(L, m, file, h);
		else if (!config_apply_key(L, m, k, h, file))
			continue;
		else if (strcmp(name, "url") == 0 && h->url)
			config_check_url(L, m, file, "url", h->url);
		else if (strcmp(name, "method") == 0 && h->method) {
			size_t x;
			for (char *c = h->method; *c; c++)
				*c = (char)toupper((unsigned char)*c);
			for (x = 0; methods[x]; x++)
				if (strcmp(methods[x], h->method) == 0)
					break;
			if (!methods[x])
				config_report_at(
				    L, m, file,
				    "method \"%s\" is not one pgcrond sends; use GET, POST, "
				    "PUT, PATCH, DELETE or HEAD",
				    h->method);
		}
	}
	if (!config_setting_get_member(s, "url"))
		config_report(L, file, h->line,
		              "http has no url; add url = \"https://host.example/path\"");
	if (!h->method)
		h->method = config_dup_str(L, h->body ? "POST" : "GET");
	else if (h->body && (strcmp(h->method, "GET") == 0 || strcmp(h->method, "HEAD") == 0))
		config_report(L, file, h->line,
		              "http has a body but method %s sends none; use method = \"POST\" (or "
		              "PUT, PATCH), or remove the body",
		              h->method);
	char url[900], shown[1000];
	httpc_url_shown(h->url ? h->url : "", url, sizeof(url));
	snprintf(shown, sizeof(shown), "%s %s", h->method ? h->method : "GET", url);
	h->shown = config_dup_str(L, shown);
}

/* ---- copies ------------------------------------------------------------------------ */

void config_http_call_free(struct conf_http_call **hp)
{
	struct conf_http_call *h = *hp;
	if (!h)
		return;
	free(h->url);
	free(h->method);
	text_free_list(h->headers, h->n_headers);
	free(h->body);
	free(h->expect);
	free(h->shown);
	free(h);
	*hp = NULL;
}

struct conf_http_call *config_http_call_dup(const struct conf_http_call *src, bool *oom)
{
	if (!src)
		return NULL;
	struct conf_http_call *h = calloc(1, sizeof(*h));
	if (!h) {
		*oom = true;
		return NULL;
	}
	h->line = src->line;
	h->url = config_dup_or(src->url, oom);
	h->method = config_dup_or(src->method, oom);
	h->body = config_dup_or(src->body, oom);
	h->shown = config_dup_or(src->shown, oom);
	if ((h->headers = config_dup_strs(src->headers, src->n_headers, oom)))
		h->n_headers = src->n_headers;
	if (src->n_expect) {
		h->expect = calloc(src->n_expect, sizeof(*h->expect));
		if (!h->expect) {
			*oom = true;
		} else {
			memcpy(h->expect, src->expect, src->n_expect * sizeof(*h->expect));
			h->n_expect = src->n_expect;
		}
	}
	return h;
}

bool config_http_call_eq(const struct conf_http_call *a, const struct conf_http_call *b)
{
	if (!a || !b)
		return a == b;
	if (!config_str_eq(a->url, b->url) || !config_str_eq(a->method, b->method) ||
	    !config_str_eq(a->body, b->body) ||
	    !config_names_eq(a->headers, a->n_headers, b->headers, b->n_headers) ||
	    a->n_expect != b->n_expect)
		return false;
	return a->n_expect == 0 || memcmp(a->expect, b->expect, a->n_expect * sizeof(int)) == 0;
}
