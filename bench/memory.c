/* SPDX-License-Identifier: MIT */
/*
 * memory.c -- bytes held by contexts, for the report.
 *
 *   memory BACKEND|cpython N K [chain|fork]
 *
 * Builds a context with N pairs, then takes K snapshots that each differ
 * by one set, in one of two shapes, and prints one JSON object:
 *   chain  a history: snapshot = copy_context(), then one set in the
 *          current context, so each snapshot is the previous plus a set
 *          (the shape of PERFORMANCE.md's anchor figure)
 *   fork   siblings: snapshot = copy_context(), enter it, one set, exit,
 *          so each differs from the common parent by a set (a runtime
 *          spawning K tasks that each set a request var)
 * A HAMT retains about the same per snapshot in both shapes; a ChainMap
 * does not (a chain compacts every few layers and each flattening is
 * shared by only those few snapshots), so the report shows both.
 *   bytes_per_entry     (bytes after the N sets - bytes before) / N
 *   bytes_per_snapshot  bytes retained by the K snapshots / K
 *   peak_rss_kb         VmHWM of this process
 * Bytes are the sizes requested from the allocator (no malloc rounding):
 *   ctxvar   a counting allocator installed with cv_set_allocator
 *   cpython  counting hooks on the PYMEM_DOMAIN_MEM and _OBJ allocators,
 *            installed after Py_PreInitialize and before Py_Initialize
 *            (the documented window), so every object block is counted.
 * One process per measurement: CPython's context free list would otherwise
 * hand back contexts freed by an earlier measurement without allocating.
 */
#include <Python.h>

#include "ops.h"
#include "ops_py.h"

/* ---- the counting wrapper: a 16-byte header holds the requested size ---- */
typedef struct counter {
    long long live;  /* bytes requested and not yet freed */
    long long peak;
    long long blocks;
} counter;

#define HDR 16

static void count(counter *c, long long delta, int blocks)
{
    c->live += delta;
    c->blocks += blocks;
    if (c->live > c->peak)
        c->peak = c->live;
}

static void *cv_count_malloc(size_t size, void *ud)
{
    char *p = malloc(size + HDR);
    if (p == NULL)
        return NULL;
    *(size_t *)p = size;
    count(ud, (long long)size, 1);
    return p + HDR;
}

static void cv_count_free(void *ptr, void *ud)
{
    char *p = (char *)ptr - HDR;
    count(ud, -(long long)*(size_t *)p, -1);
    free(p);
}

/* CPython: wrap each domain's previous allocator. */
typedef struct py_hook {
    PyMemAllocatorEx prev;
    counter *c;
} py_hook;

static void *py_malloc(void *ctx, size_t size)
{
    py_hook *h = ctx;
    char *p = h->prev.malloc(h->prev.ctx, size + HDR);
    if (p == NULL)
        return NULL;
    *(size_t *)p = size;
    count(h->c, (long long)size, 1);
    return p + HDR;
}

static void *py_calloc(void *ctx, size_t nelem, size_t elsize)
{
    py_hook *h = ctx;
    if (elsize && nelem > (SIZE_MAX - HDR) / elsize)
        return NULL;
    size_t size = nelem * elsize;
    char *p = h->prev.calloc(h->prev.ctx, 1, size + HDR);
    if (p == NULL)
        return NULL;
    *(size_t *)p = size;
    count(h->c, (long long)size, 1);
    return p + HDR;
}

static void *py_realloc(void *ctx, void *ptr, size_t size)
{
    py_hook *h = ctx;
    if (ptr == NULL)
        return py_malloc(ctx, size);
    char *old = (char *)ptr - HDR;
    size_t old_size = *(size_t *)old;
    char *p = h->prev.realloc(h->prev.ctx, old, size + HDR);
    if (p == NULL)
        return NULL;
    *(size_t *)p = size;
    count(h->c, (long long)size - (long long)old_size, 0);
    return p + HDR;
}

static void py_free(void *ctx, void *ptr)
{
    py_hook *h = ctx;
    if (ptr == NULL)
        return;
    char *p = (char *)ptr - HDR;
    count(h->c, -(long long)*(size_t *)p, -1);
    h->prev.free(h->prev.ctx, p);
}

static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static int fork_shape; /* 0: chain, 1: fork (see the top) */

static void print_result(const char *backend, size_t n, size_t k, double per_entry,
                         double per_snap, long long leaked, const char *method)
{
    printf("{\"backend\":\"%s\",\"n\":%zu,\"k\":%zu,\"shape\":\"%s\","
           "\"bytes_per_entry\":%.1f,"
           "\"bytes_per_snapshot\":%.1f,\"leaked_bytes\":%lld,\"peak_rss_kb\":%ld,"
           "\"method\":\"%s\"}\n",
           backend, n, k, fork_shape ? "fork" : "chain", per_entry, per_snap, leaked,
           peak_rss_kb(), method);
}

/* The measurement, one protocol for both sides: the live bytes of counter
 * c before ctx is made (NEW), after it is entered and the n vars set, and
 * with the k snapshots held (live[0..2]); then everything goes again but
 * the vars. A snapshot is COPY(dst), then in the chosen shape one set of
 * var i % n to value i / n + 1 (SET(var, i) stores value i & 1, a change
 * each time round). ENTER, EXIT and DROP (release) are the side's calls. */
#define MEASURE(c, ctx, vars, n, k, Ctx, NEW, COPY, ENTER, EXIT, SET, DROP, live) \
    do {                                                                    \
        (live)[0] = (c).live;                                               \
        NEW(ctx);                                                           \
        ENTER(ctx);                                                         \
        for (size_t i_ = 0; i_ < (n); i_++)                                 \
            SET((vars)[i_], 0);                                             \
        (live)[1] = (c).live;                                               \
        Ctx **snaps_ = (Ctx **)calloc((k), sizeof *snaps_);                 \
        for (size_t i_ = 0; i_ < (k); i_++) {                               \
            COPY(snaps_[i_]);                                               \
            if (fork_shape)                                                 \
                ENTER(snaps_[i_]);                                          \
            SET((vars)[i_ % (n)], i_ / (n) + 1);                            \
            if (fork_shape)                                                 \
                EXIT(snaps_[i_]);                                           \
        }                                                                   \
        (live)[2] = (c).live;                                               \
        for (size_t i_ = 0; i_ < (k); i_++)                                 \
            DROP(snaps_[i_]);                                               \
        free(snaps_);                                                       \
        EXIT(ctx);                                                          \
        DROP(ctx);                                                          \
    } while (0)

static void print_measured(const char *backend, size_t n, size_t k, const long long live[3],
                           long long leaked, const char *method)
{
    print_result(backend, n, k, (double)(live[1] - live[0]) / (double)n,
                 (double)(live[2] - live[1]) / (double)k, leaked, method);
}

static int measure_cv(const char *name, size_t n, size_t k)
{
    counter c = {0, 0, 0};
    cv_allocator a = {cv_count_malloc, cv_count_free, &c};
    BENCH_OK(cv_set_allocator(&a));
    const cv_backend *b = cv_backend_get(name);
    if (b == NULL) {
        fprintf(stderr, "memory: no backend %s\n", name);
        return 2;
    }
    bench_pool pool;
    memset(&pool, 0, sizeof pool);
    bench_pool_grow(&pool, n);
    cv_context *ctx;
    static char vals[2];
    long long live[3];
#define CV_NEW(ctx) BENCH_OK(cv_context_new_on(b, &(ctx)))
#define CV_SET(var, i) BENCH_OK(cv_var_set((var), &vals[(i) & 1], NULL))
    MEASURE(c, ctx, pool.vars, n, k, cv_context, CV_NEW, BENCH_CV_COPY, BENCH_CV_ENTER,
            BENCH_CV_EXIT, CV_SET, cv_context_release, live);
    bench_pool_free(&pool);
    cv_thread_cleanup();
    print_measured(name, n, k, live, c.live, "cv_set_allocator counting");
    return 0;
}

static int measure_py(size_t n, size_t k)
{
    counter c = {0, 0, 0};
    PyPreConfig pre;
    PyPreConfig_InitPythonConfig(&pre);
    PyStatus st = Py_PreInitialize(&pre);
    if (PyStatus_Exception(st))
        Py_ExitStatusException(st);
    static py_hook hooks[2];
    PyMemAllocatorDomain doms[2] = {PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};
    for (int i = 0; i < 2; i++) {
        PyMem_GetAllocator(doms[i], &hooks[i].prev);
        hooks[i].c = &c;
        PyMemAllocatorEx a = {&hooks[i], py_malloc, py_calloc, py_realloc, py_free};
        PyMem_SetAllocator(doms[i], &a);
    }
    Py_Initialize();
    PyObject **vars = calloc(n, sizeof *vars);
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "v%zu", i);
        vars[i] = PyContextVar_New(name, NULL);
    }
    PyObject *vals[2] = {PyLong_FromLong(1000001), PyLong_FromLong(1000002)};
    PyObject *ctx;
    long long live[3];
#define PY_NEW(ctx) ((ctx) = PyContext_New())
#define PY_SET(var, i) py_set_quiet((var), vals[(i) & 1])
    MEASURE(c, ctx, vars, n, k, PyObject, PY_NEW, BENCH_PY_COPY, BENCH_PY_ENTER, BENCH_PY_EXIT,
            PY_SET, Py_DECREF, live);
    print_measured("cpython", n, k, live, 0, "PyMem_SetAllocator counting hooks (MEM+OBJ domains)");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s BACKEND|cpython N K [chain|fork]\n", argv[0]);
        return 2;
    }
    if (argc == 5 && strcmp(argv[4], "chain") != 0 && strcmp(argv[4], "fork") != 0) {
        fprintf(stderr, "memory: shape is chain or fork, not %s\n", argv[4]);
        return 2;
    }
    fork_shape = argc == 5 && strcmp(argv[4], "fork") == 0;
    size_t n = strtoul(argv[2], NULL, 10), k = strtoul(argv[3], NULL, 10);
    if (n == 0 || k == 0)
        return 2;
    return strcmp(argv[1], "cpython") == 0 ? measure_py(n, k) : measure_cv(argv[1], n, k);
}
