/* The CLI and the docs agree on every exit code: the table under "Exit codes" in
 * docs/operations.md is read, and each case it names (`pgcrond ...` in its last column) is
 * run, against a running daemon or in the setting the case names in parentheses after it,
 * and must exit with its row's code. A case whose setting this test does not know, or a code
 * of the table without a case, fails it: a row added to the docs is a row tested. */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

#define DB "it_exit_codes"
#define DOC TEST_SOURCE_DIR "/../docs/operations.md"
#define MAX_WORDS 16

/* The words of CMD as a shell splits them (blanks, and '...' kept whole), into W; their
 * number. CMD is changed in place. */
static int split_words(char *cmd, char *w[MAX_WORDS])
{
	int n = 0;
	for (char *p = cmd; *p && n < MAX_WORDS - 1;) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		char *end = *p == '\'' ? strchr(p + 1, '\'') : p + strcspn(p, " ");
		ck_assert_msg(end != NULL, "an unclosed quote in %s", cmd);
		w[n++] = *p == '\'' ? p + 1 : p;
		p = *end ? end + 1 : end;
		*end = '\0';
	}
	w[n] = NULL;
	return n;
}

/* `pgcrond run -c CONF` as root, not as the sandbox's user: its exit status. */
static int run_as_root(const char *conf)
{
	pid_t pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execl(PGCROND_BIN, "pgcrond", "run", "-c", conf, (char *)NULL);
		_exit(127);
	}
	int st;
	ck_assert(waitpid(pid, &st, 0) == pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A copy of E's main file as NAME, its conf_dir CONF_DIR and its conninfo CI. */
static char *main_file(const struct itest_env *e, const char *name, const char *conf_dir,
                       const char *ci)
{
	char *path = itest_env_path(e, name);
	itest_write_file(path,
	                 "timezone = \"UTC\";\nplugin_dir = \"%s/plugins\";\nconf_dir = \"%s\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = { app = { conninfo = \"%s\"; pool = 4; }; };\n"
	                 "history = { database = \"app\"; };\n",
	                 e->dir, conf_dir, e->dir, ci);
	return path;
}

START_TEST(every_code_of_the_docs)
{
	struct itest_env e;
	int status;
	char *out;

	itest_env_init(&e, "exit-codes", DB);
	itest_env_job(&e, "10-jobs.conf",
	              "jobs = ( { name = \"nightly\"; database = \"app\"; schedule = \"0 3 * * *\";"
	              " command = \"SELECT 1\"; },\n"
	              "  { name = \"purge\"; database = \"app\"; schedule = \"0 4 * * *\";"
	              " command = \"SELECT 1/0\"; retries = 0; },\n"
	              "  { name = \"slow\"; database = \"app\"; schedule = \"0 5 * * *\";"
	              " command = \"SELECT pg_sleep(20)\"; } );\n");
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	free(out);
	itest_env_start(&e);

	/* the settings a case may name */
	char *no_daemon = itest_env_other_host(&e);
	char *down = main_file(&e, "down.conf", "conf.d",
	                       "host=/nonexistent-pgcrond-exit-codes port=1 dbname=app");
	char *broken_dir = itest_env_path(&e, "broken.d");
	ck_assert(mkdir(broken_dir, 0755) == 0);
	char *file = itest_env_path(&e, "broken.d/10-broken.conf");
	itest_write_file(file, "job = { name = ; };\n");
	free(file);
	char *broken = main_file(&e, "broken.conf", "broken.d", e.ci);
	char *refused_dir = itest_env_path(&e, "refused.d");
	ck_assert(mkdir(refused_dir, 0755) == 0);
	itest_env_plugin(&e, PLUGIN_BUILD_DIR "/lane_distribution.so", "lane_distribution");
	file = itest_env_path(&e, "refused.d/10-lanes.conf");
	itest_write_file(file, "job = { name = \"lanes\"; plugin = \"lane_distribution\";"
	                       " database = \"app\"; schedule = \"*/10 * * * *\"; };\n");
	free(file);
	/* (a database of its own: no analytics tables, the running daemon's registry untouched) */
	char *refused_ci = itest_fresh_db(DB "_refused");
	char *refused = main_file(&e, "refused.conf", "refused.d", refused_ci);
	/* a job made in SQL whose day no month has: the running daemon leaves it out */
	itest_exec(e.db, "SELECT cron.schedule('never', '0 0 30 2 *', 'SELECT 1')");
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT refused IS NOT NULL FROM pgcrond.job"
	                             " WHERE jobname = 'never'"),
	              "the daemon did not refuse never:\n%s", itest_tail(e.log));
	static const char *const settings[] = {"no daemon",
	                                       "the database down",
	                                       "a job file with an error",
	                                       "a view the server refuses",
	                                       "as root",
	                                       "a job the daemon refuses"};
	const char *confs[] = {no_daemon, down, broken, refused, e.conf, e.conf};

	char *doc = itest_read_file(DOC), *sect = strstr(doc, "\n## Exit codes");
	ck_assert_msg(sect != NULL, "no \"## Exit codes\" section in %s", DOC);
	char *sect_end = strstr(sect + 1, "\n## ");
	if (sect_end)
		*sect_end = '\0';
	char bad[16384] = "";
	size_t o = 0;
	int rows = 0, cases = 0;
	for (char *line = strtok(sect, "\n"); line; line = strtok(NULL, "\n")) {
		int code, at = 0;
		if (sscanf(line, "| %d |%n", &code, &at) != 1 || at == 0)
			continue;
		rows++;
		int in_row = 0;
		/* every `pgcrond ...` of the row's last cell, and its setting in parentheses */
		for (char *p = line; (p = strstr(p, "`pgcrond "));) {
			char *end = strchr(p + 1, '`');
			ck_assert_msg(end != NULL, "an unclosed ` in: %s", line);
			char cmd[512], setting[128] = "";
			snprintf(cmd, sizeof(cmd), "%.*s", (int)(end - p - 1), p + 1);
			if (strncmp(end, "` (", 3) == 0 && strchr(end, ')'))
				snprintf(setting, sizeof(setting), "%.*s",
				         (int)(strchr(end, ')') - end - 3), end + 3);
			p = end + 1;
			char *w[MAX_WORDS];
			char words[512];
			snprintf(words, sizeof(words), "%s", cmd);
			int n = split_words(words, w);
			const char *conf = e.conf;
			size_t s = 0;
			for (; setting[0] && s < sizeof(settings) / sizeof(settings[0]); s++)
				if (strcmp(setting, settings[s]) == 0)
					break;
			ck_assert_msg(!setting[0] || s < sizeof(settings) / sizeof(settings[0]),
			              "`%s` (%s): a setting this test does not know; teach it", cmd,
			              setting);
			if (setting[0])
				conf = confs[s];
			/* -c CONF after the command, unless the case gives its own or reads no
			 * configuration (next EXPR) */
			const char *a[MAX_WORDS + 2] = {0};
			int k = 0;
			a[k++] = w[1];
			bool has_c = n < 2 || (strcmp(w[1], "next") == 0 && !strstr(cmd, "--job"));
			for (int i = 2; i < n; i++)
				has_c |= strcmp(w[i], "-c") == 0;
			if (!has_c) {
				a[k++] = "-c";
				a[k++] = conf;
			}
			for (int i = 2; i < n; i++)
				a[k++] = w[i];
			int got;
			if (setting[0] && strcmp(setting, "as root") == 0) {
				if (getuid() != 0) {
					fprintf(stderr,
					        "it_exit_codes: `%s` (as root) skipped: not root\n",
					        cmd);
					in_row++;
					continue;
				}
				got = run_as_root(conf);
				out = strdup("");
			} else {
				out =
				    itest_cli(&got, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7],
				              a[8], a[9], a[10], a[11], a[12], a[13], a[14], NULL);
			}
			cases++;
			in_row++;
			if (got != code)
				o += (size_t)snprintf(
				    bad + o, sizeof(bad) - o,
				    "`%s`%s%s%s: exit %d, the docs say %d: %.300s\n", cmd,
				    setting[0] ? " (" : "", setting, setting[0] ? ")" : "", got,
				    code, out);
			free(out);
			if (o >= sizeof(bad))
				o = sizeof(bad) - 1;
		}
		ck_assert_msg(in_row > 0, "exit %d has no case in the table: %s", code, line);
	}
	ck_assert_msg(rows >= 9 && cases >= 20, "the table has %d rows, %d cases: %s", rows, cases,
	              DOC);
	ck_assert_msg(o == 0, "the CLI and docs/operations.md disagree:\n%s", bad);

	free(doc);
	itest_exec(e.db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
	                 " WHERE query = 'SELECT pg_sleep(20)'");
	itest_env_stop(&e, SIGTERM, 40);
	free(no_daemon);
	free(down);
	free(broken_dir);
	free(broken);
	free(refused_dir);
	free(refused_ci);
	free(refused);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("exit_codes");
	TCase *tc = tcase_create("exit_codes");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, every_code_of_the_docs);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	int failed = itest_run_share(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
