/*
 * hamt.c -- a persistent hash array mapped trie with reference-counted,
 * structurally shared nodes, written in place while a map owns its path.
 *
 * WHAT AND WHY
 * The map CPython's contextvars and the `immutables` package are built on,
 * and the one Clojure and Scala use for their persistent maps. A key's
 * 32-bit hash is consumed 5 bits a level; each level is a small node that
 * holds only the fragments present. A copy of a context shares the root
 * (one atomic increment); a set on either side copies only the nodes on
 * the path from the root to the changed slot and shares every other node,
 * so a snapshot that differs from its parent by one set costs a few
 * hundred bytes whatever the map's size. A map that nobody else references
 * (a context not copied since its last write) writes its nodes in place,
 * which is the transient trick of Clojure and of CHAMP's builders: the
 * common set-set-set of one context pays no copy at all.
 *
 * COSTS (n pairs, d = depth, about log32 n: 2 at n = 1000, 4 at 10^6)
 *   find                 O(d): a popcount and a load per level
 *   set/del, owned path  O(d) walk, in place; a leaf that grows or shrinks
 *                        is reallocated (one node, at most 33 slots)
 *   set/del, shared      O(d) nodes copied, 16 + 16 slots bytes each;
 *                        every copied slot is one atomic increment (a var
 *                        or a child), and those dominate (a root array
 *                        node alone is 32 increments)
 *   share (copy)         O(1): an atomic increment on the root
 *   len                  O(1): every node counts the pairs below it
 *   memory               16-byte header + 16 bytes a slot (bitmap), 272
 *                        bytes (array node), one block per node
 * Against dictcopy: find walks d nodes instead of probing one table, and
 * the first write after a copy is O(d) instead of O(n).
 * Figures: docs/design/hamt.md.
 *
 * WORKED EXAMPLE (hashes in base 32, least significant fragment first)
 *   a = {x (h=..3.1), y (h=..7.1), z (h=..2)}
 *
 *        root B{1,2}                level 0: fragments 1 and 2
 *         /        \
 *     B{3,7}       z                level 1 under fragment 1: x and y
 *     /    \
 *    x      y
 *
 *   b = share(a)              a, b -> root           refs(root) = 2
 *   set(b, x, 9)              root is shared: copy root' and B'{3,7};
 *                             B' holds x:9 and the same y pair (retained),
 *                             root' shares z's slot; a keeps its root.
 *   set(b, y, 8)              root' and B' have refcount 1: in place.
 *   del(a, z)                 root of a is shared with nobody now: in
 *                             place; root B{1} keeps its one child.
 *   del(a, x)                 B{3,7} is left with y alone: it collapses
 *                             and y moves up into the root (canonical).
 *
 * NODE KINDS AND LAYOUT (every node: 16-byte header, see struct hnode)
 *   bitmap     n_bitmap marks the fragments present; slot i is for the
 *              i-th set bit (index = popcount of the bits below). A slot
 *              {key, val} is a pair; {NULL, child} is a subtree.
 *   array      32 child pointers, NULL where empty, for levels with more
 *              than HAMT_ARRAY_ABOVE fragments present: the index is the
 *              fragment itself and a path copy is 272 bytes instead of 16
 *              a slot. Slots hold subtrees only; a lone key below an array
 *              node lives in a one-pair bitmap node (as in CPython).
 *   collision  the keys whose 32 bits of hash are all equal: pairs in
 *              insertion order, searched linearly. Only at level 7.
 *   Levels 0-5 use 5 bits each, level 6 the top 2 bits (so its bitmap has
 *   at most 4 bits and it is never an array node); level 7 is collision
 *   nodes. The deepest path is 8 nodes (HAMT_MAX_DEPTH), and iteration
 *   uses a stack of exactly that size (CPython gh-93065 and immutables#84
 *   were iterators one level short of this bound).
 *   The empty map is NULL; the map handed out is the root node itself.
 *
 *   The array threshold is CPython's 16: at 16 a full bitmap node and an
 *   array node cost the same to copy (16 + 16 * 16 = 272 bytes); the
 *   thresholds measured around it: docs/design/hamt.md.
 *   One threshold both ways (no hysteresis) keeps the shape canonical; the
 *   price is a conversion (up to 17 blocks) each time a level oscillates
 *   across 16, which a context of vars does not do.
 *
 * THE INVARIANT
 *   Every node is the canonical node of the keys below it: a level with
 *   more than HAMT_ARRAY_ABOVE fragments is an array node, else a bitmap
 *   node whose lone keys are pairs in place, so that a map's shape depends
 *   only on its keys and never on the order of sets and deletes.
 *   (Consequences check() verifies: below a bitmap node every subtree holds
 *   at least 2 keys; a one-key subtree exists only below an array node or
 *   as the root; collision nodes hold >= 2 keys at level 7 only.)
 *
 * OPERATIONS
 *   find -> hamt_find, set -> hamt_set (plan_set, then build_set), del ->
 *   hamt_del (plan_del, then build_del), share -> hamt_share, release ->
 *   hamt_release (node_decref, node_free), walk -> hamt_foreach,
 *   invariant -> hamt_check (check_node). Node makers: bnode_alloc,
 *   anode_alloc; copies that retain: slots_retain, children_incref.
 *   A write runs in three phases: plan (walk down, decide every node's
 *   fate, touch nothing), allocate (every new node of the plan, or none),
 *   build (bottom-up: fill new nodes, change owned nodes in place, then
 *   drop references and release values).
 *
 * OWNERSHIP AND IN-PLACE WRITES
 *   A node may be changed in place only when it and every node above it
 *   on the path have refcount 1, read with an acquire load (map.h): then
 *   the caller's one reference is the only way to reach it. Below the
 *   first shared node everything is copied; the copy retains every pair
 *   and child it shares, and the old node keeps its own. The owner of an
 *   in-place node that now points at a copy drops its reference to the
 *   shared original (exactly one decref per write: the first shared node).
 *
 * FAILURE SEMANTICS
 *   All allocations of a write happen in phase 2, before anything is
 *   modified or retained; if one fails, the blocks already obtained are
 *   freed raw (they hold nothing yet) and the call returns CV_MAP_ENOMEM with
 *   the map, *m and every refcount as they were. The build phase cannot
 *   fail. Value hooks that release (old values, removed pairs, nodes that
 *   die) run after *m points at a consistent map; retain hooks run while
 *   new nodes are filled, never on a failing call.
 *
 * TEST AND DEBUG HOOKS
 *   hamt_check walks the trie: header counts against bitmaps, per-node
 *   pair totals, hash prefixes, the canonical-shape rules above, depth,
 *   and refcounts (>= 1) of nodes and keys. cv__hamt_shape prints a map's
 *   node structure (kinds, bitmaps, fragments) so tests can compare a map
 *   built by sets and deletes with one built from its final contents.
 *   cv__hamt_array_above exports the threshold. Forced hashes
 *   (cv__var_new_hashed) reach every level and the collision level.
 *
 * FURTHER READING
 *   Phil Bagwell, "Ideal Hash Trees" (EPFL, 2001); Michael Steindorfer and
 *   Jurgen Vinju, "Optimizing Hash-Array Mapped Tries for Fast and Lean
 *   Immutable JVM Collections" (OOPSLA 2015, CHAMP: canonical deletion);
 *   CPython Python/hamt.c (its opening essay; array nodes above 16);
 *   MagicStack/immutables (the same trie as a package).
 */
#include <stdio.h>
#include <string.h>

#include "map.h"

/* A node is a map of its own: hamt_release takes any node. */
extern const struct cv_backend cv__backend_hamt;
#define SELF (&cv__backend_hamt)

/* ------------------------------------------------------------------------
 * Layout
 * ------------------------------------------------------------------------ */

#define HAMT_BITS 5u
#define HAMT_FANOUT 32u
#define HAMT_COLLISION_LEVEL 7u /* 7 * 5 = 35 > 32: no bits are left */
#define HAMT_MAX_DEPTH 8u       /* levels 0..7 */
_Static_assert(HAMT_FANOUT + HAMT_MAX_DEPTH <= CV_MAP_DROPS_MAX,
               "a delete hands over up to a fan-out of node references");

/* A level with more fragments present than this is an array node. May be
 * set at build time to measure; it must stay above 4 (level 6 has 4
 * fragments and must never become an array node) and below 32. */
#ifndef CV_HAMT_ARRAY_ABOVE
#define CV_HAMT_ARRAY_ABOVE 16
#endif
#define HAMT_ARRAY_ABOVE ((unsigned)CV_HAMT_ARRAY_ABOVE)
_Static_assert(CV_HAMT_ARRAY_ABOVE >= 4 && CV_HAMT_ARRAY_ABOVE < 32,
               "array threshold out of range");

enum { NODE_BITMAP = 1, NODE_ARRAY = 2, NODE_COLLISION = 3 };

typedef struct hnode {
    _Atomic uint32_t n_refs; /* parents + maps holding this node */
    uint32_t n_size;         /* pairs in this subtree (collision: slots) */
    uint32_t n_bitmap;       /* bitmap: fragments present; collision: the
                                common hash; array: unused (0) */
    uint8_t n_kind;          /* NODE_* */
    uint8_t n_count;         /* bitmap: slots; array: children; else 0 */
    uint16_t n_pad;          /* keeps the header at 16 bytes */
} hnode;

typedef struct hslot {
    cv_var *key;             /* NULL: val is a child node */
    void *val;               /* the value (retained) or an hnode * */
} hslot;

/* Bitmap and collision nodes: a header, then the slots. */
typedef struct bnode {
    hnode b_h;               /* n_count (bitmap) or n_size (collision) slots */
    hslot b_slots[];         /* ordered by fragment (bitmap) */
} bnode;

typedef struct anode {
    hnode a_h;               /* n_count = non-NULL children */
    hnode *a_child[HAMT_FANOUT]; /* indexed by fragment */
} anode;

_Static_assert(sizeof(hnode) == 16, "node header is 16 bytes");

/* Exported for tests (declared again in tests/test_hamt.c). */
CV_HIDDEN extern const unsigned cv__hamt_array_above;
CV_HIDDEN size_t cv__hamt_shape(const cv_map *m, char *buf, size_t cap);
const unsigned cv__hamt_array_above = HAMT_ARRAY_ABOVE;

#define AS_B(n) ((bnode *)(n))
#define AS_A(n) ((anode *)(n))

static inline unsigned frag(uint32_t hash, unsigned level)
{
    return (hash >> (level * HAMT_BITS)) & (HAMT_FANOUT - 1);
}

static inline unsigned popcount32(uint32_t x)
{
    return (unsigned)__builtin_popcount(x);
}

/* Index of fragment bit `bit` among the slots of a bitmap node. */
static inline unsigned bindex(uint32_t bitmap, uint32_t bit)
{
    return popcount32(bitmap & (bit - 1));
}

static inline int owned_node(const hnode *n)
{
    return atomic_load_explicit(&n->n_refs, memory_order_acquire) == 1;
}

static inline void node_incref(hnode *n)
{
    atomic_fetch_add_explicit(&n->n_refs, 1, memory_order_relaxed);
}

static size_t bnode_bytes(unsigned slots)
{
    return sizeof(bnode) + (size_t)slots * sizeof(hslot);
}

/* Raw blocks: headers are written here, contents in the build phase. */
static hnode *bnode_alloc(unsigned kind, unsigned slots)
{
    hnode *n = cv__malloc(bnode_bytes(slots));
    if (n != NULL) {
        atomic_init(&n->n_refs, 1);
        n->n_kind = (uint8_t)kind;
        n->n_count = kind == NODE_BITMAP ? (uint8_t)slots : 0;
        n->n_size = 0;
        n->n_bitmap = 0;
        n->n_pad = 0;
    }
    return n;
}

static hnode *anode_alloc(void)
{
    hnode *n = cv__malloc(sizeof(anode));
    if (n != NULL) {
        atomic_init(&n->n_refs, 1);
        n->n_kind = NODE_ARRAY;
        n->n_count = 0;
        n->n_size = 0;
        n->n_bitmap = 0;
        n->n_pad = 0;
        memset(AS_A(n)->a_child, 0, sizeof AS_A(n)->a_child);
    }
    return n;
}

static unsigned bslots(const hnode *n)
{
    return n->n_kind == NODE_BITMAP ? n->n_count : n->n_size;
}

/* ------------------------------------------------------------------------
 * Release
 * ------------------------------------------------------------------------ */

static void node_decref(hnode *n);

/* Frees n and drops everything it holds (n's count has reached 0). */
static void node_free(hnode *n)
{
    if (n->n_kind == NODE_ARRAY) {
        for (unsigned i = 0; i < HAMT_FANOUT; i++)
            if (AS_A(n)->a_child[i] != NULL)
                node_decref(AS_A(n)->a_child[i]);
    } else {
        unsigned c = bslots(n);
        for (unsigned i = 0; i < c; i++) {
            hslot *s = &AS_B(n)->b_slots[i];
            if (s->key != NULL)
                cv__slot_drop(s->key, s->val);
            else
                node_decref((hnode *)s->val);
        }
    }
    cv__free(n);
}

static void node_decref(hnode *n)
{
    if (!cv__refs_drop(&n->n_refs, 1))
        return;
    node_free(n);
}

static void hamt_release(cv_map *m)
{
    if (m != NULL)
        node_decref((hnode *)m);
}

/* Retains every pair and child among slots [from, to) of s: the slots were
 * copied out of a node that keeps its own references. */
static void slots_retain(hslot *s, unsigned from, unsigned to)
{
    for (unsigned i = from; i < to; i++) {
        if (s[i].key != NULL)
            cv__slot_take(s[i].key, s[i].val);
        else
            node_incref((hnode *)s[i].val);
    }
}

static void children_incref(anode *a, unsigned skip)
{
    for (unsigned i = 0; i < HAMT_FANOUT; i++)
        if (i != skip && a->a_child[i] != NULL)
            node_incref(a->a_child[i]);
}

/* ------------------------------------------------------------------------
 * Read side
 * ------------------------------------------------------------------------ */

static int hamt_find(const cv_map *m, const cv_var *key, void **val)
{
    const hnode *n = (const hnode *)m;
    uint32_t h = cv__key_hash(key);
    for (unsigned level = 0; n != NULL; level++) {
        if (n->n_kind == NODE_BITMAP) {
            uint32_t bit = 1u << frag(h, level);
            if ((n->n_bitmap & bit) == 0)
                return 0;
            const hslot *s = &AS_B(n)->b_slots[bindex(n->n_bitmap, bit)];
            if (s->key == NULL) {
                n = (const hnode *)s->val;
                continue;
            }
            if (s->key != key)
                return 0;
            *val = s->val;
            return 1;
        }
        if (n->n_kind == NODE_ARRAY) {
            n = AS_A(n)->a_child[frag(h, level)];
            continue;
        }
        for (unsigned i = 0; i < n->n_size; i++) {
            if (AS_B(n)->b_slots[i].key == key) {
                *val = AS_B(n)->b_slots[i].val;
                return 1;
            }
        }
        return 0;
    }
    return 0;
}

static size_t hamt_len(const cv_map *m)
{
    return m ? ((const hnode *)m)->n_size : 0;
}

static int hamt_share(cv_map *m, cv_map **out)
{
    if (m != NULL)
        node_incref((hnode *)m);
    *out = m;
    return 0;
}

/* Depth-first with an explicit stack of HAMT_MAX_DEPTH frames: level L is
 * frame L, and the deepest node (a collision node) is at level 7. */
static int hamt_foreach(const cv_map *m, cv_map_visit_cb cb, void *arg)
{
    struct frame {
        const hnode *node;   /* borrowed */
        unsigned next;       /* next slot (bitmap, collision) or fragment */
    } stack[HAMT_MAX_DEPTH];
    if (m == NULL)
        return 0;
    unsigned sp = 0;
    stack[0].node = (const hnode *)m;
    stack[0].next = 0;
    for (;;) {
        struct frame *f = &stack[sp];
        const hnode *n = f->node;
        const hnode *child = NULL;
        if (n->n_kind == NODE_ARRAY) {
            while (f->next < HAMT_FANOUT && child == NULL)
                child = AS_A(n)->a_child[f->next++];
        } else if (f->next < bslots(n)) {
            const hslot *s = &AS_B(n)->b_slots[f->next++];
            if (s->key != NULL) {
                int r = cb(s->key, s->val, arg);
                if (r != 0)
                    return r;
                continue;
            }
            child = (const hnode *)s->val;
        }
        if (child != NULL) {
            /* The invariant bounds the depth; never overrun the stack
             * even if it were broken (check() reports that). */
            if (sp + 1 >= HAMT_MAX_DEPTH)
                continue;
            sp++;
            stack[sp].node = child;
            stack[sp].next = 0;
        } else if (sp-- == 0) {
            return 0;
        }
    }
}

/* ------------------------------------------------------------------------
 * Write plans. A step is one node on the path from the root down.
 * ------------------------------------------------------------------------ */

typedef struct hstep {
    hnode *node;     /* the node at this level (borrowed) */
    unsigned idx;    /* slot index (bitmap, collision) or fragment (array)
                        of the path below / the pair concerned */
    int owned;       /* this node and all above it have refcount 1 */
    hnode *fresh;    /* phase 2: the node that replaces it, or NULL */
} hstep;

/* The most new nodes one write needs besides the path: a bitmap node
 * turning into an array node makes one per fragment. */
#define HAMT_EXTRA_MAX (HAMT_FANOUT + 1)

enum set_action {
    SET_NEW_ROOT,       /* empty map: a one-pair root */
    SET_REPLACE,        /* the key is there: swap the value */
    SET_INSERT,         /* bitmap node gains a pair */
    SET_TO_ARRAY,       /* ... and passes the threshold: becomes an array */
    SET_INSERT_ARRAY,   /* array node gains a one-pair child */
    SET_SPLIT,          /* a pair's slot becomes a subtree of both keys */
    SET_INSERT_COLL     /* collision node gains a pair */
};

typedef struct set_plan {
    hstep path[HAMT_MAX_DEPTH];
    unsigned depth;               /* nodes on the path; leaf = depth - 1 */
    enum set_action action;
    hnode *extra[HAMT_EXTRA_MAX]; /* new nodes below the leaf */
    unsigned nextra;
} set_plan;

/* Frees raw every block a failed phase 2 obtained. */
static void plan_free(hstep *path, unsigned depth, hnode **extra,
                      unsigned nextra)
{
    for (unsigned i = 0; i < depth; i++)
        cv__free(path[i].fresh);
    for (unsigned i = 0; i < nextra; i++)
        cv__free(extra[i]);
}

/* Phase 1 of a set: walks down; returns 0 when the value is already
 * there (nothing to do), 1 with p filled. Touches nothing. */
static int plan_set(const hnode *root, const cv_var *key, void *val,
                    set_plan *p)
{
    uint32_t h = cv__key_hash(key);
    hnode *n = (hnode *)root;
    int owned = 1;
    p->depth = 0;
    p->nextra = 0;
    if (n == NULL) {
        p->action = SET_NEW_ROOT;
        return 1;
    }
    for (unsigned level = 0;; level++) {
        hstep *st = &p->path[p->depth++];
        owned = owned && owned_node(n);
        st->node = n;
        st->owned = owned;
        st->fresh = NULL;
        if (n->n_kind == NODE_ARRAY) {
            st->idx = frag(h, level);
            hnode *c = AS_A(n)->a_child[st->idx];
            if (c == NULL) {
                p->action = SET_INSERT_ARRAY;
                return 1;
            }
            n = c;
        } else if (n->n_kind == NODE_BITMAP) {
            uint32_t bit = 1u << frag(h, level);
            st->idx = bindex(n->n_bitmap, bit);
            if ((n->n_bitmap & bit) == 0) {
                p->action = n->n_count >= HAMT_ARRAY_ABOVE ? SET_TO_ARRAY
                                                           : SET_INSERT;
                return 1;
            }
            hslot *s = &AS_B(n)->b_slots[st->idx];
            if (s->key == NULL) {
                n = (hnode *)s->val;
                continue;
            }
            if (s->key != key) {
                p->action = SET_SPLIT;
                return 1;
            }
            if (s->val == val)
                return 0;
            p->action = SET_REPLACE;
            return 1;
        } else {
            for (unsigned i = 0; i < n->n_size; i++) {
                hslot *s = &AS_B(n)->b_slots[i];
                if (s->key == key) {
                    if (s->val == val)
                        return 0;
                    st->idx = i;
                    p->action = SET_REPLACE;
                    return 1;
                }
            }
            st->idx = n->n_size;
            p->action = SET_INSERT_COLL;
            return 1;
        }
    }
}

/* Phase 2 of a set: every block the build will fill. 0 or CV_MAP_ENOMEM (and
 * then nothing is held). */
static int alloc_set(set_plan *p, const cv_var *key)
{
    unsigned leaf = p->depth - 1;
    for (unsigned i = 0; i + 1 < p->depth; i++) {
        hstep *st = &p->path[i];
        if (!st->owned) {
            st->fresh = st->node->n_kind == NODE_ARRAY
                            ? anode_alloc()
                            : bnode_alloc(NODE_BITMAP, st->node->n_count);
            if (st->fresh == NULL)
                goto fail;
        }
    }
    hstep *lf = p->depth ? &p->path[leaf] : NULL;
    hnode *ln = lf ? lf->node : NULL;
    switch (p->action) {
    case SET_NEW_ROOT:
        if ((p->extra[p->nextra++] = bnode_alloc(NODE_BITMAP, 1)) == NULL)
            goto fail;
        break;
    case SET_REPLACE:
    case SET_SPLIT:
        if (!lf->owned) {
            lf->fresh = ln->n_kind == NODE_BITMAP
                            ? bnode_alloc(NODE_BITMAP, ln->n_count)
                            : bnode_alloc(NODE_COLLISION, ln->n_size);
            if (lf->fresh == NULL)
                goto fail;
        }
        if (p->action == SET_SPLIT) {
            /* One single-child bitmap node per level where both hashes
             * still agree, then a two-pair node (bitmap, or collision at
             * level 7). */
            const cv_var *other = AS_B(ln)->b_slots[lf->idx].key;
            uint32_t h1 = cv__key_hash(key), h2 = cv__key_hash(other);
            unsigned level = leaf + 1;
            while (level < HAMT_COLLISION_LEVEL &&
                   frag(h1, level) == frag(h2, level)) {
                if ((p->extra[p->nextra++] = bnode_alloc(NODE_BITMAP, 1)) ==
                    NULL)
                    goto fail;
                level++;
            }
            p->extra[p->nextra++] =
                level < HAMT_COLLISION_LEVEL ? bnode_alloc(NODE_BITMAP, 2)
                                             : bnode_alloc(NODE_COLLISION, 2);
            if (p->extra[p->nextra - 1] == NULL)
                goto fail;
        }
        break;
    case SET_INSERT:
        if ((lf->fresh = bnode_alloc(NODE_BITMAP, ln->n_count + 1u)) == NULL)
            goto fail;
        break;
    case SET_TO_ARRAY:
        if ((lf->fresh = anode_alloc()) == NULL)
            goto fail;
        /* A one-pair child for each pair of the old node and the new key. */
        for (unsigned i = 0; i < ln->n_count; i++)
            if (AS_B(ln)->b_slots[i].key != NULL &&
                (p->extra[p->nextra++] = bnode_alloc(NODE_BITMAP, 1)) == NULL)
                goto fail;
        if ((p->extra[p->nextra++] = bnode_alloc(NODE_BITMAP, 1)) == NULL)
            goto fail;
        break;
    case SET_INSERT_ARRAY:
        if (!lf->owned && (lf->fresh = anode_alloc()) == NULL)
            goto fail;
        if ((p->extra[p->nextra++] = bnode_alloc(NODE_BITMAP, 1)) == NULL)
            goto fail;
        break;
    case SET_INSERT_COLL:
        if ((lf->fresh = bnode_alloc(NODE_COLLISION, ln->n_size + 1u)) ==
            NULL)
            goto fail;
        break;
    }
    return 0;
fail:
    /* The failing slot holds NULL; cv__free(NULL) is a no-op. */
    plan_free(p->path, p->depth, p->extra, p->nextra);
    return CV_MAP_ENOMEM;
}

/* A one-pair bitmap node at `level` (the block comes from phase 2). */
static hnode *fill_single(hnode *n, unsigned level, cv_var *k, void *v)
{
    n->n_bitmap = 1u << frag(cv__key_hash(k), level);
    n->n_size = 1;
    AS_B(n)->b_slots[0].key = k;
    AS_B(n)->b_slots[0].val = v;
    return n;
}

/* Copies the header counts and slots of bitmap/collision node src into the
 * fresh block dst and retains the copied pairs and children (src keeps
 * its own), except slot `skip`, which the caller overwrites. */
static void bnode_copy(hnode *dst, const hnode *src, unsigned skip)
{
    unsigned c = bslots(src);
    dst->n_bitmap = src->n_bitmap;
    dst->n_size = src->n_size;
    memcpy(AS_B(dst)->b_slots, AS_B(src)->b_slots, c * sizeof(hslot));
    slots_retain(AS_B(dst)->b_slots, 0, skip < c ? skip : c);
    if (skip < c)
        slots_retain(AS_B(dst)->b_slots, skip + 1, c);
}

static void anode_copy(hnode *dst, const hnode *src, unsigned skip)
{
    dst->n_count = src->n_count;
    dst->n_size = src->n_size;
    memcpy(AS_A(dst)->a_child, AS_A(src)->a_child, sizeof AS_A(dst)->a_child);
    children_incref(AS_A(dst), skip);
}

/* Builds the leaf of a set; returns the node that takes the leaf's place.
 * *old_val gets the value an in-place replace displaced. */
static hnode *build_set_leaf(set_plan *p, cv_var *key, void *val,
                             void **old_val, int *replaced_in_place)
{
    uint32_t h = cv__key_hash(key);
    unsigned leaf = p->depth - 1;
    hstep *lf = p->depth ? &p->path[leaf] : NULL;
    hnode *ln = lf ? lf->node : NULL;
    hnode *out = lf && lf->fresh ? lf->fresh : ln;
    int own = lf ? lf->owned : 1;

    switch (p->action) {
    case SET_NEW_ROOT:
        cv__slot_take(key, val);
        return fill_single(p->extra[0], 0, key, val);

    case SET_REPLACE: {
        hslot *s = &AS_B(ln)->b_slots[lf->idx];
        if (own) {
            cv__slot_take_value(key, val);
            *old_val = s->val;
            *replaced_in_place = 1;
            s->val = val;
            return ln;
        }
        cv__slot_take(key, val);
        bnode_copy(out, ln, lf->idx);
        AS_B(out)->b_slots[lf->idx].val = val;
        return out;
    }

    case SET_INSERT: {
        uint32_t bit = 1u << frag(h, leaf);
        unsigned c = ln->n_count, i = lf->idx;
        hslot *d = AS_B(out)->b_slots;
        const hslot *s = AS_B(ln)->b_slots;
        cv__slot_take(key, val);
        memcpy(d, s, i * sizeof(hslot));
        memcpy(d + i + 1, s + i, (c - i) * sizeof(hslot));
        d[i].key = key;
        d[i].val = val;
        if (!own) {
            slots_retain(d, 0, i);
            slots_retain(d, i + 1, c + 1);
        }
        out->n_bitmap = ln->n_bitmap | bit;
        out->n_size = ln->n_size + 1;
        return out;
    }

    case SET_TO_ARRAY: {
        uint32_t bm = ln->n_bitmap;
        unsigned f = frag(h, leaf), e = 0, i = 0;
        cv__slot_take(key, val);
        for (unsigned j = 0; j < HAMT_FANOUT; j++) {
            hnode *child;
            if (j == f) {
                child = fill_single(p->extra[e++], leaf + 1, key, val);
            } else if (bm & (1u << j)) {
                hslot *s = &AS_B(ln)->b_slots[i++];
                if (s->key != NULL) {
                    if (!own)
                        cv__slot_take(s->key, s->val);
                    child = fill_single(p->extra[e++], leaf + 1, s->key,
                                        s->val);
                } else {
                    child = (hnode *)s->val;
                    if (!own)
                        node_incref(child);
                }
            } else {
                continue;
            }
            AS_A(out)->a_child[j] = child;
        }
        out->n_count = (uint8_t)(ln->n_count + 1);
        out->n_size = ln->n_size + 1;
        return out;
    }

    case SET_INSERT_ARRAY: {
        hnode *c = fill_single(p->extra[0], leaf + 1, key, val);
        cv__slot_take(key, val);
        if (!own)
            anode_copy(out, ln, lf->idx);
        AS_A(out)->a_child[lf->idx] = c;
        out->n_count++;
        out->n_size = ln->n_size + 1;
        return out;
    }

    case SET_SPLIT: {
        hslot *s = &AS_B(ln)->b_slots[lf->idx];
        cv_var *k2 = s->key;
        void *v2 = s->val;
        uint32_t h2 = cv__key_hash(k2);
        cv__slot_take(key, val);
        if (!own)
            cv__slot_take(k2, v2); /* the old leaf keeps its own */
        /* The chain, from the top: extra[0 .. nextra-2] single-child. */
        unsigned level = leaf + 1;
        for (unsigned e = 0; e + 1 < p->nextra; e++, level++) {
            hnode *n = p->extra[e];
            n->n_bitmap = 1u << frag(h, level);
            n->n_size = 2;
            AS_B(n)->b_slots[0].key = NULL;
            AS_B(n)->b_slots[0].val = p->extra[e + 1];
        }
        hnode *bot = p->extra[p->nextra - 1];
        hslot *b = AS_B(bot)->b_slots;
        bot->n_size = 2;
        if (bot->n_kind == NODE_COLLISION) {
            bot->n_bitmap = h;
            b[0] = (hslot){.key = k2, .val = v2};
            b[1] = (hslot){.key = key, .val = val};
        } else {
            unsigned f1 = frag(h, level), f2 = frag(h2, level);
            bot->n_bitmap = (1u << f1) | (1u << f2);
            b[f1 < f2 ? 0 : 1] = (hslot){.key = key, .val = val};
            b[f1 < f2 ? 1 : 0] = (hslot){.key = k2, .val = v2};
        }
        if (!own)
            bnode_copy(out, ln, lf->idx);
        AS_B(out)->b_slots[lf->idx] = (hslot){.key = NULL, .val = p->extra[0]};
        out->n_size = ln->n_size + 1;
        return out;
    }

    case SET_INSERT_COLL: {
        unsigned c = ln->n_size;
        cv__slot_take(key, val);
        memcpy(AS_B(out)->b_slots, AS_B(ln)->b_slots, c * sizeof(hslot));
        if (!own)
            slots_retain(AS_B(out)->b_slots, 0, c);
        AS_B(out)->b_slots[c] = (hslot){.key = key, .val = val};
        out->n_bitmap = ln->n_bitmap;
        out->n_size = c + 1;
        return out;
    }
    }
    return NULL; /* not reached */
}

static int hamt_set(cv_map **m, cv_var *key, void *val)
{
    set_plan p;
    if (plan_set((const hnode *)*m, key, val, &p) == 0)
        return 0;
    if (alloc_set(&p, key) != 0)
        return CV_MAP_ENOMEM;

    /* Phase 3: bottom-up. Copies (which retain) come first: the owned
     * nodes, changed in place, are all above them. */
    void *old_val = NULL;
    int replaced_in_place = 0;
    hnode *sub = build_set_leaf(&p, key, val, &old_val, &replaced_in_place);
    unsigned grow = p.action != SET_REPLACE;
    for (unsigned i = p.depth ? p.depth - 1 : 0; i-- > 0;) {
        hstep *st = &p.path[i];
        hnode *n = st->node;
        hnode *out = st->fresh ? st->fresh : n;
        if (n->n_kind == NODE_ARRAY) {
            if (st->fresh)
                anode_copy(out, n, st->idx);
            AS_A(out)->a_child[st->idx] = sub;
        } else {
            if (st->fresh)
                bnode_copy(out, n, st->idx);
            AS_B(out)->b_slots[st->idx].val = sub;
        }
        out->n_size = n->n_size + grow;
        sub = out;
    }
    *m = (cv_map *)sub;

    /* Phase 4: drop what the new map no longer holds. */
    for (unsigned i = 0; i < p.depth; i++) {
        hstep *st = &p.path[i];
        if (!st->owned) {
            /* The first shared node: its owner (the caller, or an owned
             * parent now pointing at the copy) lets go of it. */
            cv__map_drop_later(SELF, (cv_map *)st->node);
            break;
        }
        if (st->fresh)
            cv__free(st->node); /* owned, contents moved */
    }
    if (replaced_in_place)
        cv__slot_drop_value(key, old_val);
    return 0;
}

/* ------------------------------------------------------------------------
 * Delete
 * ------------------------------------------------------------------------ */

enum del_result {
    DEL_NODE,   /* the node stays (in place, or replaced by fresh) */
    DEL_PAIR,   /* the node is left with one pair: it moves up a level */
    DEL_GONE    /* the node is left empty */
};

typedef struct del_step {
    hstep s;
    enum del_result res;
    hslot pair;          /* DEL_PAIR: the pair that moves up */
} del_step;

/* Phase 1 of a delete. Returns 0 when the key is absent, else 1 with the
 * path and the fate of every node on it decided bottom-up. */
static int plan_del(hnode *root, const cv_var *key, del_step *path,
                    unsigned *depth_out)
{
    uint32_t h = cv__key_hash(key);
    hnode *n = root;
    int owned = 1;
    unsigned depth = 0;
    for (unsigned level = 0;; level++) {
        if (n == NULL)
            return 0;
        del_step *d = &path[depth++];
        owned = owned && owned_node(n);
        d->s.node = n;
        d->s.owned = owned;
        d->s.fresh = NULL;
        if (n->n_kind == NODE_ARRAY) {
            d->s.idx = frag(h, level);
            n = AS_A(n)->a_child[d->s.idx];
            continue;
        }
        if (n->n_kind == NODE_BITMAP) {
            uint32_t bit = 1u << frag(h, level);
            if ((n->n_bitmap & bit) == 0)
                return 0;
            d->s.idx = bindex(n->n_bitmap, bit);
            hslot *s = &AS_B(n)->b_slots[d->s.idx];
            if (s->key == NULL) {
                n = (hnode *)s->val;
                continue;
            }
            if (s->key != key)
                return 0;
            break;
        }
        unsigned i = 0;
        while (i < n->n_size && AS_B(n)->b_slots[i].key != key)
            i++;
        if (i == n->n_size)
            return 0;
        d->s.idx = i;
        break;
    }
    *depth_out = depth;

    /* Fates, leaf first. A node collapses into a pair only below a bitmap
     * node (below an array node a lone key keeps its one-pair node). */
    for (unsigned i = depth; i-- > 0;) {
        del_step *d = &path[i];
        hnode *nd = d->s.node;
        int parent_bitmap = i > 0 && path[i - 1].s.node->n_kind == NODE_BITMAP;
        if (i == depth - 1) {
            unsigned c = bslots(nd);
            if (c == 1) {
                d->res = DEL_GONE;
            } else if (c == 2 && parent_bitmap &&
                       AS_B(nd)->b_slots[1 - d->s.idx].key != NULL) {
                d->res = DEL_PAIR;
                d->pair = AS_B(nd)->b_slots[1 - d->s.idx];
            } else {
                d->res = DEL_NODE;
            }
            continue;
        }
        const del_step *below = &path[i + 1];
        d->res = DEL_NODE;
        if (nd->n_kind == NODE_BITMAP && below->res == DEL_PAIR &&
            nd->n_count == 1 && parent_bitmap) {
            d->res = DEL_PAIR;
            d->pair = below->pair;
        }
        /* DEL_GONE below a bitmap node cannot happen: a subtree below a
         * bitmap node holds at least 2 keys (the invariant). */
    }
    return 1;
}

/* Phase 2 of a delete. */
static int alloc_del(del_step *path, unsigned depth)
{
    for (unsigned i = 0; i < depth; i++) {
        del_step *d = &path[i];
        hnode *n = d->s.node;
        if (d->res != DEL_NODE)
            continue;
        int leaf = i == depth - 1;
        int child_gone = !leaf && path[i + 1].res == DEL_GONE;
        if (leaf) { /* shrinks by one slot */
            d->s.fresh = bnode_alloc(n->n_kind, bslots(n) - 1u);
        } else if (n->n_kind == NODE_ARRAY && child_gone &&
                   n->n_count - 1u <= HAMT_ARRAY_ABOVE) {
            d->s.fresh = bnode_alloc(NODE_BITMAP, n->n_count - 1u);
        } else if (!d->s.owned) {
            d->s.fresh = n->n_kind == NODE_ARRAY
                             ? anode_alloc()
                             : bnode_alloc(NODE_BITMAP, n->n_count);
        } else {
            continue;
        }
        if (d->s.fresh == NULL) {
            for (unsigned j = 0; j < i; j++)
                cv__free(path[j].s.fresh);
            return CV_MAP_ENOMEM;
        }
    }
    return 0;
}

/* Deferred work of phase 4: nodes to free raw (owned, contents moved) and
 * references to drop. */
typedef struct del_after {
    hnode *free_raw[HAMT_MAX_DEPTH + HAMT_FANOUT];
    unsigned nfree;
    hnode *decref[HAMT_MAX_DEPTH + HAMT_FANOUT];
    unsigned ndecref;
} del_after;

/* An array node converted to a bitmap node after child `gone` left. */
static void array_to_bitmap(hnode *out, hnode *a, unsigned gone, int own,
                            del_after *after)
{
    unsigned i = 0;
    uint32_t bm = 0;
    for (unsigned j = 0; j < HAMT_FANOUT; j++) {
        hnode *c = AS_A(a)->a_child[j];
        if (c == NULL || j == gone)
            continue;
        hslot *s = &AS_B(out)->b_slots[i++];
        bm |= 1u << j;
        if (c->n_size == 1) {
            /* A one-pair node: its pair moves up into the bitmap node. */
            *s = AS_B(c)->b_slots[0];
            if (own && owned_node(c)) {
                after->free_raw[after->nfree++] = c;
            } else {
                cv__slot_take(s->key, s->val);
                if (own)
                    after->decref[after->ndecref++] = c;
            }
        } else {
            s->key = NULL;
            s->val = c;
            if (!own)
                node_incref(c);
        }
    }
    out->n_bitmap = bm;
}

static int hamt_del(cv_map **m, const cv_var *key)
{
    del_step path[HAMT_MAX_DEPTH];
    unsigned depth = 0;
    path[0].res = DEL_NODE; /* plan_del sets it; this quiets -Wmaybe-uninitialized */
    if (*m == NULL || plan_del((hnode *)*m, key, path, &depth) == 0)
        return 0;
    if (alloc_del(path, depth) != 0)
        return CV_MAP_ENOMEM;

    del_after after = {.nfree = 0, .ndecref = 0};
    del_step *lf = &path[depth - 1];
    hslot removed = AS_B(lf->s.node)->b_slots[lf->s.idx];

    /* Phase 3, leaf first. `sub` is what replaces the child slot. */
    hnode *sub = NULL;
    for (unsigned i = depth; i-- > 0;) {
        del_step *d = &path[i];
        hnode *n = d->s.node;
        int own = d->s.owned;
        hnode *out = d->s.fresh ? d->s.fresh : n;
        int leaf = i == depth - 1;

        if (d->res == DEL_PAIR) {
            /* The pair leaves this node for the parent's slot. */
            if (leaf && !own) /* the old leaf keeps its own */
                cv__slot_take(d->pair.key, d->pair.val);
            if (own)
                after.free_raw[after.nfree++] = n;
            continue;
        }
        if (d->res == DEL_GONE) {
            if (own)
                after.free_raw[after.nfree++] = n;
            continue;
        }
        if (leaf) {
            unsigned c = bslots(n), k = d->s.idx;
            hslot *dst = AS_B(out)->b_slots;
            const hslot *src = AS_B(n)->b_slots;
            memcpy(dst, src, k * sizeof(hslot));
            memcpy(dst + k, src + k + 1, (c - k - 1) * sizeof(hslot));
            if (!own)
                slots_retain(dst, 0, c - 1);
            else
                after.free_raw[after.nfree++] = n;
            out->n_bitmap = n->n_kind == NODE_BITMAP
                                ? n->n_bitmap & ~(1u << frag(cv__key_hash(key),
                                                             i))
                                : n->n_bitmap;
            out->n_size = n->n_size - 1;
            sub = out;
            continue;
        }

        const del_step *below = &path[i + 1];
        if (n->n_kind == NODE_ARRAY) {
            if (below->res == DEL_GONE &&
                n->n_count - 1u <= HAMT_ARRAY_ABOVE) {
                array_to_bitmap(out, n, d->s.idx, own, &after);
                if (own)
                    after.free_raw[after.nfree++] = n;
            } else {
                if (d->s.fresh)
                    anode_copy(out, n, d->s.idx);
                AS_A(out)->a_child[d->s.idx] =
                    below->res == DEL_GONE ? NULL : sub;
                if (below->res == DEL_GONE)
                    out->n_count--;
            }
        } else {
            if (d->s.fresh)
                bnode_copy(out, n, d->s.idx);
            hslot *s = &AS_B(out)->b_slots[d->s.idx];
            if (below->res == DEL_PAIR)
                *s = below->pair;
            else
                s->val = sub;
        }
        out->n_size = n->n_size - 1;
        sub = out;
    }
    *m = path[0].res == DEL_GONE ? NULL : (cv_map *)sub;

    /* Phase 4: the first shared node loses its owner's reference; owned
     * nodes whose contents moved are freed; the removed pair goes if the
     * slot that held it was ours. */
    for (unsigned i = 0; i < depth; i++) {
        if (!path[i].s.owned) {
            after.decref[after.ndecref++] = path[i].s.node;
            break;
        }
    }
    for (unsigned i = 0; i < after.nfree; i++)
        cv__free(after.free_raw[i]);
    if (lf->s.owned)
        cv__slot_drop(removed.key, removed.val);
    for (unsigned i = 0; i < after.ndecref; i++)
        cv__map_drop_later(SELF, (cv_map *)after.decref[i]);
    return 1;
}

/* ------------------------------------------------------------------------
 * Check and shape
 * ------------------------------------------------------------------------ */

/* Verifies the subtree n at `level` whose keys all have hash & mask ==
 * prefix; parent_kind is 0 at the root. */
static const char *check_node(const hnode *n, unsigned level, uint32_t prefix,
                              unsigned parent_kind)
{
    if (level > HAMT_COLLISION_LEVEL)
        return "hamt: deeper than the collision level";
    if (atomic_load(&n->n_refs) < 1)
        return "hamt: node reference count below 1";
    uint32_t mask = level * HAMT_BITS >= 32 ? 0xffffffffu
                                            : (1u << (level * HAMT_BITS)) - 1;
    if (n->n_size == 0)
        return "hamt: empty node (the empty map must be NULL)";
    if (n->n_size == 1 && parent_kind == NODE_BITMAP)
        return "hamt: one-key subtree below a bitmap node (not collapsed)";

    if (n->n_kind == NODE_COLLISION) {
        if (level != HAMT_COLLISION_LEVEL)
            return "hamt: collision node above level 7";
        if (n->n_size < 2)
            return "hamt: collision node with fewer than 2 keys";
        if ((n->n_bitmap & mask) != prefix)
            return "hamt: collision node off its hash path";
        for (unsigned i = 0; i < n->n_size; i++) {
            const hslot *s = &AS_B(n)->b_slots[i];
            if (s->key == NULL)
                return "hamt: child in a collision node";
            if (cv__key_refs(s->key) < 1)
                return "hamt: key with reference count below 1";
            if (cv__key_hash(s->key) != n->n_bitmap)
                return "hamt: collision key with another hash";
            for (unsigned j = 0; j < i; j++)
                if (AS_B(n)->b_slots[j].key == s->key)
                    return "hamt: duplicate key in a collision node";
        }
        return NULL;
    }
    if (level == HAMT_COLLISION_LEVEL)
        return "hamt: non-collision node at level 7";

    uint32_t total = 0;
    if (n->n_kind == NODE_ARRAY) {
        unsigned count = 0;
        for (unsigned j = 0; j < HAMT_FANOUT; j++) {
            const hnode *c = AS_A(n)->a_child[j];
            if (c == NULL)
                continue;
            count++;
            const char *e =
                check_node(c, level + 1, prefix | (j << (level * HAMT_BITS)),
                           NODE_ARRAY);
            if (e != NULL)
                return e;
            total += c->n_size;
        }
        if (count != n->n_count)
            return "hamt: array node count does not match its children";
        if (count <= HAMT_ARRAY_ABOVE)
            return "hamt: array node at or below the threshold";
    } else if (n->n_kind == NODE_BITMAP) {
        unsigned c = n->n_count;
        if (c == 0 || c != popcount32(n->n_bitmap))
            return "hamt: bitmap count does not match the bitmap";
        if (c > HAMT_ARRAY_ABOVE)
            return "hamt: bitmap node above the threshold (must be array)";
        if (level == HAMT_COLLISION_LEVEL - 1 && (n->n_bitmap >> 4) != 0)
            return "hamt: level-6 bitmap beyond the 2 hash bits left";
        unsigned i = 0, pairs = 0;
        for (unsigned j = 0; j < HAMT_FANOUT; j++) {
            if ((n->n_bitmap & (1u << j)) == 0)
                continue;
            const hslot *s = &AS_B(n)->b_slots[i++];
            uint32_t want = prefix | (j << (level * HAMT_BITS));
            if (s->key != NULL) {
                pairs++;
                if (cv__key_refs(s->key) < 1)
                    return "hamt: key with reference count below 1";
                uint32_t m2 = (level + 1) * HAMT_BITS >= 32
                                  ? 0xffffffffu
                                  : (1u << ((level + 1) * HAMT_BITS)) - 1;
                if ((cv__key_hash(s->key) & m2) != want)
                    return "hamt: key in a slot its hash does not lead to";
                total++;
            } else {
                const hnode *ch = s->val;
                if (ch == NULL)
                    return "hamt: NULL child in a bitmap node";
                const char *e = check_node(ch, level + 1, want, NODE_BITMAP);
                if (e != NULL)
                    return e;
                total += ch->n_size;
            }
        }
        if (c == 1 && pairs == 1 && parent_kind == NODE_BITMAP)
            return "hamt: one-pair node below a bitmap node";
    } else {
        return "hamt: unknown node kind";
    }
    if (total != n->n_size)
        return "hamt: subtree size does not match its pairs";
    return NULL;
}

static const char *hamt_check(const cv_map *m)
{
    if (m == NULL)
        return NULL;
    return check_node((const hnode *)m, 0, 0, 0);
}

typedef struct shape_buf {
    char *buf;
    size_t cap, len;
} shape_buf;

static void shape_put(shape_buf *b, const char *s)
{
    for (; *s; s++, b->len++)
        if (b->len + 1 < b->cap)
            b->buf[b->len] = *s;
}

static void shape_node(shape_buf *b, const hnode *n)
{
    char tmp[32];
    if (n->n_kind == NODE_COLLISION) {
        /* Slot order in a collision node is insertion order: not shape. */
        snprintf(tmp, sizeof tmp, "C%u", (unsigned)n->n_size);
        shape_put(b, tmp);
    } else if (n->n_kind == NODE_ARRAY) {
        shape_put(b, "A(");
        for (unsigned j = 0; j < HAMT_FANOUT; j++) {
            if (AS_A(n)->a_child[j] == NULL)
                continue;
            snprintf(tmp, sizeof tmp, "%u:", j);
            shape_put(b, tmp);
            shape_node(b, AS_A(n)->a_child[j]);
            shape_put(b, " ");
        }
        shape_put(b, ")");
    } else {
        snprintf(tmp, sizeof tmp, "B%x(", (unsigned)n->n_bitmap);
        shape_put(b, tmp);
        for (unsigned i = 0; i < n->n_count; i++) {
            const hslot *s = &AS_B(n)->b_slots[i];
            if (s->key != NULL)
                shape_put(b, ".");
            else
                shape_node(b, s->val);
        }
        shape_put(b, ")");
    }
}

/* Writes a one-line description of m's node structure into buf (always
 * NUL-terminated when cap > 0) and returns its full length, as snprintf:
 * B<bitmap>(slots) with "." for a pair, A(frag:child ...), C<n>. */
size_t cv__hamt_shape(const cv_map *m, char *buf, size_t cap)
{
    shape_buf b = {.buf = buf, .cap = cap, .len = 0};
    if (m == NULL)
        shape_put(&b, "-");
    else
        shape_node(&b, (const hnode *)m);
    if (cap > 0)
        buf[b.len < cap ? b.len : cap - 1] = '\0';
    return b.len;
}

const struct cv_backend cv__backend_hamt = {
    .name = "hamt",
    .summary = "persistent hash array mapped trie, O(1) share, path copy",
    .find = hamt_find,
    .set = hamt_set,
    .del = hamt_del,
    .len = hamt_len,
    .foreach = hamt_foreach,
    .share = hamt_share,
    .release = hamt_release,
    .check = hamt_check,
};
