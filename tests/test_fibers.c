/* SPDX-License-Identifier: MIT */
/*
 * test_fibers.c -- execution states (R17-R22) on a real stackful runtime,
 * the ucontext fiber scheduler of tests/support/fsched.c, and bound
 * callbacks (R23-R25).
 *
 * Assertions inside a fiber would longjmp out of its stack (cmocka), so the
 * fibers record what they saw and the test asserts once the loop is done.
 */
#include <pthread.h>
#include <string.h>
#include <ucontext.h>

#include "fsched.h"
#include "scenarios.h"
#include "testutil.h"

static const char *peek(const cv_var *v)
{
    return cv_var_get_or(v, STR("<unset>"));
}

static fsched *new_fsched(void)
{
    fsched *s = NULL;
    ASSERT_OK(fsched_new(&s));
    return s;
}

/* Runs fn(arg) as the one root fiber of a fresh loop, to the end, and checks
 * what the fibers printed. */
static void run_fibers_expect(fiber_fn fn, void *arg, const char *want)
{
    fsched *s = new_fsched();
    ASSERT_OK(fsched_spawn(s, fn, arg, NULL));
    ASSERT_OK(fsched_run(s));
    assert_string_equal(fsched_output(s), want);
    fsched_free(s);
}

/* ---- S5 on fibers: three requests on one loop --------------------------- */

static void f5_nested(s5_req *rq)
{
    fsched_printf(fsched_self(), "Nested %s\n", peek(rq->request_id));
}

static int f5_handle(void *arg)
{
    s5_req *rq = arg;
    int r = cv_var_set(rq->request_id, STR(rq->id), NULL);
    if (r < 0)
        return r;
    fsched_printf(fsched_self(), "Start %s\n", peek(rq->request_id));
    fsched_yield();                  /* inside cv_context_run */
    f5_nested(rq);
    fsched_printf(fsched_self(), "End %s\n", peek(rq->request_id));
    return 0;
}

TEST(fiber_s5_concurrent_requests)
{
    (void)state;
    cv_var *request_id = tu_var("request_id");
    s5_req reqs[] = {{request_id, "0"}, {request_id, "1"}, {request_id, "2"}};
    fsched *s = new_fsched();
    for (int i = 0; i < 3; i++)
        ASSERT_OK(fsched_spawn(s, f5_handle, &reqs[i], NULL));
    ASSERT_OK(fsched_run(s));
    assert_string_equal(fsched_output(s), S5_OUTPUT);
    assert_string_equal(tu_get_str(request_id), "<LookupError>");
    assert_null(cv_exec_current());
    fsched_free(s);
    cv_var_release(request_id);
}

/* ---- S7 on fibers: each level awaits a new fiber for the level below ---- */

static int f7_task(void *arg)
{
    s7_level *lv = arg;
    int r = cv_var_set(lv->v, STR(LEVEL[lv->level]), NULL);
    if (r < 0)
        return r;
    fsched_printf(fsched_self(), "%s\n", peek(lv->v));
    if (lv->level > 0) {
        fiber *child;
        r = fsched_spawn(fsched_self(), f7_task, lv->below, &child);
        if (r < 0)
            return r;
        fsched_await(child);
    }
    fsched_printf(fsched_self(), "%s\n", peek(lv->v));
    return 0;
}

TEST(fiber_s7_recursive_fibers_keep_their_level)
{
    (void)state;
    cv_var *v = tu_var("var");
    s7_level lv[3];
    for (int i = 0; i < 3; i++)
        lv[i] = (s7_level){.v = v, .level = i, .below = i ? &lv[i - 1] : NULL};
    run_fibers_expect(f7_task, &lv[2], S7_OUTPUT);
    assert_string_equal(tu_get_str(v), "<LookupError>");
    cv_var_release(v);
}

/* ---- S9 on fibers: two sleeping fibers keep their values --------------- */

static int f9_child_fn(void *arg)
{
    s9_child *c = arg;
    int r = cv_var_set(c->v, STR(c->name), NULL);
    if (r < 0)
        return r;
    fsched_printf(fsched_self(), "%s set, sleeps %ld\n", c->name, c->ticks);
    fsched_sleep(c->ticks);
    fsched_printf(fsched_self(), "tick %ld: %s reads %s\n",
                  fsched_now(fsched_self()), c->name, peek(c->v));
    return 0;
}

typedef struct f9_parent {
    s9_child kids[2];
} f9_parent;

static int f9_parent_fn(void *arg)
{
    f9_parent *p = arg;
    fiber *kids[2];
    for (int i = 0; i < 2; i++) {
        int r = fsched_spawn(fsched_self(), f9_child_fn, &p->kids[i], &kids[i]);
        if (r < 0)
            return r;
    }
    fsched_await(kids[0]);
    fsched_await(kids[1]);
    fsched_printf(fsched_self(), "tick %ld: parent reads %s\n",
                  fsched_now(fsched_self()), peek(p->kids[0].v));
    return 0;
}

TEST(fiber_s9_sleeping_fibers_keep_values)
{
    (void)state;
    cv_var *v = tu_var("var");
    ASSERT_OK(cv_var_set(v, STR("hello"), NULL));
    f9_parent p = {.kids = {{v, "task1", 1}, {v, "task2", 2}}};
    run_fibers_expect(f9_parent_fn, &p, S9_OUTPUT);
    assert_string_equal(tu_get_str(v), "hello");
    cv_var_release(v);
}

/* ---- S14 on fibers: callbacks in a given context ----------------------- */

static int f14_step(void *arg)
{
    s14_cb *cb = arg;
    fsched_printf(fsched_self(), "%s: %s\n", cb->label, peek(cb->v));
    int r = 0;
    if (cb->set != NULL)
        r = cv_var_set(cb->v, STR(cb->set), NULL);
    fsched_yield(); /* the callback's context stays its own meanwhile */
    if (r == 0 && cb->later != NULL)
        r = fsched_call_soon(fsched_self(), f14_step, cb->later, NULL);
    return r;
}

TEST(fiber_s14_callbacks_in_given_context)
{
    (void)state;
    cv_var *v = tu_var("var");
    s14_cbs cb;
    s14_cbs_init(&cb, v);

    fsched *s = new_fsched();
    ASSERT_OK(cv_var_set(v, STR("main"), NULL));
    ASSERT_OK(fsched_spawn(s, f14_step, &cb.task, NULL));
    ASSERT_OK(cv_var_set(v, STR("changed after spawn"), NULL));
    cv_context *ctx;
    ASSERT_OK(cv_context_new(&ctx));
    ASSERT_OK(cv_context_run(ctx, s14_set_in_ctx, v));
    ASSERT_OK(fsched_call_soon(s, f14_step, &cb.cb1, ctx));
    ASSERT_OK(fsched_call_soon(s, f14_step, &cb.soon, NULL));
    ASSERT_OK(fsched_run(s));
    assert_string_equal(fsched_output(s), "task: main\n"
                                          "cb1: in ctx\n"
                                          "soon: changed after spawn\n"
                                          "from task: main\n");
    assert_string_equal(tu_get_str(v), "changed after spawn");
    fsched_free(s);

    /* cb2 runs in ctx itself after cb1 is done: it sees cb1's set. */
    s = new_fsched();
    ASSERT_OK(fsched_call_soon(s, f14_step, &cb.cb2, ctx));
    ASSERT_OK(fsched_run(s));
    assert_string_equal(fsched_output(s), "cb2: set by cb1\n");
    fsched_free(s);

    /* Two callbacks in one context at once: the first yields inside its
     * run and keeps ctx entered, so the second cannot enter it (R19). */
    s = new_fsched();
    ASSERT_OK(fsched_call_soon(s, f14_step, &cb.cb2, ctx));
    ASSERT_OK(fsched_call_soon(s, f14_step, &cb.cb2, ctx));
    ASSERT_ERR(fsched_run(s), CV_EENTERED);
    fsched_free(s);

    cv_context_release(ctx);
    cv_var_release(v);
}

/* ---- the reproducer of issue #15: yield inside run ------------------------ */

typedef struct yr {
    cv_var *v;
    long id;
    void *seen[4];
} yr;

static int yr_body(void *arg)
{
    yr *y = arg;
    y->seen[0] = cv_var_get_or(y->v, STR("-"));   /* the spawner's value */
    int r = cv_var_set(y->v, (void *)y->id, NULL);
    if (r < 0)
        return r;
    fsched_yield();
    y->seen[1] = cv_var_get_or(y->v, STR("-"));
    fsched_yield();
    r = cv_var_set(y->v, (void *)(y->id + 100), NULL);
    fsched_yield();
    y->seen[2] = cv_var_get_or(y->v, STR("-"));
    return r;
}

/* A fiber that watches the loop thread's own context between the others. */
typedef struct yr_main {
    cv_var *v;
    int bad;
} yr_main;

TEST(fiber_yield_inside_run_keeps_context_to_itself)
{
    (void)state;
    cv_var *v = tu_var_default("v", (void *)0);
    ASSERT_OK(cv_var_set(v, (void *)7, NULL));
    yr ys[2] = {{v, 10, {0}}, {v, 11, {0}}};
    fsched *s = new_fsched();
    for (int i = 0; i < 2; i++)
        ASSERT_OK(fsched_spawn(s, yr_body, &ys[i], NULL));
    ASSERT_OK(fsched_run(s));
    for (int i = 0; i < 2; i++) {
        assert_ptr_equal(ys[i].seen[0], (void *)7);
        assert_ptr_equal(ys[i].seen[1], (void *)ys[i].id);
        assert_ptr_equal(ys[i].seen[2], (void *)(ys[i].id + 100));
    }
    /* the loop thread ran in its own context all along */
    assert_ptr_equal(cv_var_get_or(v, NULL), (void *)7);
    fsched_free(s);
    cv_var_release(v);
}

/* The reproducer itself, on raw ucontext with the two swap calls, resumed
 * out of order (co0 before co1 ends): main reads its own value at every
 * step, each coroutine its own. */
static ucontext_t rp_main, rp_co[2];
static cv_exec *rp_exec[2];
static cv_context *rp_ctx[2];
static cv_var *rp_v;
static long rp_seen[2][2], rp_ret[2];

static int rp_body(void *arg)
{
    int i = (int)(long)arg - 10;
    cv_var_set(rp_v, arg, NULL);
    rp_seen[i][0] = (long)cv_var_get_or(rp_v, (void *)-1);
    swapcontext(&rp_co[i], &rp_main);              /* yield inside run */
    rp_seen[i][1] = (long)cv_var_get_or(rp_v, (void *)-1);
    return 0;
}

static void rp_entry(int i)
{
    rp_ret[i] = cv_context_run(rp_ctx[i], rp_body, (void *)(long)(i + 10));
    swapcontext(&rp_co[i], &rp_main);
}

static void rp_resume(int i)
{
    cv_exec *prev;
    ASSERT_OK(cv_exec_swap(rp_exec[i], &prev));
    swapcontext(&rp_main, &rp_co[i]);
    ASSERT_OK(cv_exec_swap(prev, NULL));
}

TEST(fiber_issue15_reproducer)
{
    (void)state;
    static char stacks[2][65536];
    rp_v = tu_var_default("v", (void *)0);
    ASSERT_OK(cv_var_set(rp_v, (void *)5, NULL));  /* main's own value */
    for (int i = 0; i < 2; i++) {
        ASSERT_OK(cv_copy_context(&rp_ctx[i]));
        ASSERT_OK(cv_exec_new(&rp_exec[i]));
        getcontext(&rp_co[i]);
        rp_co[i].uc_stack.ss_sp = stacks[i];
        rp_co[i].uc_stack.ss_size = sizeof stacks[i];
        rp_co[i].uc_link = &rp_main;
        makecontext(&rp_co[i], (void (*)(void))rp_entry, 1, i);
    }
    rp_resume(0);
    assert_int_equal((long)cv_var_get_or(rp_v, (void *)-1), 5);
    rp_resume(1);
    assert_int_equal((long)cv_var_get_or(rp_v, (void *)-1), 5);
    rp_resume(0);                                 /* not LIFO */
    rp_resume(1);
    assert_int_equal((long)cv_var_get_or(rp_v, (void *)-1), 5);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rp_seen[i][0], 10 + i);
        assert_int_equal(rp_seen[i][1], 10 + i);
        assert_int_equal(rp_ret[i], 0);
        void *out;
        assert_int_equal(cv_context_get(rp_ctx[i], rp_v, &out), 1);
        assert_int_equal((long)out, 10 + i);
        ASSERT_OK(cv_exec_release(rp_exec[i]));
        cv_context_release(rp_ctx[i]);
    }
    cv_var_release(rp_v);
}

/* ---- nested enters, and a set and its reset, across yields ------------- */

typedef struct nest {
    cv_var *v;
    cv_context *mine[2];     /* entered one inside the other */
    cv_context *theirs;      /* the other fiber's outer context */
    long id;
    int errs;                /* what went wrong, counted */
    int other_enter;         /* entering the other's context: CV_EENTERED */
    int exit_other;          /* exiting the other's context: ENOTENTERED */
} nest;

#define EXPECT(cond) ((cond) ? (void)0 : (void)n->errs++)

static int nest_body(void *arg)
{
    nest *n = arg;
    cv_context *base = cv_context_current();  /* the fiber's spawn copy */
    EXPECT(cv_context_enter(n->mine[0]) == 0);
    EXPECT(cv_var_set(n->v, (void *)(n->id * 10 + 1), NULL) == 0);
    fsched_yield();
    EXPECT(cv_context_current() == n->mine[0]);
    EXPECT(cv_context_enter(n->mine[1]) == 0);
    EXPECT(cv_var_set(n->v, (void *)(n->id * 10 + 2), NULL) == 0);
    fsched_yield();
    EXPECT(cv_var_get_or(n->v, NULL) == (void *)(n->id * 10 + 2));
    /* the other fiber's contexts are entered by it, not by us (R19) */
    n->other_enter = cv_context_enter(n->theirs);
    n->exit_other = cv_context_exit(n->theirs);

    /* a set and its reset with yields between */
    cv_token *t;
    EXPECT(cv_var_set(n->v, (void *)(n->id * 10 + 3), &t) == 0);
    fsched_yield();
    EXPECT(cv_var_get_or(n->v, NULL) == (void *)(n->id * 10 + 3));
    fsched_yield();
    EXPECT(cv_var_reset(n->v, t) == 0);
    cv_token_release(t);
    EXPECT(cv_var_get_or(n->v, NULL) == (void *)(n->id * 10 + 2));
    fsched_yield();
    EXPECT(cv_context_exit(n->mine[1]) == 0);
    EXPECT(cv_var_get_or(n->v, NULL) == (void *)(n->id * 10 + 1));
    fsched_yield();
    EXPECT(cv_context_exit(n->mine[0]) == 0);
    EXPECT(cv_context_current() == base);
    EXPECT(cv_var_get_or(n->v, NULL) == (void *)5);
    return 0;
}

TEST(fiber_yield_inside_nested_enters_and_between_set_and_reset)
{
    (void)state;
    cv_var *v = tu_var("v");
    ASSERT_OK(cv_var_set(v, (void *)5, NULL));
    nest ns[2];
    memset(ns, 0, sizeof ns);
    for (int i = 0; i < 2; i++) {
        ns[i].v = v;
        ns[i].id = i + 1;
        ASSERT_OK(cv_copy_context(&ns[i].mine[0]));
        ASSERT_OK(cv_context_new(&ns[i].mine[1]));
    }
    ns[0].theirs = ns[1].mine[0];
    ns[1].theirs = ns[0].mine[0];
    fsched *s = new_fsched();
    for (int i = 0; i < 2; i++)
        ASSERT_OK(fsched_spawn(s, nest_body, &ns[i], NULL));
    ASSERT_OK(fsched_run(s));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ns[i].errs, 0);
        ASSERT_ERR(ns[i].other_enter, CV_EENTERED);
        ASSERT_ERR(ns[i].exit_other, CV_ENOTENTERED);
        void *out;
        assert_int_equal(cv_context_get(ns[i].mine[0], v, &out), 1);
        assert_ptr_equal(out, (void *)(ns[i].id * 10 + 1));
    }
    assert_ptr_equal(cv_var_get_or(v, NULL), (void *)5);
    fsched_free(s);
    for (int i = 0; i < 2; i++) {
        cv_context_release(ns[i].mine[0]);
        cv_context_release(ns[i].mine[1]);
    }
    cv_var_release(v);
}

/* A token made on one fiber is of that fiber's context: resetting it on
 * another fiber is CV_ETOKEN_CTX (R6 per fiber). */
typedef struct tokx {
    cv_var *v;
    cv_token *tok;
    int r;
} tokx;

static int tokx_maker(void *arg)
{
    tokx *x = arg;
    int r = cv_var_set(x->v, STR("a"), &x->tok);
    fsched_yield();
    fsched_yield();
    return r;
}

static int tokx_user(void *arg)
{
    tokx *x = arg;
    fsched_yield();
    x->r = cv_var_reset(x->v, x->tok);
    return 0;
}

TEST(fiber_token_of_another_fiber_is_refused)
{
    (void)state;
    tokx x = {tu_var("v"), NULL, 0};
    fsched *s = new_fsched();
    ASSERT_OK(fsched_spawn(s, tokx_maker, &x, NULL));
    ASSERT_OK(fsched_spawn(s, tokx_user, &x, NULL));
    ASSERT_OK(fsched_run(s));
    ASSERT_ERR(x.r, CV_ETOKEN_CTX);
    assert_int_equal(cv_token_used(x.tok), 0);
    cv_token_release(x.tok);
    fsched_free(s);
    cv_var_release(x.v);
}

/* ---- the cache never answers for one state with another's values ------- */

TEST(r18_cache_exact_across_swaps)
{
    (void)state;
    cv_var *v = tu_var("v");
    cv_var *w = tu_var_default("w", STR("dflt"));
    ASSERT_OK(cv_var_set(v, STR("thread"), NULL));
    assert_string_equal(tu_get_str(v), "thread");     /* cached */
    cv_exec *a, *b, *prev = (cv_exec *)1;
    ASSERT_OK(cv_exec_new(&a));
    ASSERT_OK(cv_exec_new(&b));
    ASSERT_OK(cv_exec_swap(a, &prev));
    assert_null(prev);
    assert_ptr_equal(cv_exec_current(), a);
    /* a fresh state reads empty, as a fresh thread does (R13) */
    assert_string_equal(tu_get_str(v), "<LookupError>");
    assert_string_equal(tu_get_str(w), "dflt");
    ASSERT_OK(cv_var_set(v, STR("a"), NULL));
    cv_context *ca;
    ASSERT_OK(cv_copy_context(&ca));
    ASSERT_OK(cv_context_enter(ca));
    ASSERT_OK(cv_var_set(v, STR("a-inner"), NULL));
    ASSERT_OK(cv_var_set(w, STR("a-w"), NULL));
    assert_string_equal(tu_get_str(v), "a-inner");
    ASSERT_OK(cv_exec_swap(b, &prev));
    assert_ptr_equal(prev, a);
    assert_string_equal(tu_get_str(v), "<LookupError>");
    assert_string_equal(tu_get_str(w), "dflt");
    ASSERT_OK(cv_var_set(v, STR("b"), NULL));
    assert_string_equal(tu_get_str(v), "b");
    ASSERT_OK(cv_exec_swap(NULL, &prev));
    assert_ptr_equal(prev, b);
    assert_string_equal(tu_get_str(v), "thread");
    assert_string_equal(tu_get_str(w), "dflt");
    ASSERT_OK(cv_exec_swap(a, NULL));
    assert_string_equal(tu_get_str(v), "a-inner");
    assert_string_equal(tu_get_str(w), "a-w");
    /* the exit after a swap: the level below reads its own values */
    ASSERT_OK(cv_context_exit(ca));
    assert_string_equal(tu_get_str(v), "a");
    assert_string_equal(tu_get_str(w), "dflt");
    /* swapping in the state in place changes nothing */
    ASSERT_OK(cv_exec_swap(a, &prev));
    assert_ptr_equal(prev, a);
    assert_string_equal(tu_get_str(v), "a");
    /* a state in place cannot be released */
    ASSERT_ERR(cv_exec_release(a), CV_EACTIVE);
    ASSERT_OK(cv_exec_swap(NULL, NULL));
    assert_string_equal(tu_get_str(v), "thread");
    /* the inline get and the call agree after all that */
    void *x1 = NULL, *x2 = NULL;
    ASSERT_OK(cv_var_get(v, &x1));
    ASSERT_OK((cv_var_get)(v, &x2));
    assert_ptr_equal(x1, x2);
    ASSERT_OK(cv_exec_release(a));
    ASSERT_OK(cv_exec_release(b));
    ASSERT_OK(cv_exec_release(NULL));
    cv_context_release(ca);
    cv_var_release(v);
    cv_var_release(w);
}

/* Deep stacks: a state parked 100 levels deep (past the ring of saved
 * generations) and another, each exiting level by level after swaps. */
TEST(r18_deep_stacks_exit_exactly_after_swaps)
{
    (void)state;
    enum { D = 100 };
    cv_var *v = tu_var("v");
    cv_exec *x[2];
    cv_context *cs[2][D];
    for (int k = 0; k < 2; k++) {
        ASSERT_OK(cv_exec_new(&x[k]));
        ASSERT_OK(cv_exec_swap(x[k], NULL));
        for (int i = 0; i < D; i++) {
            ASSERT_OK(cv_context_new(&cs[k][i]));
            ASSERT_OK(cv_context_enter(cs[k][i]));
            ASSERT_OK(cv_var_set(v, &cs[k][i], NULL));
            assert_ptr_equal(cv_var_get_or(v, NULL), &cs[k][i]);
        }
    }
    for (int i = D - 1; i >= 0; i--)
        for (int k = 0; k < 2; k++) {
            ASSERT_OK(cv_exec_swap(x[k], NULL));
            assert_ptr_equal(cv_var_get_or(v, NULL), &cs[k][i]);
            ASSERT_OK(cv_context_exit(cs[k][i]));
            assert_ptr_equal(cv_var_get_or(v, NULL),
                             i ? (void *)&cs[k][i - 1] : NULL);
        }
    ASSERT_OK(cv_exec_swap(NULL, NULL));
    for (int k = 0; k < 2; k++) {
        ASSERT_OK(cv_exec_release(x[k]));
        for (int i = 0; i < D; i++)
            cv_context_release(cs[k][i]);
    }
    cv_var_release(v);
}

/* Releasing a parked state exits what it left entered (R22, R16). */
TEST(r22_release_exits_what_the_state_entered)
{
    (void)state;
    cv_var *v = tu_var_hooked("v", NULL);
    tu_val a = {0}, b = {0};
    cv_context *c;
    ASSERT_OK(cv_context_new(&c));
    cv_exec *x;
    ASSERT_OK(cv_exec_new(&x));
    ASSERT_OK(cv_exec_swap(x, NULL));
    ASSERT_OK(cv_var_set(v, &a, NULL));     /* x's base */
    ASSERT_OK(cv_context_enter(c));
    ASSERT_OK(cv_var_set(v, &b, NULL));
    ASSERT_OK(cv_exec_swap(NULL, NULL));
    cv_context_release(c);                   /* still entered by x */
    assert_int_equal(b.refs, 1);
    ASSERT_OK(cv_var_set(v, &b, NULL));      /* in the thread's own */
    ASSERT_OK(cv_exec_release(x));
    assert_int_equal(a.refs, 0);             /* x's base is gone */
    assert_int_equal(b.refs, 1);             /* c is gone: only ours */
    assert_ptr_equal(cv_var_get_or(v, NULL), &b);
    cv_thread_cleanup();
    assert_int_equal(b.refs, 0);
    cv_var_release(v);
}

/* ---- threads: a state in place elsewhere, a thread that exits in a
 * fiber's state, a fiber migrating (test_fiber_migrate.c) ---------------- */

typedef struct holder {
    cv_exec *x;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stage;
    int r_swap;
    cv_var *v;
} holder;

static void stage_wait(holder *h, int stage)
{
    pthread_mutex_lock(&h->mu);
    while (h->stage < stage)
        pthread_cond_wait(&h->cond, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

static void stage_set(holder *h, int stage)
{
    pthread_mutex_lock(&h->mu);
    h->stage = stage;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->mu);
}

static void *holder_thread(void *p)
{
    holder *h = p;
    h->r_swap = cv_exec_swap(h->x, NULL);
    cv_var_set(h->v, STR("set on the other thread"), NULL);
    stage_set(h, 1);
    stage_wait(h, 2);
    /* exits with x still in place: the exit puts the thread's own state
     * back and releases it; x keeps its contexts */
    return NULL;
}

TEST(r20_state_in_place_elsewhere_is_refused)
{
    (void)state;
    holder h = {.v = tu_var("v")};
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cond, NULL);
    ASSERT_OK(cv_exec_new(&h.x));
    long live = tu_alloc_live();
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, holder_thread, &h), 0);
    stage_wait(&h, 1);
    ASSERT_OK(h.r_swap);
    cv_exec *prev = (cv_exec *)1;
    ASSERT_ERR(cv_exec_swap(h.x, &prev), CV_EACTIVE);
    assert_ptr_equal(prev, (cv_exec *)1);
    ASSERT_ERR(cv_exec_release(h.x), CV_EACTIVE);
    stage_set(&h, 2);
    assert_int_equal(pthread_join(th, NULL), 0);
    /* the thread is gone; x was parked by its exit and moves here */
    ASSERT_OK(cv_exec_swap(h.x, &prev));
    assert_null(prev);
    assert_string_equal(tu_get_str(h.v), "set on the other thread");
    ASSERT_OK(cv_exec_swap(NULL, NULL));
    assert_string_equal(tu_get_str(h.v), "<LookupError>");
    ASSERT_OK(cv_exec_release(h.x));
    assert_true(tu_alloc_live() <= live);
    pthread_cond_destroy(&h.cond);
    pthread_mutex_destroy(&h.mu);
    cv_var_release(h.v);
}

/* ---- bound callbacks (R23-R25) ---------------------------------------- */

typedef struct bcall {
    cv_var *v;
    const char *seen;
    int calls;
    int ret;
} bcall;

static int bc_fn(void *arg)
{
    bcall *b = arg;
    b->calls++;
    b->seen = tu_get_str(b->v);
    cv_var_set(b->v, STR("set in callback"), NULL);
    return b->ret;
}

TEST(r23_bound_captures_a_copy_now)
{
    (void)state;
    bcall bc = {.v = tu_var("v"), .ret = 42};
    ASSERT_OK(cv_var_set(bc.v, STR("at bind"), NULL));
    cv_bound *b;
    ASSERT_OK(cv_bound_new(bc_fn, &bc, &b));
    assert_int_equal(cv_bound_result(b), 0);
    ASSERT_OK(cv_var_set(bc.v, STR("after bind"), NULL));
    assert_int_equal(cv_bound_call(b), 42);
    assert_string_equal(bc.seen, "at bind");
    assert_string_equal(tu_get_str(bc.v), "after bind");
    /* the copy keeps the callback's sets, for the next call */
    assert_int_equal(cv_bound_call(b), 42);
    assert_string_equal(bc.seen, "set in callback");
    bc.ret = 7;
    cv_bound_fire(b);
    assert_int_equal(bc.calls, 3);
    assert_int_equal(cv_bound_result(b), 7);
    assert_non_null(cv_bound_context(b));
    assert_true(cv_bound_context(b) != cv_context_current());
    cv_bound_release(b);
    cv_var_release(bc.v);
}

static int bc_reenter(void *arg)
{
    cv_bound *b = arg;
    return cv_bound_call(b);   /* b's context is entered: by this call */
}

TEST(r24_bound_in_given_context_and_entered_elsewhere)
{
    (void)state;
    bcall bc = {.v = tu_var("v"), .ret = 1};
    cv_context *c;
    ASSERT_OK(cv_context_new(&c));
    cv_bound *b;
    ASSERT_OK(cv_bound_new_in(c, bc_fn, &bc, &b));
    assert_ptr_equal(cv_bound_context(b), c);
    cv_context_release(c);                     /* b keeps it */
    assert_int_equal(cv_bound_call(b), 1);
    assert_string_equal(bc.seen, "<LookupError>");
    void *out;
    assert_int_equal(cv_context_get(cv_bound_context(b), bc.v, &out), 1);
    assert_string_equal(out, "set in callback");
    /* entered elsewhere: fn is not called, the result says why */
    ASSERT_OK(cv_context_enter(cv_bound_context(b)));
    ASSERT_ERR(cv_bound_call(b), CV_EENTERED);
    cv_bound_fire(b);
    ASSERT_ERR(cv_bound_result(b), CV_EENTERED);
    assert_int_equal(bc.calls, 1);
    ASSERT_OK(cv_context_exit(cv_bound_context(b)));
    /* a bound calling itself: the inner call finds its context entered */
    cv_bound *self;
    ASSERT_OK(cv_bound_new(bc_reenter, NULL, &self));
    cv_bound *again;
    ASSERT_OK(cv_bound_new_in(cv_bound_context(self), bc_reenter, self, &again));
    ASSERT_ERR(cv_bound_call(again), CV_EENTERED);
    /* bad input */
    ASSERT_ERR(cv_bound_new(NULL, NULL, &b), CV_EINVAL);
    ASSERT_ERR(cv_bound_new(bc_fn, NULL, NULL), CV_EINVAL);
    ASSERT_ERR(cv_bound_new_in(NULL, bc_fn, NULL, &again), CV_EINVAL);
    ASSERT_ERR(cv_bound_call(NULL), CV_EINVAL);
    ASSERT_ERR(cv_bound_result(NULL), CV_EINVAL);
    assert_null(cv_bound_context(NULL));
    ASSERT_ERR(cv_exec_new(NULL), CV_EINVAL);
    cv_bound_release(NULL);
    cv_bound_release(again);
    cv_bound_release(self);
    cv_bound_release(b);
    cv_var_release(bc.v);
}

/* ---- never allocating, and failing cleanly --------------------------- */

static int bc_noop(void *arg)
{
    (void)arg;
    return 3;
}

TEST(oom_exec_and_bound)
{
    (void)state;
    cv_var *v = tu_var("v");
    ASSERT_OK(cv_var_set(v, STR("x"), NULL));
    cv_context *c;
    ASSERT_OK(cv_context_new(&c));
    /* each allocating call, the k-th allocation failing, once and forever */
    for (int which = 0; which < 3; which++)
        for (int forever = 0; forever <= 1; forever++)
            for (long k = 1;; k++) {
                long live = tu_alloc_live();
                cv_exec *x = NULL;
                cv_bound *b = NULL;
                tu_alloc_fail_at(k, forever);
                int r = which == 0   ? cv_exec_new(&x)
                        : which == 1 ? cv_bound_new(bc_noop, NULL, &b)
                                     : cv_bound_new_in(c, bc_noop, NULL, &b);
                if (TU_OOM_DONE(r, live)) {
                    if (b != NULL)
                        assert_int_equal(cv_bound_call(b), 3);
                    ASSERT_OK(cv_exec_release(x));
                    cv_bound_release(b);
                    break;
                }
                assert_null(x);
                assert_null(b);
                assert_string_equal(tu_get_str(v), "x");
                assert_true(k < 100);
            }
    /* swap and call never allocate: everything fails, and they work */
    cv_exec *x;
    cv_bound *b;
    ASSERT_OK(cv_exec_new(&x));
    ASSERT_OK(cv_bound_new_in(c, bc_noop, NULL, &b));
    long calls = tu_alloc_calls();
    tu_alloc_fail_at(1, 1);
    for (int i = 0; i < 100; i++) {
        ASSERT_OK(cv_exec_swap(x, NULL));
        ASSERT_OK(cv_context_enter(c));   /* a fresh state enters... */
        ASSERT_OK(cv_exec_swap(NULL, NULL));
        assert_string_equal(tu_get_str(v), "x");
        assert_int_equal(cv_bound_call(b), CV_EENTERED);  /* ...x has it */
        ASSERT_OK(cv_exec_swap(x, NULL));
        ASSERT_OK(cv_context_exit(c));
        ASSERT_OK(cv_exec_swap(NULL, NULL));
        assert_int_equal(cv_bound_call(b), 3);
    }
    tu_alloc_fail_at(0, 0);
    assert_int_equal(tu_alloc_calls(), calls);
    ASSERT_OK(cv_exec_release(x));
    cv_bound_release(b);
    cv_context_release(c);
    cv_var_release(v);
}
