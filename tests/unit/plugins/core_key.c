/* A plugin declaring a setting named like a job key the core keeps for itself ("timezone",
 * the newest one): refused at load, since a job's value would never reach it. */
#include "testplugin.h"

PGCROND_PLUGIN_MAGIC("core_key", "0.0.1");

static const struct pgc_plugin decl = {
    .size = sizeof(struct pgc_plugin),
    .relations =
        (const struct pgc_relation_decl[]){{"public.t", PGC_RELATION_TABLE, 0}, {NULL, 0, 0}},
    .settings =
        (const struct pgc_setting_decl[]){
            {"timezone", PGC_SETTING_STRING, NULL, "shadows the job key"}, {NULL, 0, NULL, NULL}},
    .build_run = testplugin_build_run,
};

int pgcrond_plugin_init(const struct pgc_api *api, const struct pgc_plugin **out)
{
	(void)api;
	*out = &decl;
	return 0;
}
