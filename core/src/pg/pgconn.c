#include "pgconn.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "text.h"

/* The "options" of pgcrond's own connections: the conninfo's own (or PGOPTIONS when it sets
 * none, which libpq would have used) followed by the pinned search_path, which wins since
 * the server applies "-c" settings in order. malloc'd; NULL when out of memory. */
char *pgconn_pinned_options(const char *conninfo)
{
	PQconninfoOption *opts = conninfo ? PQconninfoParse(conninfo, NULL) : NULL;
	const char *own = pgconn_option(opts, "options");
	char *out = NULL;

	if (!*own && getenv("PGOPTIONS"))
		own = getenv("PGOPTIONS");
	if (asprintf(&out, "%s%s%s", own, *own ? " " : "", PGCONN_PINNED_OPTION) < 0)
		out = NULL;
	PQconninfoFree(opts);
	return out;
}

const char *pgconn_option(const PQconninfoOption *opts, const char *key)
{
	for (const PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, key) == 0 && o->val)
			return o->val;
	return "";
}

/* The keywords and values of a connection to CONNINFO, those without a value left out: the
 * same for every connection, then (PINNED) the merged "options", then the resolved address
 * lists. KEYS and VALS have room for N_CONN_PARAMS entries.
 * TCP keepalives on, and sent data unacknowledged for 30 s ends the connection, so a peer
 * that vanished (a host down, a NAT that forgot the connection) is noticed in about 25 s, not
 * the kernel's two hours. They come before "dbname", so the operator's conninfo may set its
 * own (unix sockets ignore them).
 * Every connection speaks UTF8 whatever the database's encoding: the server converts job
 * output and error messages (a LATIN1 database's "café"), so history rows, logs and alerts
 * only ever hold UTF-8. As a startup parameter, not a SET: a session reset (DISCARD ALL)
 * returns to startup values, so it keeps this one. It comes after "dbname" so that a
 * client_encoding in the operator's conninfo cannot turn it off. */
#define N_CONN_PARAMS 13
static void conn_params(const char *conninfo, const char *application_name, const char *options,
                        const char *host, const char *hostaddr, const char *port, const char **keys,
                        const char **vals)
{
	const char *const kv[N_CONN_PARAMS - 1][2] = {
	    {"keepalives", "1"},
	    {"keepalives_idle", "10"},
	    {"keepalives_interval", "5"},
	    {"keepalives_count", "3"},
	    {"tcp_user_timeout", "30000"},
	    {"dbname", conninfo},
	    {"fallback_application_name", application_name},
	    {"client_encoding", "UTF8"},
	    {"options", options},
	    {"host", host},
	    {"hostaddr", hostaddr},
	    {"port", port}};
	size_t n = 0;

	for (size_t i = 0; i < N_CONN_PARAMS - 1; i++)
		if (kv[i][1]) {
			keys[n] = kv[i][0];
			vals[n++] = kv[i][1];
		}
	keys[n] = vals[n] = NULL;
}

int pgconn_start_at(const char *conninfo, const char *application_name, bool pinned,
                    const char *host, const char *hostaddr, const char *port, PGconn **out)
{
	/* expand_dbname = 1: "dbname" carries the whole conninfo (or URI). Keywords after it
	 * override it: client_encoding is always UTF8 (see conn_keys), the options of
	 * pgcrond's own connections pin search_path, and the addresses resolved for the
	 * conninfo's hosts replace its own lists. */
	const char *keys[N_CONN_PARAMS], *vals[N_CONN_PARAMS];
	char *options = NULL;

	*out = NULL;
	if (pinned && !(options = pgconn_pinned_options(conninfo)))
		return -ENOMEM;
	conn_params(conninfo, application_name, options, host, hostaddr, port, keys, vals);
	PGconn *c = PQconnectStartParams(keys, vals, 1);
	free(options); /* libpq copied it */

	*out = c;
	if (!c)
		return -ENOMEM;
	if (PQstatus(c) == CONNECTION_BAD)
		return -ECONNREFUSED;
	return 0;
}

static void one_line(const char *msg, char *buf, size_t len)
{
	size_t o = 0;

	if (len == 0)
		return;
	for (const char *p = msg ? msg : ""; *p && o + 1 < len; p++)
		buf[o++] = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : *p;
	buf[o] = '\0';
	text_utf8_trim(buf); /* cut to LEN: never inside a character */
	o = strlen(buf);
	while (o > 0 && buf[o - 1] == ' ')
		o--;
	buf[o] = '\0';
	/* libpq folds several lines ("connection to server ... failed: ...") into one; collapse
	 * the doubled blanks that leaves. */
	char *w = buf;
	for (char *r = buf; *r; r++)
		if (!(*r == ' ' && r[1] == ' '))
			*w++ = *r;
	*w = '\0';
}

bool pgconn_conninfo_parses(const char *conninfo)
{
	PQconninfoOption *opts = conninfo ? PQconninfoParse(conninfo, NULL) : NULL;

	PQconninfoFree(opts);
	return opts != NULL;
}

bool pgconn_conninfo_has_password(const char *conninfo)
{
	PQconninfoOption *opts = conninfo ? PQconninfoParse(conninfo, NULL) : NULL;
	bool has = *pgconn_option(opts, "password");

	PQconninfoFree(opts);
	return has;
}

/* The password as the user wrote it in a URI's userinfo (user:PASSWORD@host), which is what
 * libpq quotes from the raw string; malloc'd, or NULL if there is none. */
static char *uri_raw_password(const char *ci)
{
	const char *p;

	if (strncmp(ci, "postgresql://", 13) == 0)
		p = ci + 13;
	else if (strncmp(ci, "postgres://", 11) == 0)
		p = ci + 11;
	else
		return NULL;
	/* like libpq: userinfo is what precedes the first '@' before any '/' */
	size_t n = strcspn(p, "@/");
	if (p[n] != '@')
		return NULL;
	const char *colon = memchr(p, ':', n);
	if (!colon || colon + 1 == p + n)
		return NULL;
	return strndup(colon + 1, (size_t)(p + n - colon - 1));
}

/* VALUE with every byte outside RFC 3986's unreserved set as %XX (uppercase); malloc'd. */
static char *percent_encoded(const char *value)
{
	char *out = malloc(strlen(value) * 3 + 1), *w = out;

	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			*w++ = (char)*p;
		} else {
			*w++ = '%';
			*w++ = "0123456789ABCDEF"[*p >> 4];
			*w++ = "0123456789ABCDEF"[*p & 15];
		}
	}
	*w = '\0';
	return out;
}

const char *pgconn_scrub(const char *msg, const char *conninfo, char *buf, size_t len)
{
	char *needles[3] = {NULL, NULL, NULL};
	char *scrubbed = NULL;
	const char *shown = msg ? msg : "";
	bool withhold = false;

	if (len == 0)
		return buf;
	if (conninfo) {
		PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
		const char *pw = pgconn_option(opts, "password");
		if (opts && *pw) {
			needles[0] = strdup(pw);
			needles[1] = percent_encoded(pw);
			needles[2] = uri_raw_password(conninfo);
		}
		withhold = !opts || (*pw && (!needles[0] || !needles[1]));
		PQconninfoFree(opts);
		if (withhold)
			goto out;
	}
	if (needles[0]) {
		/* the whole message first, then folded and cut: cutting first could leave the
		 * start of a password that no longer matches */
		size_t n = strlen(shown), o = 0;
		scrubbed = malloc(n * 8 + 1); /* worst case: a one-byte password everywhere */
		if (!scrubbed) {
			withhold = true;
			goto out;
		}
		for (const char *p = shown; *p;) {
			size_t best = 0;
			for (int i = 0; i < 3; i++) {
				size_t k = needles[i] ? strlen(needles[i]) : 0;
				if (k > best && strncmp(p, needles[i], k) == 0)
					best = k;
			}
			if (best) {
				memcpy(scrubbed + o, "********", 8);
				o += 8;
				p += best;
			} else {
				scrubbed[o++] = *p++;
			}
		}
		scrubbed[o] = '\0';
		shown = scrubbed;
	}
out:
	if (withhold)
		snprintf(buf, len, "%s", PGCONN_MESSAGE_WITHHELD);
	else
		one_line(shown, buf, len);
	free(scrubbed);
	for (int i = 0; i < 3; i++)
		free(needles[i]);
	return buf;
}

const char *pgconn_error_safe(const PGconn *conn, const char *conninfo, char *buf, size_t len)
{
	pgconn_scrub(conn ? PQerrorMessage(conn) : "out of memory", conninfo, buf, len);
	if (len && !buf[0])
		snprintf(buf, len, "unknown libpq error");
	return buf;
}

/* The server's DETAIL and HINT matter to a person (which key is duplicated, what to do), so
 * they follow the primary message on the same line: "... DETAIL: ... HINT: ...". The LINE
 * and caret lines of a parameterized statement are left out. */
const char *pgconn_result_error(const PGresult *res, char *buf, size_t len)
{
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;

	if (!primary) {
		one_line(res ? PQresultErrorMessage(res) : "no result", buf, len);
	} else {
		/* a truncated message is still worth showing: what fits, as one line */
		snprintf(buf, len, "%s%s%s%s%s", primary, detail ? " DETAIL: " : "",
		         detail ? detail : "", hint ? " HINT: " : "", hint ? hint : "");
		one_line(buf, buf, len);
	}
	if (len && !buf[0])
		snprintf(buf, len, "%s", res ? PQresStatus(PQresultStatus(res)) : "no result");
	return buf;
}

int pgconn_check(const PGconn *conn, const PGresult *r, const char *what, char *err, size_t errlen)
{
	ExecStatusType s = PQresultStatus(r);
	char why[1024];

	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return 0;
	if (r)
		pgconn_result_error(r, why, sizeof(why));
	else
		pgconn_error_safe(conn, NULL, why, sizeof(why));
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	snprintf(err, errlen, "%s%s%s%s%s%s", what ? what : "", what ? ": " : "", why,
	         state ? " (SQLSTATE " : "", state ? state : "", state ? ")" : "");
	if (PQstatus(conn) == CONNECTION_BAD)
		return -ENOTCONN;
	if (state && strcmp(state, "42501") == 0)
		return -EACCES;
	return -EIO;
}

int pgconn_exec(PGconn *conn, const char *sql, int n, const char *const *p, PGresult **out,
                const char *what, char *err, size_t errlen)
{
	PGresult *r = n ? PQexecParams(conn, sql, n, NULL, p, NULL, NULL, 0) : PQexec(conn, sql);
	int rc = pgconn_check(conn, r, what, err, errlen);

	if (rc == 0 && out)
		*out = r;
	else
		PQclear(r);
	return rc;
}

bool pgconn_server_too_old(const PGconn *conn, char *why, size_t len)
{
	int v = PQserverVersion(conn);
	if (v <= 0 || v >= PGCONN_MIN_SERVER_VERSION)
		return false;
	/* server_version as the server reports it, up to a space ("13.23 (Debian ...)") */
	const char *name = PQparameterStatus(conn, "server_version");
	char found[32];
	if (name)
		snprintf(found, sizeof(found), "%.*s", (int)strcspn(name, " "), name);
	else
		snprintf(found, sizeof(found), "%d", v / 10000);
	snprintf(why, len,
	         "PostgreSQL %s is not supported (" PGCONN_SUPPORTED_SERVERS " are); upgrade the "
	         "server or point the database's conninfo at a supported one",
	         found);
	return true;
}

static PGconn *connect_blocking(const char *conninfo, const char *application_name, bool pinned,
                                char *err, size_t errlen)
{
	const char *keys[N_CONN_PARAMS], *vals[N_CONN_PARAMS];
	char *options = pinned ? pgconn_pinned_options(conninfo) : NULL;
	char why[512], safe[512];

	if (pinned && !options) {
		snprintf(err, errlen, "cannot connect: out of memory");
		errno = ENOMEM;
		return NULL;
	}
	conn_params(conninfo, application_name, options, NULL, NULL, NULL, keys, vals);
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	free(options);
	/* one state for all of a command's connections: a CLI command is short-lived */
	static struct pgconn_notices cli_notices;

	if (c && PQstatus(c) == CONNECTION_OK && pgconn_server_too_old(c, why, sizeof(why))) {
		/* the caller names the database; its conninfo would only lengthen the line */
		snprintf(err, errlen, "%s", why);
		PQfinish(c);
		errno = ENOTSUP;
		return NULL;
	}
	if (c && PQstatus(c) == CONNECTION_OK) {
		if (cli_notices.limit == 0)
			pgconn_notices_init(&cli_notices, NULL, PGCONN_NOTICES_PER_MIN, 60000);
		pgconn_log_notices(c, &cli_notices);
		return c;
	}
	if (!pgconn_conninfo_parses(conninfo)) {
		/* neither the string nor libpq's parse error can be shown: both may hold the
		 * password */
		snprintf(
		    err, errlen,
		    "cannot connect: libpq cannot parse the connection string; check its syntax "
		    "(neither the string nor libpq's message is shown because they may quote the "
		    "password)");
	} else {
		pgconn_error_safe(c, conninfo, why, sizeof(why));
		pgconn_redact_conninfo(conninfo, safe, sizeof(safe));
		snprintf(err, errlen, "cannot connect to \"%s\": %s", safe, why);
	}
	PQfinish(c);
	errno = ECONNREFUSED;
	return NULL;
}

PGconn *pgconn_connect_blocking(const char *conninfo, const char *application_name, char *err,
                                size_t errlen)
{
	/* a CLI command's connections are pgcrond's own: search_path pinned */
	return connect_blocking(conninfo, application_name, true, err, errlen);
}

PGconn *pgconn_connect_blocking_job(const char *conninfo, const char *application_name, char *err,
                                    size_t errlen)
{
	return connect_blocking(conninfo, application_name, false, err, errlen);
}

/* ---- notices ------------------------------------------------------------------------- */

void pgconn_notices_init(struct pgconn_notices *n, const char *label, unsigned limit,
                         int64_t window_ms)
{
	*n = (struct pgconn_notices){
	    .limit = limit,
	    .window_ms = window_ms,
	    .window_start_ms = clock_mono_ms(),
	};
	/* a label cut short still says what the connection is */
	snprintf(n->label, sizeof(n->label), "%s", label ? label : "");
}

void pgconn_notices_flush(struct pgconn_notices *n)
{
	const char *prefix = n->job ? "" : n->label;

	if (n->suppressed > 0)
		log_msg(LOG_LVL_WARNING, n->job,
		        "%s%s%lu further server notices suppressed (at most %u are logged %s)",
		        prefix, *prefix ? ": " : "", n->suppressed, n->limit,
		        n->window_ms > 0 ? "per minute" : "per run");
	n->logged = 0;
	n->suppressed = 0;
	if (n->window_ms > 0) /* a window of time; the pool's, per run, has none to start */
		n->window_start_ms = clock_mono_ms();
}

static enum log_level notice_level(const char *severity)
{
	if (!severity)
		return LOG_LVL_NOTICE;
	if (strcmp(severity, "WARNING") == 0)
		return LOG_LVL_WARNING;
	if (strcmp(severity, "INFO") == 0 || strcmp(severity, "LOG") == 0)
		return LOG_LVL_INFO;
	if (strncmp(severity, "DEBUG", 5) == 0)
		return LOG_LVL_DEBUG;
	return LOG_LVL_NOTICE;
}

static void notice_receiver(void *arg, const PGresult *res)
{
	struct pgconn_notices *n = arg;
	/* the severity not localized (so the level does not depend on lc_messages), as the
	 * server or libpq itself ("NOTICE") sent it */
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);

	if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
		n->fatal = true; /* suppressed or not */
	if (n->window_ms > 0 && clock_mono_ms() - n->window_start_ms >= n->window_ms)
		pgconn_notices_flush(n);
	if (n->logged >= n->limit) {
		/* counted only: a job raising notices in a loop must not flood the log or slow
		 * the loop down */
		n->suppressed++;
		return;
	}
	n->logged++;

	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	const char *prefix = n->job ? "" : n->label;
	char s[32], msg[1024], det[512], hin[256];

	if (!sev)
		sev = PQresultErrorField(res, PG_DIAG_SEVERITY);
	/* Everything the server sent is escaped: a notice is text a job chose, and must not
	 * be able to end the line and write a log line of its own. */
	log_escape(sev ? sev : "NOTICE", s, sizeof(s));
	log_escape(primary ? primary : PQresultErrorMessage(res), msg, sizeof(msg));
	log_escape(detail ? detail : "", det, sizeof(det));
	log_escape(hint ? hint : "", hin, sizeof(hin));
	log_msg(notice_level(sev), n->job, "%s%sserver %s: %s%s%s%s%s", prefix, *prefix ? ": " : "",
	        s, msg, det[0] ? " DETAIL: " : "", det, hin[0] ? " HINT: " : "", hin);
}

void pgconn_log_notices(PGconn *conn, struct pgconn_notices *n)
{
	n->fatal = false; /* a new connection */
	if (conn)
		PQsetNoticeReceiver(conn, notice_receiver, n);
}

int64_t pgconn_backoff_ms(unsigned attempt, int64_t min_ms, int64_t max_ms)
{
	static unsigned seed;
	int64_t d = min_ms;

	if (seed == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = (unsigned)ts.tv_nsec ^ ((unsigned)getpid() << 16) ^ 1u;
	}
	for (unsigned i = 0; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	if (d < 2)
		return d;
	return d / 2 + (int64_t)rand_r(&seed) % (d / 2 + 1);
}

/* ---- conninfo for log lines ---- */

/* Appends to OUT[*O] while there is room; the caller NUL-terminates. */
static void put_str(char *out, size_t *o, size_t outlen, const char *s)
{
	for (; *s && *o + 1 < outlen; s++)
		out[(*o)++] = *s;
}

/* A value in conninfo syntax: bare unless it is empty or holds blanks, quotes or
 * backslashes, which need '...' with \' and \\ inside. */
static void put_value(char *out, size_t *o, size_t outlen, const char *v)
{
	bool quote = !*v;

	for (const char *p = v; *p && !quote; p++)
		quote = isspace((unsigned char)*p) || *p == '\'' || *p == '\\';
	if (!quote) {
		put_str(out, o, outlen, v);
		return;
	}
	put_str(out, o, outlen, "'");
	for (const char *p = v; *p; p++) {
		char ch[3] = {'\\', *p, '\0'};
		put_str(out, o, outlen, (*p == '\'' || *p == '\\') ? ch : ch + 1);
	}
	put_str(out, o, outlen, "'");
}

void pgconn_redact_conninfo(const char *in, char *out, unsigned long outlen)
{
	PQconninfoOption *opts;
	size_t o = 0;

	if (outlen == 0)
		return;
	/* libpq's own parser, so whatever libpq would take as the password is what is hidden
	 * (quoting, escapes, URIs, percent-encoded query keys). Its error message is never
	 * asked for: it may quote the password. */
	opts = in ? PQconninfoParse(in, NULL) : NULL;
	if (!opts) {
		snprintf(out, outlen, "%s", PGCONN_CONNINFO_NOT_SHOWN);
		return;
	}
	for (const PQconninfoOption *opt = opts; opt->keyword; opt++) {
		if (!opt->val || !*opt->val)
			continue;
		if (o > 0)
			put_str(out, &o, outlen, " ");
		put_str(out, &o, outlen, opt->keyword);
		put_str(out, &o, outlen, "=");
		if (strcmp(opt->keyword, "password") == 0)
			put_str(out, &o, outlen, "********");
		else
			put_value(out, &o, outlen, opt->val);
	}
	out[o] = '\0';
	text_utf8_trim(out); /* cut to OUTLEN: never inside a character */
	PQconninfoFree(opts);
}

bool pgconn_data_error(const char *sqlstate)
{
	return sqlstate && (strncmp(sqlstate, "21", 2) == 0 || strncmp(sqlstate, "22", 2) == 0 ||
	                    strncmp(sqlstate, "23", 2) == 0 || strcmp(sqlstate, "54000") == 0);
}
