/* Allocation wrappers that abort on out-of-memory, so callers need no NULL checks. */
#ifndef SP_XMALLOC_H
#define SP_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Appends n bytes to a growable NUL-terminated buffer: *data holds *len bytes in *cap
 * (all three 0 / NULL at first); the capacity doubles as needed. */
void xappend(char **data, size_t *len, size_t *cap, const void *src, size_t n);

#endif
