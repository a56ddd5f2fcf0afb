# Shared by scripts/check, scripts/demo and scripts/fuzz: package install and out-of-tree build.
# shellcheck shell=bash

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)

# Installs the packages of scripts/packages that are not installed yet.
ensure_packages() {
	local missing=() pkg
	while read -r pkg; do
		case "$pkg" in ''|'#'*) continue ;; esac
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$pkg")
	done <"$top/scripts/packages"
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "== installing: ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages and not root: install them with apt-get install ${missing[*]}" >&2
		return 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Generates the build system when configure is missing or older than its inputs.
ensure_configure() {
	if [ ! -x "$top/configure" ] || [ "$top/configure.ac" -nt "$top/configure" ]; then
		echo "== autoreconf"
		(cd "$top" && autoreconf -fi >/dev/null 2>&1) || (cd "$top" && autoreconf -fi)
	fi
}

# configure_tree DIR [configure args...]: configures out of tree, once per argument set.
configure_tree() {
	local dir=$1; shift
	mkdir -p "$dir"
	local want="$*"
	if [ ! -f "$dir/Makefile" ] || [ "$(cat "$dir/.configure-args" 2>/dev/null)" != "$want" ]; then
		echo "== configure $dir $want"
		(cd "$dir" && "$top/configure" "$@" >configure.out) || { cat "$dir/configure.out" "$dir/config.log" | tail -50; return 1; }
		echo "$want" >"$dir/.configure-args"
	fi
}

# build DIR [configure args...]: configures (once per argument set) and builds out of tree.
build_tree() {
	local dir=$1
	configure_tree "$@" || return 1
	echo "== make $dir"
	make -C "$dir" -j"$jobs" >"$dir/make.out" 2>&1 || { tail -60 "$dir/make.out"; return 1; }
	grep -E 'warning:' "$dir/make.out" && { echo "compiler warnings (see above)"; return 1; }
	return 0
}
