#!/usr/bin/env bash
# Instructions per review of whole servers, under callgrind: pod-hardener (`serve --dev`, the
# static default policy, log level warn as in the load harness) and the load harness's two
# baselines (bare, and parsing each review into a serde_json::Value), each answering the load
# harness's reviews over one keep-alive HTTP/1.1 + TLS 1.3 connection on loopback. Each server
# runs twice, for FEW and for FEW + 200 reviews; the difference divided by 200 leaves out start-up,
# the TLS handshake and shutdown. Deterministic where the load harness's throughput on a shared
# 2-core VM is not, and it counts what `benches/instructions.rs` does not: hyper, rustls, the
# routes, metrics and the answer's bytes.
#
# Not run in CI: 42 s of measuring on this project's 2-vCPU Intel VM, plus the release builds when no binaries
# are given. Needs valgrind and curl.
# Usage: benches/server-instructions.sh [HARDENER_BIN [LOAD_BIN]]
#   HARDENER_BIN: default the cargo-built release binary (built if missing);
#   LOAD_BIN: the load harness's binary (the baselines' server), default the one cargo builds.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
hardener="${1:-}"
load="${2:-}"
if [[ -z "$hardener" ]]; then
  cargo build --locked --release --bin pod-hardener >&2
  hardener="$target/release/pod-hardener"
fi
if [[ -z "$load" ]]; then
  load="$(cargo bench --locked --bench load --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\/load-[^"]*\)".*/\1/p' | tail -n 1)"
fi
for tool in valgrind curl; do
  command -v "$tool" >/dev/null || { echo "server-instructions: needs $tool" >&2; exit 2; }
done

work="$(mktemp -d -t pod-hardener-server-instructions-XXXXXX)"
server=""
stop_server() {
  if [[ -n "$server" ]]; then
    kill -TERM "$server" 2>/dev/null || true
    # Bounded: callgrind writes its counts as the process ends.
    for _ in $(seq 1 120); do kill -0 "$server" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
  fi
}
trap 'stop_server; rm -rf "$work"' EXIT

# The baselines' certificate (pod-hardener's development mode makes its own), and the load
# harness's own reviews.
"$hardener" certs --out-dir "$work/certs" --dns localhost --ip 127.0.0.1 >/dev/null 2>&1
"$load" --dump-payloads "$work/payloads" >/dev/null
port=18443
few=10
many=$((few + 200))

# count SERVER PAYLOAD PATH REVIEWS: the server's total instructions for REVIEWS reviews. It runs
# in a command substitution's subshell, which does not inherit the EXIT trap: its own stops the
# server it started, however it ends.
count() {
  local kind=$1 payload=$2 path=$3 reviews=$4 out="$work/callgrind.out" ca=""
  trap stop_server EXIT
  rm -f "$out"*
  case "$kind" in
    pod-hardener)
      # Development mode: the static default policy, no cluster; its certificate is its own.
      valgrind --tool=callgrind --callgrind-out-file="$out" "$hardener" serve --dev \
        --dev-dir "$work/dev" --listen "127.0.0.1:$port" \
        --metrics-listen "127.0.0.1:$((port + 1))" --log-level warn >"$work/server.log" 2>&1 &
      ca="$work/dev/ca.crt"
      ;;
    baseline | parsing-baseline)
      local parse=()
      [[ "$kind" == parsing-baseline ]] && parse=(--parse)
      # The baseline serves until its stdin closes: a FIFO held open by this script.
      rm -f "$work/stdin" && mkfifo "$work/stdin"
      valgrind --tool=callgrind --callgrind-out-file="$out" "$load" --baseline-server "$port" \
        "$work/certs/tls.crt" "$work/certs/tls.key" "${parse[@]}" \
        <"$work/stdin" >"$work/server.log" 2>&1 &
      exec 9>"$work/stdin"
      ca="$work/certs/ca.crt"
      ;;
  esac
  server=$!
  local ready=""
  for _ in $(seq 1 120); do
    if [[ -f "$ca" ]] && curl -s --cacert "$ca" -o /dev/null "https://127.0.0.1:$port/"; then
      ready=1
      break
    fi
    kill -0 "$server" 2>/dev/null || break
    sleep 0.5
  done
  if [[ -z "$ready" ]]; then
    echo "server-instructions: $kind did not start:" >&2
    tail -n 20 "$work/server.log" >&2
    exit 1
  fi
  local urls=()
  for _ in $(seq 1 "$reviews"); do urls+=("https://127.0.0.1:$port$path"); done
  curl -sS --http1.1 --max-time 600 --cacert "$ca" \
    -H 'Content-Type: application/json' --data-binary "@$payload" "${urls[@]}" >"$work/answers"
  exec 9>&- 2>/dev/null || true
  stop_server
  grep -h '^summary:' "$out"* | awk '{s += $2} END {print s}'
}

printf '%-18s %-10s %-9s %s\n' server payload path 'instructions per review'
for row in "parsing-baseline 3k /mutate" "baseline 3k /mutate" \
  "pod-hardener 3k /mutate" "pod-hardener 3k /validate" \
  "parsing-baseline 30k /mutate" "pod-hardener 30k /mutate"; do
  read -r kind payload path <<<"$row"
  file="$work/payloads/$payload.json"
  a=$(count "$kind" "$file" "$path" "$few")
  b=$(count "$kind" "$file" "$path" "$many")
  printf '%-18s %-10s %-9s %d\n' "$kind" "$payload" "$path" $(((b - a) / (many - few)))
done
