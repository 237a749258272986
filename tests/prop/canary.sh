#!/bin/sh
# SPDX-License-Identifier: MIT
# canary.sh BIN LOG RC_PARAMS -- runs the property test on the canary backend
# (naive ChainMap.new_child, breaks R9 on purpose) and succeeds only if the
# test fails on it. RapidCheck's report, with the shrunk command sequence,
# goes to LOG; one line goes to stdout.
bin=$1 log=$2 params=$3
CV_TEST_BACKEND=canary RC_PARAMS="$params" "$bin" >"$log" 2>&1
rc=$?
if [ "$rc" -eq 0 ]; then
    echo "prop canary: NOT caught (the property test passed on a backend that breaks R9; see $log)"
    exit 1
fi
if ! grep -q '^Falsifiable after' "$log"; then
    echo "prop canary: the property test failed without a counterexample (exit $rc; see $log)"
    tail -20 "$log"
    exit 1
fi
# The counterexample: the lines after the "std::vector<...Command..." header
# up to the first blank line, one command per line.
n=$(awk '/^std::vector<std::shared_ptr<const .*Command/ {on=1; next}
         on && /^$/ {exit}
         on {n++}
         END {print n+0}' "$log")
echo "prop canary: caught (shrunk to $n commands; report in $log)"
