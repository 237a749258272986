/* SPDX-License-Identifier: MIT */
/*
 * context.c -- contexts, tokens, and each thread's stack of entered
 * contexts (R3-R13, R16).
 *
 * Per thread there is one tstate (C11 _Thread_local): `current`, the top
 * of the stack of entered contexts, linked through c_link, and `base`, the
 * context the thread got on first use. The base sits at the bottom of the
 * stack and is marked entered, so no other thread can run it and it cannot
 * be exited. A pthread key destructor releases the stack when the thread
 * exits; cv_thread_cleanup does the same on demand. The stack, its depth
 * and the base belong to the execution state in place (tstate.h, exec.c):
 * a fiber scheduler swaps them, seven words, on every fiber switch.
 *
 *      tstate.current --> [ctx C] --c_link--> [ctx B] --c_link--> [base]
 *                          entered            entered            entered
 *
 * The link lives in the context, not in a per-thread array, so that enter
 * and run never allocate, at any depth: run must call fn whenever c is not
 * entered (R11), and an array that grows could fail. What exit restores
 * besides the link -- the cache generation of the context below -- sits in
 * a per-thread ring of GEN_RING slots indexed by depth; a level deeper than
 * that gets a fresh generation at exit instead (its cache refills). So a
 * context is four words, 32 bytes, and a snapshot that differs by one set
 * is that plus what the map retains for the set.
 *
 * Entering is exclusive across threads, and an entered context stays alive
 * whatever the user released (R16). Both live in one atomic word, c_state:
 * bit 0 is "entered" and the rest counts references in steps of 2. Enter
 * is one atomic fetch-and-or of bit 0, and only the thread that saw it
 * clear has entered, so exactly one of two racing threads wins (R13, S15);
 * exit is one fetch-and-subtract of 1, and whoever brings the word to 0
 * (exit or the last release) frees the context. Two atomic operations per
 * enter/exit pair, not three, and no window in which the flag and the
 * count disagree. Those two locked instructions are the floor of enter +
 * exit while contexts may move between threads (figures, against CPython's
 * plain stores under its GIL: docs/design/context.md).
 *
 * A context is written only by the thread that has it entered. The map
 * behind it is a persistent value (maps/map.h): copying a context shares
 * the map in O(1), and the next write on either side stops sharing.
 */
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include "internal.h"
#include "tstate.h"
#include "trace.h"

struct cv_context {
    _Atomic size_t c_state;      /* 2 * (users + tokens) + entered bit */
    const cv_backend *c_ops;     /* the backend of c_map, fixed */
    cv_map *c_map;               /* owned reference; NULL is empty */
    uintptr_t c_link;            /* while entered: the context below, and
                                  * LINK_BY_RUN if cv_context_run entered
                                  * it or it is a base (only the owning
                                  * thread touches it; a bit of the
                                  * pointer, not a field); stale once
                                  * exited, never read then */
};

#define LINK_BY_RUN ((uintptr_t)1)

struct cv_token {
    cv_var *t_var;               /* owned reference */
    cv_context *t_ctx;           /* owned reference */
    void *t_old;                 /* retained when t_has_old */
    int t_has_old;               /* 0: the var was MISSING */
    int t_used;                  /* set by a successful reset */
};

/*
 * The lookup cache. A get is answered from a small direct-mapped table of
 * (var, value, generation) entries, indexed by a hash of the var's address
 * (ctxvar.h declares it, so that the hit can be inlined into the caller).
 * Entering a context (and cleanup, and first use) gives the thread's
 * generation cv_i_tcache_v1.gen a value never used before, which invalidates every
 * entry at once; a set or reset in the current context rewrites the var's
 * own entry instead. That is exact because a context is written only by the
 * thread that has it entered (R13): nothing outside this thread can change
 * what its current context maps.
 *
 * Exit gives back the generation the context below had when it was covered,
 * so the entries it filled before are believed again. That is exact too: a
 * covered context stays entered by this thread, and only the current
 * context is ever written (set and reset take no context argument), so
 * nothing changed it while it was covered. A task that enters a child and
 * comes back -- the PEP 550 pattern, the mix benchmark -- then reads its
 * vars from the cache instead of its map. CPython's cache misses there.
 * A var cannot be freed while the current context maps it, and a var made
 * at a freed var's address can only enter the current map through a set on
 * this thread, which rewrites its entry; so a stale pointer match is never
 * believed. (CPython keeps one such cache per var, which is why it is not
 * thread-safe and is off in its free-threaded build; this one is per thread.)
 *
 * "Absent" is a bit of the entry's generation (CV_I_GEN_ABSENT), not a
 * sentinel value, so that the inlined hit needs no third compare: an
 * absent entry fails it and the call answers the default or CV_ELOOKUP.
 */
typedef struct cv_i_centry cache_entry;

/* The default TLS model here and for ts below, never initial-exec: the
 * library must stay dlopen-able (docs/design/tls.md). The build uses TLS
 * descriptors (-mtls-dialect=gnu2), which cost a few instructions when the
 * library's TLS is static and still work when it is not. */
_Thread_local struct cv_i_tcache cv_i_tcache_v1 = {.gen = 1};

/* What lookups return for "not in the current context". */
static char cache_absent;
#define ABSENT ((void *)&cache_absent)

/*
 * Tokens and contexts are small, equal-sized blocks made and dropped on the
 * hot paths (set with a token, copy_context). Each thread keeps up to
 * FREE_MAX of them on a free list in front of the allocation hook, so that
 * the common make-and-drop pays no allocator round trip. Blocks come from
 * the hook and go back to it when the list is full and at cleanup; a call
 * that fails returns its blocks straight to the hook, so a failed call
 * holds nothing (the OOM tests count on it).
 */
#define FREE_MAX 64

/* The thread state (tstate.h; `ts` names cv__ts): what a fiber takes with
 * it on a swap (exec.c) and what stays with the thread. The TLS model is
 * the build's, as for the cache above (docs/design/tls.md). */
_Thread_local tstate cv__ts;

/* ------------------------------------------------------------------------
 * Hooks run on a whole state (R14a)
 *
 * A map write (set, del) can let go of the value it replaces, of a key's
 * last reference, of a node or layer it no longer needs. Each of those can
 * run a hook of the user's, and a hook may call back into the library:
 * set the var whose value it releases, copy the context, run another. So
 * nothing of the user's runs while the write is under way. The core marks
 * the write (write_begin), the map hands what it lets go of to the drops
 * below, which hold it in this thread; the core finishes its own state --
 * the map stored in the context, the lookup cache noted, the token filled
 * -- and write_end then runs what was held, last first. A hook that writes
 * is a write of its own: it runs its own drops when it ends, and the loop
 * here goes on with what is left. Vars without hooks run no user code on
 * a drop, so theirs are made at once and cost nothing to hold.
 * ------------------------------------------------------------------------ */

static void drop_now(cv_var *k, void *val, unsigned what)
{
    if (what & DROP_VALUE)
        cv__value_release(k, val);
    if (what & DROP_KEY)
        cv__var_decref(k); /* last: may free k */
}

static void slot_drop_push(cv_var *k, void *val, unsigned what)
{
    if (CV_LIKELY(ts.writing == 0 || k->v_release == NULL)) {
        drop_now(k, val, what);
        return;
    }
    CV_ASSERT(ts.n_slot_drops < CV_SLOT_DROPS_MAX);
    if (CV_UNLIKELY(ts.n_slot_drops == CV_SLOT_DROPS_MAX)) {
        drop_now(k, val, what); /* cannot happen: the maps stay below */
        return;
    }
    ts.slot_drops[ts.n_slot_drops++] = (slot_drop){k, val, what};
}

void cv__slot_drop(cv_var *k, void *val)
{
    slot_drop_push(k, val, DROP_VALUE | DROP_KEY);
}

void cv__slot_drop_key(cv_var *k)
{
    slot_drop_push(k, NULL, DROP_KEY);
}

void cv__slot_drop_value(const cv_var *k, void *val)
{
    slot_drop_push((cv_var *)k, val, DROP_VALUE);
}

void cv__map_drop_later(const cv_backend *ops, cv_map *m)
{
    if (m == NULL)
        return;
    if (ts.writing == 0) {
        ops->release(m);
        return;
    }
    CV_ASSERT(ts.n_map_drops < CV_MAP_DROPS_MAX);
    if (CV_UNLIKELY(ts.n_map_drops == CV_MAP_DROPS_MAX)) {
        ops->release(m); /* cannot happen: the maps stay below */
        return;
    }
    ts.map_drops[ts.n_map_drops++] = (map_drop){ops, m};
}

static void drops_run(void)
{
    while (ts.n_slot_drops + ts.n_map_drops > 0) {
        if (ts.n_slot_drops > 0) {
            slot_drop d = ts.slot_drops[--ts.n_slot_drops];
            drop_now(d.key, d.val, d.what);
        } else {
            map_drop d = ts.map_drops[--ts.n_map_drops];
            d.ops->release(d.map);
        }
    }
}

static inline void write_begin(void)
{
    ts.writing++;
}

/* After the caller's state is whole: runs what the write held back. */
static inline void write_end(void)
{
    if (--ts.writing == 0 &&
        CV_UNLIKELY(ts.n_slot_drops + ts.n_map_drops > 0))
        drops_run();
}

/* Test builds (CV_DEBUG): the backend's whole invariant after every
 * successful write, so every test that writes checks every step
 * (CPython's Py_DEBUG, SQLite's debug builds). O(n) a write: never in the
 * release library. */
#ifdef CV_DEBUG
static void write_check(const cv_context *c)
{
    const char *why = c->c_ops->check(c->c_map);
    if (why != NULL)
        cv__assert_fail(why, "check() after a write", 0);
}
#else
#define write_check(c) ((void)0)
#endif

static inline cache_entry *cache_slot(const cv_var *v)
{
    return &cv_i_tcache_v1.e[cv_i_cache_index(v)];
}

/* A new current context: one whose entries, if any, are not to be
 * believed (enter, cleanup, first use). Exit restores instead. Starting
 * at 2 keeps every generation above the initial 1, and far below the
 * ABSENT bit (2^63 enters is centuries). */
static inline void set_current(cv_context *c)
{
    ts.current = c;
    cv_i_tcache_v1.gen = ++ts.gen_seq + 1;
}

/* Makes v's entry say val (a value or ABSENT) in the current context. */
static inline void cache_fill(cache_entry *e, const cv_var *v, void *val)
{
    uint64_t gen = cv_i_tcache_v1.gen | CV_TRACE_GEN_BITS(); /* core/trace.h */
    e->var = v;
    if (val == ABSENT) {
        e->val = NULL;
        e->gen = gen | CV_I_GEN_ABSENT;
    } else {
        e->val = val;
        e->gen = gen;
    }
}

/* A set or reset in the current context: the var's entry stays exact. */
static inline void cache_note(const cv_var *v, void *val)
{
    cache_fill(cache_slot(v), v, val);
}

#define BLOCK_SIZE                                                        \
    (sizeof(struct cv_context) > sizeof(struct cv_token)                  \
         ? sizeof(struct cv_context)                                      \
         : sizeof(struct cv_token))

static int arm_exit_cleanup(void);

/* The free lists' moves, one definition each, for every list of cached
 * blocks (contexts and tokens; map blocks, by class): a head and a length
 * of tstate's, named in place. Macros, not functions of a list's address:
 * the address of a thread-local costs a load of the thread pointer and
 * two adds where a field named in place is one %fs-relative operand, and
 * the map lists stay two arrays, heads and lengths, which index by a
 * scale of 8 and 1 (callgrind: the mix 4-5 instructions more with
 * functions or with a struct per list). */
#define LIST_PUSH(head, n, p)                                             \
    do {                                                                  \
        free_block *b_ = (free_block *)(p);                               \
        b_->next = (head);                                                \
        (head) = b_;                                                      \
        (n)++;                                                            \
    } while (0)

/* Takes b, the list's head (peeked by the caller). */
#define LIST_UNLINK(head, n, b)                                           \
    do {                                                                  \
        (head) = (b)->next;                                               \
        (n)--;                                                            \
    } while (0)

/* Gives every block of a list back to the hook (its length: the caller's
 * to reset). */
static void list_drain(free_block **head)
{
    while (*head != NULL) {
        free_block *b = *head;
        *head = b->next;
        cv__free(b);
    }
}

static void *block_alloc(void)
{
    free_block *b = ts.free_list;
    if (CV_LIKELY(b != NULL)) {
        LIST_UNLINK(ts.free_list, ts.n_free, b);
        return b;
    }
    return cv__malloc(BLOCK_SIZE);
}

/* Undoes block_alloc in a call that fails: back where it came from, so the
 * failed call leaves the allocator and the list as they were. */
static void block_unalloc(void *p, unsigned n_free_before)
{
    if (ts.n_free < n_free_before)
        LIST_PUSH(ts.free_list, ts.n_free, p);
    else
        cv__free(p);
}

/* Keeps p for reuse; the exit destructor must be armed first, or the
 * cached block would outlive the thread. */
static inline void block_free(void *p)
{
    if (ts.n_free < FREE_MAX &&
        (CV_LIKELY(ts.registered) || arm_exit_cleanup() == 0)) {
        LIST_PUSH(ts.free_list, ts.n_free, p);
        return;
    }
    cv__free(p);
}

/* ------------------------------------------------------------------------
 * Map blocks (maps/map.h: cv__map_block_alloc, cv__map_block_free)
 *
 * A write into a copied context makes a small map block (a chainmap layer
 * of one slot, 40 bytes; a dictcopy table of a few pairs) and the copy's
 * release frees it again: the PEP 550 mix does both once per task. So
 * each thread also keeps the small map blocks it frees, by size class,
 * up to MAP_FREE_MAX a class, and hands them out again. Class c holds
 * blocks of 16 c + 8 bytes (MAP_CLASSES of them, 8 to CV_MAP_BLOCK_MAX =
 * 280 bytes; bigger requests go to the hook as they are): a request is
 * rounded up to its class's size, so that any block of a class
 * serves any request of it. Those are the sizes a 64-bit glibc hands out
 * anyway (a chunk of 16 c + 16 bytes has 16 c + 8 usable), and chainmap's
 * layers (24 + 16 * 2^k bytes) and adaptive's small maps (8 + 16 * 2^k)
 * are class sizes exactly. As for contexts
 * and tokens, the blocks come from the hook and go back to it when their
 * class is full and whenever the free list is drained (cleanup, thread
 * exit, cv_set_allocator). A map write that fails frees no block it
 * obtained (the backends allocate what a write needs in one block, or,
 * for hamt, not through this cache), so a failed call holds nothing.
 * ------------------------------------------------------------------------ */
#define MAP_FREE_MAX 4

_Static_assert(MAP_FREE_MAX <= UCHAR_MAX, "n_map_free is a byte");

static inline size_t map_class(size_t size)
{
    return (size + 7) >> 4;
}

_Static_assert(((CV_MAP_BLOCK_MAX + 7) >> 4) < MAP_CLASSES &&
                   (CV_MAP_BLOCK_MAX - 8) % 16 == 0,
               "the largest request has a class, whose size it is");

void *cv__map_block_take(size_t size)
{
    size_t c = map_class(size);
    free_block *b = ts.map_free[c];
    if (CV_LIKELY(b != NULL)) {
        LIST_UNLINK(ts.map_free[c], ts.n_map_free[c], b);
        return b;
    }
    return cv__malloc((c << 4) + 8);
}

static CV_ALWAYS_INLINE void map_block_keep(void *p, size_t c)
{
    LIST_PUSH(ts.map_free[c], ts.n_map_free[c], p);
}

/* A block the fast road below cannot keep: its class is full (to the
 * hook), or the exit destructor is not armed yet (armed first, or the
 * cached block would outlive the thread). Out of line: the fast road
 * keeps no frame. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void map_block_give_slow(void *p, size_t c)
{
    if (ts.n_map_free[c] < MAP_FREE_MAX && arm_exit_cleanup() == 0) {
        map_block_keep(p, c);
        return;
    }
    cv__free(p);
}

/* Keeps p (not NULL; size as it was asked of cv__map_block_take) for
 * reuse. */
void cv__map_block_give(void *p, size_t size)
{
    size_t c = map_class(size);
    if (CV_LIKELY(ts.n_map_free[c] < MAP_FREE_MAX && ts.registered)) {
        map_block_keep(p, c);
        return;
    }
    map_block_give_slow(p, c);
}

static void blocks_drain(void)
{
    list_drain(&ts.free_list);
    ts.n_free = 0;
    for (size_t c = 0; c < MAP_CLASSES; c++) {
        list_drain(&ts.map_free[c]);
        ts.n_map_free[c] = 0;
    }
}

static void spare_flush(const cv_backend *ops);

/* A spare kept whole is a cached block too: it goes back with the others
 * (its reference is not the last one). A spare map reference alone stays:
 * it is a map's reference like any live context's. */
void cv__thread_drop_caches(void)
{
    if (ts.spare_ctx != NULL)
        spare_flush(ts.spare_ctx->c_ops);
    blocks_drain();
}

static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;
static int exit_key_ok;

/* ------------------------------------------------------------------------
 * Lifetime
 * ------------------------------------------------------------------------ */

#define CTX_ENTERED ((size_t)1)
#define CTX_REF ((size_t)2)

static void ctx_incref(cv_context *c)
{
    atomic_fetch_add_explicit(&c->c_state, CTX_REF, memory_order_relaxed);
}

/* ------------------------------------------------------------------------
 * The spare (issue #16: copy + release without a locked instruction)
 *
 * A copy shares its source's map: one atomic increment of the map's count,
 * and the copy's release one atomic decrement -- the two locked
 * instructions of copy + release. A task runtime copies the same context
 * over and over (each task it spawns, each callback it binds) and drops
 * most copies soon after, on the same thread. So the execution state keeps
 * one reference back instead of dropping it: a released copy whose map is
 * the current context's stays whole as `spare_ctx` (block, backend and
 * map reference), and the next copy of that map is that block again, with
 * plain loads and stores. A map reference alone is kept the same way when
 * a backend drops a parent layer that the current context maps
 * (cv__map_head_drop: a copy written in and released, the PEP 550 mix);
 * the next copy takes it with a block from the free list.
 *
 * Invariant: while there is a spare (spare_s != 0), the context at level
 * spare_s - 1 of this state's stack (0: the base) has `spare` as its map.
 * So the spare's reference is never the last one, and keeping it delays
 * no free and no release hook: a map is freed when its last *other* holder
 * lets go, exactly as without the spare (R14, R16). What ends the vouching
 * gives the spare back (spare_flush: an ordinary drop, never the last):
 * that context leaving the stack (exit, run's unwind, cleanup), and a
 * write in the current context while it maps the spare (the write then
 * sees the count it would see without the spare, and writes in place as
 * before). Only the current context is ever written, and a covered one
 * cannot leave the stack before those above it, so nothing else can end
 * the vouching. The spare belongs to the stack, not to the thread: a swap
 * (exec.c) moves it with the fiber, which may resume on another thread
 * (R21), and its reference is an ordinary counted one wherever it goes.
 *
 *   copy(cur) -> k       k->map = M, M's count +1 (locked: no spare yet)
 *   release(k)           cur maps M: k kept whole, spare_s = depth + 1
 *   copy(cur) -> k       k again: no lock, no free-list traffic
 *   set(x) in cur        cur maps the spare: k goes back first (the count
 *                        of M drops to what it is without the spare)
 * ------------------------------------------------------------------------ */

static void ctx_free_slow(cv_context *c);

/* Makes m the spare (k: the released copy holding it, or NULL for the
 * reference alone), vouched for by the current context, which maps m. */
static CV_ALWAYS_INLINE void spare_keep(cv_map *m, cv_context *k)
{
    ts.spare_s = ts.depth + 1;
    ts.spare = m;
#if defined(__GNUC__)
    /* two plain stores: gcc 12 would pair these two through a vector
     * register, four instructions (callgrind: release 2 fewer) */
    __asm__("" ::: "memory");
#endif
    ts.spare_ctx = k;
}

/* There is no spare any more (its reference was taken or dropped). */
static CV_ALWAYS_INLINE void spare_forget(void)
{
    ts.spare_s = 0;
    ts.spare = NULL;
    ts.spare_ctx = NULL;
}

/* Gives the spare back; ops is the backend of the context that maps it,
 * which still does: never the last reference, so no hook runs here. Out
 * of line: the exits and pops that test for it keep no frame. */
#if defined(__GNUC__)
__attribute__((noinline, cold))
#endif
static void spare_flush(const cv_backend *ops)
{
    cv_context *k = ts.spare_ctx;
    cv_map *m = ts.spare;
    spare_forget();
    CV_ASSERT(m == NULL || ops->destroy == NULL ||
              atomic_load(&((cv_map_head *)m)->refs) > 1);
    if (k != NULL)
        ctx_free_slow(k); /* its block cached, its reference dropped */
    else if (m != NULL)
        cv__map_release(ops, m);
}

/* The current context, if it maps m and there is no spare yet: where a
 * reference to m being let go of may be kept. */
static CV_ALWAYS_INLINE int spare_room_for(const cv_map *m)
{
    const cv_context *cur = ts.current;
    return ts.spare_s == 0 && cur != NULL && cur->c_map == m;
}

int cv__map_head_drop(cv_map *m)
{
    if (spare_room_for(m)) {
        spare_keep(m, NULL);
        return 0;
    }
    return cv__refs_drop(&((cv_map_head *)m)->refs, 1);
}

/* Before a write in the current context c: the spare goes back if c maps
 * it (see above). */
static CV_ALWAYS_INLINE void spare_before_write(const cv_context *c)
{
    if (CV_UNLIKELY(ts.spare_s != 0 && c->c_map == ts.spare))
        spare_flush(c->c_ops);
}

/* The stack is down to depth d, its context at level d + 1 just popped:
 * true if that context vouched for the spare, which must then go back
 * before the context's own reference can go. */
static CV_ALWAYS_INLINE int spare_vouched(size_t d)
{
    return ts.spare_s > d + 1;
}

/* Frees c, whose count has reached 0. The context is gone before its
 * values' hooks run (R14a). */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void ctx_free_slow(cv_context *c)
{
    CV_TRACE_CTX_FREE(c);
    const cv_backend *ops = c->c_ops;
    cv_map *map = c->c_map;
    block_free(c);
    cv__map_release(ops, map);
}

/* The same, inline, and with no frame on its common roads: a released
 * copy of the current context's map kept whole as the spare (above); or,
 * for a backend with destroy and room on the armed free list, the map's
 * count dropped first (no hook runs on that), the block cached, and only a
 * last reference costs a call (a tail call, once c is gone). */
static CV_ALWAYS_INLINE void ctx_free(cv_context *c)
{
    if (spare_room_for(c->c_map)) {
        spare_keep(c->c_map, c);
        return;
    }
    const cv_backend *ops = c->c_ops;
    cv_map_head *h = (cv_map_head *)c->c_map;
    if (CV_LIKELY(ops->destroy != NULL && h != NULL &&
                  ts.n_free < FREE_MAX && ts.registered)) {
        /* no room for a spare (tested above): an ordinary drop */
        int last = cv__refs_drop(&h->refs, 1);
        LIST_PUSH(ts.free_list, ts.n_free, c);
        if (CV_UNLIKELY(last))
            ops->destroy((cv_map *)h);
        return;
    }
    ctx_free_slow(c);
}

/* Drops `amount` (a reference or the entered bit); frees at 0. */
static CV_ALWAYS_INLINE void ctx_drop(cv_context *c, size_t amount)
{
    if (cv__refs_drop(&c->c_state, amount))
        ctx_free(c);
}

void cv__context_retain(cv_context *c)
{
    CV_TRACE_CTX(0, CTX_RETAIN, c, NULL);
    ctx_incref(c);
}

/* The release while tracing: recorded first, out of line, so that the
 * hot release keeps no frame. */
static CV_TRACE_COLD void traced_release(cv_context *c)
{
    CV_TRACE_CTX(c != NULL ? 0 : -1, CTX_RELEASE, c, NULL);
    if (c != NULL)
        ctx_drop(c, CTX_REF);
}

void cv_context_release(cv_context *c)
{
    if (CV_UNLIKELY(CV__TRACE_MAYBE())) {
        traced_release(c);
        return;
    }
    if (c != NULL)
        ctx_drop(c, CTX_REF);
}

static int ctx_alloc(const cv_backend *b, cv_map *map, cv_context **out)
{
    cv_context *c = block_alloc();
    if (c == NULL)
        return CV_ENOMEM;
    atomic_init(&c->c_state, CTX_REF);
    c->c_ops = b;
    c->c_map = map;
    c->c_link = 0;
    *out = c;
    return 0;
}

/* ------------------------------------------------------------------------
 * Thread state
 * ------------------------------------------------------------------------ */

static void thread_exit_cb(void *arg)
{
    (void)arg;
    /* Disarmed first: a block cached after this (by another destructor
     * releasing a context) re-arms, and glibc runs destructors again. */
    ts.registered = 0;
    cv__exec_thread_exit();
    cv_thread_cleanup();
}

static void make_exit_key(void)
{
    exit_key_ok = pthread_key_create(&exit_key, thread_exit_cb) == 0;
}

/* Arms the destructor that releases this thread's contexts at exit. The
 * value stored only has to be non-NULL for the destructor to run. */
static int arm_exit_cleanup(void)
{
    if (CV_LIKELY(ts.registered))
        return 0;
    pthread_once(&exit_key_once, make_exit_key);
    if (!exit_key_ok || pthread_setspecific(exit_key, &ts) != 0)
        return CV_ENOMEM;
    ts.registered = 1;
    return 0;
}

/* The current context, creating the thread's base context on first use
 * (*made tells the caller, so that a call failing later can undo it: a
 * failed call leaves nothing behind). On failure returns NULL, sets *err. */
static cv_context *current_or_make(int *err, int *made)
{
    *made = 0;
    if (CV_LIKELY(ts.current != NULL))
        return ts.current;
    const cv_backend *b = cv_backend_default();
    if (b == NULL) {
        *err = CV_ENOBACKEND;
        return NULL;
    }
    int r = arm_exit_cleanup();
    cv_context *c = NULL;
    if (r == 0)
        r = ctx_alloc(b, NULL, &c);
    if (r < 0) {
        *err = r;
        return NULL;
    }
    /* the base: entered for good, and its reference is the thread's;
     * marked as run's own, so that exit's one test of that bit also
     * refuses the base (nothing is below it: c_link is never followed) */
    atomic_store_explicit(&c->c_state, CTX_REF | CTX_ENTERED,
                          memory_order_relaxed);
    c->c_link = LINK_BY_RUN;
    ts.base = c;
    set_current(c);
    *made = 1;
    CV_TRACE_CTX(0, CTX_BASE, c, NULL);
    return c;
}

/* Drops the base context a failing call made (it is still empty). */
static void unmake_base(int made)
{
    if (made)
        cv_thread_cleanup();
}

cv_context *cv_context_current(void)
{
    int err, made;
    return current_or_make(&err, &made);
}

/* Pops the top of this thread's stack (ts.depth > 0). */
/* Drops `amount` from c; if that was its last hold, links c onto *dead
 * (through c_link, free once c is off the stack) instead of freeing it:
 * a call that exits several contexts (run's unwind, cleanup) frees them
 * with contexts_free once the stack is whole, so that their values' hooks
 * see the state the call leaves (R14a), at any depth, allocating nothing. */
static void ctx_drop_later(cv_context *c, size_t amount, cv_context **dead)
{
    if (!cv__refs_drop(&c->c_state, amount))
        return;
    c->c_link = (uintptr_t)*dead;
    *dead = c;
}

static void contexts_free(cv_context *dead)
{
    while (dead != NULL) {
        cv_context *next = (cv_context *)dead->c_link;
        CV_TRACE_CTX_FREE(dead);
        const cv_backend *ops = dead->c_ops;
        cv_map *map = dead->c_map;
        block_free(dead);
        cv__map_release(ops, map); /* hooks may run: dead is freed, next is not */
        dead = next;
    }
}

/* Takes c, the top, off the stack: the context below becomes current,
 * with the cache generation it had when c covered it (a fresh one past
 * GEN_RING). c_link keeps what it was (only an entered context's is read,
 * and enter sets it); link_bits is what it may carry besides the pointer.
 * Returns the new depth. Every pop does this: exit's, run's, cleanup's. */
static CV_ALWAYS_INLINE size_t stack_unlink(const cv_context *c,
                                            uintptr_t link_bits)
{
    ts.current = (cv_context *)(c->c_link & ~link_bits);
    size_t d = --ts.depth;
    if (CV_LIKELY(d < GEN_RING))
        cv_i_tcache_v1.gen = ts.below_gen[d];
    else
        cv_i_tcache_v1.gen = ++ts.gen_seq + 1; /* not kept: a fresh one */
    return d;
}

/* Pops the top of this thread's stack (ts.depth > 0) onto *dead if that
 * was its last hold (run's unwind, cleanup). */
static void stack_pop(cv_context **dead)
{
    cv_context *c = ts.current;
    size_t d = stack_unlink(c, LINK_BY_RUN);
    ctx_drop_later(c, CTX_ENTERED, dead);
    /* c, even if dropped, is freed only by the caller's contexts_free:
     * it still maps the spare, which is not the last reference here */
    if (CV_UNLIKELY(spare_vouched(d)))
        spare_flush(c->c_ops);
}

void cv_thread_cleanup(void)
{
    CV_TRACE_CTX(0, CLEANUP, NULL, NULL);
    /* Contexts the user left entered are exited, top first. */
    cv_context *dead = NULL;
    ts.cleanups++;
    while (ts.depth > 0)
        stack_pop(&dead);
    if (ts.base != NULL) {
        cv_context *b = ts.base;
        spare_flush(b->c_ops); /* the base's, if any is left */
        ts.base = NULL;
        set_current(NULL);
        ctx_drop_later(b, CTX_ENTERED | CTX_REF, &dead);
    }
    contexts_free(dead);
    blocks_drain();
}

/* ------------------------------------------------------------------------
 * Enter, exit, run (R11, R12)
 * ------------------------------------------------------------------------ */

/* enter's first call on a thread, out of line: the hot enter then needs
 * no frame (callgrind: 34 instructions an enter with it inline, see
 * docs/design/refcount.md). */
#if defined(__GNUC__)
__attribute__((noinline, cold))
#endif
static int enter_arm(cv_context *c)
{
    int r = arm_exit_cleanup();
    return r < 0 ? r : cv_context_enter(c);
}

int cv_context_enter(cv_context *c)
{
    if (c == NULL)
        return CV_EINVAL;
    if (CV_UNLIKELY(!ts.registered))
        return enter_arm(c);
    /* One locked OR, not a compare-and-swap loop (5.3 ns against 9.2 on
     * the project machine): setting a bit that is already set changes
     * nothing, so the loser of a race learns it from the old value and
     * leaves the word as the winner made it. */
    if (atomic_fetch_or_explicit(&c->c_state, CTX_ENTERED,
                                 memory_order_acq_rel) & CTX_ENTERED)
        return CV_EENTERED;
    CV_TEST_YIELD_POINT(CV_YIELD_ENTER);
    c->c_link = (uintptr_t)ts.current;
    if (ts.depth < GEN_RING)
        ts.below_gen[ts.depth] = cv_i_tcache_v1.gen;
    ts.depth++;
    set_current(c);
    CV_TRACE_CTX(0, ENTER, c, NULL);
    return 0;
}

/* The end of an exit whose context's entered bit was its last hold: it
 * is off the stack, and freed now (a dead list of one). Out of line: the
 * hot exit keeps no frame. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static int exit_free(cv_context *c)
{
    c->c_link = 0;
    contexts_free(c);
    return 0;
}

/* The end of every exit: c is off the stack; its entered bit goes, and
 * with it c if that was its last hold. */
static CV_ALWAYS_INLINE int exit_drop(cv_context *c)
{
    if (CV_UNLIKELY(cv__refs_drop(&c->c_state, CTX_ENTERED)))
        return exit_free(c);
    return 0;
}

/* The end of an exit whose context vouched for the spare: the spare goes
 * back first, while c still maps it. */
#if defined(__GNUC__)
__attribute__((noinline, cold))
#endif
static int exit_spare(cv_context *c)
{
    spare_flush(c->c_ops);
    return exit_drop(c);
}

/* Pops c, the top of the stack, and drops its entered bit: exit's pop
 * (link_bits 0: exit has tested LINK_BY_RUN clear), and run's when fn
 * left nothing entered (LINK_BY_RUN). */
static CV_ALWAYS_INLINE int pop_top(cv_context *c, uintptr_t link_bits)
{
    size_t d = stack_unlink(c, link_bits);
    if (CV_UNLIKELY(spare_vouched(d)))
        return exit_spare(c);
    return exit_drop(c);
}

/* The exit, not traced (the public call records it). */
static CV_ALWAYS_INLINE int ctx_exit(cv_context *c)
{
    if (c == NULL)
        return CV_EINVAL;
    /* A context entered by cv_context_run is exited by that run: fn exiting
     * it would leave run nothing to restore (CPython refuses it too). */
    /* The base (depth 0) carries LINK_BY_RUN too: one test refuses both. */
    if (c != ts.current || (c->c_link & LINK_BY_RUN))
        return CV_ENOTENTERED;
    return pop_top(c, 0);
}

static CV_TRACE_COLD int traced_exit(cv_context *c)
{
    int r = ctx_exit(c);
    CV_TRACE_CTX(r, EXIT, c, NULL);
    return r;
}

int cv_context_exit(cv_context *c)
{
    if (CV_UNLIKELY(CV__TRACE_MAYBE()))
        return traced_exit(c);
    return ctx_exit(c);
}

/* fn may have left contexts of its own entered: unwind them, so that
 * the previous context is restored whatever fn did (R11). If fn called
 * cv_thread_cleanup, c is gone from the stack (and maybe freed: it is
 * not touched, not even compared, as its block may be a new context
 * now) and whatever fn entered afterwards is unwound down to the base:
 * levels are counted, not addresses. Out of line: a fiber that yielded
 * inside fn may come back on another thread (R21), and a compiler may keep
 * the thread pointer it read before the call in a register; a function of
 * its own reads it afresh. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void run_unwind(size_t level, unsigned cleanups)
{
    if (CV_LIKELY(ts.cleanups == cleanups && ts.depth == level)) {
        (void)pop_top(ts.current, LINK_BY_RUN); /* fn left nothing entered */
        return;
    }
    size_t keep = ts.cleanups == cleanups ? level - 1 : 0;
    cv_context *dead = NULL;
    while (ts.depth > keep)
        stack_pop(&dead);
    contexts_free(dead); /* the whole unwind first (R14a) */
}

int cv_context_run(cv_context *c, int (*fn)(void *arg), void *arg)
{
    if (c == NULL || fn == NULL)
        return CV_EINVAL;
    int r = cv_context_enter(c);
    if (r < 0)
        return r;
    size_t level = ts.depth; /* c's */
    unsigned cleanups = ts.cleanups;
    c->c_link |= LINK_BY_RUN;
    CV_TRACE_CTX(0, RUN, c, NULL);
    int result = fn(arg);
    run_unwind(level, cleanups);
    CV_TRACE_CTX(0, RUN_END, NULL, NULL);
    return result;
}

/* ------------------------------------------------------------------------
 * Making and reading contexts (R8-R10)
 * ------------------------------------------------------------------------ */

int cv_context_new_on(const cv_backend *b, cv_context **out)
{
    if (b == NULL || out == NULL)
        return CV_EINVAL;
    int r = ctx_alloc(b, NULL, out);
    CV_TRACE_CTX(r, CTX_NEW, *out, NULL);
    return r;
}

int cv_context_new(cv_context **out)
{
    if (out == NULL)
        return CV_EINVAL;
    const cv_backend *b = cv_backend_default();
    if (b == NULL)
        return CV_ENOBACKEND;
    int r = ctx_alloc(b, NULL, out);
    CV_TRACE_CTX(r, CTX_NEW, *out, NULL);
    return r;
}

/* Makes the block n a copy of c holding the map reference m; the roads of
 * the copy end here. Not traced: the public calls record the copy. */
static CV_ALWAYS_INLINE int copy_fill(const cv_context *c, cv_context *n,
                                      cv_map *m, cv_context **out)
{
    atomic_init(&n->c_state, CTX_REF);
    n->c_ops = c->c_ops;
    n->c_map = m;
    n->c_link = 0;
    *out = n;
    return 0;
}

/* The copy: the map shared first, then a block, so that a failure has
 * only that reference to give back (it was not the last: c holds one). */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static int ctx_copy_slow(const cv_context *c, cv_context **out)
{
    const cv_backend *ops = c->c_ops;
    cv_map *m;
    int r = cv__map_share(ops, c->c_map, &m);
    if (CV_UNLIKELY(r < 0))
        return r;
    cv_context *n = block_alloc();
    if (CV_UNLIKELY(n == NULL)) {
        cv__map_release(ops, m);
        return CV_ENOMEM;
    }
    return copy_fill(c, n, m, out);
}

/* A copy of c that takes the map reference kept alone as the spare, with
 * a block of its own. Out of line: the hot copy keeps no frame. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static int copy_spare_map(const cv_context *c, cv_context **out)
{
    cv_map *m = ts.spare;
    cv_context *n = block_alloc();
    if (CV_UNLIKELY(n == NULL))
        return CV_ENOMEM; /* the spare stays: nothing changed */
    spare_forget();
    return copy_fill(c, n, m, out);
}

/* The same, inline, for a backend with destroy (the share is one
 * increment) and a block on the free list; else the road above. */
static CV_ALWAYS_INLINE int ctx_copy(const cv_context *c, cv_context **out)
{
    const cv_backend *ops = c->c_ops;
    cv_map *m = c->c_map;
    if (ts.spare_s != 0 && m == ts.spare) { /* the spare: see above */
        cv_context *k = ts.spare_ctx;
        if (CV_UNLIKELY(k == NULL))
            return copy_spare_map(c, out);
        spare_forget();
        /* a whole context; its backend may differ if m is NULL (the
         * empty map of another backend) */
        atomic_init(&k->c_state, CTX_REF);
        k->c_ops = ops;  /* c_link: read only while entered */
        *out = k;
        return 0;
    }
    free_block *b = ts.free_list;
    if (CV_UNLIKELY(ops->destroy == NULL || b == NULL))
        return ctx_copy_slow(c, out);
    int r = cv__map_share(ops, m, &m);
    if (CV_UNLIKELY(r < 0))
        return r;
    LIST_UNLINK(ts.free_list, ts.n_free, b);
    cv_context *n = (cv_context *)b;
    return copy_fill(c, n, m, out);
}

/* The copies while tracing: the same, recorded, out of line (the hot
 * copy keeps no frame). */
static CV_TRACE_COLD int traced_copy(const cv_context *c, cv_context **out)
{
    int r = ctx_copy(c, out);
    CV_TRACE_CTX(r, COPY, c, *out);
    return r;
}

int cv_context_copy(const cv_context *c, cv_context **out)
{
    if (c == NULL || out == NULL)
        return CV_EINVAL;
    if (CV_UNLIKELY(CV__TRACE_MAYBE()))
        return traced_copy(c, out);
    return ctx_copy(c, out);
}

#if defined(__GNUC__)
__attribute__((noinline))
#endif
static int copy_first(cv_context **out)
{
    int err = 0, made;
    cv_context *c = current_or_make(&err, &made);
    if (c == NULL)
        return err;
    err = ctx_copy(c, out);
    if (err < 0)
        unmake_base(made);
    else
        CV_TRACE_CTX(err, COPY, c, *out);
    return err;
}

int cv_copy_context(cv_context **out)
{
    if (out == NULL)
        return CV_EINVAL;
    cv_context *c = ts.current;
    if (CV_UNLIKELY(c == NULL))
        return copy_first(out); /* the thread's first use: makes its base */
    if (CV_UNLIKELY(CV__TRACE_MAYBE()))
        return traced_copy(c, out);
    return ctx_copy(c, out);
}

const cv_backend *cv_context_backend(const cv_context *c)
{
    return c ? c->c_ops : NULL;
}

int cv_context_get(const cv_context *c, const cv_var *v, void **out)
{
    if (c == NULL || v == NULL || out == NULL)
        return CV_EINVAL;
    int r = c->c_ops->find(c->c_map, v, out);
    CV_TRACE_CTX_GET(r, c, v);
    return r;
}

size_t cv_context_len(const cv_context *c)
{
    return c ? c->c_ops->len(c->c_map) : 0;
}

int cv_context_foreach(const cv_context *c,
                       int (*cb)(cv_var *v, void *value, void *arg), void *arg)
{
    if (c == NULL || cb == NULL)
        return CV_EINVAL;
    CV_TRACE_CTX(0, FOREACH, c, NULL);
    /* Walk a shared reference: if cb sets a var in c, the write copies
     * instead of changing the map under the walk. */
    cv_map *snap;
    int r = cv__map_share(c->c_ops, c->c_map, &snap);
    if (r < 0)
        return r;
    r = c->c_ops->foreach(snap, cb, arg);
    cv__map_release(c->c_ops, snap);
    return r;
}

/* ------------------------------------------------------------------------
 * Get, set, reset (R3-R6)
 * ------------------------------------------------------------------------ */

/* What a get answers, given v's value in the current context or ABSENT. */
static inline int get_answer(const cv_var *v, void *val, void **out)
{
    if (CV_LIKELY(val != ABSENT)) {
        *out = val;
        return 0;
    }
    if (v->v_has_default) {
        *out = v->v_default;
        return 0;
    }
    return CV_ELOOKUP;
}

/* The generation a fill gives an entry now (core/trace.h's bit while
 * tracing may be on). */
static CV_ALWAYS_INLINE uint64_t fill_gen(void)
{
    return cv_i_tcache_v1.gen | CV_TRACE_GEN_BITS();
}

/* 1 and *val: e answers for v in the current context, present or absent
 * (the trace bit masked: the library's own test, not the inline one). */
static CV_ALWAYS_INLINE int entry_valid(const cache_entry *e, const cv_var *v)
{
    return e->var == v &&
           (e->gen & ~(CV_I_GEN_ABSENT | CV__GEN_TRACED)) == cv_i_tcache_v1.gen;
}

/* Fills *ep, v's entry (not valid), from c's map (c: the current
 * context): 1, v's value in (*ep)->val; or 0, absent. Written so that only
 * the entry and the generation are live across the call through the
 * backend table: the generation is read before it and the entry's address
 * is made opaque, so the callers use it again instead of recomputing it
 * from v and the thread pointer, and read v back from it (callgrind,
 * get_switch, a first get after a switch on chainmap: 124 instructions
 * with v, the entry's index and the thread pointer kept across the call in
 * five saved registers, 110 this way). The find runs no code of the
 * user's and never reads the cache: nothing sees the entry half-filled. */
static CV_ALWAYS_INLINE int entry_fill(cache_entry **ep, const cv_var *v,
                                       const cv_context *c)
{
    cache_entry *e = *ep;
    uint64_t gen = fill_gen();
#if defined(__GNUC__)
    __asm__("" : "+r"(e));
#endif
    *ep = e;
    e->var = v;
    if (CV_LIKELY(c->c_ops->find(c->c_map, v, &e->val) > 0)) {
        e->gen = gen;
        return 1;
    }
    e->val = NULL;
    e->gen = gen | CV_I_GEN_ABSENT;
    return 0;
}

/* v's value in the current context or ABSENT, from its entry when that is
 * valid (present or absent), else from the map (filling the entry). */
static CV_ALWAYS_INLINE void *lookup(const cv_var *v)
{
    cache_entry *e = cache_slot(v);
    if (entry_valid(e, v))
        return (e->gen & CV_I_GEN_ABSENT) ? ABSENT : e->val;
    const cv_context *c = ts.current;
    if (c == NULL)
        return ABSENT; /* never allocates (R13): no context yet reads empty */
    return entry_fill(&e, v, c) ? e->val : ABSENT;
}

/*
 * The get. ctxvar.h inlines the hit (entry valid and present) into C
 * callers and calls cv_i_var_get_miss for everything else, which is also
 * where the function below sends its misses: the hit test runs once on
 * either road, and the hit needs no frame (the misses are out of line:
 * measured 2.3 ns per get through the function with the miss inlined into
 * it, 2.06 without). The parentheses keep ctxvar.h's macros from
 * expanding in the definitions.
 */
/* The gets while tracing (core/trace.h): the same answers, recorded. */
static CV_TRACE_COLD int traced_get(const cv_var *v, void **out)
{
    void *val = lookup(v);
    CV_TRACE_GET(v, val != ABSENT, 0);
    return get_answer(v, val, out);
}

static CV_TRACE_COLD void *traced_get_or(const cv_var *v, void *dflt)
{
    void *val = lookup(v);
    CV_TRACE_GET(v, val != ABSENT, 1);
    return val != ABSENT ? val : dflt;
}

/* lookup and get_answer, with the found road apart: after the find only
 * the entry and out are used (entry_fill says why). */
int cv_i_var_get_miss(const cv_var *v, void **out)
{
    if (CV_UNLIKELY(v == NULL || out == NULL))
        return CV_EINVAL;
    CV_TRACE_GET_MISS(v, out);
    cache_entry *e = cache_slot(v);
    if (entry_valid(e, v))
        return get_answer(v, (e->gen & CV_I_GEN_ABSENT) ? ABSENT : e->val,
                          out);
    const cv_context *c = ts.current;
    if (c == NULL)
        return get_answer(v, ABSENT, out); /* as in lookup */
    if (entry_fill(&e, v, c)) {
        *out = e->val;
        return 0;
    }
    return get_answer(e->var, ABSENT, out);
}

void *cv_i_var_get_or_miss(const cv_var *v, void *dflt)
{
    if (CV_UNLIKELY(v == NULL))
        return dflt;
    CV_TRACE_GET_OR_MISS(v, dflt);
    void *val = lookup(v);
    return val != ABSENT ? val : dflt;
}

int(cv_var_get)(const cv_var *v, void **out)
{
    const cache_entry *e = cv_i_cache_hit(&cv_i_tcache_v1, v);
    if (CV_LIKELY(e != NULL && out != NULL)) {
        *out = e->val;
        return 0;
    }
    return cv_i_var_get_miss(v, out);
}

void *(cv_var_get_or)(const cv_var *v, void *dflt)
{
    const cache_entry *e = cv_i_cache_hit(&cv_i_tcache_v1, v);
    if (CV_LIKELY(e != NULL))
        return e->val;
    return cv_i_var_get_or_miss(v, dflt);
}

int cv_var_set(cv_var *v, void *value, cv_token **tok)
{
    if (CV_UNLIKELY(v == NULL))
        return CV_EINVAL;
    int r = 0, made;
    cv_context *c = current_or_make(&r, &made);
    if (CV_UNLIKELY(c == NULL))
        return r;
    if (tok == NULL) {
        spare_before_write(c);
        write_begin();
        r = c->c_ops->set(&c->c_map, v, value);
        if (CV_UNLIKELY(r < 0)) {
            write_end();
            unmake_base(made);
            return r;
        }
        write_check(c);
        cache_note(v, value);
        CV_TRACE_SET(v, value, NULL);
        write_end();
        return 0;
    }

    unsigned n_free = ts.n_free;
    cv_token *t = block_alloc();
    if (t == NULL) {
        unmake_base(made);
        return CV_ENOMEM;
    }
    int has_old = c->c_ops->find(c->c_map, v, &t->t_old) > 0;
    if (!has_old)
        t->t_old = NULL;
    /* The token must hold the old value before the map lets go of it. */
    if (has_old)
        cv__value_retain(v, t->t_old);
    spare_before_write(c);
    write_begin();
    r = c->c_ops->set(&c->c_map, v, value);
    if (r < 0) {
        write_end();
        void *old = t->t_old;
        block_unalloc(t, n_free); /* first: the hook may make a token */
        if (has_old)
            cv__value_release(v, old);
        unmake_base(made);
        return r;
    }
    write_check(c);
    cache_note(v, value);
    cv__var_incref(v);
    ctx_incref(c);
    t->t_var = v;
    t->t_ctx = c;
    t->t_has_old = has_old;
    t->t_used = 0;
    *tok = t;
    CV_TRACE_SET(v, value, t);
    write_end();
    return 0;
}

int cv_var_reset(cv_var *v, cv_token *t)
{
    if (v == NULL || t == NULL)
        return CV_EINVAL;
    if (t->t_used)
        return CV_ETOKEN_USED;
    if (t->t_var != v)
        return CV_ETOKEN_VAR;
    cv_context *c = ts.current;
    if (t->t_ctx != c)
        return CV_ETOKEN_CTX;
    spare_before_write(c);
    write_begin();
    int r = t->t_has_old ? c->c_ops->set(&c->c_map, v, t->t_old)
                         : c->c_ops->del(&c->c_map, v);
    if (r < 0) {
        write_end();
        return r;
    }
    write_check(c);
    cache_note(v, t->t_has_old ? t->t_old : ABSENT);
    t->t_used = 1;
    CV_TRACE_TOKEN(RESET, v, t, NULL);
    write_end();
    return 0;
}

/* ------------------------------------------------------------------------
 * Tokens (R7)
 * ------------------------------------------------------------------------ */

cv_var *cv_token_var(const cv_token *t)
{
    return t ? t->t_var : NULL;
}

int cv_token_old_value(const cv_token *t, void **out)
{
    if (t == NULL || out == NULL)
        return CV_EINVAL;
    if (!t->t_has_old)
        return 0;
    *out = t->t_old;
    return 1;
}

int cv_token_used(const cv_token *t)
{
    return t ? t->t_used : CV_EINVAL;
}

void cv_token_release(cv_token *t)
{
    if (t == NULL)
        return;
    CV_TRACE_TOKEN(TOKEN_RELEASE, NULL, t, t->t_ctx);
    /* The token is gone before any hook runs (R14a). */
    cv_token held = *t;
    block_free(t);
    if (held.t_has_old)
        cv__value_release(held.t_var, held.t_old);
    cv_context_release(held.t_ctx);
    cv__var_decref(held.t_var);
}
