/* The clocks in milliseconds: the one place that reads them (wall-clock time for what is
 * stored or compared with the gateway's times, the monotonic clock for spacing, leases and
 * elapsed times). */
#ifndef SP_CLOCK_H
#define SP_CLOCK_H

#include <stdint.h>

/* Wall-clock time in unix milliseconds (CLOCK_REALTIME). */
int64_t clock_real_ms(void);

/* The monotonic clock in milliseconds (CLOCK_MONOTONIC): unaffected by clock changes. */
int64_t clock_mono_ms(void);

/* The monotonic clock in microseconds: elapsed times of transfers, systemd's
 * MONOTONIC_USEC. */
int64_t clock_mono_us(void);

#endif
