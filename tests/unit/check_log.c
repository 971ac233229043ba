/* Passwords never reach logs, history or errors: the conninfo redaction (log.c) and the
 * scrubbing of libpq's error text (pgconn.c). No database: libpq fails these connection
 * strings before it touches the network, or only reaches for a socket that is not there. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"

#define NOT_SHOWN "(connection string not shown: libpq cannot parse it)"

/* Options come out in libpq's order (service, user, password, ..., dbname, host, port, ...),
 * whatever the order written. */
static const struct {
	const char *in, *out;
} redact[] = {
    /* key=value */
    {"host=db1 dbname=app user=pgcrond password=secret",
     "user=pgcrond password=******** dbname=app host=db1"},
    {"password = secret host=db1", "password=******** host=db1"},
    /* quoted, with a quote and a backslash inside */
    {"host=db1 password='sec ret' dbname='my db'", "password=******** dbname='my db' host=db1"},
    {"password='s\\'e\\\\cret' host=db1", "password=******** host=db1"},
    /* a backslash escape in an unquoted value: the whole value is the password */
    {"password=sec\\ ret host=db1", "password=******** host=db1"},
    {"password=secret\\ host=db1", "password=********"},
    /* a tab (or a newline) between the key and '=' */
    {"password\t=secret host=db1", "password=******** host=db1"},
    {"host=db1\npassword\n=\nsecret", "password=******** host=db1"},
    /* URIs: userinfo, query, percent-encoded query key and value */
    {"postgresql://pgcrond:secret@db1:5433/app?sslmode=require",
     "user=pgcrond password=******** dbname=app host=db1 port=5433 sslmode=require"},
    {"postgres://pgcrond:se%63ret@db1/app", "user=pgcrond password=******** dbname=app host=db1"},
    {"postgresql://db1/app?password=secret", "password=******** dbname=app host=db1"},
    {"postgresql://db1/app?%70assword=secret", "password=******** dbname=app host=db1"},
    {"postgresql://db1/app?%70assword=%73ecret&application_name=x",
     "password=******** dbname=app host=db1 application_name=x"},
    {"postgresql://pgcrond:secret@[::1]:5433,db2/app",
     "user=pgcrond password=******** dbname=app host=::1,db2 port=5433,"},
    /* values that need quoting when shown */
    {"dbname=a\\\\b application_name='it\\'s here'",
     "dbname='a\\\\b' application_name='it\\'s here'"},
    /* no password at all */
    {"service=analytics", "service=analytics"},
    {"postgresql://db1/app", "dbname=app host=db1"},
    {"", ""},
    /* what libpq cannot parse is not shown: its parse may have missed the password */
    {"host=db1 password='secret", NOT_SHOWN},
    {"postgresql://pgcrond:s%zzecret@db1/app", NOT_SHOWN},
    {"postgresql://pgcrond:secret@[::1/app", NOT_SHOWN},
    {"host=db1 pasword=secret", NOT_SHOWN},
    {"postgresql://db1/app?passwd=secret", NOT_SHOWN},
    {"secret", NOT_SHOWN},
};

START_TEST(test_redact)
{
	char out[512];

	pgconn_redact_conninfo(redact[_i].in, out, sizeof(out));
	ck_assert_str_eq(out, redact[_i].out);
	ck_assert_msg(strstr(out, "secret") == NULL && strstr(out, "ecret") == NULL,
	              "password shown: %s", out);
}
END_TEST

/* A short buffer cuts the result; it never uncovers the password. */
START_TEST(test_redact_truncated)
{
	char out[16];

	for (size_t len = 1; len <= sizeof(out); len++) {
		memset(out, 'x', sizeof(out));
		pgconn_redact_conninfo("user=u password=secret", out, len);
		ck_assert_uint_lt(strlen(out), len);
		ck_assert_ptr_null(strstr(out, "sec"));
	}
	ck_assert_str_eq(out, "user=u password");
}
END_TEST

static const struct {
	const char *conninfo, *msg, *out;
} scrub[] = {
    /* the password, wherever libpq or a server quotes it; lines folded */
    {"host=db1 password=secret", "could not translate host name \"secret\" to address\n",
     "could not translate host name \"********\" to address"},
    {"host=db1 password='a secret'", "x \"a secret\" and \"a secret\"\n\tagain",
     "x \"********\" and \"********\" again"},
    /* a URI's password as written (percent-encoded) and as decoded */
    {"postgresql://u:se%63ret@db1/app", "bad thing in \"postgresql://u:se%63ret@db1/app\"",
     "bad thing in \"postgresql://u:********@db1/app\""},
    {"postgresql://u:se%63ret@db1/app", "server says secret", "server says ********"},
    {"password='p w!'", "quoted as p%20w%21 or p w!", "quoted as ******** or ********"},
    /* no password, or no conninfo known: the message as is */
    {"host=db1 dbname=app", "connection refused\n", "connection refused"},
    {NULL, "connection refused", "connection refused"},
    /* libpq cannot parse it: its message is withheld */
    {"postgresql://u:s%zzecret@db1/app", "invalid percent-encoded token: \"s%zzecret@db1\"",
     PGCONN_MESSAGE_WITHHELD},
    {"postgresql://u:secret@[::1/app",
     "end of string reached when looking for matching \"]\" in IPv6 host address in URI: "
     "\"postgresql://u:secret@[::1/app\"",
     PGCONN_MESSAGE_WITHHELD},
};

START_TEST(test_scrub)
{
	char out[512];

	ck_assert_ptr_eq(pgconn_scrub(scrub[_i].msg, scrub[_i].conninfo, out, sizeof(out)), out);
	ck_assert_str_eq(out, scrub[_i].out);
	ck_assert_ptr_null(strstr(out, "secret"));
}
END_TEST

/* Scrubbed before it is cut: a short buffer never keeps the start of a password. */
START_TEST(test_scrub_truncated)
{
	char out[8];

	pgconn_scrub("host \"secret\"", "password=secret", out, sizeof(out));
	ck_assert_str_eq(out, "host \"*");
}
END_TEST

/* libpq's own messages for URIs it cannot parse quote the password: they are withheld. */
START_TEST(test_error_safe_libpq)
{
	static const char *const bad[] = {
	    "postgresql://pgcrond:s%zzecret@db1/app",
	    "postgresql://pgcrond:secret@[::1/app",
	    "host=db1 password='secret",
	};
	char out[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		PGconn *c = PQconnectdb(bad[i]);
		ck_assert_int_eq(PQstatus(c), CONNECTION_BAD);
		pgconn_error_safe(c, bad[i], out, sizeof(out));
		ck_assert_str_eq(out, PGCONN_MESSAGE_WITHHELD);
		PQfinish(c);
	}
	/* the same through the CLI's connect: neither the string nor the message */
	PGconn *c = pgconn_connect_blocking(bad[0], "check_log", out, sizeof(out));
	ck_assert_ptr_null(c);
	ck_assert_str_eq(out,
	                 "cannot connect: libpq cannot parse the connection string; check its "
	                 "syntax (neither the string nor libpq's message is shown because they "
	                 "may quote the password)");
}
END_TEST

/* A connection string libpq takes, to a server that is not there (a socket directory that
 * does not exist): the redacted string and libpq's reason, without the password. */
START_TEST(test_connect_blocking_fails)
{
	char out[512];
	PGconn *c = pgconn_connect_blocking("host=/nonexistent-pgcrond port=1 password=secret",
	                                    "check_log", out, sizeof(out));
	const char *expect = "cannot connect to \"password=******** host=/nonexistent-pgcrond "
	                     "port=1\": connection to server on socket";

	ck_assert_ptr_null(c);
	ck_assert_msg(strncmp(out, expect, strlen(expect)) == 0, "%s", out);
	ck_assert_msg(strstr(out, "secret") == NULL, "password shown: %s", out);
}
END_TEST

/* Text from the server (a job's RAISE NOTICE) stays on one log line and cannot pass for a
 * line of the daemon's own. */
static const struct {
	const char *in, *out;
} escape[] = {
    {"plain text", "plain text"},
    {"one\n2026-01-01T00:00:00.000Z error: FORGED", "one\\n2026-01-01T00:00:00.000Z error: FORGED"},
    {"cr\rtab\tesc\x1b[31mdel\x7f", "cr\\rtab\\tesc\\x1b[31mdel\\x7f"},
    /* a backslash is doubled, so "\\n" written by the job is not an escaped newline */
    {"a\\nb", "a\\\\nb"},
    {"caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac"},
    /* a C1 control (CSI in 8 bits) as the other printers of such text write it (text.h) */
    {"csi\xc2\x9b"
     "2J",
     "csi\\u009b2J"},
    {"", ""},
};

START_TEST(test_escape)
{
	char out[256];

	ck_assert_int_eq(log_escape(escape[_i].in, out, sizeof(out)), 0);
	ck_assert_str_eq(out, escape[_i].out);
	ck_assert_ptr_null(strchr(out, '\n'));
}
END_TEST

START_TEST(test_escape_truncated)
{
	char out[8];

	/* cut between whole characters and whole escapes, never inside one */
	ck_assert_int_eq(log_escape("abcdef\n", out, sizeof(out)), -ENOSPC);
	ck_assert_str_eq(out, "abcdef");
	ck_assert_int_eq(log_escape("abcdef\xc3\xa9", out, sizeof(out)), -ENOSPC);
	ck_assert_str_eq(out, "abcdef");
	ck_assert_int_eq(log_escape("abc\x01", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "abc\\x01");
	ck_assert_int_eq(log_escape("abcd\x01", out, sizeof(out)), -ENOSPC);
	ck_assert_str_eq(out, "abcd");
	ck_assert_int_eq(log_escape(NULL, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "");
}
END_TEST

/* pgcrond's own connections: the conninfo's options (or PGOPTIONS), then the pinned path,
 * which the server applies last and so wins. */
START_TEST(test_pinned_options)
{
	static const struct {
		const char *conninfo, *env, *want;
	} cases[] = {
	    {"dbname=app", NULL, PGCONN_PINNED_OPTION},
	    {"dbname=app options='-c statement_timeout=5s'", NULL,
	     "-c statement_timeout=5s " PGCONN_PINNED_OPTION},
	    {"postgresql:///app?options=-c%20search_path%3Dpublic", NULL,
	     "-c search_path=public " PGCONN_PINNED_OPTION},
	    {"dbname=app", "-c work_mem=64MB", "-c work_mem=64MB " PGCONN_PINNED_OPTION},
	    /* the conninfo's own options win over PGOPTIONS, as in libpq */
	    {"dbname=app options=-cgeqo=off", "-c work_mem=64MB",
	     "-cgeqo=off " PGCONN_PINNED_OPTION},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].env)
			setenv("PGOPTIONS", cases[i].env, 1);
		else
			unsetenv("PGOPTIONS");
		char *got = pgconn_pinned_options(cases[i].conninfo);
		ck_assert_ptr_nonnull(got);
		ck_assert_str_eq(got, cases[i].want);
		free(got);
	}
	unsetenv("PGOPTIONS");
	ck_assert_str_eq(PGCONN_PINNED_OPTION, "-c search_path=pg_catalog,pg_temp");
}
END_TEST

/* A repeating failure is said once, then held back for the interval; a new reason is said at
 * once (a server that refused connections and comes back full), one that differs only in
 * its digits is not new; a reset says the next one again. */
START_TEST(test_complaint_new_reason)
{
	struct log_complaint c = {0};
	const char *refused = "connection to server at \"127.0.0.1\", port 5432 failed: "
	                      "Connection refused";
	ck_assert(log_complain(&c, refused));
	ck_assert(!log_complain(&c, refused));
	ck_assert(!log_complain(&c, "connection to server at \"127.0.0.1\", port 5433 failed: "
	                            "Connection refused"));
	ck_assert(!log_complain(&c, NULL)); /* no reason given: a repeat */
	ck_assert(log_complain(&c, "connection to server at \"127.0.0.1\", port 5432 failed: "
	                           "FATAL:  sorry, too many clients already"));
	ck_assert(!log_complain(&c, "connection to server at \"127.0.0.1\", port 5432 failed: "
	                            "FATAL:  sorry, too many clients already"));
	ck_assert(log_complain(&c, refused)); /* back to the first: new against the last */
	ck_assert(log_complaint_reset(&c));
	ck_assert(!log_complaint_reset(&c));
	ck_assert(log_complain(&c, NULL));
	ck_assert(!log_complain(&c, NULL));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("redact");
	tcase_add_loop_test(tc, test_redact, 0, (int)(sizeof(redact) / sizeof(redact[0])));
	tcase_add_test(tc, test_redact_truncated);
	suite_add_tcase(s, tc);
	tc = tcase_create("scrub");
	tcase_add_loop_test(tc, test_scrub, 0, (int)(sizeof(scrub) / sizeof(scrub[0])));
	tcase_add_test(tc, test_scrub_truncated);
	tcase_add_test(tc, test_error_safe_libpq);
	tcase_add_test(tc, test_connect_blocking_fails);
	tcase_add_test(tc, test_pinned_options);
	suite_add_tcase(s, tc);
	tc = tcase_create("escape");
	tcase_add_loop_test(tc, test_escape, 0, (int)(sizeof(escape) / sizeof(escape[0])));
	tcase_add_test(tc, test_escape_truncated);
	suite_add_tcase(s, tc);
	tc = tcase_create("complaint");
	tcase_add_test(tc, test_complaint_new_reason);
	suite_add_tcase(s, tc);

	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
