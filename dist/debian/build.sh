#!/usr/bin/env bash
# Builds the Debian package, target/debian/batv-proxy_VERSION_amd64.deb,
# with cargo-deb (cargo install --locked cargo-deb): the release binary as
# /usr/bin/batv-proxy, the systemd unit, the annotated configuration as
# /etc/batv-proxy/batv-proxy.toml (a conffile) and as an example, the guides,
# the Prometheus alert rules and Grafana dashboard, manual pages generated
# from the command-line definitions, and bash, zsh and fish completions.
# The maintainer scripts (postinst, prerm, postrm) are beside this file.
# Prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v cargo-deb >/dev/null; then
  echo "dist/debian/build.sh needs cargo-deb: cargo install --locked cargo-deb" >&2
  exit 1
fi
cargo build --release --locked
bin=target/release/batv-proxy
assets=target/debian-assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
"$bin" man --output "$assets/man"
gzip -9n "$assets"/man/*.1
for shell in bash zsh fish; do
  "$bin" completions "$shell" >"$assets/completions/$shell"
done
# The unit as installed by the package: the binary is /usr/bin's, and the
# manual pages are there to point at.
sed -e 's|/usr/local/bin/batv-proxy|/usr/bin/batv-proxy|g' \
    -e 's|^Documentation=|Documentation=man:batv-proxy(1) |' dist/batv-proxy.service >"$assets/batv-proxy.service"
# The annotated configuration with the paths the unit uses.
{
  echo "# Installed by the batv-proxy Debian package; your changes are kept on upgrades."
  echo "# Keys and state live in /var/lib/batv-proxy; the unit creates the key file"
  echo "# at its first start. Then: systemctl enable --now batv-proxy"
  sed -e 's|^state_dir = .*|state_dir = "/var/lib/batv-proxy"|' \
      -e 's|^key_file = .*|key_file = "/var/lib/batv-proxy/keys"|' config/batv-proxy.toml
} >"$assets/batv-proxy.toml"
grep -q '^state_dir = "/var/lib/batv-proxy"$' "$assets/batv-proxy.toml"
grep -q '^key_file = "/var/lib/batv-proxy/keys"$' "$assets/batv-proxy.toml"
rm -f target/debian/batv-proxy_*.deb
cargo deb --no-build --locked >&2
version=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["packages"][0]["version"])')
ls target/debian/batv-proxy_"$version"*_amd64.deb
