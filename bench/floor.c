/* SPDX-License-Identifier: MIT */
/*
 * floor.c -- what one locked read-modify-write costs on this machine.
 *
 *   floor [ITERS]    prints one JSON object (ns per operation)
 *
 * Several of PERFORMANCE.md's targets ask ctxvar to beat operations that
 * CPython does with plain stores under its GIL: copy_context is one
 * non-atomic Py_INCREF, enter + exit two plain flag stores. ctxvar's
 * contexts, maps and vars may be shared between threads, so each of those
 * steps is a locked instruction (a reference count, the entered bit). The
 * report multiplies the locked instructions an operation executes (counted
 * under callgrind: cg_locked in bench/report.py) by the figures measured
 * here to give the floor below which that operation cannot go while it
 * stays thread-safe, and sets it beside CPython's time.
 *
 * Each figure is the median of 7 runs of 20 million dependent operations
 * on one private, cache-resident word (uncontended: the best case).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define RUNS 7

static long ITERS = 20000000L; /* argv[1] may lower it (the smoke pass) */

static _Atomic size_t word;
static volatile size_t plain;

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void lock_add(void)
{
    for (long i = 0; i < ITERS; i++)
        atomic_fetch_add_explicit(&word, 2, memory_order_relaxed);
}

static void lock_sub_acq_rel(void)
{
    for (long i = 0; i < ITERS; i++)
        atomic_fetch_sub_explicit(&word, 2, memory_order_acq_rel);
}

static void lock_or(void)
{
    /* the enter of core/context.c: a fetch-or whose old bit is tested */
    size_t seen = 0;
    for (long i = 0; i < ITERS; i++) {
        seen += atomic_fetch_or_explicit(&word, 1, memory_order_acq_rel) & 1;
        atomic_store_explicit(&word, 0, memory_order_relaxed);
    }
    if (seen == (size_t)-1)
        puts("");
}

static void plain_add(void)
{
    for (long i = 0; i < ITERS; i++)
        plain = plain + 2;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_ns(void (*fn)(void))
{
    double t[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ns();
        fn();
        t[r] = (now_ns() - t0) / (double)ITERS;
    }
    qsort(t, RUNS, sizeof t[0], cmp);
    return t[RUNS / 2];
}

int main(int argc, char **argv)
{
    if (argc > 1 && (ITERS = strtol(argv[1], NULL, 10)) <= 0)
        return 2;
    double add = median_ns(lock_add);
    double sub = median_ns(lock_sub_acq_rel);
    double orr = median_ns(lock_or);
    double pl = median_ns(plain_add);
    printf("{\"lock_add_ns\":%.2f,\"lock_sub_acq_rel_ns\":%.2f,"
           "\"lock_or_plus_store_ns\":%.2f,\"plain_add_ns\":%.2f,"
           "\"iters\":%ld,\"runs\":%d}\n",
           add, sub, orr, pl, ITERS, RUNS);
    return 0;
}
