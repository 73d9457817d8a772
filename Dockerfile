# syntax=docker/dockerfile:1
# Multi-stage: build the one static-ish binary, ship it on debian-slim.
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits don't rebuild the whole dependency tree.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked --bin canary-proxy 2>/dev/null || true
COPY . .
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin canary-proxy \
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
