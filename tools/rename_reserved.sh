#!/bin/sh
# tools/rename_reserved.sh -- renames the identifiers of core/ctxvar.h that
# contained a double underscore (reserved in C++) to the cv_i_ / CV_I_
# prefix. Idempotent: run it again after merging a branch written against
# the old names. Names internal to .c files (cv__malloc, ... in
# core/internal.h) are not touched.
#
#   sh tools/rename_reserved.sh            rewrite the tracked files in place
#   sh tools/rename_reserved.sh --check    list files still using old names; exit 1 if any
set -eu
cd "$(dirname "$0")/.."

# old new (word-bounded; the TLS object carries its layout version).
MAP='cv__tcache cv_i_tcache
cv__tc cv_i_tcache_v1
cv__centry cv_i_centry
cv__cache_index cv_i_cache_index
cv__cache_hit cv_i_cache_hit
cv__var_get_or_miss cv_i_var_get_or_miss
cv__var_get_miss cv_i_var_get_miss
cv__var_get_or_inline cv_i_var_get_or_inline
cv__var_get_inline cv_i_var_get_inline
CV__CACHE_LG CV_I_CACHE_LG
CV__CACHE_SIZE CV_I_CACHE_SIZE
CV__GEN_ABSENT CV_I_GEN_ABSENT
CV__ERR_ENUM CV_I_ERR_ENUM
CV__ERR_LAST CV_I_ERR_LAST'

script=$(mktemp)
trap 'rm -f "$script"' EXIT
echo "$MAP" | while read -r old new; do
    printf 's/\\<%s\\>/%s/g\n' "$old" "$new"
done > "$script"
pattern=$(echo "$MAP" | awk '{printf "%s%s", (NR > 1 ? "|" : ""), $1}')

files=$(git ls-files -- core tests bench fuzz examples | grep -E '\.(c|h|cc|cpp|hpp|py)$' || true)
[ -n "$files" ] || exit 0
if [ "${1:-}" = "--check" ]; then
    left=$(grep -lwE "$pattern" $files || true)
    if [ -n "$left" ]; then
        echo "old reserved names still used in:"; echo "$left"; exit 1
    fi
    exit 0
fi
# shellcheck disable=SC2086
grep -lwE "$pattern" $files | while read -r f; do
    sed -i -f "$script" "$f"
    echo "renamed in $f"
done
