/*
 * prop.cc -- stateful property test: the PEP 567 model (model.h) against
 * ctxvar, on every backend of cv_backend_list() (or only the one named by
 * $CV_TEST_BACKEND, which may be a test-only backend such as "canary").
 *
 * RapidCheck generates command sequences (new var, set with and without
 * token, get, get_or, reset with any token, copies, new contexts, enter /
 * exit / nested run, context_get, foreach, len, releases in any order,
 * misuse with NULL), predicts every result and error code from the model,
 * and on a failure shrinks to a minimal sequence and prints it. Parameters
 * come from $RC_PARAMS (seed, max_success, max_size, ...).
 *
 * Exit status: 0 if every backend passed, 1 otherwise.
 */
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "harness.h"

extern "C" {
#include "extra_backends.h"
}

int main()
{
    pm::install_counting_allocator();

    std::vector<const cv_backend *> backends;
    const char *only = std::getenv("CV_TEST_BACKEND");
    if (only != nullptr && only[0] != '\0') {
        const cv_backend *b = tu_backend_lookup(only);
        if (b == nullptr) {
            std::fprintf(stderr, "prop: unknown backend '%s'\n", only);
            return 2;
        }
        backends.push_back(b);
    } else {
        size_t n = cv_backend_list(nullptr, 0);
        backends.resize(n);
        cv_backend_list(backends.data(), n);
    }

    bool ok = true;
    for (const cv_backend *b : backends) {
        if (cv_backend_set_default(b) != 0)
            return 2;
        std::string name = std::string("PEP 567 model vs ctxvar, backend ") +
                           cv_backend_name(b);
        long writes0 = pm::g_sink_writes;
        ok = rc::check(name, [b] { pm::run_case(b, nullptr); }) && ok;
        /* The hooks that write (harness.h) must have written, or R14a
         * went unexercised on this backend. */
        long w = pm::g_sink_writes - writes0;
        std::printf("  %ld writes made by release hooks (R14a)\n", w);
        if (w == 0) {
            std::fprintf(stderr, "prop: no hook wrote on backend %s\n",
                         cv_backend_name(b));
            ok = false;
        }
    }
    cv_thread_cleanup();
    return ok ? 0 : 1;
}
