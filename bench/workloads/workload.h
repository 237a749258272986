/* SPDX-License-Identifier: MIT */
/*
 * workload.h -- what the whole-program workloads share. Each workload runs on
 * the backend named by $CTXVAR_BACKEND (the library's default otherwise),
 * prints one checksum line on stdout (equal for every backend: the runner
 * compares them) and, with WL_STATS=1, a JSON line of statistics on stderr.
 */
#ifndef CV_BENCH_WORKLOAD_H
#define CV_BENCH_WORKLOAD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctxvar.h"

static inline void wl_check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "workload: %s failed: %s\n", what, cv_err_name(rc));
        exit(1);
    }
}
#define WL_OK(call) wl_check((call), #call)

/* A value for slot i: values are opaque, never dereferenced. */
static inline void *wl_val(uintptr_t i) { return (void *)(i * 8 + 8); }
static inline uintptr_t wl_num(void *v) { return ((uintptr_t)v - 8) / 8; }

static inline long wl_arg(int argc, char **argv, int i, long dflt)
{
    return argc > i ? strtol(argv[i], NULL, 10) : dflt;
}

/* A workload's arguments, in order: *out[i] = argument i + 1, or dflt[i]
 * where it is not given (the usage line at the top of each workload). */
static inline void wl_args(int argc, char **argv, int n, long *const out[], const long dflt[])
{
    for (int i = 0; i < n; i++)
        *out[i] = wl_arg(argc, argv, i + 1, dflt[i]);
}

static inline cv_var *wl_var(const char *name)
{
    cv_var *v;
    WL_OK(cv_var_new(name, &v));
    return v;
}

/* n vars named <prefix><i>, in an array the caller frees. */
static inline cv_var **wl_vars(const char *prefix, long n)
{
    cv_var **v = calloc((size_t)n, sizeof *v);
    if (v == NULL)
        exit(1);
    for (long i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s%ld", prefix, i);
        v[i] = wl_var(name);
    }
    return v;
}

/* Releases the n vars of wl_vars and frees the array. */
static inline void wl_vars_free(cv_var **v, long n)
{
    for (long i = 0; i < n; i++)
        cv_var_release(v[i]);
    free(v);
}

/* Sets each of the n vars v[i] to value i, in the current context. */
static inline void wl_vars_fill(cv_var **v, long n)
{
    for (long i = 0; i < n; i++)
        WL_OK(cv_var_set(v[i], wl_val((uintptr_t)i), NULL));
}

/* Folds the value v reads here (absent: slot 0) into a workload's
 * checksum, so every read is used and the runs of two backends compare. */
static inline unsigned long long wl_fold(unsigned long long sum, cv_var *v)
{
    return sum * 31 + wl_num(cv_var_get_or(v, wl_val(0)));
}

/* fn(arg) in a copy of the current context, released after: the fork
 * (asyncio's task, a thread's copy) every forking workload makes. */
static inline void wl_run_in_copy(int (*fn)(void *), void *arg)
{
    cv_context *c;
    WL_OK(cv_copy_context(&c));
    WL_OK(cv_context_run(c, fn, arg));
    cv_context_release(c);
}

static inline void wl_finish(const char *name, unsigned long long checksum)
{
    const cv_backend *b = cv_backend_default();
    printf("%s checksum %llu\n", name, checksum);
    if (getenv("WL_STATS")) {
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        long kb = -1;
        while (f && fgets(line, sizeof line, f))
            if (strncmp(line, "VmHWM:", 6) == 0)
                kb = strtol(line + 6, NULL, 10);
        if (f)
            fclose(f);
        fprintf(stderr, "{\"workload\":\"%s\",\"backend\":\"%s\",\"peak_rss_kb\":%ld}\n",
                name, b ? cv_backend_name(b) : "?", kb);
    }
}

/* The end of a workload on the n vars of wl_vars: they go, the checksum
 * line (and the statistics), and the thread's own ctxvar state. */
static inline void wl_end(const char *name, unsigned long long checksum, cv_var **v, long n)
{
    wl_vars_free(v, n);
    wl_finish(name, checksum);
    cv_thread_cleanup();
}

#endif
