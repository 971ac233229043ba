#ifndef PGCROND_NOTIFY_H
#define PGCROND_NOTIFY_H

/* LISTEN/NOTIFY: one listening connection per database, on the daemon's event_base, fully
 * asynchronous. It LISTENs on every channel asked for, hands each notification to the
 * owner, and when the connection is lost (server restart, pg_terminate_backend) reconnects
 * with capped exponential backoff and jitter, re-issues the LISTENs and tells the owner, who
 * runs the listening jobs once: notifications sent while nobody listened are gone. */

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct notify;

struct notify_callbacks {
	/* A notification. CHANNEL and PAYLOAD (never NULL, may be "") are valid during the
	 * call only; the payload is untrusted. */
	void (*on_notify)(void *arg, const char *channel, const char *payload);
	/* The LISTENs are in place. FIRST: this is the first connect since notify_new(). */
	void (*on_listening)(void *arg, bool first);
	void *arg;
};

/* NAME (the configured database key) is used in log lines; CONNINFO is never logged
 * unredacted. The connection starts at once. */
int notify_new(struct event_base *base, const char *name, const char *conninfo,
	       const struct notify_callbacks *cb, struct notify **out)
	__attribute__((warn_unused_result));
void notify_free(struct notify **n);

/* The channels to listen on (replaces the previous set; LISTEN / UNLISTEN as needed once
 * connected). Names are quoted as identifiers. */
int notify_set_channels(struct notify *n, const char *const *channels, size_t count)
	__attribute__((warn_unused_result));

bool notify_is_listening(const struct notify *n);
/* How many times the connection was (re)established; for tests and status. */
unsigned notify_connects(const struct notify *n);

#endif
