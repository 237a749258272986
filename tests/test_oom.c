/* SPDX-License-Identifier: MIT */
/*
 * test_oom.c -- allocation failure injection for every public function that
 * allocates, on every backend.
 *
 * For k = 1, 2, ... : build a fresh fixture, make the k-th allocation from
 * now fail (once, then in a second pass forever), make the call. While an
 * allocation failed the call must return CV_ENOMEM, leave every observable
 * value as it was, and hold no more memory or value retains than before.
 * The loop ends at the first k the call does not reach: then the call must
 * have succeeded and done its job. (SQLite's and libuv's OOM loops.)
 */
#include <string.h>

#include "testutil.h"

#define MAXV 130

typedef struct fx {
    int n;                      /* vars set in the current context */
    cv_var *v[MAXV];            /* v[0..n) set to vals[i]; v[n] never set */
    tu_val vals[MAXV];
    tu_val fresh;               /* the value the call stores */
    cv_context *snap;           /* a copy, so the map is shared; or NULL */
    cv_context *made;           /* what the call created */
    cv_token *tok;              /* what the call created */
    cv_token *pre;              /* a token made while building (for reset) */
    cv_var *newvar;
    int shared;
} fx;

typedef struct oom_case {
    const char *name;
    int (*call)(fx *f);
    void (*done)(fx *f);        /* after success: check the effect */
} oom_case;

static void fx_build(fx *f, int n, int shared)
{
    memset(f, 0, sizeof *f);
    f->n = n;
    f->shared = shared;
    /* the thread's base context exists (first use: oom_first_use_...) */
    assert_non_null(cv_context_current());
    for (int i = 0; i <= n; i++)
        f->v[i] = tu_var_hooked("v", NULL);
    for (int i = 0; i < n; i++)
        ASSERT_OK(cv_var_set(f->v[i], &f->vals[i], i == 0 ? &f->pre : NULL));
    if (shared)
        ASSERT_OK(cv_copy_context(&f->snap));
}

/* Every observable value is what fx_build left. */
static void fx_same(fx *f)
{
    assert_int_equal(cv_context_len(cv_context_current()), f->n);
    for (int i = 0; i < f->n; i++)
        assert_ptr_equal(cv_var_get_or(f->v[i], NULL), &f->vals[i]);
    assert_null(cv_var_get_or(f->v[f->n], NULL));
    assert_null(f->made);
    assert_null(f->tok);
    assert_null(f->newvar);
    if (f->pre != NULL)
        assert_int_equal(cv_token_used(f->pre), 0);
    if (f->snap != NULL) {
        assert_int_equal(cv_context_len(f->snap), f->n);
        for (int i = 0; i < f->n; i++) {
            void *out;
            assert_int_equal(cv_context_get(f->snap, f->v[i], &out), 1);
            assert_ptr_equal(out, &f->vals[i]);
        }
    }
}

static void fx_drop(fx *f)
{
    cv_token_release(f->tok);
    cv_token_release(f->pre);
    cv_context_release(f->made);
    cv_context_release(f->snap);
    cv_var_release(f->newvar);
    cv_thread_cleanup();
    for (int i = 0; i <= f->n; i++)
        cv_var_release(f->v[i]);
}

static void oom_loop(const oom_case *c, int n, int shared)
{
    for (int forever = 0; forever <= 1; forever++) {
        for (long k = 1;; k++) {
            fx f;
            fx_build(&f, n, shared);
            long live = tu_alloc_live(), hooks = tu_hook_balance();
            tu_alloc_fail_at(k, forever);
            int r = c->call(&f);
            if (tu_alloc_fail_off() == 0) {
                if (r != 0)
                    fail_msg("%s n=%d shared=%d: %s without a failure",
                             c->name, n, shared, cv_err_name(r));
                c->done(&f);
                fx_drop(&f);
                break;
            }
            if (r != 0) {
                if (r != CV_ENOMEM)
                    fail_msg("%s n=%d shared=%d k=%ld: %s, want CV_ENOMEM",
                             c->name, n, shared, k, cv_err_name(r));
                if (tu_alloc_live() != live || tu_hook_balance() != hooks)
                    fail_msg("%s n=%d shared=%d k=%ld forever=%d: failed call "
                             "left %ld blocks, %ld retains",
                             c->name, n, shared, k, forever,
                             tu_alloc_live() - live, tu_hook_balance() - hooks);
                fx_same(&f);
            } else {
                /* a best-effort allocation failed and the call coped */
                c->done(&f);
            }
            fx_drop(&f);
            if (k > 10000)
                fail_msg("%s: no end to the allocations", c->name);
        }
    }
}

/* ---- the calls ----------------------------------------------------------- */

static int call_set_new(fx *f) { return cv_var_set(f->v[f->n], &f->fresh, NULL); }
static int call_set_new_tok(fx *f) { return cv_var_set(f->v[f->n], &f->fresh, &f->tok); }
static int call_set_old(fx *f) { return cv_var_set(f->v[0], &f->fresh, NULL); }
static int call_set_old_tok(fx *f) { return cv_var_set(f->v[0], &f->fresh, &f->tok); }
static int call_reset(fx *f) { return cv_var_reset(f->v[0], f->pre); }
static int call_copy_current(fx *f) { return cv_copy_context(&f->made); }
static int call_context_copy(fx *f) { return cv_context_copy(cv_context_current(), &f->made); }
static int call_context_new(fx *f) { return cv_context_new(&f->made); }
static int call_var_new(fx *f) { return cv_var_new("new", &f->newvar); }
static int call_var_new_ex(fx *f)
{
    cv_var_opts o = {.name = "new", .has_default = 1, .dflt = &f->fresh,
                     .retain = tu_hook_retain, .release = tu_hook_release};
    return cv_var_new_ex(&o, &f->newvar);
}

static void done_set_new(fx *f)
{
    assert_ptr_equal(cv_var_get_or(f->v[f->n], NULL), &f->fresh);
    assert_int_equal(cv_context_len(cv_context_current()), f->n + 1);
    if (f->snap)
        assert_int_equal(cv_context_len(f->snap), f->n);
}
static void done_set_new_tok(fx *f)
{
    done_set_new(f);
    void *old;
    assert_int_equal(cv_token_old_value(f->tok, &old), 0);
}
static void done_set_old(fx *f)
{
    assert_ptr_equal(cv_var_get_or(f->v[0], NULL), &f->fresh);
    assert_int_equal(cv_context_len(cv_context_current()), f->n);
    if (f->snap)
        assert_ptr_equal(cv_context_get(f->snap, f->v[0], &(void *){0}), 1);
}
static void done_set_old_tok(fx *f)
{
    done_set_old(f);
    void *old;
    assert_int_equal(cv_token_old_value(f->tok, &old), 1);
    assert_ptr_equal(old, &f->vals[0]);
}
static void done_reset(fx *f)
{
    assert_null(cv_var_get_or(f->v[0], NULL)); /* pre recorded MISSING */
    assert_int_equal(cv_context_len(cv_context_current()), f->n - 1);
    assert_int_equal(cv_token_used(f->pre), 1);
}
static void done_made_copy(fx *f)
{
    assert_int_equal(cv_context_len(f->made), f->n);
}
static void done_made_empty(fx *f)
{
    assert_int_equal(cv_context_len(f->made), 0);
}
static void done_var(fx *f)
{
    assert_string_equal(cv_var_name(f->newvar), "new");
}

static const oom_case set_cases[] = {
    {"set new var", call_set_new, done_set_new},
    {"set new var, token", call_set_new_tok, done_set_new_tok},
    {"set existing var", call_set_old, done_set_old},
    {"set existing var, token", call_set_old_tok, done_set_old_tok},
};

static const int sizes[] = {0, 1, 2, 3, 7, 8, 16, 17, 33, 100, 128};

TEST(oom_set_every_size_shared_and_not)
{
    for (size_t c = 0; c < sizeof set_cases / sizeof set_cases[0]; c++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int shared = 0; shared <= 1; shared++) {
                if (sizes[s] == 0 && c >= 2)
                    continue; /* no existing var to overwrite */
                if (tu_quick() && sizes[s] > 17)
                    continue;
                oom_loop(&set_cases[c], sizes[s], shared);
            }
    (void)state;
}

TEST(oom_reset_shared_and_not)
{
    static const oom_case c = {"reset", call_reset, done_reset};
    for (size_t s = 1; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int shared = 0; shared <= 1; shared++)
            oom_loop(&c, sizes[s], shared);
    (void)state;
}

TEST(oom_contexts_and_vars)
{
    static const oom_case cases[] = {
        {"cv_copy_context", call_copy_current, done_made_copy},
        {"cv_context_copy", call_context_copy, done_made_copy},
        {"cv_context_new", call_context_new, done_made_empty},
        {"cv_var_new", call_var_new, done_var},
        {"cv_var_new_ex", call_var_new_ex, done_var},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        oom_loop(&cases[c], 0, 0);
        oom_loop(&cases[c], 5, 1);
    }
    (void)state;
}

/* A thread's first use allocates its base context: set, copy and current
 * must all fail cleanly there, and the thread must still work afterwards. */
TEST(oom_first_use_of_a_thread)
{
    (void)state;
    cv_var *v = tu_var("v");
    for (long k = 1;; k++) {
        cv_thread_cleanup();
        long live = tu_alloc_live();
        tu_alloc_fail_at(k, 0);
        int r = cv_var_set(v, "x", NULL);
        if (TU_OOM_DONE(r, live))
            break;
        assert_null(cv_var_get_or(v, NULL));
    }
    cv_thread_cleanup();
    tu_alloc_fail_at(1, 0);
    assert_null(cv_context_current());
    cv_context *c = NULL;
    tu_alloc_fail_at(1, 1);
    ASSERT_ERR(cv_copy_context(&c), CV_ENOMEM);
    tu_alloc_fail_at(0, 0);
    assert_null(c);
    assert_non_null(cv_context_current());
    assert_string_equal(tu_get_str(v), "<LookupError>");
    cv_var_release(v);
}

/* A failing set with a token and a failing copy, with blocks cached on the
 * thread's free list: the block goes back to the list, not the allocator,
 * so the failed call leaves both as they were. */
TEST(oom_with_warm_free_list)
{
    (void)state;
    cv_var *v = tu_var_hooked("v", NULL);
    tu_val a = {0}, b = {0};
    ASSERT_OK(cv_var_set(v, &a, NULL));
    cv_context *snap;
    ASSERT_OK(cv_copy_context(&snap));     /* shared: a set must allocate */
    cv_token *warm[4];
    for (int i = 0; i < 4; i++)            /* warm the free list */
        ASSERT_OK(cv_var_set(v, &a, &warm[i]));
    for (int i = 0; i < 4; i++)
        cv_token_release(warm[i]);
    long live = tu_alloc_live();
    tu_alloc_fail_at(1, 1);
    cv_token *t = NULL;
    int r = cv_var_set(v, &b, &t);
    tu_alloc_fail_at(0, 0);
    /* the token came from the list; the map's copy could not be made */
    ASSERT_ERR(r, CV_ENOMEM);
    assert_null(t);
    assert_int_equal(tu_alloc_live(), live);
    assert_ptr_equal(cv_var_get_or(v, NULL), &a);
    ASSERT_OK(cv_var_set(v, &b, &t));      /* and it works afterwards */
    assert_ptr_equal(cv_var_get_or(v, NULL), &b);
    cv_token_release(t);
    cv_context_release(snap);
    /* The values live in this frame: the context must let go of them
     * before it returns. Once the teardown's cleanup released them into
     * the dead frame, and the hook's decrement there corrupted a saved
     * register (a free-list pointer off by one; "free(): invalid
     * pointer" on some builds, a failed group on others). */
    cv_thread_cleanup();
    assert_int_equal(a.refs, 0);
    assert_int_equal(b.refs, 0);
    cv_var_release(v);
}

/* Enter and run never allocate, at any depth (R11: run calls fn whenever
 * c is not entered, so it has no CV_ENOMEM to give). With every allocation
 * failing, nest 100 contexts by enter (past the ring of saved cache
 * generations, core/context.c) and then 100 by run, checking each level's
 * value on the way back. The oom fuzzer found the regression this guards:
 * a stack of frames that grew from the allocator made a deep run fail. */
#define OOM_DEEP 100

typedef struct oom_run {
    cv_var *v;
    cv_context **cs;
    int level, ran;
} oom_run;

static int oom_run_deeper(void *p)
{
    oom_run *d = p;
    int here = d->level++;
    d->ran++;
    if (here + 1 < OOM_DEEP &&
        cv_context_run(d->cs[here + 1], oom_run_deeper, d) != 0)
        return -1;
    /* each context was given its value before memory ran out */
    return cv_var_get_or(d->v, NULL) == d->cs[here] ? 0 : -1;
}

TEST(oom_enter_and_run_never_allocate)
{
    (void)state;
    cv_var *v = tu_var("v");
    cv_context *cs[OOM_DEEP];
    assert_non_null(cv_context_current());
    for (int i = 0; i < OOM_DEEP; i++) {
        ASSERT_OK(cv_context_new(&cs[i]));
        ASSERT_OK(cv_context_enter(cs[i]));  /* a value each, and the */
        ASSERT_OK(cv_var_set(v, cs[i], NULL)); /* thread's key armed */
        ASSERT_OK(cv_context_exit(cs[i]));
    }
    long calls = tu_alloc_calls();
    tu_alloc_fail_at(1, 1);
    for (int i = 0; i < OOM_DEEP; i++) {
        ASSERT_OK(cv_context_enter(cs[i]));
        assert_ptr_equal(cv_var_get_or(v, NULL), cs[i]);
    }
    for (int i = OOM_DEEP - 1; i >= 0; i--) {
        assert_ptr_equal(cv_var_get_or(v, NULL), cs[i]);
        ASSERT_OK(cv_context_exit(cs[i]));
    }
    oom_run d = {v, cs, 0, 0};
    assert_int_equal(cv_context_run(cs[0], oom_run_deeper, &d), 0);
    assert_int_equal(d.ran, OOM_DEEP);
    assert_int_equal(tu_alloc_failures(), 0);
    tu_alloc_fail_at(0, 0);
    assert_int_equal(tu_alloc_calls(), calls);
    for (int i = 0; i < OOM_DEEP; i++)
        cv_context_release(cs[i]);
    cv_var_release(v);
}
