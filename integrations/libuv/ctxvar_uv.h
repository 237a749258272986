/* SPDX-License-Identifier: MIT */
/*
 * ctxvar_uv.h -- libctxvar-uv: libuv callbacks that run in the context of
 * whoever scheduled them (the asyncio rule: a callback runs in a copy of
 * the context current when it was scheduled).
 *
 * Each wrapper is a libuv handle or request with ctxvar's binding in front
 * of it: initialise it with cv_uv_*_init (async: cv_uv_async_init), pass
 * &w->handle (or &w->req) to libuv as usual, and start it through the
 * call here instead of libuv's. The callback then runs in:
 *
 *   timer, idle, check, prepare   a copy taken by the *_start call
 *   async                         a copy taken by cv_uv_async_init (the
 *                                 sender may be any thread)
 *   stream reads                  a copy taken by cv_uv_read_start (the
 *                                 alloc callback is called as it is)
 *   write                         a copy taken by cv_uv_write
 *   queue_work: work              a copy taken by cv_uv_queue_work, on the
 *                                 pool thread, which then releases what
 *                                 it holds of ctxvar (cv_thread_cleanup)
 *               after_work        the context itself that was current at
 *                                 cv_uv_queue_work (its sets stay there)
 *   close                         the handle's copy, released afterwards
 *
 * A copy is the handle's own, so a callback's sets are seen by its later
 * callbacks (a repeating timer, the next read) and by nothing else.
 * Wrapped handles must be closed with cv_uv_close (it releases the copy).
 *
 * If a callback's context is entered elsewhere when it fires (only a
 * callback re-entering uv_run can arrange that), the callback runs in the
 * current context and cv_uv_fallbacks() counts it: libuv callbacks must
 * run, and the count makes the case visible.
 *
 * Errors: 0 or a negative libuv code; ctxvar's CV_ENOMEM is UV_ENOMEM, any
 * other ctxvar failure UV_EINVAL. A failing call changes nothing.
 */
#ifndef CTXVAR_UV_H
#define CTXVAR_UV_H

#include <uv.h>

#include "ctxvar.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The part in front of every wrapped handle and request. Not API. */
typedef struct cv_uv_bind {
    cv_context *ctx;             /* the callback's context, owned */
    cv_bound *after;             /* queue_work: the caller's own context */
    void (*cb)(void);            /* the user's callback, of the handle's type */
    void (*cb2)(void);           /* alloc_cb (reads), after_work_cb */
    uv_close_cb close_cb;
    int status;                  /* write's, after_work's: while it is called */
} cv_uv_bind;

typedef struct cv_uv_timer { cv_uv_bind bind; uv_timer_t handle; } cv_uv_timer;
typedef struct cv_uv_idle { cv_uv_bind bind; uv_idle_t handle; } cv_uv_idle;
typedef struct cv_uv_check { cv_uv_bind bind; uv_check_t handle; } cv_uv_check;
typedef struct cv_uv_prepare { cv_uv_bind bind; uv_prepare_t handle; } cv_uv_prepare;
typedef struct cv_uv_async { cv_uv_bind bind; uv_async_t handle; } cv_uv_async;
/* tcp, pipe or tty: init the member you need, read through `handle.stream`. */
typedef struct cv_uv_stream {
    cv_uv_bind bind;
    union {
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_tty_t tty;
    } handle;
} cv_uv_stream;
typedef struct cv_uv_write_req { cv_uv_bind bind; uv_write_t req; } cv_uv_write_req;
typedef struct cv_uv_work_req { cv_uv_bind bind; uv_work_t req; } cv_uv_work_req;

/* The wrapper of a wrapped handle or request, e.g. in its callback:
 * cv_uv_of(h, cv_uv_timer). The libuv object sits at one offset in every
 * wrapper (ctxvar_uv.c asserts it). */
#define cv_uv_of(h, type) \
    ((type *)(void *)((char *)(h) - offsetof(cv_uv_timer, handle)))

/* uv_*_init, and the binding made empty: use these to initialise. */
int cv_uv_timer_init(uv_loop_t *loop, cv_uv_timer *t);
int cv_uv_idle_init(uv_loop_t *loop, cv_uv_idle *h);
int cv_uv_check_init(uv_loop_t *loop, cv_uv_check *h);
int cv_uv_prepare_init(uv_loop_t *loop, cv_uv_prepare *h);
int cv_uv_tcp_init(uv_loop_t *loop, cv_uv_stream *s);
int cv_uv_pipe_init(uv_loop_t *loop, cv_uv_stream *s, int ipc);

int cv_uv_timer_start(cv_uv_timer *t, uv_timer_cb cb, uint64_t timeout,
                      uint64_t repeat);
int cv_uv_idle_start(cv_uv_idle *h, uv_idle_cb cb);
int cv_uv_check_start(cv_uv_check *h, uv_check_cb cb);
int cv_uv_prepare_start(cv_uv_prepare *h, uv_prepare_cb cb);
int cv_uv_async_init(uv_loop_t *loop, cv_uv_async *a, uv_async_cb cb);
int cv_uv_read_start(cv_uv_stream *s, uv_alloc_cb alloc_cb, uv_read_cb read_cb);
int cv_uv_write(cv_uv_write_req *w, uv_stream_t *s, const uv_buf_t bufs[],
                unsigned nbufs, uv_write_cb cb);
int cv_uv_queue_work(uv_loop_t *loop, cv_uv_work_req *w, uv_work_cb work_cb,
                     uv_after_work_cb after_work_cb);
/* uv_close for a wrapped handle (any of the above): cb (may be NULL) runs
 * in the handle's context, which is released afterwards. */
void cv_uv_close(uv_handle_t *h, uv_close_cb cb);

/* Callbacks that could not enter their context (see the top). */
long cv_uv_fallbacks(void);

#ifdef __cplusplus
}
#endif
#endif
