/* The main configuration file (config.h): its key tables (the daemon's own keys, databases,
 * history, alert sinks), its databases, history and alerts settings, and the checks of what
 * it names (databases, trusted directories). */
#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "config_priv.h"
#include "log.h"
#include "pgconn.h"

/* ---- the main file's keys --------------------------------------------------------- */

static const char *const log_level_values[] = {"error", "warning", "notice", "info", "debug", NULL};
static const char *const sink_values[] = {"log", "notify", "webhook", "exec", NULL};

#define DB(field) offsetof(struct conf_database, field)
const struct key_spec config_database_keys[] = {
    {"conninfo", K_STRING, DB(conninfo), "\"host=db1 dbname=analytics\"", NULL, 0, true, NULL},
    {"pool", K_INT, DB(pool), "4", NULL, 1, false, NULL},
    {"idle_timeout", K_DURATION, DB(idle_timeout_ms), "\"5m\"", NULL, 0, false, NULL},
    {NULL, 0, 0, NULL, NULL, 0, false, NULL},
};

#define HIST(field) offsetof(struct pgc_config, field)
const struct key_spec config_history_keys[] = {
    {"database", K_STRING, HIST(history_database), "\"analytics\"", NULL, 0, false, NULL},
    {"retain", K_DURATION, HIST(history_retain_ms), "\"30d\"", NULL, 0, false, NULL},
    {"backlog", K_INT, HIST(history_backlog), "8192", NULL, 1, false, NULL},
    {NULL, 0, 0, NULL, NULL, 0, false, NULL},
};

#define SINK(field) offsetof(struct conf_alert_sink, field)
const struct key_spec config_sink_keys[] = {
    {"sink", K_CHOICE, SINK(sink), "\"log\"", sink_values, 0, false, NULL},
    {"database", K_STRING, SINK(database), "\"analytics\"", NULL, 0, false, NULL},
    {"channel", K_STRING, SINK(channel), "\"pgcrond_alerts\"", NULL, 0, false, NULL},
    {"url", K_STRING, SINK(url), "\"https://alerts.example.com/hook\"", NULL, 0, false, NULL},
    {"command", K_STRING, SINK(command), "\"/usr/local/bin/page-oncall\"", NULL, 0, false, NULL},
    {"timeout", K_DURATION, SINK(timeout_ms), "\"5s\"", NULL, 0, false, NULL},
    {NULL, 0, 0, NULL, NULL, 0, false, NULL},
};

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

static void config_parse_databases(struct loader *L, const config_setting_t *s, const char *file)
{
	struct pgc_config *cfg = L->cfg;
	size_t cap = 0;
	int n;

	if (!config_setting_is_group(s)) {
		config_report_at(
		    L, s, file,
		    "databases must be a group like databases = { analytics = { conninfo = "
		    "\"service=analytics\"; }; };");
		return;
	}
	n = config_setting_length(s);
	if (n == 0)
		config_report_at(
		    L, s, file,
		    "databases is empty; define at least one, like databases = { analytics = { "
		    "conninfo = \"service=analytics\"; }; };");
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
		const char *name = config_setting_name(m);
		char where[128];

		if (!config_setting_is_group(m)) {
			config_report_at(
			    L, m, file,
			    "database \"%s\" must be a group like %s = { conninfo = \"dbname=%s\"; "
			    "pool = 4; };",
			    name, name, name);
			continue;
		}
		if (!config_grow(L, (void **)&cfg->databases, cfg->n_databases, &cap,
		                 sizeof(*cfg->databases)))
			return;
		struct conf_database *db = &cfg->databases[cfg->n_databases++];
		*db = (struct conf_database){.name = config_dup_str(L, name),
		                             .pool = 4,
		                             .idle_timeout_ms = 5 * 60 * 1000,
		                             .file = config_dup_str(L, setting_file(m, file)),
		                             .line = setting_line(m)};
		snprintf(where, sizeof(where), " in database \"%s\"", name);
		config_parse_group(L, m, file, config_database_keys, db, where,
		                   "a database takes conninfo, pool and idle_timeout");

		const config_setting_t *ci = config_setting_get_member(m, "conninfo");
		if (!ci) {
			config_report_at(L, m, file,
			                 "database \"%s\" has no conninfo; add conninfo = "
			                 "\"host=... dbname=...\" "
			                 "(or \"service=NAME\" from pg_service.conf)",
			                 name);
		} else if (db->conninfo) {
			const char *problem = conninfo_problem(db->conninfo);
			/* a malformed string may hide a password no parser can find: then it is
			 * named by its database; without a password the string itself helps most */
			bool secret = strcasestr(db->conninfo, "password");
			if (problem) {
				config_report_at(
				    L, ci, file,
				    "conninfo %s\"%s\" %s; write key=value pairs like \"host=db1 "
				    "dbname=analytics\", or a URI like "
				    "\"postgresql://db1/analytics\"",
				    secret ? "of database " : "", secret ? name : db->conninfo,
				    problem);
			} else if (!pgconn_conninfo_parses(db->conninfo)) {
				/* what libpq would refuse at every connect, URIs included; libpq's
				 * message is not shown because it may quote the password */
				config_report_at(L, ci, file,
				                 "conninfo of database \"%s\" cannot be parsed by "
				                 "libpq; check its syntax (the parser's message is "
				                 "not shown because it may quote the password)",
				                 name);
			}
		}
	}
}

static void config_parse_history(struct loader *L, const config_setting_t *s, const char *file)
{
	if (!config_setting_is_group(s)) {
		config_report_at(
		    L, s, file,
		    "history must be a group like history = { database = \"analytics\"; retain = "
		    "\"30d\"; };");
		return;
	}
	const config_setting_t *db = config_setting_get_member(s, "database");
	if (db)
		L->history_db_line = setting_line(db);
	config_parse_group(L, s, file, config_history_keys, L->cfg, " in history",
	                   "history takes database, retain and backlog");
}

static void config_parse_alerts(struct loader *L, const config_setting_t *s, const char *file)
{
	struct pgc_config *cfg = L->cfg;
	size_t cap = 0;
	int n;

	if (!config_setting_is_list(s)) {
		config_report_at(
		    L, s, file,
		    "alerts must be a list like alerts = ( { sink = \"log\"; }, { sink = "
		    "\"webhook\"; url = \"https://...\"; } );");
		return;
	}
	n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);

		if (!config_setting_is_group(m)) {
			config_report_at(L, m, file,
			                 "each alert must be a group like { sink = \"log\"; }");
			continue;
		}
		if (!config_grow(L, (void **)&cfg->alerts, cfg->n_alerts, &cap,
		                 sizeof(*cfg->alerts)))
			return;
		struct conf_alert_sink *a = &cfg->alerts[cfg->n_alerts++];
		memset(a, 0, sizeof(*a));
		a->timeout_ms = 10000;
		a->file = config_dup_str(L, setting_file(m, file));
		a->line = setting_line(m);
		config_parse_group(
		    L, m, file, config_sink_keys, a, " in alert",
		    "an alert takes sink, database, channel, url, command and timeout");
		if (!config_setting_get_member(m, "sink")) {
			config_report_at(
			    L, m, file,
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
				bool used = strcmp(kn, "sink") == 0 ||
				            !config_find_key(config_sink_keys, kn);
				for (size_t x = 0; uses[u].keys[x]; x++)
					used |= strcmp(kn, uses[u].keys[x]) == 0;
				if (!used)
					config_report_at(
					    L, k, file,
					    "%s is not used by a \"%s\" sink; remove it", kn,
					    a->sink);
			}
		}
		if (strcmp(a->sink, "webhook") == 0) {
			if (!config_setting_get_member(m, "url"))
				config_report_at(
				    L, m, file,
				    "webhook alert has no url; add url = \"https://...\"");
			else if (a->url)
				config_check_url(L, config_setting_get_member(m, "url"), file,
				                 "webhook url", a->url);
		} else if (strcmp(a->sink, "exec") == 0 &&
		           !config_setting_get_member(m, "command")) {
			config_report_at(
			    L, m, file,
			    "exec alert has no command; add command = \"/path/to/program\"");
		} else if (strcmp(a->sink, "notify") == 0) {
			if (!config_setting_get_member(m, "channel"))
				a->channel = config_dup_str(L, "pgcrond_alerts");
			else if (a->channel && strlen(a->channel) > CHANNEL_MAX)
				config_report_at(L, config_setting_get_member(m, "channel"), file,
				                 "channel is longer than %d bytes; PostgreSQL "
				                 "would truncate it, use a shorter name",
				                 CHANNEL_MAX);
		}
	}
}

/* The main file's own keys: the groups above are parsed by their own functions. */
#define CFG(field) offsetof(struct pgc_config, field)
const struct key_spec config_main_keys[] = {
    {"timezone", K_STRING, CFG(timezone), "\"UTC\"", NULL, 0, false, NULL},
    {"plugin_dir", K_STRING, CFG(plugin_dir), "\"/usr/lib/pgcrond/plugins\"", NULL, 0, false, NULL},
    {"conf_dir", K_STRING, CFG(conf_dir), "\"/etc/pgcrond/conf.d\"", NULL, 0, false, NULL},
    {"state_dir", K_STRING, CFG(state_dir), "\"/var/lib/pgcrond\"", NULL, 0, false, NULL},
    {"log_level", K_CHOICE, CFG(log_level), "\"info\"", log_level_values, 0, false, NULL},
    {"databases", K_CUSTOM, 0, NULL, NULL, 0, false, config_parse_databases},
    {"history", K_CUSTOM, 0, NULL, NULL, 0, false, config_parse_history},
    {"max_running", K_INT, CFG(max_running), "32", NULL, 1, false, NULL},
    {"max_command_size", K_INT, CFG(max_command_size), "1048576", NULL, 64, false, NULL},
    {"max_jobs_per_role", K_INT, CFG(max_jobs_per_role), "1000", NULL, 1, false, NULL},
    {"shutdown_grace", K_DURATION, CFG(shutdown_grace_ms), "\"30s\"", NULL, 0, false, NULL},
    {"alerts", K_CUSTOM, 0, NULL, NULL, 0, false, config_parse_alerts},
    {"calendars", K_CUSTOM, 0, NULL, NULL, 0, false, config_parse_calendars},
    {"alert_repeat", K_DURATION, CFG(alert_repeat_ms), "\"1h\"", NULL, 0, false, NULL},
    /* min: seconds */
    /* default: the host name; see docs/several-instances.md */
    {"instance", K_STRING, CFG(instance), "\"db-host-1\"", NULL, 0, false, NULL},
    {"connection_check", K_DURATION, CFG(connection_check_ms), "\"30s\"", NULL, 2, false, NULL},
    /* min: 4 heartbeats of at least 1.25 s each (cluster.h: CLUSTER_HEARTBEAT_MS) */
    {"cluster_dead_after", K_DURATION, CFG(cluster_dead_after_ms), "\"20s\"", NULL,
     CONFIG_DEAD_AFTER_MIN_S, false, NULL},
    {"http", K_CUSTOM, 0, NULL, NULL, 0, false, config_parse_http},
    {"http_client", K_CUSTOM, 0, NULL, NULL, 0, false, config_parse_http_client},
    {NULL, 0, 0, NULL, NULL, 0, false, NULL},
};

_Static_assert(sizeof(config_main_keys) / sizeof(config_main_keys[0]) <=
                   sizeof(((struct loader *)0)->main_line) / sizeof(int),
               "loader.main_line[] too small");

void config_parse_main(struct loader *L, const config_setting_t *root, const char *file)
{
	int n = config_setting_length(root);

	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(root, (unsigned)i);
		const char *name = config_setting_name(m);
		const struct key_spec *k = config_find_key(config_main_keys, name);

		if (k) {
			L->main_line[k - config_main_keys] = setting_line(m);
			config_apply_key(L, m, k, L->cfg, file);
		} else if (strcmp(name, "job") == 0 || strcmp(name, "jobs") == 0) {
			config_report_at(L, m, file,
			                 "jobs belong in the *.conf files of conf_dir, not in the "
			                 "main file; move this %s there",
			                 name);
		} else if (config_is_job_key(name) && !config_closest_key(config_main_keys, name)) {
			config_report_at(
			    L, m, file,
			    "\"%s\" is a job setting; put it inside a job = { ... }; in a file of "
			    "conf_dir",
			    name);
		} else {
			config_report_unknown(
			    L, m, file, config_main_keys, "",
			    "remove it (pgcrond.conf(5) lists the daemon settings)");
		}
	}
}

int config_main_line(const struct loader *L, const char *key)
{
	const struct key_spec *k = config_find_key(config_main_keys, key);
	return k ? L->main_line[k - config_main_keys] : 0;
}

/* "a, b, c": the names of the databases, for messages */
static void database_names(const struct pgc_config *cfg, char *out, size_t outlen)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < cfg->n_databases; i++) {
		int w =
		    snprintf(out + o, outlen - o, "%s%s", i ? ", " : "", cfg->databases[i].name);
		if (w < 0 || (size_t)w >= outlen - o)
			return;
		o += (size_t)w;
	}
}

/* Report DBNAME (used by WHAT at FILE:LINE) if no database has that name. */
void config_check_database(struct loader *L, const char *file, int line, const char *what,
                           const char *dbname)
{
	struct suggester sg = {dbname, NULL, 99};
	char names[256];

	if (config_database(L->cfg, dbname))
		return;
	for (size_t i = 0; i < L->cfg->n_databases; i++)
		config_suggest(&sg, L->cfg->databases[i].name);
	if (sg.best) {
		config_report(L, file, line, "%s: unknown database \"%s\"; did you mean \"%s\"?",
		              what, dbname, sg.best);
	} else if (L->cfg->n_databases) {
		database_names(L->cfg, names, sizeof(names));
		config_report(
		    L, file, line,
		    "%s: unknown database \"%s\"; use one of %s, or define it under databases "
		    "in %s",
		    what, dbname, names, L->cfg->file);
	} else {
		config_report(L, file, line,
		              "%s: unknown database \"%s\"; define it under databases in %s", what,
		              dbname, L->cfg->file);
	}
}

/* state_dir must exist (the history spool and the daemon's other state go there) and, like
 * the configuration, be changeable by nobody else; plugin_dir is checked here too when it
 * exists (a missing one is the plugin loader's to report, for the jobs that need it). */
void config_check_dirs(struct loader *L)
{
	struct pgc_config *cfg = L->cfg;
	struct stat st;

	if (cfg->state_dir) {
		int line = config_main_line(L, "state_dir");
		if (stat(cfg->state_dir, &st) < 0)
			config_report(
			    L, cfg->file, line,
			    "state_dir \"%s\" cannot be used: %s; create it, owned by the user "
			    "pgcrond runs as with mode 0700 (the package does), or set state_dir",
			    cfg->state_dir, strerror(errno));
		else if (!S_ISDIR(st.st_mode))
			config_report(
			    L, cfg->file, line,
			    "state_dir \"%s\" is not a directory; set state_dir to a directory "
			    "owned by the user pgcrond runs as",
			    cfg->state_dir);
		else
			config_check_trusted(L, cfg->state_dir, true, "state_dir", cfg->file, line);
	}
	if (cfg->plugin_dir)
		config_check_trusted(L, cfg->plugin_dir, true, "plugin_dir", cfg->file,
		                     config_main_line(L, "plugin_dir"));
}

bool config_instance_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n < 1 || n > 63)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

/* Defaults that depend on the rest of the main file, and checks spanning settings. */
void config_finish_main(struct loader *L, const config_setting_t *root)
{
	struct pgc_config *cfg = L->cfg;
	const char *file = cfg->file;
	char err[256];
	char *p;

	/* relative paths are relative to the main file's directory, not the cwd */
	char **dirs[] = {&cfg->conf_dir, &cfg->plugin_dir, &cfg->state_dir};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!*dirs[i])
			continue;
		p = config_join_path(L, L->main_dir, *dirs[i]);
		free(*dirs[i]);
		*dirs[i] = p;
	}
	if (cfg->instance && !config_instance_name_ok(cfg->instance))
		config_report(
		    L, file, config_main_line(L, "instance"),
		    "instance \"%s\": a name is 1 to 63 characters, letters, digits, '.', '_' or "
		    "'-'; give each pgcrond sharing a history database its own (the host name is "
		    "the default)",
		    cfg->instance);

	if (cfg->timezone) {
		int rc = cron_tz_open(cfg->timezone, &cfg->tz, err, sizeof(err));
		if (rc < 0) {
			cfg->tz = NULL;
			if (rc == -ENOENT)
				config_report(
				    L, file, config_main_line(L, "timezone"),
				    "unknown timezone \"%s\"; use a name from the tz database like "
				    "\"UTC\" or \"Europe/Berlin\"",
				    cfg->timezone);
			else
				config_report(L, file, config_main_line(L, "timezone"),
				              "timezone \"%s\": %s", cfg->timezone, err);
		}
	}

	if (!config_setting_get_member(root, "databases"))
		config_report(
		    L, file, 0,
		    "no databases are defined; add databases = { analytics = { conninfo = "
		    "\"service=analytics\"; }; };");
	if (cfg->history_database) {
		config_check_database(L, file, L->history_db_line, "history",
		                      cfg->history_database);
	} else if (cfg->n_databases == 1) {
		cfg->history_database = config_dup_str(L, cfg->databases[0].name);
	} else if (cfg->n_databases > 1) {
		char names[256];
		database_names(cfg, names, sizeof(names));
		config_report(
		    L, file, config_main_line(L, "history"),
		    "history.database is not set and there are %zu databases; add history = { "
		    "database = \"NAME\"; }; naming one of %s",
		    cfg->n_databases, names);
	}

	for (size_t i = 0; i < cfg->n_calendars; i++) { /* a table calendar's database */
		char what[128];
		snprintf(what, sizeof(what), "calendar \"%s\"", cfg->calendars[i].name);
		if (cfg->calendars[i].database)
			config_check_database(L, cfg->calendars[i].file,
			                      cfg->calendars[i].database_line, what,
			                      cfg->calendars[i].database);
	}
	config_http_client_finish(L);

	if (!config_setting_get_member(root, "alerts")) {
		/* no alerts configured: failures still reach the log */
		cfg->alerts = calloc(1, sizeof(*cfg->alerts));
		if (!cfg->alerts) {
			L->oom = true;
			return;
		}
		cfg->n_alerts = 1;
		cfg->alerts[0].sink = config_dup_str(L, "log");
		cfg->alerts[0].timeout_ms = 10000;
		cfg->alerts[0].file = config_dup_str(L, file);
	}
	for (size_t i = 0; i < cfg->n_alerts; i++) {
		struct conf_alert_sink *a = &cfg->alerts[i];
		if (!a->sink || strcmp(a->sink, "notify") != 0)
			continue;
		if (a->database)
			config_check_database(L, a->file, a->line, "notify alert", a->database);
		else if (cfg->history_database)
			a->database = config_dup_str(L, cfg->history_database);
	}
}
