#ifndef PGCROND_LOG_H
#define PGCROND_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

/* One logging function for the whole daemon. Lines go to stderr, one per event, with a
 * level prefix journald understands ("<3>" ...) when stderr is the journal, and a
 * timestamp otherwise. The job or plugin a line is about is its context argument, which
 * log_msg prints before the message, so messages do not repeat it. */

enum log_level {
	LOG_LVL_ERROR = 3,
	LOG_LVL_WARNING = 4,
	LOG_LVL_NOTICE = 5,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7
};

void log_init(enum log_level min_level);
void log_set_level(enum log_level min_level);
/* The least important level written (log_init, log_set_level). */
extern enum log_level log_min_level;
/* Parse "error", "warning", "notice", "info", "debug"; returns false if unknown. */
bool log_level_parse(const char *name, enum log_level *out);

void log_msg(enum log_level level, const char *context, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, const char *context, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* With a job (or plugin) name: "job refresh-x: <message>". The level is tested here, as
 * pgbouncer's log_debug() does: a line below log_min_level costs no call, and no argument. */
#define log_job(level, job, ...)                                                                   \
	do {                                                                                       \
		if ((level) <= log_min_level)                                                      \
			log_msg((level), (job), __VA_ARGS__);                                      \
	} while (0)

#define log_error(...) log_job(LOG_LVL_ERROR, NULL, __VA_ARGS__)
#define log_warning(...) log_job(LOG_LVL_WARNING, NULL, __VA_ARGS__)
#define log_notice(...) log_job(LOG_LVL_NOTICE, NULL, __VA_ARGS__)
#define log_info(...) log_job(LOG_LVL_INFO, NULL, __VA_ARGS__)
#define log_debug(...) log_job(LOG_LVL_DEBUG, NULL, __VA_ARGS__)

/* IN as one log line that cannot pass for another: text_escape_line (text.h). */
int log_escape(const char *in, char *out, unsigned long outlen);

/* Rate limiting for repeating errors (a lost connection): returns true when the caller
 * should log now. The first occurrence logs; later ones at most once per interval, which
 * doubles up to a day (collectd's c_complain). WHY, the reason the line gives (NULL: none),
 * lets a new reason through at once, with the interval started again: a server refusing
 * connections that comes back full says "too many clients" when it happens, not a minute
 * later. Reasons that differ only in their digits (a port, a count, a pid) are the same.
 * log_complaint_reset() when the condition clears, returning true if a complaint had been
 * made (so "recovered" is logged once). */
struct log_complaint {
	double last;     /* monotonic seconds of the last log line, 0 = never */
	double interval; /* seconds until the next one may be logged */
	uint32_t why;    /* the last line's reason, hashed (0: none given) */
};
bool log_complain(struct log_complaint *c, const char *why);
bool log_complaint_reset(struct log_complaint *c);

#endif
