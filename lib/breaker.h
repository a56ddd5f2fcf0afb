/* The circuit breaker for rejected credentials (design.md, "credentials rejected"): when
 * SmartPay answers 401 nobody's request can succeed, so sending pauses for everyone and
 * one probe row tests the credentials after the pause. Pure: no I/O, the caller passes
 * the time. */
#ifndef SP_BREAKER_H
#define SP_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

/* The first pause after a rejection; doubled per rejected probe up to the cap. */
#define BREAKER_FIRST_PAUSE_MS 30000

enum breaker_state {
	BREAKER_CLOSED,  /* sending as usual */
	BREAKER_OPEN,    /* paused until until_ms, then one probe may be claimed */
	BREAKER_PROBING, /* the probe is being claimed or is on the wire */
};

struct breaker {
	enum breaker_state state;
	int64_t until_ms; /* BREAKER_OPEN: when the next probe may be claimed */
	int64_t pause_ms; /* the current pause, 0 before the first rejection */
	unsigned epoch;   /* credentials generation: bumped by every reload */
};

/* A 401 for a request sent with the credentials of `epoch`: opens (or keeps open) the
 * breaker. Answers sent with older credentials are ignored. Returns true when this
 * starts a new episode (the one alert). */
bool breaker_rejected(struct breaker *b, unsigned epoch, int64_t now_ms, int64_t max_pause_ms);

/* Any answer that is not a credentials rejection, for a request sent with the current
 * credentials: closes the breaker. Returns true when it was not closed. */
bool breaker_accepted(struct breaker *b, unsigned epoch);

/* True when requests may be sent: closed, or the probe is under way. */
bool breaker_may_send(const struct breaker *b);

/* True when the pause is over and one probe row should be claimed now. */
bool breaker_probe_due(const struct breaker *b, int64_t now_ms);

/* The probe row is being claimed. */
void breaker_probe_claimed(struct breaker *b);

/* The probe never reached the wire (nothing could be claimed, the claim failed, or the
 * row claimed was given up locally, e.g. a capture past its deadline): another probe may
 * be claimed at once; with `none_left` nothing is pending and the breaker closes, so that
 * the next real request tests the credentials. */
void breaker_probe_unsent(struct breaker *b, int64_t now_ms, bool none_left);

/* The probe went out but no HTTP answer came (timeout, connection error): that says
 * nothing about the credentials; another probe after the same pause. */
void breaker_probe_failed(struct breaker *b, int64_t now_ms);

/* New credentials (SIGHUP): a probe at once, the next rejection starts from the first
 * pause again, and answers to requests sent before are not held against the new ones. */
void breaker_reload(struct breaker *b, int64_t now_ms);

/* When the timer should look again (BREAKER_OPEN), else 0. */
int64_t breaker_wake_at(const struct breaker *b);

#endif
