/* Starting and driving smartpay-sim from tests.
 *
 * simproc_start runs the built simulator ($SP_TOP_BUILDDIR/sim/smartpay-sim, the
 * variable set by TESTS_ENVIRONMENT in tests/local.mk) on 127.0.0.1 port 0 with a
 * fresh temporary directory holding the authentication key file (and, with TLS, a
 * throwaway CA and server certificate made with the openssl command), reads the
 * "listening on" line and returns a handle with the base URL. simproc_stop sends
 * SIGTERM and fails unless the simulator exits 0, so leaks and errors found by
 * ASan (or by a wrapper such as valgrind, see SIMPROC_WRAPPER) fail the test.
 *
 * The other helpers are blocking libcurl calls to the simulator, for test code
 * only (call curl_global_init once in main before using them). Functions report failures on stderr
 * and return NULL / false / -1; wrap them in ck_assert. Environment: SP_TOP_BUILDDIR   build tree
 * holding sim/smartpay-sim (default ".") SIMPROC_WRAPPER   optional command prefix, e.g. "valgrind
 * -q --error-exitcode=99"
 */
#ifndef SP_TESTS_SIMPROC_H
#define SP_TESTS_SIMPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <json-c/json.h>

/* The credentials simproc_start uses unless told otherwise. */
#define SIMPROC_MERCHANT_KEY "31928de9-5c5e-4f41-9a3e-6a5b2c1d0e0f"
#define SIMPROC_AUTH_KEY "sim-authentication-key-0123456789"

struct simproc;

struct simproc_opts {
	bool tls;                      /* serve HTTPS; simproc_ca_file() verifies it */
	const char *const *extra_args; /* NULL-terminated extra arguments, e.g. "--seed", "5" */
	const char *merchant_key;      /* NULL: SIMPROC_MERCHANT_KEY */
	const char *auth_key;          /* NULL: SIMPROC_AUTH_KEY */
};

/* Starts the simulator (opts may be NULL for plain HTTP and the default keys).
 * Returns NULL when it could not start or did not print its port within 20 s. */
struct simproc *simproc_start(const struct simproc_opts *opts);

/* Stops it with SIGTERM, waits, removes the temporary directory and frees sim.
 * True only when the simulator exited with status 0. NULL is accepted. */
bool simproc_stop(struct simproc *sim);

/* "http://127.0.0.1:PORT" or "https://127.0.0.1:PORT" (the certificate names
 * 127.0.0.1 and localhost). */
const char *simproc_base_url(const struct simproc *sim);
int simproc_port(const struct simproc *sim);
pid_t simproc_pid(const struct simproc *sim);
const char *simproc_merchant_key(const struct simproc *sim);
const char *simproc_auth_key(const struct simproc *sim);
/* The file holding the authentication key (for a daemon configuration). */
const char *simproc_auth_key_file(const struct simproc *sim);
/* The CA certificate that signed the simulator's certificate; NULL without TLS. */
const char *simproc_ca_file(const struct simproc *sim);
/* The temporary directory (removed by simproc_stop); tests may put files there. */
const char *simproc_dir(const struct simproc *sim);

/* Makes a throwaway CA and a server certificate for 127.0.0.1 and localhost in dir:
 * NAME-ca.pem, NAME-cert.pem, NAME-key.pem (and helper files). */
bool simproc_make_tls(const char *dir, const char *name);

/* One HTTP exchange. */
struct simproc_reply {
	long status;   /* HTTP status, 0 when no answer arrived */
	int curl_code; /* CURLE_OK, or the transport error (timeout, reset, empty reply) */
	char *body;    /* malloc'd, NUL-terminated (possibly empty) */
	size_t len;
	char *retry_after;  /* malloc'd Retry-After value, or NULL */
	char *content_type; /* malloc'd Content-Type value, or NULL */
};

/* Sends method path (relative to the base URL) with the given header lines
 * (NULL-terminated, may be NULL) and body (may be NULL). timeout_ms 0 means 20 s.
 * ca_file overrides the simulator's CA (to test a wrong one); NULL uses its own.
 * Always fills *out (free it with simproc_reply_free); returns false only when the
 * request could not be set up. */
bool simproc_call(const struct simproc *sim, const char *method, const char *path,
                  const char *const *headers, const char *body, long timeout_ms,
                  const char *ca_file, struct simproc_reply *out);
void simproc_reply_free(struct simproc_reply *r);

/* The header lines of a correct API call: Basic authentication with the
 * simulator's keys, Content-Type application/json, Accept-Language en-US, Origin. */
const char *const *simproc_api_headers(const struct simproc *sim);

/* POST /payment/ENDPOINT ("capture", "cancel", "cancelOrRefund", "refund") with the
 * correct headers. */
bool simproc_payment(const struct simproc *sim, const char *endpoint, const char *body,
                     struct simproc_reply *out);

/* GET /payment/status/ID with the correct headers. */
bool simproc_status(const struct simproc *sim, const char *transaction_id,
                    struct simproc_reply *out);

/* POST /_sim/transactions {"amount": amount, "currencyCode": currency}; returns the
 * malloc'd transactionId or NULL. */
char *simproc_create_txn(const struct simproc *sim, const char *amount, const char *currency);
/* Same with a full creation document (status, authorizedAt, expiresAt, ...). */
char *simproc_create_txn_json(const struct simproc *sim, const char *json);

/* POST /_sim/faults with a faults document (replaces the whole configuration). */
bool simproc_set_faults(const struct simproc *sim, const char *json);
/* DELETE /_sim/faults. */
bool simproc_clear_faults(const struct simproc *sim);
/* POST /_sim/clock {"advance": duration} ("96h", "90m", "500ms"). */
bool simproc_advance_clock(const struct simproc *sim, const char *duration);

/* POST /_sim/transactions/ID/external with `json` ({"operation": "capture", "amount":
 * "10.00"} ...): an effect made outside the API. Returns the malloc'd modificationId
 * the gateway recorded ("" for "expire"), or NULL when refused. */
char *simproc_external(const struct simproc *sim, const char *transaction_id, const char *json);
/* GET /payment/status requests received for a transaction (NULL: in total), or -1. */
long simproc_status_calls(const struct simproc *sim, const char *transaction_id);

/* GET /_sim/ledger as a tree (json_object_put it), or NULL. */
struct json_object *simproc_ledger(const struct simproc *sim);
/* Effects in a fetched ledger for a transaction (NULL: all) of a type (NULL: any).
 * The ledger's types are "CAPTURE", "CANCELLATION" and "REFUND"; the type asked is
 * matched in any case, and "cancel" stands for "CANCELLATION", so "capture",
 * "cancel" and "refund" work too. */
int simproc_ledger_count(struct json_object *ledger, const char *transaction_id, const char *type);
/* The same on a freshly fetched ledger; -1 when it cannot be fetched. */
int simproc_count_effects(const struct simproc *sim, const char *transaction_id, const char *type);
/* Requests received with this modificationId (0 when none); -1 on error. */
long simproc_request_count(const struct simproc *sim, const char *modification_id);
/* A per-modificationId count of a fetched ledger: key "requests", "otherBodies"
 * (requests whose body differed from the first one's) or "hostileAnswers" (answers
 * replaced by a hostile rule); 0 when the id is not listed, -1 without the key. */
long simproc_ledger_per_id(struct json_object *ledger, const char *key,
                           const char *modification_id);

#endif
