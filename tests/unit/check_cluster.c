/* Claim keys (cluster_fire_key): which runs claim what, so that two instances serving the
 * same fire compute the same key and different fires never share one; and the moves between
 * the cluster's states (cluster_to). */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"
#include "clock.h"
#include "cluster.h"
#include "cluster_priv.h"
#include "config.h"

static int key(enum run_trigger trigger, int64_t sched_us, const char *graph, int attempt,
               int64_t debounce_ms, char *out, int64_t *window)
{
	return cluster_fire_key(trigger, sched_us, graph, attempt, debounce_ms, out, 128, window);
}

START_TEST(scheduled_and_catchup_share_the_fire)
{
	char a[128], b[128];
	int64_t w;
	ck_assert_int_eq(key(TRIGGER_SCHEDULE, 1763850000000000LL, NULL, 1, 0, a, &w), 1);
	ck_assert_str_eq(a, "s:1763850000");
	ck_assert_int_eq(w, 0);
	/* the catch-up of the same instant is the same fire: only one of them runs */
	ck_assert_int_eq(key(TRIGGER_CATCHUP, 1763850000000000LL, NULL, 1, 0, b, &w), 1);
	ck_assert_str_eq(a, b);
	/* a retry is its own claim, per attempt */
	ck_assert_int_eq(key(TRIGGER_RETRY, 1763850000000000LL, NULL, 2, 0, b, &w), 1);
	ck_assert_str_eq(b, "s:1763850000/a2");
}
END_TEST

START_TEST(downstream_runs_claim_their_graph_run)
{
	char a[128];
	int64_t w;
	ck_assert_int_eq(key(TRIGGER_UPSTREAM, 0, "n1-1763850000000000-load", 1, 0, a, &w), 1);
	ck_assert_str_eq(a, "g:n1-1763850000000000-load");
	ck_assert_int_eq(key(TRIGGER_RETRY, 0, "n1-1763850000000000-load", 3, 0, a, &w), 1);
	ck_assert_str_eq(a, "g:n1-1763850000000000-load/a3");
}
END_TEST

START_TEST(notifications_claim_a_turn)
{
	char a[128];
	int64_t w;
	ck_assert_int_eq(key(TRIGGER_NOTIFY, 0, NULL, 1, 5000, a, &w), 1);
	ck_assert_str_eq(a, "n");
	ck_assert_int_eq(w, 2500);
	ck_assert_int_eq(key(TRIGGER_NOTIFY, 0, NULL, 1, 200, a, &w), 1);
	ck_assert_int_eq(w, 1000); /* at least a second */
}
END_TEST

START_TEST(manual_and_reboot_need_no_claim)
{
	char a[128];
	int64_t w;
	ck_assert_int_eq(key(TRIGGER_MANUAL, 0, NULL, 1, 0, a, &w), 0);
	ck_assert_int_eq(key(TRIGGER_REBOOT, 0, NULL, 1, 0, a, &w), 0);
	ck_assert_int_eq(key(TRIGGER_RETRY, 0, NULL, 2, 0, a, &w), 0);
}
END_TEST

START_TEST(too_small_a_buffer)
{
	char a[8];
	int64_t w;
	ck_assert_int_eq(
	    cluster_fire_key(TRIGGER_SCHEDULE, 1763850000000000LL, NULL, 1, 0, a, sizeof(a), &w),
	    -ENOSPC);
}
END_TEST

/* The database is the clock: an offset is judged allowing for half the round trip. */
START_TEST(clock_offset_from_the_database)
{
	int64_t off;
	/* sent at 1,000 s, answered after 20 ms, the database read 1,000.010 s: in step */
	ck_assert(!cluster_clock_offset(1000000000LL, 20000, 1000010000LL, &off));
	ck_assert_int_eq(off, 0);
	/* this host 3 s ahead (uncorrected, it would run every job 3 s early) */
	ck_assert(cluster_clock_offset(1003000000LL, 20000, 1000010000LL, &off));
	ck_assert_int_eq(off, -3000000);
	/* 1.5 s behind, but a round trip of 2 s could explain all but 0.5 s of it: not judged */
	ck_assert(!cluster_clock_offset(1000000000LL, 2000000, 1002500000LL, &off));
	ck_assert_int_eq(off, 1500000);
	/* just past the bound, and just within */
	ck_assert(cluster_clock_offset(0, 0, (CLUSTER_MAX_OFFSET_MS + 1) * 1000LL, &off));
	ck_assert(!cluster_clock_offset(0, 0, CLUSTER_MAX_OFFSET_MS * 1000LL, &off));
}
END_TEST

/* The offset fired by is the recent sample with the shortest round trip: the long round
 * trips of a loaded host (answers read late) move it not; a real change seen over a short
 * round trip moves it at once; a kept sample ages, so that long round trips alone are
 * followed after a while. */
START_TEST(clock_offset_keeps_the_shortest_round_trip)
{
	struct cluster_offset_filter f = {0};
	ck_assert_int_eq(cluster_offset_filter(&f, -1000, 2000), -1000);
	/* answered 80 ms late: its middle 40 ms off; not taken */
	ck_assert_int_eq(cluster_offset_filter(&f, -41000, 80000), -1000);
	ck_assert_int_eq(cluster_offset_filter(&f, 38000, 78000), -1000);
	/* the database's clock stepped 0.5 s: seen over a short round trip, taken */
	ck_assert_int_eq(cluster_offset_filter(&f, 499000, 1500), 499000);
	/* only long round trips from now on: taken once the kept one has aged past them */
	int beats = 0;
	while (cluster_offset_filter(&f, 470000, 30000) != 470000)
		beats++;
	ck_assert_int_eq(beats, (30000 - 1500) / CLUSTER_OFFSET_AGE_US);
}
END_TEST

START_TEST(definition_hash_tells_definitions_apart)
{
	struct conf_job a = {.name = "j",
	                     .command = "SELECT 1",
	                     .database = "app",
	                     .schedule = "* * * * *",
	                     .more = &config_job_more_defaults};
	struct conf_job b = a;
	char ha[24], hb[24];
	cluster_job_hash(&a, ha, sizeof(ha));
	cluster_job_hash(&b, hb, sizeof(hb));
	ck_assert_str_eq(ha, hb);
	/* what instances of earlier versions publish for the same job (a rolling upgrade must not
	 * see every job's definition differ) */
	ck_assert_str_eq(ha, "d8785219167fe10a");
	b.command = "SELECT 2";
	cluster_job_hash(&b, hb, sizeof(hb));
	ck_assert_str_ne(ha, hb);
	b = a;
	b.retries = 3;
	cluster_job_hash(&b, hb, sizeof(hb));
	ck_assert_str_ne(ha, hb);
	/* a command moved into the plugin field is another definition */
	b = a;
	b.command = NULL;
	b.plugin = "SELECT 1";
	cluster_job_hash(&b, hb, sizeof(hb));
	ck_assert_str_ne(ha, hb);
}
END_TEST

/* The moves of docs/layout.md's table "The cluster's states", from each state (a row) to
 * each (a column, in the enum's order): an answer to the name's lock may make anything of a
 * state without the lock; the lock goes with its connection or to a read-only server; nothing
 * leaves a refusal. */
static const char allowed[CS_STATES][CS_STATES + 1] = {
    /*                 to: unlocked, lock failed, recovery, locked, refused */
    [CS_UNLOCKED] = "11111", [CS_LOCK_FAILED] = "11111", [CS_RECOVERY] = "11111",
    [CS_LOCKED] = "10100",   [CS_REFUSED] = "00000",
};

START_TEST(cluster_moves_only_between_allowed_states)
{
	int moves = 0;
	for (int from = 0; from < CS_STATES; from++)
		for (int to = 0; to < CS_STATES; to++) {
			struct cluster c = {.state = (enum cluster_state)from};
			bool want = allowed[from][to] == '1';
			bool ok = cluster_to(&c, (enum cluster_state)to);
			ck_assert_msg(ok == want, "%d -> %d: %s", from, to,
			              ok ? "allowed" : "refused");
			ck_assert_int_eq(cluster_state_may(from, to), want);
			enum cluster_state now =
			    ok ? (enum cluster_state)to : (enum cluster_state)from;
			ck_assert_int_eq(c.state, now);
			/* the status's two flags follow the state they were moved to */
			ck_assert_int_eq(c.st.connected, ok && now == CS_LOCKED);
			ck_assert_int_eq(c.st.in_recovery, ok && now == CS_RECOVERY);
			moves += ok;
		}
	ck_assert_int_eq(moves, 3 * CS_STATES + 2);
}
END_TEST

/* Admission without a history database: the alone policy says yes in the call, the run
 * holds nothing, nothing is asked early, kept unrecorded or left to others. */
static int64_t no_time(void *arg)
{
	(void)arg;
	return 0;
}

START_TEST(alone_admits_in_the_call)
{
	struct clock *clk;
	ck_assert_int_eq(clock_new_sim(0, &clk), 0);
	struct admit *a;
	const struct admit_hooks h = {.now_us = no_time};
	ck_assert_int_eq(admit_new(clk, &h, &a), 0);
	const struct admit_fire f = {
	    .job = "j", .trigger = TRIGGER_SCHEDULE, .scheduled_us = 60000000, .attempt = 1};
	struct admit_fire manual = f;
	manual.trigger = TRIGGER_MANUAL;
	manual.scheduled_us = 0;
	enum admit_hold hold = ADMIT_NONE;
	ck_assert(!admit(a, &f, &hold, NULL, NULL)); /* not waiting: it runs now */
	ck_assert_int_eq(hold, ADMIT_FREE);
	hold = ADMIT_NONE;
	ck_assert(!admit(NULL, &manual, &hold, NULL, NULL));
	ck_assert_int_eq(hold, ADMIT_FREE);
	ck_assert(!admit_ahead(a));
	ck_assert(!admit_early(a, &f));
	ck_assert(!admit_park(a, &f, "why"));
	ck_assert(!admit_skip(a, &f, "why"));
	ck_assert(!admit_leave(a, &f));
	ck_assert(!admit_left_to_others(a, &f, ADMIT_NONE));
	admit_end(a, &f, &hold, NULL, NULL);
	ck_assert_int_eq(hold, ADMIT_FREE);
	admit_free(&a);
	ck_assert_ptr_null(a);
	clock_free(&clk);
}
END_TEST

/* What a run holds once its question is answered: a grant holds the job's lock until its
 * end. */
START_TEST(an_answer_sets_what_the_run_holds)
{
	static const struct {
		enum cluster_verdict v;
		enum admit_hold want;
	} cases[] = {
	    {CLUSTER_GRANTED, ADMIT_LOCKED}, {CLUSTER_UNCLAIMED, ADMIT_FREE},
	    {CLUSTER_TAKEN, ADMIT_NONE},     {CLUSTER_REFUSED, ADMIT_NONE},
	    {CLUSTER_BUSY, ADMIT_NONE},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum admit_hold h = ADMIT_NONE;
		admit_answered(&h, cases[i].v);
		ck_assert_msg(h == cases[i].want, "case %zu: %d", i, (int)h);
	}
	enum admit_hold h = ADMIT_LOCKED;
	const struct admit_fire f = {.job = "j"};
	admit_end(NULL, &f, &h, NULL, NULL); /* given back (no cluster: nothing to send) */
	ck_assert_int_eq(h, ADMIT_FREE);
	h = ADMIT_LONE;
	admit_end(NULL, &f, &h, NULL, NULL); /* a lone run gives nothing back */
	ck_assert_int_eq(h, ADMIT_LONE);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cluster");
	TCase *tc = tcase_create("keys");
	tcase_add_test(tc, scheduled_and_catchup_share_the_fire);
	tcase_add_test(tc, downstream_runs_claim_their_graph_run);
	tcase_add_test(tc, notifications_claim_a_turn);
	tcase_add_test(tc, manual_and_reboot_need_no_claim);
	tcase_add_test(tc, too_small_a_buffer);
	tcase_add_test(tc, clock_offset_from_the_database);
	tcase_add_test(tc, clock_offset_keeps_the_shortest_round_trip);
	tcase_add_test(tc, definition_hash_tells_definitions_apart);
	tcase_add_test(tc, cluster_moves_only_between_allowed_states);
	tcase_add_test(tc, alone_admits_in_the_call);
	tcase_add_test(tc, an_answer_sets_what_the_run_holds);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
