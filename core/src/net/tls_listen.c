/* TLS for a listener (tls_listen.h). */
#include "tls_listen.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

int tls_listen_open(const char *cert, const char *key, struct ssl_ctx_st **out, char *err,
                    size_t errlen)
{
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());
	if (c && SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) == 1 &&
	    SSL_CTX_use_certificate_chain_file(c, cert) == 1 &&
	    SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) == 1 &&
	    SSL_CTX_check_private_key(c) == 1) {
		*out = c;
		return 0;
	}
	ERR_error_string_n(ERR_get_error(), err, errlen);
	SSL_CTX_free(c);
	*out = NULL;
	return -EINVAL;
}

struct bufferevent *tls_listen_bev(struct ssl_ctx_st *ctx, struct event_base *base)
{
	SSL *ssl = SSL_new(ctx);
	struct bufferevent *bev =
	    ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                         BEV_OPT_CLOSE_ON_FREE)
	        : NULL;
	if (ssl && !bev)
		SSL_free(ssl);
	return bev;
}

bool tls_listen_used(struct bufferevent *bev)
{
	return bev && bufferevent_openssl_get_ssl(bev);
}

void tls_listen_free(struct ssl_ctx_st **ctx)
{
	SSL_CTX_free(*ctx);
	*ctx = NULL;
}
