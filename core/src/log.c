#include "log.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_LVL_INFO;
static bool to_journal;

static const char *const level_names[] = {
	[LOG_LVL_ERROR] = "error", [LOG_LVL_WARNING] = "warning", [LOG_LVL_NOTICE] = "notice",
	[LOG_LVL_INFO] = "info", [LOG_LVL_DEBUG] = "debug",
};

void log_init(enum log_level level)
{
	min_level = level;
	/* systemd sets JOURNAL_STREAM when stderr is connected to the journal, which adds its
	 * own timestamps and understands the <N> priority prefix. */
	to_journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_set_level(enum log_level level) { min_level = level; }
enum log_level log_get_level(void) { return min_level; }

bool log_level_parse(const char *name, enum log_level *out)
{
	for (int i = LOG_LVL_ERROR; i <= LOG_LVL_DEBUG; i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return true;
		}
	}
	return false;
}

void log_msg(enum log_level level, const char *context, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if (level > min_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap); /* a truncated log line is still a log line */
	va_end(ap);
	/* One event, one line: fold newlines coming from PostgreSQL error messages. */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';

	if (to_journal) {
		if (context)
			fprintf(stderr, "<%d>%s: %s\n", (int)level, context, msg);
		else
			fprintf(stderr, "<%d>%s\n", (int)level, msg);
		return;
	}
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	if (context)
		fprintf(stderr, "%s.%03ldZ %s: %s: %s\n", stamp, ts.tv_nsec / 1000000,
			level_names[level], context, msg);
	else
		fprintf(stderr, "%s.%03ldZ %s: %s\n", stamp, ts.tv_nsec / 1000000, level_names[level],
			msg);
}

static double monotonic_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool log_complain(struct log_complaint *c)
{
	double now = monotonic_now();

	if (c->last != 0 && now - c->last < c->interval)
		return false;
	c->interval = c->last == 0 ? 60 : c->interval * 2;
	if (c->interval > 86400)
		c->interval = 86400;
	c->last = now;
	return true;
}

bool log_complaint_reset(struct log_complaint *c)
{
	bool was = c->last != 0;
	c->last = 0;
	c->interval = 0;
	return was;
}

void log_redact_conninfo(const char *in, char *out, unsigned long outlen)
{
	size_t o = 0;
	const char *p = in;

	if (outlen == 0)
		return;
#define PUT(ch) do { if (o + 1 < outlen) out[o++] = (ch); } while (0)
	/* URI form: scheme://user:secret@host... */
	const char *scheme = strstr(in, "://");
	if (scheme && (strncmp(in, "postgresql://", 13) == 0 || strncmp(in, "postgres://", 11) == 0)) {
		const char *auth = scheme + 3;
		const char *at = strchr(auth, '@');
		const char *slash = strchr(auth, '/');
		const char *colon = strchr(auth, ':');
		if (at && (!slash || at < slash) && colon && colon < at) {
			for (; p <= colon; p++)
				PUT(*p);
			for (const char *s = "********"; *s; s++)
				PUT(*s);
			p = at;
		}
	}
	while (*p) {
		/* key=value form: find "password" as a key at a word start */
		if ((p == in || isspace((unsigned char)p[-1]) || p[-1] == '?' || p[-1] == '&') &&
		    strncasecmp(p, "password", 8) == 0) {
			const char *q = p + 8;
			while (*q == ' ')
				q++;
			if (*q == '=') {
				for (const char *k = p; k <= q; k++)
					PUT(*k);
				q++;
				while (*q == ' ')
					q++;
				if (*q == '\'') {
					q++;
					while (*q && *q != '\'') {
						if (*q == '\\' && q[1])
							q++;
						q++;
					}
					if (*q)
						q++;
				} else {
					while (*q && !isspace((unsigned char)*q) && *q != '&')
						q++;
				}
				for (const char *s = "********"; *s; s++)
					PUT(*s);
				p = q;
				continue;
			}
		}
		PUT(*p);
		p++;
	}
	out[o] = '\0';
#undef PUT
}
