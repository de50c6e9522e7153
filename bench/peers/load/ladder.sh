#!/usr/bin/env bash
# Runs the load ladder against Tandem (tandem serve + tandem-load), the floor (bench/floor-relay,
# the bare relay that server load is judged against, driven by tandem-load --floor) and the peer
# servers (y-websocket, Hocuspocus; load.mjs).
#
# For every server and every step a fresh server process is started pinned to
# CPU 0 (taskset -c 0), the load generator runs pinned to CPU 1 (taskset -c 1),
# and the server is stopped afterwards. Everything is on 127.0.0.1.
# Results: one JSON line per run appended to --out, and a table per server.
#
#   bash ladder.sh                         # full ladder, both servers
#   bash ladder.sh --dry-run               # print what would run, run nothing
#   bash ladder.sh --servers yws --steps 20:4:5 --idle 200 --seconds 10
#
# See README.md in this folder.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
TANDEM="${TANDEM:-$ROOT/build/tools/tandem/tandem}"
TANDEM_LOAD="${TANDEM_LOAD:-$ROOT/build/bench/tandem-load}"
FLOOR_RELAY="${FLOOR_RELAY:-$ROOT/build/bench/floor-relay}"

SERVERS="tandem,yws,hocuspocus"
CLIENT="lite"
STEPS="1000:100:5,2000:20:5,10000:1000:1"   # clients:docs:rate
IDLE="1000:100"                              # clients:docs ('' or 'none' to skip)
SECONDS_MEASURED=20
WARMUP=5
DRAIN=5
SETTLE=5
PORT=18400
OUT="$HERE/results-$(date +%Y%m%d-%H%M%S).jsonl"
SERVER_CPU=0
GEN_CPU=1
GEN_NODE_OPTS="--max-old-space-size=8192"
CONNECT_TIMEOUT=300
DRY_RUN=0
PROBE=""
REPEAT=1

usage() {
  cat <<EOF
usage: bash ladder.sh [options]
  --servers LIST      comma-separated: tandem,floor,yws,hocuspocus (default $SERVERS)
                      (tandem: \$TANDEM and \$TANDEM_LOAD, floor: \$FLOOR_RELAY, default the
                      build/ folder)
  --client KIND       load generator clients: lite or provider (default $CLIENT; see README.md)
  --steps LIST        comma-separated clients:docs:rate (default $STEPS)
  --idle C[:D]        idle-memory run with C connections over D docs (default $IDLE; 'none' skips)
  --seconds S         measured window per load step (default $SECONDS_MEASURED)
  --warmup W          typing before the window (default $WARMUP)
  --drain T           max wait for stragglers after typing stops (default $DRAIN)
  --settle T          idle runs: wait after connecting before reading RSS (default $SETTLE)
  --port N            server port on 127.0.0.1 (default $PORT)
  --out FILE          JSON lines file to append to (default bench/peers/load/results-DATE.jsonl)
  --server-cpu N      CPU for the server (default $SERVER_CPU)
  --gen-cpu N         CPU for the load generator (default $GEN_CPU)
  --probe R           tandem and floor: two more clients on a quiet document, R edits/s each,
                      their latency reported apart (tandem-load --probe)
  --repeat N          run every step N times (default 1), servers taking turns
  --dry-run           print the commands and checks, run nothing
  -h, --help          this text
EOF
}

die() { echo "ladder.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --servers) SERVERS="${2:?}"; shift 2 ;;
    --client) CLIENT="${2:?}"; shift 2 ;;
    --steps) STEPS="${2:?}"; shift 2 ;;
    --idle) IDLE="${2?}"; shift 2 ;;
    --seconds) SECONDS_MEASURED="${2:?}"; shift 2 ;;
    --warmup) WARMUP="${2:?}"; shift 2 ;;
    --drain) DRAIN="${2:?}"; shift 2 ;;
    --settle) SETTLE="${2:?}"; shift 2 ;;
    --port) PORT="${2:?}"; shift 2 ;;
    --out) OUT="${2:?}"; shift 2 ;;
    --server-cpu) SERVER_CPU="${2:?}"; shift 2 ;;
    --gen-cpu) GEN_CPU="${2:?}"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --probe) PROBE="${2:?}"; shift 2 ;;
    --repeat) REPEAT="${2:?}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
is_num() { [[ "$1" =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
for v in "$SECONDS_MEASURED" "$WARMUP" "$DRAIN" "$SETTLE"; do is_num "$v" || die "not a number: $v"; done
is_uint "$PORT" && [ "$PORT" -ge 1024 ] && [ "$PORT" -le 65535 ] || die "bad --port $PORT"
is_uint "$SERVER_CPU" && is_uint "$GEN_CPU" || die "bad CPU number"

IFS=',' read -r -a SERVER_LIST <<<"$SERVERS"
for s in "${SERVER_LIST[@]}"; do
  case "$s" in tandem|floor|yws|hocuspocus) ;; *) die "unknown server '$s' (tandem, floor, yws or hocuspocus)" ;; esac
done
case "$CLIENT" in lite|provider) ;; *) die "unknown client '$CLIENT' (lite or provider)" ;; esac
IFS=',' read -r -a STEP_LIST <<<"$STEPS"
for st in "${STEP_LIST[@]}"; do
  [[ "$st" =~ ^[0-9]+:[0-9]+:[0-9]+(\.[0-9]+)?$ ]] || die "bad step '$st' (want clients:docs:rate)"
done
IDLE_C=""; IDLE_D=""
if [ -n "$IDLE" ] && [ "$IDLE" != "none" ]; then
  [[ "$IDLE" =~ ^[0-9]+(:[0-9]+)?$ ]] || die "bad --idle '$IDLE' (want clients[:docs])"
  IDLE_C="${IDLE%%:*}"
  if [[ "$IDLE" == *:* ]]; then IDLE_D="${IDLE#*:}"; else IDLE_D=$(( IDLE_C < 100 ? IDLE_C : 100 )); fi
fi

launcher() {
  case "$1" in
    yws) echo "$HERE/ywebsocket-server.mjs" ;;
    hocuspocus) echo "$HERE/hocuspocus-server.mjs" ;;
  esac
}

# The server and generator commands (run after taskset), as arrays.
TANDEM_DATA=""
server_cmd() { # server
  if [ "$1" = tandem ]; then
    SERVER_CMD=("$TANDEM" serve --host 127.0.0.1 --port "$PORT" --data "$TANDEM_DATA" --threads 1 --quiet 1
                --max-connections 30000 --max-connections-per-ip 30000)
  elif [ "$1" = floor ]; then
    SERVER_CMD=("$FLOOR_RELAY" --host 127.0.0.1 --port "$PORT")
  else
    SERVER_CMD=(node "$(launcher "$1")" --host 127.0.0.1 --port "$PORT")
  fi
}
gen_cmd() { # server args...
  local s="$1"; shift
  if [ "$s" = tandem ] || [ "$s" = floor ]; then
    local a=() skip=0
    for x in "$@"; do  # tandem-load takes load.mjs's options except --server and --client
      if [ "$skip" = 1 ]; then skip=0; continue; fi
      case "$x" in --server|--client) skip=1 ;; *) a+=("$x") ;; esac
    done
    GEN_CMD=("$TANDEM_LOAD" "${a[@]}")
    if [ "$s" = floor ]; then GEN_CMD+=(--floor); fi
    if [ -n "$PROBE" ] && [ "$mode_now" = load ]; then GEN_CMD+=(--probe "$PROBE"); fi
  else
    GEN_CMD=(node $GEN_NODE_OPTS "$HERE/load.mjs" "$@")
  fi
}

# Checks that need no server.
NCPU=$(nproc)
if [ "$SERVER_CPU" -ge "$NCPU" ] || [ "$GEN_CPU" -ge "$NCPU" ]; then
  die "this machine has $NCPU CPUs; cannot pin to CPU $SERVER_CPU and $GEN_CPU"
fi
NEED_NODE=0
for s in "${SERVER_LIST[@]}"; do [ "$s" = yws ] || [ "$s" = hocuspocus ] && NEED_NODE=1; done
if [ "$NEED_NODE" = 1 ]; then
  [ -d "$HERE/../node_modules/yjs" ] || [ "$DRY_RUN" = 1 ] || die "run 'npm ci' in bench/peers first"
fi
for s in "${SERVER_LIST[@]}"; do
  if [ "$s" = tandem ] && [ "$DRY_RUN" != 1 ]; then
    [ -x "$TANDEM" ] && [ -x "$TANDEM_LOAD" ] || die "build Tandem first (cmake --build build): need $TANDEM and $TANDEM_LOAD"
  fi
  if [ "$s" = floor ] && [ "$DRY_RUN" != 1 ]; then
    [ -x "$FLOOR_RELAY" ] && [ -x "$TANDEM_LOAD" ] || die "build Tandem first (cmake --build build): need $FLOOR_RELAY and $TANDEM_LOAD"
  fi
done

# Open files: each process needs one descriptor per connection plus some.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
MAXC=0
for st in "${STEP_LIST[@]}"; do c="${st%%:*}"; [ "$c" -gt "$MAXC" ] && MAXC=$c; done
[ -n "$IDLE_C" ] && [ "$IDLE_C" -gt "$MAXC" ] && MAXC=$IDLE_C

echo "ladder: servers=${SERVERS} client=${CLIENT} steps=${STEPS} idle=${IDLE:-none} window=${SECONDS_MEASURED}s warmup=${WARMUP}s drain=${DRAIN}s"
echo "ladder: server on CPU $SERVER_CPU, generator on CPU $GEN_CPU, port $PORT, open files limit $NOFILE, out $OUT"
if [ "$NOFILE" -lt $(( MAXC + 1024 )) ]; then
  echo "ladder: warning: open-files limit $NOFILE is below $((MAXC + 1024)) needed for $MAXC connections" >&2
fi

SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
  if [ -n "$TANDEM_DATA" ]; then rm -rf "$TANDEM_DATA"; TANDEM_DATA=""; fi
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

start_server() { # server log
  local s="$1" log="$2"
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "ladder: something already listens on 127.0.0.1:$PORT; choose another --port" >&2
    return 1
  fi
  if [ "$s" = tandem ]; then
    TANDEM_DATA="$(mktemp -d /tmp/tandem-ladder.XXXXXX)"
  fi
  server_cmd "$s"
  taskset -c "$SERVER_CPU" "${SERVER_CMD[@]}" >"$log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && kill -0 "$SERVER_PID" 2>/dev/null; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "ladder: $s did not start listening on 127.0.0.1:$PORT; log:" >&2
  cat "$log" >&2
  stop_server
  return 1
}

error_line() { # server mode clients docs rate message
  printf '{"server":"%s","client":"%s","mode":"%s","clients":%s,"docs":%s,"rate":%s,"error":"%s","date":"%s"}\n' \
    "$1" "$CLIENT" "$2" "$3" "$4" "${5:-null}" "$6" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$OUT"
}

# One run: server, mode (load|idle), clients, docs, rate.
run_one() {
  local s="$1" mode="$2" c="$3" d="$4" r="${5:-}"
  mode_now="$mode"
  local args=(--server "$s" --client "$CLIENT" --url "ws://127.0.0.1:$PORT" --clients "$c" --docs "$d" --json
              --connect-timeout "$CONNECT_TIMEOUT")
  local limit
  if [ "$mode" = idle ]; then
    args+=(--idle --settle "$SETTLE")
    limit=$(awk -v a="$CONNECT_TIMEOUT" -v b="$SETTLE" 'BEGIN{printf "%d", a+b+60}')
  else
    args+=(--rate "$r" --seconds "$SECONDS_MEASURED" --warmup "$WARMUP" --drain "$DRAIN")
    limit=$(awk -v a="$CONNECT_TIMEOUT" -v b="$SECONDS_MEASURED" -v w="$WARMUP" -v t="$DRAIN" 'BEGIN{printf "%d", a+b+w+t+60}')
  fi
  local slog="$HERE/.ladder-server.log" glog="$HERE/.ladder-gen.log"
  echo "--- $s $mode clients=$c docs=$d${r:+ rate=$r}"
  if [ "$DRY_RUN" = 1 ]; then
    TANDEM_DATA='$DATA'
    server_cmd "$s"
    gen_cmd "$s" "${args[@]}"
    TANDEM_DATA=""
    echo "  taskset -c $SERVER_CPU ${SERVER_CMD[*]} &"
    echo "  timeout ${limit}s taskset -c $GEN_CPU ${GEN_CMD[*]} --server-pid \$SERVER_PID >> $OUT"
    if [ "$s" = yws ] || [ "$s" = hocuspocus ]; then
      node "$HERE/load.mjs" "${args[@]}" --dry-run >/dev/null || die "load.mjs rejected: ${args[*]}"
    fi
    return 0
  fi
  if [ "$NOFILE" -lt $(( c + 1024 )) ]; then
    echo "  skipped: open-files limit $NOFILE too low for $c connections" >&2
    error_line "$s" "$mode" "$c" "$d" "$r" "open-files limit $NOFILE too low"
    return 0
  fi
  if ! start_server "$s" "$slog"; then
    error_line "$s" "$mode" "$c" "$d" "$r" "server did not start"
    return 0
  fi
  local line rc=0
  gen_cmd "$s" "${args[@]}"
  line=$(timeout "${limit}s" taskset -c "$GEN_CPU" "${GEN_CMD[@]}" --server-pid "$SERVER_PID" 2>"$glog") || rc=$?
  local alive=1
  kill -0 "$SERVER_PID" 2>/dev/null || alive=0
  stop_server
  if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
    local why="generator exit $rc"
    [ "$rc" = 124 ] && why="generator timed out after ${limit}s"
    [ "$alive" = 0 ] && why="$why; server died"
    echo "  failed: $why (generator log: $glog)" >&2
    tail -5 "$glog" >&2 || true
    error_line "$s" "$mode" "$c" "$d" "$r" "$why"
    return 0
  fi
  [ "$alive" = 0 ] && echo "  warning: server was not running at the end of the run" >&2
  echo "$line" >>"$OUT"
  echo "$line" | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const r = JSON.parse(s);
      if (r.mode === "idle") console.log(`  RSS per connection ${r.server_rss_per_conn_kb} KiB, errors ${JSON.stringify(r.errors)}`);
      else console.log(`  edits/s ${r.edits_per_s}/${r.edits_target_per_s}, p50 ${r.latency_ms.p50} ms, p99 ${r.latency_ms.p99} ms, ` +
        `undelivered ${r.undelivered}, server CPU ${r.server_cpu_util}, generator CPU ${r.gen_cpu_util}, errors ${JSON.stringify(r.errors)}` +
        (r.generator_saturated ? "  [GENERATOR SATURATED]" : ""));
    });'
}

mode_now=load
# Steps in order; within a step the servers take turns, so that every server of a step sees the
# machine in about the same state (it drifts between a fast and a slow state).
for st in "${STEP_LIST[@]}"; do
  IFS=':' read -r c d r <<<"$st"
  for _ in $(seq 1 "$REPEAT"); do
    for s in "${SERVER_LIST[@]}"; do
      run_one "$s" load "$c" "$d" "$r"
    done
  done
done
if [ -n "$IDLE_C" ]; then
  for s in "${SERVER_LIST[@]}"; do
    run_one "$s" idle "$IDLE_C" "$IDLE_D"
  done
fi

if [ "$DRY_RUN" = 1 ]; then
  echo "dry run: nothing was started"
  exit 0
fi
echo
echo "results: $OUT"
node "$HERE/report.mjs" "$OUT"
