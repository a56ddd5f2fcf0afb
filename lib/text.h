/* Text from outside (the gateway, the transport) made storable in PostgreSQL text
 * columns: valid UTF-8, no NUL bytes, bounded length. Pure. */
#ifndef SP_TEXT_H
#define SP_TEXT_H

#include <stddef.h>

/* What becomes of a NUL byte. */
enum text_nul {
	TEXT_NUL_DROP,   /* removed: stored text, e.g. a response body */
	TEXT_NUL_REPLACE /* U+FFFD: text that is compared, so "A\0B" can never read as "A" */
};

/* No limit on the length of text_storable's result. */
#define TEXT_UNLIMITED ((size_t)-1)

/* Returns a malloc'd, NUL-terminated copy of the len bytes at s (s may be NULL when
 * len is 0) that is well-formed UTF-8: every ill-formed sequence is replaced by one
 * U+FFFD per maximal subpart (Unicode chapter 3, "U+FFFD substitution of maximal
 * subparts"), so Latin-1 bytes, overlong forms, surrogates, code points above U+10FFFF
 * and sequences cut short all become U+FFFD; NUL bytes are dropped or replaced as
 * `nul` says. At most max_bytes bytes are kept (the terminator not counted), cut
 * between characters. */
char *text_storable(const char *s, size_t len, size_t max_bytes, enum text_nul nul)
    __attribute__((warn_unused_result));

/* text_storable of a C string with NULs dropped; NULL stays NULL. */
char *text_storable_str(const char *s, size_t max_bytes) __attribute__((warn_unused_result));

/* The length of the well-formed UTF-8 sequence at s[0..avail), 1 to 4, or 0 when it is
 * ill-formed; *subpart then gets the length of its maximal subpart (at least 1). */
size_t text_utf8_sequence(const unsigned char *s, size_t avail, size_t *subpart);

#endif
