#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""validate.py -- checks bench/advise against real programs.

    validate.py --build build/bench --results results [--quick]
    make validate

For each workload (bench/workloads: the repository's server, nesting and
wide, and pool and scopes), with the arguments in VALIDATE below:

  1. the recording overhead: the program run untraced and with CTXVAR_TRACE
     (default backend), RUNS times each, interleaved; median wall times;
  2. the replay: `bench/advise --trace --json` (every backend, R interleaved
     replays, median and spread; the model's prediction for the trace's
     counts, versions 1 and 2);
  3. the real run: the program itself under each backend (CTXVAR_BACKEND),
     RUNS times each, interleaved rounds, median and spread.

Writes results/<tag>/validation.json; report.py's "Which backend for which
program" section is generated from it. Standard library only.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# name, args (smaller than the hyperfine defaults where a trace would be
# large), what it is
VALIDATE = [
    ("server", ["20000"], "request server on the cooperative scheduler: 20,000 requests, "
                          "3 sub-tasks each, 12 vars, every log line reads all of them"),
    ("nesting", ["1000", "60"], "60 chains of 1,000 nested copy+run tasks, 32 vars"),
    ("wide", ["10000", "5000"], "10,000 vars, 5,000 forks (copy + run), 16 gets and 2 sets each"),
    ("pool", ["20000", "2", "4"], "thread pool: main makes a copy per job, 2 workers run it, "
                                  "4 token scopes per job, 16 vars"),
    ("scopes", ["40000", "2000", "6", "50"], "2,000 vars, 40,000 calls 6 scopes deep (set with "
                                             "token, 3 gets, reset), a snapshot every 50 calls"),
]


def median(xs):
    s = sorted(xs)
    return s[len(s) // 2] if s else None


def spread(xs):
    s = sorted(xs)
    if len(s) < 2:
        return 0.0
    return (s[(3 * (len(s) - 1) + 3) // 4] - s[(len(s) - 1) // 4]) / 2.0


def timed(cmd, env):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit("validate: %s failed: %s" % (" ".join(cmd), r.stderr[-500:]))
    return t, r.stdout.strip()


def load_avg():
    try:
        return open("/proc/loadavg").read().split()[:3]
    except OSError:
        return []


def callgrind_ir(cmd, env, tmp):
    """Instructions (callgrind Ir) of one run: repeatable on a loaded machine."""
    out = os.path.join(tmp, "cg.out")
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] + cmd,
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("validate: callgrind %s failed: %s" % (" ".join(cmd), r.stderr[-500:]))
    total = None
    for line in open(out):
        if line.startswith("totals:") or line.startswith("summary:"):
            total = int(line.split()[1])
    os.remove(out)
    return total


def ir_overhead(a, tracedir, only):
    """Adds overhead_ir (untraced and traced instructions) to each workload
    of an existing validation.json."""
    path = os.path.join(a.results, report.cpu_tag(), "validation.json")
    val = report.load_json(path)
    if not val:
        sys.exit("validate: no %s to add instruction counts to" % path)
    for name, args, _ in VALIDATE:
        if (only and name not in only) or name not in val["workloads"]:
            continue
        binary = os.path.join(a.build, "wl_" + name)
        trace = os.path.join(tracedir, name + ".ir.trace")
        plain = callgrind_ir([binary] + args, report.clean_env(), tracedir)
        traced = callgrind_ir([binary] + args, report.clean_env(CTXVAR_TRACE=trace), tracedir)
        os.remove(trace)
        val["workloads"][name]["overhead_ir"] = {"plain": plain, "traced": traced}
        print("validate: %s: %.2fx instructions traced" % (name, traced / plain), flush=True)
    report.dump_json(path, val)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build/bench")
    ap.add_argument("--results", default="results")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--only", help="comma-separated workloads")
    ap.add_argument("--ir-only", action="store_true",
                    help="only add callgrind instruction counts (untraced, traced) to validation.json")
    a = ap.parse_args()
    tag = report.cpu_tag()
    outdir = os.path.join(a.results, tag)
    os.makedirs(outdir, exist_ok=True)
    tracedir = os.path.join(a.build, "validate")
    os.makedirs(tracedir, exist_ok=True)
    _, backends = report.backends_of(a.build)
    if a.ir_only:
        ir_overhead(a, tracedir, a.only.split(",") if a.only else None)
        return
    out = {"machine": report.machine_info(), "runs": a.runs, "load_before": load_avg(),
           "workloads": {}}
    only = a.only.split(",") if a.only else None
    for name, args, what in VALIDATE:
        if only and name not in only:
            continue
        binary = os.path.join(a.build, "wl_" + name)
        trace = os.path.join(tracedir, name + ".trace")
        print("validate: %s %s" % (name, " ".join(args)), flush=True)
        load0 = load_avg()
        # 1. recording overhead (default backend), interleaved
        plain, traced, sums = [], [], set()
        for _ in range(a.runs):
            t, o = timed([binary] + args, report.clean_env())
            plain.append(t)
            sums.add(o)
            t, o = timed([binary] + args, report.clean_env(CTXVAR_TRACE=trace))
            traced.append(t)
            sums.add(o)
        if len(sums) != 1:
            sys.exit("validate: %s printed different checksums traced and untraced: %s" % (name, sums))
        size = os.path.getsize(trace)
        # 2. the replay and the model
        r = subprocess.run([sys.executable, os.path.join(HERE, "advise"), "--trace", trace,
                            "--replay", os.path.join(a.build, "replay"), "--repeat", str(a.runs),
                            "--json"], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("validate: advise --trace %s failed: %s" % (trace, r.stderr))
        adv = json.loads(r.stdout)
        # 3. the real run under each backend, interleaved rounds
        real = {b: [] for b in backends}
        for _ in range(a.runs):
            for b in backends:
                t, o = timed([binary] + args, report.clean_env(CTXVAR_BACKEND=b))
                real[b].append(t)
                sums.add(o)
        if len(sums) != 1:
            sys.exit("validate: %s: backends disagree: %s" % (name, sums))
        out["workloads"][name] = {
            "args": args, "what": what, "trace_bytes": size,
            "load": [load0, load_avg()], "date": report.machine_info()["date"],
            "overhead": {"plain_s": plain, "traced_s": traced,
                         "plain_median_s": median(plain), "traced_median_s": median(traced)},
            "summary": adv["summary"], "profile": adv["profile"], "baseline_ns": adv["baseline_ns"],
            "advice": adv["advice"], "ties_with_first": adv["ties_with_first"],
            "reason_op": adv["reason_op"],
            "replay": {x["backend"]: {k: x[k] for k in ("median_ns", "spread_ns", "min_ns", "max_ns",
                                                        "net_ns", "peak_bytes", "model_ns",
                                                        "model_v1_ns", "model_parts")}
                       for x in adv["ranking"]},
            "real": {b: {"median_s": median(v), "spread_s": spread(v), "times_s": v}
                     for b, v in real.items()},
        }
        w = out["workloads"][name]
        print("  trace %.1f MB, overhead %.2fx; replay first %s; real fastest %s" % (
            size / 1e6, w["overhead"]["traced_median_s"] / w["overhead"]["plain_median_s"],
            adv["ranking"][0]["backend"], min(real, key=lambda b: median(real[b]))), flush=True)
        os.remove(trace)
    out["load_after"] = load_avg()
    path = os.path.join(outdir, "validation.json")
    old = report.load_json(path) or {}
    if only and old.get("workloads"):
        old["workloads"].update(out["workloads"])
        out["workloads"] = old["workloads"]
    report.dump_json(path, out)
    print("validate: wrote %s" % path)
    if shutil.which("valgrind"):
        ir_overhead(a, tracedir, only)


if __name__ == "__main__":
    main()
