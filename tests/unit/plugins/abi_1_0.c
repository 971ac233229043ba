/* A valid plugin as built against ABI 1.0: minor 0 in its magic block and a declaration
 * that ends at build_run (no job_relation, no job_install). A newer core must load it and
 * read the fields it lacks as NULL. */
#include <stddef.h>

#include "testplugin.h"

TESTPLUGIN_MAGIC(sizeof(struct pgc_plugin_magic), PGC_PLUGIN_ABI_MAJOR, 0, "abi_1_0");

/* The 1.0 declaration was exactly the fields up to build_run; job_relation is where 1.1
 * begins. The pointers past .size are set here on purpose: the core must not read them. */
static int never_called(const struct pgc_settings *s, struct pgc_relation_decl *out)
{
	(void)s;
	out->name = "public.must_not_be_read";
	return 0;
}

static const struct pgc_plugin decl = {
    .size = offsetof(struct pgc_plugin, job_relation),
    .relations =
        (const struct pgc_relation_decl[]){
            {"public.t10", PGC_RELATION_MATVIEW, PGC_RELATION_CONCURRENT}, {NULL, 0, 0}},
    .build_run = testplugin_build_run,
    .job_relation = never_called,
};

int pgcrond_plugin_init(const struct pgc_api *api, const struct pgc_plugin **out)
{
	(void)api;
	*out = &decl;
	return 0;
}
