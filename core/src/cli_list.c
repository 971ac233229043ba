/* Placeholder until the module behind "pgcrond list" lands. */
#include <stdio.h>

#include "cli.h"

int cli_list(int argc, char **argv)
{
	fprintf(stderr, "pgcrond list: not implemented yet\n");
	return EX_UNAVAILABLE;
}
