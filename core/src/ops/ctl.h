#ifndef PGCROND_CTL_H
#define PGCROND_CTL_H

/* The local control channel: a unix socket, <state_dir>/pgcrond.sock, mode 0660 (the
 * daemon's user and group may connect, like pgbouncer's admin console), served on the
 * daemon's event loop with bufferevents. It needs no database, so it answers while the
 * databases are down.
 *
 * Protocol: the client sends one request per line, a JSON object; the daemon answers each
 * with one line, a JSON object, in order. Requests:
 *   {"cmd":"status"}                       {"cmd":"status","job":"J"}
 *   {"cmd":"pause","job":"J"}              {"cmd":"resume","job":"J"}
 *   {"cmd":"trigger","job":"J","force":false,"wait":true}
 *   {"cmd":"drop","job":"J","by":"alice"} (BY: who asks, as the client's user name says;
 *                                        the daemon adds the uid the kernel gives)
 * Answers: {"ok":true, ...} or {"ok":false,"error":"what is wrong, what to do",
 * "code":"no_such_job" | "refused" (a job made in SQL that the daemon leaves out: "error" says
 * why) | "bad_request" | "disabled" | "already" | "shutting_down" | "internal"}. status adds
 * "status": (status.h); trigger without wait answers
 * {"ok":true,"started":true} at once; with wait, once the run has ended (after its retries):
 * {"ok":true,"result":{"job","status","message","sqlstate","attempt","duration_ms"}};
 * drop answers {"ok":true,"job","dropped":N,"by":"dropped by alice, uid 1000 (pid 42)"}. A
 * request line is at most CTL_MAX_LINE bytes. */

#include <stdbool.h>
#include <stddef.h>

#define CTL_SOCKET_NAME "pgcrond.sock"
/* The file in state_dir that keeps the paused jobs across restarts, one name a line. */
#define CTL_PAUSED_FILE "paused"
#define CTL_MAX_LINE 8192

enum ctl_cmd { CTL_STATUS, CTL_PAUSE, CTL_RESUME, CTL_TRIGGER, CTL_DROP };

struct ctl_request {
	enum ctl_cmd cmd;
	char job[64]; /* "" for status of all jobs */
	bool force, wait;
	char by[64]; /* drop: the client's user name; "" if not given */
};

/* Parse one request line (LEN bytes, without its newline). Returns 0, or -EINVAL with the
 * reason in ERR ("bad request: ..."). Pure; unit-tested. */
int ctl_parse_request(const char *line, size_t len, struct ctl_request *out, char *err,
                      size_t errlen) __attribute__((warn_unused_result));
/* The request as one line, newline included (malloc'd), or NULL (out of memory). */
char *ctl_format_request(const struct ctl_request *r);

/* <STATE_DIR>/pgcrond.sock into OUT; -ENAMETOOLONG if it does not fit a unix socket
 * address. */
int ctl_socket_path(const char *state_dir, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/* The paused jobs saved in STATE_DIR: *NAMES (each and the array malloc'd; free with
 * text_free_list) and *N; a missing file is none. 0 or a negative errno. */
int ctl_load_paused(const char *state_dir, char ***names, size_t *n)
    __attribute__((warn_unused_result));

struct event_base;
struct status_src;
struct ctl;

/* Listen on STATE_DIR's socket (a stale socket file left by a dead daemon is replaced; one a
 * live daemon answers on is an error). SRC is borrowed for the life of the ctl. Returns 0, or
 * a negative errno with the reason in ERR. */
int ctl_open(struct event_base *base, const char *state_dir, const struct status_src *src,
             struct ctl **out, char *err, size_t errlen) __attribute__((warn_unused_result));
/* Record every paused job in the registry (pgcrond.job.paused) of the history database: at
 * start, once the schedule is applied. Pause and resume record their job themselves. */
void ctl_sync_registry(struct ctl *c);
/* The paused set changed through another instance (coord.h): save it in state_dir and the
 * registry. */
void ctl_paused_changed(struct ctl *c);
/* Close the socket (and remove its file) and every client. Call after sched_free(): runs
 * waited for are answered until then. */
void ctl_free(struct ctl **c);

#endif
