/* A well-formed plugin exercising every setting type, check_settings(), payloads as
 * parameters, run_error() and the getters' fallbacks, for check_plugin.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "testplugin.h"

PGCROND_PLUGIN_MAGIC("probe", "2.3.4");

static const struct pgc_api *api;

static int check_settings(const struct pgc_settings *s)
{
	if (api->setting_int(s, "batch", 0) < 1) {
		api->setting_error(s, "batch", "must be at least 1");
		return -EINVAL;
	}
	return 0;
}

/* One statement reporting every setting, then one per payload, as parameters. */
static int build_run(const struct pgc_settings *s, const char *const *payloads, size_t n_payloads,
                     struct pgc_run *run)
{
	char num[32], ms[32];

	if (api->setting_bool(s, "fail", false)) {
		api->run_error(run, "asked to fail by job %s", api->job_name(s));
		return -EINVAL;
	}
	snprintf(num, sizeof(num), "%" PRId64, api->setting_int(s, "batch", -1));
	snprintf(ms, sizeof(ms), "%" PRId64, api->setting_duration_ms(s, "lock_timeout", -1));
	int rc = api->run_add(run, "SELECT $1, $2, $3, $4");
	if (rc == 0)
		rc = api->run_add_param(run, api->setting_str(s, "label", "fallback"));
	if (rc == 0)
		rc = api->run_add_param(run, num);
	if (rc == 0)
		rc = api->run_add_param(run, ms);
	if (rc == 0)
		rc = api->run_add_param(run, api->setting_is_set(s, "label") ? "set" : NULL);
	for (size_t i = 0; rc == 0 && i < n_payloads; i++) {
		rc = api->run_add(run, "SELECT pg_catalog.length($1)");
		if (rc == 0)
			rc = api->run_add_param(run, payloads[i]);
	}
	/* A plugin bug the core must survive: the wrong getter type falls back to DEF. */
	if (rc == 0 && api->setting_int(s, "label", 42) != 42)
		rc = -EPROTO;
	return rc;
}

static const struct pgc_plugin decl_ = {
    .size = sizeof(struct pgc_plugin),
    .description = "test plugin",
    .relations =
        (const struct pgc_relation_decl[]){
            {"analytics.mv_probe", PGC_RELATION_MATVIEW, PGC_RELATION_CONCURRENT},
            {"analytics.probe_log", PGC_RELATION_TABLE, 0},
            {NULL, 0, 0},
        },
    .install_sql = "CREATE SCHEMA IF NOT EXISTS analytics",
    .reads = (const char *const[]){"example", NULL},
    .settings =
        (const struct pgc_setting_decl[]){
            {"batch", PGC_SETTING_INT, "100", "rows per batch"},
            {"fail", PGC_SETTING_BOOL, "false", "fail the run"},
            {"label", PGC_SETTING_STRING, NULL, "a label"},
            {"lock_timeout", PGC_SETTING_DURATION, "5s", "how long to wait for locks"},
            {NULL, 0, NULL, NULL},
        },
    .check_settings = check_settings,
    .build_run = build_run,
};

int pgcrond_plugin_init(const struct pgc_api *core, const struct pgc_plugin **decl)
{
	api = core;
	*decl = &decl_;
	return 0;
}
