#ifndef PGCROND_SQLSCAN_H
#define PGCROND_SQLSCAN_H

/* A look at a job's SQL text without parsing it: enough to know whether it may share a
 * pipeline with the session reset that precedes it (exec.c). */

#include <stdbool.h>

/* True if SQL is one statement (a trailing ";" and comments allowed) that may run inside
 * an implicit transaction after other statements: it starts with SELECT, INSERT, UPDATE,
 * DELETE, MERGE, WITH, VALUES, TABLE or REFRESH. Anything else (VACUUM, CALL, DO, COPY,
 * BEGIN, SET, several statements, text it cannot read) is false: such a command goes out on
 * its own, as written. Quotes, E'' strings, quoted identifiers, dollar quotes and nested
 * comments are skipped as the server's lexer does. */
bool sqlscan_pipeline_safe(const char *sql);

#endif
