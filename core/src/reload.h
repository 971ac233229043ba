#ifndef PGCROND_RELOAD_H
#define PGCROND_RELOAD_H

/* A SIGHUP reload parses the configuration on a thread and hands the new config back
 * through the event loop, so fires due while 100,000 jobs are read (0.5 s and more) are not
 * held up. Only config_load() runs on the thread: it touches no state of the running daemon
 * (plugins, which the core calls from one thread only, are checked back on the loop). */

#include "config.h"

struct event_base;
struct conf_loader;

/* Called on the loop when a load ends: RC and CFG as config_load() returns them (CFG is the
 * callee's to keep or free), the problems in DL (the callee clears it). */
typedef void (*conf_loaded_fn)(void *arg, int rc, struct pgc_config *cfg, struct diag_list *dl);

int conf_loader_new(struct event_base *base, conf_loaded_fn fn, void *arg, struct conf_loader **out)
    __attribute__((warn_unused_result));
/* Start loading PATH (kept by the caller until FN is called). -EBUSY while a load is in
 * progress, another negative errno if no thread could be started. */
int conf_loader_start(struct conf_loader *l, const char *path) __attribute__((warn_unused_result));
/* Waits for a load in progress (its result is dropped), then frees. */
void conf_loader_free(struct conf_loader **l);

#endif
