#!/bin/bash -eu
# SPDX-License-Identifier: MIT
# OSS-Fuzz build script (projects/ctxvar/build.sh; the same as
# .clusterfuzzlite/build.sh): run by the base-builder image's
# `compile` with $CC, $CFLAGS, $LIB_FUZZING_ENGINE, $OUT, $SRC and $WORK set
# by the engine. Everything is fuzz/build.sh's: it builds every target of
# fuzz/targets into $OUT with its .dict, .options and
# <target>_seed_corpus.zip. make test runs this script under the same
# environment (fuzz/fuzz.mk, fuzz-engine-build).
#
# Two differences from the local build: cpython_diff is not built (the
# runner image has no libpython3.11 to load), and warnings are not errors
# (the engine's clang is newer than the one the project holds itself to).
export FUZZ_SKIP="${FUZZ_SKIP:-cpython_diff}"
export FUZZ_WARN="${FUZZ_WARN:--std=c11 -Wall -Wextra -Wpedantic}"
if [ -f "$SRC/ctxvar/fuzz/build.sh" ]; then
    exec "$SRC/ctxvar/fuzz/build.sh"
fi
exec "$SRC/fuzz/build.sh"
