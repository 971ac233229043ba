#ifndef PGCROND_SDNOTIFY_H
#define PGCROND_SDNOTIFY_H

/* Readiness, status and watchdog notifications to systemd (Type=notify, sd_notify(3)).
 *
 * Built on libsystemd's sd_notify when the build found libsystemd
 * (PGCROND_HAVE_LIBSYSTEMD); otherwise every function is a no-op returning 0. Outside
 * systemd ($NOTIFY_SOCKET unset) they are no-ops too, so callers never need to ask whether
 * they run under systemd.
 *
 * They return nothing: a lost notification is not a reason to stop scheduling, and systemd
 * reports a missed READY or watchdog itself. */

#include <stdint.h>

/* Startup done: the configuration is loaded and every job is scheduled. Also sent after a
 * reload, successful or not, to end the RELOADING state. */
void sdnotify_ready(void);

/* A SIGHUP reload starts (RELOADING=1 with the monotonic time systemd expects). Follow it
 * with sdnotify_ready() once the new configuration is in force or has been refused. */
void sdnotify_reloading(void);

/* Shutdown begins: no new runs start; running ones get the grace period. */
void sdnotify_stopping(void);

/* The one-line status shown by `systemctl status`, e.g. "12 jobs, 2 running". */
void sdnotify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The watchdog interval systemd expects pings within (WatchdogSec=), in microseconds, or 0
 * when the watchdog is off for this process. Ping every half of it: arm a timer on the
 * event loop with this value / 2 and call sdnotify_watchdog() from it, so a loop that is
 * stuck stops the pings and systemd restarts the service. */
uint64_t sdnotify_watchdog_usec(void);

/* One watchdog ping (WATCHDOG=1). */
void sdnotify_watchdog(void);

#endif
