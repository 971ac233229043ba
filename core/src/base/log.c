#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "text.h"

enum log_level log_min_level = LOG_LVL_INFO;
static bool to_journal;

static const char *const level_names[] = {
    [LOG_LVL_ERROR] = "error", [LOG_LVL_WARNING] = "warning", [LOG_LVL_NOTICE] = "notice",
    [LOG_LVL_INFO] = "info",   [LOG_LVL_DEBUG] = "debug",
};

void log_init(enum log_level level)
{
	log_min_level = level;
	/* systemd sets JOURNAL_STREAM when stderr is connected to the journal, which adds its
	 * own timestamps and understands the <N> priority prefix. */
	to_journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_set_level(enum log_level level)
{
	log_min_level = level;
}

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
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, context, fmt, ap);
	va_end(ap);
}

void log_vmsg(enum log_level level, const char *context, const char *fmt, va_list ap)
{
	char msg[2048];
	if (level > log_min_level)
		return;
	/* a truncated log line is still a log line, cut on a whole character */
	text_vformat(msg, sizeof(msg), fmt, ap);
	/* One event, one line: fold newlines coming from PostgreSQL error messages; and no
	 * control character (a job's RAISE EXCEPTION E'\x1b]52;...') reaches the terminal or
	 * journal reading the log raw (text.h). */
	char safe[sizeof(msg) * 6];
	bool plain = true;
	for (char *p = msg; *p; p++) {
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
		else if ((unsigned char)*p < 0x20 || *p == 0x7f || (unsigned char)*p == 0xc2)
			plain = false;
	}
	if (!plain) {
		char *e = text_escape_dup(msg, TEXT_FOLD_NEWLINES);
		text_copy(safe, sizeof(safe), e ? e : "(a message that could not be escaped)");
		free(e);
	}
	const char *line = plain ? msg : safe, *sep = context ? ": " : "";

	if (to_journal) {
		fprintf(stderr, "<%d>%s%s%s\n", (int)level, context ? context : "", sep, line);
		return;
	}
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s: %s%s%s\n", stamp, ts.tv_nsec / 1000000, level_names[level],
	        context ? context : "", sep, line);
}

int log_escape(const char *in, char *out, unsigned long outlen)
{
	return text_escape_line(in, out, outlen);
}

/* WHY without its digits, hashed (FNV-1a); never 0 */
static uint32_t why_hash(const char *why)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)why; *p; p++)
		if (*p < '0' || *p > '9')
			h = (h ^ *p) * 16777619u;
	return h ? h : 1;
}

bool log_complain(struct log_complaint *c, const char *why)
{
	double now = (double)clock_mono_us() / 1e6;
	uint32_t w = why ? why_hash(why) : 0;

	if (w && w != c->why)
		c->last = 0; /* a new reason: said now, the interval from the start */
	if (c->last != 0 && now - c->last < c->interval)
		return false;
	c->why = w;
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
	c->why = 0;
	return was;
}
