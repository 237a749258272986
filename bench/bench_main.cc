/*
 * bench_main.cc -- registers every op for every backend and its CPython
 * anchor, records the machine, runs Google Benchmark.
 *
 * Order (N-major, so each world is built once):
 *   for N: for op: for backend in cv_backend_list():
 *       op/<backend>/N, then op/cpython/N labelled anchor-for:<backend>
 * so every ratio is taken between two runs that sat side by side.
 *
 * Environment (the Makefile sets these; the defaults are the quick sweep):
 *   BENCH_N        sizes for every op          "1,16,1024,100000"
 *   BENCH_MIX_N    extra sizes for mix only    "10,1000" (PERFORMANCE.md)
 *   BENCH_DEPTHS   chain depths of get_depth   "1,4,16,64,256,1024"
 *   BENCH_BACKENDS only these backends         all of cv_backend_list()
 *   BENCH_ANCHOR=0 leave CPython out
 */
#include "bench.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#ifndef BENCH_CXXFLAGS
#define BENCH_CXXFLAGS "unknown"
#endif
#ifndef BENCH_LIB_CFLAGS
#define BENCH_LIB_CFLAGS "unknown"
#endif

namespace {

std::vector<long> env_list(const char *name, const char *dflt)
{
    const char *s = getenv(name);
    std::string text = (s && *s) ? s : dflt;
    std::vector<long> out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty())
            out.push_back(std::strtol(item.c_str(), nullptr, 10));
    return out;
}

std::set<std::string> env_set(const char *name)
{
    std::set<std::string> out;
    const char *s = getenv(name);
    if (s == nullptr)
        return out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty())
            out.insert(item);
    return out;
}

std::string cpu_model()
{
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("model name", 0) == 0) {
            size_t c = line.find(':');
            return c == std::string::npos ? line : line.substr(c + 2);
        }
    return "unknown";
}

std::string join(const std::vector<long> &v)
{
    std::string s;
    for (long x : v)
        s += (s.empty() ? "" : ",") + std::to_string(x);
    return s;
}

} // namespace

int main(int argc, char **argv)
{
    Py_Initialize(); /* holds the GIL from here on: one thread */

    std::vector<long> ns = env_list("BENCH_N", "1,16,1024,100000");
    std::vector<long> mix_ns = env_list("BENCH_MIX_N", "10,1000");
    std::vector<long> depths = env_list("BENCH_DEPTHS", "1,4,16,64,256,1024");
    std::set<std::string> only = env_set("BENCH_BACKENDS");
    const char *anchor_env = getenv("BENCH_ANCHOR");
    bool anchor = !(anchor_env && strcmp(anchor_env, "0") == 0);

    std::vector<const cv_backend *> backends(cv_backend_list(nullptr, 0));
    cv_backend_list(backends.data(), backends.size());
    std::string names;
    std::vector<const cv_backend *> chosen;
    for (const cv_backend *b : backends)
        if (only.empty() || only.count(cv_backend_name(b))) {
            chosen.push_back(b);
            names += (names.empty() ? "" : ",") + std::string(cv_backend_name(b));
        }

    char date[64];
    time_t now = time(nullptr);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
    const cv_backend *dflt = cv_backend_default();

    benchmark::AddCustomContext("cpu_model", cpu_model());
    benchmark::AddCustomContext("compiler", "g++ " __VERSION__);
    benchmark::AddCustomContext("bench_flags", BENCH_CXXFLAGS);
    benchmark::AddCustomContext("library_build", "static libctxvar.a, CFLAGS " BENCH_LIB_CFLAGS);
    benchmark::AddCustomContext("run_date", date);
    benchmark::AddCustomContext("backends", names);
    benchmark::AddCustomContext("default_backend", dflt ? cv_backend_name(dflt) : "(none)");
    benchmark::AddCustomContext("anchor", anchor ? std::string("CPython ") + Py_GetVersion() : "none");
    benchmark::AddCustomContext("sizes", join(ns));
    benchmark::AddCustomContext("mix_sizes", join(mix_ns));
    benchmark::AddCustomContext("depths", join(depths));
    benchmark::AddCustomContext("depth_n", std::to_string(BENCH_DEPTH_N));

    {
        CvWorlds cv_worlds;
        PyWorlds py_worlds;

        std::set<long> all(ns.begin(), ns.end());
        all.insert(mix_ns.begin(), mix_ns.end());
        const char *ops[] = {
#define OP_NAME(name) #name,
            BENCH_OP_LIST(OP_NAME)
#undef OP_NAME
        };
        std::set<long> full(ns.begin(), ns.end());
        for (long n : all)
            for (const char *op : ops) {
                if (!full.count(n) && strcmp(op, "mix") != 0)
                    continue;
                if (!bench_op_fits(op, (size_t)n))
                    continue;
                for (const cv_backend *b : chosen) {
                    register_cv(&cv_worlds, op, b, n);
                    if (anchor)
                        register_py(&py_worlds, op, cv_backend_name(b), n);
                }
            }
        for (long d : depths)
            for (const cv_backend *b : chosen) {
                register_cv(&cv_worlds, "get_depth", b, d);
                if (anchor)
                    register_py(&py_worlds, "get_depth", cv_backend_name(b), d);
            }

        benchmark::Initialize(&argc, argv);
        if (benchmark::ReportUnrecognizedArguments(argc, argv))
            return 1;
        benchmark::RunSpecifiedBenchmarks();
        benchmark::Shutdown();
    }
    cv_thread_cleanup();
    Py_FinalizeEx();
    return 0;
}
