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
    unsigned long long sum;
} nest;

typedef struct frame {
    nest *n;
    long level;
} frame;

static int level_fn(void *arg)
{
    frame *f = arg;
    nest *n = f->n;
    cv_var *mine = n->v[f->level % n->nvars];
    WL_OK(cv_var_set(mine, wl_val((uintptr_t)f->level), NULL));
    if (f->level + 1 < n->depth) {
        frame next = {n, f->level + 1};
        wl_run_in_copy(level_fn, &next);
    }
    /* After the child: our own value is intact (R9), and so are the others. */
    for (long i = 0; i < 4; i++)
        n->sum = wl_fold(n->sum, n->v[(f->level + i * 7) % n->nvars]);
    if (wl_num(cv_var_get_or(mine, NULL)) != (uintptr_t)f->level) {
        fprintf(stderr, "nesting: isolation broken at level %ld\n", f->level);
        exit(1);
    }
    return 0;
}

int main(int argc, char **argv)
{
    nest n = {0};
    n.depth = wl_arg(argc, argv, 1, 1000);
    long chains = wl_arg(argc, argv, 2, 300);
    n.nvars = wl_arg(argc, argv, 3, 32);
    n.v = wl_vars("nest", n.nvars);
    for (long c = 0; c < chains; c++) {
        frame f = {&n, 0};
        wl_run_in_copy(level_fn, &f);
    }
    wl_vars_free(n.v, n.nvars);
    wl_finish("nesting", n.sum);
    cv_thread_cleanup();
    return 0;
}
