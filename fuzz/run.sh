#!/usr/bin/env bash
# Builds every libFuzzer target with clang-14 (-fsanitize=fuzzer,address,undefined) and runs
# each for SECONDS seconds on its corpus: the seeds in fuzz/corpus/<target>/ and past findings in
# fuzz/regressions/<target>/, copied to a scratch folder that takes the new inputs. Exits non-zero
# on any finding (1) or when a target does not build (3); crashing inputs are kept in build-fuzz/findings/.
#   fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
seconds="${1:-60}"
shift || true
targets=("$@")
((${#targets[@]})) || targets=(codec_fuzz batch_fuzz protocol_fuzz session_fuzz convergence_fuzz utf_fuzz markdown_fuzz)
out="$root/build-fuzz"
mkdir -p "$out/obj" "$out/findings"

cxx="${CXX_FUZZ:-clang++-14}"
command -v "$cxx" >/dev/null || { echo "fuzz: $cxx not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
       -DBOOST_ASIO_DISABLE_CO_AWAIT -DMSGPACK_NO_BOOST
       -I "$root/crdt/include" -I "$root/crdt/src" -I "$root/crdt/codec/include" -I "$root/crdt/codec/src" -I "$root/crdt/sync/include" -I "$root/crdt/store/include" -I "$root/crdt/render/include"
       -I "$root/net/include" -I "$root/net/src/server" -I "$root/net/src/doors")

# The library code, compiled once per change, two at a time.
jobs="$(nproc)"
objs=()
pids=()
# The server side of net/ for session_fuzz: sessions and rooms (not the listener or the client),
# with what a server refers to (the JWT verifier it may hold); rooms need no webhook code.
for src in "$root"/crdt/src/*.cc "$root/crdt/codec/src/codec.cc" "$root"/crdt/sync/src/*.cc "$root"/crdt/store/src/*.cc \
           "$root"/net/src/server/{auth,log,metrics,room,session,ws_frame}.cc "$root/net/src/doors/jwt.cc" \
           "$root"/crdt/render/src/*.cc; do
  o="$out/obj/$(basename "$(dirname "$(dirname "$src")")")-$(basename "${src%.cc}").o"
  if [[ ! -f "$o" || "$src" -nt "$o" || -n "$(find "$root/crdt" "$root/net/include" "$root/net/src" -name '*.h' -newer "$o" -print -quit)" ]]; then
    echo "fuzz: compile $(realpath --relative-to="$root" "$src")"
    "$cxx" "${flags[@]}" -c "$src" -o "$o" &
    pids+=($!)
    if ((${#pids[@]} >= jobs)); then
      wait "${pids[0]}" || { echo "fuzz: a library file did not compile" >&2; exit 3; }
      pids=("${pids[@]:1}")
    fi
  fi
  objs+=("$o")
done
for p in "${pids[@]}"; do wait "$p" || { echo "fuzz: a library file did not compile" >&2; exit 3; }; done

failed=0
for t in "${targets[@]}"; do
  bin="$out/$t"
  if [[ ! -x "$bin" || "$here/$t.cc" -nt "$bin" || -n "$(find "$out/obj" -newer "$bin" -print -quit)" ]]; then
    echo "fuzz: build $t"
    "$cxx" "${flags[@]}" -fsanitize=fuzzer "$here/$t.cc" "${objs[@]}" -ljwt -lssl -lcrypto -lcmark -lpthread -o "$bin" ||
      { echo "fuzz: $t did not build" >&2; exit 3; }
  fi
done

# Runs one target; its exit status is the verdict.
run_one() {
  local t="$1" corpus="$out/corpus/$1"
  mkdir -p "$corpus"
  # Seeds, and the inputs of past findings (fuzz/regressions/, also replayed by the tests).
  for d in "$here/corpus/$t" "$here/regressions/$t"; do
    [[ -d "$d" ]] && cp -n "$d"/* "$corpus"/ 2>/dev/null || true
  done
  "$out/$t" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$out/findings/$t-" "$corpus" 2>"$out/$t.log"
}

# As many targets at once as there are cores.
i=0
while ((i < ${#targets[@]})); do
  batch=("${targets[@]:i:jobs}")
  i=$((i + jobs))
  echo "fuzz: run ${batch[*]} for ${seconds}s"
  declare -A pid_of=()
  for t in "${batch[@]}"; do
    run_one "$t" &
    pid_of[$t]=$!
  done
  for t in "${batch[@]}"; do
    if wait "${pid_of[$t]}"; then
      echo "fuzz: $t: $(grep -E '^#[0-9]+.*DONE' "$out/$t.log" | tail -1)"
    else
      echo "fuzz: $t FOUND A PROBLEM; input in $out/findings/, log in $out/$t.log" >&2
      tail -40 "$out/$t.log" >&2
      failed=1
    fi
  done
  unset pid_of
done
exit "$failed"
