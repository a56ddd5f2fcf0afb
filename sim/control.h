/* The control API under /_sim/ (no authentication; the listener is loopback only):
 * transactions, the ledger, fault injection and the clock. */
#ifndef SIM_CONTROL_H
#define SIM_CONTROL_H

#include <event2/http.h>

#include "sim.h"

/* Handles one request whose path starts with /_sim/. */
void sim_control_handle(struct sim_ctx *ctx, struct sim_req *req, const char *path);

/* Applies a faults configuration: reseeds the fault generator with its seed, or
 * with the --seed value when it has none. Frees the previous configuration's
 * hostile rules and takes over f's (f is left cleared). */
void sim_control_set_faults(struct sim_ctx *ctx, struct sim_faults *f);

#endif
