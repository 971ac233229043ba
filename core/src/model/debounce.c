#include "debounce.h"
#include "array.h"

#include <string.h>

#include "text.h"

void debounce_init(struct debounce *d, int64_t debounce_ms, int64_t max_delay_ms)
{
	memset(d, 0, sizeof(*d));
	d->debounce_ms = debounce_ms;
	d->max_delay_ms = max_delay_ms;
	d->first_ms = d->last_ms = -1;
}

void debounce_free(struct debounce *d)
{
	text_free_list(d->payloads, d->n);
	debounce_init(d, d->debounce_ms, d->max_delay_ms);
}

/* True if S is valid UTF-8 (text.h) without control characters other than tab/newline/CR. */
static bool payload_ok(const char *s, size_t len)
{
	if (text_utf8_invalid_at(s, len) != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
			return false;
	}
	return true;
}

enum debounce_result debounce_note(struct debounce *d, int64_t now_ms, const char *payload)
{
	if (d->first_ms < 0)
		d->first_ms = now_ms;
	d->last_ms = now_ms;
	if (!payload || !*payload)
		return DEBOUNCE_KEPT;

	size_t len = strlen(payload);
	if (len > DEBOUNCE_MAX_PAYLOAD)
		return DEBOUNCE_OVERSIZED;
	if (!payload_ok(payload, len))
		return DEBOUNCE_MALFORMED;
	char *copy = NULL; /* no room (the bounds, or memory): noted as overflowed */
	if (d->n >= DEBOUNCE_MAX_PAYLOADS || d->bytes + len > DEBOUNCE_MAX_BYTES ||
	    array_grow(&d->payloads, d->n, &d->cap, sizeof(*d->payloads), 16) < 0 ||
	    !(copy = strdup(payload))) {
		d->overflowed = true;
		return DEBOUNCE_NOTED;
	}
	d->payloads[d->n++] = copy;
	d->bytes += len;
	return DEBOUNCE_KEPT;
}

int64_t debounce_due(const struct debounce *d)
{
	if (d->first_ms < 0)
		return -1;
	int64_t quiet = d->last_ms + d->debounce_ms;
	int64_t cap = d->first_ms + d->max_delay_ms;
	return quiet < cap ? quiet : cap;
}

char **debounce_take(struct debounce *d, size_t *n, bool *overflowed)
{
	char **out = d->payloads;
	*n = d->n;
	if (overflowed)
		*overflowed = d->overflowed;
	debounce_init(d, d->debounce_ms, d->max_delay_ms); /* afresh: the payloads are OUT's */
	return out;
}
