#!/bin/bash
# Builds the web editor into OUT (default build/web-editor/dist, where `tandem serve` looks for
# it): the engine compiled to WebAssembly with Debian's emscripten, and the app bundled with
# esbuild. Intermediate files go to OUT/../obj.
#   web-editor/build.sh [OUT]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=$(mkdir -p "${1:-$root/build/web-editor/dist}" && cd "${1:-$root/build/web-editor/dist}" && pwd)
obj="$(dirname "$out")/obj"
mkdir -p "$obj/msgpack-include" "$out/assets"

# msgpack-cxx is header-only; expose only its headers to emcc (never the rest of /usr/include).
msgpack_dir=$(dirname "$(find /usr/include /usr/local/include -maxdepth 1 -name msgpack.hpp 2>/dev/null | head -1)")
[ -f "$msgpack_dir/msgpack.hpp" ] || { echo "build.sh: msgpack.hpp not found (apt-get install libmsgpack-cxx-dev)" >&2; exit 1; }
ln -sfn "$msgpack_dir/msgpack.hpp" "$obj/msgpack-include/msgpack.hpp"
ln -sfn "$msgpack_dir/msgpack" "$obj/msgpack-include/msgpack"

# Debian's emscripten 3.1.6 runs its optimizer on Node and needs acorn from node-acorn.
export NODE_PATH=/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}
sources=("$root"/crdt/src/*.cc "$root/crdt/codec/src/codec.cc" "$root"/crdt/sync/src/*.cc "$root/crdt/render/src/render.cc" "$here/wasm/binding.cc")
wasm="$obj/tandem-engine.mjs"
newest=$(ls -t "${sources[@]}" "$root"/crdt/include/crdt/*.h "$root"/crdt/src/*.h "$root"/crdt/sync/include/sync/*.h "$root"/crdt/render/include/render/*.h "$here/build.sh" | head -1)
if [ ! -f "$wasm" ] || [ "$newest" -nt "$wasm" ]; then
  echo "build.sh: compiling the engine to WebAssembly"
  emcc -O2 -std=c++20 -fexceptions -Wall -Wextra \
    -DMSGPACK_NO_BOOST -I "$root/crdt/include" -I "$root/crdt/src" -I "$root/crdt/codec/include" \
    -I "$root/crdt/codec/src" -I "$root/crdt/sync/include" -I "$root/crdt/render/include" -isystem "$obj/msgpack-include" \
    "${sources[@]}" --bind \
    -sMODULARIZE -sEXPORT_ES6 -sSINGLE_FILE -sALLOW_MEMORY_GROWTH -sENVIRONMENT=web,worker \
    -sEXPORT_NAME=createEngine -sDISABLE_EXCEPTION_CATCHING=0 \
    -o "$wasm"
fi

# The app is built on the JavaScript client package (clients/js, a `file:` dependency, so a link):
# each folder installs its own locked packages. The client's own (@msgpack/msgpack) live in
# clients/js/node_modules; CodeMirror is its peer and comes from here. --preserve-symlinks makes
# esbuild resolve the linked package's imports as if it were installed here, so that there is one
# copy of CodeMirror in the bundle.
client="$root/clients/js"
node "$root/scripts/check-node.cjs" "$client" "the JavaScript client package"
node "$root/scripts/check-node.cjs" "$here" "the web editor build"
if [ ! -d "$client/node_modules/@msgpack/msgpack" ] || [ "$client/package-lock.json" -nt "$client/node_modules/.package-lock.json" ]; then
  (cd "$client" && npm ci --no-audit --no-fund)
fi
cd "$here"
if [ ! -d node_modules/@codemirror/view ] || [ ! -e node_modules/@tandem/client ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# The bundle and the stylesheet are named by their content's hash (app-<hash>.js), which lets the
# server have browsers cache them for a year (net/src/server/static_files.h); the page and the service
# worker name the current ones.
rm -rf "$out/assets"
mkdir -p "$out/assets"
./node_modules/.bin/esbuild src/main.js src/style.css --bundle --format=esm --minify --sourcemap --platform=browser \
  --preserve-symlinks --alias:tandem-engine="$wasm" --outdir="$out/assets" --entry-names='app-[hash]' \
  --metafile="$obj/meta.json" --log-level=warning
js=$(cd "$out/assets" && ls app-*.js)
css=$(cd "$out/assets" && ls app-*.css)
sed -e "s|/assets/app.js|/assets/$js|" -e "s|/assets/style.css|/assets/$css|" src/index.html >"$out/index.html"
sed -e "s|'/assets/app.js', '/assets/style.css'|'/assets/$js', '/assets/$css'|" -e "s|tandem-shell-v1|tandem-shell-${js%.js}|" \
  src/sw.js >"$out/sw.js"
grep -q "$js" "$out/index.html" && grep -q "$js" "$out/sw.js" || { echo "build.sh: could not name $js in index.html and sw.js" >&2; exit 1; }
echo "build.sh: web editor in $out ($js $(wc -c <"$out/assets/$js") bytes, $css)"

# The JavaScript client as an npm package for other apps (README, "Embedding: the JavaScript
# client"): clients/js with the engine inside (@tandem/client/engine), packed into a tarball that
# `npm install` copies into an app like any registry package. `cmake --install` installs it.
pkg="$(dirname "$out")/js"
stage="$obj/package"
rm -rf "$stage" "$pkg"
mkdir -p "$stage/engine" "$pkg"
cp -r "$client/src" "$client/package.json" "$client/README.md" "$stage/"
cp "$wasm" "$stage/engine/tandem-engine.mjs"
cp "$wasm" "$pkg/tandem-engine.mjs"
(cd "$stage" && npm pack --pack-destination "$pkg" --loglevel=error >/dev/null)
echo "build.sh: JavaScript package $(cd "$pkg" && ls *.tgz) in $pkg"
