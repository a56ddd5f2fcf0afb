/* The modification flow: claim due work, record intents, send, classify, record outcomes.
 * One engine per daemon, driven by one libevent loop. */
#ifndef SP_ENGINE_H
#define SP_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <event2/event.h>

#include "outcome.h"

struct sp_config;
struct store;
struct engine; /* opaque */

/* Upper bounds (microseconds) of the gateway latency histogram buckets; one more
 * bucket counts everything above the last bound. */
#define ENGINE_LATENCY_BUCKETS 13
extern const int64_t engine_latency_bounds_us[ENGINE_LATENCY_BUCKETS];

/* Running totals, for logs, metrics and status lines. */
struct engine_stats {
	uint64_t results[4][OUTCOME_RESULT_COUNT];            /* by enum mod_kind and result */
	uint64_t latency_buckets[ENGINE_LATENCY_BUCKETS + 1]; /* not cumulative */
	uint64_t latency_count;
	uint64_t latency_sum_us;
	int64_t gateway_last_answer_ms; /* unix ms of the last HTTP answer of any status, 0 never */
	int64_t gateway_failing_since_ms; /* unix ms of the first request left without an HTTP
	                                   * answer since the last answer, 0 none */
	uint64_t sent;                    /* requests sent, retries included */
	uint64_t succeeded;
	uint64_t refused;         /* by the gateway */
	uint64_t refused_locally; /* bad order rows */
	uint64_t retries;         /* unknown outcomes scheduled again */
	uint64_t needs_attention;
	uint64_t fenced;           /* outcomes dropped because the lease moved on */
	uint64_t outcomes_dropped; /* outcomes the database refused even without the answer */
	uint64_t auth_rejected;
	unsigned inflight;
	bool db_up;
	bool gateway_paused; /* credentials rejected: sending paused */
	bool ready;          /* connected and prepared at least once */
};

/* Optional hooks for the service manager. */
struct engine_hooks {
	void (*ready)(void *arg);     /* first time the database is connected and checked */
	void (*idle_exit)(void *arg); /* --once finished, or a drain completed */
	void *arg;
};

/* Another module following the engine's database and gateway events (the alerts module).
 * Every callback is optional and runs on the loop; pointers are valid during the call only. */
struct engine_listener {
	void (*db_ready)(void *arg); /* connected and prepared (again, after each connect) */
	void (*db_down)(void *arg);  /* the connection was lost or failed; reconnecting */
	void (*notify)(void *arg, const char *channel, const char *payload); /* every NOTIFY */
	void (*gateway_failed)(void *arg); /* an attempt ended without any HTTP answer */
	void *arg;
};

/* Creates an engine; `secret` is the SmartPay authentication key (copied). With `once`
 * it does what is due now, waits for the outcomes and then calls hooks->idle_exit. */
struct engine *engine_new(struct event_base *base, const struct sp_config *cfg, const char *secret,
                          bool once, const struct engine_hooks *hooks);
void engine_free(struct engine *e);
void engine_start(struct engine *e);
/* Stops claiming; idle_exit runs once in-flight requests and outcome writes are done. */
void engine_drain(struct engine *e);
/* Swaps in a new configuration and secret (both must outlive the engine's use of them:
 * the caller keeps cfg alive until the next swap or engine_free). */
void engine_reload(struct engine *e, const struct sp_config *cfg, const char *secret);
const struct engine_stats *engine_stats(const struct engine *e);
/* The engine's store, for read-only queries of other modules (metrics gauges). */
struct store *engine_store(const struct engine *e);
struct event_base *engine_base(const struct engine *e);
struct status_client;
/* Sets the status client that settles unknown outcomes from the transaction's status
 * history (after [reconcile] unknown_answers unknown answers, and always before
 * needs_attention), or NULL for none. It must outlive the engine or be cleared first;
 * changing it drops the settlements under way (their rows are taken up again after
 * their lease). */
void engine_set_status_client(struct engine *e, struct status_client *status);

/* Asks for a claim of the due rows at the next cycle (the expiry sweep made some due). */
void engine_want_due(struct engine *e);

/* Sets the one listener (copied), or clears it with NULL. */
void engine_set_listener(struct engine *e, const struct engine_listener *l);
/* 0 when nothing that was due is left undone (for --once), 1 otherwise. */
int engine_exit_status(const struct engine *e);
/* Text of the last fatal preparation problem (schema missing, lock held), or NULL. */
const char *engine_problem(const struct engine *e);

#endif
