#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ctl_common.h"
#include "store_ctl.h"

/* Prints a body under a heading, or says there is none. */
static void print_body(const char *heading, const char *body)
{
	if (body == NULL) {
		printf("\n%s: none\n", heading);
		return;
	}
	size_t len = strlen(body);
	printf("\n%s:\n%s%s", heading, body, len > 0 && body[len - 1] == '\n' ? "" : "\n");
}

/* True for the columns holding a timestamp. */
static bool is_time_column(const char *name)
{
	size_t len = strlen(name);
	return strcmp(name, "deadline") == 0 || (len > 3 && strcmp(name + len - 3, "_at") == 0);
}

/* People's view: one "key  value" line per column, then the bodies, request, alerts. */
static void show_print(const PGresult *m, const PGresult *req, const PGresult *alerts)
{
	int body_cols[2] = {PQfnumber(m, "request_body"), PQfnumber(m, "response_body")};
	struct ctl_table *t = ctl_table_new(2, NULL);

	printf("modification %s\n", ctl_value(m, 0, PQfnumber(m, "modification_id")));
	for (int col = 0; col < PQnfields(m); col++) {
		const char *name = PQfname(m, col);
		const char *value = ctl_value(m, 0, col);
		char human[48];
		if (col == body_cols[0] || col == body_cols[1] ||
		    strcmp(name, "modification_id") == 0)
			continue;
		if (strcmp(name, "amount_minor") == 0)
			ctl_table_add(
			    t, (const char *const[]){
			           "amount",
			           ctl_amount_human(
			               value, ctl_value(m, 0, PQfnumber(m, "currency")), human)});
		if (is_time_column(name))
			value = ctl_time_human(value, human);
		ctl_table_add(t, (const char *const[]){name, value});
	}
	ctl_table_print(t, "  ");
	ctl_table_free(t);

	print_body("request body", ctl_value(m, 0, body_cols[0]));
	print_body("response body", ctl_value(m, 0, body_cols[1]));

	if (PQntuples(req) > 0) {
		char amount[48], at[32];
		const char *reason = ctl_value(req, 0, PQfnumber(req, "reason"));
		printf("\nshop request %s: %s%s%s, requested by %s at %s%s%s%s\n",
		       ctl_value(req, 0, PQfnumber(req, "request_id")),
		       ctl_value(req, 0, PQfnumber(req, "kind")),
		       ctl_value(req, 0, PQfnumber(req, "amount_minor")) ? " " : "",
		       ctl_value(req, 0, PQfnumber(req, "amount_minor"))
		           ? ctl_amount_human(ctl_value(req, 0, PQfnumber(req, "amount_minor")),
		                              ctl_value(req, 0, PQfnumber(req, "currency")), amount)
		           : "",
		       ctl_value(req, 0, PQfnumber(req, "requested_by")),
		       ctl_time_human(ctl_value(req, 0, PQfnumber(req, "requested_at")), at),
		       reason ? ", reason \"" : "", reason ? reason : "", reason ? "\"" : "");
	}
	if (PQntuples(alerts) == 0) {
		printf("\nalerts: none\n");
		return;
	}
	printf("\nalerts:\n");
	ctl_print_alerts(alerts, PQntuples(alerts), true, "  ");
}

/* `show MODIFICATION_ID`: every column of one modification, its bodies, its request and
 * its alerts. */
static int show_run(struct ctl_context *ctx, int argc, char **argv)
{
	const char *id;
	int rc;
	if (!ctl_begin_with_id(ctx, &ctl_cmd_show, argc, argv, &id, &rc))
		return rc;

	PGresult *m = ctl_ok(ctx, "show", store_ctl_show(ctx->conn, id));
	if (m == NULL)
		return CTL_EXIT_FAILURE;
	if (PQntuples(m) == 0) {
		ctl_error("show: no modification %s", id);
		PQclear(m);
		return CTL_EXIT_FAILURE;
	}
	PGresult *req = ctl_ok(ctx, "show", store_ctl_show_request(ctx->conn, id));
	PGresult *alerts = req ? ctl_ok(ctx, "show", store_ctl_show_alerts(ctx->conn, id)) : NULL;
	if (alerts == NULL) {
		PQclear(req);
		PQclear(m);
		return CTL_EXIT_FAILURE;
	}

	if (ctx->json) {
		struct json_object *doc = json_object_new_object();
		struct json_object *mod = ctl_json_row(m, 0);
		ctl_json_add_amount(mod);
		json_object_object_add(doc, "modification", mod);
		struct json_object *r = NULL;
		if (PQntuples(req) > 0) {
			r = ctl_json_row(req, 0);
			ctl_json_add_amount(r);
		}
		json_object_object_add(doc, "request", r);
		struct json_object *list = json_object_new_array();
		for (int row = 0; row < PQntuples(alerts); row++)
			json_object_array_add(list, ctl_json_row(alerts, row));
		json_object_object_add(doc, "alerts", list);
		ctl_print_json(doc);
	} else {
		show_print(m, req, alerts);
	}
	PQclear(alerts);
	PQclear(req);
	PQclear(m);
	return CTL_EXIT_OK;
}

const struct ctl_command ctl_cmd_show = {
    "show",
    "MODIFICATION_ID",
    "show one modification: every column, request and response bodies, its alerts",
    show_run,
};
