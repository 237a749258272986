#!/usr/bin/env python3
"""uv_http_run.py -- drives bench/workloads/uv_http.c with wrk (loopback only).

  uv_http_run.py check --server BIN      make test: zero mismatches over at
                                         least 100,000 requests at 64
                                         connections (bounded: <= 4 wrk runs
                                         of 10 s), and a --broken server must
                                         be caught
  uv_http_run.py bench --server BIN --results DIR
                                         make report: throughput and p50/p99
                                         per backend beside the hand-passed
                                         baseline, interleaved rounds, ratios
                                         within a round; writes
                                         DIR/<cpu-tag>/uv_http.{json,md}
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "uv_http.lua")


class Server:
    def __init__(self, binary, args=(), env=None, wrap=()):
        e = dict(os.environ)
        e.update(env or {})
        self.p = subprocess.Popen(list(wrap) + [binary, "--max-seconds", "300"] + list(args),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=e)
        line = self.p.stdout.readline()
        m = re.match(r"port (\d+)", line)
        if not m:
            self.p.kill()
            sys.exit("uv_http did not start: %r %s" % (line, self.p.stderr.read()))
        self.port = int(m.group(1))

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            out, err = self.p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
            sys.exit("uv_http did not stop on SIGTERM: " + err[-2000:])
        last = [l for l in out.splitlines() if l.startswith("{")]
        if self.p.returncode != 0 or not last:
            sys.exit("uv_http failed (%s): %s" % (self.p.returncode, err[-2000:]))
        return json.loads(last[-1])


def to_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s)$", s)
    v = float(m.group(1))
    return {"us": v / 1000.0, "ms": v, "s": v * 1000.0}[m.group(2)]


def wrk(port, seconds, conns, threads):
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency",
           "-s", LUA, "http://127.0.0.1:%d/" % port]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode != 0:
        sys.exit("wrk failed: " + r.stderr)
    out = r.stdout
    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
           "requests": int(re.search(r"(\d+) requests in", out).group(1))}
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, out, re.M)
        res["p" + pct + "_ms"] = to_ms(m.group(1)) if m else None
    m = re.search(r"Socket errors: (.*)", out)
    res["socket_errors"] = m.group(1).strip() if m else ""
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    return res


def load():
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def cmd_check(a):
    s = Server(a.server)
    total, runs = 0, 0
    while total < a.min_requests and runs < a.max_runs:
        r = wrk(s.port, a.seconds, a.conns, a.threads)
        total += r["requests"]
        runs += 1
        print("uv_http check: wrk run %d: %d requests at %d connections, %.0f req/s, "
              "p50 %.2f ms, p99 %.2f ms (load %s)" % (
                  runs, r["requests"], a.conns, r["rps"], r["p50_ms"], r["p99_ms"], load()))
        if r["non_2xx"]:
            sys.exit("uv_http check: %d non-2xx responses" % r["non_2xx"])
    st = s.stop()
    print("uv_http check: server: %s" % json.dumps(st))
    bad = []
    if st["mismatches"] != 0:
        bad.append("%d log lines carried another request's id" % st["mismatches"])
    if st["requests"] < total:
        bad.append("server answered %d < wrk's %d" % (st["requests"], total))
    if st["log_lines"] != 5 * st["requests"]:
        bad.append("log lines %d for %d requests" % (st["log_lines"], st["requests"]))
    if st["fallbacks"]:
        bad.append("%d callbacks ran outside their context" % st["fallbacks"])
    if total < a.min_requests:
        bad.append("only %d requests in %d runs (want %d)" % (total, runs, a.min_requests))
    # the checker must see a server that loses the context in one step
    b = Server(a.server, ["--broken"])
    wrk(b.port, 2, a.conns, a.threads)
    bst = b.stop()
    print("uv_http check: --broken server: %d mismatches in %d lines (must be > 0)" % (
        bst["mismatches"], bst["log_lines"]))
    if bst["mismatches"] == 0:
        bad.append("the --broken server went unnoticed")
    if bad:
        sys.exit("uv_http check FAILED: " + "; ".join(bad))
    print("uv_http check: %d requests, %d log lines, 0 mismatches" % (
        st["requests"], st["log_lines"]))


def callgrind_ir(server, args, env, seconds):
    """Instructions the server executes (every thread, user space) for a
    wrk run of `seconds`, and for none: (Ir, requests, Ir at rest)."""
    out = []
    for secs in (0, seconds):
        f = "/tmp/uv_http.%d.cg" % os.getpid()
        s = Server(server, args, env, ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + f])
        if secs:
            wrk(s.port, secs, 8, 1)
        st = s.stop()
        total = None
        for line in open(f):
            if line.startswith("totals:") or line.startswith("summary:"):
                total = int(line.split()[1])
        os.unlink(f)
        out.append((total, st["requests"]))
    (idle, _), (busy, n) = out
    return busy, n, idle


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0


def write_md(doc, outdir):
    w, summary = doc["wrk"], doc["summary"]
    L = []
    L.append("A libuv HTTP/1.1 server (bench/workloads/uv_http.c, libctxvar-uv) gives each "
             "request its own context, sets `request_id` from the request line and logs five "
             "lines per request through a logger that reads the var: the request step, a "
             "`uv_queue_work` step on the pool thread, the step after it, a timer step, the "
             "write callback. `hand` is the same server passing the id by hand, with no ctxvar "
             "call. wrk: %d threads, %d connections, %d s per run, %d interleaved rounds; "
             "the ratio is against `hand` in the same round (median over rounds). wrk and the "
             "server share the machine's cores with whatever else runs (the load average is "
             "in uv_http.json).\n" % (w["threads"], w["connections"], w["seconds"], w["rounds"]))
    L.append("Throughput on a shared 2-core machine moves by tens of percent between runs "
             "of the same binary, far more than the cost being measured; so two steadier "
             "figures stand beside it: the server's CPU time per request (getrusage, every "
             "thread, user + system) and, with valgrind, the instructions it executes per "
             "request in user space (callgrind, a %s s wrk run at 8 connections minus an "
             "idle run; kernel work, the larger part of a request, is not counted, so this "
             "ratio overstates the share of ctxvar).\n" % (doc.get("instr_seconds") or "-"))
    L.append("| variant | req/s (median) | vs hand | p50 ms | p99 ms | CPU µs/req | vs hand "
             "| instr/req | vs hand | requests | mismatches |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in summary:
        s = summary[name]
        L.append("| %s | %.0f | %.3fx | %.2f | %.2f | %.2f | %.3fx | %s | %s | %d | %d |" % (
            name, s["rps_median"], s["throughput_vs_hand_median"], s["p50_ms_median"],
            s["p99_ms_median"], s["cpu_us_per_req_median"], s["cpu_vs_hand_median"],
            "%.0f" % s["ir_per_req"] if s["ir_per_req"] else "–",
            "%.3fx" % s["ir_vs_hand"] if s["ir_vs_hand"] else "–",
            s["requests"], s["mismatches"]))
    extra = [summary[n]["ir_per_req"] - summary["hand"]["ir_per_req"]
             for n in summary if n != "hand" and summary[n].get("ir_per_req")]
    if extra:
        L.append("\nctxvar's part, by instructions: %.0f-%.0f more per request than the hand-passed "
                 "server (%.0f%%-%.0f%% of its user-space instructions): six enters and exits "
                 "(one per callback), one context made and three copied, a bound callback, five "
                 "uncached gets and one set per request." % (min(extra), max(extra),
                                   100 * min(extra) / summary["hand"]["ir_per_req"],
                                   100 * max(extra) / summary["hand"]["ir_per_req"]))
    with open(os.path.join(outdir, "uv_http.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    print("\n".join(L))


def cmd_md(a):
    with open(os.path.join(a.dir, "uv_http.json")) as f:
        doc = json.load(f)
    doc.setdefault("instr_seconds", 3)
    write_md(doc, a.dir)


def cmd_bench(a):
    sys.path.insert(0, os.path.dirname(HERE))
    import report  # bench/report.py: the same results/<cpu-tag>/ directory
    outdir = os.path.join(a.results, report.cpu_tag())
    os.makedirs(outdir, exist_ok=True)
    backends = subprocess.run([a.server, "--list-backends"], capture_output=True,
                              text=True).stdout.split()
    variants = [("hand", [], {})] + [(b, [], {"CTXVAR_BACKEND": b}) for b in backends]
    runs = []
    t0 = time.time()
    for rnd in range(a.rounds):
        for name, args, env in variants:
            s = Server(a.server, (["--hand"] if name == "hand" else []) + args, env)
            r = wrk(s.port, a.seconds, a.conns, a.threads)
            st = s.stop()
            r.update({"variant": name, "round": rnd, "server": st, "load": load()})
            runs.append(r)
            print("uv_http bench: round %d %-9s %8.0f req/s p50 %.2f ms p99 %.2f ms "
                  "mismatches %d (load %s)" % (rnd, name, r["rps"], r["p50_ms"],
                                               r["p99_ms"], st["mismatches"], r["load"]),
                  flush=True)
    for r in runs:
        st = r["server"]
        r["cpu_us_per_req"] = (st["cpu_user_s"] + st["cpu_sys_s"]) * 1e6 / max(st["requests"], 1)
    instr = {}
    if a.instr:
        for name, args, env in variants:
            busy, n, idle = callgrind_ir(a.server, (["--hand"] if name == "hand" else []) + args,
                                         env, a.instr)
            instr[name] = {"ir_per_req": (busy - idle) / max(n, 1), "requests": n}
            print("uv_http bench: callgrind %-9s %.0f instructions per request (%d requests)" % (
                name, instr[name]["ir_per_req"], n), flush=True)
    summary = {}
    for name, _, _ in variants:
        mine = [r for r in runs if r["variant"] == name]
        ratios, cpu_ratios = [], []
        for r in mine:
            base = [x for x in runs if x["variant"] == "hand" and x["round"] == r["round"]][0]
            ratios.append(r["rps"] / base["rps"])
            cpu_ratios.append(r["cpu_us_per_req"] / base["cpu_us_per_req"])
        summary[name] = {
            "cpu_us_per_req_median": median([r["cpu_us_per_req"] for r in mine]),
            "cpu_vs_hand_median": median(cpu_ratios),
            "ir_per_req": instr.get(name, {}).get("ir_per_req"),
            "ir_vs_hand": (instr[name]["ir_per_req"] / instr["hand"]["ir_per_req"]
                           if name in instr else None),
            "rps_median": median([r["rps"] for r in mine]),
            "p50_ms_median": median([r["p50_ms"] for r in mine]),
            "p99_ms_median": median([r["p99_ms"] for r in mine]),
            "throughput_vs_hand_median": median(ratios),
            "throughput_vs_hand_each": ratios,
            "requests": sum(r["server"]["requests"] for r in mine),
            "mismatches": sum(r["server"]["mismatches"] for r in mine),
        }
    doc = {"what": "bench/workloads/uv_http.c driven by wrk on 127.0.0.1",
           "wrk": {"threads": a.threads, "connections": a.conns, "seconds": a.seconds,
                   "rounds": a.rounds},
           "elapsed_s": round(time.time() - t0), "runs": runs, "summary": summary,
           "instr_seconds": a.instr}
    with open(os.path.join(outdir, "uv_http.json"), "w") as f:
        json.dump(doc, f, indent=1)
    write_md(doc, outdir)
    if any(summary[n]["mismatches"] for n in summary):
        sys.exit("uv_http bench: mismatches")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("--server", required=True)
    c.add_argument("--seconds", type=int, default=10)
    c.add_argument("--conns", type=int, default=64)
    c.add_argument("--threads", type=int, default=2)
    c.add_argument("--min-requests", type=int, default=100000)
    c.add_argument("--max-runs", type=int, default=4)
    b = sub.add_parser("bench")
    b.add_argument("--server", required=True)
    b.add_argument("--results", required=True)
    b.add_argument("--seconds", type=int, default=5)
    b.add_argument("--rounds", type=int, default=2)
    b.add_argument("--conns", type=int, default=64)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--instr", type=int, default=3,
                   help="seconds of wrk under callgrind per variant (0: skip)")
    m = sub.add_parser("md")
    m.add_argument("--dir", required=True)
    a = ap.parse_args()
    {"check": cmd_check, "bench": cmd_bench, "md": cmd_md}[a.cmd](a)


if __name__ == "__main__":
    main()
