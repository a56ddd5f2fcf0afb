#include "autoconfig.h"

#include "pgconn.h"

#include "log.h"
#include "trim.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000

enum pg_conn_state { PGC_IDLE, PGC_CONNECTING, PGC_UP, PGC_WAITING };

/* One queued statement; owns copies of its text and parameters. */
struct pg_query {
	struct pg_query *next;
	char *sql;
	int nparams; /* -1: simple protocol, several statements allowed */
	char **params;
	int *lengths; /* of the binary parameters; NULL: every parameter is text */
	int *formats; /* 1 for a binary parameter, 0 for text; NULL: all text */
	char *name;   /* a prepared statement's name; NULL: unnamed, sql runs as it is */
	bool prepare; /* with name: prepares sql under it (no parameters sent) */
	pg_query_fn done;
	void *arg;
};

/* A statement prepared on the connection: its name and text. */
struct pg_prepared {
	char *name;
	char *sql;
};

struct pg_conn {
	struct event_base *base;
	char *conninfo;
	struct pg_conn_handlers handlers;
	void *arg;
	char *fallback_appname; /* NULL: none */
	char *setup_sql;        /* NULL: none */
	bool setting_up;        /* connected, setup_sql running: not up for the owner yet */

	PGconn *conn;
	enum pg_conn_state state;
	int fd;
	struct event *ev_read;  /* persistent while connected */
	struct event *ev_write; /* armed while libpq has output to flush or asks for it */
	struct event *ev_retry; /* reconnect timer */
	int64_t retry_ms;
	bool reading_for_connect; /* during connect: which direction PQconnectPoll asked for */

	struct pg_query *head, *tail; /* head is the running query once sent */
	bool sent;                    /* head has been sent and awaits its results */
	PGresult *keep;               /* result kept for the callback of the running query */
	/* the statements prepared (or being prepared) on this connection */
	struct pg_prepared *prepared;
	size_t nprepared;
};

static void pg_conn_on_io(evutil_socket_t fd, short what, void *arg);
static void pg_conn_connect_step(struct pg_conn *pc);
static void pg_conn_pump(struct pg_conn *pc);
static bool pg_conn_send(struct pg_conn *pc, const struct pg_query *q, const char *const *params,
                         const int *lengths, const int *formats);
static void pg_conn_announce_up(struct pg_conn *pc);
static void pg_conn_setup_done(PGresult *res, const char *error, void *arg);

/* The reconnect timer fired. */
static void pg_conn_on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pg_conn_connect_step(arg);
}

/* Routes libpq's notices (warnings from the server) to our log. */
static void pg_conn_notice(void *arg, const char *message)
{
	(void)arg;
	char *text = trim_end(xstrdup(message), "\n");
	log_fields(LOG_LVL_NOTICE, "db_notice", LOG_STR("msg", text));
	free(text);
}

/* Frees a query's copies of its parameters (libpq holds them once sent). */
static void query_drop_params(struct pg_query *q)
{
	for (int i = 0; q->params && i < q->nparams; i++)
		free(q->params[i]);
	free(q->params);
	q->params = NULL;
	free(q->lengths);
	q->lengths = NULL;
	free(q->formats);
	q->formats = NULL;
}

/* Frees a query. */
static void query_free(struct pg_query *q)
{
	query_drop_params(q);
	free(q->sql);
	free(q->name);
	free(q);
}

/* Forgets the statements prepared on the connection (it is gone). */
static void pg_conn_forget_prepared(struct pg_conn *pc)
{
	for (size_t i = 0; i < pc->nprepared; i++) {
		free(pc->prepared[i].name);
		free(pc->prepared[i].sql);
	}
	free(pc->prepared);
	pc->prepared = NULL;
	pc->nprepared = 0;
}

/* Forgets the prepared statement at index `i`. */
static void pg_conn_drop_prepared(struct pg_conn *pc, size_t i)
{
	free(pc->prepared[i].name);
	free(pc->prepared[i].sql);
	pc->prepared[i] = pc->prepared[--pc->nprepared];
}

/* The index of `name` among the prepared statements, or -1. */
static long pg_conn_find_prepared(const struct pg_conn *pc, const char *name)
{
	for (size_t i = 0; i < pc->nprepared; i++)
		if (strcmp(pc->prepared[i].name, name) == 0)
			return (long)i;
	return -1;
}

struct pg_conn *pg_conn_new(struct event_base *base, const char *conninfo,
                            const struct pg_conn_handlers *handlers, void *arg)
{
	struct pg_conn *pc = xcalloc(1, sizeof(*pc));
	pc->base = base;
	pc->conninfo = xstrdup(conninfo ? conninfo : "");
	if (handlers)
		pc->handlers = *handlers;
	pc->arg = arg;
	pc->fd = -1;
	pc->retry_ms = RECONNECT_MIN_MS;
	pc->ev_retry = evtimer_new(base, pg_conn_on_retry, pc);
	return pc;
}

/* Drops the socket events and the PGconn, keeping the query queue. */
static void pg_conn_close(struct pg_conn *pc)
{
	if (pc->ev_read) {
		event_free(pc->ev_read);
		pc->ev_read = NULL;
	}
	if (pc->ev_write) {
		event_free(pc->ev_write);
		pc->ev_write = NULL;
	}
	if (pc->keep) {
		PQclear(pc->keep);
		pc->keep = NULL;
	}
	if (pc->conn) {
		PQfinish(pc->conn);
		pc->conn = NULL;
	}
	pc->fd = -1;
	pc->sent = false;
	pc->setting_up = false;
	pg_conn_forget_prepared(pc);
}

/* Fails every queued query with `why`. Callbacks may queue nothing: the connection is down. */
static void pg_conn_fail_queue(struct pg_conn *pc, const char *why)
{
	struct pg_query *q = pc->head;
	pc->head = pc->tail = NULL;
	while (q) {
		struct pg_query *next = q->next;
		if (q->done)
			q->done(NULL, why, q->arg);
		query_free(q);
		q = next;
	}
}

void pg_conn_free(struct pg_conn *pc)
{
	if (pc == NULL)
		return;
	pg_conn_close(pc);
	struct pg_query *q = pc->head;
	while (q) {
		struct pg_query *next = q->next;
		query_free(q);
		q = next;
	}
	event_free(pc->ev_retry);
	free(pc->conninfo);
	free(pc->fallback_appname);
	free(pc->setup_sql);
	free(pc);
}

/* Schedules the next connection attempt with exponential backoff and jitter. */
static void pg_conn_schedule_retry(struct pg_conn *pc)
{
	uint32_t r = 0;
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = 0;
	int64_t delay = pc->retry_ms / 2 + (int64_t)(r % (uint32_t)(pc->retry_ms / 2 + 1));
	struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
	pc->state = PGC_WAITING;
	evtimer_add(pc->ev_retry, &tv);
	pc->retry_ms *= 2;
	if (pc->retry_ms > RECONNECT_MAX_MS)
		pc->retry_ms = RECONNECT_MAX_MS;
}

/* Tears the connection down after an error, tells the owner and plans a reconnect. */
static void pg_conn_lost(struct pg_conn *pc, const char *why)
{
	char *reason = trim_end(xstrdup(why && *why ? why : "connection lost"), "\n ");
	bool was_up = pc->state == PGC_UP;
	pg_conn_close(pc);
	pg_conn_schedule_retry(pc);
	pg_conn_fail_queue(pc, reason);
	log_fields(LOG_LVL_WARNING, was_up ? "db_disconnected" : "db_connect_failed",
	           LOG_STR("reason", reason));
	if (pc->handlers.down)
		pc->handlers.down(pc->arg, reason);
	free(reason);
}

/* (Re)creates the socket events for the current libpq socket. */
static void pg_conn_watch(struct pg_conn *pc, short what)
{
	int fd = PQsocket(pc->conn);
	if (fd != pc->fd) {
		if (pc->ev_read)
			event_free(pc->ev_read);
		if (pc->ev_write)
			event_free(pc->ev_write);
		pc->fd = fd;
		pc->ev_read = event_new(pc->base, fd, EV_READ | EV_PERSIST, pg_conn_on_io, pc);
		pc->ev_write = event_new(pc->base, fd, EV_WRITE, pg_conn_on_io, pc);
	}
	if (what & EV_READ)
		event_add(pc->ev_read, NULL);
	else
		event_del(pc->ev_read);
	if (what & EV_WRITE)
		event_add(pc->ev_write, NULL);
	else
		event_del(pc->ev_write);
}

void pg_conn_set_session(struct pg_conn *pc, const struct pg_conn_session *session)
{
	free(pc->fallback_appname);
	free(pc->setup_sql);
	pc->fallback_appname = session && session->fallback_application_name
	                           ? xstrdup(session->fallback_application_name)
	                           : NULL;
	pc->setup_sql = session && session->setup_sql ? xstrdup(session->setup_sql) : NULL;
}

void pg_conn_start(struct pg_conn *pc)
{
	if (pc->state == PGC_IDLE || pc->state == PGC_WAITING)
		pg_conn_connect_step(pc);
}

/* Starts a connection or advances one that is under way (PQconnectPoll). */
static void pg_conn_connect_step(struct pg_conn *pc)
{
	if (pc->state != PGC_CONNECTING) {
		/* dbname with expand_dbname takes the whole conninfo string or URI; an empty
		 * one leaves libpq's defaults (PGHOST, ...) in force */
		const char *const keywords[] = {"dbname", "fallback_application_name", NULL};
		const char *const values[] = {pc->conninfo, pc->fallback_appname, NULL};
		pc->conn = PQconnectStartParams(keywords, values, 1);
		if (pc->conn == NULL) {
			pg_conn_lost(pc, "out of memory starting a connection");
			return;
		}
		if (PQstatus(pc->conn) == CONNECTION_BAD) {
			char *why = xstrdup(PQerrorMessage(pc->conn));
			pg_conn_lost(pc, why);
			free(why);
			return;
		}
		PQsetNoticeProcessor(pc->conn, pg_conn_notice, pc);
		pc->state = PGC_CONNECTING;
		pc->fd = -1;
		pc->reading_for_connect = false;
		pg_conn_watch(pc, EV_WRITE);
		return;
	}
	switch (PQconnectPoll(pc->conn)) {
	case PGRES_POLLING_READING:
		pg_conn_watch(pc, EV_READ);
		return;
	case PGRES_POLLING_WRITING:
		pg_conn_watch(pc, EV_WRITE);
		return;
	case PGRES_POLLING_OK:
		break;
	default: {
		char *why = xstrdup(PQerrorMessage(pc->conn));
		pg_conn_lost(pc, why);
		free(why);
		return;
	}
	}
	if (PQsetnonblocking(pc->conn, 1) != 0) {
		pg_conn_lost(pc, "cannot make the connection non-blocking");
		return;
	}
	pc->state = PGC_UP;
	pc->retry_ms = RECONNECT_MIN_MS;
	pg_conn_watch(pc, EV_READ);
	if (pc->setup_sql == NULL) {
		pg_conn_announce_up(pc);
		return;
	}
	/* the queue is empty after a (re)connect: the setup runs before anything else */
	pc->setting_up = true;
	if (!pg_conn_exec(pc, pc->setup_sql, pg_conn_setup_done, pc))
		pg_conn_lost(pc, "cannot queue the session setup");
}

/* The connection is ready for the owner: log it, tell the owner, run what it queued. */
static void pg_conn_announce_up(struct pg_conn *pc)
{
	log_fields(LOG_LVL_INFO, "db_connected",
	           LOG_STR("server_version", PQparameterStatus(pc->conn, "server_version")));
	if (pc->handlers.up)
		pc->handlers.up(pc->arg);
	pg_conn_pump(pc);
}

/* The session setup finished: a failure drops the connection (and retries later). */
static void pg_conn_setup_done(PGresult *res, const char *error, void *arg)
{
	struct pg_conn *pc = arg;
	(void)res;
	if (pc->state != PGC_UP)
		return; /* the connection was lost meanwhile */
	pc->setting_up = false;
	if (error) {
		char *why = xasprintf("session setup failed: %s", error);
		pg_conn_lost(pc, why);
		free(why);
		return;
	}
	pg_conn_announce_up(pc);
}

bool pg_conn_is_up(const struct pg_conn *pc)
{
	return pc->state == PGC_UP && !pc->setting_up;
}

PGconn *pg_conn_pgconn(const struct pg_conn *pc)
{
	return pc->state == PGC_UP ? pc->conn : NULL;
}

/* Copies the parameters of a query; `formats` NULL: all text. */
static void query_copy_params(struct pg_query *q, const char *const *params, const int *lengths,
                              const int *formats)
{
	size_t n = (size_t)q->nparams;
	q->params = xcalloc(n, sizeof(char *));
	if (formats) {
		q->lengths = xcalloc(n, sizeof(int));
		q->formats = xcalloc(n, sizeof(int));
	}
	for (size_t i = 0; i < n; i++) {
		if (params[i] == NULL)
			continue;
		if (formats && formats[i] == 1) {
			q->params[i] = xmalloc(lengths[i] > 0 ? (size_t)lengths[i] : 1);
			memcpy(q->params[i], params[i], (size_t)lengths[i]);
			q->lengths[i] = lengths[i];
			q->formats[i] = 1;
		} else {
			q->params[i] = xstrdup(params[i]);
		}
	}
}

static bool pg_conn_enqueue_named(struct pg_conn *pc, const char *name, bool prepare,
                                  const char *sql, int nparams, const char *const *params,
                                  const int *lengths, const int *formats, pg_query_fn done,
                                  void *arg);

/* Appends a query to the queue and starts it when the connection is free. A query sent
 * at once is not copied (an outcome or intent batch is a parameter of up to a few
 * hundred KiB, and libpq copies it into its output buffer anyway); a queued one is,
 * until it is sent. */
static bool pg_conn_enqueue(struct pg_conn *pc, const char *sql, int nparams,
                            const char *const *params, const int *lengths, const int *formats,
                            pg_query_fn done, void *arg)
{
	return pg_conn_enqueue_named(pc, NULL, false, sql, nparams, params, lengths, formats, done,
	                             arg);
}

/* pg_conn_enqueue for a prepared statement `name` (NULL: unnamed); `prepare`: the query
 * prepares `sql` under `name`, no parameters are sent. */
static bool pg_conn_enqueue_named(struct pg_conn *pc, const char *name, bool prepare,
                                  const char *sql, int nparams, const char *const *params,
                                  const int *lengths, const int *formats, pg_query_fn done,
                                  void *arg)
{
	if (pc->state != PGC_UP)
		return false;
	struct pg_query *q = xcalloc(1, sizeof(*q));
	bool now = pc->head == NULL && !pc->sent;
	q->sql = xstrdup(sql ? sql : "");
	q->nparams = nparams;
	q->name = name ? xstrdup(name) : NULL;
	q->prepare = prepare;
	if (!now && nparams > 0 && !prepare)
		query_copy_params(q, params, lengths, formats);
	q->done = done;
	q->arg = arg;
	if (pc->tail)
		pc->tail->next = q;
	else
		pc->head = q;
	pc->tail = q;
	if (now)
		pg_conn_send(pc, q, prepare ? NULL : params, lengths, formats);
	else
		pg_conn_pump(pc);
	return true;
}

bool pg_conn_query(struct pg_conn *pc, const char *sql, int nparams, const char *const *params,
                   pg_query_fn done, void *arg)
{
	return pg_conn_enqueue(pc, sql, nparams < 0 ? 0 : nparams, params, NULL, NULL, done, arg);
}

bool pg_conn_query_params(struct pg_conn *pc, const char *sql, int nparams,
                          const char *const *params, const int *lengths, const int *formats,
                          pg_query_fn done, void *arg)
{
	return pg_conn_enqueue(pc, sql, nparams < 0 ? 0 : nparams, params, lengths, formats, done,
	                       arg);
}

bool pg_conn_exec(struct pg_conn *pc, const char *sql, pg_query_fn done, void *arg)
{
	return pg_conn_enqueue(pc, sql, -1, NULL, NULL, NULL, done, arg);
}

bool pg_conn_query_prepared(struct pg_conn *pc, const char *name, const char *sql, int nparams,
                            const char *const *params, const int *lengths, const int *formats,
                            pg_query_fn done, void *arg)
{
	if (pc->state != PGC_UP)
		return false;
	if (nparams < 0)
		nparams = 0;
	long i = pg_conn_find_prepared(pc, name);
	if (i >= 0 && strcmp(pc->prepared[i].sql, sql) != 0) {
		/* the name's text changed (the store prepared its statements again) */
		char *drop = xasprintf("DEALLOCATE \"%s\"", name);
		bool ok = pg_conn_enqueue(pc, drop, -1, NULL, NULL, NULL, NULL, NULL);
		free(drop);
		if (!ok)
			return false;
		pg_conn_drop_prepared(pc, (size_t)i);
		i = -1;
	}
	if (i < 0) {
		if (!pg_conn_enqueue_named(pc, name, true, sql, nparams, NULL, NULL, NULL, NULL,
		                           NULL))
			return false;
		pc->prepared =
		    xreallocarray(pc->prepared, pc->nprepared + 1, sizeof(struct pg_prepared));
		pc->prepared[pc->nprepared++] =
		    (struct pg_prepared){.name = xstrdup(name), .sql = xstrdup(sql)};
	}
	return pg_conn_enqueue_named(pc, name, false, NULL, nparams, params, lengths, formats, done,
	                             arg);
}

/* Flushes libpq's output buffer, waiting for writability while it is not empty. */
static bool pg_conn_flush(struct pg_conn *pc)
{
	int r = PQflush(pc->conn);
	if (r < 0) {
		char *why = xstrdup(PQerrorMessage(pc->conn));
		pg_conn_lost(pc, why);
		free(why);
		return false;
	}
	pg_conn_watch(pc, r == 1 ? (EV_READ | EV_WRITE) : EV_READ);
	return true;
}

/* Sends the head of the queue if nothing is running, then drops its parameters. */
static void pg_conn_pump(struct pg_conn *pc)
{
	if (pc->state != PGC_UP || pc->sent || pc->head == NULL)
		return;
	struct pg_query *q = pc->head;
	if (pg_conn_send(pc, q, (const char *const *)q->params, q->lengths, q->formats))
		query_drop_params(q);
}

/* Sends query q, the head of the queue, with these parameters (nothing is running):
 * its text, the preparation of a named statement or its execution; false when the
 * connection was lost. */
static bool pg_conn_send(struct pg_conn *pc, const struct pg_query *q, const char *const *params,
                         const int *lengths, const int *formats)
{
	int ok;
	if (q->nparams < 0)
		ok = PQsendQuery(pc->conn, q->sql);
	else if (q->prepare)
		ok = PQsendPrepare(pc->conn, q->name, q->sql, q->nparams, NULL);
	else if (q->name)
		ok =
		    PQsendQueryPrepared(pc->conn, q->name, q->nparams, params, lengths, formats, 0);
	else
		ok = PQsendQueryParams(pc->conn, q->sql, q->nparams, NULL, params, lengths, formats,
		                       0);
	if (!ok) {
		char *why = xstrdup(PQerrorMessage(pc->conn));
		pg_conn_lost(pc, why);
		free(why);
		return false;
	}
	pc->sent = true;
	return pg_conn_flush(pc);
}

/* Delivers pending notifications to the owner. */
static void pg_conn_deliver_notifies(struct pg_conn *pc)
{
	PGnotify *n;
	while (pc->conn && (n = PQnotifies(pc->conn)) != NULL) {
		if (pc->handlers.notify)
			pc->handlers.notify(pc->arg, n->relname, n->extra);
		PQfreemem(n);
	}
}

/* A statement's preparation failed: it is prepared again at its next use (its
 * execution, queued behind, fails with the server's error), unless its name was given
 * another text meanwhile. */
static void pg_conn_prepare_failed(struct pg_conn *pc, const struct pg_query *q)
{
	long i = pg_conn_find_prepared(pc, q->name);
	if (i >= 0 && strcmp(pc->prepared[i].sql, q->sql) == 0)
		pg_conn_drop_prepared(pc, (size_t)i);
}

/* A prepared statement's execution failed: when the server's cached plan may no longer
 * change its result's columns (a column's type changed since it was prepared, SQLSTATE
 * 0A000) it is prepared again at its next use. */
static void pg_conn_prepared_failed(struct pg_conn *pc, const struct pg_query *q,
                                    const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	long i = pg_conn_find_prepared(pc, q->name);
	if (i < 0 || state == NULL || strcmp(state, "0A000") != 0)
		return;
	/* no text is empty: the next use replaces the statement (DEALLOCATE, PREPARE) */
	free(pc->prepared[i].sql);
	pc->prepared[i].sql = xstrdup("");
}

/* Completes the running query: callback with the kept result, then the next query. */
static void pg_conn_complete(struct pg_conn *pc)
{
	struct pg_query *q = pc->head;
	pc->head = q->next;
	if (pc->head == NULL)
		pc->tail = NULL;
	pc->sent = false;
	PGresult *res = pc->keep;
	pc->keep = NULL;
	const char *error = NULL;
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (res == NULL)
		error = "no result";
	else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY)
		error = PQresultErrorMessage(res);
	if (q->prepare && error)
		pg_conn_prepare_failed(pc, q);
	else if (q->name && error && res)
		pg_conn_prepared_failed(pc, q, res);
	if (q->done)
		q->done(res, error, q->arg);
	if (res)
		PQclear(res);
	query_free(q);
}

/* Reads what the server sent: results of the running query and notifications. */
static void pg_conn_read(struct pg_conn *pc)
{
	if (!PQconsumeInput(pc->conn)) {
		char *why = xstrdup(PQerrorMessage(pc->conn));
		pg_conn_lost(pc, why);
		free(why);
		return;
	}
	while (pc->state == PGC_UP && pc->sent && !PQisBusy(pc->conn)) {
		PGresult *r = PQgetResult(pc->conn);
		if (r == NULL) {
			pg_conn_complete(pc);
			continue;
		}
		/* keep the first error, otherwise the last result */
		bool kept_error = pc->keep && (PQresultStatus(pc->keep) == PGRES_FATAL_ERROR ||
		                               PQresultStatus(pc->keep) == PGRES_BAD_RESPONSE);
		if (kept_error) {
			PQclear(r);
		} else {
			if (pc->keep)
				PQclear(pc->keep);
			pc->keep = r;
		}
	}
	pg_conn_deliver_notifies(pc);
	if (pc->state == PGC_UP && PQstatus(pc->conn) == CONNECTION_BAD) {
		pg_conn_lost(pc, "server closed the connection");
		return;
	}
	pg_conn_pump(pc);
}

/* Socket readiness: advances the connect handshake, flushes output, reads input. */
static void pg_conn_on_io(evutil_socket_t fd, short what, void *arg)
{
	struct pg_conn *pc = arg;
	(void)fd;
	if (pc->state == PGC_CONNECTING) {
		pg_conn_connect_step(pc);
		return;
	}
	if (pc->state != PGC_UP)
		return;
	if (what & EV_WRITE) {
		if (!pg_conn_flush(pc))
			return;
	}
	if (what & EV_READ)
		pg_conn_read(pc);
}
