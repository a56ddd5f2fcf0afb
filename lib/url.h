/* The one check of http(s) URLs and host[:port] texts (configuration values, listen
 * addresses), and what counts as a loopback host. Pure: no name lookups. */
#ifndef SP_URL_H
#define SP_URL_H

#include <stdbool.h>
#include <stddef.h>

/* The parts of an http(s) URL that its users check further. */
struct url_parts {
	bool https;
	bool loopback;    /* the host is a loopback name or address */
	const char *rest; /* path, query and fragment, after the authority (points into the text) */
};

/* Splits and checks an http:// or https:// URL: no blanks, no credentials, a host name or
 * address and an optional port. On refusal writes the reason into why[0..whylen) (why may
 * be NULL) and returns false. */
bool url_check(const char *text, struct url_parts *u, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/* Checks "host[:port]" or "[v6][:port]" at hp[0..len); `need_port` for listen addresses.
 * Sets *loopback; on refusal as url_check. */
bool url_check_host_port(const char *hp, size_t len, bool need_port, bool *loopback, char *why,
                         size_t whylen) __attribute__((warn_unused_result));

/* True when a host (without brackets) is "localhost" or a loopback address. */
bool url_host_is_loopback(const char *host);

#endif
