/* The pool made ready before a known burst (sched_priv.h, exec_warm()).
 *
 * Most jobs fire every minute or every hour, so their runs meet a pool that has been idle:
 * side by side (bench/side), without a warm-up a minute's burst of 100 runs is several times
 * later than the same burst every second, and the first minute after a start, whose runs
 * open the pool's connections at the instant, later again. The instants
 * are known in advance, so the scheduler tells the executor what is coming: WARM_LEAD_US before
 * each instant, for each database, how many jobs fire then; the executor opens connections
 * up to that many (at most the pool's size) and resets the idle ones unused for a while, so
 * the connects and the resets happen before the instant, as the claims asked before it
 * (admit_early) do. Every database with a job at the instant is warmed, however many there are (a
 * database per tenant): the jobs due are sorted by database, so it costs what the jobs do,
 * not jobs times databases. A pool keeps no connection between fires further apart than its
 * idle_timeout (exec_conn_idle_expired): this warm-up opens it again. At start-up the jobs
 * due in the first WARM_STARTUP_S are counted and warmed at once (the first instant again at
 * its lead). One timer for the whole scheduler: it is armed for the earliest instant a job's
 * timer is armed for (sched_job_arm tells it), and when it fires it finds the next one in one
 * pass over the jobs. Here too, at log level debug: where each scheduled run's
 * lateness went, stage by stage (sched_log_stages; bench/side reads it). */
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "exec.h"
#include "log.h"
#include "sched_priv.h"

/* As much as a connect and a reset take on a loaded machine, and little enough that the
 * backends the resets woke are still warm at the instant. */
#define WARM_LEAD_US 500000
/* The start-up's warm-up counts the jobs due in this many seconds: the first minute's runs
 * find their connections open, whichever second of it they fire in. */
#define WARM_STARTUP_S 90

/* The timer is armed for INSTANT (Unix seconds), at its lead, or at once for the first (an
 * armed one moves: clock_arm), unless it is armed for an earlier one, or INSTANT was warmed. */
void sched_warm_note(struct sched *s, int64_t instant, int64_t now_us)
{
	if (!s->ex.warm || s->draining || instant == CRON_NEVER || instant <= s->warm_done ||
	    (s->warm_for && s->warm_for <= instant))
		return;
	int64_t delay = instant * 1000000 - WARM_LEAD_US - now_us;
	if (!s->warm_started) {
		s->warm_started = s->warm_startup = true;
		delay = 0; /* the start-up's connects, not the instant's */
	}
	s->warm_for = instant;
	if (clock_arm(s->clock, &s->warm_ev, delay > 0 ? delay : 0) < 0)
		s->warm_for = 0; /* the runs connect at their instant, as without this */
}

void sched_warm_stop(struct sched *s)
{
	clock_disarm(s->clock, &s->warm_ev);
	s->warm_for = 0;
}

static int by_database(const void *a, const void *b)
{
	return strcmp((*(const struct job *const *)a)->conf->database,
	              (*(const struct job *const *)b)->conf->database);
}

/* Warm each database of the N jobs DUE (sorted here) for as many runs as it has jobs there. */
static void warm_dbs(struct sched *s, const struct job **due, size_t n)
{
	if (n == 0)
		return;
	qsort(due, n, sizeof(*due), by_database);
	for (size_t i = 0, k; i < n; i = k) {
		for (k = i + 1;
		     k < n && strcmp(due[k]->conf->database, due[i]->conf->database) == 0; k++)
			;
		s->ex.warm(s->ex.ctx, due[i]->conf->database, k - i);
	}
}

void sched_warm_cb(void *arg)
{
	struct sched *s = arg;
	int64_t instant = s->warm_for, next = CRON_NEVER, now = sched_now_us(s);
	const struct job **due = NULL;
	size_t n_due = 0, cap = 0;

	s->warm_for = 0;
	if (s->draining || !instant)
		return;
	bool startup = s->warm_startup;
	s->warm_startup = false;
	int64_t until = startup ? now / 1000000 + WARM_STARTUP_S : instant;
	for (struct job *j = s->jobs; j; j = j->next) {
		if (!j->conf->database || !clock_armed(&j->timer) || j->next_fire == CRON_NEVER)
			continue;
		if (j->next_fire > instant && (next == CRON_NEVER || j->next_fire < next))
			next = j->next_fire;
		if (j->next_fire < instant || j->next_fire > until)
			continue;
		if (array_grow(&due, n_due, &cap, sizeof(*due), 64) < 0)
			continue; /* no memory: the rest connect at their instant */
		due[n_due++] = j;
	}
	warm_dbs(s, due, n_due);
	free(due);
	if (startup && instant * 1000000 - WARM_LEAD_US > now) {
		sched_warm_note(s, instant, now); /* the first instant's own, at its lead */
		return;
	}
	s->warm_done = instant;
	sched_warm_note(s, next, now); /* (warm_for is 0: this one is over) */
}

/* Where a scheduled run's lateness went, at log level debug (bench/side reads these
 * lines): in ms after its instant, when its fire was taken (the
 * timer), when it was handed to the executor (after its claim, with several instances, and a run
 * slot), when it had a connection and when it ended; of the wait for the connection, the connect of
 * one opened for it; carried: it waited for another run to end on its connection, and its statement
 * went with that connection's reset. */
void sched_log_stages(const struct run *r, const struct exec_outcome *o)
{
	if (!r->scheduled_us || log_min_level < LOG_LVL_DEBUG)
		return;
	const struct sched *s = r->job->s;
	int64_t at = r->scheduled_us;
	sched_job_log(r->job, LOG_LVL_DEBUG,
	              "stages: fired=%.3f started=%.3f connected=%.3f done=%.3f connect=%.3f "
	              "carried=%d (ms after the instant)",
	              (double)(r->fired_us - at) / 1000.0, (double)(r->start_us - at) / 1000.0,
	              o->wait_us ? (double)(r->start_us + o->wait_us - at) / 1000.0 : -1.0,
	              (double)(sched_now_us(s) - at) / 1000.0, (double)o->connect_us / 1000.0,
	              o->carried);
}
