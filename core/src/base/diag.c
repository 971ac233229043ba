#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

void diag_add(struct diag_list *dl, const char *file, int line, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (dl->n == dl->cap) {
		size_t cap = dl->cap ? dl->cap * 2 : 8;
		struct diag *items = realloc(dl->items, cap * sizeof(*items));
		if (!items)
			abort(); /* out of memory while reporting errors: nothing sane to do */
		dl->items = items;
		dl->cap = cap;
	}
	struct diag *d = &dl->items[dl->n++];
	d->file = file ? strdup(file) : NULL;
	d->line = line;
	d->message = strdup(buf);
	if ((file && !d->file) || !d->message)
		abort();
}

void diag_print(const struct diag_list *dl, void *stdio_file)
{
	FILE *out = stdio_file;

	for (size_t i = 0; i < dl->n; i++) {
		const struct diag *d = &dl->items[i];
		if (d->file && d->line > 0)
			fprintf(out, "%s:%d: %s\n", d->file, d->line, d->message);
		else if (d->file)
			fprintf(out, "%s: %s\n", d->file, d->message);
		else
			fprintf(out, "%s\n", d->message);
	}
}

void diag_clear(struct diag_list *dl)
{
	for (size_t i = 0; i < dl->n; i++) {
		free(dl->items[i].file);
		free(dl->items[i].message);
	}
	free(dl->items);
	dl->items = NULL;
	dl->n = dl->cap = 0;
}
