/* Merging the jobs made in SQL into a configuration loaded from the files (config_sql.h). */
#include "config_sql.h"

#include <errno.h>
#include <libconfig.h>
#include <stdlib.h>
#include <string.h>

#include "config_priv.h"

/* A deep copy of SRC with room for N_DBS more databases; NULL on ENOMEM. */
static struct pgc_config *clone(const struct pgc_config *src, size_t n_dbs)
{
	struct pgc_config *c = calloc(1, sizeof(*c));
	bool oom = !c;

	if (oom)
		return NULL;
	*c = *src;
	c->tz = NULL;        /* the daemon opens its zone from c->timezone; never shared */
	c->job_index = NULL; /* built for the copy once its jobs are final */
	c->extra_refs = 0;
	c->job_strs = NULL; /* its own copies (config_job_copy) */
	c->n_job_strs = 0;
	c->job_files = NULL; /* its jobs are not all from files */
	c->n_job_files = 0;
	c->str_blocks = NULL; /* its own (config_pack_strs) */
	c->n_str_blocks = c->str_left = 0;
	c->str_next = NULL;
	config_strs_dup(c, config_main_strs, &oom);
	config_strs_dup(&c->http, config_http_strs, &oom);
	c->databases = calloc(src->n_databases + n_dbs + 1, sizeof(*c->databases));
	c->alerts = calloc(src->n_alerts + 1, sizeof(*c->alerts));
	c->jobs = calloc(src->n_jobs + 1, sizeof(*c->jobs));
	c->calendars = calloc(src->n_calendars + 1, sizeof(*c->calendars));
	c->n_databases = c->n_alerts = c->n_jobs = c->n_calendars = 0;
	if (!c->databases || !c->alerts || !c->jobs || !c->calendars) {
		config_free(&c);
		return NULL;
	}
	for (size_t i = 0; i < src->n_databases; i++, c->n_databases++) {
		c->databases[i] = src->databases[i];
		config_strs_dup(&c->databases[i], config_database_strs, &oom);
	}
	for (size_t i = 0; i < src->n_alerts; i++, c->n_alerts++) {
		c->alerts[i] = src->alerts[i];
		config_strs_dup(&c->alerts[i], config_alert_strs, &oom);
	}
	for (size_t i = 0; i < src->n_calendars; i++, c->n_calendars++) {
		c->calendars[i] = src->calendars[i];
		config_strs_dup(&c->calendars[i], config_calendar_strs, &oom);
	}
	for (size_t i = 0; i < src->n_jobs; i++, c->n_jobs++)
		config_job_copy(c, &src->jobs[i], &c->jobs[i], &oom);
	if (oom)
		config_free(&c);
	return c;
}

/* Whether following the upstreams of J (those at index FIRST or later: the SQL jobs) leads
 * back to J: a depth-first walk that visits each job once. */
static bool reaches(const struct pgc_config *cfg, size_t first, const struct conf_job *j)
{
	size_t n = cfg->n_jobs - first, sp = 0;
	size_t *stack = malloc((n + 1) * sizeof(*stack));
	bool *seen = calloc(n + 1, sizeof(*seen));
	bool found = false;

	/* (out of memory: nothing is walked, so none is found; jobgraph_build still refuses a
	 * cycle) */
	if (stack && seen)
		stack[sp++] = (size_t)(j - cfg->jobs);
	while (sp && !found) {
		const struct conf_job *k = &cfg->jobs[stack[--sp]];
		for (size_t a = 0; a < k->n_after && !found; a++) {
			const struct conf_job *u = config_job(cfg, k->after[a]);
			if (!u || (size_t)(u - cfg->jobs) < first)
				continue;
			size_t ui = (size_t)(u - cfg->jobs);
			if (u == j)
				found = true;
			else if (!seen[ui - first]) {
				seen[ui - first] = true;
				stack[sp++] = ui;
			}
		}
	}
	free(stack);
	free(seen);
	return found;
}

/* SQL jobs start at index FIRST. One that runs after a job that does not exist, or that
 * sits on a cycle (only SQL jobs can make one: file jobs are checked without them), is left
 * out with a message, so one role's job cannot keep the others from being applied. */
static void drop_bad_after(struct loader *L, size_t first)
{
	struct pgc_config *cfg = L->cfg;
	bool changed = true;

	while (changed) {
		changed = false;
		for (size_t i = first; i < cfg->n_jobs && !changed; i++) {
			struct conf_job *j = &cfg->jobs[i];
			const char *bad = NULL;
			for (size_t a = 0; a < j->n_after && !bad; a++)
				if (!config_job(cfg, j->after[a]))
					bad = j->after[a];
			/* a cycle through SQL jobs: a walk over all their SQL upstreams comes back
			 * here (file jobs were checked without them, so a cycle has a SQL job on
			 * every step) */
			bool cycle = !bad && reaches(cfg, first, j);
			if (!bad && !cycle)
				continue;
			const char *origin = j->file; /* "cron.job jobid N" */
			if (bad)
				diag_add(L->dl, origin, 0,
				         "job \"%s\" runs after unknown job \"%s\"; it is not run",
				         j->name, bad);
			else
				diag_add(L->dl, origin, 0,
				         "job \"%s\" runs after itself through other jobs (a "
				         "cycle); it is not run",
				         j->name);
			config_job_fields_free(j);
			memmove(j, j + 1, (cfg->n_jobs - i - 1) * sizeof(*j));
			cfg->n_jobs--;
			config_index_jobs(cfg); /* the jobs after it moved */
			changed = true;
		}
	}
}

int config_with_sql_jobs(const struct pgc_config *files, const struct config_sql_db *dbs,
                         size_t n_dbs, const struct config_sql_job *jobs, size_t n_jobs,
                         struct pgc_config **out, struct diag_list *dl)
{
	struct loader L;

	if (n_dbs == 0 && n_jobs == 0) {
		*out = config_ref(files); /* nothing to add: no copy of every job */
		return 0;
	}
	struct pgc_config *cfg = clone(files, n_dbs);

	*out = NULL;
	if (!cfg)
		return -ENOMEM;
	memset(&L, 0, sizeof(L));
	L.cfg = cfg;
	L.dl = dl;
	L.dl_start = dl->n;
	L.jobs_cap = files->n_jobs + 1;
	for (size_t i = 0; i < n_dbs; i++) {
		if (config_database(cfg, dbs[i].name))
			continue;
		struct conf_database *d = &cfg->databases[cfg->n_databases++];
		d->name = config_dup_str(&L, dbs[i].name);
		d->conninfo = config_dup_str(&L, dbs[i].conninfo);
		d->pool = dbs[i].pool > 0 ? dbs[i].pool : 2;
	}
	for (size_t i = 0; i < n_jobs && !L.oom; i++) {
		config_t cf;
		size_t errors = L.n_errors, before = cfg->n_jobs;

		config_init(&cf);
		if (!config_read_string(&cf, jobs[i].text)) {
			diag_add(dl, jobs[i].origin, 0, "%s (line %d of its settings)",
			         config_error_text(&cf) ? config_error_text(&cf) : "syntax error",
			         config_error_line(&cf));
			config_destroy(&cf);
			continue;
		}
		const config_setting_t *job = config_lookup(&cf, "job");
		if (job && config_setting_is_group(job))
			config_job_parse(&L, job, jobs[i].origin);
		/* a job with a problem is left out; the others run */
		if (L.n_errors != errors && cfg->n_jobs > before) {
			config_job_fields_free(&cfg->jobs[--cfg->n_jobs]);
			config_index_jobs(cfg); /* it was indexed when appended */
		} else if (cfg->n_jobs > before) {
			struct conf_job_more *m = config_job_more_own(&cfg->jobs[cfg->n_jobs - 1]);
			if (!m) {
				L.oom = true;
			} else {
				m->sql.username = config_dup_str(&L, jobs[i].username);
				m->sql.database = config_dup_str(&L, jobs[i].sql_database);
				m->sql.cron_name = config_dup_str(&L, jobs[i].cron_name);
				m->sql.jobid = jobs[i].jobid;
			}
		}
		config_destroy(&cf);
	}
	if (!L.oom)
		drop_bad_after(&L, files->n_jobs);
	config_source_free(&L);
	if (L.oom) {
		config_free(&cfg);
		return -ENOMEM;
	}
	config_index_jobs(cfg); /* jobs were appended and left out above */
	*out = cfg;
	return 0;
}

int config_set_table_dates(struct pgc_config **cfgp, const struct config_table_dates *dates,
                           size_t n)
{
	struct pgc_config *cfg = *cfgp;
	bool tables = false;

	for (size_t i = 0; i < cfg->n_calendars; i++)
		tables |= cfg->calendars[i].table != NULL;
	if (!tables)
		return 0;
	if (cfg->extra_refs > 0) { /* shared: the files in force */
		if (!(cfg = clone(cfg, 0)))
			return -ENOMEM;
		config_index_jobs(cfg);
		config_free(cfgp);
		*cfgp = cfg;
	}
	for (size_t i = 0; i < cfg->n_calendars; i++) {
		struct conf_calendar *c = &cfg->calendars[i];
		const struct config_table_dates *d = dates, *end = dates + n;
		while (d < end && !(strcmp(d->calendar, c->name) == 0 &&
		                    config_str_eq(d->database, c->database) &&
		                    config_str_eq(d->table, c->table)))
			d++;
		if (c->table)
			c->dates = d < end ? d->dates : NULL;
	}
	for (size_t i = 0; i < cfg->n_jobs; i++) {
		struct conf_job *j = &cfg->jobs[i];
		const struct conf_calendar *c =
		    config_calendar(cfg, j->more->cal.skip_dates ? j->more->cal.skip_dates
		                                                 : j->more->cal.only_dates);
		if (c && c->table && !config_point_dates(j, c))
			return -ENOMEM;
	}
	return 0;
}

char *config_sql_quote(const char *s)
{
	size_t n = 3;
	for (const char *p = s; *p; p++)
		n += (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) ? 4 : 1;
	char *q = malloc(n), *o = q;
	if (!q)
		return NULL;
	*o++ = '"';
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c == '\n') {
			*o++ = '\\';
			*o++ = 'n';
		} else if (c == '\t') {
			*o++ = '\\';
			*o++ = 't';
		} else if (c == '\r') {
			*o++ = '\\';
			*o++ = 'r';
		} else if (c < 0x20) {
			static const char hex[] = "0123456789abcdef";
			*o++ = '\\';
			*o++ = 'x';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		} else {
			*o++ = (char)c;
		}
	}
	*o++ = '"';
	*o = '\0';
	return q;
}
