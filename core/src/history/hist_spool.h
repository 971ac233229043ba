#ifndef PGCROND_HIST_SPOOL_H
#define PGCROND_HIST_SPOOL_H

/* The history's spool (hist_spool.c): the records not yet acknowledged by the history
 * database, as one FIFO kept in memory (bounded) and in the spill file under state_dir
 * (durable across a crash or a kill -9). Every file operation (append, read, fdatasync,
 * truncate, hole punch) runs on one writer thread in submission order, so a slow or full
 * disk never stalls the daemon's loop; the loop learns the outcome afterwards (of an append
 * of records kept in memory, when it next touches the file: no turn of its own). A record in
 * memory keeps its fields as given, and the sender (history.c) builds its batches from them
 * from the head, popping them once acknowledged: a record's spill line is encoded on the
 * writer thread, and decoded there only when it is read back from the file. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct hist_spool;

/* The spill file under state_dir. */
#define HIST_SPOOL_FILE "history.spool"

/* One record in memory. */
struct hist_spool_line {
	struct hist_spool_line *next;
	off_t end_off;    /* spill file offset just past this line (once written; before, the
	                   * file's size when it was queued) */
	bool spilled;     /* it is in the spill file */
	bool writing;     /* ... it is being written there now */
	bool merged;      /* a batch took its fields with its run's start (hist_batch.c) */
	size_t len;       /* its spill line's bytes, without the '\n' (0 when KIND is NULL) */
	const char *kind; /* K_START... (history_priv.h); NULL: read back from the file
	                   * damaged (the sender drops it) */
	int n;            /* fields */
	const char *f[];  /* N fields, NULL-able; they and KIND are the line's own */
};

/* Open BASE's spool: with STATE_DIR, open and lock STATE_DIR/HIST_SPOOL_FILE (refusing a
 * symbolic link or another user's file, with a message saying what to do), cut a line torn
 * by a crash and count what an earlier process left (a blocking read: at startup, before
 * the loop serves anything). STATE_DIR NULL: memory only. 0 or -errno. */
int hist_spool_open(struct event_base *base, const char *state_dir, struct hist_spool **out)
    __attribute__((warn_unused_result));

/* Limits: MEMORY_LIMIT records in memory, MAX_BYTES of unacknowledged records in the
 * spill file (acknowledged ones give their space back). */
void hist_spool_set_limits(struct hist_spool *s, size_t memory_limit, int64_t max_bytes);

/* READY(ARG) runs on the loop when lines the head lacked have come in from the file. */
void hist_spool_set_ready_fn(struct hist_spool *s, void (*ready)(void *arg), void *arg);

/* Accept one record, KIND and its N FIELDS (NULL-able; copied): to the file (handed to the
 * writer thread at once, or as soon as the append under way is done, and encoded there) and
 * to memory while that keeps the order, else to the file alone. One that neither can take is
 * lost, counted in hist_spool_dropped() and logged exactly. */
void hist_spool_put(struct hist_spool *s, const char *kind, const char *const *fields, int n);

/* The oldest unacknowledged line in memory, or NULL. When lines wait in the file only,
 * NULL starts reading them (on the writer thread; READY follows). */
struct hist_spool_line *hist_spool_head(struct hist_spool *s);

/* The N oldest lines (a batch's) are acknowledged: drop them (and give their file space back
 * in time). */
void hist_spool_pop(struct hist_spool *s, size_t n);

/* Records not yet acknowledged (memory + file + on their way to the file). */
uint64_t hist_spool_pending(const struct hist_spool *s);
/* Records given up: neither the file nor memory could take them, or unreadable. */
uint64_t hist_spool_dropped(const struct hist_spool *s);
/* All records an earlier process left in the file are acknowledged. */
bool hist_spool_leftovers_done(const struct hist_spool *s);
/* The spill file's path, or "memory". */
const char *hist_spool_where(const struct hist_spool *s);

/* Make what was appended durable soon (fdatasync on the writer thread). */
void hist_spool_sync(struct hist_spool *s);

/* Shutdown, first half: wait for the writer's operation under way and stop the thread;
 * from here on file operations run inline (the loop no longer serves runs). */
void hist_spool_stop_writer(struct hist_spool *s);

/* Shutdown: every record not yet in the file goes there now, whatever the cap, if the disk
 * takes it; logs how many wait in the file and exactly how many are lost; frees *S. */
void hist_spool_close(struct hist_spool **s);

/* The writer thread the file operations run on, one after another in submission order
 * (NULL without one: no state_dir, or after hist_spool_stop_writer). A job submitted to it
 * runs between them: a test stalls the disk by submitting one that waits. */
struct bgwork;
struct bgwork *hist_spool_worker(const struct hist_spool *s);

/* Spill file lines (exposed for the unit tests): a kind, then NULL-able text fields,
 * tab-separated with \\ \t \n \r escaped and NULL as \N, then a checksum, then '\n'.
 * encode returns a malloc'd line in *LINE (with its '\n') and its length, -ENOMEM, or -E2BIG
 * for more than HIST_SPOOL_MAX_FIELDS fields; decode works in place on LINE (without the
 * '\n'), pointing KIND and FIELDS into it, and returns the number of fields, or -EBADMSG for a torn
 * or corrupt line, -E2BIG for more than MAX fields. */
#define HIST_SPOOL_MAX_FIELDS 24
int hist_spool_encode(const char *kind, const char *const *fields, int n, char **line, size_t *len)
    __attribute__((warn_unused_result));
int hist_spool_decode(char *line, size_t len, const char **kind, const char **fields, int max)
    __attribute__((warn_unused_result));

/* hist_spool.c's (hist_spool_line.c): a record of KIND and its N FIELDS, copied into one
 * allocation (free() frees it), its len set, or NULL without memory or for N beyond
 * HIST_SPOOL_MAX_FIELDS; KIND NULL makes a damaged one. parse decodes a line read back
 * (TEXT, LEN bytes without the '\n', decoded in place) into a record, a damaged one if it
 * cannot be read. encode writes L's spill line and its '\n' into BUF (L->len + 1 bytes) and
 * returns that length. */
struct hist_spool_line *hist_spool_line_new(const char *kind, const char *const *fields, int n);
struct hist_spool_line *hist_spool_line_parse(char *text, size_t len);
size_t hist_spool_line_encode(const struct hist_spool_line *l, char *buf);

#endif
