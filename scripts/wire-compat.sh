#!/usr/bin/env bash
# Checks that this tree's server and clients talk to an older build's, both ways, over loopback:
#   scripts/wire-compat.sh REV [OLD_BUILD_DIR]
# builds REV (a commit: the last release, the build before a protocol change) in a worktree under
# build/compat-REV (or uses OLD_BUILD_DIR, a build of it), then, for the old server and for this
# tree's server in turn: an old and a new note-sync append a line each; both keep a line written
# while the server is down in their --state file and send it when it is back (resend and
# acknowledgement across versions); the server's text and what both clients read must hold all
# four lines; then tandem-load of the other version types for 4 s and must see every
# edit delivered with no error. This tree's build is build/ (scripts/build.sh release).
# Not part of the test command (it builds a second tree); run it before changing the protocol.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rev="${1:?usage: scripts/wire-compat.sh REV [OLD_BUILD_DIR]}"
new="$root/build"
old="${2:-}"
say() { echo "wire-compat: $*"; }
for b in tools/tandem/tandem examples/note-sync bench/tandem-load; do
  [[ -x "$new/$b" ]] || { say "$new/$b is missing: scripts/build.sh release first" >&2; exit 2; }
done
if [[ -z "$old" ]]; then
  tree="$root/build/compat-$rev"
  [[ -d "$tree" ]] || git -C "$root" worktree add --detach "$tree" "$rev" >/dev/null
  old="$tree/build"
  say "building $rev in $tree"
  cmake -S "$tree" -B "$old" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTANDEM_BUILD_TESTS=OFF >/dev/null
  cmake --build "$old" -j"$(nproc)" --target tandem note-sync tandem-load >/dev/null
fi

work="$(mktemp -d)"
server=0
cleanup() {
  [[ "$server" == 0 ]] || kill "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
failed=0
port=$((20000 + RANDOM % 20000))

start() {  # $1: build, $2: data folder
  "$1/tools/tandem/tandem" serve --port "$port" --data "$2" --quiet >>"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return
    sleep 0.1
  done
  say "the server did not start" >&2
  exit 1
}
stop() {
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=0
}
note() {  # $1: build, then note-sync's arguments after the URL; stdin: its input
  local b="$1"
  shift
  timeout 30 "$b/examples/note-sync" "ws://127.0.0.1:$port/ws/note" "$@"
}

check() {  # $1: the server's build, $2: its name
  local srv="$1" name="$2"
  local data="$work/$name"
  start "$srv" "$data"
  printf 'from the old client\n:quit\n' | note "$old" >/dev/null
  printf 'from the new client\n:quit\n' | note "$new" >/dev/null
  stop
  printf 'offline, old client\n:quit\n' | note "$old" --state "$work/$name-old.state" >/dev/null 2>&1 || true
  printf 'offline, new client\n:quit\n' | note "$new" --state "$work/$name-new.state" >/dev/null 2>&1 || true
  start "$srv" "$data"
  printf ':quit\n' | note "$old" --state "$work/$name-old.state" >/dev/null
  printf ':quit\n' | note "$new" --state "$work/$name-new.state" >/dev/null
  local text
  text="$(curl -sf "http://127.0.0.1:$port/api/docs/note" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["text"], end="")')"
  for line in "from the old client" "from the new client" "offline, old client" "offline, new client"; do
    if ! grep -qxF "$line" <<<"$text"; then
      say "FAIL: $name server: '$line' is missing from the note" >&2
      failed=1
    fi
  done
  local build
  for build in "$old" "$new"; do
    local seen
    seen="$(printf ':show\n:quit\n' | note "$build")"
    for line in "from the old client" "from the new client" "offline, old client" "offline, new client"; do
      if ! grep -qxF "$line" <<<"$seen"; then
        say "FAIL: $name server: a client of $build does not see '$line'" >&2
        failed=1
      fi
    done
  done
  local gen="$old"
  [[ "$srv" == "$old" ]] && gen="$new"
  local load
  load="$("$gen/bench/tandem-load" --url "ws://127.0.0.1:$port" --clients 40 --docs 4 --rate 10 --seconds 4 --warmup 1 --json)"
  if ! /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.argv[1])
e = r.get("errors", {})
bad = r.get("undelivered", 1) != 0 or r.get("synced") != r.get("clients") or not r.get("deliveries_observed") or any(e.get(k) for k in ("closes", "conn_errors", "connect_failed")) or e.get("server_errors")
sys.exit(1 if bad else 0)' "$load"; then
    say "FAIL: $name server: tandem-load of the other build: $load" >&2
    failed=1
  fi
  stop
  say "$name server: note-sync old and new, offline and back, and tandem-load of the other build: $([[ $failed == 0 ]] && echo ok || echo FAILED)"
}

check "$old" "old"
check "$new" "new"
exit "$failed"
