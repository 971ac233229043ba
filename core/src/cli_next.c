/* Placeholder until the module behind "pgcrond next" lands. */
#include <stdio.h>

#include "cli.h"

int cli_next(int argc, char **argv)
{
	fprintf(stderr, "pgcrond next: not implemented yet\n");
	return EX_UNAVAILABLE;
}
