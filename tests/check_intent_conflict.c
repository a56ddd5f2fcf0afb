/* The intent insert (lib/store.c, store_insert_intents) against a private PostgreSQL: a
 * batch goes as a plain insert first, without ON CONFLICT; one that conflicts with a
 * rule of the ledger (one live capture per order, one pending modification per
 * transaction) is sent again with ON CONFLICT DO NOTHING in the same call, so the
 * caller gets the others recorded and no error, and the next batches go with ON
 * CONFLICT at once. Which statement ran is read from the session's prepared
 * statements. */
#include "autoconfig.h"

#include "config.h"
#include "pgconn.h"
#include "pgtest.h"
#include "records.h"
#include "store.h"
#include "testutil.h"
#include "uuid.h"
#include "xmalloc.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

/* The loop, the store and what the last call gave. */
struct fixture {
	struct event_base *base;
	struct pg_conn *pc;
	struct store *st;
	int ups;       /* connections made */
	bool done;     /* the last call completed */
	char *error;   /* its error (malloc'd), NULL on success */
	char *value;   /* a plain statement's first value (malloc'd) */
	char *claimed; /* the orders of the claims that came back, sorted, comma-separated */
};

/* The connection is up: the loop may stop waiting. */
static void on_up(void *arg)
{
	struct fixture *f = arg;
	f->ups++;
	event_base_loopbreak(f->base);
}

/* Orders two strings (qsort). */
static int string_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Intents recorded: keeps the error or the claimed orders. */
static void on_claims(struct claim *rows, size_t n, const char *error, void *arg)
{
	struct fixture *f = arg;
	free(f->error);
	free(f->claimed);
	f->error = error ? xstrdup(error) : NULL;
	char **orders = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		orders[i] = rows[i].order_id;
	qsort(orders, n, sizeof(char *), string_cmp);
	f->claimed = xstrdup("");
	for (size_t i = 0; i < n; i++) {
		char *next = xasprintf("%s%s%s", f->claimed, i ? "," : "", orders[i]);
		free(f->claimed);
		f->claimed = next;
	}
	free(orders);
	claims_free(rows, n);
	f->done = true;
	event_base_loopbreak(f->base);
}

/* A plain statement completed: keeps its first value or its error. */
static void on_result(PGresult *res, const char *error, void *arg)
{
	struct fixture *f = arg;
	free(f->error);
	free(f->value);
	f->error = error ? xstrdup(error) : NULL;
	f->value = !error && res && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)
	               ? xstrdup(PQgetvalue(res, 0, 0))
	               : NULL;
	f->done = true;
	event_base_loopbreak(f->base);
}

/* Runs the loop until the connection is up or the last call completed (at most 30 s). */
static void wait_for(struct fixture *f, bool up)
{
	for (int i = 0; i < 300 && (up ? f->ups == 0 : !f->done); i++) {
		struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
		event_base_loopexit(f->base, &tv);
		event_base_dispatch(f->base);
	}
	ck_assert_msg(up ? f->ups > 0 : f->done, "the call did not complete");
	f->done = false;
}

/* Records leased capture intents for `orders` (their transactions are "t-" and the
 * order) in one batch and waits for the claims. */
static void insert_captures(struct fixture *f, const char *const *orders, size_t n)
{
	struct intent *in = xcalloc(n, sizeof(*in));
	char **txn = xcalloc(n, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		txn[i] = xasprintf("t-%s", orders[i]);
		in[i] = (struct intent){.order_id = orders[i],
		                        .transaction_id = txn[i],
		                        .kind = MOD_CAPTURE,
		                        .amount_minor = 100,
		                        .currency = "EUR",
		                        .body = xasprintf("{\"reference\":\"%s\"}", orders[i]),
		                        .lease = true};
		uuid_v4(in[i].modification_id);
	}
	ck_assert(store_insert_intents(f->st, in, n, on_claims, f));
	for (size_t i = 0; i < n; i++) {
		free(in[i].body);
		free(txn[i]);
	}
	free(in);
	free(txn);
	wait_for(f, false);
}

/* The executions of the session's prepared intent inserts: "plain n, lean m, guarded k"
 * (lean: the plain insert of a batch that leaves nothing behind, store_intents_lean_text). */
static char *intent_statements(struct fixture *f)
{
	static const char sql[] =
	    "SELECT 'plain ' || coalesce(sum(generic_plans + custom_plans) FILTER (WHERE name = "
	    "'smartpay_insert_intents_plain'), 0) || ', lean ' || coalesce(sum(generic_plans "
	    "+ custom_plans) FILTER (WHERE name = 'smartpay_insert_intents_lean'), 0) "
	    "|| ', guarded ' || coalesce(sum(generic_plans "
	    "+ custom_plans) FILTER (WHERE name = 'smartpay_insert_intents'), 0) "
	    "FROM pg_prepared_statements";
	ck_assert(pg_conn_query(f->pc, sql, 0, NULL, on_result, f));
	wait_for(f, false);
	ck_assert_msg(f->error == NULL, "%s", f->error);
	return xstrdup(f->value);
}

START_TEST(a_conflicting_batch_is_recorded_without_its_conflicts)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	pgtest_migrate(conn);
	/* order o-1 has a live capture; transaction t-o-2 a pending refund */
	pgtest_exec(conn, "INSERT INTO smartpay.modifications (modification_id, order_id, "
	                  "transaction_id, kind, amount_minor, currency, request_body, state) "
	                  "VALUES (gen_random_uuid(), 'o-1', 't-o-1', 'capture', 100, 'EUR', '{}', "
	                  "'succeeded'), (gen_random_uuid(), 'o-2', 't-o-2', 'refund', 50, 'EUR', "
	                  "'{}', 'pending')");

	struct fixture f = {.base = event_base_new()};
	struct pg_conn_handlers h = {.up = on_up};
	struct sp_config cfg = {.instance_name = "me", .lease_ms = 60000};
	f.pc = pg_conn_new(f.base, conninfo, &h, &f);
	f.st = store_new(f.pc, &cfg);
	pg_conn_start(f.pc);
	wait_for(&f, true);

	/* no conflict: the plain insert records the batch (the lean one: it leaves nothing
	 * behind) */
	insert_captures(&f, (const char *const[]){"o-3", "o-4"}, 2);
	ck_assert_msg(f.error == NULL, "%s", f.error);
	ck_assert_str_eq(f.claimed, "o-3,o-4");
	char *ran = intent_statements(&f);
	ck_assert_str_eq(ran, "plain 0, lean 1, guarded 0");
	free(ran);

	/* a failure that is no conflict is not sent again: it goes to the caller */
	pgtest_exec(conn, "ALTER TABLE smartpay.modifications ADD CONSTRAINT t_no_o7 "
	                  "CHECK (order_id <> 'o-7')");
	insert_captures(&f, (const char *const[]){"o-7"}, 1);
	ck_assert_ptr_nonnull(f.error);
	ran = intent_statements(&f);
	ck_assert_str_eq(ran, "plain 0, lean 2, guarded 0");
	free(ran);

	/* two conflicts: the batch goes again with ON CONFLICT, the third is recorded */
	insert_captures(&f, (const char *const[]){"o-1", "o-2", "o-5"}, 3);
	ck_assert_msg(f.error == NULL, "%s", f.error);
	ck_assert_str_eq(f.claimed, "o-5");
	ran = intent_statements(&f);
	ck_assert_str_eq(ran, "plain 0, lean 3, guarded 1");
	free(ran);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.modifications WHERE "
	                                  "order_id IN ('o-1', 'o-2') AND kind = 'capture'"),
	                 1);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.modifications WHERE "
	                                  "order_id = 'o-5' AND state = 'pending' AND "
	                                  "lease_owner = 'me'"),
	                 1);

	/* after a conflict the next batches go with ON CONFLICT at once */
	insert_captures(&f, (const char *const[]){"o-6"}, 1);
	ck_assert_msg(f.error == NULL, "%s", f.error);
	ck_assert_str_eq(f.claimed, "o-6");
	ran = intent_statements(&f);
	ck_assert_str_eq(ran, "plain 0, lean 3, guarded 2");
	free(ran);

	store_free(f.st);
	pg_conn_free(f.pc);
	event_base_free(f.base);
	free(f.error);
	free(f.value);
	free(f.claimed);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

int main(void)
{
	pgtest_start();
	Suite *s = suite_create("intent_conflict");
	testutil_tcase(
	    s, "intent_conflict", 120,
	    (const TTest *const[]){a_conflicting_batch_is_recorded_without_its_conflicts, NULL});
	int status = testutil_run_suite(s, CK_NORMAL);
	pgtest_stop();
	return status;
}
