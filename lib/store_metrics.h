/* The store's read-only gauges for the metrics endpoint: pending work by age, expiring
 * authorizations and open alerts, read in one query (part of the store module). */
#ifndef SP_STORE_METRICS_H
#define SP_STORE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* Pending modifications are counted by age (now - created_at) in these buckets:
 * [0, 1m), [1m, 5m), [5m, 1h), [1h, 1d), [1d, inf). */
#define STORE_PENDING_AGE_BUCKETS 5
/* Upper bounds of the first four buckets, in seconds. */
extern const int64_t store_pending_age_bounds_s[STORE_PENDING_AGE_BUCKETS - 1];
/* Label values of the buckets: "under_1m", "1m_5m", "5m_1h", "1h_1d", "over_1d". */
extern const char *const store_pending_age_names[STORE_PENDING_AGE_BUCKETS];

/* Open (unacknowledged) alerts of one kind. */
struct store_alert_count {
	char *kind;
	uint64_t count;
};

/* One reading of the database gauges; every pointer is owned by the struct. */
struct store_gauges {
	uint64_t pending[STORE_PENDING_AGE_BUCKETS]; /* not cumulative */
	int64_t oldest_pending_age_ms;               /* 0 when nothing is pending */
	/* Authorizations still open (no succeeded capture, cancel or cancel_or_refund) whose
	 * deadline has not passed and falls within each threshold, in the order of
	 * thresholds_ms (a copy of the configured expiry_thresholds at the time of the read). */
	int64_t *thresholds_ms;
	uint64_t *expiring;
	size_t nthresholds;
	struct store_alert_count *alerts; /* sorted by kind */
	size_t nalerts;
};

/* Completion of store_read_gauges: `g` (NULL on error) belongs to the callee, which
 * moves what it keeps and clears the rest with store_gauges_clear. */
typedef void (*store_gauges_fn)(struct store_gauges *g, const char *error, void *arg);

/* Reads the gauges in one statement on the store's connection, with the thresholds of
 * the store's current configuration. The expiring authorizations are counted from what
 * the store remembers of the earlier reads: each read looks only at the deadlines that
 * entered the window since the previous one, at the orders notified since (given by
 * store_gauges_order_changed) and at those whose capture or cancel was pending; the
 * first read, the one after a failure or a lost notification, after a configuration
 * change and one every 30 minutes (the safety net) read the whole window, through the
 * indexes on the deadline columns. Returns false when the connection is not up or the
 * relation's id type is not known yet; `done` is then never called, else it runs once
 * with `arg` (not when the store's connection is freed first). */
bool store_read_gauges(struct store *st, store_gauges_fn done, void *arg)
    __attribute__((warn_unused_result));

/* An order of the relation changed (its notification); NULL: notifications may have
 * been missed (the connection was down), the next read takes the whole window. */
void store_gauges_order_changed(struct store *st, const char *order_id);

/* Frees what a reading holds and zeroes it. */
void store_gauges_clear(struct store_gauges *g);

#endif
