#!/usr/bin/env bash
# The whole test suite, as the README's quick start and CI run it: installs the services the
# tests start themselves (redis-server; they never use a system instance), then runs the gates
# (fmt, clippy) and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

apt_updated=
apt_install() {
    if ! need apt-get; then
        echo "tests/run.sh: $* missing and no apt-get here; install it by hand" >&2
        exit 1
    fi
    local sudo=
    [ "$(id -u)" = 0 ] || sudo=sudo
    if [ -z "$apt_updated" ]; then
        $sudo apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# Tools the tests start on free loopback ports (recorded here, nowhere else):
#   redis-server (Debian: redis-server)
need redis-server || apt_install redis-server
#   busybox with the telnetd applet (Debian: busybox-static; plain busybox has no telnetd)
busybox telnetd --help >/dev/null 2>&1 || apt_install busybox-static
#   ser2net, and socat for the pty it serves (Debian: ser2net, socat)
need ser2net || apt_install ser2net
need socat || apt_install socat
#   net-snmp's snmpd, the agent the apc-snmp PDU tests talk to (Debian: snmpd; in /usr/sbin)
[ -x /usr/sbin/snmpd ] || need snmpd || apt_install snmpd

#   prefect==3.9.1 (PyPI), the server the run-history tests deliver to; a venv of its own in the
#   cache, created once and reused while `prefect version` says 3.9.1 (about 1 minute, 260 MiB)
prefect_venv="${XDG_CACHE_HOME:-$HOME/.cache}/socv/prefect-3.9.1"
prefect_version() { "$prefect_venv/bin/prefect" version 2>/dev/null | sed -n 's/^Version: *//p'; }
if [ "$(prefect_version || true)" != 3.9.1 ]; then
    need python3 || apt_install python3 python3-venv
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || apt_install python3-venv
    rm -rf "$prefect_venv"
    python3 -m venv "$prefect_venv"
    "$prefect_venv/bin/pip" install -q --disable-pip-version-check 'prefect==3.9.1'
    [ "$(prefect_version)" = 3.9.1 ] || { echo "tests/run.sh: prefect 3.9.1 did not install into $prefect_venv" >&2; exit 1; }
fi
export SOCV_TEST_PREFECT="$prefect_venv/bin/prefect"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== one TLS stack (rustls with ring), no OpenSSL"
crates=$(cargo tree --workspace --locked -e normal,build --prefix none --format '{p}' | sed 's/ (\*)$//' | sort -u)
tls_others=$(echo "$crates" | grep -E '^(openssl|openssl-sys|native-tls|aws-lc-sys|aws-lc-rs|boring-sys) ' || true)
if [ -n "$tls_others" ]; then
    echo "tests/run.sh: another TLS stack is in the build:" >&2
    echo "$tls_others" >&2
    exit 1
fi
[ "$(echo "$crates" | grep -c '^rustls v')" = 1 ] ||
    { echo "tests/run.sh: not exactly one rustls in the build: $(echo "$crates" | grep '^rustls v' | tr '\n' ' ')" >&2; exit 1; }

echo "== architecture rules (docs/architecture.md)"
rule_broken=
broken() { echo "tests/run.sh: rule broken: $1" >&2; echo "$2" >&2; rule_broken=1; }
#   A verb is an adapter: no commands/<verb>.rs reaches into another verb.
hits=$(grep -nE '(crate::commands::|super::)[a-z_]+::' src/commands/*.rs | grep -v '^src/commands/mod.rs:' | grep -vE 'super::(tests|snapshots)::' || true)
[ -z "$hits" ] || broken "a verb imports another verb (move the shared part into an engine)" "$hits"
#   Engines take plain input: no clap in src/lease, src/run, src/session, src/telnet, src/report.
hits=$(grep -rnE '\bclap\b' src/lease src/run src/session src/telnet src/report || true)
[ -z "$hits" ] || broken "clap in an engine (the verb turns its Args into the engine's input)" "$hits"
#   socv reaches the daemon crate only where it runs one (demo) or documents it (man); the
#   simulator's tests load what it writes with leased's own loader.
hits=$(grep -rn 'leased::' src --include=*.rs | grep -vE '^src/commands/(demo|man)\.rs:|^src/sim/boards_yaml\.rs:|^src/sim/mod\.rs:[0-9]+: *///' || true)
[ -z "$hits" ] || broken "socv uses the daemon crate outside demo/man (use socv-api)" "$hits"
#   The contract crate is serde only: no runtime, store or server crates beneath it.
hits=$(cargo tree -p socv-api --all-features --locked -e normal --prefix none --format '{p}' | grep -E '^(tokio|redis|redb|axum|hyper|reqwest|leased) ' || true)
[ -z "$hits" ] || broken "socv-api depends on a runtime, store or server crate" "$hits"
#   The Prefect client serves leased and socv's worker alike: no store or server beneath it.
hits=$(cargo tree -p socv-prefect --locked -e normal --prefix none --format '{p}' | grep -E '^(redis|redb|axum|leased|socv) ' || true)
[ -z "$hits" ] || broken "socv-prefect depends on a store, a server or a binary crate" "$hits"
[ -z "$rule_broken" ] || exit 1

echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
