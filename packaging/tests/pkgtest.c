/* pkgtest: a plugin built out of tree against the installed pgcrond-dev, by
 * packaging/tests/package-test. It maintains one table and runs one parameterised
 * statement; the test only needs `pgcrond check` to load it. */

#include <errno.h>

#include <pgcrond/plugin.h>

PGCROND_PLUGIN_MAGIC("pkgtest", "0.0.1");

static const struct pgc_api *api;

static int build_run(const struct pgc_settings *s, const char *const *payloads, size_t n_payloads,
                     struct pgc_run *run)
{
	int rc;

	(void)payloads;
	(void)n_payloads;
	if ((rc = api->run_add(run, "INSERT INTO public.pgcrond_pkgtest (note) VALUES ($1)")) < 0)
		return rc;
	return api->run_add_param(run, api->setting_str(s, "note", "tick"));
}

static const struct pgc_plugin plugin = {
    .size = sizeof(struct pgc_plugin),
    .description = "package test: one row per run",
    .relations =
        (const struct pgc_relation_decl[]){
            {"public.pgcrond_pkgtest", PGC_RELATION_TABLE, 0},
            {NULL, 0, 0},
        },
    .install_sql = "CREATE TABLE IF NOT EXISTS public.pgcrond_pkgtest "
                   "(at timestamptz NOT NULL DEFAULT now(), note text)",
    .settings =
        (const struct pgc_setting_decl[]){
            {"note", PGC_SETTING_STRING, "tick", "the text each run inserts"},
            {NULL, 0, NULL, NULL},
        },
    .build_run = build_run,
};

int pgcrond_plugin_init(const struct pgc_api *core, const struct pgc_plugin **decl)
{
	if (core->abi_major != PGC_PLUGIN_ABI_MAJOR)
		return -EINVAL;
	api = core;
	*decl = &plugin;
	return 0;
}
