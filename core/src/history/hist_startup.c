/* The history's start-up reads, bounded so the partitions past retention are pruned
 * (hist_startup.h). */
#include "hist_startup.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

/* Rows a previous process of this instance left running: any boot but ours. */
const char hist_sql_orphans[] =
    "UPDATE pgcrond.job_run_details"
    "   SET status = 'failed', return_message = $3, end_time = now(),"
    "       duration_ms = extract(epoch FROM now() - start_time) * 1000"
    " WHERE instance = $1 AND status IN ('starting', 'running')"
    "   AND boot_id IS DISTINCT FROM $2 AND start_time >= $4::timestamptz";

/* Per job (any instance): the last fire it served, what catch-up compares the schedule with,
 * and the end of its last success, where its staleness counts from. */
const char hist_sql_last_fires[] =
    "SELECT job_name,"
    " extract(epoch FROM max(scheduled_time) FILTER (WHERE scheduled_time IS NOT NULL"
    "   AND trigger IN ('schedule', 'catchup')))::bigint,"
    " (extract(epoch FROM max(end_time) FILTER (WHERE status = 'succeeded')) * 1000000)::bigint"
    " FROM pgcrond.job_run_details WHERE start_time >= $1::timestamptz GROUP BY job_name";

int hist_startup_floor(int64_t now_us, int64_t retain_ms, char *out, size_t outlen)
{
	int n;
	if (retain_ms <= 0) {
		n = snprintf(out, outlen, "-infinity");
	} else {
		int64_t s = now_us / 1000000 - retain_ms / 1000;
		s -= ((s % 86400) + 86400) % 86400; /* the start of its UTC day */
		time_t t = (time_t)s;
		struct tm tm;
		if (!gmtime_r(&t, &tm))
			return -ENOSPC;
		n = snprintf(out, outlen, "%04d-%02d-%02d 00:00:00+00", tm.tm_year + 1900,
		             tm.tm_mon + 1, tm.tm_mday);
	}
	return n < 0 || (size_t)n >= outlen ? -ENOSPC : 0;
}
