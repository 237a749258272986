/* SPDX-License-Identifier: MIT */
/*
 * ops_py.h -- the anchor: the ops of ops.h through CPython's C API.
 *
 * Embedded libpython3.11 (Py_Initialize once, GIL held throughout, one
 * thread). Each body mirrors its cvop_* twin in ops.h: same vars, same
 * counts, pre-made value objects (ints outside the small-int cache). Where
 * the C API has no twin, the Python-level equivalent is called:
 *
 *   set_notok   CPython always makes a token: same body as set_tok
 *   run_empty   ctx.run(f) through PyObject_VectorcallMethod, f a C function
 *   foreach     iterate ctx.items(), one tuple per pair, as Python does
 *
 * Include <Python.h> before anything else in the including file.
 */
#ifndef CV_BENCH_OPS_PY_H
#define CV_BENCH_OPS_PY_H

#include <Python.h>

#include "ops.h"

static inline void py_die(const char *what)
{
    fprintf(stderr, "bench: CPython %s failed\n", what);
    if (PyErr_Occurred())
        PyErr_Print();
    abort();
}
#define PY_OK(expr)                          \
    do {                                     \
        if ((expr) < 0)                      \
            py_die(#expr);                   \
    } while (0)

typedef struct py_pool {
    PyObject **vars;  /* ContextVar objects, vars[0..n) */
    size_t n;
    PyObject *absent; /* ContextVar with a default, never set */
    PyObject *dflt;   /* its default */
} py_pool;

static inline void py_pool_new_absent(py_pool *p)
{
    p->dflt = PyLong_FromLong(7000001);
    p->absent = PyContextVar_New("absent", p->dflt);
    if (p->absent == NULL)
        py_die("PyContextVar_New");
}
#define BENCH_PY_NEW_VAR(name, dst)                           \
    do {                                                      \
        if (((dst) = PyContextVar_New((name), NULL)) == NULL) \
            py_die("PyContextVar_New");                       \
    } while (0)
#define BENCH_PY_DROP_ABSENT(p)  \
    do {                         \
        Py_XDECREF((p)->absent); \
        Py_XDECREF((p)->dflt);   \
    } while (0)
BENCH_POOL_FNS(py_pool, py_pool, PyObject, py_pool_new_absent, BENCH_PY_NEW_VAR, Py_DECREF,
               BENCH_PY_DROP_ABSENT, py_die)

typedef struct py_world {
    size_t n, depth;
    PyObject **vars;          /* borrowed from the pool */
    PyObject *absent;         /* borrowed */
    PyObject *ctx;            /* the base context, N pairs */
    PyObject **chain;         /* depth nested copies */
    PyObject *other;          /* copy of the top, to switch to */
    PyObject *other2;         /* another, for get_switch */
    PyObject *vals[3];        /* as bench_world.val_store */
    unsigned flip;
    size_t sw[BENCH_SWITCH_K], nsw;
    size_t mix[BENCH_MIX_GETS];
    size_t hot;
    long sink;
    PyMethodDef noop_def;     /* the empty function of run_empty */
    PyObject *noop;
    PyObject *str_run, *str_items;
    PyObject *snaps[BENCH_SNAPS];   /* as bench_world */
    size_t snap_i;
    PyObject *hist[2];
    PyObject *hist_snaps[2][BENCH_SNAPS];
} py_world;

static inline PyObject *py_noop(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_RETURN_NONE;
}

static inline void py_set_quiet(PyObject *var, PyObject *val)
{
    PyObject *tok = PyContextVar_Set(var, val);
    if (tok == NULL)
        py_die("PyContextVar_Set");
    Py_DECREF(tok);
}

/* CPython's side of ops.h's BENCH_WORLD_CONTEXTS. */
#define BENCH_PY_COPY(dst)                                 \
    do {                                                   \
        if (((dst) = PyContext_CopyCurrent()) == NULL)     \
            py_die("PyContext_CopyCurrent");               \
    } while (0)
#define BENCH_PY_ENTER(c) PY_OK(PyContext_Enter(c))
#define BENCH_PY_EXIT(c) PY_OK(PyContext_Exit(c))
#define BENCH_PY_SET(w, var, i) py_set_quiet((var), (w)->vals[(i) & 1])
BENCH_WORLD_CONTEXTS(py_world, py_world, PyObject, BENCH_PY_COPY, BENCH_PY_ENTER, BENCH_PY_EXIT,
                     Py_XDECREF, BENCH_PY_SET)

static inline void py_world_init(py_world *w, py_pool *pool, size_t n, size_t depth)
{
    py_pool_grow(pool, n > 0 ? n : 1);
    memset(w, 0, sizeof *w);
    w->n = n;
    w->depth = depth;
    w->vars = pool->vars;
    w->absent = pool->absent;
    for (int i = 0; i < 3; i++)
        w->vals[i] = PyLong_FromLong(1000001 + i);
    w->noop_def.ml_name = "noop";
    w->noop_def.ml_meth = py_noop;
    w->noop_def.ml_flags = METH_NOARGS;
    w->noop = PyCFunction_New(&w->noop_def, NULL);
    w->str_run = PyUnicode_InternFromString("run");
    w->str_items = PyUnicode_InternFromString("items");
    if ((w->ctx = PyContext_New()) == NULL)
        py_die("PyContext_New");
    py_world_build(w);
}

static inline void py_world_free(py_world *w)
{
    py_world_drop(w);
    for (int i = 0; i < 3; i++)
        Py_DECREF(w->vals[i]);
    Py_DECREF(w->noop);
    Py_DECREF(w->str_run);
    Py_DECREF(w->str_items);
}

/* ------------------------------------------------------------------------ */
static inline void pyop_get1(PyObject *var)
{
    PyObject *v = NULL;
    int rc = PyContextVar_Get(var, NULL, &v);
    BENCH_KEEP(rc);
    BENCH_KEEP(v);
    Py_XDECREF(v);
}

static inline void pyop_get_hot(py_world *w) { pyop_get1(w->vars[w->hot]); }

static inline void pyop_gets(py_world *w)
{
    for (size_t k = 0; k < w->nsw; k++)
        pyop_get1(w->vars[w->sw[k]]);
}

static inline void pyop_get_switch(py_world *w)
{
    BENCH_GETS_IN_TWO(w, other, other2, BENCH_PY_ENTER, BENCH_PY_EXIT, pyop_gets);
}

/* CPython's get is always a call: get_call is get_hot there. */
static inline void pyop_get_call(py_world *w) { pyop_get_hot(w); }
static inline void pyop_get_absent(py_world *w) { pyop_get1(w->absent); }

static inline void pyop_set_tok(py_world *w)
{
    PyObject *tok = PyContextVar_Set(w->vars[w->hot], w->vals[++w->flip & 1]);
    BENCH_KEEP(tok);
    Py_DECREF(tok);
}

static inline void pyop_set_notok(py_world *w) { pyop_set_tok(w); }

static inline void pyop_set_reset(py_world *w)
{
    PyObject *var = w->vars[w->hot];
    PyObject *tok = PyContextVar_Set(var, w->vals[2]);
    PY_OK(PyContextVar_Reset(var, tok));
    Py_DECREF(tok);
}

static inline void pyop_copy(py_world *w)
{
    (void)w;
    PyObject *c = PyContext_CopyCurrent();
    BENCH_KEEP(c);
    Py_DECREF(c);
}

static inline void pyop_fork_write(py_world *w)
{
    PyObject *c = PyContext_CopyCurrent();
    PY_OK(PyContext_Enter(c));
    PyObject *tok = PyContextVar_Set(w->vars[w->hot], w->vals[2]);
    PY_OK(PyContext_Exit(c));
    Py_DECREF(tok);
    Py_DECREF(c);
}

static inline void pyop_enter_exit(py_world *w)
{
    PY_OK(PyContext_Enter(w->other));
    PY_OK(PyContext_Exit(w->other));
}

static inline void pyop_run_empty(py_world *w)
{
    PyObject *args[3] = {NULL, w->other, w->noop};
    PyObject *r = PyObject_VectorcallMethod(w->str_run, args + 1,
                                            2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r == NULL)
        py_die("ctx.run");
    Py_DECREF(r);
}

static inline void pyop_foreach(py_world *w)
{
    PyObject *items = PyObject_CallMethodNoArgs(w->ctx, w->str_items);
    PyObject *it = items ? PyObject_GetIter(items) : NULL;
    PyObject *t;
    if (it == NULL)
        py_die("ctx.items()");
    while ((t = PyIter_Next(it)) != NULL) {
        w->sink += PyTuple_GET_ITEM(t, 1) == w->vals[1];
        Py_DECREF(t);
    }
    BENCH_KEEP(w->sink);
    Py_DECREF(it);
    Py_DECREF(items);
}

static inline void pyop_mix(py_world *w)
{
    for (size_t k = 0; k < BENCH_MIX_GETS; k++)
        pyop_get1(w->vars[w->mix[k]]);
    PyObject *c = PyContext_CopyCurrent();
    PY_OK(PyContext_Enter(c));
    PyObject *tok = PyContextVar_Set(w->vars[w->mix[0]], w->vals[2]);
    PY_OK(PyContext_Exit(c));
    Py_DECREF(tok);
    Py_DECREF(c);
}

static inline void pyop_get_depth(py_world *w) { pyop_get_switch(w); }

static inline void pyop_snap_set(py_world *w)
{
    PyObject **slot = &w->snaps[w->snap_i++ % BENCH_SNAPS];
    Py_XDECREF(*slot);
    if ((*slot = PyContext_CopyCurrent()) == NULL)
        py_die("PyContext_CopyCurrent");
    py_set_quiet(w->vars[w->sw[w->snap_i % w->nsw]], w->vals[(w->snap_i / w->nsw) & 1]);
}

static inline void pyop_snap_burst(py_world *w)
{
    PyObject **slot = &w->snaps[w->snap_i++ % BENCH_SNAPS];
    Py_XDECREF(*slot);
    if ((*slot = PyContext_CopyCurrent()) == NULL)
        py_die("PyContext_CopyCurrent");
    for (size_t k = 0; k < BENCH_SNAP_BURST; k++) {
        size_t i = w->snap_i * BENCH_SNAP_BURST + k;
        py_set_quiet(w->vars[(i * 7919) % w->n], w->vals[(i / w->n + 1) & 1]);
    }
}

static inline void pyop_snap_get(py_world *w)
{
    if (w->hist[0] == NULL)
        py_die("snap_get beyond BENCH_SNAP_GET_MAX_N");
    BENCH_GETS_IN_TWO(w, hist[0], hist[1], BENCH_PY_ENTER, BENCH_PY_EXIT, pyop_gets);
}

static inline void pyop_snap_write(py_world *w)
{
    if (w->hist[0] == NULL)
        py_die("snap_write beyond BENCH_SNAP_GET_MAX_N");
    for (int h = 0; h < 2; h++) {
        PY_OK(PyContext_Enter(w->hist[h]));
        for (size_t k = 0; k < w->nsw; k++) {
            size_t i = w->snap_i++;
            py_set_quiet(w->vars[(i * 7919) % w->n], w->vals[(i / w->n + 1) & 1]);
        }
        PY_OK(PyContext_Exit(w->hist[h]));
    }
}

/* ------------------------------------------------------------------------
 * Every op on both sides, BENCH_OP_LIST's then get_depth: the one table
 * instr.c and the Google Benchmark harness (bench_*.cc) run.
 * ------------------------------------------------------------------------ */
typedef struct bench_op_desc {
    const char *name;
    void (*cv)(bench_world *);
    void (*py)(py_world *);
} bench_op_desc;

static inline const bench_op_desc *bench_ops(size_t *count)
{
#define BENCH_OP_DESC(name) {#name, cvop_##name, pyop_##name},
    static const bench_op_desc ops[] = {
        BENCH_OP_LIST(BENCH_OP_DESC){"get_depth", cvop_get_depth, pyop_get_depth}};
#undef BENCH_OP_DESC
    *count = sizeof ops / sizeof ops[0];
    return ops;
}

/* The op named name, or NULL. */
static inline const bench_op_desc *bench_op_named(const char *name)
{
    size_t n;
    const bench_op_desc *ops = bench_ops(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(ops[i].name, name) == 0)
            return &ops[i];
    return NULL;
}

#endif /* CV_BENCH_OPS_PY_H */
