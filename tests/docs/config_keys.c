/* config_keys: every key the configuration loader accepts, one "SECTION KEY" line each, read
 * from the loader's own tables (config_priv.h), for check_config_keys.py, which compares them
 * with docs/configuration.md and pgcrond.conf(5). The sections: main (the top level of
 * pgcrond.conf), its groups by name (databases, history, alerts, http, http_client), job
 * and job.http (a job's http group).
 *
 * A key of the main file or of a job that the loader hands to a function of its own
 * (K_CUSTOM) is a group, and each must have its table here: one without is reported and the
 * program fails, so that a new group cannot go unchecked. */
#include <stdio.h>
#include <string.h>

#include "config_priv.h"

static const struct {
	const char *section;
	const struct key_spec *keys;
	const char *parent; /* the section and key of its group; NULL for the top levels */
	const char *group;
} tables[] = {
    {"main", config_main_keys, NULL, NULL},
    {"databases", config_database_keys, "main", "databases"},
    {"history", config_history_keys, "main", "history"},
    {"alerts", config_sink_keys, "main", "alerts"},
    {"http", config_http_keys, "main", "http"},
    {"http_client", config_http_client_keys, "main", "http_client"},
    {"calendars", config_calendar_keys, "main", "calendars"},
    {"job", config_job_keys, NULL, NULL},
    {"job.http", config_http_call_keys, "job", "http"},
};
#define N_TABLES (sizeof(tables) / sizeof(tables[0]))

static bool has_table(const char *section, const char *key)
{
	for (size_t t = 0; t < N_TABLES; t++)
		if (tables[t].parent && strcmp(tables[t].parent, section) == 0 &&
		    strcmp(tables[t].group, key) == 0)
			return true;
	return false;
}

int main(void)
{
	int bad = 0;

	for (size_t t = 0; t < N_TABLES; t++) {
		for (const struct key_spec *k = tables[t].keys; k->name; k++) {
			printf("%s %s\n", tables[t].section, k->name);
			if (!tables[t].parent && k->type == K_CUSTOM &&
			    !has_table(tables[t].section, k->name)) {
				fprintf(
				    stderr,
				    "config_keys: %s key %s is a group without a table here; add "
				    "its table of keys to tests/docs/config_keys.c\n",
				    tables[t].section, k->name);
				bad = 1;
			}
		}
	}
	return bad;
}
