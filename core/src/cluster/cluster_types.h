#ifndef PGCROND_CLUSTER_TYPES_H
#define PGCROND_CLUSTER_TYPES_H

/* What the scheduler and the cluster's files both name: admission (admit.h), the cluster
 * (cluster.h) and pending work (coord.h) answer and hand over in these, and the scheduler
 * reads them through admit.h alone. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum cluster_verdict {
	CLUSTER_GRANTED,   /* the claim is ours: run it */
	CLUSTER_TAKEN,     /* another instance claimed this fire: do not run it */
	CLUSTER_UNCLAIMED, /* no claim could be made, and no other instance is known live (or
	                    * the schema has no claims yet): run it, as a lone instance does */
	CLUSTER_REFUSED,   /* no claim could be made and running unclaimed could run it twice
	                    * (other instances were live), or the server is in recovery: skip */
	CLUSTER_BUSY,      /* the fire is ours, but a run of the job is still running on another
	                    * instance (it holds the job's lock): the overlap policy skips it */
};

/* A running row of a dead instance, closed by this one. Strings are borrowed for the call. */
struct cluster_orphan {
	const char *job_name;
	const char *graph_run; /* NULL if none */
	const char *dead;      /* the dead instance's name */
	int64_t scheduled_us;  /* 0 if none */
	int attempt;
	/* not a run but a scheduled fire DEAD claimed and never ran (ATTEMPT 0): serve it here
	 * under the job's catch-up policy */
	bool unserved;
	/* set by cluster_serve_stopped: DEAD stopped cleanly, or (DIED) was found dead and its
	 * reaper left the claim to the instances that define the job as DEAD did (or to any
	 * that defines it, when no live one does: cluster_lock.c, SQL_TAKER_DEFINES) */
	bool stopped;
	bool died;
	bool silent; /* DEAD is live but silent past the claim's lease (cluster_serve_leased) */
};

/* A claim's answer (cluster_claim, admit). */
typedef void (*cluster_claim_fn)(void *arg, enum cluster_verdict v, const char *why);
/* A start mark's or a transaction id's answer (cluster_note_start, cluster_note_xact). */
typedef void (*cluster_mark_fn)(void *arg, bool ok, const char *why);
/* WHY of a COMMIT refused because another instance found this process dead meanwhile: that
 * instance closed the run (and retries it), so this one records it skipped, never retried. */
#define CLUSTER_NOT_COMMITTED_DEAD                                                                 \
	"not committed: this instance was found dead by another instance while the run waited "    \
	"for its COMMIT; the run is that instance's to close and retry"

/* One piece of pending work. Strings are borrowed for the call. */
struct coord_work {
	const char *job;
	enum run_trigger kind; /* retry, upstream or notify: the run's trigger */
	const char *graph_run; /* NULL if none */
	int64_t scheduled_us;  /* 0 if none */
	int attempt;
	int64_t due_us; /* wall clock; 0: now */
	char *const *payloads;
	size_t n_payloads;
};

#endif
