/* The history's spool (hist_spool.h): the unacknowledged run records as one FIFO, in
 * memory (bounded) and in the spill file.
 *
 * A record goes to the file first where it can (durable across a crash), and to memory as
 * well while memory keeps the order; records behind a full memory wait in the file alone
 * and are read back when memory has room. The loop never touches the disk: appends, the
 * reads back, fdatasync, the truncation when nothing waits any more and the hole punched
 * under acknowledged records all run on one writer thread (bgwork), in submission order,
 * and at most one append is under way: the lines queued meanwhile go in the next one, so a
 * slow disk means larger appends, not a slower loop. The writer also encodes the records it
 * appends (the loop keeps their fields, which the sender's batches are made of) and decodes
 * the lines it reads back. The loop keeps the bookkeeping: which lines are in the file, their
 * offsets, the cap (which counts only unacknowledged bytes), and the exact count of records
 * lost. */
#include "hist_spool.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bgwork.h"
#include "log.h"

/* An append is made durable this long after it (200 ms), with those that follow meanwhile */
static const struct timeval fsync_delay = {0, 200 * 1000};
/* While records flow, the acknowledged lines at the start of the spill file give their
 * disk space back (a hole punched up to the last whole block before the first unwritten
 * line), so a small state_dir holds as many unwritten records as it has room for, though
 * the file is emptied only when nothing waits. hist_spool_open skips the hole. */
#define PUNCH_MIN_BYTES (64 * 1024)
/* Records for the file alone (memory_limit reached) wait in memory until the writer has
 * appended them: normally for one append's time; this much while the disk does not answer,
 * after which further records are lost (counted and logged). */
#define OV_MAX_BYTES (16 << 20)

struct hist_spool {
	struct event_base *base;
	size_t memory_limit;
	int64_t max_bytes;
	void (*ready)(void *arg);
	void *ready_arg;
	struct log_complaint complaint;

	/* memory: head..tail; from mem_first on, lines not (yet) in the file */
	struct hist_spool_line *head, *tail, *mem_first;
	size_t q_n, mem_only_n;
	/* lines for the file alone, behind the memory ones, on their way to it */
	struct hist_spool_line *ov_head, *ov_tail;
	size_t ov_n, ov_bytes;
	size_t unwritten_bytes; /* of the lines not in the file and not being written */
	uint64_t unloaded_n;    /* lines in the file not (yet) in memory */
	uint64_t dropped, lost_unreported;

	char *path; /* NULL: memory only */
	int fd;
	off_t size;         /* bytes of whole lines in the file */
	off_t loaded_off;   /* lines before this offset are in memory or acknowledged */
	off_t acked_off;    /* lines before this offset are acknowledged */
	off_t leftover_off; /* lines before this offset came from an earlier process */
	off_t punched_off;  /* the acknowledged lines before it have given their disk back */
	bool dirty;         /* appended since the last fdatasync */
	bool punch_unsupported;
	struct event fsync_ev;

	struct bgwork *bg;
	bool stopping;    /* hist_spool_stop_writer() under way: done callbacks start nothing */
	bool inline_mode; /* no writer thread any more: file operations run on the caller */
	bool at_close;    /* hist_spool_close(): the cap no longer applies, one line at a time */

	/* the file operation under way: [truncate to 0 | punch], then append */
	struct bgwork_job op_job;
	bool op_busy, op_reset;
	int op_fd;
	off_t op_punch, op_start;
	off_t op_prev[4]; /* a truncation's offsets before it, for its failure */
	const struct hist_spool_line **op_lines; /* the append's records, encoded by the writer */
	size_t op_n, op_len, op_mem_bytes, op_ov_n;
	/* lines acknowledged while the writer encodes them, freed once it is done */
	struct hist_spool_line *retired;
	int op_reset_rc, op_punch_rc, op_write_rc;

	/* reading lines back from the file */
	struct bgwork_job load_job;
	bool load_busy;
	char *load_path;
	off_t load_off, load_end;
	uint64_t load_want, load_got;
	struct hist_spool_line *load_head, *load_tail;
	int load_rc;

	struct bgwork_job sync_job;
	bool sync_busy;
	int sync_fd, sync_errno;
};

static void pump(struct hist_spool *s);

#define OWNER(job, field) ((struct hist_spool *)((char *)(job)-offsetof(struct hist_spool, field)))

static void free_lines(struct hist_spool_line *l)
{
	while (l) {
		struct hist_spool_line *n = l->next;
		free(l);
		l = n;
	}
}

/* Run JOB on the writer thread, or here once there is none (shutdown, or it could not be
 * started). */
static void run_job(struct hist_spool *s, struct bgwork_job *job)
{
	if (!s->inline_mode && s->bg && bgwork_submit(s->bg, job) == 0)
		return;
	job->work(job);
	job->done(job, true);
}

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

/* Say exactly how many records were lost since the last time it was said (asked only when
 * some were: lost_unreported). */
static void report_lost(struct hist_spool *s)
{
	log_error("history: %" PRIu64 " run records were lost: neither %s nor memory "
	          "(memory_limit %zu records) could take them",
	          s->lost_unreported, hist_spool_where(s), s->memory_limit);
	s->lost_unreported = 0;
}

static void lose(struct hist_spool *s, uint64_t n)
{
	s->dropped += n;
	s->lost_unreported += n;
}

/* ---- fdatasync ------------------------------------------------------------------------ */

static void sync_work(struct bgwork_job *job)
{
	struct hist_spool *s = OWNER(job, sync_job);
	s->sync_errno = fdatasync(s->sync_fd) == 0 ? 0 : errno;
}

static void sync_done(struct bgwork_job *job, bool ran)
{
	struct hist_spool *s = OWNER(job, sync_job);
	s->sync_busy = false;
	if (ran && s->sync_errno && log_complain(&s->complaint, NULL))
		log_error("history: fdatasync %s: %s", s->path, strerror(s->sync_errno));
	/* appended while it ran: another round */
	if (s->dirty && !s->stopping && !evtimer_pending(&s->fsync_ev, NULL))
		evtimer_add(&s->fsync_ev, &fsync_delay);
}

void hist_spool_sync(struct hist_spool *s)
{
	if (s->fd < 0 || !s->dirty || s->sync_busy)
		return;
	s->sync_fd = s->fd;
	s->sync_job.work = sync_work;
	s->sync_job.done = sync_done;
	s->dirty = false;
	s->sync_busy = true;
	run_job(s, &s->sync_job);
}

static void on_fsync(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	hist_spool_sync(arg);
}

/* ---- appends, truncation, hole punching ------------------------------------------------ */

static void op_work(struct bgwork_job *job)
{
	struct hist_spool *s = OWNER(job, op_job);

	s->op_reset_rc = s->op_punch_rc = s->op_write_rc = 0;
	if (s->op_reset && ftruncate(s->op_fd, 0) != 0) {
		s->op_reset_rc = -errno;
		s->op_write_rc = -ECANCELED; /* the offsets the lines were given are wrong */
		goto out;
	}
	if (s->op_punch > 0 &&
	    fallocate(s->op_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, s->op_punch) != 0)
		s->op_punch_rc = -errno;
	if (s->op_len > 0) {
		char *buf = malloc(s->op_len);
		if (!buf) {
			s->op_write_rc = -ENOMEM;
			goto out;
		}
		for (size_t i = 0, o = 0; i < s->op_n; i++)
			o += hist_spool_line_encode(s->op_lines[i], buf + o);
		s->op_write_rc = write_all(s->op_fd, buf, s->op_len);
		free(buf);
		/* cut a partial line so the next one starts clean */
		if (s->op_write_rc < 0 && ftruncate(s->op_fd, s->op_start) != 0)
			s->op_write_rc = -EIO;
	}
out:
}

/* The lines of a failed or abandoned append wait for the next one (the next put or pop
 * starts it: a disk that refuses is not retried in a loop). */
static void op_undo(struct hist_spool *s)
{
	for (struct hist_spool_line *l = s->mem_first; l && l->writing; l = l->next) {
		l->writing = false;
		l->end_off = s->size;
		s->unwritten_bytes += l->len + 1;
	}
	struct hist_spool_line *l = s->ov_head;
	for (size_t i = 0; i < s->op_ov_n && l; i++, l = l->next) {
		l->writing = false;
		s->unwritten_bytes += l->len + 1;
	}
	/* an acknowledged line of the append acknowledged everything in the file */
	if (s->acked_off > s->size)
		s->acked_off = s->size;
}

/* Take the oldest line of the overflow (the lines the writer has not appended yet). */
static struct hist_spool_line *ov_pop(struct hist_spool *s)
{
	struct hist_spool_line *l = s->ov_head;
	s->ov_head = l->next;
	if (!s->ov_head)
		s->ov_tail = NULL;
	s->ov_n--;
	s->ov_bytes -= l->len + 1;
	l->next = NULL;
	return l;
}

static void op_written(struct hist_spool *s)
{
	s->size = s->op_start + (off_t)s->op_len;
	while (s->mem_first && s->mem_first->writing) {
		struct hist_spool_line *l = s->mem_first;
		l->writing = false;
		l->spilled = true;
		s->mem_first = l->next;
		s->mem_only_n--;
	}
	/* no line waits in the file alone before these */
	if (s->unloaded_n == 0)
		s->loaded_off = s->op_start + (off_t)s->op_mem_bytes;
	for (size_t i = 0; i < s->op_ov_n; i++) {
		free(ov_pop(s));
	}
	s->unloaded_n += s->op_ov_n;
	if (s->lost_unreported)
		report_lost(s);
}

static void op_done(struct bgwork_job *job, bool ran)
{
	struct hist_spool *s = OWNER(job, op_job);

	s->op_busy = false;
	free(s->op_lines);
	s->op_lines = NULL;
	free_lines(s->retired);
	s->retired = NULL;
	if (!ran) {
		s->op_reset_rc = -ECANCELED;
		s->op_write_rc = -ECANCELED;
	}
	if (s->op_reset) {
		if (s->op_reset_rc < 0) {
			if (ran && log_complain(&s->complaint, NULL))
				log_error("history: truncate %s: %s", s->path,
				          strerror(-s->op_reset_rc));
			/* the file still holds what it held, all of it acknowledged */
			s->acked_off = s->op_prev[0];
			s->loaded_off = s->op_prev[1];
			s->leftover_off = s->op_prev[2];
			s->punched_off = s->op_prev[3];
		} else {
			s->size = 0;
			s->dirty = s->op_len > 0; /* the append after the truncation */
		}
	}
	if (s->op_punch > 0 && ran) {
		if (s->op_punch_rc == 0)
			s->punched_off = s->op_punch;
		else if (s->op_punch_rc == -EOPNOTSUPP || s->op_punch_rc == -ENOSYS)
			s->punch_unsupported = true;
		else if (log_complain(&s->complaint, NULL))
			log_error("history: cannot free the written records' space in %s: %s",
			          s->path, strerror(-s->op_punch_rc));
	}
	bool failed = s->op_reset_rc < 0 || (s->op_len > 0 && s->op_write_rc < 0);
	if (s->op_len > 0 && !failed) {
		op_written(s);
	} else if (s->op_len > 0) {
		if (s->op_write_rc != -ECANCELED &&
		    log_complain(&s->complaint, strerror(-s->op_write_rc)))
			log_error(
			    "history: cannot append to %s: %s; run records wait in memory only "
			    "until the history database is back, and are lost if pgcrond stops "
			    "first",
			    s->path, strerror(-s->op_write_rc));
		op_undo(s);
	}
	bool wake = s->op_ov_n > 0 && !failed && !s->head;
	s->op_ov_n = 0;
	if (s->inline_mode || s->stopping || failed)
		return;
	if (wake && s->ready)
		s->ready(s->ready_arg); /* lines wait in the file alone: read them back */
	/* the lines accepted meanwhile */
	pump(s);
}

static void complain_full(struct hist_spool *s, off_t unacked)
{
	if (log_complain(&s->complaint, NULL))
		log_error("history: spill file %s holds %lld bytes of unwritten run records, "
		          "its cap: run records wait in memory only until the history "
		          "database is back, and are lost if pgcrond stops first",
		          s->path, (long long)unacked);
}

/* Start the next file operation, if there is one and none is under way: empty the file when
 * all it holds is acknowledged, give the acknowledged lines' space back, and append every
 * line waiting for the file, in order, as far as the cap allows (at close, one line). */
static void pump(struct hist_spool *s)
{
	if (s->fd < 0)
		return;
	/* the end of a quiet append is heard here (op_done, which starts the next operation), or,
	 * while it is under way, it wakes the loop after all: what waits goes as soon as it is
	 * done */
	if (s->op_busy && s->op_job.quiet && s->bg && !s->inline_mode)
		(void)bgwork_collect(s->bg, &s->op_job);
	if (s->op_busy)
		return;
	bool reset = s->size > 0 && s->unloaded_n == 0 && !s->load_busy && s->acked_off >= s->size;
	off_t start = reset ? 0 : s->size, acked = reset ? 0 : s->acked_off, punch = 0;
	if (!reset && !s->punch_unsupported && acked - s->punched_off >= PUNCH_MIN_BYTES) {
		/* strictly before acked_off: what follows the hole always starts with the rest
		 * of an acknowledged line, which hist_spool_open skips */
		off_t end = (acked - 1) / 4096 * 4096;
		if (end > s->punched_off)
			punch = end;
	}
	size_t bytes = 0, mem_bytes = 0, ov_n = 0, max_lines = s->at_close ? 1 : SIZE_MAX, n = 0;
	/* what the cap lets the file take after START (it counts the unacknowledged bytes, from
	 * ACKED on); at close, anything */
	off_t cap = s->at_close ? INT64_MAX : s->max_bytes - (start - acked);
	bool full = false;
	struct hist_spool_line *l;
	for (l = s->mem_first; l && n < max_lines; l = l->next, n++) {
		if ((off_t)(bytes + l->len + 1) > cap) {
			full = true;
			break;
		}
		bytes += l->len + 1;
	}
	mem_bytes = bytes;
	for (l = full ? NULL : s->ov_head; l && n < max_lines; l = l->next, n++, ov_n++) {
		if ((off_t)(bytes + l->len + 1) > cap) {
			full = true;
			break;
		}
		bytes += l->len + 1;
	}
	if (full)
		complain_full(s, start + (off_t)bytes - acked);
	if (!reset && punch == 0 && bytes == 0)
		return;
	const struct hist_spool_line **lines = n ? malloc(n * sizeof(*lines)) : NULL;
	if (n && !lines)
		return; /* the next put or pop tries again */
	size_t o = 0, k = 0;
	for (l = s->mem_first; o < mem_bytes; l = l->next) {
		lines[k++] = l;
		o += l->len + 1;
		l->writing = true;
		l->end_off = start + (off_t)o;
	}
	l = s->ov_head;
	for (size_t i = 0; i < ov_n; i++, l = l->next) {
		lines[k++] = l;
		l->writing = true;
	}
	s->unwritten_bytes -= bytes;
	if (reset) {
		/* the lines appended after the truncation count from 0 at once: a line acknowledged
		 * before the truncation has happened must not count against the old file */
		s->op_prev[0] = s->acked_off;
		s->op_prev[1] = s->loaded_off;
		s->op_prev[2] = s->leftover_off;
		s->op_prev[3] = s->punched_off;
		s->acked_off = s->loaded_off = s->leftover_off = s->punched_off = 0;
	}
	s->op_busy = true;
	s->op_reset = reset;
	s->op_fd = s->fd;
	s->op_punch = punch;
	s->op_start = start;
	s->op_lines = lines;
	s->op_n = k;
	s->op_len = bytes;
	s->op_mem_bytes = mem_bytes;
	s->op_ov_n = ov_n;
	s->op_job.work = op_work;
	s->op_job.done = op_done;
	/* An append of records kept in memory wakes nobody when it ends: the loop hears of it
	 * when it next touches the file (the next record, the batch's acknowledgement: pump),
	 * so a run's records cost it no turn. A truncation, a hole or the overflow's lines
	 * start something when they end (the space counted, the lines read back): those do,
	 * and so does a quiet one that something waits for (pump). */
	s->op_job.quiet = !reset && punch == 0 && ov_n == 0;
	if (bytes > 0) {
		/* durable soon: the fdatasync runs behind the append on the same thread */
		s->dirty = true;
		if (!s->stopping && !evtimer_pending(&s->fsync_ev, NULL))
			evtimer_add(&s->fsync_ev, &fsync_delay);
	}
	run_job(s, &s->op_job);
}

/* ---- reading lines back ---------------------------------------------------------------- */

static void load_work(struct bgwork_job *job)
{
	struct hist_spool *s = OWNER(job, load_job);
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	off_t off = s->load_off;

	s->load_rc = 0;
	s->load_got = 0;
	int fd = open(s->load_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (fd >= 0 && !f)
		close(fd);
	if (!f || fseeko(f, off, SEEK_SET) != 0) {
		s->load_rc = errno ? -errno : -EIO;
		goto out;
	}
	while (s->load_got < s->load_want && (n = getline(&buf, &cap, f)) > 0) {
		if (buf[n - 1] != '\n')
			break;
		buf[n - 1] = '\0';
		struct hist_spool_line *l = hist_spool_line_parse(buf, (size_t)n - 1);
		if (!l)
			break;
		off += n;
		l->spilled = true;
		l->end_off = off;
		if (s->load_tail)
			s->load_tail->next = l;
		else
			s->load_head = l;
		s->load_tail = l;
		s->load_got++;
	}
out:
	s->load_end = off;
	free(buf);
	if (f)
		fclose(f);
}

static void load_done(struct bgwork_job *job, bool ran)
{
	struct hist_spool *s = OWNER(job, load_job);
	struct hist_spool_line *list = s->load_head;

	s->load_busy = false;
	s->load_head = s->load_tail = NULL;
	if (!ran) {
		free_lines(list);
		return;
	}
	if (list) {
		if (s->tail)
			s->tail->next = list;
		else
			s->head = list;
		for (s->tail = list; s->tail->next; s->tail = s->tail->next)
			;
		s->q_n += s->load_got;
		s->unloaded_n -= s->load_got;
		s->loaded_off = s->load_end;
	}
	if (s->load_rc < 0 || s->load_got < s->load_want) {
		if (s->load_rc < 0)
			log_error("history: cannot read %s: %s; %" PRIu64
			          " run records in it are lost",
			          s->path, strerror(-s->load_rc), s->unloaded_n);
		else
			log_error("history: %s ends early; %" PRIu64 " run records in it are lost",
			          s->path, s->unloaded_n);
		s->dropped += s->unloaded_n;
		s->unloaded_n = 0;
		s->loaded_off = s->size;
	}
	if (s->inline_mode || s->stopping)
		return;
	if (s->ready)
		s->ready(s->ready_arg);
	pump(s);
}

static void load(struct hist_spool *s)
{
	if (s->load_busy || s->unloaded_n == 0 || s->q_n >= s->memory_limit)
		return;
	s->load_busy = true;
	s->load_path = s->path;
	s->load_off = s->loaded_off;
	s->load_want = s->memory_limit - s->q_n;
	if (s->load_want > s->unloaded_n)
		s->load_want = s->unloaded_n;
	s->load_job.work = load_work;
	s->load_job.done = load_done;
	run_job(s, &s->load_job);
}

/* ---- the FIFO ------------------------------------------------------------------------- */

static void push_mem(struct hist_spool *s, struct hist_spool_line *l)
{
	l->spilled = false;
	/* acknowledging it acknowledges all the file holds so far (counted from 0 when the
	 * file is being emptied: never more than it holds, or an unacknowledged line written
	 * after the truncation would count as acknowledged) */
	l->end_off = s->op_busy && s->op_reset ? 0 : s->size;
	if (s->tail)
		s->tail->next = l;
	else
		s->head = l;
	s->tail = l;
	s->q_n++;
	if (s->fd >= 0) {
		if (!s->mem_first)
			s->mem_first = l;
		s->mem_only_n++;
	}
}

/* Lines waiting for the file alone move to memory once it has room and nothing waits in
 * the file before them (the database is back and took what memory held): they are sent
 * without waiting for a disk that may be full. Asked only while some wait (ov_head). */
static void promote(struct hist_spool *s)
{
	while (s->ov_head && !s->ov_head->writing && s->unloaded_n == 0 &&
	       s->q_n < s->memory_limit) {
		push_mem(s, ov_pop(s));
	}
}

/* A record is handed to the writer as it is accepted when no append is under way, else with
 * the lines accepted meanwhile as soon as that append is done (op_done): until then a kill -9
 * loses the record, and its run's statement may already be on its way to the server, so it
 * waits for no timer's turn of the loop. */
void hist_spool_put(struct hist_spool *s, const char *kind, const char *const *fields, int n)
{
	struct hist_spool_line *l = hist_spool_line_new(kind, fields, n);
	/* where the file would end once everything on its way is in */
	off_t planned =
	    (s->op_busy ? s->op_start + (off_t)s->op_len : s->size) + (off_t)s->unwritten_bytes;
	off_t acked = s->acked_off < planned ? s->acked_off : planned;

	if (!l) {
		s->dropped++;
		log_error("history: out of memory: a run record is lost");
		return;
	}
	size_t len = l->len + 1; /* with its '\n' */
	l->end_off = s->size;
	if (s->ov_head)
		promote(s);
	if (s->unloaded_n == 0 && s->ov_n == 0 && s->q_n < s->memory_limit) {
		push_mem(s, l);
		if (s->fd >= 0)
			s->unwritten_bytes += len;
		if (s->lost_unreported)
			report_lost(s);
	} else if (s->fd >= 0 && s->ov_bytes + len <= OV_MAX_BYTES &&
	           planned - acked + (off_t)len <= s->max_bytes) {
		/* memory is full: the file alone, once the lines before it are there */
		l->spilled = false;
		if (s->ov_tail)
			s->ov_tail->next = l;
		else
			s->ov_head = l;
		s->ov_tail = l;
		s->ov_n++;
		s->ov_bytes += len;
		s->unwritten_bytes += len;
		if (s->lost_unreported)
			report_lost(s);
	} else {
		free(l);
		lose(s, 1);
		if (log_complain(&s->complaint, NULL))
			log_error(
			    "history: %zu run records wait in memory and none can be spilled: "
			    "run records are being lost",
			    s->q_n + s->ov_n);
	}
	pump(s);
}

struct hist_spool_line *hist_spool_head(struct hist_spool *s)
{
	if (s->ov_head)
		promote(s);
	/* read the file's lines back once memory is half empty, not once it is empty: the
	 * sender then never waits for the writer thread (at 15,000 runs/s it would wait 100 ms
	 * for every memory_limit lines) */
	if (s->unloaded_n > 0 && (!s->head || s->q_n <= s->memory_limit / 2))
		load(s);
	return s->head;
}

void hist_spool_pop(struct hist_spool *s, size_t n)
{
	struct hist_spool_line *l;

	for (; n > 0 && (l = s->head); n--) {
		s->head = l->next;
		if (!s->head)
			s->tail = NULL;
		s->q_n--;
		if (l == s->mem_first)
			s->mem_first = l->next;
		if (!l->spilled && s->fd >= 0) {
			s->mem_only_n--;
			if (!l->writing)
				s->unwritten_bytes -= l->len + 1;
		}
		if (l->end_off > s->acked_off)
			s->acked_off = l->end_off;
		if (l->writing) {
			l->next = s->retired; /* the writer is encoding it */
			s->retired = l;
		} else {
			free(l);
		}
	}
	/* once for the batch: empty the file, or give the acknowledged lines' space back */
	if (!s->stopping || s->inline_mode)
		pump(s);
}

uint64_t hist_spool_pending(const struct hist_spool *s)
{
	return s ? (uint64_t)s->q_n + s->ov_n + s->unloaded_n : 0;
}

uint64_t hist_spool_dropped(const struct hist_spool *s)
{
	return s ? s->dropped : 0;
}

bool hist_spool_leftovers_done(const struct hist_spool *s)
{
	return s->acked_off >= s->leftover_off;
}

const char *hist_spool_where(const struct hist_spool *s)
{
	return s->path ? s->path : "memory";
}

void hist_spool_set_limits(struct hist_spool *s, size_t memory_limit, int64_t max_bytes)
{
	s->memory_limit = memory_limit;
	s->max_bytes = max_bytes;
}

void hist_spool_set_ready_fn(struct hist_spool *s, void (*ready)(void *arg), void *arg)
{
	s->ready = ready;
	s->ready_arg = arg;
}

struct bgwork *hist_spool_worker(const struct hist_spool *s)
{
	return s && !s->inline_mode ? s->bg : NULL;
}

/* ---- open and close ------------------------------------------------------------------- */

/* Open and lock the spill file, count what an earlier process left, and cut a line torn
 * by a crash in the middle of a write. */
static int file_open(struct hist_spool *s, const char *state_dir)
{
	char path[4096];
	int w = snprintf(path, sizeof(path), "%s/%s", state_dir, HIST_SPOOL_FILE);

	if (w < 0 || (size_t)w >= sizeof(path))
		return -ENAMETOOLONG;
	s->path = strdup(path);
	if (!s->path)
		return -ENOMEM;
	/* Never through a symbolic link, and only our own plain file: whoever could plant a
	 * link here would have us append to (and truncate) a file of theirs choosing. */
	s->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (s->fd < 0) {
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
	if (fstat(s->fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    st.st_nlink != 1) {
		log_error("history: refusing spill file %s: not a plain file of the daemon's user "
		          "with a single link; remove it (pgcrond creates the file itself)",
		          path);
		return -EPERM;
	}
	if ((st.st_mode & 0077) && fchmod(s->fd, 0600) != 0) {
		int e = errno;
		log_error("history: chmod 0600 %s: %s", path, strerror(e));
		return -e;
	}
	if (flock(s->fd, LOCK_EX | LOCK_NB) != 0) {
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
	/* 0: at the start; 1: in a punched hole (NUL bytes, pump) or the acknowledged line's
	 * rest after it; 2: in the records */
	int part = 0;
	while ((n = pread(s->fd, buf, sizeof(buf), off)) != 0) {
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
		if (ftruncate(s->fd, whole) != 0) {
			int e = errno;
			log_error("history: truncate %s: %s", path, strerror(e));
			return -e;
		}
	}
	s->size = s->leftover_off = whole;
	s->loaded_off = s->acked_off = s->punched_off = first;
	s->unloaded_n = lines;
	if (lines > 0)
		log_notice("history: %" PRIu64 " run records from an earlier run wait in %s", lines,
		           path);
	return 0;
}

static void spool_free(struct hist_spool *s)
{
	bgwork_free(&s->bg);
	if (s->base) {
		evtimer_del(&s->fsync_ev);
	}
	free_lines(s->head);
	free_lines(s->ov_head);
	free_lines(s->retired);
	free(s->op_lines);
	if (s->fd >= 0)
		close(s->fd);
	free(s->path);
	free(s);
}

int hist_spool_open(struct event_base *base, const char *state_dir, struct hist_spool **out)
{
	struct hist_spool *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->fd = -1;
	s->memory_limit = 10000;
	s->max_bytes = 256LL << 20;
	if (state_dir) {
		rc = file_open(s, state_dir);
		if (rc < 0)
			goto fail;
		rc = bgwork_new(base, 1,
		                &s->bg); /* one thread: the file operations keep their order */
		if (rc < 0)
			goto fail;
		/* now, not at the first record: that is the first burst's first run, and a
		 * thread started then competes with the burst (a failure here is tried again then)
		 */
		(void)bgwork_start(s->bg);
	}
	s->base = base;
	evtimer_assign(&s->fsync_ev, base, on_fsync, s);
	*out = s;
	return 0;
fail:
	spool_free(s);
	return rc;
}

void hist_spool_stop_writer(struct hist_spool *s)
{
	if (!s || s->inline_mode)
		return;
	s->stopping = true;
	bgwork_free(&s->bg); /* the operation under way ends; the ones not started come back */
	s->inline_mode = true;
	s->stopping = false;
}

void hist_spool_close(struct hist_spool **sp)
{
	struct hist_spool *s = *sp;

	if (!s)
		return;
	*sp = NULL;
	hist_spool_stop_writer(s);
	evtimer_del(&s->fsync_ev);
	/* every record still in memory only goes to the spill file now, one by one as long as
	 * the disk takes them, whatever the cap: the count of those it does not is exact */
	s->at_close = true;
	pump(s); /* a truncation or a hole that is due, and the first line */
	while (s->fd >= 0 && (s->mem_first || s->ov_head)) {
		size_t before = s->mem_only_n + s->ov_n;
		pump(s);
		if (s->mem_only_n + s->ov_n >= before)
			break;
	}
	if (s->fd >= 0 && s->dirty && fdatasync(s->fd) != 0)
		log_error("history: fdatasync %s: %s", s->path, strerror(errno));
	if (s->lost_unreported)
		report_lost(s);
	uint64_t left = s->mem_only_n + s->ov_n;
	if (s->path) {
		uint64_t in_file = hist_spool_pending(s) - left;
		if (in_file > 0)
			log_notice("history: %" PRIu64 " run records not yet written wait in %s",
			           in_file, s->path);
		if (left > 0)
			log_error("history: %" PRIu64
			          " run records not yet written could not be put "
			          "in %s and are lost",
			          left, s->path);
	} else if (hist_spool_pending(s) > 0) {
		log_notice(
		    "history: %" PRIu64
		    " run records not yet written wait in memory and are lost (no state_dir)",
		    hist_spool_pending(s));
	}
	spool_free(s);
}
