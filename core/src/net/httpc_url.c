/* The HTTP client's one check of a URL (httpc_url_ok), which the configuration uses too, and
 * a URL as it may be printed (httpc_url_shown): libcurl's URL parser, as the client sends
 * with it, and pgcrond's rules (httpc.h). */
#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "httpc.h"

static bool http_scheme(const char *scheme)
{
	return scheme && (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0);
}

/* Why an http(s) URL whose user info holds an '@' is refused, or NULL when it holds none.
 * RFC 3986 has an '@' there written %40; browsers read the user info up to the last '@',
 * libcurl (and so the client) up to the first, which leaves a host or a port that is none
 * ("http://us@er:pw@host/": host "er", port "pw@host", refused as a bad port). The reason
 * says where the '@' is, read as a browser reads it, and shows neither the user name nor the
 * password. sql/pg_net_compat.sql refuses the same URLs with the same words. */
static const char *at_in_userinfo(const char *url)
{
	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
		return NULL;
	const char *auth = strstr(url, "://") + 3, *last = NULL;
	size_t len = strcspn(auth, "/?#");
	for (const char *c = auth; c < auth + len; c++)
		if (*c == '@')
			last = c;
	const char *first = last ? memchr(auth, '@', len) : NULL;
	if (first == last)
		return NULL; /* none, or the one that ends the user info */
	const char *colon = memchr(auth, ':', (size_t)(last - auth));
	bool in_user = first < (colon ? colon : last);
	bool in_password = colon && memchr(colon, '@', (size_t)(last - colon));
	if (in_user && in_password)
		return "has an '@' in its user name and in its password; write each as %40 (an "
		       "'@' ends the user name and password)";
	if (in_user)
		return "has an '@' in its user name; write it as %40 (an '@' ends the user name "
		       "and password)";
	return "has an '@' in its password; write it as %40 (an '@' ends the user name and "
	       "password)";
}

/* What a person reads for libcurl's RC on URL (the URL itself is not in it). */
static const char *url_refusal(CURLUcode rc)
{
	switch ((int)rc) { /* (libcurl's codes: most are libcurl's own words) */
	case CURLUE_BAD_SCHEME:
	case CURLUE_BAD_SLASHES:
	case CURLUE_NO_SCHEME:
		return "is not a URL; write the full URL, like \"https://host.example/path\"";
	case CURLUE_UNSUPPORTED_SCHEME:
		return "is refused: only http:// and https:// URLs are called";
	case CURLUE_NO_HOST:
		return "has no host; write it like \"https://host.example/path\"";
	case CURLUE_BAD_PORT_NUMBER:
		return "has a port that is not a number from 1 to 65535; write the port the "
		       "server listens on, or no ':' for the scheme's own";
	case CURLUE_BAD_IPV6:
		return "has a bad [IPv6] address; write it like \"http://[2001:db8::1]:8080/\"";
	case CURLUE_BAD_HOSTNAME:
		return "has a character a host name cannot have";
	case CURLUE_BAD_LOGIN:
	case CURLUE_BAD_USER:
	case CURLUE_BAD_PASSWORD:
		return "has a user name or password libcurl cannot read; percent-encode it";
	case CURLUE_OUT_OF_MEMORY:
		return "could not be checked: out of memory";
	default:
		return NULL; /* libcurl's own words */
	}
}

bool httpc_url_ok(const char *url, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	const char *why = NULL;
	CURLUcode rc = u ? CURLUE_OK : CURLUE_OUT_OF_MEMORY;

	for (const unsigned char *c = (const unsigned char *)url; *c && !why; c++)
		if (*c <= 0x20 || *c == 0x7f)
			why = "has a space or a control character; percent-encode it (%20)";
	if (!why)
		why = at_in_userinfo(url);
	/* CURLOPT_URL reads it the same way, more leniently still (it guesses a scheme) */
	if (!why && rc == CURLUE_OK && (rc = curl_url_set(u, CURLUPART_URL, url, 0)) == CURLUE_OK &&
	    (rc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0)) == CURLUE_OK &&
	    !http_scheme(scheme))
		rc = CURLUE_UNSUPPORTED_SCHEME;
	if (!why && rc != CURLUE_OK && !(why = url_refusal(rc))) {
		snprintf(err, errlen,
		         "is not a valid URL (%s); write it like \"https://host.example/path\"",
		         curl_url_strerror(rc));
		goto out;
	}
	/* pgcrond's own: libcurl takes "https:///x" (and "https:/x") for host "x", and sends to
	 * port 0, where nothing can listen */
	if (!why &&
	    (strncmp(url + strlen(scheme), "://", 3) != 0 || url[strlen(scheme) + 3] == '/' ||
	     curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host))
		why = url_refusal(CURLUE_NO_HOST);
	if (!why && curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK &&
	    strcmp(port, "0") == 0)
		why = "has port 0; write the port the server listens on, or no ':' for the "
		      "scheme's own";
	if (why)
		snprintf(err, errlen, "%s", why);
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return !why && rc == CURLUE_OK;
}

int httpc_url_shown(const char *url, char *out, size_t outlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL, *frag = NULL;
	int rc = -EINVAL;

	if (outlen)
		snprintf(out, outlen, "(not a URL)");
	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	(void)curl_url_get(u, CURLUPART_PORT, &port, 0);
	(void)curl_url_get(u, CURLUPART_PATH, &path, 0);
	(void)curl_url_get(u, CURLUPART_QUERY, &query, 0);
	(void)curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0);
	/* a path may be a secret as much as a query (a bot's /bot<TOKEN>/..., a hook's
	 * /services/T/B/<secret>): none is shown, as webhooks' are not (docs/jobs.md) */
	bool more = (path && strcmp(path, "/") != 0) || query || frag;
	snprintf(out, outlen, "%s://%s%s%s/%s", scheme, host, port ? ":" : "", port ? port : "",
	         more ? "..." : "");
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_free(frag);
	curl_url_cleanup(u);
	return rc;
}
