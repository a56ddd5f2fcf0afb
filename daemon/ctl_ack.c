#include "autoconfig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ctl_common.h"
#include "xmalloc.h"

/* Ends the transaction without changes; a failure adds nothing to report. */
static void rollback(struct ctl_context *ctx)
{
	PQclear(ctl_exec(ctx, "ROLLBACK", 0, NULL));
}

/* Builds the bigint[] literal of the ids, or NULL after a usage error. */
static char *id_array(int argc, char **argv)
{
	char *array = xstrdup("{");

	for (int i = 0; i < argc; i++) {
		long long id;
		if (!ctl_parse_int(argv[i], 1, INT64_MAX, &id)) {
			ctl_usage_error(&ctl_cmd_ack, "ack: '%s' is not an alert id", argv[i]);
			free(array);
			return NULL;
		}
		char *longer = xasprintf("%s%s%lld", array, i > 0 ? "," : "", id);
		free(array);
		array = longer;
	}
	char *done = xasprintf("%s}", array);
	free(array);
	return done;
}

/* Fails when any id names no alert, listing them; nothing is acknowledged then. */
static int check_known(struct ctl_context *ctx, const char *ids)
{
	const char *params[1] = {ids};
	PGresult *res = ctl_query(ctx, "ack",
	                          "SELECT string_agg(w.id::text, ', ' ORDER BY w.id) FROM "
	                          "(SELECT DISTINCT unnest($1::bigint[]) AS id) w WHERE NOT EXISTS "
	                          "(SELECT 1 FROM smartpay.alerts a WHERE a.alert_id = w.id)",
	                          1, params);
	if (res == NULL)
		return CTL_EXIT_FAILURE;
	int rc = CTL_EXIT_OK;
	if (!PQgetisnull(res, 0, 0)) {
		ctl_error("ack: no alert %s; nothing acknowledged", PQgetvalue(res, 0, 0));
		rc = CTL_EXIT_FAILURE;
	}
	PQclear(res);
	return rc;
}

/* Prints the outcome: which alerts were acknowledged now, which were already. */
static void ack_print(const struct ctl_context *ctx, const PGresult *res, const char *by)
{
	struct json_object *now = json_object_new_array(), *before = json_object_new_array();

	for (int row = 0; row < PQntuples(res); row++) {
		long long id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
		if (strcmp(PQgetvalue(res, row, 1), "t") == 0) {
			json_object_array_add(now, json_object_new_int64(id));
			continue;
		}
		struct json_object *old = json_object_new_object();
		json_object_object_add(old, "alert_id", json_object_new_int64(id));
		json_object_object_add(old, "acknowledged_by", ctl_json_value(res, row, 2));
		json_object_object_add(old, "acknowledged_at", ctl_json_value(res, row, 3));
		json_object_array_add(before, old);
	}
	if (ctx->json) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "acknowledged", now);
		json_object_object_add(doc, "already_acknowledged", before);
		json_object_object_add(doc, "acknowledged_by", json_object_new_string(by));
		ctl_print_json(doc);
		return;
	}
	for (size_t i = 0; i < json_object_array_length(now); i++)
		printf("acknowledged alert %lld as %s\n",
		       (long long)json_object_get_int64(json_object_array_get_idx(now, i)), by);
	for (int row = 0; row < PQntuples(res); row++) {
		char at[32];
		if (strcmp(PQgetvalue(res, row, 1), "t") != 0)
			printf("alert %s was acknowledged already, by %s at %s\n",
			       PQgetvalue(res, row, 0),
			       ctl_value(res, row, 2) ? ctl_value(res, row, 2) : "-",
			       ctl_time_human(ctl_value(res, row, 3), at));
	}
	json_object_put(now);
	json_object_put(before);
}

/* `ack ALERT_ID...`: acknowledges alerts, as $USER (else the database user). All or
 * nothing: an unknown id acknowledges none. */
static int ack_run(struct ctl_context *ctx, int argc, char **argv)
{
	int first;
	int rc = ctl_parse_options(ctx, &ctl_cmd_ack, argc, argv, "", NULL, NULL, NULL, &first);
	if (rc != CTL_EXIT_OK)
		return rc == CTL_HELP_SHOWN ? CTL_EXIT_OK : rc;
	if (first >= argc)
		return ctl_usage_error(&ctl_cmd_ack, "ack: expected at least one alert id");
	char *ids = id_array(argc - first, argv + first);
	if (ids == NULL)
		return CTL_EXIT_USAGE;
	if ((rc = ctl_connect(ctx)) != CTL_EXIT_OK) {
		free(ids);
		return rc;
	}

	const char *user = getenv("USER");
	const char *params[2] = {ids, user != NULL && user[0] != '\0' ? user : NULL};
	PGresult *res = ctl_query(ctx, "ack", "BEGIN", 0, NULL);
	if (res == NULL) {
		free(ids);
		return CTL_EXIT_FAILURE;
	}
	PQclear(res);
	if ((rc = check_known(ctx, ids)) != CTL_EXIT_OK) {
		rollback(ctx);
		free(ids);
		return rc;
	}
	/* the outer SELECT sees the rows as they were before the UPDATE: who acknowledged
	 * the others, and when */
	res = ctl_query(ctx, "ack",
	                "WITH upd AS (UPDATE smartpay.alerts a SET acknowledged_at = now(), "
	                "acknowledged_by = coalesce($2, current_user) "
	                "WHERE a.alert_id = ANY ($1::bigint[]) AND a.acknowledged_at IS NULL "
	                "RETURNING a.alert_id) "
	                "SELECT a.alert_id, a.alert_id IN (SELECT alert_id FROM upd), "
	                "a.acknowledged_by, a.acknowledged_at, coalesce($2, current_user) "
	                "FROM smartpay.alerts a WHERE a.alert_id = ANY ($1::bigint[]) "
	                "ORDER BY a.alert_id",
	                2, params);
	free(ids);
	if (res == NULL) {
		rollback(ctx);
		return CTL_EXIT_FAILURE;
	}
	PGresult *commit = ctl_query(ctx, "ack", "COMMIT", 0, NULL);
	if (commit == NULL) {
		PQclear(res);
		return CTL_EXIT_FAILURE;
	}
	PQclear(commit);
	ack_print(ctx, res, PQntuples(res) > 0 ? PQgetvalue(res, 0, 4) : "");
	PQclear(res);
	return CTL_EXIT_OK;
}

const struct ctl_command ctl_cmd_ack = {
    "ack",
    "ALERT_ID...",
    "acknowledge alerts (as $USER, else the database user)",
    ack_run,
};
