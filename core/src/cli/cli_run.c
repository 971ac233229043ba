/* pgcrond run [-c FILE]: the daemon in the foreground (daemon.h). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "daemon.h"

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: pgcrond run [-c FILE]\n\n"
	    "Run the scheduler in the foreground (systemd runs it this way), logging to stderr.\n\n"
	    "Options:\n"
	    "  -c, --config FILE  the configuration file (default %s)\n"
	    "  -h, --help         show this help\n\n"
	    "Signals: SIGHUP reloads the configuration (an invalid one is refused and the\n"
	    "current one stays); SIGTERM or SIGINT stop starting runs, wait up to\n"
	    "shutdown_grace for running ones, then cancel them.\n"
	    "pgcrond refuses to run as root.\n",
	    PGCROND_DEFAULT_CONF);
}

int cli_run(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *conf = PGCROND_DEFAULT_CONF;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'h':
			usage(stdout);
			return EX_OK;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pgcrond run: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return EX_USAGE;
	}
	return daemon_main(conf);
}
