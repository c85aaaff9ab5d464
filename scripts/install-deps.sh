#!/usr/bin/env bash
# Installs the system packages the build needs (Debian/Ubuntu), only when missing:
# libpq (Diesel's PostgreSQL driver), libssl (librdkafka's TLS and SASL SCRAM), make/gcc
# (librdkafka, SQLite and zstd are built from source), zlib. Safe to run repeatedly. The
# static musl build needs more (musl-tools); scripts/build-static.sh installs it.
set -euo pipefail
need=()
for pkg in libpq-dev libssl-dev zlib1g-dev make gcc g++ pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
# The code gates (scripts/lint) need rustfmt and clippy.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
# The console's browser test (tests/api/console.rs): Debian's Chromium, driven by Node's
# playwright-core from tests/console (pinned in its package-lock.json; it never downloads a browser).
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing: chromium"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
console="$(dirname "$0")/../tests/console"
if [ ! -d "$console/node_modules/playwright-core" ]; then
  (cd "$console" && npm ci --no-audit --no-fund --loglevel=error)
fi
# The schema registry tests' framed values, made by Confluent's own serializers (tests/registry/).
if ! python3 -c "import confluent_kafka" >/dev/null 2>&1; then
  echo "installing: confluent-kafka (its schema registry serializers make the registry tests' framed values)"
  python3 -m pip install -q --disable-pip-version-check "confluent-kafka[avro,protobuf,json]==2.12.1"
fi
# The Protobuf tests' message classes, generated at test time from tests/registry/proto (its
# protoc, 35.1, writes code for protobuf 7.x: confluent-kafka's protobuf 7.36.2 runs it).
if ! python3 -c "import grpc_tools.protoc" >/dev/null 2>&1; then
  echo "installing: grpcio-tools (generates the Protobuf tests' message classes)"
  python3 -m pip install -q --disable-pip-version-check grpcio-tools==1.85.4
fi
# The fuzz run of the HTTP API from its OpenAPI document (tests/api/openapi.rs).
if ! command -v schemathesis >/dev/null 2>&1; then
  echo "installing: schemathesis"
  python3 -m pip install -q --disable-pip-version-check schemathesis==4.32.5
fi
