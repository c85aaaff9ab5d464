# tributary: one static musl binary in an empty image.
#
#   docker build -t tributary --build-arg GIT_COMMIT=$(git rev-parse --short=12 HEAD) .
#   docker run --rm -p 8080:8080 -e TRIBUTARY_KAFKA__BROKERS=kafka:9092 -e TRIBUTARY_KAFKA__TOPICS=events tributary
#
# The builder runs scripts/build-static.sh — the same script CI runs natively — which compiles
# librdkafka, libpq, OpenSSL, SQLite, zlib, zstd and mimalloc from source and links them all
# into one static x86_64-unknown-linux-musl binary, then checks that it is static.

ARG RUST_IMAGE=rust:1-slim-bookworm

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# musl-gcc, make and perl (OpenSSL's and librdkafka's build scripts); file for the static check.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends musl-tools make perl file ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
ENV CARGO_TARGET_DIR=/src/target

# 1. Dependencies only: the real manifests with empty sources, so this layer (the long part:
#    librdkafka, OpenSSL, libpq, every crate) is reused until Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock build.rs ./
COPY actors/Cargo.toml actors/build.rs actors/
COPY bench/Cargo.toml bench/
COPY memops/Cargo.toml memops/
COPY testdb/Cargo.toml testdb/
# Patched crates ([patch.crates-io]): sources, not placeholders.
COPY vendor vendor
COPY scripts/build-static.sh scripts/
RUN mkdir -p src actors/src bench/src memops/src testdb/src migrations \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs actors/src/lib.rs memops/src/lib.rs testdb/src/lib.rs \
 && echo 'fn main() {}' > bench/src/main.rs
RUN BUILD_GIT_COMMIT=deps scripts/build-static.sh

# 2. The real sources. COPY keeps the files' old mtimes, so touch them: cargo must see them as
#    newer than the placeholder build.
COPY migrations migrations
COPY actors/src actors/src
COPY src src
COPY bench/src bench/src
COPY memops/src memops/src
COPY testdb/src testdb/src
ARG GIT_COMMIT=unknown
RUN touch src/main.rs src/lib.rs actors/src/lib.rs memops/src/lib.rs testdb/src/lib.rs \
 && BUILD_GIT_COMMIT=${GIT_COMMIT} scripts/build-static.sh \
 && mkdir -p /out/data /out/etc \
 && cp target/x86_64-unknown-linux-musl/release/tributary /out/tributary \
 && /out/tributary --version \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\ntributary:x:10001:10001:tributary:/data:/sbin/nologin\n' > /out/etc/passwd \
 && printf 'root:x:0:\ntributary:x:10001:\n' > /out/etc/group

# An empty image: the binary, CA certificates (Kafka TLS, PostgreSQL sslmode=verify-full) and a
# passwd entry so the process has a name. No shell, no package manager.
FROM scratch
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /out/tributary /tributary
# The unprivileged user (uid 10001) and its writable working directory: the SQLite default
# (sqlite://tributary.db) lands in /data.
COPY --from=builder --chown=10001:10001 /out/data /data
COPY --from=builder /out/etc/passwd /out/etc/group /etc/
USER 10001:10001
WORKDIR /data
# The OpenSSL built into the binary looks for CA certificates under its own default directory
# (/usr/local/ssl); SSL_CERT_FILE points it at the bundle instead — for librdkafka's TLS and for
# libpq's sslrootcert=system (verify-full against public CAs).
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    TRIBUTARY_HTTP__BIND=0.0.0.0:8080 \
    TRIBUTARY_LOG__FORMAT=json
EXPOSE 8080
# `healthcheck` probes http://127.0.0.1:<port of http.bind>/health (it reads TRIBUTARY_HTTP__BIND).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/tributary", "healthcheck"]
ENTRYPOINT ["/tributary"]
CMD ["run"]
