#!/usr/bin/env node
// The obvious alternative to smartpayd, as a shop team would write it with `pg` and
// `undici`: captures the shop's shipped orders with a write-ahead ledger of its own.
// Used by bench/compare to measure smartpayd against it; not part of the product.
//
//   node peer.js --base-url URL --merchant-key KEY --authentication-key-file FILE
//                [--origin URL] [--max-inflight 64] [--batch-size 512] [--poll-ms 50]
//                [--user-agent TEXT] [--setup [--shop-index]]
//
// PostgreSQL is reached through the PG* environment variables (PGHOST, PGPORT, PGUSER,
// PGDATABASE). --setup creates the schema `peer` (table peer.captures with three
// indexes) and exits; with --shop-index it also indexes the shop's shipped orders
// (public.orders (id) WHERE status = 'shipped') for the claim.
//
// The job, per order whose status is 'shipped' and that has no live capture yet:
//  1. claim: a batch of candidates, keyset-paged on the order id; each gets a fresh
//     UUID and its exact request body, inserted in one statement (json_to_recordset,
//     ON CONFLICT DO NOTHING on the one-live-capture-per-order index) and committed
//     before any byte is sent; only the rows actually inserted are sent;
//  2. send: POST /payment/capture over a keep-alive pool, at most max_inflight
//     requests in flight;
//  3. record: the answers are written in batches (one UPDATE from json_to_recordset
//     while the next batch gathers): state, HTTP status, payment status and the full
//     answer; a 5xx, a transient 4xx or a transport error keeps the row pending and
//     the same bytes are sent again after a back-off. Rows left pending by an earlier
//     run are sent again from the start, each when due (the pending/due index).
'use strict';

const fs = require('node:fs');
const crypto = require('node:crypto');
const { Pool: HttpPool } = require('undici');
const pg = require('pg');

const SCHEMA = `
CREATE SCHEMA IF NOT EXISTS peer;
CREATE TABLE IF NOT EXISTS peer.captures (
    id              uuid PRIMARY KEY,
    order_id        bigint NOT NULL,
    transaction_id  text NOT NULL,
    request_body    text NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'succeeded', 'refused', 'dismissed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    http_status     integer,
    payment_status  text,
    response_body   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz
);
-- a refused capture still holds its order until an operator sets it 'dismissed'
CREATE UNIQUE INDEX IF NOT EXISTS captures_one_live
    ON peer.captures (order_id) WHERE state <> 'dismissed';
CREATE INDEX IF NOT EXISTS captures_due
    ON peer.captures (next_attempt_at) WHERE state = 'pending';
`;

// Optional (--setup --shop-index): an index of the shop's shipped orders for the
// claim's keyset scan, on the shop's relation.
const SHOP_INDEX = `CREATE INDEX IF NOT EXISTS orders_shipped_peer
    ON public.orders (id) WHERE status = 'shipped'`;

const CANDIDATES = {
  name: 'peer_candidates',
  text: `SELECT o.id, o.smartpay_transaction_id AS tx, o.amount::text AS amount,
                o.currency, o.capture_amount::text AS capture_amount
         FROM public.orders o
         WHERE o.status = 'shipped' AND o.id > $1
           AND NOT EXISTS (SELECT 1 FROM peer.captures c
                           WHERE c.order_id = o.id AND c.state <> 'dismissed')
         ORDER BY o.id LIMIT $2`,
};
const INSERT_INTENTS = {
  name: 'peer_insert_intents',
  text: `INSERT INTO peer.captures (id, order_id, transaction_id, request_body)
         SELECT r.id, r.order_id, r.transaction_id, r.request_body
         FROM json_to_recordset($1::json)
              AS r(id uuid, order_id bigint, transaction_id text, request_body text)
         ON CONFLICT DO NOTHING
         RETURNING id`,
};
const WRITE_OUTCOMES = {
  name: 'peer_write_outcomes',
  text: `UPDATE peer.captures c
         SET state = u.state, attempts = c.attempts + 1, http_status = u.http_status,
             payment_status = u.payment_status, response_body = u.response_body,
             next_attempt_at = now() + u.retry_ms * interval '1 ms',
             completed_at = CASE WHEN u.state = 'pending' THEN NULL ELSE now() END
         FROM json_to_recordset($1::json)
              AS u(id uuid, state text, http_status integer, payment_status text,
                   response_body text, retry_ms integer)
         WHERE c.id = u.id AND c.state = 'pending'`,
};
const PENDING = {
  name: 'peer_pending',
  text: `SELECT id, request_body, attempts,
                greatest(0, extract(epoch FROM next_attempt_at - now()) * 1000)::integer AS wait_ms
         FROM peer.captures WHERE state = 'pending' ORDER BY next_attempt_at`,
};

// Reads --name value pairs (and bare --flags) into an object.
function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out[key] = argv[++i];
    else out[key] = true;
  }
  return out;
}

// The capture body, as smartpayd writes it: a full capture leaves modifiedAmount out.
function captureBody(order, merchantKey, modificationId) {
  const head = { transactionId: order.tx, merchantKey, modificationId };
  const partial = order.capture_amount !== null && order.capture_amount !== order.amount;
  if (!partial) return JSON.stringify(head);
  // the amount goes out as the decimal text PostgreSQL gave, never through a double
  const json = JSON.stringify(head).slice(0, -1);
  return `${json},"modifiedAmount":{"amount":${order.capture_amount},` +
    `"currencyCode":${JSON.stringify(order.currency)}}}`;
}

// What an answer means: succeeded, refused, or pending (send the same bytes again).
function classify(status, text, modificationId) {
  if (status >= 200 && status <= 299) {
    let doc = null;
    try { doc = JSON.parse(text); } catch { /* kept as it came, below */ }
    const mods = doc && (doc.modifications || (doc.modification ? [doc.modification] : []));
    const mine = Array.isArray(mods) &&
      mods.some((m) => m && m.modificationData && m.modificationData.modificationId === modificationId);
    if (doc && mine) return { state: 'succeeded', paymentStatus: doc.paymentStatus ?? null };
    return { state: 'pending', paymentStatus: doc ? doc.paymentStatus ?? null : null };
  }
  const transient = status >= 500 || [401, 407, 408, 409, 421, 425, 429].includes(status);
  return { state: transient ? 'pending' : 'refused', paymentStatus: null };
}

// The service: one claiming connection, one writing connection, one HTTP pool.
class Peer {
  constructor(opt) {
    this.opt = opt;
    const auth = Buffer.from(`${opt.merchantKey}:${opt.authKey}`).toString('base64');
    this.headers = {
      'content-type': 'application/json',
      'accept-language': 'en-US',
      'user-agent': opt.userAgent,
      authorization: `Basic ${auth}`,
    };
    if (opt.origin) this.headers.origin = opt.origin;
    const url = new URL(opt.baseUrl);
    this.path = url.pathname.replace(/\/$/, '') + '/payment/capture';
    this.http = new HttpPool(url.origin, {
      connections: opt.maxInflight, pipelining: 1,
      keepAliveTimeout: 60e3, headersTimeout: 90e3, bodyTimeout: 90e3,
    });
    this.claimDb = new pg.Client();
    this.writeDb = new pg.Client();
    this.queue = [];          // intents committed, not yet sent: {id, body, attempts}
    this.inflight = 0;
    this.outcomes = [];       // answers not yet written
    this.writing = null;      // the running outcome write
    this.cursor = 0;          // keyset position of the claim
    this.stopping = false;
    this.wake = null;         // resolves the claim loop's wait
    this.loop = null;         // the claim loop's promise
  }

  // Connects both sessions (synchronous_commit on, as smartpayd's).
  async connect() {
    for (const db of [this.claimDb, this.writeDb]) {
      await db.connect();
      await db.query("SET synchronous_commit = on; SET application_name = 'node-peer'");
    }
  }

  // Sends again what an earlier run left pending (the same bytes), each when due.
  async resume() {
    const { rows } = await this.claimDb.query(PENDING);
    for (const r of rows) {
      const item = { id: r.id, body: r.request_body, attempts: r.attempts };
      if (r.wait_ms === 0) this.queue.push(item);
      else setTimeout(() => { this.queue.push(item); this.pump(); }, r.wait_ms);
    }
    this.pump();
  }

  // Claims one batch: candidates, then their intents committed in one INSERT.
  async claimOnce(limit) {
    const { rows } = await this.claimDb.query({ ...CANDIDATES, values: [this.cursor, limit] });
    if (rows.length === 0) {
      this.cursor = 0;        // next time from the start: orders shipped out of id order
      return 0;
    }
    this.cursor = Number(rows[rows.length - 1].id);
    const intents = rows.map((o) => {
      const id = crypto.randomUUID();
      return { id, order_id: o.id, transaction_id: o.tx, request_body: captureBody(o, this.opt.merchantKey, id) };
    });
    const res = await this.claimDb.query({ ...INSERT_INTENTS, values: [JSON.stringify(intents)] });
    const inserted = new Set(res.rows.map((r) => r.id));
    for (const it of intents) {
      if (inserted.has(it.id)) this.queue.push({ id: it.id, body: it.request_body, attempts: 0 });
    }
    this.pump();
    return rows.length;
  }

  // The claim loop: keeps up to a batch queued ahead of the window and claims again
  // once half of it has gone out; polls every poll-ms while nothing new is shipped.
  async claimLoop() {
    while (!this.stopping) {
      const room = this.opt.maxInflight + this.opt.batchSize - this.queue.length - this.inflight;
      const full = room < this.opt.batchSize / 2;
      const got = full ? 0 : await this.claimOnce(Math.min(room, this.opt.batchSize));
      if (got === 0) {
        await new Promise((resolve) => {
          this.wake = full ? resolve : null;   // answers wake only a wait for room
          setTimeout(resolve, full ? 1000 : this.opt.pollMs);
        });
        this.wake = null;
      }
    }
  }

  // Starts requests from the queue while the window has room.
  pump() {
    while (this.inflight < this.opt.maxInflight && this.queue.length > 0) {
      this.send(this.queue.shift());
    }
  }

  // One capture request; its answer goes to the outcome batch.
  async send(item) {
    this.inflight++;
    let status = 0;
    let text = null;
    try {
      const res = await this.http.request({ path: this.path, method: 'POST', headers: this.headers, body: item.body });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      text = null;            // transport error: no answer, send again
    }
    this.inflight--;
    const c = status === 0 ? { state: 'pending', paymentStatus: null } : classify(status, text, item.id);
    item.attempts++;
    const retryMs = c.state === 'pending' ? Math.min(60e3, 250 * 2 ** Math.min(item.attempts, 8)) : 0;
    this.outcomes.push({
      id: item.id, state: c.state, http_status: status || null,
      payment_status: c.paymentStatus, response_body: text, retry_ms: retryMs,
    });
    if (c.state === 'pending' && !this.stopping) {
      setTimeout(() => { this.queue.push(item); this.pump(); }, retryMs);
    }
    this.flush();
    this.pump();
    if (this.wake && this.queue.length < this.opt.batchSize / 2) this.wake();
  }

  // Writes the gathered answers in one statement; the next batch gathers meanwhile.
  flush() {
    if (this.writing || this.outcomes.length === 0) return this.writing;
    const batch = this.outcomes;
    this.outcomes = [];
    this.writing = this.writeDb.query({ ...WRITE_OUTCOMES, values: [JSON.stringify(batch)] })
      .catch((err) => {
        console.error(`node-peer: outcome write failed: ${err.message}`);
        this.outcomes.unshift(...batch);
        return new Promise((resolve) => setTimeout(resolve, 1000));   // then again
      })
      .finally(() => {
        this.writing = null;
        this.flush();
      });
    return this.writing;
  }

  // Stops claiming, waits for the requests in flight and writes every answer.
  async stop() {
    this.stopping = true;
    if (this.wake) this.wake();
    await this.loop;
    while (this.inflight > 0 || this.writing || this.outcomes.length > 0) {
      await (this.writing || this.flush() || new Promise((r) => setTimeout(r, 10)));
    }
    await this.http.close();
    await Promise.all([this.claimDb.end(), this.writeDb.end()]);
  }
}

// Reads the options, sets up or runs the service until SIGTERM or SIGINT.
async function main() {
  const a = parseArgs(process.argv.slice(2));
  if (a.setup) {
    const db = new pg.Client();
    await db.connect();
    await db.query(SCHEMA);
    if (a['shop-index']) await db.query(SHOP_INDEX);
    await db.end();
    return;
  }
  for (const k of ['base-url', 'merchant-key', 'authentication-key-file']) {
    if (typeof a[k] !== 'string') throw new Error(`--${k} is required`);
  }
  const peer = new Peer({
    baseUrl: a['base-url'],
    merchantKey: a['merchant-key'],
    authKey: fs.readFileSync(a['authentication-key-file'], 'utf8').trim(),
    origin: typeof a.origin === 'string' ? a.origin : null,
    userAgent: typeof a['user-agent'] === 'string' ? a['user-agent'] : 'node-peer/1.0',
    maxInflight: Number(a['max-inflight'] ?? 64),
    batchSize: Number(a['batch-size'] ?? 512),
    pollMs: Number(a['poll-ms'] ?? 50),
  });
  await peer.connect();
  await peer.resume();
  peer.loop = peer.claimLoop().catch((err) => {
    console.error(`node-peer: claim failed: ${err.message}`);
    process.exit(1);
  });
  const stop = () => { peer.stop().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); }); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error(`node-peer: ${err.message}`);
  process.exit(1);
});
