/* The spool's records and their line format (hist_spool.h): a record in memory keeps its kind
 * and fields as they were given, for the database's batch; its spill line (the kind and the
 * fields, tab-separated and escaped, with a checksum that tells a torn or damaged line from a
 * whole one) is made on the writer thread, and a line read back is decoded there. Pure: no
 * I/O. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hist_spool.h"

/* ---- the line format --------------------------------------------------------------------- */

#define ESCAPED "\\\t\n\r" /* written as \\ \t \n \r */

/* FNV-1a: enough to recognise a torn or damaged line, not a security measure. */
static uint32_t fnv1a(const char *p, size_t n)
{
	uint32_t x = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		x ^= (unsigned char)p[i];
		x *= 16777619u;
	}
	return x;
}

size_t hist_spool_line_encode(const struct hist_spool_line *l, char *b)
{
	size_t o = 0;

	for (const char *k = l->kind; *k; k++)
		b[o++] = *k;
	for (int i = 0; i < l->n; i++) {
		b[o++] = '\t';
		if (!l->f[i]) {
			b[o++] = '\\';
			b[o++] = 'N';
			continue;
		}
		for (const char *p = l->f[i]; *p; p++) {
			/* the bytes up to the next to escape at once: most fields have none */
			size_t plain = strcspn(p, ESCAPED);
			memcpy(b + o, p, plain);
			o += plain;
			p += plain;
			if (!*p)
				break;
			b[o++] = '\\';
			b[o++] = *p == '\\' ? '\\' : *p == '\t' ? 't' : *p == '\n' ? 'n' : 'r';
		}
	}
	/* the trailer by hand: snprintf took as long as the rest of the line */
	uint32_t sum = fnv1a(b, o);
	b[o++] = '\t';
	b[o++] = '#';
	for (int i = 7; i >= 0; i--, sum >>= 4)
		b[o + (size_t)i] = "0123456789abcdef"[sum & 15];
	o += 8;
	b[o++] = '\n';
	return o;
}

int hist_spool_encode(const char *kind, const char *const *fields, int n, char **line, size_t *len)
{
	if (n < 0 || n > HIST_SPOOL_MAX_FIELDS)
		return -E2BIG; /* as decode says of such a line */
	struct hist_spool_line *l = hist_spool_line_new(kind, fields, n);
	char *b = l ? malloc(l->len + 2) : NULL; /* '\n' and NUL */

	if (!b) {
		free(l);
		return -ENOMEM;
	}
	*len = hist_spool_line_encode(l, b);
	b[*len] = '\0';
	*line = b;
	free(l);
	return 0;
}

struct hist_spool_line *hist_spool_line_new(const char *kind, const char *const *fields, int n)
{
	/* one allocation: the line, its field pointers, then the kind and the fields' bytes; the
	 * pass that measures the fields also counts their spill line's bytes: the kind, a tab and
	 * the bytes or \N for each field, one more for each byte to escape, and the trailer "\t#"
	 * with 8 hex digits */
	size_t lens[HIST_SPOOL_MAX_FIELDS], size = 0, klen = kind ? strlen(kind) + 1 : 0;
	size_t len = klen + 9;

	if (n < 0 || n > HIST_SPOOL_MAX_FIELDS)
		return NULL;
	for (int i = 0; i < n; i++) {
		lens[i] = fields[i] ? strlen(fields[i]) + 1 : 0;
		size += lens[i];
		len += fields[i] ? lens[i] : 3;
		for (const char *p = fields[i] ? strpbrk(fields[i], ESCAPED) : NULL; p;
		     p = strpbrk(p + 1, ESCAPED))
			len++;
	}
	struct hist_spool_line *l = malloc(sizeof(*l) + (size_t)n * sizeof(l->f[0]) + klen + size);
	if (!l)
		return NULL;
	char *o = (char *)&l->f[n];
	l->next = NULL;
	l->end_off = 0;
	l->spilled = l->writing = l->merged = false;
	l->n = n;
	l->kind = kind ? memcpy(o, kind, klen) : NULL;
	o += klen;
	for (int i = 0; i < n; i++) {
		l->f[i] = fields[i] ? memcpy(o, fields[i], lens[i]) : NULL;
		o += lens[i];
	}
	l->len = kind ? len : 0;
	return l;
}

struct hist_spool_line *hist_spool_line_parse(char *text, size_t len)
{
	const char *kind, *f[HIST_SPOOL_MAX_FIELDS];
	int n = hist_spool_decode(text, len, &kind, f, HIST_SPOOL_MAX_FIELDS);

	return n < 0 ? hist_spool_line_new(NULL, NULL, 0) : hist_spool_line_new(kind, f, n);
}

int hist_spool_decode(char *line, size_t len, const char **kind, const char **fields, int max)
{
	const size_t trailer = 10; /* "\t#" and 8 hex digits */
	uint32_t want = 0;

	if (len < trailer + 1)
		return -EBADMSG;
	char *t = line + len - trailer;
	if (t[0] != '\t' || t[1] != '#')
		return -EBADMSG;
	for (int i = 2; i < 10; i++) {
		char c = t[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return -EBADMSG;
		want = want << 4 | (uint32_t)d;
	}
	if (fnv1a(line, len - trailer) != want)
		return -EBADMSG;

	char *r = line, *end = t;
	*end = '\0';
	*kind = r;
	while (r < end && *r != '\t')
		r++;
	int n = 0;
	while (r < end) {
		*r++ = '\0'; /* the tab ending the previous token */
		if (n == max)
			return -E2BIG;
		if (r[0] == '\\' && r[1] == 'N' && (r + 2 == end || r[2] == '\t')) {
			fields[n++] = NULL;
			r += 2;
			continue;
		}
		char *w = r;
		fields[n++] = w;
		while (r < end && *r != '\t') {
			if (*r != '\\') {
				/* the plain bytes up to the next tab or escape at once (*end is
				 * NUL; a NUL byte before it, never encoded, goes one at a time) */
				size_t plain = strcspn(r, "\t\\");
				plain = plain ? plain : 1;
				if (w != r)
					memmove(w, r, plain);
				w += plain;
				r += plain;
				continue;
			}
			switch (r + 1 < end ? r[1] : 0) {
			case '\\':
				*w++ = '\\';
				break;
			case 't':
				*w++ = '\t';
				break;
			case 'n':
				*w++ = '\n';
				break;
			case 'r':
				*w++ = '\r';
				break;
			default:
				return -EBADMSG;
			}
			r += 2;
		}
		if (w < r)
			*w = '\0'; /* else r is at the next tab or the end, both made NUL */
	}
	return n;
}
