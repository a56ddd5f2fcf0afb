#include "autoconfig.h"

#include "xmalloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reports the failed allocation and aborts: out of memory is not recoverable here. */
static void oom(size_t size)
{
	fprintf(stderr, "smartpay: out of memory allocating %zu bytes\n", size);
	abort();
}

/* Reports an array size that does not fit in size_t and aborts: a caller's count went wrong. */
static void too_large(size_t n, size_t size)
{
	fprintf(stderr, "smartpay: array of %zu elements of %zu bytes is too large\n", n, size);
	abort();
}

/* n * size, or the abort of too_large when the product overflows. */
static size_t array_bytes(size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		too_large(n, size);
	return n * size;
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
	size_t bytes = array_bytes(nmemb, size);
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (p == NULL)
		oom(bytes);
	return p;
}

void *xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);
	if (p == NULL)
		oom(size);
	return p;
}

void *xreallocarray(void *ptr, size_t n, size_t size)
{
	return xrealloc(ptr, array_bytes(n, size));
}

void *xgrow(void *ptr, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return ptr;
	size_t grown = *cap ? *cap : need;
	while (grown < need) {
		if (grown > SIZE_MAX / 2)
			too_large(need, size);
		grown *= 2;
	}
	ptr = xreallocarray(ptr, grown, size);
	*cap = grown;
	return ptr;
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
	if (n > SIZE_MAX - *len - 1)
		too_large(*len + 1, n);
	size_t need = *len + n + 1;
	/* the first buffer holds 256 bytes: most are short */
	*data = xgrow(*data, cap, *cap == 0 && need < 256 ? 256 : need, 1);
	memcpy(*data + *len, src, n);
	*len += n;
	(*data)[*len] = '\0';
}
