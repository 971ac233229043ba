/* The spill file under disk pressure. state_dir is a tiny tmpfs and the
 * history database (a second sandbox server) goes away while ten jobs run every second:
 * - when the database comes back, every run has its row, once, none left running: the
 *   records the full disk could not take waited in memory;
 * - stopped while the database is away, the daemon puts every unwritten record it can in
 *   the spill file and says exactly how many wait there and how many are lost; the count
 *   it gives is the number of records in the file, and the next daemon writes them.
 * The tests run as root (CI does): they mount the tmpfs themselves, and always unmount it. */
#include <check.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <fcntl.h>
#include <unistd.h>

#include "itest.h"

#define JOBS 10

/* state_dir on a tmpfs of SIZE, owned by the daemon's user, mode 0700. A watcher process
 * unmounts it when the test process ends, however it ends (a failed assertion leaves
 * without running atexit handlers). */
static void mount_state(const char *dir, const char *size)
{
	struct passwd *pw = getpwnam(itest_user());
	ck_assert(pw != NULL);
	char opts[128], path[1100];
	snprintf(opts, sizeof(opts), "size=%s,mode=0700,uid=%d,gid=%d", size, (int)pw->pw_uid,
	         (int)pw->pw_gid);
	snprintf(path, sizeof(path), "%s/state", dir);
	int fds[2];
	ck_assert(pipe2(fds, O_CLOEXEC) == 0);
	pid_t w = fork();
	ck_assert(w >= 0);
	if (w == 0) {
		char c;
		setsid(); /* out of the test's process group, which Check kills at the end */
		close(fds[1]);
		while (read(fds[0], &c, 1) > 0)
			;
		umount2(path, MNT_DETACH);
		_exit(0);
	}
	close(fds[0]); /* fds[1] stays open in this process alone (close-on-exec) */
	ck_assert_msg(mount("tmpfs", path, "tmpfs", 0, opts) == 0, "mount tmpfs on %s: %m", path);
}

static long long count_lines(const char *path)
{
	char *text = itest_read_file(path);
	long long n = 0;
	for (const char *p = text; *p; p++)
		n += *p == '\n';
	free(text);
	return n;
}

/* The end of a log, for a failure message (Check cuts long ones off). */
static const char *tail(const char *log)
{
	size_t n = strlen(log);
	return n > 3000 ? log + n - 3000 : log;
}

/* The last number in LOG before NEEDLE on the same line, or -1. */
static long long number_before(const char *log, const char *needle)
{
	const char *hit = NULL, *p = log;
	while ((p = strstr(p, needle))) {
		hit = p;
		p++;
	}
	if (!hit)
		return -1;
	const char *line = hit;
	while (line > log && line[-1] != '\n')
		line--;
	const char *q = strstr(line, "history: ");
	return q && q < hit ? atoll(q + strlen("history: ")) : -1;
}

START_TEST(tiny_state_dir_and_history_outage)
{
	struct itest_env e;
	char path[1200];

	if (geteuid() != 0) {
		fprintf(stderr, "it_spool: not root, cannot mount a tmpfs; skipped\n");
		return;
	}
	itest_env_init(&e, "spool", "it_spool");
	char *hist_ci = itest_sandbox2_start(e.dir);
	mount_state(e.dir, "16k");
	itest_exec(e.db, "CREATE TABLE ticks (job text, at timestamptz DEFAULT clock_timestamp())");
	itest_write_file(e.conf,
	                 "plugin_dir = \"%s\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "connection_check = \"4s\";\n"
	                 "databases = {\n"
	                 "  app = { conninfo = \"%s\"; pool = 4; };\n"
	                 "  hist = { conninfo = \"%s\"; };\n"
	                 "};\n"
	                 "history = { database = \"hist\"; };\n",
	                 e.dir, e.dir, e.ci, hist_ci);
	itest_env_each_second(&e, "10-ticks.conf", JOBS, "tick",
	                      "INSERT INTO ticks (job) VALUES ('%s')");
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install: %s", out);
	free(out);
	PGconn *hist = itest_connect(hist_ci);

	/* 1. twelve seconds without the history database: more records than the disk holds */
	itest_env_start(&e);
	ck_assert(itest_wait_sql(hist,
	                         "SELECT count(*) >= 20 FROM pgcrond.job_run_details"
	                         " WHERE status = 'succeeded'",
	                         20));
	PQfinish(hist);
	itest_sandbox2("pause");
	ck_assert_msg(itest_wait_log(e.log, "No space left on device", 13),
	              "the tmpfs never filled up:\n%s", tail(itest_read_file(e.log)));
	itest_sandbox2("resume");
	hist = itest_connect(hist_ci);
	/* every run so far gets its row */
	long long ticks = itest_scalar_ll(e.db, "SELECT count(*) FROM ticks");
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) >= %lld FROM pgcrond.job_run_details WHERE status = 'succeeded'",
	         ticks);
	ck_assert_msg(itest_wait_sql(hist, sql, 20), "runs without a row after the outage:\n%s",
	              tail(itest_read_file(e.log)));

	/* 2. away again, and the daemon is stopped before it is back, once the spill file is
	 * full: it took no more line while 3 * JOBS more runs ended (their records wait in
	 * memory alone: records both in the file and lost at the stop). The file cannot be
	 * told full by the disk's free space (what the first outage left there) nor by the
	 * log (its complaint about the disk is rate-limited): by what it takes. */
	PQfinish(hist);
	itest_sandbox2("pause");
	snprintf(path, sizeof(path), "%s/state/history.spool", e.dir);
	long long lines = -1, ticks_then = 0;
	double until = itest_now() + 40;
	for (;;) {
		long long now_lines = count_lines(path);
		ticks = itest_scalar_ll(e.db, "SELECT count(*) FROM ticks");
		if (now_lines != lines) {
			lines = now_lines;
			ticks_then = ticks;
		} else if (lines > 0 && ticks - ticks_then >= 3 * JOBS) {
			break;
		}
		ck_assert_msg(itest_now() < until,
		              "the spill file (%lld lines) did not stop growing while runs went on"
		              " (%lld since its last line):\n%s",
		              lines, ticks - ticks_then, tail(itest_read_file(e.log)));
		itest_sleep(0.1);
	}
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 20), 0);
	char *log = itest_read_file(e.log);
	long long in_file = count_lines(path);
	long long said = number_before(log, " run records not yet written wait in");
	long long lost = number_before(log, " run records not yet written could not be put in");
	ck_assert_msg(said == in_file,
	              "the log says %lld records wait in the spill file, which holds %lld:\n%s",
	              said, in_file, tail(log));
	ck_assert_msg(in_file > 0 && lost > 0,
	              "expected records both in the full spill file and lost (%lld, %lld):\n%s",
	              in_file, lost, tail(log));
	ck_assert_msg(!strstr(log, "records were lost"), "records lost while the daemon ran:\n%s",
	              tail(log));
	free(log);

	/* 3. the next daemon writes what the file holds: one row per start it holds */
	itest_sandbox2("resume");
	hist = itest_connect(hist_ci);
	long long rows_before =
	    itest_scalar_ll(hist, "SELECT count(*) FROM pgcrond.job_run_details");
	itest_write_file(e.conf,
	                 "plugin_dir = \"%s\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = { hist = { conninfo = \"%s\"; }; };\n"
	                 "history = { database = \"hist\"; };\n",
	                 e.dir, e.dir, hist_ci);
	itest_env_job(&e, "10-ticks.conf", "# no jobs\n");
	itest_env_start(&e);
	until = itest_now() + 20;
	while (count_lines(path) > 0 && itest_now() < until)
		itest_sleep(0.1);
	ck_assert_msg(count_lines(path) == 0, "the spilled records were not written:\n%s",
	              tail(itest_read_file(e.log)));
	ck_assert_int_gt(itest_scalar_ll(hist, "SELECT count(*) FROM pgcrond.job_run_details"),
	                 rows_before);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 20), 0);
	PQfinish(hist);
	free(hist_ci);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("spool");
	TCase *tc = tcase_create("spool");
	tcase_set_timeout(tc, 150);
	tcase_add_test(tc, tiny_state_dir_and_history_outage);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
