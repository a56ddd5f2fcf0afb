/* The reconcile pass: every [reconcile] interval, each transaction with open business is
 * compared with SmartPay's own record of it (lib/reconcile.c on a GET /payment/status
 * answer, through the shared, rate-capped status client), on the reconciler's own
 * database connection. What differs is recorded in one statement per transaction
 * (lib/store_reconcile.h): external rows for effects made outside the daemon, a refused
 * capture row for an authorization that ended at the gateway, and the alerts
 * external_modification, ledger_drift and authorization_ended, each logged. A failing
 * status call decides nothing. Not used with --once. */
#ifndef SP_RECONCILER_H
#define SP_RECONCILER_H

#include <stdbool.h>
#include <stdint.h>

#include "reconcile.h"

struct event_base;
struct sp_config;
struct status_client;
struct reconciler; /* opaque */

/* Running totals, for logs and metrics. */
struct reconciler_stats {
	uint64_t passes;      /* complete passes */
	int64_t last_pass_ms; /* unix ms when the last complete pass ended, 0 never */
	uint64_t compared;    /* transactions compared with the gateway */
	uint64_t undecided;   /* transactions left alone: the status call failed */
	uint64_t drift[3];    /* findings by enum rc_drift */
	uint64_t alerts;      /* alerts inserted */
	bool running;         /* a pass is under way */
};

/* Creates the reconciler with its own database connection; `status` (shared with the
 * engine) must outlive it, `cfg` must stay valid until the next reload or the free. */
struct reconciler *reconciler_new(struct event_base *base, const struct sp_config *cfg,
                                  struct status_client *status);

/* Connects; the first pass starts once the database is up, then one every interval. */
void reconciler_start(struct reconciler *r);

/* Swaps the configuration (interval, lookback, statuses). */
void reconciler_reload(struct reconciler *r, const struct sp_config *cfg);

/* Stops: closes its connection and forgets its status calls. NULL is accepted. */
void reconciler_free(struct reconciler *r);

const struct reconciler_stats *reconciler_stats(const struct reconciler *r);

#endif
