/* Loading plugins (plugin.h: plugin_load): find the shared object in plugin_dir, check
 * that it is safe to load (trust.c) and built for this core (its magic), dlopen it, and
 * check its declaration, every problem said with what to do. A loaded plugin is never
 * unloaded. Then the registry of the plugins one configuration names, and the check of
 * that configuration's plugin jobs (plugin_check_config). The API table, a job's checks
 * and the runs are plugin.c's. */
#include "plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "array.h"
#include "config.h"
#include "log.h"
#include "plugin_priv.h"
#include "text.h"
#include "trust.h"

/* Every plugin loaded by this process, never unloaded (see plugin.h). The daemon calls the
 * loader from its one thread only. */
static struct plugin **loaded;
static size_t n_loaded, cap_loaded;

#define LOWER_DIGITS "abcdefghijklmnopqrstuvwxyz0123456789_"

/* A plugin's name: letters, digits, '_' and '-'. */
static bool name_is_valid(const char *name)
{
	return name && *name &&
	       strspn(name, LOWER_DIGITS "-ABCDEFGHIJKLMNOPQRSTUVWXYZ") == strlen(name);
}

/* A setting's name: lower-case letters, digits and '_', not first a digit. */
static bool setting_name_is_valid(const char *name)
{
	return name && *name && !(*name >= '0' && *name <= '9') &&
	       strspn(name, LOWER_DIGITS) == strlen(name);
}

/* ---- loading ------------------------------------------------------------------------ */

/* What a missing plugin's message offers instead: "did you mean "x"? plugin_dir holds: a, b"
 * (sorted), or "plugin_dir holds no plugins". Only names that could be loaded are listed. */
static void list_plugin_files(const char *dir, const char *want, char *out, size_t outlen)
{
	char *names[64];
	size_t n = 0, o = 0;
	struct suggester sg = {want, NULL, 99};
	struct dirent *e;
	DIR *d = opendir(dir);
	int w;

	snprintf(out, outlen, "plugin_dir holds no plugins");
	if (!d)
		return;
	while ((e = readdir(d)) && n < sizeof(names) / sizeof(names[0])) {
		size_t len = strlen(e->d_name);
		if (len <= 3 || strcmp(e->d_name + len - 3, ".so") != 0)
			continue;
		char *nm = strndup(e->d_name, len - 3);
		if (!nm)
			break;
		if (!name_is_valid(nm)) {
			free(nm);
			continue;
		}
		names[n++] = nm;
	}
	closedir(d);
	if (n == 0)
		return;
	qsort(names, n, sizeof(names[0]), text_cmp_ptrs);
	for (size_t i = 0; i < n; i++)
		config_suggest(&sg, names[i]);
	if (sg.best)
		w = snprintf(out, outlen, "did you mean \"%s\"? plugin_dir holds: ", sg.best);
	else
		w = snprintf(out, outlen, "plugin_dir holds: ");
	if (w < 0 || (size_t)w >= outlen)
		goto out;
	o = (size_t)w;
	for (size_t i = 0; i < n; i++) {
		w = snprintf(out + o, outlen - o, "%s%s", i ? ", " : "", names[i]);
		if (w < 0 || (size_t)w >= outlen - o) {
			/* too many to list: end with an ellipsis where it was cut */
			if (outlen > 4)
				memcpy(out + outlen - 4, "...", 4);
			goto out;
		}
		o += (size_t)w;
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
}

/* The file is only as trustworthy as whoever can replace it: the directory and the file, and
 * the directories above them (trust.h), must be owned by root or by us and writable by nobody
 * else. Then nobody else can swap the file between these checks and dlopen(), so checking by
 * path is enough. A symbolic link is refused because its target lives in a directory these
 * checks never saw; packages install the file itself. */
static int check_files(const char *dir, const char *name, const char *path, char *err,
                       size_t errlen)
{
	struct stat st;
	char why[1024];
	int rc;

	if (stat(dir, &st) < 0) {
		int e = errno;
		if (e == ENOENT)
			plugin_set_err(
			    err, errlen,
			    "plugin \"%s\": plugin_dir %s does not exist; create it or set "
			    "plugin_dir in pgcrond.conf",
			    name, dir);
		else
			plugin_set_err(err, errlen, "plugin \"%s\": cannot read plugin_dir %s: %s",
			               name, dir, strerror(e));
		return -e;
	}
	if (!S_ISDIR(st.st_mode)) {
		plugin_set_err(err, errlen,
		               "plugin \"%s\": plugin_dir %s is not a directory; set plugin_dir "
		               "in pgcrond.conf to the directory holding the plugins",
		               name, dir);
		return -ENOTDIR;
	}
	rc = trust_check(dir, true, geteuid(), why, sizeof(why));
	if (rc < 0) {
		plugin_set_err(err, errlen, "refusing plugin \"%s\": %s", name, why);
		return rc;
	}

	if (lstat(path, &st) < 0) {
		int e = errno;
		if (e == ENOENT) {
			char have[512];
			list_plugin_files(dir, name, have, sizeof(have));
			plugin_set_err(err, errlen,
			               "plugin \"%s\": %s does not exist; %s; install the plugin "
			               "there, or check the plugin name and plugin_dir",
			               name, path, have);
		} else
			plugin_set_err(err, errlen, "plugin \"%s\": cannot read %s: %s", name, path,
			               strerror(e));
		return -e;
	}
	if (S_ISLNK(st.st_mode)) {
		plugin_set_err(
		    err, errlen,
		    "refusing plugin \"%s\": %s is a symbolic link; install the "
		    "plugin file itself in %s (a link could lead outside the checked directory)",
		    name, path, dir);
		return -EPERM;
	}
	if (!S_ISREG(st.st_mode)) {
		plugin_set_err(err, errlen,
		               "refusing plugin \"%s\": %s is not a regular file; install the "
		               "plugin's .so file there",
		               name, path);
		return -EPERM;
	}
	rc = trust_check(path, false, geteuid(), why, sizeof(why));
	if (rc < 0) {
		plugin_set_err(err, errlen, "refusing plugin \"%s\": %s", name, why);
		return rc;
	}
	return 0;
}

/* Refuse plugin NAME (file PATH): "plugin "NAME" (PATH): " and what FMT says, into ERR.
 * Returns -ENOEXEC. */
__attribute__((format(printf, 5, 6))) static int
refuse(const char *name, const char *path, char *err, size_t errlen, const char *fmt, ...)
{
	char msg[1024];
	TEXT_VA_FORMAT(msg, sizeof(msg), fmt);
	plugin_set_err(err, errlen, "plugin \"%s\" (%s): %s", name, path, msg);
	return -ENOEXEC;
}

/* The magic block: read `size` first (it is the first field in every version), and only
 * read the rest once the size says the layout is ours. */
static int check_magic(const struct pgc_plugin_magic *m, const char *name, const char *path,
                       char *err, size_t errlen)
{
	static const char rebuild[] = "rebuild the plugin against this pgcrond's plugin.h";

	if (!m)
		return refuse(name, path, err, errlen,
		              PGC_PLUGIN_MAGIC_SYMBOL "() returned no magic block; %s", rebuild);
	if (m->size != sizeof(struct pgc_plugin_magic))
		return refuse(name, path, err, errlen,
		              "magic block size is %zu bytes but this pgcrond expects %zu; %s",
		              m->size, sizeof(struct pgc_plugin_magic), rebuild);
	if (m->abi_major != PGC_PLUGIN_ABI_MAJOR)
		return refuse(name, path, err, errlen,
		              "ABI major version is %u but this pgcrond speaks %u; %s",
		              (unsigned)m->abi_major, (unsigned)PGC_PLUGIN_ABI_MAJOR, rebuild);
	if (m->abi_minor > PGC_PLUGIN_ABI_MINOR)
		return refuse(name, path, err, errlen,
		              "ABI minor version is %u but this pgcrond speaks %u.%u at most; "
		              "upgrade pgcrond, or %s",
		              (unsigned)m->abi_minor, (unsigned)PGC_PLUGIN_ABI_MAJOR,
		              (unsigned)PGC_PLUGIN_ABI_MINOR, rebuild);
	if (!m->name || strcmp(m->name, name) != 0)
		return refuse(name, path, err, errlen,
		              "magic block name is \"%s\" but the file is named %s.so; name the "
		              "file after the plugin, or fix PGCROND_PLUGIN_MAGIC()",
		              m->name ? m->name : "(null)", name);
	if (!m->version)
		return refuse(name, path, err, errlen,
		              "magic block version is missing; give one in PGCROND_PLUGIN_MAGIC()");
	return 0;
}

/* The declaration: everything the core will rely on later is checked once, here, so a bad
 * plugin is refused at load time with a message for its author rather than failing runs. */
static int check_decl(struct plugin *p, const struct pgc_plugin *d, char *err, size_t errlen)
{
	const size_t min_size = offsetof(struct pgc_plugin, build_run) + sizeof(d->build_run);
	char buf[512];

	if (!d)
		return refuse(
		    p->name, p->path, err, errlen,
		    PGC_PLUGIN_INIT_SYMBOL
		    "() returned no declaration; set *decl to the plugin's struct pgc_plugin");
	if (d->size < min_size || d->size > sizeof(struct pgc_plugin))
		return refuse(
		    p->name, p->path, err, errlen,
		    "declaration size is %zu bytes but this pgcrond expects %zu; set .size = "
		    "sizeof(struct pgc_plugin) and rebuild against this pgcrond's plugin.h",
		    d->size, sizeof(struct pgc_plugin));
	memset(&p->decl, 0, sizeof(p->decl));
	memcpy(&p->decl, d, d->size);
	d = &p->decl;

	/* Without build_run a run is run_refresh(NULL): that needs a view to refresh. */
	bool has_view = d->job_relation != NULL;
	for (size_t i = 0; d->relations && d->relations[i].name; i++)
		has_view = has_view || d->relations[i].kind == PGC_RELATION_MATVIEW;
	if (!d->build_run && !has_view)
		return refuse(p->name, p->path, err, errlen,
		              "declaration has no build_run callback and no materialized view for "
		              "the default run (run_refresh) to refresh; every plugin must say "
		              "what a run executes");
	for (p->n_relations = 0; d->relations && d->relations[p->n_relations].name;
	     p->n_relations++) {
		const struct pgc_relation_decl *r = &d->relations[p->n_relations];
		if (!strchr(r->name, '.') || plugin_quote_qualified(r->name, buf, sizeof(buf)) < 0)
			return refuse(p->name, p->path, err, errlen,
			              "relation \"%s\" is not a schema-qualified name; declare it "
			              "as \"schema.relation\"",
			              r->name);
		if (r->kind != PGC_RELATION_MATVIEW && r->kind != PGC_RELATION_TABLE)
			return refuse(p->name, p->path, err, errlen,
			              "relation \"%s\" has unknown kind %d; use "
			              "PGC_RELATION_MATVIEW or PGC_RELATION_TABLE",
			              r->name, r->kind);
		if ((r->flags & ~PGC_RELATION_CONCURRENT) ||
		    ((r->flags & PGC_RELATION_CONCURRENT) && r->kind != PGC_RELATION_MATVIEW))
			return refuse(
			    p->name, p->path, err, errlen,
			    "relation \"%s\" has flags 0x%x this pgcrond does not accept; only a "
			    "materialized view can be PGC_RELATION_CONCURRENT",
			    r->name, r->flags);
	}
	/* A plugin naming each job's relation from its settings (ABI 1.1 job_relation) may
	 * declare none statically; plugin_check_job() validates the per-job one. */
	if (p->n_relations == 0 && !d->job_relation)
		return refuse(
		    p->name, p->path, err, errlen,
		    "declares no relation; list the relations it maintains in .relations");
	for (p->n_reads = 0; d->reads && d->reads[p->n_reads]; p->n_reads++) {
		const char *r = d->reads[p->n_reads];
		if (!name_is_valid(r) || strcmp(r, p->name) == 0)
			return refuse(p->name, p->path, err, errlen,
			              ".reads names \"%s\", which is not another plugin's name", r);
	}
	for (size_t i = 0; d->sources && d->sources[i]; i++) {
		if (!config_valid_source(d->sources[i]))
			return refuse(p->name, p->path, err, errlen,
			              ".sources names \"%s\", which is not a schema-qualified "
			              "table name; declare it as \"schema.table\"",
			              d->sources[i]);
	}
	for (p->n_settings = 0; d->settings && d->settings[p->n_settings].name; p->n_settings++) {
		const struct pgc_setting_decl *s = &d->settings[p->n_settings];
		if (!setting_name_is_valid(s->name))
			return refuse(p->name, p->path, err, errlen,
			              "setting name \"%s\" is not valid; use lower-case letters, "
			              "digits and '_'",
			              s->name);
		if (config_is_job_key(s->name))
			return refuse(p->name, p->path, err, errlen,
			              "setting \"%s\" has the name of a job key pgcrond keeps for "
			              "itself; rename the setting",
			              s->name);
		for (size_t j = 0; j < p->n_settings; j++) {
			if (strcmp(d->settings[j].name, s->name) == 0)
				return refuse(p->name, p->path, err, errlen,
				              "setting \"%s\" is declared twice", s->name);
		}
		if (s->type < PGC_SETTING_STRING || s->type > PGC_SETTING_DURATION)
			return refuse(p->name, p->path, err, errlen,
			              "setting \"%s\" has unknown type %d", s->name, s->type);
		if (s->default_value &&
		    plugin_check_value(s->type, s->default_value, buf, sizeof(buf)) < 0)
			return refuse(p->name, p->path, err, errlen,
			              "the default of setting \"%s\" is invalid: %s", s->name, buf);
	}
	return 0;
}

static void plugin_destroy(struct plugin *p)
{
	if (!p)
		return;
	/* The handle is deliberately not closed: see plugin.h. */
	free(p->name);
	free(p->path);
	free(p);
}

typedef const struct pgc_plugin_magic *(*magic_fn)(void);
typedef int (*init_fn)(const struct pgc_api *, const struct pgc_plugin **);

static int open_plugin(const char *name, const char *path, struct plugin **out, char *err,
                       size_t errlen)
{
	struct plugin *p = calloc(1, sizeof(*p));
	const struct pgc_plugin *decl = NULL;
	magic_fn magic;
	init_fn init;
	void *sym;
	int rc;

	if (!p || !(p->name = strdup(name)) || !(p->path = strdup(path))) {
		plugin_set_err(err, errlen, "plugin \"%s\": out of memory", name);
		rc = -ENOMEM;
		goto out;
	}
	dlerror();
	p->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!p->handle) {
		const char *why = dlerror();
		plugin_set_err(err, errlen, "plugin \"%s\": cannot load %s: %s", name, path,
		               why ? why : "unknown dlopen error");
		rc = -ENOEXEC;
		goto out;
	}
	/* POSIX guarantees a dlsym() result converts to a function pointer; memcpy() says so
	 * without upsetting ISO C or the aliasing rules. */
	sym = dlsym(p->handle, PGC_PLUGIN_MAGIC_SYMBOL);
	memcpy(&magic, &sym, sizeof(magic));
	if (!magic) {
		rc = refuse(name, path, err, errlen,
		            "no " PGC_PLUGIN_MAGIC_SYMBOL
		            "() found; it is not a pgcrond plugin, or it lacks "
		            "PGCROND_PLUGIN_MAGIC() from pgcrond/plugin.h");
		goto out;
	}
	const struct pgc_plugin_magic *m = magic();
	if ((rc = check_magic(m, name, path, err, errlen)) < 0)
		goto out;
	p->version = m->version;
	p->abi_minor = m->abi_minor;
	sym = dlsym(p->handle, PGC_PLUGIN_INIT_SYMBOL);
	memcpy(&init, &sym, sizeof(init));
	if (!init) {
		rc = refuse(name, path, err, errlen,
		            "no " PGC_PLUGIN_INIT_SYMBOL
		            "() found; every plugin defines it (see pgcrond/plugin.h)");
		goto out;
	}
	plugin_set_context(p, NULL);
	rc = init(plugin_api(), &decl);
	plugin_clear_context();
	if (rc < 0) {
		rc = refuse(name, path, err, errlen, PGC_PLUGIN_INIT_SYMBOL "() failed: %s",
		            strerror(-rc));
		goto out;
	}
	if ((rc = check_decl(p, decl, err, errlen)) < 0)
		goto out;
	*out = p;
	p = NULL;
out:
	/* On failure the handle stays open too: the plugin's code may have run (init), and a
	 * library cannot be unloaded safely once it has. */
	plugin_destroy(p);
	return rc;
}

/* A loaded plugin is never unloaded (a run may be using it), so a .so replaced on disk (a
 * package upgrade) takes effect at restart: say so once per replacement, instead of
 * silently running the old code. */
static void note_replaced(struct plugin *p)
{
	struct stat st;
	if (stat(p->path, &st) != 0)
		return;
	int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	if ((st.st_dev == p->dev && st.st_ino == p->ino && mtime == p->mtime_ns &&
	     st.st_size == p->size) ||
	    mtime == p->warned_mtime_ns)
		return;
	p->warned_mtime_ns = mtime;
	log_msg(LOG_LVL_WARNING, NULL,
	        "plugin %s: %s was replaced on disk; version %s, loaded at start, keeps running: "
	        "restart pgcrond to load it",
	        p->name, p->path, p->version ? p->version : "?");
}

int plugin_load(const char *plugin_dir, const char *name, const struct plugin **out, char *err,
                size_t errlen)
{
	char path[PATH_MAX];
	int rc, n;

	*out = NULL;
	if (!name_is_valid(name)) {
		plugin_set_err(
		    err, errlen,
		    "refusing plugin \"%s\": a plugin name may hold only letters, "
		    "digits, '_' and '-'; use the name of the plugin's file without \".so\"",
		    name ? name : "");
		return -EINVAL;
	}
	if (!plugin_dir || !*plugin_dir) {
		plugin_set_err(err, errlen,
		               "plugin \"%s\": plugin_dir is empty; set plugin_dir in pgcrond.conf",
		               name);
		return -EINVAL;
	}
	n = snprintf(path, sizeof(path), "%s/%s.so", plugin_dir, name);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		plugin_set_err(err, errlen, "plugin \"%s\": the path %s/%s.so is too long", name,
		               plugin_dir, name);
		return -ENAMETOOLONG;
	}
	if ((rc = check_files(plugin_dir, name, path, err, errlen)) < 0)
		return rc;
	for (size_t i = 0; i < n_loaded; i++) {
		if (strcmp(loaded[i]->path, path) == 0) {
			*out = loaded[i];
			note_replaced(loaded[i]);
			return 0;
		}
	}
	if (array_grow(&loaded, n_loaded, &cap_loaded, sizeof(*loaded), 8) < 0) {
		plugin_set_err(err, errlen, "plugin \"%s\": out of memory", name);
		return -ENOMEM;
	}
	struct plugin *p = NULL;
	if ((rc = open_plugin(name, path, &p, err, errlen)) < 0)
		return rc;
	/* The same file reached through another path (a hard link) is the same dlopen()
	 * handle, already initialised: keep one plugin for it. */
	for (size_t i = 0; i < n_loaded; i++) {
		if (loaded[i]->handle == p->handle) {
			*out = loaded[i];
			plugin_destroy(p);
			return 0;
		}
	}
	struct stat st;
	if (stat(path, &st) == 0) {
		p->dev = st.st_dev;
		p->ino = st.st_ino;
		p->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		p->size = st.st_size;
	}
	loaded[n_loaded++] = p;
	*out = p;
	return 0;
}

/* ---- the registry ------------------------------------------------------------------- */

int plugin_registry_new(const char *plugin_dir, struct plugin_registry **out)
{
	struct plugin_registry *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r || !(r->plugin_dir = strdup(plugin_dir ? plugin_dir : ""))) {
		free(r);
		return -ENOMEM;
	}
	*out = r;
	return 0;
}

void plugin_registry_free(struct plugin_registry **reg)
{
	struct plugin_registry *r = *reg;

	if (!r)
		return;
	for (size_t i = 0; i < r->n_failures; i++) {
		free(r->failures[i].name);
		free(r->failures[i].message);
	}
	free(r->failures);
	free(r->plugins); /* the plugins themselves stay loaded */
	free(r->plugin_dir);
	free(r);
	*reg = NULL;
}

const struct plugin *plugin_registry_find(const struct plugin_registry *reg, const char *name)
{
	for (size_t i = 0; name && i < reg->n_plugins; i++)
		if (strcmp(reg->plugins[i]->name, name) == 0)
			return reg->plugins[i];
	return NULL;
}

static int remember_failure(struct plugin_registry *r, const char *name, const char *message,
                            int rc)
{
	if (array_grow(&r->failures, r->n_failures, &r->cap_failures, sizeof(*r->failures), 4) < 0)
		return -ENOMEM;
	struct plugin_failure *f = &r->failures[r->n_failures];
	f->name = strdup(name);
	f->message = strdup(message);
	if (!f->name || !f->message) {
		free(f->name);
		free(f->message);
		return -ENOMEM;
	}
	f->rc = rc;
	r->n_failures++;
	return 0;
}

int plugin_registry_get(struct plugin_registry *reg, const char *name, const struct plugin **out,
                        char *err, size_t errlen)
{
	const struct plugin *p = plugin_registry_find(reg, name);
	int rc;

	*out = NULL;
	if (p) {
		*out = p;
		return 0;
	}
	for (size_t i = 0; name && i < reg->n_failures; i++) {
		if (strcmp(reg->failures[i].name, name) == 0) {
			plugin_set_err(err, errlen, "%s", reg->failures[i].message);
			return reg->failures[i].rc;
		}
	}
	char msg[1024];
	rc = plugin_load(reg->plugin_dir, name, &p, msg, sizeof(msg));
	if (rc < 0) {
		plugin_set_err(err, errlen, "%s", msg);
		if (name && remember_failure(reg, name, msg, rc) < 0)
			return -ENOMEM;
		return rc;
	}
	if (array_grow(&reg->plugins, reg->n_plugins, &reg->cap_plugins, sizeof(*reg->plugins), 8) <
	    0) {
		plugin_set_err(err, errlen, "plugin \"%s\": out of memory", name);
		return -ENOMEM;
	}
	reg->plugins[reg->n_plugins++] = p;
	*out = p;
	return 0;
}

/* ---- configuration checks ----------------------------------------------------------- */

int plugin_check_config(const struct pgc_config *cfg, struct plugin_registry **out,
                        struct diag_list *dl)
{
	struct plugin_registry *reg;
	bool bad = false;
	char err[1024];
	int rc;

	*out = NULL;
	if ((rc = plugin_registry_new(cfg->plugin_dir, &reg)) < 0)
		return rc;
	for (size_t i = 0; i < cfg->n_jobs; i++) {
		const struct conf_job *job = &cfg->jobs[i];
		const struct plugin *p;
		if (!job->plugin)
			continue;
		rc = plugin_registry_get(reg, job->plugin, &p, err, sizeof(err));
		if (rc == -ENOMEM) {
			plugin_registry_free(&reg);
			return rc;
		}
		if (rc < 0) {
			/* the plugin = line is where the mistake is, not the job's first line */
			diag_add(dl, job->file, job->plugin_line > 0 ? job->plugin_line : job->line,
			         "job \"%s\": %s", job->name, err);
			bad = true;
			continue;
		}
		if (plugin_check_job(p, job, dl) < 0)
			bad = true;
	}
	*out = reg;
	return bad ? -EINVAL : 0;
}
