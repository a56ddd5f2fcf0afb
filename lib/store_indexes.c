#include "autoconfig.h"

#include "store_indexes.h"

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

char *store_index_columns_literal(void)
{
	size_t cap = 3;
	for (size_t i = 0; i < store_index_need_count; i++)
		cap += strlen(store_index_needs[i].column) + 1;
	char *out = xmalloc(cap);
	char *p = out;
	*p++ = '{';
	for (size_t i = 0; i < store_index_need_count; i++)
		p += sprintf(p, "%s%s", i ? "," : "", store_index_needs[i].column);
	*p++ = '}';
	*p = '\0';
	return out;
}

char *store_index_name(const char *relation, const char *column)
{
	const char *dot = strchr(relation, '.');
	const char *table = dot ? dot + 1 : relation;
	char *name = xasprintf("%s_%s_idx", table, column);
	if (strlen(name) > NAME_MAX_BYTES)
		name[NAME_MAX_BYTES] = '\0';
	return name;
}

char *store_index_statement(const char *relation, const char *column)
{
	const char *dot = strchr(relation, '.');
	char *name = store_index_name(relation, column);
	char *target = dot ? xasprintf("\"%.*s\".\"%s\"", (int)(dot - relation), relation, dot + 1)
	                   : xasprintf("\"%s\"", relation);
	char *sql =
	    xasprintf("CREATE INDEX CONCURRENTLY \"%s\" ON %s (\"%s\")", name, target, column);
	free(name);
	free(target);
	return sql;
}

const char *store_index_used_by(const char *column)
{
	for (size_t i = 0; i < store_index_need_count; i++)
		if (strcmp(store_index_needs[i].column, column) == 0)
			return store_index_needs[i].used_by;
	return NULL;
}
