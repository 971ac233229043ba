/* Shared by the test plugins of check_plugin.c: a minimal valid declaration and init, so
 * that each broken plugin is broken in exactly one way. */
#ifndef PGCROND_TESTPLUGIN_H
#define PGCROND_TESTPLUGIN_H

#include <pgcrond/plugin.h>

/* A hand-made magic block, for the plugins whose block is wrong on purpose. */
#define TESTPLUGIN_MAGIC(size_, major_, minor_, name_)                                             \
	const struct pgc_plugin_magic *pgcrond_plugin_magic(void)                                  \
	{                                                                                          \
		static const struct pgc_plugin_magic m = {(size_), (major_), (minor_), (name_),    \
		                                          "0.0.1"};                                \
		return &m;                                                                         \
	}                                                                                          \
	struct testplugin_semicolon_

__attribute__((unused)) static int testplugin_build_run(const struct pgc_settings *s,
                                                        const char *const *payloads,
                                                        size_t n_payloads, struct pgc_run *run)
{
	return 0;
}

#define TESTPLUGIN_INIT()                                                                          \
	static const struct pgc_plugin testplugin_decl = {                                         \
	    .size = sizeof(struct pgc_plugin),                                                     \
	    .relations = (const struct pgc_relation_decl[]){{"public.t", PGC_RELATION_TABLE, 0},   \
	                                                    {NULL, 0, 0}},                         \
	    .build_run = testplugin_build_run,                                                     \
	};                                                                                         \
	int pgcrond_plugin_init(const struct pgc_api *api, const struct pgc_plugin **decl)         \
	{                                                                                          \
		*decl = &testplugin_decl;                                                          \
		return 0;                                                                          \
	}                                                                                          \
	struct testplugin_semicolon_

#endif
