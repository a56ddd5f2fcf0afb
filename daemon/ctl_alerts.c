#include "autoconfig.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "ctl_common.h"

#define ALERTS_DEFAULT_LIMIT 100
#define ALERTS_MAX_LIMIT 100000

struct alerts_args {
	bool all;
	const char *kind;
	long long limit;
};

/* Takes the alerts command's own options. */
static int alerts_option(struct ctl_context *ctx, int opt, const char *value, void *arg)
{
	struct alerts_args *a = arg;

	switch (opt) {
	case 'a':
		a->all = true;
		return CTL_EXIT_OK;
	case 'k':
		a->kind = value;
		return CTL_EXIT_OK;
	case 'n':
		if (!ctl_parse_int(value, 1, ALERTS_MAX_LIMIT, &a->limit))
			return ctl_usage_error(&ctl_cmd_alerts,
			                       "alerts: --limit wants a number from 1 to %d",
			                       ALERTS_MAX_LIMIT);
		return CTL_EXIT_OK;
	default:
		return CTL_EXIT_USAGE;
	}
}

/* `alerts [--all] [--kind K] [--limit N]`: open alerts (every alert with --all), newest
 * first. */
static int alerts_run(struct ctl_context *ctx, int argc, char **argv)
{
	static const struct option options[] = {
	    {"all", no_argument, NULL, 'a'},
	    {"kind", required_argument, NULL, 'k'},
	    {"limit", required_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0},
	};
	struct alerts_args a = {.limit = ALERTS_DEFAULT_LIMIT};
	int first;
	int rc = ctl_parse_options(ctx, &ctl_cmd_alerts, argc, argv, "ak:n:", options,
	                           alerts_option, &a, &first);
	if (rc != CTL_EXIT_OK)
		return rc == CTL_HELP_SHOWN ? CTL_EXIT_OK : rc;
	if (first < argc)
		return ctl_usage_error(&ctl_cmd_alerts, "alerts: unexpected argument '%s'",
		                       argv[first]);
	if ((rc = ctl_connect(ctx)) != CTL_EXIT_OK)
		return rc;

	char limit[32];
	snprintf(limit, sizeof(limit), "%lld", a.limit + 1);
	const char *params[3] = {a.all ? "t" : "f", a.kind, limit};
	PGresult *res = ctl_query(ctx, "alerts",
	                          "SELECT " CTL_SQL_ALERT_COLUMNS " FROM smartpay.alerts a"
	                          " WHERE ($1::bool OR a.acknowledged_at IS NULL)"
	                          " AND ($2::text IS NULL OR a.kind = $2)"
	                          " ORDER BY a.alert_id DESC LIMIT $3",
	                          3, params);
	if (res == NULL)
		return CTL_EXIT_FAILURE;

	bool truncated = PQntuples(res) > a.limit;
	int shown = truncated ? (int)a.limit : PQntuples(res);
	if (ctx->json) {
		struct json_object *doc = json_object_new_object();
		struct json_object *list = json_object_new_array();
		for (int row = 0; row < shown; row++)
			json_object_array_add(list, ctl_json_row(res, row));
		json_object_object_add(doc, "alerts", list);
		json_object_object_add(doc, "count", json_object_new_int(shown));
		json_object_object_add(doc, "truncated", json_object_new_boolean(truncated));
		ctl_print_json(doc);
	} else if (shown == 0) {
		printf(a.all ? "no alerts\n" : "no open alerts\n");
	} else {
		ctl_print_alerts(res, shown, a.all, NULL);
		if (truncated)
			printf("(the newest %lld shown; more match: raise --limit)\n", a.limit);
	}
	PQclear(res);
	return CTL_EXIT_OK;
}

const struct ctl_command ctl_cmd_alerts = {
    "alerts",
    "[--all] [--kind K] [--limit N]",
    "list open alerts (every alert with --all), newest first (default limit 100)",
    alerts_run,
};
