/* Schema migrations: the numbered sql/NNN_name.sql files, embedded at build time,
 * applied in order inside one transaction under an advisory lock. Blocking libpq:
 * for smartpayctl and the tests, never for the daemon's event loop. */
#ifndef SP_STORE_MIGRATE_H
#define SP_STORE_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

/* pg_advisory_xact_lock key held while migrating or attaching the orders trigger
 * ("SmartPay" in ASCII); anyone changing the smartpay schema takes it too. */
#define MIGRATE_LOCK_KEY INT64_C(0x536d617274506179)

/* Names of the triggers migrate_attach_orders_trigger creates on the orders table: the
 * UPDATE one (the name of the one row trigger before migration 020) and the INSERT one. */
#define MIGRATE_ORDERS_TRIGGER "smartpay_orders_notify"
#define MIGRATE_ORDERS_INSERT_TRIGGER "smartpay_orders_notify_insert"

/* One migration: `version` is the NNN of the file name (1, 2, ...), `name` the file
 * name ("001_ledger.sql"), `sql` its text, run as one simple-protocol query (several
 * statements; no BEGIN/COMMIT of its own). All three are static strings. */
struct sp_migration {
	int version;
	const char *name;
	const char *sql;
};

/* The sql/NNN_*.sql files of the source tree, in version order (generated file). */
extern const struct sp_migration sp_builtin_migrations[];
extern const size_t sp_builtin_migration_count;

/* Applies every migration of `list` (n entries, versions strictly increasing, > 0)
 * whose version is not yet recorded in smartpay.schema_migrations, in order, and
 * records each: one READ COMMITTED transaction holding
 * pg_advisory_xact_lock(MIGRATE_LOCK_KEY), creating schema smartpay and the
 * schema_migrations table when missing. Concurrent callers serialise on the lock; the
 * later one finds everything recorded. On success returns 0, sets *applied to the
 * number applied now and, when `applied_mask` is not NULL, applied_mask[i] to whether
 * list[i] was applied now. On failure rolls everything back, returns -1 and sets
 * *err to a malloc'd message naming the file and line, e.g.
 * "002_x.sql:3: ERROR: syntax error at or near "SELEC"". The connection must be idle
 * and outside a transaction. */
int migrate_apply(PGconn *conn, const struct sp_migration *list, size_t n, bool *applied_mask,
                  int *applied, char **err) __attribute__((warn_unused_result));

/* What `smartpayctl migrate` writes from the configuration for the shop-facing SQL
 * (sql/003_shop_api.sql): smartpay.settings and smartpay.currencies. */
struct migrate_settings {
	const char *orders_relation;       /* "schema.name" or "name", as in the configuration */
	int64_t authorization_validity_ms; /* [capture] authorization_validity, > 0 */
};

/* migrate_apply, then, in the same transaction and under the same lock, the settings
 * (when `settings` is not NULL; the list must then bring the schema to version 3 or
 * later): smartpay.settings gets the orders relation, stored quoted as a SQL name
 * ("public"."orders", so the functions cast it to regclass exactly as the daemon
 * resolves it), and the authorization validity; smartpay.currencies is made equal to
 * the C currency table (money_currency_at): missing codes inserted, changed exponents
 * updated, codes no longer known deleted. Unchanged rows are not rewritten. When
 * `currencies` is not NULL it is set to the number of currencies in the table. Same
 * return values and errors as migrate_apply; a settings failure rolls back the
 * migrations too. */
int migrate_apply_configured(PGconn *conn, const struct sp_migration *list, size_t n,
                             const struct migrate_settings *settings, bool *applied_mask,
                             int *applied, size_t *currencies, char **err)
    __attribute__((warn_unused_result));

/* Writes only the settings and the currency table, as migrate_apply_configured does,
 * in a transaction of its own under the migration lock (for a schema migrated without
 * them, e.g. by the tests). Returns 0, or -1 with a malloc'd *err. */
int migrate_write_settings(PGconn *conn, const struct migrate_settings *settings, char **err)
    __attribute__((warn_unused_result));

/* Sets *version to the highest applied migration version (0 when none, including when
 * the schema does not exist). Returns 0, or -1 with a malloc'd *err. */
int migrate_current_version(PGconn *conn, int *version, char **err)
    __attribute__((warn_unused_result));

enum migrate_trigger_result {
	MIGRATE_TRIGGER_ERROR = -1,   /* *err set */
	MIGRATE_TRIGGER_ATTACHED = 0, /* created or replaced on the table */
	MIGRATE_TRIGGER_VIEW = 1,     /* the relation is a view: nothing done, the shop
	                               * attaches smartpay.orders_notify() to its own table */
};

/* How long migrate_attach_orders_trigger waits for the lock on the shop's table. */
#define MIGRATE_TRIGGER_LOCK_TIMEOUT "10s"

/* Attaches smartpay.orders_notify() to the orders relation ("schema.name" or "name",
 * resolved through search_path) as two statement triggers with transition tables,
 * MIGRATE_ORDERS_TRIGGER AFTER UPDATE and MIGRATE_ORDERS_INSERT_TRIGGER AFTER INSERT
 * (sql/020), when it is a table or a partitioned table (CREATE OR REPLACE, so running it
 * again is harmless, and it replaces the row trigger of before). Gives up with an error
 * rather than wait longer than MIGRATE_TRIGGER_LOCK_TIMEOUT for the table's lock (a
 * waiting CREATE TRIGGER would hold up every write to the table). Needs migration 020
 * applied. */
enum migrate_trigger_result migrate_attach_orders_trigger(PGconn *conn, const char *orders_relation,
                                                          char **err)
    __attribute__((warn_unused_result));

/* The columns of store_index_needs that have no index on the orders relation
 * ("schema.name" or "name"; none for a view): *missing is a malloc'd array of *n
 * malloc'd names (free each and the array). Returns 0, or -1 with a malloc'd *err. */
int migrate_missing_order_indexes(PGconn *conn, const char *orders_relation, char ***missing,
                                  size_t *n, char **err) __attribute__((warn_unused_result));

#endif
