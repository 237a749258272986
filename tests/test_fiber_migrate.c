/*
 * test_fiber_migrate.c -- fibers that move between threads (R21).
 *
 * This file calls the get through the function (CV_NO_INLINE_GET), as R21
 * asks of code that runs on a fiber that may migrate: a compiler may keep
 * the thread pointer it read before a yield in a register, and an inline
 * get after the yield would then read the previous thread's cache. The
 * library's own functions read it afresh in every call.
 */
#define CV_NO_INLINE_GET
#include <pthread.h>
#include <string.h>

#include "fsched.h"
#include "testutil.h"

enum { FIBERS = 8, ROUNDS = 200 };

typedef struct mig {
    cv_var *v;
    cv_context *inner;
    long id;
    int errs;
    int threads_seen;
    int last;
} mig;

static void note_thread(mig *m)
{
    /* not pthread_self(): glibc declares it const, and the compiler may
     * keep the first answer across the yields (the R21 hazard itself) */
    int me = fsched_thread();
    if (me != m->last) {
        m->threads_seen++;
        m->last = me;
    }
}

static int mig_body(void *arg)
{
    mig *m = arg;
    int rounds = (int)tu_scale(ROUNDS, 40);
    /* until both threads have resumed this fiber (bounded): the other
     * thread may not have started yet */
    note_thread(m);
    for (long spins = 0; m->threads_seen < 2 && spins < 2000000; spins++) {
        fsched_yield();
        note_thread(m);
    }
    for (int i = 0; i < rounds; i++) {
        void *want = (void *)(m->id * 100000 + i);
        if (cv_var_set(m->v, want, NULL) != 0)
            m->errs++;
        fsched_yield();
        note_thread(m);
        if (cv_var_get_or(m->v, NULL) != want)
            m->errs++;
        /* yield inside an enter: the inner context moves with the fiber */
        if (cv_context_enter(m->inner) != 0)
            m->errs++;
        if (cv_var_get_or(m->v, NULL) != (void *)(m->id * 7))
            m->errs++;
        cv_token *t;
        if (cv_var_set(m->v, want, &t) != 0)
            m->errs++;
        fsched_yield();
        note_thread(m);
        if (cv_var_get_or(m->v, NULL) != want)
            m->errs++;
        if (cv_var_reset(m->v, t) != 0)
            m->errs++;
        cv_token_release(t);
        fsched_yield();
        note_thread(m);
        if (cv_var_get_or(m->v, NULL) != (void *)(m->id * 7))
            m->errs++;
        if (cv_context_exit(m->inner) != 0)
            m->errs++;
        if (cv_var_get_or(m->v, NULL) != want)
            m->errs++;
    }
    return 0;
}

TEST(r21_fibers_migrate_between_threads)
{
    (void)state;
    cv_var *v = tu_var("v");
    ASSERT_OK(cv_var_set(v, (void *)1, NULL));
    mig ms[FIBERS];
    memset(ms, 0, sizeof ms);
    fsched *s = NULL;
    ASSERT_OK(fsched_new(&s));
    for (int i = 0; i < FIBERS; i++) {
        ms[i].v = v;
        ms[i].id = i + 1;
        ASSERT_OK(cv_context_new(&ms[i].inner));
        ASSERT_OK(cv_context_enter(ms[i].inner));
        ASSERT_OK(cv_var_set(v, (void *)(ms[i].id * 7), NULL));
        ASSERT_OK(cv_context_exit(ms[i].inner));
        ASSERT_OK(fsched_spawn(s, mig_body, &ms[i], NULL));
    }
    fsched_runner a[2] = {{s, -100}, {s, -100}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, fsched_run_thread, &a[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    ASSERT_OK(a[0].r);
    ASSERT_OK(a[1].r);
    long moved = fsched_migrations(s);
    int multi = 0;
    for (int i = 0; i < FIBERS; i++) {
        assert_int_equal(ms[i].errs, 0);
        multi += ms[i].threads_seen > 1;
    }
    /* the point of the test: fibers did move */
    assert_true(moved > 0);
    assert_true(multi > 0);
    /* this thread never ran a fiber: its own context is untouched */
    assert_ptr_equal(cv_var_get_or(v, NULL), (void *)1);
    fsched_free(s);
    for (int i = 0; i < FIBERS; i++)
        cv_context_release(ms[i].inner);
    cv_var_release(v);
}
