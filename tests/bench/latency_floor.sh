#!/usr/bin/env bash
# What one proxy hop costs in latency on this machine, without TLS: the same latency workload as
# run.sh, against (a) the broker directly, (b) HAProxy forwarding plaintext TCP (no TLS, no
# inspection: the cheapest hop there is) and (c) moat on a plaintext loopback listener (every
# packet parsed and checked). moat-bench measures each as its "direct" target, so all three
# use the same plaintext client. Loopback only; every process started here is killed on exit.
#
#   tests/bench/latency_floor.sh [--no-build] [-- moat-bench run args...]   (default: 3 rounds)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=1
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "latency_floor.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
for tool in mosquitto haproxy; do
    command -v "$tool" >/dev/null || { echo "latency_floor.sh: $tool not found (apt-get install $tool)" >&2; exit 2; }
done

cd "$ROOT"
if [ "$BUILD" = 1 ]; then
    cargo build --release -p moat-bench --bin moat-bench >&2
    cargo build --release -p moat --bin moat >&2
fi
BENCH=$ROOT/target/release/moat-bench
MOAT=$ROOT/target/release/moat
[ -x "$BENCH" ] && [ -x "$MOAT" ] || { echo "latency_floor.sh: build first (drop --no-build)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/moat-floor.XXXXXX)
ME=latency_floor.sh
# shellcheck source=procs.sh
. "$ROOT/tests/bench/procs.sh"
trap 'stop_all; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

mapfile -t PORTS < <("$BENCH" free-ports 4)
BROKER=${PORTS[0]} HAP=${PORTS[1]} MOATP=${PORTS[2]} ADMIN=${PORTS[3]}

cat > "$WORK/mosquitto.conf" <<CONF
listener $BROKER 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
max_inflight_messages 0
CONF
mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
BROKER_PID=$!; PIDS+=("$BROKER_PID")
wait_port "$BROKER" "$BROKER_PID" mosquitto

cat > "$WORK/haproxy.cfg" <<CONF
global
    maxconn 1000
defaults
    mode tcp
    timeout connect 5s
    timeout client 10m
    timeout server 10m
frontend plain
    bind 127.0.0.1:$HAP
    default_backend broker
backend broker
    server b 127.0.0.1:$BROKER
CONF
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
HAP_PID=$!; PIDS+=("$HAP_PID")
wait_port "$HAP" "$HAP_PID" haproxy

cat > "$WORK/moat.yaml" <<CONF
listeners:
  - name: plain
    bind: "127.0.0.1:$MOATP"
    plaintext: true
upstream:
  address: "127.0.0.1:$BROKER"
admin:
  bind: "127.0.0.1:$ADMIN"
log_format: text
authentication:
  - name: anonymous
    type: anonymous
CONF
RUST_LOG=warn "$MOAT" run -c "$WORK/moat.yaml" >"$WORK/moat.log" 2>&1 &
MOAT_PID=$!; PIDS+=("$MOAT_PID")
wait_port "$MOATP" "$MOAT_PID" moat

"$BENCH" gen-pki "$WORK/pki" >/dev/null
row() { # FILE LABEL -> the median of that row
    grep -F "| $2 |" "$1" | head -n1 | awk -F'|' '{gsub(/ /, "", $3); print $3}'
}
echo "| Target (plaintext) | QoS 0 p50 µs | QoS 0 p99 µs | QoS 1 p50 µs | QoS 1 p99 µs |"
echo "|---|---:|---:|---:|---:|"
for t in "broker directly:$BROKER:$BROKER_PID" "HAProxy, TCP forwarding:$HAP:$HAP_PID" "moat, plaintext listener:$MOATP:$MOAT_PID"; do
    IFS=: read -r label port pid <<<"$t"
    out="$WORK/$port.md"
    "$BENCH" run --direct "127.0.0.1:$port" --broker-pid "$pid" --ca "$WORK/pki/ca.crt" \
        --workloads latency --clk-tck "$(getconf CLK_TCK)" --out "$out" "${EXTRA[@]}" >"$WORK/$port.log" 2>&1 \
        || { cat "$WORK/$port.log" >&2; exit 1; }
    printf '| %s | %s | %s | %s | %s |\n' "$label" \
        "$(row "$out" 'Latency QoS 0 p50 at 1000/s, µs')" "$(row "$out" 'Latency QoS 0 p99 at 1000/s, µs')" \
        "$(row "$out" 'Latency QoS 1 p50 at 1000/s, µs')" "$(row "$out" 'Latency QoS 1 p99 at 1000/s, µs')"
done
