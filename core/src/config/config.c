/* What every part of the config loader uses (config_priv.h): a problem reported at its file
 * and line, copies that record running out of memory, a path refused when others could
 * change it, reading a libconfig file safely (size, trust, @include); and a loaded
 * configuration's lookups: its databases, its jobs by name (the job index) or by pgcrond's
 * or pg_cron's name or id. Loading itself is config_load.c's. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "array.h"
#include "config.h"
#include "config_priv.h"
#include "strmap.h"
#include "text.h"
#include "trust.h"

#define MSG_MAX 1024

void config_report(struct loader *L, const char *file, int line, const char *fmt, ...)
{
	char msg[MSG_MAX];
	TEXT_VA_FORMAT(msg, sizeof(msg), fmt); /* a long message cut short still helps */
	diag_add(L->dl, file, line, "%s", msg);
	L->n_errors++;
}

void config_report_at(struct loader *L, const config_setting_t *s, const char *fallback_file,
                      const char *fmt, ...)
{
	char msg[MSG_MAX];
	TEXT_VA_FORMAT(msg, sizeof(msg), fmt);
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

char **config_dup_strs(char *const *src, size_t n, bool *oom)
{
	char **d = n ? calloc(n, sizeof(*d)) : NULL;

	if (n && !d)
		*oom = true;
	for (size_t i = 0; d && i < n; i++)
		d[i] = config_dup_or(src[i], oom);
	return d;
}

#define AT(f) offsetof(struct pgc_config, f)
const size_t config_main_strs[] = {AT(file),       AT(timezone),         AT(plugin_dir),
                                   AT(conf_dir),   AT(state_dir),        AT(instance),
                                   AT(log_level),  AT(history_database), AT(http_client.ca_file),
                                   CONFIG_STRS_END};
#undef AT
#define AT(f) offsetof(struct conf_http, f)
const size_t config_http_strs[] = {AT(listen),       AT(host),  AT(token_file), AT(tls_cert_file),
                                   AT(tls_key_file), AT(token), AT(file),       CONFIG_STRS_END};
#undef AT
#define AT(f) offsetof(struct conf_database, f)
const size_t config_database_strs[] = {AT(name), AT(conninfo), AT(file), CONFIG_STRS_END};
#undef AT
#define AT(f) offsetof(struct conf_alert_sink, f)
const size_t config_alert_strs[] = {AT(sink),    AT(database), AT(channel),    AT(url),
                                    AT(command), AT(file),     CONFIG_STRS_END};
#undef AT
#define AT(f) offsetof(struct conf_calendar, f)
const size_t config_calendar_strs[] = {AT(name),  AT(ics),  AT(database),
                                       AT(table), AT(file), CONFIG_STRS_END};
#undef AT
#define AT(f) offsetof(struct conf_job_more, f)
const size_t config_more_strs[] = {AT(notify.listen),  AT(sql.username), AT(sql.database),
                                   AT(sql.cron_name),  AT(cal.timezone), AT(cal.skip_dates),
                                   AT(cal.only_dates), CONFIG_STRS_END};
#undef AT

void config_strs_free(void *obj, const size_t *offs)
{
	for (; *offs != CONFIG_STRS_END; offs++)
		free(*(char **)((char *)obj + *offs));
}

void config_strs_dup(void *obj, const size_t *offs, bool *oom)
{
	for (; *offs != CONFIG_STRS_END; offs++) {
		char **s = (char **)((char *)obj + *offs);
		*s = config_dup_or(*s, oom);
	}
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
	if (array_grow(items, n, cap, size, 8) == 0)
		return true;
	L->oom = true;
	return false;
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
 * quadratic in places, a huge file would hold the loop), NUL-terminated, malloc'd, its length
 * in *LEN; NULL after reporting at PATH. Closes FD. */
static char *slurp(struct loader *L, int fd, const char *path, size_t *len)
{
	size_t cap = 0, n = 0;
	char *buf = NULL;
	ssize_t r = 0;

	while (n <= CONFIG_FILE_MAX) {
		if (array_grow(&buf, n + 1, &cap, 1, 65536) < 0) {
			L->oom = true;
			break;
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
	*len = n;
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
					size_t sub_len;
					char *sub = slurp(L, fd, full, &sub_len);
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

char *config_file_text(struct loader *L, const char *path, int fd, size_t *len)
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
			return NULL;
		}
	}
	return slurp(L, fd, path, len);
}

void config_text_identity(const char *text, size_t len, struct conf_file *f)
{
	/* 8 bytes a step, each step one-to-one (xor, rotate, multiply by an odd number), so texts
	 * of one size that differ in one word always differ in hash; the rotation carries the
	 * high bits down, and the end mixes every bit into every other (murmur3's) */
	uint64_t h = 0xcbf29ce484222325ULL, w;
	size_t i = 0;

	for (; i < len; i += 8) {
		w = 0;
		memcpy(&w, text + i, len - i < 8 ? len - i : 8);
		h ^= w;
		h = ((h << 31) | (h >> 33)) * 0x9e3779b97f4a7c15ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	f->size = len;
	f->hash = h;
	f->reusable = !memchr(text, '\0', len) && !strstr(text, "@include");
}

bool config_file_unchanged(const char *path, const struct conf_file *f)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	char *buf = fd >= 0 ? malloc(f->size + 1) : NULL;
	size_t n = 0;
	ssize_t r = -1;

	while (buf && n <= f->size) {
		r = read(fd, buf + n, f->size + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	if (fd >= 0)
		close(fd);
	struct conf_file g = {0};
	bool same = buf && r == 0 && n == f->size;
	if (same) {
		buf[n] = '\0';
		config_text_identity(buf, n, &g);
	}
	free(buf);
	return same && g.hash == f->hash;
}

bool config_file_parse(struct loader *L, config_t *cf, const char *path, const char *include_dir,
                       char *body)
{
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
		    "the file ends too early; a brace, bracket, parenthesis or quote opened above "
		    "is not closed");
	else if (strcmp(text, "syntax error") == 0)
		config_report(
		    L, efile, eline,
		    "syntax error; check this line and the one before for a missing \";\" or "
		    "\"=\", an unclosed quote, bracket or brace, or a name with characters other "
		    "than letters, digits, \"_\" and \"-\"");
	else if (strcmp(text, "duplicate setting name") == 0)
		config_report(
		    L, efile, eline,
		    "this setting appears twice in the same group; keep one (for several jobs in "
		    "one file write jobs = ( { ... }, { ... } );)");
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

/* Room for LEN bytes in CFG's string blocks; NULL when out of memory. */
static char *str_room(struct pgc_config *cfg, size_t len)
{
	enum { BLOCK = 65536 };
	size_t n = cfg->n_str_blocks;

	if (len <= cfg->str_left) {
		char *p = cfg->str_next;
		cfg->str_next += len;
		cfg->str_left -= len;
		return p;
	}
	if ((n & (n - 1)) == 0) { /* full: 0, 1, 2, 4 ... (doubled) */
		char **b = realloc(cfg->str_blocks, (n ? 2 * n : 1) * sizeof(*b));
		if (!b)
			return NULL;
		cfg->str_blocks = b;
	}
	/* a long string (a command may be 1 MB) gets a block of its own */
	char *p = malloc(len > BLOCK / 4 ? len : BLOCK);
	if (!p)
		return NULL;
	cfg->str_blocks[cfg->n_str_blocks++] = p;
	if (len <= BLOCK / 4) {
		cfg->str_next = p + len;
		cfg->str_left = BLOCK - len;
	}
	return p;
}

bool config_pack_strs(struct pgc_config *cfg, struct conf_job *j, const struct conf_job *src)
{
	const struct conf_job *from = src ? src : j;
	const char *in[] = {from->name, from->plugin, from->command, from->schedule};
	char *out[4] = {NULL, NULL, NULL, NULL};
	size_t len[4], total = 0;

	for (size_t i = 0; i < 4; i++)
		total += (len[i] = in[i] ? strlen(in[i]) + 1 : 0);
	char *p = total ? str_room(cfg, total) : NULL;
	if (total && !p)
		return false;
	for (size_t i = 0; i < 4; i++) {
		if (!in[i])
			continue;
		out[i] = memcpy(p, in[i], len[i]);
		p += len[i];
	}
	if (!src && !j->packed) {
		free(j->name);
		free(j->plugin);
		free(j->command);
		free(j->schedule);
	}
	j->name = out[0];
	j->plugin = out[1];
	j->command = out[2];
	j->schedule = out[3];
	j->packed = true;
	return true;
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

/* Jobs by name: an open-addressing table of indexes into cfg->jobs (they stay valid when the
 * array grows; 0 is an empty slot, so each is the index plus one), at most half full, rebuilt
 * twice as large when it would be more. With a linear search, looking up every job and every
 * "after" makes loading 100,000 jobs quadratic (a minute of strcmp); a strmap of nodes
 * takes 42 bytes a job where this takes 8 at most (4 MB of the RSS at 100,000 jobs). */
struct config_job_index {
	size_t n;      /* slots taken */
	unsigned bits; /* 1 << bits slots */
	uint32_t slot[];
};

void config_index_free(struct config_job_index **ix)
{
	free(*ix);
	*ix = NULL;
}

/* The first slot to probe for NAME: the hash's top bits after a multiply (FNV-1a's low bits
 * depend only on the low bits of each byte). */
static size_t index_home(const struct config_job_index *ix, const char *name)
{
	return (size_t)((strmap_hash(name) * 0x9e3779b97f4a7c15ULL) >> (64 - ix->bits));
}

static void index_put(struct config_job_index *ix, const struct conf_job *jobs, size_t i)
{
	size_t mask = ((size_t)1 << ix->bits) - 1;
	size_t k = index_home(ix, jobs[i].name);

	while (ix->slot[k])
		k = (k + 1) & mask;
	ix->slot[k] = (uint32_t)(i + 1);
	ix->n++;
}

/* Index job I (just appended); on allocation failure (or past 2^32 jobs) the index is dropped
 * and lookups go back to the linear search. */
void config_index_add(struct pgc_config *cfg, size_t i)
{
	struct config_job_index *ix = cfg->job_index;

	if (!cfg->jobs[i].name)
		return;
	if (!ix || 2 * (ix->n + 1) > ((size_t)1 << ix->bits)) {
		unsigned bits = ix ? ix->bits + 1 : 10;
		while (((size_t)1 << bits) < 2 * (i + 1)) /* built over many jobs at once */
			bits++;
		config_index_free(&cfg->job_index);
		if (i >= UINT32_MAX - 1)
			return;
		struct config_job_index *nx =
		    calloc(1, sizeof(*nx) + ((size_t)1 << bits) * sizeof(nx->slot[0]));
		cfg->job_index = nx;
		if (!nx)
			return;
		nx->bits = bits;
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
		size_t mask = ((size_t)1 << ix->bits) - 1;
		for (size_t k = index_home(ix, name); ix->slot[k]; k = (k + 1) & mask) {
			const struct conf_job *j = &cfg->jobs[ix->slot[k] - 1];
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

const struct conf_setting *config_job_setting(const struct conf_job *job, const char *key)
{
	for (size_t i = 0; job && key && i < job->more->n_settings; i++) {
		const struct conf_setting *s = &job->more->settings[i];
		if (s->key && strcmp(s->key, key) == 0)
			return s;
	}
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
	if (j && !j->more->sql.username) { /* a file job: its name is the operator's */
		*out = j;
		return 0;
	}
	size_t len = strlen(arg);
	if (len > 0 && len < 19 && strspn(arg, "0123456789") == len) {
		long long id = strtoll(arg, NULL, 10);
		for (size_t i = 0; i < cfg->n_jobs; i++) {
			const struct conf_job_sql *sql = &cfg->jobs[i].more->sql;
			if (sql->username && sql->jobid == id) {
				*out = &cfg->jobs[i];
				return 0;
			}
		}
	}
	/* the SQL jobs that answer to ARG, by pgcrond's name or pg_cron's, each once */
	for (size_t i = 0; i < cfg->n_jobs; i++) {
		const struct conf_job *k = &cfg->jobs[i];
		const struct conf_job_sql *sql = &k->more->sql;
		if (!sql->username ||
		    (k != j && !(sql->cron_name && strcmp(sql->cron_name, arg) == 0)))
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

bool config_skipped(const struct loader *L, const char *path)
{
	for (size_t i = 0; i < L->n_skip; i++)
		if (strcmp(L->skip[i], path) == 0)
			return true;
	return false;
}

void config_blame(struct loader *L, const char *path)
{
	for (size_t i = 0; i < L->n_blamed; i++)
		if (strcmp(L->blamed[i], path) == 0)
			return;
	char **b = realloc(L->blamed, (L->n_blamed + 1) * sizeof(*b));
	if (b)
		L->blamed = b;
	if (!b || !(b[L->n_blamed] = strdup(path)))
		L->oom = true;
	else
		L->n_blamed++;
}
