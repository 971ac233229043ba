#ifndef PGCROND_ADMIT_H
#define PGCROND_ADMIT_H

/* Admission: whether this instance may run a fire, the one question the scheduler asks about
 * other instances (docs/layout.md, "Admission"). The scheduler describes the fire (struct
 * admit_fire) and calls admit(): the answer is given in the call, or once, from the loop,
 * through the callback. Two policies answer it, and which one does is theirs to decide (the
 * cluster's heartbeat and another instance's hello switch between them, both ways:
 * docs/several-instances.md, "An instance alone"):
 *
 * - an instance alone (no history database, or no other instance live): yes, in the call,
 *   without a statement;
 * - several instances: the fire's claim in the history database, with the job's lock
 *   (cluster.h: cluster_claim), asked before a scheduled fire's instant where it can be
 *   (admit_early).
 *
 * What a run holds of its admission (enum admit_hold) is kept in the run, a value that these
 * functions set and read. The rest of what several instances share goes through here too, so
 * that the scheduler includes nothing else of cluster/: pending work (coord.h), the runs'
 * marks (cluster.h), the waiting runs' publishing, and the types of cluster_types.h. */

#include <stdbool.h>
#include <stdint.h>

#include "cluster_types.h"

struct admit;
struct cluster;
struct coord;

/* What a run holds of its admission. */
enum admit_hold {
	ADMIT_NONE,   /* not admitted (yet, or again: its answer said to ask again) */
	ADMIT_FREE,   /* admitted, holding nothing: it needs no claim, runs unclaimed, or was
	               * handed to this instance (a dead instance's work) */
	ADMIT_LONE,   /* admitted by an instance alone: it holds no job lock, unless the
	               * instance claims again while it runs (admit_claim_again) */
	ADMIT_LOCKED, /* claimed with the job's lock, given back as the run ends (admit_end) */
};

/* A fire, as the scheduler sees it (the strings borrowed for the call). */
struct admit_fire {
	const char *job;
	enum run_trigger trigger;
	const char *graph_run; /* NULL if none */
	int64_t scheduled_us;  /* 0 for a manual run */
	int64_t debounce_ms;   /* the job's */
	int attempt;
	/* the answer goes through the callback even where it could be given in the call: the
	 * scheduler decides such a fire on its answer (it is stopping, or a fire waits for it) */
	bool later;
	/* its pending work is written (coord.h, of its trigger's kind): it goes as the fire runs
	 * (admit_ran) or its run ends (admit_end) */
	bool noted;
};

/* The scheduler's side, called from the loop. */
struct admit_hooks {
	/* This instance claims again after it ran alone: hand admit_claim_again() the hold of
	 * each run under way (each job's active run), whose job's lock the switch then takes. */
	void (*claiming_again)(void *arg);
	/* The scheduler's time (Unix microseconds), which fires are scheduled by. */
	int64_t (*now_us)(void *arg);
	/* A fire kept unrecorded (admit_park, admit_skip) is this instance's to record: write
	 * its history row, skipped with MESSAGE. False if job JOB is not configured (any
	 * more). */
	bool (*record)(void *arg, const char *job, enum run_trigger trigger, int64_t scheduled_us,
	               const char *message);
	void *arg;
};

/* A policy for one scheduler, on no cluster yet (alone), its timers on CLOCK: 0 or -ENOMEM.
 * / Freed: the fires it kept unrecorded are only counted in the log. */
struct clock;
int admit_new(struct clock *clock, const struct admit_hooks *hooks, struct admit **out)
    __attribute__((warn_unused_result));
void admit_free(struct admit **a);
/* The cluster whose claims answer (NULL: none, this instance is alone), and its pending work
 * (NULL: none is written). */
void admit_set_cluster(struct admit *a, struct cluster *c);
void admit_set_coord(struct admit *a, struct coord *co);

/* The question: may this instance run fire F, for the run whose hold is *H? False: it may,
 * now (*H says what it holds). True: the answer comes later, FN(ARG, VERDICT, WHY) once from
 * the loop (admit_answered() takes what it holds). A NULL A answers as alone. A scheduled fire
 * claimed before its instant (admit_early) is answered from that claim: granted, now; still
 * asked, when its answer comes (asked again then if it does not grant it). */
bool admit(struct admit *a, const struct admit_fire *f, enum admit_hold *h, cluster_claim_fn fn,
           void *arg);
/* Whether scheduled fires are asked for before their instant (several instances claiming):
 * then admit_early() asks for F, a scheduled fire still to come, and keeps the answer for
 * F's admit() if it grants it (true; false: not asked, F is asked for at its instant). One
 * such fire per job: one asked before it that no run took is dropped. */
bool admit_ahead(const struct admit *a);
bool admit_early(struct admit *a, const struct admit_fire *f);
/* JOB's fire at SCHEDULED_US (0: whichever), asked before its instant, will not be asked by
 * a run (its instant is no longer the job's next, the job is paused or gone): its claim goes
 * back. With WHY, the fire was missed: if its claim was granted, no other instance may serve
 * it, so it is recorded skipped with WHY (admit_skip, or admit_hooks.record). */
void admit_early_drop(struct admit *a, const char *job, int64_t scheduled_us, const char *why);
/* The answer V to a fire's question came: *H as it holds now. */
void admit_answered(enum admit_hold *h, enum cluster_verdict v);
/* The run of fire F whose hold is *H ended (run or not): what it holds goes back, with the
 * fire's claim asked before its instant if the run never took it, and its pending work.
 * WAITING: the run, if it still waited for its answer (FN is not called for it). MARKED: the
 * run, if its start was marked (admit_mark_start: its FN is not called any more). A run that
 * holds none of these (an instance alone's) need not call it. */
void admit_end(struct admit *a, const struct admit_fire *f, enum admit_hold *h, void *waiting,
               void *marked);
/* Called from admit_hooks.claiming_again for a run under way of job JOB. */
void admit_claim_again(struct admit *a, enum admit_hold *h, const char *job);

/* Fires whose history row waits for their claim (several instances). F's claim was REFUSED
 * (WHY): true if F is a scheduled or catch-up fire refused for a cause of this instance's own
 * while other instances were live (cluster_served_elsewhere): they claim, run and record
 * it, so F is recorded nothing now and waits until this instance can check that one of them
 * did (admit_hooks.record if none did). False: it is recorded now (retries and the rest are
 * this instance's own; too many waiting; out of memory). */
bool admit_park(struct admit *a, const struct admit_fire *f, const char *why);
/* F, a fire this instance skips without a claim (WHY: its own run still under way, a missed
 * fire): true if it is recorded only if this instance gets its claim (with several
 * instances another one may have run or skipped it), false if it is recorded now. */
bool admit_skip(struct admit *a, const struct admit_fire *f, const char *why);
/* F, a fire that starts here (or is recorded as skipped, its claim ours), no longer waits to
 * be checked, and its pending work goes. */
void admit_ran(struct admit *a, const struct admit_fire *f);
/* Whether fires go unclaimed here now: alone, or not knowing yet whether it is (a start). */
bool admit_unclaimed(const struct admit *a);

/* Several instances' other business, as coord.h and cluster.h say (no-ops alone). Pending
 * work W is written (DEAD: handed back to that dead instance) / JOB's of KIND
 * is started or dropped. A run of JOB started or succeeded here (coord_graph); JOB's run on
 * another instance is asked to cancel (coord_cancel_other). */
void admit_work_note(struct admit *a, const struct coord_work *w, const char *dead);
void admit_work_done(struct admit *a, const char *job, enum run_trigger kind);
void admit_graph(struct admit *a, const char *job, bool started);
void admit_cancel_other(struct admit *a, const char *job);
/* Whether runs are marked now (cluster_marks_runs). The run whose hold is H begins fire F as
 * RUN_KEY (cluster_note_start), runs in transaction XID (cluster_note_xact), its end is
 * written (cluster_xact_end: true if it was marked). */
bool admit_marks(const struct admit *a);
int admit_mark_start(struct admit *a, const struct admit_fire *f, enum admit_hold h,
                     const char *run_key, const char *fenced, cluster_mark_fn fn, void *arg);
int admit_mark_xact(struct admit *a, const char *run_key, const char *xid, const char *server,
                    cluster_mark_fn fn, void *arg);
bool admit_mark_end(struct admit *a, const char *run_key);
/* The runs that wait, JSON (pgcrond.view_backlog): 0, or -ENOTCONN, -ENOMEM. */
int admit_publish_backlog(struct admit *a, const char *json);

/* This instance is stopping: it takes over nothing more, and keeps no fire unrecorded. */
void admit_stop(struct admit *a);
/* F, a fire waiting here as this instance stops, whose hold is H: true if it was not admitted
 * here (nor claimed before its instant) and other instances are live, which claim, run and
 * record it (a row here would stand beside theirs). */
bool admit_left_to_others(struct admit *a, const struct admit_fire *f, enum admit_hold h);
/* F was granted once the stop began (asked before it, answered late): true if it is left to
 * the other instances (logged), which serve it once this instance's row says stopped
 * (cluster_serve_stopped), as they do a claim the stop did not give back; a job none of them
 * defines is served by this instance's next start (cluster_serve_unserved). */
bool admit_leave(struct admit *a, const struct admit_fire *f);
/* Shutdown: the fires claimed before their instant that no run took are given back (their
 * locks released, their claims deleted in one statement), so another instance may claim them
 * at their instant. */
void admit_give_back(struct admit *a);
/* SQL: that statement, for instance $1 and boot $2: claims of scheduled fires made in the
 * last minute for instants at least ADMIT_GIVE_BACK_MARGIN (an interval) ahead. */
#define ADMIT_GIVE_BACK_MARGIN "50 milliseconds"
#define ADMIT_SQL_GIVE_BACK                                                                        \
	"DELETE FROM pgcrond.fire_claim WHERE instance OPERATOR(pg_catalog.=) $1"                  \
	" AND boot_id OPERATOR(pg_catalog.=) $2 AND claimed_at OPERATOR(pg_catalog.>)"             \
	" (pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 minute')"                           \
	" AND fire_key OPERATOR(pg_catalog.~) '^s:[0-9]+$'"                                        \
	" AND pg_catalog.substr(fire_key, 3)::pg_catalog.int8 OPERATOR(pg_catalog.>)"              \
	" EXTRACT(epoch FROM pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+)"                  \
	" interval '" ADMIT_GIVE_BACK_MARGIN "')"

#endif
