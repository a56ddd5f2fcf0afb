/* Which orders the engine is to look at, between the wake-ups that name them and the
 * targeted claims and scans that look: the order ids notified (or read from the queue
 * of changes), the queued changes read and not deleted yet, and the candidates this
 * poll's scans found blocked (a cancel behind a pending refund), which the scans look
 * past. Part of the engine (lib/engine.c tells the flow). */
#include "autoconfig.h"

#include "engine_internal.h"

#include "config.h"
#include "log.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

/* Order ids remembered from notifications before falling back to a full scan. */
#define MAX_NOTIFIED_IDS 200000
/* Candidates whose intent could not be recorded (e.g. a cancel waiting behind a pending
 * refund of its transaction) are remembered until the next poll, so that the scans look
 * past them instead of reading the same page again; at most this many. */
#define MAX_BLOCKED_IDS 8192

/* Orders C strings (qsort, bsearch). */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* True when a trigger feeds smartpay.order_changes: the queue, not notifications or
 * scans, tells which orders changed. */
bool engine_queue_mode(const struct engine *e)
{
	return store_queue_fed(e->st);
}

/* Whether the polls scan the whole orders relation: without a trigger feeding the
 * queue, for the opt-in expiry policy (its orders become due with time, not with a
 * change), and in --once runs. */
bool engine_scans_at_poll(const struct engine *e)
{
	return !engine_queue_mode(e) || e->cfg->early_statuses.count > 0 || e->once;
}

/* Remembers an order id for a targeted look at the orders relation. Notified ids are
 * kept while a scan is wanted too: a scan's page may never reach them. */
void engine_note_order(struct engine *e, const char *order_id)
{
	if (e->nids >= MAX_NOTIFIED_IDS) {
		for (size_t i = 0; i < e->nids; i++)
			free(e->ids[i]);
		e->nids = 0;
		e->wanted[SCHED_SCAN] = true;
		return;
	}
	e->ids = xgrow(e->ids, &e->cap_ids, e->nids + 1, sizeof(*e->ids));
	e->ids[e->nids++] = xstrdup(order_id);
}

/* Keeps the queued changes read (their order ids are taken) and notes their orders: one
 * look per order, however often it changed (the queue is read only once the changes read
 * before are all deleted). Frees the rows. */
void engine_changes_read(struct engine *e, struct order_change *rows, size_t n)
{
	e->changes = xgrow(e->changes, &e->cap_changes, e->nchanges + n, sizeof(*e->changes));
	char **ids = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		if (rows[i].change_id > e->changes_after)
			e->changes_after = rows[i].change_id;
		ids[i] = rows[i].order_id;
		e->changes[e->nchanges++] = rows[i];
		rows[i].order_id = NULL;
	}
	qsort(ids, n, sizeof(char *), cmp_str);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcmp(ids[i], ids[i - 1]) != 0)
			engine_note_order(e, ids[i]);
	free(ids);
	order_changes_free(rows, n);
}

/* Forgets the queued changes read (they stay in the table and are read again). */
void engine_changes_clear(struct engine *e)
{
	for (size_t i = 0; i < e->nchanges; i++)
		free(e->changes[i].order_id);
	e->nchanges = 0;
	free(e->consuming);
	e->consuming = NULL;
	e->nconsuming = 0;
}

/* Whether the next targeted claim reads the queue first: changes are wanted and those
 * read before are all deleted (or no order of theirs is left to look at). */
bool engine_reads_changes(const struct engine *e)
{
	return e->wanted[SCHED_TARGETED] && (e->nchanges == 0 || e->nids == 0);
}

/* True when this poll's scans found the order's candidate blocked. */
static bool engine_is_blocked(const struct engine *e, const char *order_id)
{
	return e->nblocked > 0 &&
	       bsearch(&order_id, e->blocked, e->nblocked, sizeof(char *), cmp_str) != NULL;
}

/* Picks the read changes whose orders the targeted claim is done with (no longer in
 * ids) as the ones the next insert deletes. */
void engine_pick_consumed(struct engine *e)
{
	free(e->consuming);
	e->consuming = xcalloc(e->nchanges ? e->nchanges : 1, sizeof(*e->consuming));
	e->nconsuming = 0;
	char **left = xcalloc(e->nids ? e->nids : 1, sizeof(char *));
	memcpy(left, e->ids, e->nids * sizeof(char *));
	qsort(left, e->nids, sizeof(char *), cmp_str);
	for (size_t i = 0; i < e->nchanges; i++) {
		const char *id = e->changes[i].order_id;
		/* a blocked order stays queued: looked at again at the next poll */
		if (!bsearch(&id, left, e->nids, sizeof(char *), cmp_str) &&
		    !engine_is_blocked(e, id))
			e->consuming[e->nconsuming++] = e->changes[i].change_id;
	}
	free(left);
}

/* The order of each change the next insert consumes, for its choice of text. */
const char **engine_consuming_orders(const struct engine *e)
{
	const char **orders = xcalloc(e->nconsuming ? e->nconsuming : 1, sizeof(char *));
	size_t i = 0;
	/* consuming was picked from changes in their order (engine_pick_consumed) */
	for (size_t k = 0; k < e->nconsuming; k++) {
		while (i < e->nchanges && e->changes[i].change_id != e->consuming[k])
			i++;
		if (i == e->nchanges)
			break;
		orders[k] = e->changes[i].order_id;
	}
	return orders;
}

/* After an insert that deleted `consuming`: those rows are gone from the queue. */
void engine_consumed(struct engine *e)
{
	size_t kept = 0, c = 0;
	for (size_t i = 0; i < e->nchanges; i++) {
		if (c < e->nconsuming && e->changes[i].change_id == e->consuming[c]) {
			c++;
			free(e->changes[i].order_id);
			continue;
		}
		e->changes[kept++] = e->changes[i];
	}
	e->nchanges = kept;
	free(e->consuming);
	e->consuming = NULL;
	e->nconsuming = 0;
}

/* Completion of a statement that only deletes queued changes. */
static void engine_on_skipped(struct claim *rows, size_t n, const char *error, void *arg)
{
	(void)arg;
	claims_free(rows, n);
	if (error)
		log_fields(LOG_LVL_WARNING, "queue_delete_failed", LOG_STR("reason", error));
}

/* Deletes the queued changes of an order no statement can read (it would hold up the
 * queue behind it). */
void engine_skip_changes(struct engine *e, const char *order_id)
{
	int64_t *ids = xcalloc(e->nchanges ? e->nchanges : 1, sizeof(*ids));
	size_t n = 0, kept = 0;
	for (size_t i = 0; i < e->nchanges; i++) {
		if (strcmp(e->changes[i].order_id, order_id) == 0) {
			ids[n++] = e->changes[i].change_id;
			free(e->changes[i].order_id);
		} else {
			e->changes[kept++] = e->changes[i];
		}
	}
	e->nchanges = kept;
	if (n > 0 &&
	    !store_insert_intents_consuming(e->st, NULL, 0, ids, NULL, n, engine_on_skipped, e))
		log_fields(LOG_LVL_WARNING, "queue_delete_failed",
		           LOG_STR("reason", "database connection lost"));
	free(ids);
}

/* After a targeted claim: a partial page means every candidate among the given ids was
 * returned, so they are all done with; a full page leaves the ids it did not return
 * for the next claim. Ids notified meanwhile stay. */
void engine_forget_ids(struct engine *e, const struct candidate *rows, size_t n)
{
	size_t given = e->targeted;
	e->targeted = 0;
	bool full = (int)n == e->claim_limit;
	char **returned = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		returned[i] = rows[i].order_id;
	qsort(returned, n, sizeof(char *), cmp_str);
	size_t kept = 0;
	for (size_t i = 0; i < e->nids; i++) {
		bool keep = i >= given ||
		            (full && !bsearch(&e->ids[i], returned, n, sizeof(char *), cmp_str));
		if (keep)
			e->ids[kept++] = e->ids[i];
		else
			free(e->ids[i]);
	}
	e->nids = kept;
	free(returned);
}

/* How many candidates a scan reads: the room, and beyond it twice the blocked ones it
 * looks past, so that a poll finds what can move in a few statements however many
 * candidates wait behind something. */
int engine_scan_limit(const struct engine *e, int room)
{
	return room + 2 * (int)e->nblocked;
}

/* Forgets the blocked candidates (at each poll: they are looked at again). */
void engine_blocked_clear(struct engine *e)
{
	for (size_t i = 0; i < e->nblocked; i++)
		free(e->blocked[i]);
	e->nblocked = 0;
}

/* Moves the blocked candidates of a scan's page behind the others (in page order);
 * returns how many are not blocked. */
size_t engine_drop_blocked(struct engine *e, struct candidate *rows, size_t n)
{
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (engine_is_blocked(e, rows[i].order_id))
			continue;
		if (i != kept) {
			struct candidate t = rows[kept];
			rows[kept] = rows[i];
			rows[i] = t;
		}
		kept++;
	}
	return kept;
}

/* After a scan's insert: the submitted candidates that were not recorded wait behind
 * something (or another daemon took them); the scans of this poll look past them.
 * Returns how many were added. */
size_t engine_note_blocked(struct engine *e, const struct claim *rows, size_t n)
{
	char **recorded = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		recorded[i] = rows[i].order_id;
	qsort(recorded, n, sizeof(char *), cmp_str);
	/* the ids of one page are distinct (one status, one branch of the candidate query) */
	size_t old = e->nblocked;
	for (size_t i = 0; i < e->nscan_sent && e->nblocked < MAX_BLOCKED_IDS; i++) {
		const char *id = e->scan_sent[i];
		if (bsearch(&id, recorded, n, sizeof(char *), cmp_str) ||
		    (old > 0 && bsearch(&id, e->blocked, old, sizeof(char *), cmp_str)))
			continue;
		e->blocked =
		    xgrow(e->blocked, &e->cap_blocked, e->nblocked + 1, sizeof(*e->blocked));
		e->blocked[e->nblocked++] = e->scan_sent[i];
		e->scan_sent[i] = NULL;
	}
	if (e->nblocked > old)
		qsort(e->blocked, e->nblocked, sizeof(char *), cmp_str);
	free(recorded);
	return e->nblocked - old;
}

/* Frees the order ids the running scan submitted. */
void engine_scan_sent_clear(struct engine *e)
{
	for (size_t i = 0; i < e->nscan_sent; i++)
		free(e->scan_sent[i]);
	free(e->scan_sent);
	e->scan_sent = NULL;
	e->nscan_sent = 0;
	e->claim_refused = 0;
}

/* Frees the order ids, the queued changes read and the blocked candidates. */
void engine_orders_free(struct engine *e)
{
	engine_blocked_clear(e);
	free(e->blocked);
	engine_scan_sent_clear(e);
	for (size_t i = 0; i < e->nids; i++)
		free(e->ids[i]);
	free(e->ids);
	engine_changes_clear(e);
	free(e->changes);
}
