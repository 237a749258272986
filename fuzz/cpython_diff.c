/* SPDX-License-Identifier: MIT */
/*
 * cpython_diff.c -- the ctx language (fuzz.h) run through CPython's
 * contextvars (embedded libpython3.11) and through ctxvar, side by side:
 * any difference in a value, a len, a foreach's contents or the kind of
 * an error is a crash. CPython is the reference PEP 567 implementation,
 * so this checks the model's reading of the PEP as much as the library.
 *
 * Mapping: a var is PyContextVar_New("v<id>", default); values are FZ_NVAL
 * distinct Python objects (value 0, the NULL pointer, is None); contexts
 * are PyContext_New / PyContext_CopyCurrent / PyContext_Copy; enter/exit
 * are PyContext_Enter/Exit; get is PyContextVar_Get(var, NULL) and get_or
 * PyContextVar_Get(var, d) (ContextVar.get(d): d beats the var's default,
 * as R4 says); foreach is ctx.items(); ctx_get is ctx[var].
 * Errors: LookupError (no value) <-> CV_ELOOKUP; RuntimeError "...used
 * once" <-> CV_ETOKEN_USED; ValueError "...different ContextVar" <->
 * CV_ETOKEN_VAR; ValueError "...different Context" <-> CV_ETOKEN_CTX;
 * RuntimeError "cannot enter context ... already entered" <-> CV_EENTERED;
 * RuntimeError "cannot exit context ..." <-> CV_ENOTENTERED.
 *
 * What CPython cannot express, and how it is handled:
 *  - Exiting the thread's base context: Python has no handle on it and
 *    ctxvar always refuses (CV_ENOTENTERED); 'Q' at the bottom is skipped.
 *    Each input runs in a fresh PyContext entered as the pseudo-base.
 *  - run(ctx) whose fn leaves contexts entered: ctxvar unwinds them (R11),
 *    CPython's Context.run fails and leaves them. The Python side of a run
 *    is PyContext_Enter + body + explicit exits of what the body left +
 *    PyContext_Exit, i.e. ctxvar's semantics written out.
 *  - Exiting a run's own context inside fn (ctxvar: known bug B1; Python:
 *    Context.run raises afterwards): never generated here.
 *  - Token "used": not exposed by Python's Token; not compared.
 *  - Value hooks (R14): Python counts references itself; hooks only run on
 *    the ctxvar side (and are checked there).
 *  - A foreach that stops early: Python's side is the full items() list;
 *    the library's visited pairs must be a subset of the right size.
 *  - A set from inside a foreach callback: Python's side sets after
 *    collecting items() (the library walks a snapshot, R10).
 */
#include <Python.h>

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct py {
    PyObject *var[FZ_NVARS];
    PyObject *tok[FZ_NTOK];
    PyObject *ctx[FZ_NCTX];
    PyObject *stack[FZ_MAX_DEPTH];   /* what this side entered; [0]: base */
    int depth;
} py;

static PyObject *vals[FZ_NVAL];
static PyObject *missing;            /* contextvars.Token.MISSING */
static py world;
static const cv_backend *backends[16];
static size_t nbackends;

#define PYDIE(...) fz_die(__VA_ARGS__)

static void py_check(PyObject *o, const char *what)
{
    if (o == NULL) {
        PyErr_Print();
        PYDIE("python: %s failed unexpectedly", what);
    }
}

/* Maps the pending exception to a CV_E* code; anything else is fatal. */
static int py_err(const char *what)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    const char *msg = "";
    PyObject *s = value ? PyObject_Str(value) : NULL;
    if (s != NULL)
        msg = PyUnicode_AsUTF8(s);
    int r = 0;
    if (PyErr_GivenExceptionMatches(type, PyExc_RuntimeError)) {
        if (strstr(msg, "used"))
            r = CV_ETOKEN_USED;
        else if (strstr(msg, "cannot enter context"))
            r = CV_EENTERED;
        else if (strstr(msg, "cannot exit context"))
            r = CV_ENOTENTERED;
    } else if (PyErr_GivenExceptionMatches(type, PyExc_ValueError)) {
        if (strstr(msg, "different ContextVar"))
            r = CV_ETOKEN_VAR;
        else if (strstr(msg, "different Context"))
            r = CV_ETOKEN_CTX;
    } else if (PyErr_GivenExceptionMatches(type, PyExc_LookupError)) {
        r = CV_ELOOKUP;
    }
    if (r == 0)
        PYDIE("python: %s raised an unmapped exception: %s", what, msg);
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return r;
}

static int val_index(PyObject *o)
{
    for (int i = 0; i < FZ_NVAL; i++)
        if (o == vals[i])
            return i;
    PYDIE("python returned a value it was never given");
}

static int var_id(PyObject *var)
{
    PyObject *name = PyObject_GetAttrString(var, "name");
    py_check(name, "ContextVar.name");
    int id = atoi(PyUnicode_AsUTF8(name) + 1);
    Py_DECREF(name);
    return id;
}

static void put(PyObject **slot, PyObject *o)
{
    Py_XDECREF(*slot);
    *slot = o;
}

static void p_begin(void *self)
{
    py *p = self;
    memset(p, 0, sizeof *p);
    PyObject *base = PyContext_New();
    py_check(base, "PyContext_New");
    if (PyContext_Enter(base) < 0)
        py_check(NULL, "PyContext_Enter(base)");
    p->stack[0] = base;
    p->depth = 1;
}

static void p_end(void *self)
{
    py *p = self;
    for (int i = 0; i < FZ_NVARS; i++)
        put(&p->var[i], NULL);
    for (int i = 0; i < FZ_NTOK; i++)
        put(&p->tok[i], NULL);
    for (int i = 0; i < FZ_NCTX; i++)
        put(&p->ctx[i], NULL);
    while (p->depth > 0) {
        PyObject *c = p->stack[--p->depth];
        if (PyContext_Exit(c) < 0)
            py_check(NULL, "PyContext_Exit at the end");
        if (p->depth == 0)
            Py_DECREF(c);
    }
    if (PyErr_Occurred())
        py_check(NULL, "a pending exception at the end");
}

static int p_var_new(void *self, int slot, int id, int has_default, int dflt)
{
    char name[16];
    snprintf(name, sizeof name, "v%d", id);
    PyObject *v = PyContextVar_New(name, has_default ? vals[dflt] : NULL);
    py_check(v, "PyContextVar_New");
    put(&((py *)self)->var[slot], v);
    return 0;
}

static void p_var_release(void *self, int slot) { put(&((py *)self)->var[slot], NULL); }

static int p_set(void *self, int vslot, int val, int tslot)
{
    py *p = self;
    PyObject *t = PyContextVar_Set(p->var[vslot], vals[val]);
    py_check(t, "PyContextVar_Set");
    if (tslot >= 0)
        put(&p->tok[tslot], t);
    else
        Py_DECREF(t);
    return 0;
}

static int p_set_via_token(void *self, int tslot, int val)
{
    py *p = self;
    PyObject *v = PyObject_GetAttrString(p->tok[tslot], "var");
    py_check(v, "Token.var");
    PyObject *t = PyContextVar_Set(v, vals[val]);
    py_check(t, "PyContextVar_Set(Token.var)");
    Py_DECREF(t);
    Py_DECREF(v);
    return 0;
}

static int p_get_with(py *p, int vslot, PyObject *d, int *val)
{
    PyObject *out = NULL;
    if (PyContextVar_Get(p->var[vslot], d, &out) < 0)
        return py_err("PyContextVar_Get");
    if (out == NULL)
        return CV_ELOOKUP;
    *val = val_index(out);
    Py_DECREF(out);
    return 0;
}

static int p_get(void *self, int vslot, int *val) { return p_get_with(self, vslot, NULL, val); }

static int p_get_or(void *self, int vslot, int dflt, int *val)
{
    return p_get_with(self, vslot, vals[dflt], val);
}

static int p_reset(void *self, int vslot, int tslot)
{
    py *p = self;
    if (PyContextVar_Reset(p->var[vslot], p->tok[tslot]) < 0)
        return py_err("PyContextVar_Reset");
    return 0;
}

static void p_tok_release(void *self, int tslot) { put(&((py *)self)->tok[tslot], NULL); }

static int p_tok_info(void *self, int tslot, int *vid, int *used, int *old)
{
    py *p = self;
    PyObject *v = PyObject_GetAttrString(p->tok[tslot], "var");
    py_check(v, "Token.var");
    *vid = var_id(v);
    Py_DECREF(v);
    PyObject *o = PyObject_GetAttrString(p->tok[tslot], "old_value");
    py_check(o, "Token.old_value");
    *old = o == missing ? FZ_MISSING : val_index(o);
    Py_DECREF(o);
    *used = FZ_UNKNOWN;
    return 0;
}

static int p_ctx_new(void *self, int slot)
{
    PyObject *c = PyContext_New();
    py_check(c, "PyContext_New");
    put(&((py *)self)->ctx[slot], c);
    return 0;
}

static int p_ctx_copy_current(void *self, int slot)
{
    PyObject *c = PyContext_CopyCurrent();
    py_check(c, "PyContext_CopyCurrent");
    put(&((py *)self)->ctx[slot], c);
    return 0;
}

static int p_ctx_copy(void *self, int src, int slot)
{
    py *p = self;
    PyObject *c = PyContext_Copy(p->ctx[src]);
    py_check(c, "PyContext_Copy");
    put(&p->ctx[slot], c);
    return 0;
}

static void p_ctx_release(void *self, int slot) { put(&((py *)self)->ctx[slot], NULL); }

static int p_enter(void *self, int slot)
{
    py *p = self;
    if (PyContext_Enter(p->ctx[slot]) < 0)
        return py_err("PyContext_Enter");
    Py_INCREF(p->ctx[slot]);
    p->stack[p->depth++] = p->ctx[slot];
    return 0;
}

static int p_exit(void *self, int slot)
{
    py *p = self;
    PyObject *c = slot < 0 ? p->stack[p->depth - 1] : p->ctx[slot];
    if (p->depth == 1 && c == p->stack[0])
        return FZ_SKIP; /* the base: see the top of the file */
    if (PyContext_Exit(c) < 0)
        return py_err("PyContext_Exit");
    if (p->depth <= 1 || p->stack[p->depth - 1] != c)
        PYDIE("python: exited a context this side did not enter last");
    Py_DECREF(p->stack[--p->depth]);
    return 0;
}

static void p_run_end(void *self, int depth_before)
{
    py *p = self;
    while (p->depth > depth_before) {
        PyObject *c = p->stack[p->depth - 1];
        if (PyContext_Exit(c) < 0)
            py_check(NULL, "PyContext_Exit (run unwinding)");
        Py_DECREF(c);
        p->depth--;
    }
}

static PyObject *ctx_of(py *p, int slot)
{
    if (slot >= 0) {
        Py_INCREF(p->ctx[slot]);
        return p->ctx[slot];
    }
    PyObject *c = PyContext_CopyCurrent();
    py_check(c, "PyContext_CopyCurrent");
    return c;
}

static int p_len(void *self, int slot, long *n)
{
    PyObject *c = ctx_of(self, slot);
    Py_ssize_t k = PyObject_Length(c);
    if (k < 0)
        py_check(NULL, "len(Context)");
    *n = (long)k;
    Py_DECREF(c);
    return 0;
}

static int p_items(void *self, int slot, fz_pair *out, int cap, int *n)
{
    PyObject *c = ctx_of(self, slot);
    PyObject *items = PyMapping_Items(c);
    py_check(items, "Context.items()");
    Py_ssize_t k = PyList_Size(items);
    int m = 0;
    for (Py_ssize_t i = 0; i < k && m < cap; i++) {
        PyObject *t = PyList_GetItem(items, i); /* borrowed */
        out[m].var = var_id(PyTuple_GetItem(t, 0));
        out[m].val = val_index(PyTuple_GetItem(t, 1));
        m++;
    }
    /* sorted by var, as the interpreter compares */
    for (int i = 1; i < m; i++)
        for (int j = i; j > 0 && out[j - 1].var > out[j].var; j--) {
            fz_pair x = out[j];
            out[j] = out[j - 1];
            out[j - 1] = x;
        }
    *n = m;
    Py_DECREF(items);
    Py_DECREF(c);
    return 0;
}

static int p_ctx_get(void *self, int slot, int vslot, int *val)
{
    py *p = self;
    PyObject *o = PyObject_GetItem(p->ctx[slot], p->var[vslot]);
    if (o == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError))
            py_check(NULL, "Context[var]");
        PyErr_Clear();
        return 0;
    }
    *val = val_index(o);
    Py_DECREF(o);
    return 1;
}

static const fz_ref_ops cpython_ops = {
    .name = "cpython",
    .begin = p_begin,
    .end = p_end,
    .var_new = p_var_new,
    .var_release = p_var_release,
    .set = p_set,
    .set_via_token = p_set_via_token,
    .get = p_get,
    .get_or = p_get_or,
    .reset = p_reset,
    .tok_release = p_tok_release,
    .tok_info = p_tok_info,
    .ctx_new = p_ctx_new,
    .ctx_copy_current = p_ctx_copy_current,
    .ctx_copy = p_ctx_copy,
    .ctx_release = p_ctx_release,
    .enter = p_enter,
    .exit = p_exit,
    .run_begin = p_enter,
    .run_end = p_run_end,
    .len = p_len,
    .items = p_items,
    .ctx_get = p_ctx_get,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_target = "cpython_diff";
    if (Py_IsInitialized())
        return 0;
    Py_InitializeEx(0);
    vals[0] = Py_None;
    Py_INCREF(Py_None);
    for (int i = 1; i < FZ_NVAL; i++) {
        vals[i] = PyUnicode_FromFormat("value-%d", i);
        py_check(vals[i], "value");
    }
    PyObject *mod = PyImport_ImportModule("contextvars");
    py_check(mod, "import contextvars");
    PyObject *token = PyObject_GetAttrString(mod, "Token");
    py_check(token, "contextvars.Token");
    missing = PyObject_GetAttrString(token, "MISSING");
    py_check(missing, "Token.MISSING");
    Py_DECREF(token);
    Py_DECREF(mod);
    nbackends = fz_backends(backends, 16);
    tu_alloc_install();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FZ_MAX_INPUT)
        return 0;
    if (!Py_IsInitialized())
        LLVMFuzzerInitialize(NULL, NULL);
    fz_exec_count++;
    for (size_t i = 0; i < nbackends; i++) {
        fz_opts o = {
            .backend = backends[i],
            .ref = &cpython_ops,
            .ref_self = &world,
            .skip_base_exit = 1,
            .skip_run_frame_exit = 1,
            .lazy_base = 1,
        };
        fz_ctx_run(data, size, &o, NULL);
    }
    return 0;
}
