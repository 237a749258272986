/* SPDX-License-Identifier: MIT */
/*
 * test_scenarios.c -- the scenarios S1-S16 of SPEC.md, on every backend.
 *
 * Each test prints (into a buffer) or asserts exactly what its scenario
 * says, including the intermediate values. Values are string literals,
 * except S10's mutable record. The event-loop scenarios run on the
 * cooperative scheduler of tests/support/sched.h; the thread scenarios use
 * pthreads, and their workers only record what they saw (cmocka's asserts
 * must run on the test's own thread), which the test then asserts.
 */
#include <pthread.h>
#include <string.h>

#include "sched.h"
#include "scenarios.h"
#include "testutil.h"

/* What c maps v to, as a string: the value or "<absent>". */
static const char *ctx_str(const cv_context *c, const cv_var *v)
{
    void *out = NULL;
    int r = cv_context_get(c, v, &out);
    if (r == 0)
        return "<absent>";
    ASSERT_ERR(r, 1);
    return (const char *)out;
}

/* tu_get_str for worker threads, which must not call cmocka. */
static const char *peek(const cv_var *v)
{
    void *out = NULL;
    int r = cv_var_get(v, &out);
    if (r == CV_ELOOKUP)
        return "<LookupError>";
    return r == 0 ? (const char *)out : "<error>";
}

/* A scheduler for one test; freed by the test. */
static sched *new_loop(void)
{
    sched *s = NULL;
    ASSERT_OK(sched_new(&s));
    return s;
}

/* Runs fn(arg) as the one root task of a fresh loop, to the end, and checks
 * what the tasks printed. */
static void run_tasks_expect(sched_step_fn fn, void *arg, const char *want)
{
    sched *s = new_loop();
    ASSERT_OK(sched_spawn(s, fn, arg, NULL));
    ASSERT_OK(sched_run(s));
    assert_string_equal(sched_output(s), want);
    sched_free(s);
}

/* ------------------------------------------------------------------------
 * S1-S3: get, set, reset, defaults, run
 * ------------------------------------------------------------------------ */

TEST(s1_set_reset_tokens)
{
    (void)state;
    cv_var *v = tu_var("ctx");
    cv_token *t1 = NULL, *t2 = NULL;
    void *old = STR("untouched");

    ASSERT_OK(cv_var_set(v, STR("hello"), &t1));
    ASSERT_OK(cv_var_set(v, STR("world"), &t2));
    assert_string_equal(tu_get_str(v), "world");
    ASSERT_ERR(cv_token_old_value(t2, &old), 1);
    assert_string_equal((const char *)old, "hello");

    ASSERT_OK(cv_var_reset(v, t2));
    assert_string_equal(tu_get_str(v), "hello");

    old = STR("untouched");
    ASSERT_ERR(cv_token_old_value(t1, &old), 0); /* MISSING */
    assert_string_equal((const char *)old, "untouched");
    ASSERT_OK(cv_var_reset(v, t1));
    ASSERT_ERR(cv_var_get(v, &old), CV_ELOOKUP);
    assert_string_equal((const char *)old, "untouched");
    assert_string_equal((const char *)cv_var_get_or(v, STR("tom")), "tom");

    cv_token_release(t1);
    cv_token_release(t2);
    cv_var_release(v);
}

TEST(s2_default_value)
{
    (void)state;
    cv_var *v = tu_var_default("ctx", STR("high"));
    assert_string_equal(tu_get_str(v), "high");
    assert_string_equal((const char *)cv_var_get_or(v, STR("tom")), "tom");
    ASSERT_OK(cv_var_set(v, STR("x"), NULL));
    assert_string_equal(tu_get_str(v), "x");
    cv_var_release(v);
}

typedef struct s3_state {
    cv_var *c1, *c2;
    cv_context *ctx;
    char seen[128];  /* what the function run in ctx read back */
} s3_state;

static int s3_in_ctx(void *arg)
{
    s3_state *st = arg;
    int r = cv_var_set(st->c1, STR("VAL1"), NULL);
    if (r == 0)
        r = cv_var_set(st->c2, STR("VAL2"), NULL);
    if (r < 0)
        return r;
    /* Inside run, the var and ctx[var] are the same mapping. */
    snprintf(st->seen, sizeof st->seen, "%s %s\n%s %s\n", peek(st->c1),
             ctx_str(st->ctx, st->c1), peek(st->c2), ctx_str(st->ctx, st->c2));
    return 0;
}

TEST(s3_run_in_copied_context)
{
    (void)state;
    s3_state st = {.c1 = tu_var("c1"), .c2 = tu_var("c2")};
    ASSERT_OK(cv_var_set(st.c1, STR("val1"), NULL));
    ASSERT_OK(cv_var_set(st.c2, STR("val2"), NULL));
    ASSERT_OK(cv_copy_context(&st.ctx));

    ASSERT_OK(cv_context_run(st.ctx, s3_in_ctx, &st));
    assert_string_equal(st.seen, "VAL1 VAL1\nVAL2 VAL2\n");

    /* The sets stayed in ctx; the outer context still has the old values. */
    char after[128];
    snprintf(after, sizeof after, "%s %s\n%s %s\n", tu_get_str(st.c1),
             ctx_str(st.ctx, st.c1), tu_get_str(st.c2), ctx_str(st.ctx, st.c2));
    assert_string_equal(after, "val1 VAL1\nval2 VAL2\n");

    cv_context_release(st.ctx);
    cv_var_release(st.c1);
    cv_var_release(st.c2);
}

/* ------------------------------------------------------------------------
 * S4: what a child task, a copy and an empty context see
 * ------------------------------------------------------------------------ */

static int s4_child(sched_task *t, void *arg)
{
    sched_printf(t->loop, "child task: %s\n", peek(arg));
    return SCHED_DONE;
}

TEST(s4_child_task_copy_and_empty_context)
{
    (void)state;
    cv_var *v = tu_var_default("var", STR("default"));
    ASSERT_OK(cv_var_set(v, STR("main value"), NULL));

    run_tasks_expect(s4_child, v, "child task: main value\n");

    cv_context *copy, *empty;
    ASSERT_OK(cv_copy_context(&copy));
    assert_string_equal(tu_get_str_in(copy, v), "main value");

    ASSERT_OK(cv_context_new(&empty));
    assert_string_equal(tu_get_str_in(empty, v), "default");

    cv_context_release(copy);
    cv_context_release(empty);
    cv_var_release(v);
}

/* ------------------------------------------------------------------------
 * S5: three concurrent requests on one event loop
 * ------------------------------------------------------------------------ */

/* A plain call from a step: it runs in the calling task's context. */
static void s5_nested(sched_task *t, s5_req *rq)
{
    sched_printf(t->loop, "Nested %s\n", peek(rq->request_id));
}

static int s5_handle(sched_task *t, void *arg)
{
    s5_req *rq = arg;
    switch (t->pc) {
    case 0: {
        int r = cv_var_set(rq->request_id, STR(rq->id), NULL);
        if (r < 0)
            return r;
        sched_printf(t->loop, "Start %s\n", peek(rq->request_id));
        t->pc = 1;
        return SCHED_YIELD;
    }
    default:
        s5_nested(t, rq);
        sched_printf(t->loop, "End %s\n", peek(rq->request_id));
        return SCHED_DONE;
    }
}

TEST(s5_concurrent_requests)
{
    (void)state;
    cv_var *request_id = tu_var("request_id");
    s5_req reqs[] = {{request_id, "0"}, {request_id, "1"}, {request_id, "2"}};
    sched *s = new_loop();
    for (int i = 0; i < 3; i++)
        ASSERT_OK(sched_spawn(s, s5_handle, &reqs[i], NULL));
    ASSERT_OK(sched_run(s));
    assert_string_equal(sched_output(s), S5_OUTPUT);
    /* Each request set its id in its own task's copy, never here. */
    assert_string_equal(tu_get_str(request_id), "<LookupError>");
    sched_free(s);
    cv_var_release(request_id);
}

/* ------------------------------------------------------------------------
 * S6: plain nested calls share one context
 * ------------------------------------------------------------------------ */

static void s6_sub2(cv_var *v)
{
    assert_string_equal(tu_get_str(v), "sub1 set");
}

static void s6_sub1(cv_var *v)
{
    assert_string_equal(tu_get_str(v), "main set");
    ASSERT_OK(cv_var_set(v, STR("sub1 set"), NULL));
    s6_sub2(v);
}

TEST(s6_nested_calls_share_context)
{
    (void)state;
    cv_var *v = tu_var("var");
    ASSERT_OK(cv_var_set(v, STR("main set"), NULL));
    s6_sub1(v);
    assert_string_equal(tu_get_str(v), "sub1 set");
    cv_var_release(v);
}

/* ------------------------------------------------------------------------
 * S7, S8: recursion with and without a new task per level
 * ------------------------------------------------------------------------ */

/* S7: each level sets var, then awaits a new task for the level below. */
static int s7_task(sched_task *t, void *arg)
{
    s7_level *lv = arg;
    if (t->pc == 0) {
        int r = cv_var_set(lv->v, STR(LEVEL[lv->level]), NULL);
        if (r < 0)
            return r;
        sched_printf(t->loop, "%s\n", peek(lv->v));
        if (lv->level > 0) {
            sched_task *child;
            r = sched_spawn(t->loop, s7_task, lv->below, &child);
            if (r < 0)
                return r;
            t->pc = 1;
            return sched_await(t, child);
        }
    }
    sched_printf(t->loop, "%s\n", peek(lv->v));
    return SCHED_DONE;
}

TEST(s7_recursive_tasks_keep_their_level)
{
    (void)state;
    cv_var *v = tu_var("var");
    s7_level lv[3];
    for (int i = 0; i < 3; i++)
        lv[i] = (s7_level){.v = v, .level = i, .below = i ? &lv[i - 1] : NULL};
    run_tasks_expect(s7_task, &lv[2], S7_OUTPUT);
    cv_var_release(v);
}

/* S8: the level below is a plain call (Python's `await recursive(level-1)`
 * without a task), so every level writes the one task's context. */
static int s8_recurse(sched *s, cv_var *v, int level)
{
    int r = cv_var_set(v, STR(LEVEL[level]), NULL);
    if (r < 0)
        return r;
    sched_printf(s, "%s\n", peek(v));
    if (level > 0 && (r = s8_recurse(s, v, level - 1)) < 0)
        return r;
    sched_printf(s, "%s\n", peek(v));
    return 0;
}

static int s8_task(sched_task *t, void *arg)
{
    int r = s8_recurse(t->loop, arg, 2);
    return r < 0 ? r : SCHED_DONE;
}

TEST(s8_recursion_in_one_context)
{
    (void)state;
    cv_var *v = tu_var("var");
    run_tasks_expect(s8_task, v, "2\n1\n0\n0\n0\n0\n");
    cv_var_release(v);
}

/* ------------------------------------------------------------------------
 * S9: two sleeping tasks keep their own values
 * ------------------------------------------------------------------------ */

static int s9_child_task(sched_task *t, void *arg)
{
    s9_child *c = arg;
    if (t->pc == 0) {
        int r = cv_var_set(c->v, STR(c->name), NULL);
        if (r < 0)
            return r;
        sched_printf(t->loop, "%s set, sleeps %ld\n", c->name, c->ticks);
        t->pc = 1;
        return sched_sleep(t, c->ticks);
    }
    sched_printf(t->loop, "tick %ld: %s reads %s\n", sched_now(t->loop),
                 c->name, peek(c->v));
    return SCHED_DONE;
}

typedef struct s9_parent {
    s9_child kids[2];
    sched_task *tasks[2];
} s9_parent;

/* Spawns both children, then awaits one after the other. */
static int s9_parent_task(sched_task *t, void *arg)
{
    s9_parent *p = arg;
    switch (t->pc) {
    case 0:
        for (int i = 0; i < 2; i++) {
            int r = sched_spawn(t->loop, s9_child_task, &p->kids[i],
                                &p->tasks[i]);
            if (r < 0)
                return r;
        }
        t->pc = 1;
        return sched_await(t, p->tasks[0]);
    case 1:
        t->pc = 2;
        return sched_await(t, p->tasks[1]);
    default:
        sched_printf(t->loop, "tick %ld: parent reads %s\n",
                     sched_now(t->loop), peek(p->kids[0].v));
        return SCHED_DONE;
    }
}

TEST(s9_sleeping_tasks_keep_values)
{
    (void)state;
    cv_var *v = tu_var("var");
    ASSERT_OK(cv_var_set(v, STR("hello"), NULL));
    s9_parent p = {.kids = {{v, "task1", 1}, {v, "task2", 2}}};
    run_tasks_expect(s9_parent_task, &p, S9_OUTPUT);
    assert_string_equal(tu_get_str(v), "hello");
    cv_var_release(v);
}

/* ------------------------------------------------------------------------
 * S10, S11: shared mutable values, chaining through a token
 * ------------------------------------------------------------------------ */

static int s10_write_record(void *arg)
{
    tu_val *rec = cv_var_get_or(arg, NULL);
    if (rec == NULL)
        return CV_ELOOKUP;
    rec->tag = 2;  /* a write through the pointer, not a set */
    return 0;
}

TEST(s10_copy_shares_mutable_record)
{
    (void)state;
    /* The counting hooks: the leak check then proves every holder of the
     * record (contexts, copies) let it go exactly once. */
    cv_var *v = tu_var_hooked("record", NULL);
    tu_val rec = {.refs = 0, .tag = 1}, other = {.refs = 0, .tag = 100};
    ASSERT_OK(cv_var_set(v, &rec, NULL));
    assert_true(rec.refs >= 1);  /* the context holds it */
    cv_context *copy;
    ASSERT_OK(cv_copy_context(&copy));

    void *in_copy = NULL;
    ASSERT_ERR(cv_context_get(copy, v, &in_copy), 1);
    assert_ptr_equal(in_copy, &rec);  /* the copy shares, never deep copies */

    /* Written inside the copy, seen outside: one record. */
    ASSERT_OK(cv_context_run(copy, s10_write_record, v));
    assert_int_equal(((tu_val *)cv_var_get_or(v, NULL))->tag, 2);
    assert_int_equal(rec.tag, 2);

    /* A set of a new pointer shows in one context only. */
    ASSERT_OK(cv_var_set(v, &other, NULL));
    assert_ptr_equal(cv_var_get_or(v, NULL), &other);
    ASSERT_ERR(cv_context_get(copy, v, &in_copy), 1);
    assert_ptr_equal(in_copy, &rec);
    assert_int_equal(((tu_val *)in_copy)->tag, 2);

    /* Once every context is gone, nothing holds either record (R14). */
    cv_context_release(copy);
    cv_thread_cleanup();
    assert_int_equal(rec.refs, 0);
    assert_int_equal(other.refs, 0);
    cv_var_release(v);
}

TEST(s11_token_var_chains)
{
    (void)state;
    cv_var *v = tu_var("var");
    cv_token *t = NULL, *t2 = NULL;
    ASSERT_OK(cv_var_set(v, STR("val"), &t));
    assert_ptr_equal(cv_token_var(t), v);
    ASSERT_OK(cv_var_set(cv_token_var(t), STR("val2"), &t2));
    assert_ptr_equal(cv_token_var(t2), v);
    ASSERT_OK(cv_var_set(cv_token_var(t2), STR("val3"), NULL));
    assert_string_equal(tu_get_str(v), "val3");
    cv_token_release(t);
    cv_token_release(t2);
    cv_var_release(v);
}

/* ------------------------------------------------------------------------
 * S12, S13: threads
 * ------------------------------------------------------------------------ */

typedef struct s12_worker {
    cv_var *v;
    size_t len_at_start;     /* pairs in the worker's fresh context */
    const cv_backend *backend;
    const char *before, *after;
    int set_rc;
} s12_worker;

static void *s12_thread(void *arg)
{
    s12_worker *w = arg;
    cv_context *cur = cv_context_current();
    w->len_at_start = cur ? cv_context_len(cur) : (size_t)-1;
    w->backend = cv_context_backend(cur);
    w->before = peek(w->v);
    w->set_rc = cv_var_set(w->v, STR("worker"), NULL);
    w->after = peek(w->v);
    return NULL;  /* the thread's context is released at exit */
}

TEST(s12_threads_are_isolated)
{
    const cv_backend *b = TEST_BACKEND;
    cv_var *v = tu_var("var");
    ASSERT_OK(cv_var_set(v, STR("main"), NULL));
    s12_worker w = {.v = v};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s12_thread, &w), 0);
    assert_int_equal(pthread_join(th, NULL), 0);

    /* A new thread starts empty, on the backend under test. */
    assert_int_equal(w.len_at_start, 0);
    assert_ptr_equal(w.backend, b);
    assert_string_equal(w.before, "<LookupError>");
    ASSERT_OK(w.set_rc);
    assert_string_equal(w.after, "worker");
    assert_string_equal(tu_get_str(v), "main");
    cv_var_release(v);
}

typedef struct s13_job {
    cv_var *v;
    cv_context *ctx;
    const char *seen, *after_set, *outside;
    int run_rc;
} s13_job;

static int s13_in_copy(void *arg)
{
    s13_job *j = arg;
    j->seen = peek(j->v);
    int r = cv_var_set(j->v, STR("worker value"), NULL);
    j->after_set = peek(j->v);
    return r;
}

static void *s13_thread(void *arg)
{
    s13_job *j = arg;
    j->run_rc = cv_context_run(j->ctx, s13_in_copy, j);
    j->outside = peek(j->v);  /* the worker's own context, after run */
    cv_thread_cleanup();
    return NULL;
}

TEST(s13_copy_runs_in_worker_thread)
{
    (void)state;
    cv_var *v = tu_var("var");
    ASSERT_OK(cv_var_set(v, STR("main value"), NULL));
    s13_job j = {.v = v};
    ASSERT_OK(cv_copy_context(&j.ctx));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s13_thread, &j), 0);
    assert_int_equal(pthread_join(th, NULL), 0);

    ASSERT_OK(j.run_rc);
    assert_string_equal(j.seen, "main value");
    assert_string_equal(j.after_set, "worker value");
    assert_string_equal(j.outside, "<LookupError>");
    /* The worker's set stayed in the copy. */
    assert_string_equal(ctx_str(j.ctx, v), "worker value");
    assert_string_equal(tu_get_str(v), "main value");
    cv_context_release(j.ctx);
    cv_var_release(v);
}

/* ------------------------------------------------------------------------
 * S14: callbacks in a given context; tasks capture at creation
 * ------------------------------------------------------------------------ */

/* Used for the task and for the callbacks: they are steps alike. */
static int s14_step(sched_task *t, void *arg)
{
    s14_cb *cb = arg;
    sched_printf(t->loop, "%s: %s\n", cb->label, peek(cb->v));
    int r = 0;
    if (cb->set != NULL)
        r = cv_var_set(cb->v, STR(cb->set), NULL);
    /* NULL ctx: the callback gets a copy of this step's context. */
    if (r == 0 && cb->later != NULL)
        r = sched_call_soon(t->loop, s14_step, cb->later, NULL);
    return r < 0 ? r : SCHED_DONE;
}

TEST(s14_callbacks_in_given_context)
{
    (void)state;
    cv_var *v = tu_var("var");
    s14_cbs cb;
    s14_cbs_init(&cb, v);

    sched *s = new_loop();
    ASSERT_OK(cv_var_set(v, STR("main"), NULL));
    ASSERT_OK(sched_spawn(s, s14_step, &cb.task, NULL)); /* captures "main" */
    ASSERT_OK(cv_var_set(v, STR("changed after spawn"), NULL));

    cv_context *ctx;
    ASSERT_OK(cv_context_new(&ctx));
    ASSERT_OK(cv_context_run(ctx, s14_set_in_ctx, v));
    ASSERT_OK(sched_call_soon(s, s14_step, &cb.cb1, ctx));
    ASSERT_OK(sched_call_soon(s, s14_step, &cb.cb2, ctx));
    ASSERT_OK(sched_call_soon(s, s14_step, &cb.soon, NULL));
    ASSERT_OK(sched_run(s));
    /* cb2 runs in ctx itself, not a copy: it sees cb1's set. */
    assert_string_equal(sched_output(s), "task: main\n"
                                         "cb1: in ctx\n"
                                         "cb2: set by cb1\n"
                                         "soon: changed after spawn\n"
                                         "from task: main\n");
    assert_string_equal(ctx_str(ctx, v), "set by cb1");
    assert_string_equal(tu_get_str(v), "changed after spawn");
    sched_free(s);

    /* A context runs one flow at a time: a callback given this thread's
     * entered context fails to enter it, and the loop reports that. */
    s = new_loop();
    ASSERT_OK(sched_call_soon(s, s14_step, &cb.cb2, cv_context_current()));
    ASSERT_ERR(sched_run(s), CV_EENTERED);
    assert_string_equal(sched_output(s), "");
    sched_free(s);

    cv_context_release(ctx);
    cv_var_release(v);
}

/* ------------------------------------------------------------------------
 * S15: a context is entered at most once
 * ------------------------------------------------------------------------ */

typedef struct s15_nest {
    cv_context *ctx;
    int inner_rc, enter_rc, inner_called;
} s15_nest;

static int s15_inner(void *arg)
{
    ((s15_nest *)arg)->inner_called = 1;
    return 0;
}

static int s15_outer(void *arg)
{
    s15_nest *n = arg;
    n->inner_rc = cv_context_run(n->ctx, s15_inner, n);
    n->enter_rc = cv_context_enter(n->ctx);
    return 0;
}

typedef struct s15_race {
    cv_context *ctx;
    pthread_barrier_t *bar;
    long rounds;
    int *rc;                 /* this thread's enter result, per round */
    int exit_errors;         /* exits by a winner that failed */
    int current_wrong;       /* rounds where current() disagreed with rc */
} s15_race;

static void *s15_racer(void *arg)
{
    s15_race *r = arg;
    for (long i = 0; i < r->rounds; i++) {
        pthread_barrier_wait(r->bar);  /* both threads enter together */
        r->rc[i] = cv_context_enter(r->ctx);
        int mine = cv_context_current() == r->ctx;
        r->current_wrong += mine != (r->rc[i] == 0);
        /* The winner stays in until the loser has tried. */
        pthread_barrier_wait(r->bar);
        if (r->rc[i] == 0 && cv_context_exit(r->ctx) != 0)
            r->exit_errors++;
    }
    cv_thread_cleanup();
    return NULL;
}

TEST(s15_context_entered_once)
{
    (void)state;
    s15_nest n = {.inner_rc = 1, .enter_rc = 1};
    ASSERT_OK(cv_copy_context(&n.ctx));
    ASSERT_OK(cv_context_run(n.ctx, s15_outer, &n));
    ASSERT_ERR(n.inner_rc, CV_EENTERED);
    ASSERT_ERR(n.enter_rc, CV_EENTERED);
    assert_int_equal(n.inner_called, 0);
    /* This thread's own context is entered too (it is current). */
    ASSERT_ERR(cv_context_run(cv_context_current(), s15_inner, &n),
               CV_EENTERED);
    assert_int_equal(n.inner_called, 0);

    long rounds = tu_scale(2000, 50);
    pthread_barrier_t bar;
    assert_int_equal(pthread_barrier_init(&bar, NULL, 2), 0);
    int *rc = test_calloc(2 * (size_t)rounds, sizeof *rc);
    s15_race race[2];
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        race[k] = (s15_race){.ctx = n.ctx, .bar = &bar, .rounds = rounds,
                             .rc = rc + k * rounds};
        assert_int_equal(pthread_create(&th[k], NULL, s15_racer, &race[k]),
                         0);
    }
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_join(th[k], NULL), 0);
    pthread_barrier_destroy(&bar);

    for (long i = 0; i < rounds; i++) {
        int a = race[0].rc[i], b = race[1].rc[i];
        if (!((a == 0 && b == CV_EENTERED) || (a == CV_EENTERED && b == 0)))
            fail_msg("round %ld: enter returned %s and %s, want one 0 and "
                     "one CV_EENTERED", i, cv_err_name(a), cv_err_name(b));
    }
    for (int k = 0; k < 2; k++) {
        assert_int_equal(race[k].exit_errors, 0);
        assert_int_equal(race[k].current_wrong, 0);
    }
    test_free(rc);
    cv_context_release(n.ctx);
}

/* ------------------------------------------------------------------------
 * S16: reset misuse
 * ------------------------------------------------------------------------ */

TEST(s16_reset_misuse)
{
    (void)state;
    cv_var *v = tu_var("v"), *w = tu_var("w");
    cv_token *t = NULL, *tw = NULL;

    /* Twice. */
    ASSERT_OK(cv_var_set(v, STR("a"), &t));
    ASSERT_OK(cv_var_reset(v, t));
    ASSERT_ERR(cv_var_reset(v, t), CV_ETOKEN_USED);
    assert_int_equal(cv_token_used(t), 1);

    /* Another var's token: nothing changes, the token stays usable. */
    ASSERT_OK(cv_var_set(w, STR("b"), &tw));
    ASSERT_OK(cv_var_set(v, STR("v value"), NULL));
    ASSERT_ERR(cv_var_reset(v, tw), CV_ETOKEN_VAR);
    assert_int_equal(cv_token_used(tw), 0);
    assert_string_equal(tu_get_str(v), "v value");
    assert_string_equal(tu_get_str(w), "b");
    /* R6's order: "used" is reported before "another var". */
    ASSERT_ERR(cv_var_reset(w, t), CV_ETOKEN_USED);

    /* A token made in another context. */
    cv_context *ctx;
    ASSERT_OK(cv_copy_context(&ctx));
    cv_token *in_ctx = NULL;   /* made inside the context */
    ASSERT_OK(tu_set_in(ctx, v, STR("in ctx"), &in_ctx));
    ASSERT_ERR(cv_var_reset(v, in_ctx), CV_ETOKEN_CTX);
    assert_int_equal(cv_token_used(in_ctx), 0);
    assert_string_equal(tu_get_str(v), "v value");
    /* In its own context the same token works. */
    ASSERT_OK(tu_reset_in(ctx, v, in_ctx));
    assert_string_equal(ctx_str(ctx, v), "v value");

    cv_token_release(in_ctx);
    cv_context_release(ctx);
    cv_token_release(t);
    cv_token_release(tw);
    cv_var_release(v);
    cv_var_release(w);
}
