/* Not a pgcrond plugin: no pgcrond_plugin_magic(). */
#include "testplugin.h"

TESTPLUGIN_INIT();
