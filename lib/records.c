#include "autoconfig.h"

#include "records.h"

#include <stdlib.h>
#include <string.h>

/* Frees a candidate array and its strings. */
void candidates_free(struct candidate *rows, size_t n)
{
	for (size_t i = 0; rows && i < n; i++) {
		free(rows[i].order_id);
		free(rows[i].status);
		free(rows[i].transaction_id);
		free(rows[i].amount);
		free(rows[i].currency);
		free(rows[i].capture_amount);
		free(rows[i].authorized_at);
		free(rows[i].expires_at);
		free(rows[i].cancel_state);
		free(rows[i].cancel_id);
	}
	free(rows);
}

/* Frees a request array and its strings. */
void shop_requests_free(struct shop_request *rows, size_t n)
{
	for (size_t i = 0; rows && i < n; i++) {
		free(rows[i].order_id);
		free(rows[i].currency);
		free(rows[i].reason);
		free(rows[i].transaction_id);
		free(rows[i].order_amount);
		free(rows[i].capture_currency);
	}
	free(rows);
}

/* Frees a change array and its strings. */
void order_changes_free(struct order_change *rows, size_t n)
{
	for (size_t i = 0; rows && i < n; i++)
		free(rows[i].order_id);
	free(rows);
}

/* Frees one claim's strings and zeroes it. */
void claim_clear(struct claim *c)
{
	free(c->modification_id);
	free(c->order_id);
	free(c->transaction_id);
	free(c->body);
	memset(c, 0, sizeof(*c));
}

/* Frees a claim array and its strings. */
void claims_free(struct claim *rows, size_t n)
{
	for (size_t i = 0; rows && i < n; i++)
		claim_clear(&rows[i]);
	free(rows);
}

/* Frees one outcome's strings and zeroes it. */
void outcome_clear(struct outcome *o)
{
	free(o->modification_id);
	free(o->reason);
	free(o->response_body);
	free(o->payment_status);
	free(o->reconciliation_reference_id);
	free(o->order_id);
	memset(o, 0, sizeof(*o));
}
