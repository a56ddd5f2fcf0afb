#include "autoconfig.h"

#include "breaker.h"

bool breaker_rejected(struct breaker *b, unsigned epoch, int64_t now_ms, int64_t max_pause_ms)
{
	if (epoch != b->epoch)
		return false;
	bool first = b->state == BREAKER_CLOSED && b->pause_ms == 0;
	if (b->pause_ms == 0)
		b->pause_ms = BREAKER_FIRST_PAUSE_MS;
	else if (b->state == BREAKER_PROBING)
		b->pause_ms = b->pause_ms * 2 > max_pause_ms ? max_pause_ms : b->pause_ms * 2;
	b->state = BREAKER_OPEN;
	b->until_ms = now_ms + b->pause_ms;
	return first;
}

bool breaker_accepted(struct breaker *b, unsigned epoch)
{
	if (epoch != b->epoch || b->state == BREAKER_CLOSED)
		return false;
	b->state = BREAKER_CLOSED;
	b->until_ms = 0;
	b->pause_ms = 0;
	return true;
}

bool breaker_may_send(const struct breaker *b)
{
	return b->state != BREAKER_OPEN;
}

bool breaker_probe_due(const struct breaker *b, int64_t now_ms)
{
	return b->state == BREAKER_OPEN && now_ms >= b->until_ms;
}

void breaker_probe_claimed(struct breaker *b)
{
	b->state = BREAKER_PROBING;
}

void breaker_probe_unsent(struct breaker *b, int64_t now_ms, bool none_left)
{
	if (b->state != BREAKER_PROBING)
		return;
	if (none_left) {
		b->state = BREAKER_CLOSED;
		b->until_ms = 0;
		return;
	}
	b->state = BREAKER_OPEN;
	b->until_ms = now_ms;
}

void breaker_probe_failed(struct breaker *b, int64_t now_ms)
{
	if (b->state != BREAKER_PROBING)
		return;
	b->state = BREAKER_OPEN;
	b->until_ms = now_ms + b->pause_ms;
}

void breaker_reload(struct breaker *b, int64_t now_ms)
{
	b->epoch++;
	if (b->state == BREAKER_CLOSED)
		return;
	b->state = BREAKER_OPEN;
	b->until_ms = now_ms;
	b->pause_ms = 0;
}

int64_t breaker_wake_at(const struct breaker *b)
{
	return b->state == BREAKER_OPEN ? b->until_ms : 0;
}
