// tests/abi/cxx.cc -- ctxvar.h from C++: compiles warning-free at
// -Wall -Wextra -Werror -pedantic (g++ and clang++), and its inline get
// works there. The header defines no reserved identifier (abi.mk checks
// that no name in it contains a double underscore).
#include <cstdio>
#include <cstring>

#include "ctxvar.h"

static int in_run(void *arg)
{
    cv_var *v = static_cast<cv_var *>(arg);
    void *out = nullptr;
    if (cv_var_get(v, &out) != 0 || std::strcmp(static_cast<char *>(out), "outer") != 0)
        return 1;
    static char inner[] = "inner";
    return cv_var_set(v, inner, nullptr) == 0 ? 0 : 2;
}

int main()
{
    static char outer[] = "outer";
    cv_var *v = nullptr;
    if (cv_var_new("cxx", &v) != 0 || cv_var_set(v, outer, nullptr) != 0)
        return 1;
    cv_context *ctx = nullptr;
    if (cv_copy_context(&ctx) != 0 || cv_context_run(ctx, in_run, v) != 0)
        return 2;
    void *out = nullptr;
    if (cv_var_get(v, &out) != 0 || out != outer || (cv_var_get)(v, &out) != 0)
        return 3;
    if (cv_var_get_or(v, nullptr) != outer || CTXVAR_VERSION != cv_version())
        return 4;
    cv_context_release(ctx);
    cv_var_release(v);
    cv_thread_cleanup();
    std::printf("c++ (%s): ok\n", __VERSION__);
    return 0;
}
