/* SPDX-License-Identifier: MIT */
/*
 * test_uv.c -- libctxvar-uv against the real libuv: every wrapped callback
 * runs in the context its R-rule says (ctxvar_uv.h), pool threads give back
 * what they hold, failing calls change nothing. Exit status 0 or 1.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ctxvar_uv.h"
/* the counting allocator that fails from the k-th allocation on */
#include "testalloc.h"
#include "internal.h" /* cv__thread_drop_caches */

static int failures;
#define CHECK(c)                                                           \
    do {                                                                   \
        if (!(c)) {                                                        \
            failures++;                                                    \
            fprintf(stderr, "test_uv: %s:%d: %s\n", __FILE__, __LINE__, #c); \
        }                                                                  \
    } while (0)
#define CHECK_STR(got, want) CHECK(strcmp((got), (want)) == 0)

static cv_var *v;
static uv_loop_t *loop;

static const char *val(void)
{
    return cv_var_get_or(v, "<unset>");
}

static void set(const char *s)
{
    if (cv_var_set(v, (void *)s, NULL) != 0)
        failures++;
}

/* ---- timers: a copy taken at start, kept across firings, close -------- */

static char seen[8][32];
static int nseen;
static void record(void)
{
    if (nseen < 8)
        snprintf(seen[nseen++], sizeof seen[0], "%s", val());
}

static void on_timer(uv_timer_t *t)
{
    record();
    set("set in timer");
    if (nseen == 2)
        uv_timer_stop(t);
}

static void on_close(uv_handle_t *h)
{
    (void)h;
    record();
}

/* t, initialised and started on on_timer while the value is "at start":
 * the context its callbacks must run in. */
static void start_timer_at_start(cv_uv_timer *t, uint64_t timeout, uint64_t repeat)
{
    CHECK(cv_uv_timer_init(loop, t) == 0);
    set("at start");
    CHECK(cv_uv_timer_start(t, on_timer, timeout, repeat) == 0);
}

static void test_timer(void)
{
    cv_uv_timer t;
    start_timer_at_start(&t, 1, 1);
    set("after start");
    nseen = 0;
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(nseen == 2);
    CHECK_STR(seen[0], "at start");
    CHECK_STR(seen[1], "set in timer");     /* its own copy, kept */
    CHECK_STR(val(), "after start");        /* never here */
    cv_uv_close((uv_handle_t *)&t.handle, on_close);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(nseen == 3);
    CHECK_STR(seen[2], "set in timer");     /* close: in the handle's copy */
    CHECK(t.bind.ctx == NULL);
}

/* ---- idle, check, prepare --------------------------------------------- */

/* idle keeps the poll from blocking until prepare and check have run */
static int idle_seen;
static void on_idle(uv_idle_t *h)
{
    if (!idle_seen++)
        record();
    if (nseen >= 3)
        uv_idle_stop(h);
}
static void on_check(uv_check_t *h) { record(); uv_check_stop(h); }
static void on_prepare(uv_prepare_t *h) { record(); uv_prepare_stop(h); }

static void test_loop_handles(void)
{
    cv_uv_idle i;
    cv_uv_check c;
    cv_uv_prepare p;
    CHECK(cv_uv_idle_init(loop, &i) == 0);
    CHECK(cv_uv_check_init(loop, &c) == 0);
    CHECK(cv_uv_prepare_init(loop, &p) == 0);
    set("idle");
    CHECK(cv_uv_idle_start(&i, on_idle) == 0);
    set("check");
    CHECK(cv_uv_check_start(&c, on_check) == 0);
    set("prepare");
    CHECK(cv_uv_prepare_start(&p, on_prepare) == 0);
    set("main");
    nseen = 0;
    uv_run(loop, UV_RUN_DEFAULT);
    /* one loop iteration: prepare, (poll), check; idle before poll */
    CHECK(nseen == 3);
    int got = 0;
    for (int k = 0; k < nseen; k++)
        got |= (!strcmp(seen[k], "idle")) | (!strcmp(seen[k], "check")) << 1 |
               (!strcmp(seen[k], "prepare")) << 2;
    CHECK(got == 7);
    CHECK_STR(val(), "main");
    cv_uv_close((uv_handle_t *)&i.handle, NULL);
    cv_uv_close((uv_handle_t *)&c.handle, NULL);
    cv_uv_close((uv_handle_t *)&p.handle, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
}

/* ---- async: the context of its init, whichever thread sends ----------- */

static void on_async(uv_async_t *a)
{
    record();
    cv_uv_close((uv_handle_t *)a, NULL);
}

static void *sender(void *p)
{
    set("the sender's");          /* the sender's own context: not used */
    uv_async_send(p);
    cv_thread_cleanup();
    return NULL;
}

static void test_async(void)
{
    cv_uv_async a;
    set("at init");
    CHECK(cv_uv_async_init(loop, &a, on_async) == 0);
    set("main");
    pthread_t th;
    pthread_create(&th, NULL, sender, &a.handle);
    nseen = 0;
    uv_run(loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    CHECK(nseen == 1);
    CHECK_STR(seen[0], "at init");
}

/* ---- the thread pool -------------------------------------------------- */

typedef struct job {
    cv_uv_work_req w;
    char work_saw[32], after_saw[32];
    int on_loop_thread;
    pthread_t loop_thread;
} job;

static void do_work(uv_work_t *req)
{
    job *j = (job *)cv_uv_of(req, cv_uv_work_req);
    snprintf(j->work_saw, sizeof j->work_saw, "%s", val());
    cv_token *t;                  /* leaves a block cached on this thread */
    if (cv_var_set(v, "set by work", &t) == 0)
        cv_token_release(t);
    j->on_loop_thread = pthread_equal(pthread_self(), j->loop_thread);
}

static void after_work(uv_work_t *req, int status)
{
    job *j = (job *)cv_uv_of(req, cv_uv_work_req);
    CHECK(status == 0);
    snprintf(j->after_saw, sizeof j->after_saw, "%s", val());
    set("set by after_work");
}

static int queue_in_request(void *arg)
{
    set("request");
    return cv_uv_queue_work(loop, arg, do_work, after_work);
}

static void test_work(void)
{
    /* from inside a request's context, which is exited before the work
     * is done: after_work enters it again */
    cv_context *req;
    CHECK(cv_context_new(&req) == 0);
    job j[2];
    memset(j, 0, sizeof j);
    j[0].loop_thread = j[1].loop_thread = pthread_self();
    CHECK(cv_context_run(req, queue_in_request, &j[0].w) == 0);
    /* and from the loop thread's own context, current when after_work runs */
    set("top level");
    CHECK(cv_uv_queue_work(loop, &j[1].w, do_work, after_work) == 0);
    set("main");
    /* the loop thread's own cached blocks are not the pool's: counted
     * with them given back, before and after */
    cv__thread_drop_caches();
    long before = tu_alloc_live();
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_STR(j[0].work_saw, "request");
    CHECK_STR(j[0].after_saw, "request");
    CHECK_STR(j[1].work_saw, "top level");
    CHECK_STR(j[1].after_saw, "main");     /* the context itself, as it is now */
    CHECK(!j[0].on_loop_thread && !j[1].on_loop_thread);
    void *out;
    CHECK(cv_context_get(req, v, &out) == 1 && !strcmp(out, "set by after_work"));
    CHECK_STR(val(), "set by after_work");
    /* the pool threads hold nothing: the copies are gone, and so are the
     * blocks their sets cached there */
    cv__thread_drop_caches();
    CHECK(tu_alloc_live() < before);
    cv_context_release(req);
    set("main");
}

/* ---- streams: reads in the reader's context, writes in the writer's --- */

static char rbuf[64];
static char read_data[64];
static char read_ctx[32], alloc_ctx[32], write_ctx[32];

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    (void)size;
    snprintf(alloc_ctx, sizeof alloc_ctx, "%s", val());
    *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n > 0) {
        snprintf(read_data, sizeof read_data, "%.*s", (int)n, buf->base);
        snprintf(read_ctx, sizeof read_ctx, "%s", val());
        set("set by reader");
        uv_read_stop(s);
    }
}

static void on_write(uv_write_t *w, int status)
{
    (void)w;
    CHECK(status == 0);
    snprintf(write_ctx, sizeof write_ctx, "%s", val());
}

static void test_streams(void)
{
    int fds[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    cv_uv_stream a, b;
    CHECK(cv_uv_pipe_init(loop, &a, 0) == 0);
    CHECK(cv_uv_pipe_init(loop, &b, 0) == 0);
    CHECK(uv_pipe_open(&a.handle.pipe, fds[0]) == 0);
    CHECK(uv_pipe_open(&b.handle.pipe, fds[1]) == 0);
    set("reader");
    CHECK(cv_uv_read_start(&b, on_alloc, on_read) == 0);
    set("writer");
    cv_uv_write_req w;
    uv_buf_t buf = uv_buf_init("hello", 5);
    CHECK(cv_uv_write(&w, &a.handle.stream, &buf, 1, on_write) == 0);
    set("main");
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_STR(read_data, "hello");
    CHECK_STR(read_ctx, "reader");
    CHECK_STR(alloc_ctx, "main");          /* called as it is */
    CHECK_STR(write_ctx, "writer");
    CHECK_STR(val(), "main");
    cv_uv_close((uv_handle_t *)&a.handle, NULL);
    cv_uv_close((uv_handle_t *)&b.handle, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
}

/* ---- a callback whose context is entered elsewhere when it fires ------ */

typedef struct holder {
    cv_context *c;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stage;
} holder;

static void hold_stage(holder *h, int set, int wait)
{
    pthread_mutex_lock(&h->mu);
    if (set)
        h->stage = set;
    pthread_cond_broadcast(&h->cond);
    while (h->stage < wait)
        pthread_cond_wait(&h->cond, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

static void *entering(void *p)
{
    holder *h = p;
    CHECK(cv_context_enter(h->c) == 0);   /* the timer's own copy */
    hold_stage(h, 1, 2);
    CHECK(cv_context_exit(h->c) == 0);
    cv_thread_cleanup();
    return NULL;
}

static void test_fallback(void)
{
    cv_uv_timer t;
    start_timer_at_start(&t, 0, 0);
    set("main");
    holder h = {.c = t.bind.ctx};
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cond, NULL);
    pthread_t th;
    pthread_create(&th, NULL, entering, &h);
    hold_stage(&h, 0, 1);
    long before = cv_uv_fallbacks();
    nseen = 0;
    uv_run(loop, UV_RUN_DEFAULT);
    /* the callback ran, in the current context, and it was counted */
    CHECK(nseen == 1);
    CHECK_STR(seen[0], "main");
    CHECK(cv_uv_fallbacks() == before + 1);
    hold_stage(&h, 2, 2);
    pthread_join(th, NULL);
    set("main");
    cv_uv_close((uv_handle_t *)&t.handle, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    pthread_cond_destroy(&h.cond);
    pthread_mutex_destroy(&h.mu);
}

/* ---- failing allocations change nothing ------------------------------- */

static int fired;
static void count_timer(uv_timer_t *t) { (void)t; fired++; }
static void nop_work(uv_work_t *r) { (void)r; }
static void count_after(uv_work_t *r, int status) { (void)r; (void)status; fired++; }

/* The k-th allocation from now on fails, for k = 1, 2, ... until the call
 * gets through: while one failed, the call says UV_ENOMEM, the handle is
 * not started and nothing is held. */
static void test_oom(void)
{
    for (int which = 0; which < 2; which++)
        for (long k = 1;; k++) {
            cv_uv_timer t;
            cv_uv_work_req w;
            CHECK(cv_uv_timer_init(loop, &t) == 0);
            cv_thread_cleanup();         /* no cached blocks: copies allocate */
            long l = tu_alloc_live();
            set("x");
            long c0 = tu_alloc_calls();
            tu_alloc_fail_at(k, 1);  /* the k-th from now, and every one after */
            int r = which == 0 ? cv_uv_timer_start(&t, count_timer, 0, 0)
                               : cv_uv_queue_work(loop, &w, nop_work, count_after);
            long hit = tu_alloc_calls() >= c0 + k;
            tu_alloc_fail_at(0, 0);
            fired = 0;
            if (hit) {
                if (r != UV_ENOMEM)
                    fprintf(stderr, "which %d k %ld: %d\n", which, k, r);
                CHECK(r == UV_ENOMEM);
                CHECK(!uv_is_active((uv_handle_t *)&t.handle));
                CHECK_STR(val(), "x");
                /* what the failed call made went back (or to the thread's
                 * cache of blocks, which the cleanup empties) */
                cv_thread_cleanup();
                CHECK(tu_alloc_live() == l);
            } else {
                CHECK(r == 0);
            }
            uv_run(loop, UV_RUN_DEFAULT);
            CHECK(fired == (r == 0));
            cv_uv_close((uv_handle_t *)&t.handle, NULL);
            uv_run(loop, UV_RUN_DEFAULT);
            if (!hit)
                break;
            CHECK(k < 50);
        }
}

int main(void)
{
    tu_alloc_install();
    if (cv_var_new("v", &v) != 0)
        return 2;
    loop = uv_default_loop();
    test_timer();
    test_loop_handles();
    test_async();
    test_work();
    test_streams();
    CHECK(cv_uv_fallbacks() == 0);     /* none until one is made on purpose */
    test_fallback();
    test_oom();
    CHECK(uv_loop_close(loop) == 0);
    cv_var_release(v);
    cv_thread_cleanup();
    CHECK(tu_alloc_live() == 0);
    printf("test_uv: libuv %s, %s\n", uv_version_string(),
           failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
