#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "diag.h"
#include "text.h"

void diag_add(struct diag_list *dl, const char *file, int line, const char *fmt, ...)
{
	char buf[1024];
	TEXT_VA_FORMAT(buf, sizeof(buf), fmt);
	if (array_grow(&dl->items, dl->n, &dl->cap, sizeof(*dl->items), 8) < 0)
		abort(); /* out of memory while reporting errors: nothing sane to do */
	struct diag *d = &dl->items[dl->n++];
	d->file = file ? strdup(file) : NULL;
	d->line = line;
	d->message = strdup(buf);
	if ((file && !d->file) || !d->message)
		abort();
}

const char *diag_format(const struct diag *d, char *buf, size_t len)
{
	if (d->file && d->line > 0)
		snprintf(buf, len, "%s:%d: %s", d->file, d->line, d->message);
	else
		snprintf(buf, len, "%s%s%s", d->file ? d->file : "", d->file ? ": " : "",
		         d->message);
	return buf;
}

void diag_print(const struct diag_list *dl, void *stdio_file)
{
	char buf[8192];
	for (size_t i = 0; i < dl->n; i++)
		fprintf(stdio_file, "%s\n", diag_format(&dl->items[i], buf, sizeof(buf)));
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
