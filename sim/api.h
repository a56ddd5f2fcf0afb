/* The SmartPay API of the simulator: /payment/capture, /payment/cancel,
 * /payment/cancelOrRefund, /payment/refund and GET /payment/status/{id}. */
#ifndef SIM_API_H
#define SIM_API_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/http.h>

#include "sim.h"

/* Handles one request whose path starts with /payment/. */
void sim_api_handle(struct sim_ctx *ctx, struct sim_req *req, const char *path);

/* Checks an Authorization header value against merchant_key:auth_key (HTTP Basic). */
bool sim_api_check_basic(const char *header, const char *merchant_key, const char *auth_key);

#endif
