#!/usr/bin/env bash
# Prints the path of a cached tarball of a Debian 12 (bookworm) root file
# system, building it first when it is missing:
#   slim     debootstrap --variant=minbase: the base of the container image
#            (imported as docker.io/library/debian:bookworm-slim)
#   systemd  slim plus systemd, systemd-sysv, dbus, man-db and procps (whose
#            /bin/kill the unit's ExecReload runs; every Debian server has it,
#            minbase does not): booted with systemd-nspawn to run the unit
#            and install the Debian package
# The tarballs live in $BATV_TEST_CACHE (default /var/cache/batv-proxy-tests)
# and are kept between runs on one machine; delete them to start afresh.
# Building takes about 90 s (slim) and 30 s more (systemd) from Debian's
# mirror. Needs root, debootstrap and systemd-nspawn.
# Usage: debian-tree.sh slim|systemd
set -euo pipefail
kind=${1:?usage: debian-tree.sh slim|systemd}
cache=${BATV_TEST_CACHE:-/var/cache/batv-proxy-tests}
mirror=${BATV_TEST_MIRROR:-http://deb.debian.org/debian}
# Bump when what goes into a tree changes, so an old cache is not used.
version=2
mkdir -p "$cache"
slim="$cache/bookworm-slim-v$version.tar"
systemd="$cache/bookworm-systemd-v$version.tar"
exec 9>"$cache/.lock"
flock 9

# Trees of earlier versions of this script.
for old in "$cache"/bookworm-*-v*.tar; do
  case "$old" in "$slim" | "$systemd") ;; *) rm -f "$old" ;; esac
done

work=""
cleanup() { [ -z "$work" ] || rm -rf "$work"; }
trap cleanup EXIT

if [ ! -s "$slim" ]; then
  work=$(mktemp -d "$cache/build.XXXXXX")
  debootstrap --variant=minbase bookworm "$work/root" "$mirror" >"$work/log" 2>&1 || {
    tail -30 "$work/log" >&2
    exit 1
  }
  # What Debian's own slim image leaves out: downloaded packages, lists.
  rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
  tar -C "$work/root" --numeric-owner -cf "$slim.new" .
  mv "$slim.new" "$slim"
  rm -rf "$work"
  work=""
fi

if [ "$kind" = systemd ] && [ ! -s "$systemd" ]; then
  work=$(mktemp -d "$cache/build.XXXXXX")
  mkdir "$work/root"
  tar -C "$work/root" --numeric-owner -xf "$slim"
  systemd-nspawn -q -D "$work/root" --register=no --keep-unit --resolv-conf=copy-host \
    -E DEBIAN_FRONTEND=noninteractive sh -c '
      apt-get update -qq &&
      apt-get install -y -qq --no-install-recommends systemd systemd-sysv dbus man-db procps >/dev/null &&
      apt-get clean && rm -rf /var/lib/apt/lists/*' >"$work/log" 2>&1 || {
    tail -30 "$work/log" >&2
    exit 1
  }
  tar -C "$work/root" --numeric-owner -cf "$systemd.new" .
  mv "$systemd.new" "$systemd"
  rm -rf "$work"
  work=""
fi

case "$kind" in
  slim) echo "$slim" ;;
  systemd) echo "$systemd" ;;
  *) echo "debian-tree.sh: unknown kind $kind (slim or systemd)" >&2; exit 2 ;;
esac
