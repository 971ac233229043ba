/* ABI 1.3 sources: a table named without its schema. */
#include "testplugin.h"

PGCROND_PLUGIN_MAGIC("bad_source", "0.0.1");

static const struct pgc_plugin decl_ = {
    .size = sizeof(struct pgc_plugin),
    .relations =
        (const struct pgc_relation_decl[]){{"public.mv", PGC_RELATION_MATVIEW, 0}, {NULL, 0, 0}},
    .sources = (const char *const[]){"public.ok", "submissions", NULL},
};

int pgcrond_plugin_init(const struct pgc_api *api, const struct pgc_plugin **decl)
{
	(void)api;
	*decl = &decl_;
	return 0;
}
