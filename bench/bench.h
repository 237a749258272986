/* SPDX-License-Identifier: MIT */
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
#include <stdexcept>
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

/*
 * What every run of either side (bench_register below) does, so that a
 * backend and its CPython anchor are measured by one loop: enter the world,
 * loop the body, leave it, then the counters bench_main.cc and report.py
 * read. get(n, depth) returns the world; Enter and Exit are template
 * arguments, called directly.
 */
template <typename World, void (*Enter)(World *), void (*Exit)(World *), typename Get>
void bench_measure(benchmark::State &st, Get get, void (*fn)(World *), const char *op,
                   bool depth_sweep)
{
    /* range(0) is N, or for the depth sweep the depth at N = BENCH_DEPTH_N */
    size_t arg = (size_t)st.range(0);
    size_t n = depth_sweep ? BENCH_DEPTH_N : arg;
    World *w = get(n, depth_sweep ? arg : 0);
    Enter(w);
    for (auto _ : st)
        fn(w);
    Exit(w);
    double units = (double)bench_op_units(op, n, w->nsw);
    st.counters["units"] = units;
    st.counters["n"] = (double)n;
    st.counters["depth"] = depth_sweep ? (double)arg : 0.0;
    st.SetItemsProcessed((int64_t)(st.iterations() * units));
}

/* Registers the body fn of op (bench_op_named(op), which must exist: else
 * it throws) as `name` at Arg(arg): each run is bench_measure on the World
 * that get(n, depth) returns, labelled `label` unless that is empty. */
template <typename World, void (*Enter)(World *), void (*Exit)(World *), typename Get>
benchmark::internal::Benchmark *bench_register(void (*bench_op_desc::*side)(World *),
                                               const std::string &op,
                                               const std::string &name, long arg, Get get,
                                               const std::string &label)
{
    const bench_op_desc *d = bench_op_named(op.c_str());
    if (d == nullptr)
        throw std::invalid_argument("unknown op " + op);
    void (*fn)(World *) = d->*side;
    const char *opname = d->name;
    bool depth_sweep = op == "get_depth";
    return benchmark::RegisterBenchmark(name.c_str(),
                                        [=](benchmark::State &st) {
                                            bench_measure<World, Enter, Exit>(st, get, fn, opname,
                                                                              depth_sweep);
                                            if (!label.empty())
                                                st.SetLabel(label);
                                        })
        ->Arg(arg);
}

#endif
