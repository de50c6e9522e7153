#!/usr/bin/env bash
# History reads through the HTTP API, end to end: each trace imported into a fresh SQLite store
# (`tandem import`), `tandem serve` pinned to core 0 with one I/O thread, and curl on core 1
# timing the answers (time_total: connect, request, the server's work, the JSON, the transfer).
#   bench/history_http.sh [--runs N] [--tandem BIN] TRACE.json[.gz]...
# Per trace: the first blame (the history read from the log and built: what an uncached
# document costs), then the median over N runs of: blame of the whole text, a history page
# (50 sessions), the first-to-last diff, and 100 random slider points (a diff from 500 events
# before the point to it: the text then and its change), median and slowest. Milliseconds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=5
tandem="$root/build/tools/tandem/tandem"
traces=()
while (($#)); do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --tandem) tandem="$2"; shift 2 ;;
    *) traces+=("$1"); shift ;;
  esac
done
((${#traces[@]})) || { echo "usage: bench/history_http.sh [--runs N] [--tandem BIN] TRACE..." >&2; exit 2; }

work=$(mktemp -d)
server=""
cleanup() {
  [[ -n "$server" ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ms() { taskset -c 1 curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port$1" | awk '{printf "%.2f\n", $1 * 1000}'; }
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
slowest() { sort -n | tail -1; }

printf '%-18s %9s %10s %8s %8s %8s %10s %10s\n' trace events first_blame blame page diff slider_med slider_max
for t in "${traces[@]}"; do
  name=$(basename "$t" | sed 's/\.json.*//')
  data="$work/$name"
  mkdir -p "$data"
  "$tandem" import --data "$data" --doc "$name" "$t" >/dev/null
  taskset -c 0 "$tandem" serve --data "$data" --port "$port" --threads 1 --quiet 1 >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -s "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  events=$(curl -s "http://127.0.0.1:$port/api/docs/$name" | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["events"])')
  first=$(ms "/api/docs/$name/blame")
  blame=$(for _ in $(seq "$runs"); do ms "/api/docs/$name/blame"; done | median)
  page=$(for _ in $(seq "$runs"); do ms "/api/docs/$name/history"; done | median)
  diff=$(for _ in $(seq "$runs"); do ms "/api/docs/$name/diff?from=1&to=$events"; done | median)
  points=$(/usr/bin/python3 -c "import random; r = random.Random(1); print(' '.join(str(r.randrange(500, $events)) for _ in range(100)))")
  slider=$(for p in $points; do ms "/api/docs/$name/diff?from=$((p - 500))&to=$p"; done)
  printf '%-18s %9s %10s %8s %8s %8s %10s %10s\n' "$name" "$events" "$first" "$blame" "$page" "$diff" \
    "$(median <<<"$slider")" "$(slowest <<<"$slider")"
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=""
done
