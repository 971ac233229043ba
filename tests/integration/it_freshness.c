/* Freshness against a real PostgreSQL (docs/freshness.md): a job with freshness = "5s"
 * whose source is written at random moments reflects every write within its SLA plus one
 * refresh's duration, and runs not at all in a quiet minute; a write to an upstream's source
 * reaches the downstream within the downstream's SLA; a source that cannot be read makes the
 * job run every period, logged once with the reason.
 *
 * The "view" is a table the job's command appends to: each refresh records the highest
 * write id it saw (its snapshot) and clock_timestamp(), so the test reads what each refresh
 * reflected and when, and compares it with each write's clock_timestamp() taken in the
 * write's own transaction (autocommit: it commits right after). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define DB "it_freshness"

static void env(struct itest_env *e, const char *tag)
{
	itest_env_setup(e, tag, DB);
	itest_exec(e->db, "CREATE TABLE public.src (id bigserial PRIMARY KEY,"
	                  " tw timestamptz NOT NULL DEFAULT clock_timestamp());"
	                  "CREATE TABLE public.refreshed (job text, upto bigint,"
	                  " at timestamptz DEFAULT clock_timestamp());"
	                  "GRANT ALL ON public.src, public.refreshed TO PUBLIC;"
	                  "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO PUBLIC");
	/* what `pgcrond install` puts in the job's database */
	char *sql = itest_read_file(TEST_SOURCE_DIR "/../sql/freshness.sql");
	ck_assert_msg(sql[0], "sql/freshness.sql is missing");
	itest_exec(e->db, sql);
	free(sql);
	itest_exec(e->db, "SELECT pgcrond.watch_source('public.src');"
	                  "GRANT SELECT ON pgcrond.source_change TO PUBLIC");
}

/* Start the daemon and wait for the job's first refresh (nothing is known of the view when
 * the daemon starts, so a freshness job runs once at its start). */
static void start_refreshed(struct itest_env *e)
{
	itest_env_start(e);
	ck_assert_msg(itest_env_wait(e, 15, "SELECT count(*) > 0 FROM public.refreshed"),
	              "no first refresh:\n%s", itest_read_file(e->log));
}

/* The worst lateness of the refreshes of JOB: for every write, the first refresh that
 * reflects it, less the write's time, in seconds; -1 if a write is not reflected yet. */
static double worst_lag(struct itest_env *e, const char *job)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT COALESCE(max(EXTRACT(epoch FROM COALESCE("
	         "  (SELECT min(r.at) FROM public.refreshed r WHERE r.job = '%s'"
	         "    AND r.upto >= s.id), 'infinity') - s.tw)), 0) FROM public.src s",
	         job);
	char *v = itest_scalar(e->db, sql);
	double lag = strcmp(v, "Infinity") == 0 ? -1 : atof(v);
	free(v);
	return lag;
}

/* Jobs "up" (SLA UP_S seconds, source public.src) and "down" (SLA DOWN_S, after up: it
 * copies what up last saw), started; returns once down has refreshed at start-up. */
static void start_up_down(struct itest_env *e, const char *tag, int up_s, int down_s)
{
	env(e, tag);
	itest_env_job(e, "10-views.conf",
	              "jobs = ( { name = \"up\"; database = \"app\"; freshness = \"%ds\";\n"
	              "  sources = [ \"public.src\" ];\n"
	              "  command = \"INSERT INTO public.refreshed (job, upto) SELECT 'up',"
	              " COALESCE(max(id), 0) FROM public.src\"; },\n"
	              " { name = \"down\"; database = \"app\"; freshness = \"%ds\";\n"
	              "  after = [ \"up\" ];\n"
	              "  command = \"INSERT INTO public.refreshed (job, upto) SELECT 'down',"
	              " COALESCE(max(upto), 0) FROM public.refreshed WHERE job = 'up'\"; } );\n",
	              up_s, down_s);
	itest_env_start(e);
	ck_assert_msg(
	    itest_env_wait(e, 20, "SELECT count(*) > 0 FROM public.refreshed WHERE job = 'down'"),
	    "no first refresh:\n%s", itest_read_file(e->log));
}

/* Down reflects every write, each within its SLA (DOWN_S) plus its longest refresh. */
static void down_reflects_within(struct itest_env *e, int down_s)
{
	ck_assert_msg(itest_env_wait(e, down_s + 10,
	                             "SELECT (SELECT max(upto) FROM public.refreshed WHERE job ="
	                             " 'down') = (SELECT max(id) FROM public.src)"),
	              "the downstream never reflected the writes:\n%s", itest_read_file(e->log));
	double longest =
	    (double)itest_env_count(e, "SELECT COALESCE(max(duration_ms), 0) FROM "
	                               "pgcrond.job_run_details WHERE job_name = 'down'") /
	    1000.0;
	double lag = worst_lag(e, "down");
	ck_assert_msg(lag >= 0 && lag <= down_s + longest,
	              "the downstream reflected a write after %.3f s (its SLA %d s)", lag, down_s);
}

START_TEST(random_writes_within_sla_quiet_minute_no_runs)
{
	struct itest_env e;
	env(&e, "fresh-sla");
	itest_env_job(&e, "10-view.conf",
	              "job = { name = \"view\"; database = \"app\"; freshness = \"5s\";\n"
	              "  sources = [ \"public.src\" ];\n"
	              "  command = \"INSERT INTO public.refreshed (job, upto) SELECT 'view',"
	              " COALESCE(max(id), 0) FROM public.src\"; };\n");
	start_refreshed(&e);

	/* writes at random moments over 25 s, alone or in bursts */
	srandom(42);
	double end = itest_now() + 25;
	int writes = 0;
	while (itest_now() < end) {
		int burst = 1 + (int)(random() % 3);
		for (int i = 0; i < burst; i++, writes++)
			itest_exec(e.db, "INSERT INTO public.src DEFAULT VALUES");
		itest_sleep((double)(random() % 3000) / 1000.0);
	}
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT (SELECT max(upto) FROM public.refreshed) ="
	                             " (SELECT max(id) FROM public.src)"),
	              "the last write was never reflected:\n%s", itest_read_file(e.log));
	double lag = worst_lag(&e, "view");
	double longest =
	    (double)itest_env_count(&e, "SELECT COALESCE(max(duration_ms), 0) FROM "
	                                "pgcrond.job_run_details WHERE job_name = 'view'") /
	    1000.0;
	ck_assert_msg(lag >= 0 && lag <= 5.0 + longest,
	              "a write waited %.3f s for a refresh (SLA 5 s, longest refresh %.3f s)", lag,
	              longest);
	/* gathered: fewer refreshes than writes */
	long long runs = itest_env_count(&e, "SELECT count(*) FROM public.refreshed");
	ck_assert_msg(runs < writes, "%lld refreshes for %d writes", runs, writes);

	/* quiet for four freshness periods: no write, no run, at most one "sources unchanged"
	 * row (one a minute: the SQL job's case below waits for it) */
	itest_sleep(6); /* a change counted just after the last refresh started: one more run */
	long long before = itest_env_count(&e, "SELECT count(*) FROM public.refreshed");
	itest_sleep(20);
	long long quiet_runs =
	    itest_env_count(&e, "SELECT count(*) FROM public.refreshed") - before;
	ck_assert_msg(quiet_runs == 0, "%lld runs in 20 quiet seconds (freshness 5 s)", quiet_runs);
	long long skipped = itest_env_count(
	    &e, "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 'view'"
	        " AND status = 'skipped' AND return_message LIKE 'sources unchanged since %%'"
	        " AND start_time > now() - interval '21 seconds'");
	ck_assert_msg(skipped <= 1, "%lld skipped rows in 20 quiet seconds", skipped);
	/* the status says fresh: no lag */
	int st;
	char *out = itest_cli(&st, "status", "-c", e.conf, "--json", NULL);
	ck_assert_msg(strstr(out, "\"lag_s\": 0") || strstr(out, "\"lag_s\":0"),
	              "status shows a lag after a quiet minute:\n%s", out);
	free(out);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(upstream_source_refreshes_downstream_within_its_sla)
{
	struct itest_env e;
	start_up_down(&e, "fresh-up", 4, 6);
	itest_sleep(6);
	for (int i = 0; i < 3; i++) {
		itest_exec(e.db, "INSERT INTO public.src DEFAULT VALUES");
		itest_sleep(1.5);
	}
	down_reflects_within(&e, 6);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* An upstream refreshed often (a 2 s SLA) under a downstream with a longer one (10 s): the
 * downstream gathers its upstream's refreshes, as it would its own sources' changes, and
 * runs as late as its SLA allows, not after every upstream run (docs/freshness.md). */
START_TEST(downstream_gathers_its_upstreams_refreshes)
{
	struct itest_env e;
	start_up_down(&e, "fresh-gather", 2, 10);
	itest_sleep(3); /* a window: nothing is due, nothing may run */
	char *t0 = itest_scalar(e.db, "SELECT clock_timestamp()::text");
	for (int i = 0; i < 8; i++) {
		itest_exec(e.db, "INSERT INTO public.src DEFAULT VALUES");
		itest_sleep(1); /* writes spread over 8 s: several refreshes of up */
	}
	down_reflects_within(&e, 10);
	long long ups = itest_env_count(
	    &e, "SELECT count(*) FROM public.refreshed WHERE job = 'up' AND at > '%s'", t0);
	long long downs = itest_env_count(
	    &e, "SELECT count(*) FROM public.refreshed WHERE job = 'down' AND at > '%s'", t0);
	fprintf(stderr, "it_freshness: 8 writes in 8 s: up refreshed %lld times, down %lld\n", ups,
	        downs);
	ck_assert_msg(ups >= 3, "up (SLA 2 s) refreshed %lld times for writes over 8 s", ups);
	ck_assert_msg(downs <= 2 && downs < ups,
	              "down (SLA 10 s) refreshed %lld times for %lld refreshes of up: it did not "
	              "gather them",
	              downs, ups);
	/* then nothing changes for longer than down's SLA: neither runs (down has no source of
	 * its own: its upstream's successes are its only changes). First what the last write set
	 * off settles: a write committed while up ran, which up's run may or may not have seen, is
	 * a change up reflects once more within its SLA (2 s), and down gathers that success. */
	itest_sleep(3);
	ck_assert_msg(
	    itest_env_wait(&e, 20,
	                   "SELECT (SELECT max(at) FROM public.refreshed WHERE job = 'down')"
	                   " > (SELECT max(at) FROM public.refreshed WHERE job = 'up')"),
	    "down did not gather up's last refresh:\n%s", itest_read_file(e.log));
	long long runs = itest_env_count(&e, "SELECT count(*) FROM public.refreshed");
	itest_sleep(12); /* a window: a quiet period longer than the SLA */
	ck_assert_msg(itest_env_count(&e, "SELECT count(*) FROM public.refreshed") == runs,
	              "a refresh ran in a quiet period:\n%s", itest_read_file(e.log));
	free(t0);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* The plans the server logged (auto_explain) since byte FROM of its log whose text has
 * NEEDLE: how many, and how many of them were compiled by JIT. An entry is a line that
 * does not start with a tab, and the tab-led lines after it. */
static void logged_plans(const char *log, size_t from, const char *needle, int *n, int *jit)
{
	*n = *jit = 0;
	const char *p = log + from;
	while (*p) {
		const char *end = p;
		do {
			end = strchr(end, '\n');
			end = end ? end + 1 : p + strlen(p);
		} while (*end == '\t');
		char *entry = strndup(p, (size_t)(end - p));
		if (strstr(entry, "plan:") && strstr(entry, needle)) {
			(*n)++;
			*jit += strstr(entry, "JIT:") != NULL;
		}
		free(entry);
		p = end;
	}
}

/* The server log at PATH, from byte FROM on, and how many of the daemon's checks (at least
 * MIN) it should show: for itest_wait_until */
struct checks_logged {
	const char *path;
	size_t from;
	int min;
};

static bool enough_checks_logged(void *arg)
{
	const struct checks_logged *c = arg;
	char *log = itest_read_file(c->path);
	int n = 0, jit = 0;
	if (strlen(log) > c->from)
		logged_plans(log, c->from, "WITH ORDINALITY AS u(name, ord)", &n, &jit);
	free(log);
	return n >= c->min;
}

/* The check reads the catalogs in a statement the planner prices in the millions (it
 * guesses thousands of relations for each source's walks), over the threshold at which a
 * server with JIT on, PostgreSQL's default, compiles it: half a second of the server's
 * CPU at every check (every SLA / 4) for a statement that runs in milliseconds: on a busy
 * machine the checks would fall seconds behind and miss a 2 s SLA. The server logs the
 * daemon's plans here (auto_explain, loaded by the database's settings): none of its
 * checks is compiled, while a statement of this test's own, made to be, is. */
START_TEST(checks_are_not_compiled_by_jit)
{
	struct itest_env e;
	env(&e, "fresh-jit");
	ck_assert_msg(itest_scalar_ll(e.db, "SELECT pg_jit_available()::int") == 1,
	              "JIT is not available on this server (PostgreSQL 15 with llvmjit.so, "
	              "Debian's postgresql-15): the test cannot tell a compiled check");
	itest_exec(e.db, "ALTER DATABASE " DB " SET session_preload_libraries = 'auto_explain';"
	                 "ALTER DATABASE " DB " SET auto_explain.log_min_duration = 0");
	const char *dir = getenv("PGCROND_SANDBOX");
	ck_assert(dir != NULL);
	char path[1024];
	snprintf(path, sizeof(path), "%s/server.log", dir);
	char *before = itest_read_file(path);
	size_t from = strlen(before);
	free(before);
	/* the control: a statement priced over jit_above_cost in a session like the daemon's
	 * (a new one, so the database's settings load auto_explain) is logged compiled */
	PGconn *own = itest_connect(e.ci);
	itest_exec(own, "SET jit_above_cost = 0;"
	                " SELECT count(*) AS jit_control_statement FROM public.src");
	PQfinish(own);
	itest_env_job(&e, "10-view.conf",
	              "job = { name = \"v\"; database = \"app\"; freshness = \"2s\";\n"
	              "  sources = [ \"public.src\" ];\n"
	              "  command = \"INSERT INTO public.refreshed (job, upto) VALUES ('v', 0)\"; "
	              "};\n");
	start_refreshed(&e);
	/* it checks every 500 ms: four checks logged, within 30 s on a loaded machine */
	struct checks_logged want = {path, from, 4};
	itest_wait_until(enough_checks_logged, &want, 30);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	char *log = itest_read_file(path);
	int n, jit;
	logged_plans(log, from, "jit_control_statement", &n, &jit);
	ck_assert_msg(n == 1 && jit == 1,
	              "the control statement was logged %d time(s), %d compiled: the server "
	              "log does not show JIT:\n%s",
	              n, jit, log + from);
	logged_plans(log, from, "WITH ORDINALITY AS u(name, ord)", &n, &jit);
	ck_assert_msg(n >= 4, "%d check(s) logged within 30 s:\n%s", n, log + from);
	ck_assert_msg(jit == 0, "%d of the %d checks logged were compiled by JIT", jit, n);
	free(log);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(unreadable_source_falls_back_logged_once)
{
	struct itest_env e;
	env(&e, "fresh-fallback");
	itest_env_job(
	    &e, "10-view.conf",
	    "job = { name = \"blind\"; database = \"app\"; freshness = \"2s\";\n"
	    "  sources = [ \"public.nosuch\" ];\n"
	    "  command = \"INSERT INTO public.refreshed (job, upto) VALUES ('blind', 0)\";"
	    " };\n");
	itest_env_start(&e);
	/* every period (2 s) even though nothing is written */
	ck_assert_msg(itest_env_wait(&e, 20, "SELECT count(*) >= 4 FROM public.refreshed"),
	              "it did not run every period:\n%s", itest_read_file(e.log));
	char *log = itest_read_file(e.log);
	const char *needle = "cannot tell whether its sources changed (source public.nosuch: "
	                     "does not exist";
	char *first = strstr(log, needle);
	ck_assert_msg(first, "no reason logged:\n%s", log);
	ck_assert_msg(!strstr(first + 1, needle), "the reason was logged more than once:\n%s", log);
	free(log);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A job database reached as a role that did not run install (`pgcrond install` ran as a
 * superuser; the daemon's conninfo for that database names a login role of its own): the
 * freshness checks read the counters as that role. The job refreshes once at its start, not
 * again while its source is quiet, and within its SLA of a write: the schema pgcrond of a
 * job database gives that role USAGE, else every check is refused ("permission denied for
 * schema pgcrond") and the job runs every period. */
#define JOBS_DB "it_freshness_jobs"
#define READER "it_freshness_reader"
START_TEST(job_database_reached_as_another_role)
{
	struct itest_env e;
	itest_env_setup(&e, "fresh-role", DB);
	char *jci = itest_fresh_db(JOBS_DB);
	PGconn *j = itest_connect(jci);
	itest_exec(j, "SET client_min_messages = warning");
	PQclear(PQexec(j, "DROP ROLE IF EXISTS " READER));
	itest_exec(j, "CREATE ROLE " READER " LOGIN");
	char *sql = itest_read_file(TEST_SOURCE_DIR "/../sql/freshness.sql");
	ck_assert_msg(sql[0], "sql/freshness.sql is missing");
	itest_exec(j, sql); /* as install does, as the superuser */
	free(sql);
	itest_exec(j, "CREATE TABLE public.src (id bigserial PRIMARY KEY);"
	              "CREATE TABLE public.refreshed (upto bigint,"
	              " at timestamptz DEFAULT clock_timestamp());"
	              "GRANT ALL ON public.src, public.refreshed TO " READER ";"
	              "SELECT pgcrond.watch_source('public.src')");
	char reader_ci[1200];
	snprintf(reader_ci, sizeof(reader_ci), "%s user=" READER, jci);
	itest_env_main_with_db(&e, "jobs", reader_ci);
	itest_env_job(&e, "10-view.conf",
	              "job = { name = \"view\"; database = \"jobs\"; freshness = \"2s\";\n"
	              "  sources = [ \"public.src\" ];\n"
	              "  command = \"INSERT INTO public.refreshed (upto)"
	              " SELECT COALESCE(max(id), 0) FROM public.src\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(itest_wait_sql(j, "SELECT count(*) > 0 FROM public.refreshed", 15),
	              "no first refresh:\n%s", itest_read_file(e.log));
	itest_sleep(4.5); /* a window of two SLAs: a job that cannot check runs every period */
	long long quiet = itest_scalar_ll(j, "SELECT count(*) FROM public.refreshed");
	itest_exec(j, "INSERT INTO public.src DEFAULT VALUES");
	bool reflected = itest_wait_sql(
	    j, "SELECT max(upto) = (SELECT max(id) FROM public.src) FROM public.refreshed", 10);
	char *log = itest_read_file(e.log);
	ck_assert_msg(quiet == 1 && reflected && !strstr(log, "permission denied"),
	              "%lld refreshes while the source was quiet (1 expected); the write %s "
	              "reflected:\n%s",
	              quiet, reflected ? "was" : "was not", log);
	free(log);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	PQfinish(j);
	free(jci);
	itest_env_teardown(&e);
}
END_TEST

/* A reload that gives a job another source: what the relation reflects of the new source is
 * not known, so the job runs within its SLA of the reload, although the counters' sum is the
 * same as before (neither source written since it was watched; public.more's rows predate
 * its trigger). */
#define RELOAD_JOB                                                                                 \
	"job = { name = \"view\"; database = \"app\"; freshness = \"3s\";\n"                       \
	"  sources = [ %s ];\n"                                                                    \
	"  command = \"INSERT INTO public.refreshed (job, upto) SELECT 'view',"                    \
	" COALESCE(max(id), 0) FROM public.src\"; };\n"
START_TEST(reload_with_another_source_runs_within_its_sla)
{
	struct itest_env e;
	env(&e, "fresh-reload");
	itest_exec(e.db, "CREATE TABLE public.more (id int); INSERT INTO public.more VALUES (1);"
	                 "GRANT ALL ON public.more TO PUBLIC;"
	                 "SELECT pgcrond.watch_source('public.more')");
	itest_env_job(&e, "10-view.conf", RELOAD_JOB, "\"public.src\"");
	start_refreshed(&e);
	/* quiet: the start-up's runs are over (a second one comes when the first started before
	 * the counters were read), and no more come */
	itest_sleep(5);
	long long before = itest_env_count(&e, "SELECT count(*) FROM public.refreshed");
	itest_sleep(4);
	ck_assert_msg(itest_env_count(&e, "SELECT count(*) FROM public.refreshed") == before,
	              "it ran with nothing written:\n%s", itest_read_file(e.log));
	itest_env_job(&e, "10-view.conf", RELOAD_JOB, "\"public.src\", \"public.more\"");
	itest_env_reload(&e);
	ck_assert_msg(
	    itest_env_wait(&e, 3 + 5, "SELECT count(*) > %lld FROM public.refreshed", before),
	    "no refresh within its SLA after a reload gave it another source:\n%s",
	    itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* Changes no DML trigger of the source itself reports (docs/freshness.md, "How a change is
 * seen"): each one, made while the job is quiet, is reflected within its SLA. The rows of
 * the partitions and the inheritance child predate the triggers, so their counters are zero
 * and a dropped or detached partition leaves the counters' sum as it was: a job that
 * compared that sum only would miss all six. */
static long long settled(struct itest_env *e)
{
	for (int i = 0; i < 4; i++) {
		long long a = itest_env_count(e, "SELECT count(*) FROM public.refreshed");
		itest_sleep(3);
		if (itest_env_count(e, "SELECT count(*) FROM public.refreshed") == a)
			return a;
	}
	ck_abort_msg("it kept running with nothing changed:\n%s", itest_read_file(e->log));
	return 0;
}

START_TEST(changes_no_source_trigger_sees_are_reflected)
{
	static const struct {
		const char *what, *sql;
	} change[] = {
	    {"a partition dropped", "DROP TABLE public.parts_b"},
	    {"a partition detached", "ALTER TABLE public.parts DETACH PARTITION public.parts_a"},
	    {"a partition source written through its parent",
	     "INSERT INTO public.outer_t VALUES (1)"},
	    {"an inheritance child written", "INSERT INTO public.kids_c VALUES (1)"},
	    {"a child with two parents written through the other one",
	     "UPDATE public.mb SET x = x + 1"},
	    {"a rewrite (ALTER COLUMN TYPE ... USING)",
	     "ALTER TABLE public.kids ALTER COLUMN x TYPE bigint USING x + 1"},
	    {"a write with the trigger disabled around it in one transaction",
	     "BEGIN; ALTER TABLE public.kids DISABLE TRIGGER pgcrond_source_changed;"
	     " INSERT INTO public.kids VALUES (7);"
	     " ALTER TABLE public.kids ENABLE ALWAYS TRIGGER pgcrond_source_changed; COMMIT"},
	};
	struct itest_env e;
	env(&e, "fresh-changes");
	itest_exec(e.db,
	           "CREATE TABLE public.parts (k int, v int) PARTITION BY LIST (k);"
	           "CREATE TABLE public.parts_a PARTITION OF public.parts FOR VALUES IN (1);"
	           "CREATE TABLE public.parts_b PARTITION OF public.parts FOR VALUES IN (2);"
	           "INSERT INTO public.parts VALUES (1, 1), (2, 2);"
	           "CREATE TABLE public.outer_t (k int) PARTITION BY LIST (k);"
	           "CREATE TABLE public.leaf1 PARTITION OF public.outer_t FOR VALUES IN (1);"
	           "CREATE TABLE public.kids (x int);"
	           "CREATE TABLE public.kids_c () INHERITS (public.kids);"
	           "INSERT INTO public.kids_c VALUES (1);"
	           "CREATE TABLE public.ma (x int); CREATE TABLE public.mb (x int);"
	           "CREATE TABLE public.mc () INHERITS (public.ma, public.mb);"
	           "INSERT INTO public.mc VALUES (1);"
	           "SELECT pgcrond.watch_source('public.parts'),"
	           " pgcrond.watch_source('public.leaf1'), pgcrond.watch_source('public.kids'),"
	           " pgcrond.watch_source('public.ma')");
	itest_env_job(
	    &e, "10-view.conf",
	    "job = { name = \"v\"; database = \"app\"; freshness = \"2s\";\n"
	    "  sources = [ \"public.parts\", \"public.leaf1\", \"public.kids\", \"public.ma\" ];\n"
	    "  command = \"INSERT INTO public.refreshed (job, upto) VALUES ('v', 0)\"; };\n");
	start_refreshed(&e);
	for (size_t i = 0; i < sizeof(change) / sizeof(change[0]); i++) {
		long long before = settled(&e);
		itest_exec(e.db, change[i].sql);
		ck_assert_msg(itest_env_wait(&e, 2 + 5,
		                             "SELECT count(*) > %lld FROM public.refreshed",
		                             before),
		              "%s was not reflected within the SLA:\n%s", change[i].what,
		              itest_read_file(e.log));
	}
	char *log = itest_read_file(e.log);
	ck_assert_msg(!strstr(log, "cannot tell whether its sources changed"),
	              "it fell back to running every period:\n%s", log);
	free(log);
	/* a trigger of pgcrond's name that counts nothing (TRUNCATE only) is no watch */
	itest_exec(e.db, "CREATE OR REPLACE TRIGGER pgcrond_source_changed AFTER TRUNCATE"
	                 " ON public.kids FOR EACH STATEMENT"
	                 " EXECUTE FUNCTION pgcrond.source_changed()");
	ck_assert_msg(itest_wait_log(e.log,
	                             "cannot tell whether its sources changed (source public.kids:"
	                             " lacks pgcrond's change triggers on public.kids",
	                             10),
	              "a trigger made otherwise was taken as a watch:\n%s", itest_read_file(e.log));
	/* a foreign partition: its writes happen on its server, no trigger here sees them */
	itest_exec(e.db, "CREATE FOREIGN DATA WRAPPER it_fresh_fdw;"
	                 "CREATE SERVER it_fresh_srv FOREIGN DATA WRAPPER it_fresh_fdw;"
	                 "CREATE FOREIGN TABLE public.parts_f PARTITION OF public.parts"
	                 " FOR VALUES IN (9) SERVER it_fresh_srv");
	ck_assert_msg(itest_wait_log(e.log,
	                             "cannot tell whether its sources changed (source public.parts:"
	                             " reads foreign table public.parts_f, whose writes on its"
	                             " server fire no trigger here)",
	                             10),
	              "a foreign partition was taken as watched:\n%s", itest_read_file(e.log));
	/* watching a partition whose parent another role owns names the parent */
	itest_exec(e.db, "DO $$BEGIN CREATE ROLE it_fresh_owner; EXCEPTION WHEN duplicate_object"
	                 " THEN NULL; END$$;"
	                 "CREATE TABLE public.op (x int) PARTITION BY LIST (x);"
	                 "CREATE TABLE public.op1 PARTITION OF public.op FOR VALUES IN (1);"
	                 "ALTER TABLE public.op1 OWNER TO it_fresh_owner;"
	                 "GRANT USAGE ON SCHEMA pgcrond TO it_fresh_owner");
	PGresult *r = PQexec(e.db, "SET ROLE it_fresh_owner;"
	                           " SELECT pgcrond.watch_source('public.op1')");
	const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	const char *hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
	ck_assert_str_eq(msg ? msg : "(it succeeded)",
	                 "cannot put pgcrond's change triggers on public.op, which source"
	                 " public.op1 reads: permission denied for table op");
	ck_assert_str_eq(hint ? hint : "(none)",
	                 "Watching a source puts triggers on its partitions, inheritance children"
	                 " and parents too: run it as a role that owns them all.");
	PQclear(r);
	itest_exec(e.db, "RESET ROLE");
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* The lag in pgcrond.view_status (schema step 19), as the daemon measures it: nothing while
 * the sources are as the last refresh left them, the age of a write not reflected yet (under
 * the SLA: "OK"), and nothing again once a refresh reflected it. */
START_TEST(view_status_shows_the_freshness_lag)
{
	struct itest_env e;
	env(&e, "fresh-lag");
	itest_env_job(&e, "10-view.conf",
	              "job = { name = \"lagged\"; database = \"app\"; freshness = \"8s\";\n"
	              "  sources = [ \"public.src\" ];\n"
	              "  command = \"INSERT INTO public.refreshed (job, upto) SELECT 'lagged',"
	              " COALESCE(max(id), 0) FROM public.src\"; };\n");
	itest_env_start(&e);
	static const char lag[] = "SELECT %s FROM pgcrond.view_status WHERE job_name = 'lagged'";
	char sql[256];
	snprintf(sql, sizeof(sql), lag,
	         "freshness_lag = '0' AND freshness_over = 'OK' AND freshness_fallback IS NULL"
	         " AND freshness_checked_at > now() - interval '10 s'");
	ck_assert_msg(itest_env_wait(&e, 20, "%s", sql),
	              "no lag of 0 shown after the start-up's refresh (%s; %s):\n%s",
	              itest_scalar(e.db, "SELECT row(freshness_lag, freshness_over,"
	                                 " freshness_checked_at, freshness_fallback, now())::text"
	                                 " FROM pgcrond.view_status WHERE job_name = 'lagged'"),
	              itest_scalar(e.db, "SELECT string_agg(row(f.*)::text, ';')"
	                                 " FROM pgcrond.job_freshness f"),
	              itest_read_file(e.log));
	itest_exec(e.db, "INSERT INTO public.src DEFAULT VALUES");
	snprintf(sql, sizeof(sql), lag,
	         "freshness_lag > '0' AND freshness_over = 'OK'"
	         " AND NOT EXISTS (SELECT FROM public.refreshed r WHERE r.job = 'lagged'"
	         "  AND r.upto = (SELECT max(id) FROM public.src))");
	ck_assert_msg(itest_env_wait(&e, 6, "%s", sql),
	              "the write's lag was not shown before its refresh:\n%s",
	              itest_read_file(e.log));
	snprintf(sql, sizeof(sql), lag,
	         "freshness_lag = '0' AND EXISTS (SELECT FROM public.refreshed r"
	         " WHERE r.job = 'lagged' AND r.upto = (SELECT max(id) FROM public.src))");
	ck_assert_msg(itest_env_wait(&e, 8 + 5, "%s", sql),
	              "the lag did not go back to 0 once a refresh reflected the write:\n%s",
	              itest_read_file(e.log));

	/* the function that publishes the lag gone (a schema changed by hand): said once, and
	 * the records go on; said again when it works again */
	itest_exec(e.db, "ALTER FUNCTION pgcrond.freshness_publish(text, jsonb)"
	                 " RENAME TO freshness_publish_gone");
	itest_exec(e.db, "INSERT INTO public.src DEFAULT VALUES");
	ck_assert_msg(itest_wait_log(e.log,
	                             "warning: history: cannot show the freshness lag in "
	                             "pgcrond.view_status: ",
	                             10) &&
	                  itest_wait_log(e.log, "(SQLSTATE 42883)", 1),
	              "no warning for a schema without freshness_publish:\n%s",
	              itest_read_file(e.log));
	static const char recorded[] = "SELECT count(*) FROM pgcrond.job_run_details"
	                               " WHERE job_name = 'lagged' AND status = 'succeeded'";
	long long ran = itest_env_count(&e, recorded);
	ck_assert_msg(itest_env_wait(&e, 8 + 5, "SELECT (%s) > %lld", recorded, ran),
	              "the write's refresh was not recorded meanwhile:\n%s",
	              itest_read_file(e.log));
	itest_exec(e.db, "ALTER FUNCTION pgcrond.freshness_publish_gone(text, jsonb)"
	                 " RENAME TO freshness_publish");
	itest_exec(e.db, "INSERT INTO public.src DEFAULT VALUES");
	ck_assert_msg(itest_wait_log(e.log,
	                             "notice: history: the freshness lag is shown in "
	                             "pgcrond.view_status again",
	                             10),
	              "not said that the lag is shown again:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* The subscription and its slot, also when the case failed (unchecked: run by the parent
 * process after the case), so that the databases can be dropped and no WAL is kept. */
static void drop_subscription(void)
{
	char *ci = itest_conninfo_db(DB);
	PGconn *c = PQconnectdb(ci);
	if (PQstatus(c) == CONNECTION_OK)
		PQclear(
		    PQexec(c, "DO $$BEGIN IF EXISTS (SELECT FROM pg_subscription"
		              " WHERE subname = 'fresh_sub') THEN"
		              " ALTER SUBSCRIPTION fresh_sub DISABLE;"
		              " ALTER SUBSCRIPTION fresh_sub SET (slot_name = NONE);"
		              " DROP SUBSCRIPTION fresh_sub; END IF;"
		              " PERFORM pg_drop_replication_slot(slot_name)"
		              "  FROM pg_replication_slots WHERE slot_name = 'fresh_slot'; END$$"));
	PQfinish(c);
	free(ci);
}

/* Rows that logical replication applies to a source: the apply fires row triggers only, so
 * the statement trigger never sees them; the row trigger watch_source adds, enabled for
 * replication only, counts them (and no ordinary write). The publisher is another database
 * of the same server (the sandbox runs wal_level = logical). */
START_TEST(replicated_rows_are_reflected)
{
	struct itest_env e;
	env(&e, "fresh-repl");
	itest_assert_scalar(e.db, "SHOW wal_level", "logical"); /* scripts/pg-sandbox sets it */
	char *pub_ci = itest_fresh_db(DB "_pub");
	PGconn *pub = itest_connect(pub_ci);
	itest_exec(pub, "CREATE TABLE public.rsrc (id int PRIMARY KEY);"
	                "CREATE PUBLICATION fresh_pub FOR TABLE public.rsrc");
	itest_exec(pub, "SELECT pg_create_logical_replication_slot('fresh_slot', 'pgoutput')");
	char sql[1024];
	snprintf(sql, sizeof(sql),
	         "CREATE TABLE public.rsrc (id int PRIMARY KEY);"
	         "SELECT pgcrond.watch_source('public.rsrc');"
	         "CREATE SUBSCRIPTION fresh_sub CONNECTION '%s' PUBLICATION fresh_pub"
	         " WITH (create_slot = false, slot_name = 'fresh_slot', copy_data = false)",
	         pub_ci);
	itest_exec(e.db, sql);
	itest_env_job(&e, "10-view.conf",
	              "job = { name = \"r\"; database = \"app\"; freshness = \"2s\";\n"
	              "  sources = [ \"public.rsrc\" ];\n"
	              "  command = \"INSERT INTO public.refreshed (job, upto) SELECT 'r',"
	              " COALESCE(max(id), 0) FROM public.rsrc\"; };\n");
	start_refreshed(&e);
	settled(&e);
	itest_exec(pub, "INSERT INTO public.rsrc VALUES (42)");
	ck_assert_msg(itest_env_wait(&e, 20, "SELECT EXISTS (SELECT FROM public.rsrc)"),
	              "the row was not replicated");
	ck_assert_msg(
	    itest_env_wait(&e, 2 + 5,
	                   "SELECT EXISTS (SELECT FROM public.refreshed WHERE upto = 42)"),
	    "a replicated row was not reflected within the SLA:\n%s", itest_read_file(e.log));
	char *log = itest_read_file(e.log);
	ck_assert_msg(!strstr(log, "cannot tell whether its sources changed"),
	              "it fell back to running every period:\n%s", log);
	free(log);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	PQfinish(pub);
	free(pub_ci);
	drop_subscription(); /* before the next case drops the database */
	itest_env_teardown(&e);
}
END_TEST

/* A job made in SQL with freshness and sources (pgcrond.schedule's options) and no schedule:
 * its sources are watched at the call, as its owner; it does not run while they are quiet (one
 * "sources unchanged" row in that time, no run), and a write reaches it within its SLA.
 * pgcrond.view_status shows its SLA and staleness as for a file job. A source the call
 * cannot watch is refused at the call, with what to do. */
#define APP "it_freshness_app"
#define OTHER "it_freshness_other"

static char *error_of(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	char *out = strdup(m ? m : "");
	PQclear(r);
	return out;
}

START_TEST(sql_job_with_freshness_skips_quiet_runs_on_write)
{
	struct itest_env e;
	int st;
	itest_env_init(&e, "fresh-sqljob", DB);
	char *out = itest_cli(&st, "install", "-c", e.conf, NULL);
	ck_assert_msg(st == 0, "pgcrond install: %d %s", st, out);
	free(out);
	const char *roles[] = {APP, OTHER};
	for (int i = 0; i < 2; i++) {
		char sql[512];
		snprintf(sql, sizeof(sql), "DROP OWNED BY %s; DROP ROLE %s", roles[i], roles[i]);
		PQclear(PQexec(e.db, sql));
		snprintf(sql, sizeof(sql),
		         "CREATE ROLE %s LOGIN; GRANT USAGE ON SCHEMA cron TO %s;"
		         "GRANT ALL ON SCHEMA public TO %s",
		         roles[i], roles[i], roles[i]);
		itest_exec(e.db, sql);
	}
	char ci[1024];
	snprintf(ci, sizeof(ci), "%s user=%s", e.ci, APP);
	PGconn *app = itest_connect(ci);
	snprintf(ci, sizeof(ci), "%s user=%s", e.ci, OTHER);
	PGconn *other = itest_connect(ci);
	itest_exec(app, "CREATE TABLE public.src (id bigserial PRIMARY KEY,"
	                " tw timestamptz NOT NULL DEFAULT clock_timestamp());"
	                "CREATE TABLE public.refreshed (job text, upto bigint,"
	                " at timestamptz DEFAULT clock_timestamp());"
	                "CREATE VIEW public.src_view AS SELECT * FROM public.src");
	itest_exec(other, "CREATE TABLE public.theirs (x int); GRANT SELECT ON public.theirs TO "
	                  "PUBLIC");

	/* what the call cannot watch is refused at the call */
	static const struct {
		const char *sources, *database, *message;
	} refused[] = {
	    {"public.nosuch", "NULL",
	     "invalid options: source \"public.nosuch\" does not exist in database \"" DB
	     "\" (or you cannot see it); create the table first, or correct the name"},
	    {"public.src_view", "NULL",
	     "invalid options: source \"public.src_view\" is not a table (a view has no change "
	     "trigger: name the tables it reads, or the job that maintains it in \"after\")"},
	    {"public.theirs", "NULL",
	     "invalid options: cannot watch source \"public.theirs\" for changes: permission "
	     "denied for table theirs; its owner can watch it first: SELECT "
	     "pgcrond.watch_source('public.theirs')"},
	    {"public.src", "'postgres'",
	     "invalid options: sources can only be watched in this database (\"" DB
	     "\"), not in \"postgres\"; give a job in another database a schedule instead of "
	     "freshness"},
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char sql[512];
		snprintf(sql, sizeof(sql),
		         "SELECT pgcrond.schedule('x', '@yearly', 'SELECT 1',"
		         " '{\"freshness\": \"1m\", \"sources\": [\"%s\"]}', %s)",
		         refused[i].sources, refused[i].database);
		char *err = error_of(app, sql);
		ck_assert_str_eq(err, refused[i].message);
		free(err);
	}

	/* what the message says to do: the owner watches it first, then the call takes it */
	itest_exec(other, "SELECT pgcrond.watch_source('public.theirs')");
	itest_assert_scalar(app,
	                    "SELECT pgcrond.schedule('theirs', NULL, 'SELECT 1',"
	                    " '{\"freshness\": \"1m\", \"sources\": [\"public.theirs\"]}') > 0",
	                    "t");
	itest_exec(app, "SELECT cron.unschedule('theirs')");

	itest_env_start(&e);
	ck_assert_msg(itest_wait_log(e.log, "jobs made in SQL changed", 10), "%s",
	              itest_read_file(e.log));
	/* without a schedule, as a job file may be: freshness alone; without freshness, a
	 * schedule is needed, as pg_cron says */
	char *err = error_of(app, "SELECT pgcrond.schedule('x', NULL, 'SELECT 1', '{}')");
	ck_assert_str_eq(err, "schedule can not be NULL");
	free(err);
	itest_assert_scalar(app,
	                    "SELECT pgcrond.schedule('sqlview', NULL,"
	                    " $$INSERT INTO public.refreshed (job, upto) SELECT 'sqlview',"
	                    " COALESCE(max(id), 0) FROM public.src$$,"
	                    " '{\"freshness\": \"3s\", \"sources\": [\"public.src\"],"
	                    " \"max_staleness\": \"1h\"}') > 0",
	                    "t");
	/* the first run: nothing is known of the relation when the job appears */
	ck_assert_msg(itest_env_wait(&e, 15, "SELECT count(*) > 0 FROM public.refreshed"),
	              "no first refresh:\n%s", itest_read_file(e.log));
	/* pg_cron's table shows it as a file job without a schedule */
	itest_assert_scalar(app, "SELECT '[' || schedule || ']' FROM cron.job", "[]");

	/* quiet: no run, and within a minute one "sources unchanged since" row */
	itest_sleep(4);
	long long before = itest_env_count(&e, "SELECT count(*) FROM public.refreshed");
	ck_assert_msg(
	    itest_env_wait(&e, 75,
	                   "SELECT count(*) > 0 FROM pgcrond.job_run_details WHERE job_name ="
	                   " 'sqlview' AND status = 'skipped'"
	                   " AND return_message LIKE 'sources unchanged since %%'"),
	    "no \"sources unchanged\" row in a quiet minute:\n%s", itest_read_file(e.log));
	itest_sleep(3);
	long long quiet_runs =
	    itest_env_count(&e, "SELECT count(*) FROM public.refreshed") - before;
	ck_assert_msg(quiet_runs == 0, "%lld runs while the source was quiet:\n%s", quiet_runs,
	              itest_read_file(e.log));
	long long skipped =
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name ="
	                        " 'sqlview' AND status = 'skipped'");
	ck_assert_msg(skipped == 1, "%lld skipped rows in a quiet minute", skipped);
	/* shown as a file job is: its SLA, fresh */
	itest_assert_scalar(e.db,
	                    "SELECT freshness || ' ' || staleness || ' ' || (fresh_as_of > "
	                    "last_success) FROM pgcrond.view_status WHERE job_name = 'sqlview'",
	                    "00:00:03 FRESH true");
	out = itest_cli(&st, "status", "-c", e.conf, "--json", NULL);
	ck_assert_msg(st == 0 && (strstr(out, "\"sla_s\": 3") || strstr(out, "\"sla_s\":3")) &&
	                  (strstr(out, "\"lag_s\": 0") || strstr(out, "\"lag_s\":0")),
	              "status does not show the SQL job's SLA, fresh:\n%s", out);
	free(out);

	/* a write: reflected within the SLA (plus one refresh's duration) */
	itest_exec(app, "INSERT INTO public.src DEFAULT VALUES");
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT (SELECT max(upto) FROM public.refreshed) ="
	                             " (SELECT max(id) FROM public.src)"),
	              "the write was never reflected:\n%s", itest_read_file(e.log));
	double longest =
	    (double)itest_env_count(&e, "SELECT COALESCE(max(duration_ms), 0) FROM "
	                                "pgcrond.job_run_details WHERE job_name = 'sqlview'") /
	    1000.0;
	double lag = worst_lag(&e, "sqlview");
	ck_assert_msg(lag >= 0 && lag <= 3.0 + longest,
	              "the write waited %.3f s for a refresh (SLA 3 s, longest refresh %.3f s)",
	              lag, longest);
	/* it ran as its owner */
	itest_assert_scalar(e.db,
	                    "SELECT string_agg(DISTINCT username, ',') FROM "
	                    "pgcrond.job_run_details WHERE job_name = 'sqlview'",
	                    APP);
	PQfinish(app);
	PQfinish(other);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("freshness");
	TCase *tc = tcase_create("freshness");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, random_writes_within_sla_quiet_minute_no_runs);
	tcase_add_test(tc, upstream_source_refreshes_downstream_within_its_sla);
	tcase_add_test(tc, unreadable_source_falls_back_logged_once);
	itest_add_tcase(s, tc);
	/* its own case, so CK_RUN_CASE=gather runs it alone */
	TCase *gather = tcase_create("gather");
	tcase_set_timeout(gather, 240);
	tcase_add_test(gather, downstream_gathers_its_upstreams_refreshes);
	itest_add_tcase(s, gather);
	TCase *reload = tcase_create("reload");
	tcase_set_timeout(reload, 240);
	tcase_add_test(reload, reload_with_another_source_runs_within_its_sla);
	/* JIT is in Debian's server (llvmjit.so), not in the npm registry's (--servers) */
	if (itest_jit_available())
		tcase_add_test(reload, checks_are_not_compiled_by_jit);
	else
		printf("it_freshness: checks_are_not_compiled_by_jit skipped: this server has no "
		       "JIT (%s)\n",
		       itest_pgbin());
	tcase_add_test(reload, job_database_reached_as_another_role);
	itest_add_tcase(s, reload);
	TCase *changes = tcase_create("changes");
	tcase_set_timeout(changes, 240);
	tcase_add_test(changes, changes_no_source_trigger_sees_are_reflected);
	tcase_add_test(changes, replicated_rows_are_reflected);
	tcase_add_unchecked_fixture(changes, NULL, drop_subscription);
	tcase_add_test(changes, view_status_shows_the_freshness_lag);
	itest_add_tcase(s, changes);
	TCase *sql = tcase_create("sqljob");
	tcase_set_timeout(sql, 240);
	tcase_add_test(sql, sql_job_with_freshness_skips_quiet_runs_on_write);
	itest_add_tcase(s, sql);
	SRunner *sr = srunner_create(s);
	int failed = itest_run_share(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
