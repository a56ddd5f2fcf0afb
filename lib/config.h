/* The daemon's configuration: one INI file parsed with libinih into a struct. */
#ifndef SP_CONFIG_H
#define SP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_DEFAULT_PATH "/etc/smartpayd/smartpayd.conf"
/* File name of the authentication key inside $CREDENTIALS_DIRECTORY. */
#define CONFIG_CREDENTIAL_NAME "authentication-key"
/* What a lease must cover beyond a request's timeout: writing the outcome back. A row
 * whose lease has less than timeout + this margin left is not sent but given back. */
#define CONFIG_LEASE_MARGIN_MS 5000

/* A list of strings from a comma-separated value. */
struct sp_strlist {
	char **items;
	size_t count;
};

/* Every value is validated and defaulted by config_load; durations are milliseconds. */
struct sp_config {
	char *path; /* the file this was loaded from */

	/* [database] */
	char *db_conninfo;     /* default "" (libpq defaults / PG* env) */
	char *orders_relation; /* default "public.orders"; "schema.name" or "name" */
	/* default 30s; 0 = none: the statement_timeout of every session */
	int64_t statement_timeout_ms;

	/* [smartpay] */
	char *base_url;                /* required; no trailing slash after load */
	char *merchant_key;            /* required, at most 36 characters */
	char *authentication_key_file; /* default "" = $CREDENTIALS_DIRECTORY/authentication-key */
	char *ca_file;                 /* default "" = system CA store */
	char *origin;                  /* default "" = not sent... required by the API: warn */
	char *user_agent;              /* default "smartpayd/VERSION" */
	int64_t timeout_ms;            /* default 90s */
	int64_t connect_timeout_ms;    /* default 10s */
	bool allow_insecure_http;      /* default no */

	/* [daemon] */
	char *instance_name;      /* default: the host name ("%H" also means the host name) */
	int max_inflight;         /* default 64, 1..10000 */
	int batch_size;           /* default 256, 1..10000: orders claimed per transaction */
	int64_t poll_interval_ms; /* default 10s */
	int64_t lease_ms;         /* default 5m, at least timeout + CONFIG_LEASE_MARGIN_MS */
	int max_attempts;         /* default 50 */
	int64_t retry_base_ms;    /* default 1s */
	int64_t retry_max_ms;     /* default 10m */
	int64_t drain_timeout_ms; /* default 30s: SIGTERM waits this long for in-flight requests */
	int log_level;            /* enum log_level; default info; key log_level =
	                             debug|info|notice|warning|error */

	/* [capture] */
	struct sp_strlist shipped_statuses;   /* default "shipped" */
	struct sp_strlist cancelled_statuses; /* default "cancelled" */
	int64_t authorization_validity_ms;    /* default 120h */
	struct sp_strlist early_statuses;     /* default empty: the opt-in expiry policy is off */
	int64_t early_margin_ms;              /* default 6h */
	bool early_action_cancel;             /* early_action = capture (default) | cancel */

	/* [alerts] */
	int64_t *expiry_thresholds_ms; /* default 24h, 4h; sorted descending */
	size_t expiry_threshold_count;
	char *webhook_url;              /* default "" = no webhook */
	int64_t gateway_unreachable_ms; /* default 5m */
	int64_t expired_lookback_ms;    /* default 24h, 0..366d: expired authorizations alerted */
	int summary_after;              /* default 20, 1..1000000: alerts per kind and sweep */

	/* [metrics] */
	char *metrics_listen;               /* default "127.0.0.1:9464"; "" disables */
	int metrics_max_connections;        /* default 16, 1..10000 */
	int64_t metrics_request_timeout_ms; /* default 5s, 100ms..5m: accept to last byte */
	int64_t metrics_gauges_interval_ms; /* default 10s, 100ms..1h: database gauges read */

	/* Non-fatal problems found by config_load (e.g. origin not set), one
	 * "FILE:LINE: key: reason" line each, or NULL. The daemon logs them as warnings. */
	char *warnings;
};

/* Parses and validates `path`. On success returns true and sets *out (free with
 * config_free). On failure returns false and sets *errors to a malloc'd text of
 * one line per problem, each "FILE:LINE: key: reason" (LINE 0 for a missing
 * required key or an unreadable file). Unknown sections and keys are errors. */
bool config_load(const char *path, struct sp_config **out, char **errors)
    __attribute__((warn_unused_result));

/* Same as config_load, from text in memory; `name` stands for the file name in errors. */
bool config_load_string(const char *name, const char *text, struct sp_config **out, char **errors)
    __attribute__((warn_unused_result));

void config_free(struct sp_config *cfg);

/* Parses a duration: an integer followed by ms, s, m, h or d ("90s", "120h", "5d").
 * A bare integer is refused. Returns false with a static reason in *why. */
bool config_parse_duration(const char *text, int64_t *ms, const char **why)
    __attribute__((warn_unused_result));

/* Reads the SmartPay authentication key: from authentication_key_file, or else
 * $CREDENTIALS_DIRECTORY/authentication-key. Trailing newlines are stripped.
 * Returns a malloc'd secret, or NULL with a malloc'd reason in *why (the reason
 * names the file, never the secret). */
char *config_read_secret(const struct sp_config *cfg, char **why);

#endif
