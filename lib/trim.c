#include "autoconfig.h"

#include "trim.h"

#include <string.h>

/* True when byte c is one of `set`; strchr would also find the terminator, so NUL is not. */
static int in_set(char c, const char *set)
{
	return c != '\0' && strchr(set, c) != NULL;
}

size_t trim_end_len(const char *s, size_t len, const char *set)
{
	while (len > 0 && in_set(s[len - 1], set))
		len--;
	return len;
}

size_t trim_start_len(const char *s, size_t len, const char *set)
{
	size_t n = 0;
	while (n < len && in_set(s[n], set))
		n++;
	return n;
}

char *trim_end(char *s, const char *set)
{
	s[trim_end_len(s, strlen(s), set)] = '\0';
	return s;
}
