/* The metrics module: what metrics_run_end() counts and how status_metrics() writes it and a
 * status document in the Prometheus text format (the integration test it_http reads a live
 * daemon's with the reference parser; here the exact lines are checked). */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "status.h"

/* The text of M's counters and the status document ST (which it takes). */
static char *render(const struct metrics *m, json_t *st)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(st);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(status_metrics(m, st, f), 0);
	fclose(f);
	json_decref(st);
	return text;
}

/* A status document with the jobs NAMES (N) and nothing else of theirs. */
static json_t *jobs_named(const char *const *names, size_t n)
{
	json_t *st = json_pack("{s:s, s:[]}", "version", "1", "jobs");
	for (size_t i = 0; st && i < n; i++)
		json_array_append_new(json_object_get(st, "jobs"),
		                      json_pack("{s:s}", "name", names[i]));
	return st;
}

static void has(const char *text, const char *line)
{
	ck_assert_msg(strstr(text, line), "missing \"%s\" in:\n%s", line, text);
}

START_TEST(test_counts_and_histograms)
{
	struct metrics *m;
	ck_assert_int_eq(metrics_new(&m), 0);
	/* 0.1 s exactly falls in le="0.1"; 2 s in le="2.5"; 7200 s only in +Inf */
	metrics_run_end(
	    m, &(struct metrics_run){"a", "succeeded", 100000, 1000, 10000000, NULL, NULL, NULL});
	metrics_run_end(
	    m, &(struct metrics_run){"a", "succeeded", 2000000, 20000, 20000000, NULL, NULL, NULL});
	metrics_run_end(m, &(struct metrics_run){"a", "failed", 7200000000LL, -1, 30000000,
	                                         "division by zero", "22012", NULL});
	metrics_run_end(m,
	                &(struct metrics_run){"a", "skipped", -1, -1, 40000000, NULL, NULL, NULL});
	metrics_run_end(
	    m, &(struct metrics_run){"a", "upstream_failed", -1, -1, 50000000, NULL, NULL, NULL});
	char *t =
	    render(m, json_pack("{s:s, s:f, s:i, s:[{s:s, s:f, s:f}, {s:s, s:i, s:b}]}", "version",
	                        "1.2.3", "started_at_unix", 5.0, "max_running", 32, "jobs", "name",
	                        "a", "next_fire_unix", 1700000000.0, "last_success_unix", 20.5,
	                        "name", "never-ran", "max_staleness_s", 60, "stale", 1));

	has(t, "# TYPE pgcrond_job_runs_total counter\n");
	has(t, "pgcrond_job_runs_total{job=\"a\",status=\"succeeded\"} 2\n");
	has(t, "pgcrond_job_runs_total{job=\"a\",status=\"failed\"} 1\n");
	has(t, "pgcrond_job_runs_total{job=\"a\",status=\"skipped\"} 1\n");
	has(t, "pgcrond_job_runs_total{job=\"a\",status=\"upstream_failed\"} 1\n");
	/* a job with no runs yet has its series at 0, not missing */
	has(t, "pgcrond_job_runs_total{job=\"never-ran\",status=\"failed\"} 0\n");
	has(t, "# TYPE pgcrond_job_run_duration_seconds histogram\n");
	has(t, "pgcrond_job_run_duration_seconds_bucket{job=\"a\",le=\"0.05\"} 0\n");
	has(t, "pgcrond_job_run_duration_seconds_bucket{job=\"a\",le=\"0.1\"} 1\n");
	has(t, "pgcrond_job_run_duration_seconds_bucket{job=\"a\",le=\"2.5\"} 2\n");
	has(t, "pgcrond_job_run_duration_seconds_bucket{job=\"a\",le=\"3600\"} 2\n");
	has(t, "pgcrond_job_run_duration_seconds_bucket{job=\"a\",le=\"+Inf\"} 3\n");
	has(t, "pgcrond_job_run_duration_seconds_sum{job=\"a\"} 7202.1000000000004\n");
	has(t, "pgcrond_job_run_duration_seconds_count{job=\"a\"} 3\n");
	has(t, "pgcrond_job_lateness_seconds_bucket{job=\"a\",le=\"0.001\"} 1\n");
	has(t, "pgcrond_job_lateness_seconds_bucket{job=\"a\",le=\"0.025\"} 2\n");
	has(t, "pgcrond_job_lateness_seconds_count{job=\"a\"} 2\n");
	has(t, "pgcrond_job_run_duration_seconds_count{job=\"never-ran\"} 0\n");
	has(t, "pgcrond_job_last_failure_timestamp_seconds{job=\"a\"} 30\n");
	has(t, "pgcrond_job_last_success_timestamp_seconds{job=\"a\"} 20.5\n");
	ck_assert(!strstr(t, "pgcrond_job_last_success_timestamp_seconds{job=\"never-ran\"}"));
	ck_assert(!strstr(t, "pgcrond_job_next_fire_timestamp_seconds{job=\"never-ran\"}"));
	has(t, "pgcrond_job_next_fire_timestamp_seconds{job=\"a\"} 1700000000\n");
	has(t, "pgcrond_job_stale{job=\"never-ran\"} 1\n");
	has(t, "pgcrond_job_max_staleness_seconds{job=\"never-ran\"} 60\n");
	ck_assert(!strstr(t, "pgcrond_job_stale{job=\"a\"}"));
	has(t, "pgcrond_build_info{version=\"1.2.3\"} 1\n");
	ck_assert(!strstr(t, "pgcrond_history_")); /* no history database */
	free(t);
	metrics_free(&m);
	ck_assert_ptr_null(m);
}
END_TEST

/* The scrape renders a copy on a worker thread while the loop goes on counting: the copy
 * renders as the original did, and runs counted afterwards do not show in it. */
START_TEST(test_copy_for_render)
{
	struct metrics *m, *c;
	ck_assert_int_eq(metrics_new(&m), 0);
	char name[16][16];
	const char *names[16];
	for (int i = 0; i < 16; i++) {
		snprintf(name[i], sizeof(name[i]), "j%d", i);
		names[i] = name[i];
		for (int k = 0; k <= i; k++)
			metrics_run_end(
			    m, &(struct metrics_run){name[i], k % 3 ? "succeeded" : "failed",
			                             1000 * k, 10 * k, 1000000, "x", NULL, NULL});
	}
	char *before = render(m, jobs_named(names, 16));
	ck_assert_int_eq(metrics_copy_counters(m, &c), 0);
	metrics_run_end(m,
	                &(struct metrics_run){"j3", "succeeded", 5, 5, 2000000, NULL, NULL, NULL});
	char *copied = render(c, jobs_named(names, 16)), *after = render(m, jobs_named(names, 16));
	ck_assert_str_eq(copied, before);
	has(before, "pgcrond_job_runs_total{job=\"j3\",status=\"succeeded\"} 2\n");
	has(after, "pgcrond_job_runs_total{job=\"j3\",status=\"succeeded\"} 3\n");
	metrics_free(&c);
	metrics_free(&m);
	free(before);
	free(copied);
	free(after);
}
END_TEST

/* More jobs than the name table's first size (it grows): each keeps its own counts. */
START_TEST(test_many_jobs_keep_their_counts)
{
	enum { N = 5000 };
	struct metrics *m;
	ck_assert_int_eq(metrics_new(&m), 0);
	char names[N][16];
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < N; i++) {
			snprintf(names[i], sizeof(names[i]), "t%d", i);
			if (round == 0 || i % 2 == 0)
				metrics_run_end(m, &(struct metrics_run){names[i], "succeeded",
				                                         1000, -1, 10000000, NULL,
				                                         NULL, NULL});
		}
	char *t = render(m, jobs_named((const char *[]){"t0", "t4999"}, 2));
	has(t, "pgcrond_job_runs_total{job=\"t0\",status=\"succeeded\"} 2\n");
	has(t, "pgcrond_job_runs_total{job=\"t4999\",status=\"succeeded\"} 1\n");
	free(t);
	metrics_free(&m);
}
END_TEST

/* A caller that keeps a job's counters (the scheduler, per job) counts into the same ones as
 * a lookup by name would. */
START_TEST(test_kept_counters)
{
	struct metrics *m;
	ck_assert_int_eq(metrics_new(&m), 0);
	struct metrics_job *kept = NULL;
	metrics_run_end(m, &(struct metrics_run){"k", "succeeded", 1, -1, 10, NULL, NULL, &kept});
	ck_assert_ptr_nonnull(kept);
	struct metrics_job *first = kept;
	metrics_run_end(m, &(struct metrics_run){"k", "failed", 1, -1, 20, "x", NULL, &kept});
	ck_assert_ptr_eq(kept, first);
	metrics_run_end(m, &(struct metrics_run){"k", "succeeded", 1, -1, 30, NULL, NULL, NULL});
	char *t = render(m, jobs_named((const char *[]){"k"}, 1));
	has(t, "pgcrond_job_runs_total{job=\"k\",status=\"succeeded\"} 2\n");
	has(t, "pgcrond_job_runs_total{job=\"k\",status=\"failed\"} 1\n");
	free(t);
	metrics_free(&m);
}
END_TEST

START_TEST(test_label_escaping)
{
	struct metrics *m;
	ck_assert_int_eq(metrics_new(&m), 0);
	char *t =
	    render(m, json_pack("{s:s, s:[{s:s, s:i, s:i, s:i, s:i}], s:{s:s, s:i, s:b, s:i}}",
	                        "version", "x", "databases", "name", "we\"ird\\db\n", "pool", 2,
	                        "idle", 1, "busy", 1, "open", 3, "history", "database", "app",
	                        "pending", 7, "backlogged", 1, "holds", 3));
	has(t, "pgcrond_database_connections{database=\"we\\\"ird\\\\db\\n\",state=\"busy\"} 1\n");
	/* open, neither idle nor busy: resetting */
	has(t, "pgcrond_database_connections{database=\"we\\\"ird\\\\db\\n\",state=\"resetting\"} "
	       "1\n");
	has(t, "pgcrond_history_spool_records 7\n");
	has(t, "pgcrond_history_backlogged 1\n");
	has(t, "pgcrond_history_backlog_holds_total 3\n");
	free(t);
	metrics_free(&m);
}
END_TEST

struct seen {
	char jobs[64];
	char last_msg[64];
	int64_t runids[32];
	int n;
};

static void each(void *arg, const char *job, int64_t end_us, int64_t runid, const char *message,
                 const char *sqlstate)
{
	struct seen *s = arg;
	strncat(s->jobs, job, sizeof(s->jobs) - strlen(s->jobs) - 1);
	s->runids[s->n < 32 ? s->n : 31] = runid;
	snprintf(s->last_msg, sizeof(s->last_msg), "%s/%s", message, sqlstate ? sqlstate : "-");
	s->n++;
}

START_TEST(test_failures_ring)
{
	struct metrics *m;
	ck_assert_int_eq(metrics_new(&m), 0);
	char name[8];
	/* 25 failures: the newest 20 are kept, newest first */
	for (int i = 0; i < 25; i++) {
		snprintf(name, sizeof(name), "%c", 'a' + i);
		metrics_run_end(
		    m, &(struct metrics_run){name, "failed", 1, -1, i, "boom", NULL, NULL});
	}
	metrics_run_end(m, &(struct metrics_run){"z", "succeeded", 1, -1, 99, "ok", NULL, NULL});
	struct seen s = {0};
	metrics_each_failure(m, each, &s);
	ck_assert_int_eq(s.n, METRICS_FAILURES);
	ck_assert_str_eq(s.jobs, "yxwvutsrqponmlkjihgf");
	ck_assert_str_eq(s.last_msg, "boom/-");
	metrics_free(&m);
}
END_TEST

/* After a restart, the failures read from the history go behind those of this process,
 * newest first, with their run ids; one this process kept already is not kept twice. */
START_TEST(test_failures_seeded)
{
	struct metrics *m;
	ck_assert_int_eq(metrics_new(&m), 0);
	metrics_run_end(m, &(struct metrics_run){"a", "failed", 1, -1, 50, "live", NULL, NULL});
	metrics_seed_failure(m, "a", 50, 7, "live", NULL); /* the same run: gets its id */
	metrics_seed_failure(m, "b", 40, 6, "older", "22012");
	metrics_seed_failure(m, "c", 30, 5, "oldest", NULL);
	struct seen s = {0};
	metrics_each_failure(m, each, &s);
	ck_assert_int_eq(s.n, 3);
	ck_assert_str_eq(s.jobs, "abc");
	ck_assert_int_eq(s.runids[0], 7);
	ck_assert_int_eq(s.runids[1], 6);
	ck_assert_int_eq(s.runids[2], 5);
	ck_assert_str_eq(s.last_msg, "oldest/-");
	/* a full ring takes no more */
	char name[8];
	for (int i = 0; i < 25; i++) {
		snprintf(name, sizeof(name), "%c", 'd' + i);
		metrics_seed_failure(m, name, 20 - i, 100 + i, "x", NULL);
	}
	memset(&s, 0, sizeof(s));
	metrics_each_failure(m, each, &s);
	ck_assert_int_eq(s.n, METRICS_FAILURES);
	ck_assert_int_eq(s.runids[3], 100);
	metrics_free(&m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");
	tcase_add_test(tc, test_counts_and_histograms);
	tcase_add_test(tc, test_copy_for_render);
	tcase_add_test(tc, test_label_escaping);
	tcase_add_test(tc, test_many_jobs_keep_their_counts);
	tcase_add_test(tc, test_kept_counters);
	tcase_add_test(tc, test_failures_ring);
	tcase_add_test(tc, test_failures_seeded);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
