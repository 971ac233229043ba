/* Built for a future, incompatible ABI. */
#include "testplugin.h"

TESTPLUGIN_MAGIC(sizeof(struct pgc_plugin_magic), PGC_PLUGIN_ABI_MAJOR + 1, 0, "abi_major");
TESTPLUGIN_INIT();
