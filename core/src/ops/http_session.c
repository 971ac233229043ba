/* The page's sessions: a role logs in with its password, which pgcrond checks by connecting
 * to the history database as that role (whatever pg_hba.conf asks); that connection is the
 * session's, and every action is the SQL API called on it with parameters, so PostgreSQL
 * decides what the role may do. The connect runs on a worker thread: libpq computes the
 * SCRAM proof with the iteration count the role's verifier names, which the role itself may
 * set as high as it likes. The password is given to libpq and wiped; a session ends on
 * logout, after SESS_IDLE_S without a POST, and when its connection ends. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>

#include "bgwork.h"
#include "clock.h"
#include "config.h"
#include "conndrv.h"
#include "cron.h"
#include "http_priv.h"
#include "pgconn.h"
#include "tls_listen.h"

#define SESS_MAX 64
#define SESS_PER_ROLE 4
#define LOGINS_MAX 4 /* being checked at once; LOGINS_PER_PEER of them from one address */
#define LOGINS_PER_PEER 2
#define SESS_IDLE_S (30 * 60)
#define SESS_CONNECT_MS 10000
#define SESS_STATEMENT_MS 60000
/* logins an address may try for a role in LOGIN_WINDOW_S without one succeeding */
#define LOGIN_TRIES 10
#define LOGIN_WINDOW_S 60
/* over TLS the __Host- prefix: a browser takes it only from this origin, Secure, Path=/ */
#define COOKIE(h) ((h)->tls ? "__Host-pgcrond_session=" : "pgcrond_session=")

enum sess_state { SESS_CONNECTING, SESS_IDLE, SESS_BUSY };

struct sess {
	LIST_ENTRY(sess) link;
	struct http *h;
	char id[33], csrf[33]; /* hex of 16 random bytes each */
	char role[64];         /* NAMEDATALEN: the server cuts a longer name there too */
	char peer[48];
	struct bgwork_job job; /* the login's connect, on a worker thread */
	char pw[1024];         /* wiped once libpq has it */
	PGconn *made;          /* what the worker made */
	struct conndrv drv;
	struct event idle;
	enum sess_state state;
	struct evhttp_request *req; /* waiting for the login or the statement */
	PGresult *res;              /* the statement's first result */
	bool raw;                   /* reply with its value as the JSON document */
	char what[200];             /* the action and its job, for the log */
};

/* The actions on a job: POST /jobs/NAME/ACTION, NAME the first parameter, the form's
 * schedule, command and database the next (edit; an empty database is the history database,
 * the one the page logs in to). pgcrond.page_jobid finds the jobid of a job made in
 * SQL; cron.alter_job and cron.unschedule then decide as for any caller. */
static const struct {
	const char *action, *sql;
	int nparams;
} actions[] = {
    {"pause", "SELECT cron.alter_job(pgcrond.page_jobid($1), active => false)", 1},
    {"resume", "SELECT cron.alter_job(pgcrond.page_jobid($1), active => true)", 1},
    {"edit",
     "SELECT cron.alter_job(pgcrond.page_jobid($1), schedule => nullif($2, ''),"
     " command => nullif($3, ''), database => CASE $4::pg_catalog.text WHEN '' THEN"
     " pg_catalog.current_database()::pg_catalog.text ELSE $4 END)",
     4},
    {"trigger", "SELECT pgcrond.trigger($1)", 1},
    {"drop", "SELECT pgcrond.drop_waiting($1)", 1},
    {"unschedule", "SELECT cron.unschedule(pgcrond.page_jobid($1))", 1},
};

static void random_hex(char out[33])
{
	unsigned char b[16];
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		abort(); /* the kernel's generator does not fail for 16 bytes once seeded */
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void sess_free(struct sess *s)
{
	LIST_REMOVE(s, link);
	s->h->n_sessions--;
	if (s->req)
		http_reply_error(s->req, 503, "Service Unavailable",
		                 "the session's database connection ended");
	conndrv_close(&s->drv);
	event_del(&s->idle);
	PQclear(s->res);
	explicit_bzero(s->id, sizeof(s->id));
	free(s);
}

void http_sessions_free(struct http *h)
{
	bgwork_free(&h->login_bg); /* the logins under way end first */
	while (!LIST_EMPTY(&h->sessions))
		sess_free(LIST_FIRST(&h->sessions));
}

static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sess *s = arg;
	log_notice("http: the page's session of role %s ended after %d minutes idle", s->role,
	           SESS_IDLE_S / 60);
	sess_free(s);
}

static void touch(struct sess *s)
{
	struct timeval tv = {SESS_IDLE_S, 0};
	evtimer_add(&s->idle, &tv);
}

/* The session of REQ's cookie, or NULL. */
static struct sess *find_sess(struct http *h, struct evhttp_request *req)
{
	const char *c = evhttp_find_header(evhttp_request_get_input_headers(req), "Cookie");
	size_t n = strlen(COOKIE(h));
	char id[33] = "";
	/* the cookie of that exact name: "a=pgcrond_session=..." is another cookie's value */
	for (const char *p = c; p && !*id; p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL) {
		p += strspn(p, " \t");
		if (strncmp(p, COOKIE(h), n) == 0 && strspn(p + n, "0123456789abcdef") == 32)
			memcpy(id, p + n, 32);
	}
	if (!*id)
		return NULL;
	struct sess *s;
	LIST_FOREACH(s, &h->sessions, link)
		if (s->state != SESS_CONNECTING && http_same_secret(id, s->id))
			return s;
	return NULL;
}

/* The logins PEER tried as ROLE in the last window without success, after ADD: 1 when one
 * starts (counted before it is checked, so that logins in parallel count too), 0 to look,
 * -1 when one succeeded (which forgets them). */
static int login_tries(struct http *h, const char *peer, const char *role, int add)
{
	int64_t now = clock_mono_us();
	char key[sizeof(h->tries[0].key)];
	struct login_tries *t = NULL, *oldest = &h->tries[0];
	snprintf(key, sizeof(key), "%s %s", peer, role);
	for (size_t i = 0; i < sizeof(h->tries) / sizeof(h->tries[0]); i++) {
		if (strcmp(h->tries[i].key, key) == 0)
			t = &h->tries[i];
		if (h->tries[i].since_us < oldest->since_us)
			oldest = &h->tries[i];
	}
	if (t && (add < 0 || now - t->since_us > (int64_t)LOGIN_WINDOW_S * 1000000))
		t->failed = 0;
	if (!t && add > 0) {
		t = oldest;
		snprintf(t->key, sizeof(t->key), "%s", key);
		t->failed = 0;
	}
	if (t && add > 0 && t->failed++ == 0)
		t->since_us = now;
	return t ? t->failed : 0;
}

/* The body's form fields into Q (evhttp_clear_headers frees them); false if unreadable. */
static bool form(struct evhttp_request *req, struct evkeyvalq *q)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	char *body = evbuffer_add(in, "", 1) == 0 ? (char *)evbuffer_pullup(in, -1) : NULL;
	bool ok = body && evhttp_parse_query_str(body, q) == 0;
	if (!ok)
		TAILQ_INIT(q);
	if (body)
		explicit_bzero(body, strlen(body));
	return ok;
}

/* A cookie for the browser's session (none: ID ""), which the idle time ends on our side. */
static void set_cookie(const struct http *h, struct evhttp_request *req, const char *id)
{
	char c[160];
	snprintf(c, sizeof(c), "%s%s; Path=/;%s HttpOnly; SameSite=Strict%s", COOKIE(h), id,
	         *id ? "" : " Max-Age=0;", h->tls ? "; Secure" : "");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie", c);
}

/* ---- the connection (conndrv.h) ------------------------------------------------------- */

static void login_done(struct sess *s, const char *error)
{
	struct evhttp_request *req = s->req;
	s->req = NULL;
	if (error) {
		int n = login_tries(s->h, s->peer, s->role, 0);
		log_warning("http: login of role %s from %s refused (%d in the last minute): %s",
		            s->role, s->peer, n, error);
		http_reply_error(req, 401, "Unauthorized", error);
		sess_free(s);
		return;
	}
	s->state = SESS_IDLE;
	touch(s);
	login_tries(s->h, s->peer, s->role, -1);
	log_notice("http: role %s logged in to the page from %s", s->role, s->peer);
	set_cookie(s->h, req, s->id);
	http_reply_json(req, 200, "OK", json_pack("{s:s,s:s}", "role", s->role, "csrf", s->csrf));
}

static void connected(void *arg)
{
	struct sess *s = arg;
	char *pw = PQpass(s->drv.conn); /* libpq's copy, and ours: not kept past the login */
	if (pw)
		explicit_bzero(pw, strlen(pw));
	const char *who = PQparameterStatus(s->drv.conn, "session_authorization");
	if (who) /* the role as the server took it, for the log */
		snprintf(s->role, sizeof(s->role), "%s", who);
	/* pg_hba.conf trusting the connection (trust, peer, a certificate) takes any password */
	login_done(s, PQconnectionUsedPassword(s->drv.conn)
	                  ? NULL
	                  : "the server did not ask this role for its password (pg_hba.conf trusts "
	                    "the connection); the page logs in only with a password");
}

static void failed(void *arg, const char *why, bool was_ready)
{
	struct sess *s = arg;
	if (!was_ready) {
		login_done(s, why);
		return;
	}
	log_notice("http: the page's session of role %s ended with its connection: %s", s->role,
	           why);
	sess_free(s);
}

/* The statement's end: its value, or the database's error, to the request. */
static void statement_done(struct sess *s)
{
	struct evhttp_request *req = s->req;
	PGresult *r = s->res;
	s->req = NULL;
	s->res = NULL;
	s->state = SESS_IDLE;
	conndrv_idle(&s->drv);
	if (r && PQresultStatus(r) == PGRES_TUPLES_OK) {
		const char *v = PQntuples(r) && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : NULL;
		log_job(s->raw ? LOG_LVL_DEBUG : LOG_LVL_NOTICE, NULL, "http: role %s: %s", s->role,
		        s->what);
		if (s->raw)
			http_reply(req, 200, "OK", "application/json", v ? v : "null",
			           v ? strlen(v) : 4);
		else
			http_reply_json(req, 200, "OK",
			                json_pack("{s:b,s:s?}", "ok", 1, "value", v));
	} else {
		const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
		const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
		bool denied = st && strcmp(st, "42501") == 0;
		m = m ? m : PQerrorMessage(s->drv.conn);
		log_notice("http: role %s: %s refused: %s", s->role, s->what, m);
		http_reply_json(req, denied ? 403 : 400, denied ? "Forbidden" : "Bad Request",
		                json_pack("{s:s,s:s?,s:s?}", "error", m, "detail",
		                          r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL,
		                          "hint",
		                          r ? PQresultErrorField(r, PG_DIAG_MESSAGE_HINT) : NULL));
	}
	PQclear(r);
}

static void readable(void *arg)
{
	struct sess *s = arg;
	PGnotify *n;
	while ((n = PQnotifies(s->drv.conn)))
		PQfreemem(n);
	while (s->state == SESS_BUSY && !PQisBusy(s->drv.conn)) {
		PGresult *r = PQgetResult(s->drv.conn);
		if (!r) {
			statement_done(s);
			break;
		}
		if (s->res)
			PQclear(r);
		else
			s->res = r;
	}
}

static const struct conndrv_ops sess_ops = {
    .connected = connected, .readable = readable, .failed = failed};

/* Send SQL with PARAMS on S for REQ; WHAT names it in the log. */
static void run(struct sess *s, struct evhttp_request *req, const char *sql, int n,
                const char *const *params, bool raw)
{
	if (s->state != SESS_IDLE) {
		http_reply_error(req, 409, "Conflict",
		                 "this session's last request is still under way; try again");
		return;
	}
	s->state = SESS_BUSY;
	s->req = req;
	s->raw = raw;
	conndrv_busy(&s->drv, SESS_STATEMENT_MS);
	if (!PQsendQueryParams(s->drv.conn, sql, n, NULL, params, NULL, NULL, 0) ||
	    !conndrv_flush(&s->drv))
		conndrv_fail(&s->drv, NULL); /* failed() answers REQ */
}

/* The login's connect, blocking, on a worker thread (S's role and password, and the
 * daemon's conninfo, which outlives every session). The history database's server and dbname
 * and how to reach it safely are the daemon's; the role and password are their own keywords;
 * the daemon's user, password, password file and client certificate stay its own, and
 * libpq's defaults for a client certificate (~/.postgresql, PGSSLCERT) are not taken (the
 * key is read only with a certificate). */
static void login_work(struct bgwork_job *job)
{
	static const char *const take = " service host hostaddr port dbname sslmode sslrootcert "
	                                "sslcrl sslcrldir channel_binding require_auth "
	                                "ssl_min_protocol_version requirepeer target_session_attrs "
	                                "gssencmode krbsrvname ";
	struct sess *s = (struct sess *)((char *)job - offsetof(struct sess, job));
	PQconninfoOption *opts = PQconninfoParse(s->h->conninfo, NULL);
	const char *kw[32] = {"connect_timeout", "client_encoding", "application_name", "user",
	                      "password",        "options",         "sslcert"};
	const char *val[32] = {
	    "10", "UTF8", "pgcrond page", s->role, s->pw, PGCONN_PINNED_OPTION, "/nonexistent"};
	size_t n = 7;
	char k[40];
	for (PQconninfoOption *o = opts; o && o->keyword && n < 31; o++) {
		snprintf(k, sizeof(k), " %s ", o->keyword);
		if (o->val && *o->val && strstr(take, k)) {
			kw[n] = o->keyword;
			val[n++] = o->val;
		}
	}
	s->made = opts ? PQconnectdbParams(kw, val, 0) : NULL;
	PQconninfoFree(opts);
}

/* Back on the loop: the connection made becomes the session's (connected() or failed()). */
static void login_made(struct bgwork_job *job, bool ran)
{
	struct sess *s = (struct sess *)((char *)job - offsetof(struct sess, job));
	PGconn *c = s->made;
	char why[512] = "the password could not be checked now (out of memory, or stopping)";
	explicit_bzero(s->pw, sizeof(s->pw));
	s->made = NULL;
	if (c && PQstatus(c) == CONNECTION_OK) {
		conndrv_adopt(&s->drv, c, s->h->conninfo);
		return;
	}
	if (ran && c)
		pgconn_error_safe(c, NULL, why, sizeof(why));
	PQfinish(c);
	login_done(s, why);
}

/* ---- the requests ---------------------------------------------------------------------- */

static void serve_login(struct http *h, struct evhttp_request *req, struct evkeyvalq *q)
{
	const char *role = evhttp_find_header(q, "role");
	char *pw = (char *)evhttp_find_header(q, "password");
	const char *peer = http_peer(req);
	/* the connection's own TLS: a bufferevent that could not be made for TLS is plain */
	bool tls =
	    h->tls &&
	    tls_listen_used(evhttp_connection_get_bufferevent(evhttp_request_get_connection(req)));
	if (!tls && !config_http_loopback(peer)) {
		http_reply_error(req, 403, "Forbidden",
		                 "logging in from another host needs TLS (http.tls_cert_file and "
		                 "tls_key_file): a password would cross the network in clear");
		return;
	}
	if (!h->conninfo) {
		http_reply_error(req, 503, "Service Unavailable",
		                 "pgcrond has no history database, which a role logs in to");
		return;
	}
	if (!role || !*role || !pw || !*pw) {
		http_reply_error(req, 400, "Bad Request", "give a role and its password");
		return;
	}
	int logins = 0, from_peer = 0, of_role = 0;
	struct sess *o;
	LIST_FOREACH(o, &h->sessions, link) {
		logins += o->state == SESS_CONNECTING;
		from_peer += o->state == SESS_CONNECTING && strcmp(o->peer, peer) == 0;
		of_role += o->state != SESS_CONNECTING && strcmp(o->role, role) == 0;
	}
	const char *busy = h->n_sessions >= SESS_MAX  ? "too many sessions are open"
	                   : of_role >= SESS_PER_ROLE ? "this role has too many sessions open; "
	                                                "log out of one"
	                   : logins >= LOGINS_MAX || from_peer >= LOGINS_PER_PEER
	                       ? "too many logins are being checked"
	                   : login_tries(h, peer, role, 1) > LOGIN_TRIES
	                       ? "too many logins of this role from this address"
	                       : NULL;
	if (busy) {
		char m[160];
		snprintf(m, sizeof(m), "%s; try again in a minute", busy);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "60");
		http_reply_error(req, 429, "Too Many Requests", m);
		return;
	}
	struct sess *s = calloc(1, sizeof(*s));
	if (s) {
		snprintf(s->role, sizeof(s->role), "%s", role);
		snprintf(s->pw, sizeof(s->pw), "%s", pw); /* (one longer is a wrong password) */
	}
	explicit_bzero(pw, strlen(pw));
	if (!s) {
		http_reply_error(req, 500, "Internal Server Error", "out of memory");
		return;
	}
	s->h = h;
	s->req = req;
	snprintf(s->peer, sizeof(s->peer), "%s", peer);
	random_hex(s->id);
	random_hex(s->csrf);
	evtimer_assign(&s->idle, h->base, idle_cb, s);
	LIST_INSERT_HEAD(&h->sessions, s, link);
	h->n_sessions++;
	conndrv_init(&s->drv, h->base, &sess_ops, s, "the page's session", PGCONN_NOTICES_PER_MIN,
	             60000, SESS_CONNECT_MS);
	s->job = (struct bgwork_job){.work = login_work, .done = login_made};
	if ((!h->login_bg && bgwork_new(h->base, LOGINS_MAX, &h->login_bg) < 0) ||
	    bgwork_submit(h->login_bg, &s->job) < 0)
		login_made(&s->job, false);
}

/* GET /schedule.json?schedule=TEXT: its next five fires as the daemon reads it (each Unix
 * seconds and the offset of the daemon's zone then), or why it cannot be read. */
static void serve_fires(struct http *h, struct evhttp_request *req)
{
	struct evkeyvalq q;
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	TAILQ_INIT(&q);
	const char *text = query && evhttp_parse_query_str(query, &q) == 0
	                       ? evhttp_find_header(&q, "schedule")
	                       : NULL;
	char err[256] = "no schedule";
	cron_expr e;
	json_t *doc = json_pack("{s:s,s:[]}", "zone", h->tz ? cron_tz_name(h->tz) : "UTC", "fires");
	int64_t t = clock_wall_us() / 1000000;
	if (!text || cron_parse(text, &e, err, sizeof(err)) < 0)
		json_object_set_new(doc, "error", json_string(err));
	else
		for (int i = 0; i < 5 && (t = cron_next(&e, h->tz, t)) != CRON_NEVER; i++)
			json_array_append_new(
			    json_object_get(doc, "fires"),
			    json_pack("[I,i]", (json_int_t)t, cron_tz_offset(h->tz, t)));
	http_reply_json(req, 200, "OK", doc);
	evhttp_clear_headers(&q);
}

bool http_session_route(struct http *h, struct evhttp_request *req, const char *path, bool post)
{
	if (!post) {
		struct sess *s = find_sess(h, req);
		bool fires = strcmp(path, "/schedule.json") == 0;
		if (!fires && strcmp(path, "/session.json") != 0) {
			return false;
		} else if (!s) {
			http_reply_error(req, 401, "Unauthorized", "not logged in");
		} else if (fires) {
			serve_fires(h, req);
		} else {
			const char *p[] = {s->csrf};
			snprintf(s->what, sizeof(s->what), "read the page's state");
			run(s, req,
			    "SELECT pgcrond.page_state() || jsonb_build_object('csrf', $1::text)",
			    1, p, true);
		}
		return true;
	}
	struct evkeyvalq q;
	if (!form(req, &q)) {
		http_reply_error(req, 400, "Bad Request",
		                 "the body is not a form (x-www-form-urlencoded)");
		evhttp_clear_headers(&q);
		return true;
	}
	struct sess *s = find_sess(h, req);
	const char *csrf = evhttp_find_header(&q, "csrf");
	static const char prefix[] = "/jobs/";
	const char *name = strncmp(path, prefix, sizeof(prefix) - 1) == 0 ? path + 6 : NULL;
	const char *slash = name ? strrchr(name, '/') : NULL;
	if (s && csrf && http_same_secret(csrf, s->csrf))
		touch(s); /* the idle time counts from the last action, not the page's polls */
	if (strcmp(path, "/login") == 0) {
		serve_login(h, req, &q);
	} else if (!s) {
		http_reply_error(req, 401, "Unauthorized",
		                 "log in first (POST /login with role and password), or send the "
		                 "bearer token of http.token_file");
	} else if (!csrf || !http_same_secret(csrf, s->csrf)) {
		log_warning("http: role %s: a POST to %s without the page's token refused", s->role,
		            path);
		http_reply_error(req, 403, "Forbidden",
		                 "the page's token (form field csrf) is missing or wrong");
	} else if (strcmp(path, "/logout") == 0) {
		log_notice("http: role %s logged out of the page", s->role);
		set_cookie(h, req, "");
		http_reply_json(req, 200, "OK", json_pack("{s:b}", "ok", 1));
		sess_free(s);
	} else if (strcmp(path, "/jobs") == 0) {
		const char *p[] = {
		    evhttp_find_header(&q, "name"), evhttp_find_header(&q, "schedule"),
		    evhttp_find_header(&q, "command"), evhttp_find_header(&q, "database")};
		bool other = p[3] && *p[3]; /* as with pg_cron, a grant decides if the role may */
		snprintf(s->what, sizeof(s->what), "create job \"%.100s\"%s%.64s", p[0] ? p[0] : "",
		         other ? " in database " : "", other ? p[3] : "");
		run(s, req,
		    other ? "SELECT cron.schedule_in_database($1, $2, $3, $4)"
		          : "SELECT cron.schedule($1, $2, $3)",
		    other ? 4 : 3, p, false);
	} else {
		size_t i = 0, n = sizeof(actions) / sizeof(actions[0]);
		for (; slash && i < n; i++)
			if (strcmp(slash + 1, actions[i].action) == 0)
				break;
		char job[201];
		if (!slash || i == n || slash - name < 1 ||
		    slash - name >= (ptrdiff_t)sizeof(job)) {
			http_reply_error(req, 404, "Not Found",
			                 "POST /jobs/NAME/ACTION: ACTION is pause, resume, edit, "
			                 "trigger, drop or unschedule");
		} else {
			memcpy(job, name, (size_t)(slash - name));
			job[slash - name] = '\0';
			char *dec = evhttp_uridecode(job, 0, NULL);
			snprintf(job, sizeof(job), "%s", dec ? dec : "");
			free(dec);
			const char *p[] = {job, evhttp_find_header(&q, "schedule"),
			                   evhttp_find_header(&q, "command"),
			                   evhttp_find_header(&q, "database")};
			snprintf(s->what, sizeof(s->what), "%s \"%.120s\"", actions[i].action, job);
			run(s, req, actions[i].sql, actions[i].nparams, p, false);
		}
	}
	evhttp_clear_headers(&q);
	return true;
}
