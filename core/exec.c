/* SPDX-License-Identifier: MIT */
/*
 * exec.c -- execution states for stackful runtimes (R17-R22).
 *
 * A thread's ctxvar state (tstate.h) is two parts: what a fiber takes with
 * it -- the stack of entered contexts, the base context, the cleanup count
 * cv_context_run compares, the spare -- and what stays with the thread: the lookup
 * cache, the generation counter, the ring of saved generations, the free
 * list. A cv_exec is the first part, parked while its fiber is not
 * running; cv_exec_swap copies the seven words of the state in place out to
 * their owner (a cv_exec, or the thread's own slot `own`) and the seven of
 * the next one in (the stack, and the spare map reference that belongs
 * with it: context.c, "The spare"). The fields stay inline in the thread state, so get, set,
 * enter, exit and copy read them exactly as before: no pointer more.
 *
 * The lookup cache stays exact by generations (context.c): a swap gives
 * the thread's cache a generation never used on this thread, so no entry
 * filled for another state can answer. The generations a state saved for
 * the levels it covers (the ring, which stays with the thread) cannot be
 * trusted either: while the state was parked another state wrote the ring,
 * and a state that ran on another thread filled that thread's cache, not
 * this one's, and may have written its contexts there. So the swap also
 * writes fresh generations for the min(depth, 64) levels of the incoming
 * state: an exit then starts the level below with an empty cache, as a
 * level deeper than the ring always did. Bounded work, no allocation, and
 * the exit path is unchanged.
 *
 * "In place" is one atomic flag per cv_exec, taken with an exchange, so
 * two threads swapping in one state cannot both win (CV_EACTIVE), and its
 * release/acquire pair hands the parked fields -- and everything the fiber
 * wrote before it was parked -- to the thread that swaps it in next.
 */
#include "tstate.h"

struct cv_exec {
    _Atomic int x_active;        /* 1 while in place on some thread */
    cv__xregs x_regs;            /* its stack while parked */
};

/* A new generation for the cache and one for each saved level. */
static void fresh_generations(void)
{
    size_t n = ts.depth < GEN_RING ? ts.depth : GEN_RING;
    for (size_t d = 0; d < n; d++)
        ts.below_gen[d] = ++ts.gen_seq + 1;
    cv_i_tcache_v1.gen = ++ts.gen_seq + 1;
}

int cv_exec_new(cv_exec **out)
{
    if (out == NULL)
        return CV_EINVAL;
    cv_exec *x = cv__malloc(sizeof *x);
    if (x == NULL)
        return CV_ENOMEM;
    atomic_init(&x->x_active, 0);
    x->x_regs = (cv__xregs){0};
    *out = x;
    return 0;
}

cv_exec *cv_exec_current(void)
{
    return ts.in_place;
}

int cv_exec_swap(cv_exec *to, cv_exec **prev)
{
    cv_exec *cur = ts.in_place;
    if (to != cur) {
        if (to != NULL &&
            atomic_exchange_explicit(&to->x_active, 1, memory_order_acquire))
            return CV_EACTIVE;
        if (cur != NULL)
            cur->x_regs = ts.regs;
        else
            ts.own = ts.regs;
        ts.regs = to != NULL ? to->x_regs : ts.own;
        ts.in_place = to;
        if (cur != NULL)
            atomic_store_explicit(&cur->x_active, 0, memory_order_release);
        fresh_generations();
    }
    if (prev != NULL)
        *prev = cur;
    return 0;
}

int cv_exec_release(cv_exec *x)
{
    if (x == NULL)
        return 0;
    if (x == ts.in_place ||
        atomic_exchange_explicit(&x->x_active, 1, memory_order_acquire))
        return CV_EACTIVE;
    /* Put x in place for a moment and clean it up as a thread's state:
     * its contexts are exited top first and its base released. The state
     * in place stays marked as such meanwhile. */
    cv__xregs saved = ts.regs;
    cv_exec *was = ts.in_place;
    ts.regs = x->x_regs;
    ts.in_place = x;
    fresh_generations();
    cv_thread_cleanup();
    ts.regs = saved;
    ts.in_place = was;
    fresh_generations();
    cv__free(x);
    return 0;
}

void cv__exec_thread_exit(void)
{
    (void)cv_exec_swap(NULL, NULL); /* never fails for NULL */
}
