/* pgcrond: dispatch to the subcommands (cli.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *summary;
} commands[] = {
    {"run", cli_run, "run the daemon in the foreground"},
    {"check", cli_check, "validate the configuration, plugins, schedules and job graph"},
    {"next", cli_next, "print the next fire times of a cron expression"},
    {"list", cli_list, "list the configured jobs and their next fire"},
    {"install", cli_install, "create or upgrade the pgcrond schema and the plugins' objects"},
    {"trigger", cli_trigger, "ask the running daemon to run a job now"},
    {"status", cli_status, "the running daemon's live state, per job"},
    {"pause", cli_pause_resume, "stop starting a job's runs (kept across restarts)"},
    {"resume", cli_pause_resume, "let a paused job run again"},
    {"drop", cli_drop, "drop a job's runs that wait (each recorded skipped)"},
    {"history", cli_history, "show recent runs from the history table"},
    {"graph", cli_graph, "print the job graph in Graphviz DOT"},
    {"import", cli_import, "move the jobs of a pg_cron installation into pgcrond"},
    {"uninstall", cli_uninstall, "remove what install made (optionally back to pg_cron)"},
};

static void usage(FILE *out)
{
	fprintf(out,
	        "pgcrond %s: a scheduler for PostgreSQL jobs and materialized views.\n\n"
	        "Usage: pgcrond COMMAND [OPTIONS]\n\nCommands:\n",
	        PGCROND_VERSION);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "  %-9s %s\n", "-h", "print this help (also --help, help)");
	fprintf(out, "  %-9s %s\n", "-V", "print the version (also --version)");
	fprintf(out, "\nRun 'pgcrond COMMAND --help' for a command's options. "
	             "See pgcrond(8) and pgcrond.conf(5).\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EX_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("pgcrond %s\n", PGCROND_VERSION);
		return EX_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "pgcrond: unknown command \"%s\"; run 'pgcrond --help' for the list\n",
	        argv[1]);
	return EX_USAGE;
}
