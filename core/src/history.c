/* Run history (history.h, DESIGN.md "Run history").
 *
 * Every record hist_*() accepts (a run's start, its backend pid, its end, a complete row)
 * becomes one line appended to the spill file before anything else, so a crash, a kill -9
 * or a database outage loses nothing. The memory queue caches the file's not yet
 * acknowledged lines, in order and bounded; a line leaves it when the database has
 * acknowledged its statement, and the file is truncated whenever nothing is left. So the
 * spill file and the queue are one FIFO, and replaying what an earlier process left is the
 * same sender working through older lines. Every statement is idempotent on the writer's
 * key (instance, run_key): resending a line whose answer was lost with the connection is
 * harmless.
 *
 * One dedicated connection, fully asynchronous on the daemon's event_base; reconnects with
 * capped exponential backoff and jitter. Records go out in batches: up to BATCH_MAX queued
 * lines, one statement each, sent at once in libpq's pipeline mode and ended by one sync, so
 * they form one transaction and cost one round trip instead of one each (a busy second of
 * 1,000 runs is 3,000 records; sent one by one they kept the server busy against the jobs
 * themselves). A batch's lines are acknowledged together when its sync reports success; a
 * failed batch rolls back as a whole and is sent again (every statement is idempotent). */
#include "history.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hist_batch.h"
#include "hist_part.h"
#include "hist_startup.h"
#include "bgwork.h"
#include "conndrv.h"
#include "log.h"
#include "pgconn.h"

#define DEF_MEMORY_LIMIT 10000
#define DEF_SPILL_MAX_BYTES (256LL << 20)
#define DEF_PURGE_BATCH 1000
#define DEF_PURGE_INTERVAL_MS (10 * 60 * 1000LL)
#define DEF_CLOSE_GRACE_MS 5000
#define DEF_RETRY_MIN_MS 1000
/* At most 4 s between attempts (jittered down to 2 s): the history is back within 5 s of
 * its database, and one attempt every few seconds costs a down server nothing. */
#define DEF_RETRY_MAX_MS 4000
/* The default connection check (hist_set_connection_check): a connect, a batch and an
 * idle connection's SELECT 1 must each be answered within it. */
#define DEF_CHECK_MS 30000
#define QUERY_TIMEOUT_MS 60000
#define FSYNC_DELAY_MS 200
#define APP_NAME "pgcrond history"
#define BATCH_MAX 512
/* A set-based batch (hist_batch.c) is two statements whatever its size: larger batches
 * spread a round trip and a plan over more records (15,000 runs/s are 45,000 records). */
#define SET_BATCH_MAX 4096
/* A record arriving at an idle connection waits this long for company before it is sent:
 * jobs due at the same instant then run first and their records follow in a few large
 * batches, instead of history statements competing with the jobs' own (it is already in
 * the spill file, so the wait risks nothing). */
#define LINGER_MS 100
/* While the executor has runs under way (many jobs due at the same instant), records wait,
 * until hist_wake() or for DEFER_MAX_MS at most: history statements on the jobs' server
 * would make those runs later (hist_set_busy_fn). */
#define DEFER_MAX_MS 1000

/* Record kinds in the spill file; the digit is the layout's version. */
#define K_START                                                                                    \
	"S1"          /* instance run_key boot_id job_name database username command trigger       \
	               * graph_run scheduled_us start_us attempt */
#define K_RECORD "R1" /* K_START's fields, then status message sqlstate end_us */
#define K_PID "P1"    /* instance run_key pid */
#define K_FINISH "F1" /* instance run_key status message sqlstate end_us */
#define N_START 12
#define N_RECORD 16
#define N_PID 3
#define N_FINISH 6
/* The same with the run's start last, so the row's day partition is named (schema 6) */
#define K_PID2 "P2"
#define K_FINISH2 "F2"

/* Both kinds of complete or partial row go through one INSERT; a start passes
 * status 'running' and NULL for what is not known yet. */
static const char sql_insert[] =
    "INSERT INTO pgcrond.job_run_details"
    " (jobid, database, username, command, status, return_message, start_time, end_time,"
    "  job_name, trigger, scheduled_time, attempt, duration_ms, sqlstate, instance, run_key,"
    "  boot_id, graph_run)"
    " VALUES ((SELECT j.jobid FROM pgcrond.job j WHERE j.jobname = $4),"
    "  $5, $6, $7, $13, $14,"
    "  timestamptz 'epoch' + $11::bigint * interval '1 microsecond',"
    "  timestamptz 'epoch' + $16::bigint * interval '1 microsecond',"
    "  $4, $8, timestamptz 'epoch' + $10::bigint * interval '1 microsecond', $12::integer,"
    "  ($16::bigint - $11::bigint) / 1000.0, $15, $1, $2, $3, $9)"
    " ON CONFLICT DO NOTHING"; /* the writer's key: (instance, run_key[, start_time]) */

static const char sql_pid[] = "UPDATE pgcrond.job_run_details SET job_pid = $3::integer"
                              " WHERE instance = $1 AND run_key = $2";

static const char sql_finish[] =
    "UPDATE pgcrond.job_run_details"
    "   SET status = $3, return_message = $4, sqlstate = $5,"
    "       end_time = timestamptz 'epoch' + $6::bigint * interval '1 microsecond',"
    "       duration_ms = extract(epoch FROM (timestamptz 'epoch' + $6::bigint"
    "                     * interval '1 microsecond') - start_time) * 1000"
    " WHERE instance = $1 AND run_key = $2";

/* The orphans and last-fires reads: hist_startup.c. */
/* Partitions for the records about to be written (a daemon back after days away fills the
 * gap); a database still at schema 1-5 has no such function, which is fine. */
static const char sql_ensure[] = "SELECT pgcrond.history_partitions_ensure()";
/* A record of a day without a partition (a clock far off, a record kept for days): make the
 * day's partition and send it again (the retention drops it again if it is past). */
static const char sql_partition[] = "SELECT pgcrond.history_partition_create($1::date)";

struct hist_line {
	struct hist_line *next;
	off_t end_off; /* spill file offset just past this line */
	bool spilled;  /* it is in the spill file (else in memory only: the file could not
	                * take it, and it goes there as soon as the file can) */
	size_t len;    /* without the '\n' */
	char text[];
};

enum hist_op {
	OP_NONE,
	OP_PREPARE,
	OP_BATCH,
	OP_ORPHANS,
	OP_LAST_FIRES,
	OP_ENSURE,
	OP_PARTITION,
	OP_CHECK
};

struct hist {
	struct event_base *base;
	char *conninfo;
	char safe_conninfo[512]; /* redacted, for log lines */
	char *instance;
	char boot_id[64];
	int64_t retain_ms;
	uint64_t next_key;
	struct hist_tuning tun;

	struct conndrv drv; /* the connection (conndrv.h) */
	enum hist_op op;    /* the statement in flight */
	bool op_failed;     /* one of its results was an error */
	long long op_rows;  /* rows it affected */
	char op_err[512];
	char op_sqlstate[6];
	size_t batch_n;      /* OP_BATCH: lines sent, from the head */
	size_t batch_ended;  /* ... statements whose results are complete */
	size_t batch_failed; /* ... index of the statement that failed */
	bool batch_synced;   /* ... its sync point has been reached */
	size_t batch_cap;    /* > 0: the next batch stops before a line known to fail */
	/* The record statements are prepared once per connection, so that a record costs its
	 * execution only, not a parse and plan as well; the names carry an attempt number, so
	 * a failed attempt's leftovers never collide with the next. */
	bool prepared;
	unsigned prepare_seq;
	char stmt_insert[32], stmt_pid[32], stmt_finish[32];
	bool blocked; /* a write error: wait for the driver's retry timer before sending */
	bool closing;
	struct event purge_ev, fsync_ev, linger_ev;
	bool (*busy_fn)(void *arg); /* hist_set_busy_fn() */
	void *busy_arg;
	int64_t defer_since_ms; /* monotonic; 0 = records are not being held back */
	struct log_complaint down_complaint, write_complaint, spill_complaint, purge_complaint;

	struct hist_line *head, *tail;
	size_t q_n;
	uint64_t unloaded_n; /* lines in the spill file not (yet) in memory */

	char *spill_path; /* NULL: no state_dir, memory only */
	int spill_fd;
	off_t spill_size;   /* bytes of whole lines in the file */
	off_t loaded_off;   /* lines before this offset are in memory or acknowledged */
	off_t acked_off;    /* lines before this offset are acknowledged */
	off_t leftover_off; /* lines before this offset came from an earlier process */
	bool dirty;         /* appended since the last fdatasync */
	off_t punched_off;  /* the acknowledged lines before it have given their disk back */
	/* fdatasync runs on a worker thread (bgwork): a slow disk never stalls the loop */
	struct bgwork *bg;
	struct bgwork_job sync_job;
	bool sync_busy;
	int sync_fd, sync_errno;
	bool punch_unsupported;
	/* The lines the spill file could not take (full, or its disk is): the tail of the
	 * memory queue from mem_first on. No later line goes to the file before them, so the
	 * file keeps the order; each enqueue tries to spill them first. */
	struct hist_line *mem_first;
	size_t mem_only_n;
	uint64_t lost_unreported; /* records lost since the last summary line */

	bool orphans_done;
	bool orphans_held;         /* hist_hold_orphans(): not before the instance's name is ours */
	bool ensured;              /* partitions ensured on this connection */
	bool head_part_tried;      /* the head line's day partition was created once */
	struct hist_part *part;    /* partition maintenance and retention (hist_part.c) */
	bool set_ok;               /* schema 6: batches as set-based statements */
	bool set_batch;            /* ... the batch in flight is one */
	bool line_mode;            /* ... the next batch goes line by line */
	struct hist_keymap starts; /* run key -> start, for the runs in progress */
	hist_last_fires_fn last_fires_fn; /* asked for and not yet answered */
	void *last_fires_arg;
	bool purge_pending;
	long long purge_run_rows;
	struct hist_stats st;
};

static void kick(struct hist *h);
static bool send_stmt(struct hist *h, enum hist_op op, const char *sql, int n,
                      const char *const *params);

/* How long statement OP may go unanswered before the connection is given up: the
 * connection check for the record batches and the check itself (a few hundred small
 * statements), longer for the purge and the catch-up reads, which scan the table. */
static int64_t stmt_deadline_ms(const struct hist *h, enum hist_op op)
{
	int64_t check_ms = h->drv.check_ms;

	if (op == OP_BATCH || op == OP_PREPARE)
		return check_ms;
	if (op == OP_CHECK)
		return check_ms / 2;
	return check_ms > QUERY_TIMEOUT_MS ? check_ms : QUERY_TIMEOUT_MS;
}

/* ---- spill line format ---------------------------------------------------------------- */

/* FNV-1a: enough to recognise a torn or damaged line, not a security measure. */
static uint32_t fnv1a(const char *p, size_t n)
{
	uint32_t x = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		x ^= (unsigned char)p[i];
		x *= 16777619u;
	}
	return x;
}

int hist_spool_encode(const char *kind, const char *const *fields, int n, char **line, size_t *len)
{
	size_t cap = strlen(kind) + 16, o = 0;

	for (int i = 0; i < n; i++)
		cap += 1 + (fields[i] ? 2 * strlen(fields[i]) : 2);
	char *b = malloc(cap);
	if (!b)
		return -ENOMEM;
	for (const char *k = kind; *k; k++)
		b[o++] = *k;
	for (int i = 0; i < n; i++) {
		b[o++] = '\t';
		if (!fields[i]) {
			b[o++] = '\\';
			b[o++] = 'N';
			continue;
		}
		for (const char *p = fields[i]; *p; p++) {
			char esc = *p == '\\'   ? '\\'
			           : *p == '\t' ? 't'
			           : *p == '\n' ? 'n'
			           : *p == '\r' ? 'r'
			                        : 0;
			if (esc) {
				b[o++] = '\\';
				b[o++] = esc;
			} else {
				b[o++] = *p;
			}
		}
	}
	int w = snprintf(b + o, cap - o, "\t#%08" PRIx32 "\n", fnv1a(b, o));
	if (w < 0 || (size_t)w >= cap - o) {
		free(b);
		return -EOVERFLOW; /* cannot happen: cap reserves room for the trailer */
	}
	*line = b;
	*len = o + (size_t)w;
	return 0;
}

int hist_spool_decode(char *line, size_t len, const char **kind, const char **fields, int max)
{
	const size_t trailer = 10; /* "\t#" and 8 hex digits */
	uint32_t want = 0;

	if (len < trailer + 1)
		return -EBADMSG;
	char *t = line + len - trailer;
	if (t[0] != '\t' || t[1] != '#')
		return -EBADMSG;
	for (int i = 2; i < 10; i++) {
		char c = t[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return -EBADMSG;
		want = want << 4 | (uint32_t)d;
	}
	if (fnv1a(line, len - trailer) != want)
		return -EBADMSG;

	char *r = line, *end = t;
	*end = '\0';
	*kind = r;
	while (r < end && *r != '\t')
		r++;
	int n = 0;
	while (r < end) {
		*r++ = '\0'; /* the tab ending the previous token */
		if (n == max)
			return -E2BIG;
		if (r[0] == '\\' && r[1] == 'N' && (r + 2 == end || r[2] == '\t')) {
			fields[n++] = NULL;
			r += 2;
			continue;
		}
		char *w = r;
		fields[n++] = w;
		while (r < end && *r != '\t') {
			if (*r != '\\') {
				*w++ = *r++;
				continue;
			}
			switch (r + 1 < end ? r[1] : 0) {
			case '\\':
				*w++ = '\\';
				break;
			case 't':
				*w++ = '\t';
				break;
			case 'n':
				*w++ = '\n';
				break;
			case 'r':
				*w++ = '\r';
				break;
			default:
				return -EBADMSG;
			}
			r += 2;
		}
		if (w < r)
			*w = '\0'; /* else r is at the next tab or the end, both made NUL */
	}
	return n;
}

/* ---- small helpers ------------------------------------------------------------------ */

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void arm(struct event *ev, int64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(ev, &tv);
}

static const char *spill_where(const struct hist *h)
{
	return h->spill_path ? h->spill_path : "memory";
}

uint64_t hist_pending(const struct hist *h)
{
	return h ? (uint64_t)h->q_n + h->unloaded_n : 0;
}

/* ---- the spill file ---------------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void spill_sync(struct hist *h)
{
	if (h->spill_fd < 0 || !h->dirty)
		return;
	if (fdatasync(h->spill_fd) != 0 && log_complain(&h->spill_complaint))
		log_error("history: fdatasync %s: %s", h->spill_path, strerror(errno));
	h->dirty = false;
}

static void sync_work(struct bgwork_job *job)
{
	struct hist *h = (struct hist *)((char *)job - offsetof(struct hist, sync_job));
	h->sync_errno = fdatasync(h->sync_fd) == 0 ? 0 : errno;
}

static void sync_done(struct bgwork_job *job, bool ran)
{
	struct hist *h = (struct hist *)((char *)job - offsetof(struct hist, sync_job));
	h->sync_busy = false;
	if (ran && h->sync_errno && log_complain(&h->spill_complaint))
		log_error("history: fdatasync %s: %s", h->spill_path, strerror(h->sync_errno));
	/* appended while it ran: another round */
	if (h->dirty && !h->closing && !evtimer_pending(&h->fsync_ev, NULL))
		arm(&h->fsync_ev, FSYNC_DELAY_MS);
}

/* spill_sync() on the worker thread; one at a time (what is appended meanwhile is synced
 * by the next). */
static void spill_sync_async(struct hist *h)
{
	if (h->spill_fd < 0 || !h->dirty || h->sync_busy)
		return;
	h->sync_fd = h->spill_fd;
	h->sync_job.work = sync_work;
	h->sync_job.done = sync_done;
	h->dirty = false;
	h->sync_busy = true;
	if (!h->bg || bgwork_submit(h->bg, &h->sync_job) < 0) {
		h->sync_busy = false;
		h->dirty = true;
		spill_sync(h); /* no worker: on the loop rather than not at all */
	}
}

static void on_fsync(evutil_socket_t fd, short what, void *arg)
{
	spill_sync_async(arg);
}

static void on_linger(evutil_socket_t fd, short what, void *arg)
{
	kick(arg);
}

/* While records flow, the acknowledged lines at the start of the spill file give their
 * disk space back (a hole punched up to the last whole block before the first unwritten
 * line), so a small state_dir holds as many unwritten records as it has room for, though
 * the file is emptied only when nothing waits. spill_open skips the hole. */
#define PUNCH_MIN_BYTES (64 * 1024)
static void spill_punch(struct hist *h)
{
	if (h->spill_fd < 0 || h->punch_unsupported ||
	    h->acked_off - h->punched_off < PUNCH_MIN_BYTES)
		return;
	/* strictly before acked_off: what follows the hole always starts with the rest of an
	 * acknowledged line, which spill_open skips */
	off_t end = (h->acked_off - 1) / 4096 * 4096;
	if (end <= h->punched_off)
		return;
	if (fallocate(h->spill_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, end) != 0) {
		if (errno == EOPNOTSUPP || errno == ENOSYS)
			h->punch_unsupported = true;
		else if (log_complain(&h->spill_complaint))
			log_error("history: cannot free the written records' space in %s: %s",
			          h->spill_path, strerror(errno));
		return;
	}
	h->punched_off = end;
}

/* Nothing is waiting any more: start the file afresh. */
static void spill_reset(struct hist *h)
{
	if (h->spill_fd >= 0 && h->spill_size > 0 && ftruncate(h->spill_fd, 0) != 0) {
		if (log_complain(&h->spill_complaint))
			log_error("history: truncate %s: %s", h->spill_path, strerror(errno));
		return; /* keep the offsets: the lines are still there and acknowledged */
	}
	h->spill_size = h->loaded_off = h->acked_off = h->leftover_off = h->punched_off = 0;
	h->dirty = false;
}

static int push(struct hist *h, const char *text, size_t len, off_t end_off)
{
	struct hist_line *l = malloc(sizeof(*l) + len + 1);

	if (!l)
		return -ENOMEM;
	l->next = NULL;
	l->end_off = end_off;
	l->spilled = true;
	l->len = len;
	memcpy(l->text, text, len);
	l->text[len] = '\0';
	if (h->tail)
		h->tail->next = l;
	else
		h->head = l;
	h->tail = l;
	h->q_n++;
	return 0;
}

static void pop(struct hist *h)
{
	struct hist_line *l = h->head;

	if (!l)
		return;
	h->head = l->next;
	if (!h->head)
		h->tail = NULL;
	h->q_n--;
	h->head_part_tried = false;
	if (l == h->mem_first)
		h->mem_first = l->next;
	if (!l->spilled && h->spill_fd >= 0 && h->mem_only_n > 0)
		h->mem_only_n--;
	if (l->end_off > h->acked_off)
		h->acked_off = l->end_off;
	free(l);
	if (!h->head && h->unloaded_n == 0)
		spill_reset(h);
	else
		spill_punch(h);
}

/* Bring the next lines that wait only in the file into memory. */
static void spill_load(struct hist *h)
{
	int fd = open(h->spill_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	off_t off = h->loaded_off;

	if (fd >= 0 && !f)
		close(fd);

	if (!f || fseeko(f, off, SEEK_SET) != 0) {
		log_error("history: cannot read %s: %s; %" PRIu64 " run records in it are lost",
		          h->spill_path, strerror(errno), h->unloaded_n);
		goto lost;
	}
	while (h->unloaded_n > 0 && h->q_n < h->tun.memory_limit &&
	       (n = getline(&buf, &cap, f)) > 0) {
		off += n;
		if (buf[n - 1] != '\n' || push(h, buf, (size_t)n - 1, off) != 0)
			break;
		h->unloaded_n--;
	}
	h->loaded_off = off;
	if (h->unloaded_n > 0 && h->q_n < h->tun.memory_limit) {
		log_error("history: %s ends early; %" PRIu64 " run records in it are lost",
		          h->spill_path, h->unloaded_n);
		goto lost;
	}
	free(buf);
	fclose(f);
	return;
lost:
	h->st.dropped += h->unloaded_n;
	h->unloaded_n = 0;
	h->loaded_off = h->spill_size;
	free(buf);
	if (f)
		fclose(f);
	if (!h->head)
		spill_reset(h);
}

/* Open and lock the spill file, count what an earlier process left, and cut a line torn
 * by a crash in the middle of a write. */
static int spill_open(struct hist *h, const char *state_dir)
{
	char path[4096];
	int w = snprintf(path, sizeof(path), "%s/%s", state_dir, HIST_SPOOL_FILE);

	if (w < 0 || (size_t)w >= sizeof(path))
		return -ENAMETOOLONG;
	h->spill_path = strdup(path);
	if (!h->spill_path)
		return -ENOMEM;
	/* Never through a symbolic link, and only our own plain file: whoever could plant a
	 * link here would have us append to (and truncate) a file of theirs choosing. */
	h->spill_fd =
	    open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (h->spill_fd < 0) {
		int e = errno;
		if (e == ELOOP)
			log_error(
			    "history: refusing spill file %s: it is a symbolic link; remove it "
			    "(pgcrond creates the file itself)",
			    path);
		else
			log_error(
			    "history: cannot open spill file %s: %s (is state_dir writable by "
			    "the daemon's user?)",
			    path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(h->spill_fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    st.st_nlink != 1) {
		log_error("history: refusing spill file %s: not a plain file of the daemon's user "
		          "with a single link; remove it (pgcrond creates the file itself)",
		          path);
		return -EPERM;
	}
	if ((st.st_mode & 0077) && fchmod(h->spill_fd, 0600) != 0) {
		int e = errno;
		log_error("history: chmod 0600 %s: %s", path, strerror(e));
		return -e;
	}
	if (flock(h->spill_fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		log_error("history: spill file %s is locked by another process: two daemons must "
		          "not share a state_dir",
		          path);
		return e == EWOULDBLOCK ? -EBUSY : -e;
	}

	char buf[65536];
	off_t off = 0, whole = 0, first = 0;
	uint64_t lines = 0;
	ssize_t n;
	/* 0: at the start; 1: in a punched hole (NUL bytes, spill_punch) or the acknowledged
	 * line's rest after it; 2: in the records */
	int part = 0;
	while ((n = pread(h->spill_fd, buf, sizeof(buf), off)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			log_error("history: cannot read %s: %s", path, strerror(e));
			return -e;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (part == 0)
				part = buf[i] == '\0' ? 1 : 2;
			if (buf[i] == '\n') {
				if (part == 2)
					lines++;
				else
					first = off + i + 1;
				part = 2;
				whole = off + i + 1;
			}
		}
		off += n;
	}
	if (off > whole) {
		log_warning("history: %s: discarding %lld bytes of a record torn by a crash", path,
		            (long long)(off - whole));
		if (ftruncate(h->spill_fd, whole) != 0) {
			int e = errno;
			log_error("history: truncate %s: %s", path, strerror(e));
			return -e;
		}
	}
	h->spill_size = h->leftover_off = whole;
	h->loaded_off = h->acked_off = h->punched_off = first;
	h->unloaded_n = lines;
	if (lines > 0)
		log_notice("history: %" PRIu64 " run records from an earlier run wait in %s", lines,
		           path);
	return 0;
}

/* Append one line (LEN bytes, with its '\n') to the spill file. The cap counts only the
 * records not yet acknowledged (acknowledged ones give their space back, spill_punch);
 * AT_CLOSE ignores it, so that SIGTERM puts every unwritten record on disk if the disk
 * takes it. 0 or -errno (-EFBIG: over the cap). */
static int spill_write(struct hist *h, const char *text, size_t len, bool at_close)
{
	if (!at_close && h->spill_size - h->acked_off + (off_t)len > h->tun.spill_max_bytes) {
		if (log_complain(&h->spill_complaint))
			log_error(
			    "history: spill file %s holds %lld bytes of unwritten run records, "
			    "its cap: run records wait in memory only until the history "
			    "database is back, and are lost if pgcrond stops first",
			    h->spill_path, (long long)(h->spill_size - h->acked_off));
		return -EFBIG;
	}
	int r = write_all(h->spill_fd, text, len);
	if (r < 0) {
		if (log_complain(&h->spill_complaint))
			log_error(
			    "history: cannot append to %s: %s; run records wait in memory only "
			    "until the history database is back, and are lost if pgcrond stops "
			    "first",
			    h->spill_path, strerror(-r));
		/* cut a partial line so the next one starts clean */
		if (ftruncate(h->spill_fd, h->spill_size) != 0)
			log_error("history: truncate %s: %s", h->spill_path, strerror(errno));
		return r;
	}
	h->spill_size += (off_t)len;
	h->dirty = true;
	if (!evtimer_pending(&h->fsync_ev, NULL))
		arm(&h->fsync_ev, FSYNC_DELAY_MS);
	return 0;
}

/* Move the lines that wait in memory only into the spill file, oldest first, as far as it
 * takes them. */
static void spill_catch_up(struct hist *h, bool at_close)
{
	while (h->mem_first && h->spill_fd >= 0) {
		struct hist_line *l = h->mem_first;
		l->text[l->len] = '\n';
		int r = spill_write(h, l->text, l->len + 1, at_close);
		l->text[l->len] = '\0';
		if (r < 0)
			return;
		l->spilled = true;
		l->end_off = h->spill_size;
		h->loaded_off = h->spill_size; /* no line waits in the file alone meanwhile */
		h->mem_first = l->next;
		h->mem_only_n--;
	}
}

/* Say exactly how many records were lost since the last time it was said. */
static void report_lost(struct hist *h)
{
	if (h->lost_unreported == 0)
		return;
	log_error("history: %" PRIu64 " run records were lost: neither %s nor memory "
	          "(memory_limit %zu records) could take them",
	          h->lost_unreported, spill_where(h), h->tun.memory_limit);
	h->lost_unreported = 0;
}

/* Accept one record: file first (durable across a crash), then the memory queue when it
 * keeps the order, else the file alone. A record the file cannot take waits in memory
 * only; one that neither can take is lost, counted and logged. Takes LINE (with its
 * '\n'). */
static void enqueue(struct hist *h, char *line, size_t len)
{
	bool in_file = false;

	if (h->spill_fd >= 0) {
		spill_catch_up(h, false);
		in_file = !h->mem_first && spill_write(h, line, len, false) == 0;
	}
	if (h->unloaded_n == 0 && h->q_n < h->tun.memory_limit &&
	    push(h, line, len - 1, h->spill_size) == 0) {
		h->loaded_off = h->spill_size;
		h->tail->spilled = in_file;
		if (!in_file && h->spill_fd >= 0) {
			if (!h->mem_first)
				h->mem_first = h->tail;
			h->mem_only_n++;
		}
		report_lost(h);
	} else if (in_file) {
		h->unloaded_n++;
		report_lost(h);
	} else {
		h->st.dropped++;
		h->lost_unreported++;
		if (log_complain(&h->spill_complaint))
			log_error(
			    "history: %zu run records wait in memory and none can be spilled: "
			    "run records are being lost",
			    h->q_n);
	}
	free(line);
	if (h->op == OP_NONE && !evtimer_pending(&h->linger_ev, NULL))
		arm(&h->linger_ev, LINGER_MS);
}

static void emit(struct hist *h, const char *kind, const char *const *fields, int n)
{
	char *line;
	size_t len;

	if (hist_spool_encode(kind, fields, n, &line, &len) != 0) {
		h->st.dropped++;
		log_error("history: out of memory: a run record is lost");
		return;
	}
	enqueue(h, line, len);
}

/* ---- the connection ---------------------------------------------------------------- */

/* The statement state that dies with a connection. */
static void drop_conn(struct hist *h)
{
	conndrv_close(&h->drv);
	h->op = OP_NONE;
	h->blocked = false;
	h->prepared = false;
}

/* The driver's failed(): the connection is gone. */
static void on_conn_failed(void *arg, const char *why, bool was_ready)
{
	struct hist *h = arg;

	drop_conn(h);
	spill_sync_async(h); /* what waits now may wait long: make it durable */
	if (log_complain(&h->down_complaint))
		log_warning("history database %s %s: %s; %" PRIu64
		            " run records wait in %s and are "
		            "written when it is back",
		            h->safe_conninfo, was_ready ? "connection lost" : "unreachable", why,
		            hist_pending(h), spill_where(h));
	if (!h->closing)
		conndrv_retry(&h->drv, CONNDRV_BACKOFF);
}

static void conn_failed(struct hist *h, const char *why)
{
	conndrv_fail(&h->drv, why);
}

static void conn_failed_libpq(struct hist *h)
{
	conndrv_fail(&h->drv, NULL);
}

static void conn_start(struct hist *h)
{
	(void)conndrv_connect(&h->drv, h->conninfo, APP_NAME);
}

static void on_connected(void *arg)
{
	struct hist *h = arg;

	conndrv_succeeded(&h->drv);
	h->st.connects++;
	if (log_complaint_reset(&h->down_complaint))
		log_notice("history database %s is reachable again; writing %" PRIu64
		           " waiting run records",
		           h->safe_conninfo, hist_pending(h));
	else
		log_debug("history: connected to %s", h->safe_conninfo);
	h->purge_pending = h->retain_ms > 0 && !h->closing;
	h->purge_run_rows = 0;
	h->ensured = false;
	kick(h);
}

/* The driver's retry timer: reconnect, or send again after a write error. */
static void on_retry(void *arg)
{
	struct hist *h = arg;

	if (h->drv.state == CONNDRV_DOWN) {
		conn_start(h);
		return;
	}
	h->blocked = false;
	kick(h);
}

/* The connection check: a connection with nothing to do is asked whether it still answers
 * (one busy with a statement is watched by that statement's deadline). */
static void on_idle_check(void *arg)
{
	struct hist *h = arg;

	if (h->op == OP_NONE)
		send_stmt(h, OP_CHECK, "SELECT 1", 0, NULL);
}

static void on_purge_timer(evutil_socket_t fd, short what, void *arg)
{
	struct hist *h = arg;

	if (h->retain_ms > 0 && !h->purge_pending) {
		h->purge_pending = true;
		h->purge_run_rows = 0;
	}
	kick(h);
}

/* ---- statements -------------------------------------------------------------------- */

/* Returns false if the connection failed (and was dropped). */
static bool send_stmt(struct hist *h, enum hist_op op, const char *sql, int n,
                      const char *const *params)
{
	h->op = op;
	h->op_failed = false;
	h->op_rows = 0;
	h->op_err[0] = h->op_sqlstate[0] = '\0';
	if (!conndrv_send(&h->drv, sql, n, params, stmt_deadline_ms(h, op))) {
		conn_failed_libpq(h);
		return false;
	}
	return true;
}

/* Queue line L's statement on the pipeline. Returns 1 if it went out, 0 if the line is
 * unusable (*WHY says how), -1 if the connection failed. */
static int send_line(struct hist *h, const struct hist_line *l, const char **why)
{
	const char *kind, *f[HIST_SPOOL_MAX_FIELDS], *p[N_RECORD];
	const char *sql = NULL;
	const char *const *params = f;
	char *buf = malloc(l->len + 1);
	int n, np = 0, rc = 0;

	if (!buf)
		return -1;
	memcpy(buf, l->text, l->len + 1);
	n = hist_spool_decode(buf, l->len, &kind, f, HIST_SPOOL_MAX_FIELDS);
	if (n == N_START && strcmp(kind, K_START) == 0) {
		memcpy(p, f, sizeof(*p) * N_START);
		p[12] = "running";
		p[13] = p[14] = p[15] = NULL;
		sql = h->stmt_insert;
		np = N_RECORD;
		params = p;
	} else if (n == N_RECORD && strcmp(kind, K_RECORD) == 0) {
		sql = h->stmt_insert;
		np = N_RECORD;
	} else if ((n == N_PID && strcmp(kind, K_PID) == 0) ||
	           (n == N_PID + 1 && strcmp(kind, K_PID2) == 0)) {
		sql = h->stmt_pid;
		np = N_PID;
	} else if ((n == N_FINISH && strcmp(kind, K_FINISH) == 0) ||
	           (n == N_FINISH + 1 && strcmp(kind, K_FINISH2) == 0)) {
		sql = h->stmt_finish;
		np = N_FINISH;
	}
	if (sql)
		rc = PQsendQueryPrepared(h->drv.conn, sql, np, params, NULL, NULL, 0) ? 1 : -1;
	else
		*why = n < 0 ? "damaged" : "unknown kind";
	free(buf);
	return rc;
}

/* Prepare the record statements on the connection, as one pipeline. */
static void send_prepare(struct hist *h)
{
	unsigned seq = ++h->prepare_seq;

	snprintf(h->stmt_insert, sizeof(h->stmt_insert), "pgcrond_ins_%u", seq);
	snprintf(h->stmt_pid, sizeof(h->stmt_pid), "pgcrond_pid_%u", seq);
	snprintf(h->stmt_finish, sizeof(h->stmt_finish), "pgcrond_fin_%u", seq);
	if (!PQenterPipelineMode(h->drv.conn) ||
	    !PQsendPrepare(h->drv.conn, h->stmt_insert, sql_insert, N_RECORD, NULL) ||
	    !PQsendPrepare(h->drv.conn, h->stmt_pid, sql_pid, N_PID, NULL) ||
	    !PQsendPrepare(h->drv.conn, h->stmt_finish, sql_finish, N_FINISH, NULL) ||
	    !PQpipelineSync(h->drv.conn)) {
		conn_failed_libpq(h);
		return;
	}
	h->op = OP_PREPARE;
	h->op_failed = false;
	h->op_rows = 0;
	h->op_err[0] = h->op_sqlstate[0] = '\0';
	h->batch_n = h->batch_ended = h->batch_failed = 0;
	h->batch_synced = false;
	conndrv_busy(&h->drv, stmt_deadline_ms(h, h->op));
	if (!conndrv_flush(&h->drv))
		conn_failed_libpq(h);
}

/* The batch as set-based statements (hist_batch.c): sets h->set_batch and *N (lines) if it
 * went out; returns -1 if the connection failed. */
static int send_set(struct hist *h, size_t *n)
{
	const char **lines = malloc(SET_BATCH_MAX * sizeof(*lines));
	size_t *lens = malloc(SET_BATCH_MAX * sizeof(*lens)), k = 0;

	if (!lines || !lens) {
		free(lines);
		free(lens);
		return 0; /* line by line, then */
	}
	for (const struct hist_line *l = h->head; l && k < SET_BATCH_MAX; l = l->next, k++) {
		lines[k] = l->text;
		lens[k] = l->len;
	}
	int r = hist_batch_send(h->drv.conn, lines, lens, k);
	free(lines);
	free(lens);
	if (r < 0) {
		conn_failed_libpq(h);
		return -1;
	}
	if (r > 0) {
		h->set_batch = true;
		*n = k;
	}
	return 0;
}

/* Send the next batch of lines from the head. Returns 1 if a batch went out, 0 if the head
 * line was unusable and dropped (try the next), -1 if the connection failed. */
static int send_batch(struct hist *h)
{
	size_t cap = h->batch_cap ? h->batch_cap : BATCH_MAX, n = 0;
	const char *why = "";

	h->batch_cap = 0;
	if (!PQenterPipelineMode(h->drv.conn)) {
		conn_failed_libpq(h);
		return -1;
	}
	h->set_batch = false;
	if (h->set_ok && !h->line_mode && send_set(h, &n) < 0)
		return -1;
	for (const struct hist_line *l = h->head; !h->set_batch && l && n < cap; l = l->next, n++) {
		int r = send_line(h, l, &why);
		if (r < 0) {
			conn_failed_libpq(h);
			return -1;
		}
		if (r == 0)
			break; /* an unusable line ends the batch; at the head it is dropped */
	}
	if (n == 0) {
		PQexitPipelineMode(h->drv.conn);
		log_error("history: discarding an unreadable record in %s (%s)", spill_where(h),
		          why);
		h->st.dropped++;
		pop(h);
		return 0;
	}
	if (!PQpipelineSync(h->drv.conn)) {
		conn_failed_libpq(h);
		return -1;
	}
	h->op = OP_BATCH;
	h->op_failed = false;
	h->op_rows = 0;
	h->op_err[0] = h->op_sqlstate[0] = '\0';
	h->batch_n = n;
	h->batch_ended = h->batch_failed = 0;
	h->batch_synced = false;
	conndrv_busy(&h->drv, stmt_deadline_ms(h, h->op));
	if (!conndrv_flush(&h->drv)) {
		conn_failed_libpq(h);
		return -1;
	}
	return 1;
}

static void send_orphans(struct hist *h)
{
	char msg[512];
	int w = snprintf(msg, sizeof(msg),
	                 "pgcrond process ended while this run was in progress (closed at restart "
	                 "by instance %s)",
	                 h->instance);

	if (w < 0 || (size_t)w >= sizeof(msg))
		snprintf(msg, sizeof(msg),
		         "pgcrond process ended while this run was in progress "
		         "(closed at restart)");
	char floor[40];
	if (hist_startup_floor(now_us(), h->retain_ms, floor, sizeof(floor)) < 0)
		snprintf(floor, sizeof(floor), "-infinity");
	const char *p[] = {h->instance, h->boot_id, msg, floor};
	send_stmt(h, OP_ORPHANS, hist_sql_orphans, 4, p);
}

/* Start the next statement if the connection is idle: the orphans of an earlier process
 * once its leftover records are written, then records in order, then the purge. */
static void kick(struct hist *h)
{
	while (h->drv.state == CONNDRV_READY && h->op == OP_NONE && !h->blocked) {
		if (!h->ensured) {
			send_stmt(h, OP_ENSURE, sql_ensure, 0, NULL);
			return;
		}
		if (!h->orphans_done && !h->orphans_held && h->acked_off >= h->leftover_off) {
			send_orphans(h);
			return;
		}
		if (h->orphans_done && h->last_fires_fn) {
			char floor[40];
			if (hist_startup_floor(now_us(), h->retain_ms, floor, sizeof(floor)) < 0)
				snprintf(floor, sizeof(floor), "-infinity");
			const char *p[] = {floor};
			send_stmt(h, OP_LAST_FIRES, hist_sql_last_fires, 1, p);
			return;
		}
		if (!h->head && h->unloaded_n > 0)
			spill_load(h);
		if (h->head && !h->prepared) {
			send_prepare(h);
			return;
		}
		/* held back while runs are under way; once held DEFER_MAX_MS, records flow until
		 * the executor is idle, so a busy executor never starves the history */
		if (h->head && h->busy_fn && !h->closing && h->busy_fn(h->busy_arg)) {
			int64_t now = mono_ms();
			if (!h->defer_since_ms)
				h->defer_since_ms = now;
			if (now - h->defer_since_ms < DEFER_MAX_MS) {
				evtimer_del(&h->linger_ev);
				arm(&h->linger_ev, DEFER_MAX_MS - (now - h->defer_since_ms));
				return;
			}
		} else {
			h->defer_since_ms = 0;
		}
		if (h->head) {
			if (send_batch(h) != 0)
				return;
			continue;
		}
		if (h->purge_pending && !h->closing) {
			/* retention runs on its own connection: see hist_part.h */
			h->purge_pending = false;
			hist_part_kick(h->part);
		}
		return;
	}
}

/* The UTC day a start or complete record's row goes to (its start_time), as YYYY-MM-DD. */
static bool line_day(const struct hist_line *l, char *day, size_t len)
{
	const char *kind, *f[HIST_SPOOL_MAX_FIELDS];
	char *buf = l ? malloc(l->len + 1) : NULL;
	bool ok = false;

	if (!buf)
		return false;
	memcpy(buf, l->text, l->len + 1);
	int n = hist_spool_decode(buf, l->len, &kind, f, HIST_SPOOL_MAX_FIELDS);
	if (((n == N_START && !strcmp(kind, K_START)) ||
	     (n == N_RECORD && !strcmp(kind, K_RECORD))) &&
	    f[10]) {
		long long us = atoll(f[10]);
		time_t t = (time_t)(us / 1000000 - (us % 1000000 < 0));
		struct tm tm;
		ok = gmtime_r(&t, &tm) && strftime(day, len, "%Y-%m-%d", &tm) > 0;
	}
	free(buf);
	return ok;
}

/* Errors the database may stop making without our help: connection trouble, a missing
 * schema ("pgcrond install"), privileges, a read-only standby. Data errors (22, 23) would
 * repeat forever and are dropped instead. */
static bool worth_retrying(const char *sqlstate)
{
	return !(strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0 ||
	         strcmp(sqlstate, "54000") == 0);
}

static void op_done(struct hist *h)
{
	enum hist_op op = h->op;

	conndrv_idle(&h->drv);
	h->op = OP_NONE;
	if (PQstatus(h->drv.conn) == CONNECTION_BAD) {
		conn_failed_libpq(h);
		return;
	}
	if (op == OP_ENSURE || op == OP_PARTITION) {
		/* a failure (schema older than 6) is the maintenance thread's to report */
		if (op == OP_ENSURE)
			h->set_ok = !h->op_failed;
		h->ensured = true;
		kick(h);
		return;
	}
	char day[16];
	if (op == OP_BATCH && h->set_batch && !worth_retrying(h->op_sqlstate)) {
		/* a line the database refuses: line by line finds it (and a day without a
		 * partition) */
		h->line_mode = true;
		kick(h);
		return;
	}
	if (op == OP_BATCH && strcmp(h->op_sqlstate, "23514") == 0 &&
	    (h->batch_failed == 0 || h->batch_n == 1) && !h->head_part_tried &&
	    line_day(h->head, day, sizeof(day))) {
		/* no partition for the row's day, or a CHECK it violates: in the second case the
		 * partition exists, the line fails again and is dropped below */
		const char *p[] = {day};
		h->head_part_tried = true;
		send_stmt(h, OP_PARTITION, sql_partition, 1, p);
		return;
	}
	if (!h->op_failed) {
		if (log_complaint_reset(&h->write_complaint))
			log_notice("history: run records are written again");
		conndrv_succeeded(&h->drv);
		switch (op) {
		case OP_PREPARE:
			h->prepared = true;
			break;
		case OP_BATCH:
			if (!h->set_batch)
				h->line_mode = false;
			for (size_t i = 0; i < h->batch_n; i++) {
				h->st.written++;
				pop(h);
			}
			break;
		case OP_ORPHANS:
			h->orphans_done = true;
			h->st.orphans_closed += (uint64_t)h->op_rows;
			if (h->op_rows > 0)
				log_notice(
				    "history: closed %lld runs a previous pgcrond process left "
				    "running as failed",
				    h->op_rows);
			break;
		case OP_ENSURE:
		case OP_PARTITION:
			break;
		case OP_LAST_FIRES:
			h->last_fires_fn(h->last_fires_arg, NULL, 0, 0); /* the end of the answer */
			h->last_fires_fn = NULL;
			break;
		case OP_CHECK:
		case OP_NONE:
			break;
		}
		kick(h);
		return;
	}

	if (op == OP_CHECK) {
		conn_failed(h, h->op_err);
		return;
	}

	if (op == OP_PREPARE || worth_retrying(h->op_sqlstate)) {
		bool schema = strcmp(h->op_sqlstate, "42P01") == 0 ||
		              strcmp(h->op_sqlstate, "3F000") == 0 ||
		              strcmp(h->op_sqlstate, "42703") == 0;
		if (log_complain(&h->write_complaint))
			log_warning(
			    "history: cannot write run records: %s (SQLSTATE %s)%s; %" PRIu64
			    " wait in %s, retrying",
			    h->op_err, h->op_sqlstate,
			    schema ? "; run 'pgcrond install' to create or upgrade the schema" : "",
			    hist_pending(h), spill_where(h));
		h->blocked = true;
		conndrv_retry(&h->drv, CONNDRV_BACKOFF);
		return;
	}
	if (op == OP_LAST_FIRES) {
		log_error("history: cannot read the last fires for catch-up: %s", h->op_err);
		h->last_fires_fn(h->last_fires_arg, NULL, 0, 0);
		h->last_fires_fn = NULL;
	} else if (op == OP_ORPHANS) {
		h->orphans_done = true;
		log_error("history: cannot close the runs a previous process left running: %s",
		          h->op_err);
	} else if (h->batch_failed > 0 && h->batch_n > 1) {
		/* The lines before the bad one were rolled back with it: send them alone, then
		 * the bad one is the head and is dropped as below. An error at the commit names
		 * no line: go one by one. */
		h->batch_cap = h->batch_failed < h->batch_n ? h->batch_failed : 1;
	} else {
		h->st.dropped++;
		log_error("history: the database refuses a run record, dropping it: %s "
		          "(SQLSTATE %s)",
		          h->op_err, h->op_sqlstate);
		pop(h);
	}
	kick(h);
}

/* One result (or the NULL that ends a statement's results) of the batch in flight. */
static void batch_result(struct hist *h, PGresult *r)
{
	if (!r) {
		if (!h->batch_synced) {
			h->batch_ended++;
			return;
		}
		/* the NULL after the sync: the connection is idle */
		if (!PQexitPipelineMode(h->drv.conn)) {
			conn_failed(h, "cannot leave pipeline mode");
			return;
		}
		op_done(h);
		return;
	}
	switch (PQresultStatus(r)) {
	case PGRES_PIPELINE_SYNC:
		h->batch_synced = true;
		if (PQexitPipelineMode(h->drv.conn))
			op_done(h);
		return;
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
	case PGRES_PIPELINE_ABORTED: /* skipped after the error: sent again */
		return;
	default:
		if (!h->op_failed) {
			const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			h->op_failed = true;
			h->batch_failed = h->batch_ended;
			pgconn_result_error(r, h->op_err, sizeof(h->op_err));
			snprintf(h->op_sqlstate, sizeof(h->op_sqlstate), "%s", state ? state : "");
		}
		return;
	}
}

/* The driver's readable(): the answers to the statement in flight. */
static void read_results(void *arg)
{
	struct hist *h = arg;

	while (h->drv.conn && h->op != OP_NONE && !PQisBusy(h->drv.conn)) {
		PGresult *r = PQgetResult(h->drv.conn);
		if (h->op == OP_BATCH || h->op == OP_PREPARE) {
			batch_result(h, r); /* may end the batch and send the next */
			PQclear(r);
			continue;
		}
		if (!r) {
			op_done(h);
			continue; /* op_done may have sent the next statement */
		}
		ExecStatusType s = PQresultStatus(r);
		if (s == PGRES_TUPLES_OK && h->op == OP_LAST_FIRES && !h->op_failed) {
			for (int i = 0; i < PQntuples(r); i++)
				h->last_fires_fn(
				    h->last_fires_arg, PQgetvalue(r, i, 0),
				    PQgetisnull(r, i, 1) ? 0 : atoll(PQgetvalue(r, i, 1)),
				    PQgetisnull(r, i, 2) ? 0 : atoll(PQgetvalue(r, i, 2)));
		} else if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
			h->op_rows += atoll(PQcmdTuples(r));
		} else if (!h->op_failed) {
			const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			h->op_failed = true;
			pgconn_result_error(r, h->op_err, sizeof(h->op_err));
			snprintf(h->op_sqlstate, sizeof(h->op_sqlstate), "%s", state ? state : "");
		}
		PQclear(r);
	}
	if (h->drv.conn && PQstatus(h->drv.conn) == CONNECTION_BAD)
		conn_failed_libpq(h);
}

static const struct conndrv_ops conn_ops = {
    .connected = on_connected,
    .readable = read_results,
    .failed = on_conn_failed,
    .check = on_idle_check,
    .retry = on_retry,
};

/* ---- public API -------------------------------------------------------------------- */

int hist_open(struct event_base *base, const char *conninfo, const char *state_dir,
              const char *instance, int64_t retain_ms, struct hist **out)
{
	struct hist *h;
	char *perr = NULL;
	int rc;

	*out = NULL;
	if (!base || !conninfo || !instance || !*instance)
		return -EINVAL;
	/* A conninfo libpq cannot parse would only fail again on every retry. */
	PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
	if (!opts) {
		/* libpq's message is not shown: it may quote the password */
		log_error("history: %s",
		          perr ? "the conninfo cannot be parsed by libpq; check its syntax (the "
		                 "parser's message is not shown because it may quote the password)"
		               : "out of memory");
		PQfreemem(perr);
		return -EINVAL;
	}
	PQconninfoFree(opts);

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->base = base;
	h->spill_fd = -1;
	h->retain_ms = retain_ms;
	h->tun = (struct hist_tuning){DEF_MEMORY_LIMIT,      DEF_SPILL_MAX_BYTES, DEF_PURGE_BATCH,
	                              DEF_PURGE_INTERVAL_MS, DEF_CLOSE_GRACE_MS,  DEF_RETRY_MIN_MS,
	                              DEF_RETRY_MAX_MS};
	h->conninfo = strdup(conninfo);
	h->instance = strdup(instance);
	if (!h->conninfo || !h->instance) {
		rc = -ENOMEM;
		goto fail;
	}
	pgconn_redact_conninfo(conninfo, h->safe_conninfo, sizeof(h->safe_conninfo));
	/* Unique per process, so rows of this process are told from a dead one's. */
	snprintf(h->boot_id, sizeof(h->boot_id), "%" PRIx64 "-%ld", (uint64_t)now_us(),
	         (long)getpid());
	conndrv_init(&h->drv, base, &conn_ops, h, "history database", PGCONN_NOTICES_PER_MIN, 60000,
	             DEF_CHECK_MS);
	conndrv_set_backoff(&h->drv, h->tun.retry_min_ms, h->tun.retry_max_ms);
	evtimer_assign(&h->fsync_ev, base, on_fsync, h);
	evtimer_assign(&h->linger_ev, base, on_linger, h);
	event_assign(&h->purge_ev, base, -1, EV_PERSIST, on_purge_timer, h);
	if (state_dir) {
		rc = spill_open(h, state_dir);
		if (rc < 0)
			goto fail;
		rc = bgwork_new(base, 1, &h->bg);
		if (rc < 0)
			goto fail;
	}
	if (retain_ms > 0)
		arm(&h->purge_ev, h->tun.purge_interval_ms);
	rc = hist_part_start(conninfo, retain_ms, h->tun.purge_interval_ms, &h->part);
	if (rc < 0)
		log_error("history: cannot start the partition maintenance: %s; no retention",
		          strerror(-rc));
	conn_start(h);
	*out = h;
	return 0;
fail:
	if (h->spill_fd >= 0)
		close(h->spill_fd);
	free(h->spill_path);
	free(h->conninfo);
	free(h->instance);
	free(h);
	return rc;
}

void hist_hold_orphans(struct hist *h, bool hold)
{
	if (!h)
		return;
	h->orphans_held = hold;
	if (!hold)
		kick(h);
}

const char *hist_boot_id(const struct hist *h)
{
	return h->boot_id;
}

void hist_set_busy_fn(struct hist *h, bool (*fn)(void *arg), void *arg)
{
	h->busy_fn = fn;
	h->busy_arg = arg;
}

void hist_wake(struct hist *h)
{
	if (h && h->defer_since_ms) {
		evtimer_del(&h->linger_ev);
		kick(h);
	}
}

void hist_set_connection_check(struct hist *h, int64_t ms)
{
	conndrv_set_check(&h->drv, ms > 0 ? ms : DEF_CHECK_MS);
}

void hist_tune(struct hist *h, const struct hist_tuning *t)
{
	if (t->memory_limit)
		h->tun.memory_limit = t->memory_limit;
	if (t->spill_max_bytes)
		h->tun.spill_max_bytes = t->spill_max_bytes;
	if (t->purge_batch > 0)
		h->tun.purge_batch = t->purge_batch;
	if (t->close_grace_ms)
		h->tun.close_grace_ms = t->close_grace_ms;
	if (t->retry_min_ms)
		h->tun.retry_min_ms = t->retry_min_ms;
	if (t->retry_max_ms)
		h->tun.retry_max_ms = t->retry_max_ms;
	conndrv_set_backoff(&h->drv, h->tun.retry_min_ms, h->tun.retry_max_ms);
	if (t->purge_interval_ms) {
		h->tun.purge_interval_ms = t->purge_interval_ms;
		hist_part_set_interval(h->part, t->purge_interval_ms);
		if (h->retain_ms > 0) {
			evtimer_del(&h->purge_ev);
			arm(&h->purge_ev, t->purge_interval_ms);
		}
	}
}

void hist_get_stats(const struct hist *h, struct hist_stats *out)
{
	struct hist_part_stats ps;

	hist_part_get_stats(h->part, &ps);
	*out = h->st;
	out->purged = ps.dropped_rows;
	out->purge_batches = ps.runs;
	out->partitions_created = ps.created;
	out->partitions_dropped = ps.dropped;
	out->connected = h->drv.state == CONNDRV_READY;
	out->pending = hist_pending(h);
}

void hist_request_last_fires(struct hist *h, hist_last_fires_fn fn, void *arg)
{
	h->last_fires_fn = fn;
	h->last_fires_arg = arg;
	kick(h);
}

void hist_purge_now(struct hist *h)
{
	if (h->retain_ms <= 0)
		return;
	if (!h->purge_pending) {
		h->purge_pending = true;
		h->purge_run_rows = 0;
	}
	kick(h);
}

/* Drive only this connection (not the daemon's loop: other modules are shutting down)
 * until everything is written or the grace period is over. */
static void flush_for_close(struct hist *h)
{
	int64_t deadline = mono_ms() + h->tun.close_grace_ms;

	h->blocked = false;
	kick(h);
	while (h->drv.state == CONNDRV_READY && !h->blocked &&
	       (h->op != OP_NONE || h->head || h->unloaded_n > 0)) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			break;
		struct pollfd p = {
		    PQsocket(h->drv.conn),
		    (short)(POLLIN | ((conndrv_watching(&h->drv) & EV_WRITE) ? POLLOUT : 0)), 0};
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		short what = (short)(((p.revents & (POLLIN | POLLERR | POLLHUP)) ? EV_READ : 0) |
		                     ((p.revents & POLLOUT) ? EV_WRITE : 0));
		conndrv_serve(&h->drv, what);
	}
}

void hist_close(struct hist **hp)
{
	struct hist *h = *hp;

	if (!h)
		return;
	*hp = NULL;
	h->closing = true;
	h->purge_pending = false;
	hist_part_stop(&h->part);
	if (h->drv.state == CONNDRV_READY)
		flush_for_close(h);
	/* the fdatasync under way ends first (the file is synced once more below) */
	bgwork_free(&h->bg);
	/* every record still in memory only goes to the spill file now, if the disk takes it;
	 * the count of those it does not is exact */
	spill_catch_up(h, true);
	spill_sync(h);
	report_lost(h);
	if (h->spill_path) {
		uint64_t in_file = hist_pending(h) - h->mem_only_n;
		if (in_file > 0)
			log_notice("history: %" PRIu64 " run records not yet written wait in %s",
			           in_file, h->spill_path);
		if (h->mem_only_n > 0)
			log_error("history: %zu run records not yet written could not be put in %s "
			          "and are lost",
			          h->mem_only_n, h->spill_path);
		h->st.dropped += h->mem_only_n;
	} else if (hist_pending(h) > 0) {
		log_notice("history: %" PRIu64
		           " run records not yet written wait in memory and are "
		           "lost (no state_dir)",
		           hist_pending(h));
	}
	drop_conn(h);
	evtimer_del(&h->fsync_ev);
	evtimer_del(&h->linger_ev);
	evtimer_del(&h->purge_ev);
	while (h->head) {
		struct hist_line *l = h->head;
		h->head = l->next;
		free(l);
	}
	if (h->spill_fd >= 0)
		close(h->spill_fd);
	hist_keymap_free(&h->starts);
	free(h->spill_path);
	free(h->conninfo);
	free(h->instance);
	free(h);
}

static void run_key(const struct hist *h, uint64_t key, char *buf, size_t len)
{
	snprintf(buf, len, "%s.%" PRIu64, h->boot_id, key); /* fits: boot_id < 64 */
}

static const char *num(char *buf, size_t len, int64_t v)
{
	snprintf(buf, len, "%" PRId64, v);
	return buf;
}

/* The fields a start and a complete row share (N_START of them). */
static void run_fields(const struct hist *h, const struct hist_run *run, const char *key,
                       char *sched, char *start, char *attempt, const char **f)
{
	f[0] = h->instance;
	f[1] = key;
	f[2] = h->boot_id;
	f[3] = run->job_name ? run->job_name : "";
	f[4] = run->database;
	f[5] = run->username;
	f[6] = run->command;
	f[7] = run->trigger;
	f[8] = run->graph_run;
	f[9] = run->scheduled_us ? num(sched, 24, run->scheduled_us) : NULL;
	f[10] = num(start, 24, run->start_us ? run->start_us : now_us());
	f[11] = num(attempt, 24, run->attempt > 0 ? run->attempt : 1);
}

uint64_t hist_start(struct hist *h, const struct hist_run *run)
{
	char key[96], sched[24], start[24], attempt[24];
	const char *f[N_START];

	if (!h || !run)
		return 0;
	uint64_t k = ++h->next_key;
	struct hist_run r = *run;
	if (!r.start_us)
		r.start_us = now_us();
	if (hist_keymap_put(&h->starts, k, r.start_us) != 0)
		log_error("history: out of memory: the end of a run will update without its day");
	run_key(h, k, key, sizeof(key));
	run_fields(h, &r, key, sched, start, attempt, f);
	emit(h, K_START, f, N_START);
	return k;
}

void hist_set_pid(struct hist *h, uint64_t k, int pid)
{
	char key[96], pidbuf[24];

	if (!h || !k)
		return;
	run_key(h, k, key, sizeof(key));
	char startbuf[24];
	int64_t start_us = hist_keymap_get(&h->starts, k);
	const char *f[N_PID + 1] = {h->instance, key, num(pidbuf, sizeof(pidbuf), pid),
	                            num(startbuf, sizeof(startbuf), start_us)};
	emit(h, start_us ? K_PID2 : K_PID, f, start_us ? N_PID + 1 : N_PID);
}

void hist_finish(struct hist *h, uint64_t k, const char *status, const char *message,
                 const char *sqlstate, int64_t end_us)
{
	char key[96], end[24];

	if (!h || !k)
		return;
	run_key(h, k, key, sizeof(key));
	char startbuf[24];
	int64_t start_us = hist_keymap_get(&h->starts, k);
	hist_keymap_del(&h->starts, k);
	const char *f[N_FINISH + 1] = {
	    h->instance, key,      status ? status : HIST_FAILED,
	    message,     sqlstate, num(end, sizeof(end), end_us ? end_us : now_us())};
	f[N_FINISH] = num(startbuf, sizeof(startbuf), start_us);
	emit(h, start_us ? K_FINISH2 : K_FINISH, f, start_us ? N_FINISH + 1 : N_FINISH);
}

void hist_record(struct hist *h, const struct hist_run *run, const char *status,
                 const char *message)
{
	char key[96], sched[24], start[24], attempt[24];
	const char *f[N_RECORD];

	if (!h || !run)
		return;
	run_key(h, ++h->next_key, key, sizeof(key));
	run_fields(h, run, key, sched, start, attempt, f);
	f[12] = status ? status : HIST_FAILED;
	f[13] = message;
	f[14] = NULL;
	f[15] = f[10]; /* it never ran: it ended when it started */
	emit(h, K_RECORD, f, N_RECORD);
}

/* ---- schema install (blocking; "pgcrond install" only) ----------------------------- */

/* 'pgcrond' in ASCII: the advisory lock two installers serialize on. */
#define INSTALL_LOCK_KEY "31638874210922084"

static int exec_ok(PGconn *c, PGresult *r, const char *what, char *err, size_t errlen)
{
	ExecStatusType s = PQresultStatus(r);
	char why[512];

	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return 0;
	if (r)
		pgconn_result_error(r, why, sizeof(why));
	else
		pgconn_error(c, why, sizeof(why));
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	snprintf(err, errlen, "%s: %s%s%s%s", what, why, state ? " (SQLSTATE " : "",
	         state ? state : "", state ? ")" : "");
	return -EIO;
}

static int run_sql(PGconn *c, const char *sql, int n, const char *const *params, char **value,
                   const char *what, char *err, size_t errlen)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	int rc = exec_ok(c, r, what, err, errlen);

	if (rc == 0 && value) {
		*value = NULL;
		if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
			*value = strdup(PQgetvalue(r, 0, 0));
			if (!*value)
				rc = -ENOMEM;
		}
	}
	PQclear(r);
	return rc;
}

static char *read_text_file(const char *path, int *err)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (!f) {
		*err = -errno;
		return NULL;
	}
	do {
		if (cap - n < 4096) {
			char *nb = realloc(buf, cap ? cap * 2 : 16384);
			if (!nb) {
				free(buf);
				fclose(f);
				*err = -ENOMEM;
				return NULL;
			}
			buf = nb;
			cap = cap ? cap * 2 : 16384;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
	} while (got > 0);
	if (ferror(f)) {
		*err = -EIO;
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*err = 0;
	return buf;
}

/* Apply one SQL file as a whole (a simple-query string may hold many statements). A
 * missing file is -ENOENT without a message. */
static int apply_file(PGconn *c, const char *dir, const char *name, char *err, size_t errlen)
{
	char path[4096];
	int rc, w = snprintf(path, sizeof(path), "%s/%s", dir, name);

	if (w < 0 || (size_t)w >= sizeof(path)) {
		snprintf(err, errlen, "%s/%s: path too long", dir, name);
		return -ENAMETOOLONG;
	}
	char *sql = read_text_file(path, &rc);
	if (!sql) {
		if (rc != -ENOENT)
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	PGresult *r = PQexec(c, sql);
	rc = exec_ok(c, r, path, err, errlen);
	PQclear(r);
	free(sql);
	return rc;
}

const char *hist_sql_dir(void)
{
	const char *env = getenv("PGCROND_SQL_DIR");
	struct stat st;

	if (env && *env)
		return env;
	if (stat(PGCROND_SOURCE_SQL_DIR, &st) == 0 && S_ISDIR(st.st_mode))
		return PGCROND_SOURCE_SQL_DIR;
	return PGCROND_DEFAULT_SQL_DIR;
}

/* The highest N of the pgcrond--N.sql files in DIR (0 if none). */
static int newest_step(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int newest = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		int n, end = 0;
		if (sscanf(e->d_name, "pgcrond--%d.sql%n", &n, &end) == 1 && end > 0 &&
		    e->d_name[end] == '\0' && n > newest && n < 100000)
			newest = n;
	}
	closedir(d);
	return newest;
}

static bool step_applied(PGconn *c, const char *step)
{
	const char *p[] = {step};
	/* (in two statements: naming a missing table would abort the transaction) */
	PGresult *r = PQexec(c, "SELECT to_regclass('pgcrond.schema_version') IS NOT NULL");
	bool yes = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	           PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!yes)
		return false;
	r = PQexecParams(
	    c, "SELECT EXISTS (SELECT FROM pgcrond.schema_version WHERE version = $1::integer)", 1,
	    NULL, p, NULL, NULL, 0);
	yes = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	      PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return yes;
}

int hist_install_begin(struct pg_conn *c, const char *sql_dir, int *from, int *to, char *err,
                       size_t errlen)
{
	const char *lock[] = {INSTALL_LOCK_KEY};
	char *v = NULL;
	int rc, current = 0, version;

	*from = *to = 0;
	rc = run_sql(c, "BEGIN", 0, NULL, NULL, "BEGIN", err, errlen);
	if (rc < 0)
		return rc;
	/* Wait for a concurrent installer rather than race it: once it commits, this one
	 * finds the schema current and changes nothing. */
	rc = run_sql(c, "SELECT pg_advisory_xact_lock($1::bigint)", 1, lock, NULL, "advisory lock",
	             err, errlen);
	if (rc < 0)
		goto fail;
	rc = run_sql(c, "SELECT to_regclass('pgcrond.schema_version') IS NOT NULL", 0, NULL, &v,
	             "reading the schema version", err, errlen);
	if (rc < 0)
		goto fail;
	if (v && v[0] == 't') {
		free(v);
		v = NULL;
		rc = run_sql(c, "SELECT coalesce(max(version), 0) FROM pgcrond.schema_version", 0,
		             NULL, &v, "reading the schema version", err, errlen);
		if (rc < 0)
			goto fail;
		current = v ? atoi(v) : 0;
	}
	free(v);
	v = NULL;

	/* Every step up to the newest file, skipping a number with no file and a step already
	 * recorded: step numbers are handed out to branches that merge in any order, so a
	 * database may hold a later step before an earlier one arrives. */
	version = current;
	int newest = newest_step(sql_dir);
	for (int step = 1; step <= newest; step++) {
		char name[64], vbuf[16];
		snprintf(vbuf, sizeof(vbuf), "%d", step);
		if (step_applied(c, vbuf))
			continue;
		snprintf(name, sizeof(name), "pgcrond--%d.sql", step);
		rc = apply_file(c, sql_dir, name, err, errlen);
		if (rc == -ENOENT)
			continue;
		if (rc < 0)
			goto fail;
		if (step > version)
			version = step;
		const char *p[] = {PGCROND_VERSION, vbuf};
		rc = run_sql(c,
		             "UPDATE pgcrond.schema_version SET pgcrond_version = $1"
		             " WHERE version = $2::integer",
		             2, p, NULL, "recording the version", err, errlen);
		if (rc < 0)
			goto fail;
	}
	if (version == 0) {
		snprintf(err, errlen,
		         "no schema files (pgcrond--1.sql) in %s; set PGCROND_SQL_DIR "
		         "to the directory holding them",
		         sql_dir);
		rc = -ENOENT;
		goto fail;
	}
	rc = apply_file(c, sql_dir, "pg_cron_compat.sql", err, errlen);
	if (rc < 0 && rc != -ENOENT)
		goto fail;
	*from = current;
	*to = version;
	return 0;
fail:
	free(v);
	PQclear(PQexec(c, "ROLLBACK"));
	return rc;
}
