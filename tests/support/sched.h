/* SPDX-License-Identifier: MIT */
/*
 * sched.h -- a small cooperative scheduler: how a runtime gives every task
 * its own context. It is the event loop of scenarios S4, S5, S7, S8, S9 and
 * S14 of SPEC.md and the README's example of wiring ctxvar into a runtime.
 *
 * C has no coroutines, so a task is a step function plus a program counter.
 * The loop calls the step; the step does some work, sets t->pc to where it
 * resumes, and returns what it waits for:
 *
 *     return SCHED_YIELD;            run again after the tasks now ready
 *     return sched_sleep(t, 2);      run again 2 ticks later (virtual clock)
 *     return sched_await(t, child);  run again when child is done
 *     return SCHED_DONE;             finished
 *     return r;  (r < 0)             a CV_E* error: sched_run stops, returns r
 *
 * The ctxvar part is what asyncio does:
 *  - sched_spawn captures cv_copy_context() when the task is made, so a task
 *    starts with its creator's values and its own sets stay in its copy;
 *  - the loop enters the task's context around every step, so cv_var_get and
 *    cv_var_set inside a step act on that task's context alone;
 *  - sched_call_soon runs a callback in a context the caller chooses
 *    (asyncio's loop.call_soon(cb, context=ctx)).
 *
 * Single-threaded: a scheduler and its tasks belong to the thread that runs
 * it. Output goes to a buffer (sched_printf) so tests compare exact text.
 */
#ifndef CV_SCHED_H
#define CV_SCHED_H

#include "ctxvar.h"

typedef struct sched sched;
typedef struct sched_task sched_task;

/* One step of a task: returns a SCHED_* value or a negative CV_E* error. */
typedef int (*sched_step_fn)(sched_task *t, void *arg);

enum { SCHED_DONE = 0, SCHED_YIELD = 1, SCHED_SLEEP = 2, SCHED_AWAIT = 3 };

struct sched_task {
    int pc;                 /* where the next step resumes; starts at 0 */
    sched *loop;            /* the scheduler it runs on */
    /* The fields below belong to sched.c. */
    sched_step_fn fn;       /* called once per step */
    void *arg;              /* passed to fn */
    cv_context *ctx;        /* entered around every step */
    int owns_ctx;           /* 1: ctx is the task's own copy, released with it */
    int state;              /* ready, sleeping, awaiting or done (sched.c) */
    long wake;              /* sleeping: the tick it wakes at */
    sched_task *awaited;    /* awaiting: the task it waits for */
    sched_task *next_ready; /* link of the ready queue */
    sched_task *next_all;   /* link of every task, in creation order */
};

int sched_new(sched **out);            /* 0 or CV_ENOMEM */
/* Frees the scheduler and every task, finished or not. */
void sched_free(sched *s);

/* A task that runs fn(t, arg) in a copy of the current context, taken now.
 * Called from a step, the copy is of that step's task. out may be NULL. */
int sched_spawn(sched *s, sched_step_fn fn, void *arg, sched_task **out);
/* A callback: a task run in ctx itself, not in a copy, so its sets stay in
 * ctx (borrowed: ctx must outlive the run). NULL ctx: a copy of the current
 * context, taken now, as asyncio's call_soon does without context=. */
int sched_call_soon(sched *s, sched_step_fn fn, void *arg, cv_context *ctx);

/* For a step's return: sleep n ticks, or wait until `other` is done. */
int sched_sleep(sched_task *t, long ticks);
int sched_await(sched_task *t, sched_task *other);

/* Runs until every task is done: 0, or the first error of a step, of
 * entering or exiting a task's context (e.g. CV_EENTERED), or CV_EINVAL if
 * the tasks left all wait for one another. */
int sched_run(sched *s);
long sched_now(const sched *s);        /* the virtual clock, in ticks */

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void sched_printf(sched *s, const char *fmt, ...);
const char *sched_output(const sched *s); /* all printed so far */

#endif
