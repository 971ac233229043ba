#ifndef PGCROND_ALERT_H
#define PGCROND_ALERT_H

/* Alerts: conditions worth a person's attention, sent to the configured sinks.
 *
 * Conditions (enum alert_kind) are raised by the scheduler; each (kind, job) pair is a
 * condition that is either ongoing or clear. An ongoing condition alerts once, then again
 * every `alert_repeat` while it lasts; when it clears, its recovery is announced once.
 * Sinks: log (the daemon's log), notify (pg_notify on a channel, done by the daemon through
 * the callback it registers, so this module holds no database connection), webhook (HTTP or
 * HTTPS POST of the JSON through the HTTP client, httpc.h, with the sink's timeout, tried
 * again twice when the hook is down for a moment), exec (a command,
 * the alert in environment variables). A failing sink is logged (rate-limited) and never
 * stops the scheduler. */

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct pgc_config;

enum alert_kind {
	ALERT_FAILED,           /* a run failed for good (no retry left) */
	ALERT_CONSECUTIVE,      /* alert_after consecutive failures */
	ALERT_STALE,            /* a maintained view older than max_staleness */
	ALERT_SLOW,             /* a run longer than warn_duration */
	ALERT_UPSTREAM_FAILED,  /* not run because an upstream failed */
	ALERT_FRESHNESS_LAG,    /* freshness lag over the SLA (a warning) */
	ALERT_FRESHNESS_LAG_2X, /* freshness lag over twice the SLA */
	ALERT_KIND_COUNT
};

/* ---- the pure part: one condition's state ------------------------------------------ */

struct alert_state {
	bool active;
	int64_t since_ms;     /* when it became active */
	int64_t last_sent_ms; /* when it last alerted */
};

enum alert_action { ALERT_NONE, ALERT_FIRE, ALERT_REPEAT, ALERT_RECOVER };

/* Feed the condition's current truth at NOW_MS; returns what to send. */
enum alert_action alert_step(struct alert_state *s, bool active, int64_t now_ms, int64_t repeat_ms);

/* The JSON document of one alert (malloc'd; a byte of the text that is not UTF-8 as '?'):
 * {"event":"alert"|"repeat"|"recovered","kind":"failed","job":"x","message":"...",
 *  "time":"2026-11-21T20:00:00Z","instance":"host","since":"..."} */
char *alert_json(enum alert_action action, enum alert_kind kind, const char *job,
                 const char *message, int64_t now_ms, int64_t since_ms, const char *instance);

/* ---- the sinks --------------------------------------------------------------------- */

/* Called for a notify sink: run SELECT pg_notify(CHANNEL, JSON) in DATABASE. */
typedef void (*alert_notify_fn)(void *arg, const char *database, const char *channel,
                                const char *json);

struct alerter;
struct httpc;

/* Webhooks are sent through HTTP (borrowed until alert_close(); NULL: webhooks send
 * nothing). */
int alert_open(struct event_base *base, const struct pgc_config *cfg, const char *instance,
               alert_notify_fn notify, void *notify_arg, struct httpc *http, struct alerter **out)
    __attribute__((warn_unused_result));
/* A new config (reload): sinks and repeat interval change; condition states are kept. */
void alert_reconfigure(struct alerter *a, const struct pgc_config *cfg);
void alert_close(struct alerter **a);

/* Report the current truth of condition (KIND, JOB); sends to every sink if alert_step says
 * so. MESSAGE says what happened and, where possible, what to do. */
void alert_condition(struct alerter *a, enum alert_kind kind, const char *job, bool active,
                     const char *message);

#endif
