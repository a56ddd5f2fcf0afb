#include "autoconfig.h"

#include "text.h"

#include "xmalloc.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* U+FFFD REPLACEMENT CHARACTER in UTF-8. */
static const char replacement[] = "\xEF\xBF\xBD";
#define REPLACEMENT_LEN 3

/* True for a continuation byte within [lo, hi] (both within 0x80..0xBF). */
static bool in_range(unsigned char c, unsigned char lo, unsigned char hi)
{
	return c >= lo && c <= hi;
}

size_t text_utf8_sequence(const unsigned char *s, size_t avail, size_t *subpart)
{
	unsigned char c = s[0];
	size_t need, i;
	unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte (Unicode table 3-7) */

	*subpart = 1;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		if (c == 0xE0)
			lo = 0xA0; /* below: overlong */
		else if (c == 0xED)
			hi = 0x9F; /* above: surrogates U+D800..U+DFFF */
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		if (c == 0xF0)
			lo = 0x90; /* below: overlong */
		else if (c == 0xF4)
			hi = 0x8F; /* above: beyond U+10FFFF */
	} else {
		return 0; /* a continuation byte, C0/C1 (overlong) or F5..FF */
	}
	for (i = 1; i < need; i++) {
		if (i >= avail || !in_range(s[i], i == 1 ? lo : 0x80, i == 1 ? hi : 0xBF)) {
			*subpart = i;
			return 0;
		}
	}
	return need;
}

/* The length of the run of ASCII bytes other than NUL at `s`, at most `max`: each is a
 * whole character kept as it is. */
static size_t text_ascii_run(const unsigned char *s, size_t max)
{
	const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
	size_t k = 0;

	/* eight bytes at a time while none has its high bit set or is zero (an answer of
	 * about 1 KiB is checked here before it is copied for its outcome) */
	for (uint64_t w; k + 8 <= max; k += 8) {
		memcpy(&w, s + k, sizeof(w));
		if ((w & highs) != 0 || ((w - ones) & ~w & highs) != 0)
			break;
	}
	while (k < max && s[k] != 0 && s[k] < 0x80)
		k++;
	return k;
}

/* Length of the longest prefix of the len bytes at in that is well-formed UTF-8 without
 * a NUL byte. */
static size_t clean_prefix(const unsigned char *in, size_t len)
{
	size_t i = 0, subpart, n;

	while (i < len) {
		i += text_ascii_run(in + i, len - i);
		if (i == len)
			break;
		n = in[i] == '\0' ? 0 : text_utf8_sequence(in + i, len - i, &subpart);
		if (n == 0)
			break;
		i += n;
	}
	return i;
}

char *text_storable(const char *s, size_t len, size_t max_bytes, enum text_nul nul)
{
	const unsigned char *in = (const unsigned char *)s;
	/* at most three output bytes per input byte (a lone byte becomes U+FFFD) */
	size_t cap = max_bytes < TEXT_UNLIMITED ? max_bytes : TEXT_UNLIMITED - 1;
	char *out;
	size_t o = 0, i = 0;

	/* the usual case, text that is already storable and short enough: an exact copy,
	 * without the room for replacements (at 1,000 answers held for their outcome
	 * write, three times each answer's size was about 1.2 MiB more) */
	if (len <= cap && clean_prefix(in, len) == len) {
		out = xmalloc(len + 1);
		if (len > 0)
			memcpy(out, s, len);
		out[len] = '\0';
		return out;
	}
	if (len < TEXT_UNLIMITED / 3 && len * 3 < cap)
		cap = len * 3;
	out = xmalloc(cap + 1);
	while (i < len) {
		/* most of an answer is ASCII: copied a run at a time, as far as it fits */
		size_t run = text_ascii_run(in + i, len - i < cap - o ? len - i : cap - o);
		if (run > 0) {
			memcpy(out + o, s + i, run);
			o += run;
			i += run;
			continue;
		}
		size_t subpart, n = text_utf8_sequence(in + i, len - i, &subpart);
		const char *piece = s + i;
		size_t piece_len = n;

		if (n == 0) {
			piece = replacement;
			piece_len = REPLACEMENT_LEN;
			i += subpart;
		} else if (in[i] == '\0') {
			i++;
			if (nul == TEXT_NUL_DROP)
				continue;
			piece = replacement;
			piece_len = REPLACEMENT_LEN;
		} else {
			i += n;
		}
		if (piece_len > cap - o)
			break; /* the next character does not fit whole */
		memcpy(out + o, piece, piece_len);
		o += piece_len;
	}
	out[o] = '\0';
	/* give back the room the replacements did not take */
	return o < cap ? xrealloc(out, o + 1) : out;
}

char *text_storable_str(const char *s, size_t max_bytes)
{
	return s != NULL ? text_storable(s, strlen(s), max_bytes, TEXT_NUL_DROP) : NULL;
}
