/* SPDX-License-Identifier: MIT */
/*
 * stress.c -- many threads on shared vars and contexts, with invariants.
 *
 * Each round, the main thread makes K vars (some with a default, some with
 * counting value hooks) and a shared context S holding a value for each,
 * then starts N threads that, between barriers:
 *
 *   1. race to cv_context_enter one fresh context R and to cv_context_run
 *      another, R2: exactly one winner each (R13, S15). The winner writes in
 *      its context and stays in it until every loser has tried.
 *   2. copy S concurrently (nobody has S entered, so reading it is legal)
 *      and check the copy maps what S maps.
 *   3. (main drops its references to S and to every var: from here on the
 *      vars live through the threads' maps, and whichever thread releases
 *      the last map frees them.)
 *      enter their copy and set, reset (tokens), copy again, run nested
 *      copies, set in their own base context: every read gives back the
 *      thread's own value or S's value, never another thread's, and every
 *      value seen is one that was set (R9, R12, S12, S13).
 *   4. hand a token and a copy to the next thread, which releases them
 *      (cross-thread release), release the rest in a thread-specific order,
 *      and either call cv_thread_cleanup() or let thread exit do it.
 *
 * At the end, with every thread joined and cv_thread_cleanup() called, the
 * allocation hook (cv_set_allocator) must count as many frees as
 * allocations, and the value hooks as many releases as retains (R14).
 *
 * Usage: stress [rounds] [threads]   (defaults 40 and 8; $STRESS_ROUNDS,
 *        $STRESS_ITERS: the steps of phase 3 per thread, default 400)
 * Exit status 0, or 1 with every failed check printed (file:line).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctxvar.h"

#define MAX_THREADS 32
#define NVARS 12
static int ITERS = 400; /* $STRESS_ITERS */

static atomic_long failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            atomic_fetch_add(&failures, 1);                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
        }                                                                  \
    } while (0)
#define CHECK_EQ(a, b)                                                     \
    do {                                                                   \
        long long a_ = (long long)(a), b_ = (long long)(b);                \
        if (a_ != b_) {                                                    \
            atomic_fetch_add(&failures, 1);                                \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n",      \
                    __FILE__, __LINE__, #a, #b, a_, b_);                   \
        }                                                                  \
    } while (0)

/* ------------------------------------------------------------------------
 * Counting allocator and value hooks.
 * ------------------------------------------------------------------------ */
static atomic_long live_allocs, total_allocs;

static void *count_malloc(size_t n, void *ud)
{
    (void)ud;
    void *p = malloc(n);
    if (p != NULL) {
        atomic_fetch_add_explicit(&live_allocs, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&total_allocs, 1, memory_order_relaxed);
    }
    return p;
}

static void count_free(void *p, void *ud)
{
    (void)ud;
    atomic_fetch_sub_explicit(&live_allocs, 1, memory_order_relaxed);
    free(p);
}

/* Values are addresses in this table: [thread][var][slot]; the main
 * thread's values are row MAX_THREADS. A value is "known" iff it points
 * into the table. */
#define VSLOTS 4
static char values[MAX_THREADS + 1][NVARS][VSLOTS];
static atomic_long val_refs[MAX_THREADS + 1][NVARS][VSLOTS];
static atomic_long retains, releases;
static char hook_ud;

static void *val(int row, int var, int slot) { return &values[row][var][slot]; }

static int known(const void *p)
{
    const char *c = p;
    return c >= &values[0][0][0] &&
           c < &values[0][0][0] + sizeof values;
}

static atomic_long *refs_of(const void *p)
{
    size_t off = (size_t)((const char *)p - &values[0][0][0]);
    return &(&val_refs[0][0][0])[off];
}

static void hook_retain(void *v, void *ud)
{
    CHECK(ud == &hook_ud);
    CHECK(known(v));
    atomic_fetch_add(&retains, 1);
    if (known(v))
        atomic_fetch_add(refs_of(v), 1);
}

static void hook_release(void *v, void *ud)
{
    CHECK(ud == &hook_ud);
    CHECK(known(v));
    atomic_fetch_add(&releases, 1);
    if (known(v))
        CHECK(atomic_fetch_sub(refs_of(v), 1) > 0);
}

/* ------------------------------------------------------------------------
 * Shared state of one round.
 * ------------------------------------------------------------------------ */
static int nthreads;
static pthread_barrier_t bar;
static cv_var *vars[NVARS];         /* released by main during phase 3 */
static int has_dflt[NVARS];
static cv_context *shared;          /* S; released by main during phase 3 */
static cv_context *race_enter;      /* R */
static cv_context *race_run;        /* R2 */
static atomic_int enter_winners, run_winners;
static cv_token *handoff_tok[MAX_THREADS];
static cv_context *handoff_ctx[MAX_THREADS];

typedef struct targ {
    int id;
    unsigned seed;
} targ;

static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

/* The value thread `row` gives var k at iteration it. */
static void *own(int row, int k, int it) { return val(row, k, it % VSLOTS); }

static int run_race_fn(void *arg)
{
    targ *t = arg;
    atomic_fetch_add(&run_winners, 1);
    cv_token *tok = NULL;
    CHECK_EQ(cv_var_set(vars[1], own(t->id, 1, 0), &tok), 0);
    void *out = NULL;
    CHECK_EQ(cv_var_get(vars[1], &out), 0);
    CHECK(out == own(t->id, 1, 0));
    /* Stay inside R2 until every loser has tried to run it. */
    pthread_barrier_wait(&bar);
    CHECK_EQ(cv_var_reset(vars[1], tok), 0);
    cv_token_release(tok);
    return 77;
}

typedef struct nested {
    int row, it;
} nested;

/* Runs in a copy of the thread's copy: its sets stay there. */
static int nested_fn(void *arg)
{
    nested *n = arg;
    for (int k = 0; k < NVARS; k += 3) {
        CHECK_EQ(cv_var_set(vars[k], own(n->row, k, n->it + 1), NULL), 0);
        void *out = NULL;
        CHECK_EQ(cv_var_get(vars[k], &out), 0);
        CHECK(out == own(n->row, k, n->it + 1));
    }
    return 5;
}

typedef struct walk {
    int row;
    long n;
} walk;

static int walk_cb(cv_var *v, void *value, void *arg)
{
    walk *w = arg;
    int k = -1;
    for (int i = 0; i < NVARS; i++)
        if (vars[i] == v)
            k = i;
    CHECK(k >= 0);
    CHECK(known(value));
    w->n++;
    return 0;
}

static void *worker(void *arg)
{
    targ *t = arg;
    int me = t->id;
    void *out;

    /* 1. Races. */
    pthread_barrier_wait(&bar);
    int r = cv_context_enter(race_enter);
    if (r == 0) {
        atomic_fetch_add(&enter_winners, 1);
        CHECK_EQ(cv_var_set(vars[0], own(me, 0, 0), NULL), 0);
        CHECK_EQ(cv_var_get(vars[0], &out), 0);
        CHECK(out == own(me, 0, 0));
    } else {
        CHECK_EQ(r, CV_EENTERED);
    }
    pthread_barrier_wait(&bar); /* every thread has tried */
    if (r == 0)
        CHECK_EQ(cv_context_exit(race_enter), 0);
    r = cv_context_run(race_run, run_race_fn, t);
    if (r != 77) {
        CHECK_EQ(r, CV_EENTERED);
        pthread_barrier_wait(&bar); /* the winner waits inside fn */
    }
    pthread_barrier_wait(&bar);

    /* 2. Concurrent copies of S. */
    cv_context *mine = NULL;
    CHECK_EQ(cv_context_copy(shared, &mine), 0);
    CHECK_EQ(cv_context_len(mine), NVARS);
    for (int k = 0; k < NVARS; k++) {
        CHECK_EQ(cv_context_get(shared, vars[k], &out), 1);
        CHECK(out == val(MAX_THREADS, k, 0));
    }
    pthread_barrier_wait(&bar);
    /* 3. Main releases S and the vars now. */

    /* Sets in this thread's base context: never seen by others (S12). */
    for (int k = 0; k < NVARS; k++) {
        void *before = cv_var_get_or(vars[k], NULL);
        CHECK(before == NULL || before == own(me, k, 3));
        CHECK_EQ(cv_var_set(vars[k], own(me, k, 3), NULL), 0);
    }

    CHECK_EQ(cv_context_enter(mine), 0);
    cv_token *toks[NVARS] = {0};
    for (int it = 0; it < ITERS; it++) {
        int k = (int)(next_rand(&t->seed) % NVARS);
        void *prev = NULL;
        CHECK_EQ(cv_var_get(vars[k], &prev), 0);
        CHECK(prev == val(MAX_THREADS, k, 0) || prev == own(me, k, 0) ||
              prev == own(me, k, 1) || prev == own(me, k, 2) ||
              prev == own(me, k, 3));
        if (toks[k] != NULL) {
            /* Reset restores what the token recorded (R6). */
            void *old = NULL;
            int h = cv_token_old_value(toks[k], &old);
            CHECK_EQ(h, 1);
            CHECK_EQ(cv_var_reset(vars[k], toks[k]), 0);
            CHECK_EQ(cv_var_get(vars[k], &out), 0);
            CHECK(out == old);
            CHECK_EQ(cv_var_reset(vars[k], toks[k]), CV_ETOKEN_USED);
            cv_token_release(toks[k]);
            toks[k] = NULL;
        } else {
            CHECK_EQ(cv_var_set(vars[k], own(me, k, it), &toks[k]), 0);
            CHECK_EQ(cv_var_get(vars[k], &out), 0);
            CHECK(out == own(me, k, it));
        }
        if (it % 8 == 0) {
            cv_context *c2 = NULL;
            void *before[NVARS];
            for (int j = 0; j < NVARS; j++)
                CHECK_EQ(cv_var_get(vars[j], &before[j]), 0);
            CHECK_EQ(cv_copy_context(&c2), 0);
            nested n = {me, it};
            CHECK_EQ(cv_context_run(c2, nested_fn, &n), 5);
            CHECK_EQ(cv_context_run(c2, nested_fn, &n), 5);
            CHECK_EQ(cv_context_run(c2, nested_fn, &n), 5);
            /* The nested sets stayed in c2 (R11); ours are unchanged. */
            for (int j = 0; j < NVARS; j++) {
                CHECK_EQ(cv_var_get(vars[j], &out), 0);
                CHECK(out == before[j]);
                CHECK_EQ(cv_context_get(c2, vars[j], &out), 1);
                CHECK(out == (j % 3 == 0 ? own(me, j, it + 1) : before[j]));
            }
            walk w = {me, 0};
            CHECK_EQ(cv_context_foreach(c2, walk_cb, &w), 0);
            CHECK_EQ(w.n, NVARS);
            if (it == 8 && handoff_ctx[me] == NULL)
                handoff_ctx[me] = c2; /* the next thread releases it */
            else
                cv_context_release(c2);
        }
    }
    /* A token made here, released by the next thread. */
    CHECK_EQ(cv_var_set(vars[2], own(me, 2, 1), &handoff_tok[me]), 0);
    CHECK_EQ(cv_context_exit(mine), 0);
    CHECK_EQ(cv_context_exit(mine), CV_ENOTENTERED);

    /* The thread's base context still has its own values. */
    for (int k = 0; k < NVARS; k++) {
        CHECK_EQ(cv_var_get(vars[k], &out), 0);
        CHECK(out == own(me, k, 3));
    }
    pthread_barrier_wait(&bar);

    /* 4. Releases: the neighbour's hand-offs, then ours in some order. */
    int nb = (me + 1) % nthreads;
    cv_token_release(handoff_tok[nb]);
    cv_context_release(handoff_ctx[nb]);
    if (me % 2) {
        cv_context_release(mine);
        for (int k = 0; k < NVARS; k++)
            cv_token_release(toks[k]);
    } else {
        for (int k = NVARS - 1; k >= 0; k--)
            cv_token_release(toks[k]);
        cv_context_release(mine);
    }
    if (me % 3 == 0)
        cv_thread_cleanup(); /* else thread exit does it */
    return NULL;
}

static int round_run(int round)
{
    pthread_t th[MAX_THREADS];
    targ args[MAX_THREADS];
    for (int k = 0; k < NVARS; k++) {
        char name[16];
        snprintf(name, sizeof name, "v%d", k);
        cv_var_opts o = {.name = name};
        has_dflt[k] = k % 4 == 1;
        if (has_dflt[k]) {
            o.has_default = 1;
            o.dflt = val(MAX_THREADS, k, 1);
        }
        if (k % 2 == 0) {
            o.retain = hook_retain;
            o.release = hook_release;
            o.ud = &hook_ud;
        }
        if (cv_var_new_ex(&o, &vars[k]) != 0)
            return -1;
    }
    if (cv_context_new(&shared) != 0 || cv_context_new(&race_enter) != 0 ||
        cv_context_new(&race_run) != 0)
        return -1;
    CHECK_EQ(cv_context_enter(shared), 0);
    for (int k = 0; k < NVARS; k++)
        CHECK_EQ(cv_var_set(vars[k], val(MAX_THREADS, k, 0), NULL), 0);
    CHECK_EQ(cv_context_exit(shared), 0);
    atomic_store(&enter_winners, 0);
    atomic_store(&run_winners, 0);
    memset(handoff_tok, 0, sizeof handoff_tok);
    memset(handoff_ctx, 0, sizeof handoff_ctx);

    pthread_barrier_init(&bar, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) {
        args[i].id = i;
        args[i].seed = (unsigned)(round * 7919 + i * 104729 + 1);
        if (pthread_create(&th[i], NULL, worker, &args[i]) != 0)
            return -1;
    }
    /* Main takes part in every barrier of the workers. */
    pthread_barrier_wait(&bar);                    /* start */
    pthread_barrier_wait(&bar);                    /* enter race tried */
    pthread_barrier_wait(&bar);                    /* run race: losers + winner */
    pthread_barrier_wait(&bar);                    /* races done */
    CHECK_EQ(atomic_load(&enter_winners), 1);
    CHECK_EQ(atomic_load(&run_winners), 1);
    cv_context_release(race_enter);
    cv_context_release(race_run);
    pthread_barrier_wait(&bar);                    /* copies of S made */
    cv_context_release(shared);
    for (int k = 0; k < NVARS; k++)
        cv_var_release(vars[k]);
    pthread_barrier_wait(&bar);                    /* hand-offs ready */
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    return 0;
}

int main(int argc, char **argv)
{
    int rounds = 40;
    const char *env = getenv("STRESS_ROUNDS");
    if (env != NULL)
        rounds = atoi(env);
    if (argc > 1)
        rounds = atoi(argv[1]);
    if ((env = getenv("STRESS_ITERS")) != NULL && atoi(env) >= 16)
        ITERS = atoi(env);
    nthreads = argc > 2 ? atoi(argv[2]) : 8;
    if (nthreads < 2 || nthreads > MAX_THREADS || rounds < 1) {
        fprintf(stderr, "usage: stress [rounds] [threads 2..%d]\n", MAX_THREADS);
        return 2;
    }
    cv_allocator a = {.malloc_cb = count_malloc, .free_cb = count_free};
    if (cv_set_allocator(&a) != 0)
        return 2;

    for (int r = 0; r < rounds; r++)
        if (round_run(r) != 0) {
            fprintf(stderr, "stress: setup failed in round %d\n", r);
            return 1;
        }
    cv_thread_cleanup();

    CHECK_EQ(atomic_load(&live_allocs), 0);          /* nothing leaked */
    CHECK_EQ(atomic_load(&retains), atomic_load(&releases)); /* R14 */
    for (size_t i = 0; i < sizeof val_refs / sizeof val_refs[0][0][0]; i++)
        CHECK_EQ(atomic_load(&(&val_refs[0][0][0])[i]), 0);
    long f = atomic_load(&failures);
    printf("stress: %d rounds x %d threads, %ld allocations, %ld value "
           "retains, %ld failed checks\n",
           rounds, nthreads, atomic_load(&total_allocs), atomic_load(&retains), f);
    return f == 0 ? 0 : 1;
}
