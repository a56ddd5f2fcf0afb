/* Random identifiers: version-4 UUIDs for modificationId, and the kernel's random bytes. */
#ifndef SP_UUID_H
#define SP_UUID_H

#include <stdbool.h>
#include <stddef.h>

/* Length of a UUID in text form, without the terminating NUL. */
#define UUID_TEXT_LEN 36

/* Writes a fresh random version-4 UUID, lowercase, NUL-terminated, into out; its bytes
 * come from the kernel's CSPRNG, drawn for 32 ids at a time (a forked child draws anew). */
void uuid_v4(char out[37]);

/* True when s is a UUID in the 8-4-4-4-12 hex form (any version, either case). */
bool uuid_valid(const char *s);

/* Fills buf with len bytes from the kernel's CSPRNG (getrandom(2)). Aborts only if
 * the kernel cannot supply randomness at all, which is not recoverable. */
void uuid_random_bytes(void *buf, size_t len);

#endif
