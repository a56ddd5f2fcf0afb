#include "autoconfig.h"

#include "htab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

struct sim_htab_slot {
	uint64_t hash; /* 0 marks an empty slot */
	const char *key;
	void *value;
};

struct sim_htab {
	struct sim_htab_slot *slots;
	size_t mask; /* capacity - 1, capacity a power of two */
	size_t count;
};

/* FNV-1a, forced non-zero so that 0 can mark empty slots. */
static uint64_t htab_hash(const char *key)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 29;
	return h ? h : 1;
}

struct sim_htab *sim_htab_new(size_t expected)
{
	size_t cap = 16;
	while (cap < expected * 2)
		cap *= 2;
	struct sim_htab *h = xcalloc(1, sizeof(*h));
	h->slots = xcalloc(cap, sizeof(*h->slots));
	h->mask = cap - 1;
	return h;
}

void sim_htab_free(struct sim_htab *h)
{
	if (h == NULL)
		return;
	free(h->slots);
	free(h);
}

/* Doubles the capacity and re-inserts every entry. */
static void htab_grow(struct sim_htab *h)
{
	size_t old_cap = h->mask + 1;
	struct sim_htab_slot *old = h->slots;
	h->slots = xcalloc(old_cap * 2, sizeof(*h->slots));
	h->mask = old_cap * 2 - 1;
	for (size_t i = 0; i < old_cap; i++) {
		if (old[i].hash == 0)
			continue;
		size_t j = old[i].hash & h->mask;
		while (h->slots[j].hash != 0)
			j = (j + 1) & h->mask;
		h->slots[j] = old[i];
	}
	free(old);
}

void *sim_htab_get(const struct sim_htab *h, const char *key)
{
	uint64_t hash = htab_hash(key);
	for (size_t i = hash & h->mask;; i = (i + 1) & h->mask) {
		const struct sim_htab_slot *s = &h->slots[i];
		if (s->hash == 0)
			return NULL;
		if (s->hash == hash && strcmp(s->key, key) == 0)
			return s->value;
	}
}

bool sim_htab_put(struct sim_htab *h, const char *key, void *value)
{
	if ((h->count + 1) * 10 > (h->mask + 1) * 7)
		htab_grow(h);
	uint64_t hash = htab_hash(key);
	size_t i = hash & h->mask;
	for (; h->slots[i].hash != 0; i = (i + 1) & h->mask) {
		if (h->slots[i].hash == hash && strcmp(h->slots[i].key, key) == 0)
			return false;
	}
	h->slots[i].hash = hash;
	h->slots[i].key = key;
	h->slots[i].value = value;
	h->count++;
	return true;
}

size_t sim_htab_count(const struct sim_htab *h)
{
	return h->count;
}
