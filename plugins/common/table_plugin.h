/* table_plugin: the one body of the plugins that keep a table they fill per partition
 * (lane_distribution, weakness_patterns, agent_progress, time_to_first_win). Each of them is
 * still its own .so with its own magic block and install SQL; what tells them apart is data:
 * the struct table_plugin it defines, named `table_plugin`. This file and table_plugin.c are
 * compiled into each of them (a plugin links against no pgcrond symbol), and
 * table_plugin.c defines pgcrond_plugin_init() from that data:
 *
 *   - one relation, `table` (PGC_RELATION_TABLE);
 *   - one setting, max_partitions (int, default 100, at least 0);
 *   - a run replaces the rows of the partitions that the notification payloads name in
 *     their `key` field (a uuid) through pgc_api.run_replace(), with `rows_sql` (whose $1
 *     is the keys, NULL for all) giving the rows; a scheduled run, or payloads naming none
 *     or more than max_partitions, replaces every row.
 *
 * Add a plugin of this kind: a directory with its .c (PGCROND_PLUGIN_MAGIC and the struct),
 * its .sql (the table, its unique index and its row function) and a CMakeLists.txt calling
 * pgcrond_add_table_plugin(NAME). */
#ifndef PGCROND_TABLE_PLUGIN_H
#define PGCROND_TABLE_PLUGIN_H

#include <pgcrond/plugin.h>

struct table_plugin {
	const char *description; /* pgc_plugin.description */
	const char *install_sql; /* pgc_plugin.install_sql: the .sql file, embedded */
	const char *table;       /* the relation it keeps, schema-qualified */
	const char *key;         /* the partition: a payload field and the table's uuid column */
	const char *partitions; /* what a key names, plural ("challenges"), for the setting's doc */
	const char *rows_sql;   /* SELECT giving the rows of the keys $1 (NULL: all) */
	const char *const *reads; /* pgc_plugin.reads: plugins whose relations it reads, or NULL */
	const char *const *sources; /* pgc_plugin.sources: the tables it reads (ABI 1.3) */
};

/* Defined by each plugin. */
extern const struct table_plugin table_plugin;

#endif
