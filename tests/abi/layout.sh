#!/bin/sh
# tests/abi/layout.sh -- a binary built against one inline-cache layout (or
# one ABI node) cannot run against another: it fails at link time or at
# load time, never later. The "other" library is this one's objects with
# the cache renamed to a next layout (cv_i_tcache_v2) and the node of a
# next minor version, under the same SONAME, as a 0.3 would ship.
#
#   sh tests/abi/layout.sh BUILD_DIR
set -eu
build=$1
out=$build/abi/layout
rm -rf "$out"
mkdir -p "$out/next"
ver=$(cat VERSION)
major=${ver%%.*}
rest=${ver#*.}
minor=${rest%%.*}
node="CTXVAR_$major.$minor"
next="CTXVAR_$major.$((minor + 1))"
cc=${CC:-cc}

# The program: the inline get (an executable: initial-exec) against this build.
cat > "$out/prog.c" <<'PROG'
#include <stdio.h>
#include "ctxvar.h"
int main(void)
{
    cv_var *v;
    void *out = NULL;
    if (cv_var_new("layout", &v) != 0 || cv_var_set(v, "x", NULL) != 0)
        return 1;
    int rc = cv_var_get(v, &out);
    printf("layout: ran, get = %d\n", rc);
    return 0;
}
PROG
$cc -std=c11 -O2 -Icore -c "$out/prog.c" -o "$out/prog.o"
$cc -o "$out/prog" "$out/prog.o" -L"$build" -lctxvar
LD_LIBRARY_PATH=$build "$out/prog" > /dev/null

# The next library.
objs=""
for o in "$build"/core/*.o "$build"/maps/*.o; do
    n="$out/next/$(echo "$o" | tr / _)"
    objcopy --redefine-sym cv_i_tcache_v1=cv_i_tcache_v2 "$o" "$n"
    objs="$objs $n"
done
sed -e "s/@NODE@/$next/" -e 's/cv_i_tcache_v1/cv_i_tcache_v2/' core/ctxvar.map.in > "$out/next.map"
# shellcheck disable=SC2086
$cc -shared -Wl,-soname,libctxvar.so.$major -Wl,--version-script="$out/next.map" \
    -o "$out/next/libctxvar.so.$major" $objs -lpthread
ln -sf "libctxvar.so.$major" "$out/next/libctxvar.so"
nm -D --defined-only "$out/next/libctxvar.so" | grep -q "cv_i_tcache_v2@@$next" ||
    { echo "layout: the next library was not made"; exit 1; }

# Load time: the old binary against the next library.
if LD_LIBRARY_PATH=$out/next "$out/prog" > "$out/load.log" 2>&1; then
    echo "layout: a binary built against $node ran against $next"; exit 1
fi
grep -q "version \`$node' not found" "$out/load.log" ||
    { cat "$out/load.log"; echo "layout: failed to load, but not for its version node"; exit 1; }
# Link time: the old object against the next library.
if $cc -o "$out/prog2" "$out/prog.o" -L"$out/next" -lctxvar > "$out/link.log" 2>&1; then
    echo "layout: a binary using cv_i_tcache_v1 linked against cv_i_tcache_v2"; exit 1
fi
grep -q "cv_i_tcache_v1" "$out/link.log" ||
    { cat "$out/link.log"; echo "layout: link failed, but not for the cache"; exit 1; }
echo "layout: against the next layout/node: load fails ($(sed -n 's/.*\(version `[^'"'"']*'"'"' not found\).*/\1/p' "$out/load.log" | head -1)), link fails (undefined cv_i_tcache_v1)"
