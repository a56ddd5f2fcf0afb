#!/bin/sh
# The shipped systemd unit: generated with every path substituted, accepted by
# `systemd-analyze verify` without a single warning (with its paths pointed at the
# build tree, so that the programs it names exist), and hardened: the exposure score of
# `systemd-analyze security --offline=true` is printed and must be at most 1.5.
set -u

top_builddir=${SP_TOP_BUILDDIR:-.}
top_srcdir=${SP_TOP_SRCDIR:-.}
unit=$top_builddir/systemd/smartpayd.service
template=$top_srcdir/systemd/smartpayd.service.in
max_exposure=1.5

fail() {
	echo "FAIL: $*"
	exit 1
}

[ -f "$unit" ] || fail "$unit is missing: run make first"
[ -f "$template" ] || fail "$template is missing"

# every @variable@ substituted, absolute paths for the programs and the configuration
if grep -n '@[a-z_]*@' "$unit"; then
	fail "unsubstituted variables in $unit"
fi
grep -q '^ExecStart=/[^ ]*/smartpayd -c /[^ ]*/smartpayd/smartpayd.conf$' "$unit" ||
	fail "ExecStart is not '<sbindir>/smartpayd -c <sysconfdir>/smartpayd/smartpayd.conf'"
grep -q '^LoadCredential=authentication-key:/[^ ]*/smartpayd/authentication-key$' "$unit" ||
	fail "LoadCredential does not pass the authentication key"
for key in Type=notify WatchdogSec= ExecReload= Restart=on-failure TimeoutStopSec= \
	DynamicUser=yes; do
	grep -q "^$key" "$unit" || fail "$key missing in $unit"
done
# memory holds the authentication key: no core files
grep -qx 'LimitCORE=0' "$unit" || fail "LimitCORE=0 missing in $unit"

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: systemd-analyze not found (Debian package systemd)"
	exit 77
fi
systemd-analyze --version | head -1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/smartpayd-unit.XXXXXX") || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT INT TERM

# verify: the same template, with the build tree's programs
mkdir -p "$tmp/etc/smartpayd"
sed -e "s|@sbindir[@]|$top_builddir|g" -e "s|@sysconfdir[@]|$tmp/etc|g" "$template" \
	>"$tmp/smartpayd.service"
[ -x "$top_builddir/smartpayd" ] || fail "$top_builddir/smartpayd is not built"
out=$(systemd-analyze verify --man=no "$tmp/smartpayd.service" 2>&1)
rc=$?
case $out in
*"Failed to initialize manager"* | *"Failed to connect to bus"* | *"Failed to allocate manager"*)
	echo "systemd-analyze verify cannot run here (no usable systemd): skipped that part"
	echo "$out"
	;;
*)
	if [ $rc -ne 0 ] || [ -n "$out" ]; then
		echo "$out"
		fail "systemd-analyze verify: exit $rc, output above"
	fi
	echo "systemd-analyze verify: OK"
	;;
esac

# security: the unit as it is installed
out=$(systemd-analyze security --offline=true "$unit" 2>&1)
rc=$?
echo "$out" | grep -v '^✓' || true
score=$(echo "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p')
[ -n "$score" ] || fail "no exposure score in the output of systemd-analyze security (exit $rc)"
echo "exposure score: $score (at most $max_exposure allowed)"
awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s + 0 <= m + 0) }' ||
	fail "exposure $score is above $max_exposure"
exit 0
