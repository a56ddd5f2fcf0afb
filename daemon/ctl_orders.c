#include "autoconfig.h"

#include "ctl_orders.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "store_ctl.h"
#include "xmalloc.h"

bool ctl_orders_load(struct ctl_context *ctx, const char *what, struct ctl_orders *o)
{
	memset(o, 0, sizeof(*o));
	o->relation = ctl_relation(ctx, what);
	if (o->relation == NULL)
		return false;
	PGresult *res = ctl_ok(ctx, what, store_ctl_shape(ctx->conn, ctx->cfg->orders_relation));
	if (res != NULL && PQntuples(res) != 1)
		ctl_error("%s: orders relation %s not found or has no id column", what,
		          ctx->cfg->orders_relation);
	if (res == NULL || PQntuples(res) != 1) {
		PQclear(res);
		ctl_orders_free(o);
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
	PGresult *res = ctl_ok(ctx, what, store_ctl_adopted(ctx->conn, &o->shape));
	if (res == NULL)
		return false;
	*recorded = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	*adopted = *recorded || strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	return true;
}
