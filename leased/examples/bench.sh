#!/usr/bin/env bash
# The README's performance figures, measured on this machine; one JSON object per line on stdout
# (progress on stderr):
#
#   {"bench":"lease-cycles", ...}  lease-bench: acquire+release cycles over HTTP, daemon and
#                                  clients in one process, embedded store then a throwaway Redis
#   {"bench":"socv-boards", ...}   `socv boards` as a whole process against a running leased with
#                                  the example lab (boards.yaml), by hyperfine, per store
#   {"bench":"leased-rss", ...}    leased's resident memory with the example lab: idle after its
#                                  start, and idle 5 s after a lease-bench load, per store
#
# Usage: leased/examples/bench.sh            (from anywhere in the workspace)
#   BENCH_CLIENTS=64 BENCH_SECONDS=10        load of the lease-cycles and RSS runs
#   BENCH_RUNS=200                           hyperfine runs of `socv boards` (after 20 warm-ups)
#
# Needs redis-server and hyperfine (Debian: apt-get install -y redis-server hyperfine). Every
# server binds 127.0.0.1 on a free port and is killed when the script ends, however it ends. The
# example lab's board addresses are never contacted: leased only probes boards marked unhealthy.
set -euo pipefail
cd "$(dirname "$0")/../.."

clients=${BENCH_CLIENTS:-64}
seconds=${BENCH_SECONDS:-10}
runs=${BENCH_RUNS:-200}

need() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "bench.sh: $1 is missing (Debian: apt-get install -y $2)" >&2
        exit 1
    fi
}
need redis-server redis-server
need redis-cli redis-tools
need hyperfine hyperfine

work=$(mktemp -d "${TMPDIR:-/tmp}/socv-bench.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
# Drops a process that has already been waited for.
forget() {
    local kept=() pid
    for pid in "${pids[@]}"; do
        [ "$pid" = "$1" ] || kept+=("$pid")
    done
    pids=("${kept[@]}")
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "bench.sh: $*" >&2; }

# A loopback port nobody answers on right now.
free_port() {
    local port
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "bench.sh: no free port found" >&2
    exit 1
}

# Waits until `$1` succeeds, at most 10 s.
wait_for() {
    for _ in $(seq 200); do
        if eval "$1" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# The first value of a key in hyperfine's JSON export, in milliseconds.
hyperfine_ms() {
    awk -v key="\"$2\":" '$1 == key { gsub(/,/, "", $2); printf "%.3f", $2 * 1000; exit }' "$1"
}

log "building (release)"
cargo build --release --workspace --quiet
cargo build --release -p leased --example lease-bench --quiet
bin=target/release

for store in embedded redis; do
    log "lease-bench: $clients clients, $seconds s, $store store, in-process"
    "$bin/examples/lease-bench" --clients "$clients" --seconds "$seconds" --store "$store"
done

# The example lab reads these; any value will do.
for i in 1 2 3 4 5; do
    export "BOARD_B00${i}_PASSWORD=${BENCH_BOARD_PASSWORD:-bench}"
done
unset REDIS_URL LEASED_LISTEN LEASED_BOARDS LEASED_STORE LEASED_TOKENS LEASED_CONFIG SOCV_TOKEN

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no --dir "$work" --logfile "$work/redis.log" &
pids+=($!)
wait_for "redis-cli -p $redis_port ping | grep -q PONG" || {
    log "redis-server did not start on 127.0.0.1:$redis_port"
    exit 1
}

for store in embedded redis; do
    case $store in
        embedded) spec="$work/leased.redb" ;;
        redis) spec="redis://127.0.0.1:$redis_port/" ;;
    esac
    port=$(free_port)
    url="http://127.0.0.1:$port"
    "$bin/leased" --boards boards.yaml --store "$spec" --listen "127.0.0.1:$port" \
        --config /dev/null 2>"$work/leased-$store.log" &
    leased=$!
    pids+=("$leased")
    wait_for "kill -0 $leased && (exec 3<>/dev/tcp/127.0.0.1/$port)" || {
        log "leased did not start; its log:"
        cat "$work/leased-$store.log" >&2
        exit 1
    }
    sleep 2
    rss_start=$(rss_kib "$leased")

    log "socv boards against leased ($store store): $runs runs"
    SOCV_DAEMON=$url hyperfine --shell=none --warmup 20 --runs "$runs" --style none \
        --export-json "$work/socv-boards-$store.json" "$bin/socv boards" >/dev/null
    SOCV_DAEMON=$url "$bin/socv" boards >/dev/null
    j="$work/socv-boards-$store.json"
    printf '{"bench":"socv-boards","store":"%s","boards":%s,"runs":%s,"mean_ms":%s,"median_ms":%s,"stddev_ms":%s,"min_ms":%s,"max_ms":%s}\n' \
        "$store" "$(grep -c '^ *- board_id:' boards.yaml)" "$runs" \
        "$(hyperfine_ms "$j" mean)" "$(hyperfine_ms "$j" median)" \
        "$(hyperfine_ms "$j" stddev)" "$(hyperfine_ms "$j" min)" "$(hyperfine_ms "$j" max)"

    log "lease-bench against the leased binary ($store store), then 5 s idle"
    "$bin/examples/lease-bench" --daemon "$url" --clients "$clients" --seconds "$seconds" \
        >"$work/load-$store.json"
    sleep 5
    rss_after=$(rss_kib "$leased")
    printf '{"bench":"leased-rss","store":"%s","boards":%s,"rss_idle_start_kib":%s,"rss_idle_after_load_kib":%s,"rss_peak_kib":%s,"load":%s}\n' \
        "$store" "$(grep -c '^ *- board_id:' boards.yaml)" "$rss_start" "$rss_after" \
        "$(hwm_kib "$leased")" "$(cat "$work/load-$store.json")"
    kill "$leased"
    wait "$leased" 2>/dev/null || true
    forget "$leased"
done
