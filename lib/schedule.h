/* Which claim the engine starts next, chosen by one pure function from the engine's
 * state (no I/O): due retries and own rows first, then shop requests, then the notified
 * orders, then the scan of the orders relation; a claim waiting out a failure is
 * skipped so that the others go on; nothing while outcomes cannot be written or more
 * are held than two writes of a window and a batch each carry; one
 * probe row while the credentials breaker is open. The first claim of an idle start
 * (nothing in flight, queued or held) takes at most the in-flight window, so that the
 * first requests leave sooner. Claims run ahead of sending: up to a
 * whole in-flight window and a batch stay claimed, so that the window is refilled from
 * the queue while the next claim runs, and beyond them what the window took from the
 * queue while the last claim ran (up to another batch), so that a fast window does not
 * drain the queue before the next claim is recorded. While answers are arriving, a
 * claim waits for them to pause as long as the queue still holds a batch beyond what the
 * window took during the last claim (so with a window larger than half a batch the claims
 * fall between the rounds of answers, not among them). Beside it, how long an outcome
 * waits for others to share its write. */
#ifndef SP_SCHEDULE_H
#define SP_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The claims; the first SCHED_KINDS have their own failure backoff (the probe shares
 * the due claim's). */
enum sched_claim {
	SCHED_DUE,      /* pending rows whose next attempt is due (and own rows after a restart) */
	SCHED_REQUESTS, /* open refund / cancel_or_refund requests of the shop */
	SCHED_TARGETED, /* the orders named by notifications */
	SCHED_SCAN,     /* the whole orders relation */
	SCHED_PROBE,    /* one due row to test rejected credentials */
	SCHED_NONE,
};
#define SCHED_KINDS 4

/* "due", "requests", "targeted", "scan", "probe", "none". */
const char *sched_claim_name(enum sched_claim c);

struct sched_state {
	bool usable;           /* prepared, connected, not draining or stopped, no claim running */
	bool breaker_closed;   /* else only a probe may be claimed */
	bool probe_due;        /* the breaker's pause is over */
	bool outcomes_blocked; /* the last outcome write failed */
	size_t outcomes_held;  /* outcomes not written yet: queued, being written */
	int batch_size;
	int max_inflight; /* the in-flight window */
	size_t queued;    /* claimed rows waiting for the in-flight window */
	size_t lead;      /* rows the window took from the queue while the last claim ran */
	bool inflight;    /* requests on the wire */
	bool answering;   /* an answer came within the last sched_pause_us */
	bool want_due;    /* due rows or own rows wanted */
	bool want_requests;
	bool want_scan;
	size_t notified;           /* order ids waiting for a targeted claim */
	bool waiting[SCHED_KINDS]; /* that claim is waiting out a failure */
};

struct sched_choice {
	enum sched_claim claim;
	int room;      /* rows it may lease */
	bool deferred; /* SCHED_NONE: a claim waits for the answers to pause (ask again then) */
};

/* How long after an answer the answers count as arriving still: a tenth of the
 * gateway's recent answer time, between SCHED_PAUSE_MIN_US and SCHED_PAUSE_MAX_US. A
 * round of answers at 1,000 in flight and 500 ms comes about 20 a millisecond, in two
 * parts 20-30 ms apart when the window was filled by two claims; between two rounds
 * there are about 400 ms without answers. */
#define SCHED_PAUSE_MIN_US 2000
#define SCHED_PAUSE_MAX_US 50000
int64_t sched_pause_us(int64_t latency_avg_us);

struct sched_choice sched_next(const struct sched_state *s);

/* The recent time of the gateway's answers: avg_us (0: none yet) moved towards one more
 * answer's time (an exponentially weighted average, 1/8 per answer). */
int64_t sched_latency_avg(int64_t avg_us, int64_t sample_us);

/* How long an outcome waits for others to share its write (one statement, one commit)
 * when no write is under way and requests are in flight: the answers of one round of
 * requests arrive within a fraction of the gateway's answer time, so half its recent
 * time (the write falls between one round's answers and the next's), between
 * SCHED_FLUSH_MIN_US and SCHED_FLUSH_MAX_US. At 50 ms a tenth (5 ms) wrote each round
 * in 5-6 statements while its answers were still arriving: half took 20-30 µs less
 * PostgreSQL CPU per capture. */
#define SCHED_FLUSH_MIN_US 2000
#define SCHED_FLUSH_MAX_US 30000
int64_t sched_flush_delay_us(int64_t latency_avg_us);

/* The lead of the next claims (sched_state.lead): what the window took from the queue
 * while the last claim ran, `sent` requests; when the queue ran dry meanwhile with room
 * in the window (`starved`) it would have taken more than it did, and the lead is a
 * whole batch. Measured by what was sent alone, a claim that left the window starved
 * made the next one start later still (bench/README.md, the 0 ms burst's idle cores). */
size_t sched_lead(size_t sent, bool starved, int batch_size);

#endif
