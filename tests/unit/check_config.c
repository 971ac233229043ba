/* The configuration loader: durations, good configs and their defaults, and a corpus of bad
 * configs, each asserting the exact "FILE:LINE: message" line a person sees. The tests run
 * from tests/unit/configs, so file names read as relative paths, as they would after
 * `pgcrond check -c bad/x/pgcrond.conf`. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "config_priv.h"
#include "duration.h"
#include "httpc.h"

/* "FILE:LINE: message", as diag_print writes it */
static const char *diag_text(const struct diag *d)
{
	static char buf[2048];

	if (d->file && d->line > 0)
		snprintf(buf, sizeof(buf), "%s:%d: %s", d->file, d->line, d->message);
	else if (d->file)
		snprintf(buf, sizeof(buf), "%s: %s", d->file, d->message);
	else
		snprintf(buf, sizeof(buf), "%s", d->message);
	return buf;
}

/* Load PATH expecting exactly one problem, and return it as text (static buffer). */
static const char *load_one_problem(const char *path)
{
	static char text[2048];
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	int rc = config_load(path, &cfg, &dl);

	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(cfg);
	if (dl.n != 1) {
		for (size_t i = 0; i < dl.n; i++)
			fprintf(stderr, "  %s\n", diag_text(&dl.items[i]));
		ck_abort_msg("%s: expected 1 problem, got %zu", path, dl.n);
	}
	snprintf(text, sizeof(text), "%s", diag_text(&dl.items[0]));
	diag_clear(&dl);
	return text;
}

static struct pgc_config *load_good(const char *path)
{
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	int rc = config_load(path, &cfg, &dl);

	for (size_t i = 0; i < dl.n; i++)
		fprintf(stderr, "unexpected: %s\n", diag_text(&dl.items[i]));
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(dl.n, 0);
	ck_assert_ptr_nonnull(cfg);
	diag_clear(&dl);
	return cfg;
}

/* ---- durations --------------------------------------------------------------------- */

static const struct {
	const char *text;
	int64_t ms;
} good_durations[] = {
    {"0s", 0},
    {"250ms", 250},
    {"30s", 30000},
    {"5m", 300000},
    {"2h", 7200000},
    {"7d", 604800000},
    {"1h30m", 5400000},
    {"1d2h3m4s5ms", 93784005},
    {"90s", 90000},
    {"+5m", 300000},
    {"36500d", 36500LL * 86400000}, /* the longest accepted: 100 years */
};

START_TEST(test_duration_parse_good)
{
	int64_t ms = -1;
	char err[256] = "";

	ck_assert_msg(duration_parse(good_durations[_i].text, &ms, err, sizeof(err)) == 0, "%s: %s",
	              good_durations[_i].text, err);
	ck_assert_int_eq(ms, good_durations[_i].ms);
}
END_TEST

static const struct {
	const char *text;
	const char *err;
} bad_durations[] = {
    {"",
     "an empty string is not a duration; use a number and a unit: \"30s\", \"5m\", \"2h\", \"7d\""},
    {"10 minutes",
     "\"10 minutes\" is not a duration; use a number and a unit: \"30s\", \"5m\", \"2h\", \"7d\""},
    {"30", "\"30\" has no unit; use a number and a unit: \"30s\", \"5m\", \"2h\", \"7d\""},
    {"-5m", "\"-5m\" is negative; use a number and a unit: \"30s\", \"5m\", \"2h\", \"7d\""},
    {"1.5h",
     "\"1.5h\" has a fraction; use whole numbers and a smaller unit, like \"1h30m\" or \"1500ms\""},
    {"3w",
     "\"3w\" has an unknown unit; use ms, s, m, h or d, like \"30s\", \"5m\", \"2h\", \"7d\""},
    {"5mins",
     "\"5mins\" has an unknown unit; use ms, s, m, h or d, like \"30s\", \"5m\", \"2h\", \"7d\""},
    {"30m1h", "\"30m1h\" repeats a unit or puts a smaller one first; write the larger unit first, "
              "each once, "
              "like \"1h30m\""},
    {"5m5m",
     "\"5m5m\" repeats a unit or puts a smaller one first; write the larger unit first, each once, "
     "like \"1h30m\""},
    {"106751991168d",
     "\"106751991168d\" is too large to count in milliseconds; use a smaller amount"},
    {"36501d", "\"36501d\" is longer than 100 years; use a shorter duration"},
    {"9223372036854775s", "\"9223372036854775s\" is longer than 100 years; use a shorter duration"},
    {"99999999999999999999s",
     "\"99999999999999999999s\" is too large to count in milliseconds; use a smaller amount"},
    {"m", "\"m\" is not a duration; use a number and a unit: \"30s\", \"5m\", \"2h\", \"7d\""},
    {" 5m", "\" 5m\" is not a duration; use a number and a unit: \"30s\", \"5m\", \"2h\", \"7d\""},
    {"+", "\"+\" is not a duration; use a number and a unit: \"30s\", \"5m\", \"2h\", \"7d\""},
};

START_TEST(test_duration_parse_bad)
{
	int64_t ms = 12345;
	char err[256] = "";

	ck_assert_int_eq(duration_parse(bad_durations[_i].text, &ms, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, bad_durations[_i].err);
	ck_assert_int_eq(ms, 12345); /* untouched on error */
}
END_TEST

START_TEST(test_duration_format)
{
	static const struct {
		int64_t ms;
		const char *text;
	} cases[] = {
	    {0, "0s"},
	    {250, "250ms"},
	    {30000, "30s"},
	    {300000, "5m"},
	    {5400000, "1h30m"},
	    {604800000, "7d"},
	    {90061001, "1d1h1m1s1ms"},
	    {-30000, "-30s"},
	    {INT64_MIN, "-106751991167d7h12m55s808ms"},
	};
	char buf[64], small[4];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		duration_format(cases[i].ms, buf, sizeof(buf));
		ck_assert_str_eq(buf, cases[i].text);
		if (cases[i].ms >= 0) { /* format and parse agree */
			int64_t back;
			ck_assert_int_eq(duration_parse(buf, &back, NULL, 0), 0);
			ck_assert_int_eq(back, cases[i].ms);
		}
	}
	duration_format(5400000, small, sizeof(small)); /* too small: cut short, terminated */
	ck_assert_str_eq(small, "1h");
}
END_TEST

/* ---- good configs ------------------------------------------------------------------ */

static const char *setting(const struct conf_job *j, const char *key)
{
	for (size_t i = 0; i < j->more->n_settings; i++)
		if (strcmp(j->more->settings[i].key, key) == 0)
			return j->more->settings[i].value;
	return NULL;
}

/* http_client's keys, an HTTPS webhook and HTTP jobs; and the defaults (docs/configuration.md) */
START_TEST(test_good_http)
{
	struct pgc_config *cfg = load_good("good/http/pgcrond.conf");
	const struct conf_http_client *h = &cfg->http_client;
	ck_assert_str_eq(h->ca_file, "good/http/ca.pem"); /* relative to the main file */
	ck_assert_int_eq(h->max_concurrent, 4);
	ck_assert_int_eq(h->timeout_ms, 20000);
	ck_assert_int_eq(h->connect_timeout_ms, 10000);
	ck_assert_int_eq(h->max_response, 30LL * 1024 * 1024);
	ck_assert_int_eq(h->pg_net_max_response, 8LL * 1024 * 1024);
	ck_assert_int_eq(h->max_request, 64 * 1024);
	ck_assert_int_eq(h->max_redirects, 0); /* none followed */
	ck_assert_str_eq(cfg->alerts[0].url, "https://hooks.example.com/T0/B0/secret");

	const struct conf_job *j = config_job(cfg, "ping");
	ck_assert_ptr_nonnull(j);
	ck_assert_ptr_null(j->command);
	ck_assert_ptr_null(j->plugin);
	ck_assert_ptr_nonnull(j->http);
	ck_assert_str_eq(j->http->url, "https://api.example.com/v1/ping?token=x");
	ck_assert_str_eq(j->http->method, "PUT");
	ck_assert_uint_eq(j->http->n_headers, 2);
	ck_assert_str_eq(j->http->headers[0], "Authorization: Bearer abc");
	ck_assert_str_eq(j->http->body, "{\"a\": 1}");
	ck_assert_uint_eq(j->http->n_expect, 2);
	ck_assert_int_eq(j->http->expect[1], 201);
	ck_assert_int_eq(j->timeout_ms, 5000);
	j = config_job(cfg, "get");
	ck_assert_str_eq(j->http->method, "GET");
	ck_assert_uint_eq(j->http->n_expect, 0); /* any 2xx */
	ck_assert_ptr_null(j->http->body);
	j = config_job(cfg, "post");
	ck_assert_str_eq(j->http->method, "POST"); /* a body, even empty, means POST */
	ck_assert_str_eq(j->http->url, "https://svc:p%40ss@example.com:/x");

	/* a copy (as a reload with SQL jobs makes) is equal and its own */
	bool oom = false;
	struct conf_http_call *c = config_http_call_dup(config_job(cfg, "ping")->http, &oom);
	ck_assert(!oom);
	ck_assert(config_http_call_eq(c, config_job(cfg, "ping")->http));
	ck_assert(!config_http_call_eq(c, config_job(cfg, "get")->http));
	config_http_call_free(&c);
	ck_assert_ptr_null(c);
	config_free(&cfg);

	cfg = load_good("good/minimal/pgcrond.conf");
	h = &cfg->http_client;
	ck_assert_ptr_null(h->ca_file); /* the system's CAs */
	ck_assert_int_eq(h->max_concurrent, 16);
	ck_assert_int_eq(h->timeout_ms, 30000);
	ck_assert_int_eq(h->max_response, 1024 * 1024);
	ck_assert_int_eq(h->pg_net_max_response, 64LL * 1024 * 1024); /* pg_net keeps bodies */
	ck_assert_int_eq(h->max_request, 1024 * 1024);
	ck_assert_int_eq(h->max_redirects, 5);
	config_free(&cfg);
}
END_TEST

/* The URL check behind HTTP jobs, webhooks and every request the client sends (pg_net's
 * too): libcurl's parser, as the client sends with it, and pgcrond's rules; NULL: accepted.
 * Each refusal is the text after the URL in `pgcrond check` and in a request's error. */
#define NO_HOST "has no host; write it like \"https://host.example/path\""
#define NOT_URL "is not a URL; write the full URL, like \"https://host.example/path\""
#define REFUSED "is refused: only http:// and https:// URLs are called"
#define BAD_PORT                                                                                   \
	"has a port that is not a number from 1 to 65535; write the port the server listens on, "  \
	"or no ':' for the scheme's own"
#define SPACE "has a space or a control character; percent-encode it (%20)"
#define AT_USER                                                                                    \
	"has an '@' in its user name; write it as %40 (an '@' ends the user name and password)"
#define AT_PASSWORD                                                                                \
	"has an '@' in its password; write it as %40 (an '@' ends the user name and password)"
static const struct {
	const char *url, *why;
} urls[] = {
    {"https://example.com", NULL},
    {"HTTP://user:pw@example.com:8080/a?b=c#d", NULL},
    {"http://[::1]:9/x", NULL},
    {"http://[fe80::1%25eth0]:8080/", NULL}, /* an IPv6 literal with its zone */
    {"https://example.com:/", NULL},         /* an empty port: the scheme's own, as sent */
    {"https://user:p%40ss@example.com/x", NULL},
    {"https://ex%41mple.com/a%2Fb?q=%zz", NULL}, /* %-escapes are the server's business */
    /* an '@' in the user info: libcurl ends it at the first '@' (browsers at the last), which
     * leaves no host or no port, so it is refused with where the '@' is */
    {"https://user:p@ss@example.com/x", AT_PASSWORD},
    {"http://us@er:pw@example.com/", AT_USER}, /* libcurl: port "pw@example.com" */
    {"http://us@er@example.com/", AT_USER},
    {"http://us@er:80@example.com:8080/x", AT_USER},
    {"HTTPS://u@s:p@w@example.com/", "has an '@' in its user name and in its password; write "
                                     "each as %40 (an '@' ends the user name and password)"},
    {"https://us%40er:p%40ss@example.com/x", NULL}, /* as it should be written */
    {"https://example.com/a@b@c?x=@@#@", NULL},     /* an '@' past the host is the server's */
    {"https://user@example.com/", NULL},
    {"https:///path", NO_HOST}, /* libcurl would call host "path" */
    {"https:/example.com/", NO_HOST},
    {"https://", NO_HOST},
    {"https://user:pw@/x", NO_HOST},
    {"https://example.com:0/",
     "has port 0; write the port the server listens on, or no ':' for the scheme's own"},
    {"https://example.com:65536/", BAD_PORT},
    {"https://example.com:8o8o/", BAD_PORT},
    {"https://exa mple.com/", SPACE},
    {"https://example.com/a b", SPACE},
    {"http://a\nb/", SPACE},
    {"https://exa!mple.com/x", "has a character a host name cannot have"},
    {"http://[::1/x", "has a bad [IPv6] address; write it like \"http://[2001:db8::1]:8080/\""},
    {"http://[::g]/", "has a bad [IPv6] address; write it like \"http://[2001:db8::1]:8080/\""},
    {"example.com/x", NOT_URL},
    {"https//example.com/x", NOT_URL},
    {"gopher://example.com/", REFUSED},
    {"file:///etc/passwd", REFUSED},
    {"mailto:ops@example.com", REFUSED},
};

START_TEST(test_url_check)
{
	char why[256] = "";
	bool ok = httpc_url_ok(urls[_i].url, why, sizeof(why));

	if (!urls[_i].why)
		ck_assert_msg(ok, "%s refused: %s", urls[_i].url, why);
	else
		ck_assert_msg(!ok && strcmp(why, urls[_i].why) == 0, "%s: %s", urls[_i].url,
		              ok ? "accepted" : why);
}
END_TEST

START_TEST(test_good_full)
{
	struct pgc_config *cfg = load_good("good/full/pgcrond.conf");
	const struct conf_job *j;

	ck_assert_str_eq(cfg->file, "good/full/pgcrond.conf");
	ck_assert_str_eq(cfg->timezone, "Europe/Berlin");
	ck_assert_ptr_nonnull(cfg->tz);
	ck_assert_str_eq(cfg->plugin_dir, "good/full/plugins"); /* relative to the main file */
	ck_assert_str_eq(cfg->conf_dir, "good/full/jobs.d");
	ck_assert_str_eq(cfg->state_dir, "good/full"); /* "." : the main file's directory */
	ck_assert_str_eq(cfg->log_level, "debug");
	ck_assert_int_eq(cfg->max_running, 12);
	ck_assert_int_eq(cfg->shutdown_grace_ms, 120000);
	ck_assert_int_eq(cfg->cluster_dead_after_ms, 8000);
	ck_assert_int_eq(cfg->alert_repeat_ms, 1800000);
	ck_assert_str_eq(cfg->history_database, "analytics");
	ck_assert_int_eq(cfg->history_retain_ms, 90LL * 86400000);

	ck_assert_uint_eq(cfg->n_databases, 2);
	const struct conf_database *db = config_database(cfg, "analytics");
	ck_assert_ptr_nonnull(db);
	ck_assert_str_eq(db->conninfo, "service=analytics");
	ck_assert_int_eq(db->pool, 8);
	ck_assert_int_eq(db->idle_timeout_ms, 90000);
	ck_assert_int_eq(db->line, 8);
	db = config_database(cfg, "reporting");
	ck_assert_ptr_nonnull(db);
	ck_assert_int_eq(db->pool, 4);
	ck_assert_int_eq(db->idle_timeout_ms, 5 * 60 * 1000); /* the default */
	ck_assert_ptr_null(config_database(cfg, "nope"));

	ck_assert_uint_eq(cfg->n_alerts, 4);
	ck_assert_str_eq(cfg->alerts[0].sink, "log");
	ck_assert_str_eq(cfg->alerts[1].sink, "notify");
	ck_assert_str_eq(cfg->alerts[1].channel, "ops_alerts");
	ck_assert_str_eq(cfg->alerts[1].database, "analytics"); /* the history database */
	ck_assert_str_eq(cfg->alerts[2].url, "http://alerts.example.com/hook");
	ck_assert_int_eq(cfg->alerts[2].timeout_ms, 5000);
	ck_assert_str_eq(cfg->alerts[3].command, "/usr/local/bin/page-oncall");
	ck_assert_int_eq(cfg->alerts[3].line, 18);

	/* 10-lanes.conf, 20-multi.conf (two jobs), 30-manual.conf; not examples/, .hidden.conf,
	 * README or *.conf.disabled */
	ck_assert_uint_eq(cfg->n_jobs, 4);
	ck_assert_str_eq(cfg->jobs[0].name, "refresh-lane-distributions");
	ck_assert_str_eq(cfg->jobs[1].name, "refresh-weakness-patterns");
	ck_assert_str_eq(cfg->jobs[2].name, "purge.old_rows");
	ck_assert_str_eq(cfg->jobs[3].name, "manual_backfill");
	/* the jobs of one file share one copy of its path (100,000 jobs kept 100,000) */
	ck_assert_str_eq(cfg->jobs[1].file, "good/full/jobs.d/20-multi.conf");
	ck_assert_ptr_eq(cfg->jobs[1].file, cfg->jobs[2].file);
	ck_assert_ptr_ne(cfg->jobs[0].file, cfg->jobs[1].file);

	j = config_job(cfg, "refresh-lane-distributions");
	ck_assert_ptr_eq(j, &cfg->jobs[0]);
	ck_assert_str_eq(j->file, "good/full/jobs.d/10-lanes.conf");
	ck_assert_int_eq(j->line, 2);
	ck_assert_str_eq(j->plugin, "lane_distribution");
	ck_assert_int_eq(j->plugin_line, 4);
	ck_assert_ptr_null(j->command);
	ck_assert_str_eq(j->database, "reporting");
	ck_assert_str_eq(j->schedule, "*/10 * * * *");
	ck_assert(j->enabled);
	ck_assert_int_eq(j->timeout_ms, 600000);
	ck_assert_int_eq(j->overlap, OVERLAP_QUEUE);
	ck_assert_int_eq(j->retries, 3);
	ck_assert_int_eq(j->more->retry.delay_ms, 30000);
	ck_assert_double_eq(j->more->retry.backoff, 1.5);
	ck_assert_int_eq(j->more->retry.max_delay_ms, 300000);
	ck_assert(j->more->retry.on_timeout);
	ck_assert_int_eq(j->more->retry.on, RETRY_ON_ANY);
	ck_assert_int_eq(j->catchup, CATCHUP_SKIP);
	ck_assert_int_eq(j->history, HISTORY_FAILURES);
	ck_assert_str_eq(j->more->notify.listen, "submission_scored");
	ck_assert_int_eq(j->more->notify.debounce_ms, 10000);
	ck_assert_int_eq(j->more->notify.max_delay_ms, 120000);
	ck_assert_int_eq(j->more->alerts.after, 3);
	ck_assert_int_eq(j->more->alerts.max_staleness_ms, 3600000);
	ck_assert_int_eq(j->more->alerts.warn_duration_ms, 2000);
	/* the plugin's own settings, as text, in file order, with their lines */
	ck_assert_uint_eq(j->more->n_settings, 5);
	ck_assert_str_eq(j->more->settings[0].key, "window_days");
	ck_assert_int_eq(j->more->settings[0].line, 23);
	ck_assert_str_eq(setting(j, "window_days"), "28");
	ck_assert_str_eq(setting(j, "min_samples"), "5");
	ck_assert_str_eq(setting(j, "smoothing"), "0.25");
	ck_assert_str_eq(setting(j, "concurrently"), "true");
	ck_assert_str_eq(setting(j, "relation"), "analytics.mv_lane_score_distribution");

	j = config_job(cfg, "refresh-weakness-patterns");
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(j->file, "good/full/jobs.d/20-multi.conf");
	ck_assert_int_eq(j->line, 3);
	ck_assert_ptr_null(j->schedule);
	ck_assert_uint_eq(j->n_after, 1);
	ck_assert_str_eq(j->after[0], "refresh-lane-distributions");
	ck_assert_int_eq(j->after_line, 6);
	ck_assert_str_eq(j->database, "analytics"); /* defaults to the history database */
	ck_assert_uint_eq(j->more->n_settings, 0);

	j = config_job(cfg, "purge.old_rows");
	ck_assert_str_eq(j->command,
	                 "DELETE FROM events WHERE created < now() - interval '90 days'");
	ck_assert_int_eq(j->cron.kind, CRON_CALENDAR);

	j = config_job(cfg, "manual_backfill");
	ck_assert(!j->enabled);
	ck_assert_ptr_null(config_job(cfg, "broken"));
	config_free(&cfg);
	ck_assert_ptr_null(cfg);
	config_free(&cfg); /* twice is harmless */
}
END_TEST

START_TEST(test_good_minimal_defaults)
{
	struct pgc_config *cfg = load_good("good/minimal/pgcrond.conf");

	ck_assert_str_eq(cfg->timezone, "UTC");
	ck_assert_str_eq(cfg->plugin_dir, PGCROND_DEFAULT_PLUGIN_DIR);
	ck_assert_str_eq(cfg->conf_dir, "good/minimal/conf.d");
	ck_assert_str_eq(cfg->state_dir, "good/minimal"); /* must exist: the default is below */
	ck_assert_str_eq(cfg->log_level, "info");
	ck_assert_str_eq(cfg->history_database, "main"); /* the only database */
	ck_assert_int_eq(cfg->history_retain_ms, 30LL * 86400000);
	ck_assert_int_eq(cfg->max_running, 32);
	ck_assert_int_eq(cfg->shutdown_grace_ms, 30000);
	ck_assert_int_eq(cfg->cluster_dead_after_ms, 20000);
	ck_assert_int_eq(cfg->alert_repeat_ms, 3600000);
	ck_assert_uint_eq(cfg->n_alerts, 1); /* no alerts = ( ... ): failures go to the log */
	ck_assert_str_eq(cfg->alerts[0].sink, "log");
	ck_assert_int_eq(cfg->databases[0].pool, 4);

	ck_assert_uint_eq(cfg->n_jobs, 1);
	const struct conf_job *j = &cfg->jobs[0];
	ck_assert_str_eq(j->name, "one");
	ck_assert_str_eq(j->command, "SELECT 1");
	ck_assert_str_eq(j->database, "main");
	ck_assert(j->enabled);
	ck_assert_int_eq(j->timeout_ms, 0);
	ck_assert_int_eq(j->overlap, OVERLAP_SKIP);
	ck_assert_int_eq(j->retries, 0);
	ck_assert_int_eq(j->more->retry.delay_ms, 30000);
	ck_assert_double_eq(j->more->retry.backoff, 2.0);
	ck_assert_int_eq(j->more->retry.max_delay_ms, 600000);
	ck_assert(!j->more->retry.on_timeout);
	ck_assert_int_eq(j->more->retry.on, RETRY_ON_TRANSIENT);
	ck_assert_int_eq(j->history, HISTORY_ALL);
	ck_assert_int_eq(j->catchup, CATCHUP_ONCE);
	ck_assert_ptr_null(j->more->notify.listen);
	ck_assert_int_eq(j->more->notify.debounce_ms, 5000);
	ck_assert_int_eq(j->more->notify.max_delay_ms, 60000);
	ck_assert_int_eq(j->more->alerts.after, 1);
	ck_assert_int_eq(j->more->alerts.max_staleness_ms, 0);
	ck_assert_int_eq(j->more->alerts.warn_duration_ms, 0);
	ck_assert_uint_eq(j->n_after, 0);
	ck_assert_int_eq(j->after_line, 0);
	ck_assert_int_eq(j->plugin_line, 0);
	config_free(&cfg);
}
END_TEST

/* conf_dir = "." : the main file sits among the job files and is not read as one */
START_TEST(test_good_samedir)
{
	struct pgc_config *cfg = load_good("good/samedir/pgcrond.conf");

	ck_assert_str_eq(cfg->conf_dir, "good/samedir");
	ck_assert_uint_eq(cfg->n_jobs, 1);
	ck_assert_str_eq(cfg->jobs[0].file, "good/samedir/10-a.conf");
	config_free(&cfg);
}
END_TEST

/* The shipped example: every setting in it is valid. Its conf_dir is /etc/pgcrond/conf.d,
 * which a test machine may not have, so only problems in the file itself count. */
START_TEST(test_shipped_config)
{
	const char *path = TEST_SOURCE_DIR "/../conf.d/pgcrond.conf";
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	int rc = config_load(path, &cfg, &dl);

	for (size_t i = 0; i < dl.n; i++) {
		const struct diag *d = &dl.items[i];
		if (d->file && strcmp(d->file, path) == 0) {
			const char *ok = "conf_dir \"/etc/pgcrond/conf.d\" cannot be read";
			const char *ok2 = "state_dir \"/var/lib/pgcrond\" cannot be used";
			ck_assert_msg(strncmp(d->message, ok, strlen(ok)) == 0 ||
			                  strncmp(d->message, ok2, strlen(ok2)) == 0,
			              "%s", diag_text(d));
		}
	}
	if (rc == 0) {
		ck_assert_str_eq(cfg->history_database, "analytics");
		ck_assert_str_eq(config_database(cfg, "analytics")->conninfo, "service=analytics");
	}
	config_free(&cfg);
	diag_clear(&dl);
}
END_TEST

START_TEST(test_helpers)
{
	ck_assert_str_eq(config_closest_key(config_job_keys, "schedul"), "schedule");
	ck_assert_str_eq(config_closest_key(config_job_keys, "shcedule"), "schedule");
	ck_assert_str_eq(config_closest_key(config_job_keys, "retrys"), "retries");
	ck_assert_ptr_null(config_closest_key(config_job_keys, "window_days"));
	ck_assert_ptr_null(
	    config_closest_key(config_job_keys, "schedule")); /* exact: nothing to suggest */
	ck_assert(config_valid_job_name("refresh-lane_distributions.v2"));
	ck_assert(!config_valid_job_name(""));
	ck_assert(!config_valid_job_name("a b"));
	ck_assert(!config_valid_job_name("x/y"));
	ck_assert(config_valid_job_name(
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	ck_assert(!config_valid_job_name(
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}
END_TEST

/* ---- bad configs: one problem each --------------------------------------------------- */

#define HINT "use a number and a unit: \"30s\", \"5m\", \"2h\", \"7d\""
#define SYNTAX                                                                                     \
	"syntax error; check this line and the one before for a missing \";\" or \"=\", an "       \
	"unclosed "                                                                                \
	"quote, bracket or brace, or a name with characters other than letters, digits, \"_\" "    \
	"and "                                                                                     \
	"\"-\""

static const struct {
	const char *path;
	const char *expect;
} bad[] = {
    /* the main file */
    {"bad/does-not-exist.conf",
     "bad/does-not-exist.conf: cannot read the file: No such file or directory; check the path and "
     "its permissions"},
    {"bad/syntax-main/pgcrond.conf", "bad/syntax-main/pgcrond.conf:4: " SYNTAX},
    {"bad/unknown-key-main/pgcrond.conf",
     "bad/unknown-key-main/pgcrond.conf:3: unknown key \"timezon\"; did you mean \"timezone\"?"},
    {"bad/unknown-key-main-nosuggest/pgcrond.conf",
     "bad/unknown-key-main-nosuggest/pgcrond.conf:3: unknown key \"frobnicate\"; remove it "
     "(pgcrond.conf(5) lists the daemon settings)"},
    {"bad/bad-timezone/pgcrond.conf",
     "bad/bad-timezone/pgcrond.conf:3: unknown timezone \"Mars/Olympus_Mons\"; use a name from the "
     "tz database like \"UTC\" or \"Europe/Berlin\""},
    {"bad/max-running/pgcrond.conf",
     "bad/max-running/pgcrond.conf:3: max_running must be at least 1, not 0"},
    {"bad/pool-zero/pgcrond.conf", "bad/pool-zero/pgcrond.conf:5: pool must be at least 1, not 0"},
    {"bad/no-conninfo/pgcrond.conf",
     "bad/no-conninfo/pgcrond.conf:3: database \"analytics\" has no conninfo; add conninfo = "
     "\"host=... dbname=...\" (or \"service=NAME\" from pg_service.conf)"},
    {"bad/bad-conninfo/pgcrond.conf",
     "bad/bad-conninfo/pgcrond.conf:3: conninfo \"analytics\" is not a connection string; write "
     "key=value pairs like \"host=db1 dbname=analytics\", or a URI like "
     "\"postgresql://db1/analytics\""},
    {"bad/password-conninfo/pgcrond.conf", /* the password is never echoed */
     "bad/password-conninfo/pgcrond.conf:3: conninfo of database \"analytics\" is not a connection "
     "string; write key=value pairs like \"host=db1 dbname=analytics\", or a URI like "
     "\"postgresql://db1/analytics\""},
    /* libpq's parse errors quote the string: the password would be in them */
    {"bad/uri-bad-percent/pgcrond.conf",
     "bad/uri-bad-percent/pgcrond.conf:3: conninfo of database \"analytics\" cannot be parsed by "
     "libpq; check its syntax (the parser's message is not shown because it may quote the "
     "password)"},
    {"bad/uri-bad-ipv6/pgcrond.conf",
     "bad/uri-bad-ipv6/pgcrond.conf:3: conninfo of database \"analytics\" cannot be parsed by "
     "libpq; check its syntax (the parser's message is not shown because it may quote the "
     "password)"},
    {"bad/unknown-conninfo-key/pgcrond.conf",
     "bad/unknown-conninfo-key/pgcrond.conf:3: conninfo of database \"analytics\" cannot be "
     "parsed by libpq; check its syntax (the parser's message is not shown because it may quote "
     "the password)"},
    {"bad/history-ambiguous/pgcrond.conf",
     "bad/history-ambiguous/pgcrond.conf: history.database is not set and there are 2 databases; "
     "add history = { database = \"NAME\"; }; naming one of analytics, reporting"},
    {"bad/history-unknown-db/pgcrond.conf",
     "bad/history-unknown-db/pgcrond.conf:4: history: unknown database \"analytcs\"; did you mean "
     "\"analytics\"?"},
    {"bad/bad-log-level/pgcrond.conf",
     "bad/bad-log-level/pgcrond.conf:3: log_level \"verbose\" is not valid; use one of \"error\", "
     "\"warning\", \"notice\", \"info\", \"debug\""},
    {"bad/bad-alert-sink/pgcrond.conf",
     "bad/bad-alert-sink/pgcrond.conf:5: sink \"email\" is not valid; use one of \"log\", "
     "\"notify\", \"webhook\", \"exec\""},
    {"bad/webhook-no-url/pgcrond.conf",
     "bad/webhook-no-url/pgcrond.conf:4: webhook alert has no url; add url = \"https://...\""},
    {"bad/webhook-scheme/pgcrond.conf",
     "bad/webhook-scheme/pgcrond.conf:4: webhook url \"ftp://alerts.example.com/hook\" is "
     "refused: only http:// and https:// URLs are called"},
    /* HTTP: the client's bounds and HTTP jobs (docs/configuration.md, docs/jobs.md) */
    {"bad/http-client-size/pgcrond.conf",
     "bad/http-client-size/pgcrond.conf:4: max_response \"lots\" is not a size; write a nu"
     "mber of bytes with kB, MB or GB, like \"1MB\""},
    {"bad/history-unknown/pgcrond.conf",
     "bad/history-unknown/pgcrond.conf:4: unknown key \"zzzzzz\" in history; history takes "
     "database, retain and backlog"},
    {"bad/http-client-unknown/pgcrond.conf",
     "bad/http-client-unknown/pgcrond.conf:4: unknown key \"max_concurent\" in http_client"
     "; did you mean \"max_concurrent\"?"},
    {"bad/http-client-ca-missing/pgcrond.conf",
     "bad/http-client-ca-missing/pgcrond.conf:4: http_client.ca_file \"bad/http-client-ca-"
     "missing/no-such-ca.pem\" cannot be read: No such file or directory; give the PEM fil"
     "e of the CAs to trust (readable by the user pgcrond runs as), or remove ca_file to t"
     "rust the system's CAs"},
    {"bad/http-client-redirects/pgcrond.conf",
     "bad/http-client-redirects/pgcrond.conf:4: max_redirects is 500; at most 50 are follo"
     "wed (5 is plenty for real services)"},
    {"bad/idle-timeout-number/pgcrond.conf", "bad/idle-timeout-number/pgcrond.conf:2: idle_timeout "
                                             "must be a string duration like \"5m\""},
    {"bad/http-client-not-group/pgcrond.conf",
     "bad/http-client-not-group/pgcrond.conf:4: http_client must be a group like http_client = { "
     "ca_file = \"/etc/pgcrond/ca.pem\"; max_concurrent = 16; };"},
    {"bad/http-client-concurrent-zero/pgcrond.conf",
     "bad/http-client-concurrent-zero/pgcrond.conf:4: max_concurrent must be at least 1, not 0"},
    {"bad/http-client-concurrent-high/pgcrond.conf",
     "bad/http-client-concurrent-high/pgcrond.conf:4: max_concurrent is 20000; at most 10000 (each "
     "is an open connection)"},
    {"bad/http-client-size-type/pgcrond.conf",
     "bad/http-client-size-type/pgcrond.conf:4: max_request must be a size like \"1MB\" or "
     "\"512kB\""},
    {"bad/http-client-size-range/pgcrond.conf",
     "bad/http-client-size-range/pgcrond.conf:4: max_response must be between 1kB and 256MB (the "
     "body is held in memory); write it like \"1MB\""},
    {"bad/http-client-pg-net-range/pgcrond.conf",
     "bad/http-client-pg-net-range/pgcrond.conf:4: pg_net_max_response must be between 1kB and "
     "64MB (the body is held in memory); write it like \"1MB\""},
    {"bad/http-client-timeout-short/pgcrond.conf",
     "bad/http-client-timeout-short/pgcrond.conf:4: timeout \"200ms\" is too short; use at least "
     "\"1s\""},
    {"bad/http-client-connect-short/pgcrond.conf",
     "bad/http-client-connect-short/pgcrond.conf:4: connect_timeout \"0s\" is too short; use at "
     "least \"1s\""},
    {"bad/http-client-redirects-negative/pgcrond.conf",
     "bad/http-client-redirects-negative/pgcrond.conf:4: max_redirects must be at least 0, not -1"},
    {"bad/http-job-not-group/pgcrond.conf",
     "bad/http-job-not-group/conf.d/10-job.conf:5: http must be a group like http = { url = "
     "\"https://host.example/hook\"; method = \"POST\"; };"},
    {"bad/http-job-headers-string/pgcrond.conf",
     "bad/http-job-headers-string/conf.d/10-job.conf:5: headers must be a list of \"Name: value\" "
     "strings like [ \"Content-Type: application/json\" ]"},
    {"bad/http-job-expect-number/pgcrond.conf",
     "bad/http-job-expect-number/conf.d/10-job.conf:5: expect must be a list of status codes like "
     "[ 200, 201 ]"},
    {"bad/http-job-expect-empty/pgcrond.conf",
     "bad/http-job-expect-empty/conf.d/10-job.conf:5: expect is empty; list the status codes that "
     "mean success, like [ 200, 201 ], or remove it (any 2xx)"},
    {"bad/http-job-header-utf8/pgcrond.conf",
     "bad/http-job-header-utf8/conf.d/10-job.conf:5: headers: entry 1 is not valid UTF-8; save the "
     "file as UTF-8"},
    {"bad/http-job-url/pgcrond.conf",
     "bad/http-job-url/conf.d/10-job.conf:5: url \"https//example.com/x\" is not a URL; wr"
     "ite the full URL, like \"https://host.example/path\""},
    {"bad/http-job-file/pgcrond.conf",
     "bad/http-job-file/conf.d/10-job.conf:5: url \"file:///etc/passwd\" is refused: only "
     "http:// and https:// URLs are called"},
    {"bad/http-job-ftp/pgcrond.conf",
     "bad/http-job-ftp/conf.d/10-job.conf:5: url \"ftp://example.com/x\" is refused: only "
     "http:// and https:// URLs are called"},
    {"bad/http-job-and-command/pgcrond.conf",
     "bad/http-job-and-command/conf.d/10-job.conf:2: job \"h\" has http and command; a job"
     " is a plugin, a SQL command or an HTTP call: keep one"},
    {"bad/http-job-header/pgcrond.conf",
     "bad/http-job-header/conf.d/10-job.conf:5: headers: entry 1 is not \"Name: value\" (a"
     " name of letters, digits and -, a colon, then the value without line breaks)"},
    {"bad/http-job-expect/pgcrond.conf",
     "bad/http-job-expect/conf.d/10-job.conf:5: expect: each status code is a number from "
     "100 to 599, like [ 200, 201 ]"},
    {"bad/http-job-body-get/pgcrond.conf",
     "bad/http-job-body-get/conf.d/10-job.conf:5: http has a body but method GET sends non"
     "e; use method = \"POST\" (or PUT, PATCH), or remove the body"},
    {"bad/http-job-no-url/pgcrond.conf",
     "bad/http-job-no-url/conf.d/10-job.conf:5: http has no url; add url = \"https://host."
     "example/path\""},
    {"bad/http-job-method/pgcrond.conf",
     "bad/http-job-method/conf.d/10-job.conf:5: method \"FETCH\" is not one pgcrond sends;"
     " use GET, POST, PUT, PATCH, DELETE or HEAD"},
    /* userinfo and query left out of the message (check output, reload logs) */
    {"bad/http-job-url-password/pgcrond.conf",
     "bad/http-job-url-password/conf.d/10-job.conf:5: url \"https://...@example.com:99999/x?..."
     "\" " BAD_PORT},
    {"bad/http-job-url-at/pgcrond.conf", "bad/http-job-url-at/conf.d/10-job.conf:5: url "
                                         "\"https://...@example.com/x?...\" " AT_PASSWORD},
    {"bad/http-job-url-at-user/pgcrond.conf",
     "bad/http-job-url-at-user/conf.d/10-job.conf:6: url \"http://...@example.com/x\" " AT_USER},
    {"bad/webhook-url-password/pgcrond.conf",
     "bad/webhook-url-password/pgcrond.conf:4: webhook url \"https//...@alerts.example.com/hook"
     "\" is not a URL; write the full URL, like \"https://host.example/path\""},
    {"bad/http-job-port/pgcrond.conf",
     "bad/http-job-port/conf.d/10-job.conf:5: url \"https://example.com:99999/x\" " BAD_PORT},
    {"bad/conf-dir-missing/pgcrond.conf",
     "bad/conf-dir-missing/pgcrond.conf:3: conf_dir \"bad/conf-dir-missing/jobs.d\" cannot be "
     "read: "
     "No such file or directory; create it or set conf_dir to the directory of the job files"},
    {"bad/shutdown-grace-type/pgcrond.conf",
     "bad/shutdown-grace-type/pgcrond.conf:3: shutdown_grace must be a string duration like "
     "\"30s\""},
    {"bad/job-in-main/pgcrond.conf",
     "bad/job-in-main/pgcrond.conf:3: jobs belong in the *.conf files of conf_dir, not in the main "
     "file; move this job there"},
    {"bad/no-databases/pgcrond.conf",
     "bad/no-databases/pgcrond.conf: no databases are defined; add databases = { analytics = { "
     "conninfo = \"service=analytics\"; }; };"},
    /* job files */
    {"bad/syntax-job/pgcrond.conf",
     "bad/syntax-job/conf.d/10-job.conf:5: the file ends too early; a brace, bracket, parenthesis "
     "or quote opened above is not closed"},
    {"bad/unknown-key-job/pgcrond.conf",
     "bad/unknown-key-job/conf.d/10-job.conf:5: unknown key \"schedul\" in job \"x\"; did you mean "
     "\"schedule\"?"},
    {"bad/unknown-key-plugin-job/pgcrond.conf",
     "bad/unknown-key-plugin-job/conf.d/10-job.conf:5: unknown key \"schedul\" in job \"x\"; did "
     "you mean \"schedule\"?"},
    {"bad/unknown-key-sql/pgcrond.conf",
     "bad/unknown-key-sql/conf.d/10-job.conf:6: unknown key \"colour\" in job \"x\"; a plain SQL "
     "job takes only the standard keys (pgcrond.conf(5) lists them); plugin settings need plugin = "
     "\"NAME\""},
    {"bad/wrong-type/pgcrond.conf",
     "bad/wrong-type/conf.d/10-job.conf:6: timeout must be a string duration like \"10m\""},
    {"bad/bad-duration/pgcrond.conf",
     "bad/bad-duration/conf.d/10-job.conf:6: timeout: \"10 minutes\" is not a duration; " HINT},
    {"bad/missing-name/pgcrond.conf",
     "bad/missing-name/conf.d/10-job.conf:2: job has no name; add name = \"...\" using letters, "
     "digits, \"_\", \".\" and \"-\""},
    {"bad/duplicate-name/pgcrond.conf",
     "bad/duplicate-name/conf.d/20-b.conf:3: job \"x\" is already defined at "
     "bad/duplicate-name/conf.d/10-a.conf:2; rename one of them"},
    {"bad/unknown-database/pgcrond.conf",
     "bad/unknown-database/conf.d/10-job.conf:5: job \"x\": unknown database \"analytcs\"; did you "
     "mean \"analytics\"?"},
    {"bad/plugin-and-command/pgcrond.conf",
     "bad/plugin-and-command/conf.d/10-job.conf:2: job \"x\" has both plugin and command; keep "
     "plugin for a view plugin or command for plain SQL"},
    {"bad/neither-plugin-nor-command/pgcrond.conf",
     "bad/neither-plugin-nor-command/conf.d/10-job.conf:2: job \"x\" has neither plugin nor "
     "command; add plugin = \"NAME\", command = \"SQL\" or http = { url = \"https://...\"; }"},
    {"bad/unknown-after/pgcrond.conf", "bad/unknown-after/conf.d/10-job.conf:11: job \"second\" "
                                       "runs after unknown job \"frist\"; did "
                                       "you mean \"first\"?"},
    {"bad/bad-overlap/pgcrond.conf",
     "bad/bad-overlap/conf.d/10-job.conf:6: overlap \"wait\" is not valid; use one of \"skip\", "
     "\"queue\", \"replace\""},
    {"bad/bad-history/pgcrond.conf",
     "bad/bad-history/conf.d/10-job.conf:6: history \"errors\" is not valid; use one of "
     "\"all\", \"failures\""},
    {"bad/bad-name/pgcrond.conf",
     "bad/bad-name/conf.d/10-job.conf:3: job name \"refresh views\" may only contain letters, "
     "digits, \"_\", \".\" and \"-\", at most 63 of them; rename it"},
    {"bad/long-name/pgcrond.conf",
     "bad/long-name/conf.d/10-job.conf:3: job name "
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" may only contain "
     "letters, digits, \"_\", \".\" and \"-\", at most 63 of them; rename it"},
    {"bad/empty-command/pgcrond.conf",
     "bad/empty-command/conf.d/10-job.conf:4: command is empty; write a value like \"REFRESH "
     "MATERIALIZED VIEW CONCURRENTLY my_view\""},
    {"bad/never-runs/pgcrond.conf",
     "bad/never-runs/conf.d/10-job.conf:2: job \"x\" would never run; add schedule, after, "
     "listen or freshness, or set enabled = false"},
    /* freshness and its sources (docs/freshness.md) */
    {"bad/freshness-short/pgcrond.conf",
     "bad/freshness-short/conf.d/10-job.conf:5: freshness must be at least \"1s\"; the daemon "
     "cannot promise a relation fresher than that"},
    {"bad/freshness-no-sources/pgcrond.conf",
     "bad/freshness-no-sources/conf.d/10-job.conf:4: job \"x\" has freshness but does not say "
     "what it reads; add sources = [ \"schema.table\", ... ] (the tables its command reads) or "
     "after = [ ... ] (the jobs whose relations it reads)"},
    {"bad/source-unqualified/pgcrond.conf",
     "bad/source-unqualified/conf.d/10-job.conf:6: source \"submissions\" is not a "
     "schema-qualified table name; write it as \"schema.table\" in lower case (or a quoted part "
     "like \"public.\\\"Orders\\\"\"), e.g. \"public.submissions\""},
    {"bad/sources-without-freshness/pgcrond.conf",
     "bad/sources-without-freshness/conf.d/10-job.conf:5: sources are read only for freshness; "
     "add freshness = \"15m\" (the longest the relation may lag its sources) or remove sources"},
    {"bad/sources-not-array/pgcrond.conf",
     "bad/sources-not-array/conf.d/10-job.conf:5: sources must be an array of table names like [ "
     "\"public.submissions\" ]"},
    {"bad/never-fires/pgcrond.conf",
     "bad/never-fires/conf.d/10-job.conf:5: schedule \"0 0 30 2 *\" never fires (that day does not "
     "exist in that month); fix the day and month fields"},
    {"bad/rrule-bad/pgcrond.conf",
     "bad/rrule-bad/conf.d/10-job.conf:5: schedule \"RRULE:FREQ=DAILY;BYHOUR=25\": BYHOUR=25: "
     "BYHOUR takes hours 0-23, separated by commas (column 18)"},
    {"bad/rrule-never/pgcrond.conf",
     "bad/rrule-never/conf.d/10-job.conf:5: schedule \"RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30\" "
     "never fires: no date and time meets every part of the rule (before its UNTIL); fix the "
     "parts"},
    {"bad/spread-too-wide/pgcrond.conf",
     "bad/spread-too-wide/conf.d/10-job.conf:6: spread \"90s\" is longer than the shortest time "
     "between two fires of schedule \"* * * * *\" (60s): a fire would move past the next one; "
     "make spread at most \"60s\""},
    {"bad/spread-no-calendar/pgcrond.conf",
     "bad/spread-no-calendar/conf.d/10-job.conf:6: spread moves the fires of a calendar schedule; "
     "\"N seconds\" counts from the last start already; remove spread"},
    {"bad/cal-unknown/pgcrond.conf",
     "bad/cal-unknown/conf.d/10-job.conf:6: unknown calendar \"holiday\"; did you mean "
     "\"holidays\"?"},
    {"bad/cal-both/pgcrond.conf",
     "bad/cal-both/conf.d/10-job.conf:6: job \"x\" has both skip_dates and only_dates; a job "
     "takes one calendar: keep the dates to skip out of the only_dates calendar"},
    {"bad/cal-interval/pgcrond.conf",
     "bad/cal-interval/conf.d/10-job.conf:6: skip_dates leaves out the fires of a calendar "
     "schedule on some dates; \"N seconds\" has no dates; remove it"},
    {"bad/cal-never/pgcrond.conf",
     "bad/cal-never/conf.d/10-job.conf:6: job \"x\": schedule \"0 6 * * 1-5\" with only_dates = "
     "\"holidays\" has no fire in the next ten years; add the dates to come to the calendar, "
     "or check that the schedule fires on them"},
    {"bad/cal-no-file/pgcrond.conf",
     "bad/cal-no-file/pgcrond.conf:4: calendar \"holidays\": bad/cal-no-file/missing.ics does "
     "not exist; give ics the path of an .ics file or of a directory of them (a relative path "
     "starts at this file's directory)"},
    {"bad/cal-bad-ics/pgcrond.conf",
     "bad/cal-bad-ics/holidays.ics:9: calendar \"holidays\": this event cannot be read: Got a "
     "data line, but could not find a property name or component begin tag: SUMMARY Boxing "
     "Day; fix the line"},
    {"bad/cal-table-db/pgcrond.conf",
     "bad/cal-table-db/pgcrond.conf:6: calendar \"holidays\": unknown database \"analytic\"; did "
     "you mean \"analytics\"?"},
    {"bad/cal-table-name/pgcrond.conf",
     "bad/cal-table-name/pgcrond.conf:6: calendar \"holidays\": table \"Holidays\" is not a "
     "schema-qualified table name; write it as \"schema.table\" in lower case (or a quoted part "
     "like \"public.\\\"Holidays\\\"\"), e.g. \"public.holidays\""},
    {"bad/cal-table-half/pgcrond.conf",
     "bad/cal-table-half/pgcrond.conf:4: calendar \"holidays\" has database but no table; a "
     "table calendar takes both: database = \"DB\"; table = \"schema.table\";"},
    {"bad/cal-table-and-ics/pgcrond.conf",
     "bad/cal-table-and-ics/pgcrond.conf:4: calendar \"holidays\" has both ics and a table; a "
     "calendar takes its dates from one: remove ics, or database and table"},
    {"bad/cal-timed/pgcrond.conf",
     "bad/cal-timed/holidays.ics:6: calendar \"holidays\": this event has a time of day "
     "(2026-12-25 at 14:00); a calendar of dates takes all-day events: write "
     "DTSTART;VALUE=DATE:20261225, or remove the event"},
    {"bad/duplicate-key/pgcrond.conf",
     "bad/duplicate-key/conf.d/10-job.conf:7: this setting appears twice in the same group; keep "
     "one "
     "(for several jobs in one file write jobs = ( { ... }, { ... } );)"},
    {"bad/daemon-key-in-job-file/pgcrond.conf", "bad/daemon-key-in-job-file/conf.d/10-job.conf:2: "
                                                "\"timezone\" is a daemon setting; it belongs "
                                                "in the main file, not in a job file"},
    {"bad/debounce-without-listen/pgcrond.conf",
     "bad/debounce-without-listen/conf.d/10-job.conf:6: debounce only applies to notifications; "
     "add "
     "listen = \"CHANNEL\" or remove debounce"},
    {"bad/retry-backoff/pgcrond.conf",
     "bad/retry-backoff/conf.d/10-job.conf:7: retry_backoff must be between 1 and 1000, not 0.5"},
    {"bad/enabled-string/pgcrond.conf",
     "bad/enabled-string/conf.d/10-job.conf:6: enabled must be true or false, without quotes"},
    {"bad/after-string/pgcrond.conf", /* and no "would never run" on top */
     "bad/after-string/conf.d/10-job.conf:5: after must be an array of job names like [ "
     "\"refresh-lane-distributions\" ]"},
    {"bad/retries-negative/pgcrond.conf",
     "bad/retries-negative/conf.d/10-job.conf:6: retries must be at least 0, not -1"},
    {"bad/plugin-setting-group/pgcrond.conf", "bad/plugin-setting-group/conf.d/10-job.conf:6: "
                                              "plugin setting window must be a string, number "
                                              "or true/false, not a list or group"},
    {"bad/jobs-not-list/pgcrond.conf",
     "bad/jobs-not-list/conf.d/10-job.conf:2: jobs must be a list of groups like jobs = ( { name = "
     "\"a\"; ... }, { name = \"b\"; ... } );"},
    /* numbers as written, refused with their range rather than wrapped by libconfig */
    {"bad/retries-overflow/pgcrond.conf",
     "bad/retries-overflow/conf.d/10-job.conf:6: retries 99999999999 is out of range; use a "
     "number from 0 to 1000000000"},
    {"bad/alert-after-wraps/pgcrond.conf",
     "bad/alert-after-wraps/conf.d/10-job.conf:2: alert_after 4294967298 is out of range; use a "
     "number from 1 to 1000000000"},
    {"bad/plugin-setting-overflow/pgcrond.conf",
     "bad/plugin-setting-overflow/conf.d/10-job.conf:6: plugin setting window_days = "
     "99999999999999999999 is out of range; use a number from -9223372036854775808 to "
     "9223372036854775807"},
    {"bad/connection-check-short/pgcrond.conf",
     "bad/connection-check-short/pgcrond.conf:4: connection_check \"500ms\" is too short; use "
     "at least \"2s\""},
    {"bad/dead-after-short/pgcrond.conf",
     "bad/dead-after-short/pgcrond.conf:4: cluster_dead_after \"2s\" is too short; use at least "
     "\"5s\""},
    {"bad/schedule-overflow/pgcrond.conf",
     "bad/schedule-overflow/conf.d/10-job.conf:5: schedule \"*/5000000000 * * * *\": step "
     "5000000000 is out of range 1-2147483647 (column 3)"},
    /* control characters shown escaped, never raw */
    {"bad/control-name/pgcrond.conf",
     "bad/control-name/conf.d/10-job.conf:3: job name \"ok\\n2026-01-01 error: FORGED\" may "
     "only contain letters, digits, \"_\", \".\" and \"-\", at most 63 of them; rename it"},
    {"bad/invalid-utf8/pgcrond.conf",
     "bad/invalid-utf8/conf.d/10-job.conf:4: command is not valid UTF-8 (byte 0xe9 at offset "
     "11); save the file as UTF-8 (PostgreSQL and the run history accept nothing else)"},
    {"bad/invalid-utf8-after/pgcrond.conf",
     "bad/invalid-utf8-after/conf.d/10-job.conf:4: after is not valid UTF-8 (byte 0xff at "
     "offset 0); save the file as UTF-8 (PostgreSQL and the run history accept nothing else)"},
    {"bad/empty-databases/pgcrond.conf",
     "bad/empty-databases/pgcrond.conf:2: databases is empty; define at least one, like "
     "databases = { analytics = { conninfo = \"service=analytics\"; }; };"},
    {"bad/state-dir-missing/pgcrond.conf",
     "bad/state-dir-missing/pgcrond.conf:3: state_dir \"bad/state-dir-missing/no-such-dir\" "
     "cannot be used: No such file or directory; create it, owned by the user pgcrond runs as "
     "with mode 0700 (the package does), or set state_dir"},
    {"bad/job-timezone/pgcrond.conf",
     "bad/job-timezone/conf.d/10-job.conf:5: unknown timezone \"Europe/Atlantis\"; use a name "
     "from the tz database like \"UTC\" or \"Europe/Berlin\""},
    {"bad/bad-plugin-name/pgcrond.conf",
     "bad/bad-plugin-name/conf.d/10-job.conf:4: plugin \"../lanes\" is not a plugin name; use the "
     "file name of a .so in plugin_dir without the extension, like \"weakness_patterns\""},
};

START_TEST(test_bad_config)
{
	ck_assert_str_eq(load_one_problem(bad[_i].path), bad[_i].expect);
}
END_TEST

/* Whatever is wrong with a conninfo or URL holding a password, no problem reported shows it. */
static const char *const secret_configs[] = {
    "bad/password-conninfo/pgcrond.conf",     "bad/uri-bad-percent/pgcrond.conf",
    "bad/uri-bad-ipv6/pgcrond.conf",          "bad/unknown-conninfo-key/pgcrond.conf",
    "bad/http-job-url-password/pgcrond.conf", "bad/webhook-url-password/pgcrond.conf",
    "bad/http-job-url-at/pgcrond.conf",
};

START_TEST(test_bad_conninfo_no_password)
{
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;

	ck_assert_int_eq(config_load(secret_configs[_i], &cfg, &dl), -EINVAL);
	ck_assert_uint_ge(dl.n, 1);
	for (size_t i = 0; i < dl.n; i++) {
		ck_assert_msg(strstr(diag_text(&dl.items[i]), "secret") == NULL &&
		                  strstr(diag_text(&dl.items[i]), "s3cret") == NULL,
		              "password in: %s", diag_text(&dl.items[i]));
	}
	diag_clear(&dl);
}
END_TEST

/* The schedule message is cron_parse's, quoting the expression and naming the column. */
START_TEST(test_bad_schedule)
{
	char err[256], expect[512];
	cron_expr e;

	ck_assert_int_eq(cron_parse("*/0 * * * *", &e, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "\"*/0 * * * *\""));
	ck_assert_ptr_nonnull(strstr(err, "column"));
	snprintf(expect, sizeof(expect), "bad/bad-schedule/conf.d/10-job.conf:5: schedule %s", err);
	ck_assert_str_eq(load_one_problem("bad/bad-schedule/pgcrond.conf"), expect);
}
END_TEST

START_TEST(test_setting_outside_job)
{
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;

	ck_assert_int_eq(config_load("bad/setting-outside-job/pgcrond.conf", &cfg, &dl), -EINVAL);
	ck_assert_uint_eq(dl.n, 2);
	ck_assert_str_eq(
	    diag_text(&dl.items[0]),
	    "bad/setting-outside-job/conf.d/10-job.conf:2: \"name\" is outside any job; put "
	    "the job's settings inside job = { ... };");
	ck_assert_str_eq(
	    diag_text(&dl.items[1]),
	    "bad/setting-outside-job/conf.d/10-job.conf:3: \"command\" is outside any job; put "
	    "the job's settings inside job = { ... };");
	diag_clear(&dl);
}
END_TEST

/* Every problem in one pass, in file and line order; a syntax error stops only its file. */
START_TEST(test_bad_multi)
{
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	char err[256], sched[512];
	cron_expr e;

	ck_assert_int_eq(cron_parse("*/0 * * * *", &e, err, sizeof(err)), -EINVAL);
	snprintf(sched, sizeof(sched), "bad/multi/conf.d/30-weakness.conf:5: schedule %s", err);
	const char *expect[] = {
	    "bad/multi/pgcrond.conf:3: max_running must be at least 1, not 0",
	    "bad/multi/pgcrond.conf:7: retain: \"30 days\" is not a duration; " HINT,
	    "bad/multi/pgcrond.conf:8: unknown key \"log_levle\"; did you mean \"log_level\"?",
	    "bad/multi/conf.d/20-broken.conf:6: " SYNTAX,
	    sched,
	    "bad/multi/conf.d/30-weakness.conf:6: job \"weakness\" runs after unknown job "
	    "\"lane\"; "
	    "did you mean \"lanes\"?",
	    "bad/multi/conf.d/30-weakness.conf:8: retries must be a whole number like 3",
	    "bad/multi/conf.d/30-weakness.conf:10: job \"lanes\" is already defined at "
	    "bad/multi/conf.d/10-lanes.conf:2; rename one of them",
	    "bad/multi/conf.d/30-weakness.conf:14: timeout must be a string duration like \"10m\"",
	    "bad/multi/conf.d/30-weakness.conf:15: job \"lanes\": unknown database \"reporting\"; "
	    "use "
	    "one of analytics, or define it under databases in bad/multi/pgcrond.conf",
	};
	size_t n = sizeof(expect) / sizeof(expect[0]);

	ck_assert_int_eq(config_load("bad/multi/pgcrond.conf", &cfg, &dl), -EINVAL);
	ck_assert_ptr_null(cfg);
	for (size_t i = 0; i < dl.n && i < n; i++)
		ck_assert_str_eq(diag_text(&dl.items[i]), expect[i]);
	ck_assert_uint_eq(dl.n, n);
	diag_clear(&dl);
}
END_TEST

/* Diagnostics already in the list (the caller's) are kept and not reordered. */
START_TEST(test_appends_to_caller_diags)
{
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;

	diag_add(&dl, "zzz", 99, "earlier");
	ck_assert_int_eq(config_load("bad/max-running/pgcrond.conf", &cfg, &dl), -EINVAL);
	ck_assert_uint_eq(dl.n, 2);
	ck_assert_str_eq(diag_text(&dl.items[0]), "zzz:99: earlier");
	ck_assert_str_eq(diag_text(&dl.items[1]),
	                 "bad/max-running/pgcrond.conf:3: max_running must be at least 1, not 0");
	diag_clear(&dl);
	ck_assert_uint_eq(dl.n, 0);
}
END_TEST

/* ---- files trusted like plugins ------------------------------------------------------ */

/* A config tree in a fresh temp dir under /tmp (root-owned, sticky: acceptable above):
 * @/pgcrond.conf, @/conf.d/10-a.conf, @/state; modes as a package would install them. */
static char tree[64];

static void write_text(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
}

static const char *at(const char *rel)
{
	static char buf[4][256];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s%s", tree, rel);
	return buf[i];
}

static void make_tree(void)
{
	snprintf(tree, sizeof(tree), "/tmp/pgcrond-trust-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tree));
	ck_assert_int_eq(chmod(tree, 0755), 0);
	ck_assert_int_eq(mkdir(at("/conf.d"), 0755), 0);
	ck_assert_int_eq(mkdir(at("/state"), 0700), 0);
	write_text(at("/pgcrond.conf"),
	           "databases = { analytics = { conninfo = \"dbname=analytics\"; }; };\n"
	           "state_dir = \"state\";\n"
	           "conf_dir = \"conf.d\";\n",
	           0644);
	write_text(at("/conf.d/10-a.conf"),
	           "job = { name = \"a\"; command = \"SELECT 1\"; schedule = \"@daily\"; };\n",
	           0644);
}

static void remove_tree(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tree);
	ck_assert_int_eq(system(cmd), 0);
}

/* Load the tree; every problem, "@" standing for the tree, one per line. */
static char *tree_problems(void)
{
	static char out[8192];
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	size_t o = 0, tl = strlen(tree);

	int rc = config_load(at("/pgcrond.conf"), &cfg, &dl);
	ck_assert(rc == 0 || rc == -EINVAL);
	out[0] = '\0';
	for (size_t i = 0; i < dl.n; i++) {
		const char *t = diag_text(&dl.items[i]);
		for (const char *p = t; *p && o + 2 < sizeof(out);) {
			if (strncmp(p, tree, tl) == 0) {
				out[o++] = '@';
				p += tl;
			} else {
				out[o++] = *p++;
			}
		}
		out[o++] = '\n';
		out[o] = '\0';
	}
	ck_assert_int_eq(rc == 0, dl.n == 0);
	config_free(&cfg);
	diag_clear(&dl);
	return out;
}

START_TEST(test_trusted_tree_loads)
{
	make_tree();
	ck_assert_str_eq(tree_problems(), ""); /* below /tmp: root-owned, sticky, mode 1777 */
	remove_tree();
}
END_TEST

/* Command CMD of the CLI (cli_check, cli_status...) on the tree, "pgcrond NAME -c
 * @/pgcrond.conf [ARG]": its stdout and stderr, "@" standing for the tree; returns its exit
 * code. */
static int tree_cli(int (*cmd)(int, char **), const char *name, const char *arg, char *out,
                    size_t outlen, char *err, size_t errlen)
{
	char *argv[] = {(char *)name, "-c", (char *)at("/pgcrond.conf"), (char *)arg, NULL};
	FILE *fo = tmpfile(), *fe = tmpfile();
	ck_assert(fo && fe);
	fflush(stdout);
	fflush(stderr);
	int so = dup(1), se = dup(2);
	dup2(fileno(fo), 1);
	dup2(fileno(fe), 2);
	int rc = cmd(arg ? 4 : 3, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	FILE *fs[] = {fo, fe};
	char *bufs[] = {out, err};
	size_t lens[] = {outlen, errlen}, tl = strlen(tree);
	for (int k = 0; k < 2; k++) {
		char raw[8192];
		rewind(fs[k]);
		size_t n = fread(raw, 1, sizeof(raw) - 1, fs[k]), o = 0;
		raw[n] = '\0';
		fclose(fs[k]);
		for (const char *p = raw; *p && o + 1 < lens[k];) {
			if (strncmp(p, tree, tl) == 0) {
				bufs[k][o++] = '@';
				p += tl;
			} else {
				bufs[k][o++] = *p++;
			}
		}
		bufs[k][o] = '\0';
	}
	return rc;
}

/* `pgcrond check` on the tree (--offline: a unit test reaches no server). */
static int tree_check(char *out, size_t outlen, char *err, size_t errlen)
{
	return tree_cli(cli_check, "check", "--offline", out, outlen, err, errlen);
}

/* A warning is for what the reader can act on. A six-field schedule in a job file is none:
 * pg_cron never reads the file, and pgcrond runs it with seconds first as written. A
 * recurrence rule whose UNTIL is past is one: the job never runs again; check says so at
 * the schedule's line, without failing. */
START_TEST(test_check_warns_of_what_the_reader_can_act_on)
{
	char out[4096], err[8192];

	make_tree();
	int rc = tree_check(out, sizeof(out), err, sizeof(err));
	ck_assert_msg(rc == 0, "check: %d %s", rc, err);
	ck_assert_str_eq(out, "@/pgcrond.conf: 1 job, 1 database: OK\n");
	ck_assert_str_eq(err, "");

	write_text(at("/conf.d/10-a.conf"),
	           "jobs = ( { name = \"a\"; command = \"SELECT 1\";\n"
	           "  schedule = \"*/30 * * * * *\"; },\n"
	           "  { name = \"b\"; command = \"SELECT 1\"; schedule = \"30 seconds\"; },\n"
	           "  { name = \"c\"; command = \"SELECT 1\";\n"
	           "    schedule = \"RRULE:FREQ=DAILY;BYHOUR=3;UNTIL=20200101T000000\"; },\n"
	           "  { name = \"d\"; command = \"SELECT 1\";\n"
	           "    schedule = \"RRULE:FREQ=DAILY;BYHOUR=3;UNTIL=25001231T000000\"; } );\n",
	           0644);
	rc = tree_check(out, sizeof(out), err, sizeof(err));
	ck_assert_msg(rc == 0, "check: %d %s", rc, err);
	ck_assert_str_eq(out, "@/pgcrond.conf: 4 jobs, 1 database: OK, 1 warning\n");
	ck_assert_str_eq(err, "@/conf.d/10-a.conf:5: warning: job \"c\": schedule "
	                      "\"RRULE:FREQ=DAILY;BYHOUR=3;UNTIL=20200101T000000\" has no fire to "
	                      "come: its UNTIL is past; move UNTIL, or remove the job\n");
	remove_tree();
}
END_TEST

/* A calendar on @reboot is refused for what it is (@reboot has no dates), not as a job
 * without a fire in ten years. */
START_TEST(test_check_reboot_with_a_calendar)
{
	char out[4096], err[8192];

	make_tree();
	write_text(at("/hol.ics"),
	           "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//t//EN\nBEGIN:VEVENT\n"
	           "UID:1\nDTSTART;VALUE=DATE:20300101\nEND:VEVENT\nEND:VCALENDAR\n",
	           0644);
	write_text(at("/pgcrond.conf"),
	           "databases = { analytics = { conninfo = \"dbname=analytics\"; }; };\n"
	           "state_dir = \"state\";\nconf_dir = \"conf.d\";\n"
	           "calendars = { hol = { ics = \"hol.ics\"; }; };\n",
	           0644);
	write_text(at("/conf.d/10-a.conf"),
	           "job = { name = \"boot\"; command = \"SELECT 1\"; schedule = \"@reboot\";\n"
	           "  skip_dates = \"hol\"; };\n",
	           0644);
	int rc = tree_check(out, sizeof(out), err, sizeof(err));
	ck_assert_int_eq(rc, 78);
	ck_assert_msg(strstr(err, "@reboot has no dates") && !strstr(err, "ten years"), "%s", err);
	remove_tree();
}
END_TEST

START_TEST(test_main_file_writable_by_others)
{
	make_tree();
	ck_assert_int_eq(chmod(at("/pgcrond.conf"), 0666), 0);
	ck_assert_str_eq(tree_problems(),
	                 "@/pgcrond.conf: refusing this file: @/pgcrond.conf is writable by others "
	                 "(mode 0666); run chmod go-w @/pgcrond.conf\n");
	remove_tree();
}
END_TEST

START_TEST(test_job_file_writable_by_group)
{
	make_tree();
	ck_assert_int_eq(chmod(at("/conf.d/10-a.conf"), 0664), 0);
	ck_assert_str_eq(tree_problems(),
	                 "@/conf.d/10-a.conf: refusing this file: @/conf.d/10-a.conf is writable "
	                 "by its group (mode 0664); run chmod go-w @/conf.d/10-a.conf\n");
	remove_tree();
}
END_TEST

START_TEST(test_conf_dir_writable_by_group)
{
	make_tree();
	ck_assert_int_eq(chmod(at("/conf.d"), 0775), 0);
	ck_assert_str_eq(tree_problems(),
	                 "@/pgcrond.conf:3: refusing conf_dir: directory @/conf.d is writable by "
	                 "its group (mode 0775); run chmod go-w @/conf.d\n");
	remove_tree();
}
END_TEST

/* A calendar's .ics file is trusted like a job file: one others can write is refused. */
START_TEST(test_calendar_writable_by_others)
{
	make_tree();
	FILE *f = fopen(at("/pgcrond.conf"), "a");
	ck_assert_ptr_nonnull(f);
	fputs("calendars = { holidays = { ics = \"holidays.ics\"; }; };\n", f);
	ck_assert_int_eq(fclose(f), 0);
	write_text(at("/holidays.ics"), "BEGIN:VCALENDAR\nEND:VCALENDAR\n", 0666);
	ck_assert_str_eq(
	    tree_problems(),
	    "@/pgcrond.conf:4: calendar \"holidays\": refusing @/holidays.ics: "
	    "@/holidays.ics is writable by others (mode 0666); run chmod go-w "
	    "@/holidays.ics; give ics the path of an .ics file (or a directory of them) "
	    "that only root or pgcrond's user can change\n");
	ck_assert_int_eq(chmod(at("/holidays.ics"), 0644), 0);
	ck_assert_str_eq(tree_problems(), "");
	remove_tree();
}
END_TEST

/* A calendar that cannot be read (removed, unparsable, writable by others) fails `pgcrond
 * check`, and no command that reaches the running daemon: it and the job files that use it
 * are left out, with a warning, as a job file with errors is. */
START_TEST(test_broken_calendar_is_left_out)
{
	char out[4096], err[8192];
	make_tree();
	FILE *f = fopen(at("/pgcrond.conf"), "a");
	ck_assert_ptr_nonnull(f);
	fputs("calendars = { holidays = { ics = \"holidays.ics\"; }; };\n", f);
	ck_assert_int_eq(fclose(f), 0);
	write_text(at("/conf.d/20-b.conf"),
	           "job = { name = \"b\"; command = \"SELECT 1\"; schedule = \"@daily\";\n"
	           "  skip_dates = \"holidays\"; };\n",
	           0644);
	write_text(at("/holidays.ics"), "BEGIN:VCALENDAR\nEND:VCALENDAR\n", 0666);
	ck_assert_int_eq(tree_check(out, sizeof(out), err, sizeof(err)), 78);
	ck_assert_msg(strstr(err, "@/pgcrond.conf:4: calendar \"holidays\": refusing "), "%s", err);

	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	char **skipped = NULL;
	size_t n = 0;
	ck_assert_int_eq(config_load_partial(at("/pgcrond.conf"), &cfg, &dl, &skipped, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(skipped[0], "calendar \"holidays\"");
	ck_assert_str_eq(skipped[1], at("/conf.d/20-b.conf"));
	ck_assert_ptr_nonnull(config_job(cfg, "a"));
	ck_assert_ptr_null(config_job(cfg, "b"));
	for (size_t i = 0; i < n; i++)
		free(skipped[i]);
	free(skipped);
	config_free(&cfg);
	diag_clear(&dl);

	/* status reaches for the daemon's socket: none here (not the calendar's 78) */
	ck_assert_int_eq(tree_cli(cli_status, "status", NULL, out, sizeof(out), err, sizeof(err)),
	                 69);
	ck_assert_str_eq(err, "pgcrond status: no pgcrond answers on @/state/pgcrond.sock (No "
	                      "such file or directory); is the daemon running with this "
	                      "configuration (state_dir = \"@/state\")?\n");
	remove_tree();
}
END_TEST

/* A parent writable by others without the sticky bit: whoever can write there can swap
 * the whole tree. Everything below is refused; the job files are not read. */
START_TEST(test_parent_dir_writable)
{
	make_tree();
	ck_assert_int_eq(chmod(tree, 0777), 0);
	ck_assert_str_eq(
	    tree_problems(),
	    "@/pgcrond.conf: refusing this file: directory @ above @/pgcrond.conf is writable by "
	    "others (mode 0777); run chmod go-w @\n"
	    "@/pgcrond.conf:2: refusing state_dir: directory @ above @/state is writable by others "
	    "(mode 0777); run chmod go-w @\n");
	/* with the sticky bit it may be above state_dir, but not a file's own directory */
	ck_assert_int_eq(chmod(tree, 01777), 0);
	ck_assert_str_eq(tree_problems(),
	                 "@/pgcrond.conf: refusing this file: directory @ above @/pgcrond.conf is "
	                 "writable by others (mode 1777); run chmod go-w @\n");
	remove_tree();
}
END_TEST

START_TEST(test_owned_by_another_user)
{
	make_tree();
	/* tests run as root: nobody (65534) is another, non-root user */
	ck_assert_int_eq(chown(at("/conf.d/10-a.conf"), 65534, 65534), 0);
	ck_assert_str_eq(
	    tree_problems(),
	    "@/conf.d/10-a.conf: refusing this file: @/conf.d/10-a.conf is owned by "
	    "uid 65534, neither root nor the user pgcrond runs as (uid 0); run pgcrond "
	    "as its owner (sudo -u nobody pgcrond ...), or, if only root should "
	    "change it, chown root @/conf.d/10-a.conf\n");
	ck_assert_int_eq(chown(at("/conf.d/10-a.conf"), 0, 0), 0);
	ck_assert_int_eq(chown(at("/conf.d"), 65534, 65534), 0);
	ck_assert_str_eq(tree_problems(),
	                 "@/pgcrond.conf:3: refusing conf_dir: directory @/conf.d is owned by uid "
	                 "65534, neither root nor the user pgcrond runs as (uid 0); run pgcrond as "
	                 "its owner (sudo -u nobody pgcrond ...), or, if only root should change "
	                 "it, chown root @/conf.d\n");
	remove_tree();
}
END_TEST

START_TEST(test_state_dir_writable_by_others)
{
	make_tree();
	ck_assert_int_eq(chmod(at("/state"), 0777), 0);
	ck_assert_str_eq(tree_problems(),
	                 "@/pgcrond.conf:2: refusing state_dir: directory @/state is writable by "
	                 "others (mode 0777); run chmod go-w @/state\n");
	remove_tree();
}
END_TEST

/* A symbolic link is as safe as the directory it sits in: a link in a trusted directory to a
 * file in a directory anybody can write is refused. */
START_TEST(test_link_into_writable_dir)
{
	make_tree();
	ck_assert_int_eq(mkdir(at("/open"), 0777), 0);
	ck_assert_int_eq(chmod(at("/open"), 0777), 0);
	ck_assert_int_eq(rename(at("/conf.d/10-a.conf"), at("/open/a.conf")), 0);
	ck_assert_int_eq(symlink(at("/open/a.conf"), at("/conf.d/10-a.conf")), 0);
	ck_assert_str_eq(tree_problems(),
	                 "@/conf.d/10-a.conf: refusing this file: directory @/open above "
	                 "@/conf.d/10-a.conf is writable by others (mode 0777); run chmod go-w "
	                 "@/open\n");
	remove_tree();
}
END_TEST

/* Every link of a chain is as safe as the directory it sits in: a link in conf.d to a link
 * in a directory anybody can write, pointing at a trusted file, is refused (checking the
 * first link's directory and the last target's only would let it through). */
START_TEST(test_link_chain_through_writable_dir)
{
	make_tree();
	ck_assert_int_eq(mkdir(at("/open"), 0777), 0);
	ck_assert_int_eq(chmod(at("/open"), 0777), 0);
	ck_assert_int_eq(mkdir(at("/real"), 0755), 0);
	ck_assert_int_eq(rename(at("/conf.d/10-a.conf"), at("/real/a.conf")), 0);
	ck_assert_int_eq(symlink(at("/real/a.conf"), at("/open/mid")), 0);
	ck_assert_int_eq(symlink(at("/open/mid"), at("/conf.d/10-a.conf")), 0);
	ck_assert_str_eq(tree_problems(),
	                 "@/conf.d/10-a.conf: refusing this file: directory @/open above "
	                 "@/conf.d/10-a.conf is writable by others (mode 0777); run chmod go-w "
	                 "@/open\n");
	/* a relative link whose middle hop is trusted passes */
	ck_assert_int_eq(unlink(at("/conf.d/10-a.conf")), 0);
	ck_assert_int_eq(symlink("../real/a.conf", at("/conf.d/10-a.conf")), 0);
	ck_assert_str_eq(tree_problems(), "");
	remove_tree();
}
END_TEST

/* An @include'd file passes the same check as the file including it. */
START_TEST(test_include_untrusted)
{
	make_tree();
	ck_assert_int_eq(mkdir(at("/open"), 0777), 0);
	ck_assert_int_eq(chmod(at("/open"), 0777), 0);
	write_text(at("/open/inc.conf"),
	           "job = { name = \"b\"; command = \"SELECT 2\"; schedule = \"@daily\"; };\n",
	           0644);
	write_text(at("/conf.d/20-b.conf"), "# b\n  @include \"../open/inc.conf\"\n", 0644);
	ck_assert_str_eq(
	    tree_problems(),
	    "@/conf.d/20-b.conf:2: refusing @include \"../open/inc.conf\": directory "
	    "@/open above @/conf.d/../open/inc.conf is writable by others (mode 0777); "
	    "run chmod go-w @/open\n");
	/* the file itself writable by others, in a trusted directory */
	ck_assert_int_eq(chmod(at("/open"), 0755), 0);
	ck_assert_int_eq(chmod(at("/open/inc.conf"), 0666), 0);
	ck_assert_str_eq(tree_problems(),
	                 "@/conf.d/20-b.conf:2: refusing @include \"../open/inc.conf\": "
	                 "@/conf.d/../open/inc.conf is writable by others (mode 0666); run chmod "
	                 "go-w @/conf.d/../open/inc.conf\n");
	/* trusted: it loads */
	ck_assert_int_eq(chmod(at("/open/inc.conf"), 0644), 0);
	ck_assert_str_eq(tree_problems(), "");
	remove_tree();
}
END_TEST

START_TEST(test_size_cap)
{
	make_tree();
	FILE *f = fopen(at("/conf.d/20-big.conf"), "w");
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 1024 * 1024 / 64 + 1; i++)
		fprintf(f, "# %-61d\n", i); /* 64 bytes a line */
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_str_eq(tree_problems(),
	                 "@/conf.d/20-big.conf: the file is 1048640 bytes, more than the 1048576 "
	                 "bytes (1 MiB) a configuration file may have; split it into several files "
	                 "in conf_dir\n");
	remove_tree();
}
END_TEST

/* config_load_again of the tree against PREV: 0, or the first problem in *PROBLEM. */
static struct pgc_config *load_again(const struct pgc_config *prev, const char **problem)
{
	static char text[2048];
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	int rc = config_load_again(at("/pgcrond.conf"), prev, &cfg, &dl);

	ck_assert(rc == 0 || rc == -EINVAL);
	ck_assert_int_eq(rc == 0, dl.n == 0);
	snprintf(text, sizeof(text), "%s", dl.n ? diag_text(&dl.items[0]) : "");
	*problem = text;
	diag_clear(&dl);
	return cfg;
}

/* Which of CFG's job files were taken from the configuration before: "tp.." by file. */
static const char *taken(const struct pgc_config *cfg)
{
	static char v[16];
	size_t i;
	for (i = 0; i < cfg->n_job_files && i + 1 < sizeof(v); i++)
		v[i] = cfg->job_files[i].taken ? 't' : 'p';
	v[i] = '\0';
	return v;
}

/* Replace the text of conf.d/NAME by TEXT (of the same size) and put its times back. */
static void rewrite_keeping_times(const char *name, const char *text)
{
	struct stat st;
	ck_assert_int_eq(stat(at(name), &st), 0);
	ck_assert_int_eq((long long)strlen(text), (long long)st.st_size);
	write_text(at(name), text, 0644);
	struct timespec times[2] = {st.st_atim, st.st_mtim};
	ck_assert_int_eq(utimensat(AT_FDCWD, at(name), times, 0), 0);
}

/* A reload's load parses only the job files whose text changed; the others' jobs are copies
 * of the configuration before, with the duplicate names across files still refused. */
START_TEST(test_load_again_takes_unchanged_files)
{
	const char *problem;
	make_tree();
	write_text(at("/conf.d/20-b.conf"),
	           "job = { name = \"b\"; command = \"SELECT 2\"; schedule = \"@daily\"; };\n",
	           0644);
	write_text(at("/conf.d/inc.cfg"),
	           "job = { name = \"c\"; command = \"SELECT 3\"; schedule = \"@daily\"; };\n",
	           0644);
	write_text(at("/conf.d/30-inc.conf"), "@include \"inc.cfg\"\n", 0644);
	struct pgc_config *c1 = load_again(NULL, &problem);
	ck_assert_str_eq(problem, "");
	ck_assert_str_eq(taken(c1), "ppp");

	/* nothing changed: taken, as copies of their own (c1 may go) */
	struct pgc_config *c2 = load_again(c1, &problem);
	ck_assert_str_eq(problem, "");
	ck_assert_str_eq(taken(c2), "ttp"); /* an @include's text may have changed: parsed */
	ck_assert(config_same_files(c1, c2) == false); /* (so: not the same files) */
	ck_assert_int_eq(c2->n_jobs, 3);
	ck_assert_str_eq(config_job(c2, "b")->command, "SELECT 2");
	ck_assert_ptr_ne(config_job(c2, "b")->command, config_job(c1, "b")->command);
	ck_assert_str_eq(config_job(c2, "b")->file, at("/conf.d/20-b.conf"));
	config_free(&c1);

	/* the same size, the same times: the text tells */
	rewrite_keeping_times("/conf.d/20-b.conf",
	                      "job = { name = \"b\"; command = \"SELECT 4\"; schedule = "
	                      "\"@daily\"; };\n");
	struct pgc_config *c3 = load_again(c2, &problem);
	ck_assert_str_eq(problem, "");
	ck_assert_str_eq(taken(c3), "tpp");
	ck_assert_str_eq(config_job(c3, "b")->command, "SELECT 4");

	/* a new file defines a taken file's job first: the taken one is refused, at its line */
	write_text(at("/conf.d/15-dup.conf"),
	           "job = { name = \"b\"; command = \"SELECT 5\"; schedule = \"@daily\"; };\n",
	           0644);
	struct pgc_config *bad = load_again(c3, &problem);
	ck_assert_ptr_null(bad);
	char want[512];
	snprintf(want, sizeof(want),
	         "%s:1: job \"b\" is already defined at %s:1; rename one of them",
	         at("/conf.d/20-b.conf"), at("/conf.d/15-dup.conf"));
	ck_assert_str_eq(problem, want);
	ck_assert_int_eq(unlink(at("/conf.d/15-dup.conf")), 0);

	/* the main file changed: every job file is parsed again */
	write_text(at("/pgcrond.conf"),
	           "databases = { analytics = { conninfo = \"dbname=analytics\"; }; };\n"
	           "state_dir = \"state\";\nconf_dir = \"conf.d\";\nmax_running = 8;\n",
	           0644);
	struct pgc_config *c4 = load_again(c3, &problem);
	ck_assert_str_eq(problem, "");
	ck_assert_str_eq(taken(c4), "ppp");
	config_free(&c2);
	config_free(&c3);
	config_free(&c4);
	remove_tree();
}
END_TEST

/* The keys most jobs leave alone are in one conf_job_more: a job that sets none of them points
 * at the shared defaults (100,000 such jobs hold one), a job that sets one has its own, the
 * other keys at their defaults; a reload's copy of an unchanged file keeps both so, its own
 * ones copies (the configuration before goes first). */
START_TEST(test_rare_keys_apart)
{
	const char *problem;
	make_tree();
	write_text(at("/conf.d/20-b.conf"),
	           "jobs = ( { name = \"plain\"; command = \"SELECT 2\"; schedule = \"@daily\";"
	           " after = [ \"a\" ]; timeout = \"1m\"; retries = 2; },\n"
	           " { name = \"rare\"; command = \"SELECT 3\"; schedule = \"0 9 * * *\";"
	           " retry_delay = \"5s\"; listen = \"ch\"; timezone = \"Europe/Berlin\";"
	           " freshness = \"15m\"; sources = [ \"public.t\" ]; } );\n",
	           0644);
	struct pgc_config *c1 = load_again(NULL, &problem);
	ck_assert_str_eq(problem, "");
	const struct conf_job *plain = config_job(c1, "plain"), *rare = config_job(c1, "rare");
	ck_assert_ptr_eq(config_job(c1, "a")->more, &config_job_more_defaults);
	ck_assert_ptr_eq(plain->more, &config_job_more_defaults);
	ck_assert_int_eq(plain->retries, 2);
	ck_assert_ptr_ne(rare->more, &config_job_more_defaults);
	ck_assert_int_eq(rare->more->retry.delay_ms, 5000);
	ck_assert_int_eq(rare->more->retry.max_delay_ms, 600000);
	ck_assert_double_eq(rare->more->retry.backoff, 2.0);
	ck_assert_str_eq(rare->more->notify.listen, "ch");
	ck_assert_int_eq(rare->more->notify.debounce_ms, 5000);
	ck_assert_int_eq(rare->more->alerts.after, 1);
	ck_assert_ptr_nonnull(rare->more->cal.tz);

	struct pgc_config *c2 = load_again(c1, &problem);
	ck_assert_str_eq(problem, "");
	ck_assert_str_eq(taken(c2), "tt");
	const struct conf_job *rare1 = rare;
	plain = config_job(c2, "plain");
	rare = config_job(c2, "rare");
	ck_assert_ptr_eq(plain->more, &config_job_more_defaults);
	ck_assert_ptr_ne(rare->more, &config_job_more_defaults);
	ck_assert_ptr_ne(rare->more, rare1->more);
	ck_assert_ptr_ne(rare->more->notify.listen, rare1->more->notify.listen);
	config_free(&c1);
	ck_assert_int_eq(rare->more->retry.delay_ms, 5000);
	ck_assert_str_eq(rare->more->notify.listen, "ch");
	ck_assert_str_eq(rare->more->cal.timezone, "Europe/Berlin");
	ck_assert_ptr_nonnull(rare->more->cal.tz);
	ck_assert_int_eq(rare->more->fresh.sla_ms, 15 * 60000);
	ck_assert_uint_eq(rare->more->fresh.n_sources, 1);
	ck_assert_str_eq(rare->more->fresh.sources[0], "public.t");
	config_free(&c2);
	remove_tree();
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("duration");
	tcase_add_loop_test(tc, test_duration_parse_good, 0,
	                    (int)(sizeof(good_durations) / sizeof(good_durations[0])));
	tcase_add_loop_test(tc, test_duration_parse_bad, 0,
	                    (int)(sizeof(bad_durations) / sizeof(bad_durations[0])));
	tcase_add_test(tc, test_duration_format);
	suite_add_tcase(s, tc);

	tc = tcase_create("good");
	tcase_add_test(tc, test_good_full);
	tcase_add_test(tc, test_good_http);
	tcase_add_loop_test(tc, test_url_check, 0, sizeof(urls) / sizeof(urls[0]));
	tcase_add_test(tc, test_good_minimal_defaults);
	tcase_add_test(tc, test_good_samedir);
	tcase_add_test(tc, test_shipped_config);
	tcase_add_test(tc, test_helpers);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad");
	tcase_add_loop_test(tc, test_bad_config, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_loop_test(tc, test_bad_conninfo_no_password, 0,
	                    (int)(sizeof(secret_configs) / sizeof(secret_configs[0])));
	tcase_add_test(tc, test_bad_schedule);
	tcase_add_test(tc, test_setting_outside_job);
	tcase_add_test(tc, test_bad_multi);
	tcase_add_test(tc, test_appends_to_caller_diags);
	suite_add_tcase(s, tc);

	tc = tcase_create("trust");
	tcase_add_test(tc, test_trusted_tree_loads);
	tcase_add_test(tc, test_check_warns_of_what_the_reader_can_act_on);
	tcase_add_test(tc, test_check_reboot_with_a_calendar);
	tcase_add_test(tc, test_main_file_writable_by_others);
	tcase_add_test(tc, test_calendar_writable_by_others);
	tcase_add_test(tc, test_broken_calendar_is_left_out);
	tcase_add_test(tc, test_job_file_writable_by_group);
	tcase_add_test(tc, test_conf_dir_writable_by_group);
	tcase_add_test(tc, test_parent_dir_writable);
	tcase_add_test(tc, test_owned_by_another_user);
	tcase_add_test(tc, test_state_dir_writable_by_others);
	tcase_add_test(tc, test_link_into_writable_dir);
	tcase_add_test(tc, test_link_chain_through_writable_dir);
	tcase_add_test(tc, test_include_untrusted);
	tcase_add_test(tc, test_size_cap);
	tcase_add_test(tc, test_load_again_takes_unchanged_files);
	tcase_add_test(tc, test_rare_keys_apart);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	/* relative fixture paths, so messages read as a person would see them */
	if (chdir(TEST_SOURCE_DIR "/unit/configs") < 0) {
		perror(TEST_SOURCE_DIR "/unit/configs");
		return EXIT_FAILURE;
	}
	sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
