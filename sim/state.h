/* The simulated gateway's state: transactions, the business rules of the
 * modification APIs, the ledger of money movements and the idempotency store.
 * Pure logic, no I/O: the HTTP layer (api.c, control.c) drives it. */
#ifndef SIM_STATE_H
#define SIM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_TXN_ID_MAX 36
#define SIM_RECON_ID_LEN 16

/* paymentStatus values. CANCELLED comes from cancel, CANCELED (one L) from
 * cancelOrRefund, as in the vendor's examples. */
enum sim_pay_status {
	SIM_PS_CREATED,
	SIM_PS_AUTORIZATION_INITIALIZED,
	SIM_PS_AUTHORIZATION_COMPLETED,
	SIM_PS_CAPTURED,
	SIM_PS_SETTLED,
	SIM_PS_CANCELLED,
	SIM_PS_CANCELED,
	SIM_PS_REFUNDED,
	SIM_PS_EXPIRED, /* only through an early expiry of the control API */
};

/* The four modification endpoints. */
enum sim_op { SIM_OP_CAPTURE, SIM_OP_CANCEL, SIM_OP_CANCEL_OR_REFUND, SIM_OP_REFUND };

/* modificationData.type of a performed modification. */
enum sim_mod_type { SIM_MOD_CAPTURE, SIM_MOD_CANCELLATION, SIM_MOD_CANCELATION, SIM_MOD_REFUND };

/* One performed modification, kept in its transaction's history. */
struct sim_mod {
	enum sim_mod_type type;
	enum sim_op op;
	char *modification_id; /* owned */
	char recon_id[SIM_RECON_ID_LEN + 1];
	int64_t amount;    /* minor units of the transaction's currency */
	char *description; /* owned, may be NULL */
	int64_t at;        /* simulator clock, ms */
	bool external;     /* made outside the API (portal, support): the control API */
};

/* One checkout transaction. */
struct sim_txn {
	char id[SIM_TXN_ID_MAX + 1];
	char currency[4];
	char recon_id[SIM_RECON_ID_LEN + 1];
	enum sim_pay_status status;
	int64_t amount;                                                /* authorized, minor units */
	int64_t captured;                                              /* 0 until captured */
	int64_t refunded;                                              /* sum of refunds */
	int64_t created_at, authorized_at, expires_at, last_status_at; /* ms */
	char *description;                                             /* owned, may be NULL */
	char *payment_method;                                          /* owned */
	bool mit;
	struct sim_mod *mods; /* owned array, in the order performed */
	size_t nmods, capmods;
	uint64_t status_calls; /* GET /payment/status requests for this transaction */
};

/* One money movement in the ledger. */
struct sim_effect {
	const struct sim_txn *txn;
	const char *modification_id; /* owned by the transaction's sim_mod */
	const char *type;            /* "CAPTURE", "CANCELLATION" (cancel, or cancelOrRefund before
	                              * capture) or "REFUND" (refund, or cancelOrRefund after capture) */
	enum sim_op op;              /* the endpoint that caused it */
	int64_t amount;              /* captured, cancelled (released) or refunded */
	int64_t released;            /* capture only: the uncaptured remainder released */
	int64_t at;
	bool external; /* made through the control API, not a modification call; an early
	                * expiry is one with type "EXPIRY", no modificationId and the
	                * authorized amount */
};

/* Everything known about one modificationId: the request count and, once a
 * request with it was decided (200 or 422), the exact request and answer. */
struct sim_modrec {
	char *modification_id; /* owned */
	uint64_t requests;     /* every request received with this id, retries included */
	uint64_t body_hash;    /* FNV-1a of the first request's body */
	uint64_t other_bodies; /* requests whose body differed from the first one's */
	uint64_t hostile;      /* answers replaced by a hostile rule (faults.h) */
	bool answered;
	enum sim_op op;
	char *body; /* owned request bytes */
	size_t body_len;
	int status;
	char *response; /* owned answer bytes */
	size_t response_len;
};

/* How a request relates to what was stored under its modificationId. */
enum sim_replay { SIM_REPLAY_NEW, SIM_REPLAY_SAME, SIM_REPLAY_CONFLICT };

/* A validated modification request (request.c builds it from JSON). */
struct sim_mod_request {
	enum sim_op op;
	const char *transaction_id;
	const char *modification_id;
	bool has_amount; /* modifiedAmount present */
	int64_t amount;  /* minor units of `currency` */
	const char *currency;
	const char *description; /* may be NULL */
};

enum sim_outcome { SIM_APPLIED, SIM_NO_TXN, SIM_REFUSED };

/* What sim_state_apply decided. */
struct sim_result {
	enum sim_outcome outcome;
	struct sim_txn *txn; /* NULL for SIM_NO_TXN */
	size_t mod_index;    /* SIM_APPLIED: index of the new entry in txn->mods */
	const char *error;   /* SIM_NO_TXN / SIM_REFUSED: a stable error code */
	char details[200];   /* SIM_NO_TXN / SIM_REFUSED: a human-readable reason */
};

/* A transaction to create. */
struct sim_txn_spec {
	const char *id; /* NULL: a random UUID */
	int64_t amount; /* minor units, > 0 */
	const char *currency;
	enum sim_pay_status status; /* usually SIM_PS_AUTHORIZATION_COMPLETED */
	bool has_authorized_at;     /* else now */
	int64_t authorized_at;
	bool has_expires_at; /* else authorized_at + the state's validity */
	int64_t expires_at;
	const char *description;    /* may be NULL */
	const char *payment_method; /* NULL: "CARDS" */
	bool mit;
};

struct sim_state;

/* auth_validity_ms: default authorization lifetime when a transaction has no expiresAt. */
struct sim_state *sim_state_new(int64_t auth_validity_ms);
void sim_state_free(struct sim_state *st);

/* The simulator's clock: the wall clock plus an offset moved by the control API. */
int64_t sim_state_now(const struct sim_state *st);
void sim_state_advance(struct sim_state *st, int64_t ms);
/* Moves the clock so that it reads `ms` now. */
void sim_state_set_now(struct sim_state *st, int64_t ms);
int64_t sim_state_clock_offset(const struct sim_state *st);
int64_t sim_state_auth_validity(const struct sim_state *st);

/* Creates a transaction. NULL with a static reason in *why when the id is taken or
 * the spec is invalid. */
struct sim_txn *sim_state_create(struct sim_state *st, const struct sim_txn_spec *spec,
                                 const char **why);

/* Creates n authorized transactions of 100.00 EUR with the ids
 * sim_state_preload_id(seed, i) for i in [0, n). */
void sim_state_preload(struct sim_state *st, uint64_t n, uint64_t seed);
void sim_state_preload_id(uint64_t seed, uint64_t i, char out[SIM_TXN_ID_MAX + 1]);

struct sim_txn *sim_state_find(const struct sim_state *st, const char *id);

/* Applies one modification under the business rules. */
void sim_state_apply(struct sim_state *st, const struct sim_mod_request *req,
                     struct sim_result *res);

/* Counts one request carrying modification_id, and notes whether its body (len
 * bytes) differs from the first one seen with that id; returns its record (created
 * on first use). */
struct sim_modrec *sim_state_note_request(struct sim_state *st, const char *modification_id,
                                          const char *body, size_t len);
struct sim_modrec *sim_state_modrec(const struct sim_state *st, const char *modification_id);

/* Compares a request with what was stored under its id: byte-identical body and
 * the same endpoint is a replay; anything else under an answered id is a conflict. */
enum sim_replay sim_modrec_check(const struct sim_modrec *rec, enum sim_op op, const char *body,
                                 size_t body_len);

/* Stores the request and its answer under the record, for replays. */
void sim_modrec_store(struct sim_modrec *rec, enum sim_op op, const char *body, size_t body_len,
                      int status, const char *response, size_t response_len);

/* An effect made outside the modification API (a portal capture, a support cancel or
 * refund): `req` as a modification call would carry it, with a modificationId the
 * caller chose (the gateway's own). Recorded as external in the history and the
 * ledger; not stored for idempotency. */
void sim_state_apply_external(struct sim_state *st, const struct sim_mod_request *req,
                              struct sim_result *res);

/* Whether a modificationId was used: by a modification call or in any history. */
bool sim_state_modification_id_used(const struct sim_state *st, const char *modification_id);

/* An early expiry of an authorized, uncaptured transaction: status EXPIRED, the
 * deadline now, an external "EXPIRY" effect. False (and nothing changed) in any other
 * state. */
bool sim_state_expire(struct sim_state *st, struct sim_txn *t);

/* Counts one GET /payment/status request for transaction id `id` (known or not) at
 * the real time `real_ms`. */
void sim_state_note_status_call(struct sim_state *st, const char *id, int64_t real_ms);

/* Status calls in total, and the most received within any one second. */
uint64_t sim_state_status_calls(const struct sim_state *st);
uint64_t sim_state_status_calls_max_per_second(const struct sim_state *st);

/* Read access for the ledger. */
const struct sim_effect *sim_state_effects(const struct sim_state *st, size_t *n);
struct sim_modrec *const *sim_state_modrecs(const struct sim_state *st, size_t *n);
size_t sim_state_txn_count(const struct sim_state *st);
/* The i-th transaction in creation order (i < sim_state_txn_count). */
const struct sim_txn *sim_state_txn_at(const struct sim_state *st, size_t i);

/* Names. */
const char *sim_pay_status_name(enum sim_pay_status s);
bool sim_pay_status_parse(const char *name, enum sim_pay_status *out);
const char *sim_op_name(enum sim_op op);
const char *sim_mod_type_name(enum sim_mod_type t);
/* The final and the pending status of a modification of type t. */
const char *sim_mod_status_name(enum sim_mod_type t);
const char *sim_mod_pending_name(enum sim_mod_type t);

#endif
