/* The http = { ... } group of pgcrond.conf (config_http.c): each mistake gives one
 * "FILE:LINE: message" a person can act on, and a good token file is read without its
 * newline. Configs are written into a fresh temp dir at run time, since the token file's
 * mode is part of what is checked. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

static char dir[] = "/tmp/check_http_config.XXXXXX";

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(chmod(path, mode), 0);
}

static void write_main(const char *http)
{
	char text[2048];
	snprintf(text, sizeof(text),
	         "databases = { analytics = { conninfo = \"dbname=analytics\"; }; };\n"
	         "state_dir = \".\";\n"
	         "%s",
	         http);
	write_file("pgcrond.conf", text, 0644);
}

static const char *diag_text(const struct diag *d)
{
	static char buf[2048];
	if (d->file && d->line > 0)
		snprintf(buf, sizeof(buf), "%s:%d: %s", d->file, d->line, d->message);
	else
		snprintf(buf, sizeof(buf), "%s: %s", d->file ? d->file : "?", d->message);
	return buf;
}

/* The one problem pgcrond.conf has, as text. */
static const char *one_problem(void)
{
	static char text[2048];
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	ck_assert_int_eq(config_load("pgcrond.conf", &cfg, &dl), -EINVAL);
	if (dl.n != 1) {
		for (size_t i = 0; i < dl.n; i++)
			fprintf(stderr, "  %s\n", diag_text(&dl.items[i]));
		ck_abort_msg("expected 1 problem, got %zu", dl.n);
	}
	snprintf(text, sizeof(text), "%s", diag_text(&dl.items[0]));
	diag_clear(&dl);
	return text;
}

static const struct {
	const char *http;
	const char *expect;
} bad[] = {
    {"http = \"127.0.0.1:9187\";\n",
     "pgcrond.conf:3: http must be a group like http = { listen = \"127.0.0.1:9187\"; };"},
    {"http = {\n  allow_remote = false;\n};\n",
     "pgcrond.conf:3: http has no listen; add listen = \"127.0.0.1:9187\" (or remove the http "
     "group to serve nothing)"},
    {"http = {\n  listne = \"127.0.0.1:9187\";\n};\n",
     "pgcrond.conf:4: unknown key \"listne\" in http; did you mean \"listen\"?"},
    {"http = { listen = 9187; };\n",
     "pgcrond.conf:3: listen must be a string like \"127.0.0.1:9187\""},
    {"http = { listen = \"9187\"; };\n",
     "pgcrond.conf:3: http listen \"9187\" is not ADDRESS:PORT; write it like "
     "\"127.0.0.1:9187\" or \"[::1]:9187\""},
    {"http = { listen = \"localhost:9187\"; };\n",
     "pgcrond.conf:3: http listen \"localhost:9187\": \"localhost\" is not a numeric IP "
     "address; write one like \"127.0.0.1:9187\" or \"[::1]:9187\" (host names are not "
     "resolved)"},
    {"http = { listen = \"127.0.0.1:70000\"; };\n",
     "pgcrond.conf:3: http listen \"127.0.0.1:70000\": the port must be at most 65535"},
    {"http = { listen = \"::1:9187\"; };\n",
     "pgcrond.conf:3: http listen \"::1:9187\" is not ADDRESS:PORT; write it like "
     "\"127.0.0.1:9187\" or \"[::1]:9187\""},
    {"http = {\n  listen = \"0.0.0.0:9187\";\n};\n",
     "pgcrond.conf:4: http listen \"0.0.0.0:9187\" is not a loopback address, so other hosts "
     "could reach the status page and metrics; add allow_remote = true and token_file = "
     "\"FILE\" to serve them with a bearer token, or listen on 127.0.0.1"},
    {"http = {\n  listen = \"[::]:9187\";\n  allow_remote = true;\n};\n",
     "pgcrond.conf:3: http: allow_remote = true needs token_file = \"FILE\", a file holding "
     "the bearer token clients must send (make one with: openssl rand -hex 32 > FILE; chmod "
     "600 FILE; chown it to the user pgcrond runs as)"},
    {"http = {\n  listen = \"10.0.0.5:9187\";\n  allow_remote = \"yes\";\n};\n",
     "pgcrond.conf:5: allow_remote must be true or false, without quotes"},
    {"http = {\n  listen = \"127.0.0.1:9187\";\n  tls_cert_file = \"http.pem\";\n};\n",
     "pgcrond.conf:3: http: TLS needs both tls_cert_file (the certificate chain, PEM) and "
     "tls_key_file (its private key, PEM)"},
};

START_TEST(test_bad_http)
{
	write_main(bad[_i].http);
	ck_assert_str_eq(one_problem(), bad[_i].expect);
}
END_TEST

#define REMOTE "http = {\n  listen = \"0.0.0.0:9187\";\n  allow_remote = true;\n"

START_TEST(test_token_file_problems)
{
	unlink("http.token");
	write_main(REMOTE "  token_file = \"http.token\";\n};\n");
	ck_assert_str_eq(one_problem(), "pgcrond.conf:6: token_file \"http.token\" does not exist; "
	                                "create it with: openssl rand -hex 32 > http.token; chmod "
	                                "600 http.token; chown it to the user pgcrond runs as");

	write_file("http.token", "0123456789abcdef0123456789abcdef\n", 0644);
	ck_assert_str_eq(one_problem(), "pgcrond.conf:6: token_file \"http.token\" can be read by "
	                                "others (mode 0644); run chmod 600 http.token");

	write_file("http.token", "0123456789abcdef0123456789abcdef\n", 0666);
	ck_assert_str_eq(one_problem(),
	                 "pgcrond.conf:6: refusing token_file: http.token is writable by others "
	                 "(mode 0666); run chmod go-w http.token");

	write_file("http.token", "short\n", 0600);
	ck_assert_str_eq(
	    one_problem(),
	    "pgcrond.conf:6: token_file \"http.token\" must hold one token of at least 16 "
	    "printable characters without spaces (make one with: openssl rand -hex 32 > "
	    "http.token)");
	write_file("http.token", "two words are not one token\n", 0600);
	ck_assert_str_eq(
	    one_problem(),
	    "pgcrond.conf:6: token_file \"http.token\" must hold one token of at least 16 "
	    "printable characters without spaces (make one with: openssl rand -hex 32 > "
	    "http.token)");
	unlink("http.token");
}
END_TEST

/* No message, of any kind, shows the token. */
START_TEST(test_token_read_and_never_shown)
{
	const char *secret = "8c1f0e3d5b7a9c2e4f6a8b0d1c3e5f70";
	char text[256];
	snprintf(text, sizeof(text), "%s\r\n\n", secret);
	write_file("http.token", text, 0600);
	write_main(REMOTE "  token_file = \"http.token\";\n};\n");
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	ck_assert_int_eq(config_load("pgcrond.conf", &cfg, &dl), 0);
	ck_assert_str_eq(cfg->http.token, secret);
	ck_assert_str_eq(cfg->http.host, "0.0.0.0");
	ck_assert_int_eq(cfg->http.port, 9187);
	ck_assert(cfg->http.allow_remote);
	config_free(&cfg);

	/* a problem elsewhere in the same file: the token is not in it */
	write_main(REMOTE "  token_file = \"http.token\";\n  colour = \"blue\";\n};\n");
	ck_assert_int_eq(config_load("pgcrond.conf", &cfg, &dl), -EINVAL);
	for (size_t i = 0; i < dl.n; i++)
		ck_assert_msg(!strstr(dl.items[i].message, secret), "%s", dl.items[i].message);
	diag_clear(&dl);
	unlink("http.token");
}
END_TEST

/* The TLS files: relative to the main file, readable, the key trusted like the token. */
START_TEST(test_tls_files)
{
	unlink("http.key");
	write_file("http.pem", "a certificate\n", 0644);
	write_main("http = {\n  listen = \"127.0.0.1:9187\";\n  tls_cert_file = \"http.pem\";\n"
	           "  tls_key_file = \"http.key\";\n};\n");
	ck_assert_str_eq(one_problem(), "pgcrond.conf:3: http tls_key_file \"http.key\" cannot be "
	                                "read: No such file or directory");
	write_file("http.key", "a key\n", 0666);
	ck_assert_str_eq(one_problem(),
	                 "pgcrond.conf:3: refusing tls_key_file: http.key is writable by others "
	                 "(mode 0666); run chmod go-w http.key");
	write_file("http.key", "a key\n", 0600);
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	ck_assert_int_eq(config_load("pgcrond.conf", &cfg, &dl), 0);
	ck_assert_str_eq(cfg->http.tls_cert_file, "http.pem");
	config_free(&cfg);
	unlink("http.key");
	unlink("http.pem");
}
END_TEST

START_TEST(test_loopback_default_off)
{
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;

	write_main("");
	ck_assert_int_eq(config_load("pgcrond.conf", &cfg, &dl), 0);
	ck_assert_ptr_null(cfg->http.listen); /* off unless asked for */
	config_free(&cfg);

	write_main("http = { listen = \"[::1]:0\"; };\n");
	ck_assert_int_eq(config_load("pgcrond.conf", &cfg, &dl), 0);
	ck_assert_str_eq(cfg->http.host, "::1");
	ck_assert_int_eq(cfg->http.port, 0);
	ck_assert_ptr_null(cfg->http.token);
	config_free(&cfg);

	ck_assert(config_http_loopback("127.0.0.1"));
	ck_assert(config_http_loopback("127.1.2.3"));
	ck_assert(config_http_loopback("::1"));
	ck_assert(!config_http_loopback("0.0.0.0"));
	ck_assert(!config_http_loopback("::"));
	ck_assert(!config_http_loopback("192.168.1.1"));
}
END_TEST

int main(void)
{
	if (!mkdtemp(dir) || chdir(dir) < 0 || mkdir("conf.d", 0755) < 0) {
		perror(dir);
		return EXIT_FAILURE;
	}
	FILE *f = fopen("conf.d/10-ok.conf", "w");
	if (!f)
		return EXIT_FAILURE;
	fputs("job = { name = \"ok\"; command = \"SELECT 1\"; schedule = \"*/5 * * * *\"; };\n", f);
	fclose(f);
	Suite *s = suite_create("http_config");
	TCase *tc = tcase_create("http_config");
	tcase_add_loop_test(tc, test_bad_http, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, test_token_file_problems);
	tcase_add_test(tc, test_token_read_and_never_shown);
	tcase_add_test(tc, test_tls_files);
	tcase_add_test(tc, test_loopback_default_off);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
