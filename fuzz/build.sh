#!/bin/bash -eu
# fuzz/build.sh -- builds every fuzz target of fuzz/targets, OSS-Fuzz /
# ClusterFuzzLite style (the model: libxml2's oss-fuzz-build.sh and
# curl-fuzzer's scripts).
#
#   $CC $CFLAGS          compiler and flags (the sanitizers come from here)
#   $LIB_FUZZING_ENGINE  what provides main(): -fsanitize=fuzzer (libFuzzer),
#                        /usr/lib/afl/libAFLDriver.a (AFL++ with
#                        CC=afl-clang-fast), or fuzz/replay_main.o (no engine)
#   $OUT                 where binaries, .dict, .options, seed zips go
#   $SRC                 the repository, or (OSS-Fuzz, ClusterFuzzLite) the
#                        directory holding it as $SRC/ctxvar; default: this
#                        script's parent
#   $WORK                scratch objects (default: $OUT/obj)
#   FUZZ_CANARY=1        also build ctx_ops_canary (never for OSS-Fuzz: it
#                        crashes on purpose)
#   FUZZ_NO_SEEDS=1      skip the seed zips
#   FUZZ_SKIP="t ..."    targets of fuzz/targets not to build (the engines'
#                        builds skip cpython_diff: libpython is not in their
#                        runner image)
#   FUZZ_WARN            the warning flags (default: -std=c11 -Wall -Wextra
#                        -Wpedantic -Werror; the engines' newer clang builds
#                        without -Werror, make mutate without warnings)
#
# The library is compiled here from core/*.c and maps/*.c with $CC $CFLAGS
# (never the normal build's libctxvar.a), so it carries the same
# instrumentation as the harness. Every target listed in fuzz/targets is
# fuzz/<target>.c + fuzz/fuzz.c + fuzz/model.c + tests/support/testalloc.c
# (the unit tests' counting and failing allocator, which needs no cmocka);
# cpython_diff also links libpython3.11 (python3.11-config --embed); it is
# skipped with a notice when that is missing.

HERE=$(cd "$(dirname "$0")/.." && pwd)
SRC=${SRC:-$HERE}
# OSS-Fuzz and ClusterFuzzLite set $SRC to /src, the repository's parent.
if [ ! -f "$SRC/fuzz/targets" ]; then
    if [ -f "$SRC/ctxvar/fuzz/targets" ]; then
        SRC=$SRC/ctxvar
    else
        echo "build.sh: \$SRC=$SRC holds neither fuzz/targets nor ctxvar/fuzz/targets" >&2
        exit 1
    fi
fi
OUT=${OUT:?set OUT}
WORK=${WORK:-$OUT/obj}
CC=${CC:-clang}
CFLAGS=${CFLAGS:-}
LIB_FUZZING_ENGINE=${LIB_FUZZING_ENGINE:--fsanitize=fuzzer}
PYCONFIG=${PYCONFIG:-/usr/bin/python3.11-config}

mkdir -p "$OUT" "$WORK"
OUT=$(cd "$OUT" && pwd)
WORK=$(cd "$WORK" && pwd)
# FUZZ_WARN: the warning flags (make mutate builds mutants without -Werror).
WARN=${FUZZ_WARN:-"-std=c11 -Wall -Wextra -Wpedantic -Werror"}
INC="-iquote $SRC/core -iquote $SRC/maps -iquote $SRC/fuzz -iquote $SRC/tests/support"
# -D_GNU_SOURCE as the top-level Makefile builds the library; -DCV_DEBUG:
# invariant asserts, and the backend's check() after every write.
CCF="$WARN -D_GNU_SOURCE -DCV_DEBUG $CFLAGS $INC"

obj() { # obj <source> <object> [extra flags]
    local src=$1 o=$2
    shift 2
    $CC $CCF "$@" -c "$src" -o "$o"
}

# The library, instrumented like the harness.
LIBOBJ=()
for f in "$SRC"/core/*.c "$SRC"/maps/*.c; do
    o="$WORK/lib_$(basename "$(dirname "$f")")_$(basename "${f%.c}").o"
    obj "$f" "$o"
    LIBOBJ+=("$o")
done
obj "$SRC/fuzz/fuzz.c" "$WORK/fuzz.o"
obj "$SRC/fuzz/model.c" "$WORK/model.o"
obj "$SRC/tests/support/testalloc.c" "$WORK/testalloc.o"
COMMON=("$WORK/fuzz.o" "$WORK/model.o" "$WORK/testalloc.o" "${LIBOBJ[@]}")

PYCFLAGS="" PYLDFLAGS=""
if [ -x "$PYCONFIG" ]; then
    # -isystem: Python.h is not ours to hold to -Wpedantic -Werror.
    PYCFLAGS=$("$PYCONFIG" --includes | sed 's/-I/-isystem /g')
    PYLDFLAGS=$("$PYCONFIG" --embed --ldflags)
fi

link() { # link <name> <objects...> [-- extra link flags]
    local name=$1
    shift
    local objs=() extra=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do objs+=("$1"); shift; done
    [ $# -gt 0 ] && shift && extra=("$@")
    # shellcheck disable=SC2086
    $CC $CFLAGS "${objs[@]}" $LIB_FUZZING_ENGINE -o "$OUT/$name" -lpthread "${extra[@]}"
}

while read -r t; do
    case "$t" in ''|'#'*) continue ;; esac
    case " ${FUZZ_SKIP:-} " in *" $t "*) echo "build.sh: $t skipped (FUZZ_SKIP)" >&2; continue ;; esac
    if [ "$t" = cpython_diff ]; then
        if [ -z "$PYLDFLAGS" ]; then
            echo "build.sh: $PYCONFIG missing: cpython_diff skipped" >&2
            continue
        fi
        # shellcheck disable=SC2086
        obj "$SRC/fuzz/$t.c" "$WORK/$t.o" $PYCFLAGS
        # shellcheck disable=SC2086
        link "$t" "$WORK/$t.o" "${COMMON[@]}" -- $PYLDFLAGS
    else
        obj "$SRC/fuzz/$t.c" "$WORK/$t.o"
        link "$t" "$WORK/$t.o" "${COMMON[@]}"
    fi
    for ext in dict options; do
        [ -f "$SRC/fuzz/$t.$ext" ] && cp "$SRC/fuzz/$t.$ext" "$OUT/"
    done
    if [ "${FUZZ_NO_SEEDS:-0}" != 1 ] && [ -d "$SRC/fuzz/corpus/$t" ]; then
        rm -f "$OUT/${t}_seed_corpus.zip"
        if ! command -v zip >/dev/null 2>&1; then
            echo "build.sh: zip missing (make deps-test installs it): no seed zip for $t" >&2
            exit 1
        fi
        (cd "$SRC/fuzz/corpus/$t" && zip -q -j "$OUT/${t}_seed_corpus.zip" ./*)
    fi
done < "$SRC/fuzz/targets"

# The canary build of ctx_ops: the test-only backends linked in, reachable
# through CTXVAR_FUZZ_BACKENDS=canary. Never part of the library.
if [ "${FUZZ_CANARY:-0}" = 1 ]; then
    obj "$SRC/fuzz/ctx_ops.c" "$WORK/ctx_ops_canary.o" -DFZ_CANARY
    obj "$SRC/tests/support/extra_backends.c" "$WORK/extra_backends.o"
    obj "$SRC/tests/support/canary.c" "$WORK/canary.o"
    link ctx_ops_canary "$WORK/ctx_ops_canary.o" "$WORK/extra_backends.o" \
        "$WORK/canary.o" "${COMMON[@]}"
fi
