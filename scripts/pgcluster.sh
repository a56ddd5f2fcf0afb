# A private throwaway PostgreSQL cluster for scripts/demo and bench/.
# shellcheck shell=bash
#
# pg_cluster_start DIR [durable]   initdb + start on a unix socket in DIR and a free
#                                  127.0.0.1 port; sets PG_CONNINFO and PG_PORT;
#                                  PG_EXTRA_CONF (lines) is appended to postgresql.conf
# pg_cluster_stop DIR              fast stop (called from the caller's trap)
# psql_q [ARGS]                    psql on $PG_CONNINFO, quiet, stop on error, unaligned

PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}

# Runs a command as the cluster's owner: `postgres` when we are root, else ourselves.
pg_as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		local user=postgres
		id -u postgres >/dev/null 2>&1 || user=nobody
		runuser -u "$user" -- "$@"
	else
		"$@"
	fi
}

# Prints a TCP port on 127.0.0.1 that is free right now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + RANDOM % 20000))
}

pg_cluster_start() {
	local dir=$1 durable=${2:-}
	mkdir -p "$dir"
	if [ "$(id -u)" -eq 0 ]; then
		local user=postgres
		id -u postgres >/dev/null 2>&1 || user=nobody
		chown "$user" "$dir"
	fi
	pg_as_owner "$PG_BINDIR/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C \
		--nosync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; return 1; }
	PG_PORT=$(free_port)
	{
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $PG_PORT"
		echo "unix_socket_directories = '$dir'"
		echo "max_connections = 100"
		echo "shared_buffers = 256MB"
		if [ -z "$durable" ]; then
			echo "fsync = off"
			echo "synchronous_commit = off"
		else
			echo "synchronous_commit = on"
		fi
		[ -z "${PG_EXTRA_CONF:-}" ] || printf '%s\n' "$PG_EXTRA_CONF"
	} >>"$dir/data/postgresql.conf"
	pg_as_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null ||
		{ cat "$dir/server.log"; return 1; }
	PG_CONNINFO="host=$dir port=$PG_PORT user=postgres dbname=postgres"
	export PG_CONNINFO PG_PORT
}

pg_cluster_stop() {
	local dir=$1
	[ -d "$dir/data" ] || return 0
	pg_as_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# psql on $PG_CONNINFO: quiet, no psqlrc, stop on the first error, unaligned tuples. The
# version's own binary: Debian's /usr/bin/psql is a Perl wrapper that takes about 25 ms
# of CPU per call, which the benchmarks' polls would spend beside the work they time.
# shellcheck disable=SC2120 # the callers pass the arguments
psql_q() { "$PG_BINDIR/psql" "$PG_CONNINFO" -X -q -v ON_ERROR_STOP=1 -At "$@"; }
