/* SPDX-License-Identifier: MIT */
/*
 * instr.c -- instruction counts per operation, for `make bench-instr`.
 *
 *   instr --list                      backends, one per line; first line the default
 *   instr BACKEND|cpython N,N,.. K    every op at every N, K iterations each
 *
 * Meant to run under
 *   valgrind --tool=callgrind --collect-atstart=no ./instr hamt 1,16,1024 500
 * Collection is switched on around the measured loop only, and the counts
 * are dumped after each (op, N) with the description "op/backend/N/iters/units",
 * which bench/report.py parses. For get_switch and get_depth only the gets
 * are collected (not the enter/exit between them), so the figure is the
 * uncached get alone. Outside valgrind the client requests are no-ops and
 * this is a plain smoke run.
 */
#include <Python.h>

#include <valgrind/callgrind.h>

#include "ops.h"
#include "ops_py.h"

/* Fewer iterations where one iteration is O(N). */
static size_t iters_for(const char *op, size_t n, size_t k)
{
    size_t it = k;
    if (strcmp(op, "foreach") == 0 || strcmp(op, "fork_write") == 0 || strcmp(op, "mix") == 0) {
        size_t cap = n > 0 ? 200000 / n : k;
        it = cap < it ? cap : it;
    }
    return it < 3 ? 3 : it;
}

static int is_switch(const char *op)
{
    return strcmp(op, "get_switch") == 0 || strcmp(op, "get_depth") == 0;
}

static void dump(const char *op, const char *backend, size_t arg, size_t iters, size_t units)
{
    char desc[160];
    snprintf(desc, sizeof desc, "%s/%s/%zu/%zu/%zu", op, backend, arg, iters, units);
    CALLGRIND_DUMP_STATS_AT(desc);
}

/* The measured loop, one protocol for both sides: a switch op collects the
 * gets alone, between an enter and an exit of each of the world's two
 * copies (ENTER and EXIT are the side's calls, checked); any other op is
 * collected whole over its iterations. */
#define MEASURE(w, opfn, getsfn, ENTER, EXIT, iters, sw)                  \
    do {                                                                  \
        if (sw) {                                                         \
            for (size_t i_ = 0; i_ < (iters); i_++) {                     \
                ENTER((w).other);                                         \
                CALLGRIND_TOGGLE_COLLECT;                                 \
                getsfn(&(w));                                             \
                CALLGRIND_TOGGLE_COLLECT;                                 \
                EXIT((w).other);                                          \
                ENTER((w).other2);                                        \
                CALLGRIND_TOGGLE_COLLECT;                                 \
                getsfn(&(w));                                             \
                CALLGRIND_TOGGLE_COLLECT;                                 \
                EXIT((w).other2);                                         \
            }                                                             \
        } else {                                                          \
            CALLGRIND_TOGGLE_COLLECT;                                     \
            for (size_t i_ = 0; i_ < (iters); i_++)                       \
                opfn(&(w));                                               \
            CALLGRIND_TOGGLE_COLLECT;                                     \
        }                                                                 \
    } while (0)

static void run_cv(const cv_backend *b, bench_pool *pool, const bench_op_desc *op,
                   size_t arg, size_t k)
{
    int depth = strcmp(op->name, "get_depth") == 0;
    size_t n = depth ? BENCH_DEPTH_N : arg;
    bench_world w;
    memset(&w, 0, sizeof w);
    bench_world_init(&w, b, pool, n, depth ? arg : 0);
    bench_world_enter(&w);
    size_t iters = iters_for(op->name, n, k);
    op->cv(&w); /* warm */
    MEASURE(w, op->cv, cvop_gets, BENCH_CV_ENTER, BENCH_CV_EXIT, iters, is_switch(op->name));
    dump(op->name, cv_backend_name(b), arg, iters, bench_op_units(op->name, n, w.nsw));
    bench_world_exit(&w);
    bench_world_free(&w);
}

static void run_py(py_pool *pool, const bench_op_desc *op, size_t arg, size_t k)
{
    int depth = strcmp(op->name, "get_depth") == 0;
    size_t n = depth ? BENCH_DEPTH_N : arg;
    py_world w;
    py_world_init(&w, pool, n, depth ? arg : 0);
    py_world_enter(&w);
    size_t iters = iters_for(op->name, n, k);
    op->py(&w); /* warm */
    MEASURE(w, op->py, pyop_gets, BENCH_PY_ENTER, BENCH_PY_EXIT, iters, is_switch(op->name));
    dump(op->name, "cpython", arg, iters, bench_op_units(op->name, n, w.nsw));
    py_world_exit(&w);
    py_world_free(&w);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        const cv_backend *b[64];
        size_t n = cv_backend_list(b, 64);
        const cv_backend *d = cv_backend_default();
        printf("%s\n", d ? cv_backend_name(d) : "");
        for (size_t i = 0; i < n && i < 64; i++)
            printf("%s\n", cv_backend_name(b[i]));
        return 0;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: %s --list | BACKEND|cpython N,N,... K [DEPTH,DEPTH,...]\n", argv[0]);
        return 2;
    }
    size_t k = strtoul(argv[3], NULL, 10);
    int py = strcmp(argv[1], "cpython") == 0;
    const cv_backend *b = py ? NULL : cv_backend_get(argv[1]);
    if (!py && b == NULL) {
        fprintf(stderr, "instr: no backend %s\n", argv[1]);
        return 2;
    }
    bench_pool pool;
    py_pool ppool;
    memset(&pool, 0, sizeof pool);
    memset(&ppool, 0, sizeof ppool);
    if (py)
        Py_Initialize();
    size_t nops;
    const bench_op_desc *ops = bench_ops(&nops);
    for (int pass = 0; pass < 2; pass++) {
        const char *list = pass == 0 ? argv[2] : (argc > 4 ? argv[4] : "");
        char *copy = strdup(list), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            size_t arg = strtoul(tok, NULL, 10);
            for (size_t i = 0; i < nops; i++) {
                if ((pass == 1) != (strcmp(ops[i].name, "get_depth") == 0))
                    continue;
                if (pass == 0 && !bench_op_fits(ops[i].name, arg))
                    continue;
                if (py)
                    run_py(&ppool, &ops[i], arg, k);
                else
                    run_cv(b, &pool, &ops[i], arg, k);
            }
        }
        free(copy);
    }
    if (py) {
        py_pool_free(&ppool);
        Py_FinalizeEx();
    } else {
        bench_pool_free(&pool);
    }
    cv_thread_cleanup();
    return 0;
}
