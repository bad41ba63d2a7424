#!/usr/bin/env bash
# Whole-proxy load benchmark: builds the release binary, then runs load.py.
# Usage: benches/load/run.sh [--quick] [--syscalls] [--json FILE] [...]
#        (benches/load/run.sh --help lists every option)
# Needs root (smtp-sink -u root), Postfix's smtp-source/smtp-sink, haproxy,
# python3, taskset; strace for --syscalls. Sends traffic to 127.0.0.1 only.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo build --release --quiet
# Thousands of idle sessions need descriptors: raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)"
exec python3 "$root/benches/load/load.py" "$@"
