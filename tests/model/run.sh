#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/model/run.sh -- checks one Promela model with spin (tests/model/model.mk)
#
#   sh tests/model/run.sh WORKDIR MODEL.pml pass|fail LABEL [spin -D flags...]
#
# Generates the verifier (spin -a), builds it (-DSAFETY: assertions and end
# states, exhaustive) and runs it in WORKDIR. "pass": the search must be
# complete with 0 errors. "fail": spin must report an error; the
# counterexample's length and its steps are printed. One line per model:
#   model LABEL: N states, E errors: ok
set -eu
dir=$1 model=$2 want=$3 label=$4
shift 4
SPIN=${SPIN:-spin}
CC=${CC:-cc}
# -O0: the verifiers are small; compiling pan.c at -O2 takes longer than
# every search here at -O0
PAN_CFLAGS=${PAN_CFLAGS:--O0}
name=$(basename "$model")
mkdir -p "$dir"
cp "$model" "$dir/$name"
cd "$dir"
rm -f "$name.trail" pan pan.*
"$SPIN" "$@" -a "$name" > spin.log 2>&1 || { cat spin.log; echo "model $label: spin -a failed"; exit 1; }
"$CC" $PAN_CFLAGS -w -DSAFETY -o pan pan.c || { echo "model $label: the verifier did not build"; exit 1; }
./pan -m1000000 > pan.log 2>&1 || true
states=$(sed -n 's/^ *\([0-9][0-9]*\) states, stored.*/\1/p' pan.log)
errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' pan.log)
if [ -z "$states" ] || [ -z "$errors" ]; then
    cat pan.log; echo "model $label: no result from pan"; exit 1
fi
if grep -q 'max search depth too small' pan.log; then
    echo "model $label: search depth too small: the search was not exhaustive"; exit 1
fi
case $want in
pass)
    if [ "$errors" != 0 ]; then
        grep -E '^pan:' pan.log || true
        "$SPIN" "$@" -t -p "$name" 2>&1 | tail -40
        echo "model $label: $states states, $errors errors: FAILED (trail in $dir)"
        exit 1
    fi
    echo "model $label: $states states, 0 errors: ok" ;;
fail)
    if [ "$errors" = 0 ]; then
        echo "model $label: $states states, 0 errors: FAILED (spin must find the bug)"
        exit 1
    fi
    "$SPIN" "$@" -t -p "$name" > trail.txt 2>&1 || true
    where=$(sed -n 's/^spin: \([^ ]*\), Error: .*/\1/p' trail.txt | head -1)
    what=$(sed -n 's/^spin: text of failed assertion: //p' trail.txt | head -1)
    what="${what:-$(grep -E '^pan:1: ' pan.log | head -1 | sed 's/^pan:1: //; s/ (at depth.*//')} at $where"
    steps=$(sed -n 's/^spin: trail ends after \([0-9][0-9]*\) steps.*/\1/p' trail.txt)
    echo "model $label: $states states, $errors error (expected: $what), counterexample of $steps steps:"
    # the threads' own steps, one a line, without init and bare guards
    sed -n 's/^ *\([0-9][0-9]*\):[[:space:]]*proc  *[0-9][0-9]* (\([a-z]*\):[0-9]*) [^[]*\[\(.*\)\]$/\1 \2: \3/p' trail.txt |
        grep -v ':init:' | grep -vE ': (\(1\)|else|assert\(.*)$' | sed 's/^/    /'
    ;;
*) echo "run.sh: pass or fail, not $want"; exit 2 ;;
esac
