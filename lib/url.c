#include "autoconfig.h"

#include "url.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Writes the reason of a refusal into why (when given) and returns false. */
static bool __attribute__((format(printf, 3, 4)))
refuse(char *why, size_t whylen, const char *fmt, ...)
{
	if (why == NULL || whylen == 0)
		return false;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return false;
}

/* A letter, digit or underscore: with '.' and '-' what a host name may hold. */
static bool is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

bool url_host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

bool url_check_host_port(const char *hp, size_t len, bool need_port, bool *loopback, char *why,
                         size_t whylen)
{
	char host[256];
	const char *port = NULL;
	size_t port_len = 0;
	if (len > 0 && hp[0] == '[') {
		const char *close = memchr(hp, ']', len);
		if (close == NULL)
			return refuse(why, whylen, "missing ']' after the IPv6 address");
		size_t hlen = (size_t)(close - hp - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			return refuse(why, whylen, "bad IPv6 address");
		memcpy(host, hp + 1, hlen);
		host[hlen] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return refuse(why, whylen, "bad IPv6 address [%s]", host);
		const char *after = close + 1;
		size_t alen = len - (size_t)(after - hp);
		if (alen > 0) {
			if (*after != ':')
				return refuse(why, whylen, "unexpected text after ']'");
			port = after + 1;
			port_len = alen - 1;
		}
	} else {
		const char *colon = memchr(hp, ':', len);
		size_t hlen = colon ? (size_t)(colon - hp) : len;
		if (colon != NULL && memchr(colon + 1, ':', len - hlen - 1) != NULL)
			return refuse(why, whylen, "IPv6 addresses need brackets, e.g. [::1]");
		if (hlen == 0)
			return refuse(why, whylen, "missing host");
		if (hlen >= sizeof(host))
			return refuse(why, whylen, "host name too long");
		for (size_t i = 0; i < hlen; i++) {
			char c = hp[i];
			if (!is_host_char(c) && c != '.' && c != '-')
				return refuse(why, whylen, "bad character '%c' in host name", c);
		}
		memcpy(host, hp, hlen);
		host[hlen] = '\0';
		if (colon) {
			port = colon + 1;
			port_len = len - hlen - 1;
		}
	}
	if (port == NULL && need_port)
		return refuse(why, whylen, "missing port: expected host:port");
	if (port != NULL) {
		long v = 0;
		if (port_len == 0 || port_len > 5)
			return refuse(why, whylen, "bad port");
		for (size_t i = 0; i < port_len; i++) {
			if (port[i] < '0' || port[i] > '9')
				return refuse(why, whylen, "bad port");
			v = v * 10 + (port[i] - '0');
		}
		if (v < 1 || v > 65535)
			return refuse(why, whylen, "port must be between 1 and 65535");
	}
	*loopback = url_host_is_loopback(host);
	return true;
}

bool url_check(const char *text, struct url_parts *u, char *why, size_t whylen)
{
	const char *p;
	if (strncasecmp(text, "https://", 8) == 0) {
		u->https = true;
		p = text + 8;
	} else if (strncasecmp(text, "http://", 7) == 0) {
		u->https = false;
		p = text + 7;
	} else {
		return refuse(why, whylen,
		              "must start with https:// (or http:// for a loopback host)");
	}
	for (const char *q = text; *q; q++) {
		if (*q == ' ' || *q == '\t')
			return refuse(why, whylen,
			              "spaces are not allowed in a URL (encode them as %%20)");
	}
	size_t alen = strcspn(p, "/?#");
	if (memchr(p, '@', alen) != NULL)
		return refuse(why, whylen, "credentials in the URL are not allowed");
	if (!url_check_host_port(p, alen, false, &u->loopback, why, whylen))
		return false;
	u->rest = p + alen;
	return true;
}
