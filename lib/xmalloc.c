#include "autoconfig.h"

#include "xmalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reports the failed allocation and aborts: out of memory is not recoverable here. */
static void oom(size_t size)
{
	fprintf(stderr, "smartpay: out of memory allocating %zu bytes\n", size);
	abort();
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (p == NULL)
		oom(size);
	return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (p == NULL)
		oom(nmemb * size);
	return p;
}

void *xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);
	if (p == NULL)
		oom(size);
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (p == NULL)
		oom(strlen(s) + 1);
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (p == NULL)
		oom(n + 1);
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	va_start(ap, fmt);
	int n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom(0);
	return p;
}

void xappend(char **data, size_t *len, size_t *cap, const void *src, size_t n)
{
	size_t need = *len + n + 1;
	if (need > *cap) {
		size_t grown = *cap ? *cap : 256;
		while (grown < need)
			grown *= 2;
		*data = xrealloc(*data, grown);
		*cap = grown;
	}
	memcpy(*data + *len, src, n);
	*len += n;
	(*data)[*len] = '\0';
}
