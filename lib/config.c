#include "autoconfig.h"

#include "config_internal.h"
#include "duration.h"
#include "trim.h"
#include "url.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Loading the configuration: the key table, the messages, the checks across keys, and
 * the files (the configuration and the secret). The INI reading is in config_ini.c, the
 * value parsers in config_value.c. */

#define CONFIG_MAX_FILE_SIZE (1024 * 1024)
#define SECRET_MAX_SIZE 4096

#define F(field) offsetof(struct sp_config, field)

/* Every key, its default and its bounds. The example configuration mirrors this table. */
const struct key_desc config_keys[K_COUNT] = {
    [K_DB_CONNINFO] = {"database", "conninfo", "", config_value_conninfo, F(db_conninfo), 0, 0},
    [K_DB_ORDERS_RELATION] = {"database", "orders_relation", "public.orders", config_value_relation,
                              F(orders_relation), 0, 0},
    [K_DB_STATEMENT_TIMEOUT] = {"database", "statement_timeout", "30s", config_value_duration,
                                F(statement_timeout_ms), 0, MS_PER_H},
    [K_SP_BASE_URL] = {"smartpay", "base_url", NULL, config_value_url, F(base_url), 0, 0},
    [K_SP_MERCHANT_KEY] = {"smartpay", "merchant_key", NULL, config_value_merchant_key,
                           F(merchant_key), 0, 0},
    [K_SP_AUTH_KEY_FILE] = {"smartpay", "authentication_key_file", "", config_value_path,
                            F(authentication_key_file), 0, 0},
    [K_SP_CA_FILE] = {"smartpay", "ca_file", "", config_value_path, F(ca_file), 0, 0},
    [K_SP_ORIGIN] = {"smartpay", "origin", "", config_value_origin, F(origin), 0, 0},
    [K_SP_USER_AGENT] = {"smartpay", "user_agent", PACKAGE_NAME "/" PACKAGE_VERSION,
                         config_value_user_agent, F(user_agent), 0, 0},
    [K_SP_TIMEOUT] = {"smartpay", "timeout", "90s", config_value_duration, F(timeout_ms), 1,
                      MS_PER_H},
    [K_SP_CONNECT_TIMEOUT] = {"smartpay", "connect_timeout", "10s", config_value_duration,
                              F(connect_timeout_ms), 1, MS_PER_H},
    [K_SP_ALLOW_INSECURE_HTTP] = {"smartpay", "allow_insecure_http", "no", config_value_bool,
                                  F(allow_insecure_http), 0, 0},
    [K_D_INSTANCE_NAME] = {"daemon", "instance_name", "%H", config_value_instance_name,
                           F(instance_name), 0, 0},
    [K_D_MAX_INFLIGHT] = {"daemon", "max_inflight", "64", config_value_count, F(max_inflight), 1,
                          10000},
    [K_D_BATCH_SIZE] = {"daemon", "batch_size", "256", config_value_count, F(batch_size), 1, 10000},
    [K_D_POLL_INTERVAL] = {"daemon", "poll_interval", "10s", config_value_duration,
                           F(poll_interval_ms), 10, MS_PER_D},
    [K_D_LEASE] = {"daemon", "lease", "5m", config_value_duration, F(lease_ms), MS_PER_S, MS_PER_D},
    [K_D_MAX_ATTEMPTS] = {"daemon", "max_attempts", "50", config_value_count, F(max_attempts), 1,
                          100000},
    [K_D_RETRY_BASE] = {"daemon", "retry_base", "1s", config_value_duration, F(retry_base_ms), 1,
                        MS_PER_D},
    [K_D_RETRY_MAX] = {"daemon", "retry_max", "10m", config_value_duration, F(retry_max_ms), 1,
                       MS_PER_D},
    [K_D_DRAIN_TIMEOUT] = {"daemon", "drain_timeout", "30s", config_value_duration,
                           F(drain_timeout_ms), 0, MS_PER_H},
    [K_D_LOG_LEVEL] = {"daemon", "log_level", "info", config_value_log_level, F(log_level), 0, 0},
    [K_C_SHIPPED] = {"capture", "shipped_statuses", "shipped", config_value_statuses,
                     F(shipped_statuses), 1, 0},
    [K_C_CANCELLED] = {"capture", "cancelled_statuses", "cancelled", config_value_statuses,
                       F(cancelled_statuses), 1, 0},
    [K_C_AUTH_VALIDITY] = {"capture", "authorization_validity", "120h", config_value_duration,
                           F(authorization_validity_ms), MS_PER_M, 366 * MS_PER_D},
    [K_C_EARLY_STATUSES] = {"capture", "early_statuses", "", config_value_statuses,
                            F(early_statuses), 0, 0},
    [K_C_EARLY_MARGIN] = {"capture", "early_margin", "6h", config_value_duration,
                          F(early_margin_ms), MS_PER_M, 365 * MS_PER_D},
    [K_C_EARLY_ACTION] = {"capture", "early_action", "capture", config_value_early_action,
                          F(early_action_cancel), 0, 0},
    [K_A_EXPIRY_THRESHOLDS] = {"alerts", "expiry_thresholds", "24h, 4h", config_value_thresholds,
                               F(expiry_thresholds_ms), MS_PER_M, 366 * MS_PER_D},
    [K_A_WEBHOOK_URL] = {"alerts", "webhook_url", "", config_value_url, F(webhook_url), 0, 0},
    [K_A_GATEWAY_UNREACHABLE] = {"alerts", "gateway_unreachable", "5m", config_value_duration,
                                 F(gateway_unreachable_ms), MS_PER_S, MS_PER_D},
    [K_A_EXPIRED_LOOKBACK] = {"alerts", "expired_lookback", "24h", config_value_duration,
                              F(expired_lookback_ms), 0, 366 * MS_PER_D},
    [K_A_SUMMARY_AFTER] = {"alerts", "summary_after", "20", config_value_count, F(summary_after), 1,
                           1000000},
    [K_M_LISTEN] = {"metrics", "listen", "127.0.0.1:9464", config_value_listen, F(metrics_listen),
                    0, 0},
    [K_M_MAX_CONNECTIONS] = {"metrics", "max_connections", "16", config_value_count,
                             F(metrics_max_connections), 1, 10000},
    [K_M_REQUEST_TIMEOUT] = {"metrics", "request_timeout", "5s", config_value_duration,
                             F(metrics_request_timeout_ms), 100, 5 * MS_PER_M},
    [K_M_GAUGES_INTERVAL] = {"metrics", "gauges_interval", "10s", config_value_duration,
                             F(metrics_gauges_interval_ms), 100, MS_PER_H},
    [K_R_INTERVAL] = {"reconcile", "interval", "5m", config_value_duration,
                      F(reconcile_interval_ms), 0, MS_PER_D},
    [K_R_LOOKBACK] = {"reconcile", "lookback", "7d", config_value_duration,
                      F(reconcile_lookback_ms), MS_PER_M, 366 * MS_PER_D},
    [K_R_REQUESTS_PER_SECOND] = {"reconcile", "requests_per_second", "5", config_value_count,
                                 F(reconcile_requests_per_second), 1, 1000},
    [K_R_UNKNOWN_ANSWERS] = {"reconcile", "unknown_answers", "3", config_value_count,
                             F(reconcile_unknown_answers), 1, 100000},
};

#undef F

/* ---- messages ---------------------------------------------------------------------- */

static void messages_add(struct messages *m, int line, char *text)
{
	m->items = xgrow(m->items, &m->cap, m->count + 1, sizeof(*m->items));
	m->items[m->count].line = line;
	m->items[m->count].text = text;
	m->count++;
}

/* Orders messages by line (stable: insertion sort on a short list); line 0 comes first. */
static void messages_sort(struct messages *m)
{
	for (size_t i = 1; i < m->count; i++) {
		struct message cur = m->items[i];
		size_t j = i;
		while (j > 0 && m->items[j - 1].line > cur.line) {
			m->items[j] = m->items[j - 1];
			j--;
		}
		m->items[j] = cur;
	}
}

/* Joins the messages into one malloc'd text, one line each; frees them. NULL if none. */
static char *messages_take(struct messages *m)
{
	char *out = NULL;
	if (m->count > 0) {
		messages_sort(m);
		size_t len = 0;
		for (size_t i = 0; i < m->count; i++)
			len += strlen(m->items[i].text) + 1;
		out = xmalloc(len + 1);
		char *o = out;
		for (size_t i = 0; i < m->count; i++) {
			size_t n = strlen(m->items[i].text);
			memcpy(o, m->items[i].text, n);
			o += n;
			*o++ = '\n';
		}
		*o = '\0';
	}
	for (size_t i = 0; i < m->count; i++)
		free(m->items[i].text);
	free(m->items);
	m->items = NULL;
	m->count = m->cap = 0;
	return out;
}

/* Adds "FILE:LINE: what: reason" to the errors or the warnings. */
static void __attribute__((format(printf, 5, 0)))
message_at(struct load_state *st, struct messages *m, int line, const char *what, const char *fmt,
           va_list ap)
{
	char reason[768];
	vsnprintf(reason, sizeof(reason), fmt, ap);
	messages_add(m, line, xasprintf("%s:%d: %s: %s", st->name, line, what, reason));
}

void config_error_at(struct load_state *st, int line, const char *what, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	message_at(st, &st->errors, line, what, fmt, ap);
	va_end(ap);
}

/* The section-qualified name of a key, "smartpay.timeout", in a caller's buffer. */
static const char *qname(const struct key_desc *k, char *buf, size_t len)
{
	snprintf(buf, len, "%s.%s", k->section, k->name);
	return buf;
}

/* Records an error or a warning (`m`) about key `id` at the line it was set on (0 when
 * defaulted). */
static void __attribute__((format(printf, 4, 5)))
key_message(struct load_state *st, struct messages *m, enum key_id id, const char *fmt, ...)
{
	char q[96];
	va_list ap;
	va_start(ap, fmt);
	message_at(st, m, st->line[id], qname(&config_keys[id], q, sizeof(q)), fmt, ap);
	va_end(ap);
}

/* ---- validation across keys ------------------------------------------------------------- */

/* The line to blame for a relation between two keys: the first that was set explicitly. */
static enum key_id blame(const struct load_state *st, enum key_id a, enum key_id b)
{
	return st->line[a] != 0 || st->line[b] == 0 ? a : b;
}

/* True when both keys parsed, so that a relation between them can be checked. */
static bool both_ok(const struct load_state *st, enum key_id a, enum key_id b)
{
	return st->ok[a] && st->ok[b];
}

/* Plain http:// to a host that is not loopback: refused unless allowed, then warned. */
static void check_http_url(struct load_state *st, enum key_id id)
{
	const char *url = *(char **)config_field(st, &config_keys[id]);
	struct url_parts u;
	if (!both_ok(st, id, K_SP_ALLOW_INSECURE_HTTP) || *url == '\0')
		return;
	if (!url_check(url, &u, st->why, sizeof(st->why)) || u.https || u.loopback)
		return;
	if (!st->cfg->allow_insecure_http) {
		key_message(
		    st, &st->errors, id,
		    "plain http:// is refused for a host that is not loopback; use https:// "
		    "or set smartpay.allow_insecure_http = yes");
		st->ok[id] = false;
	} else {
		key_message(st, &st->warnings, id,
		            "plain http:// to a host that is not loopback: requests travel "
		            "unencrypted (allow_insecure_http = yes)");
	}
}

/* Two status lists must not share a status; blamed on the list that was set explicitly. */
static void check_disjoint(struct load_state *st, enum key_id a, enum key_id b)
{
	if (!both_ok(st, a, b))
		return;
	enum key_id id = blame(st, a, b);
	enum key_id other = id == a ? b : a;
	const struct sp_strlist *mine = config_field(st, &config_keys[id]),
	                        *theirs = config_field(st, &config_keys[other]);
	char q[96];
	for (size_t i = 0; i < mine->count; i++) {
		if (config_strlist_has(theirs, mine->items[i])) {
			key_message(st, &st->errors, id, "status '%s' is also in %s",
			            mine->items[i], qname(&config_keys[other], q, sizeof(q)));
			st->ok[id] = false;
			return;
		}
	}
}

/* Reports two duration keys out of order on the one that was set explicitly: `a_must`
 * says what a must be next to b ("must be longer than"), `b_must` the converse. */
static void order_error(struct load_state *st, enum key_id a, const char *a_must, enum key_id b,
                        const char *b_must)
{
	enum key_id id = blame(st, a, b);
	enum key_id other = id == a ? b : a;
	int64_t other_ms = *(const int64_t *)config_field(st, &config_keys[other]);
	char q[96], t[DURATION_TEXT_SIZE];
	key_message(st, &st->errors, id, "%s %s (%s)", id == a ? a_must : b_must,
	            qname(&config_keys[other], q, sizeof(q)),
	            duration_format(other_ms, DURATION_EXACT, t));
}

/* The checks that involve more than one key. */
static void check_relations(struct load_state *st)
{
	struct sp_config *cfg = st->cfg;

	check_http_url(st, K_SP_BASE_URL);
	check_http_url(st, K_A_WEBHOOK_URL);

	/* a row is sent only while its lease covers the whole request and the outcome's
	 * write: a shorter lease could never send anything */
	if (both_ok(st, K_D_LEASE, K_SP_TIMEOUT) &&
	    cfg->lease_ms < cfg->timeout_ms + CONFIG_LEASE_MARGIN_MS)
		order_error(st, K_D_LEASE, "must be at least 5s longer than", K_SP_TIMEOUT,
		            "must be at least 5s shorter than");
	/* A defaulted connect_timeout follows a shorter explicit timeout. */
	if (both_ok(st, K_SP_CONNECT_TIMEOUT, K_SP_TIMEOUT) &&
	    st->line[K_SP_CONNECT_TIMEOUT] == 0 && cfg->connect_timeout_ms > cfg->timeout_ms)
		cfg->connect_timeout_ms = cfg->timeout_ms;
	if (both_ok(st, K_SP_CONNECT_TIMEOUT, K_SP_TIMEOUT) &&
	    cfg->connect_timeout_ms > cfg->timeout_ms)
		order_error(st, K_SP_CONNECT_TIMEOUT, "must not be longer than", K_SP_TIMEOUT,
		            "must not be shorter than");
	if (both_ok(st, K_D_RETRY_BASE, K_D_RETRY_MAX) && cfg->retry_max_ms < cfg->retry_base_ms)
		order_error(st, K_D_RETRY_MAX, "must not be shorter than", K_D_RETRY_BASE,
		            "must not be longer than");
	/* The margin matters only when the early policy is on or the margin was set. */
	bool early_used = st->ok[K_C_EARLY_STATUSES] &&
	                  (cfg->early_statuses.count > 0 || st->line[K_C_EARLY_MARGIN] != 0);
	if (early_used && both_ok(st, K_C_EARLY_MARGIN, K_C_AUTH_VALIDITY) &&
	    cfg->early_margin_ms >= cfg->authorization_validity_ms)
		order_error(st, K_C_EARLY_MARGIN, "must be shorter than", K_C_AUTH_VALIDITY,
		            "must be longer than");
	check_disjoint(st, K_C_CANCELLED, K_C_SHIPPED);
	check_disjoint(st, K_C_EARLY_STATUSES, K_C_SHIPPED);
	check_disjoint(st, K_C_EARLY_STATUSES, K_C_CANCELLED);

	if (st->ok[K_SP_ORIGIN] && *cfg->origin == '\0')
		key_message(st, &st->warnings, K_SP_ORIGIN,
		            "not set: SmartPay requires an Origin header on every request");
}

/* ---- loading ------------------------------------------------------------------------------ */

/* Parses every key's value from the file, or its default; a required key must be set. */
static void parse_values(struct load_state *st)
{
	char q[96];
	for (int i = 0; i < K_COUNT; i++) {
		const struct key_desc *k = &config_keys[i];
		const char *text_value = st->value[i] ? st->value[i] : k->def;
		if (text_value == NULL) {
			config_error_at(st, 0, qname(k, q, sizeof(q)), "required key is missing");
			continue;
		}
		st->why[0] = '\0';
		if (k->parse(st, k, text_value))
			st->ok[i] = true;
		else
			config_error_at(st, st->line[i], qname(k, q, sizeof(q)), "%s", st->why);
	}
}

/* Reads, parses and checks a configuration text; see config_load. */
static bool load_text(const char *name, const char *text, size_t len, struct sp_config **out,
                      char **errors)
{
	struct load_state st;
	memset(&st, 0, sizeof(st));
	st.name = name;
	st.cfg = xcalloc(1, sizeof(*st.cfg));
	st.cfg->path = xstrdup(name);

	config_ini_read(&st, text, len);
	parse_values(&st);
	check_relations(&st);
	for (int i = 0; i < K_COUNT; i++)
		free(st.value[i]);

	if (st.errors.count > 0) {
		*errors = messages_take(&st.errors);
		free(messages_take(&st.warnings));
		config_free(st.cfg);
		*out = NULL;
		return false;
	}
	st.cfg->warnings = messages_take(&st.warnings);
	*errors = NULL;
	*out = st.cfg;
	return true;
}

bool config_load_string(const char *name, const char *text, struct sp_config **out, char **errors)
{
	return load_text(name, text, strlen(text), out, errors);
}

/* Reads a whole regular file of at most `max` bytes; returns false with errno set. */
static bool read_file(const char *path, size_t max, char **data, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return false;
	struct stat sb;
	if (fstat(fd, &sb) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return false;
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		errno = S_ISDIR(sb.st_mode) ? EISDIR : EINVAL;
		return false;
	}
	if ((uintmax_t)sb.st_size > max) {
		close(fd);
		errno = EFBIG;
		return false;
	}
	char *buf = xmalloc(max + 1);
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, max + 1 - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			explicit_bzero(buf, n);
			free(buf);
			close(fd);
			errno = e;
			return false;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			explicit_bzero(buf, n);
			free(buf);
			close(fd);
			errno = EFBIG;
			return false;
		}
	}
	close(fd);
	buf[n] = '\0';
	*data = buf;
	*len = n;
	return true;
}

bool config_load(const char *path, struct sp_config **out, char **errors)
{
	char *data;
	size_t len;
	if (!read_file(path, CONFIG_MAX_FILE_SIZE, &data, &len)) {
		const char *reason = errno == EFBIG ? "larger than 1 MiB" : strerror(errno);
		*errors = xasprintf("%s:0: file: cannot read: %s\n", path, reason);
		*out = NULL;
		return false;
	}
	bool ok = load_text(path, data, len, out, errors);
	free(data);
	return ok;
}

void config_free(struct sp_config *cfg)
{
	if (cfg == NULL)
		return;
	for (int i = 0; i < K_COUNT; i++)
		config_value_free(&config_keys[i], cfg);
	free(cfg->expiry_thresholds_ms);
	free(cfg->warnings);
	free(cfg->path);
	free(cfg);
}

char *config_read_secret(const struct sp_config *cfg, char **why)
{
	char *path;
	if (cfg->authentication_key_file != NULL && *cfg->authentication_key_file != '\0') {
		path = xstrdup(cfg->authentication_key_file);
	} else {
		const char *dir = getenv("CREDENTIALS_DIRECTORY");
		if (dir == NULL || *dir == '\0') {
			*why =
			    xstrdup("no authentication key: set smartpay.authentication_key_file, "
			            "or pass the credential " CONFIG_CREDENTIAL_NAME
			            " with LoadCredential= ($CREDENTIALS_DIRECTORY is not set)");
			return NULL;
		}
		path = xasprintf("%s/%s", dir, CONFIG_CREDENTIAL_NAME);
	}
	char *data;
	size_t len;
	if (!read_file(path, SECRET_MAX_SIZE, &data, &len)) {
		const char *reason = errno == EFBIG ? "larger than 4096 bytes" : strerror(errno);
		*why = xasprintf("authentication key %s: cannot read: %s", path, reason);
		free(path);
		return NULL;
	}
	len = trim_end_len(data, len, "\r\n");
	data[len] = '\0';
	const char *problem = NULL;
	if (len == 0)
		problem = "the file is empty";
	for (size_t i = 0; i < len && problem == NULL; i++) {
		unsigned char c = (unsigned char)data[i];
		if (c < 0x20 || c == 0x7f)
			problem = "the key contains a line break or control character";
	}
	if (problem != NULL) {
		*why = xasprintf("authentication key %s: %s", path, problem);
		explicit_bzero(data, len);
		free(data);
		free(path);
		return NULL;
	}
	free(path);
	*why = NULL;
	return data;
}
