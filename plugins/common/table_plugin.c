/* table_plugin: pgcrond_plugin_init() and the callbacks of a plugin described by a struct
 * table_plugin (table_plugin.h), compiled into each such plugin. */

#include "table_plugin.h"

#include <errno.h>
#include <stdio.h>

static const struct pgc_api *api;

static int check_settings(const struct pgc_settings *s)
{
	if (api->setting_int(s, "max_partitions", 100) < 0) {
		api->setting_error(s, "max_partitions",
		                   "must be 0 (always refresh everything) or more, not %lld",
		                   (long long)api->setting_int(s, "max_partitions", 100));
		return -EINVAL;
	}
	return 0;
}

static int build_run(const struct pgc_settings *s, const char *const *payloads, size_t n_payloads,
                     struct pgc_run *run)
{
	const struct table_plugin *t = &table_plugin;
	const char *const *keys;
	size_t n_keys;
	int rc =
	    api->payload_keys(run, payloads, n_payloads, t->key, PGC_KEY_UUID,
	                      (size_t)api->setting_int(s, "max_partitions", 100), &keys, &n_keys);
	if (rc < 0)
		return rc;
	return api->run_replace(run, t->table, t->key, t->rows_sql, rc ? keys : NULL,
	                        rc ? n_keys : 0);
}

static char max_partitions_doc[128];

static struct pgc_relation_decl relations[] = {
    {NULL, PGC_RELATION_TABLE, 0},
    {NULL, 0, 0},
};

static const struct pgc_setting_decl settings[] = {
    {"max_partitions", PGC_SETTING_INT, "100", max_partitions_doc},
    {NULL, 0, NULL, NULL},
};

static struct pgc_plugin plugin = {
    .size = sizeof(struct pgc_plugin),
    .relations = relations,
    .settings = settings,
    .check_settings = check_settings,
    .build_run = build_run,
};

int pgcrond_plugin_init(const struct pgc_api *core, const struct pgc_plugin **decl)
{
	const struct table_plugin *t = &table_plugin;

	api = core;
	snprintf(max_partitions_doc, sizeof(max_partitions_doc),
	         "a notified run naming more %s than this refreshes all of them (0: always all)",
	         t->partitions);
	relations[0].name = t->table;
	plugin.description = t->description;
	plugin.install_sql = t->install_sql;
	plugin.reads = t->reads;
	plugin.sources = t->sources;
	*decl = &plugin;
	return 0;
}
