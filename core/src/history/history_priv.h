#ifndef PGCROND_HISTORY_PRIV_H
#define PGCROND_HISTORY_PRIV_H

/* The history's inside (history.h), shared by history.c (the connection, the statements,
 * the answers, lifetime) and history_record.c (the records hist_*() turn into spool lines,
 * and what comes back of them), which history.c calls and which calls nothing of it. */

#include <event2/event_struct.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "hist_batch.h"
#include "hist_part.h"
#include "hist_spool.h"
#include "hist_startup.h"
#include "history.h"
#include "log.h"
#include "ownsess.h"
#include "strmap.h"

#define DEF_MEMORY_LIMIT 10000
#define DEF_SPILL_MAX_BYTES (256LL << 20)
#define DEF_PURGE_INTERVAL_MS (10 * 60 * 1000LL)
#define DEF_CLOSE_GRACE_MS 5000
/* A stop writes what is pending within the close grace, however much, until no batch was
 * acknowledged for CLOSE_STALL_MS (a locked history table): the rest waits in the spill file. */
#define CLOSE_STALL_MS 1000
/* Records waiting past which new runs are held back (hist_backlogged): two full batches
 * behind the one being written. */
#define DEF_BACKLOG_MAX (2 * SET_BATCH_MAX)
/* The jobs a batch names without a known id have their ids read from pgcrond.job; after a read
 * that found none of them, not before this long. */
#define JOBIDS_REREAD_MS 10000
/* Runs held back this long without the backlog shrinking are let go (records of the fires
 * skipped behind them, several instances', may alone be more than the history takes). */
#define HOLD_FUTILE_MS 5000
#define HOLD_QUIET_MS 10000
#define QUERY_TIMEOUT_MS 60000
/* A batch (hist_batch.c) is at most four statements whatever its size: larger batches
 * spread a round trip and a plan over more records (15,000 runs/s are 45,000 records). */
#define SET_BATCH_MAX 4096
/* A record arriving at an idle connection waits this long for company before it is sent:
 * jobs due at the same instant then run first and their records follow in a few large
 * batches, instead of history statements competing with the jobs' own (it is already in
 * the spill file, so the wait risks nothing). */
#define LINGER_MS 100
/* While the executor has runs under way (many jobs due at the same instant), records wait,
 * until hist_wake() or for DEFER_MAX_MS at most: history statements on the jobs' server
 * would make those runs later (hist_set_runs). */
#define DEFER_MAX_MS 1000

/* Record kinds in the spill file; the digit is the layout's version. */
#define K_START                                                                                    \
	"S1"             /* instance run_key boot_id job_name database username command trigger    \
	                  * graph_run scheduled_us start_us attempt */
#define K_START_PID "S2" /* K_START's fields, then the backend's pid (known at the start) */
#define K_RECORD "R1"    /* K_START's fields, then status message sqlstate end_us */
#define K_PID "P1"       /* instance run_key pid */
#define K_FINISH "F1"    /* instance run_key status message sqlstate end_us */
#define N_START 12
#define N_START_PID 13
#define N_RECORD 16
#define N_PID 3
#define N_FINISH 6
/* The same with the run's start last, so the row's day partition is named (schema 6) */
#define K_PID2 "P2"
#define K_FINISH2 "F2"
/* A success counted instead of written (hist_count; schema 27): instance run_key end_us
 * start_us job_name trigger scheduled_us seq */
#define K_COUNT "C1"
#define N_COUNT 8

/* The orphans and last-fires reads: hist_startup.c. */

/* The statements, by what their answers mean (struct hist's op). */
enum hist_op {
	OP_NONE,
	OP_BATCH,
	OP_ORPHANS,
	OP_LAST_FIRES,
	OP_LAST_RESULTS,
	OP_PARTITION,
	OP_FRESH,
	OP_JOBIDS
};

/* The statements after a write error: none is sent until the history's item has waited its
 * backoff, then they go again, and the error stays complained of and counted in the backoff
 * until one works. */
enum hist_writes {
	WRITES_OK,    /* the last statement worked, or none failed */
	WRITES_WAIT,  /* one failed: the item waits (ownsess_queue_later) before sending */
	WRITES_RETRY, /* ... its wait is over, or the connection was lost since */
};

/* The runs a previous process of the instance left running (hist_sql_orphans). */
enum hist_orphans {
	ORPHANS_DUE,    /* closed once the records it left are written */
	ORPHANS_HELD,   /* hist_hold_orphans(): not before the instance's name is ours */
	ORPHANS_CLOSED, /* closed, or their closing failed (hist_earlier_done) */
};

struct hist {
	struct event_base *base;
	char *conninfo;
	char safe_conninfo[512]; /* redacted, for log lines */
	char *instance;
	char boot_id[64];
	int64_t retain_ms;
	uint64_t next_key;
	uint64_t count_seq; /* K_COUNT records of this process, in spool order */
	struct hist_tuning tun;

	struct ownsess_client sess; /* the database's own session (ownsess.h) ... */
	struct stmtq *q;            /* ... and its statements (ownsess.h) */
	struct ownsess_item out;    /* the history's statements: one item of that outbox ... */
	enum hist_op op;            /* ... whose statement in flight is this (OP_NONE: none) */
	size_t batch_n;             /* OP_BATCH: lines sent, from the head */
	bool batch_synced;          /* ... its sync point has been reached */
	bool batch_fresh;           /* ... it was sent as lines never sent before (head_fresh) */
	int64_t batch_sent_ms;      /* ... when (monotonic) */
	size_t batch_cap; /* lines a batch may hold: halved if it fails, doubled if quick */
	enum hist_writes writes;
	bool closing;
	int64_t close_deadline_ms; /* the stop's flushes' shared end (monotonic ms), 0 until then */
	int64_t close_progress_ms; /* the stop's last batch acknowledged (or its flush's start) */
	uint64_t close_written;    /* st.written then */
	struct event linger_ev;
	const size_t *runs; /* hist_set_runs() */
	void (*held_fn)(void *arg);
	void *held_arg;
	int64_t defer_since_ms; /* monotonic; 0 = records are not being held back */
	struct log_complaint down_complaint, write_complaint;
	bool schema_old; /* the last failure was the schema's, older than this pgcrond's */

	struct hist_spool *spool; /* the records not yet acknowledged (hist_spool.c) */

	enum hist_orphans orphans;
	void (*earlier_fn)(void *arg); /* hist_set_earlier_fn(), called once ORPHANS_CLOSED */
	void *earlier_arg;
	bool head_part_tried;   /* the head line's day partition was created once */
	struct hist_part *part; /* partition maintenance and retention (hist_part.c) */
	bool head_fresh;        /* no line from the head on was ever sent (its rows are not
	                         * in the table: the insert needs no conflict check) */
	hist_last_fires_fn last_fires_fn; /* asked for and not yet answered */
	void *last_fires_arg;
	hist_last_results_fn last_results_fn; /* asked for and not yet answered */
	void *last_results_arg;
	int last_results_failures, last_results_runs;
	char *results_after;   /* the last job of the page answered (NULL: none yet) */
	int64_t results_at_ms; /* ... its page sent then, or the next not before (monotonic) */
	bool trim; /* the read-back was answered: its pages go back at the next send (send_next) */
	char *fresh_json;    /* hist_publish_freshness: the latest state, not yet sent ... */
	int64_t fresh_at_ms; /* ... since then (monotonic) */
	bool fresh_told;     /* a failure to publish it was logged */
	struct hist_stats st;
	/* backpressure (hist_backlogged: st.backlogged), since HOLD_AT_MS (monotonic) with
	 * HOLD_PENDING records waiting; HOLD_FUTILE: holding did not help, not again before the
	 * backlog is down to half */
	int64_t hold_at_ms;
	uint64_t hold_pending;
	bool hold_futile;
	/* holds that follow one another within HOLD_QUIET_MS are logged as one: its start and
	 * first end (HOLD_TOLD: the start was) */
	int64_t hold_end_ms;
	bool hold_told;
	void (*caught_up_fn)(void *arg);
	void *caught_up_arg;
	struct event caught_up_ev; /* calls it from the loop */
	/* an instance alone (hist_set_lone): the period told, since LONE_TOLD until
	 * LONE_UNTIL (monotonic); and the period noted at the last record, since LONE_SINCE
	 * (hist_lone_now then), from run LONE_FIRST on */
	int64_t lone_told, lone_until;
	int64_t lone_since;
	uint64_t lone_first;
	/* the ids of the jobs that wrote rows, by name (hist_jobid), from pgcrond.job and the
	 * records: not every job's, which 100,000 idle jobs would make megabytes */
	struct strmap jobids;
	char *jobids_ask;       /* the names a batch did not know (text[] literal), to read; NULL */
	int64_t jobids_next_ms; /* monotonic: no read before (one found none of its names); 0 */
	/* the ended runs of this process the batch in flight wrote, told once it committed */
	hist_written_fn written_fn;
	void *written_arg;
	struct written {
		uint64_t key;
		int64_t runid, end_us;
		char status[16];
		char *job;
	} * written;
	size_t n_written, cap_written;
};

/* history_record.c's, for history.c */
/* The rows of this process's runs an answer of a record statement holds (HIST_WRITTEN_CLOSE),
 * kept until the batch ends; then told (COMMITTED) or forgotten (it failed: a line is sent
 * again, and its row gets another runid). */
void hist_written_rows(struct hist *h, const PGresult *r);
void hist_written_done(struct hist *h, bool committed);
/* The backlog's state after records came (ON_ONLY: only whether it begins, from a hist_*()
 * call) or went (pop, a connection lost, a write error): hist_backlogged. */
void hist_backlog_update(struct hist *h, bool on_only);
/* JOB's id as text (hist_batch_ctx.jobid; ARG the struct hist), NULL if not known; the
 * answer of hist_sql_jobids read into the map; the map freed. */
const char *hist_jobid(const void *arg, const char *job);
extern const char hist_sql_jobids[];
void hist_jobids_read(struct hist *h, const PGresult *r);
void hist_jobids_free(struct hist *h);
/* Row I of hist_sql_last_results to the asker. */
void hist_past_row(struct hist *h, PGresult *r, int i);

/* What an earlier process of this instance left is in the table: its records written, its
 * open runs closed (or their closing failed): ORPHANS_CLOSED, and hist_set_earlier_fn's FN. */
void hist_earlier_done(struct hist *h);

#endif
