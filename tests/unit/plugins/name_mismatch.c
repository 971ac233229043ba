/* A plugin renamed on disk: the file is name_mismatch.so, the plugin calls itself other. */
#include "testplugin.h"

PGCROND_PLUGIN_MAGIC("other", "0.0.1");
TESTPLUGIN_INIT();
