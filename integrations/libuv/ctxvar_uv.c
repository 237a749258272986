/* SPDX-License-Identifier: MIT */
/*
 * ctxvar_uv.c -- libctxvar-uv (ctxvar_uv.h). Every wrapper has the binding
 * in front of the libuv object, at one offset for all of them, so a
 * trampoline finds the binding from the handle or request libuv gives it.
 */
#include <stdatomic.h>
#include <stddef.h>

#include "ctxvar_uv.h"

#define BIND_OFF offsetof(cv_uv_timer, handle)
_Static_assert(offsetof(cv_uv_idle, handle) == BIND_OFF, "one offset");
_Static_assert(offsetof(cv_uv_check, handle) == BIND_OFF, "one offset");
_Static_assert(offsetof(cv_uv_prepare, handle) == BIND_OFF, "one offset");
_Static_assert(offsetof(cv_uv_async, handle) == BIND_OFF, "one offset");
_Static_assert(offsetof(cv_uv_stream, handle) == BIND_OFF, "one offset");
_Static_assert(offsetof(cv_uv_write_req, req) == BIND_OFF, "one offset");
_Static_assert(offsetof(cv_uv_work_req, req) == BIND_OFF, "one offset");

static cv_uv_bind *bind_of(const void *handle_or_req)
{
    return (cv_uv_bind *)((char *)handle_or_req - BIND_OFF);
}

static atomic_long fallbacks;

long cv_uv_fallbacks(void)
{
    return atomic_load_explicit(&fallbacks, memory_order_relaxed);
}

static int uv_err(int cv)
{
    return cv == CV_ENOMEM ? UV_ENOMEM : UV_EINVAL;
}

/* Runs fn(arg) in c: entered for the call, or as it is if c is already
 * this thread's current context; if c is entered elsewhere, in the
 * current context, counted. Never allocates: the run comes first, and a
 * context entered here means this thread's current one exists. */
static void run_in(cv_context *c, int (*fn)(void *), void *arg)
{
    if (c == NULL) {
        fn(arg);
        return;
    }
    if (cv_context_run(c, fn, arg) != CV_EENTERED)
        return;
    if (c != cv_context_current())
        atomic_fetch_add_explicit(&fallbacks, 1, memory_order_relaxed);
    fn(arg);
}

/* A copy of the current context, for a binding; UV_EINVAL instead when
 * args_ok is 0 (a wrapper's handle, request or callback was NULL). */
static int capture(int args_ok, cv_context **fresh)
{
    if (!args_ok)
        return UV_EINVAL;
    int r = cv_copy_context(fresh);
    return r < 0 ? uv_err(r) : 0;
}

#define INIT_HANDLE(kind)                                                   \
    int cv_uv_##kind##_init(uv_loop_t *loop, cv_uv_##kind *h)               \
    {                                                                       \
        if (h == NULL)                                                      \
            return UV_EINVAL;                                               \
        h->bind = (cv_uv_bind){0};                                          \
        return uv_##kind##_init(loop, &h->handle);                          \
    }

INIT_HANDLE(timer)
INIT_HANDLE(idle)
INIT_HANDLE(check)
INIT_HANDLE(prepare)

int cv_uv_tcp_init(uv_loop_t *loop, cv_uv_stream *s)
{
    if (s == NULL)
        return UV_EINVAL;
    s->bind = (cv_uv_bind){0};
    return uv_tcp_init(loop, &s->handle.tcp);
}

int cv_uv_pipe_init(uv_loop_t *loop, cv_uv_stream *s, int ipc)
{
    if (s == NULL)
        return UV_EINVAL;
    s->bind = (cv_uv_bind){0};
    return uv_pipe_init(loop, &s->handle.pipe, ipc);
}

static void install(cv_uv_bind *b, cv_context *fresh, void (*cb)(void))
{
    cv_context_release(b->ctx);
    b->ctx = fresh;
    b->cb = cb;
}

/* The end of every wrapped start: r is libuv's answer. On a refusal the
 * context captured for it goes back and the binding is left as it was;
 * else the binding takes the context and cb. */
static int install_started(int r, cv_uv_bind *b, cv_context *c, void (*cb)(void))
{
    if (r < 0) {
        cv_context_release(c);
        return r;
    }
    install(b, c, cb);
    return 0;
}

/* ---- handles with one callback of one argument ------------------------ */

#define ONE_ARG_HANDLE(kind)                                                \
    static int call_##kind(void *h)                                         \
    {                                                                       \
        ((uv_##kind##_cb)bind_of(h)->cb)(h);                                \
        return 0;                                                           \
    }                                                                       \
    static void tramp_##kind(uv_##kind##_t *h)                              \
    {                                                                       \
        run_in(bind_of(h)->ctx, call_##kind, h);                            \
    }

ONE_ARG_HANDLE(timer)
ONE_ARG_HANDLE(idle)
ONE_ARG_HANDLE(check)
ONE_ARG_HANDLE(prepare)
ONE_ARG_HANDLE(async)

int cv_uv_timer_start(cv_uv_timer *t, uv_timer_cb cb, uint64_t timeout,
                      uint64_t repeat)
{
    cv_context *c;
    int r = capture(t != NULL && cb != NULL, &c);
    if (r < 0)
        return r;
    r = uv_timer_start(&t->handle, tramp_timer, timeout, repeat);
    return install_started(r, &t->bind, c, (void (*)(void))cb);
}

#define START_HANDLE(kind)                                                  \
    int cv_uv_##kind##_start(cv_uv_##kind *h, uv_##kind##_cb cb)            \
    {                                                                       \
        cv_context *c;                                                      \
        int r = capture(h != NULL && cb != NULL, &c);                       \
        if (r < 0)                                                          \
            return r;                                                       \
        r = uv_##kind##_start(&h->handle, tramp_##kind);                    \
        return install_started(r, &h->bind, c, (void (*)(void))cb);         \
    }

START_HANDLE(idle)
START_HANDLE(check)
START_HANDLE(prepare)

int cv_uv_async_init(uv_loop_t *loop, cv_uv_async *a, uv_async_cb cb)
{
    cv_context *c;
    int r = capture(a != NULL && cb != NULL, &c);
    if (r < 0)
        return r;
    a->bind = (cv_uv_bind){0};
    r = uv_async_init(loop, &a->handle, tramp_async);
    return install_started(r, &a->bind, c, (void (*)(void))cb);
}

/* ---- streams ---------------------------------------------------------- */

/* The alloc callback hands out a buffer and is called as it is, in the
 * loop's context: entering the read's context for it too would cost a
 * second enter and exit per read for a callback that has no use for it. */
static void tramp_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    ((uv_alloc_cb)bind_of(h)->cb2)(h, size, buf);
}

typedef struct read_args {
    uv_stream_t *s;
    ssize_t nread;
    const uv_buf_t *buf;
} read_args;

static int call_read(void *p)
{
    read_args *a = p;
    ((uv_read_cb)bind_of(a->s)->cb)(a->s, a->nread, a->buf);
    return 0;
}

static void tramp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    read_args a = {s, nread, buf};
    run_in(bind_of(s)->ctx, call_read, &a);
}

int cv_uv_read_start(cv_uv_stream *s, uv_alloc_cb alloc_cb, uv_read_cb read_cb)
{
    cv_context *c;
    int r = capture(s != NULL && alloc_cb != NULL && read_cb != NULL, &c);
    if (r < 0)
        return r;
    r = uv_read_start(&s->handle.stream, tramp_alloc, tramp_read);
    r = install_started(r, &s->bind, c, (void (*)(void))read_cb);
    if (r == 0)
        s->bind.cb2 = (void (*)(void))alloc_cb;
    return r;
}

/* ---- requests: a callback of (request, status) ---------------------- */

/* call_<kind>: calls the binding's callback in `field` with the status the
 * trampoline left in the binding (a request's status travels there). */
#define STATUS_CALL(kind, cb_type, field)                                   \
    static int call_##kind(void *req)                                       \
    {                                                                       \
        cv_uv_bind *b = bind_of(req);                                       \
        ((cb_type)b->field)(req, b->status);                                \
        return 0;                                                           \
    }

STATUS_CALL(write, uv_write_cb, cb)
STATUS_CALL(after, uv_after_work_cb, cb2)

/* A finished request's context, taken out of its binding (the callback
 * may reuse the request), and its status left there for call_<kind>. */
static cv_context *take_finished(cv_uv_bind *b, int status)
{
    cv_context *c = b->ctx;
    b->ctx = NULL;
    b->status = status;
    return c;
}

static void tramp_write(uv_write_t *req, int status)
{
    cv_context *c = take_finished(bind_of(req), status);
    run_in(c, call_write, req);
    cv_context_release(c);
}

int cv_uv_write(cv_uv_write_req *w, uv_stream_t *s, const uv_buf_t bufs[],
                unsigned nbufs, uv_write_cb cb)
{
    cv_context *c;
    int r = capture(w != NULL && cb != NULL, &c);
    if (r < 0)
        return r;
    w->bind = (cv_uv_bind){.ctx = c, .cb = (void (*)(void))cb};
    r = uv_write(&w->req, s, bufs, nbufs, tramp_write);
    if (r < 0) {
        w->bind = (cv_uv_bind){0};
        cv_context_release(c);
        return r;
    }
    return 0;
}

/* ---- the thread pool ------------------------------------------------- */

static int call_work(void *req)
{
    ((uv_work_cb)bind_of(req)->cb)(req);
    return 0;
}

static void tramp_work(uv_work_t *req)
{
    run_in(bind_of(req)->ctx, call_work, req);
    /* a pool thread never exits while the loop runs: it gives back what
     * ctxvar keeps for it now (its cached blocks, any base context) */
    cv_thread_cleanup();
}

static void tramp_after(uv_work_t *req, int status)
{
    cv_uv_bind *b = bind_of(req);
    cv_bound *after = b->after;
    b->after = NULL;
    cv_context *copy = take_finished(b, status);
    if (b->cb2 != NULL) {
        /* In the caller's own context: as it is if it is current here (the
         * loop thread's base), else entered for the call; if it is entered
         * elsewhere now, in the copy the work ran in (the values it had,
         * and the work's sets), counted. */
        if (cv_bound_call(after) == CV_EENTERED) {
            if (cv_bound_context(after) == cv_context_current()) {
                call_after(req);
            } else {
                atomic_fetch_add_explicit(&fallbacks, 1, memory_order_relaxed);
                run_in(copy, call_after, req);
            }
        }
    }
    cv_context_release(copy);
    cv_bound_release(after);
}

int cv_uv_queue_work(uv_loop_t *loop, cv_uv_work_req *w, uv_work_cb work_cb,
                     uv_after_work_cb after_work_cb)
{
    if (w == NULL || work_cb == NULL)
        return UV_EINVAL;
    cv_context *origin = cv_context_current();
    if (origin == NULL)
        return UV_ENOMEM;
    cv_context *c;
    int r = cv_copy_context(&c);
    if (r < 0)
        return uv_err(r);
    /* after_work's context, held (retained) by a bound callback */
    cv_bound *after;
    r = cv_bound_new_in(origin, call_after, &w->req, &after);
    if (r < 0) {
        cv_context_release(c);
        return uv_err(r);
    }
    /* bound before it is queued: a pool thread may start it at once */
    w->bind = (cv_uv_bind){.ctx = c, .after = after,
                           .cb = (void (*)(void))work_cb,
                           .cb2 = (void (*)(void))after_work_cb};
    r = uv_queue_work(loop, &w->req, tramp_work, tramp_after);
    if (r < 0) {
        w->bind = (cv_uv_bind){0};
        cv_bound_release(after);
        cv_context_release(c);
        return r;
    }
    return 0;
}

/* ---- close ------------------------------------------------------------ */

static int call_close(void *h)
{
    bind_of(h)->close_cb(h);
    return 0;
}

static void tramp_close(uv_handle_t *h)
{
    cv_uv_bind *b = bind_of(h);
    cv_context *c = b->ctx;
    b->ctx = NULL;
    if (b->close_cb != NULL)
        run_in(c, call_close, h);
    cv_context_release(c);   /* after: the callback may free the wrapper */
}

void cv_uv_close(uv_handle_t *h, uv_close_cb cb)
{
    cv_uv_bind *b = bind_of(h);
    if (b->ctx == NULL) {
        uv_close(h, cb);     /* never started: nothing captured */
        return;
    }
    b->close_cb = cb;
    uv_close(h, tramp_close);
}
