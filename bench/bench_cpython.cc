/* SPDX-License-Identifier: MIT */
/*
 * bench_cpython.cc -- the anchor: every op of ops.h through CPython 3.11's C
 * API (ops_py.h), registered as the backend "cpython". main() registers one
 * CPython run right after each backend's run of the same op and N, so that
 * machine drift hits both sides of every ratio alike.
 */
#include "bench.h"

void PyWorlds::clear()
{
    if (have_)
        py_world_free(&world_);
    have_ = false;
}

py_world *PyWorlds::get(size_t n, size_t depth)
{
    std::pair<size_t, size_t> key(n, depth);
    if (key != key_ || !have_) {
        clear();
        key_ = key;
        py_world_init(&world_, &pool_, n, depth);
        have_ = true;
    }
    return &world_;
}

/* The CPython world, labelled with the backend it anchors. */
benchmark::internal::Benchmark *register_py(PyWorlds *ws, const std::string &op,
                                            const std::string &pair, long arg)
{
    return bench_register<py_world, py_world_enter, py_world_exit>(
        &bench_op_desc::py, op, op + "/cpython", arg,
        [=](size_t n, size_t depth) { return ws->get(n, depth); }, "anchor-for:" + pair);
}
