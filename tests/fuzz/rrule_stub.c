/* fuzz_cron is built from cron/'s libc-only files: recurrence rules (cron_rrule.c, libical)
 * are refused, as a schedule pgcrond cannot read. */
#include <errno.h>

#include "cron.h"
#include "cron_cal.h"

int cron_rrule_parse(const char *text, size_t len, cron_expr *out, char *msg, size_t msglen,
                     size_t *col)
{
	(void)text, (void)len, (void)out;
	*col = 0;
	cron_seterr(msg, msglen, "recurrence rules are not built into the fuzzer");
	return -EINVAL;
}

int64_t cron_rrule_next_local(const cron_expr *e, int64_t l)
{
	(void)e, (void)l;
	return CRON_NEVER;
}
