/* Loading pgcrond.conf and the job files of its conf_dir with libconfig, and freeing what
 * was loaded.
 *
 * The loader walks every setting of every file once, checks it against a table of known
 * keys, and reports each problem it meets into the caller's diag list instead of stopping,
 * so one `pgcrond check` shows everything that is wrong. Checks that need the whole
 * picture (history database, unknown "after" names) run after all files are read; the
 * diagnostics are then sorted by file and line so they read like a compiler's. The main
 * file is config_main.c's, the job files config_jobs.c's; what they share (reporting,
 * reading a file, the job index) is config.c's. */
#include <errno.h>
#include <libconfig.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config_priv.h"
#include "cron_tz.h"
#include "text.h"

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

/* config_load, leaving out the job files and calendars in SKIP; *BLAMED gets those with errors
 * (the caller frees them) and *MAIN_BAD whether any error is outside them. */
static int load(const char *path, const struct pgc_config *prev, char *const *skip, size_t n_skip,
                struct pgc_config **out, struct diag_list *dl, char ***blamed, size_t *n_blamed,
                bool *main_bad)
{
	struct loader L = {.skip = skip, .n_skip = n_skip, .dl = dl, .dl_start = dl->n};
	config_t cf;
	int rc = 0;

	*out = NULL;
	struct pgc_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return -ENOMEM;
	L.cfg = cfg;
	cfg->file = config_dup_str(&L, path);
	/* the defaults, each replaced by a setting of the main file */
	cfg->conf_dir = config_dup_str(&L, "conf.d");
	cfg->plugin_dir = config_dup_str(&L, PGCROND_DEFAULT_PLUGIN_DIR);
	cfg->state_dir = config_dup_str(&L, "/var/lib/pgcrond");
	cfg->timezone = config_dup_str(&L, "UTC");
	cfg->log_level = config_dup_str(&L, "info");
	cfg->history_retain_ms = 30LL * 86400000;
	cfg->history_backlog = 8192;
	cfg->max_running = 32;
	cfg->shutdown_grace_ms = 30000;
	cfg->alert_repeat_ms = 3600000;
	cfg->connection_check_ms = 30000;
	cfg->cluster_dead_after_ms = 20000;
	cfg->http_client.max_concurrent = 16;
	cfg->http_client.timeout_ms = 30000;
	cfg->http_client.connect_timeout_ms = 10000;
	cfg->http_client.max_request = cfg->http_client.max_response = 1024 * 1024;
	cfg->http_client.pg_net_max_response = CONFIG_PG_NET_MAX_BYTES;
	cfg->http_client.max_redirects = 5;

	/* PATH's directory: "/" for "/x", "" for "x" */
	const char *slash = strrchr(path, '/');
	L.main_dir = strndup(path, slash ? (size_t)(slash - path) + (slash == path) : 0);
	if (!L.main_dir)
		L.oom = true;
	L.have_main_st = stat(path, &L.main_st) == 0;

	L.self = geteuid();
	size_t len;
	char *body = L.oom ? NULL : config_file_text(&L, path, -1, &len);
	struct conf_file f = {0};
	if (body)
		config_text_identity(body, len, &f);
	if (body && config_file_parse(&L, &cf, path, L.main_dir, body)) {
		/* the job files' jobs depend on this text too (databases, the history database):
		 * those of PREV are taken again only when it is the same */
		if (f.reusable && config_file_unchanged(path, &f)) {
			cfg->main_size = f.size;
			cfg->main_hash = f.hash;
		}
		if (prev && prev->main_hash == cfg->main_hash &&
		    prev->main_size == cfg->main_size && cfg->main_hash != 0)
			L.prev = prev;
		const config_setting_t *root = config_root_setting(&cf);
		config_parse_main(&L, root, path);
		config_finish_main(&L, root);
		config_destroy(&cf);
		/* The files must belong to root or to the daemon's user. `pgcrond check` run as
		 * root cannot know that user: it is taken to be state_dir's owner, the one user
		 * who must be able to write there. */
		struct stat st;
		if (L.self == 0 && cfg->state_dir && stat(cfg->state_dir, &st) == 0 &&
		    S_ISDIR(st.st_mode))
			L.self = st.st_uid;
		config_check_dirs(&L);
		config_http_finish(&L);
		size_t errors_before = L.n_errors;
		config_calendars_finish(&L); /* a calendar's errors are blamed on it */
		/* with a broken or untrusted main file there is no conf_dir and no databases to
		 * check jobs against, so job files are read only when the main file was usable */
		if (config_check_trusted(&L, path, false, "this file", path, 0) == 0) {
			L.main_bad = errors_before > 0;
			size_t blamed_before = L.n_blamed;
			errors_before = L.n_errors;
			config_load_conf_dir(&L);
			if (L.n_errors > errors_before && L.n_blamed == blamed_before)
				L.main_bad = true; /* conf_dir itself: unreadable, untrusted */
			size_t d0 = dl->n;
			config_check_jobs(&L);
			/* a job running after a job of a left-out file: its own file goes too */
			for (size_t i = d0; i < dl->n; i++) {
				if (dl->items[i].file && strcmp(dl->items[i].file, path) != 0)
					config_blame(&L, dl->items[i].file);
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
	text_free_list(L.files, L.n_files);
	free(L.main_dir);
	if (blamed) {
		*blamed = L.blamed;
		*n_blamed = L.n_blamed;
		*main_bad = L.main_bad;
	} else {
		text_free_list(L.blamed, L.n_blamed);
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
	return load(path, NULL, NULL, 0, out, dl, NULL, NULL, NULL);
}

int config_load_again(const char *path, const struct pgc_config *prev, struct pgc_config **out,
                      struct diag_list *dl)
{
	return load(path, prev, NULL, 0, out, dl, NULL, NULL, NULL);
}

bool config_same_files(const struct pgc_config *a, const struct pgc_config *b)
{
	if (!a || !b || a->main_hash == 0 || a->main_hash != b->main_hash ||
	    a->main_size != b->main_size || a->n_job_files != b->n_job_files ||
	    a->n_jobs != b->n_jobs)
		return false;
	for (size_t i = 0; i < a->n_job_files; i++) {
		const struct conf_file *f = &a->job_files[i], *g = &b->job_files[i];
		if (!f->reusable || !g->reusable || f->size != g->size || f->hash != g->hash ||
		    f->n != g->n || strcmp(f->path, g->path) != 0)
			return false;
	}
	return true;
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

		rc = load(path, NULL, skip, n_skip, out, dl, &blamed, &n_blamed, &main_bad);
		bool again = !(rc == 0 || rc == -ENOMEM || main_bad || n_blamed == 0);
		/* leave the blamed files out and try again: their diagnostics are not the
		 * caller's business unless nothing loads at all */
		char **grown = again ? realloc(skip, (n_skip + n_blamed) * sizeof(*skip)) : NULL;
		if (grown) {
			skip = grown;
			memcpy(skip + n_skip, blamed, n_blamed * sizeof(*skip));
			n_skip += n_blamed;
			n_blamed = 0;
		} else if (again) {
			rc = -ENOMEM;
		}
		text_free_list(blamed, n_blamed);
		if (!grown)
			break;
		while (dl->n > dl_start) {
			struct diag *d = &dl->items[--dl->n];
			free(d->file);
			free(d->message);
		}
	}
	if (rc < 0) {
		text_free_list(skip, n_skip);
		return rc;
	}
	*skipped = skip;
	*n_skipped = n_skip;
	return 0;
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
	config_strs_free(cfg, config_main_strs);
	for (size_t i = 0; i < cfg->n_databases; i++)
		config_strs_free(&cfg->databases[i], config_database_strs);
	free(cfg->databases);
	for (size_t i = 0; i < cfg->n_alerts; i++)
		config_strs_free(&cfg->alerts[i], config_alert_strs);
	free(cfg->alerts);
	for (size_t i = 0; i < cfg->n_calendars; i++)
		config_strs_free(&cfg->calendars[i], config_calendar_strs);
	free(cfg->calendars);
	config_http_free(&cfg->http);
	for (size_t i = 0; i < cfg->n_jobs; i++)
		config_job_fields_free(&cfg->jobs[i]);
	free(cfg->jobs);
	text_free_list(cfg->job_strs, cfg->n_job_strs);
	free(cfg->job_files);
	text_free_list(cfg->str_blocks, cfg->n_str_blocks);
	cron_tz_free(&cfg->tz);
	config_index_free(&cfg->job_index);
	free(cfg);
	*pcfg = NULL;
}
