/* SPDX-License-Identifier: MIT */
/*
 * testalloc.c -- the counting and failing test allocator (testalloc.h).
 *
 * Every block is prefixed with its size so that live bytes can be counted
 * at free. The counters are atomic because the thread tests allocate from
 * many threads at once; the fuzz targets are single-threaded and pay only
 * the uncontended atomics.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "testalloc.h"

typedef union hdr {
    size_t size;
    max_align_t align; /* keeps the user block maximally aligned */
} hdr;

static atomic_long live_blocks;   /* allocated, not yet freed */
static atomic_long live_bytes;    /* the sizes of those blocks */
static atomic_long calls;         /* tu_malloc calls, failed ones included */
static atomic_long fail_at;       /* the value of calls that fails; 0: none */
static atomic_int fail_forever;   /* and every call after it fails too */
static atomic_long failures;      /* failed since the last fail_at */
static atomic_long failures_total; /* failed ever */

static void *tu_malloc(size_t size, void *ud)
{
    (void)ud;
    long n = atomic_fetch_add(&calls, 1) + 1;
    long k = atomic_load(&fail_at);
    if (k > 0 && (n == k || (n > k && atomic_load(&fail_forever)))) {
        atomic_fetch_add(&failures, 1);
        atomic_fetch_add(&failures_total, 1);
        return NULL;
    }
    hdr *h = malloc(sizeof *h + size);
    if (h == NULL)
        return NULL;
    h->size = size;
    atomic_fetch_add(&live_blocks, 1);
    atomic_fetch_add(&live_bytes, (long)size);
    return h + 1;
}

static void tu_free(void *p, void *ud)
{
    (void)ud;
    hdr *h = (hdr *)p - 1;
    atomic_fetch_sub(&live_blocks, 1);
    atomic_fetch_sub(&live_bytes, (long)h->size);
    free(h);
}

void tu_alloc_install(void)
{
    cv_allocator a = {.malloc_cb = tu_malloc, .free_cb = tu_free, .ud = NULL};
    if (cv_set_allocator(&a) != 0)
        abort();
}

long tu_alloc_live(void) { return atomic_load(&live_blocks); }
long tu_alloc_live_bytes(void) { return atomic_load(&live_bytes); }
long tu_alloc_calls(void) { return atomic_load(&calls); }
long tu_alloc_failures(void) { return atomic_load(&failures); }
long tu_alloc_failures_total(void) { return atomic_load(&failures_total); }

static void *side_malloc(size_t size, void *ud)
{
    ((tu_side_alloc *)ud)->live++;
    return malloc(size);
}

static void side_free(void *p, void *ud)
{
    ((tu_side_alloc *)ud)->live--;
    free(p);
}

cv_allocator tu_side_allocator(tu_side_alloc *side)
{
    cv_allocator a = {.malloc_cb = side_malloc, .free_cb = side_free,
                      .ud = side};
    return a;
}

void tu_alloc_fail_at(long k, int forever)
{
    atomic_store(&fail_forever, forever);
    atomic_store(&failures, 0);
    atomic_store(&fail_at, k > 0 ? atomic_load(&calls) + k : 0);
}

long tu_alloc_fail_off(void)
{
    long failed = atomic_load(&failures);
    tu_alloc_fail_at(0, 0);
    return failed;
}
