/* ABI 1.2's incremental refresh helpers: payload_keys() turns the notification payloads of a
 * run into the partitions (challenge ids, agent ids) it must recompute, or decides that the
 * run recomputes everything and says why; run_replace() writes the one transaction that
 * replaces those partitions' rows. Built on plugin_run.c's statements; plugin.c puts them
 * in the API table. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"
#include "plugin_priv.h"
#include "text.h"

/* Payloads are quoted in the fallback message up to this many bytes. */
#define QUOTE_MAX 80

/* The run falls back to recomputing everything: remember why and log it, once per run (a
 * plugin asking twice, e.g. for two tables, does not log twice). */
__attribute__((format(printf, 2, 3))) static int full_run(struct pgc_run *run, const char *fmt, ...)
{
	char msg[512];
	TEXT_VA_FORMAT(msg, sizeof(msg), fmt);
	if (!run->full_reason) {
		run->full_reason = strdup(msg);
		plugin_log(PGC_LOG_NOTICE,
		           "refreshing everything, not only the notified partitions: %s", msg);
	}
	return 0;
}

/* PAYLOAD as a log can show it: escaped, and cut after QUOTE_MAX bytes. */
static void quote_payload(const char *payload, char *out, size_t outlen)
{
	char head[QUOTE_MAX + 1];
	size_t n = strlen(payload), cut = text_utf8_prefix(payload, n, QUOTE_MAX);

	memcpy(head, payload, cut);
	head[cut] = '\0';
	if (text_escape_line(head, out, outlen) < 0 || n > QUOTE_MAX) {
		size_t len = strlen(out);
		if (len + 4 < outlen)
			memcpy(out + len, "...", 4);
	}
}

/* Whether K has the form FLAGS ask for (see PGC_KEY_* in pgcrond/plugin.h). */
static bool key_has_form(const char *k, unsigned flags)
{
	if (flags & PGC_KEY_INT) {
		k += *k == '-';
		return *k && strspn(k, "0123456789") == strlen(k);
	}
	if (flags & PGC_KEY_UUID) {
		/* 32 hex digits, or 36 characters with the dashes of 8-4-4-4-12 */
		size_t len = strlen(k);
		if (len != 36 && len != 32)
			return false;
		for (size_t i = 0; i < len; i++) {
			bool dash_here = len == 36 && (i == 8 || i == 13 || i == 18 || i == 23);
			if (dash_here ? k[i] != '-' : !isxdigit((unsigned char)k[i]))
				return false;
		}
	}
	return true;
}

/* The key of one payload as text, or NULL after full_run() said why there is none. */
static char *payload_key(struct pgc_run *run, const char *payload, size_t i, size_t n,
                         const char *field, unsigned flags, bool *oom)
{
	char quoted[QUOTE_MAX * 4 + 8];
	json_error_t jerr;
	char *key = NULL;

	quote_payload(payload, quoted, sizeof(quoted));
	json_t *root = json_loads(payload, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		full_run(run, "payload %zu of %zu is not JSON (%s): '%s'", i + 1, n, jerr.text,
		         quoted);
		return NULL;
	}
	json_t *v = json_is_object(root) ? json_object_get(root, field) : NULL;
	if (!json_is_object(root))
		full_run(run, "payload %zu of %zu is not a JSON object: '%s'", i + 1, n, quoted);
	else if (!v)
		full_run(run, "payload %zu of %zu has no \"%s\": '%s'", i + 1, n, field, quoted);
	else if (json_is_string(v) && json_string_length(v) > 0 &&
	         strlen(json_string_value(v)) == json_string_length(v) &&
	         key_has_form(json_string_value(v), flags))
		*oom = !(key = strdup(json_string_value(v)));
	else if (json_is_integer(v) && !(flags & PGC_KEY_UUID)) {
		char buf[32];
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		*oom = !(key = strdup(buf));
	} else
		full_run(run, "payload %zu of %zu has a \"%s\" that is not %s: '%s'", i + 1, n,
		         field,
		         flags & PGC_KEY_UUID  ? "a uuid"
		         : flags & PGC_KEY_INT ? "an integer"
		                               : "a non-empty string or an integer",
		         quoted);
	json_decref(root);
	return key;
}

int plugin_payload_keys(struct pgc_run *run, const char *const *payloads, size_t n_payloads,
                        const char *field, unsigned flags, size_t max_keys,
                        const char *const **keys, size_t *n_keys)
{
	*keys = NULL;
	*n_keys = 0;
	if ((flags & ~(PGC_KEY_UUID | PGC_KEY_INT)) || flags == (PGC_KEY_UUID | PGC_KEY_INT)) {
		plugin_run_error(run, "payload_keys() was given flags 0x%x (a plugin bug)", flags);
		return -EINVAL;
	}
	plugin_run_keys_free(run); /* the reason stays: it is logged once per run */
	if (n_payloads == 0 || !field || !*field)
		return 0; /* not triggered by notifications: everything, silently */
	if (max_keys == 0)
		return full_run(run, "the job allows no partial refresh (max_partitions = 0)");

	char **got = calloc(n_payloads, sizeof(*got));
	size_t n_got = 0;
	bool oom = false;
	if (!got)
		return -ENOMEM;
	for (size_t i = 0; i < n_payloads; i++) {
		char *k = payload_key(run, payloads[i] ? payloads[i] : "", i, n_payloads, field,
		                      flags, &oom);
		if (!k)
			break;
		got[n_got++] = k;
	}
	bool complete = n_got == n_payloads;
	size_t n_distinct = 0;
	if (complete) {
		qsort(got, n_got, sizeof(*got), text_cmp_ptrs);
		for (size_t i = 0; i < n_got; i++) {
			if (n_distinct > 0 && strcmp(got[n_distinct - 1], got[i]) == 0)
				free(got[i]);
			else
				got[n_distinct++] = got[i];
		}
		n_got = n_distinct;
	}
	if (!complete || oom || n_distinct > max_keys) {
		text_free_list(got, n_got);
		if (oom)
			return -ENOMEM;
		if (!complete)
			return 0; /* payload_key() said why */
		return full_run(run,
		                "the %zu payloads name %zu distinct \"%s\" values, more than "
		                "max_partitions = %zu",
		                n_payloads, n_distinct, field, max_keys);
	}
	run->keys = got;
	run->n_keys = n_distinct;
	*keys = (const char *const *)got;
	*n_keys = n_distinct;
	return 1;
}

static int replace_failed(struct pgc_run *run, int rc, const char *what, const char *name)
{
	plugin_run_error(run, "run_replace(): %s \"%.64s\"%s", what, name ? name : "(null)",
	                 rc == -ENAMETOOLONG ? " is too long" : "");
	return rc;
}

int plugin_run_replace(struct pgc_run *run, const char *relation, const char *key_column,
                       const char *select_sql, const char *const *keys, size_t n_keys)
{
	char rel[1024], col[512], where[600] = "", del[sizeof(rel) + sizeof(where) + 16];
	char *sql = NULL, *arr = NULL;
	int rc = -EINVAL;

	if (!relation || (rc = plugin_quote_qualified(relation, rel, sizeof(rel))) < 0)
		return replace_failed(run, rc == -ENOSPC ? -ENAMETOOLONG : -EINVAL,
		                      "cannot replace rows of", relation);
	if (!key_column || (rc = plugin_quote_ident(key_column, col, sizeof(col))) < 0)
		return replace_failed(run, rc == -ENOSPC ? -ENAMETOOLONG : -EINVAL,
		                      "no usable key column", key_column);
	if (!select_sql || !*select_sql)
		return replace_failed(run, -EINVAL, "no SELECT giving the rows of", relation);
	if (n_keys > 0 && !(arr = text_pg_array(keys, n_keys)))
		return -ENOMEM;

	/* the rows of KEYS, given as $1; every row when there are none */
	if (arr)
		snprintf(where, sizeof(where), " WHERE %s OPERATOR(pg_catalog.=) ANY ($1)", col);
	snprintf(del, sizeof(del), "DELETE FROM %s%s", rel, where);
	if ((rc = plugin_run_add(run, "BEGIN")) < 0 || (rc = plugin_run_add(run, del)) < 0 ||
	    (arr && (rc = plugin_run_add_param(run, arr)) < 0))
		goto out;
	if (asprintf(&sql, "INSERT INTO %s %s", rel, select_sql) < 0) {
		sql = NULL;
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = plugin_run_add(run, sql)) < 0 || (rc = plugin_run_add_param(run, arr)) < 0)
		goto out;
	rc = plugin_run_add(run, "COMMIT");
out:
	free(sql);
	free(arr);
	return rc;
}
