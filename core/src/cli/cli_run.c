/* pgcrond run [-c FILE]: the daemon in the foreground (daemon.h). */
#include "cli.h"
#include "daemon.h"

static const char usage[] =
    "Usage: pgcrond run [-c FILE]\n\n"
    "Run the scheduler in the foreground (systemd runs it this way), logging to stderr.\n\n"
    "Options:\n"
    "  -c, --config FILE  the configuration file (default " PGCROND_DEFAULT_CONF ")\n"
    "  -h, --help         show this help\n\n"
    "Signals: SIGHUP reloads the configuration (an invalid one is refused and the\n"
    "current one stays); SIGTERM or SIGINT stop starting runs, wait up to\n"
    "shutdown_grace for running ones, then cancel them.\n"
    "pgcrond refuses to run as root.\n";

int cli_run(int argc, char **argv)
{
	const char *conf;
	int rc = cli_parse_args(argc, argv, usage, &conf, NULL, 0, 0, NULL);

	if (rc)
		return rc == CLI_HELP ? EX_OK : rc;
	return daemon_main(conf);
}
