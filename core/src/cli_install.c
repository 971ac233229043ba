/* Placeholder until the module behind "pgcrond install" lands. */
#include <stdio.h>

#include "cli.h"

int cli_install(int argc, char **argv)
{
	fprintf(stderr, "pgcrond install: not implemented yet\n");
	return EX_UNAVAILABLE;
}
