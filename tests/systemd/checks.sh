#!/bin/bash
# Runs inside the booted Debian 12 container (tests/systemd/run copies it to /root), as
# root, with systemd as PID 1: installs /root/debs/v1, sets smartpayd up as the README's
# "Install from the Debian package" says, and checks the service under systemd, then
# upgrades to /root/debs/v2 and purges. Stops at the first failure.
set -euo pipefail

debs=/root/debs
conf=/etc/smartpayd/smartpayd.conf
key=/etc/smartpayd/authentication-key
merchant_key=31928de9-5b5e-4a66-b8ab-8c1e4c9a1d00
sim=http://127.0.0.1:18080
metrics=http://127.0.0.1:9464/metrics
pglog=/var/log/postgresql/postgresql-15-main.log
max_exposure=1.5
passed=0

# Prints a failure with the service's last journal lines (on stderr: it may be called in
# a command substitution) and stops.
fail() {
	{
		echo "FAIL: $*"
		echo "---- journalctl -u smartpayd (last 40 lines)"
		journalctl -u smartpayd --no-pager -n 40 -o short-precise 2>&1 || true
		echo "---- systemctl status smartpayd"
		systemctl status smartpayd --no-pager 2>&1 | head -20 || true
		echo "checks: $passed passed, 1 failed"
	} >&2
	exit 1
}
trap 'echo "FAIL: unexpected error at line $LINENO" >&2' ERR
# Counts and prints a passed check.
ok() {
	passed=$((passed + 1))
	echo "ok $passed - $*"
}
# Prints the heading of a group of checks.
step() { echo "== $*"; }

# output_has [GREP-OPTION...] PATTERN -- COMMAND...: whether COMMAND succeeds and a line
# of its output matches (grep -q). The output is read whole before grep looks at it:
# under pipefail, `COMMAND | grep -q` fails whenever grep matches and exits while COMMAND
# is still writing (curl writes a scrape larger than its 4 KiB stdio buffer in two
# writes and then exits 23, "Failed writing body"; others die of SIGPIPE), so a line
# that is there would now and then count as missing.
output_has() {
	local -a opts=()
	local out
	while [ "$1" != -- ]; do
		opts+=("$1")
		shift
	done
	shift
	out=$("$@") || return 1
	grep -q "${opts[@]}" <<<"$out"
}

# wait_until SECONDS COMMAND...: polls COMMAND until it succeeds; false on time-out.
wait_until() {
	local limit=$1 end
	shift
	end=$((SECONDS + limit))
	until "$@"; do
		[ $SECONDS -lt "$end" ] || return 1
		sleep 0.5
	done
}
# prints N COMMAND...: COMMAND prints exactly N (run anew each time, so that wait_until
# polls the count rather than the value it had when it was called).
prints() {
	local want=$1 n
	shift
	n=$("$@") || return 1
	[ "$n" = "$want" ]
}
# reloaded_after N: the daemon has logged more than N reloads.
reloaded_after() { [ "$(reloads)" -gt "$1" ]; }

# psql on the shop database as its owner, postgres.
psql_shop() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -At -d shop "$@"; }
# One property of the unit (systemctl show).
prop() { systemctl show -p "$1" --value smartpayd; }
main_pid() { prop MainPID; }
# The daemon's own lines in the journal (not systemd's about the unit).
daemon_journal() { journalctl _SYSTEMD_UNIT=smartpayd.service _COMM=smartpayd --no-pager -o cat "$@"; }
is_active() { [ "$(systemctl is-active smartpayd)" = active ]; }
sim_up() { curl -sf "$sim/_sim/clock" >/dev/null; }
# The daemon's /metrics page.
scrape() { curl -sf "$metrics"; }
# set_conf KEY VALUE: sets a key of smartpayd.conf in place.
set_conf() { sed -i "s|^$1 =.*|$1 = $2|" "$conf"; }
# Captures in the simulator's ledger.
captures_at_sim() { curl -sf "$sim/_sim/ledger" | grep -o '"type" *: *"CAPTURE"' | wc -l; }
# Replaces the simulator's fault configuration.
sim_faults() { curl -sf -X POST "$sim/_sim/faults" -H 'Content-Type: application/json' -d "$1" >/dev/null; }

# new_orders N: N authorized transactions at the simulator and their orders; prints the ids.
new_orders() {
	local i txn id
	for i in $(seq "$1"); do
		txn=$(curl -sf -X POST "$sim/_sim/transactions" -H 'Content-Type: application/json' \
			-d '{"amount":"25.00","currencyCode":"EUR"}' |
			sed -n 's/.*"transactionId" *: *"\([^"]*\)".*/\1/p')
		[ -n "$txn" ] || fail "the simulator created no transaction"
		id=$(psql_shop -c "INSERT INTO public.orders (smartpay_transaction_id, amount) VALUES ('$txn', 25.00) RETURNING id")
		echo "$id"
	done
}
# Ships the orders whose ids are on stdin, one per line.
ship() { psql_shop -c "UPDATE public.orders SET status = 'shipped' WHERE id IN ($(paste -sd, -))" >/dev/null; }
# captured_orders ID,ID,...: how many of these orders have a succeeded capture.
captured_orders() {
	psql_shop -c "SELECT count(*) FROM smartpay.modifications WHERE kind = 'capture' AND state = 'succeeded' AND order_id = ANY (string_to_array('$1', ','))"
}
# pending_tried ID,ID,...: how many of these orders have a pending modification tried once.
pending_tried() {
	psql_shop -c "SELECT count(*) FROM smartpay.modifications WHERE order_id = ANY (string_to_array('$1', ',')) AND state = 'pending' AND attempts > 0"
}
# How many reloads the daemon has logged.
reloads() { daemon_journal | grep -c 'event=reloaded' || true; }
# Lists the files a package could create or leave behind (not the database's, the logs').
fs_snapshot() {
	find /etc /usr /lib /var/lib /var/log /opt /srv -xdev \
		\( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/log/journal \
		-o -path /var/lib/postgresql -o -path /etc/postgresql -o -path /var/log/postgresql \
		-o -path /etc/ld.so.cache -o -path /var/lib/systemd/catalog \
		-o -path /var/lib/systemd/random-seed -o -path /var/log/apt -o -path /var/log/dpkg.log \
		-o -path /etc/machine-id -o -path /var/lib/systemd/deb-systemd-user-helper-enabled \) -prune \
		-o -print | LC_ALL=C sort
}

step "install $BASE_VERSION"
fs_snapshot >/root/fs-before
dpkg -i "$debs"/v1/smartpayd_*.deb "$debs"/v1/smartpay-sim_*.deb >/root/dpkg-install.log 2>&1 ||
	{ cat /root/dpkg-install.log; fail "dpkg -i"; }
[ "$(dpkg-query -W -f='${Version}' smartpayd)" = "$BASE_VERSION" ] || fail "smartpayd $BASE_VERSION not installed"
output_has "^ $conf " -- dpkg-query -W -f='${Conffiles}\n' smartpayd || fail "$conf is not a conffile"
[ "$(systemctl is-enabled smartpayd || true)" = disabled ] || fail "the unit is enabled on installation"
[ "$(systemctl is-active smartpayd || true)" = inactive ] || fail "the service was started on installation"
ok "installed: $conf is a conffile; the unit is neither enabled nor started"

step "PostgreSQL 15, the shop database, the roles (README)"
wait_until 60 runuser -u postgres -- pg_isready -q || fail "PostgreSQL 15 did not come up"
echo "log_connections = on" >/etc/postgresql/15/main/conf.d/smartpayd-test.conf
sed -i '/^# TYPE/a local   shop            smartpayd                               peer' \
	/etc/postgresql/15/main/pg_hba.conf
systemctl restart postgresql@15-main
wait_until 60 runuser -u postgres -- pg_isready -q || fail "PostgreSQL 15 did not come back"
runuser -u postgres -- createdb shop
psql_shop -f /usr/share/smartpayd/sql/example-orders.sql >/dev/null
umask 077
head -c 24 /dev/urandom | base64 >/root/authentication-key
umask 022
install -m 0600 -o root -g root /root/authentication-key "$key"
set_conf conninfo "dbname=shop"
set_conf base_url "$sim"
set_conf merchant_key "$merchant_key"
set_conf origin "https://shop.example"
set_conf poll_interval 2s
set_conf timeout 10s
smartpayd --check-config >/root/check-config.out 2>&1 || { cat /root/check-config.out; fail "smartpayd --check-config"; }
runuser -u postgres -- smartpayctl migrate >/root/migrate.out 2>&1 || { cat /root/migrate.out; fail "smartpayctl migrate"; }
psql_shop -f /usr/share/smartpayd/sql/grant-smartpayd.sql >/root/grant.out 2>&1 || { cat /root/grant.out; fail "grant-smartpayd.sql"; }
ok "configured as the README says: migrate, grant-smartpayd.sql, peer line, key file, smartpayd.conf"

step "smartpay-sim in the container"
systemd-run --quiet --unit=smartpay-sim -p DynamicUser=yes -p "LoadCredential=key:$key" \
	/usr/bin/smartpay-sim --listen 127.0.0.1:18080 --merchant-key "$merchant_key" \
	--authentication-key-file /run/credentials/smartpay-sim.service/key
wait_until 30 sim_up || { journalctl -u smartpay-sim --no-pager | tail; fail "smartpay-sim did not start"; }
ok "smartpay-sim listens on 127.0.0.1:18080"

step "start: active only after READY=1"
systemctl stop postgresql@15-main
systemctl start --no-block smartpayd
for _ in $(seq 12); do
	sleep 0.5
	state=$(prop ActiveState)/$(prop SubState)
	[ "$state" = activating/start ] || fail "with the database down the unit is $state, not activating/start"
done
systemctl start postgresql@15-main
wait_until 90 is_active || fail "the unit did not become active once the database was up"
[ "$(prop SubState)" = running ] || fail "SubState is $(prop SubState)"
[ "$(prop NRestarts)" = 0 ] || fail "the daemon was restarted while waiting for the database"
status=$(prop StatusText)
echo "   StatusText: $status"
case $status in
"running; database up; in flight "[0-9]*"; succeeded "[0-9]*", refused "*) ;;
*) fail "StatusText does not show the live counts: '$status'" ;;
esac
ok "activating (start) for 6 s while the database was down, active (running) after READY=1; STATUS= '$status'"

step "the dynamic user, peer authentication, the credential"
pid=$(main_pid)
uid=$(stat -c %u "/proc/$pid")
gid=$(stat -c %g "/proc/$pid")
[ "$(stat -c %U "/proc/$pid")" = smartpayd ] || fail "the daemon runs as $(stat -c %U "/proc/$pid"), not smartpayd"
[ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ] || fail "uid $uid is not a dynamic user id"
output_has "^smartpayd:x:$uid:" -- getent passwd smartpayd || fail "nss-systemd does not resolve smartpayd to $uid"
wait_until 30 grep -q 'connection authenticated: identity="smartpayd" method=peer' "$pglog" ||
	fail "no peer authentication of smartpayd in $pglog"
grep -q 'connection authorized: user=smartpayd database=shop' "$pglog" || fail "no connection as role smartpayd"
[ "$(psql_shop -c "SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = 'smartpayd' AND datname = 'shop' AND client_addr IS NULL")" = t ] ||
	fail "no unix-socket session of role smartpayd"
[ "$(psql_shop -c "SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = 'smartpayd'")" = f ] ||
	fail "role smartpayd has more than LOGIN"
ok "runs as dynamic user smartpayd (uid $uid); connects over the unix socket with peer authentication as role smartpayd"

[ "$(stat -c '%a %U' "$key")" = "600 root" ] || fail "$key is not 0600 root"
if setpriv --reuid="$uid" --regid="$gid" --clear-groups cat "$key" >/dev/null 2>&1; then
	fail "the service's user can read $key"
fi
grep -q '^authentication_key_file =$' "$conf" || fail "authentication_key_file is set in $conf"
output_has -x 'CREDENTIALS_DIRECTORY=/run/credentials/smartpayd.service' -- tr '\0' '\n' <"/proc/$pid/environ" ||
	fail "no CREDENTIALS_DIRECTORY in the daemon's environment"
cmp -s "$key" /run/credentials/smartpayd.service/authentication-key || fail "the credential differs from $key"
ok "the key reaches the daemon only as a credential: uid $uid cannot read $key"

step "orders shipped in the container's database are captured at smartpay-sim"
orders=$(new_orders 20 | paste -sd, -)
tr , '\n' <<<"$orders" | ship
wait_until 60 prints 20 captured_orders "$orders" ||
	fail "$(captured_orders "$orders") of 20 shipped orders captured"
[ "$(captures_at_sim)" -eq 20 ] || fail "the simulator's ledger has $(captures_at_sim) captures, not 20"
wait_until 15 output_has 'succeeded 20,' -- prop StatusText ||
	fail "STATUS= did not count the captures: $(prop StatusText)"
output_has -x 'smartpayd_modification_results_total{kind="capture",result="succeeded"} 20' -- scrape ||
	fail "/metrics does not count 20 succeeded captures"
ok "20 shipped orders captured once each (ledger, simulator, /metrics, STATUS= '$(prop StatusText)')"

step "reload: a changed configuration applies"
set_conf expiry_thresholds "48h, 4h"
set_conf timeout 20s
before=$(reloads)
systemctl reload smartpayd
wait_until 30 reloaded_after "$before" ||
	fail "no 'reloaded' line after systemctl reload"
[ "$(main_pid)" = "$pid" ] || fail "reload restarted the daemon"
wait_until 30 output_has '^smartpayd_authorizations_expiring{within="48h"}' -- scrape ||
	fail "the reloaded expiry_thresholds do not show in /metrics"
output_has 'event=reload_needs_restart key=smartpay.timeout' -- daemon_journal -p warning..warning ||
	fail "no warning that the timeout waits for a restart"
ok "systemctl reload applied expiry_thresholds (within=\"48h\" in /metrics), same PID $pid"

step "reload: a broken configuration is refused, the running one kept"
cp "$conf" /root/smartpayd.conf.good
sed -i 's/^\[daemon\]$/[daemon]\nno_such_key = 1/' "$conf"
if smartpayd --check-config >/dev/null 2>&1; then fail "--check-config accepts the broken file"; fi
systemctl reload smartpayd
wait_until 30 output_has '^level=warning event=reload_failed' -- \
	journalctl _SYSTEMD_UNIT=smartpayd.service -p warning..warning -o cat ||
	fail "no reload_failed line at warning"
is_active || fail "the service is not active after a broken reload"
[ "$(main_pid)" = "$pid" ] || fail "a broken reload restarted the daemon"
orders2=$(new_orders 2 | paste -sd, -)
tr , '\n' <<<"$orders2" | ship
wait_until 60 prints 2 captured_orders "$orders2" || fail "no captures after the refused reload"
output_has '^smartpayd_authorizations_expiring{within="48h"}' -- scrape ||
	fail "the running configuration was not kept"
cp /root/smartpayd.conf.good "$conf"
ok "the broken file was refused ($(daemon_journal -p warning | grep -o 'event=reload_failed.*' | head -1 | cut -c1-80)...), the old configuration kept"

step "watchdog: a stopped loop is killed and restarted, and resends its pending rows"
sim_faults '{"fail_rate": 1, "status": 503, "retry_after": 1}'
orders3=$(new_orders 5 | paste -sd, -)
tr , '\n' <<<"$orders3" | ship
wait_until 60 prints 5 pending_tried "$orders3" ||
	fail "the five captures were not pending after a refused attempt"
pending_ids=$(psql_shop -c "SELECT modification_id FROM smartpay.modifications WHERE order_id = ANY (string_to_array('$orders3', ',')) ORDER BY 1")
kill -STOP "$pid"
stopped_at=$SECONDS
curl -sf -X DELETE "$sim/_sim/faults" >/dev/null
wait_until 120 bash -c "[ \"\$(systemctl show -p MainPID --value smartpayd)\" != $pid ] && [ \"\$(systemctl is-active smartpayd)\" = active ]" ||
	fail "the stopped daemon was not replaced within 120 s"
restart_s=$((SECONDS - stopped_at))
output_has 'Watchdog timeout' -- journalctl -u smartpayd -o cat --no-pager || fail "no watchdog time-out in the journal"
[ "$(prop NRestarts)" -ge 1 ] || fail "NRestarts is $(prop NRestarts)"
pid=$(main_pid)
wait_until 60 prints 5 captured_orders "$orders3" || fail "the restarted daemon did not capture the pending rows"
[ "$(psql_shop -c "SELECT modification_id FROM smartpay.modifications WHERE order_id = ANY (string_to_array('$orders3', ',')) ORDER BY 1")" = "$pending_ids" ] ||
	fail "the pending rows got new modification ids"
ledger=$(curl -sf "$sim/_sim/ledger")
for id in $pending_ids; do
	grep -q "\"modificationId\" *: *\"$id\"" <<<"$ledger" || fail "modification $id never reached the simulator"
done
ok "SIGSTOP: killed by the watchdog and restarted after ${restart_s}s; the 5 pending rows resent with their ids and captured"

step "stop drains requests in flight"
sim_faults '{"latency_ms": 4000}'
orders4=$(new_orders 5 | paste -sd, -)
tr , '\n' <<<"$orders4" | ship
wait_until 30 output_has -x 'smartpayd_requests_in_flight [1-9][0-9]*' -- scrape ||
	fail "no requests in flight"
t=$SECONDS
systemctl stop smartpayd
stop_s=$((SECONDS - t))
[ "$stop_s" -lt 60 ] || fail "stop took ${stop_s}s (TimeoutStopSec=60s)"
[ "$(prop Result)" = success ] || fail "the unit's result is $(prop Result)"
[ "$(prop ExecMainStatus)" = 0 ] || fail "the daemon exited with $(prop ExecMainStatus)"
[ "$(captured_orders "$orders4")" -eq 5 ] || fail "$(captured_orders "$orders4") of 5 in-flight captures recorded before the exit"
output_has 'event=stopping' -- daemon_journal || fail "no stopping line"
curl -sf -X DELETE "$sim/_sim/faults" >/dev/null
ok "systemctl stop took ${stop_s}s with 5 requests in flight: all 5 recorded, exit 0"

step "the journal: each line at its priority"
names=(emerg alert crit error warning notice info debug)
total=0
for p in 0 1 2 3 4 5 6 7; do
	lines=$(daemon_journal -p "$p..$p")
	[ -n "$lines" ] || continue
	bad=$(grep -v "^level=${names[$p]} " <<<"$lines" || true)
	[ -z "$bad" ] || fail "lines at priority $p without level=${names[$p]}: $(head -3 <<<"$bad")"
	total=$((total + $(wc -l <<<"$lines")))
done
warnings=$(daemon_journal -p warning)
grep -q 'event=reload_failed' <<<"$warnings" || fail "journalctl -p warning misses reload_failed"
grep -q 'event=reload_needs_restart' <<<"$warnings" || fail "journalctl -p warning misses reload_needs_restart"
other=$(grep -v -e '^level=warning ' -e '^level=error ' <<<"$warnings" || true)
[ -z "$other" ] || fail "journalctl -p warning shows more than warnings: $(head -3 <<<"$other")"
[ "$(daemon_journal -p info..info | grep -c .)" -gt 0 ] || fail "no info lines at all"
ok "$total daemon lines, each at the priority of its level=; -p warning shows $(wc -l <<<"$warnings") warning/error lines and nothing else"

step "systemd-analyze security in the booted system"
systemctl start smartpayd
security=$(systemd-analyze security --no-pager smartpayd 2>&1)
score=$(sed -n 's/.*Overall exposure level for smartpayd.service: \([0-9][0-9.]*\).*/\1/p' <<<"$security")
[ -n "$score" ] || { echo "$security" | tail -5; fail "no exposure level from systemd-analyze security"; }
grep -v '^ *✓' <<<"$security" | tail -n +2 | sed -n 's/^/   /; 1,30p'
awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s + 0 <= m + 0) }' ||
	fail "exposure $score is above $max_exposure"
ok "systemd-analyze security smartpayd: exposure $score (at most $max_exposure)"

step "upgrade to $UP_VERSION"
systemctl enable smartpayd 2>/dev/null
conf_sum=$(sha256sum "$conf")
pid=$(main_pid)
dpkg -i "$debs"/v2/smartpayd_*.deb "$debs"/v2/smartpay-sim_*.deb </dev/null >/root/dpkg-upgrade.log 2>&1 ||
	{ cat /root/dpkg-upgrade.log; fail "dpkg -i of $UP_VERSION"; }
[ "$(dpkg-query -W -f='${Version}' smartpayd)" = "$UP_VERSION" ] || fail "smartpayd $UP_VERSION not installed"
[ "$(sha256sum "$conf")" = "$conf_sum" ] || fail "the upgrade changed $conf"
[ ! -e "$conf.dpkg-new" ] && [ ! -e "$conf.dpkg-dist" ] || fail "the upgrade left a $conf.dpkg-* file"
wait_until 60 is_active || fail "the service is not active after the upgrade"
[ "$(main_pid)" != "$pid" ] || fail "the upgrade did not restart the service (PID $pid)"
[ "$(systemctl is-enabled smartpayd)" = enabled ] || fail "the upgrade changed the unit's enablement"
orders5=$(new_orders 2 | paste -sd, -)
tr , '\n' <<<"$orders5" | ship
wait_until 60 prints 2 captured_orders "$orders5" || fail "the upgraded daemon captures nothing"
ok "upgrade: $conf kept as edited, service restarted (PID $pid -> $(main_pid)), still enabled, captures"

step "purge"
rows=$(psql_shop -c "SELECT count(*) FROM smartpay.modifications")
dpkg --purge smartpay-sim smartpayd >/root/dpkg-purge.log 2>&1 || { cat /root/dpkg-purge.log; fail "dpkg --purge"; }
[ "$(systemctl is-active smartpayd || true)" = inactive ] || fail "the service still runs after the purge"
[ "$(systemctl show -p LoadState --value smartpayd)" = not-found ] || fail "the unit is still known"
[ ! -e "$conf" ] && [ ! -e /usr/share/smartpayd ] && [ ! -e /usr/sbin/smartpayd ] || fail "files left after the purge"
[ -e "$key" ] || fail "the purge removed the operator's $key"
[ "$(psql_shop -c "SELECT count(*) FROM smartpay.modifications")" = "$rows" ] || fail "the purge touched the database"
[ "$(psql_shop -c "SELECT count(*) FROM pg_roles WHERE rolname = 'smartpayd'")" = 1 ] || fail "the purge dropped the role"
fs_snapshot >/root/fs-after
left=$(LC_ALL=C comm -13 /root/fs-before /root/fs-after | grep -v -x -e /etc/smartpayd -e "$key" || true)
[ -z "$left" ] || fail "the purge left files the operator did not create: $left"
gone=$(LC_ALL=C comm -23 /root/fs-before /root/fs-after || true)
[ -z "$gone" ] || fail "the purge removed files that were there before the installation: $gone"
ok "purge: service stopped, unit, binaries and conffile gone; only the operator's $key remains; the database is untouched ($rows rows)"

echo "checks: $passed passed, 0 failed"
