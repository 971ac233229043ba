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
 * functions set and read. */

#include <stdbool.h>
#include <stdint.h>

#include "cluster.h"

struct admit;

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
	const char *trigger;   /* "schedule", "manual", ... (the run's) */
	const char *graph_run; /* NULL if none */
	int64_t scheduled_us;  /* 0 for a manual run */
	int64_t debounce_ms;   /* the job's */
	int attempt;
	/* the answer goes through the callback even where it could be given in the call: the
	 * scheduler decides such a fire on its answer (it is stopping, or a fire waits for it) */
	bool later;
};

/* The scheduler's side: CLAIMING_AGAIN(ARG) is called from the loop as this instance claims
 * again after it ran alone, and hands admit_claim_again() the hold of each run under way
 * (each job's active run), whose job's lock the switch then takes. */
struct admit_hooks {
	void (*claiming_again)(void *arg);
	void *arg;
};

/* A policy for one scheduler, on no cluster yet (alone): 0 or -ENOMEM. / Freed. */
int admit_new(const struct admit_hooks *hooks, struct admit **out)
    __attribute__((warn_unused_result));
void admit_free(struct admit **a);
/* The cluster whose claims answer (NULL: none, this instance is alone). */
void admit_set_cluster(struct admit *a, struct cluster *c);

/* The question: may this instance run fire F, for the run whose hold is *H? False: it may,
 * now (*H says what it holds). True: the answer comes later, FN(ARG, VERDICT, WHY) once from
 * the loop (admit_answered() takes what it holds). A NULL A answers as alone. */
bool admit(struct admit *a, const struct admit_fire *f, enum admit_hold *h, cluster_claim_fn fn,
           void *arg);
/* Whether scheduled fires are asked for before their instant (several instances claiming):
 * then admit_early() asks for F, a scheduled fire still to come, whose answer goes to
 * FN(ARG, ...) as admit()'s (true; false: not asked, F is asked for at its instant). */
bool admit_ahead(const struct admit *a);
bool admit_early(struct admit *a, const struct admit_fire *f, cluster_claim_fn fn, void *arg);
/* The answer V to a fire's question came (EARLY: asked before its instant, whose answer is
 * kept only when it grants it): *H as it holds now. */
void admit_answered(enum admit_hold *h, enum cluster_verdict v, bool early);
/* The run ARG no longer waits for its answer (dropped, or due at its instant while waiting
 * for something else first): FN is not called for it. */
void admit_forget(struct admit *a, void *arg);
/* The run whose hold is *H ended (run or not): what it holds goes back. */
void admit_end(struct admit *a, enum admit_hold *h, const char *job);
/* Called from admit_hooks.claiming_again for a run under way of job JOB. */
void admit_claim_again(struct admit *a, enum admit_hold *h, const char *job);

#endif
