#include "autoconfig.h"

#include "ctl_orders.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "xmalloc.h"

/* The configured orders relation, each part quoted as an identifier; NULL on failure. */
static char *quoted_relation(struct ctl_context *ctx)
{
	const char *rel = ctx->cfg->orders_relation;
	const char *dot = strchr(rel, '.');
	char *schema = dot ? PQescapeIdentifier(ctx->conn, rel, (size_t)(dot - rel)) : NULL;
	char *name =
	    PQescapeIdentifier(ctx->conn, dot ? dot + 1 : rel, strlen(dot ? dot + 1 : rel));
	char *quoted = NULL;

	if (name != NULL && (dot == NULL || schema != NULL))
		quoted = dot ? xasprintf("%s.%s", schema, name) : xstrdup(name);
	PQfreemem(schema);
	PQfreemem(name);
	return quoted;
}

bool ctl_orders_load(struct ctl_context *ctx, const char *what, struct ctl_orders *o)
{
	memset(o, 0, sizeof(*o));
	o->relation = quoted_relation(ctx);
	if (o->relation == NULL) {
		ctl_error("%s: orders relation %s: %s", what, ctx->cfg->orders_relation,
		          PQerrorMessage(ctx->conn));
		return false;
	}
	const char *params[1] = {ctx->cfg->orders_relation};
	PGresult *res = ctl_query(ctx, what, STORE_SHAPE_SQL, 1, params);
	if (res == NULL)
		return false;
	if (PQntuples(res) != 1) {
		ctl_error("%s: orders relation %s not found or has no id column", what,
		          ctx->cfg->orders_relation);
		PQclear(res);
		return false;
	}
	o->id_type = xstrdup(PQgetvalue(res, 0, 0));
	o->authorized_type = PQgetisnull(res, 0, 1) ? NULL : xstrdup(PQgetvalue(res, 0, 1));
	o->expires_type = PQgetisnull(res, 0, 2) ? NULL : xstrdup(PQgetvalue(res, 0, 2));
	PQclear(res);
	o->shape =
	    (struct store_shape){o->relation, o->id_type, o->authorized_type, o->expires_type};
	return true;
}

void ctl_orders_free(struct ctl_orders *o)
{
	free(o->relation);
	free(o->id_type);
	free(o->authorized_type);
	free(o->expires_type);
	memset(o, 0, sizeof(*o));
}

bool ctl_orders_adopted(struct ctl_context *ctx, const char *what, const struct ctl_orders *o,
                        bool *adopted, bool *recorded)
{
	/* the daemon's start-up check (lib/store.c, store_prepare) */
	char *sql = xasprintf("SELECT EXISTS (SELECT 1 FROM smartpay.adoption), NOT EXISTS "
	                      "(SELECT 1 FROM %s) OR EXISTS (SELECT 1 FROM smartpay.modifications)",
	                      o->relation);
	PGresult *res = ctl_query(ctx, what, sql, 0, NULL);
	free(sql);
	if (res == NULL)
		return false;
	*recorded = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	*adopted = *recorded || strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	return true;
}
