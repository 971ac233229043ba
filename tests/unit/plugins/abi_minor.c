/* Built against a newer minor than the core's: it may use API entries the core lacks. */
#include "testplugin.h"

TESTPLUGIN_MAGIC(sizeof(struct pgc_plugin_magic), PGC_PLUGIN_ABI_MAJOR, PGC_PLUGIN_ABI_MINOR + 1,
                 "abi_minor");
TESTPLUGIN_INIT();
