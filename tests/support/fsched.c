/*
 * fsched.c -- the fiber scheduler of fsched.h, on ucontext.
 *
 * A fiber never changes its own state in the scheduler: it says what it
 * wants (yield, sleep, await, done) and switches back to the thread that
 * resumed it, which files the fiber under the lock once it is off its
 * stack. So a fiber is never resumed by one thread while another still
 * runs on its stack.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include "fsched.h"
#include "textbuf.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FS_TSAN 1
#endif
#if __has_feature(address_sanitizer)
#define FS_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define FS_TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FS_ASAN 1
#endif

#ifdef FS_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif
#ifdef FS_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom,
                                    size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save,
                                     const void **bottom_old, size_t *size_old);
#endif

/* Under valgrind a switch onto a fiber stack near a thread's own stack
 * looks like that stack shrinking, and the thread's TLS above it turns
 * "inaccessible"; registered stacks are known to be stacks of their own. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define FS_VALGRIND 1
#endif
#endif

#define STACK_SIZE (256 * 1024)

enum { READY, RUNNING, SLEEPING, AWAITING, DONE };
enum { WANT_YIELD, WANT_SLEEP, WANT_AWAIT, WANT_DONE };

struct fiber {
    fsched *s;
    ucontext_t uc;
    void *stack;
    cv_exec *exec;               /* its stack of entered contexts */
    cv_bound *body;              /* fn(arg) bound to its context */
    int state, want, result;
    long wake;
    fiber *awaited;
    fiber *next_ready, *next_all;
    ucontext_t *ret;             /* the loop that resumed it */
    const void *ret_stack;       /* ASan: that loop's stack */
    size_t ret_size;
    int last_thread;             /* an id of the thread it last ran on */
#ifdef FS_TSAN
    void *tsan;
    void *ret_tsan;
#endif
#ifdef FS_VALGRIND
    unsigned vg_stack;
#endif
};

struct fsched {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    fiber *ready_head, *ready_tail, *all_head, *all_tail;
    long now;
    int running;                 /* fibers on a thread right now */
    int err;
    int next_thread_id;
    long migrations;
    size_t out_len;
    char out[8192];
};

static _Thread_local fiber *cur_fiber;
static _Thread_local int thread_id;   /* 0: not yet given one */

int fsched_new(fsched **out)
{
    fsched *s = calloc(1, sizeof *s);
    if (s == NULL)
        return CV_ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    *out = s;
    return 0;
}

void fsched_free(fsched *s)
{
    if (s == NULL)
        return;
    for (fiber *f = s->all_head, *next; f != NULL; f = next) {
        next = f->next_all;
        /* A fiber that never finished keeps contexts entered on its
         * state: releasing the state exits them. */
        cv_exec_release(f->exec);
        cv_bound_release(f->body);
#ifdef FS_TSAN
        if (f->tsan != NULL)
            __tsan_destroy_fiber(f->tsan);
#endif
#ifdef FS_VALGRIND
        VALGRIND_STACK_DEREGISTER(f->vg_stack);
#endif
        free(f->stack);
        free(f);
    }
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void push_ready(fsched *s, fiber *f)
{
    f->state = READY;
    f->next_ready = NULL;
    if (s->ready_tail != NULL)
        s->ready_tail->next_ready = f;
    else
        s->ready_head = f;
    s->ready_tail = f;
}

static fiber *pop_ready(fsched *s)
{
    fiber *f = s->ready_head;
    if (f != NULL) {
        s->ready_head = f->next_ready;
        if (s->ready_head == NULL)
            s->ready_tail = NULL;
    }
    return f;
}

/* Back to the loop that resumed f; returns when f is resumed again,
 * possibly on another thread (nothing thread-local is read after it). */
static void switch_out(fiber *f)
{
#ifdef FS_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, f->ret_stack, f->ret_size);
#endif
#ifdef FS_TSAN
    __tsan_switch_to_fiber(f->ret_tsan, 0);
#endif
    swapcontext(&f->uc, f->ret);
#ifdef FS_ASAN
    /* resumed, perhaps by another thread: its stack is the one to go back to */
    __sanitizer_finish_switch_fiber(fake, &f->ret_stack, &f->ret_size);
#endif
}

static void fiber_entry(unsigned lo, unsigned hi)
{
    fiber *f = (fiber *)(((uintptr_t)hi << 16 << 16) | (uintptr_t)lo);
#ifdef FS_ASAN
    __sanitizer_finish_switch_fiber(NULL, &f->ret_stack, &f->ret_size);
#endif
    /* The body runs inside cv_context_run: every yield is inside run. */
    f->result = cv_bound_call(f->body);
    f->want = WANT_DONE;
#ifdef FS_ASAN
    __sanitizer_start_switch_fiber(NULL, f->ret_stack, f->ret_size);
#endif
#ifdef FS_TSAN
    __tsan_switch_to_fiber(f->ret_tsan, 0);
#endif
    setcontext(f->ret);
}

static int add_fiber(fsched *s, cv_bound *body, fiber **out)
{
    fiber *f = calloc(1, sizeof *f);
    void *stack = f != NULL ? malloc(STACK_SIZE) : NULL;
    int r = stack != NULL ? cv_exec_new(&f->exec) : CV_ENOMEM;
    if (r < 0) {
        free(stack);
        free(f);
        cv_bound_release(body);
        return r;
    }
    f->s = s;
    f->stack = stack;
    f->body = body;
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = stack;
    f->uc.uc_stack.ss_size = STACK_SIZE;
    f->uc.uc_link = NULL;
    uintptr_t p = (uintptr_t)f;
    makecontext(&f->uc, (void (*)(void))fiber_entry, 2,
                (unsigned)(p & 0xffffffffu), (unsigned)(p >> 16 >> 16));
#ifdef FS_TSAN
    f->tsan = __tsan_create_fiber(0);
#endif
#ifdef FS_VALGRIND
    f->vg_stack = VALGRIND_STACK_REGISTER(stack, (char *)stack + STACK_SIZE);
#endif
    pthread_mutex_lock(&s->mu);
    if (s->all_tail != NULL)
        s->all_tail->next_all = f;
    else
        s->all_head = f;
    s->all_tail = f;
    push_ready(s, f);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    if (out != NULL)
        *out = f;
    return 0;
}

int fsched_spawn(fsched *s, fiber_fn fn, void *arg, fiber **out)
{
    cv_bound *b;
    int r = cv_bound_new(fn, arg, &b);
    return r < 0 ? r : add_fiber(s, b, out);
}

int fsched_call_soon(fsched *s, fiber_fn fn, void *arg, cv_context *ctx)
{
    cv_bound *b;
    int r = ctx != NULL ? cv_bound_new_in(ctx, fn, arg, &b)
                        : cv_bound_new(fn, arg, &b);
    return r < 0 ? r : add_fiber(s, b, NULL);
}

fsched *fsched_self(void)
{
    return cur_fiber != NULL ? cur_fiber->s : NULL;
}

int fsched_thread(void)
{
    return thread_id;
}

int fsched_result(const fiber *f)
{
    return f->result;
}

void fsched_yield(void)
{
    fiber *f = cur_fiber;
    f->want = WANT_YIELD;
    switch_out(f);
}

void fsched_sleep(long ticks)
{
    fiber *f = cur_fiber;
    f->want = WANT_SLEEP;
    f->wake = ticks; /* relative; made absolute by the loop */
    switch_out(f);
}

void fsched_await(fiber *other)
{
    fiber *f = cur_fiber;
    f->want = WANT_AWAIT;
    f->awaited = other;
    switch_out(f);
}

/* Resumes f on this thread until it switches out (the lock not held). */
static void resume(fiber *f)
{
    ucontext_t here;
    cv_exec *prev;
    /* f is parked (the lock handed it to this thread alone): never fails */
    if (cv_exec_swap(f->exec, &prev) < 0)
        abort();
    f->ret = &here;
    cur_fiber = f;
#ifdef FS_TSAN
    f->ret_tsan = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(f->tsan, 0);
#endif
#ifdef FS_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, f->stack, STACK_SIZE);
#endif
    swapcontext(&here, &f->uc);
#ifdef FS_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    cur_fiber = NULL;
    cv_exec_swap(prev, NULL);
}

/* Under the lock, nothing ready, nothing running: the clock jumps to the
 * earliest sleeper. 0: someone woke; 1: all done; CV_EINVAL: a deadlock. */
static int wake_sleepers(fsched *s)
{
    long next = -1;
    int waiting = 0;
    for (fiber *f = s->all_head; f != NULL; f = f->next_all) {
        if (f->state == SLEEPING && (next < 0 || f->wake < next))
            next = f->wake;
        waiting |= f->state == AWAITING;
    }
    if (next < 0)
        return waiting ? CV_EINVAL : 1;
    s->now = next;
    for (fiber *f = s->all_head; f != NULL; f = f->next_all)
        if (f->state == SLEEPING && f->wake <= s->now)
            push_ready(s, f);
    return 0;
}

/* Under the lock: f came back wanting something. */
static void file_fiber(fsched *s, fiber *f)
{
    switch (f->want) {
    case WANT_YIELD:
        push_ready(s, f);
        break;
    case WANT_SLEEP:
        f->state = SLEEPING;
        f->wake += s->now;
        break;
    case WANT_AWAIT:
        if (f->awaited->state == DONE)
            push_ready(s, f);
        else
            f->state = AWAITING;
        break;
    default:
        f->state = DONE;
        if (f->result < 0 && s->err == 0)
            s->err = f->result;
        for (fiber *w = s->all_head; w != NULL; w = w->next_all)
            if (w->state == AWAITING && w->awaited == f)
                push_ready(s, w);
        break;
    }
}

int fsched_run(fsched *s)
{
    pthread_mutex_lock(&s->mu);
    if (thread_id == 0)
        thread_id = ++s->next_thread_id;
    int r = 0;
    for (;;) {
        if (s->err != 0) {
            r = s->err;
            break;
        }
        fiber *f = pop_ready(s);
        if (f == NULL) {
            if (s->running > 0) {
                pthread_cond_wait(&s->cond, &s->mu);
                continue;
            }
            int w = wake_sleepers(s);
            if (w == 0)
                continue;
            r = w < 0 ? w : 0;
            break;
        }
        f->state = RUNNING;
        if (f->last_thread != 0 && f->last_thread != thread_id)
            s->migrations++;
        f->last_thread = thread_id;
        s->running++;
        pthread_mutex_unlock(&s->mu);
        resume(f);
        pthread_mutex_lock(&s->mu);
        s->running--;
        file_fiber(s, f);
        pthread_cond_broadcast(&s->cond);
    }
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return r;
}

long fsched_now(const fsched *s)
{
    return s->now;
}

long fsched_migrations(const fsched *s)
{
    return s->migrations;
}

void *fsched_run_thread(void *runner)
{
    fsched_runner *a = runner;
    a->r = fsched_run(a->s);
    cv_thread_cleanup();
    return NULL;
}

void fsched_printf(fsched *s, const char *fmt, ...)
{
    pthread_mutex_lock(&s->mu);
    va_list ap;
    va_start(ap, fmt);
    textbuf_vappend(s->out, sizeof s->out, &s->out_len, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&s->mu);
}

const char *fsched_output(const fsched *s)
{
    return s->out;
}
