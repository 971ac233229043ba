#ifndef PGCROND_DURATION_H
#define PGCROND_DURATION_H

/* Durations as people write them: "30s", "5m", "2h", "7d", also "250ms" and "1h30m". */

#include <stddef.h>
#include <stdint.h>

/* The longest duration accepted: 100 years (36,500 days), in milliseconds. */
#define DURATION_MAX_MS (36500LL * 86400 * 1000)
/* Parse into milliseconds; -EINVAL with a message in ERR for anything else, also for more
 * than DURATION_MAX_MS. */
int duration_parse(const char *text, int64_t *ms, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Format for people: "30s", "5m", "1h30m". */
void duration_format(int64_t ms, char *out, size_t outlen);

#endif
