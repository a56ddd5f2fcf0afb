#include "autoconfig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ctl_common.h"
#include "store_ctl.h"
#include "xmalloc.h"

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
	PGresult *res = ctl_ok(ctx, "ack", store_ctl_unknown_alerts(ctx->conn, ids));
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

	if (!ctl_run(ctx, "ack", store_ctl_begin(ctx->conn))) {
		free(ids);
		return CTL_EXIT_FAILURE;
	}
	if ((rc = check_known(ctx, ids)) != CTL_EXIT_OK) {
		ctl_rollback(ctx);
		free(ids);
		return rc;
	}
	PGresult *res = ctl_ok(ctx, "ack", store_ctl_ack(ctx->conn, ids, ctl_user()));
	free(ids);
	if (res == NULL) {
		ctl_rollback(ctx);
		return CTL_EXIT_FAILURE;
	}
	if (!ctl_run(ctx, "ack", store_ctl_commit(ctx->conn))) {
		PQclear(res);
		return CTL_EXIT_FAILURE;
	}
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
