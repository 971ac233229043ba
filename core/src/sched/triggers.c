/* LISTEN/NOTIFY triggers (see triggers.h). The connections are notify.c's; this module only
 * decides which channels each holds and what a notification does. */
#include "triggers.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "clock.h"
#include "config.h"
#include "debounce.h"
#include "history.h"
#include "jbatch.h"
#include "log.h"
#include "notify.h"
#include "pgconn.h"
#include "sched.h"
#include "text.h"

/* A bound on outcomes waiting while the database does not take them (they are logged). */
#define MAX_OUTCOMES 65536
/* By-id claims queued on the listener at most; past that, one sweep claims the rest. */
#define MAX_CLAIMS_QUEUED 64

struct tdb {
	struct triggers *t;
	char *name;
	char *conninfo;
	struct notify *n;
	bool trigger_channel;   /* the history database: pgcrond_trigger */
	bool sweep_wanted;      /* claim every unclaimed request once the queue has room */
	int claims_queued;      /* by-id claims on the listener's queue */
	struct jbatch outcomes; /* what the daemon did with requests: {id, outcome} */
	bool seen;
	struct tdb *next;
};

struct tjob {
	struct triggers *t;
	char *name;
	char *database;
	char *channel;
	struct debounce deb;
	struct event timer; /* pending while notifications wait for their debounce */
	bool seen;
	struct log_complaint complaint; /* dropped payloads */
	struct tjob *next;
};

/* Refused requests, and notifications with no request behind them, each counted apart: the
 * first is logged at once, the rest as one line with their count per REFUSAL_WINDOW_S, so
 * a flood cannot flood the log (and forged notifications cannot hide a real refusal). */
#define REFUSAL_WINDOW_S 10
struct refusals {
	struct event ev;     /* pending for REFUSAL_WINDOW_S after a line */
	unsigned long count; /* since the last line */
	const char *what;    /* "manual trigger request(s) refused" ... */
	const char *hint;    /* appended to the count line */
};

/* A manual run asked for in the database, whose end is announced on
 * PGCROND_TRIGGER_OUTCOME_CHANNEL ("ID finished STATUS: message") for `pgcrond trigger
 * --wait` on another host. Freed when the scheduler tells its end; T is NULL once the
 * triggers are gone (shutdown): then nothing is announced. */
struct waited_run {
	struct sched_waiter w;
	struct triggers *t;
	char id[24];
	LIST_ENTRY(waited_run) link;
};

struct triggers {
	struct event_base *base;
	struct sched *s;
	char *instance;
	struct tdb *dbs;
	struct tjob *jobs;
	struct refusals refused;              /* requests pgcrond.trigger() recorded */
	struct refusals unfounded;            /* notifications that name no request */
	struct log_complaint claim_complaint; /* claims that fail */
	LIST_HEAD(, waited_run) waits;        /* manual runs not ended yet */
};

/* ---- per job -------------------------------------------------------------------------- */

static void tjob_free(struct tjob **tjp)
{
	struct tjob *tj = *tjp;
	if (!tj)
		return;
	event_del(&tj->timer);
	/* its notifications will not be served: downstreams must not wait for them */
	if (tj->deb.first_ms >= 0 && tj->t->s)
		sched_notify_pending(tj->t->s, tj->name, false);
	debounce_free(&tj->deb);
	free(tj->name);
	free(tj->database);
	free(tj->channel);
	free(tj);
	*tjp = NULL;
}

static void tjob_arm(struct tjob *tj)
{
	int64_t due = debounce_due(&tj->deb);
	event_del(&tj->timer);
	if (due < 0)
		return;
	int64_t ms = due - clock_mono_ms();
	if (ms < 0)
		ms = 0;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	event_add(&tj->timer, &tv);
}

/* Hand the job to the scheduler with what was gathered; without payloads when more came
 * than could be kept, so the plugin refreshes everything (some notifications are lost). */
static void tjob_run(struct tjob *tj)
{
	size_t n = 0;
	bool overflowed = false;
	char **p = debounce_take(&tj->deb, &n, &overflowed);
	event_del(&tj->timer);
	if (overflowed) {
		log_job(LOG_LVL_WARNING, tj->name,
		        "more notifications than can be kept for one run (%d payloads, %u bytes); "
		        "running without payloads, as a full refresh",
		        DEBOUNCE_MAX_PAYLOADS, DEBOUNCE_MAX_BYTES);
		text_free_list(p, n);
		p = NULL;
		n = 0;
	}
	sched_notify_pending(tj->t->s, tj->name, false);
	int rc = sched_notify_run(tj->t->s, tj->name, p, n);
	if (rc < 0 && rc != -ESHUTDOWN)
		log_job(LOG_LVL_WARNING, tj->name, "cannot run for notifications: %s",
		        strerror(-rc));
}

static void tjob_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tjob *tj = arg;
	int64_t due = debounce_due(&tj->deb);
	if (due < 0)
		return;
	if (clock_mono_ms() < due) {
		tjob_arm(tj); /* woken early */
		return;
	}
	tjob_run(tj);
}

static void tjob_note(struct tjob *tj, const char *payload)
{
	/* the first unserved notification: downstream jobs now wait for this job's run, so a
	 * notification that reaches both does not start the downstream on stale data */
	if (tj->deb.first_ms < 0)
		sched_notify_pending(tj->t->s, tj->name, true);
	switch (debounce_note(&tj->deb, clock_mono_ms(), payload)) {
	case DEBOUNCE_KEPT:
	case DEBOUNCE_NOTED:
		break;
	case DEBOUNCE_OVERSIZED:
		if (log_complain(&tj->complaint, NULL))
			log_job(
			    LOG_LVL_WARNING, tj->name,
			    "notification on %s: payload of %zu bytes is longer than %d; dropped "
			    "(the run still happens)",
			    tj->channel, strlen(payload), DEBOUNCE_MAX_PAYLOAD);
		break;
	case DEBOUNCE_MALFORMED:
		if (log_complain(&tj->complaint, NULL))
			log_job(
			    LOG_LVL_WARNING, tj->name,
			    "notification on %s: payload is not UTF-8 text; dropped (the run still "
			    "happens)",
			    tj->channel);
		break;
	}
	tjob_arm(tj);
}

/* ---- manual triggers ------------------------------------------------------------------ */

/* A request is acted on only once this daemon has claimed its row: rows come only from
 * pgcrond.trigger(), which PostgreSQL lets only pgcrond_operator members (and the owner)
 * execute, so a NOTIFY from anyone else names nothing that can be claimed. */
static const char claim_one_sql[] = TRIGGERS_SQL_CLAIM_ONE;
/* after a (re)connect: what came while nobody listened, in batches */
#define SWEEP_BATCH 1000 /* TRIGGERS_SWEEP_BATCH_TEXT */
static const char claim_all_sql[] = TRIGGERS_SQL_CLAIM_ALL;

static void refusals_cb(evutil_socket_t fd, short what, void *arg)
{
	struct refusals *r = arg;
	if (r->count == 0)
		return;
	log_warning("%lu more %s in the last %d s%s", r->count, r->what, REFUSAL_WINDOW_S, r->hint);
	r->count = 0;
	struct timeval tv = {REFUSAL_WINDOW_S, 0};
	event_add(&r->ev, &tv);
}

static void refusals_init(struct refusals *r, struct event_base *base, const char *what,
                          const char *hint)
{
	r->what = what;
	r->hint = hint;
	evtimer_assign(&r->ev, base, refusals_cb, r);
}

static void refusals_free(struct refusals *r)
{
	event_del(&r->ev);
}

static void refused(struct refusals *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refused(struct refusals *r, const char *fmt, ...)
{
	if (evtimer_pending(&r->ev, NULL)) {
		r->count++;
		return;
	}
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap); /* a cut message is still a useful one */
	va_end(ap);
	log_warning("%s", msg);
	struct timeval tv = {REFUSAL_WINDOW_S, 0};
	event_add(&r->ev, &tv);
}

/* Outcomes are written in batches (jbatch.h), so a burst of requests costs a few statements
 * and never crowds the claims out of the listener's queue. Each is also announced on
 * PGCROND_TRIGGER_OUTCOME_CHANNEL, for the `pgcrond trigger` waiting for it; of a request's
 * outcomes in one batch ("started" put back beside "finished"), the last is written. */
static const char outcome_sql[] = TRIGGERS_SQL_OUTCOMES;

static void outcomes_written(void *arg, const PGresult *res, bool ok, bool kept, size_t n)
{
	struct tdb *db = arg;
	char err[512];
	if (!ok && !kept) /* one outcome the database refuses (its encoding, say) */
		log_warning("manual trigger: an outcome cannot be recorded, dropped: %s",
		            pgconn_result_error(res, err, sizeof(err)));
	else if (!ok && log_complain(&db->t->claim_complaint, NULL))
		log_warning("manual trigger: cannot record the requests' outcomes: %s; %zu kept, "
		            "tried again",
		            res ? pgconn_result_error(res, err, sizeof(err)) : "no answer", n);
}

static void record_outcome(struct tdb *db, const char *id, const char *outcome)
{
	size_t n = json_array_size(db->outcomes.waiting);
	char *text = n < MAX_OUTCOMES ? text_utf8_fix_dup(outcome) : NULL; /* a server's message */
	json_t *o = text ? json_pack("{s:s, s:s}", "id", id, "outcome", text) : NULL;
	free(text);
	if (jbatch_add(&db->outcomes, o) < 0) /* also for no O: too many, or ENOMEM */
		log_warning("manual trigger request %s: outcome not recorded (%zu waiting): %s", id,
		            n, outcome);
}

/* The end of a run asked for in the database: announced to whoever waits for it. */
static void waited_run_done(struct sched_waiter *w, const struct sched_result *res)
{
	struct waited_run *wr = (struct waited_run *)((char *)w - offsetof(struct waited_run, w));
	struct triggers *t = wr->t;
	if (t) {
		LIST_REMOVE(wr, link);
		struct tdb *db = t->dbs;
		while (db && !db->trigger_channel)
			db = db->next;
		/* NOTIFY payloads stay under 8000 bytes: the message is cut on a character */
		char outcome[7600];
		int n = snprintf(outcome, sizeof(outcome), "finished %s%s%s: %s", res->status,
		                 res->sqlstate ? " " : "", res->sqlstate ? res->sqlstate : "",
		                 res->message);
		if (n < 0 || (size_t)n >= sizeof(outcome))
			text_utf8_trim(outcome);
		/* written to the request's row and announced, like its start; kept for the next
		 * connect while the listener is away */
		if (db)
			record_outcome(db, wr->id, outcome);
		else
			log_info("manual run of %s (request %s) ended; no listener to announce it",
			         res->job, wr->id);
	}
	free(wr);
}

/* A request of pgcrond.drop_waiting(): the job's waiting runs dropped, each recorded skipped
 * "dropped by WHO" (the role the function checked). */
static void serve_drop(struct tdb *db, const char *id, const char *job, const char *who)
{
	char why[160], outcome[160];
	snprintf(why, sizeof(why), "dropped by %s", who);
	int n = sched_drop(db->t->s, job, why);
	if (n >= 0) {
		log_notice("%s: %d waiting run(s) %s (request %s)", job, n, why, id);
		snprintf(outcome, sizeof(outcome), "dropped %d waiting run(s)", n);
	} else {
		refused(&db->t->refused,
		        "drop of %.64s's waiting runs requested by %.64s (request %s) refused: no "
		        "such job is configured",
		        job, who, id);
		snprintf(outcome, sizeof(outcome), "refused: no such job is configured");
	}
	record_outcome(db, id, outcome);
}

/* One claimed request (strings valid during the call only). */
static void serve_request(struct tdb *db, const char *id, const char *job, bool force,
                          const char *who, bool expired, bool drop)
{
	struct triggers *t = db->t;
	char outcome[160];
	if (drop && !expired) {
		serve_drop(db, id, job, who);
		return;
	}
	if (expired) {
		refused(&t->refused,
		        "manual run of %.64s requested by %.64s (request %s) refused: it waited "
		        "more than %s for pgcrond",
		        job, who, id, TRIGGERS_REQUEST_EXPIRY);
		snprintf(outcome, sizeof(outcome), "refused: waited more than %s for pgcrond",
		         TRIGGERS_REQUEST_EXPIRY);
		record_outcome(db, id, outcome);
		return;
	}
	int rc = sched_trigger_check(t->s, job, force);
	if (rc == 0) {
		/* logged before the run's own lines */
		log_notice("manual run of %s requested by %s (request %s%s)", job, who, id,
		           force ? ", forced" : "");
		struct waited_run *wr = calloc(1, sizeof(*wr));
		if (wr) {
			wr->w.done = waited_run_done;
			wr->t = t;
			snprintf(wr->id, sizeof(wr->id), "%s", id);
			LIST_INSERT_HEAD(&t->waits, wr, link);
			rc = sched_trigger_wait(t->s, job, force, &wr->w);
			if (rc < 0) { /* not taken: no answer will come */
				LIST_REMOVE(wr, link);
				free(wr);
			}
		} else {
			rc = sched_trigger(t->s, job, TRIGGER_MANUAL, force);
		}
	}
	switch (rc) {
	case 0:
		record_outcome(db, id, "started");
		return;
	case -ENOENT:
		refused(&t->refused,
		        "manual run of %.64s requested by %.64s (request %s) refused: no such job "
		        "is configured",
		        job, who, id);
		record_outcome(db, id, "refused: no such job is configured");
		return;
	case -EPERM:
		refused(&t->refused,
		        "manual run of %.64s requested by %.64s (request %s) refused: the job is "
		        "disabled (pgcrond trigger --force, or pgcrond.trigger(job, true), runs it "
		        "anyway)",
		        job, who, id);
		record_outcome(db, id, "refused: the job is disabled; force runs it anyway");
		return;
	default:
		snprintf(outcome, sizeof(outcome), "refused: %s", strerror(-rc));
		log_warning("manual run of %s requested by %s (request %s): %s", job, who, id,
		            outcome);
		record_outcome(db, id, outcome);
		return;
	}
}

static void sweep(struct tdb *db);

static void claimed(struct tdb *db, const PGresult *res, bool by_id)
{
	char err[512];
	if (!res)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		if (log_complain(&db->t->claim_complaint, NULL))
			log_warning("manual triggers on database %s: cannot claim requests: %s",
			            db->name, pgconn_result_error(res, err, sizeof(err)));
		return;
	}
	if (log_complaint_reset(&db->t->claim_complaint))
		log_notice("manual triggers on database %s work again", db->name);
	int n = PQntuples(res);
	if (by_id && n == 0)
		refused(&db->t->unfounded,
		        "a notification on %s named no unclaimed request (it did not come "
		        "from pgcrond.trigger(), or another instance took it); ignored",
		        PGCROND_TRIGGER_CHANNEL);
	for (int i = 0; i < n; i++)
		serve_request(db, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		              PQgetvalue(res, i, 2)[0] == 't', PQgetvalue(res, i, 3),
		              PQgetvalue(res, i, 4)[0] == 't',
		              PQnfields(res) > 5 && strcmp(PQgetvalue(res, i, 5), "drop") == 0);
	if (!by_id && n >= SWEEP_BATCH)
		db->sweep_wanted = true;
	if (db->sweep_wanted)
		sweep(db);
}

static void claimed_one(void *arg, const PGresult *res)
{
	struct tdb *db = arg;
	db->claims_queued--;
	claimed(db, res, true);
}

static void claimed_all(void *arg, const PGresult *res)
{
	claimed(arg, res, false);
}

static void sweep(struct tdb *db)
{
	const char *p[] = {db->t->instance};
	db->sweep_wanted =
	    notify_query(db->n, claim_all_sql, p, 1, claimed_all, db, false) == -ENOMEM;
}

/* A notification on pgcrond_trigger: its payload should be a request id. */
static void trigger_note(struct tdb *db, const char *payload)
{
	size_t len = strlen(payload);
	if (len == 0 || len > 18 || strspn(payload, "0123456789") != len) {
		refused(&db->t->unfounded,
		        "a notification on %s is not a request id (manual runs are asked for "
		        "with pgcrond.trigger()); ignored",
		        PGCROND_TRIGGER_CHANNEL);
		return;
	}
	const char *p[] = {payload, db->t->instance};
	/* a flood: one sweep after the queued claims takes whatever is real */
	if (db->claims_queued >= MAX_CLAIMS_QUEUED) {
		db->sweep_wanted = true;
		return;
	}
	int rc = notify_query(db->n, claim_one_sql, p, 2, claimed_one, db, false);
	if (rc == 0)
		db->claims_queued++;
	else if (rc == -ENOMEM)
		db->sweep_wanted = true;
}

/* ---- per database --------------------------------------------------------------------- */

static void on_notify(void *arg, const char *channel, const char *payload)
{
	struct tdb *db = arg;
	struct triggers *t = db->t;
	if (db->trigger_channel && strcmp(channel, PGCROND_TRIGGER_CHANNEL) == 0) {
		trigger_note(db, payload);
		return;
	}
	for (struct tjob *tj = t->jobs; tj; tj = tj->next)
		if (strcmp(tj->database, db->name) == 0 && strcmp(tj->channel, channel) == 0)
			tjob_note(tj, payload);
}

static void on_listening(void *arg, bool first)
{
	struct tdb *db = arg;
	struct triggers *t = db->t;
	/* a new session: what was queued on the old one is gone */
	db->claims_queued = 0;
	/* requests made while nobody listened, and outcomes not yet written (or not answered) */
	if (db->trigger_channel)
		sweep(db);
	jbatch_lost(&db->outcomes);
	if (first)
		return;
	size_t n = 0;
	for (struct tjob *tj = t->jobs; tj; tj = tj->next)
		n++;
	const char **names = calloc(n ? n : 1, sizeof(*names));
	if (!names) {
		log_error("listener on database %s: out of memory; the catch-up runs are skipped",
		          db->name);
		return;
	}
	n = 0;
	for (struct tjob *tj = t->jobs; tj; tj = tj->next) {
		if (strcmp(tj->database, db->name) != 0)
			continue;
		log_job(
		    LOG_LVL_WARNING, tj->name,
		    "the listener on database %s reconnected; notifications on %s may have been "
		    "missed, so the job runs once",
		    db->name, tj->channel);
		/* a full refresh serves what was gathered too */
		size_t np = 0;
		bool overflowed = false;
		text_free_list(debounce_take(&tj->deb, &np, &overflowed), np);
		event_del(&tj->timer);
		sched_notify_pending(t->s, tj->name, false);
		names[n++] = tj->name;
	}
	/* in graph order: a downstream runs after its upstream, in the same graph run */
	int rc = sched_notify_catchup(t->s, names, n);
	if (rc < 0 && rc != -ESHUTDOWN)
		log_warning("listener on database %s: catch-up runs: %s", db->name, strerror(-rc));
	free(names);
}

static void tdb_free(struct tdb **dbp)
{
	struct tdb *db = *dbp;
	if (!db)
		return;
	notify_free(&db->n);
	jbatch_free(&db->outcomes);
	free(db->name);
	free(db->conninfo);
	free(db);
	*dbp = NULL;
}

static struct tdb *tdb_get(struct triggers *t, const struct conf_database *cd)
{
	for (struct tdb *db = t->dbs; db; db = db->next) {
		if (strcmp(db->name, cd->name) != 0)
			continue;
		if (strcmp(db->conninfo, cd->conninfo) == 0)
			return db;
		/* a new conninfo: a new connection (its first connect is not a re-connect); the
		 * old one stays if it cannot be made, so that DB always has a session */
		struct notify_callbacks cb = {on_notify, on_listening, db};
		struct notify *n = NULL;
		char *ci = strdup(cd->conninfo);
		if (!ci || notify_new(t->base, db->name, ci, &cb, &n) < 0) {
			free(ci);
			return NULL;
		}
		free(db->conninfo);
		db->conninfo = ci;
		notify_free(&db->n);
		db->n = n;
		return db;
	}
	struct tdb *db = calloc(1, sizeof(*db));
	if (!db)
		return NULL;
	db->t = t;
	db->name = strdup(cd->name);
	db->conninfo = strdup(cd->conninfo);
	struct notify_callbacks cb = {on_notify, on_listening, db};
	if (jbatch_init(&db->outcomes, &db->n, outcome_sql, outcomes_written, db) < 0 ||
	    !db->name || !db->conninfo ||
	    notify_new(t->base, db->name, db->conninfo, &cb, &db->n) < 0) {
		tdb_free(&db);
		return NULL;
	}
	db->next = t->dbs;
	t->dbs = db;
	return db;
}

/* The union of the channels DB's jobs listen on. */
static int tdb_channels(struct triggers *t, struct tdb *db)
{
	size_t cap = 1, n = 0;
	for (struct tjob *tj = t->jobs; tj; tj = tj->next)
		cap++;
	const char **ch = calloc(cap, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	if (db->trigger_channel)
		ch[n++] = PGCROND_TRIGGER_CHANNEL;
	for (struct tjob *tj = t->jobs; tj; tj = tj->next) {
		if (strcmp(tj->database, db->name) != 0)
			continue;
		bool dup = false;
		for (size_t i = 0; i < n && !dup; i++)
			dup = strcmp(ch[i], tj->channel) == 0;
		if (!dup)
			ch[n++] = tj->channel;
	}
	int rc = notify_set_channels(db->n, ch, n);
	free(ch);
	return rc;
}

/* ---- configuration -------------------------------------------------------------------- */

static struct tjob *tjob_find(const struct triggers *t, const char *name)
{
	for (struct tjob *tj = t ? t->jobs : NULL; tj; tj = tj->next)
		if (strcmp(tj->name, name) == 0)
			return tj;
	return NULL;
}

bool triggers_job_pending(const struct triggers *t, const char *name, size_t *n_payloads,
                          int64_t *due_us)
{
	const struct tjob *tj = tjob_find(t, name);
	int64_t due = tj ? debounce_due(&tj->deb) : -1;
	if (due < 0)
		return false;
	int64_t wall_ms = clock_wall_ms();
	*n_payloads = tj->deb.n;
	*due_us = (wall_ms + (due - clock_mono_ms())) * 1000;
	return true;
}

static int apply_job(struct triggers *t, const struct pgc_config *cfg, const struct conf_job *cj)
{
	const char *dbname = cj->database ? cj->database : cfg->history_database;
	const struct conf_job_notify *n = &cj->more->notify;
	if (!config_database(cfg, dbname))
		return 0; /* the config check reports it */
	struct tjob *tj = tjob_find(t, cj->name);
	if (tj && (strcmp(tj->database, dbname) != 0 || strcmp(tj->channel, n->listen) != 0)) {
		/* moved elsewhere: what was gathered belongs to the old channel */
		tj->seen = false;
		tj = NULL;
	}
	if (!tj) {
		tj = calloc(1, sizeof(*tj));
		if (!tj)
			return -ENOMEM;
		tj->t = t;
		tj->name = strdup(cj->name);
		tj->database = strdup(dbname);
		tj->channel = strdup(n->listen);
		debounce_init(&tj->deb, n->debounce_ms, n->max_delay_ms);
		evtimer_assign(&tj->timer, t->base, tjob_timer_cb, tj);
		if (!tj->name || !tj->database || !tj->channel) {
			tjob_free(&tj);
			return -ENOMEM;
		}
		/* new entries go first, so the old one of a renamed channel is found later */
		tj->next = t->jobs;
		t->jobs = tj;
	}
	tj->seen = true;
	tj->deb.debounce_ms = n->debounce_ms;
	tj->deb.max_delay_ms = n->max_delay_ms;
	if (evtimer_pending(&tj->timer, NULL))
		tjob_arm(tj);
	return 0;
}

int triggers_apply(struct triggers *t, const struct pgc_config *cfg)
{
	for (struct tjob *tj = t->jobs; tj; tj = tj->next)
		tj->seen = false;
	for (struct tdb *db = t->dbs; db; db = db->next)
		db->seen = false;
	for (size_t i = 0; i < cfg->n_jobs; i++) {
		const struct conf_job *cj = &cfg->jobs[i];
		if (!cj->more->notify.listen || !cj->enabled)
			continue;
		int rc = apply_job(t, cfg, cj);
		if (rc < 0)
			return rc;
	}
	for (struct tjob **p = &t->jobs; *p;) {
		if ((*p)->seen) {
			p = &(*p)->next;
			continue;
		}
		struct tjob *gone = *p;
		*p = gone->next;
		tjob_free(&gone);
	}
	/* the databases: those with listening jobs, and the history one for manual triggers */
	for (size_t i = 0; i < cfg->n_databases; i++) {
		const struct conf_database *cd = &cfg->databases[i];
		bool hist = cfg->history_database && strcmp(cfg->history_database, cd->name) == 0;
		bool used = hist;
		for (struct tjob *tj = t->jobs; tj && !used; tj = tj->next)
			used = strcmp(tj->database, cd->name) == 0;
		if (!used)
			continue;
		struct tdb *db = tdb_get(t, cd);
		if (!db)
			return -ENOMEM;
		db->seen = true;
		db->trigger_channel = hist;
		if (tdb_channels(t, db) < 0)
			return -ENOMEM;
	}
	for (struct tdb **p = &t->dbs; *p;) {
		if ((*p)->seen) {
			p = &(*p)->next;
			continue;
		}
		struct tdb *gone = *p;
		*p = gone->next;
		tdb_free(&gone);
	}
	return 0;
}

int triggers_new(struct event_base *base, struct sched *s, const char *instance,
                 struct triggers **out)
{
	struct triggers *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->instance = strdup(instance);
	if (!t->instance) {
		free(t);
		return -ENOMEM;
	}
	t->base = base;
	t->s = s;
	refusals_init(&t->refused, base, "manual trigger request(s) refused",
	              "; each one's outcome is in pgcrond.trigger_request");
	refusals_init(&t->unfounded, base, "notification(s) on " PGCROND_TRIGGER_CHANNEL " ignored",
	              "; they named no request (manual runs are asked for with pgcrond.trigger())");
	*out = t;
	return 0;
}

void triggers_free(struct triggers **tp)
{
	struct triggers *t = *tp;
	if (!t)
		return;
	while (t->jobs) {
		struct tjob *tj = t->jobs;
		t->jobs = tj->next;
		tjob_free(&tj);
	}
	while (t->dbs) {
		struct tdb *db = t->dbs;
		t->dbs = db->next;
		tdb_free(&db);
	}
	/* runs still going are announced no more; their waiter records are freed when the
	 * scheduler tells their end */
	struct waited_run *wr;
	LIST_FOREACH(wr, &t->waits, link)
		wr->t = NULL;
	refusals_free(&t->refused);
	refusals_free(&t->unfounded);
	free(t->instance);
	free(t);
	*tp = NULL;
}
