/* SPDX-License-Identifier: MIT */
/*
 * digest.h -- the digest of a context's pairs: what `bench/replay --digest`
 * prints and tests/trace/roundtrip.c prints for the same contexts, so that
 * a replayed trace is checked against the run that recorded it. A sum over
 * the pairs of the murmur3 64-bit finaliser of (var id << 32 ^ value id):
 * the order of the walk does not matter.
 */
#ifndef CV_BENCH_DIGEST_H
#define CV_BENCH_DIGEST_H

#include <stddef.h>
#include <stdint.h>

typedef struct digest {
    uint64_t sum;
    size_t n;                    /* pairs added */
} digest;

static inline uint64_t digest_mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

static inline void digest_add(digest *d, uint64_t var_id, uint64_t val_id)
{
    d->sum += digest_mix64((var_id << 32) ^ val_id);
    d->n++;
}

#endif
