/* Placeholder until the module behind "pgcrond history" lands. */
#include <stdio.h>

#include "cli.h"

int cli_history(int argc, char **argv)
{
	fprintf(stderr, "pgcrond history: not implemented yet\n");
	return EX_UNAVAILABLE;
}
