# Set-up and measuring shared by bench/daemon-throughput and bench/compare.
# shellcheck shell=bash
#
# bench_pg_start DIR                 the durable private cluster with pg_stat_statements
#                                    (scripts/pgcluster.sh must be sourced first)
# bench_shop_orders SEED ORDERS      the simulator's preloaded transactions as shipped-to-be
#                                    orders, public.bench_shipped, pg_stat_statements
# bench_daemon_conf FILE SIM MERCHANT_KEY KEY_FILE INFLIGHT [CA_LINE]
#                                    the daemon's configuration for a run
# proc_ticks PID                     CPU clock ticks (user + system) of one process
# pg_ticks PG_MASTER                 CPU clock ticks of all of PostgreSQL

# Starts the benchmarks' durable private PostgreSQL (fsync and synchronous_commit on)
# with pg_stat_statements preloaded, in DIR.
bench_pg_start() {
	PG_EXTRA_CONF="shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.max = 1000
pg_stat_statements.track = all" pg_cluster_start "$1" durable
}

# The orders of a run (public.orders from sql/example-orders.sql exists): the
# simulator's preloaded transactions, 100.00 EUR each, ids from the seed and index;
# bench_ships records when each shipping transaction started (bench_ship_sql),
# bench_shipped each order's shipping time from it, filled after the run
# (bench_shipped_fill), so that the shop's UPDATE writes nothing per row beside the
# shop's own rows and triggers.
bench_shop_orders() {
	local seed=$1 orders=$2
	psql_q <<EOF
INSERT INTO public.orders (smartpay_transaction_id, amount, status)
SELECT format('%s-0000-4000-8000-%s', lpad(to_hex($seed), 8, '0'), lpad(to_hex(i), 12, '0')),
       100.00, 'authorized'
FROM generate_series(0, $orders - 1) AS i;
ANALYZE public.orders;
CREATE TABLE public.bench_ships (lo bigint NOT NULL, hi bigint NOT NULL, shipped_at timestamptz NOT NULL,
                                  committed_at timestamptz);
CREATE TABLE public.bench_shipped (order_id text PRIMARY KEY, shipped_at timestamptz NOT NULL);
CREATE EXTENSION pg_stat_statements;
EOF
}

# The shipping transaction of the orders with LO <= id < HI, on one line: the time
# is taken first, so the UPDATE, its triggers and its commit are inside every latency.
BENCH_SHIP_SQL="BEGIN; INSERT INTO public.bench_ships VALUES (%d, %d, clock_timestamp(), NULL); UPDATE public.orders SET status = 'shipped' WHERE id >= %d AND id < %d; COMMIT;"
bench_ship_sql() {
	# shellcheck disable=SC2059 # the format is ours
	printf "$BENCH_SHIP_SQL\n" "$1" "$2" "$1" "$2"
}

# After a run: each order's shipping time from its transaction's.
bench_shipped_fill() {
	psql_q -c "INSERT INTO public.bench_shipped SELECT g::text, b.shipped_at
	           FROM public.bench_ships b, generate_series(b.lo, b.hi - 1) AS g" >/dev/null
}

# Writes smartpayd's configuration for a run on $PG_CONNINFO to FILE.
bench_daemon_conf() {
	local file=$1 sim=$2 merchant_key=$3 key_file=$4 inflight=$5 ca_line=${6:-}
	cat >"$file" <<EOF
[database]
conninfo = $PG_CONNINFO
[smartpay]
base_url = $sim
merchant_key = $merchant_key
authentication_key_file = $key_file
origin = https://shop.example
$ca_line
[daemon]
instance_name = bench
max_inflight = $inflight
batch_size = 512
poll_interval = 10s
log_level = notice
[metrics]
listen =
EOF
}

# CPU clock ticks (user + system) one process has used.
proc_ticks() {
	sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# CPU clock ticks of all of PostgreSQL: the postmaster PG_MASTER, the children it has
# reaped (backends that exited) and every live child.
pg_ticks() {
	local pg_master=$1 own live
	own=$(sed 's/.*) //' "/proc/$pg_master/stat" | awk '{ print $12 + $13 + $14 + $15 }')
	live=$(for f in /proc/[0-9]*/stat; do cat "$f" 2>/dev/null; done |
		sed 's/.*) //' | awk -v pm="$pg_master" '$2 == pm { t += $12 + $13 } END { print t + 0 }')
	echo $((own + live))
}
