/* SPDX-License-Identifier: MIT */
/*
 * tests/model/split_naive.pml -- the design docs/design/refcount.md ("Enter
 * and exit keep their two locked instructions: why", points 1 and 2)
 * explains we did NOT build: the owner's entered flag a plain word of its
 * own, written only by the owning thread, so that exit needs no locked
 * instruction, and the references a separate atomic count.
 *
 *   exit (owner)        entered = 0          plain store
 *                       r = refs             plain load; free if r == 0
 *   release (others)    old = fetch_sub(refs, 1)
 *                       if old == 1: e = entered; free if e == 0
 *
 * The owner A has the context entered and has already released its own
 * reference (R16 keeps the context alive); NR other threads (default 1)
 * hold one reference each and release it at any time. Every step that
 * touches the block asserts it is not freed, the free asserts it is the
 * first, and the end asserts it happened (no leak).
 *
 * This model must FAIL, under sequential consistency already: spin finds
 * the exit that made the context freeable (entered = 0), a release that
 * brings refs to 0, sees entered == 0 and frees, and the exit's load of
 * refs then reads the freed block (or, if it loads 0 before the free,
 * frees it a second time). tests/model/model.mk requires spin to report
 * an error here and prints the counterexample's length: the argument of
 * refcount.md is checked, not only stated. (The leak of the same
 * Dekker pattern -- both sides read the other's old value -- needs a
 * store buffer, which this model does not have.)
 */

#ifndef NR
#define NR 1
#endif

bool entered = true;   /* the owner's word */
byte refs = NR;        /* the others' references, atomic */
bool freed = false;
byte frees = 0;

inline free_ctx()
{
    atomic { assert(!freed); freed = true; frees++ }
}

proctype owner()            /* cv_context_exit, split */
{
    byte r;
    atomic { assert(!freed); entered = false };   /* the plain store */
    atomic { assert(!freed); r = refs };          /* the load */
    if
    :: r == 0 -> free_ctx()
    :: else -> skip
    fi
}

proctype releaser()    /* cv_context_release, split */
{
    byte old;
    bool e;
    atomic { assert(!freed); old = refs; refs-- }; /* fetch_sub */
    if
    :: old == 1 ->
        atomic { assert(!freed); e = entered };   /* the load */
        if
        :: !e -> free_ctx()
        :: else -> skip
        fi
    :: else -> skip
    fi
}

init
{
    byte i;
    atomic {
        run owner();
        i = 0;
        do
        :: i < NR -> run releaser(); i++
        :: else -> break
        od
    }
    /* every thread done: freed, once */
    (_nr_pr == 1) -> assert(freed && frees == 1)
}
