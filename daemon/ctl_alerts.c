#include "autoconfig.h"

#include <getopt.h>
#include <stdio.h>

#include "ctl_common.h"
#include "store_ctl.h"

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
		return ctl_parse_limit(&ctl_cmd_alerts, value, ALERTS_MAX_LIMIT, &a->limit);
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
	int rc;
	if (!ctl_begin(ctx, &ctl_cmd_alerts, argc, argv, "ak:n:", options, alerts_option, &a, &rc))
		return rc;

	char limit[32];
	ctl_limit_text(a.limit, limit);
	PGresult *res = ctl_ok(ctx, "alerts", store_ctl_alerts(ctx->conn, a.all, a.kind, limit));
	if (res == NULL)
		return CTL_EXIT_FAILURE;

	bool truncated;
	int shown = ctl_rows_shown(res, a.limit, &truncated);
	if (ctx->json) {
		ctl_print_json_list(res, "alerts", shown, truncated, false);
	} else if (shown == 0) {
		printf(a.all ? "no alerts\n" : "no open alerts\n");
	} else {
		ctl_print_alerts(res, shown, a.all, NULL);
		if (truncated)
			ctl_print_truncated(a.limit);
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
