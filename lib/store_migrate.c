#include "autoconfig.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_migrate.h"

#include "store_indexes.h"
#include "store_relation.h"
#include "money.h"
#include "trim.h"
#include "xmalloc.h"

/* Line (1-based) of the character at 1-based character position `pos` in UTF-8 `text`. */
static int line_of_position(const char *text, long pos)
{
	int line = 1;
	long chars = 0;

	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
		if ((*p & 0xC0) == 0x80)
			continue; /* UTF-8 continuation byte: same character */
		if (++chars >= pos)
			break;
		if (*p == '\n')
			line++;
	}
	return line;
}

/* Builds the message for a failed statement: "WHERE[:LINE]: SEVERITY: message", then
 * DETAIL, HINT and CONTEXT lines when the server sent them. `sql` (may be NULL) is the
 * text the statement position refers to. */
static char *result_error(const char *where, const char *sql, PGconn *conn, const PGresult *res)
{
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char *msg;

	if (primary == NULL) {
		/* no server error: a lost connection or an unexpected result status */
		char *text =
		    xstrdup(res && PQresultErrorMessage(res)[0] != '\0' ? PQresultErrorMessage(res)
		                                                        : PQerrorMessage(conn));
		if (text[0] == '\0' && res != NULL) {
			free(text);
			text = xasprintf("unexpected result %s", PQresStatus(PQresultStatus(res)));
		}
		msg = xasprintf("%s: %s", where, trim_end(text, "\n "));
		free(text);
		return msg;
	}

	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY);
	const char *position = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
	char line[32] = "";
	if (sql != NULL && position != NULL)
		snprintf(line, sizeof(line), ":%d",
		         line_of_position(sql, strtol(position, NULL, 10)));
	msg = xasprintf("%s%s: %s: %s", where, line, severity ? severity : "ERROR", primary);

	static const struct {
		int field;
		const char *label;
	} extra[] = {
	    {PG_DIAG_MESSAGE_DETAIL, "DETAIL"},
	    {PG_DIAG_MESSAGE_HINT, "HINT"},
	    {PG_DIAG_CONTEXT, "CONTEXT"},
	};
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		const char *value = PQresultErrorField(res, extra[i].field);
		if (value == NULL)
			continue;
		char *longer = xasprintf("%s\n%s: %s", msg, extra[i].label, value);
		free(msg);
		msg = longer;
	}
	return msg;
}

/* Runs parameterless `sql`; true when it ends with `want`. On failure sets *err
 * (prefixed with `where`) and returns false. */
static bool exec_simple(PGconn *conn, const char *where, const char *sql, ExecStatusType want,
                        char **err)
{
	PGresult *res = PQexec(conn, sql);
	bool ok = res != NULL && PQresultStatus(res) == want;

	if (!ok)
		*err = result_error(where, NULL, conn, res);
	PQclear(res);
	return ok;
}

/* Runs one parameterised statement with text parameters; returns its result when its
 * status is `want`, else NULL with *err set. */
static PGresult *exec_params(PGconn *conn, const char *where, const char *sql, int nparams,
                             const char *const *params, ExecStatusType want, char **err)
{
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

	if (res != NULL && PQresultStatus(res) == want)
		return res;
	*err = result_error(where, NULL, conn, res);
	PQclear(res);
	return NULL;
}

/* Ends a failed transaction; errors here add nothing to the first one. */
static void rollback(PGconn *conn)
{
	if (PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
}

/* Opens the READ COMMITTED transaction and waits for the migration lock. READ COMMITTED
 * so that every statement after the lock sees what a concurrent migrator committed. */
static bool begin_locked(PGconn *conn, char **err)
{
	char key[32];
	const char *params[1] = {key};

	if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
		*err = xstrdup(PQstatus(conn) == CONNECTION_OK
		                   ? "migrate: the connection is inside a transaction"
		                   : "migrate: not connected");
		return false;
	}
	if (!exec_simple(conn, "migrate", "BEGIN ISOLATION LEVEL READ COMMITTED", PGRES_COMMAND_OK,
	                 err))
		return false;
	snprintf(key, sizeof(key), "%" PRId64, MIGRATE_LOCK_KEY);
	PGresult *res = exec_params(conn, "migrate", "SELECT pg_advisory_xact_lock($1::bigint)", 1,
	                            params, PGRES_TUPLES_OK, err);
	if (res == NULL) {
		rollback(conn);
		return false;
	}
	PQclear(res);
	return true;
}

/* Commits; false with *err when the server did not commit. */
static bool commit(PGconn *conn, char **err)
{
	PGresult *res = PQexec(conn, "COMMIT");
	bool ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK &&
	          strcmp(PQcmdStatus(res), "COMMIT") == 0;

	if (!ok) {
		if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK)
			*err = xasprintf("migrate: COMMIT answered %s", PQcmdStatus(res));
		else
			*err = result_error("migrate: COMMIT", NULL, conn, res);
	}
	PQclear(res);
	rollback(conn);
	return ok;
}

/* Checks that the list is usable before touching the database. */
static bool list_valid(const struct sp_migration *list, size_t n, char **err)
{
	int previous = 0;

	for (size_t i = 0; i < n; i++) {
		if (list[i].name == NULL || list[i].sql == NULL || list[i].version <= previous) {
			*err =
			    xasprintf("migrate: migration list entry %zu (%s) is out of order or "
			              "incomplete",
			              i, list[i].name ? list[i].name : "unnamed");
			return false;
		}
		previous = list[i].version;
	}
	return true;
}

/* Creates schema smartpay and smartpay.schema_migrations when missing (inside the locked
 * transaction, so concurrent migrators never race on it). Checking first avoids
 * "already exists" notices and needs no CREATE privilege once they exist. */
static bool ensure_bookkeeping(PGconn *conn, char **err)
{
	PGresult *res =
	    PQexec(conn, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = "
	                 "'smartpay'), to_regclass('smartpay.schema_migrations') IS NOT "
	                 "NULL");
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		*err = result_error("migrate", NULL, conn, res);
		PQclear(res);
		return false;
	}
	bool have_schema = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	bool have_table = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);

	if (!have_schema &&
	    !exec_simple(conn, "migrate", "CREATE SCHEMA smartpay", PGRES_COMMAND_OK, err))
		return false;
	if (!have_table && !exec_simple(conn, "migrate",
	                                "CREATE TABLE smartpay.schema_migrations (\n"
	                                "    version    integer PRIMARY KEY,\n"
	                                "    name       text NOT NULL,\n"
	                                "    applied_at timestamptz NOT NULL DEFAULT now()\n"
	                                ")",
	                                PGRES_COMMAND_OK, err))
		return false;
	return true;
}

/* True when `version` is among the recorded versions in `res` (one column). */
static bool recorded(const PGresult *res, int version)
{
	for (int row = 0; row < PQntuples(res); row++)
		if (atoi(PQgetvalue(res, row, 0)) == version)
			return true;
	return false;
}

/* Runs one migration and records it; false with *err naming the file on failure. */
static bool apply_one(PGconn *conn, const struct sp_migration *m, char **err)
{
	PGresult *res = PQexec(conn, m->sql);
	ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK &&
	    status != PGRES_EMPTY_QUERY) {
		*err = result_error(m->name, m->sql, conn, res);
		PQclear(res);
		return false;
	}
	PQclear(res);
	if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
		*err = xasprintf("%s: the migration ended the transaction (it must not contain "
		                 "COMMIT or ROLLBACK)",
		                 m->name);
		return false;
	}

	char version[16];
	const char *params[2] = {version, m->name};
	snprintf(version, sizeof(version), "%d", m->version);
	res = exec_params(conn, m->name,
	                  "INSERT INTO smartpay.schema_migrations (version, name) VALUES ($1, $2)",
	                  2, params, PGRES_COMMAND_OK, err);
	PQclear(res);
	return res != NULL;
}

static bool write_settings(PGconn *conn, const struct migrate_settings *settings,
                           size_t *currencies, char **err);

int migrate_apply(PGconn *conn, const struct sp_migration *list, size_t n, bool *applied_mask,
                  int *applied, char **err)
{
	return migrate_apply_configured(conn, list, n, NULL, applied_mask, applied, NULL, err);
}

int migrate_apply_configured(PGconn *conn, const struct sp_migration *list, size_t n,
                             const struct migrate_settings *settings, bool *applied_mask,
                             int *applied, size_t *currencies, char **err)
{
	*applied = 0;
	*err = NULL;
	if (currencies != NULL)
		*currencies = 0;
	if (applied_mask != NULL)
		memset(applied_mask, 0, n * sizeof(*applied_mask));
	if (!list_valid(list, n, err) || !begin_locked(conn, err))
		return -1;
	if (!ensure_bookkeeping(conn, err))
		goto fail;

	PGresult *done = PQexec(conn, "SELECT version FROM smartpay.schema_migrations");
	if (done == NULL || PQresultStatus(done) != PGRES_TUPLES_OK) {
		*err = result_error("migrate", NULL, conn, done);
		PQclear(done);
		goto fail;
	}
	int count = 0;
	for (size_t i = 0; i < n; i++) {
		if (recorded(done, list[i].version))
			continue;
		if (!apply_one(conn, &list[i], err)) {
			PQclear(done);
			goto fail;
		}
		if (applied_mask != NULL)
			applied_mask[i] = true;
		count++;
	}
	PQclear(done);
	if (settings != NULL && !write_settings(conn, settings, currencies, err))
		goto fail;
	if (!commit(conn, err)) {
		if (applied_mask != NULL)
			memset(applied_mask, 0, n * sizeof(*applied_mask));
		return -1;
	}
	*applied = count;
	return 0;

fail:
	rollback(conn);
	if (applied_mask != NULL)
		memset(applied_mask, 0, n * sizeof(*applied_mask));
	return -1;
}

int migrate_current_version(PGconn *conn, int *version, char **err)
{
	*version = 0;
	*err = NULL;

	PGresult *res =
	    PQexec(conn, "SELECT to_regclass('smartpay.schema_migrations') IS NOT NULL");
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		*err = result_error("migrate", NULL, conn, res);
		PQclear(res);
		return -1;
	}
	bool have_table = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!have_table)
		return 0;

	res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM smartpay.schema_migrations");
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		*err = result_error("migrate", NULL, conn, res);
		PQclear(res);
		return -1;
	}
	*version = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

enum migrate_trigger_result migrate_attach_orders_trigger(PGconn *conn, const char *orders_relation,
                                                          char **err)
{
	*err = NULL;
	char *where = xasprintf("orders relation %s", orders_relation);
	char *quoted = store_relation_quote(conn, orders_relation, err);
	enum migrate_trigger_result result = MIGRATE_TRIGGER_ERROR;
	char *lock_timeout = NULL;

	if (quoted == NULL || !begin_locked(conn, err))
		goto out;
	/* CREATE TRIGGER waits for the shop's open transactions on the table, and while it
	 * waits every new write to the table queues behind it: give up rather than stall
	 * the shop (after the session's own lock_timeout when it has one) */
	PGresult *res =
	    PQexec(conn, "SELECT CASE WHEN current_setting('lock_timeout') = '0' "
	                 "THEN set_config('lock_timeout', '" MIGRATE_TRIGGER_LOCK_TIMEOUT
	                 "', true) ELSE current_setting('lock_timeout') END");
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		*err = result_error(where, NULL, conn, res);
		PQclear(res);
		goto fail;
	}
	lock_timeout = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);

	const char *params[1] = {quoted};
	res = exec_params(conn, where,
	                  "SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass($1)", 1,
	                  params, PGRES_TUPLES_OK, err);
	if (res == NULL)
		goto fail;
	if (PQntuples(res) == 0) {
		*err = xasprintf("%s does not exist", where);
		PQclear(res);
		goto fail;
	}
	char relkind = PQgetvalue(res, 0, 0)[0];
	PQclear(res);

	if (relkind == 'v' || relkind == 'm') {
		rollback(conn);
		result = MIGRATE_TRIGGER_VIEW;
		goto out;
	}
	if (relkind != 'r' && relkind != 'p') {
		*err = xasprintf("%s is neither a table nor a view (relkind %c)", where, relkind);
		goto fail;
	}
	/* the statement triggers name no column, and the function reads id and status:
	 * a relation without them would fail the shop's own statements */
	res = exec_params(conn, where,
	                  "SELECT string_agg(c.name, ', ' ORDER BY c.name) FROM unnest("
	                  "ARRAY['id', 'status']) AS c(name) WHERE NOT EXISTS (SELECT 1 FROM "
	                  "pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attname = "
	                  "c.name AND a.attnum > 0 AND NOT a.attisdropped)",
	                  1, params, PGRES_TUPLES_OK, err);
	if (res == NULL)
		goto fail;
	if (!PQgetisnull(res, 0, 0)) {
		*err = xasprintf("%s has no column %s", where, PQgetvalue(res, 0, 0));
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	/* in the one transaction: both triggers or neither */
	char *sql = xasprintf(
	    "CREATE OR REPLACE TRIGGER " MIGRATE_ORDERS_TRIGGER " AFTER UPDATE ON %s"
	    " REFERENCING OLD TABLE AS smartpay_old_orders NEW TABLE AS smartpay_new_orders"
	    " FOR EACH STATEMENT EXECUTE FUNCTION smartpay.orders_notify();"
	    " CREATE OR REPLACE TRIGGER " MIGRATE_ORDERS_INSERT_TRIGGER " AFTER INSERT ON %s"
	    " REFERENCING NEW TABLE AS smartpay_new_orders"
	    " FOR EACH STATEMENT EXECUTE FUNCTION smartpay.orders_notify()",
	    quoted, quoted);
	res = PQexec(conn, sql);
	bool ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok) {
		const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		if (state != NULL && strcmp(state, "55P03") == 0)
			*err = xasprintf("%s: could not lock it within lock_timeout %s (a "
			                 "transaction holds it); try again",
			                 where, lock_timeout);
		else
			*err = result_error(where, NULL, conn, res);
	}
	PQclear(res);
	free(sql);
	if (!ok || !commit(conn, err))
		goto fail;
	result = MIGRATE_TRIGGER_ATTACHED;
	goto out;

fail:
	rollback(conn);
out:
	free(lock_timeout);
	free(quoted);
	free(where);
	return result;
}

/* Makes smartpay.currencies equal to the C table (inside the caller's transaction). The
 * codes are three capital letters and the exponents one digit, so the array literals
 * ("{AED,AFN,...}", "{2,2,...}") need no quoting. */
static bool write_currencies(PGconn *conn, size_t *count, char **err)
{
	size_t n = money_currency_count();
	char *codes = xmalloc(4 * n + 3), *exps = xmalloc(12 * n + 3);
	char *c = codes, *e = exps;

	*c++ = '{';
	*e++ = '{';
	for (size_t i = 0; i < n; i++) {
		const char *code;
		int exponent;
		if (!money_currency_at(i, &code, &exponent))
			break;
		c += sprintf(c, "%s%s", i > 0 ? "," : "", code);
		e += sprintf(e, "%s%d", i > 0 ? "," : "", exponent);
	}
	strcpy(c, "}");
	strcpy(e, "}");

	const char *params[2] = {codes, exps};
	PGresult *res = exec_params(
	    conn, "currencies",
	    "INSERT INTO smartpay.currencies AS c (code, exponent) "
	    "SELECT code, exponent FROM unnest($1::text[], $2::smallint[]) AS t(code, exponent) "
	    "ON CONFLICT (code) DO UPDATE SET exponent = EXCLUDED.exponent "
	    "WHERE c.exponent <> EXCLUDED.exponent",
	    2, params, PGRES_COMMAND_OK, err);
	if (res != NULL) {
		PQclear(res);
		res = exec_params(conn, "currencies",
		                  "DELETE FROM smartpay.currencies WHERE code <> ALL ($1::text[])",
		                  1, params, PGRES_COMMAND_OK, err);
	}
	PQclear(res);
	free(codes);
	free(exps);
	if (res != NULL && count != NULL)
		*count = n;
	return res != NULL;
}

/* Records the baseline of a shop whose orders relation (quoted) exists and is empty:
 * nothing there can be history. A relation with orders waits for `smartpayctl adopt`.
 * Returns the statement's result, or NULL with *err. */
static PGresult *adopt_empty_shop(PGconn *conn, const char *quoted, char **err)
{
	const char *params[1] = {quoted};
	PGresult *res = exec_params(conn, "baseline",
	                            "SELECT to_regclass($1) IS NOT NULL AND to_regclass("
	                            "'smartpay.adoption') IS NOT NULL",
	                            1, params, PGRES_TUPLES_OK, err);
	if (res == NULL || strcmp(PQgetvalue(res, 0, 0), "t") != 0)
		return res;
	PQclear(res);
	char *sql = xasprintf("INSERT INTO smartpay.adoption (cut) SELECT now() "
	                      "WHERE NOT EXISTS (SELECT 1 FROM %s) ON CONFLICT DO NOTHING",
	                      quoted);
	res = exec_params(conn, "baseline", sql, 0, NULL, PGRES_COMMAND_OK, err);
	free(sql);
	return res;
}

/* Writes smartpay.settings and smartpay.currencies inside the caller's transaction, and
 * the baseline of an empty shop. */
static bool write_settings(PGconn *conn, const struct migrate_settings *settings,
                           size_t *currencies, char **err)
{
	if (settings->orders_relation == NULL || settings->authorization_validity_ms <= 0) {
		*err = xstrdup("settings: orders relation or authorization validity missing");
		return false;
	}
	char *quoted = store_relation_quote(conn, settings->orders_relation, err);
	if (quoted == NULL)
		return false;

	char validity[48];
	snprintf(validity, sizeof(validity), "%" PRId64 " milliseconds",
	         settings->authorization_validity_ms);
	const char *params[2] = {quoted, validity};
	PGresult *res =
	    exec_params(conn, "settings",
	                "INSERT INTO smartpay.settings AS s (only_row, orders_relation, "
	                "authorization_validity) "
	                "VALUES (true, $1, $2::interval) ON CONFLICT (only_row) DO UPDATE SET "
	                "orders_relation = EXCLUDED.orders_relation, "
	                "authorization_validity = EXCLUDED.authorization_validity "
	                "WHERE (s.orders_relation, s.authorization_validity) IS DISTINCT FROM "
	                "(EXCLUDED.orders_relation, EXCLUDED.authorization_validity)",
	                2, params, PGRES_COMMAND_OK, err);
	if (res != NULL) {
		PQclear(res);
		res = adopt_empty_shop(conn, quoted, err);
	}
	free(quoted);
	if (res == NULL)
		return false;
	PQclear(res);
	return write_currencies(conn, currencies, err);
}

int migrate_write_settings(PGconn *conn, const struct migrate_settings *settings, char **err)
{
	*err = NULL;
	if (!begin_locked(conn, err))
		return -1;
	if (!write_settings(conn, settings, NULL, err)) {
		rollback(conn);
		return -1;
	}
	return commit(conn, err) ? 0 : -1;
}

int migrate_missing_order_indexes(PGconn *conn, const char *orders_relation, char ***missing,
                                  size_t *n, char **err)
{
	*missing = NULL;
	*n = 0;
	char *columns = store_index_columns_literal();
	const char *params[2] = {orders_relation, columns};
	PGresult *res = exec_params(conn, "index check", store_index_check_sql, 2, params,
	                            PGRES_TUPLES_OK, err);
	free(columns);
	if (res == NULL)
		return -1;
	size_t rows = (size_t)PQntuples(res);
	*missing = xcalloc(rows + 1, sizeof(**missing));
	for (size_t i = 0; i < rows; i++)
		(*missing)[i] = xstrdup(PQgetvalue(res, (int)i, 0));
	*n = rows;
	PQclear(res);
	return 0;
}
