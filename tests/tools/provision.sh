#!/usr/bin/env bash
# Installs what the integration tests need on Debian, when it is missing:
# every package of .ci/packages (the one list CI installs too), and Exim's
# binary unpacked beside the build (Exim and Postfix packages conflict, so
# Exim is not installed). The binary is exim4-daemon-heavy's:
# exim4-daemon-light is built without PROXY protocol support (hosts_proxy),
# which the Exim guide tests. Idempotent; needs root only when something is
# missing.
# Usage: provision.sh [EXIM_DIR]   (default: target/tmp/exim)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
exim_dir=${1:-"$root/target/tmp/exim"}
read -r -a wanted <<<"$(sed 's/#.*//' "$root/.ci/packages" | tr -s ' \n\t' ' ')"
need=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || need+=("$package")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "provision: missing ${need[*]}; run as root or: apt-get install --no-install-recommends ${need[*]}" >&2
    exit 1
  fi
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# An earlier exim4-daemon-light unpack lacks PROXY support: replace it.
if [ -x "$exim_dir/usr/sbin/exim4" ]; then
  features=$("$exim_dir/usr/sbin/exim4" -C /dev/null -bV 2>/dev/null | grep "^Support for:" || true)
  case "$features " in *" PROXY "*) ;; *) rm -rf "$exim_dir" ;; esac
fi
if [ ! -x "$exim_dir/usr/sbin/exim4" ]; then
  work=$(mktemp -d)
  (cd "$work" && apt-get download exim4-daemon-heavy >/dev/null 2>&1) || {
    [ "$(id -u)" = 0 ] && apt-get update -qq && (cd "$work" && apt-get download exim4-daemon-heavy >/dev/null)
  }
  mkdir -p "$exim_dir"
  dpkg -x "$work"/exim4-daemon-heavy_*.deb "$exim_dir"
  rm -rf "$work"
fi
# Exim refuses to run without its user.
id Debian-exim >/dev/null 2>&1 || { [ "$(id -u)" = 0 ] && useradd --system --no-create-home Debian-exim; } || true
echo "provision: ok"
