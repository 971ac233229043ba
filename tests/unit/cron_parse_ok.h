/* The unit tests' parse of a schedule that must parse: the expression, or the case fails
 * with the parser's message. */
#ifndef PGCROND_TEST_CRON_PARSE_OK_H
#define PGCROND_TEST_CRON_PARSE_OK_H

#include <check.h>

#include "cron.h"

static inline cron_expr parse_ok(const char *text)
{
	cron_expr e;
	char err[512];
	ck_assert_msg(cron_parse(text, &e, err, sizeof(err)) == 0, "%s: %s", text, err);
	return e;
}

#endif
