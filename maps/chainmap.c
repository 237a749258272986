/* SPDX-License-Identifier: MIT */
/*
 * chainmap.c -- a chain of small layers, frozen by sharing, compacted when
 * deep: O(1) copies with real snapshot isolation and bounded lookups.
 *
 * WHAT AND WHY
 * A map is a pointer to its top layer; a layer is a small open-addressing
 * table over an optional parent layer. A copy of a context is one atomic
 * increment on the top layer. A layer whose count is above one is frozen:
 * the next write on either side puts a fresh one-entry layer on top of it
 * (lazily, so a copy that is never written costs nothing), while a writer
 * that holds the only reference writes into its top layer in place. This
 * is the model of Go's context.WithValue, OpenTelemetry C++'s Context and
 * Java's ScopedValue: a snapshot that differs by one set costs a layer
 * header and one slot, whatever the size of the map.
 *
 * THE INVARIANT (and why it gives isolation, R9)
 * A layer is written only while its reference count is one; its count is
 * the number of keys visible from it; its depth is its parent's plus one
 * and at most D = CV_CHAINMAP_MAX_DEPTH; no tombstone sits at depth 0.
 * share() raises the top's count and every child owns a reference to its
 * parent, so a layer another map can see is never written again. (The
 * naive ChainMap.new_child writes the parent under its children:
 * tests/support/canary.c is that bug, and the R9 tests must catch it.)
 *
 * COSTS (n visible pairs, d = depth <= D = 8)
 *   find               O(d): one probe per layer, top first
 *   set/del, unshared  O(d) to learn what is visible below, then O(1)
 *                      expected in place (amortised growth)
 *   set/del, shared    O(d) and one pushed layer (24-byte header + a
 *                      16-byte slot); at depth D a compaction (below),
 *                      amortised O(D + n / min(n, 65535)) slot copies
 *   share / len        O(1): an increment / a count cached in each layer
 *   foreach            O(E * d) probes over E slots, never allocates
 * Figures and the tuning of D and R: docs/design/chainmap.md.
 *
 * COMPACTION
 * A shared write that would push a layer at depth D + 1 compacts instead:
 *   merge    the fewest top layers T1..Tk such that the layer B below them
 *            holds more than R times their slots plus the write, and Tk at
 *            most R times the slots above it plus the write (R =
 *            CV_CHAINMAP_MERGE_RATIO = 2; merge_base), become one layer
 *            over B: the topmost slot of each key, the write, and only the
 *            tombstones that hide a pair B shows. If nothing is left to
 *            keep, the map becomes B itself.
 *   flatten  when no k qualifies, or once min(count, 65535) shared writes
 *            have passed since the last flatten (l_writes), the chain
 *            becomes one depth-0 layer of the visible pairs plus the write.
 * The first rule makes the layers tiers, each small beside what it sits
 * on; the second keeps a big layer from being copied again for a small
 * top. Merges copy at most (R + 1) D slots a write, amortised (a slot
 * copied moves down a level, and can do so D times). The write count
 * bounds how long the bottom holds a value a history shadows: a merge never
 * rewrites the bottom. A parent whose count falls to one is absorbed into
 * the top on the owner's next in-place write, releasing what it alone
 * shadowed sooner.
 *
 * WORKED EXAMPLE (D large enough not to compact)
 *   a: set x=1, y=2             a -> L0{x:1 y:2}                 refs(L0)=1
 *   b = copy(a)                 a, b -> L0                       refs(L0)=2
 *   set(b, x, 9)                b -> L1{x:9} -> L0               L0 frozen
 *   set(a, y, 7)                a -> L2{y:7} -> L0               refs(L0)=2
 *   del(b, y)                   L1 unshared: tombstone in place
 *
 *        a                      b
 *        |                      |
 *   L2 [y:7]  d=1 n=2      L1 [x:9 | y:X]  d=1 n=1      (X: tombstone)
 *          \                   /
 *           L0 [x:1 | y:2]  d=0 n=2   refs 2: never written again
 *
 *   find(a, x) = 1 (L2 misses, L0 hits); find(b, y) is absent (the
 *   tombstone ends the walk); len(a) = 2, len(b) = 1 (cached). Copying b
 *   and writing each copy pushes layers over L1; at depth D none is big
 *   enough to merge onto (L0's 2 slots are not more than twice what lies
 *   above), so the write flattens b into one layer of its visible pairs.
 *
 * LAYOUT
 *   struct layer { parent, refs, count, used, lgcap, dbits (depth and
 *   borrowed marks), writes,
 *   slots[1 << lgcap] }, one allocation. A slot is {cv_var *key, void *val}
 *   (maps/slots.h): key NULL is empty; val == TOMB (a private static's
 *   address) is "deleted here, hide the layers below". Linear probing,
 *   removal by backward shift; capacities 1 and 2 may be full, from 4 up
 *   the load is at most 3/4; a pushed layer starts at capacity 1. The
 *   empty map is NULL: a delete that leaves nothing visible stores NULL,
 *   and an unshared top left with no slots is popped. foreach reports a
 *   slot of layer L when its key has no slot above L (no visited set, so
 *   a walk cannot fail with CV_MAP_ENOMEM).
 *
 * BORROWED KEYS
 *   A slot whose key has a slot in a layer below it (pair or tombstone)
 *   may own no var reference: the lowest slot owns it, and every layer
 *   holds its parent. Marked in l_dbits bits 6-7, for slots 0 and 1 of
 *   tables of one or two slots only (readers never look); a grown table,
 *   and a slot absorb parks with a value, take the reference. check()
 *   verifies every mark. docs/design/chainmap.md, "Borrowed keys".
 *
 * FAILURE SEMANTICS
 *   Every allocation (a pushed layer, a grown table, a merged or flattened
 *   layer) happens before anything is touched; on CV_MAP_ENOMEM *m and the
 *   map are as they were. Shrinking, popping and absorbing are optimisations
 *   after the write: when their allocation fails they are skipped, never
 *   the call. What a write lets go of (a slot, a dropped or parked layer)
 *   goes to the core (maps/key.h), whose hooks run once the write is whole.
 *
 * TEST HOOKS
 *   chain_check verifies the invariant, capacities and loads, the probe
 *   runs and each layer's cached count against a recount;
 *   cv__chainmap_depth (maps/chainmap.h) lets tests assert the bound.
 *
 * FURTHER READING
 *   Go src/context/context.go (valueCtx: one pair a link, no bound);
 *   OpenTelemetry C++ api/include/opentelemetry/context/context.h;
 *   JEP 446/506 ScopedValue; Redis src/dict.c dictRehash (stating an
 *   amortised step); aiotask-context's chainmap_context_factory (the
 *   counter-example: a child reads its parent's live dict).
 */
#include <string.h>

#include "chainmap.h"
#include "slots.h"

extern const struct cv_backend cv__backend_chainmap;
#define SELF (&cv__backend_chainmap)

/* {key, val}; key NULL: empty, else one var reference; val a retained
 * value, or TOMB (no retain). */
typedef cv_slot cslot;

typedef struct layer layer;
struct layer {
    cv_map_head l_head;          /* refs: contexts, walks, child layers
                                  * (first: the core shares and releases
                                  * a map inline, map.h's destroy) */
    uint32_t l_count;            /* keys visible from here down, >= 1 */
    layer *l_parent;             /* owned reference; NULL at depth 0 */
    uint32_t l_used;             /* occupied slots: pairs + tombstones */
    uint8_t l_lgcap;             /* capacity is 1 << l_lgcap */
    uint8_t l_dbits;             /* bits 0-5: depth, the layers below,
                                  * <= MAX_DEPTH; bits 6-7: slots 0 and 1
                                  * borrow their keys (BORROW_SHIFT) */
    uint16_t l_writes;           /* shared writes (pushes and merges) since
                                  * the depth-0 layer below was built,
                                  * saturating at WRITES_MAX; 0 at depth 0 */
    cslot l_slots[];             /* 1 << l_lgcap slots */
};

/* 24 bytes of header: a one-slot layer, what a write into a copy pushes,
 * is 40 bytes, and a one-set snapshot 72 with its context (PERFORMANCE.md's
 * target is 0.1x of CPython's 790). That is why the count is 32 bits (share
 * refuses a holder past 2^31, with room above for racing sharers that undo)
 * and no layer counts its tombstones: tomb_above probes every layer above,
 * which a compaction does once per copied slot, and check() finds them by
 * the slots. */

#define MAX_DEPTH CV_CHAINMAP_MAX_DEPTH
#define MAX_LGCAP 31u

#define MERGE_RATIO CV_CHAINMAP_MERGE_RATIO
#define WRITES_MAX UINT16_MAX

_Static_assert(MAX_DEPTH >= 1 && MAX_DEPTH < 63,
               "depth must fit l_dbits' 6 bits with room for one more");
_Static_assert(MERGE_RATIO >= 1, "a merge base must outweigh what it takes");
/* The header is a pointer and 16 bytes (see above): 24 on LP64. */
_Static_assert(sizeof(layer) == sizeof(void *) + 16, "layer header grew");

/* "Deleted here". A private address: no value a user stores can equal it. */
static const char tomb_mark;
#define TOMB ((void *)&tomb_mark)

#define DEPTH_MASK 0x3fu
#define BORROW_SHIFT 6

static unsigned depth(const layer *l)
{
    return l->l_dbits & DEPTH_MASK;
}

static void set_depth(layer *l, unsigned d)
{
    l->l_dbits = (uint8_t)((l->l_dbits & ~DEPTH_MASK) | d);
}

/* Borrowed keys (see the opening comment): slot i of a layer of capacity
 * 1 or 2 (i < 2) may own no reference to its key, because a layer below
 * it in its chain has a slot for the same key; bit BORROW_SHIFT + i of
 * l_dbits says so. Readers never look: the key pointer is the key. */
static int markable(const layer *l, const cslot *s)
{
    return l->l_lgcap <= 1 && s - l->l_slots < 2;
}

static int borrowed(const layer *l, const cslot *s)
{
    return markable(l, s) &&
           ((l->l_dbits >> (BORROW_SHIFT + (s - l->l_slots))) & 1u);
}

static void set_borrowed(layer *l, const cslot *s, int b)
{
    unsigned bit = 1u << (BORROW_SHIFT + (unsigned)(s - l->l_slots));
    l->l_dbits = (uint8_t)(b ? (l->l_dbits | bit) : (l->l_dbits & ~bit));
}

static uint32_t lmask(const layer *l)
{
    return ((uint32_t)1 << l->l_lgcap) - 1;
}

/* A table of capacity 1 << lg may hold n slots: full when tiny (a probe
 * bounds itself by one lap), else at most 3/4. */
static int fits(uint32_t n, unsigned lg)
{
    uint64_t cap = (uint64_t)1 << lg;
    return cap <= 2 ? n <= cap : (uint64_t)n * 4 <= cap * 3;
}

static unsigned lg_for(uint32_t n)
{
    unsigned lg = 0;
    while (!fits(n, lg))
        lg++;
    return lg;
}

static int unshared(const layer *l)
{
    return atomic_load_explicit(&l->l_head.refs, memory_order_acquire) == 1;
}

/* The bytes of a layer of capacity 1 << lg: what its block was asked for
 * (the core's block cache takes it back by size). */
static size_t layer_bytes(unsigned lg)
{
    return sizeof(layer) + ((size_t)1 << lg) * sizeof(cslot);
}

static void layer_free(layer *l)
{
    cv__map_block_free(l, layer_bytes(l->l_lgcap));
}

static layer *layer_new(unsigned lg)
{
    if (lg > MAX_LGCAP)
        return NULL;
    size_t cap = (size_t)1 << lg;
    layer *l = cv__map_block_alloc(layer_bytes(lg));
    if (l == NULL)
        return NULL;
    atomic_init(&l->l_head.refs, 1);
    l->l_parent = NULL;
    l->l_count = 0;
    l->l_used = 0;
    l->l_lgcap = (uint8_t)lg;
    l->l_dbits = 0;
    l->l_writes = 0;
    memset(l->l_slots, 0, cap * sizeof(cslot));
    return l;
}

/* The slot holding key, else the empty slot where it would go, else NULL
 * (a full tiny table without key). */
static cslot *slot_lookup(const layer *l, const cv_var *key)
{
    uint32_t mask = lmask(l);
    uint32_t i = cv__key_hash(key) & mask;
    for (uint32_t n = 0; n <= mask; n++) {
        const cslot *s = &l->l_slots[i];
        if (s->key == key || s->key == NULL)
            return (cslot *)s;
        i = (i + 1) & mask;
    }
    return NULL;
}

/* The slot for key in l itself, or NULL. */
static cslot *slot_get(const layer *l, const cv_var *key)
{
    cslot *s = slot_lookup(l, key);
    return (s != NULL && s->key == key) ? s : NULL;
}

/* The topmost slot for key in the chain from l (a pair or a tombstone),
 * or NULL when no layer has one. */
static const cslot *chain_lookup(const layer *l, const cv_var *key)
{
    for (; l != NULL; l = l->l_parent) {
        const cslot *s = slot_get(l, key);
        if (s != NULL)
            return s;
    }
    return NULL;
}

/* 1 and *val: key is visible from l. */
static int visible_from(const layer *l, const cv_var *key, void **val)
{
    const cslot *s = chain_lookup(l, key);
    if (s == NULL || s->val == TOMB)
        return 0;
    *val = s->val;
    return 1;
}

/* Moves the slots of l into a new table of size 1 << lg (no retains: they
 * change owner; a borrowed slot stays borrowed, the chain below being the
 * same, unless the new table cannot mark it: then it takes its key's
 * reference) and frees l. l must be unshared; NULL, l untouched, on
 * failure. */
static layer *layer_resize(layer *l, unsigned lg)
{
    layer *n = layer_new(lg);
    if (n == NULL)
        return NULL;
    set_depth(n, depth(l));
    for (uint32_t i = 0; i <= lmask(l); i++) {
        const cslot *s = &l->l_slots[i];
        if (s->key == NULL)
            continue;
        cslot *t = slot_lookup(n, s->key);
        *t = *s;
        if (!borrowed(l, s))
            continue;
        if (markable(n, t))
            set_borrowed(n, t, 1);
        else
            cv__slot_take_key(t->key); /* a big table owns every key */
    }
    n->l_parent = l->l_parent;
    n->l_count = l->l_count;
    n->l_used = l->l_used;
    n->l_writes = l->l_writes;
    layer_free(l);
    return n;
}

/* Empties slot s of l by backward shift (maps/slots.h); the caller
 * releases what the slot owned (borrowed(l, s) says what that is: ask
 * first). In a table of two the other slot may shift into s: its mark
 * goes with it. */
static void slot_remove(layer *l, cslot *s)
{
    uint32_t i = (uint32_t)(s - l->l_slots);
    const cslot *o = l->l_lgcap == 1 ? &l->l_slots[i ^ 1u] : NULL;
    cv_var *ok = o ? o->key : NULL;
    int ob = o ? borrowed(l, o) : 0;
    cv__slot_remove(l->l_slots, lmask(l), i);
    l->l_used--;
    if (l->l_lgcap <= 1) {
        l->l_dbits &= DEPTH_MASK;
        if (ok != NULL && ob)
            set_borrowed(l, l->l_slots[i].key == ok ? s : o, 1);
    }
}

/* Fills an empty slot of l (the caller made room) with key -> val, taking
 * the references the slot owns. With `below` (a layer below l in its
 * chain has a slot for key) a slot that can be marked borrows its key:
 * no reference to it is taken. */
static inline void slot_take(cv_var *key, void *val, int borrow)
{
    if (borrow) {
        if (val != TOMB)
            cv__slot_take_value(key, val);
    } else if (val == TOMB) {
        cv__slot_take_key(key);
    } else {
        cv__slot_take(key, val);
    }
}

static void slot_fill(layer *l, cslot *s, cv_var *key, void *val, int below)
{
    CV_ASSERT(unshared(l)); /* the invariant: a layer is written at 1 */
    CV_ASSERT(!borrowed(l, s));
    CV_ASSERT(!below || chain_lookup(l->l_parent, key) != NULL);
    int b = below && markable(l, s);
    if (b)
        set_borrowed(l, s, 1);
    slot_take(key, val, b);
    s->key = key;
    s->val = val;
    l->l_used++;
}

/* A borrowed slot of l takes its own reference to its key: it is leaving
 * the chain that holds the owning slot (a parked layer). */
static void slot_own(layer *l, cslot *s)
{
    if (borrowed(l, s)) {
        set_borrowed(l, s, 0);
        cv__slot_take_key(s->key);
    }
}

/* Drops what every occupied slot of l owns (maps/slots.h's
 * cv__slots_drop, but a borrowed slot drops its value only: the layer
 * below that owns the key is still held). */
static void layer_drop_slots(layer *l)
{
    unsigned marks = (unsigned)l->l_dbits >> BORROW_SHIFT;
    if (marks == 0) {
        cv__slots_drop(l->l_slots, lmask(l), TOMB);
        return;
    }
    /* Marks: a table of one or two slots. */
    for (uint32_t i = 0; i <= (uint32_t)l->l_lgcap; i++) {
        cslot *s = &l->l_slots[i];
        if (!((marks >> i) & 1u))
            cv__slots_drop(s, 0, TOMB); /* owned, or empty */
        else if (s->val != TOMB)
            cv__slot_drop_value(s->key, s->val);
    }
}

/* ------------------------------------------------------------------------
 * Lifetime
 * ------------------------------------------------------------------------ */

/* m's count has dropped to 0: frees it, and each parent whose last
 * reference it held (a loop, not recursion). */
static void chain_destroy(cv_map *m)
{
    layer *l = (layer *)m;
    for (;;) {
        layer *parent = l->l_parent;
        layer_drop_slots(l); /* first: its parent holds what it borrows */
        layer_free(l);
        if (parent == NULL || !cv__map_head_drop((cv_map *)parent))
            return;
        l = parent;
    }
}

static void chain_release(cv_map *m)
{
    cv__map_release(SELF, m);
}

static int chain_share(cv_map *m, cv_map **out)
{
    return cv__map_share(SELF, m, out); /* 2^31 holders: refused */
}

/* ------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

/* The slot for key in l, or NULL, probing from i, the slot of key's hash,
 * which holds another key: the rest of chain_find's probe. */
static const cslot *probe_on(const layer *l, const cv_var *key, uint32_t i)
{
    uint32_t mask = lmask(l);
    for (uint32_t n = 1; n <= mask; n++) {
        i = (i + 1) & mask;
        const cslot *s = &l->l_slots[i];
        if (s->key == key)
            return s;
        if (s->key == NULL)
            return NULL;
    }
    return NULL;
}

static int chain_find(const cv_map *m, const cv_var *key, void **val)
{
    /* The hot path: a layer's first probe inline, with no probe count (a
     * table is never full past one lap: probe_on counts); the first slot
     * for key decides. */
    uint32_t h = cv__key_hash(key);
    for (const layer *l = (const layer *)m; l != NULL; l = l->l_parent) {
        uint32_t i = h & lmask(l);
        const cslot *s = &l->l_slots[i];
        if (s->key != key) {
            if (s->key == NULL || (s = probe_on(l, key, i)) == NULL)
                continue;
        }
        if (s->val == TOMB)
            return 0;
        *val = s->val;
        return 1;
    }
    return 0;
}

static size_t chain_len(const cv_map *m)
{
    return m ? ((const layer *)m)->l_count : 0;
}

/* 1: some layer from top down to (not including) l has a slot for key, so
 * l's slot for key is not the one the map shows. */
static int shadowed(const layer *top, const layer *l, const cv_var *key)
{
    for (const layer *u = top; u != l; u = u->l_parent)
        if (slot_get(u, key) != NULL)
            return 1;
    return 0;
}

static int chain_foreach(const cv_map *m, cv_map_visit_cb cb, void *arg)
{
    const layer *top = (const layer *)m;
    for (const layer *l = top; l != NULL; l = l->l_parent) {
        for (uint32_t i = 0; i <= lmask(l); i++) {
            const cslot *s = &l->l_slots[i];
            if (s->key == NULL || s->val == TOMB || shadowed(top, l, s->key))
                continue;
            int r = cb(s->key, s->val, arg);
            if (r != 0)
                return r;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Writing: a frozen top gets a child layer, or the chain is flattened
 * ------------------------------------------------------------------------ */

/* 1: a tombstone for key sits in a layer from top down to (not including)
 * l. */
static int tomb_above(const layer *top, const layer *l, const cv_var *key)
{
    for (const layer *u = top; u != l; u = u->l_parent) {
        const cslot *s = slot_get(u, key);
        if (s != NULL && s->val == TOMB)
            return 1;
    }
    return 0;
}

/* A new depth-0 layer with the pairs visible from top, except skip, each
 * retained once more; sized for `room` pairs. NULL on failure (nothing
 * retained). The table itself is the visited set for pairs: a key already
 * in it was taken from a higher layer; a key hidden by a tombstone above
 * is found by tomb_above. */
static layer *chain_flatten(const layer *top, const cv_var *skip,
                            uint32_t room)
{
    layer *n = layer_new(lg_for(room));
    if (n == NULL)
        return NULL;
    for (const layer *l = top; l != NULL; l = l->l_parent) {
        for (uint32_t i = 0; i <= lmask(l); i++) {
            const cslot *s = &l->l_slots[i];
            if (s->key == NULL || s->val == TOMB || s->key == skip)
                continue;
            cslot *t = slot_lookup(n, s->key);
            if (t == NULL || t->key != NULL) /* taken from above (or full: */
                continue;                    /* cannot happen, count holds) */
            if (tomb_above(top, l, s->key))
                continue;
            slot_fill(n, t, s->key, s->val, 0); /* depth 0: all owned */
        }
    }
    n->l_count = n->l_used;
    return n;
}

/* l_writes of a layer written over top: one more, saturating. */
static uint16_t writes_after(const layer *top)
{
    return (uint16_t)(top->l_writes + (top->l_writes != WRITES_MAX));
}

/* The layer a merge puts its result on: the parent B of the fewest top
 * layers T1..Tk such that
 *   B holds more than MERGE_RATIO times the slots of T1..Tk plus the
 *     write (the merged layer stays small beside B), and
 *   Tk holds at most MERGE_RATIO times the slots above it plus the write
 *     (Tk was not itself big enough to be the base: no layer is copied
 *     for much less than its own size moving down, so the top cannot be
 *     rewritten once per write as it grows).
 * NULL when no layer qualifies: flatten instead. */
static const layer *merge_base(const layer *top)
{
    uint64_t above = 1; /* the write */
    for (const layer *u = top; u->l_parent != NULL; u = u->l_parent) {
        int small = (uint64_t)u->l_used <= MERGE_RATIO * above;
        above += u->l_used;
        if (small && (uint64_t)u->l_parent->l_used > MERGE_RATIO * above)
            return u->l_parent;
    }
    return NULL;
}

/* 1: slot s of layer u (a layer from top down to, not including, base)
 * goes into a merge onto base: it is the topmost slot for its key, not
 * the key being written, and if a tombstone, it hides a pair that base
 * shows (one over nothing would hide nothing). */
static int merge_keeps(const layer *top, const layer *u, const layer *base,
                       const cslot *s, const cv_var *skip)
{
    void *v;
    if (s->key == NULL || s->key == skip || shadowed(top, u, s->key))
        return 0;
    return s->val != TOMB || visible_from(base, s->key, &v);
}

/* One new layer over base holding what the layers from top down to base
 * show (topmost slot per key, needed tombstones only), with key -> val
 * (val may be TOMB) written over it; it owns a new reference to base and
 * retains what it copies. Sized exactly: a first pass counts. NULL on
 * failure (nothing retained). When nothing is left to keep (the write is
 * a tombstone over nothing base shows, everything else shadowed or
 * needless), no layer is made: *out is base itself, with a new reference,
 * and the call cannot fail. */
static int chain_merge(const layer *top, const layer *base, cv_var *key,
                       void *val, layer **out)
{
    void *v;
    int put = val != TOMB || visible_from(base, key, &v);
    uint32_t keep = put ? 1u : 0u;
    for (const layer *u = top; u != base; u = u->l_parent)
        for (uint32_t i = 0; i <= lmask(u); i++)
            keep += (uint32_t)merge_keeps(top, u, base, &u->l_slots[i], key);
    layer *b = (layer *)base; /* frozen: only its count moves */
    if (keep == 0) {
        atomic_fetch_add_explicit(&b->l_head.refs, 1, memory_order_relaxed);
        *out = b;
        return 0;
    }
    layer *n = layer_new(lg_for(keep));
    if (n == NULL)
        return CV_MAP_ENOMEM;
    for (const layer *u = top; u != base; u = u->l_parent)
        for (uint32_t i = 0; i <= lmask(u); i++) {
            const cslot *s = &u->l_slots[i];
            if (merge_keeps(top, u, base, s, key)) /* owned: simplest */
                slot_fill(n, slot_lookup(n, s->key), s->key, s->val, 0);
        }
    if (put)
        slot_fill(n, slot_lookup(n, key), key, val, 0);
    atomic_fetch_add_explicit(&b->l_head.refs, 1, memory_order_relaxed);
    n->l_parent = b;
    set_depth(n, depth(b) + 1u);
    *out = n;
    return 0;
}

/* Writes key -> val over the frozen top *m at the depth bound: a merge of
 * the small top layers onto the first big one (merge_base), or, when no
 * layer is big enough or min(count, WRITES_MAX) shared writes have piled
 * up since the last flatten, one flat depth-0 layer. The caller's
 * reference to the old top is dropped after *m is the new one. */
static int chain_compact(cv_map **m, cv_var *key, void *val, uint32_t count)
{
    layer *top = (layer *)*m;
    uint32_t due = count < WRITES_MAX ? count : WRITES_MAX;
    const layer *base = top->l_writes + 1u < due ? merge_base(top) : NULL;
    layer *n;
    if (base == NULL) {
        n = chain_flatten(top, key, count);
        if (n == NULL)
            return CV_MAP_ENOMEM;
        if (val != TOMB)
            slot_fill(n, slot_lookup(n, key), key, val, 0);
        n->l_count = count;
    } else {
        if (chain_merge(top, base, key, val, &n) < 0)
            return CV_MAP_ENOMEM;
        if (n != base) { /* a new layer (base itself is frozen) */
            n->l_count = count;
            n->l_writes = writes_after(top);
        }
    }
    *m = (cv_map *)n;
    cv__map_drop_later(SELF, (cv_map *)top); /* may release shadowed values */
    return 0;
}

/* Writes key -> val (val may be TOMB) over the frozen top *m, whose
 * visible count becomes count (>= 1): a child layer holding the one slot,
 * or, at the depth bound, a compaction. The caller's reference to the old
 * top goes to the child, or is dropped after a compaction. `below`: the
 * chain from *m has a slot for key, so the child's slot borrows its key. */
static int layer_push(cv_map **m, cv_var *key, void *val, uint32_t count,
                      int below)
{
    layer *top = (layer *)*m;
    unsigned d = depth(top);
    if (d >= MAX_DEPTH)
        return chain_compact(m, key, val, count);
    /* layer_new(0) and slot_fill, spelled out: every field is written
     * here, so the block needs no zeroing, and its one slot can be marked */
    layer *n = cv__map_block_alloc(layer_bytes(0));
    if (n == NULL)
        return CV_MAP_ENOMEM;
    atomic_init(&n->l_head.refs, 1);
    n->l_lgcap = 0;
    n->l_parent = top; /* steals the caller's reference */
    CV_ASSERT(d + 1u <= MAX_DEPTH);
    CV_ASSERT(!below || chain_lookup(top, key) != NULL);
    n->l_dbits = (uint8_t)((d + 1u) | (below ? 1u << BORROW_SHIFT : 0u));
    n->l_writes = writes_after(top);
    n->l_count = count;
    slot_take(key, val, below);
    n->l_slots[0].key = key;
    n->l_slots[0].val = val;
    n->l_used = 1;
    *m = (cv_map *)n;
    return 0;
}

/* Makes room for one more slot in the unshared top *m. 0 or CV_MAP_ENOMEM. */
static int make_room(cv_map **m)
{
    layer *top = (layer *)*m;
    if (fits(top->l_used + 1, top->l_lgcap))
        return 0;
    layer *g = layer_resize(top, top->l_lgcap + 1u);
    if (g == NULL)
        return CV_MAP_ENOMEM;
    *m = (cv_map *)g;
    return 0;
}

/* ------------------------------------------------------------------------
 * Absorbing a private parent: the owner's next write lets go of what it
 * alone shadows
 * ------------------------------------------------------------------------ */

/* Merges the unshared top *m into its parent p, which has a count of one,
 * so that only this top reaches it: p is as private as the top. Each slot
 * of the top overwrites p's slot for its key; what that displaces (p's old
 * value, or the top's own tombstone when p has nothing to hide) is parked
 * in the top's emptied slot. The top then leaves the chain as a layer of
 * its own, linked onto *parked, which the caller releases after the write
 * (cv__map_drop_later): releasing it drops exactly what is parked.
 * 0, or CV_MAP_ENOMEM (p could not grow; nothing changed). */
static int absorb_parent(cv_map **m, layer **parked)
{
    layer *top = (layer *)*m;
    layer *p = top->l_parent;
    if (!fits(p->l_used + top->l_used, p->l_lgcap)) {
        layer *g = layer_resize(p, lg_for(p->l_used + top->l_used));
        if (g == NULL)
            return CV_MAP_ENOMEM;
        p = top->l_parent = g;
    }
    for (uint32_t i = 0; i <= lmask(top); i++) {
        cslot *s = &top->l_slots[i];
        if (s->key == NULL)
            continue;
        cslot *t = slot_lookup(p, s->key);
        int sb = borrowed(top, s);
        if (t->key == NULL) {
            /* A borrowed s is owned below p (t is empty): it moves as a
             * borrowed slot, or owns its key where p cannot mark it. At
             * depth 0 nothing is below p, so a parked s owns its key. */
            CV_ASSERT(!(s->val == TOMB && depth(p) == 0 && sb));
            if (s->val == TOMB && depth(p) == 0)
                continue; /* nothing below to hide: parked, released */
            *t = *s; /* moves, references and all */
            p->l_used++;
            s->key = NULL;
            if (sb) {
                set_borrowed(top, s, 0);
                if (markable(p, t))
                    set_borrowed(p, t, 1);
                else
                    cv__slot_take_key(t->key);
            }
            continue;
        }
        /* s stays in the parked top, out of the chain that owns what it
         * borrows: it owns its key (slot_own) whenever it parks a value,
         * whose release reads the var. */
        void *old = t->val;
        if (s->val != TOMB) {
            t->val = s->val;      /* t keeps its var reference */
            s->val = old;         /* s parks its var ref and old */
            slot_own(top, s);
        } else if (old == TOMB) {
            continue;             /* p hides it already: s is parked (a
                                   * borrowed tombstone drops nothing) */
        } else if (depth(p) > 0) {
            t->val = TOMB;        /* p now hides what lies below */
            s->val = old;
            slot_own(top, s);
        } else {
            /* depth 0: the pair goes. s parks one var reference and old;
             * t's var reference is dropped now, which cannot be the last
             * (s holds another), so no hook runs here. A borrowed s
             * borrows from t, the only slot below: it takes t's reference
             * instead, and nothing is dropped. */
            cv_var *k = t->key;
            CV_ASSERT(!borrowed(p, t));
            slot_remove(p, t);
            s->val = old;
            if (sb)
                set_borrowed(top, s, 0);
            else
                cv__slot_drop_key(k);
        }
    }
    p->l_count = top->l_count;
    /* Over depth 0 nothing shadowed is left: the count starts again. */
    p->l_writes = depth(p) == 0 ? 0 : top->l_writes;
    *m = (cv_map *)p; /* the top's reference to p moves to *m */
    top->l_parent = *parked;
    set_depth(top, 0); /* its marks stay: its release reads them */
    *parked = top;
    return 0;
}

/* After an in-place write: absorb every parent that only this top can
 * reach. Best effort (a failed growth keeps the layers as they are). The
 * top is tested too: a delete may have popped the written layer, leaving
 * a top that others share. */
static void absorb_private(cv_map **m)
{
    layer *top = (layer *)*m;
    layer *parked = NULL;
    while (top != NULL && top->l_parent != NULL && unshared(top) &&
           unshared(top->l_parent)) {
        if (absorb_parent(m, &parked) < 0)
            break;
        top = (layer *)*m;
    }
    if (parked != NULL)
        cv__map_drop_later(SELF, (cv_map *)parked);
}

static int chain_set(cv_map **m, cv_var *key, void *val)
{
    layer *top = (layer *)*m;
    if (top == NULL) {
        layer *n = layer_new(0);
        if (n == NULL)
            return CV_MAP_ENOMEM;
        slot_fill(n, &n->l_slots[0], key, val, 0);
        n->l_count = 1;
        *m = (cv_map *)n;
        return 0;
    }

    cslot *s = slot_get(top, key);
    /* The topmost slot for key: in top, else below it (a pair or a
     * tombstone); with one, a slot written above it may borrow the key. */
    const cslot *b = s ? s : chain_lookup(top->l_parent, key);
    int visible = b != NULL && b->val != TOMB;
    if (visible && b->val == val)
        return 0; /* same value: nothing to do, nothing to allocate */
    uint32_t count = top->l_count + (visible ? 0u : 1u);

    if (!unshared(top))
        return layer_push(m, key, val, count, b != NULL);

    if (s != NULL) { /* a pair or a tombstone of this layer: overwrite */
        void *old = s->val;
        CV_ASSERT(unshared(top));
        cv__slot_take_value(key, val);
        s->val = val;
        top->l_count = count;
        if (old != TOMB)
            cv__slot_drop_value(key, old); /* last: the layer is whole */
    } else {
        int r = make_room(m);
        if (r < 0)
            return r;
        top = (layer *)*m;
        slot_fill(top, slot_lookup(top, key), key, val, b != NULL);
        top->l_count = count;
    }
    absorb_private(m);
    CV_ASSERT(((const layer *)*m)->l_count >= 1);
    return 0;
}

/* After a removal from the unshared top *m: pop it if it is left empty
 * over a parent, else shrink a table under 1/8 load. Best effort: a failed
 * shrink leaves the larger table. */
static void after_remove(cv_map **m)
{
    layer *top = (layer *)*m;
    if (top->l_used == 0 && top->l_parent != NULL) {
        *m = (cv_map *)top->l_parent; /* the top's reference moves to *m */
        layer_free(top);
        return;
    }
    if (top->l_lgcap > 2 && top->l_used * 8u < (1u << top->l_lgcap)) {
        layer *g = layer_resize(top, lg_for(top->l_used));
        if (g != NULL)
            *m = (cv_map *)g;
    }
}

static int chain_del(cv_map **m, const cv_var *key)
{
    layer *top = (layer *)*m;
    if (top == NULL)
        return 0;
    cslot *s = slot_get(top, key);
    void *cur;
    int visible = s ? s->val != TOMB : visible_from(top->l_parent, key, &cur);
    if (!visible)
        return 0;

    if (top->l_count == 1) {
        /* The empty map is NULL, whatever the layers hold. The chain goes
         * with the caller's reference: freed if it was the last one. */
        *m = NULL;
        cv__map_drop_later(SELF, (cv_map *)top);
        return 1;
    }
    uint32_t count = top->l_count - 1;
    cv_var *k = (cv_var *)key; /* a tombstone owns a reference to it */

    if (!unshared(top)) { /* visible: some slot for key is in the chain */
        int r = layer_push(m, k, TOMB, count, 1);
        return r < 0 ? r : 1;
    }
    if (s != NULL) { /* a pair of this layer */
        void *old = s->val;
        if (top->l_parent != NULL && visible_from(top->l_parent, key, &cur)) {
            CV_ASSERT(unshared(top) && depth(top) > 0);
            s->val = TOMB; /* the slot keeps its var reference */
            top->l_count = count;
            cv__slot_drop_value(k, old);
        } else { /* nothing below to hide: drop the slot */
            int own = !borrowed(top, s); /* else a tombstone below owns k */
            slot_remove(top, s);
            top->l_count = count;
            after_remove(m);
            if (own)
                cv__slot_drop(k, old);
            else
                cv__slot_drop_value(k, old);
        }
    } else { /* visible below only: hide it with a tombstone here */
        int r = make_room(m);
        if (r < 0)
            return r;
        top = (layer *)*m;
        CV_ASSERT(depth(top) > 0); /* no tombstone at depth 0 */
        slot_fill(top, slot_lookup(top, key), k, TOMB, 1); /* k is below */
        top->l_count = count;
    }
    absorb_private(m); /* after the write, as in chain_set */
    CV_ASSERT(*m == NULL || ((const layer *)*m)->l_count >= 1);
    return 1;
}

/* ------------------------------------------------------------------------
 * Invariant
 * ------------------------------------------------------------------------ */

/* Keys visible from l, counted the way foreach reports them. */
static uint32_t recount(const layer *l)
{
    uint32_t n = 0;
    for (const layer *u = l; u != NULL; u = u->l_parent)
        for (uint32_t i = 0; i <= lmask(u); i++) {
            const cslot *s = &u->l_slots[i];
            if (s->key != NULL && s->val != TOMB && !shadowed(l, u, s->key))
                n++;
        }
    return n;
}

static const char *layer_check(const layer *l)
{
    uint32_t cap = (uint32_t)1 << l->l_lgcap;
    uint32_t mask = cap - 1;
    if (atomic_load(&l->l_head.refs) < 1)
        return "chainmap: reference count below 1";
    if (depth(l) != (l->l_parent ? depth(l->l_parent) + 1u : 0u))
        return "chainmap: depth is not the parent's plus one";
    if (l->l_lgcap > 1 && (l->l_dbits & ~DEPTH_MASK) != 0)
        return "chainmap: borrowed mark in a table of more than two slots";
    if (depth(l) > MAX_DEPTH)
        return "chainmap: depth above the bound";
    if (!fits(l->l_used, l->l_lgcap))
        return "chainmap: load above the bound of its capacity";
    uint32_t used = 0, tombs = 0;
    for (uint32_t i = 0; i < cap; i++) {
        const cslot *s = &l->l_slots[i];
        if (s->key == NULL)
            continue;
        used++;
        tombs += s->val == TOMB;
        const char *e = cv__slot_check(l->l_slots, mask, i);
        if (e != NULL)
            return e;
        /* Borrowed keys: the slot owns no reference; the lowest slot for
         * the key below it does (a lowest slot is never borrowed). */
        if (borrowed(l, s) && chain_lookup(l->l_parent, s->key) == NULL)
            return "chainmap: borrowed key with no slot for it below";
    }
    if (used != l->l_used)
        return "chainmap: used does not match the occupied slots";
    for (uint32_t i = 0; i < cap && i < 2; i++)
        if (l->l_slots[i].key == NULL && borrowed(l, &l->l_slots[i]))
            return "chainmap: borrowed mark on an empty slot";
    if (depth(l) == 0 && tombs != 0)
        return "chainmap: tombstone in a depth-0 layer";
    if (depth(l) == 0 && l->l_writes != 0)
        return "chainmap: shared writes counted at depth 0";
    if (l->l_parent != NULL && l->l_writes < l->l_parent->l_writes)
        return "chainmap: fewer shared writes than the parent counts";
    if (l->l_count == 0)
        return "chainmap: layer with no visible pair (the empty map is NULL)";
    if (l->l_count != recount(l))
        return "chainmap: cached count does not match a recount";
    return NULL;
}

static const char *chain_check(const cv_map *m)
{
    for (const layer *l = (const layer *)m; l != NULL; l = l->l_parent) {
        const char *err = layer_check(l);
        if (err != NULL)
            return err;
    }
    return NULL;
}

unsigned cv__chainmap_depth(const cv_map *m)
{
    return m ? depth((const layer *)m) : 0;
}

CV_BACKEND_DEFINE_HEADED(cv__backend_chainmap, "chainmap", chain);
