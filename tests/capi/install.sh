#!/bin/sh
# `cmake --install` puts libtandem (with its soname links), tandem.h and tandem.pc under a prefix,
# and a C program builds against them with pkg-config alone and runs.
#   install.sh BUILD_DIR SOURCE_DIR [EXTRA_CFLAGS]   (a sanitizer build's library needs its flags)
set -eu
build=$1
src=$2
extra=${3:-}
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name 'libtandem.so.0' | head -1)")
[ -f "$prefix/include/tandem/tandem.h" ] || { echo "no include/tandem/tandem.h"; exit 1; }
[ -L "$libdir/libtandem.so" ] && [ -L "$libdir/libtandem.so.0" ] || { echo "no soname links in $libdir"; ls -l "$libdir"; exit 1; }
export PKG_CONFIG_PATH="$libdir/pkgconfig"
[ "$(pkg-config --modversion tandem)" = "0.1.0" ] || { echo "tandem.pc: $(pkg-config --modversion tandem)"; exit 1; }
# shellcheck disable=SC2046,SC2086
cc -std=c11 -Wall -Wextra -Wpedantic -Werror $extra "$src/examples/c/note.c" $(pkg-config --cflags --libs tandem) -o "$prefix/note"
LD_LIBRARY_PATH="$libdir" ldd "$prefix/note" | grep -q "libtandem.so.0 => $libdir" || { echo "note does not load the installed library"; exit 1; }
# Without a server it cannot sync: it says so and fails, without crashing.
set +e
LD_LIBRARY_PATH="$libdir" timeout 60 "$prefix/note" ws://127.0.0.1:9/ws/nothing "x" >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || { echo "note without a server exited with $rc, not 1"; exit 1; }
# With the editor built (the release build), the JavaScript package and the engine install too.
if [ -f "$build/web-editor/js/tandem-client-0.1.0.tgz" ]; then
  [ -f "$prefix/share/tandem/js/tandem-client-0.1.0.tgz" ] && [ -f "$prefix/share/tandem/js/tandem-engine.mjs" ] ||
    { echo "no share/tandem/js/tandem-client-0.1.0.tgz or tandem-engine.mjs"; ls -R "$prefix/share"; exit 1; }
  [ -f "$prefix/share/tandem/web/index.html" ] || { echo "no share/tandem/web/index.html"; exit 1; }
fi
echo "ok: installed under a prefix, found by pkg-config, linked and run"
