/*
 * bench_ctxvar.cc -- every op of ops.h on one ctxvar backend, through the
 * public API only. The backend comes from cv_backend_list() at run time
 * (main registers each one), so new backends are measured without an edit.
 */
#include "bench.h"

#include <cstdlib>
#include <stdexcept>

void CvWorlds::clear()
{
    for (auto &kv : worlds_)
        bench_world_free(&kv.second);
    worlds_.clear();
}

bench_world *CvWorlds::get(const cv_backend *b, size_t n, size_t depth)
{
    std::pair<size_t, size_t> key(n, depth);
    if (key != key_) {
        clear();
        key_ = key;
    }
    auto it = worlds_.find(b);
    if (it == worlds_.end()) {
        bench_world w = {};
        bench_world_init(&w, b, &pool_, n, depth);
        it = worlds_.emplace(b, w).first;
    }
    return &it->second;
}

namespace {

typedef void (*cv_op_fn)(bench_world *);

/* One benchmark run: enter the world, loop the body, leave it. */
void run_cv(benchmark::State &st, CvWorlds *ws, cv_op_fn fn, const char *op,
            const cv_backend *b, bool depth_sweep)
{
    size_t arg = (size_t)st.range(0);
    size_t n = depth_sweep ? BENCH_DEPTH_N : arg;
    bench_world *w = ws->get(b, n, depth_sweep ? arg : 0);
    bench_world_enter(w);
    for (auto _ : st)
        fn(w);
    bench_world_exit(w);
    double units = (double)bench_op_units(op, n, w->nsw);
    st.counters["units"] = units;
    st.counters["n"] = (double)n;
    st.counters["depth"] = depth_sweep ? (double)arg : 0.0;
    st.SetItemsProcessed((int64_t)(st.iterations() * units));
}

struct cv_op_entry {
    const char *name;
    cv_op_fn fn;
};

#define CV_OP_ENTRY(name) {#name, cvop_##name},
const cv_op_entry cv_ops[] = {BENCH_OP_LIST(CV_OP_ENTRY){"get_depth", cvop_get_depth}};
#undef CV_OP_ENTRY

} // namespace

benchmark::internal::Benchmark *register_cv(CvWorlds *ws, const std::string &op,
                                            const cv_backend *b, long arg)
{
    for (const cv_op_entry &e : cv_ops) {
        if (op != e.name)
            continue;
        std::string name = op + "/" + cv_backend_name(b);
        bool depth = op == "get_depth";
        cv_op_fn fn = e.fn;
        const char *opname = e.name;
        return benchmark::RegisterBenchmark(
                   name.c_str(),
                   [=](benchmark::State &st) { run_cv(st, ws, fn, opname, b, depth); })
            ->Arg(arg);
    }
    throw std::invalid_argument("unknown op " + op);
}
