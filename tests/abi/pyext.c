/*
 * pyext.c -- a Python extension module that links libctxvar.so and uses
 * ctxvar.h's inline get: `import ctxvar_pyext` in the system python3
 * dlopens it and, through it, the library, neither of which the process
 * had at startup (the case docs/design/tls.md is about). Each Python
 * thread has its own current context; set/get work on it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "ctxvar.h"

static cv_var *var;

/* set(obj): stores obj (a borrowed pointer: the test keeps it alive). */
static PyObject *ext_set(PyObject *self, PyObject *obj)
{
    (void)self;
    int rc = cv_var_set(var, obj, NULL);
    if (rc < 0)
        return PyErr_Format(PyExc_RuntimeError, "cv_var_set: %s", cv_err_name(rc));
    Py_RETURN_NONE;
}

/* get(): the object set in this thread's current context, or None. */
static PyObject *ext_get(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    void *v = NULL;
    if (cv_var_get(var, &v) != 0)
        Py_RETURN_NONE;
    PyObject *o = v;
    Py_INCREF(o);
    return o;
}

static int call_in_run(void *arg)
{
    PyObject *r = PyObject_CallNoArgs((PyObject *)arg);
    if (r == NULL)
        return -100;
    Py_DECREF(r);
    return 0;
}

/* run_in_copy(fn): fn() inside cv_context_run on a copy of the current
 * context; returns fn's sets' effect as seen from outside: the outer get. */
static PyObject *ext_run_in_copy(PyObject *self, PyObject *fn)
{
    (void)self;
    cv_context *ctx;
    if (cv_copy_context(&ctx) != 0)
        return PyErr_NoMemory();
    int rc = cv_context_run(ctx, call_in_run, fn);
    cv_context_release(ctx);
    if (rc == -100)
        return NULL;
    return ext_get(NULL, NULL);
}

static PyObject *ext_version(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyUnicode_FromString(cv_version_string());
}

static PyMethodDef methods[] = {
    {"set", ext_set, METH_O, "set the var in this thread's current context"},
    {"get", ext_get, METH_NOARGS, "the var's value, or None"},
    {"run_in_copy", ext_run_in_copy, METH_O, "fn() in a copy of the current context"},
    {"version", ext_version, METH_NOARGS, "the library's version"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "ctxvar_pyext", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_ctxvar_pyext(void)
{
    if (var == NULL && cv_var_new("pyext", &var) != 0)
        return PyErr_NoMemory();
    return PyModule_Create(&module);
}
