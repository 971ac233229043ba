#ifndef PGCROND_DEBOUNCE_H
#define PGCROND_DEBOUNCE_H

/* When a job with `listen` should run (pure): after `debounce` of quiet since the last
 * notification, but never later than `max_delay` after the first one not yet served, so a
 * steady stream of notifications cannot postpone the run forever. The payloads gathered
 * since the last run are kept (bounded) for the plugin. Payloads are untrusted. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEBOUNCE_MAX_PAYLOAD 8000     /* bytes; PostgreSQL's own NOTIFY limit is under 8000 */
#define DEBOUNCE_MAX_PAYLOADS 10000   /* per run; beyond that the run is told it lost some */
#define DEBOUNCE_MAX_BYTES (4u << 20) /* per run */

struct debounce {
	int64_t debounce_ms;
	int64_t max_delay_ms;
	int64_t first_ms; /* first unserved notification, -1 if none */
	int64_t last_ms;  /* latest notification, -1 if none */
	char **payloads;
	size_t n, cap, bytes;
	bool overflowed; /* some payloads were not kept: the plugin should do a full refresh */
};

enum debounce_result {
	DEBOUNCE_KEPT,      /* noted, payload kept */
	DEBOUNCE_NOTED,     /* noted, payload dropped for lack of room (overflowed set) */
	DEBOUNCE_OVERSIZED, /* noted as a notification, payload dropped: longer than the limit */
	DEBOUNCE_MALFORMED, /* noted as a notification, payload dropped: not UTF-8 text */
};

void debounce_init(struct debounce *d, int64_t debounce_ms, int64_t max_delay_ms);
void debounce_free(struct debounce *d);

/* A notification arrived at NOW_MS with PAYLOAD (may be "" or NULL). A dropped payload
 * still counts as a notification: the run happens, it just does not see that payload. */
enum debounce_result debounce_note(struct debounce *d, int64_t now_ms, const char *payload);

/* The instant (ms) the run is due, or -1 if nothing is pending. */
int64_t debounce_due(const struct debounce *d);

/* Hand over the gathered payloads (caller frees each and the array) and start afresh. */
char **debounce_take(struct debounce *d, size_t *n, bool *overflowed);

#endif
