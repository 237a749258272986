"""tests/abi/ctypes_test.py -- the system python3 loads libctxvar.so with
ctypes (a plain dlopen into a process that has long started, no LD_PRELOAD,
no GLIBC_TUNABLES) and runs a set, a copy, a run and a get through it.

    python3 tests/abi/ctypes_test.py path/to/libctxvar.so
"""
import ctypes
import os
import sys

for name in ("LD_PRELOAD", "GLIBC_TUNABLES"):
    assert name not in os.environ, name + " is set: the test must run without it"

lib = ctypes.CDLL(sys.argv[1])
P = ctypes.c_void_p
lib.cv_version_string.restype = ctypes.c_char_p
lib.cv_var_new.argtypes = [ctypes.c_char_p, ctypes.POINTER(P)]
lib.cv_var_set.argtypes = [P, P, ctypes.POINTER(P)]
lib.cv_var_get.argtypes = [P, ctypes.POINTER(P)]
lib.cv_var_get_or.argtypes = [P, P]
lib.cv_var_get_or.restype = P
lib.cv_copy_context.argtypes = [ctypes.POINTER(P)]
lib.cv_context_get.argtypes = [P, P, ctypes.POINTER(P)]
lib.cv_context_release.argtypes = [P]
lib.cv_var_release.argtypes = [P]
lib.cv_context_current.restype = P
lib.cv_err_name.restype = ctypes.c_char_p
RUNFN = ctypes.CFUNCTYPE(ctypes.c_int, P)
lib.cv_context_run.argtypes = [P, RUNFN, P]

# Values are opaque pointers to Python-owned buffers, compared by identity.
outer, inner = ctypes.create_string_buffer(b"outer"), ctypes.create_string_buffer(b"inner")
OUTER, INNER = ctypes.cast(outer, P).value, ctypes.cast(inner, P).value

var = P()
assert lib.cv_var_new(b"request_id", ctypes.byref(var)) == 0
assert lib.cv_context_current() is not None
assert lib.cv_var_set(var, OUTER, None) == 0                       # set
got = P()
assert lib.cv_var_get(var, ctypes.byref(got)) == 0 and got.value == OUTER
ctx = P()
assert lib.cv_copy_context(ctypes.byref(ctx)) == 0                 # copy

seen = []


@RUNFN
def step(arg):
    g = P()
    assert lib.cv_var_get(var, ctypes.byref(g)) == 0
    seen.append(g.value)                                           # the copy's value
    assert lib.cv_var_set(var, INNER, None) == 0
    assert lib.cv_var_get_or(var, None) == INNER
    return 42


assert lib.cv_context_run(ctx, step, None) == 42                   # run
assert seen == [OUTER], seen
assert lib.cv_var_get(var, ctypes.byref(got)) == 0 and got.value == OUTER  # get: outer unchanged
assert lib.cv_context_get(ctx, var, ctypes.byref(got)) == 1 and got.value == INNER
assert lib.cv_err_name(0) == b"CV_OK"
lib.cv_context_release(ctx)
lib.cv_var_release(var)
lib.cv_thread_cleanup()
print("ctypes: python %s loaded %s (ctxvar %s): set, copy, run (inside: %s -> %s), get (outside: %s)"
      % (sys.version.split()[0], sys.argv[1], lib.cv_version_string().decode(),
         ctypes.string_at(seen[0]).decode(), "inner", ctypes.string_at(OUTER).decode()))
