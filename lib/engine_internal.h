/* What the parts of the engine share: struct engine, and the functions one file of it
 * calls in another. lib/engine.c is the flow of a modification, top to bottom;
 * lib/engine_orders.c keeps which orders are to be looked at (notified ids, the queue
 * of changes, blocked candidates); lib/engine_settle.c settles unknown outcomes from
 * the transaction's status history; lib/engine_record.c writes the outcomes. Internal:
 * nothing outside lib/engine*.c includes it. */
#ifndef SP_ENGINE_INTERNAL_H
#define SP_ENGINE_INTERNAL_H

#include "engine.h"

#include "breaker.h"
#include "log.h"
#include "modification.h"
#include "outcome.h"
#include "schedule.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The oldest this many notified orders compete by deadline in one targeted claim: exact
 * deadline order for any backlog up to that size, a bounded query beyond it (the poll's
 * full scan orders every candidate). */
#define TARGETED_MAX_IDS 2048

/* The failures in a row of one kind of claim. */
struct claim_failures {
	int count;
	int64_t backoff_ms;
	int64_t retry_at_ms; /* 0: may run */
	int64_t since_ms;    /* the first failure of the episode */
	bool alerted;
};

/* An outcome written on its own after its batch was refused. */
struct solo_outcome {
	struct outcome o;
	bool sanitised; /* the gateway's text is already dropped */
};

/* One modification on the wire, or waiting for its transaction's status to settle an
 * unknown outcome. */
struct flight {
	struct engine *e;
	struct claim claim; /* owned */
	unsigned epoch;     /* the credentials it was sent with (breaker.h) */
	bool probe;         /* the breaker's probe */
	/* while settling: the outcome of the unknown answer, kept unless the status history
	 * decides otherwise, and what the answer was */
	struct outcome held;
	enum outcome_result held_result;
	int http_status;
	int64_t elapsed_us;
	struct flight *prev, *next; /* in engine.settling */
};

/* Log fields shared by every line about one modification. */
#define FLIGHT_IDS(c)                                                                              \
	LOG_STR("modification_id", (c)->modification_id), LOG_STR("order_id", (c)->order_id),      \
	    LOG_STR("transaction_id", (c)->transaction_id),                                        \
	    LOG_STR("kind", mod_kind_name((c)->kind))

/* One engine: its connections, the scheduling state, and the rows between their claim
 * and their recorded outcome. */
struct engine {
	struct event_base *base;
	const struct sp_config *cfg;
	char *secret;
	bool once;
	struct engine_hooks hooks;
	struct engine_listener listener; /* the alerts module; zeroed when none */

	struct pg_conn *pc;
	struct store *st;
	/* outcomes are written on a connection of their own, so that a claim never waits
	 * behind an outcome write nor an outcome write behind a claim */
	struct pg_conn *wpc;
	struct store *wst;
	struct http_client *http;
	struct status_client *status; /* NULL: unknown outcomes are not settled from status */
	struct flight *settling;      /* flights waiting for their status call */
	size_t nsettling;

	/* the scheduling state (lib/schedule.h): what the next claims should look at, by
	 * enum sched_claim: [SCHED_DUE] pending rows whose time has come, [SCHED_REQUESTS]
	 * the shop's open refund / cancel_or_refund requests, [SCHED_TARGETED] the queue of
	 * changes (the orders to look at are in ids), [SCHED_SCAN] the whole orders
	 * relation; and the one claim cycle under way */
	bool wanted[SCHED_KINDS];
	bool own_wanted; /* with the due rows: this instance's rows from before a restart */
	/* a shop request may be open: the last requests query found one (or one open behind
	 * a modification in flight), or one was notified or a poll came since; when false a
	 * finished modification does not ask for the requests query */
	bool requests_open;
	enum sched_claim running; /* SCHED_NONE: no claim cycle under way */
	char **ids;               /* order ids to look at: from the queue (and, when no trigger
	                           * feeds it, from notifications and finished modifications) */
	size_t nids, cap_ids;
	/* smartpay.order_changes: rows read and not deleted yet (their orders are in ids
	 * until a targeted claim is done with them), and those the running insert deletes */
	int64_t changes_after; /* read up to there in this poll (blocked ones stay queued) */
	struct order_change *changes;
	size_t nchanges, cap_changes;
	int64_t *consuming;
	size_t nconsuming;
	/* claimed rows waiting for room in the in-flight window, oldest first */
	struct claim *queue;
	size_t qhead, qlen, qcap;
	bool claim_own; /* the running due claim included own rows */
	struct claim_failures claim_failed[SCHED_KINDS];
	bool preparing; /* store_prepare under way */
	/* the cycle looks past blocked candidates: a scan, or a targeted claim of queued
	 * changes (whose blocked orders stay queued for the next poll) */
	bool looking_past;
	size_t targeted;     /* ids[0..targeted) were given to the running targeted claim */
	size_t targeted_max; /* ids given at most: halved while a targeted query fails */
	int claim_limit;     /* rows asked for by the running cycle */
	int claim_room;      /* rows the running cycle may lease */
	/* requests sent when the running cycle began, and how many the window took from the
	 * queue while the last cycle that leased rows ran (the scheduler's lead) */
	uint64_t claim_sent_from;
	size_t claim_lead;
	/* when the last answer came (clock_mono_us; 0: none yet), and the pump again once
	 * the answers pause, for a claim that waits for that (sched_choice.deferred) */
	int64_t last_answer_us;
	struct event *ev_pause;
	/* the window had room and nothing was queued while the running cycle ran: it
	 * would have taken more than it did, and the lead is taken as a whole batch */
	bool claim_starved;
	bool prepared;
	/* the scans of this poll: blocked candidates (sorted), and what the running scan
	 * submitted for sending */
	char **blocked;
	size_t nblocked, cap_blocked;
	char **scan_sent; /* order ids of the sendable intents of the running scan */
	size_t nscan_sent;
	size_t claim_refused; /* local refusals the running cycle records */
	bool claim_full;      /* its page of candidates or requests came back full */

	/* outcomes waiting to be written, and the batch being written */
	struct outcome *out;
	size_t nout, cap_out;
	struct outcome *writing;
	size_t nwriting;
	struct solo_outcome *solo; /* from refused batches, written one by one, first */
	size_t nsolo, cap_solo;
	bool writing_solo;      /* the running write is solo[0] taken out */
	bool writing_sanitised; /* ... and its text was already dropped */
	bool out_blocked;       /* the last write failed: claiming waits for one to pass */

	struct event *ev_kick;  /* deferred pump */
	struct event *ev_flush; /* the outcome write after sched_flush_delay_us */
	struct event *ev_timer; /* next poll, retry or breaker probe */
	struct event *ev_drain; /* drain deadline */
	int64_t next_poll_ms;
	int64_t next_retry_ms; /* 0: none scheduled */

	int64_t latency_avg_us; /* the gateway's recent answer time (sched_latency_avg) */

	struct breaker br;
	unsigned probes_on_wire; /* probes with the current credentials not answered yet */

	bool draining;
	bool gave_up; /* --once: credentials rejected, nothing more is sent */
	bool exited;
	unsigned left_undone; /* --once: attempted rows left pending or unwritten */
	char *problem;
	struct engine_stats stats;
};

/* ---- lib/engine.c ---- */

/* Asks for a pump (the next claim) on the next loop iteration, coalescing requests. */
void engine_kick(struct engine *e);
/* The retry policy of the configuration, as lib/outcome.c takes it. */
struct outcome_policy engine_outcome_policy(const struct engine *e);
/* Counts, logs and records the outcome of one attempt; frees the flight. */
void engine_conclude(struct engine *e, struct flight *f, enum outcome_result r, struct outcome *op);
/* Completion of an alert the engine raises itself (claim_failed, outcome_unstorable). */
void engine_alert_done(size_t affected, const char *error, void *arg);

/* ---- lib/engine_orders.c: which orders are to be looked at ---- */

/* True when a trigger feeds smartpay.order_changes: the queue, not notifications or
 * scans, tells which orders changed. */
bool engine_queue_mode(const struct engine *e);
/* Whether the polls scan the whole orders relation. */
bool engine_scans_at_poll(const struct engine *e);
/* Remembers an order id for a targeted look at the orders relation. */
void engine_note_order(struct engine *e, const char *order_id);
/* Keeps the queued changes read and notes their orders, once each. Takes the rows. */
void engine_changes_read(struct engine *e, struct order_change *rows, size_t n);
/* Forgets the queued changes read (they stay in the table and are read again). */
void engine_changes_clear(struct engine *e);
/* Whether the next targeted claim reads the queue first. */
bool engine_reads_changes(const struct engine *e);
/* Picks the read changes the targeted claim is done with as the ones the next insert
 * deletes. */
void engine_pick_consumed(struct engine *e);
/* The order of each change in consuming (pointers into changes; NULL where one is not
 * found), for the intent insert; the array is the caller's to free. */
const char **engine_consuming_orders(const struct engine *e);
/* After an insert that deleted `consuming`: those rows are gone from the queue. */
void engine_consumed(struct engine *e);
/* Deletes the queued changes of an order no statement can read. */
void engine_skip_changes(struct engine *e, const char *order_id);
/* How many candidates a scan reads for `room` rows to lease. */
int engine_scan_limit(const struct engine *e, int room);
/* After a targeted claim: forgets the ids it is done with. */
void engine_forget_ids(struct engine *e, const struct candidate *rows, size_t n);
/* Forgets the blocked candidates (at each poll: they are looked at again). */
void engine_blocked_clear(struct engine *e);
/* Moves the blocked candidates of a page behind the others; returns how many are not
 * blocked. */
size_t engine_drop_blocked(struct engine *e, struct candidate *rows, size_t n);
/* After a scan's insert: notes the submitted candidates that were not recorded as
 * blocked; returns how many were added. */
size_t engine_note_blocked(struct engine *e, const struct claim *rows, size_t n);
/* Frees the order ids the running scan submitted. */
void engine_scan_sent_clear(struct engine *e);
/* Frees all of the above (engine_free). */
void engine_orders_free(struct engine *e);

/* ---- lib/engine_settle.c: unknown outcomes settled from the status history ---- */

/* Whether an unknown outcome is to be settled from the transaction's status first. */
bool engine_wants_status(const struct engine *e, const struct claim *c, enum outcome_result r);
/* Holds a flight's unknown outcome (taking o's strings) and asks for its transaction's
 * status; engine_conclude follows with the answer. */
void engine_ask_status(struct engine *e, struct flight *f, enum outcome_result r,
                       struct outcome *o);
/* Drops the flights waiting for a status call. */
void engine_drop_settling(struct engine *e);

/* ---- lib/engine_record.c: the outcome write ---- */

/* Outcomes held in memory: queued, being written, or waiting to be written alone. */
size_t engine_outcomes_held(const struct engine *e);
/* Queues an outcome for the next batched write. Takes ownership of its strings. */
void engine_record(struct engine *e, struct outcome *o);
/* Writes the queued outcomes when no write is under way. */
void engine_flush(struct engine *e);
/* The flush delay is over (ev_flush). */
void engine_flush_cb(evutil_socket_t fd, short what, void *arg);
/* Frees the outcomes held (engine_free). */
void engine_outcomes_free(struct engine *e);

#endif
