#include "autoconfig.h"

#include "store_relation.h"

#include <string.h>

#include "trim.h"
#include "xmalloc.h"

/* Quotes "schema.name" or "name" as SQL identifiers; NULL with *err when malformed. */
char *store_relation_quote(PGconn *conn, const char *relation, char **err)
{
	const char *dot = strchr(relation, '.');
	char *quoted = NULL;

	if (relation[0] == '\0' || dot == relation || (dot != NULL && dot[1] == '\0') ||
	    (dot != NULL && strchr(dot + 1, '.') != NULL)) {
		*err = xasprintf("orders relation \"%s\": expected NAME or SCHEMA.NAME", relation);
		return NULL;
	}
	char *schema = dot ? PQescapeIdentifier(conn, relation, (size_t)(dot - relation)) : NULL;
	const char *rest = dot ? dot + 1 : relation;
	char *name = PQescapeIdentifier(conn, rest, strlen(rest));
	if (name != NULL && (dot == NULL || schema != NULL))
		quoted = dot ? xasprintf("%s.%s", schema, name) : xstrdup(name);
	PQfreemem(schema);
	PQfreemem(name);
	if (quoted == NULL) {
		*err = trim_end(
		    xasprintf("orders relation \"%s\": %s", relation, PQerrorMessage(conn)), "\n ");
	}
	return quoted;
}
