/* Placeholder until the module behind "pgcrond run" lands. */
#include <stdio.h>

#include "cli.h"

int cli_run(int argc, char **argv)
{
	fprintf(stderr, "pgcrond run: not implemented yet\n");
	return EX_UNAVAILABLE;
}
