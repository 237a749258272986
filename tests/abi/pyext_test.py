"""tests/abi/pyext_test.py -- imports the extension module of pyext.c
(dlopened by the system python3, with libctxvar.so behind it) and checks
set / get / a run in a copy / per-thread contexts through ctxvar.h's
inline get.

    python3 tests/abi/pyext_test.py DIR_OF_THE_MODULE
"""
import sys
import threading

sys.path.insert(0, sys.argv[1])
import ctxvar_pyext as cv  # noqa: E402

a, b, c = object(), object(), object()
assert cv.get() is None
cv.set(a)
assert cv.get() is a
seen = []


def inside():
    seen.append(cv.get())          # the copy has the outer value
    cv.set(b)
    seen.append(cv.get())


assert cv.run_in_copy(inside) is a  # the run's set stayed in the copy
assert seen == [a, b], seen
other = []


def thread():
    other.append(cv.get())         # a new thread starts empty (R13)
    cv.set(c)
    other.append(cv.get())


t = threading.Thread(target=thread)
t.start()
t.join()
assert other == [None, c], other
assert cv.get() is a
print("pyext: python %s imported an extension using ctxvar %s's inline get: "
      "set, get, run in a copy, per-thread contexts ok" % (sys.version.split()[0], cv.version()))
