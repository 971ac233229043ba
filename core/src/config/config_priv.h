#ifndef PGCROND_CONFIG_PRIV_H
#define PGCROND_CONFIG_PRIV_H

/* The config loader's inside, shared by its files and by nothing else: other modules use
 * config.h. Calls point one way (scripts/callgraph): config_load.c (the API) and
 * config_sql.c call the job files' code (config_jobs.c), which calls the main file's
 * (config_main.c), which calls the http groups' (config_http.c, config_http_call.c), which
 * call the key tables' machinery (config_keys.c), which calls config.c (reporting, copies,
 * files, lookups), which calls none of them. */

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "config.h"

#define JOB_NAME_MAX 63
/* The largest configuration file read: libconfig's parser is quadratic in places (a 4 MB job
 * file holds the loop for seconds on reload), and no real job file comes near this. */
#define CONFIG_FILE_MAX (1024 * 1024)
/* The largest whole-number setting (max_running, pool, retries, alert_after). */
#define CONFIG_INT_MAX 1000000000

/* ---- the loader's state ------------------------------------------------------------ */

struct loader {
	struct pgc_config *cfg;
	struct diag_list *dl;
	size_t dl_start; /* diagnostics before this index belong to the caller */
	size_t n_errors;
	bool oom;
	char *main_dir; /* directory of the main file; "" when it has none */
	struct stat main_st;
	bool have_main_st;
	char **files; /* every file read, in order: ranks diagnostics for sorting */
	size_t n_files;
	/* lines of main-file settings, for messages about them found later (0: absent) */
	int main_line[24];
	int history_db_line;
	size_t jobs_cap;
	/* the user the files must belong to (root or this one): the daemon's, see config.c */
	uid_t self;
	/* the text of the file last read, to see numbers as written (config_int_source) */
	struct {
		char *path;
		char *buf;
		size_t len;
		size_t *lines; /* offset of each line's start; lines[0] is line 1 */
		size_t n_lines;
	} src;
	/* config_load_partial(): job files left out (paths as conf_dir/NAME) and calendars
	 * (`calendar "NAME"`), and those this load found errors in (blamed), each a copy owned
	 * by the loader */
	char *const *skip;
	size_t n_skip;
	char **blamed;
	size_t n_blamed;
	bool main_bad; /* an error no job file can be blamed for */
	/* config_load_again(): the configuration whose unchanged job files are taken again;
	 * NULL once the main file's text differs from the one it read */
	const struct pgc_config *prev;
	size_t job_files_cap;
	bool parsed_jobs; /* a job file was parsed: a job taken from PREV may have its name */
};

/* The file a setting came from: libconfig knows it even inside @include files. */
static inline const char *setting_file(const config_setting_t *s, const char *fallback)
{
	const char *f = config_setting_source_file(s);
	return f ? f : fallback;
}

static inline int setting_line(const config_setting_t *s)
{
	return (int)config_setting_source_line(s);
}

/* Report a problem at setting S (its file, or FALLBACK_FILE, and line). */
void config_report_at(struct loader *L, const config_setting_t *s, const char *fallback_file,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* strdup that records running out of memory in L instead of failing; NULL stays NULL. */
char *config_dup_str(struct loader *L, const char *s);
/* strdup(S) (NULL for NULL), setting *OOM when there is no memory: for copies made outside
 * a load (a configuration's jobs merged with those made in SQL, a job's HTTP call). */
char *config_dup_or(const char *s, bool *oom);
/* A copy of the N strings of SRC, each copied with config_dup_or; NULL when N is 0, and when
 * there is no memory for the array (then with *OOM: the caller's count is to be set to 0). */
char **config_dup_strs(char *const *src, size_t n, bool *oom);
/* Whether two strings (NULL equals only NULL), or two arrays of NA and NB strings, are equal. */
bool config_str_eq(const char *a, const char *b);
bool config_names_eq(char *const *a, size_t na, char *const *b, size_t nb);

/* config_calendar.c: the calendars group; then, once L->self is known, their files' dates;
 * a job's skip_dates or only_dates (its group S, its schedule and zone read), and once all
 * jobs are in, the dates of a job taken again from the configuration before. */
void config_parse_calendars(struct loader *L, const config_setting_t *s, const char *file);
void config_calendars_finish(struct loader *L);
void config_job_dates(struct loader *L, const config_setting_t *s, const char *file,
                      struct conf_job *j);
void config_check_job_dates(struct loader *L, struct conf_job *j);
/* J's dates from its calendar C; a calendar without dates (a table not read yet) keeps J from
 * firing (an empty only_dates). False on ENOMEM. */
bool config_point_dates(struct conf_job *j, const struct conf_calendar *c);
/* config_http.c: the http group; then, once L->self is known, its token file. */
void config_parse_http(struct loader *L, const config_setting_t *s, const char *file);
void config_http_finish(struct loader *L);
void config_http_free(struct conf_http *h);
/* config_http_call.c: the http_client group of the main file, its defaults and its ca_file;
 * a job's http = { ... } group into J. */
void config_parse_http_client(struct loader *L, const config_setting_t *s, const char *file);
void config_http_client_finish(struct loader *L);
void config_parse_http_call(struct loader *L, const config_setting_t *s, const char *file,
                            struct conf_job *j);
/* Report URL, the value of S, when httpc_url_ok (the HTTP client's check) refuses it, as WHAT "URL"
 * and the fault, the URL without its user info and query (they may hold a secret). */
void config_check_url(struct loader *L, const config_setting_t *s, const char *file,
                      const char *what, const char *url);

/* Check that V, the string value of S (KEY, for the message), is valid UTF-8: PostgreSQL
 * refuses anything else, so a job with such a command could never record a run. Reports
 * and returns false when it is not. */
bool config_check_utf8(struct loader *L, const config_setting_t *s, const char *file,
                       const char *key, const char *v);
/* libconfig 1.5 reads a whole number with atoi(): 99999999999 becomes 1215752191 without a
 * word. This reads integer setting S again as written in its file. Returns 0 with *V (and the
 * number as written in TEXT), -ERANGE when it does not fit in 64 bits (TEXT still set), or
 * -ENOENT when it cannot be found (then libconfig's value is all there is). */
int config_int_source(struct loader *L, const config_setting_t *s, long long *v, char *text,
                      size_t textlen);
/* Free the text kept by config_int_source. */
void config_source_free(struct loader *L);

/* ---- spelling suggestions ---------------------------------------------------------- */

/* struct suggester and config_suggest() are in config.h: the plugin validator uses them. */

/* ---- key tables -------------------------------------------------------------------- */

enum key_type {
	K_STRING,   /* char *, not blank unless allow_empty */
	K_CHOICE,   /* char *, one of values[] */
	K_ENUM,     /* one-byte (packed) enum, the index into values[] */
	K_INT,      /* int >= min */
	K_BOOL,     /* bool */
	K_DURATION, /* int64_t milliseconds */
	K_FLOAT,    /* double >= min */
	K_NAMES,    /* char ** + uint32_t count: an array of strings */
	K_CUSTOM,   /* handled by fn */
};

struct key_spec {
	const char *name;
	enum key_type type;
	size_t off;
	const char *example; /* a value shown in type errors */
	const char *const *values;
	int min;
	bool allow_empty;
	void (*fn)(struct loader *L, const config_setting_t *s, const char *file);
};

/* Each ends with an entry whose name is NULL. tests/docs/config_keys.c lists them all for
 * the check of docs/configuration.md and pgcrond.conf(5) against them: a new table of keys
 * goes into its list too. */
extern const struct key_spec config_main_keys[];        /* into struct pgc_config */
extern const struct key_spec config_database_keys[];    /* databases = { NAME = { ... } } */
extern const struct key_spec config_history_keys[];     /* history = { ... } */
extern const struct key_spec config_sink_keys[];        /* alerts = ( { ... } ) */
extern const struct key_spec config_http_keys[];        /* http = { ... }: the listener */
extern const struct key_spec config_http_client_keys[]; /* http_client = { ... } */
extern const struct key_spec config_job_keys[];         /* into struct conf_job (and more) */
extern const struct key_spec config_http_call_keys[];   /* a job's http = { ... } */
extern const struct key_spec config_calendar_keys[];    /* calendars = { NAME = { ... } } */

/* The entry of KEYS named NAME, or NULL. */
const struct key_spec *config_find_key(const struct key_spec *keys, const char *name);
/* The name in KEYS closest to WORD (not WORD itself), or NULL. */
const char *config_closest_key(const struct key_spec *keys, const char *word);
/* Check and store one setting S described by K into the struct at BASE. Returns false
 * (after reporting) when the value is unusable. */
bool config_apply_key(struct loader *L, const config_setting_t *s, const struct key_spec *k,
                      void *base, const char *file);
/* The same for K, a key of config_job_keys, into job J: into its own conf_job_more when K is
 * one of those (made at the first). */
bool config_apply_job_key(struct loader *L, const config_setting_t *s, const struct key_spec *k,
                          struct conf_job *j, const char *file);
/* J's conf_job_more to write into: its own, made a copy of the defaults at the first call;
 * NULL on ENOMEM (J is as it was). */
struct conf_job_more *config_job_more_own(struct conf_job *j);
/* Report a key not in KEYS, suggesting the closest one. WHERE is "" or " in job \"x\"". */
void config_report_unknown(struct loader *L, const config_setting_t *s, const char *file,
                           const struct key_spec *keys, const char *where, const char *hint);
/* Walk group S: known keys into BASE, others reported. */
void config_parse_group(struct loader *L, const config_setting_t *s, const char *file,
                        const struct key_spec *keys, void *base, const char *where,
                        const char *hint);

/* the longest LISTEN channel: a PostgreSQL identifier (NAMEDATALEN - 1) */
#define CHANNEL_MAX 63
/* config.c */
/* The strings a part of a configuration owns, as offsets ended by CONFIG_STRS_END: freed by
 * config_free and copied by a clone from the one list, so neither can miss a field. */
#define CONFIG_STRS_END ((size_t)-1)
extern const size_t config_main_strs[], config_http_strs[], config_database_strs[],
    config_alert_strs[], config_calendar_strs[], config_more_strs[];
/* Each string at OFFS of the struct at OBJ freed; or replaced by a copy (config_dup_or). */
void config_strs_free(void *obj, const size_t *offs);
void config_strs_dup(void *obj, const size_t *offs, bool *oom);
void config_report(struct loader *L, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
char *config_join_path(struct loader *L, const char *dir, const char *name);
bool config_grow(struct loader *L, void **items, size_t n, size_t *cap, size_t size);
int config_check_trusted(struct loader *L, const char *path, bool is_dir, const char *what,
                         const char *file, int line);
/* The text of PATH (FD >= 0: the file as trust_open checked it, closed here), NUL-terminated,
 * malloc'd, its length in *LEN; NULL after reporting. Then its parse into CF, after its
 * @include files passed the trust check (BODY, its text, is freed). And the identity of a
 * file's text (conf_file's size, hash and reusable). */
char *config_file_text(struct loader *L, const char *path, int fd, size_t *len);
bool config_file_parse(struct loader *L, config_t *cf, const char *path, const char *include_dir,
                       char *body);
void config_text_identity(const char *text, size_t len, struct conf_file *f);
/* Whether PATH's text is still the one F identifies: libconfig reads the file again by its
 * path, so a file whose text changed meanwhile is not known by the text it was parsed from. */
bool config_file_unchanged(const char *path, const struct conf_file *f);
void config_index_add(struct pgc_config *cfg, size_t i);
struct config_job_index;
void config_index_free(struct config_job_index **ix);
/* config_main.c */
void config_parse_main(struct loader *L, const config_setting_t *root, const char *file);
void config_finish_main(struct loader *L, const config_setting_t *root);
void config_check_dirs(struct loader *L);
int config_main_line(const struct loader *L, const char *key);
void config_check_database(struct loader *L, const char *file, int line, const char *what,
                           const char *dbname);
/* config_jobs.c: one job = { ... } group S (reported at PATH when S has no file; config_sql.c
 * parses the jobs made in SQL so), the release of a job's fields, conf_dir's files */
void config_job_parse(struct loader *L, const config_setting_t *s, const char *path);
void config_job_fields_free(struct conf_job *j);
/* Move J's name, plugin, command and schedule into CFG's string blocks (J->packed), or copy
 * them there from SRC (J's fields are SRC's then, none of them J's own); false when out of
 * memory (J is as it was). */
bool config_pack_strs(struct pgc_config *cfg, struct conf_job *j, const struct conf_job *src);
/* A deep copy of SRC into DST, a job of C (its file and database become C's strings); *OOM
 * set when something could not be copied (DST is then still to be freed). */
void config_job_copy(struct pgc_config *c, const struct conf_job *src, struct conf_job *dst,
                     bool *oom);
/* Remember that job file or calendar WHAT has errors (config_load_partial leaves it out next
 * time); whether it was left out this time. */
void config_blame(struct loader *L, const char *what);
bool config_skipped(const struct loader *L, const char *what);
void config_load_conf_dir(struct loader *L);
void config_check_jobs(struct loader *L);

#endif
