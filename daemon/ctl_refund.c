#include "autoconfig.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ctl_common.h"
#include "money.h"

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
	const char *params[1] = {order};
	PGresult *res =
	    ctl_query(ctx, "refund",
	              "SELECT currency::text FROM smartpay.modifications WHERE order_id = "
	              "$1 AND kind = 'capture' AND state = 'succeeded' LIMIT 1",
	              1, params);
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

	const char *params[3] = {order, amount, reason};
	return ctl_request(ctx, "refund", "SELECT smartpay.request_refund($1, $2::numeric, $3)", 3,
	                   params);
}

const struct ctl_command ctl_cmd_refund = {
    "refund",
    "ORDER AMOUNT [REASON]",
    "ask for a refund of AMOUNT (major units, e.g. 12.50) of a captured order",
    refund_run,
};
