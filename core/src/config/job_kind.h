#ifndef PGCROND_JOB_KIND_H
#define PGCROND_JOB_KIND_H

/* What each kind of job (enum job_kind, config.h) is to the layers that name, record or
 * explain it: its name, the command `install` and every reload record for it in pgcrond.job
 * and cron.job, and what a fault with one of its runs in flight means (docs/faults.md). One
 * table; the functions below are its only readers, and each switch over kinds has no default,
 * so a new kind fails the build (-Wswitch-enum) until every entry says what it is; and the
 * names of what makes a run (enum run_trigger). Pure logic: no libpq, no libevent. */

#include <stddef.h>

#include "config.h"

/* "sql", "plugin" or "http": the kind's name everywhere it is shown or stored (list, status,
 * the status page, /metrics' kind label, pgcrond.job.kind). */
const char *job_kind_name(enum job_kind k);

/* The kind named NAME (as job_kind_name spells it) into *OUT: 0, or -EINVAL. */
int job_kind_parse(const char *name, enum job_kind *out);

/* Each trigger's name (enum run_trigger), and the trigger named NAME into *OUT: 0, or -EINVAL
 * (text read back from the database). */
extern const char *const run_trigger_names[TRIGGER_COUNT];
int run_trigger_parse(const char *name, enum run_trigger *out);

/* An HTTP call as it may be shown and recorded: "METHOD scheme://host[:port]/..." (no user
 * info, path or query: httpc_url_shown). OUT always NUL-terminated. */
void job_kind_http_shown(const struct conf_http_call *h, char *out, size_t outlen);

/* What pgcrond.job.command and cron.job.command hold for J: a SQL job's command as written
 * (returned as is, not copied), a plugin job's "plugin NAME", an HTTP job's call as
 * job_kind_http_shown prints it (into BUF, which is returned). Never NULL. */
const char *job_kind_command(const struct conf_job *j, char *buf, size_t buflen);

/* Whether a run of a job of kind K whose recorded command is COMMAND happens once when the
 * instance running it is lost with the run in flight (docs/faults.md, "Once under faults, or
 * fenced"), as list and status show it: "yes" (a SQL command in one transaction: a survivor asks
 * the server whether it committed), "fenced: CLASS" (any other SQL: its backend is ended before a
 * retry; it may have committed), "fenced: plugin" (a plugin's statements, each its own
 * transaction), "at most once per attempt" (an HTTP request: it has no transaction to ask
 * about; after a takeover nobody knows whether the server got it). */
void job_kind_once(enum job_kind k, const char *command, char *out, size_t outlen);

/* What the history adds to the message of a run of each kind that was closed without its end
 * (its process ended, or its instance died, with the run in flight): "" where the closing
 * message says it all, or a sentence starting with "; ", as a JSON object, {"sql": "",
 * "http": "; ..."}, for a statement that closes runs by their job's kind (pgcrond.job.kind);
 * malloc'd, NULL on ENOMEM. */
char *job_kind_lost_notes_json(void);

#endif
