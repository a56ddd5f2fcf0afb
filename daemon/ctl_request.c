/* The shop's requests made from the command line: `refund` and `cancel-or-refund` call
 * the functions the shop calls (smartpay.request_refund, request_cancel_or_refund). */
#include "autoconfig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ctl_common.h"
#include "money.h"
#include "store_ctl.h"
#include "xmalloc.h"

/* Takes the result of a request function (store_ctl_request_refund or
 * store_ctl_request_cancel_or_refund), then prints the new request: its row as a JSON
 * object, or one line for people. A refusal by the function is printed as the database
 * worded it. Returns the exit code. */
static int request_report(struct ctl_context *ctx, const char *what, PGresult *called)
{
	PGresult *res = ctl_result(ctx, called);

	if (ctl_failed(res)) {
		/* the functions' own refusals (class SP, and 22001 for the reason) say what and
		 * why already */
		const char *state = ctl_sqlstate(res);
		bool refusal = strncmp(state, "SP", 2) == 0 || strcmp(state, "22001") == 0;
		ctl_report(ctx, refusal ? NULL : what, res);
		PQclear(res);
		return CTL_EXIT_FAILURE;
	}
	char *id = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);

	res = ctl_ok(ctx, what, store_ctl_request(ctx->conn, id));
	if (res == NULL || PQntuples(res) != 1) {
		if (res != NULL)
			ctl_error("%s: request %s was recorded but cannot be read back", what, id);
		PQclear(res);
		free(id);
		return CTL_EXIT_FAILURE;
	}
	if (ctx->json) {
		struct json_object *doc = ctl_json_row(res, 0);
		ctl_json_add_amount(doc);
		ctl_print_json(doc);
	} else {
		char amount[48];
		const char *minor = ctl_value(res, 0, 3);
		printf("%s request %s queued for order %s%s%s\n", PQgetvalue(res, 0, 2), id,
		       PQgetvalue(res, 0, 1), minor != NULL ? ": " : "",
		       minor != NULL ? ctl_amount_human(minor, ctl_value(res, 0, 4), amount) : "");
	}
	PQclear(res);
	free(id);
	return CTL_EXIT_OK;
}

/* True for plain decimal text: digits, optionally a point and more digits. */
static bool plain_decimal(const char *text)
{
	size_t digits = strspn(text, "0123456789");

	if (digits == 0)
		return false;
	if (text[digits] == '\0')
		return true;
	return text[digits] == '.' && text[digits + 1] != '\0' &&
	       text[digits + 1 + strspn(text + digits + 1, "0123456789")] == '\0';
}

/* The currency of the order's succeeded capture into `out` (empty when it has none).
 * Returns the exit code. */
static int capture_currency(struct ctl_context *ctx, const char *order, char out[4])
{
	PGresult *res = ctl_ok(ctx, "refund", store_ctl_capture_currency(ctx->conn, order));
	if (res == NULL)
		return CTL_EXIT_FAILURE;
	out[0] = '\0';
	if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
		snprintf(out, 4, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return CTL_EXIT_OK;
}

/* `refund ORDER AMOUNT [REASON]`: asks smartpay.request_refund for a refund. */
static int refund_run(struct ctl_context *ctx, int argc, char **argv)
{
	int first;
	int rc = ctl_parse_options(ctx, &ctl_cmd_refund, argc, argv, "", NULL, NULL, NULL, &first);
	if (rc != CTL_EXIT_OK)
		return rc == CTL_HELP_SHOWN ? CTL_EXIT_OK : rc;
	if (argc - first < 2 || argc - first > 3)
		return ctl_usage_error(&ctl_cmd_refund, "refund: expected ORDER AMOUNT [REASON]");
	const char *order = argv[first], *amount = argv[first + 1];
	const char *reason = argc - first == 3 ? argv[first + 2] : NULL;
	int64_t minor = 0;
	const char *why = NULL;

	if (!plain_decimal(amount)) {
		if (money_parse(amount, "EUR", &minor, &why))
			why = "not a decimal number";
		ctl_error("refund: invalid amount '%s': %s", amount, why);
		return CTL_EXIT_USAGE;
	}
	if ((rc = ctl_connect(ctx)) != CTL_EXIT_OK)
		return rc;

	/* checked against the captured currency here, so that a typo is a usage error; the
	 * function checks everything again under the order's lock */
	char currency[4], normalized[MONEY_TEXT_MAX];
	if ((rc = capture_currency(ctx, order, currency)) != CTL_EXIT_OK)
		return rc;
	if (currency[0] != '\0') {
		if (!money_parse(amount, currency, &minor, &why)) {
			ctl_error("refund: invalid amount '%s' for %s (%d decimals): %s", amount,
			          currency, money_exponent(currency), why);
			return CTL_EXIT_USAGE;
		}
		if (minor == 0) {
			ctl_error("refund: invalid amount '%s': must be greater than zero", amount);
			return CTL_EXIT_USAGE;
		}
		if (money_format(minor, currency, normalized))
			amount = normalized;
	}

	return request_report(ctx, "refund",
	                      store_ctl_request_refund(ctx->conn, order, amount, reason));
}

const struct ctl_command ctl_cmd_refund = {
    "refund",
    "ORDER AMOUNT [REASON]",
    "ask for a refund of AMOUNT (major units, e.g. 12.50) of a captured order",
    refund_run,
};

/* `cancel-or-refund ORDER [REASON]`: asks smartpay.request_cancel_or_refund for a
 * cancelOrRefund (cancel before capture, full refund after). */
static int cancel_or_refund_run(struct ctl_context *ctx, int argc, char **argv)
{
	int first;
	int rc = ctl_parse_options(ctx, &ctl_cmd_cancel_or_refund, argc, argv, "", NULL, NULL, NULL,
	                           &first);
	if (rc != CTL_EXIT_OK)
		return rc == CTL_HELP_SHOWN ? CTL_EXIT_OK : rc;
	if (argc - first < 1 || argc - first > 2)
		return ctl_usage_error(&ctl_cmd_cancel_or_refund,
		                       "cancel-or-refund: expected ORDER [REASON]");
	if ((rc = ctl_connect(ctx)) != CTL_EXIT_OK)
		return rc;

	return request_report(
	    ctx, "cancel-or-refund",
	    store_ctl_request_cancel_or_refund(ctx->conn, argv[first],
	                                       argc - first == 2 ? argv[first + 1] : NULL));
}

const struct ctl_command ctl_cmd_cancel_or_refund = {
    "cancel-or-refund",
    "ORDER [REASON]",
    "ask for a cancelOrRefund: cancel before capture, refund in full after",
    cancel_or_refund_run,
};
