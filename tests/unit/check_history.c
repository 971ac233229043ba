/* The spill file's line format (history.c): what goes in comes out, NULL stays apart from
 * "" and from a literal "\N", and a torn or damaged line is recognised. The spill file
 * itself: created 0600, never opened through a symbolic link. And a batch's rows
 * (hist_batch_make): which run's row each pid and end lands on. */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hist_batch.h"
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

/* history.spool -> another file (the daemon user's .pgpass, say): refused, and the
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

/* ---- a batch's rows ---------------------------------------------------------------------- */

/* The records of a batch, as history_record.c writes them, from a line of TEXT: records
 * parted by ';', each "S1 INSTANCE KEY" (a start at 100; "S2 INSTANCE KEY PID": with its
 * pid), "P1 INSTANCE KEY PID" (a pid; "P2": with its run's start), "F1 INSTANCE KEY STATUS"
 * (an end at 200; "F2": with its run's start) or "C1 INSTANCE KEY SEQ" (a success counted: an
 * end at 200, its start at 100). The fields point into BUF. */
struct recs {
	struct hist_spool_line *l[16];
	size_t n;
};

static void recs_parse(struct recs *rs, const char *text, char *buf, size_t len)
{
	ck_assert_uint_lt((size_t)snprintf(buf, len, "%s", text), len);
	for (char *p = buf; p;) {
		char *semi = strchr(p, ';'), *w[4] = {NULL};
		if (semi)
			*semi = '\0';
		for (int n = 0; n < 4; n++) {
			for (; *p == ' '; p++)
				;
			w[n] = p;
			p += strcspn(p, " ");
			if (*p)
				*p++ = '\0';
		}
		bool two = w[0][1] == '2';
		const char *st[] = {w[1],   w[2], "boot", "job", "db", "u", "SELECT 1",
		                    "cron", NULL, "100",  "100", "1",  w[3]};
		const char *pid[] = {w[1], w[2], w[3], "100"};
		const char *end[] = {w[1], w[2], w[3], "done", NULL, "200", "100"};
		const char *count[] = {w[1], w[2], "200", "100", "job", "schedule", "100", w[3]};
		char k = w[0][0];
		const char *const *f = k == 'S' ? st : k == 'P' ? pid : k == 'C' ? count : end;
		int nf = k == 'S' ? 12 + two : k == 'P' ? 3 + two : k == 'C' ? 8 : 6 + two;
		ck_assert_uint_lt(rs->n, 16);
		struct hist_spool_line *l = calloc(1, sizeof(*l) + (size_t)nf * sizeof(l->f[0]));
		ck_assert_ptr_nonnull(l);
		l->kind = k == 'S'   ? (two ? "S2" : "S1")
		          : k == 'P' ? (two ? "P2" : "P1")
		          : k == 'C' ? "C1"
		                     : (two ? "F2" : "F1");
		l->n = nf;
		memcpy((void *)l->f, f, (size_t)nf * sizeof(*f));
		if (rs->n)
			rs->l[rs->n - 1]->next = l;
		rs->l[rs->n++] = l;
		p = semi ? semi + 1 : NULL;
	}
}

/* The statements of the batch from record FROM on, as the rows they write: "insert: ROW;
 * ROW | update: ... | update any: ...", a row "INSTANCE/KEY STATUS pid=PID end=END" (and
 * "start=START" for an update naming it, "start=START seq=SEQ" for a count), "-" for none;
 * then " | count: ..." if the batch counts any. *TAKEN: the records it holds. */
static const char *batch(struct recs *rs, size_t from, size_t max, size_t *taken)
{
	static char out[1024];
	static const char *const names[] = {"insert:", " | update:", " | update any:", " | count:"};
	struct hist_batch_row **order;
	size_t nset[4], len = 0;
	int n = hist_batch_make(rs->l[from], max, &order, nset);
	ck_assert_int_gt(n, 0);
	*taken = (size_t)n;
	out[0] = '\0';
	for (size_t set = 0, at = 0; set < 4; at += nset[set++]) {
		if (set == 3 && !nset[set])
			break;
		len += (size_t)snprintf(out + len, sizeof(out) - len, "%s", names[set]);
		for (size_t i = at; i < at + nset[set]; i++) {
			const char *const *f = order[i]->f;
#define OR_(v) ((v) ? (v) : "-")
			len += (size_t)snprintf(out + len, sizeof(out) - len,
			                        "%s %s/%s %s pid=%s end=%s", i > at ? ";" : "",
			                        f[HB_INSTANCE], f[HB_RUN_KEY], OR_(f[HB_STATUS]),
			                        OR_(f[HB_PID]), OR_(f[HB_END_US]));
			if (set == 1 || set == 3)
				len += (size_t)snprintf(out + len, sizeof(out) - len, " start=%s",
				                        f[HB_START_US]);
			if (set == 3)
				len += (size_t)snprintf(out + len, sizeof(out) - len, " seq=%s",
				                        f[HB_SEQ]);
#undef OR_
			ck_assert_uint_lt(len, sizeof(out));
		}
	}
	free(order);
	return out;
}

/* Which row each pid and end lands on, as the rows the batch's statements write; the inserts
 * go first in the batch's transaction, so an update may be for a row inserted there. */
static const struct batch_case {
	const char *why, *recs;
	size_t from, taken; /* the batch from record FROM holds TAKEN records */
	const char *rows;
} batch_cases[] = {
    {"a short run's three lines make one complete row, inserted once",
     "S1 i1 a.5; P2 i1 a.5 42; F2 i1 a.5 succeeded", 0, 3,
     "insert: i1/a.5 succeeded pid=42 end=200 | update: | update any:"},
    {"a start with its pid (a connection was free) and its end make one complete row",
     "S2 i1 a.5 42; F2 i1 a.5 succeeded", 0, 2,
     "insert: i1/a.5 succeeded pid=42 end=200 | update: | update any:"},
    {"a start with its pid and one without, then an end of each: the pid stays with its run",
     "S2 i1 a.5 42; S1 i1 a.6; F2 i1 a.6 failed; F2 i1 a.5 succeeded", 0, 4,
     "insert: i1/a.5 succeeded pid=42 end=200; i1/a.6 failed pid=- end=200 | update: | "
     "update any:"},
    {"two processes' runs whose numbers follow one another (a.5, then b.6 of another boot) "
     "keep their own pids; a.6's end (its start not in the batch) updates a.6, not b.6",
     "S1 i1 a.5; S1 i1 b.6; P2 i1 b.6 7; F2 i1 a.6 failed; P2 i1 a.5 8", 0, 5,
     "insert: i1/a.5 running pid=8 end=-; i1/b.6 running pid=7 end=- | "
     "update: i1/a.6 failed pid=- end=200 start=100 | update any:"},
    {"the same run key under another instance is another run",
     "S1 i1 a.5; P1 i2 a.5 9; F2 i1 a.5 succeeded", 0, 3,
     "insert: i1/a.5 succeeded pid=- end=200 | update: | update any: i2/a.5 - pid=9 end=-"},
    {"keys without a number (run 0 both): a line missed by the lookup updates its own row",
     "S1 i1 plain; S1 i1 x.y; P1 i1 plain 3; P1 i1 x.y 4", 0, 4,
     "insert: i1/plain running pid=- end=-; i1/x.y running pid=4 end=- | update: | "
     "update any: i1/plain - pid=3 end=-"},
    {"numbers past 64 bits (read as the largest, as 2^64 - 1 is) and 0 after 2^64 - 1 (one "
     "more, once it wraps): never on another run's row",
     "S1 i1 a.99999999999999999999; S1 i1 a.18446744073709551615; S1 i1 b.0; "
     "P2 i1 a.99999999999999999999 1; P2 i1 a.18446744073709551615 2; P2 i1 b.0 3; "
     "F2 i1 a.18446744073709551615 succeeded",
     0, 7,
     "insert: i1/a.99999999999999999999 running pid=- end=-; "
     "i1/a.18446744073709551615 succeeded pid=2 end=200; i1/b.0 running pid=- end=- | "
     "update: i1/a.99999999999999999999 - pid=1 end=- start=100; i1/b.0 - pid=3 end=- "
     "start=100 | update any:"},
    {"a start the spill file holds twice: the batch ends before the second (the end behind it "
     "completes the row)",
     "S1 i1 a.5; P2 i1 a.5 42; S1 i1 a.5; F2 i1 a.5 succeeded", 0, 2,
     "insert: i1/a.5 succeeded pid=42 end=200 | update: | update any:"},
    {"... which begins the next batch (a replay: its insert completes the row)",
     "S1 i1 a.5; P2 i1 a.5 42; S1 i1 a.5; F2 i1 a.5 succeeded", 2, 2,
     "insert: i1/a.5 succeeded pid=- end=200 | update: | update any:"},
    {"a pid before its run's start, and ends whose start an earlier batch wrote: updates, by "
     "the start's day when the line names it",
     "P2 i1 a.5 42; S1 i1 a.5; F2 i1 a.4 succeeded; F1 i1 a.3 failed", 0, 4,
     "insert: i1/a.5 running pid=- end=- | update: i1/a.5 - pid=42 end=- start=100; "
     "i1/a.4 succeeded pid=- end=200 start=100 | update any: i1/a.3 failed pid=- end=200"},
    {"history = \"failures\": a success counted with its start in the batch inserts no row "
     "(its pid merged first changes nothing); one whose start an earlier batch wrote is "
     "counted too (the count removes that row); a failure beside them is written",
     "S1 i1 a.5; P2 i1 a.5 42; S1 i1 a.6; C1 i1 a.5 1; C1 i1 a.4 2; F2 i1 a.6 failed", 0, 6,
     "insert: i1/a.6 failed pid=- end=200 | update: | update any: | count: i1/a.5 running "
     "pid=42 end=200 start=100 seq=1; i1/a.4 - pid=- end=200 start=100 seq=2"},
};

/* ROWS and TAKEN are what WANT and WANT_TAKEN say (WHY if not); RS's records are freed. */
static void expect_rows(struct recs *rs, const char *why, const char *rows, size_t taken,
                        const char *want, size_t want_taken)
{
	ck_assert_msg(strcmp(rows, want) == 0 && taken == want_taken,
	              "%s:\n got %s (%zu records)\nwant %s (%zu)", why, rows, taken, want,
	              want_taken);
	for (size_t i = 0; i < rs->n; i++)
		free(rs->l[i]);
}

START_TEST(batch_rows)
{
	const struct batch_case *c = &batch_cases[_i];
	struct recs rs = {0};
	char buf[512];
	size_t taken;
	recs_parse(&rs, c->recs, buf, sizeof(buf));
	const char *rows = batch(&rs, c->from, 16, &taken);
	expect_rows(&rs, c->why, rows, taken, c->rows, c->taken);
}
END_TEST

/* A batch of MAX records from the first, then the next batch's (UNMERGE: as if the first had
 * failed), as batch_cases' rows joined by " || ": a pid or end behind the batch completes its
 * start's row there, and is not written again. */
static const struct merge_case {
	const char *why, *recs;
	size_t max, taken;
	const char *rows;
	bool unmerge;
} merge_cases[] = {
    {"a run that ended before its start went out: its pid and end behind the batch complete "
     "the start's row, and the next batch writes nothing of them",
     "S1 i1 a.5; S1 i1 a.6; P2 i1 a.5 42; F2 i1 a.5 succeeded; F2 i1 a.6 failed; S1 i1 a.7", 2, 2,
     "insert: i1/a.5 succeeded pid=42 end=200; i1/a.6 failed pid=- end=200 | update: | update "
     "any: || insert: i1/a.7 running pid=- end=- | update: | update any:",
     false},
    {"... unless that batch failed: the lines go again as if never merged",
     "S1 i1 a.5; F2 i1 a.5 succeeded", 1, 1,
     "insert: i1/a.5 succeeded pid=- end=200 | update: | update any: || insert: | update: "
     "i1/a.5 succeeded pid=- end=200 start=100 | update any:",
     true},
};

START_TEST(batch_merges)
{
	const struct merge_case *c = &merge_cases[_i];
	struct recs rs = {0};
	char buf[512], rows[2048];
	size_t taken, next;
	recs_parse(&rs, c->recs, buf, sizeof(buf));
	snprintf(rows, sizeof(rows), "%s", batch(&rs, 0, c->max, &taken));
	if (c->unmerge)
		hist_batch_unmerge(rs.l[0]);
	size_t len = strlen(rows);
	snprintf(rows + len, sizeof(rows) - len, " || %s", batch(&rs, taken, 16, &next));
	expect_rows(&rs, c->why, rows, taken, c->rows, c->taken);
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
	tc = tcase_create("batch");
	tcase_add_loop_test(tc, batch_rows, 0, sizeof(batch_cases) / sizeof(batch_cases[0]));
	tcase_add_loop_test(tc, batch_merges, 0, sizeof(merge_cases) / sizeof(merge_cases[0]));
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
