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

/* One benchmark run of a backend's world. */
void run_cv(benchmark::State &st, CvWorlds *ws, cv_op_fn fn, const char *op,
            const cv_backend *b, bool depth_sweep)
{
    auto get = [=](size_t n, size_t depth) { return ws->get(b, n, depth); };
    bench_measure<bench_world, bench_world_enter, bench_world_exit>(st, get, fn, op,
                                                                     depth_sweep);
}

#define CV_OP_ENTRY(name) {#name, cvop_##name},
const bench_op_entry<bench_world> cv_ops[] = {
    BENCH_OP_LIST(CV_OP_ENTRY){"get_depth", cvop_get_depth}};
#undef CV_OP_ENTRY

} // namespace

benchmark::internal::Benchmark *register_cv(CvWorlds *ws, const std::string &op,
                                            const cv_backend *b, long arg)
{
    return bench_register(cv_ops, op, op + "/" + cv_backend_name(b), arg,
                          [=](cv_op_fn fn, const char *opname, bool depth) {
                              return [=](benchmark::State &st) {
                                  run_cv(st, ws, fn, opname, b, depth);
                              };
                          });
}
