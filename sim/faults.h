/* Fault injection: the configuration (from /_sim/faults or the command line) and
 * the seeded, reproducible decision taken for each /payment/ request. */
#ifndef SIM_FAULTS_H
#define SIM_FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "rng.h"

/* Hostile answers: 2xx answers that confirm nothing, error pages in other encodings,
 * bodies cut inside a UTF-8 character. */
enum sim_hostile_mode {
	SIM_HOSTILE_ERROR_200,     /* 200 {"error": ..., "errorDetails": ...} */
	SIM_HOSTILE_EMPTY_202,     /* 202 {} */
	SIM_HOSTILE_OTHER_ID,      /* 200, the modification entry names another modificationId */
	SIM_HOSTILE_FAILED_STATUS, /* 200, our modificationId, the entry's status failed_status */
	SIM_HOSTILE_NUL_STATUS,    /* 200, every status "CAPTURED\u0000junk" */
	SIM_HOSTILE_NUL_ID,        /* 200, the entry's modificationId "<ours>\u0000other" */
	SIM_HOSTILE_HTML_200,      /* 200 text/html: a proxy's error page */
	SIM_HOSTILE_EMPTY_200,     /* 200 with an empty body */
	SIM_HOSTILE_LATIN1,        /* `status` with a Windows-1252 HTML page (bytes >= 0x80) */
	SIM_HOSTILE_NUL_BODY,      /* `status` with a body holding NUL bytes */
	SIM_HOSTILE_CUT_UTF8,      /* `status`, the answer padded past 64 KiB, cut inside a char */
	SIM_HOSTILE_LONG_UTF8, /* `status`, the whole answer past 64 KiB, byte 65536 inside a char
	                        */
	SIM_HOSTILE_MODE_COUNT
};

/* Most hostile rules and most target ids per rule in one configuration. */
#define SIM_HOSTILE_MAX 16
#define SIM_HOSTILE_TARGETS_MAX 256

/* One hostile rule: which modification requests it answers, and how. */
struct sim_hostile {
	enum sim_hostile_mode mode;
	double rate;            /* of the requests the rule matches (default 1) */
	bool processed;         /* the gateway performs the request before the answer is replaced */
	int status;             /* the HTTP status sent (fixed for the 2xx modes) */
	char failed_status[32]; /* SIM_HOSTILE_FAILED_STATUS: the entry's status (default FAILED) */
	uint64_t max_per_id;    /* only the first N requests of each modificationId; 0: all */
	char **transactions;    /* owned; match these transactionIds (with modifications: either) */
	size_t ntransactions;
	char **modifications; /* owned; match these modificationIds */
	size_t nmodifications;
};

/* Rates are probabilities in [0, 1] whose sum is at most 1: each request gets at
 * most one of reset, fail, drop-after-commit, slow, garble. */
struct sim_faults {
	bool has_seed; /* reseed the fault generator with `seed` when applied */
	uint64_t seed;
	int64_t latency_ms, jitter_ms; /* every answer waits latency +- jitter */
	double reset_rate;             /* connection reset (RST) before processing */
	double fail_rate;              /* answer `status` without processing */
	int status;                    /* 500, 502, 503, 429 or 408 (default 503) */
	int retry_after;               /* seconds, sent with 429 and 503 (default 1) */
	double drop_after_commit_rate; /* process, then close without an answer */
	double slow_rate;              /* process, then answer after slow_ms more */
	int64_t slow_ms;               /* default 95000: past the 90 s client timeout */
	double garble_rate;            /* process, answer a truncated/corrupted body */
	bool extra_fields, reorder_fields, omit_optional;
	bool array_shape;            /* "shape": "modifications" */
	struct sim_hostile *hostile; /* owned array of nhostile rules (sim_faults_free) */
	size_t nhostile;
	/* "status_call": when set, GET /payment/status is planned by these alone (the
	 * settings above then apply to modification calls only) */
	bool has_status_call;
	double status_fail_rate;   /* answer status_status without an answer body of the model */
	int status_status;         /* 500, 502, 503, 429 or 408 (default 503) */
	double status_hang_rate;   /* answer after status_hang_ms */
	int64_t status_hang_ms;    /* default 95000: past the 90 s client timeout */
	double status_garble_rate; /* a body that is not JSON */
};

enum sim_fault_action {
	SIM_FAULT_NONE,
	SIM_FAULT_RESET,
	SIM_FAULT_FAIL,
	SIM_FAULT_DROP,
	SIM_FAULT_SLOW,
	SIM_FAULT_GARBLE,
	SIM_FAULT_HOSTILE,
};

/* What happens to one request. */
struct sim_fault_plan {
	enum sim_fault_action action;
	int64_t delay_ms; /* before the answer (or the reset / the drop) */
	/* SIM_FAULT_HOSTILE: the rule (borrowed from the configuration; valid only while
	 * the request is being handled, not once the answer waits on a timer) */
	const struct sim_hostile *hostile;
	const char *content_type; /* static; NULL: application/json */
	int status;               /* SIM_FAULT_FAIL: the status sent; 0: the faults' status */
};

/* No faults: every rate 0, status 503, retry_after 1, slow_ms 95000. Does not free
 * hostile rules: call sim_faults_free on a configuration that may hold some. */
void sim_faults_clear(struct sim_faults *f);

/* Frees the hostile rules and clears f. */
void sim_faults_free(struct sim_faults *f);

/* Mode names as in the faults document ("error_200", "cut_utf8" ...), and back. */
const char *sim_hostile_mode_name(enum sim_hostile_mode m);
bool sim_hostile_mode_parse(const char *name, enum sim_hostile_mode *out);

/* Reads a faults document, every key optional, unknown keys refused. *out starts
 * from sim_faults_clear (the document replaces the whole configuration). On
 * failure returns false with a reason in err and nothing allocated; on success the
 * caller owns *out (sim_faults_free). */
bool sim_faults_from_json(struct json_object *doc, struct sim_faults *out, char *err,
                          size_t errlen);

/* Parses "MS" or "MS:JITTER_MS" (the --latency option). */
bool sim_faults_parse_latency(const char *text, struct sim_faults *f);

/* The configuration as a document of the same shape. */
struct json_object *sim_faults_to_json(const struct sim_faults *f);

/* Draws the plan for one request: always two draws from rng, so a seed and the
 * same sequence of requests give the same faults. */
void sim_faults_plan(const struct sim_faults *f, struct sim_rng *rng, struct sim_fault_plan *plan);

/* Draws the plan for one GET /payment/status request: sim_faults_plan without a
 * "status_call" setting; with one, the same two draws decide between its fail, hang
 * and garble rates (latency and jitter as for every answer). */
void sim_faults_plan_status(const struct sim_faults *f, struct sim_rng *rng,
                            struct sim_fault_plan *plan);

/* Picks the hostile rule, if any, for a modification request to which the plan gave
 * no other action: the rules that match (transactionId, modificationId, the id's
 * request count so far including this one) stack their rates in order, and one draw
 * from rng decides. The draw is taken whenever f has rules, so the sequence of
 * faults stays reproducible; without rules nothing is drawn. */
void sim_faults_pick_hostile(const struct sim_faults *f, struct sim_rng *rng,
                             const char *transaction_id, const char *modification_id,
                             uint64_t id_requests, struct sim_fault_plan *plan);

/* Returns a malloc'd corruption of body: cut before its last byte, sometimes with
 * bytes that are invalid JSON appended. Never valid JSON for an object body. */
char *sim_faults_garble(struct sim_rng *rng, const char *body, size_t len, size_t *out_len);

#endif
