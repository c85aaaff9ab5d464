#!/usr/bin/env bash
# Builds the fully static x86_64-unknown-linux-musl release binary — the one the Dockerfile
# ships — and proves it is static. Installs what it needs only when missing: the Rust musl
# target and Debian's musl-tools (musl-gcc for librdkafka, libpq, OpenSSL, SQLite, zlib, zstd
# and mimalloc, all compiled from source and linked in; see the musl-only dependencies in
# Cargo.toml). perl and make are for OpenSSL's and librdkafka's own build scripts.
#
#   scripts/build-static.sh            # → $CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/tributary
#
# Respects CARGO_TARGET_DIR (default: ./target). Prints the binary's path on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl

need=()
command -v musl-gcc >/dev/null 2>&1 || need+=(musl-tools)
for tool in make perl file; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
dpkg -s gcc >/dev/null 2>&1 || need+=(gcc)
if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target"
fi

# C code for the musl target is compiled by musl-gcc (the cc crate reads CC_<target>); rustc
# links with its own self-contained musl CRT and libc.
export CC_x86_64_unknown_linux_musl=musl-gcc
# Release profile as in Cargo.toml, but no debug info and stripped: the image carries no
# symbols (panics still name the location through the panic message).
export CARGO_PROFILE_RELEASE_DEBUG=false
export CARGO_PROFILE_RELEASE_STRIP=symbols

start=$(date +%s)
cargo build --locked --release --target "$target" -p tributary --bin tributary
echo "static build: $(( $(date +%s) - start )) s"

bin="${CARGO_TARGET_DIR:-target}/$target/release/tributary"
# Static means: no program interpreter (PT_INTERP) and no shared library needed (DT_NEEDED).
# Rust links musl binaries as static-pie: a dynamic section remains, holding only the
# relocations the binary applies to itself at start so it can load at a random address (ASLR).
# `-C relocation-model=static` would drop it, and ASLR with it.
if readelf -lW "$bin" | grep -q 'INTERP' || readelf -dW "$bin" | grep -q '(NEEDED)'; then
  echo "error: $bin is dynamically linked:" >&2
  readelf -dW "$bin" >&2 || true
  exit 1
fi
file "$bin"
file "$bin" | grep -Eq 'static(-pie)? linked|statically linked' || { echo "error: file does not call $bin static" >&2; exit 1; }
ldd_says=$(ldd "$bin" 2>&1 || true)
case "$ldd_says" in
  *"not a dynamic executable"*|*"statically linked"*) echo "ldd: $(echo $ldd_says)" ;;
  *) echo "error: ldd lists libraries: $ldd_says" >&2; exit 1 ;;
esac
echo "size: $(stat -c %s "$bin") bytes ($(( $(stat -c %s "$bin") / 1024 / 1024 )) MiB)"
echo "$bin"
