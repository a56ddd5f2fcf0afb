#include "autoconfig.h"

#include <stdio.h>

#include "ctl_common.h"

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

	const char *params[2] = {argv[first], argc - first == 2 ? argv[first + 1] : NULL};
	return ctl_request(ctx, "cancel-or-refund",
	                   "SELECT smartpay.request_cancel_or_refund($1, $2)", 2, params);
}

const struct ctl_command ctl_cmd_cancel_or_refund = {
    "cancel-or-refund",
    "ORDER [REASON]",
    "ask for a cancelOrRefund: cancel before capture, refund in full after",
    cancel_or_refund_run,
};
