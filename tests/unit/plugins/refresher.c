/* A plugin whose runs are made with api->run_refresh(), for check_plugin.c: two views (one
 * declared CONCURRENT, one not, its name in mixed case) around a table, and a "mode" setting
 * choosing how run_refresh() is called, including the ways a plugin can get it wrong. */
#include <errno.h>
#include <string.h>

#include "testplugin.h"

PGCROND_PLUGIN_MAGIC("refresher", "1.0.0");

static const struct pgc_api *api;

static int build_run(const struct pgc_settings *s, const char *const *payloads, size_t n_payloads,
                     struct pgc_run *run)
{
	const char *mode = api->setting_str(s, "mode", "all");

	if (strcmp(mode, "all") == 0)
		return api->run_refresh(run, NULL, 0);
	if (strcmp(mode, "all_analyze") == 0)
		return api->run_refresh(run, NULL, PGC_REFRESH_ANALYZE);
	if (strcmp(mode, "all_concurrently") == 0)
		return api->run_refresh(run, NULL, PGC_REFRESH_CONCURRENTLY);
	if (strcmp(mode, "declared_blocking") == 0) /* asks for a plain refresh of a guarded view */
		return api->run_refresh(run, "public.mv_a", 0);
	if (strcmp(mode, "other") == 0)
		return api->run_refresh(run, "other.we\"ird", PGC_REFRESH_ANALYZE);
	if (strcmp(mode, "bad_name_ignored") == 0) {
		(void)api->run_refresh(run, "a.b.c", 0); /* a careless plugin: still fails */
		return 0;
	}
	if (strcmp(mode, "bad_flags") == 0)
		return api->run_refresh(run, NULL, 0x80);
	return -EINVAL;
}

static const struct pgc_plugin decl_ = {
    .size = sizeof(struct pgc_plugin),
    .description = "test plugin for run_refresh()",
    .relations =
        (const struct pgc_relation_decl[]){
            {"public.mv_a", PGC_RELATION_MATVIEW, PGC_RELATION_CONCURRENT},
            {"analytics.log", PGC_RELATION_TABLE, 0},
            {"public.MV_b", PGC_RELATION_MATVIEW, 0},
            {NULL, 0, 0},
        },
    .settings =
        (const struct pgc_setting_decl[]){
            {"mode", PGC_SETTING_STRING, "all", "how build_run() calls run_refresh()"},
            {NULL, 0, NULL, NULL},
        },
    .build_run = build_run,
};

int pgcrond_plugin_init(const struct pgc_api *core, const struct pgc_plugin **decl)
{
	api = core;
	*decl = &decl_;
	return 0;
}
