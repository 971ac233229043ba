/* The spill file's line format (history.c): what goes in comes out, NULL stays apart from
 * "" and from a literal "\N", and a torn or damaged line is recognised. And the spill file
 * itself: created 0600, never opened through a symbolic link. */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "history.h"
#include "hist_spool.h"

static int roundtrip(const char *kind, const char *const *in, int n, const char **out, char **keep)
{
	char *line;
	size_t len;
	const char *k;

	ck_assert_int_eq(hist_spool_encode(kind, in, n, &line, &len), 0);
	ck_assert_uint_eq(strlen(line), len);
	ck_assert(len > 0 && line[len - 1] == '\n');
	ck_assert_ptr_null(memchr(line, '\n', len - 1)); /* one record, one line */
	int got = hist_spool_decode(line, len - 1, &k, out, HIST_SPOOL_MAX_FIELDS);
	ck_assert_str_eq(k, kind);
	*keep = line;
	return got;
}

START_TEST(fields_survive)
{
	const char *in[] = {"plain",       "",    NULL, "tab\there", "new\nline\r\n",
	                    "back\\slash", "\\N", "\\", "ünïcödé ✓", "trailing\\"};
	const int n = sizeof(in) / sizeof(in[0]);
	const char *out[HIST_SPOOL_MAX_FIELDS];
	char *line;

	ck_assert_int_eq(roundtrip("S1", in, n, out, &line), n);
	for (int i = 0; i < n; i++) {
		if (!in[i])
			ck_assert_ptr_null(out[i]);
		else
			ck_assert_str_eq(out[i], in[i]);
	}
	free(line);
}
END_TEST

START_TEST(no_fields_and_empty_edges)
{
	const char *out[HIST_SPOOL_MAX_FIELDS];
	char *line;

	ck_assert_int_eq(roundtrip("P1", NULL, 0, out, &line), 0);
	free(line);
	const char *one_null[] = {NULL};
	ck_assert_int_eq(roundtrip("P1", one_null, 1, out, &line), 1);
	ck_assert_ptr_null(out[0]);
	free(line);
	const char *empties[] = {"", ""};
	ck_assert_int_eq(roundtrip("F1", empties, 2, out, &line), 2);
	ck_assert_str_eq(out[0], "");
	ck_assert_str_eq(out[1], "");
	free(line);
}
END_TEST

START_TEST(damage_is_detected)
{
	const char *in[] = {"instance", "key", "a message"};
	const char *out[HIST_SPOOL_MAX_FIELDS], *k;
	char *line;
	size_t len;

	ck_assert_int_eq(hist_spool_encode("F1", in, 3, &line, &len), 0);
	/* every single flipped byte of the body or checksum */
	for (size_t i = 0; i + 1 < len; i++) {
		char *copy = strndup(line, len - 1);
		copy[i] ^= 0x01;
		ck_assert_int_eq(hist_spool_decode(copy, len - 1, &k, out, HIST_SPOOL_MAX_FIELDS),
		                 -EBADMSG);
		free(copy);
	}
	/* every truncation: a write torn by a crash */
	for (size_t cut = 0; cut + 1 < len; cut++) {
		char *copy = strndup(line, cut);
		ck_assert_int_eq(hist_spool_decode(copy, cut, &k, out, HIST_SPOOL_MAX_FIELDS),
		                 -EBADMSG);
		free(copy);
	}
	/* more fields than the caller takes */
	char *copy = strndup(line, len - 1);
	ck_assert_int_eq(hist_spool_decode(copy, len - 1, &k, out, 2), -E2BIG);
	free(copy);
	free(line);
	/* and a line of more fields than a spill line holds is not made */
	const char *many[HIST_SPOOL_MAX_FIELDS + 1] = {0};
	line = NULL;
	ck_assert_int_eq(hist_spool_encode("F1", many, HIST_SPOOL_MAX_FIELDS + 1, &line, &len),
	                 -E2BIG);
	ck_assert_ptr_null(line);
}
END_TEST

/* No server is needed: hist_open only starts connecting; the socket dir does not exist. */
#define NO_SERVER "host=/nonexistent-pgcrond-test dbname=x connect_timeout=1"

static void state_dir(char *dir, size_t len)
{
	snprintf(dir, len, "/tmp/pgcrond-hist-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void rm_rf(const char *dir)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(spool_is_created_0600)
{
	char dir[64], path[128];
	struct event_base *base = event_base_new();
	struct hist *h = NULL;
	struct stat st;
	mode_t old = umask(0); /* even when the umask would allow more */

	state_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/" HIST_SPOOL_FILE, dir);
	ck_assert_int_eq(hist_open(base, NO_SERVER, dir, "test", 0, &h), 0);
	umask(old);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	hist_close(&h);
	/* one left wider by hand is narrowed when opened */
	ck_assert_int_eq(chmod(path, 0644), 0);
	ck_assert_int_eq(hist_open(base, NO_SERVER, dir, "test", 0, &h), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	hist_close(&h);
	event_base_free(base);
	rm_rf(dir);
}
END_TEST

/* The acknowledged lines at the start of a spill file give their disk back as a punched
 * hole (NUL bytes up to a block boundary), followed by the rest of the acknowledged line the
 * boundary cut: a restart counts only the whole lines after it. */
START_TEST(spool_hole_is_skipped)
{
	char dir[64], path[128];
	struct event_base *base = event_base_new();
	struct hist *h = NULL;

	state_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/" HIST_SPOOL_FILE, dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	static const char hole[8192];
	ck_assert_int_eq(write(fd, hole, sizeof(hole)), (ssize_t)sizeof(hole));
	const char *rest = "an acknowledged line's end\n";
	ck_assert_int_eq(write(fd, rest, strlen(rest)), (ssize_t)strlen(rest));
	for (int i = 0; i < 2; i++) {
		const char *f[6] = {"test", "k", "succeeded", "", "", "1"};
		char *line;
		size_t len;
		ck_assert_int_eq(hist_spool_encode("F1", f, 6, &line, &len), 0);
		ck_assert_int_eq(write(fd, line, len), (ssize_t)len);
		free(line);
	}
	close(fd);
	ck_assert_int_eq(hist_open(base, NO_SERVER, dir, "test", 0, &h), 0);
	ck_assert_uint_eq(hist_pending(h), 2);
	hist_close(&h);
	event_base_free(base);
	rm_rf(dir);
}
END_TEST

/* history.spool -> another file (the daemon user's .pgpass, in the issue): refused, and the
 * other file is neither truncated nor written. */
START_TEST(spool_symlink_is_refused)
{
	char dir[64], path[128], target[128], buf[64] = "";
	struct event_base *base = event_base_new();
	struct hist *h = NULL;

	state_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/" HIST_SPOOL_FILE, dir);
	snprintf(target, sizeof(target), "%s/precious", dir);
	FILE *f = fopen(target, "w");
	ck_assert_ptr_nonnull(f);
	fputs("*:*:*:*:secret\n", f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(symlink(target, path), 0);

	ck_assert_int_eq(hist_open(base, NO_SERVER, dir, "test", 0, &h), -ELOOP);
	ck_assert_ptr_null(h);
	f = fopen(target, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	fclose(f);
	ck_assert_str_eq(buf, "*:*:*:*:secret\n");
	/* a hard link to it is refused too */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(link(target, path), 0);
	ck_assert_int_eq(hist_open(base, NO_SERVER, dir, "test", 0, &h), -EPERM);
	event_base_free(base);
	rm_rf(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("history");
	TCase *tc = tcase_create("spool");
	tcase_add_test(tc, fields_survive);
	tcase_add_test(tc, no_fields_and_empty_edges);
	tcase_add_test(tc, damage_is_detected);
	suite_add_tcase(s, tc);
	tc = tcase_create("spill file");
	tcase_add_test(tc, spool_is_created_0600);
	tcase_add_test(tc, spool_symlink_is_refused);
	tcase_add_test(tc, spool_hole_is_skipped);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
