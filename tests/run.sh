#!/usr/bin/env bash
# The whole test suite: unit, property and end-to-end tests (real Mosquitto, real clients, real TLS).
# Installs what the tests need when it is missing, so it passes on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

# `apt-get update` runs at most once, and only when something is missing.
APT_UPDATED=0
apt_update() {
  if [ "$APT_UPDATED" = 0 ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
}

need_apt=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_pub >/dev/null || need_apt+=(mosquitto-clients)
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || need_apt+=(redis-server)
# The TLS-PSK listener (default feature `tls-psk`) links OpenSSL: headers and pkg-config to
# build, the openssl CLI for the `s_client -psk` tests.
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# The Debian package starts a system broker on 1883; the tests start their own on free ports.
if ! python3 -c 'import paho.mqtt' 2>/dev/null; then
  echo "installing paho-mqtt"
  python3 -m pip install --quiet 'paho-mqtt>=2,<3' || python3 -m pip install --quiet --break-system-packages 'paho-mqtt>=2,<3'
fi
# sslyze scans a TLS listener (tests/tests/tls_scan.rs); 6.3.1 ships with nassl wheels for
# CPython 3.11 x86_64.
if ! python3 -c 'import sslyze' 2>/dev/null; then
  echo "installing sslyze"
  python3 -m pip install --quiet 'sslyze==6.3.1' || python3 -m pip install --quiet --break-system-packages 'sslyze==6.3.1'
fi
# The admin API is checked against its OpenAPI document by schemathesis.
if ! command -v schemathesis >/dev/null; then
  echo "installing schemathesis"
  python3 -m pip install --quiet 'schemathesis>=4,<5' || python3 -m pip install --quiet --break-system-packages 'schemathesis>=4,<5'
  # pyenv only exposes a new console script after a rehash.
  if command -v pyenv >/dev/null; then pyenv rehash || true; fi
fi

# promtool unit-tests the Kubernetes alert rules (tests/tests/deploy.rs). Only the binary is
# taken from Debian's prometheus package (installing the package would start a server on :9090).
if ! command -v promtool >/dev/null && [ ! -x target/tools/promtool ]; then
  echo "fetching promtool"
  tmp="$(mktemp -d)"
  if (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 \
        || { apt_update && apt-get download prometheus >/dev/null 2>&1; }; } \
        && dpkg -x prometheus_*.deb x); then
    mkdir -p target/tools && cp "$tmp/x/usr/bin/promtool" target/tools/promtool
  else
    echo "promtool unavailable: the alert unit tests will be skipped"
  fi
  rm -rf "$tmp"
fi
if [ -z "${PROMTOOL:-}" ] && [ -x target/tools/promtool ]; then export PROMTOOL="$PWD/target/tools/promtool"; fi

# The end-to-end tests drive the real binary.
cargo build --locked -p moat --bin moat
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --no-fail-fast
else
  cargo test --locked --workspace --no-fail-fast
fi
# Doc tests are not run by nextest.
cargo test --locked --workspace --doc

# The codec is the security boundary: fuzz it briefly when a nightly toolchain and cargo-fuzz
# are there, otherwise run its property tests ten times longer than the default suite does.
if cargo +nightly --version >/dev/null 2>&1 && cargo +nightly fuzz --version >/dev/null 2>&1; then
  for target in split_frame decode_all; do
    (cd proxy/fuzz && cargo +nightly fuzz run "$target" -- -max_total_time=30)
  done
else
  MOAT_PROPTEST_SCALE=10 cargo test --locked -p moat --lib codec::tests::roundtrip
fi
