/* example: the smallest useful pgcrond plugin. It keeps one materialized view,
 * public.pgcrond_example_mv (events per kind over public.pgcrond_example_events), fresh with
 * REFRESH MATERIALIZED VIEW CONCURRENTLY, optionally followed by ANALYZE and a NOTIFY that
 * tells listeners the view changed. Copy it to start a new plugin. */

#include <errno.h>
#include <string.h>

#include <pgcrond/plugin.h>

#define VIEW "public.pgcrond_example_mv"

PGCROND_PLUGIN_MAGIC("example", "1.0.0");

static const struct pgc_api *api;

/* Idempotent: pgcrond install runs it on every upgrade. The view starts unpopulated (WITH NO
 * DATA); the core gives it one plain refresh before the first concurrent one. */
static const char install_sql[] =
    "CREATE TABLE IF NOT EXISTS public.pgcrond_example_events (\n"
    "\tid bigserial PRIMARY KEY,\n"
    "\tkind text NOT NULL,\n"
    "\tcreated_at timestamptz NOT NULL DEFAULT now()\n"
    ");\n"
    "CREATE MATERIALIZED VIEW IF NOT EXISTS " VIEW " AS\n"
    "\tSELECT kind, count(*) AS events, max(created_at) AS last_event_at\n"
    "\tFROM public.pgcrond_example_events GROUP BY kind\n"
    "\tWITH NO DATA;\n"
    "CREATE UNIQUE INDEX IF NOT EXISTS pgcrond_example_mv_kind ON " VIEW " (kind);\n";

static int check_settings(const struct pgc_settings *s)
{
	const char *channel = api->setting_str(s, "notify_channel", NULL);

	/* A channel is an identifier: PostgreSQL silently truncates it past 63 bytes, and then
	 * nobody listening on the full name would hear a thing. */
	if (channel && (!*channel || strlen(channel) > 63)) {
		api->setting_error(s, "notify_channel", "must be 1 to 63 bytes long");
		return -EINVAL;
	}
	return 0;
}

static int build_run(const struct pgc_settings *s, const char *const *payloads, size_t n_payloads,
                     struct pgc_run *run)
{
	int rc;

	if (n_payloads)
		api->log(PGC_LOG_DEBUG, "refreshing after %zu notification(s), first \"%s\"",
		         n_payloads, payloads[0]);
	/* The core quotes the name and, since the view is declared CONCURRENT, refreshes it
	 * CONCURRENTLY; ANALYZE follows when the job asks for it. */
	unsigned flags = api->setting_bool(s, "analyze", false) ? PGC_REFRESH_ANALYZE : 0;
	if ((rc = api->run_refresh(run, VIEW, flags)) < 0)
		return rc;
	const char *channel = api->setting_str(s, "notify_channel", NULL);
	if (channel) {
		/* Values only ever as parameters, even a channel name. */
		if ((rc = api->run_add(run, "SELECT pg_catalog.pg_notify($1, $2)")) < 0 ||
		    (rc = api->run_add_param(run, channel)) < 0 ||
		    (rc = api->run_add_param(run, VIEW)) < 0)
			return rc;
	}
	return 0;
}

static const struct pgc_plugin plugin = {
    .size = sizeof(struct pgc_plugin),
    .description = "events per kind, an example materialized view",
    .relations =
        (const struct pgc_relation_decl[]){
            {VIEW, PGC_RELATION_MATVIEW, PGC_RELATION_CONCURRENT},
            {NULL, 0, 0},
        },
    .install_sql = install_sql,
    .reads = NULL,
    .settings =
        (const struct pgc_setting_decl[]){
            {"analyze", PGC_SETTING_BOOL, "false", "run ANALYZE on the view after refreshing it"},
            {"notify_channel", PGC_SETTING_STRING, NULL,
             "after refreshing, NOTIFY this channel with the view's name as payload"},
            {NULL, 0, NULL, NULL},
        },
    .check_settings = check_settings,
    .build_run = build_run,
};

int pgcrond_plugin_init(const struct pgc_api *core, const struct pgc_plugin **decl)
{
	api = core;
	*decl = &plugin;
	return 0;
}
