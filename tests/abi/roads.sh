#!/bin/sh
# tests/abi/roads.sh -- instructions per get on each road to the lookup
# cache (docs/design/tls.md), counted by callgrind:
#   inline_exe     ctxvar.h's inline get in an executable (linked to the .so)
#   inline_plugin  the same inline get in a dlopened -fPIC shared object
#   function       (cv_var_get)(v, out): the exported function, as an FFI
# Each figure is the whole loop iteration (the get and the loop around it).
#
#   sh tests/abi/roads.sh INCDIR LIBDIR OUTDIR [K] [PLUGIN_CFLAGS]
# INCDIR holds ctxvar.h, LIBDIR libctxvar.so; both may be another tree's,
# which is how the "before" column was measured.
set -eu
inc=$1 lib=$2 out=$3 k=${4:-100000} pflags=${5:-}
here=$(cd "$(dirname "$0")" && pwd)
inc=$(cd "$inc" && pwd) lib=$(cd "$lib" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
cc=${CC:-cc}
$cc -std=c11 -O2 -g -fPIC -shared $pflags -I"$inc" -o "$out/plugin.so" "$here/plugin.c" \
    -L"$lib" -lctxvar
$cc -std=c11 -O2 -g -D_GNU_SOURCE -I"$inc" -o "$out/plugin_host" "$here/plugin_host.c" \
    -L"$lib" -lctxvar -ldl -lpthread -Wl,-rpath,"$lib"
rm -f "$out"/cg.out*
valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file="$out/cg.out" \
    "$out/plugin_host" "$out/plugin.so" --roads "$k" > "$out/roads.log" 2>&1 ||
    { cat "$out/roads.log"; exit 1; }
for f in "$out"/cg.out.*; do
    d=$(sed -n 's/^desc: Trigger: Client Request: //p' "$f")
    t=$(sed -n 's/^\(totals\|summary\): *\([0-9]*\).*/\2/p' "$f" | head -1)
    echo "$d $t"
done | awk '{ split($1, a, "/"); printf "%-14s %6.1f Ir per get\n", a[2], $2 / a[3] }' | sort
