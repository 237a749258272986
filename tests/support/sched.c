/*
 * sched.c -- the cooperative scheduler of sched.h.
 *
 * A FIFO queue of ready tasks, as asyncio's loop._ready: a task that yields,
 * wakes or is spawned goes to the back. Sleepers and awaiters are found by
 * walking the list of all tasks, which is plenty for a test loop. The clock
 * is virtual: when nothing is ready it jumps to the earliest sleeper.
 *
 * Everything about contexts is in sched_spawn/sched_call_soon (which context
 * a task gets) and step() (entering it around each step).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "sched.h"
#include "textbuf.h"

enum { READY, SLEEPING, AWAITING, DONE };

struct sched {
    sched_task *ready_head;  /* the ready queue, run front first */
    sched_task *ready_tail;
    sched_task *all_head;    /* every task, in creation order */
    sched_task *all_tail;
    long now;                /* the virtual clock */
    size_t out_len;          /* bytes in out, without the NUL */
    char out[4096];          /* sched_printf's text; truncated when full */
};

int sched_new(sched **out)
{
    sched *s = calloc(1, sizeof *s);
    if (s == NULL)
        return CV_ENOMEM;
    *out = s;
    return 0;
}

void sched_free(sched *s)
{
    if (s == NULL)
        return;
    for (sched_task *t = s->all_head, *next; t != NULL; t = next) {
        next = t->next_all;
        if (t->owns_ctx)
            cv_context_release(t->ctx);
        free(t);
    }
    free(s);
}

/* Appends t to the list {*head, *tail} linked through the field that
 * link points at in t (and at the same offset in every task). */
static void list_append(sched_task **head, sched_task **tail, sched_task *t,
                        sched_task **link)
{
    size_t off = (size_t)((char *)link - (char *)t);
    *link = NULL;
    if (*tail != NULL)
        *(sched_task **)((char *)*tail + off) = t;
    else
        *head = t;
    *tail = t;
}

static void push_ready(sched *s, sched_task *t)
{
    t->state = READY;
    list_append(&s->ready_head, &s->ready_tail, t, &t->next_ready);
}

static sched_task *pop_ready(sched *s)
{
    sched_task *t = s->ready_head;
    if (t != NULL) {
        s->ready_head = t->next_ready;
        if (s->ready_head == NULL)
            s->ready_tail = NULL;
    }
    return t;
}

/* Makes a ready task running in ctx; owns says whether it releases ctx. */
static int add_task(sched *s, sched_step_fn fn, void *arg, cv_context *ctx,
                    int owns, sched_task **out)
{
    sched_task *t = calloc(1, sizeof *t);
    if (t == NULL) {
        if (owns)
            cv_context_release(ctx);
        return CV_ENOMEM;
    }
    t->loop = s;
    t->fn = fn;
    t->arg = arg;
    t->ctx = ctx;
    t->owns_ctx = owns;
    list_append(&s->all_head, &s->all_tail, t, &t->next_all);
    push_ready(s, t);
    if (out != NULL)
        *out = t;
    return 0;
}

int sched_spawn(sched *s, sched_step_fn fn, void *arg, sched_task **out)
{
    /* The copy is taken now, not at the first step: a task sees the values
     * its creator had when it made it (asyncio's create_task). */
    cv_context *ctx;
    int r = cv_copy_context(&ctx);
    if (r < 0)
        return r;
    return add_task(s, fn, arg, ctx, 1, out);
}

int sched_call_soon(sched *s, sched_step_fn fn, void *arg, cv_context *ctx)
{
    if (ctx != NULL)
        return add_task(s, fn, arg, ctx, 0, NULL);
    int r = cv_copy_context(&ctx);
    if (r < 0)
        return r;
    return add_task(s, fn, arg, ctx, 1, NULL);
}

int sched_sleep(sched_task *t, long ticks)
{
    t->wake = t->loop->now + ticks;
    return SCHED_SLEEP;
}

int sched_await(sched_task *t, sched_task *other)
{
    t->awaited = other;
    return SCHED_AWAIT;
}

long sched_now(const sched *s) { return s->now; }

/* t is done: whoever awaits it becomes ready. */
static void finish(sched *s, sched_task *t)
{
    t->state = DONE;
    for (sched_task *w = s->all_head; w != NULL; w = w->next_all)
        if (w->state == AWAITING && w->awaited == t)
            push_ready(s, w);
}

/* Runs one step of t inside t's context: the integration pattern. */
static int step(sched *s, sched_task *t)
{
    /* Fails with CV_EENTERED if ctx is entered elsewhere (a callback given
     * a context that is running): a context runs one flow at a time. */
    int r = cv_context_enter(t->ctx);
    if (r < 0)
        return r;
    int next = t->fn(t, t->arg);
    /* Exit even after a failed step, so the loop's own context is current
     * again; CV_ENOTENTERED here means the step left a context entered. */
    r = cv_context_exit(t->ctx);
    if (next < 0)
        return next;
    if (r < 0)
        return r;
    switch (next) {
    case SCHED_DONE:
        finish(s, t);
        return 0;
    case SCHED_YIELD:
        push_ready(s, t);
        return 0;
    case SCHED_SLEEP:
        t->state = SLEEPING;
        return 0;
    case SCHED_AWAIT:
        if (t->awaited == NULL || t->awaited->loop != s)
            return CV_EINVAL;
        if (t->awaited->state == DONE)
            push_ready(s, t);
        else
            t->state = AWAITING;
        return 0;
    default:
        return CV_EINVAL;
    }
}

/* Nothing is ready: move the clock to the earliest sleeper and wake every
 * task due then, in creation order. Returns 0 if no task sleeps. */
static int advance_clock(sched *s)
{
    sched_task *first = NULL;
    for (sched_task *t = s->all_head; t != NULL; t = t->next_all)
        if (t->state == SLEEPING && (first == NULL || t->wake < first->wake))
            first = t;
    if (first == NULL)
        return 0;
    if (first->wake > s->now)
        s->now = first->wake;
    for (sched_task *t = s->all_head; t != NULL; t = t->next_all)
        if (t->state == SLEEPING && t->wake <= s->now)
            push_ready(s, t);
    return 1;
}

int sched_run(sched *s)
{
    for (;;) {
        sched_task *t = pop_ready(s);
        if (t != NULL) {
            int r = step(s, t);
            if (r < 0)
                return r;
        } else if (!advance_clock(s)) {
            break;
        }
    }
    /* Nothing ready, nothing asleep: a task still awaiting waits forever. */
    for (sched_task *t = s->all_head; t != NULL; t = t->next_all)
        if (t->state != DONE)
            return CV_EINVAL;
    return 0;
}

void sched_printf(sched *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    textbuf_vappend(s->out, sizeof s->out, &s->out_len, fmt, ap);
    va_end(ap);
}

const char *sched_output(const sched *s) { return s->out; }
