/* sdnotify: tell systemd about readiness, reloads, shutdown, status and liveness. */
#include "sdnotify.h"

#include <time.h>

#include "text.h"

#ifdef PGCROND_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#else
/* no libsystemd: nothing to tell, the same functions below telling no one */
static int sd_notify(int unset_environment, const char *state)
{
	(void)unset_environment;
	(void)state;
	return 0;
}

static int sd_notifyf(int unset_environment, const char *fmt, ...)
{
	(void)unset_environment;
	(void)fmt;
	return 0;
}

static int sd_watchdog_enabled(int unset_environment, uint64_t *usec)
{
	(void)unset_environment;
	(void)usec;
	return 0;
}
#endif

/* unset_environment is 0 everywhere: $NOTIFY_SOCKET must survive for later messages, and
 * the daemon starts no children that could misuse it (NotifyAccess=main in the unit). */

void sdnotify_ready(void)
{
	sd_notify(0, "READY=1");
}

void sdnotify_reloading(void)
{
	struct timespec ts;

	/* systemd 253+ (Type=notify-reload) matches the reload by this timestamp; older
	 * versions ignore the field. */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		sd_notify(0, "RELOADING=1");
	else
		sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
		           (unsigned long long)ts.tv_sec * 1000000ULL +
		               (unsigned long long)ts.tv_nsec / 1000ULL);
}

void sdnotify_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

void sdnotify_status(const char *fmt, ...)
{
	char text[256] = "";
	/* A status longer than a line of `systemctl status` is cut, not dropped. */
	TEXT_VA_FORMAT(text, sizeof(text), fmt);
	sd_notifyf(0, "STATUS=%s", text);
}

uint64_t sdnotify_watchdog_usec(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec;
}

void sdnotify_watchdog(void)
{
	sd_notify(0, "WATCHDOG=1");
}
