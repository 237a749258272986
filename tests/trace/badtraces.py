#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""badtraces.py GOOD_TRACE REPLAY OUTDIR -- bad traces must be refused.

Each case below damages a good trace in one way and runs `replay --check`
on it: the replayer must exit with status 2 and print one line naming the
problem (the expected words are checked), never crash. Then a small fuzz:
random byte flips and truncations of the good trace, each replayed for
real (`--digest`): any exit status 0, 2 or 3 is fine, a signal is not.
"""
import os
import random
import struct
import subprocess
import sys

good_path, replay, outdir = sys.argv[1:4]
good = open(good_path, "rb").read()
os.makedirs(outdir, exist_ok=True)
HDR = 64


def blocks(data):
    """(offset, tid, nbytes) of every block."""
    off, out = HDR, []
    while off < len(data):
        magic, tid, nbytes, nrec = struct.unpack_from("<IIII", data, off)
        out.append((off, tid, nbytes))
        off += 16 + nbytes
    return out


def first_record(data, op):
    """Offset of the first record with this op in a thread block."""
    for off, tid, nbytes in blocks(data):
        if tid == 0xFFFFFFFF:
            continue
        p, end = off + 16, off + 16 + nbytes
        while p < end:
            o, flags = data[p], data[p + 1]
            if o & 0x80:  # a short get
                p += 4
                continue
            if o == op:
                return p
            seq = not (o in (2, 3, 4) or (o == 5 and not flags & 1))
            p += 16 + (8 if seq else 0)
    raise SystemExit("badtraces: no record with op %d in the good trace" % op)


def patch(data, off, fmt, *vals):
    b = bytearray(data)
    struct.pack_into(fmt, b, off, *vals)
    return bytes(b)


end_off = blocks(good)[-1][0]
cases = [
    ("empty file", b"", "shorter than"),
    ("bad magic", b"XXXXXXXX" + good[8:], "bad magic"),
    ("version 7", patch(good, 8, "<I", 7), "version 7"),
    ("other byte order", patch(good, 12, ">I", 0x01020304), "byte order"),
    ("truncated in a block", good[:len(good) // 2 + 3], "truncated"),
    ("truncated block header", good[:HDR + 5], "truncated block header"),
    ("bad block magic", patch(good, HDR, "<I", 0xDEADBEEF), "bad block magic"),
    ("unknown op", patch(good, first_record(good, 5), "<B", 99), "unknown operation"),
    ("var id out of range", patch(good, first_record(good, 4) + 4, "<I", 4000), "out of range"),
    ("context never made", patch(good, first_record(good, 11) + 4, "<I", 0), "context 0"),
    ("run_end without run", patch(good, first_record(good, 13), "<B", 14), "run_end"),
    ("block count wrong", patch(good, HDR + 12, "<I", 3), "announced"),
    ("data after the end", good + good[HDR:HDR + 40], "after the end"),
    ("no such file", None, "cannot open"),
]
failed = 0
for name, data, words in cases:
    path = os.path.join(outdir, name.replace(" ", "_") + ".trace")
    if data is not None:
        with open(path, "wb") as f:
            f.write(data)
    else:
        path = os.path.join(outdir, "does-not-exist.trace")
    r = subprocess.run([replay, "--check", path], capture_output=True, text=True)
    msg = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    ok = r.returncode == 2 and words in msg and msg.startswith("replay: ")
    print("  %-24s exit %d  %s%s" % (name, r.returncode, msg[:110], "" if ok else "   <-- WRONG"))
    failed += not ok

# the fuzz: a fixed seed, so a failure is reproducible
rng = random.Random(17)
statuses = {}
n_fuzz = int(os.environ.get("TRACE_FUZZ", "150"))
for i in range(n_fuzz):
    b = bytearray(good)
    if i % 5 == 4:
        b = b[:rng.randrange(HDR, len(b))]
    else:
        for _ in range(rng.randrange(1, 4)):
            p = rng.randrange(HDR, len(b))
            b[p] = rng.randrange(256)
    path = os.path.join(outdir, "fuzz.trace")
    with open(path, "wb") as f:
        f.write(b)
    try:
        r = subprocess.run([replay, "--digest", path], capture_output=True, text=True, timeout=60)
        code = r.returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    statuses[code] = statuses.get(code, 0) + 1
    if code not in (0, 2, 3):
        failed += 1
        keep = os.path.join(outdir, "fuzz-crash-%d.trace" % i)
        os.rename(path, keep)
        print("  fuzz case %d: exit %s (kept as %s): %s" % (i, code, keep, r.stderr[-300:] if code != "timeout" else ""))
print("  fuzz: %d damaged traces, exit statuses %s" % (n_fuzz, dict(sorted(statuses.items(), key=str))))
sys.exit(1 if failed else 0)
