/* Placeholder until the module behind "pgcrond graph" lands. */
#include <stdio.h>

#include "cli.h"

int cli_graph(int argc, char **argv)
{
	fprintf(stderr, "pgcrond graph: not implemented yet\n");
	return EX_UNAVAILABLE;
}
