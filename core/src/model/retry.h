#ifndef PGCROND_RETRY_H
#define PGCROND_RETRY_H

/* Retry policy (pure): which failures are retried, and after how long. */

#include <stdbool.h>
#include <stdint.h>

struct conf_job;

/* SQLSTATE of a failure pgcrond saw before any server answered (connect refused, lost
 * connection): class 08, connection_failure. */
#define RETRY_SQLSTATE_CONNECTION "08006"

/* Should the run whose attempt number ATTEMPT (1 = first) just failed be tried again? A
 * timeout only if the job says retry_on_timeout; other failures, with retry_on = "any", or
 * when transient (the default): class 08 (connection), 40001 serialization_failure, 40P01
 * deadlock_detected, 55P03 lock_not_available, 57P01 admin_shutdown, class 53 (insufficient
 * resources). */
bool retry_should(const struct conf_job *job, int attempt, const char *sqlstate, bool timed_out);

/* The delay before attempt ATTEMPT+1: retry_delay * retry_backoff^(ATTEMPT-1), capped at
 * retry_max_delay, with ±10% jitter from RANDOM (uniform over 0..UINT32_MAX), so that jobs
 * failing together do not retry in lock-step. Growth is preserved: with a backoff of at
 * least 1.25 each delay exceeds the previous one unless capped. */
int64_t retry_delay_ms(const struct conf_job *job, int attempt, uint32_t random);

#endif
