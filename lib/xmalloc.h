/* Allocation wrappers that abort on out-of-memory, so callers need no NULL checks. */
#ifndef SP_XMALLOC_H
#define SP_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
/* Resizes ptr to hold n elements of `size` bytes; aborts when n * size overflows (tmux's
 * xreallocarray). */
void *xreallocarray(void *ptr, size_t n, size_t size);
/* Makes a growable array hold at least `need` elements of `size` bytes and returns it
 * (possibly moved): *cap is its capacity in elements, 0 with ptr NULL at first. The first
 * allocation holds `need`, later ones double; aborts when the size overflows.
 * Example: l->items = xgrow(l->items, &l->cap, l->n + 1, sizeof(*l->items)); */
void *xgrow(void *ptr, size_t *cap, size_t need, size_t size) __attribute__((warn_unused_result));
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Appends n bytes to a growable NUL-terminated buffer: *data holds *len bytes in *cap
 * (all three 0 / NULL at first); the capacity doubles as needed. */
void xappend(char **data, size_t *len, size_t *cap, const void *src, size_t n);

#endif
