/* An instance alone (cluster_priv.h; sql/pgcrond--23.sql).
 *
 * A heartbeat that finds no other live instance has the instance go lone: one statement
 * (pgcrond.go_lone) holds the gate's row FOR UPDATE, finds no other instance not stopped and
 * no other instance's claim of a fire still to come, and marks this process's row lone. From
 * then on a claim is answered at once, without a statement (GRANTED: the scheduler runs it
 * as a claimed fire; the "lock" its run gives back at its end is only counted here), in the
 * claim's own call (cluster_lone_grant; one queued before, at the flush that follows), while
 * the last heartbeat is recent: within LONE_LEASE of its sending, which is well before any
 * other instance may find this one dead by its heartbeat (cluster_dead_after). No claim
 * statement of another instance gets through while the row says lone (pgcrond.claim_gate).
 *
 * A heartbeat that finds another instance live (a newcomer's hello has this one beat at once)
 * has it claim again, in one statement: the fires it ran lone in the last LONE_RECENT_MS and
 * each job's last one become its claims (so the newcomer's catch-up, or its settling of the
 * fires it was refused, finds them served), the jobs of its runs under way get their locks
 * (not marked: those runs wrote no start mark), and the row's lone mark goes. The newcomer's
 * claims are refused until then, milliseconds normally. A (re)connect does the same first
 * when the process was lone: its row may still say so. */
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cluster.h"
#include "cluster_priv.h"
#include "log.h"
#include "text.h"
#include "strmap.h"

/* the fires run lone that claiming again claims (with each job's last one, of any age); the
 * older ones leave the ring from its head (prune), as a fire is noted and at each heartbeat */
#define LONE_RECENT_MS (2 * 60 * 1000)
#define LONE_RECENT_MAX 100000
_Static_assert(LONE_RECENT_MAX % 32 == 0, "the ring's room doubles from 1/32 to it exactly");

/* A fire granted lone. Up to LONE_RECENT_MAX are kept (15,000 fires a second fill it) in one
 * ring of these, 24 bytes each: a scheduled fire's first attempt (almost every fire) keeps its
 * instant, its key made at the switch (note_key); any other fire's key is made as it is noted,
 * and kept aside. */
struct lone_note {
	struct lone_job *job;
	int64_t at_ms : 63; /* monotonic (a reading in ms needs far fewer bits: SCHED takes one) */
	bool sched : 1;     /* SCHEDULED_US is set, not KEY */
	union {
		int64_t scheduled_us;
		char *key;
	};
};

/* A job that had fires granted lone (its fires point at it: it goes only with them, forget). */
struct lone_job {
	struct strmap_node node;
	char *name;
	/* its runs granted lone and not ended (no lock row): counted at a queued claim's answer,
	 * or as the switch to claiming begins (cluster_lone_hold), not at each grant */
	int held;
	int ended; /* ... of those the switch in flight locks, ended meanwhile */
	/* the newest of its fires that left the ring (prune): its last one, unless a newer one
	 * is still in the ring (LAST.job NULL: none) */
	struct lone_note last;
	bool listed; /* switch_send: a newer one is */
};

static const char sql_go_lone[] = "SELECT pgcrond.go_lone($1, $2)";

/* $1 instance, $2 boot id; $3, $4, $5: the fires run lone (jobs, keys, their ages in ms);
 * $6, $7: the jobs of runs under way and how many; $8: a switch sent again after its answer
 * was lost (it may have committed: the holds are set, not added). A turn ("n") is taken over when
 * ours is the later; no other claim is (nobody else claimed while this instance was lone). */
#define SQL_SWITCH_LOCK_ON                                                                         \
	SQL_JOB_LOCK_ADD_ON(" AND NOT $8::pg_catalog.bool", " marked = false,", "")
static const char sql_switch[] =
    "WITH f AS (SELECT DISTINCT ON (x.j, x.k) x.j, x.k, x.a"
    "   FROM ROWS FROM (pg_catalog.unnest($3::pg_catalog.text[]),"
    "    pg_catalog.unnest($4::pg_catalog.text[]), pg_catalog.unnest($5::pg_catalog.int8[]))"
    "    AS x(j, k, a) ORDER BY x.j, x.k, x.a),"
    " cl AS (INSERT INTO pgcrond.fire_claim AS c (job_name, fire_key, instance, boot_id,"
    "   claimed_at, started)"
    "  SELECT f.j, f.k, $1, $2, pg_catalog.now() OPERATOR(pg_catalog.-) (f.a::pg_catalog.float8"
    "   OPERATOR(pg_catalog.*) interval '1 millisecond'), NULL::pg_catalog.bool FROM f"
    "  ORDER BY f.j COLLATE pg_catalog.\"C\", f.k COLLATE pg_catalog.\"C\""
    "  ON CONFLICT (job_name, fire_key) DO UPDATE SET instance = EXCLUDED.instance,"
    "   boot_id = EXCLUDED.boot_id, claimed_at = EXCLUDED.claimed_at, started = NULL"
    "  WHERE c.fire_key OPERATOR(pg_catalog.=) 'n'"
    "   AND c.claimed_at OPERATOR(pg_catalog.<) EXCLUDED.claimed_at"
    "  RETURNING 1),"
    " l AS (" SQL_JOB_LOCK_M " SELECT u.j, $1, $2, u.n, false"
    "  FROM ROWS FROM (pg_catalog.unnest($6::pg_catalog.text[]),"
    "   pg_catalog.unnest($7::pg_catalog.int4[])) AS u(j, n)"
    "  ORDER BY u.j COLLATE pg_catalog.\"C\"" SQL_SWITCH_LOCK_ON "),"
    " o AS (UPDATE pgcrond.instance i SET lone_boot = NULL"
    "  WHERE i.name OPERATOR(pg_catalog.=) $1 AND i.boot_id OPERATOR(pg_catalog.=) $2"
    "  RETURNING 1)"
    " SELECT (SELECT pg_catalog.count(*) FROM cl), (SELECT pg_catalog.count(*) FROM l),"
    "  (SELECT pg_catalog.count(*) FROM o)";

/* How long after a heartbeat's sending claims are still answered lone: half-way between the
 * heartbeat's period and cluster_dead_after, after which another instance may find this one
 * dead (its row's last_seen was written after that sending) and serve its fires. */
static int64_t lease_us(const struct cluster *c)
{
	return (c->beat_ms + c->dead_after_ms) * 1000 / 2;
}

/* The one place the state moves: admission reads it (admit_ahead), and hears when lone ends
 * (cluster_set_again_fn), so that the switch takes the locks of the runs granted lone. */
static void lone_to(struct cluster *c, enum lone_state to)
{
	bool was = c->lone.state == LONE_ON;
	if (!was && to == LONE_ON)
		c->lone.since_us = clock_wall_us();
	c->lone.state = to;
	c->lone.lease_end_us = to == LONE_ON ? c->lone.beat_ok_us + lease_us(c) : 0;
	cluster_lone_tell(c);
	if (was && to != LONE_ON && c->again_fn)
		c->again_fn(c->again_arg);
}

static struct lone_job *job_get(struct cluster_lone *l, const char *name, bool make)
{
	struct lone_job *j = STRMAP_ENTRY(strmap_find(&l->jobs, name), struct lone_job, node);
	if (j || !make)
		return j;
	j = calloc(1, sizeof(*j));
	if (!j || !(j->name = strdup(name))) {
		free(j);
		return NULL;
	}
	strmap_insert(&l->jobs, &j->node, j->name);
	return j;
}

/* Fires older than LONE_RECENT_MS leave the ring, and the oldest past KEEP, each becoming its
 * job's last (the older last goes). */
static void prune(struct cluster_lone *l, int64_t now_ms, size_t keep)
{
	for (struct lone_note *f;
	     l->n_fires &&
	     (now_ms - (f = &l->ring[l->head])->at_ms > LONE_RECENT_MS || l->n_fires > keep);) {
		if (!f->job->last.sched)
			free(f->job->last.key);
		f->job->last = *f;
		l->head = (l->head + 1) % l->cap;
		l->n_fires--;
	}
}

bool cluster_lone_on(const struct cluster *c)
{
	return c->lone.state == LONE_ON;
}

/* Whether a claim is answered lone at NOW_US (monotonic): within the lease, the name's lock
 * held (a lost connection leaves CS_LOCKED first: on_conn_failed), and in step. */
static bool answers_at(const struct cluster *c, int64_t now_us)
{
	return now_us < c->lone.lease_end_us && c->state == CS_LOCKED && !c->closing &&
	       !c->stopping && !c->skewed;
}

bool cluster_lone(const struct cluster *c)
{
	return c && answers_at(c, clock_mono_us());
}

bool cluster_lone_which(struct cluster *c, const struct claim *q)
{
	return !q->sent && cluster_lone(c);
}

bool cluster_lone_undecided(const struct cluster *c)
{
	return !c->lone.known;
}

/* Room for one more note in L's full ring: it doubles (from LONE_RECENT_MAX / 32), the notes
 * before its head going after the old end, so that they follow the others again. */
static bool ring_grow(struct cluster_lone *l)
{
	size_t cap = l->cap ? 2 * l->cap : LONE_RECENT_MAX / 32;
	struct lone_note *p = realloc(l->ring, cap * sizeof(*p));
	if (!p)
		return false;
	memcpy(p + l->cap, p, l->head * sizeof(*p));
	l->ring = p;
	l->cap = cap;
	return true;
}

/* Note a fire of job J (NULL: out of memory) granted lone at NOW_MS (monotonic), for the
 * switch to claiming (switch_send): the first attempt at SCHEDULED_US, or (0) the fire whose
 * claim key is KEY (allocated, taken: NULL when out of memory). False when out of memory: not
 * remembered, it could not be claimed when claiming again, so not run. */
static bool note_fire(struct cluster_lone *l, struct lone_job *j, int64_t scheduled_us, char *key,
                      int64_t now_ms)
{
	struct lone_note n = {.job = j, .at_ms = now_ms, .sched = scheduled_us != 0, .key = key};
	if (n.sched)
		n.scheduled_us = scheduled_us;
	prune(l, now_ms, LONE_RECENT_MAX - 1);
	if (!j || (!n.sched && !key) || (l->n_fires == l->cap && !ring_grow(l))) {
		free(key);
		return false;
	}
	l->ring[(l->head + l->n_fires++) % l->cap] = n;
	return true;
}

/* (made here for the switch: below the claims and admission, which make it too) */
int cluster_fire_key(enum run_trigger trigger, int64_t scheduled_us, const char *graph_run,
                     int attempt, int64_t debounce_ms, char *out, size_t len, int64_t *window_ms)
{
	int n;
	*window_ms = 0;
	if (scheduled_us)
		n = snprintf(out, len, "s:%" PRId64, scheduled_us / 1000000);
	else if (graph_run && *graph_run)
		n = snprintf(out, len, "g:%s", graph_run);
	else if (trigger == TRIGGER_NOTIFY && attempt <= 1) {
		/* instances get the same burst within milliseconds of each other; half the
		 * debounce (at least a second) tells a burst's late claims from the next burst */
		*window_ms = debounce_ms / 2 > 1000 ? debounce_ms / 2 : 1000;
		n = snprintf(out, len, "n");
	} else
		return 0; /* manual (claimed by request id), @reboot (per start), the winner's retry
		           */
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	if (attempt > 1) {
		int m = snprintf(out + n, len - (size_t)n, "/a%d", attempt);
		if (m < 0 || (size_t)m >= len - (size_t)n)
			return -ENOSPC;
	}
	return 1;
}

/* A fire's claim key, as its claim's would have been (allocated; NULL when out of memory) */
static char *fire_key(enum run_trigger trigger, int64_t scheduled_us, const char *graph_run,
                      int attempt)
{
	size_t n = graph_run ? strlen(graph_run) + 1 : 1;
	char *k = malloc(n + 48);
	int64_t window = 0;
	if (k &&
	    cluster_fire_key(trigger, scheduled_us, graph_run, attempt, 0, k, n + 48, &window) <= 0)
		k[0] = '\0'; /* (admission grants only a fire with a key) */
	return k;
}

/* F's claim key (allocated; NULL when out of memory) */
static char *note_key(const struct lone_note *f)
{
	return f->sched ? fire_key(TRIGGER_SCHEDULE, f->scheduled_us, NULL, 1) : strdup(f->key);
}

enum cluster_verdict cluster_lone_verdict(struct cluster *c, struct claim *q, char *why, size_t len)
{
	struct lone_job *j = job_get(&c->lone, q->job, true);
	if (note_fire(&c->lone, j, 0, strdup(q->key), clock_mono_ms())) {
		j->held++; /* its run gives "its lock" back as a claim's does (cluster_release) */
		return CLUSTER_GRANTED;
	}
	snprintf(why, len, "out of memory noting a fire run unclaimed");
	return CLUSTER_REFUSED;
}

bool cluster_lone_grant(struct cluster *c, const char *job, enum run_trigger trigger,
                        int64_t scheduled_us, const char *graph_run, int attempt)
{
	int64_t now = clock_mono_us();             /* one reading: the lease's and the note's */
	bool first = scheduled_us && attempt <= 1; /* almost every fire: keyed at the switch */
	if (!answers_at(c, now) ||
	    !note_fire(&c->lone, job_get(&c->lone, job, true), first ? scheduled_us : 0,
	               first ? NULL : fire_key(trigger, scheduled_us, graph_run, attempt),
	               now / 1000))
		return false;
	c->st.claims++;
	c->st.granted++;
	return true;
}

bool cluster_lone_hold(struct cluster *c, const char *job)
{
	struct lone_job *j = job_get(&c->lone, job, true);
	if (!j)
		return false;
	j->held++;
	return true;
}

void cluster_release(struct cluster *c, const char *job)
{
	struct lone_job *j = c ? job_get(&c->lone, job, false) : NULL;
	if (!c)
		return;
	if (!j || j->held <= 0) { /* the lock row a claim statement took */
		cluster_unlock(c, job);
		return;
	}
	j->held--; /* a run granted lone holds no lock row: only its count goes */
	if (c->lone.state == LONE_SWITCHING)
		j->ended++; /* locked by the switch on its way: unlocked once it is answered */
}

void cluster_lone_refused(struct cluster *c, const char *err)
{
	struct cluster_lone *l = &c->lone;
	l->refusing = err != NULL;
	if (!err)
		return;
	snprintf(l->refused, sizeof(l->refused), "%s", err);
	/* its own complaint: not the one a lost database's refusals are logged under */
	if (log_complain(&l->refused_complaint, NULL))
		log_info("cluster: claims refused: %s (it answers at its heartbeat, which this "
		         "instance's hello asked for)",
		         err);
}

bool cluster_lone_refusal(const struct cluster *c, char *why, size_t len)
{
	if (!c->lone.refusing)
		return false;
	if (why)
		snprintf(why, len, "%s", c->lone.refused);
	return true;
}

/* ---- going lone ---------------------------------------------------------------------- */

static void leave(struct cluster *c);

static void on_lone(void *arg, const PGresult *res, const char *err, const char *sqlstate)
{
	struct cluster *c = arg;
	struct cluster_lone *l = &c->lone;
	l->known = true;
	if (l->state != LONE_GOING)
		return;
	if (!res && strcmp(sqlstate, "08006") == 0) {
		/* lost on its way: it may have committed, and the row say lone; the next connect
		 * clears it (cluster_lone_locked) */
		lone_to(c, LONE_LEAVING);
		return;
	}
	bool lone =
	    res && !(err && *err) && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	if (err && *err)
		log_warning("cluster: cannot go lone: %s", err);
	if (!lone) {
		lone_to(c, LONE_OFF);
		return;
	}
	lone_to(c, LONE_ON);
	log_info("cluster: instance \"%s\" is alone: it runs its fires without claiming them (its "
	         "heartbeat is its only statement) until another instance says hello",
	         c->instance);
	if (l->leave_after) {
		l->leave_after = false;
		leave(c);
		return;
	}
	/* claims waiting: answered now, without their statement */
	if (!TAILQ_EMPTY(&c->claims) && !evtimer_pending(&c->flush_ev, NULL))
		event_active(&c->flush_ev, EV_TIMEOUT, 1);
}

static void go_lone(struct cluster *c)
{
	struct cluster_lone *l = &c->lone;
	const char *p[] = {c->instance, c->boot_id};
	if (cluster_submit(c, sql_go_lone, 2, p, on_lone, c) == 0) {
		lone_to(c, LONE_GOING);
		l->leave_after = false;
	}
}

/* ---- claiming again ------------------------------------------------------------------ */

/* Forget the jobs and fires run alone; with RELEASE, the locks of the runs that ended
 * meanwhile are given back (cluster_unlock). */
static void forget(struct cluster *c, bool release)
{
	struct cluster_lone *l = &c->lone;
	prune(l, 0, 0); /* each note becomes its job's last, which goes with it */
	for (struct strmap_node *n = strmap_first(&l->jobs), *next; n; n = next) {
		next = strmap_next(&l->jobs, n);
		struct lone_job *j = STRMAP_ENTRY(n, struct lone_job, node);
		strmap_remove(&l->jobs, n);
		for (int i = 0; release && i < j->ended; i++)
			cluster_unlock(c, j->name);
		free(j->name);
		if (!j->last.sched)
			free(j->last.key);
		free(j);
	}
	strmap_free(&l->jobs);
	free(l->ring);
	l->ring = NULL;
	l->head = l->cap = 0;
}

static void on_switched(void *arg, const PGresult *res, const char *err, const char *sqlstate)
{
	struct cluster *c = arg;
	struct cluster_lone *l = &c->lone;
	lone_to(c, LONE_LEAVING);
	if (!res || (err && *err)) {
		l->switch_lost = l->switch_lost || strcmp(sqlstate, "08006") == 0;
		log_warning(
		    "cluster: cannot claim again the fires this instance ran alone (another "
		    "instance's claims are refused until it can): %s",
		    err && *err ? err : "no answer");
		/* those runs ended: they hold no lock row; the rest are sent again (at the next
		 * heartbeat, or the next connect) */
		for (struct strmap_node *n = strmap_first(&l->jobs); n;
		     n = strmap_next(&l->jobs, n))
			STRMAP_ENTRY(n, struct lone_job, node)->ended = 0;
		return;
	}
	long long claims = atoll(PQgetvalue(res, 0, 0)), locks = atoll(PQgetvalue(res, 0, 1));
	log_info("cluster: instance \"%s\" claims every fire again (other live instances: %s): "
	         "%lld fire(s) it ran alone claimed, the locks of %lld job(s) with runs under way "
	         "taken",
	         c->instance, c->peers[0] ? c->peers : "none seen yet", claims, locks);
	lone_to(c, LONE_OFF);
	l->switch_lost = false;
	/* the runs under way hold lock rows now, and those that ended meanwhile give theirs back */
	forget(c, true);
}

static char *ints_literal(const int64_t *v, size_t n)
{
	char *b = malloc(n * 24 + 3);
	if (!b)
		return NULL;
	size_t o = 0;
	b[o++] = '{';
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(b + o, 24, "%s%" PRId64, i ? "," : "", v[i]);
	b[o++] = '}';
	b[o] = '\0';
	return b;
}

/* The switch's statement, made from what was run lone (sql_switch). */
static void switch_send(struct cluster *c)
{
	struct cluster_lone *l = &c->lone;
	if (l->state != LONE_LEAVING || !cluster_ready(c))
		return;
	int64_t now = clock_mono_ms();
	prune(l, now, LONE_RECENT_MAX);
	size_t nf = l->n_fires + l->jobs.n, nh = 0, i = 0;
	const char **fj = calloc(nf + 1, sizeof(*fj));
	char **fk = calloc(nf + 1, sizeof(*fk));
	const char **hj = calloc(l->jobs.n + 1, sizeof(*hj));
	int64_t *age = calloc(nf + 1, sizeof(*age)), *held = calloc(l->jobs.n + 1, sizeof(*held));
	char *lit[5] = {NULL}; /* $3 to $7 */
	if (!fj || !fk || !hj || !age || !held)
		goto out;
	for (; i < l->n_fires; i++) {
		struct lone_note *f = &l->ring[(l->head + i) % l->cap];
		fj[i] = f->job->name;
		fk[i] = note_key(f);
		age[i] = now - f->at_ms;
		f->job->listed = true;
	}
	for (struct strmap_node *n = strmap_first(&l->jobs); n; n = strmap_next(&l->jobs, n)) {
		struct lone_job *j = STRMAP_ENTRY(n, struct lone_job, node);
		if (j->last.job && !j->listed) {
			fj[i] = j->name;
			fk[i] = note_key(&j->last);
			age[i++] = now - j->last.at_ms;
		}
		j->listed = false;
		if (j->held > 0) {
			hj[nh] = j->name;
			held[nh++] = j->held;
		}
	}
	for (size_t k = 0; k < i; k++)
		if (!fk[k])
			goto out;
	lit[0] = text_pg_array(fj, i);
	lit[1] = text_pg_array((const char **)fk, i);
	lit[2] = ints_literal(age, i);
	lit[3] = text_pg_array(hj, nh);
	lit[4] = ints_literal(held, nh);
	if (!lit[0] || !lit[1] || !lit[2] || !lit[3] || !lit[4])
		goto out;
	const char *p[] = {c->instance, c->boot_id, lit[0], lit[1],
	                   lit[2],      lit[3],     lit[4], l->switch_lost ? "t" : "f"};
	if (cluster_submit(c, sql_switch, 8, p, on_switched, c) == 0)
		lone_to(c, LONE_SWITCHING);
out:
	if (l->state == LONE_LEAVING)
		log_warning("cluster: cannot send the claims of the fires this instance ran alone "
		            "yet (out of memory, or not connected): sent again at the next "
		            "heartbeat");
	free(fj);
	text_free_list(fk, fk ? nf : 0);
	free(hj);
	free(age);
	free(held);
	for (int f = 0; f < 5; f++)
		free(lit[f]);
}

static void leave(struct cluster *c)
{
	struct cluster_lone *l = &c->lone;
	if (l->state == LONE_GOING) {
		l->leave_after = true;
		return;
	}
	if (l->state != LONE_SWITCHING)
		lone_to(c, LONE_LEAVING);
	switch_send(c);
}

/* ---- the heartbeat and the connection ------------------------------------------------ */

void cluster_lone_locked(struct cluster *c)
{
	struct cluster_lone *l = &c->lone;
	l->refusing = false;
	if (l->state == LONE_OFF)
		return;
	/* the row may say lone, and another instance may have found this one dead meanwhile
	 * (its session was gone): claim again first */
	if (l->state != LONE_SWITCHING) {
		lone_to(c, LONE_LEAVING);
		for (struct strmap_node *n = strmap_first(&l->jobs); n;
		     n = strmap_next(&l->jobs, n))
			STRMAP_ENTRY(n, struct lone_job, node)->ended = 0;
	}
	switch_send(c);
}

void cluster_lone_beat(struct cluster *c, bool told_dead, bool unstopped)
{
	struct cluster_lone *l = &c->lone;
	l->beat_ok_us = c->beat_mono_us;
	prune(l, clock_mono_ms(), LONE_RECENT_MAX);
	if (l->state == LONE_ON)
		l->lease_end_us = l->beat_ok_us + lease_us(c);
	cluster_lone_tell(c); /* the lease, and the clock's step (beat_done) */
	l->unstopped = unstopped;
	switch (l->state) {
	case LONE_OFF:
		if (c->st.peers_live == 0 && !told_dead && !c->stopping && !c->closing &&
		    !c->skewed && c->state != CS_RECOVERY && c->state != CS_REFUSED)
			go_lone(c);
		break;
	case LONE_GOING:
	case LONE_ON:
		if (c->st.peers_live > 0 || told_dead)
			leave(c);
		break;
	case LONE_LEAVING:
		switch_send(c);
		break;
	case LONE_SWITCHING:
		break;
	}
	l->known = l->known || l->state != LONE_GOING; /* (going: once it is answered) */
}

void cluster_lone_free(struct cluster *c)
{
	forget(c, false);
}

void cluster_set_again_fn(struct cluster *c, void (*fn)(void *arg), void *arg)
{
	c->again_fn = fn;
	c->again_arg = arg;
}
