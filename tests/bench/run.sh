#!/usr/bin/env bash
# moat benchmark: one Mosquitto broker, measured (a) directly, (b) through HAProxy
# terminating TLS (mode tcp), (c) through moat, in one run. Loopback only; every process
# started here is killed on exit. See README.md next to this script.
#
#   tests/bench/run.sh [--quick] [--no-build] [--no-moat] [--no-haproxy] [--out FILE] [-- moat-bench run args...]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
QUICK=0 BUILD=1 WITH_MOAT=1 WITH_HAPROXY=1 OUT=""
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --no-moat) WITH_MOAT=0 ;;
        --no-haproxy) WITH_HAPROXY=0 ;;
        --out) OUT=$2; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

for tool in mosquitto; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (apt-get install mosquitto)" >&2; exit 2; }
done
if [ "$WITH_HAPROXY" = 1 ] && ! command -v haproxy >/dev/null; then
    echo "run.sh: haproxy not found (apt-get install haproxy, or --no-haproxy)" >&2; exit 2
fi

# Each held client connection costs the bench one fd, the proxy two (client + upstream),
# the broker one: raise the soft limit to the hard one (capped) for everything started here.
HARD=$(ulimit -Hn)
if [ "$HARD" = unlimited ] || [ "$HARD" -gt 65536 ]; then HARD=65536; fi
ulimit -n "$HARD"

IDLE=8000
[ "$QUICK" = 1 ] && IDLE=500
# An explicit --idle-conns N among the extra arguments wins.
for ((i = 0; i < ${#EXTRA[@]}; i++)); do
    if [ "${EXTRA[$i]}" = --idle-conns ] && [ $((i + 1)) -lt ${#EXTRA[@]} ]; then IDLE=${EXTRA[$((i + 1))]}; fi
done
NEED=$((2 * IDLE + 200))
if [ "$NEED" -gt "$HARD" ]; then
    echo "run.sh: $IDLE idle connections need ~$NEED fds in the proxy, the limit is $HARD" >&2; exit 2
fi

WORK=$(mktemp -d /tmp/moat-bench.XXXXXX)
ME=run.sh
# shellcheck source=procs.sh
. "$ROOT/tests/bench/procs.sh"
cleanup() {
    local rc=$?
    stop_all
    if [ "$rc" != 0 ]; then
        echo "run.sh: failed (exit $rc); logs:" >&2
        for f in "$WORK"/*.log; do [ -s "$f" ] && { echo "== $f" >&2; tail -n 20 "$f" >&2; }; done
    fi
    if [ "${MOAT_BENCH_KEEP:-0}" = 1 ]; then echo "run.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$ROOT"
if [ "$BUILD" = 1 ]; then
    echo "run.sh: building (release)..." >&2
    cargo build --release -p moat-bench --bin moat-bench >&2
    if [ "$WITH_MOAT" = 1 ]; then cargo build --release -p moat --bin moat >&2; fi
fi
BENCH=$ROOT/target/release/moat-bench
# MOAT_BENCH_MOAT_BIN points at another moat binary (e.g. a debug build, for a functional check only).
MOAT=${MOAT_BENCH_MOAT_BIN:-$ROOT/target/release/moat}
[ -x "$BENCH" ] || { echo "run.sh: $BENCH missing (drop --no-build)" >&2; exit 2; }
if [ "$WITH_MOAT" = 1 ] && [ ! -x "$MOAT" ]; then echo "run.sh: $MOAT missing (drop --no-build, or --no-moat)" >&2; exit 2; fi

"$BENCH" gen-pki "$WORK/pki"
mapfile -t PORTS < <("$BENCH" free-ports 4)
BROKER_PORT=${PORTS[0]} HAP_PORT=${PORTS[1]} MOAT_PORT=${PORTS[2]} ADMIN_PORT=${PORTS[3]}

# --- (a) the broker ---------------------------------------------------------------------
cat > "$WORK/mosquitto.conf" <<CONF
listener $BROKER_PORT 127.0.0.1
allow_anonymous true
persistence false
max_connections -1
set_tcp_nodelay true
# QoS 1 to the subscriber: no in-flight cap. The harness bounds messages in flight end to
# end itself (--window); with a cap, Mosquitto 2.0.11 leaves the messages queued behind it
# undelivered once the publishers stop (exactly one window lost per QoS 1 run), and the
# default cap of 20 makes QoS 1 throughput a pure function of round-trip time.
max_inflight_messages 0
max_queued_messages 100000
log_dest stderr
log_type error
log_type warning
CONF
mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
BROKER_PID=$!
PIDS+=("$BROKER_PID")
wait_port "$BROKER_PORT" "$BROKER_PID" mosquitto
ARGS=(--direct "127.0.0.1:$BROKER_PORT" --broker-pid "$BROKER_PID" --ca "$WORK/pki/ca.crt")

# --- (b) HAProxy, TLS terminated in TCP mode --------------------------------------------
if [ "$WITH_HAPROXY" = 1 ]; then
    MAXCONN=$((IDLE + 1000))
    cat > "$WORK/haproxy.cfg" <<CONF
global
    maxconn $MAXCONN
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode tcp
    maxconn $MAXCONN
    timeout connect 5s
    timeout client 10m
    timeout server 10m
frontend mqtts
    bind 127.0.0.1:$HAP_PORT ssl crt $WORK/pki/combined.pem
    default_backend broker
backend broker
    server b 127.0.0.1:$BROKER_PORT
CONF
    haproxy -c -f "$WORK/haproxy.cfg" >"$WORK/haproxy-check.log" 2>&1 || { cat "$WORK/haproxy-check.log" >&2; exit 1; }
    haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
    HAP_PID=$!
    PIDS+=("$HAP_PID")
    wait_port "$HAP_PORT" "$HAP_PID" haproxy
    ARGS+=(--haproxy "127.0.0.1:$HAP_PORT" --haproxy-pid "$HAP_PID")
fi

# --- (c) moat -----------------------------------------------------------------------------
if [ "$WITH_MOAT" = 1 ]; then
    cat > "$WORK/moat.yaml" <<CONF
listeners:
  - name: bench
    bind: "127.0.0.1:$MOAT_PORT"
    tls:
      cert: pki/server.crt
      key: pki/server.key
upstream:
  address: "127.0.0.1:$BROKER_PORT"
admin:
  bind: "127.0.0.1:$ADMIN_PORT"
log_format: text
# Anonymous, no ACL: the bench measures the relay, as HAProxy does no MQTT work at all.
# Set MOAT_BENCH_EXTRA_YAML to append e.g. an authorization section.
authentication:
  - name: anonymous
    type: anonymous
${MOAT_BENCH_EXTRA_YAML:-}
CONF
    "$MOAT" check -c "$WORK/moat.yaml" >"$WORK/moat-check.log" 2>&1 || { cat "$WORK/moat-check.log" >&2; exit 1; }
    # Warnings only: per-connection logging would be a cost HAProxy (no log target) does not pay.
    RUST_LOG=${MOAT_BENCH_RUST_LOG:-warn} "$MOAT" run -c "$WORK/moat.yaml" >"$WORK/moat.log" 2>&1 &
    MOAT_PID=$!
    PIDS+=("$MOAT_PID")
    wait_port "$MOAT_PORT" "$MOAT_PID" moat
    ARGS+=(--moat "127.0.0.1:$MOAT_PORT" --moat-pid "$MOAT_PID")
fi

[ "$QUICK" = 1 ] && ARGS+=(--quick)
{
    echo "## moat benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "- Machine: $(nproc) CPUs, $(uname -sr)"
    echo "- Broker: $(mosquitto -h 2>/dev/null | head -n1 | sed 's/^mosquitto //') on 127.0.0.1:$BROKER_PORT"
    [ "$WITH_HAPROXY" = 1 ] && echo "- HAProxy: $(haproxy -v | head -n1 | cut -d' ' -f1-3), $(haproxy -vv 2>/dev/null | grep -m1 'Running on OpenSSL' | sed 's/^ *//'), default threads (one per CPU)"
    [ "$WITH_MOAT" = 1 ] && echo "- moat: ${MOAT#$ROOT/}, git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '(no commit)'), RUST_LOG=${MOAT_BENCH_RUST_LOG:-warn}"
    echo "- Client: moat-bench (own MQTT 3.1.1 client on tokio + rustls/aws-lc-rs), same machine; TLS 1.3, no resumption except in the resumed-handshake row, ECDSA P-256 server cert"
} > "$WORK/preamble.md"

OUT=${OUT:-$WORK/report.md}
"$BENCH" run "${ARGS[@]}" --clk-tck "$(getconf CLK_TCK)" --preamble "$WORK/preamble.md" --out "$OUT" "${EXTRA[@]}"


for p in "${PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "run.sh: a server (pid $p) died during the run" >&2; exit 1; }
done
