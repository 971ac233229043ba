/* HTTP jobs and the HTTPS webhook through the daemon (docs/jobs.md "HTTP jobs"), against a
 * local HTTPS server this test starts (python3's http.server with ssl) with a throwaway CA
 * made by openssl, trusted through http_client.ca_file. What a user sees of each bad input:
 * the history row (status, return_message, command), the daemon's log, and that nothing else
 * is held up or leaked (headers and query strings carry credentials). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

#define DB "it_http_jobs"

/* The server: /ok echoes, /fail500, /big (30 MB), /loop (redirects to itself), /latin1 (a
 * body that is not UTF-8), /drip (one byte a second), /hook (the webhook), /to-same (302 to
 * /ok), /to-other (307 to the third server's /ok: another origin), /to-http (302 to
 * http://); every request is appended to requests.txt with its Authorization and
 * X-Api-Key. Also a second server with a certificate no CA signed, a third one like the
 * first on another port (its requests in requests-other.txt), and a socket that accepts
 * nothing (a host that does not answer). Writes "PORT OTHER SILENT THIRD". */
static const char server_py[] =
    "import http.server, socketserver, ssl, socket, sys, time, os\n"
    "d = sys.argv[1]\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *a): pass\n"
    "    def note(self, body):\n"
    "        key = self.headers.get('X-Api-Key')\n"
    "        with open(os.path.join(d, self.server.log), 'ab') as f:\n"
    "            f.write(('%s %s auth=%s%s\\n' % (self.command, self.path,\n"
    "                     self.headers.get('Authorization'), ' key=' + key if key else '')\n"
    "                     ).encode() + body + b'\\n')\n"
    "    def send(self, code, body, extra=()):\n"
    "        self.send_response(code)\n"
    "        for k, v in extra: self.send_header(k, v)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def handle_any(self):\n"
    "        n = int(self.headers.get('Content-Length') or 0)\n"
    "        body = self.rfile.read(n) if n else b''\n"
    "        self.note(body)\n"
    "        p = self.path.split('?')[0]\n"
    "        if p.startswith('/bot'): p = '/' + p.split('/', 2)[2]\n"
    "        try:\n"
    "            if p == '/ok' or p == '/hook': self.send(200, b'hello ' + body)\n"
    "            elif p == '/fail500': self.send(500, b'boom')\n"
    "            elif p == '/loop': self.send(302, b'', [('Location', '/loop')])\n"
    "            elif p == '/to-same': self.send(302, b'', [('Location', '/ok')])\n"
    "            elif p == '/to-other':\n"
    "                self.send(307, b'', [('Location', 'https://localhost:%d/ok' % third)])\n"
    "            elif p == '/to-http':\n"
    "                self.send(302, b'', [('Location', 'http://localhost:%d/ok' % third)])\n"
    "            elif p == '/latin1': self.send(200, b'caf\\xe9 \\xff\\x00 ok')\n"
    "            elif p == '/big':\n"
    "                self.send_response(200)\n"
    "                self.send_header('Content-Length', str(30 * 1024 * 1024))\n"
    "                self.end_headers()\n"
    "                chunk = b'x' * 65536\n"
    "                for i in range(480): self.wfile.write(chunk)\n"
    "            elif p == '/drip':\n"
    "                self.send_response(200)\n"
    "                self.send_header('Content-Length', '100')\n"
    "                self.end_headers()\n"
    "                for i in range(100):\n"
    "                    self.wfile.write(b'.'); self.wfile.flush(); time.sleep(1)\n"
    "            else: self.send(404, b'no')\n"
    "        except (BrokenPipeError, ConnectionResetError, ssl.SSLError): pass\n"
    "    do_GET = do_POST = do_PUT = do_DELETE = handle_any\n"
    "class S(socketserver.ThreadingMixIn, http.server.HTTPServer):\n"
    "    daemon_threads = True\n"
    "def serve(cert, key, log='requests.txt'):\n"
    "    s = S(('127.0.0.1', 0), H)\n"
    "    s.log = log\n"
    "    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "    c.load_cert_chain(cert, key)\n"
    "    s.socket = c.wrap_socket(s.socket, server_side=True)\n"
    "    return s\n"
    "a = serve(os.path.join(d, 'srv.pem'), os.path.join(d, 'srv.key'))\n"
    "b = serve(os.path.join(d, 'self.pem'), os.path.join(d, 'self.key'))\n"
    "o = serve(os.path.join(d, 'srv.pem'), os.path.join(d, 'srv.key'), 'requests-other.txt')\n"
    "third = o.server_address[1]\n"
    "silent = socket.socket(); silent.bind(('127.0.0.1', 0)); silent.listen(16)\n"
    "import threading\n"
    "threading.Thread(target=b.serve_forever, daemon=True).start()\n"
    "threading.Thread(target=o.serve_forever, daemon=True).start()\n"
    "with open(os.path.join(d, 'ports.tmp'), 'w') as f:\n"
    "    f.write('%d %d %d %d\\n' % (a.server_address[1], b.server_address[1],\n"
    "                              silent.getsockname()[1], third))\n"
    "os.rename(os.path.join(d, 'ports.tmp'), os.path.join(d, 'ports.txt'))\n"
    "a.serve_forever()\n";

static pid_t server_start(const char *dir, int *port, int *other, int *silent, int *third)
{
	char *p = NULL;
	pid_t pid = itest_script_start(dir, server_py, &p);
	ck_assert_msg(p && sscanf(p, "%d %d %d %d", port, other, silent, third) == 4,
	              "no server: '%s'", p ? p : "");
	free(p);
	return pid;
}

static char *row(struct itest_env *e, const char *job, const char *col, const char *extra)
{
	char sql[1024];
	snprintf(sql, sizeof(sql),
	         "SELECT %s FROM pgcrond.job_run_details WHERE job_name = '%s' AND end_time IS "
	         "NOT NULL %s ORDER BY runid LIMIT 1",
	         col, job, extra ? extra : "");
	return itest_scalar(e->db, sql);
}

static void wait_ended(struct itest_env *e, const char *job, double timeout_s)
{
	ck_assert_msg(itest_env_wait(e, timeout_s,
	                             "SELECT count(*) > 0 FROM pgcrond.job_run_details WHERE "
	                             "job_name = '%s' AND end_time IS NOT NULL",
	                             job),
	              "job %s has no ended run:\n%s", job, itest_tail(e->log));
}

START_TEST(http_jobs_what_the_user_sees)
{
	struct itest_env e;
	int port, other, silent, third;
	itest_env_setup(&e, "httpjobs", DB);
	itest_make_certs(e.dir);
	pid_t srv = server_start(e.dir, &port, &other, &silent, &third);
	char *hooks = itest_env_path(&e, "requests.txt");

	itest_env_main(
	    &e,
	    "http_client = { ca_file = \"%s/ca.pem\"; max_response = \"1MB\"; "
	    "max_redirects = 3; };\n"
	    "alerts = ( { sink = \"log\"; }, { sink = \"webhook\"; "
	    "url = \"https://localhost:%d/hook?token=hook-secret\"; timeout = \"3s\"; } );\n",
	    e.dir, port);
	/* each job runs once, by trigger (an hourly schedule that does not fire meanwhile) */
	const char *every = "schedule = \"@yearly\"; ";
	itest_env_job(
	    &e, "10-http.conf",
	    "jobs = (\n"
	    "{ name = \"ok\"; %s http = { url = \"https://localhost:%d/ok?key=query-secret\"; "
	    "method = \"POST\"; headers = [ \"Authorization: Bearer sekrit-token\" ]; "
	    "body = \"{\\\"n\\\": 1}\"; expect = [ 200, 201 ]; }; },\n"
	    "{ name = \"e500\"; %s retries = 1; retry_delay = \"1s\"; "
	    "http = { url = \"https://localhost:%d/fail500\"; }; },\n"
	    "{ name = \"big\"; %s http = { url = \"https://localhost:%d/big\"; }; },\n"
	    "{ name = \"loop\"; %s http = { url = \"https://localhost:%d/loop\"; }; },\n"
	    "{ name = \"latin1\"; %s http = { url = \"https://localhost:%d/latin1\"; }; },\n"
	    "{ name = \"drip\"; %s timeout = \"3s\"; http = { url = \"https://localhost:%d/drip\"; "
	    "}; },\n"
	    "{ name = \"silent\"; %s timeout = \"2s\"; http = { url = \"https://127.0.0.1:%d/\"; "
	    "}; },\n"
	    "{ name = \"refused\"; %s http = { url = \"https://127.0.0.1:1/\"; }; },\n"
	    "{ name = \"untrusted\"; %s http = { url = \"https://localhost:%d/ok\"; }; },\n"
	    /* redirects: another origin gets no credential, plain http:// none at all */
	    "{ name = \"cross\"; %s http = { url = \"https://localhost:%d/to-other\"; "
	    "method = \"POST\"; headers = [ \"X-Api-Key: apikey-secret\", "
	    "\"Authorization: Bearer sekrit-token\", \"Content-Type: application/json\" ]; "
	    "body = \"{\\\"c\\\": 1}\"; }; },\n"
	    "{ name = \"same\"; %s http = { url = \"https://localhost:%d/to-same\"; "
	    "headers = [ \"X-Api-Key: same-origin-key\" ]; }; },\n"
	    "{ name = \"downgrade\"; %s http = { url = \"https://localhost:%d/to-http\"; "
	    "headers = [ \"X-Api-Key: apikey-secret\" ]; }; },\n"
	    /* a path that is a credential (a bot's /bot<TOKEN>/...), a password in the URL:
	     * in no row, no log */
	    "{ name = \"bot\"; %s http = { url = \"https://localhost:%d/botpath-secret/fail500\"; "
	    "}; },\n"
	    "{ name = \"botdown\"; %s http = { url = "
	    "\"https://bot:userinfo-secret@127.0.0.1:1/botpath-secret/x\"; "
	    "}; },\n"
	    "{ name = \"tick\"; schedule = \"1 seconds\"; command = \"SELECT 1\"; }\n"
	    ");\n",
	    every, port, every, port, every, port, every, port, every, port, every, port, every,
	    silent, every, every, other, every, port, every, port, every, port, every, port, every);
	itest_env_start(&e);
	static const char *const jobs[] = {"ok",   "e500",      "big",     "loop",      "latin1",
	                                   "drip", "silent",    "refused", "untrusted", "cross",
	                                   "same", "downgrade", "bot",     "botdown"};
	for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++) {
		int status;
		char *out = itest_cli(&status, "trigger", "-c", e.conf, jobs[i], NULL);
		ck_assert_msg(status == 0, "trigger %s: %s", jobs[i], out);
		free(out);
	}

	/* a response that comes: the status and the start of the body; headers and body reach
	 * the server; the credentials reach no log and no row */
	wait_ended(&e, "ok", 20);
	char want[256];
	snprintf(want, sizeof(want),
	         "succeeded HTTP 200: hello {\"n\": 1} | POST https://localhost:%d/...", port);
	itest_assert_scalar(e.db,
	                    "SELECT status || ' ' || return_message || ' | ' || command FROM "
	                    "pgcrond.job_run_details WHERE job_name = 'ok' ORDER BY runid LIMIT 1",
	                    want);
	/* 5xx: failed, retried once under the job's policy */
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 2 FROM pgcrond.job_run_details WHERE "
	                             "job_name = 'e500' AND end_time IS NOT NULL"),
	              "e500 was not retried:\n%s", itest_tail(e.log));
	itest_assert_scalar(e.db,
	                    "SELECT string_agg(status || ' ' || attempt || ' ' || return_message, "
	                    "'; ' ORDER BY attempt) FROM pgcrond.job_run_details WHERE job_name = "
	                    "'e500'",
	                    "failed 1 HTTP 500 (expected 2xx): boom; failed 2 HTTP 500 (expected "
	                    "2xx): boom");
	/* 30 MB: cut at max_response, and said so */
	wait_ended(&e, "big", 20);
	char *v = row(&e, "big", "status || ' ' || return_message", NULL);
	ck_assert_msg(v && strncmp(v, "succeeded HTTP 200: xxxx", 24) == 0 &&
	                  strstr(v, "[response over http_client.max_response, cut off]"),
	              "%s", v ? v : "NULL");
	free(v);
	/* a redirect loop */
	wait_ended(&e, "loop", 20);
	v = row(&e, "loop", "status || ' ' || return_message", NULL);
	ck_assert_msg(v && strncmp(v, "failed GET https://localhost:", 29) == 0 &&
	                  strstr(v, "Maximum (3) redirects followed") &&
	                  strstr(v, "a redirect loop"),
	              "%s", v ? v : "NULL");
	free(v);
	/* a body that is not UTF-8: the row is written, the bad bytes shown as U+FFFD */
	wait_ended(&e, "latin1", 20);
	v = row(&e, "latin1", "status || ' ' || return_message", NULL);
	ck_assert_msg(v && strcmp(v, "succeeded HTTP 200: caf\xef\xbf\xbd \xef\xbf\xbd  ok [the "
	                             "body is not UTF-8: invalid bytes shown as U+FFFD]") == 0,
	              "%s", v ? v : "NULL");
	free(v);
	/* a server that drips a byte a second ends at the job's timeout */
	wait_ended(&e, "drip", 20);
	v = row(&e, "drip",
	        "status || ' ' || (end_time - start_time < interval '6 s') || ' ' || "
	        "return_message",
	        NULL);
	ck_assert_msg(v && strncmp(v, "failed true GET https://localhost:", 34) == 0 &&
	                  strstr(v, "no complete response within"),
	              "%s", v ? v : "NULL");
	free(v);
	/* a host that accepts the connection and never answers */
	wait_ended(&e, "silent", 20);
	v = row(&e, "silent", "status || ' ' || return_message", NULL);
	ck_assert_msg(v && strstr(v, "failed") && strstr(v, "no complete response within"), "%s",
	              v ? v : "NULL");
	free(v);
	/* nothing listening */
	wait_ended(&e, "refused", 20);
	v = row(&e, "refused", "status || ' ' || return_message", NULL);
	ck_assert_msg(v && strstr(v, "failed GET https://127.0.0.1:1/: ") && strstr(v, "onnect"),
	              "%s", v ? v : "NULL");
	free(v);
	/* a certificate no trusted CA signed: a clear TLS error */
	wait_ended(&e, "untrusted", 20);
	v = row(&e, "untrusted", "status || ' ' || return_message", NULL);
	ck_assert_msg(v && strstr(v, "failed") && strstr(v, "TLS failed") &&
	                  strstr(v, "http_client.ca_file"),
	              "%s", v ? v : "NULL");
	free(v);

	/* a 307 to another origin (another port): followed with its body, without the
	 * credentials; one to the same origin keeps them; https:// never goes on to http:// */
	wait_ended(&e, "cross", 20);
	v = row(&e, "cross", "status || ' ' || return_message", NULL);
	ck_assert_msg(v && strcmp(v, "succeeded HTTP 200: hello {\"c\": 1}") == 0, "%s",
	              v ? v : "NULL");
	free(v);
	wait_ended(&e, "same", 20);
	v = row(&e, "same", "status || ' ' || return_message", NULL);
	ck_assert_msg(v && strcmp(v, "succeeded HTTP 200: hello ") == 0, "%s", v ? v : "NULL");
	free(v);
	wait_ended(&e, "downgrade", 20);
	v = row(&e, "downgrade", "status || ' ' || return_message", NULL);
	ck_assert_msg(v && strstr(v, "failed GET https://localhost:") &&
	                  strstr(v, "redirects to http://localhost:") &&
	                  strstr(v, "an https:// request is not followed to http://"),
	              "%s", v ? v : "NULL");
	free(v);
	char *other_path = itest_env_path(&e, "requests-other.txt");
	char *oreq = itest_read_file(other_path);
	ck_assert_msg(oreq && strstr(oreq, "POST /ok auth=None\n{\"c\": 1}\n") &&
	                  !strstr(oreq, "apikey-secret") && !strstr(oreq, "sekrit") &&
	                  !strstr(oreq, "GET /ok"),
	              "the other origin got: %s", oreq ? oreq : "NULL");
	free(oreq);
	free(other_path);

	/* a path is not shown: scheme, host and port are */
	wait_ended(&e, "bot", 20);
	snprintf(want, sizeof(want),
	         "failed HTTP 500 (expected 2xx): boom | GET https://localhost:%d/...", port);
	itest_assert_scalar(e.db,
	                    "SELECT status || ' ' || return_message || ' | ' || command FROM "
	                    "pgcrond.job_run_details WHERE job_name = 'bot' ORDER BY runid LIMIT 1",
	                    want);
	wait_ended(&e, "botdown", 20);
	v = row(&e, "botdown", "status || ' ' || return_message || ' | ' || command", NULL);
	ck_assert_msg(v && strstr(v, "failed GET https://127.0.0.1:1/...: ") &&
	                  strstr(v, " | GET https://127.0.0.1:1/..."),
	              "%s", v ? v : "NULL");
	free(v);

	/* the webhook over HTTPS got the alerts */
	ck_assert_msg(itest_wait_log(hooks, "\"kind\":\"failed\",\"job\":\"untrusted\"", 20),
	              "no alert on the webhook:\n%s", itest_read_file(hooks));
	/* the every-second SQL job kept its instants while all of that went on */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE job_name = 'tick' AND (status <> "
	                                     "'succeeded' OR start_time - scheduled_time > "
	                                     "interval '2 s')"),
	                 0);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);

	char *req = itest_read_file(hooks);
	ck_assert_msg(strstr(req, "POST /ok?key=query-secret auth=Bearer sekrit-token\n{\"n\": 1}"),
	              "%s", req);
	ck_assert_msg(strstr(req, "GET /ok auth=None key=same-origin-key\n"), "%s", req);
	ck_assert_msg(strstr(req, "POST /to-other auth=Bearer sekrit-token key=apikey-secret\n"),
	              "%s", req);
	free(req);
	char *log = itest_read_file(e.log);
	ck_assert_msg(!strstr(log, "sekrit") && !strstr(log, "query-secret") &&
	                  !strstr(log, "hook-secret") && !strstr(log, "apikey-secret") &&
	                  !strstr(log, "path-secret") && !strstr(log, "userinfo-secret"),
	              "a credential is in the log:\n%s", log);
	/* this libcurl (Debian's) resolves names on a thread of its own: no warning */
	ck_assert_msg(!strstr(log, "no asynchronous name resolver"), "%s", log);
	free(log);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details t "
	                                     "WHERE t::text LIKE '%%sekrit%%' OR t::text LIKE "
	                                     "'%%query-secret%%' OR t::text LIKE '%%path-secret%%' "
	                                     "OR t::text LIKE '%%userinfo-secret%%'"),
	                 0);
	kill(srv, SIGTERM);
	waitpid(srv, NULL, 0);
	free(hooks);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("http_jobs");
	TCase *tc = tcase_create("http_jobs");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, http_jobs_what_the_user_sees);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
