/* What the subcommands share: the -c/--config and -h/--help options, and loading the
 * configuration for the commands that must work while a job file is broken. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "diag.h"

int cli_load_config(const char *cmd, const char *conf, struct pgc_config **cfg, char **skipped)
{
	struct diag_list dl = {0};
	char **files = NULL;
	size_t n = 0, len = 1;
	int rc;

	*skipped = NULL;
	rc = config_load_partial(conf, cfg, &dl, &files, &n);
	if (rc < 0) {
		diag_print(&dl, stderr);
		if (!dl.n)
			fprintf(stderr, "pgcrond %s: %s: %s\n", cmd, conf, strerror(-rc));
		diag_clear(&dl);
		return rc == -ENOMEM ? EX_OSERR : EX_CONFIG;
	}
	diag_clear(&dl);
	for (size_t i = 0; i < n; i++)
		len += strlen(files[i]) + 2;
	if (n && (*skipped = malloc(len))) {
		size_t o = 0;
		for (size_t i = 0; i < n; i++)
			o += (size_t)snprintf(*skipped + o, len - o, "%s%s", i ? ", " : "",
			                      files[i]);
	}
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
	return 0;
}

void cli_warn_skipped(const char *cmd, const char *conf, const char *skipped,
                      const char *consequence)
{
	if (!skipped)
		return;
	fprintf(stderr, "pgcrond %s: warning: %s %s errors (pgcrond check -c %s lists them); %s\n",
	        cmd, skipped, strchr(skipped, ',') ? "have" : "has", conf, consequence);
}

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
