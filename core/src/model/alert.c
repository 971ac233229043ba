#include "alert.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "cron.h"
#include "httpc.h"
#include "log.h"
#include "strmap.h"
#include "text.h"

static const char *const kind_names[ALERT_KIND_COUNT] = {
    [ALERT_FAILED] = "failed",
    [ALERT_CONSECUTIVE] = "consecutive_failures",
    [ALERT_STALE] = "stale",
    [ALERT_SLOW] = "slow",
    [ALERT_UPSTREAM_FAILED] = "upstream_failed",
    [ALERT_FRESHNESS_LAG] = "freshness_lag",
    [ALERT_FRESHNESS_LAG_2X] = "freshness_lag_2x",
};

static const char *const event_names[] = {[ALERT_NONE] = "none",
                                          [ALERT_FIRE] = "alert",
                                          [ALERT_REPEAT] = "repeat",
                                          [ALERT_RECOVER] = "recovered"};

static const char *kind_name(enum alert_kind kind)
{
	return kind < ALERT_KIND_COUNT ? kind_names[kind] : "unknown";
}

enum alert_action alert_step(struct alert_state *s, bool active, int64_t now_ms, int64_t repeat_ms)
{
	if (!active) {
		if (!s->active)
			return ALERT_NONE;
		s->active = false;
		return ALERT_RECOVER;
	}
	if (!s->active) {
		s->active = true;
		s->since_ms = now_ms;
		s->last_sent_ms = now_ms;
		return ALERT_FIRE;
	}
	if (repeat_ms > 0 && now_ms - s->last_sent_ms >= repeat_ms) {
		s->last_sent_ms = now_ms;
		return ALERT_REPEAT;
	}
	return ALERT_NONE;
}

char *alert_json(enum alert_action action, enum alert_kind kind, const char *job,
                 const char *message, int64_t now_ms, int64_t since_ms, const char *instance)
{
	char now[CRON_TIME_BUFSZ], since[CRON_TIME_BUFSZ];
	char *uj = text_utf8_fix_dup(job), *um = text_utf8_fix_dup(message),
	     *ui = text_utf8_fix_dup(instance);
	json_t *o = NULL;
	char *out = NULL;

	cron_time_format(now_ms / 1000, now, sizeof(now)); /* CRON_TIME_BUFSZ always fits */
	cron_time_format(since_ms / 1000, since, sizeof(since));
	if (uj && um && ui)
		o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "event", event_names[action],
		              "kind", kind_name(kind), "job", uj, "message", um, "time", now,
		              "since", since, "instance", ui);
	if (o)
		out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	free(uj);
	free(um);
	free(ui);
	return out;
}

/* ---- sinks ---------------------------------------------------------------------------- */

struct condition {
	enum alert_kind kind;
	char *job;
	struct alert_state st;
	struct strmap_node node; /* in alerter.conditions, under job */
};

struct sink {
	enum { SINK_LOG, SINK_NOTIFY, SINK_WEBHOOK, SINK_EXEC } type;
	char *database, *channel, *url, *command;
	char shown[300]; /* the webhook URL for log lines: scheme://host[:port] only, since
	                  * userinfo, path and query may hold the hook's secret */
	int64_t timeout_ms;
	struct log_complaint complaint;
};
/* a sink's type by the name alerts = ( { sink = "..." } ) gives it */
static const char *const sink_types[] = {
    [SINK_LOG] = "log", [SINK_NOTIFY] = "notify", [SINK_WEBHOOK] = "webhook", [SINK_EXEC] = "exec"};
#define N_SINK_TYPES (sizeof(sink_types) / sizeof(sink_types[0]))

struct alerter {
	struct event_base *base;
	char *instance;
	alert_notify_fn notify;
	void *notify_arg;
	struct sink *sinks;
	size_t n_sinks;
	struct httpc *http;               /* webhooks go through it (alert_open) */
	LIST_HEAD(, delivery) deliveries; /* webhook POSTs in flight or waiting to retry */
	int64_t repeat_ms;
	/* Looked up on every run's end, so found by job (then kind, among a job's few): a list
	 * walk would make each run cost O(jobs), the daemon's main CPU cost with thousands of
	 * jobs. */
	struct strmap conditions;
};

/* One alert to one webhook: its own copy of what it sends, so that a reload that replaces
 * the sinks does not lose it (it then no longer reports to its sink). */
struct delivery {
	struct alerter *a;
	struct sink *s; /* NULL once the sinks were replaced */
	char *url, *json;
	char shown[300];
	int64_t timeout_ms;
	int attempt;
	struct httpc_call *call;
	struct event retry_ev;     /* assigned with the delivery */
	LIST_ENTRY(delivery) link; /* in its alerter's deliveries */
};

/* A webhook that fails for a moment (refused, timed out, 5xx) is tried this many times. */
#define WEBHOOK_ATTEMPTS 3

static void delivery_free(struct delivery *d)
{
	LIST_REMOVE(d, link);
	httpc_drop(&d->call);
	event_del(&d->retry_ev);
	free(d->url);
	free(d->json);
	free(d);
}

static void free_sinks(struct alerter *a)
{
	struct delivery *d;
	LIST_FOREACH(d, &a->deliveries, link)
		d->s = NULL; /* they go on, and report to the log only */
	for (size_t i = 0; i < a->n_sinks; i++) {
		struct sink *s = &a->sinks[i];
		free(s->database);
		free(s->channel);
		free(s->url);
		free(s->command);
	}
	free(a->sinks);
	a->sinks = NULL;
	a->n_sinks = 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int load_sinks(struct alerter *a, const struct pgc_config *cfg)
{
	a->repeat_ms = cfg->alert_repeat_ms;
	/* a configuration without alerts = ( ... ) has a log sink (config_finish_main) */
	a->sinks = calloc(cfg->n_alerts ? cfg->n_alerts : 1, sizeof(*a->sinks));
	if (!a->sinks)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_alerts; i++) {
		const struct conf_alert_sink *c = &cfg->alerts[i];
		struct sink *s = &a->sinks[a->n_sinks];
		char why[300];
		size_t t = 0;
		while (t < N_SINK_TYPES && strcmp(c->sink, sink_types[t]) != 0)
			t++;
		if (t == N_SINK_TYPES)
			continue; /* config validation reports unknown sinks */
		s->type = t;
		if (s->type == SINK_WEBHOOK &&
		    (!c->url || !httpc_url_ok(c->url, why, sizeof(why)))) {
			log_error("%s:%d: webhook url %s; alerts to it are disabled",
			          c->file ? c->file : "?", c->line, c->url ? why : "is missing");
			continue;
		}
		s->database = dup_or_null(c->database);
		s->channel = dup_or_null(c->channel);
		s->url = dup_or_null(c->url);
		if (s->type == SINK_WEBHOOK && c->url)
			httpc_url_shown(c->url, s->shown, sizeof(s->shown));
		s->command = dup_or_null(c->command);
		s->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : 5000;
		a->n_sinks++;
	}
	return 0;
}

int alert_open(struct event_base *base, const struct pgc_config *cfg, const char *instance,
               alert_notify_fn notify, void *notify_arg, struct httpc *http, struct alerter **out)
{
	struct alerter *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->base = base;
	a->instance = strdup(instance ? instance : "");
	a->notify = notify;
	a->notify_arg = notify_arg;
	a->http = http;
	if (!a->instance || load_sinks(a, cfg) != 0) {
		alert_close(&a);
		return -ENOMEM;
	}
	*out = a;
	return 0;
}

void alert_reconfigure(struct alerter *a, const struct pgc_config *cfg)
{
	free_sinks(a);
	if (load_sinks(a, cfg) != 0)
		log_error("out of memory while reloading alert sinks; alerts go nowhere");
}

void alert_close(struct alerter **ap)
{
	struct alerter *a = *ap;
	if (!a)
		return;
	free_sinks(a);
	while (!LIST_EMPTY(&a->deliveries))
		delivery_free(LIST_FIRST(&a->deliveries));
	for (struct strmap_node *n = strmap_first(&a->conditions), *next; n; n = next) {
		next = strmap_next(&a->conditions, n);
		struct condition *c = STRMAP_ENTRY(n, struct condition, node);
		free(c->job);
		free(c);
	}
	strmap_free(&a->conditions);
	free(a->instance);
	free(a);
	*ap = NULL;
}

static void sink_failed(struct sink *s, const char *what)
{
	if (log_complain(&s->complaint, NULL))
		log_warning("alert sink %s failed: %s (alerts keep going to the other sinks)",
		            s->type == SINK_WEBHOOK ? s->shown
		            : s->command            ? s->command
		                                    : "?",
		            what);
}

/* Completion of one POST. */
static void webhook_done(void *arg, const struct httpc_response *resp)
{
	struct delivery *d = arg;
	struct sink *s = d->s;
	d->call = NULL;
	if (resp->result == HTTPC_OK && resp->status >= 200 && resp->status < 300) {
		if (s && log_complaint_reset(&s->complaint))
			log_notice("alert webhook %s works again", s->shown);
		delivery_free(d);
		return;
	}
	char what[600];
	if (resp->result == HTTPC_OK)
		snprintf(what, sizeof(what), "HTTP status %d", resp->status);
	else
		snprintf(what, sizeof(what), "%s", resp->reason); /* no path: it may be secret */
	bool again =
	    resp->result == HTTPC_OK ? resp->status >= 500 : httpc_result_transient(resp->result);
	if (again && d->attempt < WEBHOOK_ATTEMPTS) {
		struct timeval tv = {d->attempt, 0}; /* 1 s, then 2 s */
		evtimer_add(&d->retry_ev, &tv);
		return;
	}
	if (s)
		sink_failed(s, what);
	else
		log_warning("alert webhook %s failed: %s", d->shown, what);
	delivery_free(d);
}

static void webhook_send(struct delivery *d)
{
	static const char *const headers[] = {"Content-Type: application/json"};
	d->attempt++;
	struct httpc_request req = {.method = "POST",
	                            .url = d->url,
	                            .headers = headers,
	                            .n_headers = 1,
	                            .body = d->json,
	                            .body_len = strlen(d->json),
	                            .timeout_ms = d->timeout_ms,
	                            .on_done = webhook_done,
	                            .arg = d};
	if (httpc_submit(d->a->http, &req, &d->call) < 0) {
		if (d->s)
			sink_failed(d->s, "out of memory");
		delivery_free(d);
	}
}

static void webhook_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	webhook_send(arg);
}

static void send_webhook(struct alerter *a, struct sink *s, const char *json)
{
	if (!a->http || !s->url)
		return;
	struct delivery *d = calloc(1, sizeof(*d));
	if (!d) {
		sink_failed(s, "out of memory");
		return;
	}
	d->a = a;
	d->s = s;
	evtimer_assign(&d->retry_ev, a->base, webhook_retry_cb, d);
	d->url = strdup(s->url);
	d->json = strdup(json);
	d->timeout_ms = s->timeout_ms;
	snprintf(d->shown, sizeof(d->shown), "%s", s->shown);
	LIST_INSERT_HEAD(&a->deliveries, d, link);
	if (!d->url || !d->json) {
		sink_failed(s, "out of memory");
		delivery_free(d);
		return;
	}
	webhook_send(d);
}

/* Give the command the alert JSON on its standard input, as pgcrond.conf(5) says. A helper
 * process writes it, so a command that never reads cannot block anything: the helper dies
 * with SIGPIPE when the command exits, or by the same alarm. */
static void stdin_from(const char *json, unsigned timeout_s)
{
	int fd[2];
	if (pipe(fd) < 0)
		return; /* the environment still carries the JSON */
	pid_t w = fork();
	if (w == 0) {
		close(fd[0]);
		signal(SIGPIPE, SIG_DFL);
		alarm(timeout_s);
		size_t len = strlen(json), off = 0;
		while (off < len) {
			ssize_t n = write(fd[1], json + off, len - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				_exit(1);
			off += (size_t)n;
		}
		(void)!write(fd[1], "\n", 1);
		_exit(0);
	}
	close(fd[1]);
	if (w > 0)
		dup2(fd[0], STDIN_FILENO);
	close(fd[0]);
}

/* Run the command through /bin/sh with the alert JSON on its standard input and the alert in
 * the environment. Double fork, so the daemon never has to reap it; alarm() survives exec and
 * bounds how long it may run. */
static void send_exec(struct alerter *a, struct sink *s, enum alert_action action,
                      enum alert_kind kind, const char *job, const char *message, const char *json)
{
	pid_t pid = fork();
	if (pid < 0) {
		sink_failed(s, strerror(errno));
		return;
	}
	if (pid == 0) {
		if (fork() != 0)
			_exit(0);
		setenv("PGCROND_ALERT_EVENT", event_names[action], 1);
		setenv("PGCROND_ALERT_KIND", kind_name(kind), 1);
		setenv("PGCROND_ALERT_JOB", job ? job : "", 1);
		/* a script may echo it to a terminal or a mail: controls escaped (text.h); the
		 * JSON has the exact text */
		char *safe = text_escape_dup(message, TEXT_KEEP_NEWLINES);
		setenv("PGCROND_ALERT_MESSAGE", safe ? safe : "", 1);
		free(safe);
		setenv("PGCROND_ALERT_INSTANCE", a->instance, 1);
		setenv("PGCROND_ALERT_JSON", json, 1);
		signal(SIGPIPE, SIG_DFL);
		stdin_from(json, (unsigned)((s->timeout_ms + 999) / 1000));
		alarm((unsigned)((s->timeout_ms + 999) / 1000));
		execl("/bin/sh", "sh", "-c", s->command, (char *)NULL);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

static void dispatch(struct alerter *a, enum alert_action action, enum alert_kind kind,
                     const char *job, const char *message, int64_t since_ms)
{
	int64_t now = clock_wall_ms();
	char *json = alert_json(action, kind, job, message, now, since_ms, a->instance);
	if (!json)
		return;
	for (size_t i = 0; i < a->n_sinks; i++) {
		struct sink *s = &a->sinks[i];
		switch (s->type) {
		case SINK_LOG:
			log_msg(action == ALERT_RECOVER ? LOG_LVL_NOTICE : LOG_LVL_ERROR, job,
			        "%s %s: %s", action == ALERT_RECOVER ? "recovered from" : "ALERT",
			        kind_name(kind), message ? message : "");
			break;
		case SINK_NOTIFY:
			if (a->notify)
				a->notify(a->notify_arg, s->database, s->channel, json);
			break;
		case SINK_WEBHOOK:
			send_webhook(a, s, json);
			break;
		case SINK_EXEC:
			send_exec(a, s, action, kind, job, message, json);
			break;
		}
	}
	free(json);
}

/* The condition's state; with CREATE false, NULL when it was never raised (its state would
 * be the initial, inactive one), so that 10,000 healthy jobs hold no state at all. */
static struct condition *find_condition(struct alerter *a, enum alert_kind kind, const char *job,
                                        bool create)
{
	if (!job)
		job = "";
	for (struct strmap_node *n = strmap_find(&a->conditions, job); n; n = strmap_find_next(n)) {
		struct condition *c = STRMAP_ENTRY(n, struct condition, node);
		if (c->kind == kind)
			return c;
	}
	if (!create)
		return NULL;
	struct condition *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->kind = kind;
	c->job = strdup(job);
	if (!c->job) {
		free(c);
		return NULL;
	}
	strmap_insert(&a->conditions, &c->node, c->job);
	return c;
}

void alert_condition(struct alerter *a, enum alert_kind kind, const char *job, bool active,
                     const char *message)
{
	struct condition *c = find_condition(a, kind, job, active);
	if (!c)
		return;
	enum alert_action act = alert_step(&c->st, active, clock_wall_ms(), a->repeat_ms);
	if (act != ALERT_NONE)
		dispatch(a, act, kind, job, message, c->st.since_ms);
}
