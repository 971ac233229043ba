/* A plugin whose init refuses to start. */
#include <errno.h>

#include "testplugin.h"

PGCROND_PLUGIN_MAGIC("init_fails", "0.0.1");

int pgcrond_plugin_init(const struct pgc_api *api, const struct pgc_plugin **decl)
{
	api->log(PGC_LOG_ERROR, "cannot start: testing");
	return -EIO;
}
