#ifndef PGCROND_CLI_H
#define PGCROND_CLI_H

/* The subcommands of the pgcrond binary. Each takes argc/argv starting at the subcommand's
 * name (argv[0] = "next") and returns a sysexits code. main.c only dispatches. */

#include <stdio.h>
#include <sysexits.h> /* EX_OK 0, EX_USAGE 64, EX_DATAERR 65, EX_UNAVAILABLE 69, EX_CONFIG 78 */

int cli_run(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_next(int argc, char **argv);
int cli_list(int argc, char **argv);
int cli_install(int argc, char **argv);
int cli_trigger(int argc, char **argv);
int cli_history(int argc, char **argv);
int cli_graph(int argc, char **argv);
int cli_import(int argc, char **argv);

/* The options of every command that reads the configuration: -c/--config FILE (default
 * PGCROND_DEFAULT_CONF) and -h/--help. ARGV[0] is the command's name. Positional arguments
 * must number MIN_ARGS..MAX_ARGS; the first is argv[*FIRST_ARG] (FIRST_ARG may be NULL).
 * Returns 0; CLI_HELP after printing USAGE to stdout (the command exits 0); or EX_USAGE
 * after a message on stderr. */
#define CLI_HELP (-1)
int cli_parse_config_args(int argc, char **argv, void (*usage)(FILE *), const char **conf,
                          int min_args, int max_args, int *first_arg)
    __attribute__((warn_unused_result));

#endif
