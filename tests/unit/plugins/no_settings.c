/* A valid plugin that takes no settings. */
#include "testplugin.h"

PGCROND_PLUGIN_MAGIC("no_settings", "0.0.1");
TESTPLUGIN_INIT();
