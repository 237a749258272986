/*
 * bench_cpython.cc -- the anchor: every op of ops.h through CPython 3.11's C
 * API (ops_py.h), registered as the backend "cpython". main() registers one
 * CPython run right after each backend's run of the same op and N, so that
 * machine drift hits both sides of every ratio alike.
 */
#include "bench.h"

#include <stdexcept>

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

namespace {

typedef void (*py_op_fn)(py_world *);

/* One benchmark run of the CPython world, labelled with the backend it
 * anchors. */
void run_py(benchmark::State &st, PyWorlds *ws, py_op_fn fn, const char *op,
            const std::string &pair, bool depth_sweep)
{
    auto get = [=](size_t n, size_t depth) { return ws->get(n, depth); };
    bench_measure<py_world, py_world_enter, py_world_exit>(st, get, fn, op, depth_sweep);
    st.SetLabel("anchor-for:" + pair);
}

#define PY_OP_ENTRY(name) {#name, pyop_##name},
const bench_op_entry<py_world> py_ops[] = {
    BENCH_OP_LIST(PY_OP_ENTRY){"get_depth", pyop_get_depth}};
#undef PY_OP_ENTRY

} // namespace

benchmark::internal::Benchmark *register_py(PyWorlds *ws, const std::string &op,
                                            const std::string &pair, long arg)
{
    return bench_register(py_ops, op, op + "/cpython", arg,
                          [=](py_op_fn fn, const char *opname, bool depth) {
                              return [=](benchmark::State &st) {
                                  run_py(st, ws, fn, opname, pair, depth);
                              };
                          });
}
