/* Freshness against schedules (sched_fresh_priv.h, docs/freshness.md). */
#include "sched_fresh_priv.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alert.h"
#include "array.h"
#include "clock.h"
#include "config.h"
#include "duration.h"
#include "exec.h"
#include "history.h"
#include "log.h"
#include "plugin.h"
#include "sched_priv.h"
#include "strmap.h"
#include "text.h"

/* ---- the decision ------------------------------------------------------------------- */

int64_t fresh_check_every_us(int64_t sla_us)
{
	int64_t e = sla_us / 4;
	if (e < 250000)
		e = 250000;
	if (e > 300000000)
		e = 300000000;
	return e;
}

int64_t fresh_sla_for_downstream(int64_t down_sla_us, int64_t down_run_us)
{
	int64_t sla = down_sla_us - 2 * down_run_us;
	return sla > down_sla_us / 4 ? sla : down_sla_us / 4;
}

int64_t fresh_plan(const struct fresh_plan_in *in)
{
	/* a run not measured yet is guessed at a tenth of the SLA */
	int64_t run = in->est_run_us > 0 ? in->est_run_us : in->sla_us / 10;
	int64_t lead = 2 * run + in->sla_us / 10;
	if (lead > in->sla_us)
		lead = in->sla_us;
	if (in->fallback)
		return in->last_start_us ? in->last_start_us + in->sla_us - lead : in->now_us;
	if (!in->change_since_us)
		return INT64_MAX;
	return in->change_since_us + in->sla_us - lead;
}

/* Arm T in US (a failure is out of memory in the timer heap: logged, the next check or
 * run end plans again). */
static void arm(struct clock *c, struct clock_timer *t, int64_t us)
{
	if (clock_arm(c, t, us < 0 ? 0 : us) < 0)
		log_msg(LOG_LVL_ERROR, NULL, "freshness: out of memory arming a timer");
}

/* ---- state ---------------------------------------------------------------------------- */

#define DURATIONS 4
#define MAX_SOURCES 64 /* per job */

struct fresh_job {
	struct job *j;
	int64_t sla_us;
	struct clock_timer ev; /* the planned run, or a plan made again from the loop */
	int64_t planned_us;
	int64_t created_us;
	/* the last check: the sum of its sources' prints, when it was sent */
	bool have_seen;
	int64_t seen_n, seen_at_us;
	/* the prints' sum the relation reflects (the last success started from it) */
	bool reflected_known;
	int64_t reflected_n;
	struct { /* the run under way: its start, the sum N (if KNOWN) it started from, at AT_US */
		bool known;
		int64_t n, at_us, start_us, since_us, up_us;
	} run;
	int64_t change_since_us; /* oldest change of its sources not reflected (lower bound) */
	int64_t up_since_us;     /* an upstream succeeded after its last start, 0: none */
	int64_t fresh_as_of_us;
	int64_t last_ok_start_us;
	int64_t last_row_us; /* the last "sources unchanged" skipped row */
	int64_t dur_us[DURATIONS];
	unsigned dur_pos;
	char *fallback;     /* why it runs every period; NULL while its sources can be read */
	int64_t checked_us; /* when the last check that answered for it was sent, 0: none */
	bool ups_only;      /* no source of its own: its upstreams' successes are its changes */
	uint64_t def;       /* what its runs reflect (def_hash); 0: not applied yet */
};

/* What the last answer of a database's check said of one of its sources. */
struct fresh_got {
	bool got;      /* the answer had its row */
	int64_t n;     /* its print */
	char *problem; /* why its changes cannot be counted; NULL */
};

/* A job of a database's check: its name (looked up again at each answer: jobs come and go)
 * and its sources, as indexes into the database's. */
struct fresh_dbjob {
	char *name;
	size_t *src;
	size_t n_src;
};

struct fresh_db {
	LIST_ENTRY(fresh_db) link; /* in s->fresh_dbs, or s->fresh_orphans */
	struct sched *s;
	/* dropped by a reload or a stop while its check was in flight: on s->fresh_orphans,
	 * freed when the check ends, or by fresh_free() if the daemon stops first */
	bool orphan;
	char *name;
	char **sources;
	size_t n_sources, cap_sources;
	char *param;           /* the text[] of SOURCES */
	struct fresh_got *got; /* per source */
	struct fresh_dbjob *jobs;
	size_t n_jobs, cap_jobs;
	int64_t every_us;
	struct clock_timer ev;
	bool inflight;
	int64_t sent_at_us;
};

static void db_free(struct fresh_db *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_sources; i++) {
		free(d->sources[i]);
		if (d->got)
			free(d->got[i].problem);
	}
	for (size_t i = 0; i < d->n_jobs; i++) {
		free(d->jobs[i].name);
		free(d->jobs[i].src);
	}
	free(d->sources);
	free(d->got);
	free(d->param);
	free(d->jobs);
	free(d->name);
	free(d);
}

static int64_t est_run(const struct fresh_job *f)
{
	int64_t m = 0;
	for (unsigned i = 0; i < DURATIONS; i++)
		if (f->dur_us[i] > m)
			m = f->dur_us[i];
	return m;
}

/* The SLA J must keep: its own, or less so that its downstreams with freshness keep
 * theirs after it (DEPTH bounds the walk). */
static int64_t sla_in_force(const struct job *j, int depth)
{
	int64_t sla = j->fresh ? j->fresh->sla_us : INT64_MAX;
	if (depth > 8)
		return sla;
	for (size_t i = 0; j->graph && i < j->graph->n_downs; i++) {
		const struct job *d = j->graph->downs[i];
		int64_t ds = sla_in_force(d, depth + 1);
		if (ds == INT64_MAX)
			continue;
		ds = fresh_sla_for_downstream(ds, d->fresh ? est_run(d->fresh) : 0);
		if (ds < sla)
			sla = ds;
	}
	return sla;
}

static void fmt_time(int64_t us, char *out, size_t len)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(out, len, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
		snprintf(out, len, "%lld", (long long)t);
}

static bool can_run(const struct job *j)
{
	return j->conf->enabled && !j->removed && !j->paused && !j->active && !j->s->draining;
}

/* The freshness alerts: the lag over the SLA (warning), over twice the SLA. Judged at each
 * check and each run's end; recovery is told when the lag is back under. */
static void lag_alerts(struct fresh_job *f)
{
	struct job *j = f->j;
	if (!j->s->alerts || j->removed)
		return;
	struct fresh_view v;
	fresh_view(j, sched_now_us(j->s), &v);
	char sla[32], lag[32], msg[160];
	duration_format(v.sla_ms, sla, sizeof(sla));
	duration_format(v.lag_us / 1000000 * 1000, lag, sizeof(lag));
	bool on = j->conf->enabled && !j->paused && !j->removed;
	bool over = on && v.lag_us > v.sla_ms * 1000;
	bool over2 = on && v.lag_us > 2 * v.sla_ms * 1000;
	snprintf(msg, sizeof(msg), "freshness lag %s, over its SLA (%s)", lag, sla);
	alert_condition(j->s->alerts, ALERT_FRESHNESS_LAG, j->conf->name, over,
	                over ? msg : "freshness lag back under its SLA");
	snprintf(msg, sizeof(msg), "freshness lag %s, over twice its SLA (%s)", lag, sla);
	alert_condition(j->s->alerts, ALERT_FRESHNESS_LAG_2X, j->conf->name, over2,
	                over2 ? msg : "freshness lag back under twice its SLA");
}

/* Its own sources' oldest change, or an upstream's success (as old as the oldest change that
 * run reflected), whichever is older; 0: none. */
static int64_t oldest_change(const struct fresh_job *f)
{
	int64_t since = f->change_since_us;
	return f->up_since_us && (!since || f->up_since_us < since) ? f->up_since_us : since;
}

/* Plan fresh job F's next run (F: a struct fresh_job; also its timer's callback). */
static void plan(void *arg)
{
	struct fresh_job *f = arg;
	lag_alerts(f);
	struct job *j = f->j;
	struct sched *s = j->s;
	int64_t now = sched_now_us(s);
	struct fresh_plan_in in = {
	    .now_us = now,
	    .sla_us = sla_in_force(j, 0),
	    .change_since_us = oldest_change(f),
	    .est_run_us = est_run(f),
	    .fallback = f->fallback != NULL,
	    .last_start_us = f->last_ok_start_us,
	};
	int64_t at = fresh_plan(&in);
	clock_disarm(s->clock, &f->ev);
	f->planned_us = at == INT64_MAX ? 0 : at;
	if (at == INT64_MAX || s->draining || j->removed)
		return;
	if (at <= now) {
		if (!can_run(j))
			return; /* its run's end plans again; a pause's resume runs what is owed */
		f->planned_us = 0;
		struct run *r = sched_run_new(j, 0, TRIGGER_FRESHNESS);
		if (r)
			sched_run_defer(r); /* fired from the loop (sched.c) */
		return;
	}
	arm(s->clock, &f->ev, at - now);
}

/* A skipped row at most once a freshness period (and a minute): the history shows the job
 * is watched, without a row per check. */
static void quiet_row(struct fresh_job *f, int64_t now)
{
	struct job *j = f->j;
	int64_t every = f->sla_us > 60000000 ? f->sla_us : 60000000;
	int64_t last = f->last_row_us > f->last_ok_start_us ? f->last_row_us : f->last_ok_start_us;
	if (!last)
		last = f->created_us;
	if (now - last < every || !j->conf->enabled || j->paused || j->removed)
		return;
	struct run *r = sched_run_new(j, now, TRIGGER_FRESHNESS);
	if (!r)
		return;
	char t[40], msg[96];
	fmt_time(f->last_ok_start_us ? f->last_ok_start_us : f->created_us, t, sizeof(t));
	snprintf(msg, sizeof(msg), "sources unchanged since %s", t);
	sched_record(&r, SCHED_SKIPPED, msg);
	f->last_row_us = now;
}

/* One job's sources as the check of database D found them (sent at D->sent_at_us). */
static void job_answer(struct fresh_db *d, size_t k, struct fresh_job *f)
{
	struct job *j = f->j;
	int64_t sum = 0, now = sched_now_us(j->s);
	const char *why = NULL, *which = NULL;

	f->checked_us = d->sent_at_us;
	for (size_t i = 0; i < d->jobs[k].n_src; i++) {
		const struct fresh_got *g = &d->got[d->jobs[k].src[i]];
		if (!g->got || g->problem) {
			why = g->got ? g->problem : "the check returned no answer for it";
			which = d->sources[d->jobs[k].src[i]];
			break;
		}
		/* the sources' prints, added modulo 2^64: a job's sum moves with any of them */
		sum = (int64_t)((uint64_t)sum + (uint64_t)g->n);
	}
	if (why) {
		char buf[1024];
		snprintf(buf, sizeof(buf), "source %s: %s", which, why);
		if (!f->fallback || strcmp(f->fallback, buf) != 0) {
			sched_job_log(
			    j, LOG_LVL_WARNING,
			    "cannot tell whether its sources changed (%s); it runs once every "
			    "freshness period until they can be read",
			    buf);
			free(f->fallback);
			f->fallback = strdup(buf);
		}
		f->have_seen = false;
		f->reflected_known = false;
		f->fresh_as_of_us = 0;
		plan(f);
		return;
	}
	if (f->fallback) {
		sched_job_log(j, LOG_LVL_NOTICE,
		              "its sources can be read again; it runs when they change");
		free(f->fallback);
		f->fallback = NULL;
	}
	int64_t prev_at = f->have_seen ? f->seen_at_us : 0;
	f->have_seen = true;
	f->seen_n = sum;
	f->seen_at_us = d->sent_at_us;
	if (!f->reflected_known) {
		/* not known what the relation reflects (a start, a reload, a fallback): as if
		 * everything changed when the daemon started watching */
		if (!f->change_since_us)
			f->change_since_us =
			    f->created_us < d->sent_at_us ? f->created_us : d->sent_at_us;
	} else if (sum != f->reflected_n) {
		/* counted after the previous check's snapshot, or after this one's if none */
		if (!f->change_since_us)
			f->change_since_us = prev_at ? prev_at : d->sent_at_us;
	} else {
		f->change_since_us = 0;
		if (!f->up_since_us && !j->active)
			f->fresh_as_of_us = d->sent_at_us;
		quiet_row(f, now);
	}
	plan(f);
}

/* The jobs' freshness state for pgcrond.view_status (schema step 19: freshness_publish), as
 * fresh_view shows it: when what it says changed, and at least every PUBLISH_EVERY_US while
 * the sources are read, so that the view can tell a state no longer measured. A job not
 * checked yet has no row (its lag is not known). */
#define PUBLISH_EVERY_US (30 * 1000000LL)
static bool published(const struct job *j)
{
	const struct fresh_job *f = j->fresh;
	return f && !j->removed && (f->checked_us || f->ups_only);
}

static json_t *state_json(const struct job *j, const struct fresh_view *v, int64_t now)
{
	const struct fresh_job *f = j->fresh;
	/* a fallback cut short may end inside a character: jansson takes UTF-8 only */
	json_t *why = v->fallback ? json_string(v->fallback) : json_null();
	if (!why)
		why = json_string("its sources cannot be read (the reason is not UTF-8)");
	return json_pack(
	    "{s:s, s:I, s:o, s:I, s:o}", "job", j->conf->name, "sla_ms", (json_int_t)v->sla_ms,
	    "changed_since", v->changed_since_us ? json_integer(v->changed_since_us) : json_null(),
	    "checked_at", (json_int_t)(f->ups_only ? now : f->checked_us), "fallback", why);
}

static void publish(struct sched *s)
{
	if (!s->hist)
		return;
	int64_t now = sched_now_us(s);
	uint64_t sig = 1469598103934665603ULL;
	json_t *a = json_array();
	for (struct job *j = s->jobs; j; j = j->next) {
		if (!published(j))
			continue;
		struct fresh_view v;
		fresh_view(j, now, &v);
		char key[64];
		snprintf(key, sizeof(key), "%lld %lld", (long long)v.changed_since_us,
		         (long long)v.sla_ms);
		sig = (sig ^ strmap_hash(j->conf->name)) * 1099511628211ULL;
		sig = (sig ^ strmap_hash(key)) * 1099511628211ULL;
		sig = (sig ^ (v.fallback ? strmap_hash(v.fallback) : 0)) * 1099511628211ULL;
		if (a && json_array_append_new(a, state_json(j, &v, now)) < 0) {
			json_decref(a);
			a = NULL;
		}
	}
	/* the state published last, and recently: nothing is sent */
	char *json = a && (sig != s->fresh_pub_sig || now - s->fresh_pub_us >= PUBLISH_EVERY_US)
	                 ? json_dumps(a, JSON_COMPACT)
	                 : NULL;
	json_decref(a);
	if (!json)
		return; /* (or out of memory: the next check tries again) */
	s->fresh_pub_sig = sig;
	s->fresh_pub_us = now;
	hist_publish_freshness(s->hist, json);
}

static void check_row(void *arg, int n, const char *const *v)
{
	struct fresh_db *d = arg;
	if (d->orphan || n < 3 || !v[0])
		return;
	long long ord = atoll(v[0]);
	if (ord < 1 || (size_t)ord > d->n_sources)
		return;
	struct fresh_got *g = &d->got[ord - 1];
	g->got = true;
	g->n = v[1] ? atoll(v[1]) : 0;
	free(g->problem);
	g->problem = v[2] ? strdup(v[2]) : NULL;
}

static void check_done(void *arg, const struct exec_outcome *o)
{
	struct fresh_db *d = arg;
	d->inflight = false;
	if (d->orphan) {
		LIST_REMOVE(d, link);
		db_free(d);
		return;
	}
	if (!o->ok) {
		for (size_t i = 0; i < d->n_sources; i++) {
			d->got[i].got = true;
			free(d->got[i].problem);
			d->got[i].problem = strdup(o->message ? o->message : "the check failed");
		}
	}
	for (size_t k = 0; k < d->n_jobs; k++) {
		struct job *j = sched_job_find(d->s, d->jobs[k].name);
		if (j && j->fresh && !j->removed)
			job_answer(d, k, j->fresh);
	}
	publish(d->s);
}

/* What every source of the database holds as far as writes and DDL can tell, in one
 * statement: per source, a 64-bit print of each relation whose writes can change what it
 * holds (itself, what inherits from it at any depth, partitions included, and every table
 * those inherit from: a write through a parent fires the parent's statement trigger),
 * each relation's oid, file (relfilenode: TRUNCATE, rewrites such as ALTER COLUMN TYPE),
 * catalog row version (xmin: ATTACH, DETACH, renames), its pg_inherits rows (a DETACH ...
 * CONCURRENTLY under way), the version of its pgcrond triggers' rows (a trigger disabled and
 * enabled again around a write in one transaction), the server's start for an unlogged one
 * (a crash empties it) and its counters. A relation dropped, detached or swapped in leaves
 * or joins the set. Any of these moving changes the print (at worst a refresh not needed);
 * the print is SHA-256 keyed by a secret of this process ($2, fresh_key), so that a role
 * that writes two sources of a job cannot pick writes whose prints add up to the sum the
 * relation reflects (every input above is readable by any role);
 * ANALYZE, VACUUM and CREATE INDEX update pg_class in place and move nothing. Names are
 * schema-qualified (config_valid_source), so to_regclass resolves none through a
 * search_path; every function and operator is qualified. A source that is not a table (nor
 * a partitioned one: views have no statement triggers), that reads a foreign table, or one
 * of whose relations lacks the statement trigger or (a plain table) the replication-only
 * row trigger as watch_source makes them (sql/freshness.sql: source_trigger_ok, asked
 * here without needing that function) is a problem: the counters would miss its changes. */
#define CHECK_TRIGGER_OK(name, type, state)                                                        \
	"EXISTS (SELECT FROM pg_catalog.pg_trigger g WHERE g.tgrelid OPERATOR(pg_catalog.=) c.oid" \
	" AND g.tgname OPERATOR(pg_catalog.=) '" name "'::pg_catalog.name"                         \
	" AND g.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure("                         \
	"'pgcrond.source_changed()') AND g.tgtype OPERATOR(pg_catalog.=) " type                    \
	" AND g.tgenabled OPERATOR(pg_catalog.=) '" state "'::pg_catalog.\"char\""                 \
	" AND g.tgqual IS NULL AND g.tgnargs OPERATOR(pg_catalog.=) 0"                             \
	" AND pg_catalog.cardinality(g.tgattr::pg_catalog.int2[]) OPERATOR(pg_catalog.=) 0)"
/* relation c lacks a trigger as watch_source makes it */
#define CHECK_STMT_OK CHECK_TRIGGER_OK("pgcrond_source_changed", "60", "A")
#define CHECK_ROW_OK CHECK_TRIGGER_OK("pgcrond_source_replicated", "29", "R")
#define CHECK_UNWATCHED                                                                            \
	"(NOT " CHECK_STMT_OK " OR (c.relkind OPERATOR(pg_catalog.=) 'r'::pg_catalog.\"char\""     \
	" AND NOT " CHECK_ROW_OK "))"
/* relation c's name, schema-qualified whatever the session's search_path (a job's own) */
#define CHECK_REL_NAME                                                                             \
	"pg_catalog.format('%I.%I', (SELECT n.nspname FROM pg_catalog.pg_namespace n"              \
	" WHERE n.oid OPERATOR(pg_catalog.=) c.relnamespace), c.relname)"
static const char check_sql[] =
    "SELECT u.ord::pg_catalog.int4, t.print,"
    " CASE WHEN r.rel IS NULL THEN 'does not exist, or the daemon''s role cannot see it'"
    "  WHEN t.print IS NULL THEN 'is not a table (a view has no change trigger: name the tables"
    " it reads, or the job that maintains it in after)'"
    "  WHEN t.foreign_rel IS NOT NULL THEN pg_catalog.concat('reads foreign table ',"
    "   t.foreign_rel, ', whose writes on its server fire no trigger here')"
    "  WHEN t.unwatched IS NOT NULL THEN pg_catalog.concat('lacks pgcrond''s change triggers on ',"
    "   t.unwatched, ' (missing, disabled or made otherwise); run pgcrond install, or as"
    " the table''s owner SELECT pgcrond.watch_source(', pg_catalog.quote_literal(u.name), ')')"
    " END"
    " FROM pg_catalog.unnest($1::pg_catalog.text[]) WITH ORDINALITY AS u(name, ord)"
    " CROSS JOIN LATERAL (SELECT pg_catalog.to_regclass(u.name) AS rel) r"
    " CROSS JOIN LATERAL (WITH RECURSIVE"
    "  down(relid) AS (SELECT c.oid FROM pg_catalog.pg_class c"
    "   WHERE c.oid OPERATOR(pg_catalog.=) r.rel"
    "   AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog.\"char\"[])"
    "   UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i"
    "   JOIN down ON i.inhparent OPERATOR(pg_catalog.=) down.relid),"
    "  up(relid) AS (SELECT d.relid FROM down d"
    "   UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i"
    "   JOIN up ON i.inhrelid OPERATOR(pg_catalog.=) up.relid)"
    "  SELECT ('x' OPERATOR(pg_catalog.||) pg_catalog.left(pg_catalog.encode(pg_catalog.sha256("
    "   pg_catalog.convert_to($2::pg_catalog.text OPERATOR(pg_catalog.||)"
    "   pg_catalog.string_agg(pg_catalog.concat_ws(':',"
    "    c.oid, c.relfilenode, c.xmin,"
    "    CASE WHEN c.relpersistence OPERATOR(pg_catalog.=) 'u'::pg_catalog.\"char\""
    "     THEN pg_catalog.pg_postmaster_start_time() END,"
    "    (SELECT pg_catalog.string_agg(pg_catalog.concat_ws('/', i.inhparent, i.xmin,"
    "      i.inhdetachpending), ',' ORDER BY i.inhparent) FROM pg_catalog.pg_inherits i"
    "     WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid),"
    "    (SELECT pg_catalog.string_agg(pg_catalog.concat_ws('/', g.tgname, g.tgenabled, g.xmin),"
    "      ',' ORDER BY g.tgname) FROM pg_catalog.pg_trigger g"
    "     WHERE g.tgrelid OPERATOR(pg_catalog.=) c.oid AND g.tgname OPERATOR(pg_catalog.=) ANY"
    "     ('{pgcrond_source_changed,pgcrond_source_replicated}'::pg_catalog.name[])),"
    "    (SELECT pg_catalog.string_agg(pg_catalog.concat_ws('=', s.slot, s.n), ',' ORDER BY"
    "      s.slot) FROM pgcrond.source_change s WHERE s.relid OPERATOR(pg_catalog.=) c.oid)),"
    "   ';' ORDER BY c.oid), 'UTF8')), 'hex'), 16))::pg_catalog.bit(64)::pg_catalog.int8 AS print,"
    "   pg_catalog.min(CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'f'::pg_catalog.\"char\""
    "    THEN " CHECK_REL_NAME " END) AS foreign_rel,"
    "   pg_catalog.min(CASE WHEN " CHECK_UNWATCHED " THEN " CHECK_REL_NAME " END) AS unwatched"
    "  FROM up m JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) m.relid) t";
#undef CHECK_TRIGGER_OK
#undef CHECK_STMT_OK
#undef CHECK_ROW_OK
#undef CHECK_UNWATCHED
#undef CHECK_REL_NAME

/* The key of the prints (check_sql): drawn once per process from the system's randomness,
 * never from the scheduler's (a simulation pins that one), and never logged. */
static const char *fresh_key(struct sched *s)
{
	if (!s->fresh_key[0]) {
		unsigned char k[16];
		arc4random_buf(k, sizeof(k));
		for (size_t i = 0; i < sizeof(k); i++)
			snprintf(s->fresh_key + 2 * i, 3, "%02x", k[i]);
	}
	return s->fresh_key;
}

static void check_cb(void *arg)
{
	struct fresh_db *d = arg;
	struct sched *s = d->s;
	if (d->orphan || s->draining)
		return;
	arm(s->clock, &d->ev, d->every_us);
	if (d->inflight)
		return; /* the pool is busy: that answer comes first */
	const char *params[] = {d->param, fresh_key(s)};
	/* The planner guesses thousands of rows for the recursive walks (it cannot know a
	 * source has a handful of relations), and a cost that high makes a server with JIT on
	 * (PostgreSQL's default) compile the statement at every check: half a second of the
	 * server's CPU for a statement that runs in milliseconds, every check interval. So
	 * this session plans without JIT; the reset after the run restores its setting. */
	struct exec_stmt st[] = {
	    {.sql = "SET jit = off", .simple = true},
	    {.sql = check_sql, .params = params, .n_params = 2},
	};
	int64_t timeout = d->every_us / 1000 * 4;
	struct exec_run_spec spec = {
	    .database = d->name,
	    .stmts = st,
	    .n_stmts = sizeof(st) / sizeof(st[0]),
	    .timeout_ms = timeout < 10000 ? 10000 : timeout,
	    .on_row = check_row,
	    .on_done = check_done,
	    .arg = d,
	};
	struct exec_run *er = NULL;
	for (size_t i = 0; i < d->n_sources; i++)
		d->got[i].got = false;
	d->sent_at_us = sched_now_us(s);
	if (s->ex.submit(s->ex.ctx, &spec, &er) == 0)
		d->inflight = true;
}

/* ---- building: jobs and databases ------------------------------------------------------ */

static void job_state(struct job *j, int64_t now)
{
	const struct conf_job *c = j->conf;
	if (c->more->fresh.sla_ms <= 0) {
		fresh_job_free(j);
		return;
	}
	if (!j->fresh) {
		struct fresh_job *f = calloc(1, sizeof(*f));
		if (!f)
			return;
		f->j = j;
		f->created_us = now;
		clock_timer_init(&f->ev, plan, f);
		j->fresh = f;
	}
	j->fresh->sla_us = c->more->fresh.sla_ms * 1000;
}

/* J's sources: its plugin's (ABI 1.3) then its file's, each once; returns how many. */
static size_t job_sources(const struct job *j, const char **out)
{
	size_t n = 0;
	const char *const *ps = j->plug ? j->plug->decl.sources : NULL;
	for (size_t i = 0; ps && ps[i] && n < MAX_SOURCES; i++)
		out[n++] = ps[i];
	for (size_t i = 0; i < j->conf->more->fresh.n_sources && n < MAX_SOURCES; i++) {
		bool dup = false;
		for (size_t k = 0; k < n; k++)
			dup |= strcmp(out[k], j->conf->more->fresh.sources[i]) == 0;
		if (!dup)
			out[n++] = j->conf->more->fresh.sources[i];
	}
	return n;
}

/* What a run of J reflects: its database, what it runs (command, or plugin and settings) and
 * its sources SRCS. */
static uint64_t def_hash(const struct job *j, const char *const *srcs, size_t n)
{
	const struct conf_job *c = j->conf;
	const char *text[] = {j->conf->database, c->command, c->plugin};
	uint64_t h = 1;
	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		h = (h ^ strmap_hash(text[i] ? text[i] : "")) * 1099511628211ULL;
	for (size_t i = 0; i < c->more->n_settings; i++)
		h = (h ^ strmap_hash(c->more->settings[i].key) ^
		     (strmap_hash(c->more->settings[i].value) << 1)) *
		    1099511628211ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ strmap_hash(srcs[i])) * 1099511628211ULL;
	return h ? h : 1;
}

/* A reload changed what J's runs reflect (another source, command or database): what the
 * relation reflects is not known any more, as at a start, but from now, so that it runs
 * within its SLA of the reload; the run under way, of the old definition, proves nothing. */
static void def_applied(struct job *j, uint64_t def, int64_t now)
{
	struct fresh_job *f = j->fresh;
	uint64_t was = f->def;
	f->def = def;
	if (!was || was == def)
		return;
	f->reflected_known = f->have_seen = f->run.known = false;
	f->created_us = now;
	if (f->ups_only && !f->change_since_us)
		f->change_since_us = now;
	f->fresh_as_of_us = 0;
	char sla[32];
	duration_format(f->sla_us / 1000, sla, sizeof(sla));
	sched_job_log(
	    j, LOG_LVL_INFO,
	    "its sources, command or database changed: it runs within its freshness (%s) to "
	    "reflect them",
	    sla);
}

static struct fresh_db *db_for(struct sched *s, const char *name)
{
	struct fresh_db *d;
	LIST_FOREACH(d, &s->fresh_dbs, link)
		if (strcmp(d->name, name) == 0)
			return d;
	d = calloc(1, sizeof(*d));
	if (!d || !(d->name = strdup(name))) {
		free(d);
		return NULL;
	}
	d->s = s;
	d->every_us = INT64_MAX;
	clock_timer_init(&d->ev, check_cb, d);
	LIST_INSERT_HEAD(&s->fresh_dbs, d, link);
	return d;
}

static bool db_add_job(struct fresh_db *d, const struct job *j, const char **srcs, size_t n)
{
	if (array_grow(&d->jobs, d->n_jobs, &d->cap_jobs, sizeof(*d->jobs), 8) < 0)
		return false;
	size_t *idx = calloc(n ? n : 1, sizeof(*idx));
	char *name = strdup(j->conf->name);
	if (!idx || !name) {
		free(idx);
		free(name);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		size_t x = 0;
		while (x < d->n_sources && strcmp(d->sources[x], srcs[i]) != 0)
			x++;
		if (x == d->n_sources) {
			if (array_grow(&d->sources, d->n_sources, &d->cap_sources,
			               sizeof(*d->sources), 8) < 0 ||
			    !(d->sources[d->n_sources] = strdup(srcs[i]))) {
				free(idx);
				free(name);
				return false;
			}
			d->n_sources++;
		}
		idx[i] = x;
	}
	d->jobs[d->n_jobs++] = (struct fresh_dbjob){.name = name, .src = idx, .n_src = n};
	int64_t every = fresh_check_every_us(j->fresh->sla_us);
	if (every < d->every_us)
		d->every_us = every;
	return true;
}

static void drop_dbs(struct sched *s)
{
	for (struct fresh_db *d; (d = LIST_FIRST(&s->fresh_dbs));) {
		LIST_REMOVE(d, link);
		clock_disarm(s->clock, &d->ev);
		if (d->inflight) {
			d->orphan = true;
			LIST_INSERT_HEAD(&s->fresh_orphans, d, link);
		} else {
			db_free(d);
		}
	}
}

void fresh_applied(struct sched *s)
{
	int64_t now = sched_now_us(s);
	drop_dbs(s);
	for (struct job *j = s->jobs; j; j = j->next) {
		job_state(j, now);
		if (!j->fresh || j->removed)
			continue;
		const char *srcs[MAX_SOURCES];
		size_t n = job_sources(j, srcs);
		j->fresh->ups_only = n == 0 && j->graph && j->graph->n_ups > 0;
		def_applied(j, def_hash(j, srcs, n), now);
		if (n == 0) {
			/* nothing to watch: its upstreams' successes are its changes (after); with
			 * no upstream either, it can only run every period */
			if (j->fresh->ups_only && !j->fresh->last_ok_start_us &&
			    !j->fresh->change_since_us)
				/* what it reflects is not known before its first run here: as if
				 * its upstreams changed when it was made, so it runs once within
				 * its SLA */
				j->fresh->change_since_us = j->fresh->created_us;
			if ((!j->graph || !j->graph->n_ups) && !j->fresh->fallback) {
				j->fresh->fallback =
				    strdup("no sources declared (neither its plugin nor "
				           "sources = [ ... ] names a table)");
				sched_job_log(
				    j, LOG_LVL_WARNING,
				    "cannot tell whether its sources changed (%s); it runs once "
				    "every freshness period",
				    j->fresh->fallback);
			}
			plan(j->fresh);
			continue;
		}
		struct fresh_db *d = j->conf->database ? db_for(s, j->conf->database) : NULL;
		if (!d || !db_add_job(d, j, srcs, n))
			sched_job_log(j, LOG_LVL_ERROR,
			              "out of memory; its sources are not watched");
	}
	struct fresh_db *d;
	LIST_FOREACH(d, &s->fresh_dbs, link) {
		d->param = text_pg_array((const char *const *)d->sources, d->n_sources);
		d->got = calloc(d->n_sources + 1, sizeof(*d->got));
		if (!d->param || !d->got || d->n_jobs == 0)
			continue;
		arm(s->clock, &d->ev, 0); /* the first check now */
	}
}

void fresh_job_free(struct job *j)
{
	struct fresh_job *f = j->fresh;
	if (!f)
		return;
	clock_disarm(j->s->clock, &f->ev);
	free(f->fallback);
	free(f);
	j->fresh = NULL;
}

void fresh_stop(struct sched *s)
{
	drop_dbs(s);
	for (struct job *j = s->jobs; j; j = j->next)
		if (j->fresh)
			clock_disarm(s->clock, &j->fresh->ev);
}

void fresh_free(struct sched *s)
{
	fresh_stop(s);
	/* checks still in flight: the executor, freed after the scheduler, drops their
	 * answers unread */
	for (struct fresh_db *d; (d = LIST_FIRST(&s->fresh_orphans));) {
		LIST_REMOVE(d, link);
		db_free(d);
	}
}

void fresh_run_begin(struct run *r)
{
	struct fresh_job *f = r->job->fresh;
	clock_disarm(r->job->s->clock, &f->ev);
	f->run.known = f->have_seen && !f->fallback;
	f->run.n = f->seen_n;
	f->run.at_us = f->seen_at_us;
	f->run.start_us = r->start_us;
	f->run.since_us = f->change_since_us;
	f->run.up_us = f->up_since_us;
	f->up_since_us = 0;
}

void fresh_run_end(struct run *r, bool ok, int64_t end_us)
{
	struct job *j = r->job;
	struct fresh_job *f = j->fresh;
	if (f && ok) {
		f->dur_us[f->dur_pos++ % DURATIONS] = end_us - f->run.start_us;
		f->last_ok_start_us = f->run.start_us;
		f->reflected_known = f->run.known;
		f->reflected_n = f->run.n;
		if (f->ups_only)
			f->change_since_us = 0; /* its changes are its upstreams' (up_since_us) */
		else if (!f->run.known)
			f->change_since_us = f->run.start_us; /* reflects what it started from */
		else if (f->seen_n != f->run.n)
			f->change_since_us = f->run.at_us; /* counted after its starting check */
		else
			f->change_since_us = 0;
		f->fresh_as_of_us = f->change_since_us ? 0 : f->run.start_us;
	} else if (f) {
		if (f->run.up_us && (!f->up_since_us || f->run.up_us < f->up_since_us))
			f->up_since_us = f->run.up_us;
	}
	/* an upstream's success is a change of its downstreams' sources, as old as the
	 * oldest change it reflected */
	if (ok) {
		int64_t since = f && f->run.since_us ? f->run.since_us : r->start_us;
		for (size_t i = 0; j->graph && i < j->graph->n_downs; i++) {
			struct fresh_job *df = j->graph->downs[i]->fresh;
			if (!df)
				continue;
			if (!df->up_since_us || since < df->up_since_us)
				df->up_since_us = since;
			df->fresh_as_of_us = 0;
			/* gathered like a change of its own sources: planned, not run at once */
			fresh_replan(j->graph->downs[i]);
		}
	}
	fresh_replan(j); /* planned from the loop */
}

void fresh_replan(struct job *j)
{
	if (j->fresh && !j->s->draining)
		arm(j->s->clock, &j->fresh->ev, 0);
}

void fresh_view(const struct job *j, int64_t now_us, struct fresh_view *out)
{
	memset(out, 0, sizeof(*out));
	const struct fresh_job *f = j->fresh;
	if (!f)
		return;
	out->on = true;
	out->sla_ms = f->sla_us / 1000;
	int64_t since = oldest_change(f);
	if (f->fallback) {
		since = f->last_ok_start_us ? f->last_ok_start_us : f->created_us;
		out->fallback = f->fallback;
	}
	out->changed_since_us = since;
	out->lag_us = since && now_us > since ? now_us - since : 0;
	out->fresh_as_of_us = f->fresh_as_of_us;
	out->next_run_us = f->planned_us;
	if (!since && !f->fallback && f->reflected_known && f->have_seen &&
	    f->seen_n == f->reflected_n)
		out->unchanged_since_us = f->last_ok_start_us;
}
