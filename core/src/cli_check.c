/* Placeholder until the module behind "pgcrond check" lands. */
#include <stdio.h>

#include "cli.h"

int cli_check(int argc, char **argv)
{
	fprintf(stderr, "pgcrond check: not implemented yet\n");
	return EX_UNAVAILABLE;
}
