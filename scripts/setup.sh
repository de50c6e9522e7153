#!/usr/bin/env bash
# Installs what Tandem needs to build and test, on Debian 12. Run as root, or as a user with sudo.
#
# Idempotent: it asks dpkg what is already installed and calls apt-get only for what is missing,
# so a second run takes a second and works offline.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# Debian packages, one per line. To add one, add a line.
PACKAGES=(
  build-essential      # g++, make
  cmake
  ninja-build
  libboost-dev         # Beast/Asio (net)
  libmsgpack-cxx-dev   # codec
  libfmt-dev
  catch2               # tests
  libsqlite3-dev       # storage
  sqlite3
  libssl-dev
  zlib1g-dev           # gzip traces
  nlohmann-json3-dev   # JSON traces
  clang-14             # fuzz targets (libFuzzer)
  libclang-rt-14-dev
  emscripten           # the engine in WebAssembly (web-editor/build.sh)
  node-acorn           # emscripten's optimizer needs acorn (NODE_PATH=/usr/share/nodejs)
  chromium             # browser tests (playwright-core drives it; no browser is downloaded)
  pkgconf              # finds libpq for CMake
  libpq-dev            # the PostgreSQL store (storage/src/pg)
  postgresql           # the shared log of several nodes: scripts/cluster and the cluster tests
  haproxy              # in front of several nodes: scripts/cluster and the cluster tests
  libjwt-dev           # JSON Web Tokens (net/src/doors/jwt.cc)
  libcmark-dev         # Markdown in (CommonMark's reference parser): POST /api/docs/<id>/import
  python3-jwt          # an independent JWT implementation: the auth tests mint tokens with it
  python3-cryptography # PyJWT's RS256/ES256
  curl                 # docs/http-api.md's examples, run by a test
  openssl              # ... which make a key pair with it
)

say() { echo "setup: $*"; }

installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

if ! command -v dpkg-query >/dev/null 2>&1; then
  say "dpkg-query not found: this script is for Debian 12 (install the packages listed in it by hand)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done
say "checked ${#PACKAGES[@]} Debian packages: ${#missing[@]} missing${missing[*]:+ (${missing[*]})}"

# Node.js for the browser tests and the peer benchmark. Any node on PATH will do (it may not come
# from Debian), so test the command rather than the package.
if command -v node >/dev/null 2>&1; then
  say "node $(node --version) found at $(command -v node)"
else
  say "node not found: will install Debian's nodejs and npm"
  missing+=(nodejs npm)
fi

if ((${#missing[@]} == 0)); then
  say "nothing to install"
  exit 0
fi

sudo=()
if ((EUID != 0)); then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo DEBIAN_FRONTEND=noninteractive)
  else
    say "must run as root (or have sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi

say "apt-get update"
"${sudo[@]}" apt-get update -q
say "apt-get install ${missing[*]}"
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
say "done"
