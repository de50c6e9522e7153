#!/usr/bin/env bash
# Configures and builds one configuration with CMake and Ninja.
#
#   scripts/build.sh release   -> build/       optimized, warnings are errors
#   scripts/build.sh asan      -> build-asan/  debug, AddressSanitizer + UBSan, no benchmarks
#   scripts/build.sh tsan      -> build-tsan/  ThreadSanitizer, for the server's tests (not in CI)
#
# Configures when the build folder is new or this script's options changed; otherwise it only
# builds (Ninja re-runs CMake by itself when a CMakeLists.txt changes).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

config="${1:-release}"
case "$config" in
  release)
    dir="$root/build"
    options=(-DCMAKE_BUILD_TYPE=Release -DTANDEM_WERROR=ON -DTANDEM_BROWSER_TESTS=ON)
    ;;
  asan)
    dir="$root/build-asan"
    options=(-DCMAKE_BUILD_TYPE=Debug -DTANDEM_SANITIZE=ON -DTANDEM_BUILD_BENCH=OFF -DTANDEM_WERROR=ON)
    ;;
  tsan)
    dir="$root/build-tsan"
    options=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_TSAN=ON -DTANDEM_BUILD_BENCH=OFF -DTANDEM_WERROR=ON)
    ;;
  *)
    echo "usage: scripts/build.sh release|asan|tsan" >&2
    exit 2
    ;;
esac

stamp="$dir/.tandem-configure"
wanted="-G Ninja ${options[*]}"
if [[ ! -f "$dir/build.ninja" || ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
  # A folder configured for another generator cannot be switched to Ninja: start it afresh.
  if [[ -f "$dir/CMakeCache.txt" ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$dir/CMakeCache.txt"; then
    rm -rf "$dir/CMakeCache.txt" "$dir/CMakeFiles"
  fi
  echo "build: configure $config in ${dir#"$root"/}/ ($wanted)"
  cmake -S "$root" -B "$dir" -G Ninja "${options[@]}"
  echo "$wanted" >"$stamp"
fi

echo "build: $config (-j$(nproc))"
cmake --build "$dir" -j "$(nproc)"

# The web editor (WebAssembly engine + bundle) goes with the release build, where `tandem serve`
# finds it (build/web-editor/dist) and the browser tests use it.
if [[ "$config" == release ]]; then
  echo "build: web editor"
  bash "$root/web-editor/build.sh" "$dir/web-editor/dist"
fi
