/* The API table handed to plugins and the calls into a loaded plugin: its settings as the
 * getters read them, a job's settings checked (plugin_check_job), the relations a job
 * maintains, and the statements of a run or of a job's install built. Loading and the
 * registry are plugin_load.c's; what a run is made of, plugin_run.c's. */
#include "plugin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "duration.h"
#include "log.h"
#include "plugin_priv.h"
#include "text.h"

/* What a plugin's settings handle is, core side. */
struct pgc_settings {
	const struct plugin *plugin;
	const struct conf_job *job;
	struct diag_list *dl; /* NULL outside configuration checks: errors are logged */
	int *n_errors;
};

/* ---- setting values ----------------------------------------------------------------- */

static int parse_int(const char *text, int64_t *out)
{
	char *end;

	if (!text || !*text)
		return -EINVAL;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (end == text || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_bool(const char *text, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* Each setting type's name and its getter's (a declared type is checked at load), for the
 * message about a plugin reading a setting with the wrong getter. */
static const char *const type_names[][2] = {
    [PGC_SETTING_STRING] = {"string", "setting_str()"},
    [PGC_SETTING_INT] = {"integer", "setting_int()"},
    [PGC_SETTING_BOOL] = {"boolean", "setting_bool()"},
    [PGC_SETTING_DURATION] = {"duration", "setting_duration_ms()"},
};

/* Check VALUE against TYPE. On failure ERR gets a phrase naming the value, why it is wrong
 * and what to write instead. */
int plugin_check_value(int type, const char *value, char *err, size_t errlen)
{
	int64_t i;
	bool b;

	switch (type) {
	case PGC_SETTING_STRING:
		return 0;
	case PGC_SETTING_INT:
		switch (parse_int(value, &i)) {
		case 0:
			return 0;
		case -ERANGE:
			plugin_set_err(err, errlen, "\"%s\" is out of range for a 64-bit integer",
			               value);
			return -EINVAL;
		default:
			plugin_set_err(err, errlen,
			               "\"%s\" is not an integer; write a whole number such as 10",
			               value);
			return -EINVAL;
		}
	case PGC_SETTING_BOOL:
		if (parse_bool(value, &b) < 0) {
			plugin_set_err(err, errlen, "\"%s\" is not a boolean; write true or false",
			               value);
			return -EINVAL;
		}
		return 0;
	case PGC_SETTING_DURATION:
		/* duration_parse() already says what it got and what it takes. */
		return duration_parse(value, &i, err, errlen) < 0 ? -EINVAL : 0;
	default:
		plugin_set_err(err, errlen, "has an unknown type %d", type);
		return -EINVAL;
	}
}

static const struct pgc_setting_decl *find_decl(const struct plugin *p, const char *key)
{
	for (size_t i = 0; key && i < p->n_settings; i++)
		if (strcmp(p->decl.settings[i].name, key) == 0)
			return &p->decl.settings[i];
	return NULL;
}

/* The text a getter works from: the job's value, the declared default, or NULL (use the
 * getter's DEF). Logs a plugin bug (undeclared key, wrong type) and returns NULL. */
static const char *setting_text(const struct pgc_settings *s, const char *key, int type)
{
	const struct pgc_setting_decl *d = find_decl(s->plugin, key);

	if (!d) {
		log_msg(
		    LOG_LVL_WARNING, plugin_log_context(),
		    "asked for setting \"%s\", which the plugin does not declare (a plugin bug); "
		    "using the default",
		    key ? key : "(null)");
		return NULL;
	}
	if (d->type != type) {
		log_msg(LOG_LVL_WARNING, plugin_log_context(),
		        "read %s setting \"%s\" with %s (a plugin bug); using the default",
		        type_names[d->type][0], key, type_names[type][1]);
		return NULL;
	}
	const struct conf_setting *js = config_job_setting(s->job, key);
	return js ? js->value : d->default_value;
}

/* ---- the API table ------------------------------------------------------------------ */

static const char *api_setting_str(const struct pgc_settings *s, const char *key, const char *def)
{
	const char *t = setting_text(s, key, PGC_SETTING_STRING);
	return t ? t : def;
}

static int64_t api_setting_int(const struct pgc_settings *s, const char *key, int64_t def)
{
	const char *t = setting_text(s, key, PGC_SETTING_INT);
	int64_t v;
	return t && parse_int(t, &v) == 0 ? v : def;
}

static bool api_setting_bool(const struct pgc_settings *s, const char *key, bool def)
{
	const char *t = setting_text(s, key, PGC_SETTING_BOOL);
	bool v;
	return t && parse_bool(t, &v) == 0 ? v : def;
}

static int64_t api_setting_duration_ms(const struct pgc_settings *s, const char *key, int64_t def)
{
	const char *t = setting_text(s, key, PGC_SETTING_DURATION);
	int64_t v;
	char err[128];
	return t && duration_parse(t, &v, err, sizeof(err)) == 0 ? v : def;
}

static bool api_setting_is_set(const struct pgc_settings *s, const char *key)
{
	return config_job_setting(s->job, key) != NULL;
}

__attribute__((format(printf, 3, 4))) static void
api_setting_error(const struct pgc_settings *s, const char *key, const char *fmt, ...)
{
	char msg[768];
	TEXT_VA_FORMAT(msg, sizeof(msg), fmt);
	if (s->n_errors)
		(*s->n_errors)++;
	const struct conf_setting *js = config_job_setting(s->job, key);
	int line = js && js->line > 0 ? js->line : s->job->line;
	if (!s->dl) {
		log_msg(LOG_LVL_ERROR, plugin_log_context(), "setting \"%s\": %s", key ? key : "",
		        msg);
		return;
	}
	if (key)
		diag_add(s->dl, s->job->file, line, "job \"%s\": setting \"%s\": %s", s->job->name,
		         key, msg);
	else
		diag_add(s->dl, s->job->file, line, "job \"%s\": %s", s->job->name, msg);
}

static const char *api_job_name(const struct pgc_settings *s)
{
	return s->job->name;
}

/* A run_refresh() failure: the reason goes into the run like run_error()'s, so a plugin that
 * ignores the return value still gets a failed build with a message. */
__attribute__((format(printf, 3, 4))) static int refresh_failed(struct pgc_run *run, int rc,
                                                                const char *fmt, ...)
{
	char msg[768];
	TEXT_VA_FORMAT(msg, sizeof(msg), fmt);
	plugin_run_error(run, "%s", msg);
	return rc;
}

static int refresh_one(struct pgc_run *run, const char *relation, bool concurrently, bool analyze)
{
	/* Names come from the plugin or an operator's job file: allow far more than
	 * NAMEDATALEN, so PostgreSQL, not this buffer, says what is too long. SQL has room for
	 * the longest IDENT after either statement's words. */
	char ident[1024], sql[sizeof(ident) + 48];
	int rc;

	rc = plugin_quote_qualified(relation, ident, sizeof(ident));
	if (rc == -ENOSPC)
		return refresh_failed(run, -ENAMETOOLONG, "relation name \"%.64s...\" is too long",
		                      relation);
	if (rc < 0)
		return refresh_failed(run, rc,
		                      "cannot refresh \"%s\": not a relation name; write "
		                      "\"schema.view\" or \"view\"",
		                      relation);
	snprintf(sql, sizeof(sql), "REFRESH MATERIALIZED VIEW %s%s",
	         concurrently ? "CONCURRENTLY " : "", ident);
	if ((rc = plugin_run_add(run, sql)) < 0 || !analyze)
		return rc;
	snprintf(sql, sizeof(sql), "ANALYZE %s", ident);
	return plugin_run_add(run, sql);
}

/* The job's relations (declared, then job_relation()'s) decide both what NULL means and
 * whether a named view must be refreshed CONCURRENTLY. */
static int api_run_refresh(struct pgc_run *run, const char *relation, unsigned flags)
{
	struct pgc_relation_decl *rels = NULL;
	size_t n_rels = 0, n_views = 0;
	char err[1024];
	int rc = 0;

	if (flags & ~(PGC_REFRESH_CONCURRENTLY | PGC_REFRESH_ANALYZE))
		return refresh_failed(run, -EINVAL,
		                      "run_refresh() was given unknown flags 0x%x (a plugin bug)",
		                      flags & ~(PGC_REFRESH_CONCURRENTLY | PGC_REFRESH_ANALYZE));
	if (run->plugin && run->job) {
		rc = plugin_job_relations(run->plugin, run->job, &rels, &n_rels, err, sizeof(err));
		plugin_set_context(run->plugin, run->job); /* the call above cleared it */
		if (rc < 0)
			return refresh_failed(run, rc, "%s", err);
	}
	bool analyze = flags & PGC_REFRESH_ANALYZE;
	for (size_t i = 0; i < n_rels && rc == 0; i++) {
		const struct pgc_relation_decl *r = &rels[i];
		bool declared_concurrent = r->flags & PGC_RELATION_CONCURRENT;
		if (r->kind != PGC_RELATION_MATVIEW)
			continue;
		if (!relation) {
			rc = refresh_one(run, r->name,
			                 declared_concurrent || (flags & PGC_REFRESH_CONCURRENTLY),
			                 analyze);
			n_views++;
		} else if (strcmp(r->name, relation) == 0 && declared_concurrent) {
			flags |= PGC_REFRESH_CONCURRENTLY; /* guarded: never a blocking refresh */
		}
	}
	plugin_relations_free(&rels);
	if (rc < 0)
		return rc;
	if (relation)
		return refresh_one(run, relation, flags & PGC_REFRESH_CONCURRENTLY, analyze);
	if (n_views == 0)
		return refresh_failed(run, -ENOENT,
		                      "run_refresh() found no materialized view to refresh: the "
		                      "plugin declares none (a plugin bug)");
	return 0;
}

static const struct pgc_api core_api = {
    .size = sizeof(struct pgc_api),
    .abi_major = PGC_PLUGIN_ABI_MAJOR,
    .abi_minor = PGC_PLUGIN_ABI_MINOR,
    .core_version = PGCROND_VERSION,
    .log = plugin_log,
    .setting_str = api_setting_str,
    .setting_int = api_setting_int,
    .setting_bool = api_setting_bool,
    .setting_duration_ms = api_setting_duration_ms,
    .setting_is_set = api_setting_is_set,
    .setting_error = api_setting_error,
    .quote_ident = plugin_quote_ident,
    .quote_qualified = plugin_quote_qualified,
    .run_add = plugin_run_add,
    .run_add_param = plugin_run_add_param,
    .run_error = plugin_run_error,
    .job_name = api_job_name,
    .run_refresh = api_run_refresh,
    .payload_keys = plugin_payload_keys,
    .run_replace = plugin_run_replace,
};

const struct pgc_api *plugin_api(void)
{
	return &core_api;
}

/* ---- per-job relations (ABI 1.1) ----------------------------------------------------- */

void plugin_relations_free(struct pgc_relation_decl **rels)
{
	struct pgc_relation_decl *r = *rels;

	if (!r)
		return;
	for (size_t i = 0; r[i].name; i++)
		free((char *)r[i].name);
	free(r);
	*rels = NULL;
}

/* The declared relations, then the one job_relation() names; DL (may be NULL) receives the
 * plugin's setting_error() reports. Each name is copied, so the list outlives the callback. */
static int job_relations(const struct plugin *p, const struct conf_job *job, struct diag_list *dl,
                         int *n_errors, struct pgc_relation_decl **out, size_t *n_out, char *err,
                         size_t errlen)
{
	struct pgc_relation_decl *rels = calloc(p->n_relations + 2, sizeof(*rels));
	size_t n = 0;
	char buf[512];
	int rc = 0;

	*out = NULL;
	*n_out = 0;
	if (!rels)
		goto oom;
	for (size_t i = 0; i < p->n_relations; i++, n++) {
		rels[n] = p->decl.relations[i];
		if (!(rels[n].name = strdup(p->decl.relations[i].name)))
			goto oom;
	}
	if (p->decl.job_relation) {
		struct pgc_relation_decl r = {0};
		struct pgc_settings s = {.plugin = p, .job = job, .dl = dl, .n_errors = n_errors};
		plugin_set_context(p, job);
		rc = p->decl.job_relation(&s, &r);
		plugin_clear_context();
		if (rc < 0) {
			plugin_set_err(err, errlen,
			               "plugin \"%s\" cannot name the job's relation: %s", p->name,
			               strerror(-rc));
			goto out;
		}
		/* Checked like a declared relation, except that a plain name is allowed: it
		 * comes from the job file, where the operator may rely on the search_path. */
		if (!r.name || plugin_quote_qualified(r.name, buf, sizeof(buf)) < 0) {
			plugin_set_err(
			    err, errlen,
			    "plugin \"%s\" names the relation \"%s\" for this job, which is not "
			    "a relation name; write \"schema.relation\" or \"relation\"",
			    p->name, r.name ? r.name : "");
			rc = -EINVAL;
			goto out;
		}
		if ((r.kind != PGC_RELATION_MATVIEW && r.kind != PGC_RELATION_TABLE) ||
		    (r.flags & ~PGC_RELATION_CONCURRENT) ||
		    ((r.flags & PGC_RELATION_CONCURRENT) && r.kind != PGC_RELATION_MATVIEW)) {
			plugin_set_err(err, errlen,
			               "plugin \"%s\" names relation \"%s\" with kind %d and flags "
			               "0x%x, which this pgcrond does not accept (a plugin bug)",
			               p->name, r.name, r.kind, r.flags);
			rc = -EINVAL;
			goto out;
		}
		rels[n] = r;
		if (!(rels[n++].name = strdup(r.name)))
			goto oom;
	}
	*out = rels;
	*n_out = n;
	return 0;
oom:
	plugin_set_err(err, errlen, "out of memory");
	rc = -ENOMEM;
out:
	plugin_relations_free(&rels);
	return rc;
}

int plugin_job_relations(const struct plugin *p, const struct conf_job *job,
                         struct pgc_relation_decl **out, size_t *n, char *err, size_t errlen)
{
	return job_relations(p, job, NULL, NULL, out, n, err, errlen);
}

/* ---- configuration checks ----------------------------------------------------------- */

/* "a, b, c" of the plugin's setting names, for "unknown setting" messages. */
static void list_settings(const struct plugin *p, char *out, size_t outlen)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < p->n_settings; i++) {
		int n =
		    snprintf(out + o, outlen - o, "%s%s", i ? ", " : "", p->decl.settings[i].name);
		if (n < 0 || (size_t)n >= outlen - o) {
			/* Too many to list: end with an ellipsis where it was cut. */
			if (outlen > 4)
				memcpy(out + outlen - 4, "...", 4);
			return;
		}
		o += (size_t)n;
	}
}

int plugin_check_job(const struct plugin *p, const struct conf_job *job, struct diag_list *dl)
{
	int n_errors = 0;
	char why[256];

	for (size_t i = 0; i < job->more->n_settings; i++) {
		const struct conf_setting *js = &job->more->settings[i];
		int line = js->line > 0 ? js->line : job->line;
		const struct pgc_setting_decl *d = find_decl(p, js->key);
		if (!d) {
			char known[512];
			struct suggester sg = {js->key, NULL, 99};
			for (size_t k = 0; k < p->n_settings; k++)
				config_suggest(&sg, p->decl.settings[k].name);
			config_suggest_job_keys(&sg);
			list_settings(p, known, sizeof(known));
			if (sg.best && config_is_job_key(sg.best) && !find_decl(p, sg.best))
				/* a misspelt core key: the message a SQL job gets for it */
				diag_add(dl, job->file, line,
				         "unknown key \"%s\" in job \"%s\"; did you mean \"%s\"?",
				         js->key, job->name, sg.best);
			else if (sg.best)
				diag_add(dl, job->file, line,
				         "job \"%s\": plugin \"%s\" has no setting "
				         "\"%s\"; did you mean \"%s\"?",
				         job->name, p->name, js->key, sg.best);
			else if (p->n_settings)
				diag_add(dl, job->file, line,
				         "job \"%s\": plugin \"%s\" has no setting "
				         "\"%s\"; its settings are: %s",
				         job->name, p->name, js->key, known);
			else
				diag_add(dl, job->file, line,
				         "job \"%s\": plugin \"%s\" has no setting "
				         "\"%s\"; it takes no settings",
				         job->name, p->name, js->key);
			n_errors++;
			continue;
		}
		if (plugin_check_value(d->type, js->value ? js->value : "", why, sizeof(why)) < 0) {
			diag_add(dl, job->file, line, "job \"%s\": setting \"%s\": %s", job->name,
			         js->key, why);
			n_errors++;
		}
	}
	/* The plugin's own checks assume well-typed values: only run them on those. */
	if (n_errors == 0 && p->decl.check_settings) {
		struct pgc_settings s = {.plugin = p, .job = job, .dl = dl, .n_errors = &n_errors};
		plugin_set_context(p, job);
		int rc = p->decl.check_settings(&s);
		plugin_clear_context();
		if (rc < 0 && n_errors == 0) {
			diag_add(dl, job->file, job->line,
			         "job \"%s\": plugin \"%s\" rejected its settings: %s", job->name,
			         p->name, strerror(-rc));
			n_errors++;
		}
	}
	if (n_errors == 0 && p->decl.job_relation) {
		struct pgc_relation_decl *rels = NULL;
		size_t n;
		char err[1024];
		int rc = job_relations(p, job, dl, &n_errors, &rels, &n, err, sizeof(err));
		if (rc < 0 && n_errors == 0) {
			diag_add(dl, job->file, job->line, "job \"%s\": %s", job->name, err);
			n_errors++;
		}
		plugin_relations_free(&rels);
	}
	return n_errors ? -EINVAL : 0;
}

/* ---- runs --------------------------------------------------------------------------- */

/* Call build_run() (INSTALL false) or job_install() (INSTALL true) and judge the result the
 * same way for both: a failed add or a run_error() fails the build. */
static int build(const struct plugin *p, const struct conf_job *job, bool install,
                 const char *const *payloads, size_t n_payloads, struct pgc_run **out, char *err,
                 size_t errlen)
{
	struct pgc_run *run = calloc(1, sizeof(*run));
	struct pgc_settings s = {.plugin = p, .job = job};
	static const char *const no_payloads[] = {NULL};
	const char *what = install ? "the job's install statements" : "the run";
	int rc = 0;

	*out = NULL;
	if (!run) {
		plugin_set_err(err, errlen, "out of memory building the run");
		return -ENOMEM;
	}
	run->plugin = p;
	run->job = job;
	plugin_set_context(p, job);
	if (!install && !p->decl.build_run)
		rc = api_run_refresh(run, NULL, 0); /* a plugin that only refreshes (ABI 1.2) */
	else if (!install)
		rc = p->decl.build_run(&s, n_payloads ? payloads : no_payloads, n_payloads, run);
	else if (p->decl.job_install)
		rc = p->decl.job_install(&s, run);
	plugin_clear_context();
	if (rc >= 0 && run->error)
		rc = -EINVAL; /* it said why it failed but returned success: believe the words */
	bool add_failed = rc >= 0 && run->add_error;
	if (add_failed)
		rc = run->add_error;
	if (rc < 0) {
		plugin_set_err(err, errlen, "plugin \"%s\" could not build %s: %s%s", p->name, what,
		               add_failed ? "adding a statement failed: " : "",
		               run->error && !add_failed ? run->error : strerror(-rc));
		plugin_run_free(&run);
		return rc;
	}
	*out = run;
	return 0;
}

int plugin_build_run(const struct plugin *p, const struct conf_job *job,
                     const char *const *payloads, size_t n_payloads, struct pgc_run **out,
                     char *err, size_t errlen)
{
	return build(p, job, false, payloads, n_payloads, out, err, errlen);
}

int plugin_build_install(const struct plugin *p, const struct conf_job *job, struct pgc_run **out,
                         char *err, size_t errlen)
{
	return build(p, job, true, NULL, 0, out, err, errlen);
}
