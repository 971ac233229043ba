/* A plugin that records what a run was handed: how many notification payloads and which,
 * as parameters, into payload_runs (created by the integration test). For it_listen.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testplugin.h"

PGCROND_PLUGIN_MAGIC("payloads", "1.0.0");

static const struct pgc_api *api;

/* Payloads joined with U+001F, which the core never lets through in a payload. */
static int build_run(const struct pgc_settings *s, const char *const *payloads, size_t n_payloads,
                     struct pgc_run *run)
{
	size_t len = 1;
	for (size_t i = 0; i < n_payloads; i++)
		len += strlen(payloads[i]) + 1;
	char *all = malloc(len), num[32];
	if (!all)
		return -1;
	size_t at = 0;
	all[0] = '\0';
	for (size_t i = 0; i < n_payloads; i++) {
		size_t l = strlen(payloads[i]);
		if (i)
			all[at++] = '\x1f';
		memcpy(all + at, payloads[i], l);
		at += l;
		all[at] = '\0';
	}
	snprintf(num, sizeof(num), "%zu", n_payloads);
	int rc = api->run_add(run, "INSERT INTO payload_runs (n, payloads) VALUES ($1::int, "
	                           "CASE WHEN $1::int = 0 THEN '{}'::text[] "
	                           "ELSE pg_catalog.string_to_array($2, pg_catalog.chr(31)) END)");
	if (rc == 0)
		rc = api->run_add_param(run, num);
	if (rc == 0)
		rc = api->run_add_param(run, all);
	free(all);
	return rc;
}

static const struct pgc_plugin decl_ = {
    .size = sizeof(struct pgc_plugin),
    .description = "records the payloads of each run",
    .relations = (const struct pgc_relation_decl[]){{"public.payload_runs", PGC_RELATION_TABLE, 0},
                                                    {NULL, 0, 0}},
    .build_run = build_run,
};

int pgcrond_plugin_init(const struct pgc_api *core, const struct pgc_plugin **decl)
{
	api = core;
	*decl = &decl_;
	return 0;
}
