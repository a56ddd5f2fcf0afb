/* A non-blocking libpq connection driven by a libevent loop: one query at a time from a
 * FIFO queue, LISTEN/NOTIFY delivery, and reconnection with backoff. */
#ifndef SP_PGCONN_H
#define SP_PGCONN_H

#include <stdbool.h>
#include <event2/event.h>
#include <libpq-fe.h>

struct pg_conn; /* opaque */

/* Called on connection changes and notifications; every pointer is valid during the call only. */
struct pg_conn_handlers {
	void (*up)(void *arg); /* connected (again): issue LISTEN etc. */
	void (*down)(void *arg,
	             const char *why); /* lost or failed; reconnecting in the background */
	void (*notify)(void *arg, const char *channel, const char *payload);
};

/* Completion of one query: `res` is the statement's result (NULL when the connection
 * failed before it completed, then `error` says why); an error result comes with
 * `error` set too. The result is cleared after the callback returns. */
typedef void (*pg_query_fn)(PGresult *res, const char *error, void *arg);

/* Creates the connection object; nothing happens until pg_conn_start. */
struct pg_conn *pg_conn_new(struct event_base *base, const char *conninfo,
                            const struct pg_conn_handlers *handlers, void *arg);
/* Closes the connection; callbacks of queued queries are not called. */
void pg_conn_free(struct pg_conn *pc);
/* What every connection gets before anything else runs on it. */
struct pg_conn_session {
	/* application_name unless the conninfo or PGAPPNAME names one; NULL: none */
	const char *fallback_application_name;
	/* parameterless SQL (e.g. "SET statement_timeout = 30000") run right after each
	 * connect, before the up handler and any queued query; a failure drops the
	 * connection, which is retried. NULL: none */
	const char *setup_sql;
};

/* Sets (copies) the session of the connections made from now on; call before
 * pg_conn_start. */
void pg_conn_set_session(struct pg_conn *pc, const struct pg_conn_session *session);

/* Starts connecting; after a failure it retries with backoff until pg_conn_free. */
void pg_conn_start(struct pg_conn *pc);
bool pg_conn_is_up(const struct pg_conn *pc);

/* Queues one parameterised statement (text parameters, text results). Returns false
 * when the connection is not up; the callback is then never called. */
bool pg_conn_query(struct pg_conn *pc, const char *sql, int nparams, const char *const *params,
                   pg_query_fn done, void *arg) __attribute__((warn_unused_result));

/* pg_conn_query with some parameters in binary format: parameter i is binary, of
 * lengths[i] bytes, when formats[i] is 1 (its type then comes from the statement, e.g.
 * $1::text[]), text when 0. Text results. */
bool pg_conn_query_params(struct pg_conn *pc, const char *sql, int nparams,
                          const char *const *params, const int *lengths, const int *formats,
                          pg_query_fn done, void *arg) __attribute__((warn_unused_result));

/* pg_conn_query_params for a named prepared statement: `sql` is prepared under `name`
 * (PQsendPrepare, parameter types from the statement) the first time the name is used on
 * a connection, again after a reconnect or a failed preparation, and executed with the
 * parameters (PQsendQueryPrepared); a new text under a known name replaces the old
 * (DEALLOCATE, then prepared again), and so does the next use after an execution failed
 * because a column's type changed under the statement (SQLSTATE 0A000). `name` is a
 * plain identifier. */
bool pg_conn_query_prepared(struct pg_conn *pc, const char *name, const char *sql, int nparams,
                            const char *const *params, const int *lengths, const int *formats,
                            pg_query_fn done, void *arg) __attribute__((warn_unused_result));

/* Queues parameterless SQL that may hold several statements (e.g. "LISTEN a; LISTEN b"). */
bool pg_conn_exec(struct pg_conn *pc, const char *sql, pg_query_fn done, void *arg)
    __attribute__((warn_unused_result));

/* The libpq connection while connected (also during the session setup), NULL otherwise:
 * for what libpq does on a connection without a round trip (PQescapeIdentifier). Valid
 * until the connection is lost; run no statement on it. */
PGconn *pg_conn_pgconn(const struct pg_conn *pc);

#endif
