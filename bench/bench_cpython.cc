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

void run_py(benchmark::State &st, PyWorlds *ws, py_op_fn fn, const char *op,
            const std::string &pair, bool depth_sweep)
{
    size_t arg = (size_t)st.range(0);
    size_t n = depth_sweep ? BENCH_DEPTH_N : arg;
    py_world *w = ws->get(n, depth_sweep ? arg : 0);
    py_world_enter(w);
    for (auto _ : st)
        fn(w);
    py_world_exit(w);
    double units = (double)bench_op_units(op, n, w->nsw);
    st.counters["units"] = units;
    st.counters["n"] = (double)n;
    st.counters["depth"] = depth_sweep ? (double)arg : 0.0;
    st.SetItemsProcessed((int64_t)(st.iterations() * units));
    st.SetLabel("anchor-for:" + pair);
}

struct py_op_entry {
    const char *name;
    py_op_fn fn;
};

#define PY_OP_ENTRY(name) {#name, pyop_##name},
const py_op_entry py_ops[] = {BENCH_OP_LIST(PY_OP_ENTRY){"get_depth", pyop_get_depth}};
#undef PY_OP_ENTRY

} // namespace

benchmark::internal::Benchmark *register_py(PyWorlds *ws, const std::string &op,
                                            const std::string &pair, long arg)
{
    for (const py_op_entry &e : py_ops) {
        if (op != e.name)
            continue;
        std::string name = op + "/cpython";
        bool depth = op == "get_depth";
        py_op_fn fn = e.fn;
        const char *opname = e.name;
        return benchmark::RegisterBenchmark(
                   name.c_str(),
                   [=](benchmark::State &st) { run_py(st, ws, fn, opname, pair, depth); })
            ->Arg(arg);
    }
    throw std::invalid_argument("unknown op " + op);
}
