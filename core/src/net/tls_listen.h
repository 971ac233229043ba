#ifndef PGCROND_TLS_LISTEN_H
#define PGCROND_TLS_LISTEN_H

/* TLS for a listener: OpenSSL under libevent's bufferevents, a server context made from a
 * certificate chain and its key, and a bufferevent for each connection accepted. */

#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct event_base;
struct ssl_ctx_st;

/* The context of CERT (a PEM certificate chain) and KEY (its PEM private key), TLS 1.2 at
 * least, into *OUT; -EINVAL with OpenSSL's reason in ERR otherwise. */
int tls_listen_open(const char *cert, const char *key, struct ssl_ctx_st **out, char *err,
                    size_t errlen) __attribute__((warn_unused_result));
/* A socket bufferevent that accepts TLS on CTX, for evhttp_set_bevcb (which gives it its
 * socket; freeing it closes that); NULL when out of memory. */
struct bufferevent *tls_listen_bev(struct ssl_ctx_st *ctx, struct event_base *base);
/* BEV speaks TLS (one tls_listen_bev made, not a plain one made in its stead). */
bool tls_listen_used(struct bufferevent *bev);
void tls_listen_free(struct ssl_ctx_st **ctx);

#endif
