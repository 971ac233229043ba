#ifndef PGCROND_CLI_H
#define PGCROND_CLI_H

/* The subcommands of the pgcrond binary. Each takes argc/argv starting at the subcommand's
 * name (argv[0] = "next") and returns a sysexits code. main.c only dispatches. */

#include <sysexits.h> /* EX_OK 0, EX_USAGE 64, EX_DATAERR 65, EX_UNAVAILABLE 69, EX_CONFIG 78 */

int cli_run(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_next(int argc, char **argv);
int cli_list(int argc, char **argv);
int cli_install(int argc, char **argv);
int cli_trigger(int argc, char **argv);
int cli_history(int argc, char **argv);
int cli_graph(int argc, char **argv);

#endif
