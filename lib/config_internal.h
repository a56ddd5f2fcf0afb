/* Internals of the configuration module, shared by its three files and included by
 * nobody else (but the duration fuzz harness, tests/fuzz/fuzz_duration.c):
 *   lib/config.c        the key table, messages, checks across keys, loading, the secret
 *   lib/config_ini.c    reading the INI text through libinih (lines, sections, keys)
 *   lib/config_value.c  the value parsers (durations, counts, URLs, lists, ...)
 *
 * How the parsing is split: libinih splits lines into sections and key = value pairs
 * and strips ';' comments. It gets the text through our own reader (config_ini.c),
 * which counts lines (the Debian build of libinih does not pass line numbers to the
 * handler: INI_HANDLER_LINENO is 0 in its header), removes indentation so that
 * libinih's multi-line continuation never silently glues lines together, and reports
 * every malformed line itself (libinih only returns the first one). The handler only
 * records each value with its line; validation happens after the whole file is read,
 * so that keys may appear in any order (allow_insecure_http after base_url). */
#ifndef SP_CONFIG_INTERNAL_H
#define SP_CONFIG_INTERNAL_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MS_PER_S INT64_C(1000)
#define MS_PER_M (60 * MS_PER_S)
#define MS_PER_H (60 * MS_PER_M)
#define MS_PER_D (24 * MS_PER_H)

enum key_id {
	K_DB_CONNINFO,
	K_DB_ORDERS_RELATION,
	K_DB_STATEMENT_TIMEOUT,
	K_SP_BASE_URL,
	K_SP_MERCHANT_KEY,
	K_SP_AUTH_KEY_FILE,
	K_SP_CA_FILE,
	K_SP_ORIGIN,
	K_SP_USER_AGENT,
	K_SP_TIMEOUT,
	K_SP_CONNECT_TIMEOUT,
	K_SP_ALLOW_INSECURE_HTTP,
	K_D_INSTANCE_NAME,
	K_D_MAX_INFLIGHT,
	K_D_BATCH_SIZE,
	K_D_POLL_INTERVAL,
	K_D_LEASE,
	K_D_MAX_ATTEMPTS,
	K_D_RETRY_BASE,
	K_D_RETRY_MAX,
	K_D_DRAIN_TIMEOUT,
	K_D_LOG_LEVEL,
	K_C_SHIPPED,
	K_C_CANCELLED,
	K_C_AUTH_VALIDITY,
	K_C_EARLY_STATUSES,
	K_C_EARLY_MARGIN,
	K_C_EARLY_ACTION,
	K_A_EXPIRY_THRESHOLDS,
	K_A_WEBHOOK_URL,
	K_A_GATEWAY_UNREACHABLE,
	K_A_EXPIRED_LOOKBACK,
	K_A_SUMMARY_AFTER,
	K_M_LISTEN,
	K_M_MAX_CONNECTIONS,
	K_M_REQUEST_TIMEOUT,
	K_M_GAUGES_INTERVAL,
	K_R_INTERVAL,
	K_R_LOOKBACK,
	K_R_REQUESTS_PER_SECOND,
	K_R_UNKNOWN_ANSWERS,
	K_COUNT
};

struct load_state;
struct key_desc;

/* Validates `text` and stores it into the key's field; on failure sets st->why. */
typedef bool (*key_parser)(struct load_state *st, const struct key_desc *k, const char *text);

struct key_desc {
	const char *section;
	const char *name;
	/* default value text, parsed like a value from the file; NULL = required */
	const char *def;
	key_parser parse;
	size_t offset; /* the field in struct sp_config */
	int64_t min, max;
};

struct message {
	int line;
	char *text;
};

struct messages {
	struct message *items;
	size_t count, cap;
};

struct load_state {
	const char *name; /* file name for messages */
	struct sp_config *cfg;

	/* the INI reader's position in the text */
	const char *pos, *end;
	int lineno;
	int section; /* index into the known sections, -1 none yet, -2 unknown */
	char *long_value;

	/* what the handler recorded per key */
	char *value[K_COUNT];
	int line[K_COUNT];
	bool ok[K_COUNT]; /* parsed and valid (or defaulted) */

	char why[512]; /* the reason of the last failed parse */
	struct messages errors, warnings;
};

/* Every key, its default and its bounds (config.c). */
extern const struct key_desc config_keys[K_COUNT];

/* Records "FILE:LINE: what: reason" as an error (config.c). */
void config_error_at(struct load_state *st, int line, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reads the INI text into st->value[] and st->line[], recording every malformed line,
 * unknown section or key and duplicate key as an error (config_ini.c). */
void config_ini_read(struct load_state *st, const char *text, size_t len);

static inline bool config_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The same blanks as a set for trim.h. */
#define CONFIG_BLANKS " \t"

/* The field of struct sp_config that key `k` fills. */
static inline void *config_field(struct load_state *st, const struct key_desc *k)
{
	return (char *)st->cfg + k->offset;
}

/* ---- the value parsers, one per kind of value (config_value.c) ---- */

bool config_value_conninfo(struct load_state *st, const struct key_desc *k, const char *text);
bool config_value_relation(struct load_state *st, const struct key_desc *k, const char *text);
bool config_value_url(struct load_state *st, const struct key_desc *k, const char *text);
bool config_value_merchant_key(struct load_state *st, const struct key_desc *k, const char *text);
bool config_value_path(struct load_state *st, const struct key_desc *k, const char *text);
bool config_value_origin(struct load_state *st, const struct key_desc *k, const char *text);
bool config_value_user_agent(struct load_state *st, const struct key_desc *k, const char *text);
bool config_value_duration(struct load_state *st, const struct key_desc *k, const char *text);
bool config_value_bool(struct load_state *st, const struct key_desc *k, const char *text);
bool config_value_instance_name(struct load_state *st, const struct key_desc *k, const char *text);
bool config_value_count(struct load_state *st, const struct key_desc *k, const char *text);
bool config_value_log_level(struct load_state *st, const struct key_desc *k, const char *text);
bool config_value_statuses(struct load_state *st, const struct key_desc *k, const char *text);
bool config_value_early_action(struct load_state *st, const struct key_desc *k, const char *text);
bool config_value_thresholds(struct load_state *st, const struct key_desc *k, const char *text);
bool config_value_listen(struct load_state *st, const struct key_desc *k, const char *text);

/* Frees what key `k`'s parser stored in cfg (a string or a list). */
void config_value_free(const struct key_desc *k, struct sp_config *cfg);

/* True when `s` is one of the list's items. */
bool config_strlist_has(const struct sp_strlist *list, const char *s);

#endif
