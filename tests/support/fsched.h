/*
 * fsched.h -- a stackful fiber scheduler on ucontext: the second kind of
 * runtime ctxvar wires into (sched.h is the first, a loop of step
 * functions). A fiber is a function on a stack of its own that yields from
 * anywhere -- inside cv_context_run, inside nested enters, between a set
 * and its reset -- and may be resumed by any of the threads that call
 * fsched_run, so a fiber migrates between threads.
 *
 * The ctxvar part is two calls per switch (SPEC R17-R22):
 *   - each fiber has a cv_exec, its own stack of entered contexts;
 *   - the loop swaps it in before switching to the fiber and back after:
 *
 *         cv_exec *prev;
 *         cv_exec_swap(f->exec, &prev);
 *         swapcontext(&loop_uc, &f->uc);
 *         cv_exec_swap(prev, NULL);
 *
 *   - a fiber starts in a copy of its spawner's context, taken at spawn
 *     (asyncio's task semantics), and its whole body runs inside
 *     cv_context_run(copy, ...): every fiber yields inside run.
 *
 * Built with TSan or ASan, the switches are annotated for the sanitizer.
 */
#ifndef CV_FSCHED_H
#define CV_FSCHED_H

#include "ctxvar.h"

typedef struct fsched fsched;
typedef struct fiber fiber;

/* A fiber's body: its result is kept; a negative one (a CV_E* error) stops
 * fsched_run, which returns it. */
typedef int (*fiber_fn)(void *arg);

int fsched_new(fsched **out);                 /* 0 or CV_ENOMEM */
void fsched_free(fsched *s);                  /* frees every fiber */

/* A fiber running fn(arg) in a copy of the current context, taken now
 * (from a fiber: of that fiber's current context). out may be NULL. */
int fsched_spawn(fsched *s, fiber_fn fn, void *arg, fiber **out);
/* A callback: fn(arg) on a fiber of its own, in ctx itself (its sets stay
 * in ctx; ctx is retained) or, for NULL ctx, in a copy taken now. It goes
 * through a cv_bound (cv_bound_new_in / cv_bound_new). */
int fsched_call_soon(fsched *s, fiber_fn fn, void *arg, cv_context *ctx);

/* From inside a fiber. */
void fsched_yield(void);                      /* to the back of the queue */
void fsched_sleep(long ticks);                /* virtual clock */
void fsched_await(fiber *other);              /* until other is done */
fsched *fsched_self(void);                    /* the running fiber's loop */
int fsched_result(const fiber *f);            /* its body's result */
int fsched_thread(void);                      /* 1, 2, ...: which of the
                                               * loop's threads runs it */

/* Runs fibers until every one is done. Several threads may call it on one
 * scheduler at once: each resumes whichever fiber is ready, so fibers move
 * between them. 0, the first negative result of a body, or CV_EINVAL when
 * the fibers left all wait for one another. */
int fsched_run(fsched *s);
long fsched_now(const fsched *s);
/* How many times a fiber was resumed on a thread other than its last. */
long fsched_migrations(const fsched *s);

/* A pthread body for running one loop on several threads: runs
 * fsched_run(s), keeps its result in r and cleans up the thread's state
 * (cv_thread_cleanup) before the thread ends. */
typedef struct fsched_runner {
    fsched *s;
    int r;
} fsched_runner;
void *fsched_run_thread(void *runner);

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void fsched_printf(fsched *s, const char *fmt, ...);
const char *fsched_output(const fsched *s);

#endif
