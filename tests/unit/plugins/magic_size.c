/* A magic block of another layout. */
#include "testplugin.h"

TESTPLUGIN_MAGIC(sizeof(struct pgc_plugin_magic) + 8, PGC_PLUGIN_ABI_MAJOR, PGC_PLUGIN_ABI_MINOR,
                 "magic_size");
TESTPLUGIN_INIT();
