#ifndef PGCROND_DAEMON_H
#define PGCROND_DAEMON_H

/* The daemon process behind `pgcrond run`: refuses root, loads the configuration and the
 * plugins, opens the history, schedules every enabled job on one event loop, reloads on
 * SIGHUP (the old configuration stays if the new one is invalid), drains on SIGTERM/SIGINT
 * (running runs get shutdown_grace, then are cancelled), and runs a job on a manual
 * request made with pgcrond.trigger() in the history database (triggers.h). */

/* Exit code when started as root: EX_NOPERM (77) from sysexits, the code for "not
 * permitted"; DESIGN.md's list (0, 64, 65, 69, 78) has nothing closer. */
#define DAEMON_EXIT_ROOT 77

/* Run until shut down. Returns a sysexits code: 0 after a clean shutdown, 78 for a config
 * error (each problem printed to stderr as FILE:LINE: message), 77 as root, 69 when the
 * event loop or the history cannot be set up. */
int daemon_main(const char *config_path);

#endif
