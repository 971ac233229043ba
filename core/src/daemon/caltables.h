#ifndef PGCROND_CALTABLES_H
#define PGCROND_CALTABLES_H

/* Table calendars (docs/calendars.md): calendars = { NAME = { database = "DB"; table =
 * "schema.table"; }; }, one date a row in the table's column "date". The daemon reads each on
 * its database's own session, after every (re)connect, at every reload and at every
 * notification on pgcrond_calendars there (its payload is ignored: anyone may send one, and
 * the table decides), and tells its owner when a calendar's dates changed; the owner merges
 * them into the configuration (config_set_table_dates). A calendar keeps its last good dates
 * through a failed read and a reload; before its first read its jobs do not fire. */

#include <stddef.h>

#include "config_sql.h"

struct event_base;
struct caltables;

/* The reads of CFG's table calendars (caltables_apply); CHANGED(ARG), from the loop, when a
 * calendar's dates differ from the last ones read (said in the log first). 0 or -ENOMEM. */
int caltables_new(struct event_base *base, const struct pgc_config *cfg, void (*changed)(void *arg),
                  void *arg, struct caltables **out) __attribute__((warn_unused_result));
void caltables_free(struct caltables **ct);
/* Read CFG's table calendars (CFG borrowed for the call) from now on, each read again now; a
 * calendar of the same name, database and table as before keeps its dates meanwhile. Out of
 * memory, the calendars read so far stay, as said in the log. */
void caltables_apply(struct caltables *ct, const struct pgc_config *cfg);
/* The dates read so far, for a build off the loop: one block, free() it (NULL when none).
 * 0 or -ENOMEM. CT may be NULL. */
int caltables_snapshot(const struct caltables *ct, struct config_table_dates **out, size_t *n)
    __attribute__((warn_unused_result));
/* The dates of CFG's table calendars, read now on blocking connections (command CMD of the
 * CLI): one block as caltables_snapshot's; a calendar that cannot be read is left out, with a
 * line on stderr. 0 or -ENOMEM. */
int caltables_read_now(const struct pgc_config *cfg, const char *cmd,
                       struct config_table_dates **out, size_t *n)
    __attribute__((warn_unused_result));

#endif
