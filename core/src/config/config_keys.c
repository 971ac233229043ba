/* The config loader's keys: the job files' key table (every key a job knows, its type, where
 * it is stored and an example for messages; the main file's groups keep theirs beside
 * their parsers, in config_main.c, config_http.c and config_http_call.c), checking a
 * setting against its key and storing it, and the spelling suggestions offered for an
 * unknown key or name. */
#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "config_priv.h"
#include "duration.h"
#include "text.h"

/* ---- spelling suggestions ---------------------------------------------------------- */

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions: "shcedule"
 * is one edit from "schedule"). Words longer than 63 bytes are never suggested. */
static int edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	int d[64][64];

	if (la > 63 || lb > 63)
		return 99;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (int)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			int cost =
			    tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
			int v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < v)
				v = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

void config_suggest(struct suggester *sg, const char *cand)
{
	int d;

	if (!cand || strcmp(cand, sg->word) == 0)
		return;
	d = edit_distance(sg->word, cand);
	/* at most 2 edits, and fewer than the word's length, so "ab" does not suggest "cd" */
	if (d <= 2 && d < (int)strlen(sg->word) && d < sg->best_d) {
		sg->best = cand;
		sg->best_d = d;
	}
}

/* ---- values as written --------------------------------------------------------------- */

bool config_check_utf8(struct loader *L, const config_setting_t *s, const char *file,
                       const char *key, const char *v)
{
	size_t len = strlen(v), bad = text_utf8_invalid_at(v, len);

	if (bad == len)
		return true;
	config_report_at(L, s, file,
	                 "%s is not valid UTF-8 (byte 0x%02x at offset %zu); save the file as "
	                 "UTF-8 (PostgreSQL and the run history accept nothing else)",
	                 key, (unsigned)(unsigned char)v[bad], bad);
	return false;
}

void config_source_free(struct loader *L)
{
	free(L->src.path);
	free(L->src.buf);
	free(L->src.lines);
	L->src.path = NULL;
	L->src.buf = NULL;
	L->src.lines = NULL;
	L->src.len = L->src.n_lines = 0;
}

/* Keep the text of PATH (already read by libconfig, so within CONFIG_FILE_MAX) with an index
 * of its lines. Files are parsed one after the other, so one at a time is enough. */
static bool load_source(struct loader *L, const char *path)
{
	FILE *f;
	size_t n, cap = 0;

	if (L->src.path && strcmp(L->src.path, path) == 0)
		return L->src.buf != NULL;
	config_source_free(L);
	L->src.path = strdup(path);
	if (!L->src.path || !(f = fopen(path, "re")))
		return false;
	L->src.buf = malloc(CONFIG_FILE_MAX + 1);
	if (L->src.buf) {
		n = fread(L->src.buf, 1, CONFIG_FILE_MAX, f);
		L->src.buf[n] = '\0';
		L->src.len = n;
	}
	fclose(f);
	if (!L->src.buf)
		return false;
	for (size_t i = 0; i <= L->src.len; i++) {
		if (i != 0 && L->src.buf[i - 1] != '\n')
			continue;
		if (array_grow(&L->src.lines, L->src.n_lines, &cap, sizeof(*L->src.lines), 256) < 0)
			return false;
		L->src.lines[L->src.n_lines++] = i;
	}
	return true;
}

static bool ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '*';
}

int config_int_source(struct loader *L, const config_setting_t *s, long long *v, char *text,
                      size_t textlen)
{
	const char *file = config_setting_source_file(s), *name = config_setting_name(s);
	int line = setting_line(s);

	if (!file || !name || line < 1 || !load_source(L, file) || (size_t)line > L->src.n_lines)
		return -ENOENT;
	size_t nl = strlen(name);
	const char *buf = L->src.buf, *end = buf + L->src.len;
	/* the name at its line (or a little after, when the line is the group's), then = or : */
	const char *from = buf + L->src.lines[line - 1];
	for (const char *p = from; p && p + nl < end && p < from + 4096;
	     p = memchr(p + 1, name[0], (size_t)(end - p - 1))) {
		if (strncmp(p, name, nl) != 0 || (p > buf && ident_char(p[-1])) ||
		    ident_char(p[nl]))
			continue;
		const char *q = p + nl;
		while (q < end && isspace((unsigned char)*q))
			q++;
		if (q >= end || (*q != '=' && *q != ':'))
			continue;
		q++;
		while (q < end && isspace((unsigned char)*q))
			q++;
		const char *num = q;
		if (q < end && (*q == '-' || *q == '+'))
			q++;
		bool hex = q + 1 < end && q[0] == '0' && (q[1] == 'x' || q[1] == 'X');
		const char *digits = hex ? q + 2 : q;
		const char *e = digits;
		while (e < end && (hex ? isxdigit((unsigned char)*e) : isdigit((unsigned char)*e)))
			e++;
		if (e == digits)
			return -ENOENT;
		text_format(text, textlen, "%.*s", (int)(e - num), num);
		errno = 0;
		char *stop;
		long long val = strtoll(text, &stop, hex ? 16 : 10);
		if (errno == ERANGE)
			return -ERANGE;
		/* the same name earlier on the line (inside a string, say) is not this setting:
		 * what libconfig read is this number's low 32 bits */
		if (config_setting_type(s) == CONFIG_TYPE_INT &&
		    (uint32_t)(unsigned long long)val != (uint32_t)config_setting_get_int(s))
			continue;
		*v = val;
		return 0;
	}
	return -ENOENT;
}

/* A whole number setting as written. Returns false (after reporting, naming RANGE_LO and
 * RANGE_HI) when it does not fit in 64 bits; otherwise *V is the value. */
static bool int_value(struct loader *L, const config_setting_t *s, const char *file,
                      const char *key, long long lo, long long hi, long long *v)
{
	char text[64];
	long long src;
	int type = config_setting_type(s);

	*v = type == CONFIG_TYPE_INT64 ? config_setting_get_int64(s) : config_setting_get_int(s);
	int rc = config_int_source(L, s, &src, text, sizeof(text));
	if (rc == -ERANGE) {
		config_report_at(L, s, file,
		                 "%s %s is out of range; use a number from %lld to %lld", key, text,
		                 lo, hi);
		return false;
	}
	if (rc == 0)
		*v = src; /* libconfig may have wrapped it */
	return true;
}

/* ---- key tables -------------------------------------------------------------------- */

const char *const config_overlap_names[] = {"skip", "queue", "replace", NULL};
static const char *const catchup_values[] = {"once", "skip", NULL};
static const char *const retry_on_values[] = {"transient", "any", NULL};
static const char *const history_values[] = {"all", "failures", NULL};

/* K_ENUM writes one byte: the enums must be packed (config.h). */
_Static_assert(sizeof(enum overlap_policy) == 1, "enum size");
_Static_assert(sizeof(enum catchup_policy) == 1, "enum size");
_Static_assert(sizeof(enum retry_on) == 1, "enum size");
_Static_assert(sizeof(enum history_policy) == 1, "enum size");
_Static_assert(OVERLAP_SKIP == 0 && OVERLAP_QUEUE == 1 && OVERLAP_REPLACE == 2, "overlap order");
_Static_assert(CATCHUP_ONCE == 0 && CATCHUP_SKIP == 1, "catchup order");
_Static_assert(RETRY_ON_TRANSIENT == 0 && RETRY_ON_ANY == 1, "retry_on order");
_Static_assert(HISTORY_ALL == 0 && HISTORY_FAILURES == 1, "history order");

/* (config.h) */
const struct conf_job_more config_job_more_defaults = {
    .retry = {.delay_ms = 30000,
              .max_delay_ms = 600000,
              .backoff = 2.0,
              .on = RETRY_ON_TRANSIENT,
              .on_timeout = false},
    .notify = {.debounce_ms = 5000, .max_delay_ms = 60000},
    .alerts = {.after = 1},
};

struct conf_job_more *config_job_more_own(struct conf_job *j)
{
	if (j->more == &config_job_more_defaults) {
		struct conf_job_more *m = malloc(sizeof(*m));
		if (!m)
			return NULL;
		*m = config_job_more_defaults;
		j->more = m;
	}
	return (struct conf_job_more *)j->more; /* its own: no other job's */
}

#define JOB(field) offsetof(struct conf_job, field)
/* a key most jobs leave at its default: an offset past struct conf_job is one into the job's
 * own conf_job_more (config_apply_job_key) */
#define MORE(field) (sizeof(struct conf_job) + offsetof(struct conf_job_more, field))
const struct key_spec config_job_keys[] = {
    {"name", K_STRING, JOB(name), "\"refresh-lane-distributions\"", NULL, 0, false, NULL},
    {"plugin", K_STRING, JOB(plugin), "\"weakness_patterns\"", NULL, 0, false, NULL},
    {"command", K_STRING, JOB(command), "\"REFRESH MATERIALIZED VIEW CONCURRENTLY my_view\"", NULL,
     0, false, NULL},
    /* config_job_parse() reads it (config_http_call.c) */
    {"http", K_CUSTOM, 0, "{ url = \"https://host.example/hook\"; }", NULL, 0, false, NULL},
    {"database", K_STRING, JOB(database), "\"analytics\"", NULL, 0, false, NULL},
    {"schedule", K_STRING, JOB(schedule), "\"*/30 * * * *\"", NULL, 0, false, NULL},
    {"after", K_NAMES, JOB(after), "[ \"refresh-lane-distributions\" ]", NULL, 0, false, NULL},
    {"enabled", K_BOOL, JOB(enabled), "true", NULL, 0, false, NULL},
    {"timeout", K_DURATION, JOB(timeout_ms), "\"10m\"", NULL, 0, false, NULL},
    {"spread", K_DURATION, MORE(cal.spread_ms), "\"30s\"", NULL, 0, false, NULL},
    {"overlap", K_ENUM, JOB(overlap), "\"skip\"", config_overlap_names, 0, false, NULL},
    {"retries", K_INT, JOB(retries), "3", NULL, 0, false, NULL},
    {"retry_delay", K_DURATION, MORE(retry.delay_ms), "\"30s\"", NULL, 0, false, NULL},
    {"retry_backoff", K_FLOAT, MORE(retry.backoff), "2.0", NULL, 1, false, NULL},
    {"retry_max_delay", K_DURATION, MORE(retry.max_delay_ms), "\"10m\"", NULL, 0, false, NULL},
    {"retry_on_timeout", K_BOOL, MORE(retry.on_timeout), "true", NULL, 0, false, NULL},
    {"retry_on", K_ENUM, MORE(retry.on), "\"transient\"", retry_on_values, 0, false, NULL},
    {"catchup", K_ENUM, JOB(catchup), "\"once\"", catchup_values, 0, false, NULL},
    {"history", K_ENUM, JOB(history), "\"failures\"", history_values, 0, false, NULL},
    {"listen", K_STRING, MORE(notify.listen), "\"submission_scored\"", NULL, 0, false, NULL},
    {"debounce", K_DURATION, MORE(notify.debounce_ms), "\"5s\"", NULL, 0, false, NULL},
    {"max_delay", K_DURATION, MORE(notify.max_delay_ms), "\"60s\"", NULL, 0, false, NULL},
    {"alert_after", K_INT, MORE(alerts.after), "3", NULL, 1, false, NULL},
    {"max_staleness", K_DURATION, MORE(alerts.max_staleness_ms), "\"1h\"", NULL, 0, false, NULL},
    {"freshness", K_DURATION, MORE(fresh.sla_ms), "\"15m\"", NULL, 0, false, NULL},
    {"sources", K_NAMES, MORE(fresh.sources), "[ \"public.submissions\" ]", NULL, 0, false, NULL},
    {"warn_duration", K_DURATION, MORE(alerts.warn_duration_ms), "\"2s\"", NULL, 0, false, NULL},
    {"timezone", K_STRING, MORE(cal.timezone), "\"Europe/Berlin\"", NULL, 0, false, NULL},
    {"skip_dates", K_STRING, MORE(cal.skip_dates), "\"holidays\"", NULL, 0, false, NULL},
    {"only_dates", K_STRING, MORE(cal.only_dates), "\"closing-days\"", NULL, 0, false, NULL},
    {NULL, 0, 0, NULL, NULL, 0, false, NULL},
};

const struct key_spec *config_find_key(const struct key_spec *keys, const char *name)
{
	for (const struct key_spec *k = keys; k->name; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

const char *config_closest_key(const struct key_spec *keys, const char *word)
{
	struct suggester sg = {word, NULL, 99};

	for (const struct key_spec *k = keys; k->name; k++)
		config_suggest(&sg, k->name);
	return sg.best;
}

void config_suggest_job_keys(struct suggester *sg)
{
	for (const struct key_spec *k = config_job_keys; k->name; k++)
		config_suggest(sg, k->name);
}

bool config_valid_job_name(const char *name)
{
	size_t n = 0;

	for (const char *p = name; *p; p++, n++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-')
			return false;
	return n > 0 && n <= JOB_NAME_MAX;
}

/* "one of "a", "b", "c"" for messages. */
static void list_values(const char *const *values, char *out, size_t outlen)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; values[i]; i++) {
		int w = snprintf(out + o, outlen - o, "%s\"%s\"", i ? ", " : "", values[i]);
		if (w < 0 || (size_t)w >= outlen - o)
			return;
		o += (size_t)w;
	}
}

/* The index of V in K's values, or -1 after reporting that it is none of them. */
static int value_index(struct loader *L, const config_setting_t *s, const char *file,
                       const struct key_spec *k, const char *v)
{
	char vals[256];

	for (int i = 0; k->values[i]; i++)
		if (strcmp(v, k->values[i]) == 0)
			return i;
	list_values(k->values, vals, sizeof(vals));
	config_report_at(L, s, file, "%s \"%s\" is not valid; use one of %s", k->name, v, vals);
	return -1;
}

static bool is_blank(const char *s)
{
	for (; *s; s++)
		if (!isspace((unsigned char)*s))
			return false;
	return true;
}

bool config_apply_key(struct loader *L, const config_setting_t *s, const struct key_spec *k,
                      void *base, const char *file)
{
	char *field = (char *)base + k->off;
	int type = config_setting_type(s);

	switch (k->type) {
	case K_STRING:
	case K_CHOICE: {
		if (type != CONFIG_TYPE_STRING) {
			config_report_at(L, s, file, "%s must be a string like %s", k->name,
			                 k->example);
			return false;
		}
		const char *v = config_setting_get_string(s);
		if (!config_check_utf8(L, s, file, k->name, v))
			return false;
		if (!k->allow_empty && is_blank(v)) {
			config_report_at(L, s, file, "%s is empty; write a value like %s", k->name,
			                 k->example);
			return false;
		}
		if (k->type == K_CHOICE && value_index(L, s, file, k, v) < 0)
			return false;
		char **dst = (char **)(void *)field;
		free(*dst);
		*dst = config_dup_str(L, v);
		return true;
	}
	case K_ENUM: {
		if (type != CONFIG_TYPE_STRING) {
			char vals[256];
			list_values(k->values, vals, sizeof(vals));
			config_report_at(L, s, file, "%s must be a string, one of %s", k->name,
			                 vals);
			return false;
		}
		const char *v = config_setting_get_string(s);
		int i;
		if (!config_check_utf8(L, s, file, k->name, v) ||
		    (i = value_index(L, s, file, k, v)) < 0)
			return false;
		*(uint8_t *)field = (uint8_t)i;
		return true;
	}
	case K_INT: {
		long long v;
		if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
			config_report_at(L, s, file, "%s must be a whole number like %s", k->name,
			                 k->example);
			return false;
		}
		if (!int_value(L, s, file, k->name, k->min, CONFIG_INT_MAX, &v))
			return false;
		if (v < k->min) {
			config_report_at(L, s, file, "%s must be at least %d, not %lld", k->name,
			                 k->min, v);
			return false;
		}
		if (v > CONFIG_INT_MAX) {
			config_report_at(L, s, file,
			                 "%s %lld is out of range; use a number from %d to %d",
			                 k->name, v, k->min, CONFIG_INT_MAX);
			return false;
		}
		int iv = (int)v;
		memcpy(field, &iv, sizeof(iv));
		return true;
	}
	case K_BOOL: {
		if (type != CONFIG_TYPE_BOOL) {
			config_report_at(L, s, file, "%s must be true or false, without quotes",
			                 k->name);
			return false;
		}
		bool b = config_setting_get_bool(s) != 0;
		memcpy(field, &b, sizeof(b));
		return true;
	}
	case K_DURATION: {
		char err[256];
		int64_t ms;
		if (type != CONFIG_TYPE_STRING) {
			config_report_at(L, s, file, "%s must be a string duration like %s",
			                 k->name, k->example);
			return false;
		}
		if (duration_parse(config_setting_get_string(s), &ms, err, sizeof(err)) < 0) {
			config_report_at(L, s, file, "%s: %s", k->name, err);
			return false;
		}
		if (k->min > 0 && ms < (int64_t)k->min * 1000) {
			config_report_at(L, s, file, "%s \"%s\" is too short; use at least \"%ds\"",
			                 k->name, config_setting_get_string(s), k->min);
			return false;
		}
		memcpy(field, &ms, sizeof(ms));
		return true;
	}
	case K_FLOAT: {
		double v;
		if (type == CONFIG_TYPE_FLOAT)
			v = config_setting_get_float(s);
		else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
			long long iv;
			if (!int_value(L, s, file, k->name, k->min, 1000, &iv))
				return false;
			v = (double)iv;
		} else {
			config_report_at(L, s, file, "%s must be a number like %s", k->name,
			                 k->example);
			return false;
		}
		if (!(v >= k->min) || v > 1000) { /* also catches NaN */
			config_report_at(L, s, file, "%s must be between %d and 1000, not %g",
			                 k->name, k->min, v);
			return false;
		}
		memcpy(field, &v, sizeof(v));
		return true;
	}
	case K_NAMES: {
		char ***dst = (char ***)(void *)field;
		uint32_t *count = (uint32_t *)(void *)(field + sizeof(char **));
		int n = config_setting_length(s);
		bool ok = true;

		_Static_assert(offsetof(struct conf_job, n_after) ==
		                   offsetof(struct conf_job, after) + sizeof(char **),
		               "n_after follows after");
		_Static_assert(offsetof(struct conf_job_more, fresh.n_sources) ==
		                   offsetof(struct conf_job_more, fresh.sources) + sizeof(char **),
		               "n_sources follows sources");
		const char *what = strcmp(k->name, "sources") == 0 ? "table names" : "job names";
		if ((type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST) ||
		    (n > 0 &&
		     config_setting_type(config_setting_get_elem(s, 0)) != CONFIG_TYPE_STRING)) {
			config_report_at(L, s, file, "%s must be an array of %s like %s", k->name,
			                 what, k->example);
			return false;
		}
		*dst = calloc(n ? (size_t)n : 1, sizeof(char *));
		if (!*dst) {
			L->oom = true;
			return false;
		}
		*count = 0;
		for (int i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
			if (config_setting_type(e) != CONFIG_TYPE_STRING) {
				config_report_at(L, e, file, "%s must be an array of %s like %s",
				                 k->name, what, k->example);
				ok = false;
				continue;
			}
			const char *v = config_setting_get_string(e);
			if (!config_check_utf8(L, e, file, k->name, v)) {
				ok = false;
				continue;
			}
			bool dup = false;
			for (size_t j = 0; j < *count; j++)
				dup |= strcmp((*dst)[j], v) == 0;
			if (dup) {
				config_report_at(L, e, file, "%s lists \"%s\" twice; remove one",
				                 k->name, v);
				ok = false;
				continue;
			}
			(*dst)[(*count)++] = config_dup_str(L, v);
		}
		return ok;
	}
	case K_CUSTOM:
		k->fn(L, s, file);
		return true;
	}
	return false;
}

bool config_apply_job_key(struct loader *L, const config_setting_t *s, const struct key_spec *k,
                          struct conf_job *j, const char *file)
{
	if (k->off < sizeof(*j))
		return config_apply_key(L, s, k, j, file);

	struct conf_job_more *more = config_job_more_own(j);
	struct key_spec in_more = *k;

	if (!more) {
		L->oom = true;
		return false;
	}
	in_more.off -= sizeof(*j);
	return config_apply_key(L, s, &in_more, more, file);
}

void config_report_unknown(struct loader *L, const config_setting_t *s, const char *file,
                           const struct key_spec *keys, const char *where, const char *hint)
{
	const char *name = config_setting_name(s);
	const char *best = config_closest_key(keys, name);

	if (best)
		config_report_at(L, s, file, "unknown key \"%s\"%s; did you mean \"%s\"?", name,
		                 where, best);
	else
		config_report_at(L, s, file, "unknown key \"%s\"%s; %s", name, where, hint);
}

void config_parse_group(struct loader *L, const config_setting_t *s, const char *file,
                        const struct key_spec *keys, void *base, const char *where,
                        const char *hint)
{
	int n = config_setting_length(s);

	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
		const struct key_spec *k = config_find_key(keys, config_setting_name(m));
		if (k)
			config_apply_key(L, m, k, base, file);
		else
			config_report_unknown(L, m, file, keys, where, hint);
	}
}

bool config_is_job_key(const char *name)
{
	return config_find_key(config_job_keys, name) != NULL;
}
