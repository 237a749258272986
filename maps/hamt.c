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
 * THE WRITE PATH
 *   A write runs in four phases: plan (walk down, decide, touch nothing),
 *   allocate (every new block of the plan, or none), build (bottom-up:
 *   fill new blocks, change owned nodes in place), finish (let go of what
 *   the new map no longer holds). A set ends at one of seven actions, each
 *   one pair hamt_<kind>_<op>_alloc / _build: root_new, node_replace,
 *   bitmap_insert, bitmap_to_array, array_insert, bitmap_split,
 *   collision_insert (table set_actions); build_path rebuilds the path
 *   above, set_finish drops. A delete plans with del_walk and del_fates
 *   (each node stays, moves its last pair up, or goes), allocates in
 *   alloc_del, builds bottom-up (del_leaf_build, del_inner_build) and
 *   drops in del_finish.
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
 *   freed raw (they hold nothing yet) and the call returns CV_MAP_ENOMEM
 *   with the map, *m and every refcount as they were. The build phase
 *   cannot fail. What a write lets go of (old values, removed pairs, the
 *   first shared node) goes to the core (maps/key.h), whose hooks run
 *   once the write is whole; retain hooks run while new nodes are filled,
 *   never on a failing call.
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
 * Writes. A step is one node on the path from the root down.
 * ------------------------------------------------------------------------ */

typedef struct hstep {
    hnode *node;     /* the node at this level (borrowed) */
    unsigned idx;    /* slot index (bitmap, collision) or fragment (array)
                        of the path below / the pair concerned */
    int owned;       /* this node and all above it have refcount 1 */
    hnode *fresh;    /* phase 2: the node that replaces it, or NULL */
} hstep;

/* Raw blocks for phase 2 (headers set, contents filled in phase 3): a
 * node of a kind, and a copy of a step's node (its kind and size). 0, or
 * -1 with the block NULL. */
static int node_alloc(hnode **out, unsigned kind, unsigned slots)
{
    *out = kind == NODE_ARRAY ? anode_alloc() : bnode_alloc(kind, slots);
    return *out != NULL ? 0 : -1;
}

static int node_copy_alloc(hstep *st)
{
    const hnode *n = st->node;
    return node_alloc(&st->fresh, n->n_kind,
                      n->n_kind == NODE_ARRAY ? 0 : bslots(n));
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

/* A one-pair bitmap node at `level` (the block comes from phase 2). */
static hnode *fill_single(hnode *n, unsigned level, cv_var *k, void *v)
{
    n->n_bitmap = 1u << frag(cv__key_hash(k), level);
    n->n_size = 1;
    AS_B(n)->b_slots[0].key = k;
    AS_B(n)->b_slots[0].val = v;
    return n;
}

/* ------------------------------------------------------------------------
 * Set. Phase 1 (plan_set) walks down and names what happens at the last
 * node of the path, the leaf: one of seven actions. Each action is one
 * pair of functions, hamt_<kind>_<op>_alloc and hamt_<kind>_<op>_build:
 * the first obtains every block the action needs below and at the leaf
 * (phase 2, touching nothing), the second fills them and returns the node
 * that takes the leaf's place (phase 3). build_path then rebuilds the path
 * above the leaf, and set_finish lets go of what the new map no longer
 * holds (phase 4).
 * ------------------------------------------------------------------------ */

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
    cv_var *key;
    void *val;
    hstep path[HAMT_MAX_DEPTH];
    unsigned depth;               /* nodes on the path; leaf = depth - 1 */
    enum set_action action;
    hnode *extra[HAMT_EXTRA_MAX]; /* new nodes below the leaf */
    unsigned nextra;
    void *old_val;                /* SET_REPLACE in place: displaced */
    int replaced_in_place;
} set_plan;

static hstep *leaf_step(set_plan *p)
{
    return &p->path[p->depth - 1];
}

static unsigned leaf_level(const set_plan *p)
{
    return p->depth - 1;
}

/* Records the block where plan_free finds it before it is checked. */
static int extra_alloc(set_plan *p, unsigned kind, unsigned slots)
{
    CV_ASSERT(p->nextra < HAMT_EXTRA_MAX);
    return node_alloc(&p->extra[p->nextra++], kind, slots);
}

/* A block for the leaf one slot longer, of its kind (bitmap, collision). */
static int leaf_grow_alloc(set_plan *p)
{
    hstep *lf = leaf_step(p);
    return node_alloc(&lf->fresh, lf->node->n_kind, bslots(lf->node) + 1u);
}

/* Frees raw every block a failed phase 2 obtained (cv__free(NULL) is a
 * no-op, so the slot of the failing allocation needs no care). */
static void plan_free(set_plan *p)
{
    for (unsigned i = 0; i < p->depth; i++)
        cv__free(p->path[i].fresh);
    for (unsigned i = 0; i < p->nextra; i++)
        cv__free(p->extra[i]);
}

/* ---- SET_NEW_ROOT: the empty map gets a one-pair bitmap root. */
static int hamt_root_new_alloc(set_plan *p)
{
    return extra_alloc(p, NODE_BITMAP, 1);
}

static hnode *hamt_root_new_build(set_plan *p)
{
    cv__slot_take(p->key, p->val);
    return fill_single(p->extra[0], 0, p->key, p->val);
}

/* ---- SET_REPLACE: the key is in the leaf (bitmap or collision node). An
 * owned leaf takes the value in place, and the old one is dropped after
 * the write; a shared one is copied with the new value. */
static int hamt_node_replace_alloc(set_plan *p)
{
    hstep *lf = leaf_step(p);
    return lf->owned ? 0 : node_copy_alloc(lf);
}

static hnode *hamt_node_replace_build(set_plan *p)
{
    hstep *lf = leaf_step(p);
    hnode *ln = lf->node;
    if (lf->owned) {
        hslot *s = &AS_B(ln)->b_slots[lf->idx];
        cv__slot_take_value(p->key, p->val);
        p->old_val = s->val;
        p->replaced_in_place = 1;
        s->val = p->val;
        return ln;
    }
    cv__slot_take(p->key, p->val);
    bnode_copy(lf->fresh, ln, lf->idx);
    AS_B(lf->fresh)->b_slots[lf->idx].val = p->val;
    return lf->fresh;
}

/* ---- SET_INSERT: a bitmap node with room under the threshold gains the
 * pair at its fragment's index (a new block, one slot longer). */
static int hamt_bitmap_insert_alloc(set_plan *p)
{
    return leaf_grow_alloc(p);
}

static hnode *hamt_bitmap_insert_build(set_plan *p)
{
    hstep *lf = leaf_step(p);
    hnode *ln = lf->node, *out = lf->fresh;
    unsigned c = ln->n_count, i = lf->idx;
    hslot *d = AS_B(out)->b_slots;
    const hslot *s = AS_B(ln)->b_slots;
    cv__slot_take(p->key, p->val);
    memcpy(d, s, i * sizeof(hslot));
    memcpy(d + i + 1, s + i, (c - i) * sizeof(hslot));
    d[i] = (hslot){.key = p->key, .val = p->val};
    if (!lf->owned) {
        slots_retain(d, 0, i);
        slots_retain(d, i + 1, c + 1);
    }
    out->n_bitmap = ln->n_bitmap | 1u << frag(cv__key_hash(p->key),
                                              leaf_level(p));
    out->n_size = ln->n_size + 1;
    return out;
}

/* ---- SET_TO_ARRAY: a bitmap node at the threshold becomes an array
 * node; every pair it held (and the new one) moves into a one-pair child,
 * its subtrees are taken over as they are. */
static int hamt_bitmap_to_array_alloc(set_plan *p)
{
    hstep *lf = leaf_step(p);
    const hnode *ln = lf->node;
    if (node_alloc(&lf->fresh, NODE_ARRAY, 0) != 0)
        return -1;
    for (unsigned i = 0; i < ln->n_count; i++)
        if (AS_B(ln)->b_slots[i].key != NULL &&
            extra_alloc(p, NODE_BITMAP, 1) != 0)
            return -1;
    return extra_alloc(p, NODE_BITMAP, 1);
}

static hnode *hamt_bitmap_to_array_build(set_plan *p)
{
    hstep *lf = leaf_step(p);
    hnode *ln = lf->node, *out = lf->fresh;
    unsigned level = leaf_level(p) + 1;
    unsigned f = frag(cv__key_hash(p->key), level - 1), e = 0, i = 0;
    cv__slot_take(p->key, p->val);
    for (unsigned j = 0; j < HAMT_FANOUT; j++) {
        hnode *child;
        if (j == f) {
            child = fill_single(p->extra[e++], level, p->key, p->val);
        } else if (ln->n_bitmap & (1u << j)) {
            hslot *s = &AS_B(ln)->b_slots[i++];
            if (s->key != NULL) {
                if (!lf->owned)
                    cv__slot_take(s->key, s->val);
                child = fill_single(p->extra[e++], level, s->key, s->val);
            } else {
                child = (hnode *)s->val;
                if (!lf->owned)
                    node_incref(child);
            }
        } else {
            continue;
        }
        AS_A(out)->a_child[j] = child;
    }
    CV_ASSERT(e == p->nextra);
    out->n_count = (uint8_t)(ln->n_count + 1);
    out->n_size = ln->n_size + 1;
    return out;
}

/* ---- SET_INSERT_ARRAY: an array node gains a one-pair child at an empty
 * fragment (in place when owned). */
static int hamt_array_insert_alloc(set_plan *p)
{
    hstep *lf = leaf_step(p);
    if (!lf->owned && node_alloc(&lf->fresh, NODE_ARRAY, 0) != 0)
        return -1;
    return extra_alloc(p, NODE_BITMAP, 1);
}

static hnode *hamt_array_insert_build(set_plan *p)
{
    hstep *lf = leaf_step(p);
    hnode *ln = lf->node, *out = lf->fresh ? lf->fresh : ln;
    hnode *c = fill_single(p->extra[0], leaf_level(p) + 1, p->key, p->val);
    cv__slot_take(p->key, p->val);
    if (!lf->owned)
        anode_copy(out, ln, lf->idx);
    AS_A(out)->a_child[lf->idx] = c;
    out->n_count++;
    out->n_size = ln->n_size + 1;
    return out;
}

/* ---- SET_SPLIT: the fragment holds another key's pair. Its slot becomes
 * a subtree of both: one single-child bitmap node per level where the two
 * hashes still agree, then a two-pair node (bitmap, or collision at level
 * 7). The leaf (a bitmap node) is changed in place or copied. */
static int hamt_bitmap_split_alloc(set_plan *p)
{
    hstep *lf = leaf_step(p);
    if (!lf->owned && node_copy_alloc(lf) != 0)
        return -1;
    const cv_var *other = AS_B(lf->node)->b_slots[lf->idx].key;
    uint32_t h1 = cv__key_hash(p->key), h2 = cv__key_hash(other);
    unsigned level = leaf_level(p) + 1;
    for (; level < HAMT_COLLISION_LEVEL && frag(h1, level) == frag(h2, level);
         level++)
        if (extra_alloc(p, NODE_BITMAP, 1) != 0)
            return -1;
    return extra_alloc(p, level < HAMT_COLLISION_LEVEL ? NODE_BITMAP
                                                       : NODE_COLLISION, 2);
}

/* Fills the chain of extra nodes with key and (k2, v2); returns its top. */
static hnode *split_chain_build(set_plan *p, cv_var *k2, void *v2)
{
    uint32_t h = cv__key_hash(p->key), h2 = cv__key_hash(k2);
    unsigned level = leaf_level(p) + 1;
    for (unsigned e = 0; e + 1 < p->nextra; e++, level++) {
        hnode *n = p->extra[e];
        n->n_bitmap = 1u << frag(h, level);
        n->n_size = 2;
        AS_B(n)->b_slots[0] = (hslot){.key = NULL, .val = p->extra[e + 1]};
    }
    hnode *bot = p->extra[p->nextra - 1];
    hslot *b = AS_B(bot)->b_slots, mine = {.key = p->key, .val = p->val};
    bot->n_size = 2;
    if (bot->n_kind == NODE_COLLISION) {
        CV_ASSERT(h == h2 && level == HAMT_COLLISION_LEVEL);
        bot->n_bitmap = h;
        b[0] = (hslot){.key = k2, .val = v2};
        b[1] = mine;
    } else {
        unsigned f1 = frag(h, level), f2 = frag(h2, level);
        CV_ASSERT(f1 != f2);
        bot->n_bitmap = (1u << f1) | (1u << f2);
        b[f1 < f2 ? 0 : 1] = mine;
        b[f1 < f2 ? 1 : 0] = (hslot){.key = k2, .val = v2};
    }
    return p->extra[0];
}

static hnode *hamt_bitmap_split_build(set_plan *p)
{
    hstep *lf = leaf_step(p);
    hnode *ln = lf->node, *out = lf->fresh ? lf->fresh : ln;
    hslot old = AS_B(ln)->b_slots[lf->idx];
    cv__slot_take(p->key, p->val);
    if (!lf->owned)
        cv__slot_take(old.key, old.val); /* the old leaf keeps its own */
    hnode *sub = split_chain_build(p, old.key, old.val);
    if (!lf->owned)
        bnode_copy(out, ln, lf->idx);
    AS_B(out)->b_slots[lf->idx] = (hslot){.key = NULL, .val = sub};
    out->n_size = ln->n_size + 1;
    return out;
}

/* ---- SET_INSERT_COLL: a collision node gains the pair at its end (a new
 * block, one slot longer). */
static int hamt_collision_insert_alloc(set_plan *p)
{
    return leaf_grow_alloc(p);
}

static hnode *hamt_collision_insert_build(set_plan *p)
{
    hstep *lf = leaf_step(p);
    hnode *ln = lf->node, *out = lf->fresh;
    unsigned c = ln->n_size;
    cv__slot_take(p->key, p->val);
    memcpy(AS_B(out)->b_slots, AS_B(ln)->b_slots, c * sizeof(hslot));
    if (!lf->owned)
        slots_retain(AS_B(out)->b_slots, 0, c);
    AS_B(out)->b_slots[c] = (hslot){.key = p->key, .val = p->val};
    out->n_bitmap = ln->n_bitmap;
    out->n_size = c + 1;
    return out;
}

static const struct set_action_ops {
    int (*alloc)(set_plan *p);      /* phase 2: 0, or -1 (plan_free frees) */
    hnode *(*build)(set_plan *p);   /* phase 3: the leaf's replacement */
} set_actions[] = {
    [SET_NEW_ROOT] = {hamt_root_new_alloc, hamt_root_new_build},
    [SET_REPLACE] = {hamt_node_replace_alloc, hamt_node_replace_build},
    [SET_INSERT] = {hamt_bitmap_insert_alloc, hamt_bitmap_insert_build},
    [SET_TO_ARRAY] = {hamt_bitmap_to_array_alloc, hamt_bitmap_to_array_build},
    [SET_INSERT_ARRAY] = {hamt_array_insert_alloc, hamt_array_insert_build},
    [SET_SPLIT] = {hamt_bitmap_split_alloc, hamt_bitmap_split_build},
    [SET_INSERT_COLL] = {hamt_collision_insert_alloc,
                         hamt_collision_insert_build},
};

/* Phase 1 at one bitmap node: 1 with the action named, 0 when the value is
 * already there, -1 to go down into *next. */
static int plan_set_bitmap(set_plan *p, hstep *st, unsigned level,
                           hnode **next)
{
    const hnode *n = st->node;
    uint32_t bit = 1u << frag(cv__key_hash(p->key), level);
    st->idx = bindex(n->n_bitmap, bit);
    if ((n->n_bitmap & bit) == 0) {
        p->action = n->n_count >= HAMT_ARRAY_ABOVE ? SET_TO_ARRAY : SET_INSERT;
        return 1;
    }
    const hslot *s = &AS_B(n)->b_slots[st->idx];
    if (s->key == NULL) {
        *next = (hnode *)s->val;
        return -1;
    }
    p->action = s->key != p->key ? SET_SPLIT : SET_REPLACE;
    return p->action == SET_SPLIT || s->val != p->val;
}

/* Phase 1 at a collision node (always the last of the path). */
static int plan_set_collision(set_plan *p, hstep *st)
{
    const hnode *n = st->node;
    for (unsigned i = 0; i < n->n_size; i++) {
        const hslot *s = &AS_B(n)->b_slots[i];
        if (s->key == p->key) {
            st->idx = i;
            p->action = SET_REPLACE;
            return s->val != p->val;
        }
    }
    st->idx = n->n_size;
    p->action = SET_INSERT_COLL;
    return 1;
}

/* Phase 1 of a set: walks down; returns 0 when the value is already
 * there (nothing to do), 1 with p filled. Touches nothing. */
static int plan_set(const hnode *root, set_plan *p)
{
    uint32_t h = cv__key_hash(p->key);
    hnode *n = (hnode *)root;
    int owned = 1;
    p->depth = 0;
    p->nextra = 0;
    p->old_val = NULL;
    p->replaced_in_place = 0;
    if (n == NULL) {
        p->action = SET_NEW_ROOT;
        return 1;
    }
    for (unsigned level = 0;; level++) {
        CV_ASSERT(level < HAMT_MAX_DEPTH);
        hstep *st = &p->path[p->depth++];
        owned = owned && owned_node(n);
        *st = (hstep){.node = n, .owned = owned, .fresh = NULL};
        int r = -1;
        if (n->n_kind == NODE_ARRAY) {
            st->idx = frag(h, level);
            n = AS_A(n)->a_child[st->idx];
            if (n == NULL) {
                p->action = SET_INSERT_ARRAY;
                r = 1;
            }
        } else if (n->n_kind == NODE_BITMAP) {
            r = plan_set_bitmap(p, st, level, &n);
        } else {
            r = plan_set_collision(p, st);
        }
        if (r >= 0)
            return r;
    }
}

/* Phase 2 of a set: a copy of every shared node above the leaf, then the
 * action's blocks. 0 or CV_MAP_ENOMEM (and then nothing is held). */
static int alloc_set(set_plan *p)
{
    for (unsigned i = 0; i + 1 < p->depth; i++)
        if (!p->path[i].owned && node_copy_alloc(&p->path[i]) != 0)
            goto fail;
    if (set_actions[p->action].alloc(p) == 0)
        return 0;
fail:
    plan_free(p);
    return CV_MAP_ENOMEM;
}

/* Phase 3 above the leaf, bottom-up: each node on the path (copied when
 * shared, else in place) points at the node below; returns the root.
 * Copies (which retain) come first: the owned nodes are all above them. */
static hnode *build_path(set_plan *p, hnode *sub)
{
    unsigned grow = p->action != SET_REPLACE;
    for (unsigned i = p->depth ? p->depth - 1 : 0; i-- > 0;) {
        hstep *st = &p->path[i];
        hnode *n = st->node;
        hnode *out = st->fresh ? st->fresh : n;
        CV_ASSERT(st->fresh != NULL || st->owned);
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
    return sub;
}

/* Phase 4: the first shared node loses its owner's reference (the caller,
 * or an owned parent now pointing at the copy: exactly one drop a write);
 * owned nodes whose contents moved to a new block are freed raw. */
static void set_finish(set_plan *p)
{
    for (unsigned i = 0; i < p->depth; i++) {
        hstep *st = &p->path[i];
        if (!st->owned) {
            cv__map_drop_later(SELF, (cv_map *)st->node);
            break;
        }
        if (st->fresh)
            cv__free(st->node);
    }
    if (p->replaced_in_place)
        cv__slot_drop_value(p->key, p->old_val);
}

static int hamt_set(cv_map **m, cv_var *key, void *val)
{
    set_plan p; /* not zeroed: phase 1 sets what the later ones read */
    p.key = key;
    p.val = val;
    if (plan_set((const hnode *)*m, &p) == 0)
        return 0;
    if (alloc_set(&p) != 0)
        return CV_MAP_ENOMEM;
    *m = (cv_map *)build_path(&p, set_actions[p.action].build(&p));
    set_finish(&p);
    return 0;
}

/* ------------------------------------------------------------------------
 * Delete. Phase 1 (plan_del) walks down to the pair and decides, leaf
 * first, what becomes of every node on the path (del_fates): it stays (in
 * place or copied), it is left with one pair that moves up a level, or it
 * is left empty. Phase 2 (alloc_del) obtains the blocks; phase 3 builds
 * bottom-up (the leaf, then each node above it); phase 4 (del_finish)
 * lets go.
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

/* Deferred work of phase 4: nodes to free raw (owned, contents moved) and
 * references to drop. */
typedef struct del_after {
    hnode *free_raw[HAMT_MAX_DEPTH + HAMT_FANOUT];
    unsigned nfree;
    hnode *decref[HAMT_MAX_DEPTH + HAMT_FANOUT];
    unsigned ndecref;
} del_after;

typedef struct del_plan {
    const cv_var *key;
    del_step path[HAMT_MAX_DEPTH];
    unsigned depth;
    del_after after;
} del_plan;

/* Walks down to key: 1 with the path filled, 0 when it is absent. */
static int del_walk(del_plan *p, hnode *n)
{
    uint32_t h = cv__key_hash(p->key);
    int owned = 1;
    for (unsigned level = 0; n != NULL; level++) {
        CV_ASSERT(level < HAMT_MAX_DEPTH);
        del_step *d = &p->path[p->depth++];
        owned = owned && owned_node(n);
        d->s = (hstep){.node = n, .owned = owned, .fresh = NULL};
        d->res = DEL_NODE;
        if (n->n_kind == NODE_ARRAY) {
            d->s.idx = frag(h, level);
            n = AS_A(n)->a_child[d->s.idx];
        } else if (n->n_kind == NODE_BITMAP) {
            uint32_t bit = 1u << frag(h, level);
            if ((n->n_bitmap & bit) == 0)
                return 0;
            d->s.idx = bindex(n->n_bitmap, bit);
            const hslot *s = &AS_B(n)->b_slots[d->s.idx];
            if (s->key != NULL)
                return s->key == p->key;
            n = (hnode *)s->val;
        } else {
            unsigned i = 0;
            while (i < n->n_size && AS_B(n)->b_slots[i].key != p->key)
                i++;
            d->s.idx = i;
            return i < n->n_size;
        }
    }
    return 0;
}

/* Fates, leaf first. A node collapses into a pair only below a bitmap
 * node (below an array node a lone key keeps its one-pair node). */
static void del_fates(del_plan *p)
{
    for (unsigned i = p->depth; i-- > 0;) {
        del_step *d = &p->path[i];
        const hnode *nd = d->s.node;
        int parent_bitmap =
            i > 0 && p->path[i - 1].s.node->n_kind == NODE_BITMAP;
        if (i == p->depth - 1) {
            unsigned c = bslots(nd);
            if (c == 1) {
                d->res = DEL_GONE;
            } else if (c == 2 && parent_bitmap &&
                       AS_B(nd)->b_slots[1 - d->s.idx].key != NULL) {
                d->res = DEL_PAIR;
                d->pair = AS_B(nd)->b_slots[1 - d->s.idx];
            }
            continue;
        }
        const del_step *below = &p->path[i + 1];
        /* A subtree below a bitmap node holds at least 2 keys (the
         * invariant), so it is never left empty. */
        CV_ASSERT(nd->n_kind != NODE_BITMAP || below->res != DEL_GONE);
        if (nd->n_kind == NODE_BITMAP && below->res == DEL_PAIR &&
            nd->n_count == 1 && parent_bitmap) {
            d->res = DEL_PAIR;
            d->pair = below->pair;
        }
    }
}

/* Does the array node at step i turn into a bitmap node? */
static int del_to_bitmap(const del_plan *p, unsigned i)
{
    const hnode *n = p->path[i].s.node;
    return n->n_kind == NODE_ARRAY && i + 1 < p->depth &&
           p->path[i + 1].res == DEL_GONE &&
           n->n_count - 1u <= HAMT_ARRAY_ABOVE;
}

/* Phase 2 of a delete: the leaf shrinks by one slot into a new block, an
 * array node that falls to the threshold becomes a bitmap block, and
 * every other shared node that stays is copied. */
static int alloc_del(del_plan *p)
{
    for (unsigned i = 0; i < p->depth; i++) {
        del_step *d = &p->path[i];
        const hnode *n = d->s.node;
        int r = 0;
        if (d->res != DEL_NODE)
            continue;
        if (i == p->depth - 1)
            r = node_alloc(&d->s.fresh, n->n_kind, bslots(n) - 1u);
        else if (del_to_bitmap(p, i))
            r = node_alloc(&d->s.fresh, NODE_BITMAP, n->n_count - 1u);
        else if (!d->s.owned)
            r = node_copy_alloc(&d->s);
        if (r != 0) {
            for (unsigned j = 0; j < i; j++)
                cv__free(p->path[j].s.fresh);
            return CV_MAP_ENOMEM;
        }
    }
    return 0;
}

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

/* The leaf that stays, one slot shorter, in its new block. */
static hnode *del_leaf_build(del_plan *p, del_step *d, unsigned level)
{
    hnode *n = d->s.node, *out = d->s.fresh;
    unsigned c = bslots(n), k = d->s.idx;
    hslot *dst = AS_B(out)->b_slots;
    const hslot *src = AS_B(n)->b_slots;
    memcpy(dst, src, k * sizeof(hslot));
    memcpy(dst + k, src + k + 1, (c - k - 1) * sizeof(hslot));
    if (!d->s.owned)
        slots_retain(dst, 0, c - 1);
    else
        p->after.free_raw[p->after.nfree++] = n;
    out->n_bitmap =
        n->n_kind == NODE_BITMAP
            ? n->n_bitmap & ~(1u << frag(cv__key_hash(p->key), level))
            : n->n_bitmap;
    out->n_size = n->n_size - 1;
    return out;
}

/* A node above the leaf that stays. An array node is converted to a
 * bitmap node, or its child slot updated (emptied when the child is gone);
 * a bitmap node's slot takes the pair that moved up, or the new child. */
static hnode *del_inner_build(del_plan *p, unsigned i, hnode *sub)
{
    del_step *d = &p->path[i];
    const del_step *below = &p->path[i + 1];
    hnode *n = d->s.node, *out = d->s.fresh ? d->s.fresh : n;
    if (del_to_bitmap(p, i)) {
        array_to_bitmap(out, n, d->s.idx, d->s.owned, &p->after);
        if (d->s.owned)
            p->after.free_raw[p->after.nfree++] = n;
    } else if (n->n_kind == NODE_ARRAY) {
        if (d->s.fresh)
            anode_copy(out, n, d->s.idx);
        AS_A(out)->a_child[d->s.idx] = below->res == DEL_GONE ? NULL : sub;
        out->n_count -= below->res == DEL_GONE;
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
    return out;
}

/* Phase 3, leaf first; returns the new root (NULL: the map is empty). */
static hnode *del_build(del_plan *p)
{
    hnode *sub = NULL;
    for (unsigned i = p->depth; i-- > 0;) {
        del_step *d = &p->path[i];
        int own = d->s.owned, leaf = i == p->depth - 1;
        if (d->res != DEL_NODE) {
            /* The node goes: a pair it keeps moves up into the parent's
             * slot (the old leaf keeps its own if it is shared). */
            if (d->res == DEL_PAIR && leaf && !own)
                cv__slot_take(d->pair.key, d->pair.val);
            if (own)
                p->after.free_raw[p->after.nfree++] = d->s.node;
        } else if (leaf) {
            sub = del_leaf_build(p, d, i);
        } else {
            sub = del_inner_build(p, i, sub);
        }
    }
    return p->path[0].res == DEL_GONE ? NULL : sub;
}

/* Phase 4: the first shared node loses its owner's reference; owned nodes
 * whose contents moved are freed; the removed pair goes if the slot that
 * held it was ours. */
static void del_finish(del_plan *p, hslot removed, int leaf_owned)
{
    del_after *a = &p->after;
    for (unsigned i = 0; i < p->depth; i++) {
        if (!p->path[i].s.owned) {
            a->decref[a->ndecref++] = p->path[i].s.node;
            break;
        }
    }
    CV_ASSERT(a->ndecref <= CV_MAP_DROPS_MAX);
    for (unsigned i = 0; i < a->nfree; i++)
        cv__free(a->free_raw[i]);
    if (leaf_owned)
        cv__slot_drop(removed.key, removed.val);
    for (unsigned i = 0; i < a->ndecref; i++)
        cv__map_drop_later(SELF, (cv_map *)a->decref[i]);
}

static int hamt_del(cv_map **m, const cv_var *key)
{
    del_plan p; /* not zeroed: each phase sets what the next reads */
    p.key = key;
    p.depth = 0;
    p.after.nfree = p.after.ndecref = 0;
    if (del_walk(&p, (hnode *)*m) == 0)
        return 0;
    del_fates(&p);
    if (alloc_del(&p) != 0)
        return CV_MAP_ENOMEM;
    const del_step *lf = &p.path[p.depth - 1];
    hslot removed = AS_B(lf->s.node)->b_slots[lf->s.idx];
    int leaf_owned = lf->s.owned;
    *m = (cv_map *)del_build(&p);
    del_finish(&p, removed, leaf_owned);
    return 1;
}

/* ------------------------------------------------------------------------
 * Check and shape
 * ------------------------------------------------------------------------ */

static const char *check_node(const hnode *n, unsigned level, uint32_t prefix,
                              unsigned parent_kind);

/* The mask of the hash bits levels 0 .. level - 1 consume. */
static uint32_t prefix_mask(unsigned level)
{
    return level * HAMT_BITS >= 32 ? 0xffffffffu
                                   : (1u << (level * HAMT_BITS)) - 1;
}

static const char *check_collision(const hnode *n, unsigned level,
                                   uint32_t prefix)
{
    if (level != HAMT_COLLISION_LEVEL)
        return "hamt: collision node above level 7";
    if (n->n_size < 2)
        return "hamt: collision node with fewer than 2 keys";
    if ((n->n_bitmap & prefix_mask(level)) != prefix)
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

/* Sets *total to the pairs below array node n. */
static const char *check_array(const hnode *n, unsigned level,
                               uint32_t prefix, uint32_t *total)
{
    unsigned count = 0;
    for (unsigned j = 0; j < HAMT_FANOUT; j++) {
        const hnode *c = AS_A(n)->a_child[j];
        if (c == NULL)
            continue;
        count++;
        const char *e = check_node(c, level + 1,
                                   prefix | (j << (level * HAMT_BITS)),
                                   NODE_ARRAY);
        if (e != NULL)
            return e;
        *total += c->n_size;
    }
    if (count != n->n_count)
        return "hamt: array node count does not match its children";
    if (count <= HAMT_ARRAY_ABOVE)
        return "hamt: array node at or below the threshold";
    return NULL;
}

/* One slot of bitmap node at `level`, for fragment prefix `want`. */
static const char *check_bitmap_slot(const hslot *s, unsigned level,
                                     uint32_t want, uint32_t *total)
{
    if (s->key != NULL) {
        if (cv__key_refs(s->key) < 1)
            return "hamt: key with reference count below 1";
        if ((cv__key_hash(s->key) & prefix_mask(level + 1)) != want)
            return "hamt: key in a slot its hash does not lead to";
        (*total)++;
        return NULL;
    }
    const hnode *ch = s->val;
    if (ch == NULL)
        return "hamt: NULL child in a bitmap node";
    const char *e = check_node(ch, level + 1, want, NODE_BITMAP);
    if (e == NULL)
        *total += ch->n_size;
    return e;
}

static const char *check_bitmap(const hnode *n, unsigned level,
                                uint32_t prefix, unsigned parent_kind,
                                uint32_t *total)
{
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
        pairs += s->key != NULL;
        const char *e = check_bitmap_slot(
            s, level, prefix | (j << (level * HAMT_BITS)), total);
        if (e != NULL)
            return e;
    }
    if (c == 1 && pairs == 1 && parent_kind == NODE_BITMAP)
        return "hamt: one-pair node below a bitmap node";
    return NULL;
}

/* Verifies the subtree n at `level` whose keys all have hash & mask ==
 * prefix; parent_kind is 0 at the root. */
static const char *check_node(const hnode *n, unsigned level, uint32_t prefix,
                              unsigned parent_kind)
{
    if (level > HAMT_COLLISION_LEVEL)
        return "hamt: deeper than the collision level";
    if (atomic_load(&n->n_refs) < 1)
        return "hamt: node reference count below 1";
    if (n->n_size == 0)
        return "hamt: empty node (the empty map must be NULL)";
    if (n->n_size == 1 && parent_kind == NODE_BITMAP)
        return "hamt: one-key subtree below a bitmap node (not collapsed)";
    if (n->n_kind == NODE_COLLISION)
        return check_collision(n, level, prefix);
    if (level == HAMT_COLLISION_LEVEL)
        return "hamt: non-collision node at level 7";
    uint32_t total = 0;
    const char *e;
    if (n->n_kind == NODE_ARRAY)
        e = check_array(n, level, prefix, &total);
    else if (n->n_kind == NODE_BITMAP)
        e = check_bitmap(n, level, prefix, parent_kind, &total);
    else
        e = "hamt: unknown node kind";
    if (e == NULL && total != n->n_size)
        e = "hamt: subtree size does not match its pairs";
    return e;
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

CV_BACKEND_DEFINE(cv__backend_hamt, "hamt", hamt);
