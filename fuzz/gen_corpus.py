#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the hand-made seed inputs of fuzz/corpus/<target>/ (seed-*).

Each seed is a few commands of the language its target reads (fuzz.h for
the ctx language, map_ops.c for the map one), written as text; together
they use every command. Files named regress-* (minimised crashes) are
never touched. Run from anywhere: python3 fuzz/gen_corpus.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# The ctx language: one letter per command, digit arguments (fuzz.h).
CTX = {
    "s1-set-reset": "V000 S010 S021 G0 I1 R01 G0 I0 R00 G0 O03",
    "s2-default": "V011 G0 O03 s02 G0 V100 G1 O15",
    "s3-run-copy": "V000 V100 s01 s12 C0 (0 s03 s14 G0 K00 )0 G0 K00 G1 K01",
    "isolation": "V000 s01 C0 s02 E0 G0 Q G0 K00 c01 x0 K10 L1 L9",
    "s16-reset-misuse": "V000 V100 S010 R00 R00 S111 R01 C2 E2 S012 Q R02 E2 R02 Q",
    "foreach": "V000 V100 V200 s01 s12 s23 F9000000 F9200000 F9010000 F9011240 C0 F0000000",
    "enter-exit": "N00 N11 E0 E1 E0 X0 X1 X0 Q Q Q L9 L0",
    "hooks": "V030 V136 V247 s01 s02 S113 S223 t1 v0 v1 C0 x0 R22",
    "s11-token-var": "V000 S010 T03 G0 v0 T14 I0 t0",
    "nested-runs": "N00 V000 (0 (0 s00 )1 N11 (1 E0 s01 )2 G0 )3 Q G0",
    "release-order": "V000 S010 C1 E1 S011 x1 v0 Q t0 t1",
    "token-other-ctx": "V000 N10 (1 S011 )0 R01 E1 R01 Q",
    "null-value": "V000 s00 G0 K00 O05 S001 R01 G0 L9",
}

# map_ops: 4 bytes base hash, key count, 2 bytes per key (shared low bits
# with the base, free bits), then commands (map_ops.c).
def keys(shared):
    return bytes([len(shared)]) + b"".join(bytes([s, i * 7 + 1]) for i, s in enumerate(shared))

MAP = {
    "random-keys": struct.pack("<I", 0x12345678) + keys([0, 0, 0, 0, 0, 0, 0, 0])
        + b"s000 s011 s022 s033 s044 f00 l0 e0 e2 d01 d01 a",
    "full-collision": struct.pack("<I", 0xdeadbeef) + keys([32] * 6)
        + b"s001 s012 s023 s034 s045 s056 h01 d12 s107 f12 d00 d01 e0 e1 a r1 a",
    "prefixes": struct.pack("<I", 0) + keys([5, 10, 15, 20, 25, 30, 31, 32, 32, 4, 9, 14])
        + b"s001 s012 s023 s034 s045 s056 s067 s071 s082 s093 s0:4 s0;5 h01 h02 d15 d26 s237 a e1 e2",
    "snapshots": struct.pack("<I", 7) + keys([3, 3, 3, 8, 8, 8, 8, 8])
        + b"s001 s012 h01 s023 h12 s134 h23 s245 d20 r0 a r1 e2 e3",
    "oom": struct.pack("<I", 99) + keys([0, 32, 32, 10, 10, 10, 0, 0])
        + b"o1s001 o2s012 s023 o1h01 o1s137 o1d10 o3s024 s045 s056 s067 a",
}


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def main():
    for name, prog in CTX.items():
        write("ctx_ops", name, prog)
        write("cpython_diff", name, prog)
    for name, data in MAP.items():
        write("map_ops", name, data)
    # oom: byte 0 = backend (low bits) and mode (bit 7), bytes 1-2 = k.
    for i, (name, prog) in enumerate(CTX.items()):
        p = prog.encode()
        write("oom", name + "-k1", bytes([i, 1, 0]) + p)
        write("oom", name + "-k4-forever", bytes([0x80 | i, 4, 0]) + p)
        write("oom", name + "-k9", bytes([i + 1, 9, 0]) + p)


if __name__ == "__main__":
    main()
