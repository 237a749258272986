/* SPDX-License-Identifier: MIT */
/*
 * test_rules.c -- the rules R1-R16 of SPEC.md, on every backend.
 *
 * Each test names its rule. Values are string literals compared by
 * identity, or counted tu_val records when the value hooks matter (R14).
 * R13 and R15 also have tests in test_threads.c and test_api.c.
 */
#include <pthread.h>
#include <string.h>

#include "testutil.h"

/* ---- R1: names required and copied ----------------------------------- */

TEST(r1_var_new_rejects_null)
{
    (void)state;
    cv_var *v = (cv_var *)0x1;
    ASSERT_ERR(cv_var_new(NULL, &v), CV_EINVAL);
    ASSERT_ERR(cv_var_new_default(NULL, "d", &v), CV_EINVAL);
    cv_var_opts o = {.name = NULL};
    ASSERT_ERR(cv_var_new_ex(&o, &v), CV_EINVAL);
    ASSERT_ERR(cv_var_new_ex(NULL, &v), CV_EINVAL);
    assert_ptr_equal(v, (cv_var *)0x1);   /* out untouched on failure */
    ASSERT_ERR(cv_var_new("x", NULL), CV_EINVAL);
    ASSERT_ERR(cv_var_new_default("x", "d", NULL), CV_EINVAL);
    /* a retain hook without its release would leak every value */
    cv_var_opts half = {.name = "h", .retain = tu_hook_retain};
    ASSERT_ERR(cv_var_new_ex(&half, &v), CV_EINVAL);
    assert_ptr_equal(v, (cv_var *)0x1);
}

TEST(r1_name_is_copied)
{
    (void)state;
    char buf[8] = "abc";
    cv_var *v = tu_var(buf);
    strcpy(buf, "xyz");
    assert_string_equal(cv_var_name(v), "abc");
    assert_null(cv_var_name(NULL));
    cv_var_release(v);
}

/* ---- R2: identity keys, reference counted lifetimes ------------------- */

TEST(r2_same_name_different_keys)
{
    (void)state;
    cv_var *a = tu_var("same"), *b = tu_var("same");
    ASSERT_OK(cv_var_set(a, "A", NULL));
    assert_string_equal(tu_get_str(a), "A");
    assert_string_equal(tu_get_str(b), "<LookupError>");
    cv_var_release(a);
    cv_var_release(b);
}

static int name_cb(cv_var *v, void *value, void *arg)
{
    (void)value;
    *(const char **)arg = cv_var_name(v);
    return 0;
}

TEST(r2_context_keeps_var_alive)
{
    (void)state;
    cv_var *v = tu_var("kept");
    ASSERT_OK(cv_var_set(v, "x", NULL));
    cv_var_release(v); /* the current context still holds it */
    const char *name = NULL;
    ASSERT_OK(cv_context_foreach(cv_context_current(), name_cb, &name));
    assert_non_null(name);
    assert_string_equal(name, "kept");
}

TEST(r2_token_keeps_var_alive)
{
    (void)state;
    cv_var *v = tu_var("tv");
    cv_token *t = NULL;
    ASSERT_OK(cv_var_set(v, "x", &t));
    cv_var *w = tu_var("other");
    cv_var_release(v);
    /* the map and the token hold v; the token's var is still usable */
    assert_string_equal(cv_var_name(cv_token_var(t)), "tv");
    ASSERT_OK(cv_var_reset(cv_token_var(t), t));
    assert_int_equal(cv_context_len(cv_context_current()), 0);
    cv_token_release(t);
    cv_var_release(w);
}

/* ---- R3, R4: get and get_or ------------------------------------------ */

TEST(r3_get_value_default_lookup)
{
    (void)state;
    cv_var *plain = tu_var("plain");
    cv_var *dflt = tu_var_default("dflt", "D");
    void *out = (void *)0x1;
    ASSERT_ERR(cv_var_get(plain, &out), CV_ELOOKUP);
    assert_ptr_equal(out, (void *)0x1); /* untouched */
    ASSERT_OK(cv_var_get(dflt, &out));
    assert_string_equal(out, "D");
    ASSERT_OK(cv_var_set(plain, "P", NULL));
    ASSERT_OK(cv_var_set(dflt, "Q", NULL));
    assert_string_equal(tu_get_str(plain), "P");
    assert_string_equal(tu_get_str(dflt), "Q");
    /* a NULL value is a value, not an absence */
    ASSERT_OK(cv_var_set(plain, NULL, NULL));
    out = (void *)0x1;
    ASSERT_OK(cv_var_get(plain, &out));
    assert_null(out);
    cv_var_release(plain);
    cv_var_release(dflt);
}

TEST(r4_get_or_explicit_beats_var_default)
{
    (void)state;
    cv_var *v = tu_var_default("v", "own");
    assert_string_equal(cv_var_get_or(v, "explicit"), "explicit");
    ASSERT_OK(cv_var_set(v, "set", NULL));
    assert_string_equal(cv_var_get_or(v, "explicit"), "set");
    assert_string_equal(cv_var_get_or(NULL, "explicit"), "explicit");
    cv_var_release(v);
}

/* ---- R5-R7: set, tokens, reset ---------------------------------------- */

TEST(r5_set_returns_token)
{
    (void)state;
    cv_var *v = tu_var("v");
    cv_token *t1 = NULL, *t2 = NULL;
    void *old = (void *)0x1;
    ASSERT_OK(cv_var_set(v, "one", &t1));
    assert_int_equal(cv_token_old_value(t1, &old), 0);     /* MISSING */
    assert_ptr_equal(old, (void *)0x1);
    ASSERT_OK(cv_var_set(v, "two", &t2));
    assert_int_equal(cv_token_old_value(t2, &old), 1);
    assert_string_equal(old, "one");
    assert_ptr_equal(cv_token_var(t2), v);                 /* R7 */
    assert_int_equal(cv_token_used(t2), 0);
    /* tok NULL: no token made, the value is stored all the same */
    ASSERT_OK(cv_var_set(v, "three", NULL));
    assert_string_equal(tu_get_str(v), "three");
    cv_token_release(t1);
    cv_token_release(t2);
    cv_var_release(v);
}

TEST(r6_reset_restores_recorded_value)
{
    (void)state;
    cv_var *v = tu_var("v");
    cv_token *t1, *t2;
    ASSERT_OK(cv_var_set(v, "a", &t1));
    ASSERT_OK(cv_var_set(v, "b", &t2));
    ASSERT_OK(cv_var_set(v, "c", NULL));
    ASSERT_OK(cv_var_set(v, "d", NULL));
    ASSERT_OK(cv_var_reset(v, t2));      /* whatever came between */
    assert_string_equal(tu_get_str(v), "a");
    assert_int_equal(cv_token_used(t2), 1);
    ASSERT_OK(cv_var_set(v, "e", NULL));
    ASSERT_OK(cv_var_reset(v, t1));      /* MISSING: removed */
    assert_string_equal(tu_get_str(v), "<LookupError>");
    assert_int_equal(cv_context_len(cv_context_current()), 0);
    cv_token_release(t1);
    cv_token_release(t2);
    cv_var_release(v);
}

/* The checks come in the order of R6: used, then var, then context. */
TEST(r6_reset_check_order)
{
    (void)state;
    cv_var *v = tu_var("v"), *w = tu_var("w");
    cv_token *used, *foreign;
    ASSERT_OK(cv_var_set(v, "x", &used));
    ASSERT_OK(cv_var_reset(v, used));
    /* used + other var: USED wins */
    ASSERT_ERR(cv_var_reset(w, used), CV_ETOKEN_USED);
    ASSERT_ERR(cv_var_reset(v, used), CV_ETOKEN_USED);

    /* other var + other context: VAR wins */
    cv_context *c;
    ASSERT_OK(cv_context_new(&c));
    ASSERT_OK(tu_set_in(c, v, "inner", &foreign));
    ASSERT_ERR(cv_var_reset(w, foreign), CV_ETOKEN_VAR);
    ASSERT_ERR(cv_var_reset(v, foreign), CV_ETOKEN_CTX);
    assert_int_equal(cv_token_used(foreign), 0); /* failures change nothing */
    ASSERT_ERR(cv_var_reset(NULL, foreign), CV_EINVAL);
    ASSERT_ERR(cv_var_reset(v, NULL), CV_EINVAL);
    cv_token_release(used);
    cv_token_release(foreign);
    cv_context_release(c);
    cv_var_release(v);
    cv_var_release(w);
}

TEST(r7_token_var_chains)
{
    (void)state;
    cv_var *v = tu_var("v");
    cv_token *t, *t2;
    ASSERT_OK(cv_var_set(v, "val", &t));
    assert_ptr_equal(cv_token_var(t), v);
    ASSERT_OK(cv_var_set(cv_token_var(t), "chained", &t2));
    assert_ptr_equal(cv_token_var(t2), v);
    assert_string_equal(tu_get_str(v), "chained");
    assert_null(cv_token_var(NULL));
    cv_token_release(t);
    cv_token_release(t2);
    cv_var_release(v);
}

/* ---- R8-R10: contexts as mappings ------------------------------------- */

TEST(r8_new_copy_and_copy_of_any)
{
    const cv_backend *b = TEST_BACKEND;
    cv_var *v = tu_var("v"), *w = tu_var("w");
    cv_context *empty, *cur, *other, *copy2;
    ASSERT_OK(cv_context_new(&empty));
    assert_int_equal(cv_context_len(empty), 0);
    assert_ptr_equal(cv_context_backend(empty), b);
    ASSERT_OK(cv_var_set(v, "1", NULL));
    ASSERT_OK(cv_var_set(w, "2", NULL));
    ASSERT_OK(cv_copy_context(&cur));
    assert_int_equal(cv_context_len(cur), 2);
    void *out;
    assert_int_equal(cv_context_get(cur, v, &out), 1);
    assert_string_equal(out, "1");
    ASSERT_OK(cv_context_copy(cur, &other));
    ASSERT_OK(cv_context_copy(empty, &copy2));
    assert_int_equal(cv_context_len(other), 2);
    assert_int_equal(cv_context_len(copy2), 0);
    assert_int_equal(cv_context_get(other, w, &out), 1);
    assert_string_equal(out, "2");
    cv_context_release(copy2);
    ASSERT_OK(cv_context_new_on(b, &copy2));
    assert_int_equal(cv_context_len(copy2), 0);
    assert_ptr_equal(cv_context_backend(copy2), b);
    ASSERT_ERR(cv_context_new_on(NULL, &copy2), CV_EINVAL);
    cv_context_release(copy2);
    cv_context_release(empty);
    cv_context_release(cur);
    cv_context_release(other);
    cv_var_release(v);
    cv_var_release(w);
}

/* R9, both directions, over several generations of copies. The canary
 * backend (naive new_child) must fail here: `make canary` checks it does. */
TEST(r9_copy_isolation_both_ways)
{
    (void)state;
    cv_var *v = tu_var("v"), *w = tu_var("w");
    ASSERT_OK(cv_var_set(v, "a0", NULL));
    cv_context *a = cv_context_current();
    cv_context *b;
    ASSERT_OK(cv_context_copy(a, &b));
    /* writes in a after the copy do not show in b */
    ASSERT_OK(cv_var_set(v, "a1", NULL));
    ASSERT_OK(cv_var_set(w, "a-only", NULL));
    void *out;
    assert_int_equal(cv_context_get(b, v, &out), 1);
    assert_string_equal(out, "a0");
    assert_int_equal(cv_context_get(b, w, &out), 0);
    assert_int_equal(cv_context_len(b), 1);
    /* writes in b do not show in a */
    ASSERT_OK(cv_context_enter(b));
    ASSERT_OK(cv_var_set(v, "b1", NULL));
    cv_var *x = tu_var("x");
    ASSERT_OK(cv_var_set(x, "b-only", NULL));
    ASSERT_OK(cv_context_exit(b));
    assert_int_equal(cv_context_get(a, v, &out), 1);
    assert_string_equal(out, "a1");
    assert_int_equal(cv_context_get(a, x, &out), 0);
    assert_int_equal(cv_context_get(b, v, &out), 1);
    assert_string_equal(out, "b1");
    cv_context_release(b);
    cv_var_release(v);
    cv_var_release(w);
    cv_var_release(x);
}

/* Many generations: each copy is frozen the moment it is made. */
TEST(r9_generations_are_snapshots)
{
    (void)state;
    enum { G = 40 };
    static const char *vals[G];
    static char buf[G][8];
    cv_var *v = tu_var("v"), *w = tu_var("w");
    cv_context *snap[G];
    for (int i = 0; i < G; i++) {
        snprintf(buf[i], sizeof buf[i], "g%d", i);
        vals[i] = buf[i];
        ASSERT_OK(cv_var_set(v, (void *)vals[i], NULL));
        if (i % 3 == 0)
            ASSERT_OK(cv_var_set(w, (void *)vals[i], NULL));
        ASSERT_OK(cv_copy_context(&snap[i]));
    }
    ASSERT_OK(cv_var_set(v, "after", NULL));
    for (int i = 0; i < G; i++) {
        void *out;
        assert_int_equal(cv_context_get(snap[i], v, &out), 1);
        assert_ptr_equal(out, vals[i]);
        assert_int_equal(cv_context_get(snap[i], w, &out), 1);
        assert_ptr_equal(out, vals[i - i % 3]);
    }
    for (int i = 0; i < G; i++)
        cv_context_release(snap[i]);
    cv_var_release(v);
    cv_var_release(w);
}

typedef struct walk {
    cv_var *vars[8];
    int hits[8];
    int stop_after;
    int calls;
} walk;

static int walk_cb(cv_var *v, void *value, void *arg)
{
    walk *wk = arg;
    (void)value;
    wk->calls++;
    for (int i = 0; i < 8; i++)
        if (wk->vars[i] == v)
            wk->hits[i]++;
    return wk->stop_after && wk->calls == wk->stop_after ? 42 : 0;
}

TEST(r10_get_len_foreach_each_pair_once)
{
    (void)state;
    walk wk = {0};
    for (int i = 0; i < 8; i++) {
        wk.vars[i] = tu_var("v");
        ASSERT_OK(cv_var_set(wk.vars[i], "x", NULL));
        ASSERT_OK(cv_var_set(wk.vars[i], "y", NULL)); /* overwrite: once */
    }
    cv_context *c = cv_context_current();
    assert_int_equal(cv_context_len(c), 8);
    assert_int_equal(cv_context_foreach(c, walk_cb, &wk), 0);
    assert_int_equal(wk.calls, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(wk.hits[i], 1);
    walk early = {.stop_after = 3};
    assert_int_equal(cv_context_foreach(c, walk_cb, &early), 42);
    assert_int_equal(early.calls, 3);
    ASSERT_ERR(cv_context_foreach(NULL, walk_cb, &wk), CV_EINVAL);
    ASSERT_ERR(cv_context_foreach(c, NULL, &wk), CV_EINVAL);
    for (int i = 0; i < 8; i++)
        cv_var_release(wk.vars[i]);
}

/* foreach walks a snapshot: a callback that writes the context it walks
 * changes the context, never the walk. */
static int writing_cb(cv_var *v, void *value, void *arg)
{
    int *calls = arg;
    (*calls)++;
    (void)value;
    return cv_var_set(v, "rewritten", NULL);
}

TEST(r10_foreach_over_snapshot_while_writing)
{
    (void)state;
    cv_var *v[20];
    for (int i = 0; i < 20; i++) {
        v[i] = tu_var("v");
        ASSERT_OK(cv_var_set(v[i], "orig", NULL));
    }
    int calls = 0;
    ASSERT_OK(cv_context_foreach(cv_context_current(), writing_cb, &calls));
    assert_int_equal(calls, 20);
    for (int i = 0; i < 20; i++) {
        assert_string_equal(tu_get_str(v[i]), "rewritten");
        cv_var_release(v[i]);
    }
}

/* ---- R11, R12: run, enter, exit ----------------------------------------- */

typedef struct run_arg {
    cv_var *v;
    cv_context *c;
    int called;
    int nested;
} run_arg;

static int run_sets(void *p)
{
    run_arg *a = p;
    a->called++;
    if (cv_context_current() != a->c)
        return -100;
    int r = cv_var_set(a->v, "inside", NULL);
    if (r < 0)
        return r;
    a->nested = cv_context_run(a->c, run_sets, a); /* R11: EENTERED */
    return 7;
}

TEST(r11_run_result_visibility_and_reentry)
{
    (void)state;
    run_arg a = {.v = tu_var("v")};
    ASSERT_OK(cv_var_set(a.v, "outside", NULL));
    cv_context *outer = cv_context_current();
    ASSERT_OK(cv_copy_context(&a.c));
    assert_int_equal(cv_context_run(a.c, run_sets, &a), 7);
    assert_int_equal(a.called, 1);          /* the nested run did not call */
    ASSERT_ERR(a.nested, CV_EENTERED);
    assert_ptr_equal(cv_context_current(), outer);
    assert_string_equal(tu_get_str(a.v), "outside");
    void *out;
    assert_int_equal(cv_context_get(a.c, a.v, &out), 1);
    assert_string_equal(out, "inside");
    ASSERT_ERR(cv_context_run(NULL, run_sets, &a), CV_EINVAL);
    ASSERT_ERR(cv_context_run(a.c, NULL, &a), CV_EINVAL);
    /* the thread's own current context is entered: it cannot be run */
    ASSERT_ERR(cv_context_run(outer, run_sets, &a), CV_EENTERED);
    assert_int_equal(a.called, 1);
    cv_context_release(a.c);
    cv_var_release(a.v);
}

static int leaves_entered(void *p)
{
    return cv_context_enter((cv_context *)p);
}

/* fn returning with a context still entered: run restores the previous
 * context anyway and the leftover context is exited (and can be re-run). */
TEST(r11_run_unwinds_what_fn_left_entered)
{
    (void)state;
    cv_context *outer = cv_context_current();
    cv_context *c, *d;
    ASSERT_OK(cv_context_new(&c));
    ASSERT_OK(cv_context_new(&d));
    ASSERT_OK(cv_context_run(c, leaves_entered, d));
    assert_ptr_equal(cv_context_current(), outer);
    ASSERT_OK(cv_context_enter(d)); /* d was exited */
    ASSERT_OK(cv_context_exit(d));
    cv_context_release(c);
    cv_context_release(d);
}

TEST(r12_enter_exit_nest_like_a_stack)
{
    (void)state;
    cv_var *v = tu_var("v");
    cv_context *base = cv_context_current();
    cv_context *c1, *c2;
    ASSERT_OK(cv_context_new(&c1));
    ASSERT_OK(cv_context_new(&c2));
    ASSERT_OK(cv_context_enter(c1));
    ASSERT_OK(cv_var_set(v, "c1", NULL));
    ASSERT_OK(cv_context_enter(c2));
    assert_ptr_equal(cv_context_current(), c2);
    ASSERT_OK(cv_var_set(v, "c2", NULL));
    ASSERT_ERR(cv_context_exit(c1), CV_ENOTENTERED); /* not the top */
    ASSERT_ERR(cv_context_enter(c1), CV_EENTERED);   /* double enter */
    ASSERT_OK(cv_context_exit(c2));
    assert_string_equal(tu_get_str(v), "c1");
    ASSERT_OK(cv_context_exit(c1));
    assert_ptr_equal(cv_context_current(), base);
    assert_string_equal(tu_get_str(v), "<LookupError>");
    ASSERT_ERR(cv_context_exit(c1), CV_ENOTENTERED);  /* twice */
    ASSERT_ERR(cv_context_exit(base), CV_ENOTENTERED); /* the base */
    ASSERT_ERR(cv_context_exit(NULL), CV_EINVAL);
    ASSERT_ERR(cv_context_enter(NULL), CV_EINVAL);
    cv_context_release(c1);
    cv_context_release(c2);
    cv_var_release(v);
}

/* Exit restores the cache generation of the level below from a ring of 64
 * (core/context.c); deeper levels get a fresh one. Nest well past that, by
 * enter and by run, and check at every level on the way down and back up
 * that get sees that level's value, that exiting a level that is not the
 * top is refused, and that the thread is back at its base at the end. */
#define DEEP 100

typedef struct deep_run {
    cv_var *v;
    cv_context **cs;
    int level;
    int checked;
} deep_run;

static int run_deeper(void *p)
{
    deep_run *d = p;
    int here = d->level;
    if (cv_var_set(d->v, d->cs[here], NULL) != 0)
        return -1;
    if (here + 1 < DEEP) {
        d->level++;
        if (cv_context_run(d->cs[here + 1], run_deeper, d) != 0)
            return -1;
    }
    /* back from the level above: this level's value, from the cache */
    if (cv_var_get_or(d->v, NULL) != d->cs[here])
        return -1;
    d->checked++;
    return 0;
}

TEST(r12_deep_nesting_past_the_generation_ring)
{
    (void)state;
    cv_var *v = tu_var("v");
    cv_context *base = cv_context_current();
    cv_context *cs[DEEP];
    for (int i = 0; i < DEEP; i++)
        ASSERT_OK(cv_context_new(&cs[i]));
    for (int i = 0; i < DEEP; i++) {
        ASSERT_OK(cv_context_enter(cs[i]));
        ASSERT_OK(cv_var_set(v, cs[i], NULL));
        if (i > 0)
            ASSERT_ERR(cv_context_exit(cs[i - 1]), CV_ENOTENTERED);
    }
    for (int i = DEEP - 1; i >= 0; i--) {
        assert_ptr_equal(cv_context_current(), cs[i]);
        assert_ptr_equal(cv_var_get_or(v, NULL), cs[i]);
        ASSERT_OK(cv_context_exit(cs[i]));
    }
    assert_ptr_equal(cv_context_current(), base);
    assert_null(cv_var_get_or(v, NULL));

    /* the same depth by nested runs, each refusing a plain exit */
    cv_context *rs[DEEP];
    for (int i = 0; i < DEEP; i++)
        ASSERT_OK(cv_context_new(&rs[i]));
    deep_run d = {v, rs, 0, 0};
    assert_int_equal(cv_context_run(rs[0], run_deeper, &d), 0);
    assert_int_equal(d.checked, DEEP);
    assert_ptr_equal(cv_context_current(), base);
    for (int i = 0; i < DEEP; i++) {
        ASSERT_OK(cv_context_enter(rs[i])); /* each was exited by its run */
        ASSERT_OK(cv_context_exit(rs[i]));
        cv_context_release(rs[i]);
        cv_context_release(cs[i]);
    }
    /* left entered deep: cleanup unwinds it all (the suite's leak check
     * and valgrind see anything left) */
    cv_context *left[DEEP];
    for (int i = 0; i < DEEP; i++) {
        ASSERT_OK(cv_context_new(&left[i]));
        ASSERT_OK(cv_context_enter(left[i]));
        cv_context_release(left[i]); /* entered: kept alive until exit */
    }
    cv_thread_cleanup();
    assert_null(cv_var_get_or(v, NULL));
    cv_var_release(v);
}

/* ---- R13: get never allocates ------------------------------------------ */

TEST(r13_get_never_allocates)
{
    (void)state;
    cv_var *v = tu_var("v"), *d = tu_var_default("d", "D");
    cv_thread_cleanup();               /* no current context at all */
    long calls = tu_alloc_calls();
    void *out;
    ASSERT_ERR(cv_var_get(v, &out), CV_ELOOKUP);
    ASSERT_OK(cv_var_get(d, &out));
    assert_ptr_equal(cv_var_get_or(v, "x"), "x");
    assert_int_equal(tu_alloc_calls(), calls);
    ASSERT_OK(cv_var_set(v, "set", NULL));
    calls = tu_alloc_calls();
    for (int i = 0; i < 100; i++)
        ASSERT_OK(cv_var_get(v, &out));
    assert_int_equal(tu_alloc_calls(), calls);
    cv_var_release(v);
    cv_var_release(d);
}

/* ---- R14: value hooks --------------------------------------------------- */

TEST(r14_hooks_balance_over_every_holder)
{
    (void)state;
    tu_val dflt = {0}, x = {0}, y = {0};
    cv_var *v = tu_var_hooked("v", &dflt);
    assert_int_equal(dflt.refs, 1);          /* the default is a holder */
    cv_token *t1, *t2;
    ASSERT_OK(cv_var_set(v, &x, &t1));
    ASSERT_OK(cv_var_set(v, &y, &t2));       /* t2 holds x */
    assert_true(x.refs >= 1);
    cv_context *snap;
    ASSERT_OK(cv_copy_context(&snap));
    ASSERT_OK(cv_var_reset(v, t2));          /* back to x */
    ASSERT_OK(cv_var_reset(v, t1));          /* MISSING */
    assert_true(y.refs >= 1);                /* snap holds y */
    cv_context_release(snap);
    assert_int_equal(y.refs, 0);
    cv_token_release(t2);
    assert_int_equal(x.refs, 0);
    cv_token_release(t1);
    cv_var_release(v);
    assert_int_equal(dflt.refs, 0);
    /* the suite's teardown also checks the global retain balance */
}

/* ---- R16: lifetimes ----------------------------------------------------- */

static int release_self(void *p)
{
    cv_context *c = p;
    cv_context_release(c); /* the user's last reference, while entered */
    cv_var *v = tu_var("v");
    int r = cv_var_set(v, "still alive", NULL);
    if (r == 0 && strcmp(tu_get_str(v), "still alive") != 0)
        r = -100;
    cv_var_release(v);
    return r;
}

TEST(r16_entered_context_outlives_release)
{
    (void)state;
    cv_context *c;
    ASSERT_OK(cv_context_new(&c));
    ASSERT_OK(cv_context_run(c, release_self, c));
    /* the leak check in teardown proves c was freed at exit */
}

TEST(r16_token_keeps_context_alive)
{
    (void)state;
    cv_var *v = tu_var("v");
    cv_context *c;
    cv_token *t;
    ASSERT_OK(cv_context_new(&c));
    ASSERT_OK(cv_context_enter(c));
    ASSERT_OK(cv_var_set(v, "x", &t));
    ASSERT_OK(cv_context_exit(c));
    cv_context_release(c);
    /* the token's context is gone for the user but alive for the token */
    ASSERT_ERR(cv_var_reset(v, t), CV_ETOKEN_CTX);
    cv_token_release(t);
    cv_var_release(v);
}

/* ---- R3 with the per-thread lookup cache -------------------------------- */

static int get_in(void *arg)
{
    cv_var **v = arg;
    return cv_var_get_or(v[0], NULL) == NULL ? 1 : 2;
}

/* Every way the current context's contents can change must show in the
 * next get: set, reset to a value, reset to MISSING, enter, exit, run,
 * cleanup; with more vars than the cache has slots (so entries collide),
 * and with a var freed and another made, possibly at the same address. */
TEST(r3_get_sees_every_change_through_the_cache)
{
    (void)state;
    enum { N = 200 };
    cv_var *v[N];
    for (int i = 0; i < N; i++)
        v[i] = tu_var("v");
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++)
            assert_null(cv_var_get_or(v[i], NULL));
        cv_token *t[N];
        for (int i = 0; i < N; i++)
            ASSERT_OK(cv_var_set(v[i], (void *)"a", &t[i]));
        for (int i = 0; i < N; i++)
            assert_string_equal(cv_var_get_or(v[i], NULL), "a");
        cv_context *c;
        ASSERT_OK(cv_copy_context(&c));
        for (int i = 0; i < N; i += 2)
            ASSERT_OK(cv_var_set(v[i], (void *)"b", NULL));
        for (int i = 0; i < N; i++)
            assert_string_equal(cv_var_get_or(v[i], NULL), i % 2 ? "a" : "b");
        ASSERT_OK(cv_context_enter(c));                 /* the snapshot */
        for (int i = 0; i < N; i++)
            assert_string_equal(cv_var_get_or(v[i], NULL), "a");
        assert_int_equal(cv_context_run(c, get_in, v), CV_EENTERED);
        ASSERT_OK(cv_context_exit(c));
        for (int i = 0; i < N; i++)
            assert_string_equal(cv_var_get_or(v[i], NULL), i % 2 ? "a" : "b");
        assert_int_equal(cv_context_run(c, get_in, v), 2);
        for (int i = N - 1; i >= 0; i--) {
            ASSERT_OK(cv_var_reset(v[i], t[i]));       /* back to MISSING */
            assert_null(cv_var_get_or(v[i], NULL));
            cv_token_release(t[i]);
        }
        cv_context_release(c);
        /* free a var and make new ones: a new var may reuse the address */
        for (int i = 0; i < N; i += 3) {
            cv_var_release(v[i]);
            v[i] = tu_var("again");
            assert_null(cv_var_get_or(v[i], NULL));
            ASSERT_OK(cv_var_set(v[i], (void *)"new", NULL));
            assert_string_equal(cv_var_get_or(v[i], NULL), "new");
        }
        cv_thread_cleanup();
        for (int i = 0; i < N; i++)
            assert_null(cv_var_get_or(v[i], NULL));
    }
    for (int i = 0; i < N; i++)
        cv_var_release(v[i]);
}

/* ctxvar.h inlines the cache hit of cv_var_get and cv_var_get_or; the
 * parenthesised names call the functions. Both must answer the same after
 * every kind of change (set, reset to a value and to absent, enter, exit,
 * default, absent without default, vars colliding in the cache), and bad
 * arguments must take the call and get CV_EINVAL -- also on a thread that
 * has never used the library, where no entry was ever written. */
static void same_answer(cv_var *v, void *dflt)
{
    void *a = (void *)&a, *b = (void *)&b;
    int ra = cv_var_get(v, &a);
    int rb = (cv_var_get)(v, &b);
    assert_int_equal(ra, rb);
    if (ra == 0)
        assert_ptr_equal(a, b);
    assert_ptr_equal(cv_var_get_or(v, dflt), (cv_var_get_or)(v, dflt));
}

static void *fresh_thread_nulls(void *p)
{
    (void)p;
    void *out = NULL;
    /* before any other call: the cache is all never-written entries */
    if (cv_var_get(NULL, &out) != CV_EINVAL || out != NULL)
        return (void *)"get(NULL) on a fresh thread";
    if (cv_var_get_or(NULL, &out) != &out)
        return (void *)"get_or(NULL) on a fresh thread";
    return NULL;
}

TEST(r3_inline_get_matches_the_call)
{
    (void)state;
    enum { NV = 200 }; /* > 64 entries: vars share cache slots */
    static char vals[3];
    cv_var *vs[NV];
    for (int i = 0; i < NV; i++)
        vs[i] = i % 3 ? tu_var("v") : tu_var_default("d", &vals[2]);
    cv_token *toks[NV];
    cv_context *c;
    ASSERT_OK(cv_context_new(&c));
    for (int i = 0; i < NV; i++) {
        same_answer(vs[i], &vals[1]);          /* absent: default or not */
        ASSERT_OK(cv_var_set(vs[i], &vals[i & 1], &toks[i]));
        same_answer(vs[i], NULL);
    }
    ASSERT_OK(cv_context_enter(c));
    for (int i = 0; i < NV; i++) {
        same_answer(vs[i], &vals[1]);
        if (i % 2)
            ASSERT_OK(cv_var_set(vs[i], &vals[2], NULL));
        same_answer(vs[i], NULL);
    }
    ASSERT_OK(cv_context_exit(c));
    for (int i = NV - 1; i >= 0; i--) {
        same_answer(vs[i], NULL);
        ASSERT_OK(cv_var_reset(vs[i], toks[i]));   /* back to absent */
        same_answer(vs[i], &vals[0]);
        cv_token_release(toks[i]);
    }
    void *out = NULL;
    ASSERT_ERR(cv_var_get(NULL, &out), CV_EINVAL);
    ASSERT_ERR(cv_var_get(vs[0], NULL), CV_EINVAL);
    assert_ptr_equal(cv_var_get_or(NULL, &vals[0]), &vals[0]);
    pthread_t th;
    void *why = NULL;
    assert_int_equal(pthread_create(&th, NULL, fresh_thread_nulls, NULL), 0);
    assert_int_equal(pthread_join(th, &why), 0);
    if (why != NULL)
        fail_msg("%s", (const char *)why);
    cv_context_release(c);
    for (int i = 0; i < NV; i++)
        cv_var_release(vs[i]);
}

/* Exit gives the context below back its cache generation (core/context.c):
 * what it cached before it was covered is believed again, and nothing the
 * covering contexts did may show through -- sets, resets, new vars, vars
 * freed and remade at the same address, nested runs. */
static int set_in_run(void *p)
{
    cv_var **v = p;
    ASSERT_OK(cv_var_set(v[0], (void *)"run", NULL));
    assert_string_equal(cv_var_get_or(v[0], NULL), "run");
    return 7;
}

TEST(r3_cache_after_exit_is_exact)
{
    (void)state;
    enum { N = 130 };                        /* two laps of the 64 entries */
    cv_var *v[N];
    for (int i = 0; i < N; i++)
        v[i] = tu_var("v");
    for (int i = 0; i < N; i += 2)
        ASSERT_OK(cv_var_set(v[i], (void *)"outer", NULL));
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++)          /* fill the cache, outer */
            assert_ptr_equal(cv_var_get_or(v[i], NULL),
                             i % 2 ? NULL : (void *)"outer");
        cv_context *c;
        ASSERT_OK(cv_copy_context(&c));
        ASSERT_OK(cv_context_enter(c));
        cv_token *t[N];
        for (int i = 0; i < N; i++)          /* every entry rewritten */
            ASSERT_OK(cv_var_set(v[i], (void *)"inner", &t[i]));
        for (int i = 0; i < N; i += 3) {     /* some back to the outer */
            ASSERT_OK(cv_var_reset(v[i], t[i]));
            assert_ptr_equal(cv_var_get_or(v[i], NULL),
                             i % 2 ? NULL : (void *)"outer");
        }
        assert_int_equal(cv_context_run(c, set_in_run, v), CV_EENTERED);
        cv_context *d;                       /* a run nested inside */
        ASSERT_OK(cv_copy_context(&d));
        assert_int_equal(cv_context_run(d, set_in_run, v), 7);
        assert_string_equal(cv_var_get_or(v[0], NULL), "outer"); /* reset */
        /* a var unknown to the outer, freed; one made at its address */
        cv_var *gone = tu_var("gone");
        ASSERT_OK(cv_var_set(gone, (void *)"inner", NULL));
        ASSERT_OK(cv_context_exit(c));
        for (int i = 0; i < N; i++)
            assert_ptr_equal(cv_var_get_or(v[i], NULL),
                             i % 2 ? NULL : (void *)"outer");
        assert_null(cv_var_get_or(gone, NULL));
        ASSERT_OK(cv_context_enter(c));      /* c kept what it had */
        for (int i = 0; i < N; i++)
            assert_ptr_equal(cv_var_get_or(v[i], NULL),
                             i % 3 == 0 ? (i % 2 ? NULL : (void *)"outer")
                                        : (void *)"inner");
        assert_string_equal(cv_var_get_or(gone, NULL), "inner");
        ASSERT_OK(cv_context_exit(c));
        for (int i = 0; i < N; i++)
            cv_token_release(t[i]);
        cv_context_release(c);               /* frees c's map: gone too */
        cv_context_release(d);
        cv_var_release(gone);
        cv_var *again = tu_var("again");     /* may take gone's address */
        assert_null(cv_var_get_or(again, NULL));
        cv_var_release(again);
        for (int i = 0; i < N; i++)
            assert_ptr_equal(cv_var_get_or(v[i], NULL),
                             i % 2 ? NULL : (void *)"outer");
    }
    cv_thread_cleanup();
    for (int i = 0; i < N; i++)
        cv_var_release(v[i]);
}

/* ---- R11/R12 regressions found by the property tests -------------------- */

typedef struct exit_arg {
    cv_context *c;
    int exit_result;
    int entered_other;
    cv_context *other;
} exit_arg;

static int exits_own_context(void *p)
{
    exit_arg *a = p;
    a->exit_result = cv_context_exit(a->c);
    return 5;
}

/* Found by tests/prop: cv_context_exit(c) inside cv_context_run(c) used to
 * succeed, and run then popped past the stack (NULL dereference). A
 * context entered by run is exited by that run only. */
TEST(r11_exit_inside_run_is_refused)
{
    (void)state;
    cv_var *v = tu_var("v");
    ASSERT_OK(cv_var_set(v, "outer", NULL));
    cv_context *outer = cv_context_current();
    exit_arg a = {0};
    ASSERT_OK(cv_context_new(&a.c));
    assert_int_equal(cv_context_run(a.c, exits_own_context, &a), 5);
    ASSERT_ERR(a.exit_result, CV_ENOTENTERED);
    assert_ptr_equal(cv_context_current(), outer);
    assert_string_equal(tu_get_str(v), "outer");
    /* run's own exit happened: c can be entered and exited again */
    ASSERT_OK(cv_context_enter(a.c));
    ASSERT_OK(cv_context_exit(a.c));
    cv_context_release(a.c);
    cv_var_release(v);
}

static int cleans_up_inside(void *p)
{
    exit_arg *a = p;
    cv_context_release(a->c);       /* the user's last reference */
    cv_thread_cleanup();            /* drops the whole stack, c included */
    a->entered_other = cv_context_enter(a->other) == 0;
    return 7;
}

/* cv_thread_cleanup inside run, then two contexts entered: one made
 * before, one made after (in c's freed block, as a free list hands it
 * back). run must unwind both: it goes by the thread's cleanup count, not
 * by depth (c's level is now the first context's) nor by c's address. */
typedef struct reuse_arg {
    cv_context *c, *before, *after;
    int entered;
} reuse_arg;

static int cleans_up_and_reuses(void *p)
{
    reuse_arg *a = p;
    cv_context_release(a->c);
    cv_thread_cleanup();            /* c's block is free now */
    a->entered = cv_context_enter(a->before) == 0;
    if (cv_context_new(&a->after) != 0)
        return -1;
    a->entered += cv_context_enter(a->after) == 0;
    return 9;
}

TEST(r11_cleanup_inside_run_then_block_reused)
{
    (void)state;
    reuse_arg a = {0};
    cv_context *outer; /* so that c's level is not the bottom one */
    ASSERT_OK(cv_context_new(&outer));
    ASSERT_OK(cv_context_enter(outer));
    ASSERT_OK(cv_context_new(&a.c));
    ASSERT_OK(cv_context_new(&a.before));
    assert_int_equal(cv_context_run(a.c, cleans_up_and_reuses, &a), 9);
    assert_int_equal(a.entered, 2);
    cv_context *now = cv_context_current();
    assert_ptr_not_equal(now, a.before);
    assert_ptr_not_equal(now, a.after);
    ASSERT_OK(cv_context_enter(a.before)); /* neither was left entered */
    ASSERT_OK(cv_context_enter(a.after));
    ASSERT_OK(cv_context_exit(a.after));
    ASSERT_OK(cv_context_exit(a.before));
    ASSERT_OK(cv_context_enter(outer));    /* the cleanup exited it */
    ASSERT_OK(cv_context_exit(outer));
    cv_context_release(outer);
    cv_context_release(a.before);
    cv_context_release(a.after);
}

/* cv_thread_cleanup inside run: run must not pop past what is left. */
TEST(r11_cleanup_inside_run)
{
    (void)state;
    exit_arg a = {0};
    assert_non_null(cv_context_current());
    ASSERT_OK(cv_context_new(&a.c));
    ASSERT_OK(cv_context_new(&a.other));
    assert_int_equal(cv_context_run(a.c, cleans_up_inside, &a), 7);
    assert_int_equal(a.entered_other, 1);
    /* what fn left entered was unwound; the thread starts afresh */
    ASSERT_OK(cv_context_enter(a.other));
    ASSERT_OK(cv_context_exit(a.other));
    cv_context_release(a.other);
}
