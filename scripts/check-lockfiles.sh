#!/usr/bin/env bash
# Checks that every npm package folder's lockfile installs with the npm versions Tandem supports:
# 9.2.0 (Debian 12's own, beside its Node.js 18) and 10.8.2 (Node.js 20's), whatever npm this
# machine has. Each is fetched once from the npm registry into build/npm-check/ (or used from
# PATH when it is that version) and runs `npm ci --dry-run` on a copy of the folder's package
# files, which refuses a lockfile out of sync with package.json as a real install would.
#   scripts/check-lockfiles.sh [FOLDER...]   (default: clients/js web-editor bench/peers)
# Prints one line per folder and version; on a refusal, one line naming the folder and the fix.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
versions=(9.2.0 10.8.2)
folders=("$@")
((${#folders[@]})) || folders=(clients/js web-editor bench/peers)
tools="${TANDEM_NPM_CHECK_DIR:-$root/build/npm-check}"
say() { echo "check-lockfiles: $*"; }

npm_of() {  # prints the path of an npm of exactly version $1, fetching it when needed
  local v="$1" dir="$tools/npm-$1"
  if command -v npm >/dev/null && [[ "$(npm --version 2>/dev/null)" == "$v" ]]; then
    command -v npm
    return
  fi
  if [[ ! -x "$dir/node_modules/.bin/npm" ]]; then
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error "npm@$v" >/dev/null ||
      { say "cannot fetch npm@$v from the registry into $dir (is the npm registry reachable?)" >&2; return 1; }
  fi
  echo "$dir/node_modules/.bin/npm"
}

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# The package files of every folder, at their places relative to the root, so that `file:`
# dependencies between them resolve in the copy as they do in the tree.
for f in "${folders[@]}"; do
  [[ -f "$root/$f/package-lock.json" ]] || { say "$f has no package-lock.json" >&2; exit 1; }
  mkdir -p "$scratch/$f"
  for p in package.json package-lock.json .npmrc; do
    [[ ! -f "$root/$f/$p" ]] || cp "$root/$f/$p" "$scratch/$f/$p"
  done
  # a file: dependency's own package.json must be there too
  for dep in $(node -e 'const p=require(process.argv[1]);for(const s of ["dependencies","devDependencies","optionalDependencies"])for(const v of Object.values(p[s]||{}))if(/^file:/.test(v))console.log(v.slice(5))' "$root/$f/package.json"); do
    target="$(cd "$root/$f" && cd "$dep" && pwd)"
    rel="${target#"$root"/}"
    mkdir -p "$scratch/$rel"
    cp "$target/package.json" "$scratch/$rel/package.json"
  done
done

bad=0
for v in "${versions[@]}"; do
  npm_bin="$(npm_of "$v")" || exit 1
  for f in "${folders[@]}"; do
    if out="$(cd "$scratch/$f" && "$npm_bin" ci --dry-run --ignore-scripts --no-audit --no-fund 2>&1)"; then
      say "$f: npm $v accepts package-lock.json"
    else
      why="$( (grep -m1 -E 'Missing:|Invalid:' <<<"$out" || grep -m1 -E 'ERR!' <<<"$out" || true) | sed -E 's/^npm ERR! //')"
      say "$f/package-lock.json is refused by npm $v (${why:-npm ci failed}); fix: regenerate it with 'npm install --package-lock-only' in $f (a file: dependency needs install-links=false in $f/.npmrc) and rerun this script" >&2
      bad=1
    fi
  done
done
exit "$bad"
