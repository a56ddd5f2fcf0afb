/* A small string-keyed open-addressing hash table for the simulator's lookups. */
#ifndef SIM_HTAB_H
#define SIM_HTAB_H

#include <stdbool.h>
#include <stddef.h>

/* Maps NUL-terminated keys to pointers. The table does not copy keys: each key must
 * stay valid while its entry exists (the simulator keeps it inside the value).
 * Entries are never removed one by one; sim_htab_free drops the table only. */
struct sim_htab;

struct sim_htab *sim_htab_new(size_t expected);
void sim_htab_free(struct sim_htab *h);

/* Returns the value stored under key, or NULL. */
void *sim_htab_get(const struct sim_htab *h, const char *key);

/* Stores value under key; false (and nothing changed) when key is already present. */
bool sim_htab_put(struct sim_htab *h, const char *key, void *value);

size_t sim_htab_count(const struct sim_htab *h);

#endif
