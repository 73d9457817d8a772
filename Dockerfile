# syntax=docker/dockerfile:1
# Multi-stage: build the one static-ish binary, ship it on debian-slim.
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits don't rebuild the whole dependency tree:
# every target Cargo.toml declares gets a stub (cargo refuses a manifest whose
# target files are missing), the dependencies are built, and the stubs' own
# artifacts are removed so the real sources are always compiled. A failure
# here fails the image build (scripts/check-dockerfile.sh checks both).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/telemetry.rs \
    && cargo build --release --locked --bin canary-proxy \
    && rm -rf src benches target/release/canary-proxy* \
        target/release/deps/canary_proxy-* target/release/deps/libcanary_proxy-* \
        target/release/.fingerprint/canary-proxy-*
COPY . .
RUN cargo build --release --locked --bin canary-proxy \
    && strip target/release/canary-proxy

FROM debian:bookworm-slim
# curl: compose health checks and the load generator use the same image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/canary-proxy /usr/local/bin/canary-proxy
COPY config/compose/ /etc/canary-proxy/
USER 65534:65534
EXPOSE 8080 9901
ENTRYPOINT ["canary-proxy"]
CMD ["run", "--config", "/etc/canary-proxy/canary-proxy.yaml"]
