/* Alerts: a condition alerts once, repeats at the interval, recovers once; the JSON is
 * well formed; the webhook sink POSTs it (to an evhttp server in this test) and a webhook
 * that is down only costs a log line; the exec sink hands the alert over in environment. */
#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alert.h"
#include "config.h"
#include "httpc.h"
#include "log.h"

START_TEST(condition_lifecycle)
{
	struct alert_state s = {0};
	ck_assert_int_eq(alert_step(&s, false, 0, 60000), ALERT_NONE);
	ck_assert_int_eq(alert_step(&s, true, 1000, 60000), ALERT_FIRE);
	ck_assert_int_eq(alert_step(&s, true, 2000, 60000), ALERT_NONE);
	ck_assert_int_eq(alert_step(&s, true, 60999, 60000), ALERT_NONE);
	ck_assert_int_eq(alert_step(&s, true, 61000, 60000), ALERT_REPEAT);
	ck_assert_int_eq(alert_step(&s, true, 62000, 60000), ALERT_NONE);
	ck_assert_int_eq(alert_step(&s, false, 63000, 60000), ALERT_RECOVER);
	ck_assert_int_eq(alert_step(&s, false, 64000, 60000), ALERT_NONE);
	ck_assert_int_eq(alert_step(&s, true, 65000, 60000), ALERT_FIRE);
	ck_assert_int_eq(s.since_ms, 65000);
}
END_TEST

START_TEST(no_repeat_when_interval_zero)
{
	struct alert_state s = {0};
	ck_assert_int_eq(alert_step(&s, true, 0, 0), ALERT_FIRE);
	ck_assert_int_eq(alert_step(&s, true, 999999999, 0), ALERT_NONE);
}
END_TEST

START_TEST(json_is_escaped)
{
	char *j = alert_json(ALERT_FIRE, ALERT_FAILED, "refresh-x",
	                     "relation \"mv\" does not exist\nhint:\ttab \\ \x01", 1795219200000,
	                     1795219200000, "host1");
	ck_assert_str_eq(
	    j, "{\"event\":\"alert\",\"kind\":\"failed\",\"job\":\"refresh-x\","
	       "\"message\":\"relation \\\"mv\\\" does not exist\\nhint:\\ttab \\\\ \\u0001\","
	       "\"time\":\"2026-11-21T00:00:00Z\",\"since\":\"2026-11-21T00:00:00Z\","
	       "\"instance\":\"host1\"}");
	free(j);
	j = alert_json(ALERT_RECOVER, ALERT_STALE, "v", "", 0, 0, "");
	ck_assert(strstr(j, "\"event\":\"recovered\",\"kind\":\"stale\"") != NULL);
	free(j);
}
END_TEST

/* ---- webhook against a real HTTP server in this process ---- */

struct received {
	int count;
	char body[2048];
	char ctype[64];
};

static void on_request(struct evhttp_request *req, void *arg)
{
	struct received *r = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	if (n >= sizeof(r->body))
		n = sizeof(r->body) - 1;
	evbuffer_copyout(in, r->body, n);
	r->body[n] = '\0';
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	snprintf(r->ctype, sizeof(r->ctype), "%s", ct ? ct : "");
	r->count++;
	evhttp_send_reply(req, 204, "No Content", NULL);
}

static void stop_loop(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static void run_loop_for(struct event_base *base, double seconds)
{
	struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (int)seconds) * 1e6)};
	struct event *t = evtimer_new(base, stop_loop, base);
	evtimer_add(t, &tv);
	event_base_dispatch(base);
	event_free(t);
}

static struct pgc_config *config_with_sinks(struct conf_alert_sink *sinks, size_t n)
{
	struct pgc_config *cfg = calloc(1, sizeof(*cfg));
	cfg->alerts = sinks;
	cfg->n_alerts = n;
	cfg->alert_repeat_ms = 3600000;
	return cfg;
}

/* http_client's defaults (docs/configuration.md) */
static struct httpc_opts test_http_opts(void)
{
	return (struct httpc_opts){.max_concurrent = 16,
	                           .timeout_ms = 30000,
	                           .connect_timeout_ms = 10000,
	                           .max_request = 1024 * 1024,
	                           .max_response = 1024 * 1024,
	                           .max_redirects = 5};
}

START_TEST(webhook_receives_json)
{
	struct event_base *base = event_base_new();
	struct evhttp *http = evhttp_new(base);
	struct received got = {0};
	evhttp_set_gencb(http, on_request, &got);
	struct evhttp_bound_socket *sock = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	ck_assert_ptr_nonnull(sock);
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&sa, &len);
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hooks/pgcrond?x=1", ntohs(sa.sin_port));

	struct conf_alert_sink sink = {.sink = "webhook", .url = url, .timeout_ms = 2000};
	struct pgc_config *cfg = config_with_sinks(&sink, 1);
	struct alerter *a;
	struct httpc *hc;
	struct httpc_opts ho = test_http_opts();
	ck_assert_int_eq(httpc_new(base, &ho, &hc), 0);
	ck_assert_int_eq(alert_open(base, cfg, "test-host", NULL, NULL, hc, &a), 0);
	alert_condition(a, ALERT_STALE, "lane", true, "mv_lane_score_distribution is 2h old");
	alert_condition(a, ALERT_STALE, "lane", true, "still stale"); /* ongoing: no second alert */
	run_loop_for(base, 0.5);
	ck_assert_int_eq(got.count, 1);
	ck_assert_str_eq(got.ctype, "application/json");
	ck_assert_msg(strstr(got.body,
	                     "\"event\":\"alert\",\"kind\":\"stale\",\"job\":\"lane\","
	                     "\"message\":\"mv_lane_score_distribution is 2h old\"") != NULL,
	              "%s", got.body);
	alert_condition(a, ALERT_STALE, "lane", false, "fresh again");
	run_loop_for(base, 0.5);
	ck_assert_int_eq(got.count, 2);
	ck_assert(strstr(got.body, "\"event\":\"recovered\"") != NULL);
	alert_close(&a);
	ck_assert_ptr_null(a);
	httpc_free(&hc);
	free(cfg);
	evhttp_free(http);
	event_base_free(base);
}
END_TEST

static int ticks;
static void tick(evutil_socket_t fd, short what, void *arg)
{
	ticks++;
}

START_TEST(webhook_down_does_not_disturb)
{
	struct event_base *base = event_base_new();
	/* port 9 on loopback: nothing listens, the connection is refused */
	struct conf_alert_sink sink = {
	    .sink = "webhook", .url = "http://127.0.0.1:9/x", .timeout_ms = 500};
	struct pgc_config *cfg = config_with_sinks(&sink, 1);
	struct alerter *a;
	struct httpc *hc;
	struct httpc_opts ho = test_http_opts();
	ck_assert_int_eq(httpc_new(base, &ho, &hc), 0);
	ck_assert_int_eq(alert_open(base, cfg, "h", NULL, NULL, hc, &a), 0);
	struct event *t = event_new(base, -1, EV_PERSIST, tick, NULL);
	struct timeval tv = {0, 50000};
	evtimer_add(t, &tv);
	ticks = 0;
	alert_condition(a, ALERT_FAILED, "job", true, "boom");
	run_loop_for(base, 1.0);
	/* the loop kept ticking every 50 ms while the webhook failed */
	ck_assert_int_ge(ticks, 15);
	event_free(t);
	alert_close(&a);
	httpc_free(&hc);
	free(cfg);
	event_base_free(base);
}
END_TEST

START_TEST(exec_gets_environment)
{
	char dir[] = "/tmp/check_alert.XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char cmd[1200], out[64];
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(cmd, sizeof(cmd),
	         "printf '%%s|%%s|%%s|%%s' \"$PGCROND_ALERT_EVENT\" \"$PGCROND_ALERT_KIND\" "
	         "\"$PGCROND_ALERT_JOB\" \"$PGCROND_ALERT_MESSAGE\" > %s.tmp && mv %s.tmp %s",
	         out, out, out);
	struct event_base *base = event_base_new();
	struct conf_alert_sink sink = {.sink = "exec", .command = cmd, .timeout_ms = 5000};
	struct pgc_config *cfg = config_with_sinks(&sink, 1);
	struct alerter *a;
	ck_assert_int_eq(alert_open(base, cfg, "h", NULL, NULL, NULL, &a), 0);
	alert_condition(a, ALERT_UPSTREAM_FAILED, "weakness", true,
	                "upstream lane failed; not run");
	char buf[256] = "";
	for (int i = 0; i < 100; i++) {
		FILE *f = fopen(out, "r");
		if (f) {
			size_t n = fread(buf, 1, sizeof(buf) - 1, f);
			buf[n] = '\0';
			fclose(f);
			break;
		}
		usleep(20000);
	}
	ck_assert_str_eq(buf, "alert|upstream_failed|weakness|upstream lane failed; not run");
	alert_close(&a);
	free(cfg);
	event_base_free(base);
	unlink(out);
	rmdir(dir);
}
END_TEST

static int notified;
static char notified_channel[64];
static void on_notify(void *arg, const char *database, const char *channel, const char *json)
{
	notified++;
	snprintf(notified_channel, sizeof(notified_channel), "%s/%s", database, channel);
}

START_TEST(notify_goes_through_callback)
{
	struct event_base *base = event_base_new();
	struct conf_alert_sink sinks[] = {
	    {.sink = "log"},
	    {.sink = "notify", .database = "analytics", .channel = "pgcrond_alerts"}};
	struct pgc_config *cfg = config_with_sinks(sinks, 2);
	struct alerter *a;
	notified = 0;
	ck_assert_int_eq(alert_open(base, cfg, "h", on_notify, NULL, NULL, &a), 0);
	alert_condition(a, ALERT_CONSECUTIVE, "j", true, "3 consecutive failures");
	alert_condition(a, ALERT_CONSECUTIVE, "j", true, "4 consecutive failures");
	ck_assert_int_eq(notified, 1);
	ck_assert_str_eq(notified_channel, "analytics/pgcrond_alerts");
	alert_close(&a);
	free(cfg);
	event_base_free(base);
}
END_TEST

int main(void)
{
	log_init(LOG_LVL_ERROR);
	Suite *s = suite_create("alert");
	TCase *tc = tcase_create("alert");
	tcase_add_test(tc, condition_lifecycle);
	tcase_add_test(tc, no_repeat_when_interval_zero);
	tcase_add_test(tc, json_is_escaped);
	tcase_add_test(tc, webhook_receives_json);
	tcase_add_test(tc, webhook_down_does_not_disturb);
	tcase_add_test(tc, exec_gets_environment);
	tcase_add_test(tc, notify_goes_through_callback);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
