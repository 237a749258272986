#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tests/mutate/mutate.py -- mutation testing of the verification suite.

Every mutant of tests/mutate/catalogue.txt is applied to a scratch copy of
the tree (build/mutate/m/, made from build/mutate/base/, never the real
tree) and the suite's layers run on it in order of speed; the first layer
that fails kills the mutant and the rest are skipped:

  unit     the cmocka unit + conformance suite (every backend)
  prop     the RapidCheck model test (every backend) and the CPython oracle
  replay   every committed fuzz input through the replay drivers
  stress   the thread stress under TSan, then under ASan + UBSan
  fuzz     live libFuzzer runs (not part of the suite: only a mutant that
           survives the four layers above gets them; one killed here is
           reported as "live fuzzing only")

A layer that runs past its time limit kills the mutant (recorded as a
timeout). A mutant whose snippet does not match the file exactly once is an
error of the catalogue and stops everything (the code moved: re-anchor it);
so is a mutant that does not build, or a base tree that fails a layer.

  mutate.py                  every mutant; writes results/mutation/SUMMARY.md
  mutate.py --only ID[,ID]   those mutants; writes build/mutate/partial.md
  mutate.py --check          only checks that every mutant applies
  mutate.py --list           the catalogue

Environment: MUTATE_FUZZ_SECONDS (live fuzzing per target, default 20;
0 skips it), MUTATE_STRESS_ROUNDS (default 1000), MUTATE_KEEP=1 keeps each
mutant's tree in build/mutate/keep/<id>.

Exit status 0 when every mutant applied and built and the kill rate
(equivalent mutants counted out, live-fuzzing-only kills counted as
survivors) is at least MUTATE_MIN_RATE (default 95).
"""

import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CATALOGUE = os.path.join(ROOT, "tests", "mutate", "catalogue.txt")
HISTORY = os.path.join(ROOT, "tests", "mutate", "HISTORY.md")
WORK = os.path.join(ROOT, "build", "mutate")
BASE = os.path.join(WORK, "base")
MDIR = os.path.join(WORK, "m")
LOGS = os.path.join(WORK, "logs")
SUMMARY = os.path.join(ROOT, "results", "mutation", "SUMMARY.md")
# What a scratch tree needs: the build and everything the layers read.
TREE = ["Makefile", "VERSION", "core", "maps", "tests", "fuzz", "examples"]
LAYERS = ["unit", "prop", "replay", "stress", "fuzz"]
SUITE_LAYERS = LAYERS[:4]
COMMIT = "?"

FUZZ_SECONDS = int(os.environ.get("MUTATE_FUZZ_SECONDS", "20"))
STRESS_ROUNDS = int(os.environ.get("MUTATE_STRESS_ROUNDS", "1000"))
MIN_RATE = float(os.environ.get("MUTATE_MIN_RATE", "95"))
# Warnings are not errors in a mutant's build: a mutant that leaves a
# variable unused is still a mutant.
MAKE = ["make", "--no-print-directory", "-s", "WARN=-std=c11 -w", "OPT=-O1"]
ENV_EXTRA = {"FUZZ_WARN": "-std=c11 -w", "MAKEFLAGS": "", "MFLAGS": ""}


class CatalogueError(Exception):
    pass


# ---------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------
def parse_catalogue(path):
    """=== id / key: value lines / then hunks: --- original +++ replacement."""
    mutants, cur, hunk, mode = [], None, None, None
    with open(path) as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines, 1):
        if line.startswith("=== "):
            cur = {"id": line[4:].strip(), "hunks": [], "line": n}
            mutants.append(cur)
            mode = "head"
            continue
        if cur is None:
            continue  # the preamble
        if line == "---":
            hunk = {"orig": [], "repl": []}
            cur["hunks"].append(hunk)
            mode = "orig"
            continue
        if line == "+++":
            if mode != "orig":
                raise CatalogueError(f"{path}:{n}: +++ without ---")
            mode = "repl"
            continue
        if mode == "head":
            if line.strip() == "" or line.startswith("#"):
                continue
            m = re.match(r"^(\w+):\s*(.*)$", line)
            if not m:
                raise CatalogueError(f"{path}:{n}: bad header line: {line!r}")
            k, v = m.group(1), m.group(2)
            cur[k] = (cur[k] + " " + v) if k in cur else v
        elif mode in ("orig", "repl"):
            hunk[mode].append(line)
    ids = set()
    for m in mutants:
        for k in ("file", "desc"):
            if k not in m:
                raise CatalogueError(f"mutant {m['id']}: no {k}:")
        if not m["hunks"]:
            raise CatalogueError(f"mutant {m['id']}: no hunk")
        for h in m["hunks"]:
            # Blank lines and catalogue comments ("# ..." lines) between
            # entries are not snippet: a snippet never ends with them.
            for k in ("orig", "repl"):
                while h[k] and (h[k][-1].strip() == "" or h[k][-1] == "#" or
                                h[k][-1].startswith("# ")):
                    h[k].pop()
            if not h["orig"]:
                raise CatalogueError(f"mutant {m['id']}: empty original")
        if m["id"] in ids:
            raise CatalogueError(f"duplicate mutant id {m['id']}")
        ids.add(m["id"])
    return mutants


def apply_mutant(m, tree):
    """Applies every hunk to tree/<file>; each original must occur once."""
    path = os.path.join(tree, m["file"])
    if not os.path.isfile(path):
        raise CatalogueError(f"mutant {m['id']}: no file {m['file']}")
    with open(path) as f:
        text = f.read()
    for i, h in enumerate(m["hunks"], 1):
        orig, repl = "\n".join(h["orig"]), "\n".join(h["repl"])
        count = text.count(orig)
        if count != 1:
            raise CatalogueError(
                f"mutant {m['id']} (catalogue line {m['line']}), hunk {i}: "
                f"the original snippet occurs {count} times in {m['file']} "
                f"(must be exactly once; re-anchor it):\n{orig}")
        text = text.replace(orig, repl)
    with open(path, "w") as f:
        f.write(text)


# ---------------------------------------------------------------------------
# Running things
# ---------------------------------------------------------------------------
def run(cmd, cwd, log, timeout, env=None):
    """(status, seconds): status 'ok', 'fail' or 'timeout'. Output to log."""
    e = dict(os.environ)
    e.update(ENV_EXTRA)
    if env:
        e.update(env)
    t0 = time.time()
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(cmd) if isinstance(cmd, list) else cmd}\n")
        out.flush()
        p = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                             env=e, shell=isinstance(cmd, str),
                             start_new_session=True)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            out.write(f"\n[mutate] timeout after {timeout} s\n")
            return "timeout", time.time() - t0
    return ("ok" if rc == 0 else "fail"), time.time() - t0


def failing_tests(log):
    """The cmocka tests that failed, as group/test names, from a unit log."""
    names, group = [], "?"
    try:
        with open(log, errors="replace") as f:
            for line in f:
                g = re.match(r"^=== (\S+)", line)
                if g:
                    group = g.group(1)
                t = re.match(r"^\[  (?:FAILED  |ERROR   )\] ([A-Za-z_]\w*)\s*$", line)
                if t:
                    names.append(f"{group.replace('conformance/', '')}:{t.group(1)}")
    except OSError:
        pass
    seen, out = set(), []
    for n in names:
        if n not in seen:
            seen.add(n)
            out.append(n)
    return out


def grep_first(log, patterns):
    try:
        with open(log, errors="replace") as f:
            for line in f:
                for p in patterns:
                    if re.search(p, line):
                        return line.strip()[:160]
    except OSError:
        pass
    return ""


def layer_steps(layer):
    """(build commands, run commands) of a layer, run in a tree's root."""
    if layer == "unit":
        return ([MAKE + ["build/tests/unit"]],
                [(["./build/tests/unit"], 120, None)])
    if layer == "prop":
        return ([MAKE + ["build-prop/prop", "build-prop/prop_cpython"]],
                [(["./build-prop/prop"], 300,
                  {"RC_PARAMS": "max_success=2000 max_size=150 seed=567"}),
                 (["./build-prop/prop_cpython"], 300,
                  {"RC_PARAMS": "max_success=1000 max_size=150 seed=567"})])
    if layer == "replay":
        return ([MAKE + ["build-fuzz/replay/.built"]],
                [(MAKE + ["fuzz-replay"], 300, None)])
    if layer == "stress":
        return ([MAKE + ["build-tsan/stress", "build-asan/stress"]],
                [(MAKE + ["tsan", f"STRESS_ROUNDS={STRESS_ROUNDS}"], 600, None),
                 (MAKE + ["asan-stress", f"STRESS_ROUNDS={STRESS_ROUNDS}"], 600, None)])
    if layer == "fuzz":
        targets = [t.strip() for t in open(os.path.join(ROOT, "fuzz", "targets"))
                   if t.strip() and not t.startswith("#")]
        runs = []
        for t in targets:
            cmd = (f"mkdir -p build-fuzz/mut/{t} && "
                   f"ASAN_OPTIONS=detect_leaks=0 build-fuzz/libfuzzer/{t} "
                   f"-max_total_time={FUZZ_SECONDS} -seed=1 -max_len=4096 "
                   f"-dict=fuzz/{t}.dict -artifact_prefix=build-fuzz/mut/{t}- "
                   f"build-fuzz/mut/{t} fuzz/corpus/{t}")
            runs.append((cmd, FUZZ_SECONDS * 3 + 60, None))
        return ([MAKE + ["build-fuzz/libfuzzer/.built"]], runs)
    raise ValueError(layer)


def run_layer(layer, tree, log):
    """('pass'|'killed'|'timeout'|'build-error', detail, seconds)."""
    builds, runs = layer_steps(layer)
    t0 = time.time()
    for b in builds:
        st, _ = run(b, tree, log, 900)
        if st != "ok":
            return "build-error", grep_first(log, [r"error:", r"Error"]), time.time() - t0
    for cmd, limit, env in runs:
        open(log + ".step", "w").close()
        st, _ = run(cmd, tree, log + ".step", limit, env)
        with open(log + ".step", errors="replace") as s, open(log, "a") as out:
            out.write(s.read())
        if st == "timeout":
            return "timeout", f"over {limit} s", time.time() - t0
        if st == "fail":
            return "killed", layer_detail(layer, log + ".step"), time.time() - t0
    return "pass", "", time.time() - t0


def layer_detail(layer, log):
    if layer == "unit":
        ft = failing_tests(log)
        if ft:
            more = f" (+{len(ft) - 3} more)" if len(ft) > 3 else ""
            return ", ".join(ft[:3]) + more
        return grep_first(log, [r"Segmentation|Abort|signal|Assertion"]) or "non-zero exit"
    if layer == "prop":
        return (grep_first(log, [r"^Falsifiable after", r"^- .* backend"]) or
                grep_first(log, [r"ERROR|error|Abort|Segmentation"]) or "non-zero exit")
    if layer == "replay":
        return grep_first(log, [r"fuzz-replay: .* FAILED", r"ERROR: AddressSanitizer",
                                r"runtime error", r"MISMATCH"]) or "non-zero exit"
    if layer == "stress":
        return grep_first(log, [r"WARNING: ThreadSanitizer", r"ERROR: AddressSanitizer",
                                r"runtime error", r"stress: .*failed", r"FAIL"]) or "non-zero exit"
    return grep_first(log, [r"==ERROR|MISMATCH|runtime error|deadly signal"]) or "crash"


def copy_tree(src_root, dst):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(dst)
    for name in TREE:
        s = os.path.join(src_root, name)
        if os.path.isdir(s):
            shutil.copytree(s, os.path.join(dst, name), symlinks=True)
        else:
            shutil.copy2(s, os.path.join(dst, name))


def make_base():
    """A copy of the tree with every layer built and passing."""
    print("mutate: base tree in build/mutate/base (the unmutated suite must pass)")
    copy_tree(ROOT, BASE)
    log = os.path.join(LOGS, "base.log")
    open(log, "w").close()
    times = {}
    for layer in LAYERS:
        if layer == "fuzz" and FUZZ_SECONDS <= 0:
            continue
        if layer == "fuzz":
            # only the build: live fuzzing of the base would take as long
            # as one mutant's and find nothing the suite did not
            st, _ = run(layer_steps("fuzz")[0][0], BASE, log, 900)
            if st != "ok":
                raise CatalogueError(f"base: the libFuzzer build failed (see {log})")
            continue
        st, detail, secs = run_layer(layer, BASE, log)
        times[layer] = secs
        print(f"mutate: base {layer:7s} {st} ({secs:.1f} s)")
        if st != "pass":
            raise CatalogueError(f"base: layer {layer} does not pass on the "
                                 f"unmutated tree: {detail} (see {log})")
    # the copies made from the base must see mutated files as newer
    time.sleep(1.1)
    return times


def run_mutant(m):
    copy_tree(BASE, MDIR)
    for name in os.listdir(BASE):
        if name.startswith("build"):
            shutil.copytree(os.path.join(BASE, name), os.path.join(MDIR, name),
                            symlinks=True)
    apply_mutant(m, MDIR)
    log = os.path.join(LOGS, m["id"] + ".log")
    open(log, "w").close()
    res = {"id": m["id"], "file": m["file"], "desc": m["desc"],
           "expect": m.get("expect", ""), "equivalent": m.get("equivalent", ""),
           "note": m.get("note", ""), "layers": {}}
    t0 = time.time()
    res["result"], res["layer"], res["detail"] = "survived", "", ""
    for layer in LAYERS:
        if layer == "fuzz" and FUZZ_SECONDS <= 0:
            break
        st, detail, secs = run_layer(layer, MDIR, log)
        res["layers"][layer] = [st, round(secs, 1)]
        if st == "build-error":
            raise CatalogueError(f"mutant {m['id']} does not build ({layer}): "
                                 f"{detail} (see {log})")
        if st in ("killed", "timeout"):
            res["result"] = "killed" if layer != "fuzz" else "fuzz-only"
            res["layer"] = layer + (" (timeout)" if st == "timeout" else "")
            res["detail"] = detail
            break
    if res["result"] == "survived" and res["equivalent"]:
        res["result"] = "equivalent"
    res["seconds"] = round(time.time() - t0, 1)
    if os.environ.get("MUTATE_KEEP") == "1":
        keep = os.path.join(WORK, "keep", m["id"])
        shutil.rmtree(keep, ignore_errors=True)
        shutil.move(MDIR, keep)
    else:
        shutil.rmtree(MDIR, ignore_errors=True)
    return res


# ---------------------------------------------------------------------------
# The summary
# ---------------------------------------------------------------------------
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, cwd=ROOT, capture_output=True,
                              text=True, timeout=30).stdout.strip()
    except Exception:
        return ""


def machine():
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    return (f"{cpu or platform.processor()}, {os.cpu_count()} cores, "
            f"{platform.system()} {platform.release()}; "
            f"{sh('gcc --version | head -1')}; {sh('clang --version | head -1')}")


def rates(results):
    counted = [r for r in results if r["result"] != "equivalent"]
    killed = [r for r in counted if r["result"] == "killed"]
    rate = 100.0 * len(killed) / len(counted) if counted else 100.0
    return len(killed), len(counted), rate


def md_escape(s):
    return s.replace("|", "\\|").replace("\n", " ")


def write_summary(results, path, base_times, started, secs, partial):
    killed, counted, rate = rates(results)
    equiv = [r for r in results if r["result"] == "equivalent"]
    surv = [r for r in results if r["result"] in ("survived", "fuzz-only")]
    by_layer = {}
    for r in results:
        if r["result"] == "killed":
            k = r["layer"].split()[0]
            by_layer[k] = by_layer.get(k, 0) + 1
    commit = COMMIT
    L = []
    L.append("# Mutation testing: summary\n")
    L.append("Written by `make mutate` (tests/mutate/mutate.py; the mutants are "
             "tests/mutate/catalogue.txt). Each mutant is applied to a scratch "
             "copy of the tree and the suite's layers run in order of speed "
             "(unit + conformance, property, fuzz corpus replay, stress under "
             "TSan and ASan); the first layer that fails kills it. A survivor "
             "of the four gets live libFuzzer runs, which are not part of the "
             "suite: a mutant killed only there is shown as *live fuzzing only* "
             "and counts as a survivor.\n")
    if partial:
        L.append("**Partial run** (`MUTANT=`): not the committed summary.\n")
    L.append(f"- machine: {machine()}")
    L.append(f"- date: {started} UTC; {secs / 60:.1f} min for {len(results)} mutants "
             f"(base build and check {sum(base_times.values()):.0f} s)")
    L.append(f"- commit: {commit}")
    L.append(f"- layer limits: stress {STRESS_ROUNDS} rounds; live fuzzing "
             f"{FUZZ_SECONDS} s per target for survivors")
    L.append("")
    L.append(f"**Kill rate: {killed} / {counted} = {rate:.1f}%** "
             f"({len(results)} mutants, {len(equiv)} equivalent counted out, "
             f"{len(surv)} surviving the suite). Killed by layer: " +
             ", ".join(f"{k} {by_layer.get(k, 0)}" for k in SUITE_LAYERS) + ".\n")
    if os.path.exists(HISTORY) and not partial:
        with open(HISTORY) as f:
            L.append(f.read().rstrip() + "\n")
    L.append("## Every mutant\n")
    L.append("| id | file | mutation | result | layer | what failed | s |")
    L.append("|---|---|---|---|---|---|---|")
    for r in results:
        res = {"killed": "killed", "survived": "**SURVIVED**",
               "fuzz-only": "**live fuzzing only**",
               "equivalent": "EQUIVALENT"}[r["result"]]
        L.append(f"| {r['id']} | {r['file']} | {md_escape(r['desc'])} | {res} | "
                 f"{r['layer']} | {md_escape(r['detail'])[:140]} | {r['seconds']} |")
    L.append("")
    L.append("## Survivors and equivalent mutants\n")
    if not surv and not equiv:
        L.append("None.\n")
    for r in surv:
        L.append(f"- **{r['id']}** ({r['result']}): {r['desc']}. "
                 f"{r['note'] or 'No test kills it yet and no equivalence argument is given.'}")
    for r in equiv:
        L.append(f"- **{r['id']}** (equivalent): {r['desc']}. {r['equivalent']}")
    L.append("")
    notes = [r for r in results if r["note"] and r["result"] == "killed"]
    if notes:
        L.append("## Mutants killed by tests added for them\n")
        for r in notes:
            L.append(f"- **{r['id']}**: {r['note']}")
        L.append("")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(L))


# ---------------------------------------------------------------------------
def main(argv):
    args = argv[1:]
    mutants = parse_catalogue(CATALOGUE)
    if "--list" in args:
        for m in mutants:
            print(f"{m['id']:34s} {m['file']:18s} {m['desc']}")
        print(f"{len(mutants)} mutants")
        return 0
    if "--check" in args:
        bad = 0
        copy_tree(ROOT, os.path.join(WORK, "check"))
        for m in mutants:
            t = os.path.join(WORK, "check")
            try:
                src = os.path.join(ROOT, m["file"])
                shutil.copy2(src, os.path.join(t, m["file"]))
                apply_mutant(m, t)
            except CatalogueError as e:
                print(f"mutate --check: {e}", file=sys.stderr)
                bad += 1
            shutil.copy2(os.path.join(ROOT, m["file"]), os.path.join(t, m["file"]))
        shutil.rmtree(os.path.join(WORK, "check"), ignore_errors=True)
        print(f"mutate --check: {len(mutants) - bad} of {len(mutants)} mutants apply")
        return 1 if bad else 0
    only = None
    if "--only" in args:
        only = args[args.index("--only") + 1].split(",")
        unknown = [i for i in only if i not in {m["id"] for m in mutants}]
        if unknown:
            print(f"mutate: no mutant named {', '.join(unknown)} (make mutate-list)",
                  file=sys.stderr)
            return 2
        mutants = [m for m in mutants if m["id"] in only]
    os.makedirs(LOGS, exist_ok=True)
    global COMMIT
    dirty = sh("git status --porcelain -- core maps tests fuzz Makefile")
    COMMIT = sh("git rev-parse --short HEAD") + (" + uncommitted changes" if dirty else "")
    started = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")
    t0 = time.time()
    try:
        # every snippet first: a stale one fails before any build
        for m in mutants:
            t = os.path.join(WORK, "check")
            copy_tree(ROOT, t)
            apply_mutant(m, t)
        shutil.rmtree(os.path.join(WORK, "check"), ignore_errors=True)
        base_times = make_base()
        results = []
        for i, m in enumerate(mutants, 1):
            r = run_mutant(m)
            results.append(r)
            print(f"mutate: [{i}/{len(mutants)}] {r['id']:34s} {r['result']:10s} "
                  f"{r['layer']:16s} {r['detail'][:70]} ({r['seconds']} s)", flush=True)
    except CatalogueError as e:
        print(f"mutate: FAILED: {e}", file=sys.stderr)
        return 1
    secs = time.time() - t0
    out = SUMMARY if only is None else os.path.join(WORK, "partial.md")
    write_summary(results, out, base_times, started, secs, only is not None)
    with open(os.path.join(WORK, "results.json" if only is None else "partial.json"), "w") as f:
        json.dump(results, f, indent=1)
    killed, counted, rate = rates(results)
    print(f"mutate: kill rate {killed}/{counted} = {rate:.1f}% "
          f"(equivalent mutants counted out); {secs / 60:.1f} min; summary in "
          f"{os.path.relpath(out, ROOT)}")
    for r in results:
        if r["result"] in ("survived", "fuzz-only"):
            print(f"mutate: survivor {r['id']} ({r['result']}): {r['desc']}")
    if only is None and rate < MIN_RATE:
        print(f"mutate: FAILED: kill rate below {MIN_RATE}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
