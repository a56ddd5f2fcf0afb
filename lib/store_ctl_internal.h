/* What lib/store_ctl.c and lib/store_ctl_orders.c share. */
#ifndef SP_STORE_CTL_INTERNAL_H
#define SP_STORE_CTL_INTERNAL_H

#include <libpq-fe.h>

/* Runs one statement with text parameters and results (PQexecParams). */
PGresult *store_ctl_exec(PGconn *conn, const char *sql, int nparams, const char *const *params);

/* Runs one statement with one text parameter. */
PGresult *store_ctl_exec1(PGconn *conn, const char *sql, const char *value);

/* Runs a statement built for the call (malloc'd) and frees it. */
PGresult *store_ctl_exec_built(PGconn *conn, char *sql, int nparams, const char *const *params);

#endif
