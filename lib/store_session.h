/* The database session every program of smartpayd sets up: synchronous_commit = on and
 * the configured statement_timeout, and the daemon's check that the server makes a
 * committed intent durable. */
#ifndef SP_STORE_SESSION_H
#define SP_STORE_SESSION_H

#include "pgconn.h"

#include <stdbool.h>
#include <stdint.h>

/* The SQL to run first on every connection (malloc'd; free it): synchronous_commit = on,
 * statement_timeout = `statement_timeout_ms` (0: none). */
char *store_session_setup_sql(int64_t statement_timeout_ms);

/* The same for the connection that writes only outcomes (store_use_for_outcomes): the
 * outcome write's generic plan is kept, under planner settings that leave it no plan
 * but probes of the ledger's primary key and hash joins (malloc'd; free it). */
char *store_session_outcomes_sql(int64_t statement_timeout_ms);

/* Queues a read of the server's durability settings as this session sees them; its
 * answer is logged (settings at info, problems at warning) when it differs from
 * *reported, which then holds it (malloc'd; the caller frees it and keeps it alive while
 * the connection may still answer). False when the connection is not up. */
bool store_session_check(struct pg_conn *pc, char **reported) __attribute__((warn_unused_result));

#endif
