/* SPDX-License-Identifier: MIT */
/*
 * ops.h -- the benchmarked operations, once, for every harness.
 *
 * The Google Benchmark harness (bench_*.cc, C++) and the callgrind driver
 * (instr.c, C) both run exactly these bodies, so a time in bench.json and an
 * instruction count in instr.json measure the same code. Everything here is
 * `static inline` and all state lives in a world struct the caller owns: the
 * header holds no globals.
 *
 * A world is one backend at one N: a context holding N pairs, entered for
 * the duration of a benchmark run, plus what the ops need around it (a copy
 * to switch to, an absent var with a default, two values to alternate).
 * BENCH_OP_LIST names every op once; bench_main.cc, instr.c and the report
 * generator all follow it.
 *
 *   op           one iteration                                    unit
 *   get_hot      get the same var                                  1 get
 *   get_call     get_hot through the function, (cv_var_get): what
 *                an FFI or a function pointer pays (ctxvar.h inlines
 *                the cache hit into C callers; see there)            1 get
 *   get_switch   enter other; k gets; exit; the same in other2     2k gets
 *   get_absent   get a var the context lacks (its default)          1 get
 *   set_tok      set (alternating values), release the token        1 set
 *   set_notok    set without a token                                1 set
 *   set_reset    set, reset, release the token                      1 pair
 *   copy         copy_context, release the copy                     1 copy
 *   fork_write   copy, enter it, set one var, exit, release         1 fork
 *   enter_exit   enter a copy, exit it                              1 pair
 *   run_empty    run an empty function in a copy                    1 run
 *   foreach      visit every pair                                   N pairs
 *   mix          PEP 550: 10 gets on distinct vars, copy, enter,
 *                set one var, exit, release                         1 mix
 *   get_depth    get_switch on a context D copies+sets deep         2k gets
 *   snap_set     copy the current context into a ring of 64 kept
 *                snapshots (releasing the oldest), then set one var
 *                in the current context, which they share: the write
 *                after a snapshot on the side that stays (N <= 16384)  1 snapshot
 *   snap_burst   snap_set with 64 sets after each snapshot instead of
 *                one, on vars spread over N: with snap_set, it splits
 *                a snapshot's cost into a fixed part and a per-write
 *                part (N <= 16384)                                 1 snapshot
 *   snap_get     get_switch on two contexts whose histories are 64
 *                kept snapshots with 8 sets between each (N <= 4096) 2k gets
 *   snap_write   the same, k sets instead of k gets, each on the next
 *                of the N vars in a scattered order: writes spread over
 *                a context whose snapshots are kept (a ChainMap's top
 *                layer grows and is compacted under them)             2k sets
 *
 * get_switch exists because CPython caches the last value per var: its hot
 * get never reaches the HAMT. Entering another context bumps CPython's
 * context version, so each of the k gets after a switch is uncached. The
 * gets run in two fresh copies in turn, never back in the context below:
 * ctxvar's exit restores the cache of the context it returns to, so gets
 * there would hit and the figure would no longer be the first get after a
 * switch. The report subtracts two enter_exit (same backend, same N) and
 * divides by 2k; the callgrind driver counts only the gets (collection
 * toggled around them).
 */
#ifndef CV_BENCH_OPS_H
#define CV_BENCH_OPS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctxvar.h"

#define BENCH_OP_LIST(X) \
    X(get_hot)           \
    X(get_call)          \
    X(get_switch)        \
    X(get_absent)        \
    X(set_tok)           \
    X(set_notok)         \
    X(set_reset)         \
    X(copy)              \
    X(fork_write)        \
    X(enter_exit)        \
    X(run_empty)         \
    X(foreach)           \
    X(mix)               \
    X(snap_set)          \
    X(snap_burst)        \
    X(snap_get)          \
    X(snap_write)

/* Gets per side of a switch, and vars read by one mix. */
#define BENCH_SWITCH_K 8
#define BENCH_MIX_GETS 10
/* Vars in the context of the get_depth sweep. */
#define BENCH_DEPTH_N 64
/* Snapshots kept by snap_set and in each history of snap_get; sets between
 * two snapshots of a snap_get history; the largest N of each. */
#define BENCH_SNAPS 64
#define BENCH_SNAP_W 8
#define BENCH_SNAP_SET_MAX_N 16384
#define BENCH_SNAP_GET_MAX_N 4096

/* Keeps a value alive for the optimiser (benchmark::DoNotOptimize in C++). */
#if defined(__cplusplus)
#define BENCH_KEEP(x) benchmark::DoNotOptimize(x)
#else
#define BENCH_KEEP(x) __asm__ volatile("" : : "g"(x) : "memory")
#endif

static inline void bench_die(const char *what, int rc)
{
    fprintf(stderr, "bench: %s failed: %d (%s)\n", what, rc, cv_err_name(rc));
    abort();
}
#define BENCH_OK(call)                       \
    do {                                     \
        int bench_rc_ = (call);              \
        if (bench_rc_ < 0)                   \
            bench_die(#call, bench_rc_);     \
    } while (0)

/* ------------------------------------------------------------------------
 * The var pool: vars are backend-independent, so one pool serves all.
 * ------------------------------------------------------------------------ */
typedef struct bench_pool {
    cv_var **vars;   /* vars[0..n) */
    size_t n;        /* how many exist */
    cv_var *absent;  /* has a default, never set anywhere */
} bench_pool;

/* A pool's two functions, for either side (ops_py.h makes CPython's):
 * P_grow(p, n) makes the absent var once and vars v<i> up to n, P_free
 * releases them all and empties p. Pool has vars, n and absent; the side's
 * calls: NEW_ABSENT(p) makes p->absent, NEW_VAR(name, dst) one var into
 * dst, DROP_VAR(v) and DROP_ABSENT(p) release, DIE(what) aborts. */
#define BENCH_POOL_FNS(P, Pool, Var, NEW_ABSENT, NEW_VAR, DROP_VAR, DROP_ABSENT, DIE) \
    static inline void P##_grow(Pool *p, size_t n)                           \
    {                                                                        \
        if (p->absent == NULL)                                               \
            NEW_ABSENT(p);                                                   \
        if (n <= p->n)                                                       \
            return;                                                          \
        Var **v = (Var **)realloc(p->vars, n * sizeof *v);                   \
        if (v == NULL)                                                       \
            DIE("realloc");                                                  \
        p->vars = v;                                                         \
        for (size_t i = p->n; i < n; i++) {                                  \
            char name[32];                                                   \
            snprintf(name, sizeof name, "v%zu", i);                          \
            NEW_VAR(name, p->vars[i]);                                       \
        }                                                                    \
        p->n = n;                                                            \
    }                                                                        \
    static inline void P##_free(Pool *p)                                     \
    {                                                                        \
        for (size_t i = 0; i < p->n; i++)                                    \
            DROP_VAR(p->vars[i]);                                            \
        DROP_ABSENT(p);                                                      \
        free(p->vars);                                                       \
        memset(p, 0, sizeof *p);                                             \
    }

static inline void bench_pool_new_absent(bench_pool *p)
{
    static char dflt; /* an address only */
    BENCH_OK(cv_var_new_default("absent", &dflt, &p->absent));
}
#define BENCH_CV_NEW_VAR(name, dst) BENCH_OK(cv_var_new((name), &(dst)))
#define BENCH_CV_DROP_ABSENT(p) cv_var_release((p)->absent)
#define BENCH_CV_DIE(what) bench_die((what), CV_ENOMEM)
BENCH_POOL_FNS(bench_pool, bench_pool, cv_var, bench_pool_new_absent, BENCH_CV_NEW_VAR,
               cv_var_release, BENCH_CV_DROP_ABSENT, BENCH_CV_DIE)

/* ------------------------------------------------------------------------
 * A world: one backend, N pairs, optionally D nested copies deep.
 * ------------------------------------------------------------------------ */
typedef struct bench_world {
    const cv_backend *backend;
    size_t n;                     /* pairs in ctx */
    size_t depth;                 /* copies+sets stacked on ctx (get_depth) */
    cv_var **vars;                /* borrowed from the pool */
    cv_var *absent;               /* borrowed */
    cv_context *ctx;              /* the base context, N pairs */
    cv_context **chain;           /* depth nested copies, chain[depth-1] top */
    cv_context *other;            /* copy of the top, to switch to */
    cv_context *other2;           /* another, for get_switch */
    char val_store[3];            /* values: [0] and [1] alternate in the
                                   * base, [2] only ever goes into copies
                                   * and set_reset, so it always changes */
    unsigned flip;                /* alternates the value a set stores */
    size_t sw[BENCH_SWITCH_K];    /* vars read around a switch */
    size_t nsw;                   /* min(N, BENCH_SWITCH_K) */
    size_t mix[BENCH_MIX_GETS];   /* vars read by a mix */
    size_t hot;                   /* the var of get_hot and the sets */
    long sink;                    /* foreach's accumulator */
    cv_context *snaps[BENCH_SNAPS]; /* snap_set's ring (emptied at exit) */
    size_t snap_i;
    cv_context *hist[2];          /* snap_get's two contexts, or NULL */
    cv_context *hist_snaps[2][BENCH_SNAPS];
} bench_world;

/* Whether op is measured at N (the snapshot ops hold 64 snapshots, which a
 * dict-copy makes O(N) each). */
static inline int bench_op_fits(const char *op, size_t n)
{
    if (strcmp(op, "snap_set") == 0 || strcmp(op, "snap_burst") == 0)
        return n <= BENCH_SNAP_SET_MAX_N;
    if (strcmp(op, "snap_get") == 0 || strcmp(op, "snap_write") == 0)
        return n <= BENCH_SNAP_GET_MAX_N;
    return 1;
}

static inline void *bench_val(bench_world *w, unsigned i)
{
    return &w->val_store[i & 1];
}

static inline void *bench_fresh(bench_world *w)
{
    return &w->val_store[2];
}

/* Spread k indices evenly over [0, n). */
static inline void bench_spread(size_t *out, size_t k, size_t n)
{
    for (size_t i = 0; i < k; i++)
        out[i] = n ? ((2 * i + 1) * n) / (2 * k) % n : 0;
}

/* ------------------------------------------------------------------------
 * The world's contexts, one definition for both sides (ops_py.h makes the
 * CPython one). World has bench_world's fields n, depth, vars, ctx, chain,
 * other, other2, snaps, snap_i, hist, hist_snaps, sw, nsw, mix and hot; Ctx
 * is the side's context type. The side's calls, each checked:
 *   COPY(dst)         dst = a copy of the current context
 *   ENTER(c), EXIT(c)
 *   DROP(c)           release c (NULL: nothing)
 *   SET(w, var, i)    set var to value i of the two that alternate (i & 1)
 * It defines P_build (from a fresh empty w->ctx: fills it, builds the rest,
 * leaves nothing entered), P_enter, P_exit and P_drop (releases them all).
 * ------------------------------------------------------------------------ */
#define BENCH_WORLD_CONTEXTS(P, World, Ctx, COPY, ENTER, EXIT, DROP, SET)    \
    static inline void P##_build(World *w)                                   \
    {                                                                        \
        size_t n = w->n, depth = w->depth;                                   \
        ENTER(w->ctx);                                                       \
        for (size_t i = 0; i < n; i++)                                       \
            SET(w, w->vars[i], 0);                                           \
        w->chain = NULL;                                                     \
        if (depth > 0) {                                                     \
            w->chain = (Ctx **)calloc(depth, sizeof *w->chain);              \
            for (size_t d = 0; d < depth; d++) {                             \
                COPY(w->chain[d]);                                           \
                ENTER(w->chain[d]);                                          \
                /* One set per level, on vars the gets below do not read. */ \
                SET(w, w->vars[n - 1 - d % (n / 2)], 1 + d / (n / 2));       \
            }                                                                \
        }                                                                    \
        COPY(w->other);                                                      \
        COPY(w->other2);                                                     \
        for (size_t s = 0; s < BENCH_SNAPS; s++)                             \
            w->snaps[s] = NULL;                                              \
        w->snap_i = 0;                                                       \
        w->hist[0] = w->hist[1] = NULL;                                      \
        if (depth == 0 && n > 0 && n <= BENCH_SNAP_GET_MAX_N) {              \
            /* two histories: 64 snapshots kept, 8 sets after each */        \
            for (int h = 0; h < 2; h++) {                                    \
                COPY(w->hist[h]);                                            \
                ENTER(w->hist[h]);                                           \
                for (size_t s = 0; s < BENCH_SNAPS; s++) {                   \
                    COPY(w->hist_snaps[h][s]);                               \
                    for (size_t k = 0; k < BENCH_SNAP_W; k++)                \
                        SET(w, w->vars[((s * BENCH_SNAP_W + k) * 7919) % n], \
                            s + k + 1);                                      \
                }                                                            \
                EXIT(w->hist[h]);                                            \
            }                                                                \
        }                                                                    \
        for (size_t d = depth; d > 0; d--)                                   \
            EXIT(w->chain[d - 1]);                                           \
        EXIT(w->ctx);                                                        \
        w->nsw = n < BENCH_SWITCH_K ? n : BENCH_SWITCH_K;                    \
        /* at depth, the gets read base vars, below every level's set */     \
        bench_spread(w->sw, w->nsw, depth > 0 ? n / 2 : n);                  \
        bench_spread(w->mix, BENCH_MIX_GETS, n);                             \
        w->hot = n / 2;                                                      \
    }                                                                        \
    static inline void P##_enter(World *w)                                   \
    {                                                                        \
        ENTER(w->ctx);                                                       \
        for (size_t d = 0; d < w->depth; d++)                                \
            ENTER(w->chain[d]);                                              \
    }                                                                        \
    static inline void P##_exit(World *w)                                    \
    {                                                                        \
        /* snap_set's snapshots go: they share ctx's map, and the next op   \
         * must find it as before */                                         \
        for (size_t s = 0; s < BENCH_SNAPS; s++) {                           \
            DROP(w->snaps[s]);                                               \
            w->snaps[s] = NULL;                                              \
        }                                                                    \
        for (size_t d = w->depth; d > 0; d--)                                \
            EXIT(w->chain[d - 1]);                                           \
        EXIT(w->ctx);                                                        \
    }                                                                        \
    static inline void P##_drop(World *w)                                    \
    {                                                                        \
        DROP(w->other);                                                      \
        DROP(w->other2);                                                     \
        for (int h = 0; h < 2; h++) {                                        \
            if (w->hist[h] == NULL)                                          \
                continue;                                                    \
            for (size_t s = 0; s < BENCH_SNAPS; s++)                         \
                DROP(w->hist_snaps[h][s]);                                   \
            DROP(w->hist[h]);                                                \
            w->hist[h] = NULL;                                               \
        }                                                                    \
        for (size_t d = 0; d < w->depth; d++)                                \
            DROP(w->chain[d]);                                               \
        free(w->chain);                                                      \
        DROP(w->ctx);                                                        \
        w->ctx = w->other = w->other2 = NULL;                                \
        w->chain = NULL;                                                     \
    }

/* ctxvar's side of it. */
#define BENCH_CV_COPY(dst) BENCH_OK(cv_copy_context(&(dst)))
#define BENCH_CV_ENTER(c) BENCH_OK(cv_context_enter(c))
#define BENCH_CV_EXIT(c) BENCH_OK(cv_context_exit(c))
#define BENCH_CV_SET(w, var, i) BENCH_OK(cv_var_set((var), bench_val((w), (unsigned)(i)), NULL))
BENCH_WORLD_CONTEXTS(bench_world, bench_world, cv_context, BENCH_CV_COPY, BENCH_CV_ENTER,
                     BENCH_CV_EXIT, cv_context_release, BENCH_CV_SET)

/* Builds the world; leaves nothing entered. pool must hold >= n vars. */
static inline void bench_world_init(bench_world *w, const cv_backend *b,
                                    bench_pool *pool, size_t n, size_t depth)
{
    bench_pool_grow(pool, n > 0 ? n : 1);
    w->backend = b;
    w->n = n;
    w->depth = depth;
    w->vars = pool->vars;
    w->absent = pool->absent;
    w->flip = 0;
    w->sink = 0;
    BENCH_OK(cv_context_new_on(b, &w->ctx));
    bench_world_build(w);
}

static inline void bench_world_free(bench_world *w)
{
    bench_world_drop(w);
}

/* How many units one iteration of op does (see the table above). */
static inline size_t bench_op_units(const char *op, size_t n, size_t nsw)
{
    if (strcmp(op, "get_switch") == 0 || strcmp(op, "get_depth") == 0 ||
        strcmp(op, "snap_get") == 0 || strcmp(op, "snap_write") == 0)
        return 2 * nsw;
    if (strcmp(op, "foreach") == 0)
        return n > 0 ? n : 1;
    return 1;
}

/* ------------------------------------------------------------------------
 * The op bodies: one iteration each, run with the world entered.
 * ------------------------------------------------------------------------ */
static inline void cvop_get_hot(bench_world *w)
{
    void *v = NULL;
    int rc = cv_var_get(w->vars[w->hot], &v);
    BENCH_KEEP(rc);
    BENCH_KEEP(v);
}

static inline void cvop_get_call(bench_world *w)
{
    void *v = NULL;
    int rc = (cv_var_get)(w->vars[w->hot], &v);
    BENCH_KEEP(rc);
    BENCH_KEEP(v);
}

static inline void cvop_gets(bench_world *w)
{
    for (size_t k = 0; k < w->nsw; k++) {
        void *v = NULL;
        int rc = cv_var_get(w->vars[w->sw[k]], &v);
        BENCH_KEEP(rc);
        BENCH_KEEP(v);
    }
}

/* The body of get_switch and snap_get on either side: the gets in context
 * a, then in b, each entered for them (ENTER, EXIT, GETS: the side's). */
#define BENCH_GETS_IN_TWO(w, a, b, ENTER, EXIT, GETS) \
    do {                                              \
        ENTER((w)->a);                                \
        GETS(w);                                      \
        EXIT((w)->a);                                 \
        ENTER((w)->b);                                \
        GETS(w);                                      \
        EXIT((w)->b);                                 \
    } while (0)

static inline void cvop_get_switch(bench_world *w)
{
    BENCH_GETS_IN_TWO(w, other, other2, BENCH_CV_ENTER, BENCH_CV_EXIT, cvop_gets);
}

static inline void cvop_get_absent(bench_world *w)
{
    void *v = NULL;
    int rc = cv_var_get(w->absent, &v);
    BENCH_KEEP(rc);
    BENCH_KEEP(v);
}

static inline void cvop_set_tok(bench_world *w)
{
    cv_token *t;
    BENCH_OK(cv_var_set(w->vars[w->hot], bench_val(w, ++w->flip), &t));
    cv_token_release(t);
}

static inline void cvop_set_notok(bench_world *w)
{
    BENCH_OK(cv_var_set(w->vars[w->hot], bench_val(w, ++w->flip), NULL));
}

static inline void cvop_set_reset(bench_world *w)
{
    cv_token *t;
    cv_var *v = w->vars[w->hot];
    BENCH_OK(cv_var_set(v, bench_fresh(w), &t));
    BENCH_OK(cv_var_reset(v, t));
    cv_token_release(t);
}

static inline void cvop_copy(bench_world *w)
{
    cv_context *c;
    (void)w;
    BENCH_OK(cv_copy_context(&c));
    BENCH_KEEP(c);
    cv_context_release(c);
}

static inline void cvop_fork_write(bench_world *w)
{
    cv_context *c;
    BENCH_OK(cv_copy_context(&c));
    BENCH_OK(cv_context_enter(c));
    BENCH_OK(cv_var_set(w->vars[w->hot], bench_fresh(w), NULL));
    BENCH_OK(cv_context_exit(c));
    cv_context_release(c);
}

static inline void cvop_enter_exit(bench_world *w)
{
    BENCH_OK(cv_context_enter(w->other));
    BENCH_OK(cv_context_exit(w->other));
}

static inline int bench_empty_fn(void *arg)
{
    (void)arg;
    return 0;
}

static inline void cvop_run_empty(bench_world *w)
{
    BENCH_OK(cv_context_run(w->other, bench_empty_fn, NULL));
}

static inline int bench_visit(cv_var *v, void *value, void *arg)
{
    (void)v;
    *(long *)arg += (long)(((size_t)value) & 1);
    return 0;
}

static inline void cvop_foreach(bench_world *w)
{
    BENCH_OK(cv_context_foreach(cv_context_current(), bench_visit, &w->sink));
    BENCH_KEEP(w->sink);
}

static inline void cvop_mix(bench_world *w)
{
    for (size_t k = 0; k < BENCH_MIX_GETS; k++) {
        void *v = NULL;
        int rc = cv_var_get(w->vars[w->mix[k]], &v);
        BENCH_KEEP(rc);
        BENCH_KEEP(v);
    }
    cv_context *c;
    BENCH_OK(cv_copy_context(&c));
    BENCH_OK(cv_context_enter(c));
    BENCH_OK(cv_var_set(w->vars[w->mix[0]], bench_fresh(w), NULL));
    BENCH_OK(cv_context_exit(c));
    cv_context_release(c);
}

static inline void cvop_get_depth(bench_world *w)
{
    cvop_get_switch(w);
}

static inline void cvop_snap_set(bench_world *w)
{
    cv_context **slot = &w->snaps[w->snap_i++ % BENCH_SNAPS];
    cv_context_release(*slot);
    BENCH_OK(cv_copy_context(slot));
    /* var i of the nsw in turn, its value flipping each time round: never
     * a no-op set */
    BENCH_OK(cv_var_set(w->vars[w->sw[w->snap_i % w->nsw]],
                        bench_val(w, (unsigned)(w->snap_i / w->nsw)), NULL));
}

#define BENCH_SNAP_BURST 64

static inline void cvop_snap_burst(bench_world *w)
{
    cv_context **slot = &w->snaps[w->snap_i++ % BENCH_SNAPS];
    cv_context_release(*slot);
    BENCH_OK(cv_copy_context(slot));
    for (size_t k = 0; k < BENCH_SNAP_BURST; k++) {
        size_t i = w->snap_i * BENCH_SNAP_BURST + k;
        BENCH_OK(cv_var_set(w->vars[(i * 7919) % w->n], bench_val(w, (unsigned)(i / w->n + 1)),
                            NULL));
    }
}

static inline void cvop_snap_get(bench_world *w)
{
    if (w->hist[0] == NULL)
        bench_die("snap_get beyond BENCH_SNAP_GET_MAX_N", CV_EINVAL);
    BENCH_GETS_IN_TWO(w, hist[0], hist[1], BENCH_CV_ENTER, BENCH_CV_EXIT, cvop_gets);
}

static inline void cvop_snap_write(bench_world *w)
{
    if (w->hist[0] == NULL)
        bench_die("snap_write beyond BENCH_SNAP_GET_MAX_N", CV_EINVAL);
    for (int h = 0; h < 2; h++) {
        BENCH_OK(cv_context_enter(w->hist[h]));
        for (size_t k = 0; k < w->nsw; k++) {
            size_t i = w->snap_i++;
            /* var i*7919 mod N, its value flipping each time round */
            BENCH_OK(cv_var_set(w->vars[(i * 7919) % w->n],
                                bench_val(w, (unsigned)(i / w->n + 1)), NULL));
        }
        BENCH_OK(cv_context_exit(w->hist[h]));
    }
}

#endif /* CV_BENCH_OPS_H */
