/* Loading pgcrond.conf and the job files of its conf_dir with libconfig.
 *
 * The loader walks every setting of every file once, checks it against a table of known
 * keys, and reports each problem it meets into the caller's diag list instead of stopping,
 * so one `pgcrond check` shows everything that is wrong. Checks that need the whole
 * picture (history database, unknown "after" names) run after all files are read; the
 * diagnostics are then sorted by file and line so they read like a compiler's. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"

#define JOB_NAME_MAX 63
#define CHANNEL_MAX 63 /* PostgreSQL identifiers: NAMEDATALEN - 1 */
#define MSG_MAX 1024

/* ---- the loader's state ------------------------------------------------------------ */

struct loader {
	struct pgc_config *cfg;
	struct diag_list *dl;
	size_t dl_start; /* diagnostics before this index belong to the caller */
	size_t n_errors;
	bool oom;
	char *main_dir; /* directory of the main file; "" when it has none */
	struct stat main_st;
	bool have_main_st;
	char **files; /* every file read, in order: ranks diagnostics for sorting */
	size_t n_files;
	/* lines of main-file settings, for messages about them found later (0: absent) */
	int main_line[16];
	int history_db_line;
	size_t jobs_cap;
};

static void report(struct loader *L, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void report(struct loader *L, const char *file, int line, const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap); /* a long message cut short still helps */
	va_end(ap);
	diag_add(L->dl, file, line, "%s", msg);
	L->n_errors++;
}

/* The file a setting came from: libconfig knows it even inside @include files. */
static const char *setting_file(const config_setting_t *s, const char *fallback)
{
	const char *f = config_setting_source_file(s);
	return f ? f : fallback;
}

static int setting_line(const config_setting_t *s)
{
	return (int)config_setting_source_line(s);
}

static void report_at(struct loader *L, const config_setting_t *s, const char *fallback_file,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void report_at(struct loader *L, const config_setting_t *s, const char *fallback_file,
		      const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	report(L, setting_file(s, fallback_file), setting_line(s), "%s", msg);
}

static char *dup_str(struct loader *L, const char *s)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		L->oom = true;
	return d;
}

/* DIR/NAME, or NAME alone when it is absolute or DIR is empty (the current directory). */
static char *join_path(struct loader *L, const char *dir, const char *name)
{
	size_t dl, nl;
	char *p;

	if (name[0] == '/' || !dir || !dir[0])
		return dup_str(L, name);
	if (strcmp(name, ".") == 0) /* conf_dir = "." : the main file's own directory */
		return dup_str(L, dir);
	dl = strlen(dir);
	nl = strlen(name);
	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	p = malloc(dl + 1 + nl + 1);
	if (!p) {
		L->oom = true;
		return NULL;
	}
	memcpy(p, dir, dl);
	p[dl] = '/';
	memcpy(p + dl + 1, name, nl + 1);
	return p;
}

static bool grow(struct loader *L, void **items, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return true;
	size_t ncap = *cap ? *cap * 2 : 8;
	void *p = realloc(*items, ncap * size);
	if (!p) {
		L->oom = true;
		return false;
	}
	*items = p;
	*cap = ncap;
	return true;
}

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
			int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
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

struct suggester {
	const char *word;
	const char *best;
	int best_d;
};

static void suggest_consider(struct suggester *sg, const char *cand)
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

/* ---- key tables -------------------------------------------------------------------- */

enum key_type {
	K_STRING,   /* char *, not blank unless allow_empty */
	K_CHOICE,   /* char *, one of values[] */
	K_ENUM,     /* int-sized enum, the index into values[] */
	K_INT,      /* int >= min */
	K_BOOL,     /* bool */
	K_DURATION, /* int64_t milliseconds */
	K_FLOAT,    /* double >= min */
	K_NAMES,    /* char ** + size_t count: an array of strings */
	K_CUSTOM,   /* handled by fn */
};

struct key_spec {
	const char *name;
	enum key_type type;
	size_t off;
	const char *example; /* a value shown in type errors */
	const char *const *values;
	int min;
	bool allow_empty;
	void (*fn)(struct loader *L, const config_setting_t *s, const char *file);
};

static const char *const overlap_values[] = {"skip", "queue", "replace", NULL};
static const char *const catchup_values[] = {"once", "skip", NULL};
static const char *const retry_on_values[] = {"transient", "any", NULL};
static const char *const log_level_values[] = {"error", "warning", "notice", "info", "debug", NULL};
static const char *const sink_values[] = {"log", "notify", "webhook", "exec", NULL};

/* K_ENUM writes through an int: the enums must be int-sized. */
_Static_assert(sizeof(enum overlap_policy) == sizeof(int), "enum size");
_Static_assert(sizeof(enum catchup_policy) == sizeof(int), "enum size");
_Static_assert(sizeof(enum retry_on) == sizeof(int), "enum size");
_Static_assert(OVERLAP_SKIP == 0 && OVERLAP_QUEUE == 1 && OVERLAP_REPLACE == 2, "overlap order");
_Static_assert(CATCHUP_ONCE == 0 && CATCHUP_SKIP == 1, "catchup order");
_Static_assert(RETRY_ON_TRANSIENT == 0 && RETRY_ON_ANY == 1, "retry_on order");

static void parse_databases(struct loader *L, const config_setting_t *s, const char *file);
static void parse_history(struct loader *L, const config_setting_t *s, const char *file);
static void parse_alerts(struct loader *L, const config_setting_t *s, const char *file);

#define CFG(field) offsetof(struct pgc_config, field)
static const struct key_spec main_keys[] = {
	{"timezone", K_STRING, CFG(timezone), "\"UTC\"", NULL, 0, false, NULL},
	{"plugin_dir", K_STRING, CFG(plugin_dir), "\"/usr/lib/pgcrond/plugins\"", NULL, 0, false, NULL},
	{"conf_dir", K_STRING, CFG(conf_dir), "\"/etc/pgcrond/conf.d\"", NULL, 0, false, NULL},
	{"state_dir", K_STRING, CFG(state_dir), "\"/var/lib/pgcrond\"", NULL, 0, false, NULL},
	{"log_level", K_CHOICE, CFG(log_level), "\"info\"", log_level_values, 0, false, NULL},
	{"databases", K_CUSTOM, 0, NULL, NULL, 0, false, parse_databases},
	{"history", K_CUSTOM, 0, NULL, NULL, 0, false, parse_history},
	{"max_running", K_INT, CFG(max_running), "32", NULL, 1, false, NULL},
	{"shutdown_grace", K_DURATION, CFG(shutdown_grace_ms), "\"30s\"", NULL, 0, false, NULL},
	{"alerts", K_CUSTOM, 0, NULL, NULL, 0, false, parse_alerts},
	{"alert_repeat", K_DURATION, CFG(alert_repeat_ms), "\"1h\"", NULL, 0, false, NULL},
	{NULL, 0, 0, NULL, NULL, 0, false, NULL},
};

#define DB(field) offsetof(struct conf_database, field)
static const struct key_spec database_keys[] = {
	{"conninfo", K_STRING, DB(conninfo), "\"host=db1 dbname=analytics\"", NULL, 0, true, NULL},
	{"pool", K_INT, DB(pool), "4", NULL, 1, false, NULL},
	{NULL, 0, 0, NULL, NULL, 0, false, NULL},
};

#define HIST(field) offsetof(struct pgc_config, field)
static const struct key_spec history_keys[] = {
	{"database", K_STRING, HIST(history_database), "\"analytics\"", NULL, 0, false, NULL},
	{"retain", K_DURATION, HIST(history_retain_ms), "\"30d\"", NULL, 0, false, NULL},
	{NULL, 0, 0, NULL, NULL, 0, false, NULL},
};

#define SINK(field) offsetof(struct conf_alert_sink, field)
static const struct key_spec sink_keys[] = {
	{"sink", K_CHOICE, SINK(sink), "\"log\"", sink_values, 0, false, NULL},
	{"database", K_STRING, SINK(database), "\"analytics\"", NULL, 0, false, NULL},
	{"channel", K_STRING, SINK(channel), "\"pgcrond_alerts\"", NULL, 0, false, NULL},
	{"url", K_STRING, SINK(url), "\"https://alerts.example.com/hook\"", NULL, 0, false, NULL},
	{"command", K_STRING, SINK(command), "\"/usr/local/bin/page-oncall\"", NULL, 0, false, NULL},
	{"timeout", K_DURATION, SINK(timeout_ms), "\"5s\"", NULL, 0, false, NULL},
	{NULL, 0, 0, NULL, NULL, 0, false, NULL},
};

#define JOB(field) offsetof(struct conf_job, field)
static const struct key_spec job_keys[] = {
	{"name", K_STRING, JOB(name), "\"refresh-lane-distributions\"", NULL, 0, false, NULL},
	{"plugin", K_STRING, JOB(plugin), "\"weakness_patterns\"", NULL, 0, false, NULL},
	{"command", K_STRING, JOB(command), "\"REFRESH MATERIALIZED VIEW CONCURRENTLY my_view\"", NULL, 0,
	 false, NULL},
	{"database", K_STRING, JOB(database), "\"analytics\"", NULL, 0, false, NULL},
	{"schedule", K_STRING, JOB(schedule), "\"*/30 * * * *\"", NULL, 0, false, NULL},
	{"after", K_NAMES, JOB(after), "[ \"refresh-lane-distributions\" ]", NULL, 0, false, NULL},
	{"enabled", K_BOOL, JOB(enabled), "true", NULL, 0, false, NULL},
	{"timeout", K_DURATION, JOB(timeout_ms), "\"10m\"", NULL, 0, false, NULL},
	{"overlap", K_ENUM, JOB(overlap), "\"skip\"", overlap_values, 0, false, NULL},
	{"retries", K_INT, JOB(retries), "3", NULL, 0, false, NULL},
	{"retry_delay", K_DURATION, JOB(retry_delay_ms), "\"30s\"", NULL, 0, false, NULL},
	{"retry_backoff", K_FLOAT, JOB(retry_backoff), "2.0", NULL, 1, false, NULL},
	{"retry_max_delay", K_DURATION, JOB(retry_max_delay_ms), "\"10m\"", NULL, 0, false, NULL},
	{"retry_on_timeout", K_BOOL, JOB(retry_on_timeout), "true", NULL, 0, false, NULL},
	{"retry_on", K_ENUM, JOB(retry_on), "\"transient\"", retry_on_values, 0, false, NULL},
	{"catchup", K_ENUM, JOB(catchup), "\"once\"", catchup_values, 0, false, NULL},
	{"listen", K_STRING, JOB(listen), "\"submission_scored\"", NULL, 0, false, NULL},
	{"debounce", K_DURATION, JOB(debounce_ms), "\"5s\"", NULL, 0, false, NULL},
	{"max_delay", K_DURATION, JOB(max_delay_ms), "\"60s\"", NULL, 0, false, NULL},
	{"alert_after", K_INT, JOB(alert_after), "3", NULL, 1, false, NULL},
	{"max_staleness", K_DURATION, JOB(max_staleness_ms), "\"1h\"", NULL, 0, false, NULL},
	{"warn_duration", K_DURATION, JOB(warn_duration_ms), "\"2s\"", NULL, 0, false, NULL},
	{NULL, 0, 0, NULL, NULL, 0, false, NULL},
};

static const struct key_spec *find_key(const struct key_spec *keys, const char *name)
{
	for (const struct key_spec *k = keys; k->name; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

static const char *closest_key(const struct key_spec *keys, const char *word)
{
	struct suggester sg = {word, NULL, 99};

	for (const struct key_spec *k = keys; k->name; k++)
		suggest_consider(&sg, k->name);
	return sg.best;
}

const char *config_closest_job_key(const char *key)
{
	return closest_key(job_keys, key);
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

static bool is_blank(const char *s)
{
	for (; *s; s++)
		if (!isspace((unsigned char)*s))
			return false;
	return true;
}

/* Check and store one setting S described by K into the struct at BASE. Returns false
 * (after reporting) when the value is unusable. */
static bool apply_key(struct loader *L, const config_setting_t *s, const struct key_spec *k,
		      void *base, const char *file)
{
	char *field = (char *)base + k->off;
	int type = config_setting_type(s);

	switch (k->type) {
	case K_STRING:
	case K_CHOICE: {
		if (type != CONFIG_TYPE_STRING) {
			report_at(L, s, file, "%s must be a string like %s", k->name, k->example);
			return false;
		}
		const char *v = config_setting_get_string(s);
		if (!k->allow_empty && is_blank(v)) {
			report_at(L, s, file, "%s is empty; write a value like %s", k->name, k->example);
			return false;
		}
		if (k->type == K_CHOICE) {
			size_t i;
			for (i = 0; k->values[i]; i++)
				if (strcmp(v, k->values[i]) == 0)
					break;
			if (!k->values[i]) {
				char vals[256];
				list_values(k->values, vals, sizeof(vals));
				report_at(L, s, file, "%s \"%s\" is not valid; use one of %s", k->name, v,
					  vals);
				return false;
			}
		}
		char **dst = (char **)(void *)field;
		free(*dst);
		*dst = dup_str(L, v);
		return true;
	}
	case K_ENUM: {
		char vals[256];
		list_values(k->values, vals, sizeof(vals));
		if (type != CONFIG_TYPE_STRING) {
			report_at(L, s, file, "%s must be a string, one of %s", k->name, vals);
			return false;
		}
		const char *v = config_setting_get_string(s);
		for (int i = 0; k->values[i]; i++) {
			if (strcmp(v, k->values[i]) == 0) {
				memcpy(field, &i, sizeof(i));
				return true;
			}
		}
		report_at(L, s, file, "%s \"%s\" is not valid; use one of %s", k->name, v, vals);
		return false;
	}
	case K_INT: {
		long long v;
		if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
			report_at(L, s, file, "%s must be a whole number like %s", k->name, k->example);
			return false;
		}
		v = type == CONFIG_TYPE_INT ? config_setting_get_int(s) : config_setting_get_int64(s);
		if (v < k->min) {
			report_at(L, s, file, "%s must be at least %d, not %lld", k->name, k->min, v);
			return false;
		}
		if (v > 1000000000) {
			report_at(L, s, file, "%s is too large (%lld); use at most 1000000000", k->name, v);
			return false;
		}
		int iv = (int)v;
		memcpy(field, &iv, sizeof(iv));
		return true;
	}
	case K_BOOL: {
		if (type != CONFIG_TYPE_BOOL) {
			report_at(L, s, file, "%s must be true or false, without quotes", k->name);
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
			report_at(L, s, file, "%s must be a string duration like %s", k->name, k->example);
			return false;
		}
		if (duration_parse(config_setting_get_string(s), &ms, err, sizeof(err)) < 0) {
			report_at(L, s, file, "%s: %s", k->name, err);
			return false;
		}
		memcpy(field, &ms, sizeof(ms));
		return true;
	}
	case K_FLOAT: {
		double v;
		if (type == CONFIG_TYPE_FLOAT)
			v = config_setting_get_float(s);
		else if (type == CONFIG_TYPE_INT)
			v = config_setting_get_int(s);
		else if (type == CONFIG_TYPE_INT64)
			v = (double)config_setting_get_int64(s);
		else {
			report_at(L, s, file, "%s must be a number like %s", k->name, k->example);
			return false;
		}
		if (!(v >= k->min) || v > 1000) { /* also catches NaN */
			report_at(L, s, file, "%s must be between %d and 1000, not %g", k->name, k->min, v);
			return false;
		}
		memcpy(field, &v, sizeof(v));
		return true;
	}
	case K_NAMES: {
		char ***dst = (char ***)(void *)field;
		size_t *count = (size_t *)(void *)(field + sizeof(char **));
		int n = config_setting_length(s);
		bool ok = true;

		_Static_assert(offsetof(struct conf_job, n_after) ==
				       offsetof(struct conf_job, after) + sizeof(char **),
			       "n_after follows after");
		if ((type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST) ||
		    (n > 0 && config_setting_type(config_setting_get_elem(s, 0)) != CONFIG_TYPE_STRING)) {
			report_at(L, s, file, "%s must be an array of job names like %s", k->name,
				  k->example);
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
				report_at(L, e, file, "%s must be an array of job names like %s", k->name,
					  k->example);
				ok = false;
				continue;
			}
			const char *v = config_setting_get_string(e);
			bool dup = false;
			for (size_t j = 0; j < *count; j++)
				dup |= strcmp((*dst)[j], v) == 0;
			if (dup) {
				report_at(L, e, file, "%s lists \"%s\" twice; remove one", k->name, v);
				ok = false;
				continue;
			}
			(*dst)[(*count)++] = dup_str(L, v);
		}
		return ok;
	}
	case K_CUSTOM:
		k->fn(L, s, file);
		return true;
	}
	return false;
}

/* Report a key not in KEYS, suggesting the closest one. WHERE is "" or " in job \"x\"". */
static void report_unknown(struct loader *L, const config_setting_t *s, const char *file,
			   const struct key_spec *keys, const char *where, const char *hint)
{
	const char *name = config_setting_name(s);
	const char *best = closest_key(keys, name);

	if (best)
		report_at(L, s, file, "unknown key \"%s\"%s; did you mean \"%s\"?", name, where, best);
	else
		report_at(L, s, file, "unknown key \"%s\"%s; %s", name, where, hint);
}

/* Walk group S: known keys into BASE, others reported. */
static void parse_group(struct loader *L, const config_setting_t *s, const char *file,
			const struct key_spec *keys, void *base, const char *where, const char *hint)
{
	int n = config_setting_length(s);

	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
		const struct key_spec *k = find_key(keys, config_setting_name(m));
		if (k)
			apply_key(L, m, k, base, file);
		else
			report_unknown(L, m, file, keys, where, hint);
	}
}

/* ---- libconfig files --------------------------------------------------------------- */

static void remember_file(struct loader *L, const char *path)
{
	char **f = realloc(L->files, (L->n_files + 1) * sizeof(*f));
	if (!f) {
		L->oom = true;
		return;
	}
	L->files = f;
	L->files[L->n_files] = dup_str(L, path);
	if (L->files[L->n_files])
		L->n_files++;
}

/* Lines in PATH (a last line without a newline counts), or 0 if it cannot be read. */
static int count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	int c, prev = '\n', n = 0;

	if (!f)
		return 0;
	while ((c = getc(f)) != EOF) {
		n += c == '\n';
		prev = c;
	}
	fclose(f);
	return n + (prev != '\n');
}

/* Read PATH into CF; on failure report why, in words, and return false. */
static bool read_file(struct loader *L, config_t *cf, const char *path, const char *include_dir)
{
	FILE *f;

	remember_file(L, path);
	/* libconfig says only "file I/O error"; ask the system for the reason first */
	f = fopen(path, "r");
	if (!f) {
		report(L, path, 0, "cannot read the file: %s; check the path and its permissions",
		       strerror(errno));
		return false;
	}
	fclose(f);
	config_init(cf);
	config_set_include_dir(cf, include_dir && *include_dir ? include_dir : ".");
	if (config_read_file(cf, path))
		return true;

	const char *efile = config_error_file(cf) ? config_error_file(cf) : path;
	int eline = config_error_line(cf);
	const char *text = config_error_text(cf) ? config_error_text(cf) : "error";

	int last = strcmp(efile, path) == 0 ? count_lines(path) : 0;
	if (strcmp(text, "syntax error") == 0 && last > 0 && eline > last)
		/* libconfig places an error at the end of the file past the last line */
		report(L, efile, last,
		       "the file ends too early; a brace, bracket, parenthesis or quote opened above is "
		       "not closed");
	else if (strcmp(text, "syntax error") == 0)
		report(L, efile, eline,
		       "syntax error; check this line and the one before for a missing \";\" or \"=\", "
		       "an unclosed quote, bracket or brace, or a name with characters other than "
		       "letters, digits, \"_\" and \"-\"");
	else if (strcmp(text, "duplicate setting name") == 0)
		report(L, efile, eline,
		       "this setting appears twice in the same group; keep one (for several jobs in one "
		       "file write jobs = ( { ... }, { ... } );)");
	else if (strcmp(text, "mismatched element type in array") == 0)
		report(L, efile, eline,
		       "an array [ ... ] holds values of different types; give every element the same "
		       "type, like [ \"a\", \"b\" ]");
	else if (strcmp(text, "cannot open include file") == 0)
		report(L, efile, eline,
		       "cannot open the @include file; give its path relative to %s or an absolute path",
		       include_dir && *include_dir ? include_dir : ".");
	else if (config_error_type(cf) == CONFIG_ERR_FILE_IO)
		report(L, efile, eline, "cannot read the file; check the path and its permissions");
	else
		report(L, efile, eline, "%s; fix the syntax here", text);
	config_destroy(cf);
	return false;
}

/* ---- the main file ----------------------------------------------------------------- */

/* A loose libpq conninfo check that needs no libpq: key=value pairs (values quoted with
 * '...' or bare), or a postgres:// URI. Returns NULL or what is wrong. */
static const char *conninfo_problem(const char *ci)
{
	const char *p = ci;

	if (strncmp(ci, "postgresql://", 13) == 0 || strncmp(ci, "postgres://", 11) == 0)
		return NULL;
	for (;;) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			return NULL;
		if (!isalpha((unsigned char)*p) && *p != '_')
			return "is not a connection string";
		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '=')
			return "is not a connection string";
		p++;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\'') {
			for (p++; *p && *p != '\''; p++)
				if (*p == '\\' && p[1])
					p++;
			if (!*p)
				return "has an unterminated quote";
			p++;
		} else {
			for (; *p && !isspace((unsigned char)*p); p++)
				if (*p == '\\' && p[1])
					p++;
		}
	}
}

static void parse_databases(struct loader *L, const config_setting_t *s, const char *file)
{
	struct pgc_config *cfg = L->cfg;
	size_t cap = 0;
	int n;

	if (!config_setting_is_group(s)) {
		report_at(L, s, file,
			  "databases must be a group like databases = { analytics = { conninfo = "
			  "\"service=analytics\"; }; };");
		return;
	}
	n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
		const char *name = config_setting_name(m);
		char where[128];

		if (!config_setting_is_group(m)) {
			report_at(L, m, file,
				  "database \"%s\" must be a group like %s = { conninfo = \"dbname=%s\"; "
				  "pool = 4; };",
				  name, name, name);
			continue;
		}
		if (!grow(L, (void **)&cfg->databases, cfg->n_databases, &cap, sizeof(*cfg->databases)))
			return;
		struct conf_database *db = &cfg->databases[cfg->n_databases++];
		memset(db, 0, sizeof(*db));
		db->name = dup_str(L, name);
		db->pool = 4;
		db->file = dup_str(L, setting_file(m, file));
		db->line = setting_line(m);
		snprintf(where, sizeof(where), " in database \"%s\"", name);
		parse_group(L, m, file, database_keys, db, where,
			    "a database takes conninfo and pool");

		const config_setting_t *ci = config_setting_get_member(m, "conninfo");
		if (!ci) {
			report_at(L, m, file,
				  "database \"%s\" has no conninfo; add conninfo = \"host=... dbname=...\" "
				  "(or \"service=NAME\" from pg_service.conf)",
				  name);
		} else if (db->conninfo) {
			const char *problem = conninfo_problem(db->conninfo);
			char red[512];
			if (problem && strcasestr(db->conninfo, "password")) {
				/* a malformed string may hide a password the redactor cannot find */
				report_at(L, ci, file,
					  "conninfo of database \"%s\" %s; write key=value pairs like "
					  "\"host=db1 dbname=analytics\", or a URI like "
					  "\"postgresql://db1/analytics\"",
					  name, problem);
			} else if (problem) {
				log_redact_conninfo(db->conninfo, red, sizeof(red));
				report_at(L, ci, file,
					  "conninfo \"%s\" %s; write key=value pairs like \"host=db1 "
					  "dbname=analytics\", or a URI like \"postgresql://db1/analytics\"",
					  red, problem);
			}
		}
	}
}

static void parse_history(struct loader *L, const config_setting_t *s, const char *file)
{
	if (!config_setting_is_group(s)) {
		report_at(L, s, file,
			  "history must be a group like history = { database = \"analytics\"; retain = "
			  "\"30d\"; };");
		return;
	}
	const config_setting_t *db = config_setting_get_member(s, "database");
	if (db)
		L->history_db_line = setting_line(db);
	parse_group(L, s, file, history_keys, L->cfg, " in history",
		    "history takes database and retain");
}

static void parse_alerts(struct loader *L, const config_setting_t *s, const char *file)
{
	struct pgc_config *cfg = L->cfg;
	size_t cap = 0;
	int n;

	if (!config_setting_is_list(s)) {
		report_at(L, s, file,
			  "alerts must be a list like alerts = ( { sink = \"log\"; }, { sink = "
			  "\"webhook\"; url = \"https://...\"; } );");
		return;
	}
	n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);

		if (!config_setting_is_group(m)) {
			report_at(L, m, file,
				  "each alert must be a group like { sink = \"log\"; }");
			continue;
		}
		if (!grow(L, (void **)&cfg->alerts, cfg->n_alerts, &cap, sizeof(*cfg->alerts)))
			return;
		struct conf_alert_sink *a = &cfg->alerts[cfg->n_alerts++];
		memset(a, 0, sizeof(*a));
		a->timeout_ms = 10000;
		a->file = dup_str(L, setting_file(m, file));
		a->line = setting_line(m);
		parse_group(L, m, file, sink_keys, a, " in alert",
			    "an alert takes sink, database, channel, url, command and timeout");
		if (!config_setting_get_member(m, "sink")) {
			report_at(L, m, file,
				  "alert has no sink; add sink = \"log\", \"notify\", \"webhook\" or "
				  "\"exec\"");
			continue;
		}
		if (!a->sink)
			continue; /* reported */

		/* which keys each kind of sink uses */
		static const struct {
			const char *sink;
			const char *keys[4];
		} uses[] = {
			{"log", {NULL}},
			{"notify", {"database", "channel", NULL}},
			{"webhook", {"url", "timeout", NULL}},
			{"exec", {"command", "timeout", NULL}},
		};
		for (size_t u = 0; u < sizeof(uses) / sizeof(uses[0]); u++) {
			if (strcmp(uses[u].sink, a->sink) != 0)
				continue;
			int nm = config_setting_length(m);
			for (int j = 0; j < nm; j++) {
				const config_setting_t *k = config_setting_get_elem(m, (unsigned)j);
				const char *kn = config_setting_name(k);
				bool used = strcmp(kn, "sink") == 0 || !find_key(sink_keys, kn);
				for (size_t x = 0; uses[u].keys[x]; x++)
					used |= strcmp(kn, uses[u].keys[x]) == 0;
				if (!used)
					report_at(L, k, file, "%s is not used by a \"%s\" sink; remove it", kn,
						  a->sink);
			}
		}
		if (strcmp(a->sink, "webhook") == 0) {
			if (!config_setting_get_member(m, "url"))
				report_at(L, m, file,
					  "webhook alert has no url; add url = \"https://...\"");
			else if (a->url && strncmp(a->url, "http://", 7) != 0 &&
				 strncmp(a->url, "https://", 8) != 0)
				report_at(L, config_setting_get_member(m, "url"), file,
					  "url \"%s\" is not an http:// or https:// URL; write the full URL",
					  a->url);
		} else if (strcmp(a->sink, "exec") == 0 && !config_setting_get_member(m, "command")) {
			report_at(L, m, file,
				  "exec alert has no command; add command = \"/path/to/program\"");
		} else if (strcmp(a->sink, "notify") == 0) {
			if (!config_setting_get_member(m, "channel"))
				a->channel = dup_str(L, "pgcrond_alerts");
			else if (a->channel && strlen(a->channel) > CHANNEL_MAX)
				report_at(L, config_setting_get_member(m, "channel"), file,
					  "channel is longer than %d bytes; PostgreSQL would truncate it, "
					  "use a shorter name",
					  CHANNEL_MAX);
		}
	}
}

/* Keys that belong to jobs: named in messages about misplaced settings. */
static bool is_job_key(const char *name)
{
	return find_key(job_keys, name) != NULL;
}

static void parse_main(struct loader *L, const config_setting_t *root, const char *file)
{
	int n = config_setting_length(root);

	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(root, (unsigned)i);
		const char *name = config_setting_name(m);
		const struct key_spec *k = find_key(main_keys, name);

		if (k) {
			L->main_line[k - main_keys] = setting_line(m);
			apply_key(L, m, k, L->cfg, file);
		} else if (strcmp(name, "job") == 0 || strcmp(name, "jobs") == 0) {
			report_at(L, m, file,
				  "jobs belong in the *.conf files of conf_dir, not in the main file; move "
				  "this %s there",
				  name);
		} else if (is_job_key(name) && !closest_key(main_keys, name)) {
			report_at(L, m, file,
				  "\"%s\" is a job setting; put it inside a job = { ... }; in a file of "
				  "conf_dir",
				  name);
		} else {
			report_unknown(L, m, file, main_keys, "",
				       "remove it (pgcrond.conf(5) lists the daemon settings)");
		}
	}
}

static int main_line(const struct loader *L, const char *key)
{
	const struct key_spec *k = find_key(main_keys, key);
	return k ? L->main_line[k - main_keys] : 0;
}

_Static_assert(sizeof(main_keys) / sizeof(main_keys[0]) <= 16, "main_line[] too small");

/* "a, b, c": the names of the databases, for messages */
static void database_names(const struct pgc_config *cfg, char *out, size_t outlen)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < cfg->n_databases; i++) {
		int w = snprintf(out + o, outlen - o, "%s%s", i ? ", " : "", cfg->databases[i].name);
		if (w < 0 || (size_t)w >= outlen - o)
			return;
		o += (size_t)w;
	}
}

/* Report DBNAME (used by WHAT at FILE:LINE) if no database has that name. */
static void check_database(struct loader *L, const char *file, int line, const char *what,
			   const char *dbname)
{
	struct suggester sg = {dbname, NULL, 99};
	char names[256];

	if (config_database(L->cfg, dbname))
		return;
	for (size_t i = 0; i < L->cfg->n_databases; i++)
		suggest_consider(&sg, L->cfg->databases[i].name);
	if (sg.best) {
		report(L, file, line, "%s: unknown database \"%s\"; did you mean \"%s\"?", what, dbname,
		       sg.best);
	} else if (L->cfg->n_databases) {
		database_names(L->cfg, names, sizeof(names));
		report(L, file, line,
		       "%s: unknown database \"%s\"; use one of %s, or define it under databases in %s",
		       what, dbname, names, L->cfg->file);
	} else {
		report(L, file, line, "%s: unknown database \"%s\"; define it under databases in %s",
		       what, dbname, L->cfg->file);
	}
}

/* Defaults that depend on the rest of the main file, and checks spanning settings. */
static void finish_main(struct loader *L, const config_setting_t *root)
{
	struct pgc_config *cfg = L->cfg;
	const char *file = cfg->file;
	char err[256];
	char *p;

	/* relative paths are relative to the main file's directory, not the cwd */
	if (!cfg->conf_dir)
		cfg->conf_dir = dup_str(L, "conf.d");
	if (!cfg->plugin_dir)
		cfg->plugin_dir = dup_str(L, PGCROND_DEFAULT_PLUGIN_DIR);
	if (!cfg->state_dir)
		cfg->state_dir = dup_str(L, "/var/lib/pgcrond");
	char **dirs[] = {&cfg->conf_dir, &cfg->plugin_dir, &cfg->state_dir};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!*dirs[i])
			continue;
		p = join_path(L, L->main_dir, *dirs[i]);
		free(*dirs[i]);
		*dirs[i] = p;
	}
	if (!cfg->timezone)
		cfg->timezone = dup_str(L, "UTC");
	if (!cfg->log_level)
		cfg->log_level = dup_str(L, "info");

	if (cfg->timezone) {
		int rc = cron_tz_open(cfg->timezone, &cfg->tz, err, sizeof(err));
		if (rc < 0) {
			cfg->tz = NULL;
			if (rc == -ENOENT)
				report(L, file, main_line(L, "timezone"),
				       "unknown timezone \"%s\"; use a name from the tz database like \"UTC\" "
				       "or \"Europe/Berlin\"",
				       cfg->timezone);
			else
				report(L, file, main_line(L, "timezone"), "timezone \"%s\": %s",
				       cfg->timezone, err);
		}
	}

	if (!config_setting_get_member(root, "databases"))
		report(L, file, 0,
		       "no databases are defined; add databases = { analytics = { conninfo = "
		       "\"service=analytics\"; }; };");
	if (cfg->history_database) {
		check_database(L, file, L->history_db_line, "history", cfg->history_database);
	} else if (cfg->n_databases == 1) {
		cfg->history_database = dup_str(L, cfg->databases[0].name);
	} else if (cfg->n_databases > 1) {
		char names[256];
		database_names(cfg, names, sizeof(names));
		report(L, file, main_line(L, "history"),
		       "history.database is not set and there are %zu databases; add history = { "
		       "database = \"NAME\"; }; naming one of %s",
		       cfg->n_databases, names);
	}

	if (!config_setting_get_member(root, "alerts")) {
		/* no alerts configured: failures still reach the log */
		cfg->alerts = calloc(1, sizeof(*cfg->alerts));
		if (!cfg->alerts) {
			L->oom = true;
			return;
		}
		cfg->n_alerts = 1;
		cfg->alerts[0].sink = dup_str(L, "log");
		cfg->alerts[0].timeout_ms = 10000;
		cfg->alerts[0].file = dup_str(L, file);
	}
	for (size_t i = 0; i < cfg->n_alerts; i++) {
		struct conf_alert_sink *a = &cfg->alerts[i];
		if (!a->sink || strcmp(a->sink, "notify") != 0)
			continue;
		if (a->database)
			check_database(L, a->file, a->line, "notify alert", a->database);
		else if (cfg->history_database)
			a->database = dup_str(L, cfg->history_database);
	}
}

/* ---- job files --------------------------------------------------------------------- */

static void job_free_fields(struct conf_job *j)
{
	free(j->name);
	free(j->plugin);
	free(j->command);
	free(j->database);
	free(j->schedule);
	for (size_t i = 0; i < j->n_after; i++)
		free(j->after[i]);
	free(j->after);
	free(j->listen);
	for (size_t i = 0; i < j->n_settings; i++) {
		free(j->settings[i].key);
		free(j->settings[i].value);
	}
	free(j->settings);
	free(j->file);
}

/* A plugin setting's value as text, in libconfig's spelling; NULL if not a scalar. */
static char *setting_text(struct loader *L, const config_setting_t *s)
{
	char buf[64];

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_STRING:
		return dup_str(L, config_setting_get_string(s));
	case CONFIG_TYPE_INT:
		snprintf(buf, sizeof(buf), "%d", config_setting_get_int(s));
		return dup_str(L, buf);
	case CONFIG_TYPE_INT64:
		snprintf(buf, sizeof(buf), "%lld", config_setting_get_int64(s));
		return dup_str(L, buf);
	case CONFIG_TYPE_FLOAT: {
		/* the shortest spelling that reads back as the same double */
		double v = config_setting_get_float(s);
		snprintf(buf, sizeof(buf), "%.15g", v);
		if (strtod(buf, NULL) != v)
			snprintf(buf, sizeof(buf), "%.17g", v);
		size_t len = strlen(buf);
		if (!strpbrk(buf, ".eEn") && len + 2 < sizeof(buf)) /* keep it a float: 2.0, not 2 */
			memcpy(buf + len, ".0", 3);
		return dup_str(L, buf);
	}
	case CONFIG_TYPE_BOOL:
		return dup_str(L, config_setting_get_bool(s) ? "true" : "false");
	default:
		return NULL;
	}
}

static void add_setting(struct loader *L, struct conf_job *j, const config_setting_t *m,
			const char *file, size_t *cap)
{
	char *v = setting_text(L, m);

	if (!v) {
		if (!L->oom)
			report_at(L, m, file,
				  "plugin setting %s must be a string, number or true/false, not a list or "
				  "group",
				  config_setting_name(m));
		return;
	}
	if (!grow(L, (void **)&j->settings, j->n_settings, cap, sizeof(*j->settings))) {
		free(v);
		return;
	}
	struct conf_setting *st = &j->settings[j->n_settings++];
	st->key = dup_str(L, config_setting_name(m));
	st->value = v;
	st->line = setting_line(m);
}

static bool valid_plugin_name(const char *p)
{
	if (!*p || *p == '.' || strlen(p) > 63)
		return false;
	for (; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
			return false;
	return true;
}

static void parse_job(struct loader *L, const config_setting_t *s, const char *path)
{
	struct pgc_config *cfg = L->cfg;
	const char *file = setting_file(s, path);
	int line = setting_line(s);
	struct conf_job j;
	size_t settings_cap = 0;
	char who[96], where[112];
	size_t errors_before = L->n_errors;

	memset(&j, 0, sizeof(j));
	j.enabled = true;
	j.overlap = OVERLAP_SKIP;
	j.retry_delay_ms = 30000;
	j.retry_backoff = 2.0;
	j.retry_max_delay_ms = 600000;
	j.retry_on = RETRY_ON_TRANSIENT;
	j.catchup = CATCHUP_ONCE;
	j.debounce_ms = 5000;
	j.max_delay_ms = 60000;
	j.alert_after = 1;
	j.file = dup_str(L, file);
	j.line = line;

	/* the name first, so every message about this job can name it */
	const config_setting_t *name = config_setting_get_member(s, "name");
	if (name && config_setting_type(name) == CONFIG_TYPE_STRING) {
		snprintf(who, sizeof(who), "job \"%.63s\"", config_setting_get_string(name));
		snprintf(where, sizeof(where), " in %s", who);
	} else {
		snprintf(who, sizeof(who), "this job");
		snprintf(where, sizeof(where), " in this job");
	}

	const config_setting_t *plugin = config_setting_get_member(s, "plugin");
	int n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
		const char *key = config_setting_name(m);
		const struct key_spec *k = find_key(job_keys, key);

		if (k) {
			bool ok = apply_key(L, m, k, &j, file);
			if (ok && strcmp(key, "name") == 0 && !config_valid_job_name(j.name))
				report_at(L, m, file,
					  "job name \"%.80s\" may only contain letters, digits, \"_\", \".\" and "
					  "\"-\", at most %d of them; rename it",
					  j.name, JOB_NAME_MAX);
		} else if (plugin) {
			/* the plugin validates its own settings once it is loaded */
			add_setting(L, &j, m, file, &settings_cap);
		} else {
			report_unknown(L, m, file, job_keys, where,
				       "a plain SQL job takes only the standard keys (pgcrond.conf(5) lists "
				       "them); plugin settings need plugin = \"NAME\"");
		}
	}
	if (plugin)
		j.plugin_line = setting_line(plugin);
	const config_setting_t *after = config_setting_get_member(s, "after");
	if (after)
		j.after_line = setting_line(after);

	if (!name)
		report(L, file, line,
		       "job has no name; add name = \"...\" using letters, digits, \"_\", \".\" and \"-\"");

	const config_setting_t *command = config_setting_get_member(s, "command");
	if (plugin && command)
		report(L, file, line,
		       "%s has both plugin and command; keep plugin for a view plugin or command for "
		       "plain SQL",
		       who);
	else if (!plugin && !command)
		report(L, file, line,
		       "%s has neither plugin nor command; add plugin = \"NAME\" or command = \"SQL\"",
		       who);
	if (j.plugin && !valid_plugin_name(j.plugin))
		report_at(L, plugin, file,
			  "plugin \"%.80s\" is not a plugin name; use the file name of a .so in "
			  "plugin_dir without the extension, like \"weakness_patterns\"",
			  j.plugin);

	const config_setting_t *schedule = config_setting_get_member(s, "schedule");
	if (j.schedule) {
		char err[256];
		if (cron_parse(j.schedule, &j.cron, err, sizeof(err)) < 0) {
			report_at(L, schedule, file, "schedule %s", err);
		} else if (!cron_can_fire(&j.cron)) {
			report_at(L, schedule, file,
				  "schedule \"%s\" never fires (that day does not exist in that month); "
				  "fix the day and month fields",
				  j.schedule);
		}
	}

	const config_setting_t *listen = config_setting_get_member(s, "listen");
	if (j.listen && strlen(j.listen) > CHANNEL_MAX)
		report_at(L, listen, file,
			  "listen channel is longer than %d bytes; PostgreSQL would truncate it, use a "
			  "shorter name",
			  CHANNEL_MAX);
	if (!listen) {
		const char *keys[] = {"debounce", "max_delay"};
		for (size_t i = 0; i < 2; i++) {
			const config_setting_t *m = config_setting_get_member(s, keys[i]);
			if (m)
				report_at(L, m, file,
					  "%s only applies to notifications; add listen = \"CHANNEL\" or "
					  "remove %s",
					  keys[i], keys[i]);
		}
	} else if (config_setting_get_member(s, "max_delay") && j.max_delay_ms < j.debounce_ms) {
		report_at(L, config_setting_get_member(s, "max_delay"), file,
			  "max_delay must not be shorter than debounce; raise max_delay or lower debounce");
	} else if (j.max_delay_ms < j.debounce_ms) {
		j.max_delay_ms = j.debounce_ms; /* only debounce was raised: the cap follows it */
	}
	if (j.retry_max_delay_ms < j.retry_delay_ms) {
		const config_setting_t *m = config_setting_get_member(s, "retry_max_delay");
		if (m)
			report_at(L, m, file,
				  "retry_max_delay must not be shorter than retry_delay; raise "
				  "retry_max_delay or lower retry_delay");
		else
			j.retry_max_delay_ms = j.retry_delay_ms;
	}

	/* A disabled job without triggers is fine: pgcrond trigger can still run it. When
	 * this job already had errors, a misspelt or mistyped schedule/after is the likely
	 * cause, so do not pile a second message on top. */
	if (j.enabled && !schedule && !listen && j.n_after == 0 && L->n_errors == errors_before)
		report(L, file, line,
		       "%s would never run; add schedule, after or listen, or set enabled = false", who);

	const config_setting_t *database = config_setting_get_member(s, "database");
	if (j.database)
		check_database(L, file, setting_line(database), who, j.database);
	else if (!database && cfg->history_database)
		j.database = dup_str(L, cfg->history_database);

	/* Keep the first definition of a name; later ones are reported and dropped. A job with
	 * an invalid name is kept (its error is reported): jobs naming it in after would
	 * otherwise get a second, misleading error. */
	const struct conf_job *prev = j.name ? config_job(cfg, j.name) : NULL;
	if (prev)
		report(L, file, line, "job \"%s\" is already defined at %s:%d; rename one of them",
		       j.name, prev->file, prev->line);
	if (!j.name || prev || !grow(L, (void **)&cfg->jobs, cfg->n_jobs, &L->jobs_cap, sizeof(*cfg->jobs))) {
		job_free_fields(&j);
		return;
	}
	cfg->jobs[cfg->n_jobs++] = j;
}

static const char *const daemon_keys_hint =
	"is a daemon setting; it belongs in the main file, not in a job file";

static void load_job_file(struct loader *L, const char *path)
{
	config_t cf;

	if (!read_file(L, &cf, path, L->cfg->conf_dir))
		return;
	const config_setting_t *root = config_root_setting(&cf);
	int n = config_setting_length(root);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(root, (unsigned)i);
		const char *name = config_setting_name(m);

		if (strcmp(name, "job") == 0) {
			if (config_setting_is_group(m))
				parse_job(L, m, path);
			else
				report_at(L, m, path,
					  "job must be a group like job = { name = \"...\"; ... }; for several "
					  "jobs in one file write jobs = ( { ... }, { ... } );");
		} else if (strcmp(name, "jobs") == 0) {
			int nj = config_setting_length(m);
			if (!config_setting_is_list(m)) {
				report_at(L, m, path,
					  "jobs must be a list of groups like jobs = ( { name = \"a\"; ... }, "
					  "{ name = \"b\"; ... } );");
				continue;
			}
			for (int k = 0; k < nj; k++) {
				const config_setting_t *e = config_setting_get_elem(m, (unsigned)k);
				if (config_setting_is_group(e))
					parse_job(L, e, path);
				else
					report_at(L, e, path,
						  "each element of jobs must be a group { name = \"...\"; ... }");
			}
		} else if (find_key(main_keys, name)) {
			report_at(L, m, path, "\"%s\" %s", name, daemon_keys_hint);
		} else if (is_job_key(name)) {
			report_at(L, m, path,
				  "\"%s\" is outside any job; put the job's settings inside job = { ... };",
				  name);
		} else {
			static const struct key_spec top[] = {
				{"job", K_CUSTOM, 0, NULL, NULL, 0, false, NULL},
				{"jobs", K_CUSTOM, 0, NULL, NULL, 0, false, NULL},
				{NULL, 0, 0, NULL, NULL, 0, false, NULL},
			};
			report_unknown(L, m, path, top, " in a job file",
				       "a job file holds job = { ... }; or jobs = ( { ... }, ... );");
		}
	}
	config_destroy(&cf);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_conf_suffix(const char *name)
{
	size_t n = strlen(name);
	return n > 5 && strcmp(name + n - 5, ".conf") == 0;
}

/* Every *.conf in conf_dir, in strcmp order; not subdirectories (conf.d/examples/), not
 * dotfiles, and not the main file itself when conf_dir is its directory. */
static void load_conf_dir(struct loader *L)
{
	struct pgc_config *cfg = L->cfg;
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;

	if (!cfg->conf_dir)
		return;
	d = opendir(cfg->conf_dir);
	if (!d) {
		report(L, cfg->file, main_line(L, "conf_dir"),
		       "conf_dir \"%s\" cannot be read: %s; create it or set conf_dir to the directory "
		       "of the job files",
		       cfg->conf_dir, strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !has_conf_suffix(de->d_name))
			continue;
		if (!grow(L, (void **)&names, n, &cap, sizeof(*names)))
			break;
		names[n] = dup_str(L, de->d_name);
		if (names[n])
			n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		char *path = join_path(L, cfg->conf_dir, names[i]);
		struct stat st;

		if (!path)
			break;
		if (stat(path, &st) < 0) {
			report(L, path, 0, "cannot read the file: %s; fix or remove it", strerror(errno));
		} else if (S_ISREG(st.st_mode) &&
			   !(L->have_main_st && st.st_dev == L->main_st.st_dev &&
			     st.st_ino == L->main_st.st_ino)) {
			load_job_file(L, path);
		}
		free(path);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Checks across jobs, once every file is read. */
static void check_jobs(struct loader *L)
{
	struct pgc_config *cfg = L->cfg;

	for (size_t i = 0; i < cfg->n_jobs; i++) {
		const struct conf_job *j = &cfg->jobs[i];
		for (size_t a = 0; a < j->n_after; a++) {
			struct suggester sg = {j->after[a], NULL, 99};
			if (config_job(cfg, j->after[a]))
				continue;
			for (size_t k = 0; k < cfg->n_jobs; k++)
				suggest_consider(&sg, cfg->jobs[k].name);
			if (sg.best)
				report(L, j->file, j->after_line,
				       "job \"%s\" runs after unknown job \"%s\"; did you mean \"%s\"?", j->name,
				       j->after[a], sg.best);
			else
				report(L, j->file, j->after_line,
				       "job \"%s\" runs after unknown job \"%s\"; define that job or fix the "
				       "name",
				       j->name, j->after[a]);
		}
		/* cycles, self-references included, are the DAG's to report (dag.c) */
	}
}

/* ---- sorting diagnostics ----------------------------------------------------------- */

static size_t file_rank(const struct loader *L, const char *file)
{
	if (!file)
		return 0;
	for (size_t i = 0; i < L->n_files; i++)
		if (strcmp(L->files[i], file) == 0)
			return i + 1;
	return L->n_files + 1; /* @include files: after the rest */
}

/* Stable insertion sort of our own diagnostics by file order, then line. */
static void sort_diags(struct loader *L)
{
	struct diag *d = L->dl->items;

	for (size_t i = L->dl_start + 1; i < L->dl->n; i++) {
		struct diag t = d[i];
		size_t rt = file_rank(L, t.file);
		size_t j = i;
		while (j > L->dl_start) {
			size_t rp = file_rank(L, d[j - 1].file);
			if (rp < rt || (rp == rt && d[j - 1].line <= t.line))
				break;
			d[j] = d[j - 1];
			j--;
		}
		d[j] = t;
	}
}

/* ---- the API ----------------------------------------------------------------------- */

int config_load(const char *path, struct pgc_config **out, struct diag_list *dl)
{
	struct loader L;
	struct pgc_config *cfg;
	config_t cf;
	int rc = 0;

	*out = NULL;
	memset(&L, 0, sizeof(L));
	L.dl = dl;
	L.dl_start = dl->n;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return -ENOMEM;
	L.cfg = cfg;
	cfg->file = dup_str(&L, path);
	cfg->history_retain_ms = 30LL * 86400000;
	cfg->max_running = 32;
	cfg->shutdown_grace_ms = 30000;
	cfg->alert_repeat_ms = 3600000;

	const char *slash = strrchr(path, '/');
	if (slash == path)
		L.main_dir = dup_str(&L, "/");
	else if (slash)
		L.main_dir = strndup(path, (size_t)(slash - path));
	else
		L.main_dir = dup_str(&L, "");
	if (!L.main_dir)
		L.oom = true;
	L.have_main_st = stat(path, &L.main_st) == 0;

	if (!L.oom && read_file(&L, &cf, path, L.main_dir)) {
		const config_setting_t *root = config_root_setting(&cf);
		parse_main(&L, root, path);
		finish_main(&L, root);
		config_destroy(&cf);
		/* with a broken main file there is no conf_dir and no databases to check jobs
		 * against, so job files are read only when the main file was readable */
		load_conf_dir(&L);
		check_jobs(&L);
	}
	sort_diags(&L);

	if (L.oom)
		rc = -ENOMEM;
	else if (L.n_errors)
		rc = -EINVAL;
	for (size_t i = 0; i < L.n_files; i++)
		free(L.files[i]);
	free(L.files);
	free(L.main_dir);
	if (rc < 0) {
		config_free(&cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

void config_free(struct pgc_config **pcfg)
{
	struct pgc_config *cfg = pcfg ? *pcfg : NULL;

	if (!cfg)
		return;
	free(cfg->file);
	free(cfg->timezone);
	free(cfg->plugin_dir);
	free(cfg->conf_dir);
	free(cfg->state_dir);
	free(cfg->log_level);
	for (size_t i = 0; i < cfg->n_databases; i++) {
		free(cfg->databases[i].name);
		free(cfg->databases[i].conninfo);
		free(cfg->databases[i].file);
	}
	free(cfg->databases);
	free(cfg->history_database);
	for (size_t i = 0; i < cfg->n_alerts; i++) {
		struct conf_alert_sink *a = &cfg->alerts[i];
		free(a->sink);
		free(a->database);
		free(a->channel);
		free(a->url);
		free(a->command);
		free(a->file);
	}
	free(cfg->alerts);
	for (size_t i = 0; i < cfg->n_jobs; i++)
		job_free_fields(&cfg->jobs[i]);
	free(cfg->jobs);
	if (cfg->tz)
		cron_tz_free(&cfg->tz);
	free(cfg);
	*pcfg = NULL;
}

const struct conf_database *config_database(const struct pgc_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_databases; i++)
		if (strcmp(cfg->databases[i].name, name) == 0)
			return &cfg->databases[i];
	return NULL;
}

const struct conf_job *config_job(const struct pgc_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_jobs; i++)
		if (cfg->jobs[i].name && strcmp(cfg->jobs[i].name, name) == 0)
			return &cfg->jobs[i];
	return NULL;
}
