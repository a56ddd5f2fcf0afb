/* smartpayctl's commands' options and operands: the usual ones (--json, --help), the
 * start of a command (options, operands, connection), --limit and whole integers. */
#ifndef SP_CTL_ARGS_H
#define SP_CTL_ARGS_H

#include <stdbool.h>

struct ctl_command;
struct ctl_context;
struct option;

/* The usual options of a command: --json (same as the global one) and --help. Returns
 * CTL_EXIT_OK with *optind_out at the first operand, CTL_HELP_SHOWN after printing the
 * usage for --help, or a usage error (CTL_EXIT_USAGE). `extra` lists
 * the command's own options (may be NULL): for each one it calls `on_option(ctx, opt,
 * optarg, arg)`, which returns CTL_EXIT_OK or an exit code. */
#define CTL_HELP_SHOWN (-1) /* ctl_parse_options printed --help: exit 0 */
int ctl_parse_options(struct ctl_context *ctx, const struct ctl_command *cmd, int argc, char **argv,
                      const char *shortopts, const struct option *extra,
                      int (*on_option)(struct ctl_context *ctx, int opt, const char *optarg,
                                       void *arg),
                      void *arg, int *optind_out);

/* The start of a command without operands: its options (as ctl_parse_options), no
 * operand, then ctl_connect. Returns true to go on; else false with *rc the command's
 * exit code (CTL_EXIT_OK after --help, or a usage or connection error). */
bool ctl_begin(struct ctl_context *ctx, const struct ctl_command *cmd, int argc, char **argv,
               const char *shortopts, const struct option *extra,
               int (*on_option)(struct ctl_context *ctx, int opt, const char *optarg, void *arg),
               void *arg, int *rc);

/* Same for a command whose one operand is a modification id (a UUID), set in *id; the
 * command has only the usual options. */
bool ctl_begin_with_id(struct ctl_context *ctx, const struct ctl_command *cmd, int argc,
                       char **argv, const char **id, int *rc);

/* ---- listings capped by --limit: the query asks for one row more than the limit (the
 * LIMIT parameter from ctl_limit_text) to tell whether more rows match ---- */

/* Parses the value of --limit, from 1 to max; CTL_EXIT_OK or a usage error. */
int ctl_parse_limit(const struct ctl_command *cmd, const char *value, long long max,
                    long long *limit);

/* The LIMIT parameter of a listing query: limit + 1. */
void ctl_limit_text(long long limit, char out[32]);

/* Who runs the command: $USER, NULL when unset or empty (the database user is
 * recorded then). */
const char *ctl_user(void);

/* Parses a whole decimal integer within [min, max]. */
bool ctl_parse_int(const char *text, long long min, long long max, long long *out);

#endif
