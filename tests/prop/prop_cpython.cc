/*
 * prop_cpython.cc -- CPython's contextvars as the oracle: the command
 * sequences of prop.cc run through embedded libpython3.11 (PyContextVar_New
 * / Get / Set / Reset, PyContext_New / Copy / CopyCurrent / Enter / Exit,
 * the Context mapping protocol) and through ctxvar, in lockstep; any
 * difference in a value or in the kind of error fails, and RapidCheck
 * shrinks it. The model (model.h) still generates the commands and is
 * checked too, so a failure says which of the three disagrees.
 *
 * Error kinds: LookupError <-> CV_ELOOKUP; RuntimeError "has already been
 * used" <-> CV_ETOKEN_USED; ValueError "created by a different ContextVar"
 * <-> CV_ETOKEN_VAR; ValueError "created in a different Context" <->
 * CV_ETOKEN_CTX; RuntimeError "is already entered" <-> CV_EENTERED;
 * RuntimeError "cannot exit context" <-> CV_ENOTENTERED.
 *
 * What CPython cannot express, and how the mirror treats it:
 *  - The thread's base context. CPython has no call that returns the
 *    current context without copying it, so each case enters a fresh
 *    PyContext_New() as its base. Entering it again gives the same
 *    RuntimeError as ctxvar's CV_EENTERED; exiting it while it is current
 *    would succeed in CPython (ctxvar's base cannot be exited:
 *    CV_ENOTENTERED), so that one call is not compared.
 *  - cv_context_exit(c) inside cv_context_run(c, fn): ctxvar refuses it
 *    (CV_ENOTENTERED); CPython's PyContext_Exit accepts it and Context.run
 *    raises afterwards. Not compared.
 *  - cv_context_run unwinds contexts fn left entered; Context.run raises
 *    RuntimeError instead. The mirror emulates run as PyContext_Enter, fn,
 *    then PyContext_Exit of whatever fn left entered and of the context.
 *  - cv_token_used: Token has no public "used" attribute; token.var and
 *    token.old_value (Token.MISSING) are compared.
 *  - Releases: dropping a Python reference has no observable effect, so the
 *    mirror keeps its objects until the end of the case (ctxvar releases
 *    them when the command says so).
 *  - Value hooks (R14), allocation failure and the NULL-argument misuse
 *    (CV_EINVAL) have no CPython counterpart: ctxvar only.
 *  - Backends: CPython has one (its HAMT); the sequences run against every
 *    ctxvar backend.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "harness.h"

namespace {

using pm::NA;
using pm::NULLV;
using pm::NVAL;
using pm::Out;

[[noreturn]] void py_die(const char *what)
{
    std::fprintf(stderr, "prop_cpython: %s failed\n", what);
    if (PyErr_Occurred())
        PyErr_Print();
    std::abort();
}

/* The pending Python exception as a CV_E* code (cleared); -100 if it is
 * none of the contextvars errors. */
int take_error()
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    std::string msg;
    if (value != nullptr) {
        PyObject *s = PyObject_Str(value);
        if (s != nullptr) {
            const char *u = PyUnicode_AsUTF8(s);
            msg = u ? u : "";
            Py_DECREF(s);
        }
    }
    auto has = [&](const char *m) { return msg.find(m) != std::string::npos; };
    int e = -100;
    if (PyErr_GivenExceptionMatches(type, PyExc_LookupError))
        e = CV_ELOOKUP;
    else if (PyErr_GivenExceptionMatches(type, PyExc_RuntimeError)) {
        if (has("has already been used"))
            e = CV_ETOKEN_USED;
        else if (has("is already entered"))
            e = CV_EENTERED;
        else if (has("cannot exit context"))
            e = CV_ENOTENTERED;
    } else if (PyErr_GivenExceptionMatches(type, PyExc_ValueError)) {
        if (has("different ContextVar"))
            e = CV_ETOKEN_VAR;
        else if (has("different Context"))
            e = CV_ETOKEN_CTX;
    }
    if (e == -100)
        std::fprintf(stderr, "prop_cpython: unexpected exception: %s\n",
                     msg.c_str());
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
    return e;
}

struct PyMirror : pm::Mirror {
    std::vector<PyObject *> vals; /* value id -> object (NULLV: None) */
    std::vector<PyObject *> vars, ctxs, toks;
    std::vector<int> stack;       /* entered model ids; [0] = the case base */
    std::vector<bool> run_frame;  /* parallel to stack */

    PyMirror()
    {
        for (int i = 0; i < NVAL - 1; i++) {
            PyObject *o = PyUnicode_FromFormat("val%d", i);
            if (o == nullptr)
                py_die("PyUnicode_FromFormat");
            vals.push_back(o);
        }
    }

    PyObject *val(int id) { return id == NULLV ? Py_None : vals[id]; }
    int id_of(PyObject *o)
    {
        if (o == Py_None)
            return NULLV;
        for (int i = 0; i < NVAL - 1; i++)
            if (o == vals[i])
                return i;
        return -2;
    }
    template <class V> static void put(V &v, int id, PyObject *o)
    {
        if ((int)v.size() <= id)
            v.resize(id + 1, nullptr);
        v[id] = o;
    }

    void begin() override
    {
        PyObject *base = PyContext_New();
        if (base == nullptr || PyContext_Enter(base) != 0)
            py_die("PyContext_New/Enter (case base)");
        ctxs.assign(1, base);
        stack.assign(1, 0);
        run_frame.assign(1, false);
    }
    void end() override
    {
        while (!stack.empty()) {
            if (PyContext_Exit(ctxs[stack.back()]) != 0)
                py_die("PyContext_Exit (end of case)");
            stack.pop_back();
        }
        run_frame.clear();
        for (auto *v : {&toks, &ctxs, &vars}) {
            for (PyObject *o : *v)
                Py_XDECREF(o);
            v->clear();
        }
    }

    void new_var(int id, bool has_dflt, int dflt) override
    {
        std::string name = "v" + std::to_string(id);
        PyObject *v = PyContextVar_New(name.c_str(), has_dflt ? val(dflt) : nullptr);
        if (v == nullptr)
            py_die("PyContextVar_New");
        put(vars, id, v);
    }
    int set(int var, int v, int new_tok) override
    {
        PyObject *t = PyContextVar_Set(vars[var], val(v));
        if (t == nullptr)
            return take_error();
        if (new_tok >= 0)
            put(toks, new_tok, t);
        else
            Py_DECREF(t);
        return 0;
    }
    Out get(int var) override
    {
        PyObject *r = PyObject_CallMethod(vars[var], "get", nullptr);
        if (r == nullptr)
            return {take_error(), pm::NONE};
        Out o{0, id_of(r)};
        Py_DECREF(r);
        return o;
    }
    int get_or(int var, int d) override
    {
        PyObject *r = nullptr;
        if (PyContextVar_Get(vars[var], val(d), &r) != 0)
            return take_error();
        int id = r ? id_of(r) : -3;
        Py_XDECREF(r);
        return id;
    }
    int reset(int var, int tok) override
    {
        return PyContextVar_Reset(vars[var], toks[tok]) == 0 ? 0 : take_error();
    }
    Out token_old(int tok) override
    {
        PyObject *old = PyObject_GetAttrString(toks[tok], "old_value");
        PyObject *missing = PyObject_GetAttrString(toks[tok], "MISSING");
        if (old == nullptr || missing == nullptr)
            py_die("Token.old_value / Token.MISSING");
        Out o = old == missing ? Out{0, pm::NONE} : Out{1, id_of(old)};
        Py_DECREF(old);
        Py_DECREF(missing);
        return o;
    }
    int token_var(int tok) override
    {
        PyObject *v = PyObject_GetAttrString(toks[tok], "var");
        if (v == nullptr)
            py_die("Token.var");
        int id = -1;
        for (size_t i = 0; i < vars.size(); i++)
            if (vars[i] == v)
                id = (int)i;
        Py_DECREF(v);
        return id;
    }
    void copy(int ctx, int id) override
    {
        /* The current one through CopyCurrent, any other through Copy. */
        PyObject *c = ctx == stack.back() ? PyContext_CopyCurrent()
                                          : PyContext_Copy(ctxs[ctx]);
        if (c == nullptr)
            py_die("PyContext_Copy");
        put(ctxs, id, c);
    }
    void new_ctx(int id) override
    {
        PyObject *c = PyContext_New();
        if (c == nullptr)
            py_die("PyContext_New");
        put(ctxs, id, c);
    }
    /* Enters ctx; run: the frame is a run's (only the run exits it). */
    int push(int ctx, bool run)
    {
        if (PyContext_Enter(ctxs[ctx]) != 0)
            return take_error();
        stack.push_back(ctx);
        run_frame.push_back(run);
        return 0;
    }
    int enter(int ctx) override { return push(ctx, false); }
    int exit(int ctx) override
    {
        if (ctx == stack.back() && (ctx == 0 || run_frame.back()))
            return NA; /* see the top of the file */
        if (PyContext_Exit(ctxs[ctx]) != 0)
            return take_error();
        stack.pop_back();
        run_frame.pop_back();
        return 0;
    }
    int run_begin(int ctx) override { return push(ctx, true); }
    void run_end(int ctx) override
    {
        for (;;) {
            int top = stack.back();
            if (PyContext_Exit(ctxs[top]) != 0)
                py_die("PyContext_Exit (end of run)");
            stack.pop_back();
            run_frame.pop_back();
            if (top == ctx)
                break;
        }
    }
    Out ctx_get(int ctx, int var) override
    {
        PyObject *r = PyObject_GetItem(ctxs[ctx], vars[var]);
        if (r == nullptr) {
            int e = take_error();
            return {e == CV_ELOOKUP ? 0 : e, pm::NONE};
        }
        Out o{1, id_of(r)};
        Py_DECREF(r);
        return o;
    }
    std::map<int, int> items(int ctx) override
    {
        std::map<int, int> m;
        PyObject *it = PyMapping_Items(ctxs[ctx]);
        if (it == nullptr)
            py_die("PyMapping_Items");
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(it); i++) {
            PyObject *kv = PyList_GET_ITEM(it, i);
            PyObject *k = PyTuple_GET_ITEM(kv, 0);
            int id = -1;
            for (size_t j = 0; j < vars.size(); j++)
                if (vars[j] == k)
                    id = (int)j;
            m[id] = id_of(PyTuple_GET_ITEM(kv, 1));
        }
        Py_DECREF(it);
        return m;
    }
    long len(int ctx) override { return (long)PyObject_Size(ctxs[ctx]); }
    /* No observable effect in CPython: objects are dropped at end(). */
    void release_var(int) override {}
    void release_ctx(int) override {}
    void release_tok(int) override {}
};

} /* namespace */

int main()
{
    pm::install_counting_allocator();
    Py_InitializeEx(0);

    size_t n = cv_backend_list(nullptr, 0);
    std::vector<const cv_backend *> backends(n);
    cv_backend_list(backends.data(), n);

    bool ok = true;
    {
        PyMirror py;
        for (const cv_backend *b : backends) {
            if (cv_backend_set_default(b) != 0)
                return 2;
            std::string name = std::string("CPython contextvars vs ctxvar, backend ") +
                               cv_backend_name(b);
            ok = rc::check(name, [b, &py] { pm::run_case(b, &py); }) && ok;
        }
        for (PyObject *o : py.vals)
            Py_DECREF(o);
    }
    cv_thread_cleanup();
    if (Py_FinalizeEx() < 0)
        ok = false;
    return ok ? 0 : 1;
}
