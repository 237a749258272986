/* SPDX-License-Identifier: MIT */
/*
 * test_spare.c -- the spare reference (core/context.c, "The spare"), on
 * every backend.
 *
 * A released copy of the current context's map is kept by the execution
 * state and handed to the next copy, so that copy + release run without a
 * locked instruction. The contract is that nobody can tell: the spare's
 * reference is never the last one, so a value is released, and a map
 * freed, exactly when they would be without it (R14, R16), a write after
 * a copy + release costs what it costs without one, and a thread, a fiber
 * or a cleanup leaves nothing behind. Each test below breaks if one of
 * the places that give the spare back is missing: the exit of the context
 * that vouches for it, a write in that context, cleanup and thread exit,
 * an execution state's release.
 */
#include <pthread.h>

#include "rcval.h"
#include "testutil.h"

static cv_context *entered_new(void)
{
    cv_context *c;
    ASSERT_OK(cv_context_new(&c));
    ASSERT_OK(cv_context_enter(c));
    return c;
}

/* A value the current context alone holds (the user's reference gone). */
static tu_rc *set_alone(cv_var *v, const char *tag)
{
    tu_rc *x = rc_new(tag, NULL, NULL);
    ASSERT_OK(cv_var_set(v, x, NULL));
    rc_unref(x);
    return x;
}

/* copy + release of the current context, n times: the spare is made on
 * the first and reused after. */
static void copy_release(int n)
{
    for (int i = 0; i < n; i++) {
        cv_context *k;
        ASSERT_OK(cv_copy_context(&k));
        cv_context_release(k);
    }
}

static void spare_test_end(cv_var *v)
{
    cv_var_release(v);
    cv_thread_cleanup();
    assert_int_equal(rc_violations(), 0);
    assert_int_equal(rc_live(), 0);
    rc_reset();
}

/* The context that vouches for the spare exits and is released: its value
 * goes at that release, not later (the exit gave the spare back). */
TEST(r16_spare_given_back_when_its_context_exits)
{
    (void)state;
    cv_var *v = rc_var("v", NULL);
    cv_context *x = entered_new();
    tu_rc *a = set_alone(v, "a");
    copy_release(3);
    ASSERT_OK(cv_context_exit(x));
    assert_false(a->dead);
    cv_context_release(x);
    assert_true(a->dead);
    spare_test_end(v);
}

/* The same through run's unwind: fn leaves a context entered that vouches
 * for the spare; run unwinds it, and its release frees the value. */
static int fn_enters_and_copies(void *arg)
{
    cv_context *y = arg;
    ASSERT_OK(cv_context_enter(y));
    copy_release(2);
    return 7; /* y left entered: run's unwind exits it */
}

TEST(r16_spare_given_back_by_run_unwind)
{
    (void)state;
    cv_var *v = rc_var("v", NULL);
    cv_context *x, *y;
    ASSERT_OK(cv_context_new(&x));
    ASSERT_OK(cv_context_new(&y));
    tu_rc *a = rc_new("a", NULL, NULL);
    ASSERT_OK(cv_context_enter(y));
    ASSERT_OK(cv_var_set(v, a, NULL));
    ASSERT_OK(cv_context_exit(y));
    rc_unref(a);
    assert_int_equal(cv_context_run(x, fn_enters_and_copies, y), 7);
    assert_false(a->dead);
    cv_context_release(y);
    assert_true(a->dead);
    cv_context_release(x);
    spare_test_end(v);
}

/* A write in the context that maps the spare gives it back first, so
 * that the map its copies shared is held by exactly who holds it without
 * a spare. Here a copy goes to another thread and is released there while
 * the written context is still entered: whether the old value is then
 * released (it is for a backend whose write makes a new map, not for a
 * chain whose new layer keeps the old as its parent) must not depend on
 * the copies made and released in between. */
typedef struct handoff {
    cv_context *k;
    tu_rc *a;
    int dead_after_release;
} handoff;

static void *release_on_thread(void *arg)
{
    handoff *h = arg;
    cv_context_release(h->k);
    h->dead_after_release = h->a->dead;
    cv_thread_cleanup();
    return NULL;
}

static int written_then_released_elsewhere(cv_var *v, int copies_between)
{
    cv_context *x = entered_new();
    handoff h = {NULL, set_alone(v, "a"), -1};
    ASSERT_OK(cv_copy_context(&h.k)); /* goes to the other thread */
    copy_release(copies_between);     /* the spare: x's map */
    set_alone(v, "b");                /* x no longer maps the old map */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, release_on_thread, &h), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    ASSERT_OK(cv_context_exit(x));
    cv_context_release(x);
    assert_true(h.a->dead);
    return h.dead_after_release;
}

TEST(r16_spare_given_back_by_a_write)
{
    (void)state;
    cv_var *v = rc_var("v", NULL);
    int plain = written_then_released_elsewhere(v, 0);
    int spared = written_then_released_elsewhere(v, 2);
    assert_int_equal(spared, plain);
    spare_test_end(v);
}

/* A write after copy + release allocates what it allocates without them
 * (the count the backend sees is the one it sees without a spare: a
 * private map is still written in place). */
static long set_cost(cv_var *v, int copies_between)
{
    cv_context *x = entered_new();
    ASSERT_OK(cv_var_set(v, (void *)"1", NULL));
    copy_release(copies_between);
    long before = tu_alloc_live();
    ASSERT_OK(cv_var_set(v, (void *)"2", NULL));
    long cost = tu_alloc_live() - before;
    assert_string_equal(tu_get_str(v), "2");
    ASSERT_OK(cv_context_exit(x));
    cv_context_release(x);
    return cost;
}

TEST(spare_write_after_copy_release_costs_as_without)
{
    (void)state;
    cv_var *v = tu_var("v");
    long plain = set_cost(v, 0);
    long after = set_cost(v, 3);
    assert_int_equal(after, plain);
    cv_var_release(v);
    cv_thread_cleanup();
}

/* A copy made from the spare is a copy like any other: isolated both
 * ways (R9), of the right context when the spare is another's, and each
 * copy is a context of its own. */
TEST(r9_copies_made_from_the_spare_are_isolated)
{
    (void)state;
    cv_var *v = tu_var("v");
    cv_context *x = entered_new();
    ASSERT_OK(cv_var_set(v, (void *)"x", NULL));
    copy_release(1);
    cv_context *k1, *k2, *e;
    ASSERT_OK(cv_copy_context(&k1)); /* the spare */
    ASSERT_OK(cv_copy_context(&k2)); /* a shared reference */
    assert_ptr_not_equal(k1, k2);
    ASSERT_OK(cv_context_new(&e));
    cv_context *ke;
    ASSERT_OK(cv_context_copy(e, &ke)); /* another map: not the spare */
    assert_int_equal(cv_context_len(ke), 0);
    ASSERT_OK(cv_context_enter(k1));
    ASSERT_OK(cv_var_set(v, (void *)"k1", NULL));
    ASSERT_OK(cv_context_exit(k1));
    assert_string_equal(tu_get_str(v), "x");
    void *got = NULL;
    assert_int_equal(cv_context_get(k2, v, &got), 1);
    assert_string_equal(got, "x");
    assert_int_equal(cv_context_get(k1, v, &got), 1);
    assert_string_equal(got, "k1");
    assert_ptr_equal(cv_context_backend(ke), cv_context_backend(e));
    cv_context_release(ke);
    cv_context_release(e);
    cv_context_release(k1);
    cv_context_release(k2);
    ASSERT_OK(cv_context_exit(x));
    cv_context_release(x);
    cv_var_release(v);
    cv_thread_cleanup();
}

/* An empty context's copy kept as the spare is reused for the copy of an
 * empty context of another backend: the copy has that backend. */
TEST(spare_of_an_empty_map_takes_the_copied_backend)
{
    const cv_backend *all[16], *other = NULL;
    size_t n = cv_backend_list(all, 16);
    for (size_t i = 0; i < n && i < 16; i++)
        if (all[i] != TEST_BACKEND)
            other = all[i];
    assert_non_null(other);
    cv_context *x = entered_new(); /* empty, TEST_BACKEND */
    copy_release(1);
    cv_context *e, *k;
    ASSERT_OK(cv_context_new_on(other, &e));
    ASSERT_OK(cv_context_copy(e, &k));
    assert_ptr_equal(cv_context_backend(k), other);
    cv_var *v = tu_var("v");
    ASSERT_OK(cv_context_enter(k));
    ASSERT_OK(cv_var_set(v, (void *)"k", NULL));
    ASSERT_OK(cv_context_exit(k));
    assert_int_equal(cv_context_len(k), 1);
    assert_int_equal(cv_context_len(x), 0);
    cv_context_release(k);
    cv_context_release(e);
    ASSERT_OK(cv_context_exit(x));
    cv_context_release(x);
    cv_var_release(v);
    cv_thread_cleanup();
}

/* A thread that ends holding a spare (of its base context's map) leaves
 * nothing: its exit gives the spare back with everything else. */
static void *copy_release_and_exit(void *arg)
{
    cv_var *v = arg;
    ASSERT_OK(cv_var_set(v, (void *)"t", NULL));
    copy_release(4);
    return NULL;
}

TEST(spare_thread_exit_leaves_nothing)
{
    (void)state;
    cv_var *v = tu_var("v");
    long live = tu_alloc_live();
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, copy_release_and_exit, v), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(tu_alloc_live(), live);
    cv_var_release(v);
    cv_thread_cleanup();
}

/* An execution state released with a spare on its stack gives it back:
 * nothing is left, and the value its context held is released. */
TEST(spare_exec_release_gives_it_back)
{
    (void)state;
    cv_var *v = rc_var("v", NULL);
    long live = tu_alloc_live();
    cv_exec *x, *prev;
    ASSERT_OK(cv_exec_new(&x));
    ASSERT_OK(cv_exec_swap(x, &prev));
    tu_rc *a = set_alone(v, "a"); /* in x's base context */
    copy_release(2);
    ASSERT_OK(cv_exec_swap(prev, NULL));
    assert_false(a->dead);
    ASSERT_OK(cv_exec_release(x));
    assert_true(a->dead);
    assert_int_equal(tu_alloc_live(), live);
    spare_test_end(v);
}
