#include "pgconn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int pgconn_start(const char *conninfo, const char *application_name, PGconn **out)
{
	/* expand_dbname = 1: "dbname" carries the whole conninfo (or URI); keywords after it
	 * only fill in what the conninfo leaves unset. */
	const char *keys[] = {"dbname", "fallback_application_name", NULL};
	const char *vals[] = {conninfo, application_name, NULL};
	PGconn *c = PQconnectStartParams(keys, vals, 1);

	*out = c;
	if (!c)
		return -ENOMEM;
	if (PQstatus(c) == CONNECTION_BAD)
		return -ECONNREFUSED;
	return 0;
}

static void one_line(const char *msg, char *buf, size_t len)
{
	size_t o = 0;

	if (len == 0)
		return;
	for (const char *p = msg ? msg : ""; *p && o + 1 < len; p++)
		buf[o++] = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : *p;
	while (o > 0 && buf[o - 1] == ' ')
		o--;
	buf[o] = '\0';
	/* libpq folds several lines ("connection to server ... failed: ...") into one; collapse
	 * the doubled blanks that leaves. */
	char *w = buf;
	for (char *r = buf; *r; r++)
		if (!(*r == ' ' && r[1] == ' '))
			*w++ = *r;
	*w = '\0';
}

const char *pgconn_error(const PGconn *conn, char *buf, size_t len)
{
	one_line(conn ? PQerrorMessage(conn) : "out of memory", buf, len);
	if (len && !buf[0])
		snprintf(buf, len, "unknown libpq error");
	return buf;
}

const char *pgconn_result_error(const PGresult *res, char *buf, size_t len)
{
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	/* The primary message alone, without "ERROR:" and the LINE/caret lines that a
	 * parameterized statement would make noisy. */
	one_line(primary ? primary : res ? PQresultErrorMessage(res) : "no result", buf, len);
	if (len && !buf[0])
		snprintf(buf, len, "%s", res ? PQresStatus(PQresultStatus(res)) : "no result");
	return buf;
}

PGconn *pgconn_connect_blocking(const char *conninfo, const char *application_name, char *err,
                                size_t errlen)
{
	const char *keys[] = {"dbname", "fallback_application_name", NULL};
	const char *vals[] = {conninfo, application_name, NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	char why[512], safe[512];

	if (c && PQstatus(c) == CONNECTION_OK)
		return c;
	pgconn_error(c, why, sizeof(why));
	log_redact_conninfo(conninfo, safe, sizeof(safe));
	snprintf(err, errlen, "cannot connect to \"%s\": %s", safe, why);
	PQfinish(c);
	return NULL;
}

int64_t pgconn_backoff_ms(unsigned attempt, int64_t min_ms, int64_t max_ms)
{
	static unsigned seed;
	int64_t d = min_ms;

	if (seed == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = (unsigned)ts.tv_nsec ^ ((unsigned)getpid() << 16) ^ 1u;
	}
	for (unsigned i = 0; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	if (d < 2)
		return d;
	return d / 2 + (int64_t)rand_r(&seed) % (d / 2 + 1);
}

bool pgconn_sqlstate_transient(const char *s)
{
	if (!s || strlen(s) != 5)
		return true;
	return strncmp(s, "08", 2) == 0 || strncmp(s, "53", 2) == 0 || strncmp(s, "57", 2) == 0 ||
	       strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0 || strcmp(s, "25006") == 0 ||
	       strcmp(s, "55P03") == 0;
}
