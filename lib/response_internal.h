/* lib/response.c's two readings of an answer, for the tests that compare them. */
#ifndef SP_RESPONSE_INTERNAL_H
#define SP_RESPONSE_INTERNAL_H

#include "response.h"

/* response_parse with json-c's tree alone: every body json-c's lenient parser takes. */
bool response_parse_tree(const char *body, size_t len, const char *modification_id,
                         struct gw_response *out) __attribute__((warn_unused_result));

/* response_parse with the scan alone (lib/json_scan.h): true, with *out as
 * response_parse_tree gives it, when the body is in the scan's strict subset; false,
 * with *out empty, when only the tree can read it (the body may still be a valid
 * answer). */
bool response_parse_scan(const char *body, size_t len, const char *modification_id,
                         struct gw_response *out) __attribute__((warn_unused_result));

#endif
