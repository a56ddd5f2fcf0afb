/* Prometheus metrics and the health check: a small HTTP server on the daemon's loop.
 *
 * GET /metrics answers the text exposition format 0.0.4: the engine's counters, and
 * gauges read from the database (store_metrics.h) in the background every [metrics]
 * gauges_interval, on the housekeeping connection; a scrape never queries the database,
 * it answers with the last reading and its age (only the scrapes before the first
 * reading wait for it, on the loop, at most a couple of seconds).
 * GET /healthz answers 200 "ok" when the database is connected and usable; 503 with
 * the reason otherwise. Both answer from the loop, so any answer proves it runs. */
#ifndef SP_METRICS_H
#define SP_METRICS_H

#include <stdbool.h>
#include <event2/event.h>

struct engine;
struct store;
struct metrics; /* opaque */

/* Serves on `listen` ("host:port", "[v6]:port"; "" = disabled: returns true with *out
 * NULL). Reads the engine's stats and its store's configuration at every scrape. On a
 * bind failure returns false with a malloc'd reason naming the address in *why. */
bool metrics_new(struct event_base *base, const struct engine *engine, const char *listen,
                 struct metrics **out, char **why) __attribute__((warn_unused_result));

/* Reads the database gauges through `st` (the housekeeping connection's store, which
 * must outlive `m`) from now on; NULL stops the reads. NULL `m` is accepted. */
void metrics_set_gauges_store(struct metrics *m, struct store *st);

/* Closes the listener and answers waiting scrapes. Call while the engine (and its
 * database connection) still exists and the loop is not running. NULL is accepted. */
void metrics_free(struct metrics *m);

#endif
