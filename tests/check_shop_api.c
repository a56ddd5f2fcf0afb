#include "autoconfig.h"

#include <check.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "store_migrate.h"
#include "money.h"
#include "pgtest.h"
#include "testutil.h"
#include "xmalloc.h"

/* The settings smartpayctl migrate writes for the example shop. */
static const struct migrate_settings shop_settings = {
    .orders_relation = "public.orders",
    .authorization_validity_ms = 120 * 3600 * INT64_C(1000),
};

/* A fresh shop database (orders table, migrations, trigger) with the settings and the
 * currency table written; returns its conninfo and a connection to it. */
static char *shop_db(PGconn **conn)
{
	char *conninfo = pgtest_createdb_shop(NULL);
	char *err = NULL;

	*conn = pgtest_connect(conninfo);
	ck_assert_msg(migrate_write_settings(*conn, &shop_settings, &err) == 0, "%s", err);
	return conninfo;
}

/* An order in the shop's table, authorized `age_hours` ago. */
static void add_order(PGconn *conn, long id, const char *status, const char *tx, const char *amount,
                      const char *currency, int age_hours)
{
	char *sql =
	    xasprintf("INSERT INTO orders (id, status, smartpay_transaction_id, amount, "
	              "currency, authorized_at) VALUES (%ld, '%s', %s%s%s, %s, '%s', now() - "
	              "interval '%d hours')",
	              id, status, tx ? "'" : "", tx ? tx : "NULL", tx ? "'" : "", amount, currency,
	              age_hours);
	pgtest_exec(conn, sql);
	free(sql);
}

/* A ledger row as the daemon writes it: the exact body, a deadline, outcome columns for
 * finished rows. Returns its modification id (malloc'd). */
static char *add_mod(PGconn *conn, const char *order, const char *tx, const char *kind,
                     const char *state, long long minor, const char *currency)
{
	char *sql = xasprintf(
	    "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, kind, "
	    "amount_minor, currency, request_body, state, attempts, deadline, http_status, "
	    "response_body, completed_at) VALUES (gen_random_uuid(), '%s', '%s', '%s', %lld, '%s', "
	    "json_build_object('transactionId', '%s', 'merchantKey', 'm', 'modificationId', "
	    "'x')::text, '%s', 1, now() + interval '3 days', CASE WHEN '%s' = 'pending' THEN NULL "
	    "ELSE 200 END, CASE WHEN '%s' = 'pending' THEN NULL ELSE '{}' END, CASE WHEN '%s' IN "
	    "('succeeded', 'refused') THEN now() END) RETURNING modification_id::text",
	    order, tx, kind, minor, currency, tx, state, state, state, state);
	char *id = pgtest_value(conn, sql);
	free(sql);
	return id;
}

/* Same, for rows whose id the test does not need. */
static void add_mod_quiet(PGconn *conn, const char *order, const char *tx, const char *kind,
                          const char *state, long long minor, const char *currency)
{
	free(add_mod(conn, order, tx, kind, state, minor, currency));
}

/* Runs `sql` (one call of a request function) and returns the request id; the call must
 * succeed. */
static long long request_ok(PGconn *conn, const char *sql)
{
	return pgtest_int(conn, sql);
}

/* Runs `sql`, which must fail with `sqlstate` and a message containing each of the
 * NULL-terminated needles. */
static void request_refused(PGconn *conn, const char *sql, const char *sqlstate, ...)
{
	PGresult *res = PQexec(conn, sql);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR && state != NULL &&
	                  strcmp(state, sqlstate) == 0,
	              "%s: expected SQLSTATE %s, got %s %s: %s", sql, sqlstate,
	              PQresStatus(PQresultStatus(res)), state ? state : "-",
	              message ? message : PQresultErrorMessage(res));
	va_list ap;
	va_start(ap, sqlstate);
	for (const char *needle; (needle = va_arg(ap, const char *)) != NULL;)
		ck_assert_msg(strstr(message, needle) != NULL, "expected \"%s\" in: %s", needle,
		              message);
	va_end(ap);
	PQclear(res);
}

/* The number of requests recorded for `order`. */
static long long request_count(PGconn *conn, const char *order)
{
	char *sql =
	    xasprintf("SELECT count(*) FROM smartpay.requests WHERE order_id = '%s'", order);
	long long n = pgtest_int(conn, sql);
	free(sql);
	return n;
}

START_TEST(test_settings_and_currencies)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	int applied = 0;
	size_t currencies = 0;
	char *err = NULL;

	pgtest_exec_file(conn, "sql/example-orders.sql");
	ck_assert_msg(migrate_apply_configured(conn, sp_builtin_migrations,
	                                       sp_builtin_migration_count, &shop_settings, NULL,
	                                       &applied, &currencies, &err) == 0,
	              "%s", err);
	ck_assert_int_eq(applied, (int)sp_builtin_migration_count);
	ck_assert_uint_eq(currencies, money_currency_count());
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.currencies"),
	                 (long long)money_currency_count());
	/* the C table, row by row */
	for (size_t i = 0; i < money_currency_count(); i++) {
		const char *code;
		int exponent;
		ck_assert(money_currency_at(i, &code, &exponent));
		ck_assert_int_eq(money_exponent(code), exponent);
		char *sql =
		    xasprintf("SELECT exponent FROM smartpay.currencies WHERE code = '%s'", code);
		ck_assert_int_eq(pgtest_int(conn, sql), exponent);
		free(sql);
	}
	const char *code = "unchanged";
	int exponent = -7;
	ck_assert(!money_currency_at(money_currency_count(), &code, &exponent));
	ck_assert_str_eq(code, "unchanged");
	ck_assert_int_eq(exponent, -7);

	char *relation = pgtest_value(conn, "SELECT orders_relation FROM smartpay.settings");
	ck_assert_str_eq(relation, "\"public\".\"orders\"");
	free(relation);
	ck_assert_int_eq(
	    pgtest_int(conn, "SELECT extract(epoch FROM authorization_validity)::bigint FROM "
	                     "smartpay.settings"),
	    120 * 3600);

	/* a refresh puts the table back: changed exponents, stray codes, missing codes */
	pgtest_exec(conn, "UPDATE smartpay.currencies SET exponent = 3 WHERE code = 'EUR'; "
	                  "DELETE FROM smartpay.currencies WHERE code = 'JPY'; "
	                  "INSERT INTO smartpay.currencies VALUES ('ZZZ', 1)");
	const struct migrate_settings other = {"shop.orders_v", 48 * 3600 * INT64_C(1000)};
	ck_assert_msg(migrate_write_settings(conn, &other, &err) == 0, "%s", err);
	ck_assert_int_eq(pgtest_int(conn, "SELECT exponent FROM smartpay.currencies WHERE code = "
	                                  "'EUR'"),
	                 2);
	ck_assert_int_eq(pgtest_int(conn, "SELECT exponent FROM smartpay.currencies WHERE code = "
	                                  "'JPY'"),
	                 0);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.currencies WHERE code = "
	                                  "'ZZZ'"),
	                 0);
	relation = pgtest_value(conn, "SELECT orders_relation FROM smartpay.settings");
	ck_assert_str_eq(relation, "\"shop\".\"orders_v\"");
	free(relation);
	ck_assert_int_eq(
	    pgtest_int(conn, "SELECT extract(epoch FROM authorization_validity)::bigint FROM "
	                     "smartpay.settings"),
	    48 * 3600);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.settings"), 1);

	/* a bad relation name fails the whole migration run: nothing recorded */
	char *fresh = pgtest_createdb(NULL);
	PGconn *fresh_conn = pgtest_connect(fresh);
	const struct migrate_settings bad = {"a.b.c", 1000};
	ck_assert_int_eq(migrate_apply_configured(fresh_conn, sp_builtin_migrations,
	                                          sp_builtin_migration_count, &bad, NULL, &applied,
	                                          NULL, &err),
	                 -1);
	ck_assert_msg(strstr(err, "a.b.c") != NULL, "%s", err);
	free(err);
	char *schema = pgtest_value(fresh_conn, "SELECT to_regclass('smartpay.schema_migrations')");
	ck_assert_ptr_null(schema);
	ck_assert_int_eq(applied, 0);
	PQfinish(fresh_conn);
	free(fresh);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

START_TEST(test_refund_sequence)
{
	PGconn *conn;
	char *conninfo = shop_db(&conn);

	add_order(conn, 1, "shipped", "tx-1", "100.00", "EUR", 2);
	add_mod_quiet(conn, "1", "tx-1", "capture", "succeeded", 10000, "EUR");

	long long r1 = request_ok(conn, "SELECT smartpay.request_refund('1', 30.00, 'scratch')");
	long long r2 = request_ok(conn, "SELECT smartpay.request_refund('1', 30.5)");
	/* the third reaches the captured total exactly */
	long long r3 = request_ok(conn, "SELECT smartpay.request_refund('1', 39.50)");
	ck_assert(r1 < r2 && r2 < r3);
	request_refused(conn, "SELECT smartpay.request_refund('1', 0.01)", "SP006", "order 1",
	                "0.01 EUR", "refundable amount 0.00 EUR", NULL);
	ck_assert_int_eq(request_count(conn, "1"), 3);

	/* what was recorded: kind, minor units, the capture's currency, the reason */
	PGresult *res = pgtest_query(conn, "SELECT kind, amount_minor, currency, reason, "
	                                   "requested_by = current_user, modification_id IS NULL "
	                                   "FROM smartpay.requests ORDER BY request_id");
	ck_assert_int_eq(PQntuples(res), 3);
	const char *minor[] = {"3000", "3050", "3950"};
	for (int i = 0; i < 3; i++) {
		ck_assert_str_eq(PQgetvalue(res, i, 0), "refund");
		ck_assert_str_eq(PQgetvalue(res, i, 1), minor[i]);
		ck_assert_str_eq(PQgetvalue(res, i, 2), "EUR");
		ck_assert_str_eq(PQgetvalue(res, i, 4), "t");
		ck_assert_str_eq(PQgetvalue(res, i, 5), "t");
	}
	ck_assert_str_eq(PQgetvalue(res, 0, 3), "scratch");
	ck_assert(PQgetisnull(res, 1, 3));
	PQclear(res);

	/* the daemon takes them up: the first succeeds, the second is refused by SmartPay,
	 * the third is in flight. A linked request counts once, through its modification;
	 * a refused refund gives its amount back. */
	char *sql = xasprintf(
	    "WITH m AS (INSERT INTO smartpay.modifications (modification_id, order_id, "
	    "transaction_id, kind, amount_minor, currency, request_body, state, request_id) "
	    "VALUES (gen_random_uuid(), '1', 'tx-1', 'refund', 3000, 'EUR', '{}', 'succeeded', "
	    "%lld), "
	    "(gen_random_uuid(), '1', 'tx-1', 'refund', 3050, 'EUR', '{}', 'refused', %lld), "
	    "(gen_random_uuid(), '1', 'tx-1', 'refund', 3950, 'EUR', '{}', 'pending', %lld) "
	    "RETURNING modification_id, request_id) "
	    "UPDATE smartpay.requests r SET modification_id = m.modification_id FROM m "
	    "WHERE r.request_id = m.request_id",
	    r1, r2, r3);
	pgtest_exec(conn, sql);
	free(sql);
	request_refused(conn, "SELECT smartpay.request_refund('1', 30.51)", "SP006",
	                "refundable amount 30.50 EUR", NULL);
	request_ok(conn, "SELECT smartpay.request_refund('1', 30.50)");
	request_refused(conn, "SELECT smartpay.request_refund('1', 0.01)", "SP006", NULL);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

START_TEST(test_over_refund_refused)
{
	PGconn *conn;
	char *conninfo = shop_db(&conn);

	add_order(conn, 7, "shipped", "tx-7", "50.00", "EUR", 2);
	add_mod_quiet(conn, "7", "tx-7", "capture", "succeeded", 5000, "EUR");
	request_refused(conn, "SELECT smartpay.request_refund('7', 50.01)", "SP006", "order 7",
	                "50.01 EUR", "50.00 EUR", NULL);
	ck_assert_int_eq(request_count(conn, "7"), 0);
	/* the detail shows the arithmetic */
	PGresult *res = PQexec(conn, "SELECT smartpay.request_refund('7', 99)");
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL),
	                 "Captured 50.00 EUR; refunded 0.00, in progress 0.00, requested 0.00.");
	PQclear(res);
	/* all of it is fine, once */
	request_ok(conn, "SELECT smartpay.request_refund('7', 50)");
	request_refused(conn, "SELECT smartpay.request_refund('7', 1)", "SP006", NULL);
	ck_assert_int_eq(request_count(conn, "7"), 1);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* A refund of order 1 (20.00 EUR) asked with its ledger in a given state: refused with an
 * SQLSTATE and a message naming the reason, nothing recorded; or accepted. */
static const struct refund_case {
	const char *name;
	const char *status;   /* the order's */
	const char *capture;  /* the state of its capture; NULL: none */
	const char *cancel;   /* the state of its cancelOrRefund; NULL: none; "asked": only
	                       * requested by the shop */
	const char *sqlstate; /* NULL: accepted */
	const char *words[3]; /* in the message */
} refund_cases[] = {
    {"after a cancelOrRefund succeeded",
     "cancelled",
     "succeeded",
     "succeeded",
     "SP003",
     {"order 1", "is cancelled"}},
    {"while a cancelOrRefund is pending",
     "cancelled",
     "succeeded",
     "pending",
     "SP003",
     {"order 1", "is being cancelled"}},
    {"after a cancelOrRefund of unknown outcome",
     "cancelled",
     "succeeded",
     "needs_attention",
     "SP003",
     {"needs attention"}},
    {"while a cancelOrRefund is asked for (it refunds everything anyway)",
     "shipped",
     "succeeded",
     "asked",
     "SP003",
     {"open cancel_or_refund request"}},
    {"after a refused cancelOrRefund (it changed nothing)",
     "shipped",
     "succeeded",
     "refused",
     NULL,
     {NULL}},
    {"of an order known to the shop only",
     "authorized",
     NULL,
     NULL,
     "SP002",
     {"order 1", "has not been captured (no capture)"}},
    {"while its capture is pending",
     "shipped",
     "pending",
     NULL,
     "SP002",
     {"its capture is pending"}},
    {"after its capture was refused",
     "shipped",
     "refused",
     NULL,
     "SP002",
     {"its capture is refused"}},
};

START_TEST(test_refund_by_ledger_state)
{
	const struct refund_case *c = &refund_cases[_i];
	PGconn *conn;
	char *conninfo = shop_db(&conn);

	add_order(conn, 1, c->status, "tx-1", "20.00", "EUR", 2);
	if (c->capture)
		add_mod_quiet(conn, "1", "tx-1", "capture", c->capture, 2000, "EUR");
	if (c->cancel && strcmp(c->cancel, "asked") == 0)
		request_ok(conn, "SELECT smartpay.request_cancel_or_refund('1')");
	else if (c->cancel)
		add_mod_quiet(conn, "1", "tx-1", "cancel_or_refund", c->cancel, 2000, "EUR");
	long long before = request_count(conn, "1");
	/* the case's name in the statement names it in a failure */
	char *sql = xasprintf("SELECT smartpay.request_refund('1', 5) -- %s", c->name);
	if (c->sqlstate == NULL) {
		request_ok(conn, sql);
		ck_assert_msg(request_count(conn, "1") == before + 1, "%s: not recorded", c->name);
	} else {
		request_refused(conn, sql, c->sqlstate, c->words[0], c->words[1], c->words[2],
		                NULL);
		ck_assert_msg(request_count(conn, "1") == before, "%s: recorded", c->name);
	}
	free(sql);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

START_TEST(test_refund_of_unknown_order)
{
	PGconn *conn;
	char *conninfo = shop_db(&conn);

	/* not in the ledger nor in the table, or not even an id of its type */
	request_refused(conn, "SELECT smartpay.request_refund('999', 5)", "SP001",
	                "unknown order 999", NULL);
	request_refused(conn, "SELECT smartpay.request_refund('not-a-number', 5)", "SP001",
	                "unknown order not-a-number", NULL);
	request_refused(conn, "SELECT smartpay.request_refund('', 5)", "SP001", NULL);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.requests"), 0);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

START_TEST(test_refund_amounts)
{
	PGconn *conn;
	char *conninfo = shop_db(&conn);

	add_order(conn, 1, "shipped", "tx-1", "100.00", "EUR", 2);
	add_mod_quiet(conn, "1", "tx-1", "capture", "succeeded", 10000, "EUR");
	request_refused(conn, "SELECT smartpay.request_refund('1', 10.001)", "SP005", "10.001",
	                "order 1", "EUR", NULL);
	request_refused(conn, "SELECT smartpay.request_refund('1', 0)", "SP004", "order 1",
	                "greater than zero", NULL);
	request_refused(conn, "SELECT smartpay.request_refund('1', -1)", "SP004", NULL);
	request_refused(conn, "SELECT smartpay.request_refund('1', NULL)", "SP004", NULL);
	request_refused(conn, "SELECT smartpay.request_refund('1', 1e20)", "SP004", "too large",
	                NULL);
	/* trailing zeros are no extra precision */
	request_ok(conn, "SELECT smartpay.request_refund('1', 10.010)");
	ck_assert_int_eq(pgtest_int(conn, "SELECT amount_minor FROM smartpay.requests"), 1001);

	/* JPY has no minor unit */
	add_order(conn, 2, "shipped", "tx-2", "1000", "JPY", 2);
	add_mod_quiet(conn, "2", "tx-2", "capture", "succeeded", 1000, "JPY");
	request_refused(conn, "SELECT smartpay.request_refund('2', 1.5)", "SP005", "JPY", NULL);
	request_ok(conn, "SELECT smartpay.request_refund('2', 500)");
	request_ok(conn, "SELECT smartpay.request_refund('2', 500.00)");
	request_refused(conn, "SELECT smartpay.request_refund('2', 1)", "SP006",
	                "refundable amount 0 JPY", NULL);
	ck_assert_int_eq(pgtest_int(conn, "SELECT sum(amount_minor) FROM smartpay.requests WHERE "
	                                  "order_id = '2' AND currency = 'JPY'"),
	                 1000);

	/* KWD has three */
	add_order(conn, 3, "shipped", "tx-3", "5.000", "KWD", 2);
	add_mod_quiet(conn, "3", "tx-3", "capture", "succeeded", 5000, "KWD");
	request_ok(conn, "SELECT smartpay.request_refund('3', 1.234)");
	ck_assert_int_eq(
	    pgtest_int(conn, "SELECT amount_minor FROM smartpay.requests WHERE order_id = '3'"),
	    1234);

	/* a currency smartpay.currencies does not know (migrate not run): a set-up error */
	pgtest_exec(conn, "DELETE FROM smartpay.currencies WHERE code = 'KWD'");
	request_refused(conn, "SELECT smartpay.request_refund('3', 1)", "SP009", "order 3", NULL);

	/* the reason is bounded like SmartPay's description */
	char *sql = xasprintf("SELECT smartpay.request_refund('1', 1, repeat('x', 128))");
	request_refused(conn, sql, "22001", "127", NULL);
	free(sql);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

START_TEST(test_concurrent_last_amount)
{
	PGconn *a;
	char *conninfo = shop_db(&a);
	PGconn *b = pgtest_connect(conninfo);
	PGconn *observer = pgtest_connect(conninfo);

	add_order(a, 1, "shipped", "tx-1", "100.00", "EUR", 2);
	add_mod_quiet(a, "1", "tx-1", "capture", "succeeded", 10000, "EUR");
	request_ok(a, "SELECT smartpay.request_refund('1', 60)");

	/* both race for the last 40.00: b waits for a's lock, then sees a's request */
	pgtest_exec(a, "BEGIN");
	request_ok(a, "SELECT smartpay.request_refund('1', 40)");
	ck_assert(PQsendQuery(b, "SELECT smartpay.request_refund('1', 40)"));
	pgtest_wait_advisory_waiters(observer, 1);
	pgtest_exec(a, "COMMIT");
	PGresult *res = pgtest_await_result(b);
	ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "SP006");
	PQclear(res);
	ck_assert_int_eq(request_count(a, "1"), 2);

	/* when the first one rolls back, the waiting one gets the amount */
	add_order(a, 2, "shipped", "tx-2", "10.00", "EUR", 2);
	add_mod_quiet(a, "2", "tx-2", "capture", "succeeded", 1000, "EUR");
	pgtest_exec(a, "BEGIN");
	request_ok(a, "SELECT smartpay.request_refund('2', 10)");
	ck_assert(PQsendQuery(b, "SELECT smartpay.request_refund('2', 10)"));
	pgtest_wait_advisory_waiters(observer, 1);
	pgtest_exec(a, "ROLLBACK");
	res = pgtest_await_result(b);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	ck_assert_int_eq(request_count(a, "2"), 1);

	/* a cancelOrRefund and a refund serialise on the same lock */
	add_order(a, 3, "shipped", "tx-3", "10.00", "EUR", 2);
	add_mod_quiet(a, "3", "tx-3", "capture", "succeeded", 1000, "EUR");
	pgtest_exec(a, "BEGIN");
	request_ok(a, "SELECT smartpay.request_cancel_or_refund('3')");
	ck_assert(PQsendQuery(b, "SELECT smartpay.request_refund('3', 1)"));
	pgtest_wait_advisory_waiters(observer, 1);
	pgtest_exec(a, "COMMIT");
	res = pgtest_await_result(b);
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "SP003");
	PQclear(res);

	/* REPEATABLE READ would take its snapshot before the lock: refused outright */
	pgtest_exec(b, "BEGIN ISOLATION LEVEL REPEATABLE READ");
	request_refused(b, "SELECT smartpay.request_refund('1', 1)", "SP009", "REPEATABLE READ",
	                NULL);
	pgtest_exec(b, "ROLLBACK");

	PQfinish(observer);
	PQfinish(b);
	PQfinish(a);
	free(conninfo);
}
END_TEST

/* One of the racing shops: its own connection, its outcome for the main thread. */
struct racer {
	const char *conninfo;
	pthread_t thread;
	pthread_barrier_t *start;
	bool ok;
	char sqlstate[6];
};

/* Thread body: wait for the others, then ask for 20.00. */
static void *racer_run(void *arg)
{
	struct racer *r = arg;
	PGconn *conn = PQconnectdb(r->conninfo);

	pthread_barrier_wait(r->start);
	if (PQstatus(conn) == CONNECTION_OK) {
		PGresult *res = PQexec(conn, "SELECT smartpay.request_refund('1', 20.00)");
		r->ok = PQresultStatus(res) == PGRES_TUPLES_OK;
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", state ? state : "");
		PQclear(res);
	}
	PQfinish(conn);
	return NULL;
}

START_TEST(test_concurrent_race)
{
	enum { RACERS = 8 };
	PGconn *conn;
	char *conninfo = shop_db(&conn);
	struct racer racers[RACERS];
	pthread_barrier_t start;

	add_order(conn, 1, "shipped", "tx-1", "100.00", "EUR", 2);
	add_mod_quiet(conn, "1", "tx-1", "capture", "succeeded", 10000, "EUR");
	ck_assert_int_eq(pthread_barrier_init(&start, NULL, RACERS), 0);
	for (int i = 0; i < RACERS; i++) {
		racers[i] = (struct racer){.conninfo = conninfo, .start = &start};
		ck_assert_int_eq(pthread_create(&racers[i].thread, NULL, racer_run, &racers[i]), 0);
	}
	int succeeded = 0;
	for (int i = 0; i < RACERS; i++) {
		ck_assert_int_eq(pthread_join(racers[i].thread, NULL), 0);
		if (racers[i].ok)
			succeeded++;
		else
			ck_assert_msg(strcmp(racers[i].sqlstate, "SP006") == 0,
			              "racer %d: SQLSTATE %s", i, racers[i].sqlstate);
	}
	pthread_barrier_destroy(&start);
	/* 5 x 20.00 = the captured 100.00, never more */
	ck_assert_int_eq(succeeded, 5);
	ck_assert_int_eq(pgtest_int(conn, "SELECT sum(amount_minor) FROM smartpay.requests"),
	                 10000);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

START_TEST(test_cancel_or_refund_rules)
{
	PGconn *conn;
	char *conninfo = shop_db(&conn);

	request_refused(conn, "SELECT smartpay.request_cancel_or_refund('404')", "SP001",
	                "unknown order 404", NULL);

	/* before capture: known to the shop only; then once */
	add_order(conn, 1, "cancelled", "tx-1", "20.00", "EUR", 2);
	long long id = request_ok(conn, "SELECT smartpay.request_cancel_or_refund('1', 'out of "
	                                "stock')");
	request_refused(conn, "SELECT smartpay.request_cancel_or_refund('1')", "SP007",
	                "open cancel_or_refund request", NULL);
	char *sql = xasprintf("SELECT kind || '|' || coalesce(amount_minor::text, '-') || '|' || "
	                      "coalesce(currency, '-') || '|' || reason FROM smartpay.requests "
	                      "WHERE request_id = %lld",
	                      id);
	char *row = pgtest_value(conn, sql);
	ck_assert_str_eq(row, "cancel_or_refund|-|-|out of stock");
	free(row);
	free(sql);

	/* after capture, partly refunded: still possible */
	add_order(conn, 2, "cancelled", "tx-2", "20.00", "EUR", 2);
	add_mod_quiet(conn, "2", "tx-2", "capture", "succeeded", 2000, "EUR");
	add_mod_quiet(conn, "2", "tx-2", "refund", "succeeded", 500, "EUR");
	request_ok(conn, "SELECT smartpay.request_cancel_or_refund('2')");

	/* already fully refunded */
	add_order(conn, 3, "cancelled", "tx-3", "20.00", "EUR", 2);
	add_mod_quiet(conn, "3", "tx-3", "capture", "succeeded", 2000, "EUR");
	add_mod_quiet(conn, "3", "tx-3", "refund", "succeeded", 1500, "EUR");
	add_mod_quiet(conn, "3", "tx-3", "refund", "pending", 500, "EUR");
	request_refused(conn, "SELECT smartpay.request_cancel_or_refund('3')", "SP008",
	                "already fully refunded", NULL);

	/* a cancel done, in flight, or in doubt; a refused one does not count */
	const char *states[] = {"succeeded", "pending", "needs_attention"};
	const char *words[] = {"is cancelled", "is being cancelled", "needs attention"};
	for (int i = 0; i < 3; i++) {
		char order[8], tx[16];
		snprintf(order, sizeof(order), "%d", 10 + i);
		snprintf(tx, sizeof(tx), "tx-%d", 10 + i);
		add_order(conn, 10 + i, "cancelled", tx, "20.00", "EUR", 2);
		add_mod_quiet(conn, order, tx, "cancel", states[i], 2000, "EUR");
		sql = xasprintf("SELECT smartpay.request_cancel_or_refund('%s')", order);
		request_refused(conn, sql, "SP007", words[i], NULL);
		free(sql);
	}
	add_order(conn, 20, "cancelled", "tx-20", "20.00", "EUR", 2);
	add_mod_quiet(conn, "20", "tx-20", "cancel", "refused", 2000, "EUR");
	request_ok(conn, "SELECT smartpay.request_cancel_or_refund('20')");

	/* never authorized: nothing to cancel */
	add_order(conn, 30, "cancelled", NULL, "20.00", "EUR", 2);
	request_refused(conn, "SELECT smartpay.request_cancel_or_refund('30')", "SP010",
	                "no SmartPay transaction", NULL);

	/* the orders relation in the settings is gone: a set-up error, named */
	pgtest_exec(conn, "UPDATE smartpay.settings SET orders_relation = 'public.gone'");
	request_refused(conn, "SELECT smartpay.request_cancel_or_refund('31')", "SP009",
	                "public.gone", NULL);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* The view's row of `order` as "col=value" pairs for the listed columns. */
static char *view_row(PGconn *conn, const char *from, const char *order, const char *columns)
{
	char *sql = xasprintf("SELECT concat_ws(' ', %s) FROM %s WHERE order_id = '%s'", columns,
	                      from, order);
	char *row = pgtest_value(conn, sql);
	free(sql);
	return row;
}

#define assert_row(conn, from, order, columns, expected)                                           \
	do {                                                                                       \
		char *row_ = view_row((conn), (from), (order), (columns));                         \
		ck_assert_str_eq(row_, (expected));                                                \
		free(row_);                                                                        \
	} while (0)

START_TEST(test_view_numbers)
{
	PGconn *conn;
	char *conninfo = shop_db(&conn);

	add_order(conn, 1, "shipped", "tx-1", "100.00", "EUR", 10);
	add_mod_quiet(conn, "1", "tx-1", "capture", "succeeded", 10000, "EUR");
	add_mod_quiet(conn, "1", "tx-1", "refund", "succeeded", 1000, "EUR");
	add_mod_quiet(conn, "1", "tx-1", "refund", "refused", 5000, "EUR");
	add_mod_quiet(conn, "1", "tx-1", "refund", "needs_attention", 250, "EUR");
	char *last = add_mod(conn, "1", "tx-1", "refund", "pending", 500, "EUR");
	request_ok(conn, "SELECT smartpay.request_refund('1', 1.25)");
	pgtest_exec(conn, "INSERT INTO smartpay.alerts (kind, severity, order_id, dedup_key, "
	                  "message) VALUES ('needs_attention', 'critical', '1', 'a', 'x'), "
	                  "('modification_refused', 'critical', '1', 'b', 'y'), "
	                  "('needs_attention', 'critical', '1', 'c', 'z')");
	pgtest_exec(conn,
	            "UPDATE smartpay.alerts SET acknowledged_at = now() WHERE dedup_key = 'c'");

	assert_row(conn, "smartpay.order_payments", "1",
	           "transaction_id, currency, capture_state, captured_minor, captured, "
	           "refunded_minor, refunded, refund_pending_minor, refund_pending, "
	           "refundable_minor, refundable, coalesce(cancel_state, '-'), cancelled, "
	           "open_alerts, pending_requests",
	           "tx-1 EUR succeeded 10000 100.00 1000 10.00 875 8.75 8125 81.25 - f 2 1");
	/* the last modification and the capture's deadline */
	char *expect = xasprintf("%s refund pending t", last);
	assert_row(conn, "smartpay.order_payments", "1",
	           "last_modification_id, last_kind, last_state, deadline = (SELECT deadline FROM "
	           "smartpay.modifications WHERE order_id = '1' AND kind = 'capture')",
	           expect);
	free(expect);
	free(last);
	/* what the view promises is what request_refund accepts */
	request_refused(conn, "SELECT smartpay.request_refund('1', 81.26)", "SP006", NULL);
	request_ok(conn, "SELECT smartpay.request_refund('1', 81.25)");
	assert_row(conn, "smartpay.order_payments", "1", "refundable_minor, refundable", "0 0.00");

	/* JPY, no fraction digits */
	add_order(conn, 2, "shipped", "tx-2", "1000", "JPY", 10);
	add_mod_quiet(conn, "2", "tx-2", "capture", "succeeded", 1000, "JPY");
	assert_row(conn, "smartpay.order_payments", "2", "captured, refundable, refunded",
	           "1000 1000 0");

	/* cancelOrRefund after capture: all of it refunded, nothing refundable */
	add_order(conn, 3, "cancelled", "tx-3", "30.00", "EUR", 10);
	add_mod_quiet(conn, "3", "tx-3", "capture", "succeeded", 3000, "EUR");
	add_mod_quiet(conn, "3", "tx-3", "refund", "succeeded", 1000, "EUR");
	add_mod_quiet(conn, "3", "tx-3", "cancel_or_refund", "succeeded", 3000, "EUR");
	assert_row(conn, "smartpay.order_payments", "3",
	           "captured, refunded, refundable, cancel_state, cancelled",
	           "30.00 30.00 0.00 succeeded t");

	/* not captured: pending capture */
	add_order(conn, 4, "shipped", "tx-4", "30.00", "EUR", 10);
	add_mod_quiet(conn, "4", "tx-4", "capture", "pending", 3000, "EUR");
	assert_row(conn, "smartpay.order_payments", "4",
	           "capture_state, captured_minor, refundable", "pending 0 0.00");

	/* only in the shop's table: not in the view, but order_payment knows it */
	add_order(conn, 5, "authorized", "tx-5", "12.34", "EUR", 10);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_payments WHERE "
	                                  "order_id = '5'"),
	                 0);
	assert_row(
	    conn, "smartpay.order_payment('5')", "5",
	    "in_relation, status, transaction_id, currency, authorized_minor, authorized, "
	    "captured, coalesce(capture_state, '-'), "
	    "deadline = (SELECT authorized_at + interval '120 hours' FROM orders WHERE id = 5)",
	    "t authorized tx-5 EUR 1234 12.34 0.00 - t");
	/* both: the ledger's numbers, the shop's status and authorized amount */
	assert_row(conn, "smartpay.order_payment('1')", "1",
	           "in_relation, status, authorized, captured, refunded, refundable",
	           "t shipped 100.00 100.00 10.00 0.00");
	/* the shop's own deadline wins */
	pgtest_exec(conn, "UPDATE orders SET authorization_expires_at = '2030-01-02 03:04:05+00' "
	                  "WHERE id = 5");
	assert_row(conn, "smartpay.order_payment('5')", "5", "deadline = '2030-01-02 03:04:05+00'",
	           "t");
	/* neither: no row */
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_payment('404')"), 0);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_payment('x')"), 0);

	/* the view has one row per order with a modification or a request */
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_payments"), 4);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* A login role for the shop with exactly the grants the README gives a shop role (USAGE
 * on the schema, EXECUTE on the functions, SELECT on the view); its name is derived from
 * the database's, roles being shared by the cluster. Returns a connection as that role
 * and its name (malloc'd) in *role. */
static PGconn *connect_shop_role(PGconn *owner, const char *conninfo, char **role)
{
	*role = xasprintf("shop_%s", PQdb(owner));
	char *sql = xasprintf(
	    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
	    "CREATE ROLE %s LOGIN; END IF; END $$; "
	    "GRANT USAGE ON SCHEMA smartpay TO %s; "
	    "GRANT EXECUTE ON FUNCTION smartpay.request_refund(text, numeric, text), "
	    "smartpay.request_cancel_or_refund(text, text), smartpay.order_payment(text) TO %s; "
	    "GRANT SELECT ON smartpay.order_payments TO %s",
	    *role, *role, *role, *role, *role);
	pgtest_exec(owner, sql);
	free(sql);
	const char *at = strstr(conninfo, "user=postgres");
	ck_assert_ptr_nonnull(at);
	char *as_role = xasprintf("%.*suser=%s%s", (int)(at - conninfo), conninfo, *role,
	                          at + strlen("user=postgres"));
	PGconn *conn = pgtest_connect(as_role);
	free(as_role);
	return conn;
}

/* A shop role with only EXECUTE (and SELECT on the view) requests refunds and
 * cancelOrRefunds and reads the payment state; it cannot write or read the ledger, the
 * requests or the orders directly. */
START_TEST(test_shop_role_needs_only_execute)
{
	PGconn *conn;
	char *conninfo = shop_db(&conn);
	add_order(conn, 1, "shipped", "tx-1", "100.00", "EUR", 2);
	add_mod_quiet(conn, "1", "tx-1", "capture", "succeeded", 10000, "EUR");
	add_order(conn, 2, "cancelled", "tx-2", "20.00", "EUR", 2);
	char *role = NULL;
	PGconn *shop = connect_shop_role(conn, conninfo, &role);

	long long r1 = request_ok(shop, "SELECT smartpay.request_refund('1', 25.00, 'damaged')");
	long long r2 = request_ok(shop, "SELECT smartpay.request_cancel_or_refund('2')");
	ck_assert(r1 < r2);
	request_refused(shop, "SELECT smartpay.request_refund('1', 80.00)", "SP006",
	                "refundable amount 75.00 EUR", NULL);
	/* who asked: the role that logged in, not the functions' owner */
	char *sql =
	    xasprintf("SELECT count(*) FROM smartpay.requests WHERE requested_by = '%s'", role);
	ck_assert_int_eq(pgtest_int(conn, sql), 2);
	free(sql);
	ck_assert_int_eq(pgtest_int(shop, "SELECT refundable_minor FROM "
	                                  "smartpay.order_payment('1')"),
	                 7500);
	ck_assert_int_eq(pgtest_int(shop, "SELECT refund_pending_minor FROM "
	                                  "smartpay.order_payments WHERE order_id = '1'"),
	                 2500);

	static const char *const denied[] = {
	    "INSERT INTO smartpay.requests (order_id, kind, amount_minor, currency) "
	    "VALUES ('1', 'refund', 7500, 'EUR')",
	    "UPDATE smartpay.requests SET amount_minor = 1",
	    "SELECT count(*) FROM smartpay.requests",
	    "SELECT count(*) FROM smartpay.modifications",
	    "SELECT count(*) FROM public.orders",
	    "SELECT nextval('smartpay.requests_request_id_seq')",
	};
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
		pgtest_exec_fails(shop, denied[i], "42501");
	ck_assert_int_eq(request_count(conn, "1"), 1);

	/* a role without the grant cannot ask for money to move at all */
	pgtest_exec(conn, "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
	                  "'sp_no_grant') THEN CREATE ROLE sp_no_grant; END IF; END $$; "
	                  "GRANT USAGE ON SCHEMA smartpay TO sp_no_grant");
	pgtest_exec(conn, "SET ROLE sp_no_grant");
	pgtest_exec_fails(conn, "SELECT smartpay.request_refund('1', 1.00)", "42501");
	pgtest_exec(conn, "RESET ROLE");
	PQfinish(shop);
	free(role);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* The functions run with their owner's rights under a fixed search_path: a caller's
 * schema with functions named like the built-ins they use (length, hashtext, round,
 * current_setting) is never consulted, and the checks those built-ins make still hold. */
START_TEST(test_search_path_cannot_shadow)
{
	PGconn *conn;
	char *conninfo = shop_db(&conn);
	add_order(conn, 1, "shipped", "tx-1", "100.00", "EUR", 2);
	add_mod_quiet(conn, "1", "tx-1", "capture", "succeeded", 10000, "EUR");
	char *role = NULL;
	PGconn *shop = connect_shop_role(conn, conninfo, &role);
	char *sql = xasprintf("CREATE SCHEMA evil AUTHORIZATION %s", role);
	pgtest_exec(conn, sql);
	free(sql);
	/* each stand-in records who called it and answers what would defeat a check */
	pgtest_exec(shop,
	            "CREATE TABLE evil.calls (fn text, who text); "
	            "CREATE FUNCTION evil.length(text) RETURNS integer LANGUAGE sql AS "
	            "$$ INSERT INTO evil.calls VALUES ('length', current_user) RETURNING 0 $$; "
	            "CREATE FUNCTION evil.hashtext(text) RETURNS integer LANGUAGE sql AS "
	            "$$ INSERT INTO evil.calls VALUES ('hashtext', current_user) RETURNING 0 $$; "
	            "CREATE FUNCTION evil.round(numeric, integer) RETURNS numeric LANGUAGE sql AS "
	            "$$ INSERT INTO evil.calls VALUES ('round', current_user) RETURNING $1 $$; "
	            "CREATE FUNCTION evil.current_setting(text) RETURNS text LANGUAGE sql AS "
	            "$$ INSERT INTO evil.calls VALUES ('current_setting', current_user) "
	            "RETURNING 'read committed'::text $$; "
	            "GRANT ALL ON evil.calls TO PUBLIC; "
	            "SET search_path = evil, pg_catalog, smartpay");

	request_ok(shop, "SELECT smartpay.request_refund('1', 10.00, 'x')");
	char *long_reason = xasprintf("SELECT smartpay.request_refund('1', 1.00, '%0128d')", 0);
	request_refused(shop, long_reason, "22001", "at most 127", NULL);
	free(long_reason);
	request_refused(shop, "SELECT smartpay.request_refund('1', 1.001)", "SP005", NULL);
	pgtest_exec(shop, "BEGIN ISOLATION LEVEL REPEATABLE READ");
	request_refused(shop, "SELECT smartpay.request_refund('1', 1.00)", "SP009",
	                "REPEATABLE READ", NULL);
	pgtest_exec(shop, "ROLLBACK");
	request_ok(shop, "SELECT smartpay.request_cancel_or_refund('1')");
	ck_assert_int_eq(pgtest_int(shop, "SELECT count(*) FROM smartpay.order_payment('1')"), 1);
	ck_assert_int_eq(pgtest_int(shop, "SELECT count(*) FROM evil.calls"), 0);
	PQfinish(shop);
	free(role);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

static Suite *shop_api_suite(void)
{
	Suite *s = suite_create("shop_api");
	TCase *tc = testutil_tcase(
	    s, "sql", 60,
	    (const TTest *const[]){
	        test_settings_and_currencies, test_refund_sequence, test_over_refund_refused,
	        test_refund_of_unknown_order, test_refund_amounts, test_concurrent_last_amount,
	        test_concurrent_race, test_cancel_or_refund_rules, test_view_numbers,
	        test_shop_role_needs_only_execute, test_search_path_cannot_shadow, NULL});
	tcase_add_loop_test(tc, test_refund_by_ledger_state, 0,
	                    (int)(sizeof(refund_cases) / sizeof(refund_cases[0])));
	return s;
}

int main(void)
{
	pgtest_start();
	int status = testutil_run_suite(shop_api_suite(), CK_ENV);
	pgtest_stop();
	return status;
}
