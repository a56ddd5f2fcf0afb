/* Helpers shared by the operations tests (metrics, sd_notify, least privilege, secrets):
 * one-shot HTTP requests, editing the generated daemon configuration (the generic
 * helpers, files, ports and time, are in testutil.h). */
#ifndef SP_OPSTEST_H
#define SP_OPSTEST_H

#include <stdbool.h>

struct daemonproc;

/* Sends one request (method GET, HEAD or POST with an empty body) and returns the HTTP
 * status, or 0 when no answer arrived within timeout_ms. *body (may be NULL) receives
 * the malloc'd answer body. */
long opstest_http(const char *method, const char *url, long timeout_ms, char **body);

/* Replaces the first occurrence of `from` in the daemon's configuration file by `to`,
 * failing the test when it is absent. */
void opstest_conf_replace(const struct daemonproc *d, const char *from, const char *to);

/* Polls url until it answers `want` (status) or timeout_ms passes; returns the last
 * status seen. */
long opstest_wait_status(const char *url, long want, long timeout_ms);

#endif
