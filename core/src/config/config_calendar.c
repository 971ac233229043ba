/* Calendars (docs/calendars.md): calendars = { NAME = { ics = "PATH"; }; } in the main file,
 * the dates of an .ics file or of every .ics file of a directory, trusted like the job files,
 * or { database = "DB"; table = "schema.table"; }, the dates of a table, which the daemon reads
 * (daemon/caltables.c); and a job's skip_dates or only_dates, which names one. */
#include <dirent.h>
#include <errno.h>
#include <libconfig.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "config.h"
#include "config_priv.h"
#include "trust.h"

#define CAL(field) offsetof(struct conf_calendar, field)
const struct key_spec config_calendar_keys[] = {
    {"ics", K_STRING, CAL(ics), "\"/etc/pgcrond/holidays.ics\"", NULL, 0, false, NULL},
    {"database", K_STRING, CAL(database), "\"analytics\"", NULL, 0, false, NULL},
    {"table", K_STRING, CAL(table), "\"public.holidays\"", NULL, 0, false, NULL},
    {NULL, 0, 0, NULL, NULL, 0, false, NULL},
};

void config_parse_calendars(struct loader *L, const config_setting_t *s, const char *file)
{
	struct pgc_config *cfg = L->cfg;
	size_t cap = 0;

	if (!config_setting_is_group(s)) {
		config_report_at(L, s, file,
		                 "calendars must be a group like calendars = { holidays = { ics = "
		                 "\"/etc/pgcrond/holidays.ics\"; }; };");
		return;
	}
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
		const char *name = config_setting_name(m);
		char where[128];

		if (!config_setting_is_group(m)) {
			config_report_at(L, m, file,
			                 "calendar \"%s\" must be a group like %s = { ics = "
			                 "\"/etc/pgcrond/%s.ics\"; };",
			                 name, name, name);
			continue;
		}
		if (!config_grow(L, (void **)&cfg->calendars, cfg->n_calendars, &cap,
		                 sizeof(*cfg->calendars)))
			return;
		struct conf_calendar *c = &cfg->calendars[cfg->n_calendars++];
		*c = (struct conf_calendar){.name = config_dup_str(L, name),
		                            .file = config_dup_str(L, setting_file(m, file)),
		                            .line = setting_line(m)};
		snprintf(where, sizeof(where), " in calendar \"%s\"", name);
		config_parse_group(L, m, file, config_calendar_keys, c, where,
		                   "a calendar takes ics (an .ics file or a directory of them), or "
		                   "database and table");
		const config_setting_t *t = config_setting_get_member(m, "table");
		const config_setting_t *db = config_setting_get_member(m, "database");
		c->database_line = db ? setting_line(db) : c->line;
		if (c->ics && (c->database || c->table))
			config_report_at(
			    L, m, file,
			    "calendar \"%s\" has both ics and a table; a calendar takes "
			    "its dates from one: remove ics, or database and table",
			    name);
		else if (!c->ics && !c->database && !c->table)
			config_report_at(
			    L, m, file,
			    "calendar \"%s\" has no dates; add ics = \"/etc/pgcrond/%s.ics\" (a "
			    "file, or a directory of .ics files), or database = \"DB\"; table = "
			    "\"schema.table\"; (a table with a date column)",
			    name, name);
		else if (!c->ics && !(c->database && c->table))
			config_report_at(L, m, file,
			                 "calendar \"%s\" has %s but no %s; a table calendar takes "
			                 "both: database = \"DB\"; table = \"schema.table\";",
			                 name, c->table ? "table" : "database",
			                 c->table ? "database" : "table");
		else if (c->table && !config_valid_source(c->table))
			config_report_at(
			    L, t, file,
			    "calendar \"%s\": table \"%s\" is not a schema-qualified table name; "
			    "write it as \"schema.table\" in lower case (or a quoted part like "
			    "\"public.\\\"Holidays\\\"\"), e.g. \"public.holidays\"",
			    name, c->table);
	}
}

static int is_ics(const struct dirent *de)
{
	size_t nl = strlen(de->d_name);
	return nl > 4 && strcmp(de->d_name + nl - 4, ".ics") == 0;
}

/* The dates of the .ics file PATH into DAYS; false after reporting. */
static bool read_ics(struct loader *L, const struct conf_calendar *c, const char *path,
                     int64_t **days, size_t *n, size_t *cap)
{
	char why[1024];
	int fd = -1, line = 0;
	int rc = trust_open(path, false, L->self, &fd, why, sizeof(why));

	if (rc == -ENOENT) {
		config_report(
		    L, c->file, c->line,
		    "calendar \"%s\": %s does not exist; give ics the path of an .ics file or of a "
		    "directory of them (a relative path starts at this file's directory)",
		    c->name, path);
		return false;
	}
	if (rc == 0 && fd < 0)
		snprintf(why, sizeof(why), "not a regular file");
	if (rc < 0 || fd < 0) {
		config_report(
		    L, c->file, c->line,
		    "calendar \"%s\": refusing %s: %s; give ics the path of an .ics file "
		    "(or a directory of them) that only root or pgcrond's user can change",
		    c->name, path, why);
		return false;
	}
	size_t len;
	char *text = config_file_text(L, path, fd, &len);
	if (!text)
		return false;
	rc = cron_ics_dates(text, days, n, cap, &line, why, sizeof(why));
	free(text);
	if (rc == -ENOMEM)
		L->oom = true;
	else if (rc < 0)
		config_report(L, path, line, "calendar \"%s\": %s", c->name, why);
	return rc == 0;
}

/* Each calendar's dates, once L->self is known (the files are trusted like the job files). */
void config_calendars_finish(struct loader *L)
{
	for (size_t i = 0; i < L->cfg->n_calendars; i++) {
		struct conf_calendar *c = &L->cfg->calendars[i];
		int64_t *days = NULL;
		size_t n = 0, cap = 0, errors = L->n_errors;
		bool ok = true;
		struct stat st;
		char what[96]; /* what config_load_partial leaves out, with the files using it */
		snprintf(what, sizeof(what), "calendar \"%s\"", c->name);
		if (!c->ics || config_skipped(L, what))
			continue;
		char *path = config_join_path(L, L->main_dir, c->ics);
		if (!path)
			continue;
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			/* every .ics file of the directory, in the order of their names */
			struct dirent **de = NULL;
			int k = config_check_trusted(L, path, true, "this calendar's directory",
			                             c->file, c->line) < 0
			            ? -1
			            : scandir(path, &de, is_ics, alphasort);
			ok = k >= 0;
			for (int f = 0; f < k; f++) {
				char *name = config_join_path(L, path, de[f]->d_name);
				ok = name && read_ics(L, c, name, &days, &n, &cap) && ok;
				free(name);
				free(de[f]);
			}
			free(de);
		} else {
			ok = read_ics(L, c, path, &days, &n, &cap);
		}
		if (ok && !(c->dates = cron_dates_make(days, n)))
			L->oom = true;
		if (L->n_errors > errors)
			config_blame(L, what);
		free(days);
		free(path);
	}
}

const struct conf_calendar *config_calendar(const struct pgc_config *cfg, const char *name)
{
	for (size_t i = 0; cfg && name && i < cfg->n_calendars; i++)
		if (strcmp(cfg->calendars[i].name, name) == 0)
			return &cfg->calendars[i];
	return NULL;
}

/* Whether J, its calendar applied, fires within ten years of now; if not, reported at
 * FILE:LINE. */
static void check_fires(struct loader *L, const struct conf_job *j, const char *file, int line)
{
	const struct conf_job_cal *cal = &j->more->cal;
	int64_t now = (int64_t)time(NULL),
	        t = cron_next(&j->cron, cal->tz ? cal->tz : L->cfg->tz, now);
	const char *key = j->cron.flags & CRON_ONLY_DATES ? "only_dates" : "skip_dates";

	/* (@reboot, "N seconds" and no schedule have no dates: config_job_dates says so) */
	if (j->schedule && (j->cron.kind == CRON_CALENDAR || j->cron.kind == CRON_RRULE) &&
	    (t == CRON_NEVER || t - now > INT64_C(3653) * 86400))
		config_report(L, file, line,
		              "job \"%s\": schedule \"%s\" with %s = \"%s\" has no fire in the "
		              "next ten years; %s",
		              j->name, j->schedule, key,
		              cal->skip_dates ? cal->skip_dates : cal->only_dates,
		              j->cron.flags & CRON_ONLY_DATES
		                  ? "add the dates to come to the calendar, or check that the "
		                    "schedule fires on them"
		                  : "the calendar takes every date the schedule fires on");
}

void config_job_dates(struct loader *L, const config_setting_t *s, const char *file,
                      struct conf_job *j)
{
	const struct conf_job_cal *cal = &j->more->cal;
	const char *name = cal->skip_dates ? cal->skip_dates : cal->only_dates;
	const config_setting_t *at =
	    config_setting_get_member(s, cal->skip_dates ? "skip_dates" : "only_dates");

	if (!name)
		return;
	if (cal->skip_dates && cal->only_dates) {
		config_report_at(L, config_setting_get_member(s, "only_dates"), file,
		                 "job \"%s\" has both skip_dates and only_dates; a job takes one "
		                 "calendar: keep the dates to skip out of the only_dates calendar",
		                 j->name);
		return;
	}
	if (!j->schedule || j->cron.kind == CRON_REBOOT || j->cron.kind == CRON_INTERVAL) {
		config_report_at(
		    L, at, file,
		    "%s leaves out the fires of a calendar schedule on some dates; %s; remove it",
		    cal->skip_dates ? "skip_dates" : "only_dates",
		    !j->schedule                  ? "the job has no schedule"
		    : j->cron.kind == CRON_REBOOT ? "@reboot has no dates"
		                                  : "\"N seconds\" has no dates");
		return;
	}
	const struct conf_calendar *c = config_calendar(L->cfg, name);
	if (!c) {
		struct suggester sg = {name, NULL, 99};
		for (size_t i = 0; i < L->cfg->n_calendars; i++)
			config_suggest(&sg, L->cfg->calendars[i].name);
		if (sg.best)
			config_report_at(L, at, file,
			                 "unknown calendar \"%s\"; did you mean \"%s\"?", name,
			                 sg.best);
		else
			config_report_at(
			    L, at, file,
			    "unknown calendar \"%s\"; define it in %s: calendars = { %s "
			    "= { ics = \"/etc/pgcrond/%s.ics\"; }; };",
			    name, L->cfg->file, name, name);
		return;
	}
	char what[96];
	snprintf(what, sizeof(what), "calendar \"%s\"", name);
	if (config_skipped(L, what))
		config_report_at(L, at, file, "%s cannot be read (pgcrond check says why)", what);
	else if (!config_point_dates(j, c))
		L->oom = true;
	else if (c->ics && c->dates && cron_can_fire(&j->cron))
		check_fires(L, j, file, setting_line(at));
}

bool config_point_dates(struct conf_job *j, const struct conf_calendar *c)
{
	const struct cron_dates *d = c->dates;
	bool only = j->more->cal.only_dates != NULL;

	if (!d) {
		/* no date kept: no fire until the table is read (a file's: left out) */
		if (!(d = cron_dates_make(NULL, 0)))
			return false;
		only = true;
	}
	j->cron.dates = d;
	j->cron.flags =
	    (uint8_t)((j->cron.flags & ~CRON_ONLY_DATES) | (only ? CRON_ONLY_DATES : 0));
	return true;
}

void config_check_job_dates(struct loader *L, struct conf_job *j)
{
	const struct conf_job_cal *cal = &j->more->cal;
	const struct conf_calendar *c =
	    config_calendar(L->cfg, cal->skip_dates ? cal->skip_dates : cal->only_dates);
	/* a job taken again from the configuration before keeps its calendar's old dates (a
	 * table's are set after the load: config_set_table_dates) */
	if (c && (c->table || (c->dates && j->cron.dates != c->dates))) {
		if (!config_point_dates(j, c))
			L->oom = true;
		else if (c->ics)
			check_fires(L, j, j->file, j->schedule_line);
	}
}
