#ifndef PGCROND_TEST_LOG_H
#define PGCROND_TEST_LOG_H

/* The log a unit-test harness sends to a file of its own (stderr redirected there): read it
 * whole, count a phrase in it, assert that it holds one. Shared by the scheduler's tests. */

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The log at PATH so far (malloc'd); stderr is flushed first so the last line is in it. */
static inline char *test_log_read(const char *path)
{
	fflush(stderr);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	size_t cap = 1 << 16;
	char *buf = malloc(cap);
	ck_assert_ptr_nonnull(buf);
	size_t n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* How many times NEEDLE stands in the log at PATH. */
static inline int test_log_count(const char *path, const char *needle)
{
	char *log = test_log_read(path);
	int n = 0;
	for (const char *p = log; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	free(log);
	return n;
}

#define ck_assert_log(h, needle)                                                                   \
	do {                                                                                       \
		char *log_ = test_log_read((h)->log);                                              \
		ck_assert_msg(strstr(log_, (needle)) != NULL, "log lacks \"%s\":\n%s", (needle),   \
		              log_);                                                               \
		free(log_);                                                                        \
	} while (0)

#endif
