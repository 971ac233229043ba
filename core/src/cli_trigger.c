/* Placeholder until the module behind "pgcrond trigger" lands. */
#include <stdio.h>

#include "cli.h"

int cli_trigger(int argc, char **argv)
{
	fprintf(stderr, "pgcrond trigger: not implemented yet\n");
	return EX_UNAVAILABLE;
}
