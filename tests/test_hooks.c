/* SPDX-License-Identifier: MIT */
/*
 * test_hooks.c -- value and var hooks that call back into ctxvar (R14a,
 * R14b), on every backend.
 *
 * Values are tu_rc (support/rcval.h): a real reference count that starts
 * with the user's own reference, and a destructor at zero that may call
 * any ctxvar function, as a binding's __del__ or a C++ destructor does.
 * After every step the tests check that the lookup cache and the context
 * agree (both roads of the get: inline and the function), that no get
 * returns a dead value, and that no value was retained or released after
 * its count reached zero.
 */
#include <pthread.h>
#include <string.h>

#include "rcval.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------ */

/* The var a destructor writes, and the value it writes. */
typedef struct writer {
    cv_var *var;
    const char *tag;             /* the value written is made with this tag */
    int fired;
} writer;

/* Destructor: sets w->var to a new value (which the context then holds
 * alone, once the user's reference is dropped). */
static void dtor_sets(tu_rc *self, void *arg)
{
    (void)self;
    writer *w = arg;
    tu_rc *h = rc_new(w->tag, NULL, NULL);
    assert_int_equal(cv_var_set(w->var, h, NULL), 0);
    rc_unref(h);
    w->fired++;
}

/* v's value in the current context through both roads of the get and the
 * context's map; asserts they agree and returns the tag ("<absent>" when
 * v has no value and no default). */
static const char *agreed(cv_var *v)
{
    void *inl = NULL, *fn = NULL, *in_ctx = NULL;
    int ri = cv_var_get(v, &inl);
    int rf = (cv_var_get)(v, &fn);
    int rc = cv_context_get(cv_context_current(), v, &in_ctx);
    assert_int_equal(ri, rf);
    if (ri == 0)
        assert_ptr_equal(inl, fn);
    void *or = cv_var_get_or(v, NULL);
    if (rc == 1) {
        assert_int_equal(ri, 0);
        assert_ptr_equal(inl, in_ctx);
        assert_ptr_equal(or, in_ctx);
        rc_check_live(in_ctx);
        return ((tu_rc *)in_ctx)->tag;
    }
    assert_int_equal(rc, 0);
    assert_null(or);
    if (ri == 0) { /* the var's default */
        rc_check_live(inl);
        return ((tu_rc *)inl)->tag;
    }
    assert_int_equal(ri, CV_ELOOKUP);
    return "<absent>";
}

static void hook_test_end(void)
{
    assert_int_equal(rc_violations(), 0);
    assert_int_equal(rc_live(), 0);
    rc_reset();
}

static cv_context *fresh_entered(void)
{
    cv_context *c;
    ASSERT_OK(cv_context_new(&c));
    ASSERT_OK(cv_context_enter(c));
    return c;
}

static void leave(cv_context *c)
{
    ASSERT_OK(cv_context_exit(c));
    cv_context_release(c);
}

/* How a hook test starts: no values left by a failed test before, vars v
 * and w (w may be NULL) of counted values, and a fresh context entered,
 * which it returns. */
static cv_context *hook_test_begin(cv_var **v, cv_var **w)
{
    rc_reset();
    *v = rc_var("v", NULL);
    if (w != NULL)
        *w = rc_var("w", NULL);
    return fresh_entered();
}

/* How a hook test ends: leaves its context c, releases its vars (w may be
 * NULL), then checks as hook_test_end. */
static void hook_test_leave(cv_context *c, cv_var *v, cv_var *w)
{
    leave(c);
    cv_var_release(v);
    if (w != NULL)
        cv_var_release(w);
    hook_test_end();
}

/* ---- the three cases of the bug report ---------------------------------- */

/* Their cast: a var v of counted values, the writer of a destructor that
 * sets v to "from hook", and a fresh context entered. */
typedef struct report {
    cv_var *v;
    writer w;
    cv_context *c;
} report;

static void report_begin(report *r)
{
    r->c = hook_test_begin(&r->v, NULL);
    r->w = (writer){.var = r->v, .tag = "from hook"};
}

/* A reset to MISSING releases D; D's destructor sets the var. The get must
 * say the destructor's value, as the context does (CPython does too). */
static void reset_to_missing_case(int neighbours)
{
    report rp;
    report_begin(&rp);
    cv_var *v = rp.v, *n = rc_var("n", NULL);
    /* With a neighbour the reset removes one pair of several (a slot of
     * the map); without, it empties the map (the whole map goes). */
    tu_rc *nv = rc_new("n", NULL, NULL);
    if (neighbours)
        ASSERT_OK(cv_var_set(n, nv, NULL));
    rc_unref(nv);
    tu_rc *a = rc_new("a", NULL, NULL), *d = rc_new("D", dtor_sets, &rp.w);
    cv_token *t;
    ASSERT_OK(cv_var_set(v, a, &t));         /* old: MISSING */
    ASSERT_OK(cv_var_set(v, d, NULL));
    rc_unref(a);
    rc_unref(d);
    assert_string_equal(agreed(v), "D");
    ASSERT_OK(cv_var_reset(v, t));           /* removes v; D dies -> sets */
    assert_int_equal(rp.w.fired, 1);
    assert_string_equal(agreed(v), "from hook");
    cv_token_release(t);
    assert_string_equal(agreed(v), "from hook");
    hook_test_leave(rp.c, v, n);
}

TEST(r14a_reset_to_missing_whose_hook_sets_the_var)
{
    (void)state;
    reset_to_missing_case(0);
    reset_to_missing_case(1);
}

/* A reset back to "a" releases D, whose destructor's set releases "a" to
 * the token's retain alone; releasing the token then frees "a". The get
 * must not answer "a" from a stale cache entry. */
TEST(r14a_reset_restoring_then_token_release)
{
    (void)state;
    report rp;
    report_begin(&rp);
    cv_var *v = rp.v;
    tu_rc *a = rc_new("a", NULL, NULL), *b = rc_new("b", NULL, NULL);
    tu_rc *d = rc_new("D", dtor_sets, &rp.w);
    cv_token *t;
    ASSERT_OK(cv_var_set(v, a, NULL));
    ASSERT_OK(cv_var_set(v, b, &t));         /* t holds "a" */
    ASSERT_OK(cv_var_set(v, d, NULL));
    rc_unref(a);
    rc_unref(b);
    rc_unref(d);
    ASSERT_OK(cv_var_reset(v, t));
    assert_int_equal(rp.w.fired, 1);
    assert_string_equal(agreed(v), "from hook");
    assert_false(a->dead);                   /* the token still holds it */
    cv_token_release(t);
    assert_true(a->dead);
    assert_string_equal(agreed(v), "from hook");
    hook_test_leave(rp.c, v, NULL);
}

/* A plain set (no token) whose replaced value's destructor sets the var. */
TEST(r14a_plain_set_whose_replaced_value_sets_the_var)
{
    (void)state;
    report rp;
    report_begin(&rp);
    cv_var *v = rp.v;
    tu_rc *d = rc_new("D", dtor_sets, &rp.w), *b = rc_new("b", NULL, NULL);
    ASSERT_OK(cv_var_set(v, d, NULL));
    rc_unref(d);
    ASSERT_OK(cv_var_set(v, b, NULL));       /* D dies -> sets "from hook" */
    assert_int_equal(rp.w.fired, 1);
    assert_string_equal(agreed(v), "from hook");
    assert_false(b->dead);                   /* the user still holds b */
    rc_unref(b);                             /* ... and now nothing does */
    assert_true(b->dead);
    assert_string_equal(agreed(v), "from hook");
    hook_test_leave(rp.c, v, NULL);
}

/* ---- hooks from every releasing call ------------------------------------ */

/* A destructor that does everything: sets its var, copies the context,
 * runs a function in the copy that sets and resets, and reads back. */
typedef struct busy {
    cv_var *var;
    int fired;
    const char *seen_in_run;
} busy;

static int busy_run(void *arg)
{
    busy *b = arg;
    tu_rc *x = rc_new("in run", NULL, NULL);
    cv_token *t;
    int r = cv_var_set(b->var, x, &t);
    rc_unref(x);
    if (r == 0)
        b->seen_in_run = agreed(b->var);
    if (r == 0)
        r = cv_var_reset(b->var, t);
    cv_token_release(t);
    return r;
}

static void dtor_busy(tu_rc *self, void *arg)
{
    (void)self;
    busy *b = arg;
    tu_rc *h = rc_new("busy", NULL, NULL);
    assert_int_equal(cv_var_set(b->var, h, NULL), 0);
    rc_unref(h);
    cv_context *copy;
    assert_int_equal(cv_copy_context(&copy), 0);
    assert_int_equal(cv_context_run(copy, busy_run, b), 0);
    cv_context_release(copy);
    b->fired++;
}

TEST(r14a_hook_from_token_release)
{
    (void)state;
    cv_var *v, *w;
    cv_context *c = hook_test_begin(&v, &w);
    busy b = {.var = w};
    tu_rc *d = rc_new("D", dtor_busy, &b), *x = rc_new("x", NULL, NULL);
    cv_token *t;
    ASSERT_OK(cv_var_set(v, d, NULL));
    ASSERT_OK(cv_var_set(v, x, &t));         /* t holds D */
    ASSERT_OK(cv_var_set(v, NULL, NULL));    /* D only in t now; NULL value */
    rc_unref(d);
    rc_unref(x);
    cv_token_release(t);                     /* D dies -> busy */
    assert_int_equal(b.fired, 1);
    assert_string_equal(b.seen_in_run, "in run");
    assert_string_equal(agreed(w), "busy");
    void *got = (void *)1;
    ASSERT_OK(cv_var_get(v, &got));
    assert_null(got);                        /* a NULL value is a value */
    hook_test_leave(c, v, w);
}

TEST(r14a_hook_from_context_release)
{
    (void)state;
    cv_var *v, *w;
    cv_context *outer = hook_test_begin(&v, &w);
    busy b = {.var = w};
    cv_context *c = fresh_entered();
    tu_rc *d = rc_new("D", dtor_busy, &b);
    ASSERT_OK(cv_var_set(v, d, NULL));
    rc_unref(d);
    leave(c);                                /* c's last reference: D dies */
    assert_int_equal(b.fired, 1);
    assert_string_equal(agreed(w), "busy");  /* set in outer, the current */
    assert_string_equal(agreed(v), "<absent>");
    hook_test_leave(outer, v, w);
}

/* A run whose body enters a copy and drops it: the unwind exits two
 * contexts, and the values that die with them write -- after the whole
 * unwind, into the context the run returns to (R14a), not into a level
 * the unwind is about to leave. */
typedef struct unwind_case {
    cv_var *v;
    writer *w;
} unwind_case;

static int unwind_body(void *arg)
{
    unwind_case *u = arg;
    cv_context *copy;
    if (cv_copy_context(&copy) != 0 || cv_context_enter(copy) != 0)
        return -1;
    cv_context_release(copy);            /* alive while entered */
    tu_rc *d = rc_new("D", dtor_sets, u->w);
    int r = cv_var_set(u->v, d, NULL);   /* in the copy only */
    rc_unref(d);
    return r;                            /* run exits the copy, then c */
}

TEST(r14a_hook_from_run_unwind)
{
    (void)state;
    cv_var *v, *w;
    cv_context *outer = hook_test_begin(&v, &w);
    writer wr = {.var = w, .tag = "after run"};
    cv_context *c;
    ASSERT_OK(cv_context_new(&c));
    unwind_case u = {.v = v, .w = &wr};
    ASSERT_OK(cv_context_run(c, unwind_body, &u));
    assert_int_equal(wr.fired, 1);           /* D died with the copy */
    assert_string_equal(agreed(w), "after run"); /* ... and wrote here */
    assert_string_equal(agreed(v), "<absent>");
    cv_context_release(c);
    hook_test_leave(outer, v, w);
}

/* The var's default dies with the var; its destructor writes another var. */
TEST(r14a_hook_from_var_release)
{
    (void)state;
    rc_reset(); /* a failed test before may have left values */
    cv_var *w = rc_var("w", NULL);
    busy b = {.var = w};
    cv_context *c = fresh_entered();
    tu_rc *d = rc_new("default", dtor_busy, &b);
    cv_var *v = rc_var("v", d);
    rc_unref(d);                             /* the var holds it alone */
    assert_string_equal(agreed(v), "default");
    cv_var_release(v);
    assert_int_equal(b.fired, 1);
    assert_string_equal(agreed(w), "busy");
    hook_test_leave(c, w, NULL);
}

/* cv_thread_cleanup releases the thread's base context, whose value's
 * destructor writes: the write makes a new base, which a second cleanup
 * (or the thread's exit) releases. */
typedef struct thread_case {
    cv_var *v, *w;
    int use_exit;                /* 0: cv_thread_cleanup; 1: thread exit */
    writer wr;
} thread_case;

static void *thread_body(void *arg)
{
    thread_case *tc = arg;
    tu_rc *d = rc_new("D", dtor_sets, &tc->wr);
    if (cv_var_set(tc->v, d, NULL) != 0)
        return "set";
    rc_unref(d);
    if (!tc->use_exit) {
        cv_thread_cleanup();                 /* D dies -> sets w */
        if (tc->wr.fired != 1)
            return "not fired";
        void *got;
        if (cv_var_get(tc->w, &got) != 0 ||
            strcmp(((tu_rc *)got)->tag, "after cleanup") != 0)
            return "lost";
        cv_thread_cleanup();
    }
    return NULL;
}

static void run_thread_case(int use_exit)
{
    thread_case tc = {.v = rc_var("v", NULL), .w = rc_var("w", NULL),
                      .use_exit = use_exit};
    tc.wr = (writer){.var = tc.w, .tag = "after cleanup"};
    pthread_t th;
    void *res = "no";
    assert_int_equal(pthread_create(&th, NULL, thread_body, &tc), 0);
    assert_int_equal(pthread_join(th, &res), 0);
    if (res != NULL)
        fail_msg("thread: %s", (const char *)res);
    assert_int_equal(tc.wr.fired, 1);
    cv_var_release(tc.v);
    cv_var_release(tc.w);
    hook_test_end();                         /* "after cleanup" died too */
}

TEST(r14a_hook_from_thread_cleanup)
{
    (void)state;
    rc_reset(); /* a failed test before may have left values */
    run_thread_case(0);
}

TEST(r14a_hook_from_thread_exit)
{
    (void)state;
    rc_reset(); /* a failed test before may have left values */
    run_thread_case(1);
}

/* ---- many drops in one write -------------------------------------------- */

/* Every value's destructor writes a var of its own, so that a write that
 * lets go of many values at once (a chainmap compaction, a dictcopy
 * clone dropping the old table, a HAMT path copy, adaptive's promotion)
 * runs many writing hooks after it. Between the steps, every var agrees
 * across cache and context. */
#define NV 12

TEST(r14a_writes_releasing_many_writing_values)
{
    (void)state;
    rc_reset(); /* a failed test before may have left values */
    cv_var *v[NV], *sink[NV];
    writer w[NV];
    for (int i = 0; i < NV; i++) {
        v[i] = rc_var("v", NULL);
        sink[i] = rc_var("sink", NULL);
        w[i] = (writer){.var = sink[i], .tag = "sunk"};
    }
    cv_context *c = fresh_entered();
    long steps = tu_scale(400, 60);
    for (long s = 0; s < steps; s++) {
        int i = (int)(s % NV);
        tu_rc *x = rc_new("x", dtor_sets, &w[i]);
        cv_context *snap = NULL;
        if (s % 3 == 0)
            ASSERT_OK(cv_copy_context(&snap)); /* shares: the next write copies */
        cv_token *t = NULL;
        ASSERT_OK(cv_var_set(v[i], x, s % 5 == 0 ? &t : NULL));
        rc_unref(x);
        if (t != NULL) {
            if (s % 10 == 0)
                ASSERT_OK(cv_var_reset(v[i], t));
            cv_token_release(t);
        }
        if (snap != NULL && s % 2 == 0)
            cv_context_release(snap);        /* maybe the last holder */
        else if (snap != NULL) {
            ASSERT_OK(cv_context_run(snap, busy_run, &(busy){.var = v[i]}));
            cv_context_release(snap);
        }
        for (int j = 0; j < NV; j++) {
            (void)agreed(v[j]);
            (void)agreed(sink[j]);
        }
        assert_int_equal(rc_violations(), 0);
    }
    leave(c);              /* the dying values write their sinks in the base */
    cv_thread_cleanup();   /* ... which goes too */
    for (int i = 0; i < NV; i++) {
        cv_var_release(v[i]);
        cv_var_release(sink[i]);
    }
    hook_test_end();
}

/* R14b: the count of a value the user holds alone never goes to zero
 * while a holder still needs it -- a set of the value already there, a
 * reset to the value the map holds, a copy released while entered. */
TEST(r14b_count_never_passes_zero_while_held)
{
    (void)state;
    rc_reset(); /* a failed test before may have left values */
    cv_var *v = rc_var("v", NULL);
    cv_context *c = fresh_entered();
    tu_rc *x = rc_new("x", NULL, NULL);
    cv_token *t1, *t2;
    ASSERT_OK(cv_var_set(v, x, &t1));        /* map holds x */
    rc_unref(x);                             /* only the map now */
    ASSERT_OK(cv_var_set(v, x, &t2));        /* the same value again */
    assert_false(x->dead);
    assert_string_equal(agreed(v), "x");
    ASSERT_OK(cv_var_reset(v, t2));          /* back to x (held by t2) */
    assert_false(x->dead);
    cv_token_release(t2);
    assert_false(x->dead);                   /* the map holds it */
    assert_string_equal(agreed(v), "x");
    cv_context *snap;
    ASSERT_OK(cv_copy_context(&snap));
    ASSERT_OK(cv_var_reset(v, t1));          /* MISSING here; snap has x */
    assert_false(x->dead);
    cv_token_release(t1);
    cv_context_release(snap);
    assert_true(x->dead);
    hook_test_leave(c, v, NULL);
}
