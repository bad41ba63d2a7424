#!/usr/bin/env bash
# Prints the path of a cached tarball of a Debian 12 (bookworm) root file
# system, building it first when it is missing:
#   slim     debootstrap --variant=minbase, trimmed and set up as Debian's
#            official bookworm-slim image is (no documentation, manual pages
#            or translations, dpkg told to leave them out, apt told to keep
#            no caches): the base of the container image, imported as
#            docker.io/library/debian:bookworm-slim
#   systemd  minbase plus systemd, systemd-sysv, dbus, man-db and procps
#            (whose /bin/kill the unit's ExecReload runs; every Debian server
#            has it, minbase does not): booted with systemd-nspawn to run the
#            unit and install the Debian package
# The tarballs live in $BATV_TEST_CACHE (default /var/cache/batv-proxy-tests)
# and are kept between runs on one machine; delete them to start afresh.
# Building takes 30 to 90 s from Debian's mirror. Needs root, debootstrap
# and systemd-nspawn.
# Usage: debian-tree.sh slim|systemd
set -euo pipefail
kind=${1:?usage: debian-tree.sh slim|systemd}
case "$kind" in
  slim | systemd) ;;
  *) echo "debian-tree.sh: unknown kind $kind (slim or systemd)" >&2; exit 2 ;;
esac
cache=${BATV_TEST_CACHE:-/var/cache/batv-proxy-tests}
mirror=${BATV_TEST_MIRROR:-http://deb.debian.org/debian}
# Bump when what goes into a tree changes, so an old cache is not used.
version=4
mkdir -p "$cache"
minbase="$cache/bookworm-minbase-v$version.tar"
wanted="$cache/bookworm-$kind-v$version.tar"
exec 9>"$cache/.lock"
flock 9

# Trees of earlier versions of this script.
for old in "$cache"/bookworm-*-v*.tar; do
  [ -e "$old" ] || continue
  case "$old" in *"-v$version.tar") ;; *) rm -f "$old" ;; esac
done

work=""
cleanup() { [ -z "$work" ] || rm -rf "$work"; }
trap cleanup EXIT
fail() {
  tail -30 "$work/log" >&2
  exit 1
}

if [ -s "$wanted" ]; then
  echo "$wanted"
  exit 0
fi

if [ ! -s "$minbase" ]; then
  work=$(mktemp -d "$cache/build.XXXXXX")
  debootstrap --variant=minbase bookworm "$work/root" "$mirror" >"$work/log" 2>&1 || fail
  rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
  tar -C "$work/root" --numeric-owner -cf "$minbase.new" .
  mv "$minbase.new" "$minbase"
  rm -rf "$work"
fi

work=$(mktemp -d "$cache/build.XXXXXX")
mkdir "$work/root"
tar -C "$work/root" --numeric-owner -xf "$minbase"
case "$kind" in
  slim)
    # As debuerreotype's --slimify does for Debian's -slim images.
    cat >"$work/root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
    # As debuerreotype's docker-clean and friends: apt keeps no package
    # caches or translations in an image layer.
    printf '%s\n' \
      'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
      'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
      'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' >"$work/root/etc/apt/apt.conf.d/docker-clean"
    echo 'Acquire::Languages "none";' >"$work/root/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$work/root/etc/apt/apt.conf.d/docker-autoremove-suggests"
    rm -f "$work/root/var/cache/apt/"*.bin
    root="$work/root"
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$root/usr/share/groff/"* "$root/usr/share/info/"* "$root/usr/share/linda/"* \
      "$root/usr/share/lintian/overrides/"* "$root/usr/share/locale/"* "$root/usr/share/man/"*
    ;;
  systemd)
    systemd-nspawn -q -D "$work/root" --register=no --keep-unit --resolv-conf=copy-host \
      -E DEBIAN_FRONTEND=noninteractive sh -c '
        apt-get update -qq &&
        apt-get install -y -qq --no-install-recommends systemd systemd-sysv dbus man-db procps >/dev/null &&
        apt-get clean && rm -rf /var/lib/apt/lists/*' >"$work/log" 2>&1 || fail
    ;;
esac
tar -C "$work/root" --numeric-owner -cf "$wanted.new" .
mv "$wanted.new" "$wanted"
echo "$wanted"
