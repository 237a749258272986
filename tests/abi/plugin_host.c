/*
 * plugin_host.c -- an executable that uses ctxvar (linked to libctxvar.so,
 * inline get with the initial-exec cache) and dlopens a plugin that uses
 * it too (plugin.c). Both must see one current context and one set of
 * values: the plugin's sets are the host's gets and the other way round,
 * in the base context, inside cv_context_run, and on another thread.
 *
 *   plugin_host PLUGIN.so            the checks; prints "plugin: ok"
 *   plugin_host PLUGIN.so --roads K  also K gets through each road, with
 *                                    callgrind collection around each loop
 *                                    (docs/design/tls.md); prints the loops'
 *                                    results only
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctxvar.h"

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_TOGGLE_COLLECT
#define CALLGRIND_DUMP_STATS_AT(s) ((void)(s))
#endif

#define ABI_CHECK_WHO "plugin_host"
#include "abi_check.h"

static int (*p_get)(const cv_var *, void **);
static void *(*p_get_or)(const cv_var *, void *);
static int (*p_set)(cv_var *, void *);
static cv_context *(*p_current)(void);
static void *(*p_get_one)(const cv_var *);

static cv_var *var;
static char host_val[] = "from-host", plugin_val[] = "from-plugin";
static char run_val[] = "in-run", thread_val[] = "in-thread";

/* Both sides agree on the current context and on var's value. */
static void agree(void *expect)
{
    void *h = NULL, *p = NULL;
    CHECK(p_current() == cv_context_current());
    CHECK(cv_context_current() != NULL);
    CHECK(cv_var_get(var, &h) == 0 && h == expect);
    CHECK(p_get(var, &p) == 0 && p == expect);
    CHECK(p_get_or(var, NULL) == expect);
    CHECK(cv_var_get_or(var, NULL) == expect);
}

static int in_run(void *arg)
{
    cv_context *ctx = arg;
    CHECK(cv_context_current() == ctx && p_current() == ctx);
    agree(host_val);               /* the copy carries the outer value */
    CHECK(p_set(var, run_val) == 0);
    agree(run_val);
    return 7;
}

static void *thread_main(void *arg)
{
    (void)arg;
    /* A new thread starts empty on both sides (R13). */
    CHECK(p_get_or(var, thread_val) == thread_val);
    CHECK(p_current() == cv_context_current());
    CHECK(cv_var_set(var, thread_val, NULL) == 0);
    agree(thread_val);
    cv_thread_cleanup();
    return NULL;
}

/* Each road makes one call per get, so that their figures compare: the
 * inline get inside a function that is not inlined (in the host, in the
 * plugin), or the exported function itself. None can hoist the cache's
 * address out of the loop, which a get in real code does not get either. */
__attribute__((noinline)) static void *host_get_one(const cv_var *v)
{
    void *x = NULL;
    int rc = cv_var_get(v, &x);
    __asm__ volatile("" : : "r"(rc), "r"(x) : "memory");
    return x;
}

static int (*volatile fn_get)(const cv_var *, void **) = (cv_var_get);

__attribute__((noinline)) static void *host_get_loop(const cv_var *v, size_t k)
{
    void *last = NULL;
    for (size_t i = 0; i < k; i++)
        last = host_get_one(v);
    return last;
}

__attribute__((noinline)) static void *plugin_get_loop(const cv_var *v, size_t k)
{
    void *(*one)(const cv_var *) = p_get_one;
    void *last = NULL;
    for (size_t i = 0; i < k; i++)
        last = one(v);
    return last;
}

__attribute__((noinline)) static void *call_get_loop(const cv_var *v, size_t k)
{
    int (*get)(const cv_var *, void **) = fn_get;
    void *last = NULL;
    for (size_t i = 0; i < k; i++) {
        void *x = NULL;
        int rc = get(v, &x);
        __asm__ volatile("" : : "r"(rc), "r"(x) : "memory");
        last = x;
    }
    return last;
}

static void roads(size_t k)
{
    /* Warm every road once, then collect each loop alone. */
    CHECK(host_get_loop(var, 1) == plugin_val);
    CHECK(plugin_get_loop(var, 1) == plugin_val);
    CHECK(call_get_loop(var, 1) == plugin_val);
    char desc[64];
    CALLGRIND_TOGGLE_COLLECT;
    void *a = host_get_loop(var, k);
    CALLGRIND_TOGGLE_COLLECT;
    snprintf(desc, sizeof desc, "road/inline_exe/%zu", k);
    CALLGRIND_DUMP_STATS_AT(desc);
    CALLGRIND_TOGGLE_COLLECT;
    void *b = plugin_get_loop(var, k);
    CALLGRIND_TOGGLE_COLLECT;
    snprintf(desc, sizeof desc, "road/inline_plugin/%zu", k);
    CALLGRIND_DUMP_STATS_AT(desc);
    CALLGRIND_TOGGLE_COLLECT;
    void *c = call_get_loop(var, k);
    CALLGRIND_TOGGLE_COLLECT;
    snprintf(desc, sizeof desc, "road/function/%zu", k);
    CALLGRIND_DUMP_STATS_AT(desc);
    CHECK(a == plugin_val && b == plugin_val && c == plugin_val);
    printf("roads: %zu gets per road\n", k);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PLUGIN.so [--roads K]\n", argv[0]);
        return 2;
    }
    CHECK(cv_var_new("plugin_var", &var) == 0);
    CHECK(cv_var_set(var, host_val, NULL) == 0);   /* before the plugin exists */

    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "plugin_host: dlopen: %s\n", dlerror());
        return 1;
    }
#define BIND(ptr, name) CHECK((*(void **)&(ptr) = dlsym(h, name)) != NULL)
    BIND(p_get, "plugin_get");
    BIND(p_get_or, "plugin_get_or");
    BIND(p_set, "plugin_set");
    BIND(p_current, "plugin_current");
    BIND(p_get_one, "plugin_get_one");

    agree(host_val);                               /* host's set, both read */
    CHECK(p_set(var, plugin_val) == 0);            /* plugin's set ... */
    agree(plugin_val);                             /* ... is the host's get */

    CHECK(cv_var_set(var, host_val, NULL) == 0);
    cv_context *ctx;
    CHECK(cv_copy_context(&ctx) == 0);
    CHECK(cv_context_run(ctx, in_run, ctx) == 7);
    void *got = NULL;
    CHECK(cv_context_get(ctx, var, &got) == 1 && got == run_val);
    agree(host_val);                               /* the run's set stayed there */
    cv_context_release(ctx);

    pthread_t th;
    CHECK(pthread_create(&th, NULL, thread_main, NULL) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    agree(host_val);

    CHECK(p_set(var, plugin_val) == 0);
    if (argc == 4 && strcmp(argv[2], "--roads") == 0)
        roads(strtoul(argv[3], NULL, 10));
    else
        printf("plugin: ok (host and a dlopened plugin share the current "
               "context, in a run and on a second thread)\n");
    dlclose(h);
    cv_var_release(var);
    cv_thread_cleanup();
    return 0;
}
