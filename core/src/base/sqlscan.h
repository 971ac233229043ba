#ifndef PGCROND_SQLSCAN_H
#define PGCROND_SQLSCAN_H

/* A look at a job's SQL text without parsing it: enough to know whether it may share a
 * pipeline with the session reset that precedes it (exec_reset.c). */

#include <stdbool.h>

/* True if SQL is one statement (a trailing ";" and comments allowed) that may run inside
 * an implicit transaction after other statements: it starts with SELECT, INSERT, UPDATE,
 * DELETE, MERGE, WITH, VALUES, TABLE or REFRESH. Anything else (VACUUM, CALL, DO, COPY,
 * BEGIN, SET, several statements, text it cannot read) is false: such a command goes out on
 * its own, as written. Quotes, E'' strings, quoted identifiers, dollar quotes and nested
 * comments are skipped as the server's lexer does. */
bool sqlscan_pipeline_safe(const char *sql);

/* What a command is, for what a fault can do to it (docs/faults.md): the worst class of its
 * statements, in this order. */
enum sqlscan_class {
	SQLSCAN_ONE_TRANSACTION, /* one statement or several, no transaction control: the server
	                          * runs them in one implicit transaction */
	SQLSCAN_NO_BLOCK,        /* one that cannot run in a transaction block: VACUUM, CREATE
	                          * INDEX CONCURRENTLY, REINDEX ... CONCURRENTLY, CREATE DATABASE */
	SQLSCAN_PROCEDURE,       /* CALL or DO: it may COMMIT inside */
	SQLSCAN_TRANSACTION,     /* BEGIN, COMMIT, SAVEPOINT ... in the text */
	SQLSCAN_UNREADABLE,      /* a quote or comment never closed, or no statement */
};
enum sqlscan_class sqlscan_classify(const char *sql);
/* "one transaction", "no transaction block", "procedure", "transaction control",
 * "unreadable" */
const char *sqlscan_class_name(enum sqlscan_class c);

#endif
