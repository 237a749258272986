/* SPDX-License-Identifier: MIT */
/*
 * tests/model/spare.pml -- the spare of core/context.c ("The spare"): an
 * execution state keeps one reference to the current context's map back
 * instead of dropping it, vouched for by the context on its stack that
 * maps it, so that the reference is never the last one.
 *
 * One map M, whose count `mrefs` is atomic. Thread A starts with context
 * X entered (level 1 of its stack, above its base, which never maps M),
 * X mapping M (one reference) and A holding a user reference to X;
 * thread B holds a copy of M (one reference). In any order spin chooses:
 *
 * Thread A (every step mirrors core/context.c on A's stack)
 *   copy      ctx_copy of the current context, while it maps M: takes the
 *             spare if there is one (no count change), else cv__map_share
 *             (fetch_add on M's count). At most CMAX copies at a time.
 *   release   cv_context_release of a copy -> ctx_free: spare_room_for(M)
 *             (no spare, the current context maps M) keeps it as the
 *             spare with spare_s = depth + 1; else map_head_drop (the
 *             same test) and cv__refs_drop(M, 1).
 *   hand      a copy given to thread B (no count change).
 *   enter     cv_context_enter of a copy: it becomes Y, on top of the
 *             stack (level depth + 1), mapping M; A keeps its reference.
 *   write     cv_var_set in the current context while it maps M:
 *             spare_before_write (the spare goes back first: spare_flush,
 *             a cv__refs_drop asserted never the last), then the backend:
 *             a load of M's count reading 1 writes in place (asserted: the
 *             current context is M's only holder: R9); else either a new
 *             map with M's reference dropped (hamt, dictcopy) or a new
 *             layer whose parent is the context's reference (chainmap).
 *   exit      ctx_exit -> pop_top of the top context (Y, or X when Y is
 *             not entered): spare_vouched(d) gives the spare back first,
 *             then the entered bit goes; a context with no reference left
 *             is freed (exit_free -> contexts_free -> cv__map_release:
 *             no spare test for M itself; a chainmap layer's destroy drops
 *             its parent through cv__map_head_drop, which may keep it as
 *             the spare of the context now current).
 *   unref     cv_context_release of X or Y: nothing while it is entered
 *             (R16), else ctx_free as for a copy (a layer: its destroy's
 *             cv__map_head_drop).
 *   flush     spare_flush at any other time (since main's 6ab61a9,
 *             cv__thread_drop_caches, which cv_set_allocator calls, gives
 *             a spare kept whole back): a give-back is never the last
 *             reference, whenever it runs.
 *   read      any read of M (get) through what A holds.
 * Thread B
 *   release   ctx_free on B's stack, whose current context never maps M:
 *             cv__refs_drop(M, 1), at any time; read any time.
 *
 * cv__refs_drop is the two steps of maps/map.h (an acquire load that reads
 * 1 answers "last" without the RMW; else a fetch_sub), each a step of its
 * own. The contexts' own c_state words are not modelled here (only their
 * owner touches X and Y; tests/model/ctx_state.pml checks that protocol).
 *
 * Checked:
 *   - no use after free: every access to M asserts it is not freed;
 *   - M freed at most once, and only when nothing holds a reference to it,
 *     the spare included (ghost holders, moved at each drop step);
 *   - the count agrees with the holders at every state (monitor);
 *   - the spare's invariant (core/context.c) at every state: while there
 *     is a spare, the context at level spare_s - 1 of A's stack is entered
 *     and maps M, and M's count is at least 2 -- so the spare is never the
 *     last reference and never outlives its vouching context's exit or
 *     write (R14, R16);
 *   - at the end (A exited X, released everything; B released its copies)
 *     M has been freed, exactly once: the spare delays no free.
 */

#ifndef CMAX
#define CMAX 2          /* copies A or B holds at a time, at most */
#endif

#define MM 0            /* the context maps M: holds one M reference */
#define ML 1            /* maps a chainmap layer whose parent is M's reference */
#define MN 2            /* maps a map that holds no M reference */

byte mrefs = 2;         /* M's count: X's reference and B's copy's */
bool mfreed = false;
byte mfrees = 0;
bool mdying = false;    /* a drop answered "last": the free follows */

/* thread A's execution state (globals so the monitor can read them) */
bool xin = true;        /* X entered, level 1 */
bool xref = true;       /* A's user reference to X */
byte xm = MM;
bool yin = false;       /* Y entered, level ylev */
bool yref = false;      /* A's reference to Y (Y exists iff yin || yref) */
byte ym = MN;
byte ylev = 0;
byte ac = 0;            /* A's copies of M, not entered */
byte sp = 0;            /* ts.spare_s: 0 none, else 1 + the vouching level */
bool adone = false;

byte bc = 1;            /* B's copies of M */
byte inflight = 0;      /* references out of their holder, not yet dropped */

#define XHOLDS ((xin || xref) && xm != MN)
#define YHOLDS ((yin || yref) && ym != MN)
#define HOLDERS (ac + bc + (sp != 0) + XHOLDS + YHOLDS + inflight)
#define DEPTH (xin + yin)
/* the current context maps M */
#define CURM (yin -> ym == MM : (xin && xm == MM))
/* the context at level l of A's stack (0: the base) is entered, maps M */
#define LEVEL_MAPS_M(l) \
    ((l) == 1 && xin && xm == MM || \
     (l) == 1 && !xin && yin && ylev == 1 && ym == MM || \
     (l) == 2 && yin && ylev == 2 && ym == MM)

#define INV_COUNT (mfreed || mdying || mrefs == HOLDERS)
#define INV_SPARE (sp == 0 || (LEVEL_MAPS_M(sp - 1) && mrefs >= 2 && HOLDERS >= 2))

/* cv__refs_drop(&M->refs, 1); the caller moved the reference to inflight */
inline m_drop(last)
{
    atomic {                       /* the acquire load */
        assert(!mfreed);
        v = mrefs;
        if
        :: v == 1 -> inflight--; mdying = true
        :: else -> skip
        fi
    }
    if
    :: v == 1 -> last = true       /* "I hold all of it": no RMW */
    :: else ->
        atomic {                   /* the fetch_sub */
            assert(!mfreed);
            last = (mrefs == 1);
            mrefs--;
            inflight--;
            if :: last -> mdying = true :: else -> skip fi
        }
    fi;
    v = 0
}

inline m_free()                    /* the backend's destroy */
{
    atomic {
        assert(!mfreed && mdying);
        assert(HOLDERS == 0);
        mfreed = true;
        mfrees++;
        mdying = false
    }
}

inline m_drop_free()
{
    last = false;
    m_drop(last);
    if :: last -> m_free() :: else -> skip fi;
    last = false
}

/* spare_flush: the spare goes back, never the last reference. Its first
 * half (ts.spare_s = 0) is a step of its own, or part of the pop. */
inline spare_take()
{
    sp = 0;
    inflight++
}

inline spare_drop()
{
    last = false;
    m_drop(last);
    assert(!last)
}

inline spare_flush()
{
    atomic { spare_take() };
    spare_drop()
}

/* ctx_free / map_head_drop of a reference already in inflight: kept as
 * the spare if spare_room_for(M), else dropped */
inline drop_or_keep()
{
    if
    :: atomic { sp == 0 && CURM -> sp = DEPTH + 1; inflight-- }
    :: else -> m_drop_free()
    fi
}

/* a context that mapped `m` (MM or ML) is freed; via_ctx_free: by
 * ctx_free (a release), else by contexts_free (an exit's) */
inline ctx_gone(m, via_ctx_free)
{
    if
    :: m == MM && via_ctx_free -> drop_or_keep()   /* ctx_free's test */
    :: m == MM && !via_ctx_free -> m_drop_free()   /* cv__map_release */
    :: m == ML -> drop_or_keep()                   /* layer destroy: cv__map_head_drop */
    :: m == MN -> skip
    fi
}

proctype A()
{
    byte v;
    bool last;
    bool flush;
    byte m;
    do
    :: CURM && ac + bc < CMAX ->                  /* copy */
        if
        :: atomic { sp != 0 -> assert(!mfreed); sp = 0; ac++ }   /* the spare */
        :: else -> atomic { assert(!mfreed); mrefs++; ac++ }     /* fetch_add */
        fi
    :: ac > 0 ->                                  /* release a copy */
        atomic { ac--; inflight++ };
        drop_or_keep()
    :: ac > 0 ->                                  /* hand a copy to B */
        atomic { ac--; bc++ }
    :: ac > 0 && !yin && !yref ->                 /* enter a copy: Y */
        atomic { assert(!mfreed); ac--; ylev = DEPTH + 1; yin = true; yref = true; ym = MM }
    :: CURM ->                                    /* write in the current context */
        if
        :: sp != 0 -> spare_flush()               /* spare_before_write */
        :: else -> skip
        fi;
        atomic { assert(!mfreed); v = mrefs };    /* the backend's "refs == 1" */
        if
        :: v == 1 ->
            atomic { assert(!mfreed); assert(HOLDERS == 1 && CURM) }  /* in place: alone (R9) */
        :: else ->
            if
            :: yin -> atomic { ym = MN; inflight++ }; m_drop_free()   /* hamt: new root, */
            :: !yin -> atomic { xm = MN; inflight++ }; m_drop_free()  /* M dropped */
            :: yin -> ym = ML                     /* chainmap: a layer over M */
            :: !yin -> xm = ML
            fi
        fi;
        v = 0
    :: yin ->                                     /* exit Y (the top) */
        /* pop_top: current = below, then spare_vouched(d). Both plain
         * stores and loads of A's own state, which no other thread sees:
         * one step. */
        atomic {
            yin = false;
            m = ym;
            if                                    /* no reference left: Y's */
            :: !yref -> if :: ym != MN -> inflight++ :: else -> skip fi;
                        ym = MN; ylev = 0         /* hold goes with its free */
            :: else -> skip
            fi;
            flush = (sp > DEPTH + 1);
            if :: flush -> spare_take() :: else -> skip fi
        };
        if
        :: flush -> spare_drop(); flush = false   /* exit_spare */
        :: else -> skip
        fi;
        if
        :: !yref -> ctx_gone(m, false)            /* exit_free -> contexts_free */
        :: else -> skip
        fi;
        m = 0
    :: xin && !yin ->                             /* exit X */
        atomic {
            xin = false;
            m = xm;
            if
            :: !xref -> if :: xm != MN -> inflight++ :: else -> skip fi;
                        xm = MN
            :: else -> skip
            fi;
            flush = (sp > DEPTH + 1);
            if :: flush -> spare_take() :: else -> skip fi
        };
        if
        :: flush -> spare_drop(); flush = false
        :: else -> skip
        fi;
        if
        :: !xref -> ctx_gone(m, false)
        :: else -> skip
        fi;
        m = 0
    :: yref ->                                    /* release Y */
        if
        :: yin -> yref = false                    /* stays alive (R16) */
        :: else ->
            atomic { yref = false; m = ym; if :: ym != MN -> inflight++ :: else -> skip fi; ym = MN; ylev = 0 };
            ctx_gone(m, true);
            m = 0
        fi
    :: xref ->                                    /* release X */
        if
        :: xin -> xref = false
        :: else ->
            atomic { xref = false; m = xm; if :: xm != MN -> inflight++ :: else -> skip fi; xm = MN };
            ctx_gone(m, true);
            m = 0
        fi
    :: sp != 0 -> spare_flush()                   /* a give-back at any time */
    :: XHOLDS || YHOLDS || ac > 0 -> atomic { assert(!mfreed) }   /* read M */
    :: !xin && !xref && !yin && !yref && ac == 0 ->
        assert(sp == 0);                          /* nothing on the stack */
        adone = true;
        break
    od
}

proctype B()
{
    byte v;
    bool last;
    do
    :: bc > 0 ->                                  /* release a copy */
        atomic { bc--; inflight++ };
        m_drop_free()
    :: bc > 0 -> atomic { assert(!mfreed) }       /* read M */
    :: bc == 0 && adone -> break
    od
}

/* the invariants, at every state */
active proctype monitor()
{
end_inv:
    atomic { !(INV_COUNT && INV_SPARE) -> assert(INV_COUNT && INV_SPARE) }
}

init
{
    atomic { run A(); run B() };
    /* A exited X and let go of everything, B released its copies */
    (_nr_pr == 2) ->
    assert(mfreed && mfrees == 1 && sp == 0 && HOLDERS == 0)
}
