#include "retry.h"

#include <math.h>
#include <string.h>

#include "config.h"

static bool transient(const char *sqlstate)
{
	if (!sqlstate || strlen(sqlstate) != 5)
		return false;
	if (strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "53", 2) == 0)
		return true;
	static const char *const exact[] = {"40001", "40P01", "55P03", "57P01"};
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (strcmp(sqlstate, exact[i]) == 0)
			return true;
	return false;
}

bool retry_should(const struct conf_job *job, int attempt, const char *sqlstate, bool timed_out)
{
	const struct conf_job_retry *r = &job->more->retry;

	if (attempt > job->retries)
		return false;
	if (timed_out && !r->on_timeout)
		return false;
	return r->on == RETRY_ON_ANY || timed_out || transient(sqlstate);
}

int64_t retry_delay_ms(const struct conf_job *job, int attempt, uint32_t random)
{
	const struct conf_job_retry *r = &job->more->retry;
	double base = (double)r->delay_ms;
	double factor = r->backoff >= 1.0 ? r->backoff : 1.0;
	double cap = r->max_delay_ms > 0 ? (double)r->max_delay_ms : INFINITY;
	double d = base * pow(factor, attempt > 1 ? attempt - 1 : 0);
	if (d > cap)
		d = cap;
	d *= 0.9 + 0.2 * ((double)random / (double)UINT32_MAX);
	if (d > cap)
		d = cap;
	return d < 0 ? 0 : (int64_t)d;
}
