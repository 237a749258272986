/* SPDX-License-Identifier: MIT */
/*
 * tests/model/ctx_state.pml -- the lifetime protocol of one context as
 * core/context.c implements it: one atomic word, c_state = 2 * references
 * + the entered bit (CTX_REF = 2, CTX_ENTERED = 1).
 *
 * NT threads (2 or 3: spin -DNT=2 / -DNT=3; tests/model/model.mk runs
 * both) each start with one reference to the context, as a context
 * copied or retained once per thread would. Each thread then does, in
 * any order spin chooses, any of:
 *
 *   enter     cv_context_enter: one atomic fetch_or of CTX_ENTERED; the
 *             thread that saw the bit clear has entered, a thread that saw
 *             it set returns CV_EENTERED and changed nothing.
 *   use       any read of the block while holding a reference or having
 *             it entered (cv_context_get, the c_link stores of enter).
 *   exit      ctx_exit -> pop_top: cv__refs_drop(&c_state, CTX_ENTERED).
 *   release   cv_context_release -> ctx_drop: cv__refs_drop(&c_state,
 *             CTX_REF), also while entered (R16: it stays alive).
 *   retain    ctx_incref (a token, cv__context_retain): fetch_add
 *             CTX_REF, only by a thread that holds a reference; the extra
 *             reference is released like any other.
 *   cleanup   cv_thread_cleanup's drop of the base: ctx_drop_later(b,
 *             CTX_ENTERED | CTX_REF), one drop of 3 by a thread that has
 *             it entered and holds a reference.
 *
 * Bounds: each thread attempts at most TRIES enters (default 2), and
 * threads 0 .. RETAINERS-1 may retain (default all; the 3-thread run of
 * make model passes -DRETAINERS=1, 0.5 M states instead of 10 M).
 *
 * Whoever's drop returns true frees the context (ctx_free / exit_free /
 * contexts_free): a step of its own, after the drop.
 *
 * cv__refs_drop (maps/map.h) is modelled exactly, as two steps with an
 * interleaving point between them:
 *
 *   atomic_load(refs) == amount             step 1: "I hold all of it":
 *                                           true, no RMW, word untouched
 *   || atomic_fetch_sub(refs, amount) == amount   step 2 otherwise
 *
 * Checked (assertions; spin -a, pan -DSAFETY, every interleaving):
 *   R13  at most one thread inside at a time, and an enter that fails saw
 *        the bit of a thread that is inside at that instant (so threads
 *        racing on a context that is not entered do not all fail);
 *   R16  no use after free: every step that touches the block asserts it
 *        is not freed; the free happens with no reference held and not
 *        entered (ghost counts updated at each thread's own drop step);
 *        freed at most once;
 *   no leak: once every thread has finished (all references released,
 *        not entered) the context has been freed, exactly once.
 * Sequential consistency: the acquire/release orders of the C code are
 * not modelled (ThreadSanitizer covers them in make tsan).
 */

#ifndef NT
#define NT 3
#endif

#ifndef RETAINERS
#define RETAINERS NT      /* threads 0 .. RETAINERS-1 may retain */
#endif

#ifndef TRIES
#define TRIES 2           /* enters each thread attempts, at most */
#endif

#define ENTERED 1
#define REF     2
#define NOBODY  255

byte state = NT * REF;   /* c_state: every thread holds one reference */
bool freed = false;      /* the block went back to the allocator */
byte frees = 0;

/* ghosts: what the protocol must agree with */
byte holders = NT;       /* references held (dropped at the drop step) */
byte owner = NOBODY;     /* the thread that has it entered */
byte inside = 0;

/* cv__refs_drop(&state, amt), by thread `me`; `last` gets its answer.
 * The ghosts move at the step that gives the thread's hold up. */
inline refs_drop(amt, last, me)
{
    atomic {                               /* step 1: the acquire load */
        assert(!freed);
        v = state;
        if
        :: v == (amt) -> ghost_drop(amt, me)
        :: else -> skip
        fi
    }
    if
    :: v == (amt) -> last = true; v = 0      /* no RMW */
    :: else ->
        atomic {                           /* step 2: the fetch_sub */
            assert(!freed);
            last = (state == (amt));
            state = state - (amt);
            ghost_drop(amt, me);
            v = 0
        }
    fi
}

inline ghost_drop(amt, me)
{
    if
    :: ((amt) & REF) != 0 -> holders--
    :: else -> skip
    fi;
    if
    :: ((amt) & ENTERED) != 0 -> assert(owner == me); owner = NOBODY; inside--
    :: else -> skip
    fi
}

/* ctx_free and friends: only the thread whose drop answered true */
inline free_ctx()
{
    atomic {
        assert(!freed);                    /* no double free */
        assert(holders == 0 && owner == NOBODY && inside == 0);
        freed = true;
        frees++
    }
}

proctype T(byte me)
{
    byte v;
    byte old;
    bool last;
    bool ref = true;   /* this thread's own reference */
    bool extra = false;/* one retained on top (a token's) */
    bool in = false;   /* this thread has it entered */
    byte tries = 0;    /* enters attempted */

    do
    :: ref && !in && tries < TRIES ->      /* cv_context_enter */
        atomic {
            assert(!freed);
            old = state;
            state = state | ENTERED;
            if
            :: (old & ENTERED) == 0 ->
                assert(owner == NOBODY && inside == 0);
                owner = me;
                inside++
            :: else ->
                /* CV_EENTERED: someone is inside right now (R13) */
                assert(owner != NOBODY && owner != me)
            fi
        };
        if
        :: (old & ENTERED) == 0 ->
            atomic { assert(!freed); assert(inside == 1 && owner == me) }; /* c_link, depth */
            in = true
        :: else -> skip
        fi;
        old = 0;
        tries++
    :: in || ref || extra ->               /* a read of the block */
        atomic { assert(!freed); assert(!in || owner == me) }
    :: ref && !extra && me < RETAINERS ->  /* ctx_incref */
        atomic { assert(!freed); state = state + REF; holders++ };
        extra = true
    :: extra ->                            /* the extra one's release */
        last = false;
        refs_drop(REF, last, me);
        extra = false;
        if :: last -> free_ctx() :: else -> skip fi
    :: ref ->                              /* cv_context_release */
        last = false;
        refs_drop(REF, last, me);
        ref = false;
        if :: last -> free_ctx() :: else -> skip fi
    :: in ->                               /* ctx_exit -> pop_top */
        last = false;
        refs_drop(ENTERED, last, me);
        in = false;
        if :: last -> free_ctx() :: else -> skip fi
    :: in && ref ->                        /* cleanup: ENTERED | REF */
        last = false;
        refs_drop((ENTERED | REF), last, me);
        in = false;
        ref = false;
        if :: last -> free_ctx() :: else -> skip fi
    :: !in && !ref && !extra -> break
    od
}

init
{
    byte i;
    atomic {
        i = 0;
        do
        :: i < NT -> run T(i); i++
        :: else -> break
        od
    }
    /* every thread has let go of everything: freed, once (no leak) */
    (_nr_pr == 1) ->
    assert(freed && frees == 1 && holders == 0 && owner == NOBODY)
}
