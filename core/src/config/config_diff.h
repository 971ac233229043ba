#ifndef PGCROND_CONFIG_DIFF_H
#define PGCROND_CONFIG_DIFF_H

/* What a reload changes in the jobs, for the log: which jobs were added, removed, and changed
 * in which keys. Pure logic over two loaded configs: no libevent, no libpq. */

#include <stddef.h>

#include "config.h"

struct config_diff {
	char **lines; /* one per affected job, in the new config's order, then the removed ones:
	               * added job "x"; removed job "y"; changed job "z": schedule "a" -> "b",
	               * timeout, setting "view" */
	size_t n, cap;
	size_t added, changed, removed;
	size_t *gone; /* the removed jobs' indexes in the old config (REMOVED of them); not NULL
	               * after a complete diff, even with none */
	/* the new config's jobs in byte order of their names (strcmp), for whoever wants them
	 * sorted: config_diff_free frees it unless taken (set to NULL) */
	const struct conf_job **by_name;
};

/* Compare the jobs of OLD and NEW into OUT (which the caller zeroes). 0 or -ENOMEM; on error
 * OUT holds what was done so far and must still be freed. */
int config_diff_jobs(const struct pgc_config *old, const struct pgc_config *new_cfg,
                     struct config_diff *out) __attribute__((warn_unused_result));
void config_diff_free(struct config_diff *d);

#endif
