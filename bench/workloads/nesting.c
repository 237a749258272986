/* SPDX-License-Identifier: MIT */
/*
 * nesting.c -- deep nesting: a chain of D nested tasks, each running in a
 * copy of its parent's context (copy + run, as a task spawned and awaited
 * at once) and setting one var; at the bottom and on the way back every
 * level reads a few vars. The chain is run CHAINS times.
 *
 *   wl_nesting [DEPTH=1000] [CHAINS=300] [VARS=32]
 */
#include "workload.h"

typedef struct nest {
    cv_var **v;
    long nvars, depth;
    long level; /* of the task running now */
    unsigned long long sum;
} nest;

static int level_fn(void *arg)
{
    nest *n = arg;
    long level = n->level;
    cv_var *mine = n->v[level % n->nvars];
    WL_OK(cv_var_set(mine, wl_val((uintptr_t)level), NULL));
    if (level + 1 < n->depth) {
        n->level = level + 1;
        wl_run_in_copy(level_fn, n);
        n->level = level;
    }
    /* After the child: our own value is intact (R9), and so are the others. */
    for (long i = 0; i < 4; i++)
        n->sum = wl_fold(n->sum, n->v[(level + i * 7) % n->nvars]);
    if (wl_num(cv_var_get_or(mine, NULL)) != (uintptr_t)level) {
        fprintf(stderr, "nesting: isolation broken at level %ld\n", level);
        exit(1);
    }
    return 0;
}

int main(int argc, char **argv)
{
    nest n = {0};
    long chains;
    wl_args(argc, argv, 3, (long *const[]){&n.depth, &chains, &n.nvars},
            (const long[]){1000, 300, 32});
    n.v = wl_vars("nest", n.nvars);
    for (long c = 0; c < chains; c++) {
        n.level = 0;
        wl_run_in_copy(level_fn, &n);
    }
    wl_end("nesting", n.sum, n.v, n.nvars);
    return 0;
}
