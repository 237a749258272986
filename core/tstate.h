/* SPDX-License-Identifier: MIT */
/*
 * tstate.h -- the thread state, shared by context.c and exec.c. Private.
 *
 * A thread's state is two parts. The part a fiber takes with it when it
 * switches (an execution state, R17-R22): the stack of entered contexts
 * (`current` and the depth above `base`), the base context, the count
 * of cleanups that cv_context_run compares, and the spare map reference
 * that one of its contexts vouches for (context.c, "The spare"). The part
 * that stays with the thread: its generation counter, the ring of saved generations, its free
 * lists of blocks and its exit destructor. The first part is a union of a
 * named struct (exec.c copies it whole: a swap is seven words in, seven out)
 * and the same fields anonymously, so that context.c still says ts.current.
 */
#ifndef CV_TSTATE_H
#define CV_TSTATE_H

#include "internal.h"

/* Cache generations of covered contexts, kept for the first GEN_RING
 * levels above the base (see context.c). */
#define GEN_RING 64

typedef struct free_block {
    struct free_block *next;
} free_block;

/* Classes of the map block cache (context.c, "Map blocks"): class c holds
 * blocks of 16 c + 8 bytes, up to CV_MAP_BLOCK_MAX (maps/map.h). */
#define MAP_CLASSES ((CV_MAP_BLOCK_MAX + 7) / 16 + 1)

#define CV__EXEC_FIELDS                                                    \
    cv_context *current;         /* top of the stack; NULL before first use */ \
    size_t depth;                /* contexts entered above the base */      \
    unsigned cleanups;           /* cv_thread_cleanup calls (for run) */    \
    cv_context *base;            /* this state's own context, or NULL */  \
    size_t spare_s;              /* 0: no spare; else 1 + the level whose \
                                  * context maps it (context.c) */        \
    cv_map *spare;               /* the spare's map reference (kept beside \
                                  * spare_ctx->c_map: copy compares it    \
                                  * without a load through spare_ctx) */  \
    cv_context *spare_ctx;       /* NULL, or a released copy holding it */

/* A drop held back until the write that made it is whole (maps/key.h;
 * context.c, "Hooks run on a whole state"). The thread's, not a fiber's:
 * a write never spans a swap. */
typedef struct slot_drop {
    cv_var *key;
    void *val;
    unsigned what;               /* DROP_VALUE | DROP_KEY */
} slot_drop;

typedef struct map_drop {
    const cv_backend *ops;
    cv_map *map;                 /* one reference, released by ops */
} map_drop;

#define DROP_VALUE 1u
#define DROP_KEY 2u

/* What a cv_exec holds while it is not in place. */
typedef struct cv__xregs {
    CV__EXEC_FIELDS
} cv__xregs;

typedef struct tstate {
    union {
        struct {
            CV__EXEC_FIELDS
        };
        cv__xregs regs;          /* the same four fields, as one object */
    };
    uint64_t gen_seq;            /* the last generation handed out */
    free_block *free_list;       /* cached blocks of BLOCK_SIZE bytes */
    unsigned n_free;             /* length of free_list, <= FREE_MAX */
    free_block *map_free[MAP_CLASSES]; /* cached map blocks, by class */
    unsigned char n_map_free[MAP_CLASSES]; /* their lengths, <= MAP_FREE_MAX */
    uint64_t below_gen[GEN_RING]; /* [d]: the generation covered by level d+1 */
    int registered;              /* the exit destructor is armed */
    cv_exec *in_place;           /* the execution state in place; NULL: the
                                  * thread's own, whose fields are then in
                                  * `own` (exec.c) */
    cv__xregs own;
    unsigned writing;            /* a map write is under way: drops wait */
    unsigned n_slot_drops;       /* held back, <= CV_SLOT_DROPS_MAX */
    unsigned n_map_drops;        /* held back, <= CV_MAP_DROPS_MAX */
    slot_drop slot_drops[CV_SLOT_DROPS_MAX];
    map_drop map_drops[CV_MAP_DROPS_MAX];
} tstate;

/* The TLS model is the build's (docs/design/tls.md): initial-exec in the
 * archive, TLS descriptors in the shared library, which must stay
 * dlopen-able. */
CV_HIDDEN extern _Thread_local tstate cv__ts;
#define ts cv__ts

/* exec.c: the thread is exiting; puts its own state back in place, so that
 * the exit cleanup releases the thread's contexts and not a fiber's. */
CV_HIDDEN void cv__exec_thread_exit(void);

#endif
