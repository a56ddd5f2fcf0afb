#include "autoconfig.h"

#include "store_indexes.h"

#include "store_internal.h"
#include "store_relation.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PostgreSQL truncates identifiers to this many bytes. */
#define NAME_MAX_BYTES 63

const struct store_index_need store_index_needs[] = {
    {"authorization_expires_at",
     "the expiry sweep and the expiring-authorization gauges (deadlines the shop sets)"},
    {"authorized_at", "the expiry sweep and the expiring-authorization gauges (deadlines "
                      "from authorized_at + authorization_validity)"},
};
const size_t store_index_need_count = sizeof(store_index_needs) / sizeof(store_index_needs[0]);

const char store_index_check_sql[] =
    "SELECT n.col FROM unnest($2::text[]) WITH ORDINALITY AS n(col, i) "
    "WHERE (SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass($1)) IN ('r', 'p', 'm') "
    "AND NOT EXISTS (SELECT 1 FROM pg_index x "
    "JOIN pg_class ic ON ic.oid = x.indexrelid JOIN pg_am am ON am.oid = ic.relam "
    "JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0] "
    "WHERE x.indrelid = to_regclass($1) AND x.indisvalid AND x.indpred IS NULL "
    "AND am.amname = 'btree' AND a.attname = n.col) "
    "ORDER BY n.i";

/* The needed columns as a text[] parameter. */
char *store_index_columns_literal(void)
{
	char *cols[sizeof(store_index_needs) / sizeof(store_index_needs[0])];
	for (size_t i = 0; i < store_index_need_count; i++)
		cols[i] = (char *)store_index_needs[i].column;
	return store_text_array(cols, store_index_need_count);
}

/* The index's name: TABLE_COLUMN_idx cut to what PostgreSQL keeps. */
char *store_index_name(const char *relation, const char *column)
{
	const char *dot = strchr(relation, '.');
	const char *table = dot ? dot + 1 : relation;
	char *name = xasprintf("%s_%s_idx", table, column);
	if (strlen(name) > NAME_MAX_BYTES)
		name[NAME_MAX_BYTES] = '\0';
	return name;
}

/* The CREATE INDEX statement, every identifier quoted by libpq. */
char *store_index_statement(PGconn *conn, const char *relation, const char *column, char **err)
{
	char *target = store_relation_quote(conn, relation, err);
	if (target == NULL)
		return NULL;
	char *name = store_index_name(relation, column);
	char *qname = PQescapeIdentifier(conn, name, strlen(name));
	char *qcolumn = PQescapeIdentifier(conn, column, strlen(column));
	char *sql = NULL;
	if (qname != NULL && qcolumn != NULL)
		sql = xasprintf("CREATE INDEX CONCURRENTLY %s ON %s (%s)", qname, target, qcolumn);
	else
		*err = xasprintf("index on %s (%s): %s", relation, column, PQerrorMessage(conn));
	PQfreemem(qname);
	PQfreemem(qcolumn);
	free(name);
	free(target);
	return sql;
}

/* What reads through the index on `column`. */
const char *store_index_used_by(const char *column)
{
	for (size_t i = 0; i < store_index_need_count; i++)
		if (strcmp(store_index_needs[i].column, column) == 0)
			return store_index_needs[i].used_by;
	return NULL;
}
