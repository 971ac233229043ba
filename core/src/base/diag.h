#ifndef PGCROND_DIAG_H
#define PGCROND_DIAG_H

/* Diagnostics for people: a list of "FILE:LINE: message" problems (what is wrong and what to
 * do), collected in one pass and printed together (config check, plugin loading, the DAG). */

#include <stddef.h>

struct diag {
	char *file;    /* may be NULL for problems with no file */
	int line;      /* 0 if unknown */
	char *message; /* one or two sentences: what is wrong, what to do */
};

struct diag_list {
	struct diag *items;
	size_t n, cap;
};

void diag_add(struct diag_list *dl, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* D as "FILE:LINE: message" (or "FILE: message", or "message") in BUF; returns BUF. */
const char *diag_format(const struct diag *d, char *buf, size_t len);
/* Print each as diag_format writes it, a line each. */
void diag_print(const struct diag_list *dl, void *stdio_file);
void diag_clear(struct diag_list *dl);

#endif
