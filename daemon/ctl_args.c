#include "autoconfig.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_common.h"
#include "uuid.h"
#include "xmalloc.h"

int ctl_parse_options(struct ctl_context *ctx, const struct ctl_command *cmd, int argc, char **argv,
                      const char *shortopts, const struct option *extra,
                      int (*on_option)(struct ctl_context *ctx, int opt, const char *optarg,
                                       void *arg),
                      void *arg, int *optind_out)
{
	size_t n = 0;
	while (extra != NULL && extra[n].name != NULL)
		n++;
	struct option *options = xcalloc(n + 3, sizeof(*options));
	if (n > 0)
		memcpy(options, extra, n * sizeof(*options));
	options[n] = (struct option){"json", no_argument, NULL, 'j'};
	options[n + 1] = (struct option){"help", no_argument, NULL, 'h'};
	/* '+': stop at the first operand; ':': report problems here, not from getopt */
	char *shorts = xasprintf("+:%sjh", shortopts ? shortopts : "");
	int rc = CTL_EXIT_OK, opt;

	optind = 0;
	opterr = 0;
	while (rc == CTL_EXIT_OK && (opt = getopt_long(argc, argv, shorts, options, NULL)) != -1) {
		switch (opt) {
		case 'j':
			ctx->json = true;
			break;
		case 'h':
			ctl_print_usage(stdout, cmd, true);
			rc = CTL_HELP_SHOWN;
			break;
		case ':':
			rc = ctl_usage_error(cmd, "%s: option '%s' needs a value", cmd->name,
			                     argv[optind - 1]);
			break;
		case '?':
			if (optopt != 0)
				rc = ctl_usage_error(cmd, "%s: unknown option '-%c'", cmd->name,
				                     optopt);
			else
				rc = ctl_usage_error(cmd, "%s: unknown option '%s'", cmd->name,
				                     argv[optind - 1]);
			break;
		default:
			rc = on_option != NULL ? on_option(ctx, opt, optarg, arg) : CTL_EXIT_USAGE;
			break;
		}
	}
	*optind_out = optind;
	free(shorts);
	free(options);
	return rc;
}

bool ctl_begin(struct ctl_context *ctx, const struct ctl_command *cmd, int argc, char **argv,
               const char *shortopts, const struct option *extra,
               int (*on_option)(struct ctl_context *ctx, int opt, const char *optarg, void *arg),
               void *arg, int *rc)
{
	int first;
	*rc = ctl_parse_options(ctx, cmd, argc, argv, shortopts, extra, on_option, arg, &first);
	if (*rc == CTL_EXIT_OK && first < argc)
		*rc = ctl_usage_error(cmd, "%s: unexpected argument '%s'", cmd->name, argv[first]);
	if (*rc == CTL_EXIT_OK)
		*rc = ctl_connect(ctx);
	if (*rc == CTL_HELP_SHOWN)
		*rc = CTL_EXIT_OK;
	else if (*rc == CTL_EXIT_OK)
		return true;
	return false;
}

bool ctl_begin_with_id(struct ctl_context *ctx, const struct ctl_command *cmd, int argc,
                       char **argv, const char **id, int *rc)
{
	int first;
	*rc = ctl_parse_options(ctx, cmd, argc, argv, "", NULL, NULL, NULL, &first);
	if (*rc == CTL_EXIT_OK && argc - first != 1)
		*rc = ctl_usage_error(cmd, "%s: expected one modification id", cmd->name);
	if (*rc == CTL_EXIT_OK && !uuid_valid(argv[first]))
		*rc = ctl_usage_error(cmd, "%s: '%s' is not a modification id (a UUID)", cmd->name,
		                      argv[first]);
	if (*rc == CTL_EXIT_OK)
		*rc = ctl_connect(ctx);
	if (*rc == CTL_HELP_SHOWN)
		*rc = CTL_EXIT_OK;
	else if (*rc == CTL_EXIT_OK) {
		*id = argv[first];
		return true;
	}
	return false;
}

int ctl_parse_limit(const struct ctl_command *cmd, const char *value, long long max,
                    long long *limit)
{
	if (!ctl_parse_int(value, 1, max, limit))
		return ctl_usage_error(cmd, "%s: --limit wants a number from 1 to %lld", cmd->name,
		                       max);
	return CTL_EXIT_OK;
}

void ctl_limit_text(long long limit, char out[32])
{
	snprintf(out, 32, "%lld", limit + 1);
}

bool ctl_parse_int(const char *text, long long min, long long max, long long *out)
{
	char *end;

	if (text == NULL || text[0] == '\0' || text[0] == ' ' || text[0] == '+')
		return false;
	errno = 0;
	long long value = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0' || value < min || value > max)
		return false;
	*out = value;
	return true;
}

const char *ctl_user(void)
{
	const char *user = getenv("USER");
	return user != NULL && user[0] != '\0' ? user : NULL;
}
