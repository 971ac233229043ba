#ifndef PGCROND_BENCH_FLOOR_H
#define PGCROND_BENCH_FLOOR_H

/* The floor: what a minimal libpq client gets from the same server in the same run, doing the
 * jobs' own work on as many connections as pgcrond's pool, one run at a time per connection
 * (as the pool does), each run one round trip in pipeline mode. The benches print pgcrond's
 * figures beside it and the ratio: a figure in ms or runs/s means little on a 2-core machine
 * shared with others, its ratio to the floor measured in the same run holds better.
 *
 * Kinds (the names the benches' *_FLOORS variables take):
 *   bare  the job's statement alone;
 *   raw   pgcrond's session reset before it (DISCARD ALL, SHOW statement_timeout), in the same
 *         round trip, as pgcrond's pool sends a run on a used connection;
 *   hist  raw, and one history row per run in the same round trip and transaction, into
 *         floor_history, a table made LIKE pgcrond.job_run_details (its columns and its
 *         indexes; floor_history_create()). */

#include <libpq-fe.h>
#include <stdbool.h>

#define FLOOR_MAX_POOL 128

struct floor {
	PGconn *c[FLOOR_MAX_POOL];
	int pool;
	bool reset, history;
	const char *sql;   /* the job's statement */
	const char *param; /* its $1 (text), or NULL: no parameter */
	long skipped;      /* floor_every_second(): runs not started in their second */
};

/* KIND's flags into F (false: not a kind's name). */
bool floor_kind(struct floor *f, const char *kind);
/* POOL connections to CI in pipeline mode, for F's kind; with PARSE, SQL parsed once on each
 * (never executed: its catalog entries cached). SQL and PARAM must outlive F. */
void floor_open(struct floor *f, const char *ci, int pool, const char *sql, const char *param,
                bool parse);
void floor_close(struct floor *f);
/* floor_history, LIKE pgcrond.job_run_details INCLUDING ALL (dropped first if present). */
void floor_history_create(PGconn *c);
/* JOBS runs over F's connections, as fast as the answers come; no run is sent at or after
 * DEADLINE (wall-clock seconds; 0: none). Returns when every run sent is answered: how many. */
int floor_burst(struct floor *f, int jobs, double deadline);
/* From the next whole second until UNTIL (wall clock), a burst of JOBS at every whole second:
 * runs not sent by the next second are dropped and counted in f->skipped (pgcrond skips a
 * fire whose job's run is still going); a burst that ends past a second starts the next at
 * once (its lateness counts). */
void floor_every_second(struct floor *f, int jobs, double until);

#endif
