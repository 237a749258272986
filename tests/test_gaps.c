/* SPDX-License-Identifier: MIT */
/*
 * test_gaps.c -- what the unit suite did not check before mutation testing
 * (issue #12, results/mutation/SUMMARY.md) showed that only the fuzz corpus
 * or the property run did, and the enter race forced instead of hoped for.
 *
 * Per backend (conformance):
 *   R10  a foreach callback that inserts, deletes and overwrites vars of the
 *        context being walked: the structure changes under the walk (growth,
 *        new layers, promotion, a map emptied to NULL), and the walk still
 *        visits exactly the pairs of the snapshot taken when it started
 *   R3-R6, R8-R10  NULL as a stored value: a value like any other, never
 *        "absent", on every road (cache hit, cache miss, context get, len,
 *        foreach, token old value, reset, copies)
 *   R3, R4  NULL as a var's default: get answers it (not CV_ELOOKUP), an
 *        explicit get_or default beats it, the map never holds it
 * Once (unit):
 *   R13/S15  the enter race with a forced interleaving: one thread is parked
 *        in cv_context_enter (the CV_YIELD_ENTER point of core/internal.h,
 *        compiled into the unit tests' library) after it claimed the
 *        context, and the other enters then; it must lose, every run
 *   R16  the last user reference released while an enter is parked there:
 *        the context stays alive until the entering thread exits it
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"
#include "testutil.h"

/* ---- R10: a foreach callback that changes the structure under the walk -- */

enum { WALK_MAX = 256 };

typedef struct walk {
    int n;                       /* vars set before the walk */
    cv_var *v[WALK_MAX];         /* set before the walk, with tokens */
    cv_token *tok[WALK_MAX];     /* old value MISSING: a reset deletes */
    cv_var *w[2 * WALK_MAX];     /* set by the callback (inserts) */
    char val[WALK_MAX];          /* v[i]'s value before the walk: &val[i] */
    char nval[3 * WALK_MAX];     /* values the callback stores */
    /* the model of what the current context maps after each step: the
     * value, or NULL for absent (no NULL values in this test) */
    void *model_v[WALK_MAX];
    void *model_w[2 * WALK_MAX];
    int seen[WALK_MAX];          /* visits of v[i] */
    int visits, bad, inserted;
} walk;

static int count_cb(cv_var *k, void *value, void *arg)
{
    (void)k;
    (void)value;
    (*(int *)arg)++;
    return 0;
}

static int walk_index(const walk *a, const cv_var *k)
{
    for (int i = 0; i < a->n; i++)
        if (a->v[i] == k)
            return i;
    return -1;
}

static int mutating_cb(cv_var *k, void *value, void *arg)
{
    walk *a = arg;
    int i = walk_index(a, k);
    int step = a->visits++;
    if (i < 0 || value != &a->val[i]) { /* not a pair of the snapshot */
        a->bad++;
        return 0;
    }
    a->seen[i]++;
    /* two inserts: tables grow, layers are pushed, arrays are promoted */
    for (int j = 0; j < 2; j++) {
        int x = a->inserted++;
        if (cv_var_set(a->w[x], &a->nval[x], NULL) != 0)
            a->bad++;
        a->model_w[x] = &a->nval[x];
    }
    /* one delete (a reset to MISSING), of a var visited or not yet */
    int d = (step * 7 + 3) % a->n;
    if (a->model_v[d] != NULL) {
        if (cv_var_reset(a->v[d], a->tok[d]) != 0)
            a->bad++;
        a->model_v[d] = NULL;
    }
    /* one overwrite of a var still present */
    int o = (step * 5 + 1) % a->n;
    if (a->model_v[o] != NULL) {
        void *nv = &a->nval[2 * WALK_MAX + o];
        if (cv_var_set(a->v[o], nv, NULL) != 0)
            a->bad++;
        a->model_v[o] = nv;
    }
    return 0;
}

/* The current context against the walk's model, var by var, and its len. */
static void walk_check_state(const walk *a)
{
    size_t present = 0;
    for (int i = 0; i < a->n; i++) {
        void *out = NULL;
        int r = cv_var_get(a->v[i], &out);
        if (a->model_v[i] == NULL) {
            ASSERT_ERR(r, CV_ELOOKUP);
        } else {
            ASSERT_OK(r);
            assert_ptr_equal(out, a->model_v[i]);
            present++;
        }
    }
    for (int x = 0; x < 2 * a->n; x++) {
        void *out = NULL;
        if (a->model_w[x] == NULL) {
            ASSERT_ERR(cv_var_get(a->w[x], &out), CV_ELOOKUP);
        } else {
            ASSERT_OK(cv_var_get(a->w[x], &out));
            assert_ptr_equal(out, a->model_w[x]);
            present++;
        }
    }
    assert_int_equal(cv_context_len(cv_context_current()), present);
}

/* Sets a->n vars in the current context (a->v, each with its token) and
 * makes the 2n vars the callback inserts (a->w, unset). */
static void walk_setup(walk *a)
{
    for (int i = 0; i < a->n; i++) {
        a->v[i] = tu_var("v");
        ASSERT_OK(cv_var_set(a->v[i], &a->val[i], &a->tok[i]));
        a->model_v[i] = &a->val[i];
    }
    for (int x = 0; x < 2 * a->n; x++)
        a->w[x] = tu_var("w");
}

/* After a walk with the mutating callback: it saw each of the snapshot's
 * pairs once and no more, and the current context is as its model says. */
static void walk_check_after(const walk *a)
{
    assert_int_equal(a->bad, 0);
    assert_int_equal(a->visits, a->n); /* the snapshot's pairs, no more */
    for (int i = 0; i < a->n; i++)
        assert_int_equal(a->seen[i], 1);
    walk_check_state(a);
}

/* Sets up a->n vars in the current context, walks it with the mutating
 * callback, checks the walk and the state after it. */
static void walk_once(walk *a)
{
    walk_setup(a);
    ASSERT_OK(cv_context_foreach(cv_context_current(), mutating_cb, a));
    walk_check_after(a);
    /* and a second walk sees the new structure, each pair once */
    size_t len = cv_context_len(cv_context_current());
    int count = 0;
    ASSERT_OK(cv_context_foreach(cv_context_current(), count_cb, &count));
    assert_int_equal((size_t)count, len);
}

static void walk_release(walk *a)
{
    for (int i = 0; i < a->n; i++) {
        cv_token_release(a->tok[i]);
        cv_var_release(a->v[i]);
    }
    for (int x = 0; x < 2 * a->n; x++)
        cv_var_release(a->w[x]);
}

static int walk_in_run(void *p)
{
    walk *a = p;
    ASSERT_OK(cv_context_foreach(cv_context_current(), mutating_cb, a));
    return 0;
}

TEST(gaps_foreach_callback_inserts_and_deletes)
{
    (void)state;
    static const int sizes[] = {1, 3, 9, 12, 40, 200};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        /* in a fresh context of its own: the map starts empty */
        cv_context *c;
        ASSERT_OK(cv_context_new(&c));
        ASSERT_OK(cv_context_enter(c));
        walk *a = test_calloc(1, sizeof *a);
        a->n = sizes[s];
        walk_once(a);
        ASSERT_OK(cv_context_exit(c));
        cv_context_release(c);
        walk_release(a);
        test_free(a);
    }
}

/* The same walk over a map that another context shares (so that every
 * write under the walk must first stop sharing, and the other context
 * must not see it), directly and from inside cv_context_run. */
TEST(gaps_foreach_callback_writes_a_shared_map)
{
    (void)state;
    static const int sizes[] = {2, 9, 40, 200};
    for (int in_run = 0; in_run < 2; in_run++)
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        walk *a = test_calloc(1, sizeof *a);
        a->n = sizes[s];
        cv_context *c, *shared;
        ASSERT_OK(cv_context_new(&c));
        ASSERT_OK(cv_context_enter(c));
        walk_setup(a);
        ASSERT_OK(cv_copy_context(&shared));
        if (in_run) {
            ASSERT_OK(cv_context_exit(c));
            ASSERT_OK(cv_context_run(c, walk_in_run, a));
            ASSERT_OK(cv_context_enter(c));
        } else {
            ASSERT_OK(cv_context_foreach(c, mutating_cb, a));
        }
        walk_check_after(a);
        /* the copy maps what c mapped before the walk */
        assert_int_equal(cv_context_len(shared), (size_t)a->n);
        for (int i = 0; i < a->n; i++) {
            void *out = NULL;
            assert_int_equal(cv_context_get(shared, a->v[i], &out), 1);
            assert_ptr_equal(out, &a->val[i]);
        }
        for (int x = 0; x < 2 * a->n; x++) {
            void *out;
            assert_int_equal(cv_context_get(shared, a->w[x], &out), 0);
        }
        int count = 0;
        ASSERT_OK(cv_context_foreach(shared, count_cb, &count));
        assert_int_equal(count, a->n);
        ASSERT_OK(cv_context_exit(c));
        cv_context_release(shared);
        cv_context_release(c);
        walk_release(a);
        test_free(a);
    }
}

/* ---- NULL stored values --------------------------------------------------- */

static int null_seen_cb(cv_var *k, void *value, void *arg)
{
    int *n = arg;
    (void)k;
    if (value == NULL)
        (*n)++;
    return 0;
}

/* v's value on every road of a get: the inline hit, the function, get_or
 * both ways, and the context's own map. */
static void expect_null_value(cv_var *v)
{
    void *out = &out;
    ASSERT_OK(cv_var_get(v, &out));
    assert_null(out);
    out = &out;
    ASSERT_OK((cv_var_get)(v, &out));
    assert_null(out);
    assert_null(cv_var_get_or(v, "dflt"));
    assert_null((cv_var_get_or)(v, "dflt"));
    out = &out;
    assert_int_equal(cv_context_get(cv_context_current(), v, &out), 1);
    assert_null(out);
}

static int null_in_copy(void *p)
{
    cv_var **v = p;
    /* a run starts a new cache generation: these gets miss and go to the
     * map, where NULL must still read as a value; get_or first, so that
     * it misses too */
    assert_null(cv_var_get_or(v[0], "dflt"));
    assert_null(cv_var_get_or(v[1], "dflt"));
    expect_null_value(v[0]);
    expect_null_value(v[1]);
    expect_null_value(v[0]);
    return 0;
}

TEST(gaps_null_value_is_a_value)
{
    (void)state;
    cv_var *v[2];
    v[0] = tu_var("plain");
    v[1] = tu_var_default("dflt", "the default");
    cv_token *t1, *t2;
    ASSERT_OK(cv_var_set(v[0], NULL, &t1));
    ASSERT_OK(cv_var_set(v[1], NULL, NULL));
    expect_null_value(v[0]);
    expect_null_value(v[1]); /* NULL, not the default */
    assert_int_equal(cv_context_len(cv_context_current()), 2);
    int nulls = 0;
    ASSERT_OK(cv_context_foreach(cv_context_current(), null_seen_cb, &nulls));
    assert_int_equal(nulls, 2);

    /* a copy, run: the miss road */
    cv_context *c;
    ASSERT_OK(cv_copy_context(&c));
    ASSERT_OK(cv_context_run(c, null_in_copy, v));
    void *out = &out;
    assert_int_equal(cv_context_get(c, v[0], &out), 1);
    assert_null(out);
    /* and again after the exit (the generation below is restored) */
    expect_null_value(v[0]);

    /* a token over a NULL value: had a value, and it was NULL */
    ASSERT_OK(cv_var_set(v[0], "x", &t2));
    out = &out;
    assert_int_equal(cv_token_old_value(t2, &out), 1);
    assert_null(out);
    out = &out;
    assert_int_equal(cv_token_old_value(t1, &out), 0); /* MISSING */
    ASSERT_OK(cv_var_reset(v[0], t2)); /* back to NULL, not removed */
    expect_null_value(v[0]);
    assert_int_equal(cv_context_len(cv_context_current()), 2);
    ASSERT_OK(cv_var_reset(v[0], t1)); /* now removed */
    out = &out;
    ASSERT_ERR(cv_var_get(v[0], &out), CV_ELOOKUP);
    assert_ptr_equal(out, &out);
    assert_string_equal(cv_var_get_or(v[0], "dflt"), "dflt");
    /* the copy still maps NULL */
    out = &out;
    assert_int_equal(cv_context_get(c, v[0], &out), 1);
    assert_null(out);
    cv_token_release(t1);
    cv_token_release(t2);
    cv_context_release(c);
    cv_var_release(v[0]);
    cv_var_release(v[1]);
}

/* Many NULL values through a map's real structure (tables, trie nodes,
 * layers, the promoted form), shared, overwritten, deleted. */
TEST(gaps_null_values_in_a_big_map)
{
    (void)state;
    enum { N = 100 };
    cv_var *v[N];
    cv_token *t[N];
    cv_context *c;
    ASSERT_OK(cv_context_new(&c));
    ASSERT_OK(cv_context_enter(c));
    for (int i = 0; i < N; i++) {
        v[i] = (i % 3 == 0) ? tu_var_hooked("h", NULL) : tu_var("v");
        ASSERT_OK(cv_var_set(v[i], NULL, &t[i]));
    }
    assert_int_equal(cv_context_len(c), N);
    cv_context *snap;
    ASSERT_OK(cv_copy_context(&snap));
    static char vals[N];
    for (int i = 0; i < N; i += 2)
        ASSERT_OK(cv_var_set(v[i], &vals[i], NULL));   /* NULL -> value */
    for (int i = 1; i < N; i += 4)
        ASSERT_OK(cv_var_reset(v[i], t[i]));            /* deleted */
    ASSERT_OK(cv_context_exit(c));
    ASSERT_OK(cv_context_enter(c)); /* a new generation: gets miss */
    int present = 0;
    for (int i = 0; i < N; i++) {
        void *out = &out;
        if (i % 2 == 0) {
            ASSERT_OK(cv_var_get(v[i], &out));
            assert_ptr_equal(out, &vals[i]);
            present++;
        } else if (i % 4 == 1) {
            ASSERT_ERR(cv_var_get(v[i], &out), CV_ELOOKUP);
        } else {
            assert_null(cv_var_get_or(v[i], "dflt")); /* a miss: first get */
            ASSERT_OK(cv_var_get(v[i], &out));
            assert_null(out);
            present++;
        }
        /* the snapshot: every var still NULL */
        out = &out;
        assert_int_equal(cv_context_get(snap, v[i], &out), 1);
        assert_null(out);
    }
    assert_int_equal(cv_context_len(c), (size_t)present);
    assert_int_equal(cv_context_len(snap), N);
    int nulls = 0;
    ASSERT_OK(cv_context_foreach(snap, null_seen_cb, &nulls));
    assert_int_equal(nulls, N);
    ASSERT_OK(cv_context_exit(c));
    for (int i = 0; i < N; i++) {
        cv_token_release(t[i]);
        cv_var_release(v[i]);
    }
    cv_context_release(snap);
    cv_context_release(c);
}

/* ---- NULL defaults ---------------------------------------------------------- */

static void expect_null_default(cv_var *v)
{
    void *out = &out;
    ASSERT_OK(cv_var_get(v, &out)); /* the default, not CV_ELOOKUP */
    assert_null(out);
    out = &out;
    ASSERT_OK(cv_var_get(v, &out)); /* again: through the cache entry */
    assert_null(out);
    out = &out;
    ASSERT_OK((cv_var_get)(v, &out));
    assert_null(out);
    /* R4: an explicit default beats the var's own, even a NULL one */
    assert_string_equal(cv_var_get_or(v, "explicit"), "explicit");
    assert_string_equal((cv_var_get_or)(v, "explicit"), "explicit");
    /* the default is not a pair of the context */
    out = &out;
    assert_int_equal(cv_context_get(cv_context_current(), v, &out), 0);
    assert_ptr_equal(out, &out);
}

static int null_default_in_new(void *p)
{
    expect_null_default(p);
    assert_int_equal(cv_context_len(cv_context_current()), 0);
    return 0;
}

TEST(gaps_null_default)
{
    (void)state;
    cv_var *v, *plain;
    ASSERT_OK(cv_var_new_default("nd", NULL, &v));
    ASSERT_OK(cv_var_new("plain", &plain));
    expect_null_default(v);
    void *out = &out;
    ASSERT_ERR(cv_var_get(plain, &out), CV_ELOOKUP); /* no default at all */
    assert_ptr_equal(out, &out);

    cv_token *t;
    ASSERT_OK(cv_var_set(v, "set", &t));
    assert_string_equal(tu_get_str(v), "set");
    assert_string_equal(cv_var_get_or(v, "explicit"), "set");
    ASSERT_OK(cv_var_reset(v, t));
    expect_null_default(v);
    cv_token_release(t);

    cv_context *c;
    ASSERT_OK(cv_context_new(&c));
    ASSERT_OK(cv_context_run(c, null_default_in_new, v));
    cv_context_release(c);

    /* the _ex form, with hooks: the NULL default is a held value (R14) */
    cv_var_opts o = {.name = "ndx", .has_default = 1, .dflt = NULL,
                     .retain = tu_hook_retain, .release = tu_hook_release};
    cv_var *x;
    long before = tu_hook_balance();
    ASSERT_OK(cv_var_new_ex(&o, &x));
    assert_int_equal(tu_hook_balance(), before + 1);
    expect_null_default(x);
    cv_var_release(x);
    assert_int_equal(tu_hook_balance(), before);
    cv_var_release(v);
    cv_var_release(plain);
}

/* ---- R13/S15: the enter race, forced -------------------------------------- */

/* One thread at a time may park at CV_YIELD_ENTER: the one whose
 * thread-local flag is set. The parked thread waits until released. */
static _Thread_local int park_me;
static pthread_mutex_t park_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cv = PTHREAD_COND_INITIALIZER;
static int parked, released;

static void park_hook(int point)
{
    if (point != CV_YIELD_ENTER || !park_me)
        return;
    pthread_mutex_lock(&park_mu);
    parked = 1;
    pthread_cond_broadcast(&park_cv);
    while (!released)
        pthread_cond_wait(&park_cv, &park_mu);
    pthread_mutex_unlock(&park_mu);
}

static void park_reset(void)
{
    pthread_mutex_lock(&park_mu);
    parked = released = 0;
    pthread_mutex_unlock(&park_mu);
}

/* Waits (at most 20 s) until the other thread is parked; fails the test
 * when it never gets there (an enter that did not claim the context). */
static void wait_parked(void)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&park_mu);
    int r = 0;
    while (!parked && r == 0)
        r = pthread_cond_timedwait(&park_cv, &park_mu, &until);
    int ok = parked;
    pthread_mutex_unlock(&park_mu);
    if (!ok)
        fail_msg("the entering thread never reached CV_YIELD_ENTER");
}

static void release_parked(void)
{
    pthread_mutex_lock(&park_mu);
    released = 1;
    pthread_cond_broadcast(&park_cv);
    pthread_mutex_unlock(&park_mu);
}

typedef struct parker {
    cv_context *c;
    int use_run;             /* enter through cv_context_run */
    int result;              /* of the parked enter or run */
    int fn_called;
    pthread_barrier_t exit_now; /* the main thread has tried; exit */
} parker;

static int parker_fn(void *p)
{
    parker *k = p;
    k->fn_called++;
    pthread_barrier_wait(&k->exit_now);
    return 5;
}

static void *parker_thread(void *p)
{
    parker *k = p;
    park_me = 1;
    if (k->use_run) {
        k->result = cv_context_run(k->c, parker_fn, k);
        park_me = 0;
    } else {
        k->result = cv_context_enter(k->c);
        park_me = 0;
        pthread_barrier_wait(&k->exit_now);
        if (k->result == 0)
            cv_context_exit(k->c);
    }
    cv_thread_cleanup();
    return NULL;
}

static int must_not_run(void *p)
{
    (*(int *)p)++;
    return 0;
}

/* The other thread is parked inside enter, having claimed c; this thread
 * enters (or runs) c now. It must lose: exactly one winner, every time. */
static void forced_race(int parker_runs, int main_runs)
{
    parker k = {.use_run = parker_runs};
    ASSERT_OK(cv_context_new(&k.c));
    pthread_barrier_init(&k.exit_now, NULL, 2);
    park_reset();
    atomic_store(&cv__test_yield_hook, park_hook);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, parker_thread, &k), 0);
    wait_parked();
    int mine, called = 0;
    if (main_runs)
        mine = cv_context_run(k.c, must_not_run, &called);
    else
        mine = cv_context_enter(k.c);
    release_parked();
    /* the parked thread finishes its enter, then waits for exit_now (in
     * fn when it runs) */
    pthread_barrier_wait(&k.exit_now);
    assert_int_equal(pthread_join(th, NULL), 0);
    atomic_store(&cv__test_yield_hook, NULL);
    if (mine == 0 && !main_runs)
        cv_context_exit(k.c); /* only a broken enter gets here */
    ASSERT_ERR(mine, CV_EENTERED);
    assert_int_equal(called, 0);
    if (parker_runs) {
        assert_int_equal(k.result, 5);
        assert_int_equal(k.fn_called, 1);
    } else {
        ASSERT_OK(k.result);
    }
    /* and c is free again for anyone */
    ASSERT_OK(cv_context_enter(k.c));
    ASSERT_OK(cv_context_exit(k.c));
    pthread_barrier_destroy(&k.exit_now);
    cv_context_release(k.c);
}

TEST(race_enter_forced_one_winner)
{
    (void)state;
    if (!cv__test_hooks_compiled())
        skip(); /* a library built without CV_TEST_HOOKS */
    for (int round = 0; round < 4; round++) {
        forced_race(0, 0);   /* enter against enter */
        forced_race(0, 1);   /* run against a parked enter */
        forced_race(1, 0);   /* enter against a parked run */
        forced_race(1, 1);   /* run against run */
    }
}

/* R16: the last user reference goes while the entering thread is parked
 * after claiming c: c must stay alive until that thread exits it. */
typedef struct late {
    cv_context *c;
    cv_var *v;
    int entered, got, exited;
} late;

static void *late_thread(void *p)
{
    late *l = p;
    park_me = 1;
    l->entered = cv_context_enter(l->c);
    park_me = 0;
    if (l->entered == 0) {
        const char *s = cv_var_get_or(l->v, NULL);
        l->got = s != NULL && strcmp(s, "kept") == 0;
        l->exited = cv_context_exit(l->c);
    }
    cv_thread_cleanup();
    return NULL;
}

TEST(race_release_while_enter_is_parked)
{
    (void)state;
    if (!cv__test_hooks_compiled())
        skip();
    late l = {.v = tu_var("v")};
    ASSERT_OK(cv_context_new(&l.c));
    ASSERT_OK(cv_context_enter(l.c));
    ASSERT_OK(cv_var_set(l.v, "kept", NULL));
    ASSERT_OK(cv_context_exit(l.c));
    long live = tu_alloc_live();
    park_reset();
    atomic_store(&cv__test_yield_hook, park_hook);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, late_thread, &l), 0);
    wait_parked();
    cv_context_release(l.c); /* the last user reference, mid-enter */
    assert_int_equal(tu_alloc_live(), live); /* still alive: entered */
    release_parked();
    assert_int_equal(pthread_join(th, NULL), 0);
    atomic_store(&cv__test_yield_hook, NULL);
    ASSERT_OK(l.entered);
    assert_int_equal(l.got, 1);
    ASSERT_OK(l.exited);
    assert_true(tu_alloc_live() < live); /* freed at the exit */
    cv_var_release(l.v);
}

/* ---- the allocator hook takes both callbacks or neither ------------------- */

TEST(gaps_allocator_refuses_half_a_hook)
{
    (void)state;
    long live = tu_alloc_live();
    tu_side_alloc side = {0};
    cv_allocator no_free = tu_side_allocator(&side);
    cv_allocator no_malloc = no_free;
    no_free.free_cb = NULL;
    no_malloc.malloc_cb = NULL;
    int r1 = cv_set_allocator(&no_free);
    int r2 = cv_set_allocator(&no_malloc);
    tu_alloc_install(); /* whatever happened: the test allocator again */
    ASSERT_ERR(r1, CV_EINVAL);
    ASSERT_ERR(r2, CV_EINVAL);
    /* and the refused ones were never in use: the test hook still counts */
    cv_var *v;
    ASSERT_OK(cv_var_new("counted", &v));
    assert_int_equal(tu_alloc_live(), live + 1);
    assert_int_equal(side.live, 0);
    cv_var_release(v);
}

/* ---- OOM on a thread's first use: the base a failing call made goes ----- */

/* Every allocation of a thread's first call failed in turn (the base
 * context, the token, the copy, the map): a call that fails leaves nothing
 * behind, the base context it made included. */
static int first_use_op(int op, cv_var *v, cv_token **t, cv_context **c)
{
    switch (op) {
    case 0:
        return cv_var_set(v, "x", t);        /* with a token */
    case 1:
        return cv_var_set(v, "x", NULL);     /* without */
    default:
        return cv_copy_context(c);
    }
}

TEST(gaps_oom_first_use_unmakes_the_base)
{
    (void)state;
    cv_var *v = tu_var("v");
    for (int op = 0; op < 3; op++) {
        for (long k = 1;; k++) {
            cv_thread_cleanup(); /* no base, no cached blocks */
            long live = tu_alloc_live();
            cv_token *t = NULL;
            cv_context *c = NULL;
            tu_alloc_fail_at(k, 0);
            int r = first_use_op(op, v, &t, &c);
            if (TU_OOM_DONE(r, live)) {
                cv_token_release(t);
                cv_context_release(c);
                break;
            }
            /* nothing is left (TU_OOM_DONE): not even the base context */
            assert_null(t);
            assert_null(c);
            assert_null(cv_var_get_or(v, NULL));
        }
    }
    cv_thread_cleanup();
    cv_var_release(v);
}

/* ---- the generation ring's edge: an exit never restores a stale one ------ */

/* At every depth D up to past the ring (GEN_RING = 64 levels in
 * core/context.c; 130 covers it and any ring up to 128): two chains of D
 * contexts, A and B, made beforehand (so that nothing touches the cache
 * between them), v mapped to a per-level value in each. Enter A1..AD,
 * enter and exit one more, get v (fills its cache entry at the generation
 * that exit gave AD), exit all; then the same over B. B's get must answer
 * B's value: an exit that gave BD a generation it had given AD before
 * (read past the ring, say) would make the cache answer A's. */
TEST(gaps_exit_past_the_ring_never_reuses_a_generation)
{
    (void)state;
    enum { DMAX = 130 };
    static char a[DMAX + 1], b[DMAX + 1];
    cv_var *v = tu_var("v");
    cv_context *ca[DMAX + 1], *cb[DMAX + 1], *y;
    ASSERT_OK(cv_context_new(&y));
    for (int d = 1; d <= DMAX; d++) {
        for (int i = 1; i <= d; i++) {
            ASSERT_OK(cv_context_new(&ca[i]));
            ASSERT_OK(cv_context_new(&cb[i]));
            ASSERT_OK(cv_context_enter(ca[i]));
            ASSERT_OK(cv_var_set(v, &a[i], NULL));
            ASSERT_OK(cv_context_exit(ca[i]));
            ASSERT_OK(cv_context_enter(cb[i]));
            ASSERT_OK(cv_var_set(v, &b[i], NULL));
            ASSERT_OK(cv_context_exit(cb[i]));
        }
        for (int round = 0; round < 2; round++) {
            cv_context **c = round ? cb : ca;
            char *want = round ? &b[d] : &a[d];
            for (int i = 1; i <= d; i++)
                ASSERT_OK(cv_context_enter(c[i]));
            ASSERT_OK(cv_context_enter(y));
            ASSERT_OK(cv_context_exit(y));
            void *out = NULL;
            ASSERT_OK(cv_var_get(v, &out));
            if (out != want)
                fail_msg("depth %d, chain %c: get answered %s's value", d,
                         round ? 'B' : 'A', out == &a[d] ? "A" : "another");
            for (int i = d; i >= 1; i--)
                ASSERT_OK(cv_context_exit(c[i]));
        }
        for (int i = 1; i <= d; i++) {
            cv_context_release(ca[i]);
            cv_context_release(cb[i]);
        }
    }
    cv_context_release(y);
    cv_var_release(v);
}

/* ---- a deleted var is not kept alive by a map that no longer shows it ---- */

/* A context over a big map (40 vars), then a history of snapshots, each
 * followed by one write: x set, x deleted, six more sets, one more set.
 * On chainmap that is a chain of one-write layers over the big one, and
 * the last write compacts it at the depth bound by a merge onto the big
 * layer, where x's topmost slot is a tombstone over nothing the big layer
 * shows. Once the snapshots are gone, nothing shows x: the user's release
 * of x must free it (R16), on every backend. (A merge that kept needless
 * tombstones would hold x, through the tombstone's var reference, until
 * the next flatten.) */
TEST(gaps_deleted_var_not_held_after_history)
{
    (void)state;
    enum { BIG = 40, SNAPS = 10 };
    cv_var *big[BIG], *y[8];
    cv_context *c, *snap[SNAPS];
    int ns = 0;
    ASSERT_OK(cv_context_new(&c));
    ASSERT_OK(cv_context_enter(c));
    for (int i = 0; i < BIG; i++) {
        big[i] = tu_var("big");
        ASSERT_OK(cv_var_set(big[i], "b", NULL));
    }
    cv_var *x = tu_var("x");
    cv_token *tx;
    ASSERT_OK(cv_copy_context(&snap[ns++]));
    ASSERT_OK(cv_var_set(x, "x", &tx));        /* x set over the big map */
    ASSERT_OK(cv_copy_context(&snap[ns++]));
    ASSERT_OK(cv_var_reset(x, tx));            /* x deleted */
    cv_token_release(tx);
    for (int i = 0; i < 7; i++) {              /* six to the bound, one past */
        y[i] = tu_var("y");
        ASSERT_OK(cv_copy_context(&snap[ns++]));
        ASSERT_OK(cv_var_set(y[i], "y", NULL));
    }
    void *out = NULL;
    ASSERT_ERR(cv_var_get(x, &out), CV_ELOOKUP);
    assert_int_equal(cv_context_len(c), BIG + 7);
    for (int i = 0; i < ns; i++)
        cv_context_release(snap[i]);
    long live = tu_alloc_live();
    cv_var_release(x);                         /* the last reference to x */
    assert_int_equal(tu_alloc_live(), live - 1);
    ASSERT_ERR(cv_var_get(big[0], &out), 0);
    ASSERT_OK(cv_context_exit(c));
    cv_context_release(c);
    for (int i = 0; i < BIG; i++)
        cv_var_release(big[i]);
    for (int i = 0; i < 7; i++)
        cv_var_release(y[i]);
}

/* ---- OOM in a write to a shared map never touches the other holder ------- */

/* c and a copy share one map; every allocation of a delete (a reset to
 * MISSING) and of an overwrite in c fails in turn. Whatever the call
 * reports, the copy is untouched (R9), and a call that reports CV_ENOMEM
 * changed nothing in c either. */
TEST(gaps_oom_write_to_a_shared_map_keeps_the_copy)
{
    (void)state;
    enum { N = 12 };
    static char val[N];
    cv_var *v[N];
    cv_context *c;
    ASSERT_OK(cv_context_new(&c));
    ASSERT_OK(cv_context_enter(c));
    for (int op = 0; op < 2; op++) {
        for (long k = 1;; k++) {
            cv_token *t[N];
            for (int i = 0; i < N; i++) {
                v[i] = tu_var("v");
                ASSERT_OK(cv_var_set(v[i], &val[i], &t[i]));
            }
            cv_context *copy;
            ASSERT_OK(cv_copy_context(&copy));
            tu_alloc_fail_at(k, 0);
            int r = op == 0 ? cv_var_reset(v[3], t[3])
                            : cv_var_set(v[3], "new", NULL);
            long failed = tu_alloc_fail_off();
            for (int i = 0; i < N; i++) { /* the copy: as it was */
                void *out = NULL;
                assert_int_equal(cv_context_get(copy, v[i], &out), 1);
                assert_ptr_equal(out, &val[i]);
            }
            assert_int_equal(cv_context_len(copy), N);
            void *out = NULL;
            if (r == CV_ENOMEM) {
                assert_true(failed > 0);
                ASSERT_OK(cv_var_get(v[3], &out));
                assert_ptr_equal(out, &val[3]);
            } else {
                ASSERT_OK(r);
                if (op == 0) {
                    ASSERT_ERR(cv_var_get(v[3], &out), CV_ELOOKUP);
                } else {
                    ASSERT_OK(cv_var_get(v[3], &out));
                    assert_string_equal(out, "new");
                }
            }
            for (int i = 0; i < N; i++) {
                if (i != 3 || op != 0 || r != 0)
                    (void)cv_var_reset(v[i], t[i]); /* empty c again */
                cv_token_release(t[i]);
                cv_var_release(v[i]);
            }
            cv_context_release(copy);
            if (failed == 0)
                break;
        }
    }
    ASSERT_OK(cv_context_exit(c));
    cv_context_release(c);
}

/* ---- R14a: a var is freed before its default's release hook runs -------- */

static long live_in_hook;

static void note_live_release(void *value, void *ud)
{
    (void)value;
    (void)ud;
    live_in_hook = tu_alloc_live();
}

static void no_retain(void *value, void *ud)
{
    (void)value;
    (void)ud;
}

TEST(gaps_var_freed_before_its_default_hook)
{
    (void)state;
    static char dflt;
    cv_var_opts o = {.name = "d", .has_default = 1, .dflt = &dflt,
                     .retain = no_retain, .release = note_live_release};
    cv_var *v;
    ASSERT_OK(cv_var_new_ex(&o, &v));
    live_in_hook = -1;
    long live = tu_alloc_live();
    cv_var_release(v); /* the last reference: the var goes, then the hook */
    assert_int_equal(live_in_hook, live - 1);
}
