#!/usr/bin/env bash
# TLS cost, measured in one run: TLS handshakes per second (openssl s_time
# against an implicit-TLS listener) and messages per second through the
# outbound listener with STARTTLS and without, plus the proxy's CPU per
# message in each case. Loopback only; everything started here is stopped.
#   benches/tls/run.sh [--messages N] [--clients N] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/../.."
messages=3000; clients=8; seconds=10
while [ $# -gt 0 ]; do
  case $1 in
    --messages) messages=$2; shift 2;;
    --clients) clients=$2; shift 2;;
    --seconds) seconds=$2; shift 2;;
    *) echo "usage: $0 [--messages N] [--clients N] [--seconds S]" >&2; exit 2;;
  esac
done
cargo build --release --locked -q
bin=$PWD/target/release/batv-proxy
work=$(mktemp -d /tmp/batv-tls-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out cert.pem -days 2 \
  -subj /CN=mx.example.com -addext subjectAltName=DNS:mx.example.com,IP:127.0.0.1 2>/dev/null
"$bin" keygen --output keys 2>/dev/null
free() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
sink=$(free); plain=$(free); starttls=$(free); implicit=$(free)
/usr/sbin/smtp-sink -u root "127.0.0.1:$sink" 1000 >/dev/null 2>&1 & pids+=($!)
listener() { printf '[[listener]]\nrole = "outbound"\nlisten = "127.0.0.1:%s"\nupstream = "127.0.0.1:%s"\nclient_identity = "none"\nmax_connections = 5000\nmax_connections_per_ip = 5000\n%s\n' "$1" "$sink" "$2"; }
tls() { printf '[listener.tls]\nmode = "%s"\ncert = "cert.pem"\nkey = "key.pem"\n' "$1"; }
{ printf '[batv]\nkey_file = "keys"\ndomains = ["example.com"]\n'
  listener "$plain" ""; listener "$starttls" "$(tls starttls)"; listener "$implicit" "$(tls implicit)"; } > cfg.toml
RUST_LOG=warn "$bin" run --config cfg.toml 2>proxy.log & proxy=$!; pids+=($proxy)
for p in $plain $starttls $implicit; do
  for _ in $(seq 50); do python3 -c "import socket;socket.create_connection(('127.0.0.1',$p),1)" 2>/dev/null && break; sleep 0.1; done
done
cpu() { awk '{print $14+$15}' "/proc/$proxy/stat"; }
tick=$(getconf CLK_TCK)
echo "# batv-proxy TLS benchmark — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs"
echo
# 1. Handshakes: full TLS handshakes (no resumption) per second, one client.
before=$(cpu)
hs=$(openssl s_time -connect "127.0.0.1:$implicit" -new -time "$seconds" 2>/dev/null | awk '/connections in .* real seconds/ {print $1/$4; exit}')
after=$(cpu)
handshakes=$(python3 -c "print(round($hs))")
hs_cpu=$(python3 -c "print(round(($after-$before)/$tick*1e6/max(1,$hs*$seconds)))")
echo "| measure | value |"
echo "|---|---|"
echo "| TLS handshakes/s (openssl s_time -new, 1 client, implicit TLS) | $handshakes |"
echo "| proxy CPU µs per handshake | $hs_cpu |"
# 2. Messages: the same Python client, plain vs STARTTLS vs implicit TLS.
for mode in plain starttls implicit; do
  port=${!mode}
  before=$(cpu)
  rate=$(python3 "$OLDPWD/benches/tls/client.py" "$mode" "$port" "$messages" "$clients")
  after=$(cpu)
  us=$(python3 -c "print(round(($after-$before)/$tick*1e6/$messages))")
  echo "| $mode: messages/s ($clients clients, $messages messages, 1 message per session) | $rate |"
  echo "| $mode: proxy CPU µs per message | $us |"
done
