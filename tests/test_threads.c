/* SPDX-License-Identifier: MIT */
/*
 * test_threads.c -- R13 and R16 across threads: each thread its own current
 * context, contexts released at thread exit, objects released by other
 * threads than their creators, one winner per enter race, concurrent copies
 * of one shared context. (S12, S13 and S15 are in test_scenarios.c; the
 * long stress run is tests/stress, under TSan.)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "testutil.h"

static void run_threads(int n, void *(*fn)(void *), void *arg)
{
    pthread_t th[16];
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_create(&th[i], NULL, fn, arg), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
}

/* ---- a new thread starts empty, and its contexts go when it exits ------ */

typedef struct fresh_arg {
    cv_var *v;
    cv_context *main_ctx;
    int saw_value, same_ctx, left_entered;
    cv_context *leave;   /* entered and never exited by the thread */
} fresh_arg;

static void *fresh_thread(void *p)
{
    fresh_arg *a = p;
    a->saw_value = cv_var_get_or(a->v, NULL) != NULL;
    a->same_ctx = cv_context_current() == a->main_ctx;
    cv_var_set(a->v, "thread", NULL);
    a->left_entered = cv_context_enter(a->leave) == 0;
    return NULL; /* no cv_thread_cleanup: the exit destructor must do it */
}

TEST(r13_new_thread_starts_empty_and_cleans_up_at_exit)
{
    (void)state;
    fresh_arg a = {.v = tu_var("v")};
    ASSERT_OK(cv_var_set(a.v, "main", NULL));
    a.main_ctx = cv_context_current();
    ASSERT_OK(cv_context_new(&a.leave));
    long live = tu_alloc_live();
    run_threads(1, fresh_thread, &a);
    assert_int_equal(a.saw_value, 0);
    assert_int_equal(a.same_ctx, 0);
    assert_int_equal(a.left_entered, 1);
    /* the thread's base context is gone and `leave` was exited */
    assert_int_equal(tu_alloc_live(), live);
    ASSERT_OK(cv_context_enter(a.leave));
    ASSERT_OK(cv_context_exit(a.leave));
    assert_string_equal(tu_get_str(a.v), "main");
    cv_context_release(a.leave);
    cv_var_release(a.v);
}

/* ---- objects made here, released there ---------------------------------- */

typedef struct bag {
    cv_context *ctx[64];
    cv_token *tok[64];
    cv_var *var[64];
    int n;
} bag;

static void *release_bag(void *p)
{
    bag *b = p;
    for (int i = 0; i < b->n; i++) {
        cv_token_release(b->tok[i]);
        cv_context_release(b->ctx[i]);
        cv_var_release(b->var[i]);
    }
    return NULL;
}

TEST(r16_release_from_other_threads)
{
    (void)state;
    long rounds = tu_scale(200, 10);
    tu_val vals[64];
    for (long r = 0; r < rounds; r++) {
        bag b[2] = {{.n = 32}, {.n = 32}};
        memset(vals, 0, sizeof vals);
        for (int i = 0; i < 64; i++) {
            bag *x = &b[i % 2];
            cv_var *v = tu_var_hooked("v", NULL);
            x->var[i / 2] = v;
            ASSERT_OK(cv_var_set(v, &vals[i], &x->tok[i / 2]));
            ASSERT_OK(cv_copy_context(&x->ctx[i / 2]));
        }
        cv_thread_cleanup(); /* only the bags hold things now */
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&t[i], NULL, release_bag, &b[i]), 0);
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_join(t[i], NULL), 0);
        for (int i = 0; i < 64; i++)
            assert_int_equal(vals[i].refs, 0);
    }
}

/* ---- enter race: exactly one of many threads wins, every round --------- */

typedef struct race {
    cv_context *c;
    pthread_barrier_t go, done;
    atomic_int wins, losses, others;
    long rounds;
} race;

static void *racer(void *p)
{
    race *r = p;
    for (long i = 0; i < r->rounds; i++) {
        pthread_barrier_wait(&r->go);
        int e = cv_context_enter(r->c);
        if (e == 0)
            atomic_fetch_add(&r->wins, 1);
        else if (e == CV_EENTERED)
            atomic_fetch_add(&r->losses, 1);
        else
            atomic_fetch_add(&r->others, 1);
        pthread_barrier_wait(&r->done); /* all tried before the winner exits */
        if (e == 0)
            cv_context_exit(r->c);
    }
    cv_thread_cleanup();
    return NULL;
}

TEST(r13_enter_race_one_winner)
{
    (void)state;
    enum { T = 4 };
    race r = {.rounds = tu_scale(3000, 100)};
    ASSERT_OK(cv_context_new(&r.c));
    pthread_barrier_init(&r.go, NULL, T);
    pthread_barrier_init(&r.done, NULL, T);
    run_threads(T, racer, &r);
    assert_int_equal(atomic_load(&r.wins), r.rounds);
    assert_int_equal(atomic_load(&r.losses), r.rounds * (T - 1));
    assert_int_equal(atomic_load(&r.others), 0);
    pthread_barrier_destroy(&r.go);
    pthread_barrier_destroy(&r.done);
    cv_context_release(r.c);
}

/* ---- many threads copy one shared context and write their copies ------- */

typedef struct fan {
    cv_context *shared;
    cv_var *v, *w;
    atomic_int bad;
    long rounds;
} fan;

static int write_copy(void *p)
{
    fan *f = p;
    if (cv_var_get_or(f->v, NULL) == NULL ||
        strcmp(cv_var_get_or(f->v, ""), "shared") != 0)
        atomic_fetch_add(&f->bad, 1);
    return cv_var_set(f->w, "mine", NULL) < 0 ||
           cv_var_set(f->v, "changed", NULL) < 0;
}

static void *fan_thread(void *p)
{
    fan *f = p;
    for (long i = 0; i < f->rounds; i++) {
        cv_context *c;
        if (cv_context_copy(f->shared, &c) != 0) {
            atomic_fetch_add(&f->bad, 1);
            continue;
        }
        if (cv_context_run(c, write_copy, f) != 0)
            atomic_fetch_add(&f->bad, 1);
        cv_context_release(c);
    }
    return NULL;
}

TEST(r9_concurrent_copies_of_one_context)
{
    (void)state;
    fan f = {.rounds = tu_scale(2000, 50)};
    f.v = tu_var("v");
    f.w = tu_var("w");
    ASSERT_OK(cv_var_set(f.v, "shared", NULL));
    for (int i = 0; i < 40; i++) { /* a map big enough to be a real table */
        cv_var *x = tu_var("x");
        ASSERT_OK(cv_var_set(x, "x", NULL));
        cv_var_release(x);
    }
    ASSERT_OK(cv_copy_context(&f.shared));
    run_threads(4, fan_thread, &f);
    assert_int_equal(atomic_load(&f.bad), 0);
    void *out;
    assert_int_equal(cv_context_get(f.shared, f.v, &out), 1);
    assert_string_equal(out, "shared");
    assert_int_equal(cv_context_get(f.shared, f.w, &out), 0);
    cv_context_release(f.shared);
    cv_var_release(f.v);
    cv_var_release(f.w);
}
