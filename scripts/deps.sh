#!/bin/sh
# Install what connectord needs to build, run and be tested, on Debian 12.
# Idempotent: asks apt only for what is missing, and only once per run.
# Also creates the dedicated service user (_connectord) when run as root.
#   scripts/deps.sh          build and run dependencies
#   scripts/deps.sh test     plus what the test suites use, and the
#                            browser tests' npm package (tests/e2e)
#   scripts/deps.sh bench    plus what the benchmarks use
set -eu

pkgs="meson ninja-build pkg-config gcc libc6-dev libevent-dev
libcurl4-openssl-dev libyajl-dev libseccomp-dev libssl-dev rclone gh"
if [ "${1:-}" = test ]; then
	# chromium, node and npm: the web console's browser tests.
	pkgs="$pkgs python3 openssl curl iproute2 strace mandoc man-db chromium nodejs"
	# NodeSource's nodejs brings npm itself and conflicts with Debian's
	# npm package: ask for that one only when there is no npm at all.
	command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
fi
if [ "${1:-}" = bench ]; then
	pkgs="$pkgs python3 wrk openssl"
fi

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing packages:$missing" >&2
		echo "deps: run as root, or: apt-get install$missing" >&2
		exit 1
	fi
	echo "deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ "$(id -u)" -eq 0 ] && ! getent passwd _connectord >/dev/null; then
	echo "deps: creating the service user _connectord"
	useradd --system --no-create-home --home-dir /nonexistent \
	    --shell /usr/sbin/nologin _connectord
fi
if [ "${1:-}" = test ] && [ "$(id -u)" -eq 0 ] &&
    ! getent passwd _cdtest >/dev/null; then
	# A workspace owner for the tests, distinct from the service user.
	useradd --system --create-home --home-dir /var/lib/cdtest \
	    --shell /usr/sbin/nologin _cdtest
fi

# The browser tests' npm package (playwright-core, pinned with its lock):
# installed again only when node_modules is missing or the lock changed,
# so that a machine that has it needs no registry.
if [ "${1:-}" = test ]; then
	e2e="$(cd "$(dirname "$0")/.." && pwd)/tests/e2e"
	want=$(sha256sum "$e2e/package-lock.json" | cut -d' ' -f1)
	have=$(cat "$e2e/node_modules/.lock-sha256" 2>/dev/null || true)
	if [ "$want" != "$have" ]; then
		echo "deps: npm ci in tests/e2e"
		npm ci --prefix "$e2e" --no-audit --no-fund --loglevel=error \
		    >/dev/null
		echo "$want" >"$e2e/node_modules/.lock-sha256"
	fi
fi
exit 0
