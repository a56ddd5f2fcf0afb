/* The modification flow: claim due work, record intents, send, classify, record outcomes.
 * One engine per daemon, driven by one libevent loop. */
#ifndef SP_ENGINE_H
#define SP_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <event2/event.h>

struct sp_config;
struct engine; /* opaque */

/* Running totals, for logs, metrics and status lines. */
struct engine_stats {
	uint64_t sent;            /* requests sent, retries included */
	uint64_t succeeded;
	uint64_t refused;         /* by the gateway */
	uint64_t refused_locally; /* bad order rows */
	uint64_t retries;         /* unknown outcomes scheduled again */
	uint64_t needs_attention;
	uint64_t fenced;          /* outcomes dropped because the lease moved on */
	uint64_t auth_rejected;
	unsigned inflight;
	bool db_up;
	bool gateway_paused; /* credentials rejected: sending paused */
	bool ready;          /* connected and prepared at least once */
};

/* Optional hooks for the service manager. */
struct engine_hooks {
	void (*ready)(void *arg);  /* first time the database is connected and checked */
	void (*idle_exit)(void *arg); /* --once finished, or a drain completed */
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
/* 0 when nothing that was due is left undone (for --once), 1 otherwise. */
int engine_exit_status(const struct engine *e);
/* Text of the last fatal preparation problem (schema missing, lock held), or NULL. */
const char *engine_problem(const struct engine *e);

#endif
