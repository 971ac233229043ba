/* Job files (config.h): each job's keys read and checked with FILE:LINE messages, the
 * conf.d directory walked in order, and the checks across jobs. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libconfig.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "config_priv.h"
#include "cron.h"
#include "sqlscan.h"
#include "text.h"
#include "trust.h"

/* ---- job files --------------------------------------------------------------------- */

/* The strings and arrays of M, a job's own. */
static void more_free(struct conf_job_more *m)
{
	text_free_list(m->fresh.sources, m->fresh.n_sources);
	config_strs_free(m, config_more_strs);
	for (size_t i = 0; i < m->n_settings; i++) {
		free(m->settings[i].key);
		free(m->settings[i].value);
	}
	free(m->settings);
	cron_tz_free(&m->cal.tz);
	free(m);
}

void config_job_fields_free(struct conf_job *j)
{
	if (!j->packed) { /* else they are the config's (config_pack_strs) */
		free(j->name);
		free(j->plugin);
		free(j->command);
		free(j->schedule);
	}
	config_http_call_free(&j->http);
	text_free_list(j->after, j->n_after);
	/* j->file and j->database belong to the config (config_own_str) */
	if (j->more && j->more != &config_job_more_defaults)
		more_free((struct conf_job_more *)j->more);
	j->more = &config_job_more_defaults;
}

/* A deep copy of SRC, a job's own; NULL when out of memory. */
static struct conf_job_more *more_copy(const struct conf_job_more *src)
{
	struct conf_job_more *m = malloc(sizeof(*m));
	bool oom = !m;

	if (oom)
		return NULL;
	*m = *src;
	config_strs_dup(m, config_more_strs, &oom);
	m->cal.tz = NULL;
	if (m->cal.timezone && cron_tz_open(m->cal.timezone, &m->cal.tz, NULL, 0) < 0)
		oom = true; /* it opened when the files were read */
	if (!(m->fresh.sources = config_dup_strs(src->fresh.sources, src->fresh.n_sources, &oom)))
		m->fresh.n_sources = 0;
	m->settings = src->n_settings ? calloc(src->n_settings, sizeof(*m->settings)) : NULL;
	if (src->n_settings && !m->settings) {
		oom = true;
		m->n_settings = 0;
	}
	for (size_t i = 0; i < m->n_settings; i++) {
		m->settings[i] = src->settings[i];
		m->settings[i].key = config_dup_or(src->settings[i].key, &oom);
		m->settings[i].value = config_dup_or(src->settings[i].value, &oom);
	}
	if (oom) {
		more_free(m);
		return NULL;
	}
	return m;
}

void config_job_copy(struct pgc_config *c, const struct conf_job *src, struct conf_job *dst,
                     bool *oom)
{
	*dst = *src;
	dst->packed = false;
	if (!config_pack_strs(c, dst, src)) {
		dst->name = dst->plugin = dst->command = dst->schedule = NULL;
		*oom = true;
	}
	dst->http = config_http_call_dup(src->http, oom);
	dst->database = src->database ? config_own_database(c, src->database) : NULL;
	if (src->database && !dst->database)
		*oom = true;
	dst->file = src->file ? config_own_str(c, src->file) : NULL;
	if (src->file && !dst->file)
		*oom = true;
	if (!(dst->after = config_dup_strs(src->after, src->n_after, oom)))
		dst->n_after = 0;
	if (src->more != &config_job_more_defaults && !(dst->more = more_copy(src->more))) {
		dst->more = &config_job_more_defaults;
		*oom = true;
	}
}

/* A plugin setting's value as text, in libconfig's spelling; NULL if not a scalar. */
static char *setting_text(struct loader *L, const config_setting_t *s, const char *file, bool *bad)
{
	char buf[64];
	long long v;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_STRING:
		if (!config_check_utf8(L, s, file, config_setting_name(s),
		                       config_setting_get_string(s))) {
			*bad = true;
			return NULL;
		}
		return config_dup_str(L, config_setting_get_string(s));
	case CONFIG_TYPE_INT:
		/* as written: libconfig wraps what does not fit in an int */
		switch (config_int_source(L, s, &v, buf, sizeof(buf))) {
		case 0:
			snprintf(buf, sizeof(buf), "%lld", v);
			break;
		case -ERANGE:
			config_report_at(
			    L, s, file,
			    "plugin setting %s = %s is out of range; use a number from %lld to "
			    "%lld",
			    config_setting_name(s), buf, (long long)INT64_MIN,
			    (long long)INT64_MAX);
			*bad = true;
			return NULL;
		default:
			snprintf(buf, sizeof(buf), "%d", config_setting_get_int(s));
		}
		return config_dup_str(L, buf);
	case CONFIG_TYPE_INT64:
		snprintf(buf, sizeof(buf), "%lld", config_setting_get_int64(s));
		return config_dup_str(L, buf);
	case CONFIG_TYPE_FLOAT: {
		/* the shortest spelling that reads back as the same double */
		double v = config_setting_get_float(s);
		snprintf(buf, sizeof(buf), "%.15g", v);
		if (strtod(buf, NULL) != v)
			snprintf(buf, sizeof(buf), "%.17g", v);
		size_t len = strlen(buf);
		if (!strpbrk(buf, ".eEn") &&
		    len + 2 < sizeof(buf)) /* keep it a float: 2.0, not 2 */
			memcpy(buf + len, ".0", 3);
		return config_dup_str(L, buf);
	}
	case CONFIG_TYPE_BOOL:
		return config_dup_str(L, config_setting_get_bool(s) ? "true" : "false");
	default:
		return NULL;
	}
}

static void add_setting(struct loader *L, struct conf_job *j, const config_setting_t *m,
                        const char *file, size_t *cap)
{
	bool bad = false;
	char *v = setting_text(L, m, file, &bad);

	if (!v) {
		if (!L->oom && !bad)
			config_report_at(L, m, file,
			                 "plugin setting %s must be a string, number or "
			                 "true/false, not a list or group",
			                 config_setting_name(m));
		return;
	}
	struct conf_job_more *more = config_job_more_own(j);
	if (!more)
		L->oom = true;
	if (!more || !config_grow(L, (void **)&more->settings, more->n_settings, cap,
	                          sizeof(*more->settings))) {
		free(v);
		return;
	}
	struct conf_setting *st = &more->settings[more->n_settings++];
	st->key = config_dup_str(L, config_setting_name(m));
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

/* A plugin job keeps the keys the core does not know as the plugin's settings, checked once
 * the plugin is loaded. When such a job has no trigger and one of those keys is a misspelt
 * schedule, after, listen or freshness ("schedul"), the typo is the error to show, as in a SQL job,
 * not "would never run". Returns whether one was reported. */
static bool report_trigger_typo(struct loader *L, const config_setting_t *s, const char *file,
                                const char *where)
{
	static const char *const triggers[] = {"schedule", "after", "listen", "freshness"};
	bool found = false;
	int n = config_setting_length(s);

	if (!config_setting_get_member(s, "plugin"))
		return false;
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
		const char *key = config_setting_name(m);
		if (config_find_key(config_job_keys, key))
			continue;
		const char *best = config_closest_key(config_job_keys, key);
		for (size_t t = 0; best && t < sizeof(triggers) / sizeof(triggers[0]); t++)
			if (strcmp(best, triggers[t]) == 0) {
				config_report_at(L, m, file,
				                 "unknown key \"%s\"%s; did you mean \"%s\"?", key,
				                 where, best);
				found = true;
			}
	}
	return found;
}

/* freshness and sources (docs/freshness.md): the SLA is a whole second or more, every
 * source is "schema.table" (resolved by the daemon with no search_path another role could
 * write), and a SQL job with an SLA says what it reads. */
static void check_freshness(struct loader *L, const config_setting_t *s, const char *file,
                            const char *who, struct conf_job *j)
{
	const config_setting_t *fresh = config_setting_get_member(s, "freshness");
	const config_setting_t *srcs = config_setting_get_member(s, "sources");

	if (fresh && j->more->fresh.sla_ms < 1000)
		config_report_at(L, fresh, file,
		                 "freshness must be at least \"1s\"; the daemon cannot promise a "
		                 "relation fresher than that");
	if (srcs && (config_setting_type(srcs) == CONFIG_TYPE_ARRAY ||
	             config_setting_type(srcs) == CONFIG_TYPE_LIST)) {
		for (int i = 0; i < config_setting_length(srcs); i++) {
			const config_setting_t *e = config_setting_get_elem(srcs, (unsigned)i);
			const char *v = config_setting_get_string(e);
			if (!v || config_valid_source(v))
				continue;
			char shown[81];
			text_escape_ctl(v, shown, sizeof(shown));
			config_report_at(
			    L, e, file,
			    "source \"%s\" is not a schema-qualified table name; write "
			    "it as \"schema.table\" in lower case (or a quoted part "
			    "like \"public.\\\"Orders\\\"\"), e.g. \"public.submissions\"",
			    shown);
		}
	}
	if (srcs && !fresh)
		config_report_at(
		    L, srcs, file,
		    "sources are read only for freshness; add freshness = \"15m\" "
		    "(the longest the relation may lag its sources) or remove sources");
	if (fresh && j->command && j->more->fresh.n_sources == 0 && j->n_after == 0 && !srcs)
		config_report_at(L, fresh, file,
		                 "%s has freshness but does not say what it reads; add sources = "
		                 "[ \"schema.table\", ... ] (the tables its command reads) or "
		                 "after = [ ... ] (the jobs whose relations it reads)",
		                 who);
}

/* The job's name as messages give it (WHO: "job \"x\"", WHERE: " in job \"x\""), read first so
 * that every message about the job can name it. */
static void job_who(const config_setting_t *s, char *who, size_t who_len, char *where,
                    size_t where_len)
{
	const config_setting_t *name = config_setting_get_member(s, "name");
	if (name && config_setting_type(name) == CONFIG_TYPE_STRING) {
		/* control characters shown escaped: a name must not break or forge a line */
		char shown[64];
		text_escape_ctl(config_setting_get_string(name), shown, sizeof(shown));
		snprintf(who, who_len, "job \"%s\"", shown);
		snprintf(where, where_len, " in %s", who);
	} else {
		snprintf(who, who_len, "this job");
		snprintf(where, where_len, " in this job");
	}
}

/* Every key of the job group S into J: the standard ones checked as their table says
 * (config_keys.c), a plugin job's other keys kept as the plugin's settings, anything else
 * reported; then the name the job must have. */
static void read_keys(struct loader *L, const config_setting_t *s, const char *file,
                      const char *where, struct conf_job *j)
{
	const config_setting_t *plugin = config_setting_get_member(s, "plugin");
	size_t settings_cap = 0;
	int n = config_setting_length(s);

	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
		const char *key = config_setting_name(m);
		const struct key_spec *k = config_find_key(config_job_keys, key);

		if (k && strcmp(key, "http") == 0) {
			config_parse_http_call(L, m, file, j);
		} else if (k) {
			bool ok = config_apply_job_key(L, m, k, j, file);
			if (ok && strcmp(key, "name") == 0 && !config_valid_job_name(j->name)) {
				char shown[81];
				text_escape_ctl(j->name, shown, sizeof(shown));
				config_report_at(L, m, file,
				                 "job name \"%s\" may only contain letters, "
				                 "digits, \"_\", \".\" and "
				                 "\"-\", at most %d of them; rename it",
				                 shown, JOB_NAME_MAX);
			}
		} else if (plugin) {
			/* the plugin validates its own settings once it is loaded */
			add_setting(L, j, m, file, &settings_cap);
		} else {
			config_report_unknown(
			    L, m, file, config_job_keys, where,
			    "a plain SQL job takes only the standard keys (pgcrond.conf(5) lists "
			    "them); plugin settings need plugin = \"NAME\"");
		}
	}
	if (plugin)
		j->plugin_line = setting_line(plugin);
	const config_setting_t *after = config_setting_get_member(s, "after");
	if (after)
		j->after_line = setting_line(after);

	if (!config_setting_get_member(s, "name"))
		config_report(
		    L, file, setting_line(s),
		    "job has no name; add name = \"...\" using letters, digits, \"_\", \".\" "
		    "and \"-\"");
}

const char *config_fenced(enum job_kind k, const char *command)
{
	if (k == JOB_KIND_PLUGIN)
		return "plugin";
	enum sqlscan_class c =
	    k == JOB_KIND_SQL ? sqlscan_classify(command ? command : "") : SQLSCAN_ONE_TRANSACTION;
	return c == SQLSCAN_ONE_TRANSACTION ? NULL : sqlscan_class_name(c);
}

/* What the job runs: exactly one of plugin, command and http, which is its kind. */
static void check_kind(struct loader *L, const config_setting_t *s, const char *file,
                       const char *who, struct conf_job *j)
{
	const config_setting_t *plugin = config_setting_get_member(s, "plugin");
	const config_setting_t *command = config_setting_get_member(s, "command");
	const config_setting_t *http = config_setting_get_member(s, "http");
	int line = setting_line(s);

	if (plugin && command)
		config_report(
		    L, file, line,
		    "%s has both plugin and command; keep plugin for a view plugin or command for "
		    "plain SQL",
		    who);
	else if (http && (plugin || command))
		config_report(L, file, line,
		              "%s has http and %s; a job is a plugin, a SQL command or an HTTP "
		              "call: keep one",
		              who, plugin ? "plugin" : "command");
	else if (!plugin && !command && !http)
		config_report(
		    L, file, line,
		    "%s has neither plugin nor command; add plugin = \"NAME\", command = \"SQL\" "
		    "or http = { url = \"https://...\"; }",
		    who);
	/* the one place a kind is read off the keys: from here on it is the job's kind */
	j->kind = http ? JOB_KIND_HTTP : plugin ? JOB_KIND_PLUGIN : JOB_KIND_SQL;
	j->fenced = config_fenced(j->kind, j->command); /* read by each of its runs */
	if (j->plugin && !valid_plugin_name(j->plugin))
		config_report_at(
		    L, plugin, file,
		    "plugin \"%.80s\" is not a plugin name; use the file name of a .so in "
		    "plugin_dir without the extension, like \"weakness_patterns\"",
		    j->plugin);
}

/* spread: each fire moved by the same offset within the window on every instance, the job's
 * name hashed (docs/calendars.md); no wider than the schedule's shortest gap between fires. */
static void check_spread(struct loader *L, const config_setting_t *at, const char *file,
                         struct conf_job *j)
{
	int64_t w = j->more->cal.spread_ms / 1000;

	if (j->more->cal.spread_ms % 1000) {
		config_report_at(L, at, file, "spread is counted in whole seconds; write \"%llds\"",
		                 (long long)w + 1);
	} else if (!j->schedule || !cron_can_fire(&j->cron) || j->cron.kind == CRON_REBOOT ||
	           j->cron.kind == CRON_INTERVAL) {
		config_report_at(L, at, file,
		                 "spread moves the fires of a calendar schedule; %s; remove spread",
		                 !j->schedule                  ? "the job has no schedule"
		                 : j->cron.kind == CRON_REBOOT ? "@reboot has no fires to move"
		                 : j->cron.kind == CRON_INTERVAL
		                     ? "\"N seconds\" counts from the last start already"
		                     : "its schedule never fires");
	} else {
		int64_t gap = cron_shortest_gap(&j->cron, j->more->cal.tz);
		if (w > gap)
			config_report_at(
			    L, at, file,
			    "spread \"%llds\" is longer than the shortest time between two "
			    "fires of schedule \"%s\" (%llds): a fire would move past the "
			    "next one; make spread at most \"%llds\"",
			    (long long)w, j->schedule, (long long)gap, (long long)gap);
		else
			j->cron.offset = cron_spread_offset(j->name, w);
	}
}

/* The schedule, and the job's own zone its times are read in (DST rules as for the daemon's
 * timezone). */
static void check_schedule(struct loader *L, const config_setting_t *s, const char *file,
                           struct conf_job *j)
{
	char err[256];
	const config_setting_t *schedule = config_setting_get_member(s, "schedule");

	if (schedule)
		j->schedule_line = setting_line(schedule);
	if (j->schedule) {
		if (cron_parse(j->schedule, &j->cron, err, sizeof(err)) < 0) {
			config_report_at(L, schedule, file, "schedule %s", err);
		} else if (!cron_can_fire(&j->cron)) {
			config_report_at(
			    L, schedule, file,
			    j->cron.kind == CRON_RRULE
			        ? "schedule \"%s\" never fires: no date and time meets "
			          "every part of the rule (before its UNTIL); fix the parts"
			        : "schedule \"%s\" never fires (that day does not exist in "
			          "that month); fix the day and month fields",
			    j->schedule);
		}
	}
	if (j->more->cal.timezone) {
		struct conf_job_cal *cal = &config_job_more_own(j)->cal; /* (its own already) */
		int rc = cron_tz_open(cal->timezone, &cal->tz, err, sizeof(err));
		if (rc < 0) {
			cal->tz = NULL;
			config_report_at(L, config_setting_get_member(s, "timezone"), file,
			                 rc == -ENOENT
			                     ? "unknown timezone \"%s\"; use a name from the tz "
			                       "database like \"UTC\" or \"Europe/Berlin\""
			                     : "timezone \"%s\": cannot be used",
			                 cal->timezone);
		}
	}
	if (j->more->cal.spread_ms)
		check_spread(L, config_setting_get_member(s, "spread"), file, j);
	config_job_dates(L, s, file, j);
}

/* The notifications' keys (listen, debounce, max_delay) and the retries' (retry_delay,
 * retry_max_delay): a cap is never shorter than what it caps, and follows it up when only
 * that was raised. */
static void check_delays(struct loader *L, const config_setting_t *s, const char *file,
                         struct conf_job *j)
{
	const config_setting_t *listen = config_setting_get_member(s, "listen");
	const config_setting_t *max_delay = config_setting_get_member(s, "max_delay");
	const struct conf_job_notify *n = &j->more->notify;
	const struct conf_job_retry *r = &j->more->retry;

	if (n->listen && strlen(n->listen) > CHANNEL_MAX)
		config_report_at(
		    L, listen, file,
		    "listen channel is longer than %d bytes; PostgreSQL would truncate it, use a "
		    "shorter name",
		    CHANNEL_MAX);
	if (!listen) {
		const char *keys[] = {"debounce", "max_delay"};
		for (size_t i = 0; i < 2; i++) {
			const config_setting_t *m = config_setting_get_member(s, keys[i]);
			if (m)
				config_report_at(
				    L, m, file,
				    "%s only applies to notifications; add listen = \"CHANNEL\" or "
				    "remove %s",
				    keys[i], keys[i]);
		}
	} else if (max_delay && n->max_delay_ms < n->debounce_ms) {
		config_report_at(L, max_delay, file,
		                 "max_delay must not be shorter than debounce; raise max_delay or "
		                 "lower debounce");
	} else if (n->max_delay_ms < n->debounce_ms) {
		/* only debounce was raised (so J has its own more): the cap follows it */
		config_job_more_own(j)->notify.max_delay_ms = n->debounce_ms;
	}
	if (r->max_delay_ms < r->delay_ms) {
		const config_setting_t *m = config_setting_get_member(s, "retry_max_delay");
		if (m)
			config_report_at(
			    L, m, file,
			    "retry_max_delay must not be shorter than retry_delay; raise "
			    "retry_max_delay or lower retry_delay");
		else /* (as above) */
			config_job_more_own(j)->retry.max_delay_ms = r->delay_ms;
	}
}

/* The database the job runs in: its database key, or the history database's; the config
 * keeps one copy of each name. */
static void job_database(struct loader *L, const config_setting_t *s, const char *file,
                         const char *who, struct conf_job *j)
{
	struct pgc_config *cfg = L->cfg;
	const config_setting_t *database = config_setting_get_member(s, "database");
	char *read = j->database; /* the key's copy */

	if (read)
		config_check_database(L, file, setting_line(database), who, read);
	if (read || (!database && cfg->history_database)) {
		j->database = config_own_database(cfg, read ? read : cfg->history_database);
		L->oom |= !j->database;
	}
	free(read);
}

/* Append job J (taken) to the configuration. The first definition of a name is kept; later
 * ones are reported and dropped. A job with an invalid name is kept (its error is reported):
 * jobs naming it in after would otherwise get a second, misleading error. UNIQUE: J's name
 * is known to be new (a job of the configuration before, which had no two of a name, when
 * every job so far came from it too). */
static void job_append(struct loader *L, struct conf_job *j, bool unique)
{
	struct pgc_config *cfg = L->cfg;
	const struct conf_job *prev = j->name && !unique ? config_job(cfg, j->name) : NULL;

	if (prev)
		config_report(L, j->file, j->line,
		              "job \"%s\" is already defined at %s:%d; rename one of them", j->name,
		              prev->file, prev->line);
	if (!j->name || prev ||
	    !config_grow(L, (void **)&cfg->jobs, cfg->n_jobs, &L->jobs_cap, sizeof(*cfg->jobs))) {
		config_job_fields_free(j);
		return;
	}
	if (!j->packed && !config_pack_strs(cfg, j, NULL))
		L->oom = true; /* (J still holds its own) */
	cfg->jobs[cfg->n_jobs++] = *j;
	config_index_add(cfg, cfg->n_jobs - 1);
}

void config_job_parse(struct loader *L, const config_setting_t *s, const char *path)
{
	struct pgc_config *cfg = L->cfg;
	const char *file = setting_file(s, path);
	int line = setting_line(s);
	char who[96], where[112];
	size_t errors_before = L->n_errors;
	/* the defaults pgcrond.conf(5) lists */
	struct conf_job j = {.enabled = true,
	                     .overlap = OVERLAP_SKIP,
	                     .catchup = CATCHUP_ONCE,
	                     .more = &config_job_more_defaults,
	                     .file = file ? config_own_str(cfg, file) : NULL,
	                     .line = line};

	if (file && !j.file)
		L->oom = true;
	job_who(s, who, sizeof(who), where, sizeof(where));
	read_keys(L, s, file, where, &j);
	check_kind(L, s, file, who, &j);
	check_schedule(L, s, file, &j);
	check_delays(L, s, file, &j);
	check_freshness(L, s, file, who, &j);

	/* A disabled job without triggers is fine: pgcrond trigger can still run it. When
	 * this job already had errors, a misspelt or mistyped schedule/after is the likely
	 * cause, so do not pile a second message on top. */
	if (j.enabled && !config_setting_get_member(s, "schedule") &&
	    !config_setting_get_member(s, "listen") && j.n_after == 0 &&
	    j.more->fresh.sla_ms == 0 && L->n_errors == errors_before &&
	    !report_trigger_typo(L, s, file, where))
		config_report(
		    L, file, line,
		    "%s would never run; add schedule, after, listen or freshness, or set "
		    "enabled = false",
		    who);

	job_database(L, s, file, who, &j);
	job_append(L, &j, false);
}

/* The job files of L->prev (config_load_again) by path, in the order both read them. */
static const struct conf_file *prev_file(struct loader *L, const char *path, size_t *cursor)
{
	const struct pgc_config *prev = L->prev;

	for (size_t k = 0; prev && k < prev->n_job_files; k++) {
		const struct conf_file *f = &prev->job_files[(*cursor + k) % prev->n_job_files];
		if (strcmp(f->path, path) == 0) {
			*cursor = (size_t)(f - prev->job_files) + 1;
			return f;
		}
	}
	return NULL;
}

/* PATH, whose text is F's, was read before with that very text: its jobs are copied, not
 * parsed again. False if it was not (or its text may mean something else now). */
static bool reuse_file(struct loader *L, const char *path, const struct conf_file *f,
                       size_t *cursor)
{
	const struct conf_file *p = f->reusable ? prev_file(L, path, cursor) : NULL;

	if (!p || !p->reusable || p->size != f->size || p->hash != f->hash)
		return false;
	for (size_t k = p->first; k < p->first + p->n && !L->oom; k++) {
		struct conf_job j;
		config_job_copy(L->cfg, &L->prev->jobs[k], &j, &L->oom);
		job_append(L, &j, !L->parsed_jobs);
	}
	return true;
}

/* Note job file PATH (F: its text's identity), whose jobs are those from FIRST on. */
static void add_job_file(struct loader *L, const char *path, struct conf_file f, size_t first)
{
	struct pgc_config *cfg = L->cfg;

	f.path = config_own_str(cfg, path);
	f.first = first;
	f.n = cfg->n_jobs - first;
	if (!f.path || !config_grow(L, (void **)&cfg->job_files, cfg->n_job_files,
	                            &L->job_files_cap, sizeof(*cfg->job_files))) {
		L->oom = true;
		return;
	}
	cfg->job_files[cfg->n_job_files++] = f;
}

static const char *const daemon_keys_hint =
    "is a daemon setting; it belongs in the main file, not in a job file";

static void load_job_file(struct loader *L, const char *path, int fd, size_t *cursor)
{
	config_t cf;
	size_t len, first = L->cfg->n_jobs;
	struct conf_file f = {0};
	char *body = config_file_text(L, path, fd, &len);

	if (!body)
		return;
	config_text_identity(body, len, &f);
	if (reuse_file(L, path, &f, cursor)) {
		free(body);
		f.taken = true;
		add_job_file(L, path, f, first);
		return;
	}
	L->parsed_jobs = true;
	if (!config_file_parse(L, &cf, path, L->cfg->conf_dir, body))
		return;
	const config_setting_t *root = config_root_setting(&cf);
	int n = config_setting_length(root);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(root, (unsigned)i);
		const char *name = config_setting_name(m);

		if (strcmp(name, "job") == 0) {
			if (config_setting_is_group(m))
				config_job_parse(L, m, path);
			else
				config_report_at(
				    L, m, path,
				    "job must be a group like job = { name = \"...\"; ... }; for "
				    "several jobs in one file write jobs = ( { ... }, { ... } );");
		} else if (strcmp(name, "jobs") == 0) {
			int nj = config_setting_length(m);
			if (!config_setting_is_list(m)) {
				config_report_at(L, m, path,
				                 "jobs must be a list of groups like jobs = ( { "
				                 "name = \"a\"; ... }, { name = \"b\"; ... } );");
				continue;
			}
			for (int k = 0; k < nj; k++) {
				const config_setting_t *e = config_setting_get_elem(m, (unsigned)k);
				if (config_setting_is_group(e))
					config_job_parse(L, e, path);
				else
					config_report_at(L, e, path,
					                 "each element of jobs must be a group { "
					                 "name = \"...\"; ... }");
			}
		} else if (config_find_key(config_main_keys, name)) {
			config_report_at(L, m, path, "\"%s\" %s", name, daemon_keys_hint);
		} else if (config_is_job_key(name)) {
			config_report_at(L, m, path,
			                 "\"%s\" is outside any job; put the job's settings inside "
			                 "job = { ... };",
			                 name);
		} else {
			static const struct key_spec top[] = {
			    {"job", K_CUSTOM, 0, NULL, NULL, 0, false, NULL},
			    {"jobs", K_CUSTOM, 0, NULL, NULL, 0, false, NULL},
			    {NULL, 0, 0, NULL, NULL, 0, false, NULL},
			};
			config_report_unknown(
			    L, m, path, top, " in a job file",
			    "a job file holds job = { ... }; or jobs = ( { ... }, ... );");
		}
	}
	config_destroy(&cf);
	f.reusable = f.reusable && config_file_unchanged(path, &f); /* (edited meanwhile) */
	add_job_file(L, path, f, first);
}

static bool has_conf_suffix(const char *name)
{
	size_t n = strlen(name);
	return n > 5 && strcmp(name + n - 5, ".conf") == 0;
}

/* Every *.conf in conf_dir, in strcmp order; not subdirectories (conf.d/examples/), not
 * dotfiles, and not the main file itself when conf_dir is its directory. */
void config_load_conf_dir(struct loader *L)
{
	struct pgc_config *cfg = L->cfg;
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0, cursor = 0;

	if (!cfg->conf_dir)
		return;
	L->parsed_jobs = cfg->n_jobs > 0; /* (jobs are in job files only) */
	if (config_check_trusted(L, cfg->conf_dir, true, "conf_dir", cfg->file,
	                         config_main_line(L, "conf_dir")) == -EPERM)
		return; /* its files are not read: anybody could have put them there */
	d = opendir(cfg->conf_dir);
	if (!d) {
		config_report(
		    L, cfg->file, config_main_line(L, "conf_dir"),
		    "conf_dir \"%s\" cannot be read: %s; create it or set conf_dir to the "
		    "directory of the job files",
		    cfg->conf_dir, strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !has_conf_suffix(de->d_name))
			continue;
		if (!config_grow(L, (void **)&names, n, &cap, sizeof(*names)))
			break;
		names[n] = config_dup_str(L, de->d_name);
		if (names[n])
			n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), text_cmp_ptrs);
	for (size_t i = 0; i < n; i++) {
		char *path = config_join_path(L, cfg->conf_dir, names[i]);
		struct stat st;
		size_t errors_before = L->n_errors;

		if (!path)
			break;
		if (config_skipped(L, path)) {
			free(path);
			continue;
		}
		if (stat(path, &st) < 0) {
			config_report(L, path, 0, "cannot read the file: %s; fix or remove it",
			              strerror(errno));
		} else if (S_ISREG(st.st_mode) &&
		           !(L->have_main_st && st.st_dev == L->main_st.st_dev &&
		             st.st_ino == L->main_st.st_ino)) {
			/* checked and read on one descriptor: what was checked is what is read */
			char why[1024];
			int fd = -1;
			int rc = trust_open(path, false, L->self, &fd, why, sizeof(why));
			if (rc < 0 && rc != -ENOENT)
				config_report(L, path, 0, "refusing this file: %s", why);
			else if (rc == 0 && fd < 0)
				config_report(L, path, 0,
				              "cannot read the file: not a regular file");
			else if (rc == 0)
				load_job_file(L, path, fd, &cursor);
		}
		if (L->n_errors > errors_before)
			config_blame(L, path);
		free(path);
	}
	text_free_list(names, n);
}

/* Checks across jobs, once every file is read. */
void config_check_jobs(struct loader *L)
{
	struct pgc_config *cfg = L->cfg;

	for (size_t i = 0; i < cfg->n_jobs; i++) {
		struct conf_job *j = &cfg->jobs[i];
		config_check_job_dates(L, j);
		for (size_t a = 0; a < j->n_after; a++) {
			struct suggester sg = {j->after[a], NULL, 99};
			if (config_job(cfg, j->after[a]))
				continue;
			for (size_t k = 0; k < cfg->n_jobs; k++)
				config_suggest(&sg, cfg->jobs[k].name);
			if (sg.best)
				config_report(
				    L, j->file, j->after_line,
				    "job \"%s\" runs after unknown job \"%s\"; did you mean "
				    "\"%s\"?",
				    j->name, j->after[a], sg.best);
			else
				config_report(
				    L, j->file, j->after_line,
				    "job \"%s\" runs after unknown job \"%s\"; define that job or "
				    "fix the name",
				    j->name, j->after[a]);
		}
		/* cycles, self-references included, are the DAG's to report (dag.c) */
		size_t max = cfg->max_command_size > 0 ? (size_t)cfg->max_command_size
		                                       : CONFIG_MAX_COMMAND_SIZE;
		size_t len = j->command ? strlen(j->command) : 0;
		if (len > max)
			config_report(
			    L, j->file, j->line,
			    "job \"%s\": the command is %zu bytes, more than max_command_size (%zu "
			    "bytes); keep the SQL in a function or procedure and call it from the "
			    "job, or raise max_command_size in %s",
			    j->name, len, max, cfg->file);
	}
}
