/* HTTP transport: libcurl multi driven by the daemon's libevent loop (hiperfifo style). */
#ifndef SP_HTTP_H
#define SP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

/* Largest response body kept; the rest is read and dropped (body_truncated). */
#define HTTP_BODY_MAX ((size_t)1 << 20)

/* Default total timeout when http_options.timeout_ms <= 0: SmartPay asks for >= 90 s. */
#define HTTP_DEFAULT_TIMEOUT_MS 90000

struct http_client; /* opaque */

struct http_options {
	const char *ca_file;        /* CA bundle trusted instead of the system store, or NULL/"" */
	int64_t timeout_ms;         /* whole transfer; <= 0 means HTTP_DEFAULT_TIMEOUT_MS */
	int64_t connect_timeout_ms; /* <= 0 means curl's default (bounded by timeout_ms) */
	long max_host_connections;  /* per host; 0 means unlimited */
	const char *user_agent;     /* NULL or "" sends no User-Agent */
};

/* Creates a client on the loop; the strings in opt are copied. TLS verification is
 * always on. On a loop with more than one priority (event_base_priority_init) the
 * client's events take the lowest, so that the loop's other work ready in the same pass
 * goes first. Returns NULL when curl cannot be set up. */
struct http_client *http_client_new(struct event_base *base, const struct http_options *opt)
    __attribute__((warn_unused_result));

/* Aborts and frees transfers still running (their callbacks are NOT called) and frees
 * the client. May be called from inside a done callback. NULL is a no-op. */
void http_client_free(struct http_client *c);

struct http_request {
	const char *method;         /* "POST" or "GET" */
	const char *url;            /* http:// or https://, no user:password@ part */
	const char *const *headers; /* NULL-terminated "Name: value" list, may be NULL */
	const char *body;           /* POST body (may be NULL when body_len is 0) */
	size_t body_len;
	const char *username; /* Basic auth when not NULL */
	const char *password;
};

struct http_result {
	int http_status;      /* 0 if no answer */
	bool transport_error; /* connection refused/reset, DNS, TLS, protocol ... (not timeouts) */
	bool timed_out;       /* the transfer or the connect timed out */
	const char *error;    /* curl's message (never containing the password) or NULL;
	                         owned by the client until the callback returns */
	const char *body;     /* NUL-terminated, owned by the client until the callback returns */
	size_t body_len;
	const char *retry_after; /* Retry-After header value, or NULL */
	int64_t elapsed_us;      /* from http_submit to completion */
	bool body_truncated;     /* the body was longer than HTTP_BODY_MAX */
};

/* Called once per transfer, from the loop, never from inside http_submit. */
typedef void (*http_done_fn)(const struct http_result *res, void *arg);

/* Starts a transfer; copies everything it needs (url, headers, body, credentials go
 * only into curl's handle). Returns false on a setup error (bad method, a URL with
 * credentials in it, curl refusing an option); done is then never called. */
bool http_submit(struct http_client *c, const struct http_request *req, http_done_fn done,
                 void *arg) __attribute__((warn_unused_result));

/* From now on c's TLS connections look up and keep their sessions in with's cache, so
 * that a session either client holds for a server resumes the other's new connections
 * (each connection's first handshake otherwise a full one, with the chain verified).
 * curl resumes a session only on a connection to the same host and port with the same
 * TLS settings (CA file, verification) as the one that made it; a full handshake still
 * verifies the server's chain. The cache lives while one of its clients does. False
 * (nothing changed) when c has transfers running or either is NULL. */
bool http_client_share_tls(struct http_client *c, struct http_client *with);

/* Transfers submitted and not yet completed. */
size_t http_inflight(const struct http_client *c);

#endif
