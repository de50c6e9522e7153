#!/usr/bin/env bash
# A new editor joining a long document over a live server: the trace imported into a fresh
# SQLite store (`tandem import`), `tandem serve` pinned to core 0 with one I/O thread, and
# tandem-join on core 1 joining empty replicas over loopback, protocol 3 (SNAPSHOT) and 2 (the
# whole history as OPS) taking turns (see bench/tandem_join.cc for what is counted).
#   bench/join.sh [--joins N] [--rounds R] [--tandem BIN] TRACE.json[.gz]...
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
joins=100
rounds=5
tandem="$root/build/tools/tandem/tandem"
join="$root/build/bench/tandem-join"
traces=()
while (($#)); do
  case "$1" in
    --joins) joins="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --tandem) tandem="$2"; shift 2 ;;
    *) traces+=("$1"); shift ;;
  esac
done
((${#traces[@]})) || { echo "usage: bench/join.sh [--joins N] [--rounds R] [--tandem BIN] TRACE..." >&2; exit 2; }

work=$(mktemp -d)
server=""
cleanup() {
  [[ -n "$server" ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for t in "${traces[@]}"; do
  name=$(basename "$t" | sed 's/\.json.*//')
  data="$work/$name"
  mkdir -p "$data"
  "$tandem" import --data "$data" --doc "$name" "$t" >/dev/null
  taskset -c 0 "$tandem" serve --data "$data" --port "$port" --threads 1 --quiet 1 >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -s "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  echo "## $name"
  taskset -c 1 "$join" --url "ws://127.0.0.1:$port/ws/$name" --server-pid "$server" --joins "$joins" --rounds "$rounds"
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=""
done
