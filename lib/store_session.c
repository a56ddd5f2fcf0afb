#include "autoconfig.h"

#include "store_session.h"

#include "durability.h"
#include "log.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

/* A session's settings: durable commits, no JIT, the planning settings `planning`, the
 * statement timeout (malloc'd). */
static char *session_sql(const char *planning, int64_t statement_timeout_ms)
{
	return xasprintf(
	    "SET synchronous_commit = on; SET jit = off; %s; SET statement_timeout = %lld",
	    planning, (long long)statement_timeout_ms);
}

/* jit off: the daemon's statements are short, and a batch's cost estimate can pass
 * jit_above_cost, when compiling it takes longer than running it many times over.
 * Custom plans only: the batch statements are prepared once per connection (parsed and
 * analysed once), but planned at every call for its batch and the ledger's statistics
 * then; a generic plan, built once from statistics that may predate a burst (a nearly
 * empty ledger), reads the whole ledger for a batch (the outcome connection's session,
 * below, leaves its one statement no such plan). */
char *store_session_setup_sql(int64_t statement_timeout_ms)
{
	return session_sql("SET plan_cache_mode = force_custom_plan", statement_timeout_ms);
}

/* The outcome connection runs one statement, the outcome write, whose every read of
 * the ledger is a primary-key probe for an id list of the batch (= ANY of an array)
 * joined to the batch by hash: its generic plan is kept (planned once per connection)
 * under settings that leave no other plan. Without sequential scans the ledger is read
 * through the id lists whatever its size when the plan was built; without nested loops
 * and merge joins no join loops over the batch for each row or walks the whole primary
 * key in order; hash joins and index scans on whatever the server's defaults say. The
 * summary trigger's functions set their own (sql/012, sql/018). */
char *store_session_outcomes_sql(int64_t statement_timeout_ms)
{
	return session_sql("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; "
	                   "SET enable_nestloop = off; SET enable_mergejoin = off; "
	                   "SET enable_hashjoin = on; SET enable_indexscan = on",
	                   statement_timeout_ms);
}

/* Logs the settings and their problems when they changed since the last report. */
static void session_checked(PGresult *res, const char *error, void *arg)
{
	char **reported = arg;
	if (error || res == NULL || PQntuples(res) != 1)
		return; /* the connection went away: the next connection checks again */
	struct db_durability d = {
	    .fsync = strcmp(PQgetvalue(res, 0, 0), "on") == 0,
	    .full_page_writes = strcmp(PQgetvalue(res, 0, 1), "on") == 0,
	    .synchronous_commit = PQgetvalue(res, 0, 2),
	    .synchronous_standby_names = PQgetvalue(res, 0, 3),
	    .wal_senders = strtol(PQgetvalue(res, 0, 5), NULL, 10),
	};
	char *seen = xasprintf("fsync=%s full_page_writes=%s synchronous_commit=%s "
	                       "synchronous_standby_names=%s statement_timeout=%s wal_senders=%s",
	                       PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
	                       PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5));
	if (*reported && strcmp(*reported, seen) == 0) {
		free(seen);
		return;
	}
	free(*reported);
	*reported = seen;
	log_fields(LOG_LVL_INFO, "db_session", LOG_STR("fsync", PQgetvalue(res, 0, 0)),
	           LOG_STR("full_page_writes", PQgetvalue(res, 0, 1)),
	           LOG_STR("synchronous_commit", PQgetvalue(res, 0, 2)),
	           LOG_STR("synchronous_standby_names", PQgetvalue(res, 0, 3)),
	           LOG_STR("statement_timeout", PQgetvalue(res, 0, 4)),
	           LOG_INT("wal_senders", d.wal_senders));
	char *problems = durability_problems(&d);
	if (problems)
		log_fields(LOG_LVL_WARNING, "db_not_durable", LOG_STR("reason", problems),
		           LOG_STR("msg", "an intent the server acknowledged may be lost; see the "
		                          "README's Durability and high availability"));
	free(problems);
}

bool store_session_check(struct pg_conn *pc, char **reported)
{
	return pg_conn_query(
	    pc,
	    "SELECT current_setting('fsync'), current_setting('full_page_writes'), "
	    "current_setting('synchronous_commit'), "
	    "current_setting('synchronous_standby_names'), "
	    "current_setting('statement_timeout'), "
	    "(SELECT count(*) FROM pg_catalog.pg_stat_replication)",
	    0, NULL, session_checked, reported);
}
