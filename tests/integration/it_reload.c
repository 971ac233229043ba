/* A SIGHUP reload builds the configuration on a background job (reload.h): the event loop
 * goes on serving while it parses, merges and checks. Seen from outside: a second SIGHUP that
 * arrives during the parse is answered at once ("a reload is in progress; reloading again after
 * it") and leads to a second reload after the first, instead of waiting, unseen, behind it. */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "itest.h"

static int count_in(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* FILES files of 1,000 jobs each, none due (a yearly schedule). */
static void many_jobs(struct itest_env *e, int files)
{
	size_t cap = 1000 * 160;
	char *buf = malloc(cap);
	for (int f = 0; f < files; f++) {
		size_t o = (size_t)snprintf(buf, cap, "jobs = (\n");
		for (int i = 0; i < 1000; i++)
			o += (size_t)snprintf(buf + o, cap - o,
			                      "  { name = \"t%d-%d\"; schedule = \"0 0 1 1 *\";"
			                      " command = \"SELECT 1\"; }%s\n",
			                      f, i, i < 999 ? "," : "");
		snprintf(buf + o, cap - o, ");\n");
		char name[32];
		snprintf(name, sizeof(name), "conf.d/%02d-jobs.conf", f);
		char *path = itest_env_path(e, name);
		FILE *fp = fopen(path, "w");
		ck_assert(fp && fputs(buf, fp) >= 0 && fclose(fp) == 0);
		free(path);
	}
	free(buf);
}

START_TEST(second_sighup_during_a_parse_is_answered_at_once)
{
	struct itest_env e;
	itest_env_setup(&e, "it_reload", "it_reload");
	/* 50,000 jobs (50 files): a parse of a tenth of a second at least */
	many_jobs(&e, 50);
	itest_env_start(&e);
	itest_env_job(&e, "99-new.conf",
	              "job = { name = \"added-later\"; schedule = \"0 0 1 1 *\";"
	              " command = \"SELECT 2\"; };\n");

	/* the start's read of the jobs made in SQL is built and applied first: a signal sent
	 * meanwhile would wait behind that build */
	ck_assert(itest_wait_log(e.log, "jobs made in SQL applied", 20));
	/* the second signal once the first reload has begun (signals sent together merge). The
	 * parse lasts a few tenths of a second: a test that saw the first reload begin only
	 * after it ended (a loaded machine) sent its second signal too late, which made two
	 * reloads one after the other; that round is done again, up to five times */
	char *log = NULL;
	int rounds = 0;
	for (;;) {
		rounds++;
		free(log);
		log = itest_read_file(e.log);
		int began = count_in(log, "SIGHUP: reloading");
		ck_assert_int_eq(kill(e.pid, SIGHUP), 0);
		double end = itest_now() + 20;
		while (count_in(log, "SIGHUP: reloading") == began && itest_now() < end) {
			itest_sleep(0.01);
			free(log);
			log = itest_read_file(e.log);
		}
		ck_assert_msg(count_in(log, "SIGHUP: reloading") > began, "no reload began:\n%s",
		              log);
		ck_assert_int_eq(kill(e.pid, SIGHUP), 0);
		/* each round is two reloads, whenever its second signal came */
		end = itest_now() + 60;
		while (count_in(log, "configuration reloaded:") < 2 * rounds && itest_now() < end) {
			itest_sleep(0.05);
			free(log);
			log = itest_read_file(e.log);
		}
		ck_assert_msg(count_in(log, "configuration reloaded:") == 2 * rounds,
		              "%d reloads expected:\n%s", 2 * rounds, log);
		if (strstr(log, "SIGHUP: a reload is in progress; reloading again after it") ||
		    rounds == 5)
			break;
	}
	ck_assert_msg(strstr(log, "SIGHUP: a reload is in progress; reloading again after it"),
	              "the second SIGHUP waited behind the first parse:\n%s", log);
	ck_assert_msg(strstr(log, "configuration reloaded: 50001 job(s); 1 added, 0 changed"), "%s",
	              log);
	ck_assert_msg(strstr(log, "configuration reloaded: 50001 job(s); 0 added, 0 changed"), "%s",
	              log);
	free(log);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A reload cannot rename the running instance (its name is its identity among the others):
 * it says so, and the daemon keeps its name. */
START_TEST(instance_changed_by_a_reload_is_logged)
{
	struct itest_env e;
	itest_env_setup(&e, "it_reload_inst", "it_reload_inst");
	itest_env_main(&e, "instance = \"first\";\n");
	itest_env_start(&e);
	ck_assert(itest_wait_log(e.log, "instance first", 20));
	itest_env_main(&e, "instance = \"second\";\n");
	ck_assert_int_eq(kill(e.pid, SIGHUP), 0);
	ck_assert_msg(itest_wait_log(e.log,
	                             "instance changed; this daemon stays instance \"first\" "
	                             "until pgcrond restarts",
	                             20),
	              "%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

/* The build runs off the loop; at log_level debug a reload says how long the loop was held
 * by its two steps there (the plugins' checks, the swap), the figure bench_scale reads. The
 * swap of 20,000 jobs goes in slices of a loop turn each, 8,192 jobs at most, so that the
 * fires due meanwhile are not held up (one turn of every job would hold them about 100 ms at
 * 100,000 jobs). */
START_TEST(a_reload_says_how_long_it_held_the_loop)
{
	struct itest_env e;
	itest_env_setup(&e, "it_reload_held", "it_reload_held");
	itest_env_main(&e, "log_level = \"debug\";\n");
	many_jobs(&e, 20);
	itest_env_start(&e);
	itest_env_job(
	    &e, "50-more.conf",
	    "job = { name = \"more\"; schedule = \"0 0 1 1 *\"; command = \"SELECT 3\"; };\n");
	ck_assert_int_eq(kill(e.pid, SIGHUP), 0);
	ck_assert_msg(itest_wait_log(e.log, "reload: added job \"more\"", 20), "%s",
	              itest_read_file(e.log));
	ck_assert_msg(itest_wait_log(e.log, "reload: the loop spent ", 20), "%s",
	              itest_read_file(e.log));
	char *log = itest_read_file(e.log);
	const char *line = strstr(log, "reload: the loop spent ");
	double plugins = -1, swap = -1, longest = -1;
	unsigned turns = 0;
	size_t most = 0;
	ck_assert_int_eq(sscanf(line,
	                        "reload: the loop spent %lf ms on the plugins and %lf ms on "
	                        "the swap, in %u turn(s) of at most %lf ms and %zu job(s)",
	                        &plugins, &swap, &turns, &longest, &most),
	                 5);
	ck_assert(plugins >= 0 && swap >= 0 && longest >= 0 && longest <= swap);
	/* the first turn, three slices at least, the last turn */
	ck_assert_msg(turns >= 5 && most > 0 && most <= 8192, "%s", line);
	ck_assert_msg(strstr(log, "configuration reloaded: 20001 job(s); 1 added, 0 changed"), "%s",
	              log);
	free(log);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

/* Replace FROM by TO (of the same length) in conf.d/NAME, in place, and put the file's times
 * back: its inode, size and modification time are what they were, only its text differs (an
 * edit within the same second that keeps the size). */
static void edit_in_place(const struct itest_env *e, const char *name, const char *from,
                          const char *to)
{
	char *path = itest_env_path(e, name);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	char *text = itest_read_file(path);
	char *at = strstr(text, from);
	ck_assert(at && strlen(from) == strlen(to));
	memcpy(at, to, strlen(to));
	FILE *fp = fopen(path, "r+");
	ck_assert(fp && fputs(text, fp) >= 0 && fclose(fp) == 0);
	struct timespec times[2] = {st.st_atim, st.st_mtim};
	ck_assert_int_eq(utimensat(AT_FDCWD, path, times, 0), 0);
	struct stat now;
	ck_assert_int_eq(stat(path, &now), 0);
	ck_assert(now.st_ino == st.st_ino && now.st_size == st.st_size &&
	          now.st_mtim.tv_sec == st.st_mtim.tv_sec &&
	          now.st_mtim.tv_nsec == st.st_mtim.tv_nsec);
	free(text);
	free(path);
}

/* SIGHUP, then wait for NEEDLE in the log (the COUNT-th "SIGHUP: reloading" first). */
static void reload_and_wait(struct itest_env *e, int count, const char *needle)
{
	ck_assert_int_eq(kill(e->pid, SIGHUP), 0);
	ck_assert_msg(itest_wait_log(e->log, needle, 60), "no \"%s\":\n%s", needle,
	              itest_read_file(e->log));
	ck_assert_int_eq(itest_count_in_file(e->log, "SIGHUP: reloading"), count);
}

/* A reload parses again only the job files whose text changed, and takes the others' jobs as
 * they were: an edit of one file among many is applied, exactly it, however it was made (the
 * same size, the same modification time); a bad edit is refused with its FILE:LINE while the
 * last good configuration runs on; the file put back as it was is, again, not parsed. */
START_TEST(a_reload_parses_only_the_files_that_changed)
{
	struct itest_env e;
	itest_env_setup(&e, "it_reload_files", "it_reload_files");
	itest_exec(e.db, "CREATE TABLE ticks (at timestamptz)");
	many_jobs(&e, 5);
	itest_env_job(&e, "50-tick.conf",
	              "job = { name = \"tick\"; schedule = \"* * * * * *\";"
	              " command = \"INSERT INTO ticks VALUES (now())\"; };\n");
	itest_env_start(&e);
	ck_assert(itest_wait_log(e.log, "jobs made in SQL applied", 20));

	edit_in_place(&e, "conf.d/02-jobs.conf", "\"t2-5\"; schedule = \"0 0 1 1 *\"",
	              "\"t2-5\"; schedule = \"0 0 2 1 *\"");
	reload_and_wait(&e, 1, "reload: 1 of 6 job file(s) parsed; the other 5 unchanged");
	char *log = itest_read_file(e.log);
	ck_assert_msg(strstr(log, "configuration reloaded: 5001 job(s); 0 added, 1 changed, 0 "
	                          "removed"),
	              "%s", log);
	ck_assert_msg(strstr(log, "reload: changed job \"t2-5\": schedule \"0 0 1 1 *\" -> "
	                          "\"0 0 2 1 *\""),
	              "%s", log);
	free(log);
	/* the registry follows */
	ck_assert(itest_env_wait(&e, 30,
	                         "SELECT schedule = '0 0 2 1 *' FROM pgcrond.job WHERE jobname = "
	                         "'t2-5'"));

	/* weekday 9: refused, with the file and line of the job (its 8th: line 9) */
	edit_in_place(&e, "conf.d/03-jobs.conf", "\"t3-7\"; schedule = \"0 0 1 1 *\"",
	              "\"t3-7\"; schedule = \"0 0 1 1 9\"");
	reload_and_wait(&e, 2, "reload failed; keeping the previous configuration");
	ck_assert_msg(itest_wait_log(e.log, "conf.d/03-jobs.conf:9: schedule", 10), "%s",
	              itest_read_file(e.log));
	/* the configuration in force runs on: the ticks go on */
	long long ticks = itest_env_count(&e, "SELECT count(*) FROM ticks");
	ck_assert(itest_env_wait(&e, 20, "SELECT count(*) > %lld FROM ticks", ticks));

	/* put back as it was: the same text as the configuration in force has, not parsed */
	edit_in_place(&e, "conf.d/03-jobs.conf", "\"t3-7\"; schedule = \"0 0 1 1 9\"",
	              "\"t3-7\"; schedule = \"0 0 1 1 *\"");
	reload_and_wait(&e, 3, "reload: 0 of 6 job file(s) parsed; the other 6 unchanged");
	ck_assert_int_eq(itest_count_in_file(e.log, "configuration reloaded: 5001 job(s); 0 added, "
	                                            "0 changed, 0 removed"),
	                 1);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A calendar is read again at each reload (docs/calendars.md), with runs in flight: a job
 * every second whose skip_dates holds today (in its own zone) does not run; the calendar
 * changed to leave today out, it runs from the reload on; a broken calendar at the next reload
 * is refused with its file and line, and the daemon keeps the dates it had (the job still
 * runs). Another job's run is in flight at each reload and ends as it would have. */
#define CAL_ZONE "Pacific/Kiritimati" /* UTC+14: its date is not the UTC date half the day */

static void write_ics(struct itest_env *e, const char *date, const char *broken)
{
	char *path = itest_env_path(e, "closed.ics");
	itest_write_file(path,
	                 "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//pgcrond//it_reload//EN\r\n"
	                 "BEGIN:VEVENT\r\nUID:closed@example.com\r\n"
	                 "DTSTART;VALUE=DATE:%s\r\n%sEND:VEVENT\r\nEND:VCALENDAR\r\n",
	                 date, broken);
	free(path);
}

/* Today in CAL_ZONE, written as FMT (to_char's), once it is not within a minute and a half
 * of the zone's midnight: "today" must stay; the table the test's job writes made. */
static char *cal_today(struct itest_env *e, const char *fmt)
{
	long long left = itest_scalar_ll(
	    e->db, "SELECT extract(epoch FROM date_trunc('day', now() AT TIME ZONE '" CAL_ZONE
	           "') + interval '1 day' - now() AT TIME ZONE '" CAL_ZONE "')::bigint");
	if (left < 90)
		itest_sleep((double)left + 2);
	char sql[160];
	snprintf(sql, sizeof(sql), "SELECT to_char(now() AT TIME ZONE '" CAL_ZONE "', '%s')", fmt);
	itest_exec(e->db, "CREATE TABLE public.cal_ticks (at timestamptz DEFAULT now())");
	return itest_scalar(e->db, sql);
}

/* closed-today, every second in CAL_ZONE but on the dates of calendar "closed", and busy, a
 * run of 3 s every second. */
static void cal_jobs(struct itest_env *e)
{
	itest_env_job(e, "10-cal.conf",
	              "jobs = ( { name = \"closed-today\"; schedule = \"* * * * * *\";"
	              " timezone = \"" CAL_ZONE "\"; skip_dates = \"closed\";"
	              " command = \"INSERT INTO public.cal_ticks DEFAULT VALUES\"; },\n"
	              " { name = \"busy\"; schedule = \"* * * * * *\";"
	              " command = \"SELECT pg_sleep(3)\"; } );\n");
}

/* Busy runs, closed-today does not. */
static void none_today(struct itest_env *e)
{
	ck_assert_msg(itest_env_wait(e, 20,
	                             "SELECT count(*) > 0 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'busy' AND status = 'running'"),
	              "%s", itest_tail(e->log));
	itest_sleep(2);
	ck_assert_int_eq(itest_env_count(e, "SELECT count(*) FROM public.cal_ticks"), 0);
	ck_assert_int_eq(itest_env_count(e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                    " WHERE job_name = 'closed-today'"),
	                 0);
}

/* The runid of a run of busy that began less than 1.5 s ago, once there is one: its row is
 * written about a second after its start (records wait while runs are under way) and it runs
 * 3 s, so what the test does next happens with it in flight. */
static char *busy_running(struct itest_env *e)
{
	char *runid = itest_wait_value(e->db,
	                               "SELECT max(runid)::text FROM pgcrond.job_run_details"
	                               " WHERE job_name = 'busy' AND status = 'running'"
	                               " AND start_time > now() - interval '1.5 s'",
	                               15);
	ck_assert_msg(runid != NULL, "no run of busy began:\n%s", itest_tail(e->log));
	return runid;
}

/* Busy's run RUNID ends as it would have (succeeded), within 10 s. */
static void busy_ended_well(struct itest_env *e, const char *runid)
{
	if (itest_env_wait(e, 10,
	                   "SELECT status = 'succeeded' FROM pgcrond.job_run_details"
	                   " WHERE runid = %s",
	                   runid))
		return;
	char *rows = itest_scalar(e->db, "SELECT string_agg(runid || ' ' || status || ' '"
	                                 " || start_time || ' ' || coalesce(end_time::text, '-'),"
	                                 " E'\\n' ORDER BY runid) FROM pgcrond.job_run_details"
	                                 " WHERE job_name = 'busy'");
	ck_assert_msg(0,
	              "busy's run %s, in flight at the change, did not end well; its rows:\n%s\n%s",
	              runid, rows ? rows : "(none)", itest_tail(e->log));
}

START_TEST(a_reload_reads_a_calendar_again)
{
	struct itest_env e;
	itest_env_setup(&e, "it_reload_cal", "it_reload_cal");
	char *today = cal_today(&e, "YYYYMMDD");
	write_ics(&e, today, "");
	itest_env_main(&e, "calendars = { closed = { ics = \"closed.ics\"; }; };\n");
	cal_jobs(&e);
	itest_env_start(&e);

	/* today is skipped: busy runs, closed-today does not */
	none_today(&e);

	/* the calendar changed (today out, another date in) with busy's run in flight: the next
	 * reload runs closed-today, and busy's run ends as it would have */
	char *running = busy_running(&e);
	write_ics(&e, "20000101", "");
	itest_env_reload(&e);
	ck_assert_msg(
	    itest_wait_log(e.log, "changed job \"closed-today\": the dates of its calendar", 5),
	    "%s", itest_tail(e.log));
	ck_assert_msg(itest_env_wait(&e, 10, "SELECT count(*) >= 2 FROM public.cal_ticks"), "%s",
	              itest_tail(e.log));
	busy_ended_well(&e, running);
	free(running);

	/* a broken calendar (today again, and a line libical refuses) with a run in flight: the
	 * reload is refused with the file and line, and the dates stay those of the last good
	 * read, so closed-today runs on */
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) > 0 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'busy' AND status = 'running'"),
	              "%s", itest_tail(e.log));
	write_ics(&e, today, "DTEND;VALUE=DATE:notadate\r\n");
	ck_assert_int_eq(kill(e.pid, SIGHUP), 0);
	ck_assert_msg(
	    itest_wait_log(e.log, "reload failed; keeping the previous configuration", 15), "%s",
	    itest_tail(e.log));
	ck_assert_msg(itest_wait_log(e.log, "closed.ics:7: calendar \"closed\": ", 2), "%s",
	              itest_tail(e.log));
	long long n = itest_env_count(&e, "SELECT count(*) FROM public.cal_ticks");
	ck_assert_msg(
	    itest_env_wait(&e, 10, "SELECT count(*) >= %lld FROM public.cal_ticks", n + 2),
	    "closed-today stopped after the broken calendar was refused:\n%s", itest_tail(e.log));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE job_name = 'busy' AND status = 'failed'"),
	                 0);
	free(today);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

struct log_count {
	const char *log, *needle;
	int n;
};

static bool log_has(void *arg)
{
	const struct log_count *c = arg;
	return itest_count_in_file(c->log, c->needle) >= c->n;
}

/* A table calendar (docs/calendars.md) is read when its table changes, without a reload: a job
 * every second whose skip_dates table holds today (in its own zone) does not run, and `pgcrond
 * next --job` reads the table too; today's row deleted (the documented trigger's NOTIFY), with
 * another job's run in flight, it runs; inserted again, it stops; the table dropped, the daemon
 * says what to do and keeps the last dates, at the next reload too. */
START_TEST(a_table_calendar_is_read_when_it_changes)
{
	struct itest_env e;
	itest_env_setup(&e, "it_reload_tcal", "it_reload_tcal");
	char *today = cal_today(&e, "YYYY-MM-DD");
	/* tomorrow's midnight in the zone: the job's next fire while today is skipped */
	char *tomorrow =
	    itest_scalar(e.db, "SELECT to_char((date_trunc('day', now() AT TIME ZONE '" CAL_ZONE
	                       "') + interval '1 day') AT TIME ZONE '" CAL_ZONE
	                       "' AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
	char sql[512];
	itest_exec(e.db, "CREATE TABLE public.closed (date date)");
	snprintf(sql, sizeof(sql), "INSERT INTO public.closed VALUES ('%s'), ('2000-01-01')",
	         today);
	itest_exec(e.db, sql);
	/* the trigger docs/calendars.md gives */
	itest_exec(e.db,
	           "CREATE FUNCTION public.calendar_changed() RETURNS trigger"
	           " LANGUAGE plpgsql AS $$BEGIN NOTIFY pgcrond_calendars; RETURN NULL; END$$");
	itest_exec(e.db, "CREATE TRIGGER calendar_changed AFTER INSERT OR UPDATE OR DELETE OR"
	                 " TRUNCATE ON public.closed FOR EACH STATEMENT"
	                 " EXECUTE FUNCTION public.calendar_changed()");
	itest_env_main(&e,
	               "calendars = { closed = { database = \"app\"; table = \"public.closed\"; "
	               "}; };\n");
	cal_jobs(&e);

	/* the CLI reads the table itself */
	int st;
	char *out =
	    itest_cli(&st, "next", "--job", "closed-today", "-c", e.conf, "--count", "1", NULL);
	ck_assert_msg(st == 0 && strstr(out, "skip_dates closed (2 dates)") &&
	                  strstr(out, tomorrow),
	              "next --job (want %s):\n%s", tomorrow, out);
	free(out);

	itest_env_start(&e);
	ck_assert_msg(itest_wait_log(e.log,
	                             "calendar \"closed\": 2 date(s) read from table "
	                             "public.closed of database \"app\"",
	                             20),
	              "%s", itest_tail(e.log));
	none_today(&e);

	/* today's row deleted with busy's run in flight: closed-today runs, without a reload */
	char *running = busy_running(&e);
	snprintf(sql, sizeof(sql), "DELETE FROM public.closed WHERE date = '%s'", today);
	itest_exec(e.db, sql);
	ck_assert_msg(itest_env_wait(&e, 10, "SELECT count(*) >= 2 FROM public.cal_ticks"), "%s",
	              itest_tail(e.log));
	busy_ended_well(&e, running);
	/* said as the calendar's change, not the jobs made in SQL's */
	ck_assert_msg(itest_wait_log(e.log,
	                             "table calendars: changed job \"closed-today\": the dates "
	                             "of its calendar",
	                             1),
	              "%s", itest_tail(e.log));
	ck_assert_int_eq(itest_count_in_file(e.log, "sql jobs: changed job"), 0);
	free(running);
	ck_assert_int_eq(itest_count_in_file(e.log, "SIGHUP"), 0);

	/* inserted again: it stops */
	snprintf(sql, sizeof(sql), "INSERT INTO public.closed VALUES ('%s')", today);
	itest_exec(e.db, sql);
	struct log_count twice = {e.log, "calendar \"closed\": 2 date(s)", 2};
	ck_assert_msg(itest_wait_until(log_has, &twice, 10), "%s", itest_tail(e.log));
	itest_sleep(1.5); /* a run started before the read ends */
	long long n = itest_env_count(&e, "SELECT count(*) FROM public.cal_ticks");
	itest_sleep(2.5);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM public.cal_ticks"), n);

	/* the table dropped: what to do is said, the last dates stay, at a reload too */
	itest_exec(e.db, "DROP TABLE public.closed");
	itest_exec(e.db, "NOTIFY pgcrond_calendars");
	ck_assert_msg(itest_wait_log(e.log,
	                             "calendar \"closed\": cannot read its dates from table "
	                             "public.closed of database \"app\": relation "
	                             "\"public.closed\" does not exist",
	                             10),
	              "%s", itest_tail(e.log));
	ck_assert_msg(itest_wait_log(e.log,
	                             "its jobs keep its last dates (2 date(s)); give the table a "
	                             "column \"date\" of type date",
	                             1),
	              "%s", itest_tail(e.log));
	itest_env_reload(&e);
	itest_sleep(2.5);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM public.cal_ticks"), n);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE job_name = 'busy' AND status = 'failed'"),
	                 0);
	/* next --job and list, which cannot read it either, say what the daemon does */
	const char *kept = "public.closed of database \"app\": relation \"public.closed\" does "
	                   "not exist; the running daemon fires its jobs on the dates it last "
	                   "read ('pgcrond status JOB' shows when)\n";
	out = itest_cli(&st, "next", "--job", "closed-today", "-c", e.conf, NULL);
	ck_assert_msg(
	    st == 0 && strstr(out, kept) &&
	        strstr(out, "skip_dates closed (not read here), time zone " CAL_ZONE "\nunknown\n"),
	    "next --job with the table dropped:\n%s", out);
	free(out);
	out = itest_cli(&st, "list", "-c", e.conf, NULL);
	ck_assert_msg(st == 0 && strstr(out, kept) &&
	                  strstr(out, "skip_dates closed  -      -       yes            "
	                              "unknown (calendar not read)\n"),
	              "list with the table dropped:\n%s", out);
	free(out);
	free(today);
	free(tomorrow);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

/* How many times the daemon has read public.slow (its function counts them in a sequence). */
static long long slow_reads(struct itest_env *e)
{
	return itest_env_count(e, "SELECT CASE WHEN is_called THEN last_value ELSE 0 END"
	                          " FROM public.slow_reads");
}

/* Any role may send NOTIFY pgcrond_calendars, so notifications coalesce (docs/calendars.md):
 * a table calendar whose reads take a second (a view over a slow function that counts them).
 * 50 notifications with a read in flight cost one more read (PostgreSQL hands them over
 * together once that read's transaction is over), which applies a date added before the last; a
 * steady stream of notifications, each during a read, does not keep a date added meanwhile from
 * being applied while the stream goes on. The LISTEN is sent once a connect, not again before each
 * read. */
START_TEST(calendar_notifications_coalesce)
{
	struct itest_env e;
	itest_env_setup(&e, "it_reload_tspam", "it_reload_tspam");
	itest_exec(e.db, "CREATE TABLE public.closed (date date)");
	itest_exec(e.db, "INSERT INTO public.closed VALUES ('2000-01-01')");
	itest_exec(e.db, "CREATE SEQUENCE public.slow_reads");
	itest_exec(e.db, "CREATE FUNCTION public.slow_dates() RETURNS SETOF date LANGUAGE plpgsql"
	                 " AS $$BEGIN PERFORM nextval('public.slow_reads'); PERFORM pg_sleep(1);"
	                 " RETURN QUERY SELECT date FROM public.closed; END$$");
	itest_exec(e.db, "CREATE VIEW public.slow AS SELECT d AS date FROM public.slow_dates() d");
	itest_env_main(&e, "calendars = { slow = { database = \"app\"; table = \"public.slow\"; "
	                   "}; };\n");
	itest_env_start(&e);
	ck_assert_msg(itest_wait_log(e.log, "calendar \"slow\": 1 date(s) read from table", 20),
	              "%s", itest_tail(e.log));

	/* a read in flight, then 50 notifications, a date added before the last */
	long long before = slow_reads(&e);
	itest_exec(e.db, "NOTIFY pgcrond_calendars");
	ck_assert_msg(
	    itest_env_wait(&e, 10, "SELECT last_value > %lld FROM public.slow_reads", before), "%s",
	    itest_tail(e.log));
	long long in_flight = slow_reads(&e);
	for (int i = 0; i < 49; i++)
		itest_exec(e.db, "NOTIFY pgcrond_calendars");
	itest_exec(e.db, "INSERT INTO public.closed VALUES ('2001-01-01')");
	itest_exec(e.db, "NOTIFY pgcrond_calendars");
	ck_assert_msg(itest_wait_log(e.log, "calendar \"slow\": 2 date(s) read from table", 10),
	              "the date added before the last notification was missed:\n%s",
	              itest_tail(e.log));
	itest_sleep(3); /* longer than a read: one more would have begun */
	long long after = slow_reads(&e);
	ck_assert_msg(after - in_flight <= 1,
	              "50 notifications with a read in flight cost %lld more reads:\n%s",
	              after - in_flight, itest_tail(e.log));

	/* a steady stream, a notification every 0.3 s: the date added is applied within it */
	itest_exec(e.db, "INSERT INTO public.closed VALUES ('2002-01-01')");
	bool applied = false;
	for (double end = itest_now() + 12; !applied && itest_now() < end;) {
		itest_exec(e.db, "NOTIFY pgcrond_calendars");
		itest_sleep(0.3);
		applied = itest_count_in_file(e.log, "calendar \"slow\": 3 date(s) read") > 0;
	}
	ck_assert_msg(applied,
	              "a stream of notifications kept the date added from being "
	              "applied:\n%s",
	              itest_tail(e.log));

	/* a reload reads the calendar and the jobs made in SQL again; one LISTEN batch a connect:
	 * none of those reads sent it again */
	long long reads = slow_reads(&e);
	itest_env_reload(&e);
	ck_assert_msg(
	    itest_env_wait(&e, 10, "SELECT last_value > %lld FROM public.slow_reads", reads), "%s",
	    itest_tail(e.log));
	itest_sleep(1.5);
	ck_assert_int_eq(itest_count_in_file(e.log, "listening on \"pgcrond_calendars\""), 1);
	ck_assert_int_eq(itest_count_in_file(e.log, "listening on \"pgcrond_jobs\""), 1);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("reload");
	TCase *tc = tcase_create("reload");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, second_sighup_during_a_parse_is_answered_at_once);
	tcase_add_test(tc, instance_changed_by_a_reload_is_logged);
	tcase_add_test(tc, a_reload_says_how_long_it_held_the_loop);
	tcase_add_test(tc, a_reload_parses_only_the_files_that_changed);
	tcase_add_test(tc, a_reload_reads_a_calendar_again);
	tcase_add_test(tc, a_table_calendar_is_read_when_it_changes);
	suite_add_tcase(s, tc);
	TCase *notes = tcase_create("calendar_notifications");
	tcase_set_timeout(notes, 120);
	tcase_add_test(notes, calendar_notifications_coalesce);
	suite_add_tcase(s, notes);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
