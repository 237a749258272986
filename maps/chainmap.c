/*
 * chainmap.c -- a chain of small layers, frozen by sharing, flattened when
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
 * Java's ScopedValue snapshots: a snapshot that differs by one set costs a
 * layer header and one slot, whatever the size of the map.
 *
 * ISOLATION (R9)
 * A layer is written in place only while its count is one, and a count of
 * one means that nothing else -- no other context, no child layer, no
 * foreach walk -- can reach it. share() raises the count of the top layer,
 * and every child layer owns a reference to its parent, so every layer that
 * another map can see has a count of at least two and is never written
 * again: it is immutable for as long as anyone else can read it. After
 * b = copy(a), a and b read only layers that are frozen or that only one of
 * them can reach, so neither can see the other's later writes. (The naive
 * ChainMap.new_child keeps writing the parent in place under its children;
 * tests/support/canary.c is that bug, and the R9 tests must catch it.)
 *
 * COSTS (n visible pairs, d = depth <= D = CV_CHAINMAP_MAX_DEPTH = 8)
 *   find                 O(d): one probe per layer, top first
 *   set/del, unshared    O(d) to learn whether the key is visible below
 *                        (for len and for "same value: nothing to do"),
 *                        then O(1) expected in place (amortised growth)
 *   set/del, shared      O(d) + one 40-byte layer; when d = D, a flatten:
 *                        O(E * d) for the E slots of the chain, one table
 *   share (copy)         O(1): an atomic increment, never allocates
 *   len                  O(1): every layer caches the chain's count
 *   foreach              O(E * d) probes, no allocation (see below)
 *   memory               24-byte header + 16 bytes a slot per layer
 *
 * COMPACTION (bounded depth)
 * A write that would push a layer at depth D + 1 instead flattens the
 * whole chain into one new depth-0 layer holding only the visible pairs,
 * plus the write. Shadowed values and tombstones are dropped there: once
 * the last holder of the old chain lets go, the values it alone held are
 * released (a linked context that keeps every shadowed value alive is the
 * complaint this answers).
 *   One step: allocate a table sized for the n visible pairs, walk the
 *   d + 1 layers top first, copy each visible pair once (retaining it), and
 *   drop the caller's reference to the old top. Its bound: O(E * d) probes
 *   where E <= n + (slots written since the last flatten), so O(n) for the
 *   small d it runs at. In a linear history (each map derived from the one
 *   before it) a depth-0 layer is followed by at most D pushes before the
 *   next flatten, so the flatten's O(n) is paid once per D + 1 shared
 *   writes: amortised O(1 + n / D) per write. A map at depth D that is
 *   copied k times and written once per copy pays k flattens (each child
 *   has its own); that fork-write is dictcopy's O(n) per write.
 * D is chosen by measurement (Intel Xeon, 2 vCPU KVM, gcc 12 -O2, find on
 * a chain built by share + one set per layer, ns per find):
 *     depth        0    1    2    4    8    16   32   64   128
 *     hit bottom  1.6  3.0  4.4  7.1  11   36   57   105  195
 *   A layer costs about 1.4 ns up to depth 8, then the chain stops
 *   fitting the caches and predictors (16: 36 ns). A flatten costs about
 *   0.2 us at n = 16, 1.2 us at 100, 16 us at 1000, 300 us at 10000; a
 *   push about 50 ns. D = 8 keeps the worst get at about 11 ns (about
 *   0.55x of CPython's uncached get) and spreads a flatten over 9 shared
 *   writes in a linear history (about 1.9 us a write at n = 1000, 180 ns
 *   at n = 100). D = 16 would halve the flatten share and triple every
 *   get that reaches the bottom layer; reads outnumber copies in every
 *   workload of PERFORMANCE.md, so the walk wins. An LSM-style merge of
 *   only the small top layers would cut the flatten for big n; not done.
 *
 * WORKED EXAMPLE (D large enough not to flatten)
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
 *   tombstone in L1 ends the walk); len(a) = 2, len(b) = 1 (cached).
 *   copy(b), then set(b, z, 3) pushes L3{z:3} -> L1, and so on; when that
 *   would reach depth D + 1, b gets one flat layer {x:9, z:3} instead.
 *
 * LAYOUT
 *   struct layer { parent, refs (32 bits), count, used, lgcap, depth,
 *   tombed, slots[1 << lgcap] }, one allocation: a 24-byte header. A slot is {cv_var *key, void *val};
 *   key == NULL marks it empty; val == TOMB (the address of a private
 *   static, which no user value can equal) marks a tombstone: "deleted
 *   here, hide the layers below". Probing is linear from hash & mask;
 *   removal shifts the run back (no open-addressing deleted markers), so a
 *   probe stops at the first empty slot. Capacities 1 and 2 may be full (a
 *   probe then stops after one lap); from 4 up the load is at most 3/4. A
 *   pushed layer starts at capacity 1 and doubles.
 *   A parent whose count has fallen to one (the snapshot that froze it is
 *   gone) is reachable only through the top: after the owner's next
 *   in-place write it is absorbed (the top merged into it), so what it
 *   alone shadowed is released then, not only at the next flatten.
 *   The empty map is NULL: a delete that leaves no visible pair drops the
 *   caller's reference to the chain and stores NULL, whatever tombstones
 *   the layers held, so every layer has count >= 1. An unshared top layer
 *   left with no slots is popped (the map becomes its parent).
 *
 * THE INVARIANT
 *   A layer is written only while its reference count is one, its count is
 *   the number of keys visible from it, and its depth is its parent's plus
 *   one and at most D.
 *
 * OPERATIONS
 *   find -> chain_find, set -> chain_set, del -> chain_del, share ->
 *   chain_share, release -> chain_release, len -> chain_len, walk ->
 *   chain_foreach, invariant -> chain_check. Internals: slot_lookup (one
 *   layer's probe), chain_lookup (the walk), layer_new, layer_resize (move,
 *   no retains), layer_push (a frozen top gets a child), chain_flatten
 *   (compaction), absorb_private / absorb_parent (merge a private
 *   parent), slot_remove (backward shift), shadowed (foreach's "is this key
 *   in a layer above?").
 *
 *   foreach counts each var once without a visited set: a slot of layer L
 *   is reported when its key has no slot in the layers above L. That is
 *   O(E * d) probes and no allocation, so a walk can never fail with
 *   CV_ENOMEM (foreach has no error to report it with) and d <= D keeps it
 *   linear. A visited set would be O(E) but allocate per walk.
 *
 * FAILURE SEMANTICS
 *   Every allocation (a pushed layer, a grown table, a flattened chain)
 *   happens before anything is touched; if it fails the call returns
 *   CV_ENOMEM with *m and the map as they were. Release hooks run after the
 *   structure is consistent again (the replaced value is released after
 *   the new one is stored; a dropped chain is released after *m is
 *   updated). Shrinking after a delete, popping an empty layer and
 *   absorbing a private parent are optimisations done after the write has
 *   succeeded: when their allocation fails they are skipped, never the call. A delete never needs memory
 *   when it empties the map.
 *
 * TEST AND DEBUG HOOKS
 *   chain_check walks every layer: counts >= 1, depth = parent's + 1 and
 *   <= D, capacity and load, the probe invariant, the tombstone count, no
 *   tombstone at depth 0, and each layer's cached count against a recount.
 *   cv__chainmap_depth (maps/chainmap.h) reports the depth, so tests assert
 *   the bound without timing. Forced var hashes (cv__var_new_hashed) build
 *   full tiny tables and long probe runs.
 *
 * FURTHER READING
 *   Go src/context/context.go (valueCtx: one pair per link, lookups walk
 *   the whole chain, no bound); OpenTelemetry C++ api/include/opentelemetry/
 *   context/context.h (SetValue builds a new node over the old one);
 *   JEP 446/506 ScopedValue (immutable bindings, snapshots captured per
 *   StructuredTaskScope); Redis src/dict.c dictRehash (how to state an
 *   amortised step). The counter-example: aiotask-context's
 *   chainmap_context_factory, whose ChainMap.new_child child reads the
 *   parent's live dict, so a child task sees its parent's later writes.
 */
#include <string.h>

#include "chainmap.h"
#include "slots.h"

/* {key, val}; key NULL: empty, else one var reference; val a retained
 * value, or TOMB (no retain). */
typedef cv_slot cslot;

typedef struct layer layer;
struct layer {
    layer *l_parent;             /* owned reference; NULL at depth 0 */
    _Atomic uint32_t l_refs;     /* contexts, walks, and child layers */
    uint32_t l_count;            /* keys visible from here down, >= 1 */
    uint32_t l_used;             /* occupied slots: pairs + tombstones */
    uint8_t l_lgcap;             /* capacity is 1 << l_lgcap */
    uint8_t l_depth;             /* layers below; <= MAX_DEPTH */
    uint8_t l_tombed;            /* 1: may hold tombstones; 0 at depth 0 */
    cslot l_slots[];             /* 1 << l_lgcap slots */
};

/* 24 bytes of header: a one-slot layer, what a write into a copy pushes,
 * is 40 bytes, and a one-set snapshot 72 with its context (PERFORMANCE.md's
 * target is 0.1x of CPython's 790). That is why the count is 32 bits (share
 * refuses a holder past 2^31, with room above for racing sharers that undo)
 * and tombstones are a flag, not a count: the flag only lets tomb_above
 * skip layers that never held one. */
#define MAX_REFS ((uint32_t)1 << 31)

#define MAX_DEPTH CV_CHAINMAP_MAX_DEPTH
#define MAX_LGCAP 31u

_Static_assert(MAX_DEPTH >= 1 && MAX_DEPTH < 255,
               "depth must fit l_depth with room for one more");

/* "Deleted here". A private address: no value a user stores can equal it. */
static const char tomb_mark;
#define TOMB ((void *)&tomb_mark)

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
    return atomic_load_explicit(&l->l_refs, memory_order_acquire) == 1;
}

static layer *layer_new(unsigned lg)
{
    if (lg > MAX_LGCAP)
        return NULL;
    size_t cap = (size_t)1 << lg;
    layer *l = cv__malloc(sizeof *l + cap * sizeof(cslot));
    if (l == NULL)
        return NULL;
    atomic_init(&l->l_refs, 1);
    l->l_parent = NULL;
    l->l_count = 0;
    l->l_used = 0;
    l->l_tombed = 0;
    l->l_lgcap = (uint8_t)lg;
    l->l_depth = 0;
    memset(l->l_slots, 0, cap * sizeof(cslot));
    return l;
}

/* The slot holding key, else the empty slot where it would go, else NULL
 * (a full tiny table without key). */
static cslot *slot_lookup(const layer *l, const cv_var *key)
{
    uint32_t mask = lmask(l);
    uint32_t i = cv__var_hash(key) & mask;
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
 * change owner) and frees l. l must be unshared; NULL, l untouched, on
 * failure. */
static layer *layer_resize(layer *l, unsigned lg)
{
    layer *n = layer_new(lg);
    if (n == NULL)
        return NULL;
    for (uint32_t i = 0; i <= lmask(l); i++)
        if (l->l_slots[i].key != NULL)
            *slot_lookup(n, l->l_slots[i].key) = l->l_slots[i];
    n->l_parent = l->l_parent;
    n->l_count = l->l_count;
    n->l_used = l->l_used;
    n->l_tombed = l->l_tombed;
    n->l_depth = l->l_depth;
    cv__free(l);
    return n;
}

/* Empties slot s of l by backward shift (maps/slots.h); the caller
 * releases what the slot owned. */
static void slot_remove(layer *l, cslot *s)
{
    cv__slot_remove(l->l_slots, lmask(l), (uint32_t)(s - l->l_slots));
    l->l_used--;
}

/* Fills an empty slot of l (the caller made room) with key -> val, taking
 * the references the slot owns. */
static void slot_fill(layer *l, cslot *s, cv_var *key, void *val)
{
    if (val == TOMB) {
        cv__var_incref(key);
        l->l_tombed = 1;
    } else {
        cv__entry_retain(key, val);
    }
    s->key = key;
    s->val = val;
    l->l_used++;
}

/* ------------------------------------------------------------------------
 * Lifetime
 * ------------------------------------------------------------------------ */

static void chain_release(cv_map *m)
{
    layer *l = (layer *)m;
    /* A loop, not recursion: each freed layer drops its parent's count. */
    while (l != NULL) {
        if (!cv__refs_drop(&l->l_refs, 1))
            return;
        layer *parent = l->l_parent;
        for (uint32_t i = 0; i <= lmask(l); i++) {
            cslot *s = &l->l_slots[i];
            if (s->key == NULL)
                continue;
            if (s->val == TOMB)
                cv__var_decref(s->key);
            else
                cv__entry_release(s->key, s->val);
        }
        cv__free(l);
        l = parent;
    }
}

static int chain_share(cv_map *m, cv_map **out)
{
    layer *l = (layer *)m;
    if (l != NULL &&
        atomic_fetch_add_explicit(&l->l_refs, 1, memory_order_relaxed) >=
            MAX_REFS) {
        /* 2^31 holders of one layer: refused, never wrapped */
        atomic_fetch_sub_explicit(&l->l_refs, 1, memory_order_relaxed);
        return CV_ENOMEM;
    }
    *out = m;
    return 0;
}

/* ------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

static int chain_find(const cv_map *m, const cv_var *key, void **val)
{
    /* The hot path: one probe per layer; the first slot for key decides. */
    for (const layer *l = (const layer *)m; l != NULL; l = l->l_parent) {
        uint32_t mask = lmask(l);
        uint32_t i = cv__var_hash(key) & mask;
        for (uint32_t n = 0; n <= mask; n++) {
            const cslot *s = &l->l_slots[i];
            if (s->key == key) {
                if (s->val == TOMB)
                    return 0;
                *val = s->val;
                return 1;
            }
            if (s->key == NULL)
                break;
            i = (i + 1) & mask;
        }
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
 * l. Layers without tombstones are skipped without a probe. */
static int tomb_above(const layer *top, const layer *l, const cv_var *key)
{
    for (const layer *u = top; u != l; u = u->l_parent) {
        if (!u->l_tombed)
            continue;
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
            slot_fill(n, t, s->key, s->val);
        }
    }
    n->l_count = n->l_used;
    return n;
}

/* Writes key -> val (val may be TOMB) over the frozen top *m, whose
 * visible count becomes count (>= 1): a child layer holding the one slot,
 * or, at the depth bound, one flat layer. The caller's reference to the
 * old top goes to the child, or is dropped after a flatten. */
static int layer_push(cv_map **m, cv_var *key, void *val, uint32_t count)
{
    layer *top = (layer *)*m;
    layer *n;
    if (top->l_depth >= MAX_DEPTH) {
        n = chain_flatten(top, key, count);
        if (n == NULL)
            return CV_ENOMEM;
        if (val != TOMB)
            slot_fill(n, slot_lookup(n, key), key, val);
        n->l_count = count;
        *m = (cv_map *)n;
        chain_release((cv_map *)top); /* last: may release shadowed values */
        return 0;
    }
    n = layer_new(0);
    if (n == NULL)
        return CV_ENOMEM;
    n->l_parent = top; /* steals the caller's reference */
    n->l_depth = (uint8_t)(top->l_depth + 1);
    n->l_count = count;
    slot_fill(n, &n->l_slots[0], key, val);
    *m = (cv_map *)n;
    return 0;
}

/* Makes room for one more slot in the unshared top *m. 0 or CV_ENOMEM. */
static int make_room(cv_map **m)
{
    layer *top = (layer *)*m;
    if (fits(top->l_used + 1, top->l_lgcap))
        return 0;
    layer *g = layer_resize(top, top->l_lgcap + 1u);
    if (g == NULL)
        return CV_ENOMEM;
    *m = (cv_map *)g;
    return 0;
}

/* ------------------------------------------------------------------------
 * Absorbing a private parent: the owner's next write lets go of what it
 * alone shadows
 * ------------------------------------------------------------------------ */

/* Drops what a slot owned (a tombstone owns only its var reference). */
static void slot_release(cslot *s)
{
    if (s->val == TOMB)
        cv__var_decref(s->key);
    else
        cv__entry_release(s->key, s->val);
}

/* Merges the unshared top *m into its parent p, which has a count of one,
 * so that only this top reaches it: p is as private as the top. Each slot
 * of the top overwrites p's slot for its key; what that displaces (p's old
 * value, or the top's own tombstone when p has nothing to hide) is parked
 * in the top's emptied slot and released once *m is p, after the
 * structure is whole. 0, or CV_ENOMEM (p could not grow; nothing changed). */
static int absorb_parent(cv_map **m)
{
    layer *top = (layer *)*m;
    layer *p = top->l_parent;
    if (!fits(p->l_used + top->l_used, p->l_lgcap)) {
        layer *g = layer_resize(p, lg_for(p->l_used + top->l_used));
        if (g == NULL)
            return CV_ENOMEM;
        p = top->l_parent = g;
    }
    for (uint32_t i = 0; i <= lmask(top); i++) {
        cslot *s = &top->l_slots[i];
        if (s->key == NULL)
            continue;
        cslot *t = slot_lookup(p, s->key);
        if (t->key == NULL) {
            if (s->val == TOMB && p->l_depth == 0)
                continue; /* nothing below to hide: parked, released */
            *t = *s; /* moves, references and all */
            p->l_used++;
            p->l_tombed |= s->val == TOMB;
            s->key = NULL;
            continue;
        }
        void *old = t->val;
        if (s->val != TOMB) {
            t->val = s->val;      /* t keeps its var reference */
            s->val = old;         /* s parks its var ref and old */
        } else if (old == TOMB) {
            continue;             /* p hides it already: s is parked */
        } else if (p->l_depth > 0) {
            t->val = TOMB;        /* p now hides what lies below */
            p->l_tombed = 1;
            s->val = old;
        } else {
            /* depth 0: the pair goes. s parks one var reference and old;
             * t's var reference is dropped now, which cannot be the last
             * (s holds another), so no hook runs here. */
            cv_var *k = t->key;
            slot_remove(p, t);
            s->val = old;
            cv__var_decref(k);
        }
    }
    p->l_count = top->l_count;
    *m = (cv_map *)p; /* the top's reference to p moves to *m */
    for (uint32_t i = 0; i <= lmask(top); i++)
        if (top->l_slots[i].key != NULL)
            slot_release(&top->l_slots[i]);
    cv__free(top);
    return 0;
}

/* After an in-place write: absorb every parent that only this top can
 * reach. Best effort (a failed growth keeps the layers as they are). The
 * top is tested too: a delete may have popped the written layer, leaving
 * a top that others share. */
static void absorb_private(cv_map **m)
{
    layer *top = (layer *)*m;
    while (top != NULL && top->l_parent != NULL && unshared(top) &&
           unshared(top->l_parent)) {
        if (absorb_parent(m) < 0)
            return;
        top = (layer *)*m;
    }
}

static int chain_set(cv_map **m, cv_var *key, void *val)
{
    layer *top = (layer *)*m;
    if (top == NULL) {
        layer *n = layer_new(0);
        if (n == NULL)
            return CV_ENOMEM;
        slot_fill(n, &n->l_slots[0], key, val);
        n->l_count = 1;
        *m = (cv_map *)n;
        return 0;
    }

    cslot *s = slot_get(top, key);
    void *cur = NULL;
    int visible = s ? s->val != TOMB : visible_from(top->l_parent, key, &cur);
    if (s != NULL)
        cur = s->val;
    if (visible && cur == val)
        return 0; /* same value: nothing to do, nothing to allocate */
    uint32_t count = top->l_count + (visible ? 0u : 1u);

    if (!unshared(top))
        return layer_push(m, key, val, count);

    if (s != NULL) { /* a pair or a tombstone of this layer: overwrite */
        void *old = s->val;
        cv__value_retain(key, val);
        s->val = val;
        top->l_count = count;
        if (old != TOMB)
            cv__value_release(key, old); /* last: the layer is whole */
    } else {
        int r = make_room(m);
        if (r < 0)
            return r;
        top = (layer *)*m;
        slot_fill(top, slot_lookup(top, key), key, val);
        top->l_count = count;
    }
    absorb_private(m);
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
        cv__free(top);
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
        chain_release((cv_map *)top);
        return 1;
    }
    uint32_t count = top->l_count - 1;
    cv_var *k = (cv_var *)key; /* a tombstone owns a reference to it */

    if (!unshared(top)) {
        int r = layer_push(m, k, TOMB, count);
        return r < 0 ? r : 1;
    }
    if (s != NULL) { /* a pair of this layer */
        void *old = s->val;
        if (top->l_parent != NULL && visible_from(top->l_parent, key, &cur)) {
            s->val = TOMB; /* the slot keeps its var reference */
            top->l_tombed = 1;
            top->l_count = count;
            cv__value_release(k, old);
        } else { /* nothing below to hide: drop the slot */
            slot_remove(top, s);
            top->l_count = count;
            after_remove(m);
            cv__entry_release(k, old);
        }
    } else { /* visible below only: hide it with a tombstone here */
        int r = make_room(m);
        if (r < 0)
            return r;
        top = (layer *)*m;
        slot_fill(top, slot_lookup(top, key), k, TOMB);
        top->l_count = count;
    }
    absorb_private(m); /* after the write, as in chain_set */
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
    if (atomic_load(&l->l_refs) < 1)
        return "chainmap: reference count below 1";
    if (l->l_depth != (l->l_parent ? l->l_parent->l_depth + 1u : 0u))
        return "chainmap: depth is not the parent's plus one";
    if (l->l_depth > MAX_DEPTH)
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
        if (atomic_load(&s->key->v_refs) < 1)
            return "chainmap: key with reference count below 1";
        /* No empty slot between the home slot and i; no duplicate before. */
        for (uint32_t j = cv__var_hash(s->key) & mask; j != i;
             j = (j + 1) & mask) {
            if (l->l_slots[j].key == NULL)
                return "chainmap: key behind an empty slot (probe run broken)";
            if (l->l_slots[j].key == s->key)
                return "chainmap: duplicate key in a layer";
        }
    }
    if (used != l->l_used)
        return "chainmap: used does not match the occupied slots";
    if (tombs != 0 && !l->l_tombed)
        return "chainmap: tombstone in a layer not flagged as holding one";
    if (l->l_depth == 0 && tombs != 0)
        return "chainmap: tombstone in a depth-0 layer";
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
    return m ? ((const layer *)m)->l_depth : 0;
}

const struct cv_backend cv__backend_chainmap = {
    .name = "chainmap",
    .summary = "layers frozen by sharing, O(1) copy, flattened at depth 8",
    .find = chain_find,
    .set = chain_set,
    .del = chain_del,
    .len = chain_len,
    .foreach = chain_foreach,
    .share = chain_share,
    .release = chain_release,
    .check = chain_check,
};
