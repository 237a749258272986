/* SPDX-License-Identifier: MIT */
/*
 * wide.c -- a wide context: N vars set once, then many forks (copy, run in
 * the copy) that each read a handful of vars and write only a few.
 *
 *   wl_wide [VARS=10000] [FORKS=5000] [WRITES=2] [READS=16]
 */
#include "workload.h"

typedef struct wide {
    cv_var **v;
    long nvars, writes, reads, fork;
    unsigned long long sum;
} wide;

static int fork_fn(void *arg)
{
    wide *w = arg;
    unsigned long long x = (unsigned long long)w->fork * 2654435761u;
    for (long i = 0; i < w->reads; i++)
        w->sum = wl_fold(w->sum, w->v[(x + (unsigned long long)i * 613) % (unsigned long long)w->nvars]);
    for (long i = 0; i < w->writes; i++)
        WL_OK(cv_var_set(w->v[(x + (unsigned long long)i * 977) % (unsigned long long)w->nvars],
                         wl_val((uintptr_t)w->fork + 1), NULL));
    return 0;
}

int main(int argc, char **argv)
{
    wide w = {0};
    long forks;
    wl_args(argc, argv, 4, (long *const[]){&w.nvars, &forks, &w.writes, &w.reads},
            (const long[]){10000, 5000, 2, 16});
    w.v = wl_vars("w", w.nvars);
    wl_vars_fill(w.v, w.nvars);
    for (w.fork = 0; w.fork < forks; w.fork++) {
        wl_run_in_copy(fork_fn, &w);
    }
    wl_end("wide", w.sum, w.v, w.nvars);
    return 0;
}
