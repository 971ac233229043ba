/* pg_net's API served by pgcrond (docs/sql-api.md, "pg_net's API"): net.http_post and
 * net.http_get from SQL reach a local HTTPS server (a throwaway CA trusted through
 * http_client.ca_file) after the caller's commit, and leave their responses in
 * net._http_response for the caller only; a rolled back call sends nothing; a cron job
 * that posts every 2 seconds keeps posting; bad URLs fail at the call with pg_net's
 * messages; a refused connection and a server that does not answer leave pg_net's error
 * rows. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

#define DB "it_pg_net"
#define APP "it_pg_net_app"
#define OTHER "it_pg_net_other"
#define NONE "it_pg_net_none"

/* /ok answers 200 "hello BODY" with a header X-Seen, /big?n=N a body of N bytes
 * ("0123456789" repeated); every request is appended to requests.txt with its X-Token and
 * Content-Type. A socket that accepts and never answers.
 * Writes "PORT OTHER SILENT" (OTHER unused here). */
static const char server_py[] =
    "import http.server, socketserver, ssl, socket, sys, os, threading\n"
    "d = sys.argv[1]\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *a): pass\n"
    "    def handle_any(self):\n"
    "        n = int(self.headers.get('Content-Length') or 0)\n"
    "        body = self.rfile.read(n) if n else b''\n"
    "        with open(os.path.join(d, 'requests.txt'), 'ab') as f:\n"
    "            f.write(('%s %s token=%s ctype=%s\\n' % (self.command, self.path,\n"
    "                     self.headers.get('X-Token'), self.headers.get('Content-Type')))\n"
    "                    .encode() + body + b'\\n')\n"
    "        out = b'hello ' + body\n"
    "        if self.path.startswith('/big?n='):\n"
    "            n = int(self.path[len('/big?n='):])\n"
    "            out = (b'0123456789' * (n // 10 + 1))[:n]\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Type', 'text/plain; charset=utf-8')\n"
    "        self.send_header('X-Seen', 'yes')\n"
    "        self.send_header('Content-Length', str(len(out)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(out)\n"
    "    do_GET = do_POST = do_DELETE = handle_any\n"
    "class S(socketserver.ThreadingMixIn, http.server.HTTPServer):\n"
    "    daemon_threads = True\n"
    "def serve(cert, key):\n"
    "    s = S(('127.0.0.1', 0), H)\n"
    "    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "    c.load_cert_chain(cert, key)\n"
    "    s.socket = c.wrap_socket(s.socket, server_side=True)\n"
    "    return s\n"
    "a = serve(os.path.join(d, 'srv.pem'), os.path.join(d, 'srv.key'))\n"
    "silent = socket.socket(); silent.bind(('127.0.0.1', 0)); silent.listen(16)\n"
    "with open(os.path.join(d, 'ports.tmp'), 'w') as f:\n"
    "    f.write('%d %d %d\\n' % (a.server_address[1], 0, silent.getsockname()[1]))\n"
    "os.rename(os.path.join(d, 'ports.tmp'), os.path.join(d, 'ports.txt'))\n"
    "a.serve_forever()\n";

static pid_t server_start(const char *dir, int *port, int *other, int *silent)
{
	char *p = NULL;
	pid_t pid = itest_script_start(dir, server_py, &p);
	ck_assert_msg(p && sscanf(p, "%d %d %d", port, other, silent) == 3, "no server: '%s'",
	              p ? p : "");
	free(p);
	return pid;
}

static PGconn *role_conn(const struct itest_env *e, const char *role)
{
	char ci[1024];
	snprintf(ci, sizeof(ci), "%s user=%s", e->ci, role);
	return itest_connect(ci);
}

/* The error SQL fails with on C (primary message), or "" if it succeeds. */
static char *error_of(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	char *out = strdup(m ? m : "");
	PQclear(r);
	return out;
}

static void assert_error(PGconn *c, const char *sql, const char *want)
{
	char *got = error_of(c, sql);
	ck_assert_msg(strstr(got, want) != NULL, "%s\nfailed with \"%s\", not \"%s\"", sql, got,
	              want);
	free(got);
}

/* Whether the response to request ID (as ROLE sees it) is there within TIMEOUT_S. */
static bool wait_response(PGconn *c, const char *id, double timeout_s)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) > 0 FROM net._http_response WHERE id = %s", id);
	return itest_wait_sql(c, sql, timeout_s);
}

static char *response(PGconn *c, const char *id, const char *cols)
{
	char sql[512];
	snprintf(sql, sizeof(sql), "SELECT %s FROM net._http_response WHERE id = %s", cols, id);
	return itest_scalar(c, sql);
}

START_TEST(pg_net_what_the_user_sees)
{
	struct itest_env e;
	int port, unused, silent, status;
	char sql[1024];

	itest_env_init(&e, "pgnet", DB);
	itest_make_certs(e.dir);
	pid_t srv = server_start(e.dir, &port, &unused, &silent);
	char *reqs = itest_env_path(&e, "requests.txt");
	itest_env_main(&e, "http_client = { ca_file = \"%s/ca.pem\"; };\n", e.dir);
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	free(out);
	const char *roles[] = {APP, OTHER, NONE};
	for (int i = 0; i < 3; i++) {
		snprintf(sql, sizeof(sql), "DROP OWNED BY %s; DROP ROLE %s", roles[i], roles[i]);
		PQclear(PQexec(e.db, sql));
		snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN", roles[i]);
		itest_exec(e.db, sql);
	}
	/* what an admin does to let a role call pg_net's functions (and schedule jobs) */
	itest_exec(e.db, "GRANT USAGE ON SCHEMA net, cron TO " APP ", " OTHER);
	itest_env_start(&e);
	PGconn *app = role_conn(&e, APP), *other = role_conn(&e, OTHER),
	       *none = role_conn(&e, NONE);

	/* a POST with a JSON body and a header of the caller's: sent after the commit, and its
	 * response is there within 5 s */
	snprintf(sql, sizeof(sql),
	         "SELECT net.http_post('https://localhost:%d/ok', '{\"n\": 1}'::jsonb,"
	         " headers := '{\"X-Token\": \"t-post\"}'::jsonb)",
	         port);
	char *post = itest_scalar(app, sql);
	ck_assert_msg(wait_response(app, post, 5), "no response to the POST within 5 s:\n%s",
	              itest_tail(e.log));
	char *v = response(app, post,
	                   "status_code || ' ' || content || ' ' || content_type || ' ' ||"
	                   " (headers->>'X-Seen') || ' ' || timed_out || ' ' ||"
	                   " coalesce(error_msg, '-')");
	ck_assert_str_eq(v, "200 hello {\"n\": 1} text/plain; charset=utf-8 yes false -");
	free(v);
	char *r = itest_read_file(reqs);
	ck_assert_msg(strstr(r, "POST /ok token=t-post ctype=application/json\n{\"n\": 1}\n"), "%s",
	              r);
	free(r);

	/* a GET with query parameters, url-encoded as pg_net does */
	snprintf(sql, sizeof(sql),
	         "SELECT net.http_get('https://localhost:%d/ok', params := '{\"q\": \"a b&c\"}',"
	         " headers := '{\"X-Token\": \"t-get\"}')",
	         port);
	char *get = itest_scalar(app, sql);
	ck_assert_msg(wait_response(app, get, 5), "no response to the GET within 5 s:\n%s",
	              itest_tail(e.log));
	v = response(app, get, "status_code || ' ' || content");
	ck_assert_str_eq(v, "200 hello ");
	free(v);
	r = itest_read_file(reqs);
	ck_assert_msg(strstr(r, "GET /ok?q=a%20b%26c token=t-get ctype=None\n"), "%s", r);
	free(r);

	/* a rolled back call sends nothing: a later committed one is answered, the rolled back
	 * one never reached the server */
	itest_exec(app, "BEGIN");
	snprintf(sql, sizeof(sql), "SELECT net.http_get('https://localhost:%d/ok?rolled=back')",
	         port);
	char *rolled = itest_scalar(app, sql);
	itest_exec(app, "ROLLBACK");
	snprintf(sql, sizeof(sql), "SELECT net.http_delete('https://localhost:%d/ok?after=1')",
	         port);
	char *after = itest_scalar(app, sql);
	ck_assert_msg(wait_response(app, after, 5), "no response to the DELETE:\n%s",
	              itest_tail(e.log));
	r = itest_read_file(reqs);
	ck_assert_msg(strstr(r, "DELETE /ok?after=1 ") && !strstr(r, "rolled=back"), "%s", r);
	free(r);
	v = response(app, rolled, "count(*)");
	ck_assert_str_eq(v, "0");
	free(v);

	/* a job on '2 seconds' that posts keeps posting */
	snprintf(sql, sizeof(sql),
	         "SELECT cron.schedule('poster', '2 seconds', $$SELECT net.http_post("
	         "'https://localhost:%d/ok?poster=1', '{\"p\": 1}')$$) > 0",
	         port);
	itest_assert_scalar(app, sql, "t");
	ck_assert_msg(itest_wait_sql(app,
	                             "SELECT count(*) >= 3 FROM net._http_response"
	                             " WHERE content = 'hello {\"p\": 1}' AND status_code = 200",
	                             20),
	              "the job did not keep posting:\n%s", itest_tail(e.log));
	itest_assert_scalar(app, "SELECT cron.unschedule('poster')", "t");

	/* another role sees none of APP's responses nor queued requests, and cannot pass for
	 * APP or take an id; a role without the grant cannot call at all */
	itest_assert_scalar(other, "SELECT count(*) FROM net._http_response", "0");
	itest_assert_scalar(other, "SELECT count(*) FROM net.http_request_queue", "0");
	itest_assert_scalar(other, "DELETE FROM net._http_response RETURNING 1", "NULL");
	assert_error(other,
	             "INSERT INTO net.http_request_queue (method, url, timeout_milliseconds, "
	             "username) VALUES ('GET', 'https://localhost/', 1000, '" APP "')",
	             "permission denied");
	assert_error(other,
	             "INSERT INTO net.http_request_queue (id, method, url, timeout_milliseconds)"
	             " VALUES (999999, 'GET', 'https://localhost/', 1000)",
	             "permission denied");
	assert_error(none, "SELECT net.http_get('https://localhost/')",
	             "permission denied for schema net");
	v = response(app, post, "count(*)");
	ck_assert_str_eq(v, "1"); /* still there for APP, answered once */
	free(v);

	/* bad URLs fail at the call, with pg_net's messages */
	assert_error(app, "SELECT net.http_get('localhost:6666')",
	             "invalid URL \"localhost:6666\": Unsupported URL scheme");
	assert_error(app, "SELECT net.http_get('/malformed_url')",
	             "invalid URL \"/malformed_url\"");
	assert_error(app, "SELECT net.http_get('ftp://localhost/x')",
	             "invalid URL \"ftp://localhost/x\": Unsupported URL scheme");
	assert_error(app, "SELECT net.http_get('https:///x')",
	             "invalid URL \"https:///x\": No host part in the URL");
	/* a password and a token stay out of the error (it reaches logs and a job's history) */
	char *e_pw =
	    error_of(app, "SELECT net.http_get('ftp://bot:s3cret@localhost/x?token=t0ken')");
	ck_assert_str_eq(e_pw, "invalid URL \"ftp://...@localhost/x?...\": Unsupported URL scheme");
	free(e_pw);
	/* ... also before a scheme (a leading space) and with a '/' in the password */
	e_pw = error_of(app, "SELECT net.http_get(' https://bot:s3/cret@localhost/x')");
	ck_assert_str_eq(e_pw, "invalid URL \" https://...@localhost/x\": Bad scheme");
	free(e_pw);
	/* an '@' in the user name or the password: refused where it is, as pgcrond check says it
	 * (curl would call it a bad port or host name), without the password */
	e_pw = error_of(app, "SELECT net.http_get('http://us@er:s3cret@localhost/x')");
	ck_assert_str_eq(e_pw, "invalid URL \"http://...@localhost/x\": has an '@' in its user "
	                       "name; write it as %40 (an '@' ends the user name and password)");
	free(e_pw);
	e_pw = error_of(app, "SELECT net.http_get('https://bot:s3cret@pw@localhost/x?t=1')");
	ck_assert_str_eq(e_pw,
	                 "invalid URL \"https://...@localhost/x?...\": has an '@' in its "
	                 "password; write it as %40 (an '@' ends the user name and password)");
	free(e_pw);
	e_pw = error_of(app, "SELECT net.http_get('https://b@t:s3@cret@localhost/')");
	ck_assert_str_eq(e_pw, "invalid URL \"https://...@localhost/\": has an '@' in its user "
	                       "name and in its password; write each as %40 (an '@' ends the user "
	                       "name and password)");
	free(e_pw);
	v = error_of(app, "SELECT net.http_get('https://b%40t:s3%40cret@localhost/a@b')");
	ck_assert_str_eq(v, ""); /* written as it should be; an '@' in the path is the server's */
	free(v);
	assert_error(app, "SELECT net.http_post(NULL, '{}')", "null value in column \"url\"");
	assert_error(app,
	             "SELECT net.http_post('https://localhost/', '{}', headers := "
	             "'{\"Content-Type\": \"text/plain\"}')",
	             "Content-Type header must be \"application/json\"");

	/* bounded: any role may queue, and the daemon reads a claimed request whole */
	assert_error(app, "SELECT net.http_get('https://localhost/' || repeat('a', 9000))",
	             "url_at_most_8kb");
	assert_error(app,
	             "SELECT net.http_get('https://localhost/', timeout_milliseconds := 600000)",
	             "timeout_1ms_to_5min");

	/* nothing listening: an error row; a server that never answers: timed_out */
	char *refused = itest_scalar(app, "SELECT net.http_get('https://127.0.0.1:1/')");
	snprintf(sql, sizeof(sql),
	         "SELECT net.http_get('https://127.0.0.1:%d/', timeout_milliseconds := 1000)",
	         silent);
	char *hung = itest_scalar(app, sql);
	/* URLs the client does not send, as pgcrond check refuses them (written to the queue
	 * directly, past the functions' check): an error row saying why, without the password */
	char *at = itest_scalar(app, "INSERT INTO net.http_request_queue (method, url,"
	                             " timeout_milliseconds) VALUES ('GET',"
	                             " 'https://bot:s3cret@pw@127.0.0.1:1/x', 1000) RETURNING id");
	char *zero = itest_scalar(app, "SELECT net.http_get('https://127.0.0.1:0/')");
	ck_assert_msg(wait_response(app, refused, 10) && wait_response(app, hung, 10) &&
	                  wait_response(app, at, 10) && wait_response(app, zero, 10),
	              "no error rows:\n%s", itest_tail(e.log));
	v = response(app, at, "coalesce(status_code::text, 'null') || ' ' || error_msg");
	ck_assert_str_eq(v, "null the url has an '@' in its password; write it as %40 (an '@' ends "
	                    "the user name and password)");
	free(v);
	v = response(app, zero, "error_msg");
	ck_assert_str_eq(v,
	                 "url https://127.0.0.1:0/ has port 0; write the port the server listens "
	                 "on, or no ':' for the scheme's own");
	free(v);
	v = response(app, refused,
	             "coalesce(status_code::text, 'null') || ' ' || timed_out || ' ' || error_msg");
	ck_assert_msg(strncmp(v, "null false ", 11) == 0 && strstr(v, "onnect"), "%s", v);
	free(v);
	v = response(app, hung, "coalesce(status_code::text, 'null') || ' ' || timed_out");
	ck_assert_str_eq(v, "null true");
	free(v);
	v = response(app, hung, "error_msg");
	ck_assert_msg(v && *v, "no error_msg for the timeout");
	free(v);

	/* responses older than pg_net.ttl are deleted (the daemon does it once a minute) */
	itest_exec(e.db, "UPDATE net._http_response SET created = now() - interval '7 hours'"
	                 " WHERE id = "
	                 "(SELECT min(id) FROM net._http_response)");
	itest_assert_scalar(e.db, "SELECT pgcrond.net_expire(100)", "1");
	itest_exec(e.db, "SET pg_net.ttl = '0 s'");
	itest_assert_scalar(e.db, "SELECT pgcrond.net_expire(100000) > 0", "t");
	itest_assert_scalar(e.db, "SELECT count(*) FROM net._http_response", "0");
	itest_exec(e.db, "RESET pg_net.ttl");

	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	r = itest_read_file(e.log);
	ck_assert_msg(!strstr(r, "t-post") && !strstr(r, "t-get"), "a header is in the log:\n%s",
	              r);
	ck_assert_msg(!strstr(r, "s3cret"), "a URL's password is in the log:\n%s", r);
	free(r);
	free(post);
	free(get);
	free(rolled);
	free(after);
	free(refused);
	free(hung);
	free(at);
	free(zero);
	PQfinish(app);
	PQfinish(other);
	PQfinish(none);
	kill(srv, SIGTERM);
	waitpid(srv, NULL, 0);
	free(reqs);
	itest_env_teardown(&e);
}
END_TEST

/* E: a fresh database DBNAME (temp dir TAG) with pgcrond installed and HTTP trusting the test
 * CA, and the test's servers (server_start: *PORT the HTTPS one); returns their pid. */
static pid_t pgnet_env(struct itest_env *e, const char *tag, const char *dbname, int *port)
{
	int unused, silent, status;

	itest_env_init(e, tag, dbname);
	itest_make_certs(e->dir);
	pid_t srv = server_start(e->dir, port, &unused, &silent);
	itest_env_main(e, "http_client = { ca_file = \"%s/ca.pem\"; };\n", e->dir);
	char *out = itest_cli(&status, "install", "-c", e->conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	free(out);
	return srv;
}

/* Responses that cannot be written when they come: a session holds net._http_response
 * (SHARE), pgcrond.net_respond waits for it and the daemon's session is terminated there;
 * on the new one it fails (its lock_timeout, 2 s) while the table is still held. Once it is
 * free, every response is there within seconds, without a new request or the minute's
 * sweep to carry it. */
START_TEST(pg_net_responses_outlive_a_lost_session_and_a_failed_write)
{
	struct itest_env e;
	int port;
	char sql[1024];

	pid_t srv = pgnet_env(&e, "pgnetlost", DB "_lost", &port);
	itest_env_start(&e);
	ck_assert(itest_env_wait(
	    &e, 10, "SELECT count(*) = 1 FROM pg_stat_activity WHERE " ITEST_OWN_SESSIONS));

	PGconn *holder = itest_connect(e.ci);
	itest_exec(holder, "BEGIN; LOCK TABLE net._http_response IN SHARE MODE");
	snprintf(sql, sizeof(sql),
	         "SELECT net.http_get('https://localhost:%d/ok?n=' || i) FROM "
	         "generate_series(1, 3) i",
	         port);
	itest_exec(e.db, sql);
	itest_env_kill_own_waiting(&e, "net_respond", "could not be written to net._http_response");
	itest_exec(holder, "COMMIT");
	PQfinish(holder);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 3 FROM net._http_response WHERE "
	                             "status_code = 200 AND content = 'hello '"),
	              "responses lost or late: %lld of 3\n%s",
	              itest_env_count(&e, "SELECT count(*) FROM net._http_response"),
	              itest_tail(e.log));

	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	kill(srv, SIGTERM);
	waitpid(srv, NULL, 0);
	itest_env_teardown(&e);
}
END_TEST

/* A large response body is kept whole, as pg_net keeps it: 3 MB, and
 * 9 MB, more than one statement of responses holds (JBATCH_MAX_BYTES: it goes alone), beside
 * a small one asked in the same transaction. Past http_client.pg_net_max_response (1MB
 * after a reload) the start is kept and error_msg says it was cut and what to do. */
#define BIG_BODY(n) "left(repeat('0123456789', " #n " / 10 + 1), " #n ")"
START_TEST(pg_net_large_bodies_whole)
{
	struct itest_env e;
	int port;
	char sql[1024];

	pid_t srv = pgnet_env(&e, "pgnetbig", DB "_big", &port);
	itest_env_start(&e);

	itest_exec(e.db, "BEGIN");
	snprintf(sql, sizeof(sql), "SELECT net.http_get('https://localhost:%d/big?n=3145728')",
	         port);
	char *mb3 = itest_scalar(e.db, sql);
	snprintf(sql, sizeof(sql), "SELECT net.http_get('https://localhost:%d/big?n=9437184')",
	         port);
	char *mb9 = itest_scalar(e.db, sql);
	snprintf(sql, sizeof(sql), "SELECT net.http_get('https://localhost:%d/ok')", port);
	char *small = itest_scalar(e.db, sql);
	itest_exec(e.db, "COMMIT");
	ck_assert_msg(wait_response(e.db, mb3, 30) && wait_response(e.db, mb9, 30) &&
	                  wait_response(e.db, small, 30),
	              "responses missing:\n%s", itest_tail(e.log));
	char *v = response(e.db, mb3,
	                   "status_code || ' ' || length(content) || ' ' || (content = " BIG_BODY(
	                       3145728) ") || ' ' || coalesce(error_msg, 'NULL')");
	ck_assert_str_eq(v, "200 3145728 true NULL");
	free(v);
	v = response(e.db, mb9,
	             "status_code || ' ' || length(content) || ' ' || (content = " BIG_BODY(
	                 9437184) ") || ' ' || coalesce(error_msg, 'NULL')");
	ck_assert_str_eq(v, "200 9437184 true NULL");
	free(v);
	v = response(e.db, small, "status_code || ' ' || content");
	ck_assert_str_eq(v, "200 hello ");
	free(v);

	/* past the limit: the start kept, and said */
	itest_env_main(
	    &e, "http_client = { ca_file = \"%s/ca.pem\"; pg_net_max_response = \"1MB\"; };\n",
	    e.dir);
	itest_env_reload(&e);
	snprintf(sql, sizeof(sql), "SELECT net.http_get('https://localhost:%d/big?n=3145728')",
	         port);
	char *cut = itest_scalar(e.db, sql);
	ck_assert_msg(wait_response(e.db, cut, 30), "no response:\n%s", itest_tail(e.log));
	v = response(e.db, cut,
	             "status_code || ' ' || length(content) || ' ' || (content = " BIG_BODY(
	                 1048576) ") || ' ' || timed_out || ' ' || error_msg");
	ck_assert_str_eq(v, "200 1048576 true false the response body was cut at 1048576 bytes "
	                    "(http_client.pg_net_max_response): content holds its start, the rest "
	                    "was not read; raise pg_net_max_response in pgcrond.conf (at most "
	                    "64MB), or ask the server for less");
	free(v);

	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	free(mb3);
	free(mb9);
	free(small);
	free(cut);
	kill(srv, SIGTERM);
	waitpid(srv, NULL, 0);
	itest_env_teardown(&e);
}
END_TEST

/* Where schema net is not pgcrond's (pg_net, or another role's), install leaves it alone
 * and says so, and the daemon does not serve it. */
START_TEST(pg_net_foreign_schema_left_alone)
{
	struct itest_env e;
	int status;
	itest_env_init(&e, "pgnetforeign", DB "_foreign");
	itest_exec(e.db, "CREATE SCHEMA net; CREATE TABLE net.http_request_queue (id int)");
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	ck_assert_msg(strstr(out, "pgcrond leaves it alone"), "%s", out);
	free(out);
	itest_assert_scalar(
	    e.db, "SELECT to_regprocedure('net.http_get(text,jsonb,jsonb,integer)')", "NULL");
	itest_assert_scalar(e.db, "SELECT pgcrond.net_served()", "f");
	itest_assert_scalar(e.db, "SELECT count(*) FROM pgcrond.net_claim(10)", "0");
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pg_net");
	TCase *tc = tcase_create("pg_net");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, pg_net_what_the_user_sees);
	tcase_add_test(tc, pg_net_foreign_schema_left_alone);
	tcase_add_test(tc, pg_net_responses_outlive_a_lost_session_and_a_failed_write);
	tcase_add_test(tc, pg_net_large_bodies_whole);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
