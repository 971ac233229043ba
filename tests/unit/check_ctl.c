/* The control socket's protocol (ctl.h): requests parse into what they ask for, anything
 * else is refused with a reason a person can act on, what the client sends parses back to
 * itself, and the paused-jobs file is read back. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "text.h"

static int parse(const char *line, struct ctl_request *rq, char *err, size_t errlen)
{
	return ctl_parse_request(line, strlen(line), rq, err, errlen);
}

START_TEST(valid_requests)
{
	struct ctl_request rq;
	char err[256];
	ck_assert_int_eq(parse("{\"cmd\":\"status\"}", &rq, err, sizeof(err)), 0);
	ck_assert_int_eq(rq.cmd, CTL_STATUS);
	ck_assert_str_eq(rq.job, "");
	ck_assert_int_eq(
	    parse("{\"cmd\":\"status\",\"job\":\"refresh-lanes.v2\"}", &rq, err, sizeof(err)), 0);
	ck_assert_str_eq(rq.job, "refresh-lanes.v2");
	ck_assert_int_eq(parse(" {\"job\":\"a_b\", \"cmd\":\"pause\"} ", &rq, err, sizeof(err)), 0);
	ck_assert_int_eq(rq.cmd, CTL_PAUSE);
	ck_assert_int_eq(parse("{\"cmd\":\"resume\",\"job\":\"x\"}", &rq, err, sizeof(err)), 0);
	ck_assert_int_eq(rq.cmd, CTL_RESUME);
	ck_assert_int_eq(parse("{\"cmd\":\"trigger\",\"job\":\"x\",\"wait\":true,\"force\":false}",
	                       &rq, err, sizeof(err)),
	                 0);
	ck_assert_int_eq(rq.cmd, CTL_TRIGGER);
	ck_assert(rq.wait);
	ck_assert(!rq.force);
}
END_TEST

/* Each refusal names what is wrong. */
START_TEST(bad_requests)
{
	static const struct {
		const char *line, *says;
	} cases[] = {
	    {"", "not JSON"},
	    {"status", "not JSON"},
	    {"{\"cmd\":\"status\"", "not JSON"},
	    {"[\"status\"]", "expected a JSON object"},
	    {"{}", "\"cmd\" (a string) is missing"},
	    {"{\"cmd\":7}", "\"cmd\" (a string) is missing"},
	    {"{\"cmd\":\"stop\"}",
	     "unknown cmd \"stop\" (known: status, pause, resume, trigger, drop)"},
	    {"{\"cmd\":\"pause\"}", "cmd \"pause\" needs \"job\""},
	    {"{\"cmd\":\"trigger\",\"wait\":true}", "cmd \"trigger\" needs \"job\""},
	    {"{\"cmd\":\"drop\"}", "cmd \"drop\" needs \"job\""},
	    {"{\"cmd\":\"pause\",\"job\":\"x\",\"by\":\"alice\"}", "of cmd \"drop\" only"},
	    {"{\"cmd\":\"drop\",\"job\":\"x\",\"by\":\"al ice\"}", "\"by\" is a user name"},
	    {"{\"cmd\":\"pause\",\"job\":\"\"}", "\"job\" must be a job name"},
	    {"{\"cmd\":\"pause\",\"job\":\"a\\u0000b\"}", "not JSON"}, /* jansson's rule */
	    {"{\"cmd\":\"pause\",\"job\":3}", "\"job\" must be a job name"},
	    {"{\"cmd\":\"pause\",\"job\":\"x\",\"wait\":true}",
	     "\"wait\" is a boolean of cmd \"trigger\" only"},
	    {"{\"cmd\":\"trigger\",\"job\":\"x\",\"force\":\"yes\"}",
	     "\"force\" is a boolean of cmd \"trigger\" only"},
	    {"{\"cmd\":\"status\",\"jobs\":\"x\"}", "unknown key \"jobs\""},
	    {"{\"cmd\":\"status\",\"cmd\":\"pause\"}", "not JSON"},
	};
	char long_name[200];
	memset(long_name, 'a', sizeof(long_name));
	long_name[sizeof(long_name) - 1] = '\0';
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_request rq;
		char err[256] = "";
		ck_assert_int_eq(parse(cases[i].line, &rq, err, sizeof(err)), -EINVAL);
		ck_assert_msg(strstr(err, "bad request: ") == err && strstr(err, cases[i].says),
		              "%s: got \"%s\", want \"%s\"", cases[i].line, err, cases[i].says);
	}
	char line[300];
	snprintf(line, sizeof(line), "{\"cmd\":\"pause\",\"job\":\"%s\"}", long_name);
	struct ctl_request rq;
	char err[256];
	ck_assert_int_eq(parse(line, &rq, err, sizeof(err)), -EINVAL);
	ck_assert(strstr(err, "1 to 63"));
	/* an embedded NUL is not text */
	ck_assert_int_eq(ctl_parse_request("{\"cmd\":\"st\0atus\"}", 17, &rq, err, sizeof(err)),
	                 -EINVAL);
}
END_TEST

START_TEST(format_parses_back)
{
	struct ctl_request in[] = {
	    {.cmd = CTL_STATUS},
	    {.cmd = CTL_STATUS, .job = "j1"},
	    {.cmd = CTL_PAUSE, .job = "j-2"},
	    {.cmd = CTL_RESUME, .job = "j.3"},
	    {.cmd = CTL_TRIGGER, .job = "j_4", .force = true, .wait = true},
	    {.cmd = CTL_TRIGGER, .job = "j5"},
	    /* as pg_cron names jobs: any text of a PostgreSQL name (resolved by the daemon) */
	    {.cmd = CTL_TRIGGER, .job = "User Checkout & Session \"Maintenance\""},
	    {.cmd = CTL_PAUSE, .job = "nettoyage \xc3\xa9tape 2"},
	    {.cmd = CTL_STATUS, .job = "42"},
	};
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		char *line = ctl_format_request(&in[i]), err[256];
		ck_assert_ptr_nonnull(line);
		size_t len = strlen(line);
		ck_assert(len > 0 && line[len - 1] == '\n');
		ck_assert(memchr(line, '\n', len - 1) == NULL); /* one line */
		struct ctl_request out;
		ck_assert_int_eq(ctl_parse_request(line, len - 1, &out, err, sizeof(err)), 0);
		ck_assert_int_eq(out.cmd, in[i].cmd);
		ck_assert_str_eq(out.job, in[i].job);
		ck_assert_int_eq(out.force, in[i].force);
		ck_assert_int_eq(out.wait, in[i].wait);
		free(line);
	}
}
END_TEST

START_TEST(socket_path_fits)
{
	char out[200];
	ck_assert_int_eq(ctl_socket_path("/var/lib/pgcrond", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/var/lib/pgcrond/pgcrond.sock");
	char dir[150];
	memset(dir, 'd', sizeof(dir));
	dir[0] = '/';
	dir[sizeof(dir) - 1] = '\0';
	ck_assert_int_eq(ctl_socket_path(dir, out, sizeof(out)), -ENAMETOOLONG);
}
END_TEST

START_TEST(paused_file)
{
	char dir[] = "/tmp/check_ctl_XXXXXX", path[64];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char **names;
	size_t n;
	ck_assert_int_eq(ctl_load_paused(dir, &names, &n), 0); /* no file: none */
	ck_assert_uint_eq(n, 0);
	snprintf(path, sizeof(path), "%s/%s", dir, CTL_PAUSED_FILE);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("alpha\n\nbad name\nbeta\r\ngamma", f); /* blank, damaged, CRLF, no final LF */
	fclose(f);
	ck_assert_int_eq(ctl_load_paused(dir, &names, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(names[0], "alpha");
	ck_assert_str_eq(names[1], "beta");
	ck_assert_str_eq(names[2], "gamma");
	text_free_list(names, n);
	unlink(path);
	rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ctl");
	TCase *tc = tcase_create("protocol");
	tcase_add_test(tc, valid_requests);
	tcase_add_test(tc, bad_requests);
	tcase_add_test(tc, format_parses_back);
	tcase_add_test(tc, socket_path_fits);
	tcase_add_test(tc, paused_file);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
