/* What the subcommands share: the -c/--config and -h/--help options. */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

int cli_parse_config_args(int argc, char **argv, void (*usage)(FILE *), const char **conf,
                          int min_args, int max_args, int *first_arg)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *cmd = argv[0];
	int opt;

	*conf = PGCROND_DEFAULT_CONF;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			*conf = optarg;
			break;
		case 'h':
			usage(stdout);
			return CLI_HELP;
		case ':':
			fprintf(stderr, "pgcrond %s: %s needs a file name\n", cmd,
			        argv[optind - 1]);
			return EX_USAGE;
		default:
			fprintf(stderr,
			        "pgcrond %s: unknown option \"%s\"; see pgcrond %s --help\n", cmd,
			        argv[optind - 1], cmd);
			return EX_USAGE;
		}
	}
	int n = argc - optind;
	if (n < min_args || n > max_args) {
		if (n > max_args)
			fprintf(stderr,
			        "pgcrond %s: unexpected argument \"%s\"; see pgcrond %s --help\n",
			        cmd, argv[optind + max_args], cmd);
		else
			fprintf(stderr, "pgcrond %s: missing argument; see pgcrond %s --help\n",
			        cmd, cmd);
		return EX_USAGE;
	}
	if (first_arg)
		*first_arg = optind;
	return 0;
}
