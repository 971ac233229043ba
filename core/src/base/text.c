/* UTF-8 aware cutting and checking of text (see text.h). */
#include "text.h"

#include <errno.h>
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

/* Length of the valid UTF-8 sequence starting at S (at most LEN bytes available), or 0
 * when the bytes there are not one (RFC 3629's table: no overlongs, no surrogates, nothing
 * past U+10FFFF). */
static size_t seq_len(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* past U+10FFFF */
	} else {
		return 0;
	}
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

size_t text_utf8_invalid_at(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		size_t n = seq_len(u + i, len - i);
		if (n == 0)
			return i;
		i += n;
	}
	return len;
}

size_t text_width(const char *s)
{
	static locale_t utf8;
	if (!utf8)
		utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	locale_t was = uselocale(utf8); /* (none made: 0 keeps the C locale, a column a byte) */
	mbstate_t st = {0};
	size_t w = 0, len = strlen(s);
	for (size_t n; len; s += n, len -= n) {
		wchar_t c;
		int cw = (n = mbrtowc(&c, s, len, &st)) <= len ? wcwidth(c) : 1;
		if (n > len) /* not UTF-8: one byte, one column */
			n = 1, st = (mbstate_t){0};
		w += cw > 0 ? (size_t)cw : 0;
	}
	uselocale(was);
	return w;
}

bool text_utf8_valid(const char *s)
{
	size_t len = strlen(s);
	return text_utf8_invalid_at(s, len) == len;
}

char *text_utf8_fix_dup(const char *s)
{
	char *copy = strdup(s ? s : "");
	size_t len = copy ? strlen(copy) : 0;
	for (size_t at = 0; at < len; at++) {
		at += text_utf8_invalid_at(copy + at, len - at);
		if (at < len)
			copy[at] = '?';
	}
	return copy;
}

/* How many bytes a sequence led by C claims, 1 for anything that is not a lead byte. */
static size_t claimed_len(unsigned char c)
{
	if (c >= 0xf0 && c <= 0xf7)
		return 4;
	if (c >= 0xe0)
		return c <= 0xef ? 3 : 1;
	if (c >= 0xc0)
		return 2;
	return 1;
}

size_t text_utf8_prefix(const char *s, size_t len, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;

	if (len <= max)
		return len;
	/* Cut at MAX, then step back over continuation bytes to the lead byte of the character
	 * the cut falls in (at most 3 back: further back is not UTF-8, cut where we are). */
	size_t i = max, back = 0;
	while (i > 0 && back < 3 && (u[i] & 0xc0) == 0x80) {
		i--;
		back++;
	}
	if ((u[i] & 0xc0) == 0x80)
		return max; /* a run of stray continuation bytes: no character to keep whole */
	return i + claimed_len(u[i]) <= max ? max : i;
}

void text_utf8_trim(char *s)
{
	size_t len = strlen(s);
	const unsigned char *u = (const unsigned char *)s;
	size_t i = len, back = 0;

	while (i > 0 && back < 4 && (u[i - 1] & 0xc0) == 0x80) {
		i--;
		back++;
	}
	if (i == 0 || back == 4)
		return;
	if (u[i - 1] >= 0xc0 && len - (i - 1) < claimed_len(u[i - 1]))
		s[i - 1] = '\0';
}

int text_vformat(char *buf, size_t len, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf, len, fmt, ap);

	if (len > 0 && (n < 0 || (size_t)n >= len))
		text_utf8_trim(buf);
	return n;
}

int text_format(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = text_vformat(buf, len, fmt, ap);
	va_end(ap);
	return n;
}

bool text_copy(char *dst, size_t dstlen, const char *src)
{
	size_t n, len;

	if (dstlen == 0)
		return src && *src;
	if (!src)
		src = "";
	len = strlen(src);
	n = text_utf8_prefix(src, len, dstlen - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
	return n < len;
}

char *text_i64(char *buf, size_t len, int64_t v)
{
	char d[21]; /* INT64_MIN: a sign and 19 digits, then NUL */
	char *p = d + sizeof(d) - 1;
	/* the magnitude unsigned: -INT64_MIN does not fit an int64_t */
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;

	*p = '\0';
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	if (len > 0) {
		size_t n = (size_t)(d + sizeof(d) - 1 - p);
		n = n < len ? n : len - 1;
		memcpy(buf, p, n);
		buf[n] = '\0';
	}
	return buf;
}

/* escape_unit's modes (beside text.h's TEXT_*): '"' and '\\' backslashed too (text_quote), or
 * '\\' only (text_escape_line) */
#define ESC_QUOTES 0x100u
#define ESC_BACKSLASH 0x200u

/* What stands for the character at P (AVAIL bytes on) in FLAGS' mode: written to REP (at
 * most 7 bytes, its length returned), *USED set to the bytes it covers. */
static size_t escape_unit(const unsigned char *p, size_t avail, unsigned flags, char rep[8],
                          size_t *used)
{
	*used = 1;
	if ((*p == '\\' && (flags & (ESC_QUOTES | ESC_BACKSLASH))) ||
	    (*p == '"' && (flags & ESC_QUOTES))) {
		rep[0] = '\\';
		rep[1] = (char)*p;
		return 2;
	}
	if (*p == '\n' || *p == '\t' || *p == '\r') {
		if (flags & TEXT_FOLD_NEWLINES) {
			rep[0] = ' ';
			return 1;
		}
		if ((flags & TEXT_KEEP_NEWLINES) && *p != '\r') {
			rep[0] = (char)*p;
			return 1;
		}
		rep[0] = '\\';
		rep[1] = *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r';
		return 2;
	}
	if (*p < 0x20 || *p == 0x7f)
		return (size_t)snprintf(rep, 8, "\\x%02x", *p); /* 4 bytes */
	/* C1 controls (U+0080..U+009F, 0xc2 0x80..0x9f in UTF-8): CSI and OSC on terminals
	 * that take them in 8 bits */
	if (*p == 0xc2 && avail >= 2 && p[1] >= 0x80 && p[1] <= 0x9f) {
		*used = 2;
		return (size_t)snprintf(rep, 8, "\\u%04x", p[1]); /* 6 bytes */
	}
	rep[0] = (char)*p;
	return 1;
}

/* S (NULL: "") escaped in FLAGS' mode into OUT, cut before the escape that would leave no
 * room for the NUL in ROOM bytes (ROOM > 0). Returns whether all of S fit. */
static bool escape_into(const char *s, unsigned flags, char *out, size_t room)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t len = strlen((const char *)p), o = 0, i = 0;
	while (i < len) {
		char rep[8];
		size_t used, rl = escape_unit(p + i, len - i, flags, rep, &used);
		if (o + rl >= room)
			break;
		memcpy(out + o, rep, rl);
		o += rl;
		i += used;
	}
	out[o] = '\0';
	return i == len;
}

char *text_escape_ctl(const char *s, char *out, size_t outlen)
{
	if (outlen == 0)
		return out;
	escape_into(s, 0, out, outlen);
	text_utf8_trim(out);
	return out;
}

int text_escape_line(const char *s, char *out, size_t outlen)
{
	if (outlen == 0)
		return s && *s ? -ENOSPC : 0;
	if (escape_into(s, ESC_BACKSLASH, out, outlen))
		return 0;
	text_utf8_trim(out); /* a character cut short */
	return -ENOSPC;
}

char *text_escape_dup(const char *s, unsigned flags)
{
	/* 6: the longest escape, for one byte at least: never cut */
	size_t room = (s ? strlen(s) : 0) * 6 + 1;
	char *out = malloc(room);
	if (out)
		escape_into(s, flags, out, room);
	return out;
}

char *text_quote(const char *s, char *out, size_t outlen)
{
	if (outlen < 3) {
		if (outlen)
			out[0] = '\0';
		return out;
	}
	out[0] = '"';
	escape_into(s, ESC_QUOTES, out + 1, outlen - 2); /* and room for the closing quote */
	text_utf8_trim(out);                             /* a character cut short */
	size_t o = strlen(out);
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

char *text_url_redact(const char *url, char *out, size_t outlen)
{
	if (!outlen)
		return out;
	/* the authority follows the first "//" (a URL missing its ':' has one too), or starts
	 * the text when there is none: all up to its last '@' is hidden (libcurl ends the
	 * userinfo at the first, but a password with an '@' must not show either) */
	size_t end = strcspn(url, "?#");
	const char *dbl = strstr(url, "//");
	const char *a = dbl && (size_t)(dbl - url) < end ? dbl + 2 : url;
	const char *at = NULL;
	for (const char *c = a; *c && !strchr("/?#", *c); c++)
		if (*c == '@')
			at = c;
	const char *more = url[end] ? "?..." : "";
	if (at)
		text_format(out, outlen, "%.*s...%.*s%s", (int)(a - url), url,
		            (int)(url + end - at), at, more);
	else
		text_format(out, outlen, "%.*s%s", (int)end, url, more);
	return out;
}

char *text_pg_array(const char *const *items, size_t n)
{
	size_t len = 3;
	for (size_t i = 0; i < n; i++)
		len += 2 * strlen(items[i]) + 3;
	char *out = malloc(len), *p = out;
	if (!out)
		return NULL;
	*p++ = '{';
	for (size_t i = 0; i < n; i++) {
		if (i)
			*p++ = ',';
		*p++ = '"';
		for (const char *c = items[i]; *c; c++) {
			if (*c == '"' || *c == '\\')
				*p++ = '\\';
			*p++ = *c;
		}
		*p++ = '"';
	}
	*p++ = '}';
	*p = '\0';
	return out;
}

void text_free_list(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

int text_cmp_ptrs(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}
