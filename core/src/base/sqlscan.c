/* A look at a job's SQL text without parsing it (sqlscan.h). */
#include "sqlscan.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

static bool is_ident(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

/* Past a comment, a quoted string or identifier, or a dollar quote at P; P itself if there is
 * none there; NULL if it is never closed. */
static const char *skip_token(const char *start, const char *p)
{
	if (p[0] == '-' && p[1] == '-') {
		while (*p && *p != '\n')
			p++;
		return p;
	}
	if (p[0] == '/' && p[1] == '*') {
		int depth = 0;
		while (*p) {
			if (p[0] == '/' && p[1] == '*') {
				depth++;
				p += 2;
			} else if (p[0] == '*' && p[1] == '/') {
				p += 2;
				if (--depth == 0)
					return p;
			} else {
				p++;
			}
		}
		return NULL;
	}
	if (*p == '\'' || *p == '"') {
		/* E'...' strings take backslash escapes: an E on its own just before the quote
		 * (the caller passed over it as part of a word) */
		char q = *p;
		bool backslash = q == '\'' && p > start && (p[-1] == 'E' || p[-1] == 'e') &&
		                 (p - 1 == start || !is_ident(p[-2]));
		for (p++; *p; p++) {
			if (backslash && *p == '\\' && p[1]) {
				p++;
				continue;
			}
			if (*p == q) {
				if (p[1] == q) {
					p++;
					continue;
				}
				return p + 1;
			}
		}
		return NULL;
	}
	if (*p == '$') {
		/* $tag$ ... $tag$, the tag an identifier or empty; $1 is a parameter */
		const char *t = p + 1;
		while (isalnum((unsigned char)*t) || *t == '_' || (unsigned char)*t >= 0x80)
			t++;
		/* $1 is a parameter, and a $ inside a word (a$b$) belongs to it */
		if (*t != '$' || isdigit((unsigned char)p[1]) || (p > start && is_ident(p[-1])))
			return p;
		size_t len = (size_t)(t - p) + 1;
		for (const char *q = t + 1; *q; q++) {
			size_t i = 0;
			while (i < len && q[i] == p[i])
				i++;
			if (i == len)
				return q + len;
		}
		return NULL;
	}
	return p;
}

/* Past whitespace and comments; NULL if a comment is never closed. */
static const char *skip_blank(const char *start, const char *p)
{
	for (;;) {
		while (isspace((unsigned char)*p))
			p++;
		if ((p[0] == '-' && p[1] == '-') || (p[0] == '/' && p[1] == '*')) {
			p = skip_token(start, p);
			if (!p)
				return NULL;
			continue;
		}
		return p;
	}
}

bool sqlscan_pipeline_safe(const char *sql)
{
	static const char *const safe[] = {"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE",
	                                   "WITH",   "VALUES", "TABLE",  "REFRESH"};
	const char *p = sql ? skip_blank(sql, sql) : NULL;

	while (p && *p == '(')
		p = skip_blank(sql, p + 1);
	if (!p)
		return false;
	size_t n = 0;
	while (isalpha((unsigned char)p[n]))
		n++;
	bool known = false;
	for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]) && !known; i++)
		known = n == strlen(safe[i]) && strncasecmp(p, safe[i], n) == 0;
	if (!known)
		return false;
	/* one statement: no ";" outside quotes and comments, but at the very end */
	for (p += n; *p;) {
		const char *q = skip_token(sql, p);
		if (!q)
			return false;
		if (q != p) {
			p = q;
			continue;
		}
		if (*p == ';') {
			/* what follows must be nothing but blanks, comments and more ";" */
			do
				p = skip_blank(sql, p + 1);
			while (p && *p == ';');
			return p && *p == '\0';
		}
		p++;
	}
	return true;
}

/* Whether the word at P (of N letters) is WORD, in any case. */
static bool word_is(const char *p, size_t n, const char *word)
{
	return n == strlen(word) && strncasecmp(p, word, n) == 0;
}

/* The class of the statement whose words start at P and end before END (a ';' or the end). */
static enum sqlscan_class statement_class(const char *sql, const char *p, const char *end)
{
	static const char *const control[] = {"BEGIN", "START",     "COMMIT",  "END",    "ROLLBACK",
	                                      "ABORT", "SAVEPOINT", "RELEASE", "PREPARE"};
	size_t n = 0;
	while (isalpha((unsigned char)p[n]))
		n++;
	for (size_t i = 0; i < sizeof(control) / sizeof(control[0]); i++)
		if (word_is(p, n, control[i]))
			/* PREPARE name AS ...: a prepared statement, not PREPARE TRANSACTION */
			return word_is(p, n, "PREPARE") ? SQLSCAN_ONE_TRANSACTION
			                                : SQLSCAN_TRANSACTION;
	if (word_is(p, n, "CALL") || word_is(p, n, "DO"))
		return SQLSCAN_PROCEDURE;
	if (word_is(p, n, "VACUUM"))
		return SQLSCAN_NO_BLOCK;
	bool create = word_is(p, n, "CREATE"), drop = word_is(p, n, "DROP"),
	     reindex = word_is(p, n, "REINDEX"), alter = word_is(p, n, "ALTER");
	if (!create && !drop && !reindex && !alter)
		return SQLSCAN_ONE_TRANSACTION;
	/* the words that follow, outside quotes and comments */
	bool first = true;
	int depth = 0; /* in parentheses: an option list (REINDEX (VERBOSE) DATABASE) */
	for (const char *w = p + n; w && w < end;) {
		const char *q = skip_token(sql, w);
		if (!q)
			return SQLSCAN_UNREADABLE;
		if (q != w) {
			w = q;
			continue;
		}
		if (!isalpha((unsigned char)*w)) {
			depth += *w == '(' ? 1 : *w == ')' && depth > 0 ? -1 : 0;
			w++;
			continue;
		}
		size_t m = 0;
		while (is_ident(w[m]))
			m++;
		if (depth > 0 && reindex) {
			w += m;
			continue;
		}
		if (word_is(w, m, "CONCURRENTLY") && !alter)
			return SQLSCAN_NO_BLOCK; /* CREATE/DROP INDEX, REINDEX ... CONCURRENTLY */
		if (first && (create || drop) &&
		    (word_is(w, m, "DATABASE") || word_is(w, m, "TABLESPACE")))
			return SQLSCAN_NO_BLOCK;
		if (first && alter && word_is(w, m, "SYSTEM"))
			return SQLSCAN_NO_BLOCK;
		if (first && reindex &&
		    (word_is(w, m, "SCHEMA") || word_is(w, m, "DATABASE") ||
		     word_is(w, m, "SYSTEM")))
			return SQLSCAN_NO_BLOCK; /* it commits after each table */
		first = false;
		w += m;
	}
	return SQLSCAN_ONE_TRANSACTION;
}

enum sqlscan_class sqlscan_classify(const char *sql)
{
	enum sqlscan_class worst = SQLSCAN_ONE_TRANSACTION;
	bool any = false;
	const char *p = sql;

	while (p && *p) {
		p = skip_blank(sql, p);
		while (p && (*p == '(' || *p == ';'))
			p = skip_blank(sql, p + 1);
		if (!p)
			return SQLSCAN_UNREADABLE;
		if (!*p)
			break;
		/* the statement's end: a ';' outside quotes and comments */
		const char *e = p;
		while (*e && *e != ';') {
			const char *q = skip_token(sql, e);
			if (!q)
				return SQLSCAN_UNREADABLE;
			e = q != e ? q : e + 1;
		}
		enum sqlscan_class c = statement_class(sql, p, e);
		if (c > worst)
			worst = c;
		any = true;
		p = e;
	}
	return any ? worst : SQLSCAN_UNREADABLE;
}

const char *sqlscan_class_name(enum sqlscan_class c)
{
	switch (c) {
	case SQLSCAN_ONE_TRANSACTION:
		return "one transaction";
	case SQLSCAN_NO_BLOCK:
		return "no transaction block";
	case SQLSCAN_PROCEDURE:
		return "procedure";
	case SQLSCAN_TRANSACTION:
		return "transaction control";
	case SQLSCAN_UNREADABLE:
		break;
	}
	return "unreadable";
}
