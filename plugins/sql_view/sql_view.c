/* sql_view: a materialized view defined entirely in a job file, so a simple view needs no C.
 *
 *   job = {
 *     name = "refresh-queue"; plugin = "sql_view"; schedule = "@hourly";
 *     view = "public.mv_queue"; unique_key = "agent";
 *     query = "SELECT agent, count(*) AS queries FROM public.agent_queries GROUP BY agent";
 *   };
 *
 * The view's name and definition differ per job, so neither fits the static `relations` and
 * `install_sql` of a plugin declaration. This plugin uses the two ABI 1.1 callbacks made for
 * that: job_relation() tells the core which view a job maintains (flagged CONCURRENT, so the
 * core checks its unique index and populates it once before the first concurrent refresh),
 * and job_install() gives `pgcrond install` the job's DDL. A run is then just the refresh.
 *
 * `query` is operator-written configuration, like the command of a pg_cron job: it is pasted
 * into CREATE MATERIALIZED VIEW as written (after checking that it is one query). Names are
 * always quoted; nothing from a notification ever reaches the SQL. */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pgcrond/plugin.h>

PGCROND_PLUGIN_MAGIC("sql_view", "1.0.0");

#define NAME_MAX_BYTES 63  /* PostgreSQL truncates longer identifiers (NAMEDATALEN - 1) */
#define MAX_KEY_COLUMNS 32 /* PostgreSQL's INDEX_MAX_KEYS */
#define INDEX_SUFFIX "_pgcrond_key"

static const struct pgc_api *api;

/* ---- checking the settings -------------------------------------------------------------- */

/* Why S[0..LEN) is not a plain identifier, or NULL if it is one. Plain means ASCII letters,
 * digits, '_' and '$', not starting with a digit or '$', at most 63 bytes: a name that
 * PostgreSQL would neither truncate nor need spelled in a special way. */
static const char *ident_problem(const char *s, size_t len)
{
	if (len == 0)
		return "is empty";
	if (len > NAME_MAX_BYTES)
		return "is longer than 63 bytes (PostgreSQL would truncate it)";
	if ((s[0] >= '0' && s[0] <= '9') || s[0] == '$')
		return "starts with a digit or '$'";
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '$'))
			return "holds a character other than letters, digits, '_' and '$'";
	}
	return NULL;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* The next column of a unique_key list at *P: its start and length (surrounding spaces
 * trimmed); *P moves past the following comma. Returns false at the end of the list. */
static bool next_column(const char **p, const char **start, size_t *len)
{
	const char *s = *p, *e;

	if (!*s)
		return false;
	e = strchr(s, ',');
	if (!e)
		e = s + strlen(s);
	*p = *e ? e + 1 : e;
	while (s < e && is_space(*s))
		s++;
	while (e > s && is_space(e[-1]))
		e--;
	*start = s;
	*len = (size_t)(e - s);
	return true;
}

static int check_view(const struct pgc_settings *s)
{
	const char *view = api->setting_str(s, "view", NULL);
	const char *dot, *why;

	if (!view) {
		api->setting_error(s, "view",
		                   "is required: name the materialized view this job maintains, "
		                   "such as \"public.mv_queue_metrics\"");
		return -EINVAL;
	}
	dot = strchr(view, '.');
	if (dot && strchr(dot + 1, '.')) {
		api->setting_error(s, "view",
		                   "\"%s\" has more than one '.'; write schema.view or view", view);
		return -EINVAL;
	}
	if (dot && (why = ident_problem(view, (size_t)(dot - view)))) {
		api->setting_error(s, "view", "the schema in \"%s\" %s", view, why);
		return -EINVAL;
	}
	if ((why = ident_problem(dot ? dot + 1 : view, strlen(dot ? dot + 1 : view)))) {
		api->setting_error(s, "view", "the view name in \"%s\" %s", view, why);
		return -EINVAL;
	}
	return 0;
}

static int check_unique_key(const struct pgc_settings *s)
{
	const char *key = api->setting_str(s, "unique_key", NULL), *p, *col, *why;
	const char *seen[MAX_KEY_COLUMNS];
	size_t seen_len[MAX_KEY_COLUMNS], len, n = 0;

	if (!key) {
		api->setting_error(
		    s, "unique_key",
		    "is required: list the view's columns that identify a row, such "
		    "as \"agent, hour\" (REFRESH ... CONCURRENTLY needs a unique index)");
		return -EINVAL;
	}
	for (p = key; next_column(&p, &col, &len);) {
		if ((why = ident_problem(col, len))) {
			api->setting_error(s, "unique_key",
			                   "column %zu (\"%.*s\") %s; write column names "
			                   "separated by commas",
			                   n + 1, (int)len, col, why);
			return -EINVAL;
		}
		if (n == MAX_KEY_COLUMNS) {
			api->setting_error(s, "unique_key",
			                   "has more than %d columns, the most an "
			                   "index can have",
			                   MAX_KEY_COLUMNS);
			return -EINVAL;
		}
		for (size_t i = 0; i < n; i++) {
			if (seen_len[i] == len && memcmp(seen[i], col, len) == 0) {
				api->setting_error(s, "unique_key", "names column \"%.*s\" twice",
				                   (int)len, col);
				return -EINVAL;
			}
		}
		seen[n] = col;
		seen_len[n++] = len;
	}
	p = key + strlen(key);
	while (p > key && is_space(p[-1]))
		p--;
	if (n > 0 && p[-1] == ',') {
		api->setting_error(s, "unique_key", "ends with ','; remove it");
		return -EINVAL;
	}
	if (n == 0) {
		api->setting_error(s, "unique_key",
		                   "is empty: list the view's columns that identify "
		                   "a row, such as \"agent, hour\"");
		return -EINVAL;
	}
	return 0;
}

static bool ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

/* Length of the dollar-quote tag ($$ or $name$) starting at Q[I], or 0 if none starts there
 * ($1 is a parameter, a$b$ an identifier). */
static size_t dollar_tag(const char *q, size_t i)
{
	size_t j = i + 1;

	if (i > 0 && ident_char(q[i - 1]))
		return 0;
	if (q[j] >= '0' && q[j] <= '9')
		return 0;
	while (q[j] && q[j] != '$' && ident_char(q[j]))
		j++;
	return q[j] == '$' ? j - i + 1 : 0;
}

/* Scan QUERY as PostgreSQL's lexer would for what matters here: string literals ('', E''),
 * quoted identifiers, dollar quotes, -- and (nested) block comments. Returns the offset of
 * the first ';' outside all of them, or -1 if there is none; sets *UNTERMINATED (else NULL)
 * to what was left open at the end. */
static long find_semicolon(const char *q, const char **unterminated)
{
	size_t i = 0, n = strlen(q);

	*unterminated = NULL;
	while (i < n) {
		char c = q[i];
		if (c == '\'') {
			/* E'...' takes backslash escapes; a plain '...' only doubles quotes. */
			bool esc = i > 0 && (q[i - 1] == 'E' || q[i - 1] == 'e') &&
			           (i == 1 || !ident_char(q[i - 2]));
			for (i++;; i++) {
				if (i >= n) {
					*unterminated = "a string literal ('...')";
					return -1;
				}
				if (esc && q[i] == '\\' && i + 1 < n) {
					i++;
				} else if (q[i] == '\'') {
					if (q[i + 1] != '\'')
						break;
					i++;
				}
			}
			i++;
		} else if (c == '"') {
			for (i++;; i++) {
				if (i >= n) {
					*unterminated = "a quoted identifier (\"...\")";
					return -1;
				}
				if (q[i] == '"') {
					if (q[i + 1] != '"')
						break;
					i++;
				}
			}
			i++;
		} else if (c == '-' && q[i + 1] == '-') {
			while (i < n && q[i] != '\n')
				i++;
		} else if (c == '/' && q[i + 1] == '*') {
			int depth = 1;
			for (i += 2; depth > 0; i++) {
				if (i >= n) {
					*unterminated = "a comment (/* ... */)";
					return -1;
				}
				if (q[i] == '/' && q[i + 1] == '*') {
					depth++;
					i++;
				} else if (q[i] == '*' && q[i + 1] == '/') {
					depth--;
					i++;
				}
			}
		} else if (c == '$' && dollar_tag(q, i)) {
			size_t tag = dollar_tag(q, i);
			const char *end = NULL;
			for (const char *f = q + i + tag; (f = strchr(f, '$')); f++) {
				if (strncmp(f, q + i, tag) == 0) {
					end = f;
					break;
				}
			}
			if (!end) {
				*unterminated = "a dollar-quoted string ($$...$$)";
				return -1;
			}
			i = (size_t)(end - q) + tag;
		} else if (c == ';') {
			return (long)i;
		} else {
			i++;
		}
	}
	return -1;
}

/* The query's first word, skipping spaces, comments and opening parentheses. */
static void first_word(const char *q, char *out, size_t outlen)
{
	size_t o = 0;

	for (;;) {
		while (is_space(*q) || *q == '(')
			q++;
		if (q[0] == '-' && q[1] == '-') {
			q += strcspn(q, "\n");
		} else if (q[0] == '/' && q[1] == '*') {
			const char *e = strstr(q + 2, "*/");
			q = e ? e + 2 : q + strlen(q);
		} else {
			break;
		}
	}
	while (o + 1 < outlen && ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z')))
		out[o++] = *q++;
	out[o] = '\0';
}

static int check_query(const struct pgc_settings *s)
{
	static const char *const starts[] = {"select", "with", "values", "table"};
	const char *query = api->setting_str(s, "query", NULL), *open;
	char word[16];
	bool ok = false;
	long semi;

	if (!query) {
		api->setting_error(s, "query",
		                   "is required: give the SELECT that defines the view");
		return -EINVAL;
	}
	first_word(query, word, sizeof(word));
	if (!word[0]) {
		api->setting_error(s, "query", "is empty: give the SELECT that defines the view");
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++)
		ok |= strcasecmp(word, starts[i]) == 0;
	if (!ok) {
		api->setting_error(s, "query",
		                   "starts with \"%s\"; it must be a query (SELECT, "
		                   "WITH, VALUES or TABLE) defining the view",
		                   word);
		return -EINVAL;
	}
	semi = find_semicolon(query, &open);
	if (open) {
		api->setting_error(s, "query", "ends inside %s; close it", open);
		return -EINVAL;
	}
	if (semi >= 0) {
		api->setting_error(
		    s, "query",
		    "has a ';' at character %ld: it must be exactly one "
		    "query, without a ';' (put other statements in a job of their own)",
		    semi + 1);
		return -EINVAL;
	}
	return 0;
}

static int check_settings(const struct pgc_settings *s)
{
	/* Check all three, so one `pgcrond check` shows every problem of the job. */
	int a = check_view(s), b = check_query(s), c = check_unique_key(s);
	return a < 0 ? a : b < 0 ? b : c;
}

/* ---- what the core asks --------------------------------------------------------------- */

static int job_relation(const struct pgc_settings *s, struct pgc_relation_decl *out)
{
	out->name = api->setting_str(s, "view", NULL);
	out->kind = PGC_RELATION_MATVIEW;
	out->flags = PGC_RELATION_CONCURRENT;
	return out->name ? 0 : -EINVAL;
}

static int quoted_view(const struct pgc_settings *s, struct pgc_run *run, char *out, size_t outlen)
{
	const char *view = api->setting_str(s, "view", NULL);

	if (!view || api->quote_qualified(view, out, outlen) < 0) {
		api->run_error(run, "setting \"view\" (\"%s\") is not a valid view name",
		               view ? view : "");
		return -EINVAL;
	}
	return 0;
}

/* The unique index's name: the view's own name (without schema) and a suffix saying whose it
 * is, cut to fit in 63 bytes. Names are plain ASCII (checked), so any cut is clean. */
static int index_name(const char *view, char *out, size_t outlen)
{
	const char *rel = strrchr(view, '.');
	size_t keep = NAME_MAX_BYTES - strlen(INDEX_SUFFIX);
	char name[NAME_MAX_BYTES + 1];
	int n;

	rel = rel ? rel + 1 : view;
	n = snprintf(name, sizeof(name), "%.*s" INDEX_SUFFIX, (int)keep, rel);
	if (n < 0 || (size_t)n >= sizeof(name))
		return -ENAMETOOLONG;
	return api->quote_ident(name, out, outlen);
}

/* The CREATE statements. IF NOT EXISTS keeps a second install a no-op; it also means a
 * changed query does not replace an existing view (drop it first: see docs). The view
 * starts empty (WITH NO DATA), the core populates it once before the first concurrent
 * refresh. The query goes on lines of its own so a trailing -- comment cannot swallow
 * WITH NO DATA. */
static int job_install(const struct pgc_settings *s, struct pgc_run *run)
{
	const char *query = api->setting_str(s, "query", NULL);
	const char *key = api->setting_str(s, "unique_key", NULL), *p, *col;
	char view[2 * (2 * NAME_MAX_BYTES + 2) + 2], idx[2 * NAME_MAX_BYTES + 3];
	char cols[MAX_KEY_COLUMNS * (2 * NAME_MAX_BYTES + 4) + 1], one[2 * NAME_MAX_BYTES + 3];
	char *sql = NULL;
	size_t o = 0, len, cap;
	int rc, n;

	if ((rc = quoted_view(s, run, view, sizeof(view))) < 0)
		return rc;
	if (!query || !key) {
		api->run_error(run, "settings \"query\" and \"unique_key\" are required");
		return -EINVAL;
	}
	cap = strlen(query) + strlen(view) + 64;
	if (!(sql = malloc(cap)))
		return -ENOMEM;
	n = snprintf(sql, cap, "CREATE MATERIALIZED VIEW IF NOT EXISTS %s AS\n%s\nWITH NO DATA",
	             view, query);
	if (n < 0 || (size_t)n >= cap) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	if ((rc = api->run_add(run, sql)) < 0)
		goto out;

	for (p = key; next_column(&p, &col, &len);) {
		char name[NAME_MAX_BYTES + 1];
		if (len == 0 || len > NAME_MAX_BYTES) {
			api->run_error(run, "setting \"unique_key\" has an invalid column name");
			rc = -EINVAL;
			goto out;
		}
		memcpy(name, col, len);
		name[len] = '\0';
		if ((rc = api->quote_ident(name, one, sizeof(one))) < 0)
			goto out;
		n = snprintf(cols + o, sizeof(cols) - o, "%s%s", o ? ", " : "", one);
		if (n < 0 || (size_t)n >= sizeof(cols) - o) {
			rc = -ENAMETOOLONG;
			goto out;
		}
		o += (size_t)n;
	}
	if ((rc = index_name(api->setting_str(s, "view", ""), idx, sizeof(idx))) < 0)
		goto out;
	/* The column list can be longer than the query: size this statement afresh. */
	free(sql);
	cap = strlen(idx) + strlen(view) + o + 64;
	if (!(sql = malloc(cap))) {
		rc = -ENOMEM;
		goto out;
	}
	n = snprintf(sql, cap, "CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s (%s)", idx, view, cols);
	if (n < 0 || (size_t)n >= cap) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	rc = api->run_add(run, sql);
out:
	free(sql);
	return rc < 0 ? rc : 0;
}

static int build_run(const struct pgc_settings *s, const char *const *payloads, size_t n_payloads,
                     struct pgc_run *run)
{
	/* The payloads only say that something changed: the whole view is recomputed anyway,
	 * and nothing from them goes into the SQL. The job's view is the one job_relation()
	 * names, declared CONCURRENT, so the core refreshes it concurrently. */
	return api->run_refresh(run, NULL,
	                        api->setting_bool(s, "analyze", false) ? PGC_REFRESH_ANALYZE : 0);
}

static const struct pgc_plugin plugin = {
    .size = sizeof(struct pgc_plugin),
    .description = "a materialized view defined in its job file (view, query, unique_key)",
    .relations = NULL, /* each job names its own: job_relation() */
    .install_sql = NULL,
    .reads = NULL,
    .settings =
        (const struct pgc_setting_decl[]){
            {"view", PGC_SETTING_STRING, NULL,
             "the materialized view to maintain: schema.view, or a view found through the "
             "search_path; required"},
            {"query", PGC_SETTING_STRING, NULL,
             "the query defining the view (one SELECT, no ';'), used as written; required"},
            {"unique_key", PGC_SETTING_STRING, NULL,
             "comma-separated columns identifying a row; pgcrond install creates the unique "
             "index REFRESH ... CONCURRENTLY needs on them; required"},
            {"analyze", PGC_SETTING_BOOL, "false", "run ANALYZE on the view after refreshing it"},
            {NULL, 0, NULL, NULL},
        },
    .check_settings = check_settings,
    .build_run = build_run,
    .job_relation = job_relation,
    .job_install = job_install,
};

int pgcrond_plugin_init(const struct pgc_api *core, const struct pgc_plugin **decl)
{
	api = core;
	*decl = &plugin;
	return 0;
}
