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
#include <fcntl.h>
#include <limits.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config_priv.h"
#include "log.h"
#include "pgconn.h"
#include "text.h"
#include "trust.h"

#define CHANNEL_MAX 63 /* PostgreSQL identifiers: NAMEDATALEN - 1 */
#define MSG_MAX 1024

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

void config_report_at(struct loader *L, const config_setting_t *s, const char *fallback_file,
                      const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	report(L, setting_file(s, fallback_file), setting_line(s), "%s", msg);
}

char *config_dup_str(struct loader *L, const char *s)
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
		return config_dup_str(L, name);
	if (strcmp(name, ".") == 0) /* conf_dir = "." : the main file's own directory */
		return config_dup_str(L, dir);
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

/* ---- libconfig files --------------------------------------------------------------- */

static void remember_file(struct loader *L, const char *path)
{
	char **f = realloc(L->files, (L->n_files + 1) * sizeof(*f));
	if (!f) {
		L->oom = true;
		return;
	}
	L->files = f;
	L->files[L->n_files] = config_dup_str(L, path);
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
/* The text of the file open on FD (at most CONFIG_FILE_MAX bytes: libconfig's parser is
 * quadratic in places, a huge file would hold the loop), NUL-terminated, malloc'd; NULL after
 * reporting at PATH. Closes FD. */
static char *slurp(struct loader *L, int fd, const char *path)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap);
	ssize_t r = 0;

	if (!buf) {
		L->oom = true;
		close(fd);
		return NULL;
	}
	while (n <= CONFIG_FILE_MAX) {
		if (n + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				L->oom = true;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	int e = errno;
	close(fd);
	if (L->oom || r < 0) {
		if (r < 0)
			report(L, path, 0,
			       "cannot read the file: %s; check the path and its permissions",
			       strerror(e));
		free(buf);
		return NULL;
	}
	if (n > CONFIG_FILE_MAX) {
		struct stat st;
		long long size = stat(path, &st) == 0 ? (long long)st.st_size : (long long)n;
		report(
		    L, path, 0,
		    "the file is %lld bytes, more than the %d bytes (1 MiB) a configuration file "
		    "may have; split it into several files in conf_dir",
		    size, CONFIG_FILE_MAX);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* libconfig (1.5 in Debian 12: no config_set_include_func) opens @include files itself, by
 * path. Each one, and each one they include, must pass the trust check first; once every
 * directory and link on the way is trusted, nobody else can swap what libconfig opens. TEXT
 * is FILE's; returns false after reporting at the @include's FILE:LINE. */
static bool includes_trusted(struct loader *L, const char *text, const char *file,
                             const char *include_dir, int depth)
{
	int line = 1;
	bool ok = true;

	for (const char *p = text; *p; line++) {
		const char *eol = strchr(p, '\n');
		const char *q = p + strspn(p, " \t");
		if (strncmp(q, "@include", 8) == 0 && (q[8] == ' ' || q[8] == '\t')) {
			q += 8;
			q += strspn(q, " \t");
			const char *endq = *q == '"' ? strchr(q + 1, '"') : NULL;
			if (endq && (!eol || endq < eol)) {
				char name[PATH_MAX], full[PATH_MAX * 2], why[1024];
				size_t nl = (size_t)(endq - q - 1);
				if (nl >= sizeof(name))
					nl = sizeof(name) - 1;
				memcpy(name, q + 1, nl);
				name[nl] = '\0';
				const char *dir = include_dir && *include_dir ? include_dir : ".";
				text_format(full, sizeof(full), "%s%s%s", name[0] == '/' ? "" : dir,
				            name[0] == '/' ? "" : "/", name);
				int fd = -1;
				int rc = trust_open(full, false, L->self, &fd, why, sizeof(why));
				if (rc == -ENOENT) {
					/* libconfig reports it ("cannot open the @include file") */
				} else if (rc < 0) {
					char shown[PATH_MAX + 8];
					text_escape_ctl(name, shown, sizeof(shown));
					report(L, file, line, "refusing @include \"%s\": %s", shown,
					       why);
					ok = false;
				} else if (fd >= 0 && depth < 10) {
					char *sub = slurp(L, fd, full);
					fd = -1;
					if (!sub ||
					    !includes_trusted(L, sub, full, include_dir, depth + 1))
						ok = false;
					free(sub);
				}
				if (fd >= 0)
					close(fd);
			}
		}
		if (!eol)
			break;
		p = eol + 1;
	}
	return ok;
}

/* Read PATH into CF, after its @include files passed the trust check. FD >= 0: the file as
 * trust_open checked it, whose text is scanned for them. */
static bool read_file(struct loader *L, config_t *cf, const char *path, const char *include_dir,
                      int fd)
{
	remember_file(L, path);
	if (fd < 0) {
		/* libconfig says only "file I/O error"; ask the system for the reason first */
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0) {
			report(L, path, 0,
			       "cannot read the file: %s; check the path and its permissions",
			       strerror(errno));
			return false;
		}
	}
	char *body = slurp(L, fd, path);
	if (!body)
		return false;
	if (!includes_trusted(L, body, path, include_dir, 0)) {
		free(body);
		return false;
	}
	config_init(cf);
	config_set_include_dir(cf, include_dir && *include_dir ? include_dir : ".");
	free(body);
	/* by path, for libconfig's file names in settings and errors: the path was walked on
	 * descriptors and every directory and link on it is trusted, so only root or pgcrond's
	 * user could have changed what it names since */
	if (config_read_file(cf, path))
		return true;

	const char *efile = config_error_file(cf) ? config_error_file(cf) : path;
	int eline = config_error_line(cf);
	const char *text = config_error_text(cf) ? config_error_text(cf) : "error";

	int last = strcmp(efile, path) == 0 ? count_lines(path) : 0;
	if (strcmp(text, "syntax error") == 0 && last > 0 && eline > last)
		/* libconfig places an error at the end of the file past the last line */
		report(L, efile, last,
		       "the file ends too early; a brace, bracket, parenthesis or quote opened "
		       "above is "
		       "not closed");
	else if (strcmp(text, "syntax error") == 0)
		report(L, efile, eline,
		       "syntax error; check this line and the one before for a missing \";\" or "
		       "\"=\", "
		       "an unclosed quote, bracket or brace, or a name with characters other than "
		       "letters, digits, \"_\" and \"-\"");
	else if (strcmp(text, "duplicate setting name") == 0)
		report(L, efile, eline,
		       "this setting appears twice in the same group; keep one (for several jobs "
		       "in one "
		       "file write jobs = ( { ... }, { ... } );)");
	else if (strcmp(text, "mismatched element type in array") == 0)
		report(
		    L, efile, eline,
		    "an array [ ... ] holds values of different types; give every element the same "
		    "type, like [ \"a\", \"b\" ]");
	else if (strcmp(text, "cannot open include file") == 0)
		report(L, efile, eline,
		       "cannot open the @include file; give its path relative to %s or an absolute "
		       "path",
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

void config_parse_databases(struct loader *L, const config_setting_t *s, const char *file)
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
		if (!grow(L, (void **)&cfg->databases, cfg->n_databases, &cap,
		          sizeof(*cfg->databases)))
			return;
		struct conf_database *db = &cfg->databases[cfg->n_databases++];
		memset(db, 0, sizeof(*db));
		db->name = config_dup_str(L, name);
		db->pool = 4;
		db->file = config_dup_str(L, setting_file(m, file));
		db->line = setting_line(m);
		snprintf(where, sizeof(where), " in database \"%s\"", name);
		config_parse_group(L, m, file, config_database_keys, db, where,
		                   "a database takes conninfo and pool");

		const config_setting_t *ci = config_setting_get_member(m, "conninfo");
		if (!ci) {
			config_report_at(L, m, file,
			                 "database \"%s\" has no conninfo; add conninfo = "
			                 "\"host=... dbname=...\" "
			                 "(or \"service=NAME\" from pg_service.conf)",
			                 name);
		} else if (db->conninfo) {
			const char *problem = conninfo_problem(db->conninfo);
			if (problem && strcasestr(db->conninfo, "password")) {
				/* a malformed string may hide a password no parser can find */
				config_report_at(
				    L, ci, file,
				    "conninfo of database \"%s\" %s; write key=value pairs like "
				    "\"host=db1 dbname=analytics\", or a URI like "
				    "\"postgresql://db1/analytics\"",
				    name, problem);
			} else if (problem) {
				/* no password anywhere in it: the string itself helps most */
				config_report_at(
				    L, ci, file,
				    "conninfo \"%s\" %s; write key=value pairs like \"host=db1 "
				    "dbname=analytics\", or a URI like "
				    "\"postgresql://db1/analytics\"",
				    db->conninfo, problem);
			} else if (!pgconn_conninfo_parses(db->conninfo)) {
				/* what libpq would refuse at every connect, URIs included; libpq's
				 * message is not shown because it may quote the password */
				config_report_at(L, ci, file,
				                 "conninfo of database \"%s\" cannot be parsed by "
				                 "libpq; check its "
				                 "syntax (the parser's message is not shown "
				                 "because it may quote the "
				                 "password)",
				                 name);
			}
		}
	}
}

void config_parse_history(struct loader *L, const config_setting_t *s, const char *file)
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
	                   "history takes database and retain");
}

void config_parse_alerts(struct loader *L, const config_setting_t *s, const char *file)
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
		if (!grow(L, (void **)&cfg->alerts, cfg->n_alerts, &cap, sizeof(*cfg->alerts)))
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
				    "webhook alert has no url; add url = \"http://...\"");
			else if (a->url && strncasecmp(a->url, "https://", 8) == 0)
				config_report_at(
				    L, config_setting_get_member(m, "url"), file,
				    "webhook url must be http://; pgcrond does not speak TLS to "
				    "webhooks: point it at a local relay");
			else if (a->url && strncmp(a->url, "http://", 7) != 0)
				config_report_at(
				    L, config_setting_get_member(m, "url"), file,
				    "url \"%s\" is not an http:// URL; write the full URL", a->url);
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
				                 "would truncate it, "
				                 "use a shorter name",
				                 CHANNEL_MAX);
		}
	}
}

/* Keys that belong to jobs: named in messages about misplaced settings. */
static bool is_job_key(const char *name)
{
	return config_find_key(config_job_keys, name) != NULL;
}

static void parse_main(struct loader *L, const config_setting_t *root, const char *file)
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
			                 "main file; move "
			                 "this %s there",
			                 name);
		} else if (is_job_key(name) && !config_closest_key(config_main_keys, name)) {
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

static int main_line(const struct loader *L, const char *key)
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
static void check_database(struct loader *L, const char *file, int line, const char *what,
                           const char *dbname)
{
	struct suggester sg = {dbname, NULL, 99};
	char names[256];

	if (config_database(L->cfg, dbname))
		return;
	for (size_t i = 0; i < L->cfg->n_databases; i++)
		config_suggest(&sg, L->cfg->databases[i].name);
	if (sg.best) {
		report(L, file, line, "%s: unknown database \"%s\"; did you mean \"%s\"?", what,
		       dbname, sg.best);
	} else if (L->cfg->n_databases) {
		database_names(L->cfg, names, sizeof(names));
		report(L, file, line,
		       "%s: unknown database \"%s\"; use one of %s, or define it under databases "
		       "in %s",
		       what, dbname, names, L->cfg->file);
	} else {
		report(L, file, line,
		       "%s: unknown database \"%s\"; define it under databases in %s", what, dbname,
		       L->cfg->file);
	}
}

/* Refuse PATH (IS_DIR) when others could change it (trust.h), reporting at FILE:LINE as
 * "refusing WHAT: why". Returns 0, -ENOENT (nothing reported) or -EPERM. */
static int check_trusted(struct loader *L, const char *path, bool is_dir, const char *what,
                         const char *file, int line)
{
	char why[1024];
	int rc = trust_check(path, is_dir, L->self, why, sizeof(why));

	if (rc == -ENOENT)
		return rc;
	if (rc < 0) {
		report(L, file, line, "refusing %s: %s", what, why);
		return -EPERM;
	}
	return 0;
}

/* state_dir must exist (the history spool and the daemon's other state go there) and, like
 * the configuration, be changeable by nobody else; plugin_dir is checked here too when it
 * exists (a missing one is the plugin loader's to report, for the jobs that need it). */
static void check_dirs(struct loader *L)
{
	struct pgc_config *cfg = L->cfg;
	struct stat st;

	if (cfg->state_dir) {
		int line = main_line(L, "state_dir");
		if (stat(cfg->state_dir, &st) < 0)
			report(
			    L, cfg->file, line,
			    "state_dir \"%s\" cannot be used: %s; create it, owned by the user "
			    "pgcrond runs as with mode 0700 (the package does), or set state_dir",
			    cfg->state_dir, strerror(errno));
		else if (!S_ISDIR(st.st_mode))
			report(L, cfg->file, line,
			       "state_dir \"%s\" is not a directory; set state_dir to a directory "
			       "owned by the user pgcrond runs as",
			       cfg->state_dir);
		else
			check_trusted(L, cfg->state_dir, true, "state_dir", cfg->file, line);
	}
	if (cfg->plugin_dir)
		check_trusted(L, cfg->plugin_dir, true, "plugin_dir", cfg->file,
		              main_line(L, "plugin_dir"));
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
static void finish_main(struct loader *L, const config_setting_t *root)
{
	struct pgc_config *cfg = L->cfg;
	const char *file = cfg->file;
	char err[256];
	char *p;

	/* relative paths are relative to the main file's directory, not the cwd */
	if (!cfg->conf_dir)
		cfg->conf_dir = config_dup_str(L, "conf.d");
	if (!cfg->plugin_dir)
		cfg->plugin_dir = config_dup_str(L, PGCROND_DEFAULT_PLUGIN_DIR);
	if (!cfg->state_dir)
		cfg->state_dir = config_dup_str(L, "/var/lib/pgcrond");
	char **dirs[] = {&cfg->conf_dir, &cfg->plugin_dir, &cfg->state_dir};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!*dirs[i])
			continue;
		p = join_path(L, L->main_dir, *dirs[i]);
		free(*dirs[i]);
		*dirs[i] = p;
	}
	if (cfg->instance && !config_instance_name_ok(cfg->instance))
		report(
		    L, file, main_line(L, "instance"),
		    "instance \"%s\": a name is 1 to 63 characters, letters, digits, '.', '_' or "
		    "'-'; give each pgcrond sharing a history database its own (the host name is "
		    "the default)",
		    cfg->instance);
	if (!cfg->timezone)
		cfg->timezone = config_dup_str(L, "UTC");
	if (!cfg->log_level)
		cfg->log_level = config_dup_str(L, "info");

	if (cfg->timezone) {
		int rc = cron_tz_open(cfg->timezone, &cfg->tz, err, sizeof(err));
		if (rc < 0) {
			cfg->tz = NULL;
			if (rc == -ENOENT)
				report(L, file, main_line(L, "timezone"),
				       "unknown timezone \"%s\"; use a name from the tz database "
				       "like \"UTC\" "
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
		cfg->history_database = config_dup_str(L, cfg->databases[0].name);
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
		cfg->alerts[0].sink = config_dup_str(L, "log");
		cfg->alerts[0].timeout_ms = 10000;
		cfg->alerts[0].file = config_dup_str(L, file);
	}
	for (size_t i = 0; i < cfg->n_alerts; i++) {
		struct conf_alert_sink *a = &cfg->alerts[i];
		if (!a->sink || strcmp(a->sink, "notify") != 0)
			continue;
		if (a->database)
			check_database(L, a->file, a->line, "notify alert", a->database);
		else if (cfg->history_database)
			a->database = config_dup_str(L, cfg->history_database);
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
	for (size_t i = 0; i < j->n_sources; i++)
		free(j->sources[i]);
	free(j->sources);
	free(j->listen);
	for (size_t i = 0; i < j->n_settings; i++) {
		free(j->settings[i].key);
		free(j->settings[i].value);
	}
	free(j->settings);
	/* j->file belongs to the config (config_own_file) */
	free(j->username);
	free(j->sql_database);
	free(j->timezone);
	if (j->tz)
		cron_tz_free(&j->tz);
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
			                 "true/false, not a list or "
			                 "group",
			                 config_setting_name(m));
		return;
	}
	if (!grow(L, (void **)&j->settings, j->n_settings, cap, sizeof(*j->settings))) {
		free(v);
		return;
	}
	struct conf_setting *st = &j->settings[j->n_settings++];
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

static void index_add(struct pgc_config *cfg, size_t i);

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

/* One part of a relation name: an identifier as PostgreSQL reads it unquoted (folded to
 * lower case, so only lower case is accepted: "Foo" would silently become foo), or a quoted
 * one without quotes inside. Returns the length taken, 0 if none. */
static size_t ident_len(const char *p)
{
	size_t n = 0;

	if (p[0] == '"') {
		for (n = 1; p[n] && p[n] != '"'; n++)
			;
		return p[n] == '"' && n > 1 ? n + 1 : 0;
	}
	if (!((p[0] >= 'a' && p[0] <= 'z') || p[0] == '_'))
		return 0;
	while ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= '0' && p[n] <= '9') || p[n] == '_' ||
	       p[n] == '$')
		n++;
	return n;
}

bool config_valid_source(const char *name)
{
	size_t a = ident_len(name);
	if (a == 0 || name[a] != '.')
		return false;
	size_t b = ident_len(name + a + 1);
	return b > 0 && name[a + 1 + b] == '\0' && a + 1 + b <= 2 * 64 + 5;
}

/* freshness and sources (docs/freshness.md): the SLA is a whole second or more, every
 * source is "schema.table" (resolved by the daemon with no search_path another role could
 * write), and a SQL job with an SLA says what it reads. */
static void check_freshness(struct loader *L, const config_setting_t *s, const char *file,
                            const char *who, struct conf_job *j)
{
	const config_setting_t *fresh = config_setting_get_member(s, "freshness");
	const config_setting_t *srcs = config_setting_get_member(s, "sources");

	if (fresh)
		j->freshness_line = setting_line(fresh);
	if (fresh && j->freshness_ms < 1000)
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
	if (fresh && j->command && j->n_sources == 0 && j->n_after == 0 && !srcs)
		config_report_at(L, fresh, file,
		                 "%s has freshness but does not say what it reads; add sources = "
		                 "[ \"schema.table\", ... ] (the tables its command reads) or "
		                 "after = [ ... ] (the jobs whose relations it reads)",
		                 who);
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
	j.file = file ? config_own_file(L->cfg, file) : NULL;
	if (file && !j.file)
		L->oom = true;
	j.line = line;

	/* the name first, so every message about this job can name it */
	const config_setting_t *name = config_setting_get_member(s, "name");
	if (name && config_setting_type(name) == CONFIG_TYPE_STRING) {
		/* control characters shown escaped: a name must not break or forge a line */
		char shown[64];
		text_escape_ctl(config_setting_get_string(name), shown, sizeof(shown));
		snprintf(who, sizeof(who), "job \"%s\"", shown);
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
		const struct key_spec *k = config_find_key(config_job_keys, key);

		if (k) {
			bool ok = config_apply_key(L, m, k, &j, file);
			if (ok && strcmp(key, "name") == 0 && !config_valid_job_name(j.name)) {
				char shown[81];
				text_escape_ctl(j.name, shown, sizeof(shown));
				config_report_at(L, m, file,
				                 "job name \"%s\" may only contain letters, "
				                 "digits, \"_\", \".\" and "
				                 "\"-\", at most %d of them; rename it",
				                 shown, JOB_NAME_MAX);
			}
		} else if (plugin) {
			/* the plugin validates its own settings once it is loaded */
			add_setting(L, &j, m, file, &settings_cap);
		} else {
			config_report_unknown(
			    L, m, file, config_job_keys, where,
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
		       "job has no name; add name = \"...\" using letters, digits, \"_\", \".\" "
		       "and \"-\"");

	const config_setting_t *command = config_setting_get_member(s, "command");
	if (plugin && command)
		report(
		    L, file, line,
		    "%s has both plugin and command; keep plugin for a view plugin or command for "
		    "plain SQL",
		    who);
	else if (!plugin && !command)
		report(
		    L, file, line,
		    "%s has neither plugin nor command; add plugin = \"NAME\" or command = \"SQL\"",
		    who);
	if (j.plugin && !valid_plugin_name(j.plugin))
		config_report_at(
		    L, plugin, file,
		    "plugin \"%.80s\" is not a plugin name; use the file name of a .so in "
		    "plugin_dir without the extension, like \"weakness_patterns\"",
		    j.plugin);

	const config_setting_t *schedule = config_setting_get_member(s, "schedule");
	if (j.schedule) {
		char err[256];
		if (cron_parse(j.schedule, &j.cron, err, sizeof(err)) < 0) {
			config_report_at(L, schedule, file, "schedule %s", err);
		} else if (!cron_can_fire(&j.cron)) {
			config_report_at(
			    L, schedule, file,
			    "schedule \"%s\" never fires (that day does not exist in that month); "
			    "fix the day and month fields",
			    j.schedule);
		}
	}

	if (j.timezone) {
		/* the job's own zone: its schedule's times are read in it (DST rules as for the
		 * daemon's timezone) */
		char err[256];
		int rc = cron_tz_open(j.timezone, &j.tz, err, sizeof(err));
		if (rc < 0) {
			j.tz = NULL;
			config_report_at(L, config_setting_get_member(s, "timezone"), file,
			                 rc == -ENOENT
			                     ? "unknown timezone \"%s\"; use a name from the tz "
			                       "database like \"UTC\" or \"Europe/Berlin\""
			                     : "timezone \"%s\": cannot be used",
			                 j.timezone);
		}
	}

	const config_setting_t *listen = config_setting_get_member(s, "listen");
	if (j.listen && strlen(j.listen) > CHANNEL_MAX)
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
	} else if (config_setting_get_member(s, "max_delay") && j.max_delay_ms < j.debounce_ms) {
		config_report_at(L, config_setting_get_member(s, "max_delay"), file,
		                 "max_delay must not be shorter than debounce; raise max_delay or "
		                 "lower debounce");
	} else if (j.max_delay_ms < j.debounce_ms) {
		j.max_delay_ms = j.debounce_ms; /* only debounce was raised: the cap follows it */
	}
	if (j.retry_max_delay_ms < j.retry_delay_ms) {
		const config_setting_t *m = config_setting_get_member(s, "retry_max_delay");
		if (m)
			config_report_at(
			    L, m, file,
			    "retry_max_delay must not be shorter than retry_delay; raise "
			    "retry_max_delay or lower retry_delay");
		else
			j.retry_max_delay_ms = j.retry_delay_ms;
	}

	check_freshness(L, s, file, who, &j);

	/* A disabled job without triggers is fine: pgcrond trigger can still run it. When
	 * this job already had errors, a misspelt or mistyped schedule/after is the likely
	 * cause, so do not pile a second message on top. */
	if (j.enabled && !schedule && !listen && j.n_after == 0 && j.freshness_ms == 0 &&
	    L->n_errors == errors_before && !report_trigger_typo(L, s, file, where))
		report(L, file, line,
		       "%s would never run; add schedule, after, listen or freshness, or set "
		       "enabled = false",
		       who);

	const config_setting_t *database = config_setting_get_member(s, "database");
	if (j.database)
		check_database(L, file, setting_line(database), who, j.database);
	else if (!database && cfg->history_database)
		j.database = config_dup_str(L, cfg->history_database);

	/* Keep the first definition of a name; later ones are reported and dropped. A job with
	 * an invalid name is kept (its error is reported): jobs naming it in after would
	 * otherwise get a second, misleading error. */
	const struct conf_job *prev = j.name ? config_job(cfg, j.name) : NULL;
	if (prev)
		report(L, file, line, "job \"%s\" is already defined at %s:%d; rename one of them",
		       j.name, prev->file, prev->line);
	if (!j.name || prev ||
	    !grow(L, (void **)&cfg->jobs, cfg->n_jobs, &L->jobs_cap, sizeof(*cfg->jobs))) {
		job_free_fields(&j);
		return;
	}
	cfg->jobs[cfg->n_jobs++] = j;
	index_add(cfg, cfg->n_jobs - 1);
}

static const char *const daemon_keys_hint =
    "is a daemon setting; it belongs in the main file, not in a job file";

static void load_job_file(struct loader *L, const char *path, int fd)
{
	config_t cf;

	if (!read_file(L, &cf, path, L->cfg->conf_dir, fd))
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
				config_report_at(
				    L, m, path,
				    "job must be a group like job = { name = \"...\"; ... }; for "
				    "several "
				    "jobs in one file write jobs = ( { ... }, { ... } );");
		} else if (strcmp(name, "jobs") == 0) {
			int nj = config_setting_length(m);
			if (!config_setting_is_list(m)) {
				config_report_at(L, m, path,
				                 "jobs must be a list of groups like jobs = ( { "
				                 "name = \"a\"; ... }, "
				                 "{ name = \"b\"; ... } );");
				continue;
			}
			for (int k = 0; k < nj; k++) {
				const config_setting_t *e = config_setting_get_elem(m, (unsigned)k);
				if (config_setting_is_group(e))
					parse_job(L, e, path);
				else
					config_report_at(L, e, path,
					                 "each element of jobs must be a group { "
					                 "name = \"...\"; ... }");
			}
		} else if (config_find_key(config_main_keys, name)) {
			config_report_at(L, m, path, "\"%s\" %s", name, daemon_keys_hint);
		} else if (is_job_key(name)) {
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

static bool is_skipped(const struct loader *L, const char *path)
{
	for (size_t i = 0; i < L->n_skip; i++)
		if (strcmp(L->skip[i], path) == 0)
			return true;
	return false;
}

/* Remember that job file PATH has errors (config_load_partial leaves it out next time). */
static void blame(struct loader *L, const char *path)
{
	for (size_t i = 0; i < L->n_blamed; i++)
		if (strcmp(L->blamed[i], path) == 0)
			return;
	char **b = realloc(L->blamed, (L->n_blamed + 1) * sizeof(*b));
	if (!b) {
		L->oom = true;
		return;
	}
	L->blamed = b;
	if (!(b[L->n_blamed] = strdup(path)))
		L->oom = true;
	else
		L->n_blamed++;
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
	if (check_trusted(L, cfg->conf_dir, true, "conf_dir", cfg->file,
	                  main_line(L, "conf_dir")) == -EPERM)
		return; /* its files are not read: anybody could have put them there */
	d = opendir(cfg->conf_dir);
	if (!d) {
		report(L, cfg->file, main_line(L, "conf_dir"),
		       "conf_dir \"%s\" cannot be read: %s; create it or set conf_dir to the "
		       "directory "
		       "of the job files",
		       cfg->conf_dir, strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !has_conf_suffix(de->d_name))
			continue;
		if (!grow(L, (void **)&names, n, &cap, sizeof(*names)))
			break;
		names[n] = config_dup_str(L, de->d_name);
		if (names[n])
			n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		char *path = join_path(L, cfg->conf_dir, names[i]);
		struct stat st;
		size_t errors_before = L->n_errors;

		if (!path)
			break;
		if (is_skipped(L, path)) {
			free(path);
			continue;
		}
		if (stat(path, &st) < 0) {
			report(L, path, 0, "cannot read the file: %s; fix or remove it",
			       strerror(errno));
		} else if (S_ISREG(st.st_mode) &&
		           !(L->have_main_st && st.st_dev == L->main_st.st_dev &&
		             st.st_ino == L->main_st.st_ino)) {
			/* checked and read on one descriptor: what was checked is what is read */
			char why[1024];
			int fd = -1;
			int rc = trust_open(path, false, L->self, &fd, why, sizeof(why));
			if (rc < 0 && rc != -ENOENT)
				report(L, path, 0, "refusing this file: %s", why);
			else if (rc == 0 && fd < 0)
				report(L, path, 0, "cannot read the file: not a regular file");
			else if (rc == 0)
				load_job_file(L, path, fd);
		}
		if (L->n_errors > errors_before)
			blame(L, path);
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
				config_suggest(&sg, cfg->jobs[k].name);
			if (sg.best)
				report(L, j->file, j->after_line,
				       "job \"%s\" runs after unknown job \"%s\"; did you mean "
				       "\"%s\"?",
				       j->name, j->after[a], sg.best);
			else
				report(L, j->file, j->after_line,
				       "job \"%s\" runs after unknown job \"%s\"; define that job "
				       "or fix the "
				       "name",
				       j->name, j->after[a]);
		}
		/* cycles, self-references included, are the DAG's to report (dag.c) */
		size_t max = cfg->max_command_size > 0 ? (size_t)cfg->max_command_size
		                                       : CONFIG_MAX_COMMAND_SIZE;
		size_t len = j->command ? strlen(j->command) : 0;
		if (len > max)
			report(
			    L, j->file, j->line,
			    "job \"%s\": the command is %zu bytes, more than max_command_size (%zu "
			    "bytes); keep the SQL in a function or procedure and call it from the "
			    "job, or raise max_command_size in %s",
			    j->name, len, max, cfg->file);
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

/* config_load, leaving out the job files in SKIP; *BLAMED gets the job files with errors
 * (the caller frees them) and *MAIN_BAD whether any error is outside them. */
static int load(const char *path, char *const *skip, size_t n_skip, struct pgc_config **out,
                struct diag_list *dl, char ***blamed, size_t *n_blamed, bool *main_bad)
{
	struct loader L;
	struct pgc_config *cfg;
	config_t cf;
	int rc = 0;

	*out = NULL;
	memset(&L, 0, sizeof(L));
	L.skip = skip;
	L.n_skip = n_skip;
	L.dl = dl;
	L.dl_start = dl->n;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return -ENOMEM;
	L.cfg = cfg;
	cfg->file = config_dup_str(&L, path);
	cfg->history_retain_ms = 30LL * 86400000;
	cfg->max_running = 32;
	cfg->shutdown_grace_ms = 30000;
	cfg->alert_repeat_ms = 3600000;
	cfg->connection_check_ms = 30000;

	const char *slash = strrchr(path, '/');
	if (slash == path)
		L.main_dir = config_dup_str(&L, "/");
	else if (slash)
		L.main_dir = strndup(path, (size_t)(slash - path));
	else
		L.main_dir = config_dup_str(&L, "");
	if (!L.main_dir)
		L.oom = true;
	L.have_main_st = stat(path, &L.main_st) == 0;

	L.self = geteuid();
	if (!L.oom && read_file(&L, &cf, path, L.main_dir, -1)) {
		const config_setting_t *root = config_root_setting(&cf);
		parse_main(&L, root, path);
		finish_main(&L, root);
		config_destroy(&cf);
		/* The files must belong to root or to the daemon's user. `pgcrond check` run as
		 * root cannot know that user: it is taken to be state_dir's owner, the one user
		 * who must be able to write there. */
		struct stat st;
		if (L.self == 0 && cfg->state_dir && stat(cfg->state_dir, &st) == 0 &&
		    S_ISDIR(st.st_mode))
			L.self = st.st_uid;
		check_dirs(&L);
		config_http_finish(&L);
		/* with a broken or untrusted main file there is no conf_dir and no databases to
		 * check jobs against, so job files are read only when the main file was usable */
		if (check_trusted(&L, path, false, "this file", path, 0) == 0) {
			L.main_bad = L.n_errors > 0;
			size_t errors_before = L.n_errors, blamed_before;
			load_conf_dir(&L);
			blamed_before = L.n_blamed;
			if (L.n_errors > errors_before && blamed_before == 0)
				L.main_bad = true; /* conf_dir itself: unreadable, untrusted */
			size_t d0 = dl->n;
			check_jobs(&L);
			/* a job running after a job of a left-out file: its own file goes too */
			for (size_t i = d0; i < dl->n; i++) {
				if (dl->items[i].file && strcmp(dl->items[i].file, path) != 0)
					blame(&L, dl->items[i].file);
				else
					L.main_bad = true;
			}
		} else {
			L.main_bad = true;
		}
	} else {
		L.main_bad = true;
	}
	/* the array grew by doubling: give back the unused tail (8 MB at 100,000 jobs) */
	if (cfg->n_jobs && cfg->n_jobs < L.jobs_cap) {
		struct conf_job *jobs = realloc(cfg->jobs, cfg->n_jobs * sizeof(*cfg->jobs));
		if (jobs)
			cfg->jobs = jobs;
	}
	config_source_free(&L);
	sort_diags(&L);

	if (L.oom)
		rc = -ENOMEM;
	else if (L.n_errors)
		rc = -EINVAL;
	for (size_t i = 0; i < L.n_files; i++)
		free(L.files[i]);
	free(L.files);
	free(L.main_dir);
	if (blamed) {
		*blamed = L.blamed;
		*n_blamed = L.n_blamed;
		*main_bad = L.main_bad;
	} else {
		for (size_t i = 0; i < L.n_blamed; i++)
			free(L.blamed[i]);
		free(L.blamed);
	}
	if (rc < 0) {
		config_free(&cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

int config_load(const char *path, struct pgc_config **out, struct diag_list *dl)
{
	return load(path, NULL, 0, out, dl, NULL, NULL, NULL);
}

int config_load_partial(const char *path, struct pgc_config **out, struct diag_list *dl,
                        char ***skipped, size_t *n_skipped)
{
	char **skip = NULL;
	size_t n_skip = 0;
	int rc;

	*skipped = NULL;
	*n_skipped = 0;
	for (;;) {
		char **blamed = NULL;
		size_t n_blamed = 0, dl_start = dl->n;
		bool main_bad = false;

		rc = load(path, skip, n_skip, out, dl, &blamed, &n_blamed, &main_bad);
		if (rc == 0 || rc == -ENOMEM || main_bad || n_blamed == 0) {
			for (size_t i = 0; i < n_blamed; i++)
				free(blamed[i]);
			free(blamed);
			break;
		}
		/* leave the blamed files out and try again: their diagnostics are not the
		 * caller's business unless nothing loads at all */
		char **grown = realloc(skip, (n_skip + n_blamed) * sizeof(*skip));
		if (!grown) {
			for (size_t i = 0; i < n_blamed; i++)
				free(blamed[i]);
			free(blamed);
			rc = -ENOMEM;
			break;
		}
		skip = grown;
		memcpy(skip + n_skip, blamed, n_blamed * sizeof(*skip));
		n_skip += n_blamed;
		free(blamed);
		while (dl->n > dl_start) {
			struct diag *d = &dl->items[--dl->n];
			free(d->file);
			free(d->message);
		}
	}
	if (rc < 0) {
		for (size_t i = 0; i < n_skip; i++)
			free(skip[i]);
		free(skip);
		return rc;
	}
	*skipped = skip;
	*n_skipped = n_skip;
	return 0;
}

char *config_own_file(struct pgc_config *cfg, const char *path)
{
	/* the jobs of a file come one after the other: look back a few files only */
	for (size_t i = cfg->n_job_files, k = 0; i > 0 && k < 8; i--, k++)
		if (strcmp(cfg->job_files[i - 1], path) == 0)
			return cfg->job_files[i - 1];
	size_t n = cfg->n_job_files;
	char **f = cfg->job_files;
	if (n < 8 ? n == 0 : (n & (n - 1)) == 0) { /* full: 0, 8, 16, 32 ... (doubled) */
		f = realloc(f, (n < 8 ? 8 : 2 * n) * sizeof(*f));
		if (!f)
			return NULL;
		cfg->job_files = f;
	}
	if (!(f[cfg->n_job_files] = strdup(path)))
		return NULL;
	return f[cfg->n_job_files++];
}

struct pgc_config *config_ref(const struct pgc_config *cfg)
{
	struct pgc_config *c = (struct pgc_config *)cfg; /* only the count changes */
	c->extra_refs++;
	return c;
}

void config_free(struct pgc_config **pcfg)
{
	struct pgc_config *cfg = pcfg ? *pcfg : NULL;

	if (!cfg)
		return;
	if (cfg->extra_refs > 0) {
		cfg->extra_refs--;
		*pcfg = NULL;
		return;
	}
	free(cfg->file);
	free(cfg->timezone);
	free(cfg->plugin_dir);
	free(cfg->conf_dir);
	free(cfg->state_dir);
	free(cfg->instance);
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
	config_http_free(&cfg->http);
	for (size_t i = 0; i < cfg->n_jobs; i++)
		job_free_fields(&cfg->jobs[i]);
	free(cfg->jobs);
	for (size_t i = 0; i < cfg->n_job_files; i++)
		free(cfg->job_files[i]);
	free(cfg->job_files);
	if (cfg->tz)
		cron_tz_free(&cfg->tz);
	free(cfg->job_index);
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

/* Open addressing over indexes into cfg->jobs (they stay valid when the array grows):
 * config_job() was a linear search, and looking up every job and every "after" made loading
 * 100,000 jobs quadratic (67 s of strcmp). */
struct config_job_index {
	size_t cap; /* a power of two, at least twice the jobs */
	size_t n;
	size_t slot[]; /* job index + 1; 0 = empty */
};

static size_t name_hash(const char *s)
{
	size_t x = 1469598103934665603ULL;
	for (; *s; s++)
		x = (x ^ (unsigned char)*s) * 1099511628211ULL;
	return x;
}

static void index_put(struct config_job_index *ix, const struct conf_job *jobs, size_t i)
{
	size_t s = name_hash(jobs[i].name) & (ix->cap - 1);
	while (ix->slot[s])
		s = (s + 1) & (ix->cap - 1);
	ix->slot[s] = i + 1;
	ix->n++;
}

/* Index job I (just appended); on allocation failure the index is dropped and lookups go
 * back to the linear search. */
static void index_add(struct pgc_config *cfg, size_t i)
{
	struct config_job_index *ix = cfg->job_index;

	if (!cfg->jobs[i].name)
		return;
	if (!ix || (ix->n + 1) * 2 > ix->cap) {
		size_t cap = ix ? ix->cap * 2 : 1024;
		while (cap < (i + 1) * 2) /* a first index built over many jobs at once */
			cap *= 2;
		struct config_job_index *nx = calloc(1, sizeof(*nx) + cap * sizeof(size_t));
		free(ix);
		cfg->job_index = nx;
		if (!nx)
			return;
		nx->cap = cap;
		for (size_t k = 0; k < i; k++)
			if (cfg->jobs[k].name)
				index_put(nx, cfg->jobs, k);
		ix = nx;
	}
	index_put(ix, cfg->jobs, i);
}

void config_index_jobs(struct pgc_config *cfg)
{
	free(cfg->job_index);
	cfg->job_index = NULL;
	for (size_t i = 0; i < cfg->n_jobs; i++)
		index_add(cfg, i);
}

const struct conf_job *config_job(const struct pgc_config *cfg, const char *name)
{
	const struct config_job_index *ix = cfg->job_index;

	if (ix) {
		for (size_t s = name_hash(name) & (ix->cap - 1); ix->slot[s];
		     s = (s + 1) & (ix->cap - 1)) {
			const struct conf_job *j = &cfg->jobs[ix->slot[s] - 1];
			if (strcmp(j->name, name) == 0)
				return j;
		}
		return NULL;
	}
	for (size_t i = 0; i < cfg->n_jobs; i++)
		if (cfg->jobs[i].name && strcmp(cfg->jobs[i].name, name) == 0)
			return &cfg->jobs[i];
	return NULL;
}

/* For config_sql.c, which parses the jobs made in SQL as job groups of their own. */
void config_parse_job(struct loader *L, const config_setting_t *s, const char *origin)
{
	parse_job(L, s, origin);
}

void config_job_free_fields(struct conf_job *j)
{
	job_free_fields(j);
}
