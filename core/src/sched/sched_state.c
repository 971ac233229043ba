/* A run's states and the moves between them (sched_priv.h, enum run_state; the table is
 * drawn in docs/layout.md, "A run's states"). Every change of a run's state goes through
 * sched_run_to(), which refuses a move the table does not hold and keeps the counts that
 * follow from the states: the runs waiting for a claim (a stop waits for their answers) and
 * the runs running (max_running). */
#include <stdio.h>
#include <time.h>

#include "log.h"
#include "sched_priv.h"

static const char *const names[RUN_STATES] = {
    [RUN_DUE] = "due",
    [RUN_CLAIMING] = "claiming",
    [RUN_CLUSTER_WAIT] = "waiting for another instance's run",
    [RUN_QUEUED] = "waiting for a run slot",
    [RUN_RETRY_WAIT] = "waiting to retry",
    [RUN_RUNNING] = "running",
    [RUN_ENDED] = "ended",
};

#define TO(st) (1u << (st))
/* From each state, the states a run may go to. */
static const unsigned moves[RUN_STATES] = {
    /* a fire is claimed, queued, started or ended (skipped, dropped); a retry waits for its
     * delay; a claim granted on a job that runs on another instance waits for that run */
    [RUN_DUE] = TO(RUN_CLAIMING) | TO(RUN_CLUSTER_WAIT) | TO(RUN_QUEUED) | TO(RUN_RETRY_WAIT) |
                TO(RUN_RUNNING) | TO(RUN_ENDED),
    /* the answer came (the run is due again: admitted, or waits for the other instance's
     * run), or the run was dropped */
    [RUN_CLAIMING] = TO(RUN_DUE) | TO(RUN_ENDED),
    [RUN_CLUSTER_WAIT] = TO(RUN_DUE) | TO(RUN_ENDED),
    /* a slot came: it starts, or (queued unclaimed) asks for its claim first */
    [RUN_QUEUED] = TO(RUN_RUNNING) | TO(RUN_CLAIMING) | TO(RUN_ENDED),
    [RUN_RETRY_WAIT] = TO(RUN_DUE) | TO(RUN_ENDED),
    [RUN_RUNNING] = TO(RUN_ENDED),
    [RUN_ENDED] = 0,
};

const char *sched_run_state_name(enum run_state st)
{
	return (unsigned)st < RUN_STATES ? names[st] : "?";
}

bool sched_run_may(enum run_state from, enum run_state to)
{
	return (unsigned)from < RUN_STATES && (unsigned)to < RUN_STATES && (moves[from] & TO(to));
}

bool sched_run_to(struct run *r, enum run_state to)
{
	struct sched *s = r->job->s;
	if (!sched_run_may(r->state, to)) {
		log_error("job %s: internal error: a run %s cannot become %s; please report it",
		          r->job->name, sched_run_state_name(r->state), sched_run_state_name(to));
		return false;
	}
	if (r->state == RUN_CLAIMING)
		s->n_claiming--;
	else if (r->state == RUN_RUNNING)
		s->n_running--;
	if (to == RUN_CLAIMING)
		s->n_claiming++;
	else if (to == RUN_RUNNING)
		s->n_running++;
	r->state = to;
	return true;
}

void sched_fmt_hms(int64_t us, char *out, size_t outlen)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	if (strftime(out, outlen, "%H:%M:%SZ", &tm) == 0 && outlen)
		out[0] = '\0';
}

void sched_run_describe(const struct run *a, char *out, size_t outlen)
{
	char when[16];
	switch (a->state) {
	case RUN_CLAIMING:
		snprintf(out, outlen, "previous fire still being claimed");
		break;
	case RUN_CLUSTER_WAIT:
		snprintf(out, outlen, "previous fire waiting for a run on another instance");
		break;
	case RUN_RUNNING:
	case RUN_ENDED:
		sched_fmt_hms(a->start_us, when, sizeof(when));
		snprintf(out, outlen, "previous run still running (started %s)", when);
		break;
	case RUN_RETRY_WAIT:
		snprintf(out, outlen, "previous run waiting to retry (attempt %d)", a->attempt);
		break;
	case RUN_DUE:
	case RUN_QUEUED:
		sched_fmt_hms(a->queue_at_us, when, sizeof(when));
		snprintf(out, outlen, "previous run still waiting for a run slot (due %s)", when);
		break;
	}
}
