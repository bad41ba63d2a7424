# batv-proxy container image.
#   docker build -t batv-proxy .
#   docker run -v ./config:/etc/batv-proxy:ro -v batv-state:/var/lib/batv-proxy -p 25:2525 batv-proxy
# The build stage runs the same command as CI (.ci/run): cargo build --locked.

FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin batv-proxy \
 && strip target/release/batv-proxy

FROM docker.io/library/debian:bookworm-slim
RUN useradd --system --uid 10025 --home-dir /var/lib/batv-proxy --shell /usr/sbin/nologin batv-proxy \
 && install -d -o batv-proxy -g batv-proxy -m 0700 /var/lib/batv-proxy \
 && install -d -m 0755 /etc/batv-proxy
COPY --from=build /src/target/release/batv-proxy /usr/local/bin/batv-proxy
COPY dist/container/batv-proxy.toml /etc/batv-proxy/batv-proxy.toml
USER batv-proxy
# Configuration (read-only) and keys/state (read-write) are volumes.
VOLUME ["/var/lib/batv-proxy"]
EXPOSE 2525 2587 9325
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s \
  CMD ["/usr/local/bin/batv-proxy", "health", "--config", "/etc/batv-proxy/batv-proxy.toml"]
ENTRYPOINT ["/bin/sh", "-c", "/usr/local/bin/batv-proxy keygen --output /var/lib/batv-proxy/keys --if-missing && exec /usr/local/bin/batv-proxy run --config /etc/batv-proxy/batv-proxy.toml --log-format json"]
