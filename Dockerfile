# batv-proxy container image.
#   docker build -t batv-proxy .
# Copy dist/container/batv-proxy.toml, set your domains and your MTA's
# address in it (its listeners are on 0.0.0.0, the container's own
# interfaces), then:
#   docker run -d --name batv-proxy --stop-timeout 40 -p 25:2525 -p 587:2587 \
#     -v ./batv-proxy.toml:/etc/batv-proxy/batv-proxy.toml:ro \
#     -v batv-state:/var/lib/batv-proxy batv-proxy
# Keys and the Message-ID ledger live in the batv-state volume; keep it.
# compose.yaml runs the image in front of a Postfix container. With buildah
# or podman, build with --format docker to keep the HEALTHCHECK.
# The build stage runs the same command as CI (.ci/run): cargo build --locked.

FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# The target directory is a build cache (BuildKit, buildah): a rebuild
# compiles only what changed.
RUN --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin batv-proxy \
 && install -D -s target/release/batv-proxy /usr/local/bin/batv-proxy

FROM docker.io/library/debian:bookworm-slim
# ca-certificates: an upstream_tls listener without upstream_tls_ca checks
# the MTA's certificate against the system's trusted roots.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10025 --home-dir /var/lib/batv-proxy --shell /usr/sbin/nologin batv-proxy \
 && install -d -o batv-proxy -g batv-proxy -m 0700 /var/lib/batv-proxy \
 && install -d -m 0755 /etc/batv-proxy
COPY --from=build /usr/local/bin/batv-proxy /usr/local/bin/batv-proxy
COPY dist/container/batv-proxy.toml /etc/batv-proxy/batv-proxy.toml
USER batv-proxy
# Configuration (read-only) and keys/state (read-write) are volumes.
VOLUME ["/var/lib/batv-proxy"]
EXPOSE 2525 2587 9325
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s \
  CMD ["/usr/local/bin/batv-proxy", "health", "--config", "/etc/batv-proxy/batv-proxy.toml"]
ENTRYPOINT ["/bin/sh", "-c", "/usr/local/bin/batv-proxy keygen --output /var/lib/batv-proxy/keys --if-missing && exec /usr/local/bin/batv-proxy run --config /etc/batv-proxy/batv-proxy.toml --log-format json"]
