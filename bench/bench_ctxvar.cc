/* SPDX-License-Identifier: MIT */
/*
 * bench_ctxvar.cc -- every op of ops.h on one ctxvar backend, through the
 * public API only. The backend comes from cv_backend_list() at run time
 * (main registers each one), so new backends are measured without an edit.
 */
#include "bench.h"

#include <cstdlib>

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

benchmark::internal::Benchmark *register_cv(CvWorlds *ws, const std::string &op,
                                            const cv_backend *b, long arg)
{
    return bench_register<bench_world, bench_world_enter, bench_world_exit>(
        &bench_op_desc::cv, op, op + "/" + cv_backend_name(b), arg,
        [=](size_t n, size_t depth) { return ws->get(b, n, depth); }, "");
}
