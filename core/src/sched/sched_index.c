/* The bottom of sched/ (sched_priv.h): the scheduler's clock and the jobs by name. Every file of
 * the folder reads them, and they call none of it. */
#include <stdlib.h>

#include "sched_priv.h"

int64_t sched_now_us(const struct sched *s)
{
	/* the history database's time (sched_set_db_offset) */
	return clock_now_us(s->clock) + s->db_offset_us;
}

void sched_index_remove(struct sched *s, struct job *j)
{
	strmap_remove(&s->index, &j->hnode);
}

struct job *sched_job_find(struct sched *s, const char *name)
{
	for (struct strmap_node *n = strmap_find(&s->index, name); n; n = strmap_find_next(n)) {
		struct job *j = STRMAP_ENTRY(n, struct job, hnode);
		if (!j->removed)
			return j;
	}
	return NULL;
}
