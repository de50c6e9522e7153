#!/usr/bin/env bash
# Builds every libFuzzer target with clang-14 (-fsanitize=fuzzer,address,undefined) and runs
# each for SECONDS seconds on its corpus (fuzz/corpus/<target>/, seeds; new inputs go to a
# scratch copy). Exits non-zero on any finding; crashing inputs are kept in build-fuzz/findings/.
#   fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
seconds="${1:-60}"
shift || true
targets=("$@")
((${#targets[@]})) || targets=(codec_fuzz protocol_fuzz convergence_fuzz utf_fuzz)
out="$root/build-fuzz"
mkdir -p "$out/obj" "$out/findings"

cxx="${CXX_FUZZ:-clang++-14}"
command -v "$cxx" >/dev/null || { echo "fuzz: $cxx not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
       -DBOOST_ASIO_DISABLE_CO_AWAIT -DMSGPACK_NO_BOOST
       -I "$root/crdt/include" -I "$root/crdt/src" -I "$root/crdt/codec/include" -I "$root/crdt/codec/src"
       -I "$root/net/include" -I "$root/net/src")

# The library code, compiled once per change.
objs=()
for src in "$root"/crdt/src/*.cc "$root/crdt/codec/src/codec.cc" "$root/net/src/protocol.cc"; do
  o="$out/obj/$(basename "$(dirname "$(dirname "$src")")")-$(basename "${src%.cc}").o"
  if [[ ! -f "$o" || "$src" -nt "$o" || -n "$(find "$root/crdt" "$root/net/include" -name '*.h' -newer "$o" -print -quit)" ]]; then
    echo "fuzz: compile $(realpath --relative-to="$root" "$src")"
    "$cxx" "${flags[@]}" -c "$src" -o "$o"
  fi
  objs+=("$o")
done

failed=0
for t in "${targets[@]}"; do
  bin="$out/$t"
  if [[ ! -x "$bin" || "$here/$t.cc" -nt "$bin" || -n "$(find "$out/obj" -newer "$bin" -print -quit)" ]]; then
    echo "fuzz: build $t"
    "$cxx" "${flags[@]}" -fsanitize=fuzzer "$here/$t.cc" "${objs[@]}" -o "$bin"
  fi
  corpus="$out/corpus/$t"
  mkdir -p "$corpus"
  [[ -d "$here/corpus/$t" ]] && cp -n "$here/corpus/$t"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz: run $t for ${seconds}s"
  if ! "$bin" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
       -artifact_prefix="$out/findings/$t-" "$corpus" 2>"$out/$t.log"; then
    echo "fuzz: $t FOUND A PROBLEM; input in $out/findings/, log in $out/$t.log" >&2
    tail -40 "$out/$t.log" >&2
    failed=1
  else
    grep -E "stat::number_of_executed_units|cov:" "$out/$t.log" | tail -2
  fi
done
exit "$failed"
