/* hist_spool.c: the run records' FIFO (memory + spill file) whose file operations run on a
 * writer thread. No database: what goes in comes out of the head in order, the file holds
 * the records the database has not acknowledged, a disk that does not answer never stops
 * the loop, and every record the file and memory cannot take is counted. */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

#include "bgwork.h"
#include "hist_spool.h"

static struct event_base *base;
static char dir[64], path[128];

static void setup(void)
{
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	snprintf(dir, sizeof(dir), "/tmp/pgcrond-spool-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/" HIST_SPOOL_FILE, dir);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	event_base_free(base);
	base = NULL;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Record number I. */
static void put(struct hist_spool *s, int i)
{
	char num[16];
	const char *f[2] = {"test", num};
	snprintf(num, sizeof(num), "%d", i);
	hist_spool_put(s, "X1", f, 2);
}

/* The record number of a line, whether it was kept in memory or read back from the file. */
static int number(const struct hist_spool_line *l)
{
	ck_assert_ptr_nonnull(l->kind);
	ck_assert_str_eq(l->kind, "X1");
	ck_assert_int_eq(l->n, 2);
	ck_assert_str_eq(l->f[0], "test");
	return atoi(l->f[1]);
}

static int file_lines(void)
{
	FILE *f = fopen(path, "r");
	int n = 0, c;
	ck_assert_ptr_nonnull(f);
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Run the loop until the file holds N lines (the writer's outcomes come through it). */
static bool drive_until_lines(int n, double timeout_s)
{
	double end = now_s() + timeout_s;
	while (file_lines() != n) {
		if (now_s() > end)
			return false;
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	return true;
}

static const struct hist_spool_line *drive_until_head(struct hist_spool *s, double timeout_s)
{
	double end = now_s() + timeout_s;
	const struct hist_spool_line *l;
	while (!(l = hist_spool_head(s)) && now_s() < end) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	return l;
}

/* In order through memory, the file alone (memory_limit 3) and back; acknowledged records
 * leave the file, which is empty once all are. */
START_TEST(order_survives_memory_and_file)
{
	struct hist_spool *s;
	ck_assert_int_eq(hist_spool_open(base, dir, &s), 0);
	hist_spool_set_limits(s, 3, 1 << 20);
	for (int i = 0; i < 20; i++)
		put(s, i);
	ck_assert_uint_eq(hist_spool_pending(s), 20);
	ck_assert(drive_until_lines(20, 5));
	for (int i = 0; i < 20; i++) {
		const struct hist_spool_line *l = drive_until_head(s, 5);
		ck_assert_ptr_nonnull(l);
		ck_assert_int_eq(number(l), i);
		hist_spool_pop(s, 1);
		/* records arriving meanwhile queue behind the ones in the file */
		if (i == 5)
			put(s, 20);
	}
	const struct hist_spool_line *l = drive_until_head(s, 5);
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(number(l), 20);
	hist_spool_pop(s, 1);
	ck_assert_uint_eq(hist_spool_pending(s), 0);
	ck_assert_uint_eq(hist_spool_dropped(s), 0);
	ck_assert(drive_until_lines(0, 5));
	hist_spool_close(&s);
	ck_assert_ptr_null(s);
}
END_TEST

/* The lines in memory from the head on. */
static int chain(const struct hist_spool_line *l)
{
	int n = 0;
	for (; l; l = l->next)
		n++;
	return n;
}

/* Lines waiting in the file alone are read back once memory is half empty, while the sender
 * still has lines to send: it never waits for the writer thread with nothing to send (at
 * 15,000 runs/s it waited 100 ms for every memory_limit lines, and the history fell behind). */
START_TEST(file_lines_come_back_before_memory_runs_dry)
{
	struct hist_spool *s;
	ck_assert_int_eq(hist_spool_open(base, dir, &s), 0);
	hist_spool_set_limits(s, 10, 1 << 20);
	for (int i = 0; i < 30; i++)
		put(s, i);
	ck_assert(drive_until_lines(30, 5));
	for (int i = 0; i < 5; i++) {
		const struct hist_spool_line *l = drive_until_head(s, 5);
		ck_assert_ptr_nonnull(l);
		ck_assert_int_eq(number(l), i);
		hist_spool_pop(s, 1);
	}
	/* five lines left in memory: the next ones are on their way before those are sent */
	double end = now_s() + 5;
	const struct hist_spool_line *l = hist_spool_head(s);
	while (chain(l) <= 5 && now_s() < end) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
		l = hist_spool_head(s);
	}
	ck_assert_int_gt(chain(l), 5);
	for (int i = 5; i < 30; i++) {
		l = drive_until_head(s, 5);
		ck_assert_ptr_nonnull(l);
		ck_assert_int_eq(number(l), i);
		hist_spool_pop(s, 1);
	}
	ck_assert_uint_eq(hist_spool_pending(s), 0);
	ck_assert_uint_eq(hist_spool_dropped(s), 0);
	hist_spool_close(&s);
}
END_TEST

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	++*(int *)arg;
}

/* A disk that does not answer (the writer thread held): records are accepted and the loop
 * keeps serving its timers; nothing reaches the file until the disk answers, then all of
 * it in order. An append on the loop would hang here until the test times out. */
/* A disk that does not answer: a job on the spool's writer thread that waits until the test
 * lets it go; the file operations queued behind it wait too. */
static mtx_t disk;
static void stalled_work(struct bgwork_job *job)
{
	(void)job;
	mtx_lock(&disk);
	mtx_unlock(&disk);
}
static void stalled_done(struct bgwork_job *job, bool ran)
{
	(void)job;
	(void)ran;
}

START_TEST(a_stalled_disk_does_not_stop_the_loop)
{
	struct hist_spool *s;
	ck_assert_int_eq(hist_spool_open(base, dir, &s), 0);
	hist_spool_set_limits(s, 10, 1 << 20);
	struct bgwork_job stall = {.work = stalled_work, .done = stalled_done};
	ck_assert_int_eq(mtx_init(&disk, mtx_plain), thrd_success);
	mtx_lock(&disk);
	ck_assert_ptr_nonnull(hist_spool_worker(s));
	ck_assert_int_eq(bgwork_submit(hist_spool_worker(s), &stall), 0);
	for (int i = 0; i < 50; i++)
		put(s, i);
	int ticks = 0;
	struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, &ticks);
	struct timeval ms5 = {0, 5000};
	evtimer_add(tick, &ms5);
	double end = now_s() + 0.3;
	int n = 50;
	while (now_s() < end) {
		put(s, n++); /* records keep coming */
		event_base_loop(base, EVLOOP_ONCE);
	}
	ck_assert_int_gt(ticks, 10); /* the loop ran its 5 ms timer throughout */
	ck_assert_int_eq(file_lines(), 0);
	ck_assert_uint_eq(hist_spool_pending(s), (uint64_t)n);
	ck_assert_uint_eq(hist_spool_dropped(s), 0);
	event_free(tick);
	mtx_unlock(&disk); /* the disk answers again */
	ck_assert(drive_until_lines(n, 5));
	for (int i = 0; i < n; i++) {
		const struct hist_spool_line *l = drive_until_head(s, 5);
		ck_assert_ptr_nonnull(l);
		ck_assert_int_eq(number(l), i);
		hist_spool_pop(s, 1);
	}
	hist_spool_close(&s);
	mtx_destroy(&disk);
}
END_TEST

/* An append of records in memory wakes nobody when it ends, unless a record waits for it:
 * that record goes to the file once the append is done, with no other record or
 * acknowledgement to make the loop look (the disk job ahead of them is quiet too). */
START_TEST(a_record_behind_an_append_goes_when_it_ends)
{
	struct hist_spool *s;
	ck_assert_int_eq(hist_spool_open(base, dir, &s), 0);
	struct bgwork_job stall = {.work = stalled_work, .done = stalled_done, .quiet = true};
	ck_assert_int_eq(mtx_init(&disk, mtx_plain), thrd_success);
	mtx_lock(&disk);
	ck_assert_int_eq(bgwork_submit(hist_spool_worker(s), &stall), 0);
	put(s, 0); /* its append waits behind the stalled disk */
	put(s, 1); /* ... and this one for that append's end */
	mtx_unlock(&disk);
	ck_assert(drive_until_lines(2, 5));
	ck_assert_int_eq(number(drive_until_head(s, 5)), 0);
	hist_spool_close(&s);
	mtx_destroy(&disk);
}
END_TEST

/* The cap counts only unacknowledged records: over it, records wait in memory (and are lost
 * beyond memory_limit, each one counted); acknowledging makes room again; at close every
 * record still in memory goes to the file whatever the cap. */
START_TEST(cap_counts_unacknowledged_and_close_writes_the_rest)
{
	struct hist_spool *s;
	ck_assert_int_eq(hist_spool_open(base, dir, &s), 0);
	put(s, 0);
	ck_assert(drive_until_lines(1, 5));
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	off_t line = st.st_size; /* every line here has the same length, give or take a digit */
	hist_spool_set_limits(s, 8, line * 4);
	for (int i = 1; i < 10; i++)
		put(s, i);
	/* four lines in the file, the rest of memory_limit 8 waits in memory, two are lost */
	ck_assert(drive_until_lines(4, 5));
	ck_assert_uint_eq(hist_spool_pending(s), 8);
	ck_assert_uint_eq(hist_spool_dropped(s), 2);
	/* two acknowledged (one batch): room for two more in the file */
	hist_spool_pop(s, 2);
	put(s, 10);
	ck_assert(drive_until_lines(6, 5)); /* the acknowledged two are still there too */
	ck_assert_uint_eq(hist_spool_pending(s), 7);
	hist_spool_close(&s);
	/* the file now holds the two acknowledged lines and all seven waiting ones */
	ck_assert_int_eq(file_lines(), 9);
	ck_assert_int_eq(hist_spool_open(base, dir, &s), 0);
	ck_assert_uint_eq(hist_spool_pending(s), 9); /* a restart sends the acknowledged again:
	                                              * every statement is idempotent */
	hist_spool_close(&s);
}
END_TEST

/* A record's fields come out of the head as they went in, escapes and NULLs included, whether
 * the record was kept in memory or read back from the file (memory_limit 1: the second waits
 * in the file alone), and after a restart; a damaged line comes back as a record without a
 * kind, in its place. */
START_TEST(fields_survive_memory_and_file)
{
	const char *f[4] = {"tab\there", NULL, "back\\slash\r\nnewline", ""};
	struct hist_spool *s;
	ck_assert_int_eq(hist_spool_open(base, dir, &s), 0);
	hist_spool_set_limits(s, 1, 1 << 20);
	hist_spool_put(s, "Y1", f, 4);
	hist_spool_put(s, "Y1", f, 4);
	ck_assert(drive_until_lines(2, 5));
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 2; i++) {
			const struct hist_spool_line *l = drive_until_head(s, 5);
			ck_assert_ptr_nonnull(l);
			ck_assert_str_eq(l->kind, "Y1");
			ck_assert_int_eq(l->n, 4);
			ck_assert_str_eq(l->f[0], f[0]);
			ck_assert_ptr_null(l->f[1]);
			ck_assert_str_eq(l->f[2], f[2]);
			ck_assert_str_eq(l->f[3], f[3]);
			if (round == 1)
				hist_spool_pop(s, 1);
			else
				break; /* the first round leaves them for the restart */
		}
		hist_spool_close(&s);
		ck_assert_int_eq(hist_spool_open(base, dir, &s), 0);
	}
	hist_spool_close(&s);
	/* a line whose checksum does not match */
	FILE *fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	fputs("Y1\tx\t#00000000\n", fp);
	fclose(fp);
	ck_assert_int_eq(hist_spool_open(base, dir, &s), 0);
	const struct hist_spool_line *l = drive_until_head(s, 5);
	ck_assert_ptr_nonnull(l);
	ck_assert_ptr_null(l->kind);
	ck_assert_int_eq(l->n, 0);
	hist_spool_pop(s, 1);
	ck_assert_uint_eq(hist_spool_pending(s), 0);
	hist_spool_close(&s);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("hist_spool");
	TCase *tc = tcase_create("spool");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, order_survives_memory_and_file);
	tcase_add_test(tc, file_lines_come_back_before_memory_runs_dry);
	tcase_add_test(tc, a_stalled_disk_does_not_stop_the_loop);
	tcase_add_test(tc, a_record_behind_an_append_goes_when_it_ends);
	tcase_add_test(tc, cap_counts_unacknowledged_and_close_writes_the_rest);
	tcase_add_test(tc, fields_survive_memory_and_file);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
