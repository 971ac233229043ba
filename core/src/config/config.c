/* What every part of the config loader uses (config_priv.h): a problem reported at its file
 * and line, copies that record running out of memory, a path refused when others could
 * change it, reading a libconfig file safely (size, trust, @include); and a loaded
 * configuration's lookups: its databases, its jobs by name (the job index) or by pgcrond's
 * or pg_cron's name or id. Loading itself is config_load.c's. */
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
#include "strmap.h"
#include "text.h"
#include "trust.h"

#define MSG_MAX 1024

void config_report(struct loader *L, const char *file, int line, const char *fmt, ...)
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
	config_report(L, setting_file(s, fallback_file), setting_line(s), "%s", msg);
}

char *config_dup_or(const char *s, bool *oom)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

char *config_dup_str(struct loader *L, const char *s)
{
	return config_dup_or(s, &L->oom);
}

char **config_dup_strs(char *const *src, size_t *n, bool *oom)
{
	char **d = *n ? calloc(*n, sizeof(*d)) : NULL;

	if (*n && !d) {
		*oom = true;
		*n = 0;
	}
	for (size_t i = 0; d && i < *n; i++)
		d[i] = config_dup_or(src[i], oom);
	return d;
}

bool config_str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

bool config_names_eq(char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!config_str_eq(a[i], b[i]))
			return false;
	return true;
}

/* DIR/NAME, or NAME alone when it is absolute or DIR is empty (the current directory). */
char *config_join_path(struct loader *L, const char *dir, const char *name)
{
	size_t dl;
	char *p;

	if (name[0] == '/' || !dir || !dir[0])
		return config_dup_str(L, name);
	if (strcmp(name, ".") == 0) /* conf_dir = "." : the main file's own directory */
		return config_dup_str(L, dir);
	dl = strlen(dir);
	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	if (asprintf(&p, "%.*s/%s", (int)dl, dir, name) < 0) {
		L->oom = true;
		return NULL;
	}
	return p;
}

bool config_grow(struct loader *L, void **items, size_t n, size_t *cap, size_t size)
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

/* Refuse PATH (IS_DIR) when others could change it (trust.h), reporting at FILE:LINE as
 * "refusing WHAT: why". Returns 0, -ENOENT (nothing reported) or -EPERM. */
int config_check_trusted(struct loader *L, const char *path, bool is_dir, const char *what,
                         const char *file, int line)
{
	char why[1024];
	int rc = trust_check(path, is_dir, L->self, why, sizeof(why));

	if (rc == -ENOENT)
		return rc;
	if (rc < 0) {
		config_report(L, file, line, "refusing %s: %s", what, why);
		return -EPERM;
	}
	return 0;
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
			config_report(
			    L, path, 0,
			    "cannot read the file: %s; check the path and its permissions",
			    strerror(e));
		free(buf);
		return NULL;
	}
	if (n > CONFIG_FILE_MAX) {
		struct stat st;
		long long size = stat(path, &st) == 0 ? (long long)st.st_size : (long long)n;
		config_report(
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
					config_report(L, file, line, "refusing @include \"%s\": %s",
					              shown, why);
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
bool config_file_read(struct loader *L, config_t *cf, const char *path, const char *include_dir,
                      int fd)
{
	remember_file(L, path);
	if (fd < 0) {
		/* libconfig says only "file I/O error"; ask the system for the reason first */
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0) {
			config_report(
			    L, path, 0,
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
	/* by path, for libconfig's file names in settings and errors: the path was walked on
	 * descriptors and every directory and link on it is trusted, so only root or pgcrond's
	 * user could have changed what it names since */
	if (config_read_file(cf, path)) {
		free(body);
		return true;
	}

	const char *efile = config_error_file(cf) ? config_error_file(cf) : path;
	int eline = config_error_line(cf);
	const char *text = config_error_text(cf) ? config_error_text(cf) : "error";

	/* the file's lines (a last line without a newline counts) */
	int last = 0;
	if (strcmp(efile, path) == 0)
		for (const char *p = body; *p; p++)
			last += *p == '\n' || (p[1] == '\0' && *p != '\n');
	free(body);
	if (strcmp(text, "syntax error") == 0 && last > 0 && eline > last)
		/* libconfig places an error at the end of the file past the last line */
		config_report(
		    L, efile, last,
		    "the file ends too early; a brace, bracket, parenthesis or quote opened "
		    "above is "
		    "not closed");
	else if (strcmp(text, "syntax error") == 0)
		config_report(
		    L, efile, eline,
		    "syntax error; check this line and the one before for a missing \";\" or "
		    "\"=\", "
		    "an unclosed quote, bracket or brace, or a name with characters other than "
		    "letters, digits, \"_\" and \"-\"");
	else if (strcmp(text, "duplicate setting name") == 0)
		config_report(
		    L, efile, eline,
		    "this setting appears twice in the same group; keep one (for several jobs "
		    "in one "
		    "file write jobs = ( { ... }, { ... } );)");
	else if (strcmp(text, "mismatched element type in array") == 0)
		config_report(
		    L, efile, eline,
		    "an array [ ... ] holds values of different types; give every element the same "
		    "type, like [ \"a\", \"b\" ]");
	else if (strcmp(text, "cannot open include file") == 0)
		config_report(
		    L, efile, eline,
		    "cannot open the @include file; give its path relative to %s or an absolute "
		    "path",
		    include_dir && *include_dir ? include_dir : ".");
	else if (config_error_type(cf) == CONFIG_ERR_FILE_IO)
		config_report(L, efile, eline,
		              "cannot read the file; check the path and its permissions");
	else
		config_report(L, efile, eline, "%s; fix the syntax here", text);
	config_destroy(cf);
	return false;
}

char *config_own_str(struct pgc_config *cfg, const char *str)
{
	/* the jobs of a file come one after the other: look back a few strings only */
	for (size_t i = cfg->n_job_strs, k = 0; i > 0 && k < 8; i--, k++)
		if (strcmp(cfg->job_strs[i - 1], str) == 0)
			return cfg->job_strs[i - 1];
	size_t n = cfg->n_job_strs;
	char **f = cfg->job_strs;
	if (n < 8 ? n == 0 : (n & (n - 1)) == 0) { /* full: 0, 8, 16, 32 ... (doubled) */
		f = realloc(f, (n < 8 ? 8 : 2 * n) * sizeof(*f));
		if (!f)
			return NULL;
		cfg->job_strs = f;
	}
	if (!(f[cfg->n_job_strs] = strdup(str)))
		return NULL;
	return f[cfg->n_job_strs++];
}

char *config_own_database(struct pgc_config *cfg, const char *name)
{
	const struct conf_database *d = config_database(cfg, name);
	return d ? d->name : config_own_str(cfg, name);
}

const struct conf_database *config_database(const struct pgc_config *cfg, const char *name)
{
	for (size_t i = 0; name && i < cfg->n_databases; i++)
		if (strcmp(cfg->databases[i].name, name) == 0)
			return &cfg->databases[i];
	return NULL;
}

/* A strmap of nodes that hold indexes into cfg->jobs, not pointers (they stay valid when the
 * array grows), in an array that is rebuilt larger when full: config_job() was a linear
 * search, and looking up every job and every "after" made loading 100,000 jobs quadratic
 * (67 s of strcmp). */
struct config_job_node {
	struct strmap_node node; /* under the job's name (its own string: it does not move) */
	size_t i;
};

struct config_job_index {
	struct strmap map;
	size_t cap, n;
	struct config_job_node nodes[];
};

void config_index_free(struct config_job_index **ix)
{
	if (*ix)
		strmap_free(&(*ix)->map);
	free(*ix);
	*ix = NULL;
}

static void index_put(struct config_job_index *ix, const struct conf_job *jobs, size_t i)
{
	struct config_job_node *n = &ix->nodes[ix->n++];
	n->i = i;
	strmap_insert(&ix->map, &n->node, jobs[i].name);
}

/* Index job I (just appended); on allocation failure the index is dropped and lookups go
 * back to the linear search. */
void config_index_add(struct pgc_config *cfg, size_t i)
{
	struct config_job_index *ix = cfg->job_index;

	if (!cfg->jobs[i].name)
		return;
	if (!ix || ix->n == ix->cap) {
		size_t cap = ix ? ix->cap * 2 : 512;
		while (cap < i + 1) /* a first index built over many jobs at once */
			cap *= 2;
		config_index_free(&cfg->job_index);
		struct config_job_index *nx = calloc(1, sizeof(*nx) + cap * sizeof(nx->nodes[0]));
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
	config_index_free(&cfg->job_index);
	for (size_t i = 0; i < cfg->n_jobs; i++)
		config_index_add(cfg, i);
}

const struct conf_job *config_job(const struct pgc_config *cfg, const char *name)
{
	const struct config_job_index *ix = cfg->job_index;

	if (ix) {
		struct strmap_node *n = strmap_find(&ix->map, name);
		return n ? &cfg->jobs[STRMAP_ENTRY(n, struct config_job_node, node)->i] : NULL;
	}
	for (size_t i = 0; i < cfg->n_jobs; i++)
		if (cfg->jobs[i].name && strcmp(cfg->jobs[i].name, name) == 0)
			return &cfg->jobs[i];
	return NULL;
}

const struct conf_setting *config_job_setting(const struct conf_job *job, const char *key)
{
	for (size_t i = 0; job && key && i < job->n_settings; i++)
		if (job->settings[i].key && strcmp(job->settings[i].key, key) == 0)
			return &job->settings[i];
	return NULL;
}

int config_resolve_job(const struct pgc_config *cfg, const char *arg, const struct conf_job **out,
                       const struct conf_job **cands, size_t max, size_t *n_cands)
{
	const struct conf_job *j = config_job(cfg, arg), *found = NULL;
	size_t n = 0;

	*out = NULL;
	if (n_cands)
		*n_cands = 0;
	if (j && !j->username) { /* a file job: its name is the operator's */
		*out = j;
		return 0;
	}
	size_t len = strlen(arg);
	if (len > 0 && len < 19 && strspn(arg, "0123456789") == len) {
		long long id = strtoll(arg, NULL, 10);
		for (size_t i = 0; i < cfg->n_jobs; i++)
			if (cfg->jobs[i].username && cfg->jobs[i].jobid == id) {
				*out = &cfg->jobs[i];
				return 0;
			}
	}
	/* the SQL jobs that answer to ARG, by pgcrond's name or pg_cron's, each once */
	for (size_t i = 0; i < cfg->n_jobs; i++) {
		const struct conf_job *k = &cfg->jobs[i];
		if (!k->username || (k != j && !(k->cron_name && strcmp(k->cron_name, arg) == 0)))
			continue;
		if (cands && n < max)
			cands[n] = k;
		found = k;
		n++;
	}
	if (n_cands)
		*n_cands = n;
	if (n == 0)
		return -ENOENT;
	if (n > 1)
		return -ENOTUNIQ;
	*out = found;
	return 0;
}
