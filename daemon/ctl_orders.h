/* What smartpayctl's adopt, preview and rescan share: the orders relation's shape, read
 * the way the daemon reads it, and the baseline. */
#ifndef SP_CTL_ORDERS_H
#define SP_CTL_ORDERS_H

#include <stdbool.h>

#include "ctl_common.h"
#include "store.h"

/* The configured orders relation as the daemon's statements see it. */
struct ctl_orders {
	char *relation; /* quoted */
	char *id_type, *authorized_type, *expires_type;
	struct store_shape shape; /* points into the strings above */
};

/* Reads the shape of the configured orders relation; false after reporting why. */
bool ctl_orders_load(struct ctl_context *ctx, const char *what, struct ctl_orders *o);
void ctl_orders_free(struct ctl_orders *o);

/* The baseline as the daemon judges it at start: recorded (or implied by a ledger that
 * has rows, or by an empty orders relation). *recorded tells whether smartpay.adoption
 * has its row. False after reporting a failed query. */
bool ctl_orders_adopted(struct ctl_context *ctx, const char *what, const struct ctl_orders *o,
                        bool *adopted, bool *recorded);

/* The three parameters of the history rule and the candidate query's first three:
 * shipped, cancelled, validity (store_candidate_params). */
#define CTL_ORDERS_RULE_PARAMS 3

#endif
