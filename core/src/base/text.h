#ifndef PGCROND_TEXT_H
#define PGCROND_TEXT_H

/* Text as PostgreSQL and people see it: UTF-8. Every place that cuts a string to a size
 * (history fields, log lines, alert messages, JSON) cuts through these helpers, so a cut
 * never ends inside a character: PostgreSQL refuses a broken byte sequence ("invalid byte
 * sequence for encoding UTF8") and would drop the row or the notification holding it. Pure
 * logic: no libevent, no libpq. */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest length <= MAX of a prefix of S (LEN bytes) that does not end inside a UTF-8
 * sequence. Bytes that are not UTF-8 at all are counted as single characters, so a cut
 * never removes more than 3 bytes. */
size_t text_utf8_prefix(const char *s, size_t len, size_t max);

/* S was just cut short (by snprintf, or a copy): drop an incomplete UTF-8 sequence at its
 * end, in place. A string that ends on a whole character is left alone. */
void text_utf8_trim(char *s);

/* snprintf into BUF that, when it has to cut, cuts on a character boundary. Returns what
 * vsnprintf returns (the untruncated length, or negative on an encoding error); as with
 * snprintf, a result >= LEN means the text was cut. */
int text_format(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int text_vformat(char *buf, size_t len, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* In a function whose last named parameter is FMT: its "..." formatted by FMT into BUF (LEN
 * bytes) with text_vformat, for a function that formats a message and passes it on. */
#define TEXT_VA_FORMAT(buf, len, fmt)                                                              \
	do {                                                                                       \
		va_list ap_;                                                                       \
		va_start(ap_, fmt);                                                                \
		text_vformat(buf, len, fmt, ap_);                                                  \
		va_end(ap_);                                                                       \
	} while (0)

/* Copy SRC into DST (DSTLEN bytes, NUL-terminated), cut on a character boundary. Returns
 * true when it had to cut. */
bool text_copy(char *dst, size_t dstlen, const char *src);

/* V in decimal into BUF (LEN bytes, NUL-terminated; 21 hold any V): what snprintf "%" PRId64
 * writes, cut alike, without its cost (several numbers in every run's history records).
 * Returns BUF. */
char *text_i64(char *buf, size_t len, int64_t v);

/* The offset of the first byte of S (LEN bytes) that does not start a valid UTF-8 sequence
 * (overlong forms, surrogates and code points past U+10FFFF are invalid, as PostgreSQL
 * has them), or LEN when S is all valid. */
size_t text_utf8_invalid_at(const char *s, size_t len);

/* The columns S takes on a terminal ("日次集計" 8, "étape" 5): wcwidth of each character in a
 * UTF-8 locale, whatever the reader's; a byte that is not UTF-8 takes one, a control none. */
size_t text_width(const char *s);

/* True when S (NUL-terminated) is valid UTF-8. */
bool text_utf8_valid(const char *s);

/* A malloc'd copy of S (NULL: "") with each byte that does not start a valid UTF-8 sequence
 * made '?', for a JSON document, which must be UTF-8 (text from a server in another encoding
 * would fail it whole). NULL: out of memory. */
char *text_utf8_fix_dup(const char *s) __attribute__((warn_unused_result));

/* Text from elsewhere (a server's error or notice, a job's command, a name in a file) made
 * safe to print on a terminal or in a log line, the one way every place that prints such
 * text does it: C0 control characters and DEL written as \n, \t, \r or \xNN, C1 controls
 * (U+0080..U+009F, CSI and OSC in 8 bits) as \uNNNN; nothing else changes, so a message
 * without control characters reads as it was. ESC ]52 (OSC 52) could otherwise set the
 * reader's clipboard, and a newline forge a log line. */

/* A copy in OUT (OUTLEN bytes), all controls escaped, cut on a character boundary to fit.
 * Returns OUT. */
char *text_escape_ctl(const char *s, char *out, size_t outlen);

/* As text_escape_ctl, with a backslash doubled too, so that an escape the sender wrote is not
 * mistaken for one of ours (text that does not come from the daemon, bound for a log line).
 * Returns 0, or -ENOSPC when S was cut to fit. */
int text_escape_line(const char *s, char *out, size_t outlen);

/* Modes of text_escape_dup. */
#define TEXT_KEEP_NEWLINES 1u /* newlines and tabs stay (text printed over several lines) */
#define TEXT_FOLD_NEWLINES 2u /* newlines, carriage returns and tabs become spaces (one line) */

/* A whole copy, malloc'd (NULL: out of memory), escaped as above in mode FLAGS (0: every
 * control escaped). S may be NULL (""). */
char *text_escape_dup(const char *s, unsigned flags) __attribute__((warn_unused_result));

/* S in double quotes for a log line or a terminal, the way a name that may hold anything
 * (a pg_cron job name: spaces, quotes, non-ASCII) is printed: '"' and '\\' as \" and \\,
 * controls as text_escape_ctl writes them, the rest as it is (UTF-8 stays readable). Cut on
 * a character boundary to fit OUTLEN, closing quote kept. Returns OUT. */
char *text_quote(const char *s, char *out, size_t outlen);

/* URL fit for an error message or a log line, even one that does not parse: what precedes
 * an '@' in its authority (user:password) shown as "...", a query or fragment (either may
 * hold a token) as "?...". Controls are not escaped here (text_escape_ctl). Cut on a
 * character boundary to fit OUTLEN. Returns OUT. */
char *text_url_redact(const char *url, char *out, size_t outlen);

/* ITEMS (N of them) as a PostgreSQL array literal, {"a","b"}: each element double-quoted,
 * with '"' and '\\' escaped, so any text is one element (the server casts it to the array
 * type of the parameter). malloc'd; NULL: out of memory. */
char *text_pg_array(const char *const *items, size_t n) __attribute__((warn_unused_result));

/* Free the N strings of V (malloc'd, any of them NULL), then V. */
void text_free_list(char **v, size_t n);

/* strcmp for qsort: A and B point to char pointers (or to structs whose first member is one). */
int text_cmp_ptrs(const void *a, const void *b);

#endif
