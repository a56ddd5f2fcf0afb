/* Trimming: the one place that cuts trailing newlines (libpq's messages, files read
 * whole) and surrounding blanks (header values) off text. Each caller names the bytes it
 * trims: "\n" for libpq's messages, "\n " when trailing spaces go too, "\r\n" for a
 * file's line end, " \t\r\n" for a header value. Pure. */
#ifndef SP_TRIM_H
#define SP_TRIM_H

#include <stddef.h>

/* The length of s[0..len) without its trailing bytes that are in `set` (a NUL byte is
 * never in it). s may hold NUL bytes and need not be terminated. */
size_t trim_end_len(const char *s, size_t len, const char *set);

/* How many leading bytes of s[0..len) are in `set`. */
size_t trim_start_len(const char *s, size_t len, const char *set);

/* Cuts the bytes of `set` off the end of the NUL-terminated s in place; returns s.
 * Example: trim_end(message, "\n ") turns "ERROR: x \n" into "ERROR: x". */
char *trim_end(char *s, const char *set);

#endif
