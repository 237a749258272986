#!/bin/sh
# tests/abi/symbols.sh -- the shared library exports exactly the public API
# of ctxvar.h and the inline get's symbols, each in the version node the
# file VERSION gives, under the SONAME it gives; the version script lists
# the same names. Any extra export (a test hook, an internal function) or
# a missing one fails.
#
#   sh tests/abi/symbols.sh BUILD_DIR
set -eu
build=$1
so=$build/libctxvar.so
ver=$(cat VERSION)
major=${ver%%.*}
rest=${ver#*.}
minor=${rest%%.*}
node="CTXVAR_$major.$minor"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# 1. From the header: every CV_EXTERN declaration (functions by the name
#    before their "(", the cache object by its own line).
awk '/^CV_EXTERN/ {
        line = $0
        if (index(line, "(")) { sub(/\(.*/, "", line); n = split(line, w, /[ *]+/); print w[n] }
        else if (match(line, /cv_[a-z0-9_]+ CV_I_TLS_MODEL/)) { split(substr(line, RSTART), w, " "); print w[1] }
        else { print "UNPARSED: " $0 }
     }' core/ctxvar.h | sort > "$tmp/header"
# 2. From the version script's global list.
sed -n '/global:/,/local:/p' core/ctxvar.map.in | sed 's:/\*.*\*/::; s:/\*.*::; s:^ *\*.*::' |
    grep -oE '^ *[a-z_][a-z0-9_]* *;' | tr -d ' ;' | sort > "$tmp/map"
# 3. From the library.
nm -D --defined-only "$so" | awk '$2 != "A" { print $3 }' > "$tmp/nm_raw"
sed 's/@.*//' "$tmp/nm_raw" | sort > "$tmp/nm"

if grep -q UNPARSED "$tmp/header"; then grep UNPARSED "$tmp/header"; fail=1; fi
if ! diff -u "$tmp/header" "$tmp/map" > "$tmp/d1"; then
    echo "symbols: core/ctxvar.map.in differs from the CV_EXTERN declarations of ctxvar.h:"; cat "$tmp/d1"; fail=1
fi
if ! diff -u "$tmp/header" "$tmp/nm" > "$tmp/d2"; then
    echo "symbols: nm -D --defined-only $so differs from ctxvar.h (+ exported, not API; - API, not exported):"
    cat "$tmp/d2"; fail=1
fi
# Every export in the node, as the default version (@@).
bad=$(grep -v "@@$node\$" "$tmp/nm_raw" || true)
if [ -n "$bad" ]; then echo "symbols: not in node $node: $bad"; fail=1; fi
nm -D --defined-only "$so" | grep -q " A $node\$" || { echo "symbols: no version node $node"; fail=1; }
# The SONAME and the files.
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libctxvar.so.$major" ] || { echo "symbols: SONAME is '$soname', not libctxvar.so.$major"; fail=1; }
[ "$(readlink "$build/libctxvar.so")" = "libctxvar.so.$major" ] || { echo "symbols: libctxvar.so is not a link to libctxvar.so.$major"; fail=1; }
[ "$(readlink "$build/libctxvar.so.$major")" = "libctxvar.so.$ver" ] || { echo "symbols: libctxvar.so.$major is not a link to libctxvar.so.$ver"; fail=1; }
[ -f "$build/libctxvar.so.$ver" ] && [ ! -L "$build/libctxvar.so.$ver" ] || { echo "symbols: no file libctxvar.so.$ver"; fail=1; }
# The library's TLS never initial-exec (no STATIC_TLS flag): dlopen-able.
if readelf -d "$so" | grep -q STATIC_TLS; then echo "symbols: $so needs static TLS"; fail=1; fi
[ $fail = 0 ] || exit 1
echo "symbols: $(wc -l < "$tmp/nm") exported, all in $node, = ctxvar.h's CV_EXTERN = core/ctxvar.map.in; SONAME $soname"
