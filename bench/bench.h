/*
 * bench.h -- what the Google Benchmark files share: the world caches and the
 * registration entry points. No globals: main() owns one Worlds of each kind
 * and hands pointers to the benchmarks it registers.
 */
#ifndef CV_BENCH_H
#define CV_BENCH_H

#include <Python.h>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <map>
#include <string>
#include <utility>

#include "ops.h"
#include "ops_py.h"

/*
 * Worlds are expensive at large N (a million sets), so each kind keeps the
 * worlds of one (N, depth) alive across the benchmarks that use them and
 * frees them when the next key comes. main() registers N-major, so every
 * world is built once.
 */
class CvWorlds {
  public:
    ~CvWorlds() { clear(); bench_pool_free(&pool_); }
    bench_world *get(const cv_backend *b, size_t n, size_t depth);

  private:
    void clear();
    bench_pool pool_ = {};
    std::pair<size_t, size_t> key_ = {~size_t(0), 0};
    std::map<const cv_backend *, bench_world> worlds_;
};

class PyWorlds {
  public:
    ~PyWorlds() { clear(); py_pool_free(&pool_); }
    py_world *get(size_t n, size_t depth);

  private:
    void clear();
    py_pool pool_ = {};
    std::pair<size_t, size_t> key_ = {~size_t(0), 0};
    bool have_ = false;
    py_world world_ = {};
};

/* Registers op (a BENCH_OP_LIST name, or "get_depth") at N = arg (or, for
 * get_depth, depth = arg at N = BENCH_DEPTH_N). Names are "op/backend/arg";
 * the CPython twin is "op/cpython/arg" labelled "anchor-for:<backend>". */
benchmark::internal::Benchmark *register_cv(CvWorlds *ws, const std::string &op,
                                            const cv_backend *b, long arg);
benchmark::internal::Benchmark *register_py(PyWorlds *ws, const std::string &op,
                                            const std::string &pair, long arg);

#endif
