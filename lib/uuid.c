#include "autoconfig.h"

#include "uuid.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void uuid_random_bytes(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "smartpay: getrandom failed: %s\n", strerror(errno));
			abort();
		}
		p += n;
		len -= (size_t)n;
	}
}

/* Modification ids draw their random bytes from the kernel this many at a time: one
 * getrandom per id was one system call per capture (0.5 ms in a claim of 512). */
#define UUID_POOL_BYTES 512

static _Thread_local unsigned char pool[UUID_POOL_BYTES];
static _Thread_local size_t pool_left;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* In a forked child the parent's unused bytes are dropped: both would draw the same ids. */
static void pool_forget(void)
{
	pool_left = 0;
}

/* Registers pool_forget for the child of every fork. */
static void pool_init(void)
{
	if (pthread_atfork(NULL, NULL, pool_forget) != 0) {
		fprintf(stderr, "smartpay: pthread_atfork failed\n");
		abort();
	}
}

/* Takes 16 random bytes from the pool, refilling it from the kernel when empty; the bytes
 * taken are wiped from it. */
static void pool_take16(unsigned char b[16])
{
	pthread_once(&pool_once, pool_init);
	if (pool_left < 16) {
		uuid_random_bytes(pool, sizeof(pool));
		pool_left = sizeof(pool);
	}
	pool_left -= 16;
	memcpy(b, pool + pool_left, 16);
	memset(pool + pool_left, 0, 16);
}

void uuid_v4(char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	size_t o = 0;

	pool_take16(b);
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	for (size_t i = 0; i < sizeof(b); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 0x0f];
	}
	out[o] = '\0';
}

bool uuid_valid(const char *s)
{
	if (s == NULL)
		return false;
	for (size_t i = 0; i < UUID_TEXT_LEN; i++) {
		char c = s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		             (c >= 'A' && c <= 'F'))) {
			return false;
		}
	}
	return s[UUID_TEXT_LEN] == '\0';
}
