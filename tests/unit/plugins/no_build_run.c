/* A declaration without the one required callback. */
#include "testplugin.h"

PGCROND_PLUGIN_MAGIC("no_build_run", "0.0.1");

static const struct pgc_plugin decl_ = {
    .size = sizeof(struct pgc_plugin),
    .relations =
        (const struct pgc_relation_decl[]){{"public.t", PGC_RELATION_TABLE, 0}, {NULL, 0, 0}},
};

int pgcrond_plugin_init(const struct pgc_api *api, const struct pgc_plugin **decl)
{
	*decl = &decl_;
	return 0;
}
