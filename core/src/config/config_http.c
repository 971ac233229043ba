/* The http = { ... } group of pgcrond.conf: where the HTTP listener (http.c) listens, whether
 * it may face other hosts, and the bearer token those hosts and every control request must
 * send. Pure logic over the file system like the rest of the loader: no libevent. The token
 * is read here so that a bad token file is a config error with its FILE:LINE; it is never
 * put into a message. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_priv.h"

/* Shorter tokens are guessable; `openssl rand -hex 32` makes 64 characters. */
#define TOKEN_MIN 16
#define TOKEN_MAX 4096

#define HTTP(field) offsetof(struct pgc_config, http.field)
const struct key_spec config_http_keys[] = {
    {"listen", K_STRING, HTTP(listen), "\"127.0.0.1:9187\"", NULL, 0, false, NULL},
    {"allow_remote", K_BOOL, HTTP(allow_remote), "true", NULL, 0, false, NULL},
    {"token_file", K_STRING, HTTP(token_file), "\"/etc/pgcrond/http.token\"", NULL, 0, false, NULL},
    {"max_connections", K_INT, HTTP(max_connections), "64", NULL, 1, false, NULL},
    {"timeout", K_DURATION, HTTP(timeout_ms), "\"10s\"", NULL, 1, false, NULL},
    {"tls_cert_file", K_STRING, HTTP(tls_cert_file), "\"/etc/pgcrond/http.pem\"", NULL, 0, false,
     NULL},
    {"tls_key_file", K_STRING, HTTP(tls_key_file), "\"/etc/pgcrond/http.key\"", NULL, 0, false,
     NULL},
    {NULL, 0, 0, NULL, NULL, 0, false, NULL},
};

/* http.listen: split "ADDRESS:PORT" (IPv6 in brackets) into HOST and *PORT. Returns 0,
 * -EINVAL (not that shape), -ERANGE (port above 65535) or -EADDRNOTAVAIL (HOST is not a
 * numeric address: names are never resolved). */
static int split_listen(const char *listen, char *host, size_t hostlen, int *port)
{
	const char *colon, *h = listen;
	size_t hl;

	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		h = listen + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(listen, ':');
		if (!colon || strchr(listen, ':') != colon)
			return -EINVAL;
		hl = (size_t)(colon - listen);
	}
	if (hl == 0 || hl >= hostlen)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	const char *p = colon + 1;
	if (!*p || strlen(p) > 5 || strspn(p, "0123456789") != strlen(p))
		return -EINVAL;
	long v = strtol(p, NULL, 10);
	if (v > 65535)
		return -ERANGE;
	*port = (int)v;
	unsigned char buf[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1)
		return -EADDRNOTAVAIL;
	return 0;
}

bool config_http_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, host, &a6) == 1 &&
	       (IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127));
}

void config_parse_http(struct loader *L, const config_setting_t *s, const char *file)
{
	struct conf_http *h = &L->cfg->http;

	if (!config_setting_is_group(s)) {
		config_report_at(
		    L, s, file,
		    "http must be a group like http = { listen = \"127.0.0.1:9187\"; };");
		return;
	}
	h->file = config_dup_str(L, setting_file(s, file));
	h->line = setting_line(s);
	size_t before = L->n_errors;
	config_parse_group(L, s, file, config_http_keys, L->cfg, " in http",
	                   "http takes listen, allow_remote, token_file, max_connections, timeout, "
	                   "tls_cert_file and tls_key_file "
	                   "(pgcrond.conf(5))");
	/* a misspelt or mistyped key is the one thing to fix: no follow-up messages */
	if (L->n_errors != before)
		return;
	const config_setting_t *ls = config_setting_get_member(s, "listen");
	const config_setting_t *ts = config_setting_get_member(s, "token_file");
	h->token_line = ts ? setting_line(ts) : 0;
	if (!ls) {
		config_report(
		    L, h->file, h->line,
		    "http has no listen; add listen = \"127.0.0.1:9187\" (or remove the http "
		    "group to serve nothing)");
		return;
	}
	char host[64];
	int rc = split_listen(h->listen, host, sizeof(host), &h->port);
	if (rc == -ERANGE) {
		config_report_at(L, ls, file, "http listen \"%s\": the port must be at most 65535",
		                 h->listen);
		return;
	}
	if (rc == -EADDRNOTAVAIL) {
		config_report_at(
		    L, ls, file,
		    "http listen \"%s\": \"%s\" is not a numeric IP address; write one like "
		    "\"127.0.0.1:9187\" or \"[::1]:9187\" (host names are not resolved)",
		    h->listen, host);
		return;
	}
	if (rc < 0) {
		config_report_at(L, ls, file,
		                 "http listen \"%s\" is not ADDRESS:PORT; write it like "
		                 "\"127.0.0.1:9187\" or \"[::1]:9187\"",
		                 h->listen);
		return;
	}
	h->host = config_dup_str(L, host);
	if (!config_http_loopback(host) && !h->allow_remote) {
		config_report_at(
		    L, ls, file,
		    "http listen \"%s\" is not a loopback address, so other hosts could reach the "
		    "status page and metrics; add allow_remote = true and token_file = \"FILE\" to "
		    "serve them with a bearer token, or listen on 127.0.0.1",
		    h->listen);
		return;
	}
	if (h->allow_remote && !h->token_file)
		config_report(
		    L, h->file, h->line,
		    "http: allow_remote = true needs token_file = \"FILE\", a file holding the "
		    "bearer token clients must send (make one with: openssl rand -hex 32 > FILE; "
		    "chmod 600 FILE; chown it to the user pgcrond runs as)");
}

/* Read the token of at most TOKEN_MAX bytes; trailing blanks and newlines are not part of
 * it. Returns 0, -EFBIG, or -errno of the read. */
static int read_token(const char *path, char **out)
{
	char *buf = malloc(TOKEN_MAX + 2);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	size_t n = 0;
	ssize_t r = 0;
	int rc = 0;

	if (!buf || fd < 0) {
		rc = !buf ? -ENOMEM : -errno;
		goto out;
	}
	while (n <= TOKEN_MAX && (r = read(fd, buf + n, TOKEN_MAX + 1 - n)) > 0)
		n += (size_t)r;
	if (r < 0) {
		rc = -errno;
		goto out;
	}
	if (n > TOKEN_MAX) {
		rc = -EFBIG;
		goto out;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
	                 buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
	*out = buf;
	buf = NULL;
out:
	if (fd >= 0)
		close(fd);
	if (buf) {
		explicit_bzero(buf, TOKEN_MAX + 2);
		free(buf);
	}
	return rc;
}

/* tls_cert_file and tls_key_file: both or neither, relative to the main file, the key
 * trusted like the token. (The listener loads them: http.c.) */
static void tls_files(struct loader *L, struct conf_http *h)
{
	char **f[] = {&h->tls_cert_file, &h->tls_key_file};
	if (!*f[0] != !*f[1])
		config_report(L, h->file, h->line,
		              "http: TLS needs both tls_cert_file (the certificate chain, PEM) and "
		              "tls_key_file (its private key, PEM)");
	for (int i = 0; i < 2 && *f[0] && *f[1]; i++) {
		char *p = config_join_path(L, L->main_dir, *f[i]);
		if (!p)
			return;
		free(*f[i]);
		*f[i] = p;
		if (access(p, R_OK) < 0)
			config_report(L, h->file, h->line, "http %s \"%s\" cannot be read: %s",
			              i ? "tls_key_file" : "tls_cert_file", p, strerror(errno));
		else if (i == 1)
			(void)config_check_trusted(L, p, false, "tls_key_file", h->file, h->line);
	}
}

void config_http_finish(struct loader *L)
{
	struct conf_http *h = &L->cfg->http;
	struct stat st;

	if (h->listen)
		tls_files(L, h);
	if (!h->token_file || !h->listen)
		return;
	const char *file = h->file;
	int line = h->token_line;
	/* relative to the main file, like the directories */
	char *tf = config_join_path(L, L->main_dir, h->token_file);
	if (!tf)
		return;
	free(h->token_file);
	h->token_file = tf;
	int rc = config_check_trusted(L, tf, false, "token_file", file, line);
	if (rc == -ENOENT)
		config_report(
		    L, file, line,
		    "token_file \"%s\" does not exist; create it with: openssl rand -hex 32 > %s; "
		    "chmod 600 %s; chown it to the user pgcrond runs as",
		    tf, tf, tf);
	if (rc < 0)
		return;
	if (stat(tf, &st) < 0 || !S_ISREG(st.st_mode)) {
		config_report(L, file, line, "token_file \"%s\" is not a regular file", tf);
		return;
	}
	if (st.st_mode & 077) {
		config_report(
		    L, file, line,
		    "token_file \"%s\" can be read by others (mode %04o); run chmod 600 %s", tf,
		    (unsigned)(st.st_mode & 07777), tf);
		return;
	}
	char *tok = NULL;
	rc = read_token(tf, &tok);
	if (rc == -ENOMEM) {
		L->oom = true;
		return;
	}
	if (rc == -EFBIG) {
		config_report(L, file, line,
		              "token_file \"%s\" is longer than %d bytes; put one token in it", tf,
		              TOKEN_MAX);
		return;
	}
	if (rc < 0) {
		config_report(L, file, line, "token_file \"%s\" cannot be read: %s", tf,
		              strerror(-rc));
		return;
	}
	size_t n = strlen(tok);
	bool printable = n > 0;
	for (size_t i = 0; i < n; i++)
		printable &= tok[i] > ' ' && tok[i] < 0x7f;
	if (n < TOKEN_MIN || !printable) {
		config_report(
		    L, file, line,
		    "token_file \"%s\" must hold one token of at least %d printable characters "
		    "without spaces (make one with: openssl rand -hex 32 > %s)",
		    tf, TOKEN_MIN, tf);
		explicit_bzero(tok, n);
		free(tok);
		return;
	}
	h->token = tok;
}

void config_http_free(struct conf_http *h)
{
	if (h->token)
		explicit_bzero(h->token, strlen(h->token));
	config_strs_free(h, config_http_strs);
	memset(h, 0, sizeof(*h));
}
