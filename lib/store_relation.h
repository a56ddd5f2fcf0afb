/* The configured orders relation as SQL text: the one way every statement built outside
 * the daemon's store quotes it (each part through PQescapeIdentifier). */
#ifndef SP_STORE_RELATION_H
#define SP_STORE_RELATION_H

#include <libpq-fe.h>

/* Quotes "schema.name" or "name" as SQL identifiers for `conn`'s encoding. Malloc'd;
 * NULL with *err (malloc'd) when the name is malformed or cannot be quoted. */
char *store_relation_quote(PGconn *conn, const char *relation, char **err);

#endif
