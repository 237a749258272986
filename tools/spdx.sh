#!/bin/sh
# tools/spdx.sh -- adds "SPDX-License-Identifier: MIT" to every tracked
# source and build file that lacks it, in that file's comment syntax, after
# a shebang line if there is one. Idempotent (a file that has the line in
# its first five lines is left alone).
#
#   sh tools/spdx.sh           add the line where it is missing
#   sh tools/spdx.sh --check   list the files that lack it; exit 1 if any
#                              (tests/docs/docs.mk runs this in `make test`)
#   sh tools/spdx.sh --list    the files this script covers, with their syntax
set -eu
cd "$(dirname "$0")/.."
ID="SPDX-License-Identifier: MIT"

# The comment syntax of a tracked file, or nothing if it is not a source or
# build file (documents, data, corpora, expected outputs).
syntax() {
    case $1 in
        fuzz/corpus/*|results/*|*.md|*.json|*.expected|LICENSE|VERSION|.gitignore) return ;;
        *.c|*.h|*.cc|*.cpp|*.hpp|*.map.in|*.pml) echo c ;;
        *.py|*.sh|*.mk|*/Makefile|Makefile|*CMakeLists.txt|*.cmake|*.cmake.in|*meson.build|\
        *.pc.in|*.options|*.dict|fuzz/targets|.ci/*|*Dockerfile|*.yaml) echo hash ;;
        *)  # an extensionless script: by its shebang
            if head -c 2 "$1" 2>/dev/null | grep -q '^#!'; then echo hash; fi ;;
    esac
}

has_id() { head -n 5 "$1" | grep -q "$ID"; }

mode=${1:-add}
missing=0
for f in $(git ls-files); do
    [ -f "$f" ] || continue
    s=$(syntax "$f")
    [ -n "$s" ] || continue
    if [ "$mode" = --list ]; then echo "$s $f"; continue; fi
    has_id "$f" && continue
    if [ "$mode" = --check ]; then echo "no SPDX line: $f"; missing=$((missing + 1)); continue; fi
    if [ "$s" = c ]; then line="/* $ID */"; else line="# $ID"; fi
    tmp=$(mktemp)
    if head -n 1 "$f" | grep -q '^#!'; then
        { head -n 1 "$f"; echo "$line"; tail -n +2 "$f"; } > "$tmp"
    else
        { echo "$line"; cat "$f"; } > "$tmp"
    fi
    cat "$tmp" > "$f"   # keeps the file's mode
    rm -f "$tmp"
    echo "spdx: $f"
done
if [ "$mode" = --check ] && [ $missing -gt 0 ]; then
    echo "spdx: $missing tracked source files lack '$ID' (run: sh tools/spdx.sh)"
    exit 1
fi
exit 0
