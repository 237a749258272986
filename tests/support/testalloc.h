/* SPDX-License-Identifier: MIT */
/*
 * testalloc.h -- the test allocator: counts live blocks and bytes, and
 * fails the k-th allocation on demand (SQLite's and libuv's OOM loops).
 *
 * It is a file of its own, apart from testutil.c, because it must not need
 * cmocka: the unit suite gets it through testutil.h, and the fuzz targets
 * (fuzz/, which have no cmocka) link testalloc.c directly, so that both
 * fail allocations in exactly the same way. It needs only libc and
 * ctxvar.h.
 *
 * Install it with tu_alloc_install() before any other library call, as
 * cv_set_allocator asks.
 */
#ifndef CV_TESTALLOC_H
#define CV_TESTALLOC_H

#include "ctxvar.h"

/* Installs the allocator with cv_set_allocator (abort()s if refused).
 * Calling it again is harmless and puts it back after someone installed
 * another (test_api installs plain malloc for a while); the counters are
 * process-wide and carry on across installs. */
void tu_alloc_install(void);

long tu_alloc_live(void);            /* blocks allocated and not freed */
long tu_alloc_live_bytes(void);      /* their sizes, summed */
long tu_alloc_calls(void);           /* allocations attempted so far */

/* The k-th allocation from now fails (k >= 1); with forever, every one
 * from it on fails too. k = 0 turns failing off. Either way the count
 * tu_alloc_failures() starts again from 0. */
void tu_alloc_fail_at(long k, int forever);
long tu_alloc_failures(void);        /* allocations failed since fail_at */
/* Turns failing off (tu_alloc_fail_at(0, 0)) and returns how many
 * allocations failed since the last fail_at: the end of one round of an
 * OOM loop, right after the call under test. */
long tu_alloc_fail_off(void);
/* Allocations failed since the process started; never reset. For a mark
 * taken before a call and compared after it when the failing may be
 * switched on or off in between (the fuzz interpreter does so). */
long tu_alloc_failures_total(void);

/* A second allocator to swap in and out of this one: plain malloc and free
 * that count their own live blocks in side->live (the allocator's ud). The
 * returned hook is whole; a test may blank either half. */
typedef struct tu_side_alloc {
    long live;
} tu_side_alloc;
cv_allocator tu_side_allocator(tu_side_alloc *side);

#endif
