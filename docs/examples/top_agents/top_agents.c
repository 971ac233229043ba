/* top_agents: a pgcrond view plugin, the worked example of docs/writing-a-plugin.md.
 * It keeps public.mv_top_agents (agents ranked by bouts won) fresh with
 * REFRESH MATERIALIZED VIEW CONCURRENTLY, and public.top_agents_by_challenge (wins per
 * challenge), a table it refills only for the challenges notifications name; and can NOTIFY a
 * channel when it is done. */

#include <errno.h>
#include <string.h>

#include <pgcrond/plugin.h>

#define VIEW "public.mv_top_agents"
#define TABLE "public.top_agents_by_challenge"

PGCROND_PLUGIN_MAGIC("top_agents", "1.1.0");

/* The core's function table: the only way to reach pgcrond. */
static const struct pgc_api *api;

/* Run by `pgcrond install`, again on every upgrade: it must be idempotent. The view starts
 * empty (WITH NO DATA): pgcrond populates it once before the first concurrent refresh. The
 * unique index is what REFRESH ... CONCURRENTLY needs. The table's rows come from a function
 * of the challenges to recompute (all of them for NULL), which the planner inlines; an empty
 * table is filled at once, so a run that recomputes a few challenges finds the rest there.
 * Install pins search_path to pg_catalog, but the function's body is parsed again in each
 * run, with the job's search_path, where other roles may have planted a count() or an `=`:
 * every name in it is qualified. NULL is cast, or an overload _rows(text) would match it. */
static const char install_sql[] =
    "CREATE MATERIALIZED VIEW IF NOT EXISTS " VIEW " AS\n"
    "SELECT r.winner_agent_id AS agent_id,\n"
    "       count(*) AS wins,\n"
    "       max(r.decided_at) AS last_win_at,\n"
    "       rank() OVER (ORDER BY count(*) DESC) AS rank\n"
    "FROM public.bout_results r\n"
    "WHERE r.winner_agent_id IS NOT NULL\n"
    "GROUP BY r.winner_agent_id\n"
    "WITH NO DATA;\n"
    "CREATE UNIQUE INDEX IF NOT EXISTS mv_top_agents_agent_id ON " VIEW " (agent_id);\n"
    "CREATE TABLE IF NOT EXISTS " TABLE " (\n"
    "    challenge_id uuid NOT NULL, agent_id uuid NOT NULL,\n"
    "    wins bigint NOT NULL, last_win_at timestamptz NOT NULL,\n"
    "    PRIMARY KEY (challenge_id, agent_id));\n"
    "CREATE OR REPLACE FUNCTION " TABLE "_rows(challenge_ids pg_catalog.uuid[])\n"
    "RETURNS SETOF " TABLE " LANGUAGE sql STABLE AS $$\n"
    "    SELECT b.challenge_id, r.winner_agent_id,\n"
    "           pg_catalog.count(*), pg_catalog.max(r.decided_at)\n"
    "    FROM public.bout_results r\n"
    "    JOIN public.bouts b ON b.id OPERATOR(pg_catalog.=) r.bout_id\n"
    "    WHERE r.winner_agent_id IS NOT NULL\n"
    "      AND (challenge_ids IS NULL\n"
    "           OR b.challenge_id OPERATOR(pg_catalog.=) ANY (challenge_ids))\n"
    "    GROUP BY b.challenge_id, r.winner_agent_id $$;\n"
    "INSERT INTO " TABLE " SELECT * FROM " TABLE "_rows(NULL::pg_catalog.uuid[])\n"
    "WHERE NOT EXISTS (SELECT 1 FROM " TABLE ");\n";

/* Checks beyond the declared types, when the configuration is loaded: `pgcrond check`
 * prints what setting_error() reports as FILE:LINE. */
static int check_settings(const struct pgc_settings *s)
{
	const char *channel = api->setting_str(s, "notify_channel", NULL);

	if (channel && (!*channel || strlen(channel) > 63)) {
		api->setting_error(s, "notify_channel", "must be 1 to 63 bytes long");
		return -EINVAL;
	}
	return 0;
}

/* The statements of one run. No I/O here: the core executes them, asynchronously. */
static int build_run(const struct pgc_settings *s, const char *const *payloads, size_t n_payloads,
                     struct pgc_run *run)
{
	const char *const *challenges;
	size_t n_challenges;
	int rc;

	/* REFRESH MATERIALIZED VIEW CONCURRENTLY "public"."mv_top_agents": the core quotes the
	 * name, and refreshes a view declared PGC_RELATION_CONCURRENT only concurrently. The
	 * ranking is over all agents: a notification cannot narrow it. */
	if ((rc = api->run_refresh(run, VIEW, 0)) < 0)
		return rc;

	/* The table, per challenge (ABI 1.2): the "challenge_id" of each payload, such as
	 * {"bout_id":7,"challenge_id":"9f.."}. rc 1: those challenges only; rc 0: all of them (a
	 * scheduled run, or a payload without one, or more than 50: the core logs why). */
	rc = api->payload_keys(run, payloads, n_payloads, "challenge_id", PGC_KEY_UUID, 50,
	                       &challenges, &n_challenges);
	if (rc < 0)
		return rc;
	/* One transaction: DELETE those challenges' rows, INSERT them recomputed. The keys go
	 * in as the array parameter $1, NULL for all, cast to the function's argument type: an
	 * untyped $1 would match an overload _rows(text) another role may create better. */
	if ((rc = api->run_replace(run, TABLE, "challenge_id",
	                           "SELECT * FROM " TABLE "_rows($1::pg_catalog.uuid[])",
	                           rc ? challenges : NULL, rc ? n_challenges : 0)) < 0)
		return rc;

	/* Values only ever as parameters. */
	const char *channel = api->setting_str(s, "notify_channel", NULL);
	if (channel) {
		if ((rc = api->run_add(run, "SELECT pg_catalog.pg_notify($1, $2)")) < 0 ||
		    (rc = api->run_add_param(run, channel)) < 0 ||
		    (rc = api->run_add_param(run, VIEW)) < 0)
			return rc;
	}
	return 0;
}

static const struct pgc_plugin plugin = {
    .size = sizeof(struct pgc_plugin),
    .description = "agents ranked by bouts won",
    .relations =
        (const struct pgc_relation_decl[]){
            {VIEW, PGC_RELATION_MATVIEW, PGC_RELATION_CONCURRENT},
            {TABLE, PGC_RELATION_TABLE, 0},
            {NULL, 0, 0},
        },
    .install_sql = install_sql,
    .reads = NULL, /* reads no other plugin's view */
    .settings =
        (const struct pgc_setting_decl[]){
            {"notify_channel", PGC_SETTING_STRING, NULL,
             "after the run, NOTIFY this channel with the view's name as payload"},
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
