#!/bin/sh
# libtandem exports the tandem_ functions (and its version node) and nothing else, under its soname.
#   exports.sh LIBTANDEM
set -eu
lib=$1
others=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v -e '^tandem_' -e '^TANDEM_0$' || true)
if [ -n "$others" ]; then
  echo "exported besides tandem_*:"; echo "$others"; exit 1
fi
count=$(nm -D --defined-only "$lib" | grep -c ' T tandem_')
[ "$count" -ge 30 ] || { echo "only $count tandem_ functions exported"; exit 1; }
readelf -d "$lib" | grep -q 'SONAME.*\[libtandem\.so\.0\]' || { echo "soname is not libtandem.so.0"; exit 1; }
echo "ok: $count tandem_ functions, nothing else, soname libtandem.so.0"
