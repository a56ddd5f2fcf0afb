/* The indexes the daemon's queries need on the shop's orders relation (part of the store
 * module). The orders relation is the shop's table: the daemon never creates indexes on
 * it; `smartpayctl migrate` and the daemon's start check for them and name the
 * statement that creates a missing one. */
#ifndef SP_STORE_INDEXES_H
#define SP_STORE_INDEXES_H

#include <libpq-fe.h>
#include <stddef.h>

/* One index the daemon's queries need: a btree whose first key column is `column`. */
struct store_index_need {
	const char *column;
	const char *used_by; /* which queries read through it, for the warning */
};

extern const struct store_index_need store_index_needs[];
extern const size_t store_index_need_count;

/* The check statement. Parameters: $1 the orders relation as configured ("schema.name"
 * or "name"), $2 the needed columns (text[]). One row per needed column that no valid,
 * non-partial btree index of the relation has as its first key column; no rows when the
 * relation is a view (its table is the shop's to index) or does not exist. */
extern const char store_index_check_sql[];

/* The `column` list of store_index_needs as a text[] literal
 * ({"authorization_expires_at","authorized_at"}). Malloc'd. */
char *store_index_columns_literal(void);

/* The statement that creates the index on `column` for the orders relation `relation`
 * as configured ("schema.name" or "name"), every identifier quoted through
 * PQescapeIdentifier for `conn`, e.g. CREATE INDEX CONCURRENTLY
 * "orders_authorized_at_idx" ON "public"."orders" ("authorized_at"). Malloc'd; NULL
 * with *err (malloc'd) when a name cannot be quoted. */
char *store_index_statement(PGconn *conn, const char *relation, const char *column, char **err);

/* The name store_index_statement gives the index, e.g. orders_authorized_at_idx. Malloc'd. */
char *store_index_name(const char *relation, const char *column);

/* The usage text of a needed column (NULL when it is not one). */
const char *store_index_used_by(const char *column);

#endif
