/* SPDX-License-Identifier: MIT */
/*
 * dictcopy.c -- an open-addressing table shared by reference count and
 * cloned on the first write after a share.
 *
 * WHAT AND WHY
 * The simplest map that gives O(1) copies: a copy of a context takes one
 * more reference to the same table, and the first write on either side
 * clones the table (copy-on-write). Later writes by the same owner find the
 * table unshared and write in place. This is the model of .NET's AsyncLocal
 * (an immutable map replaced on write) and of Node's AsyncContextFrame: it
 * wins when contexts are small or rarely written after a copy, because a
 * get is one probe into a flat array and there is no tree to walk.
 *
 * COSTS (n pairs)
 *   find                 O(1) expected: hash & mask, then linear probing
 *   set/del, unshared    O(1) expected, in place (amortised growth)
 *   set/del, shared      O(n): one clone, then in place
 *   share (copy)         O(1): an atomic increment
 *   memory               16 bytes a slot, load factor in (3/16, 3/4]
 * The clone is what this backend pays for its fast get: a workload that
 * copies a context of many vars and writes once per copy (a fork-write)
 * pays O(n) per copy; hamt pays O(log32 n) there.
 *
 * WORKED EXAMPLE (capacity 8, hashes shown modulo 8)
 *   a = {x:1 (h=2), y:2 (h=2), z:3 (h=5)}          refs(T) = 1
 *       T: [ . | . | x:1 | y:2 | . | z:3 | . | . ]  y probed one step on
 *   b = copy(a)          a, b -> T                  refs(T) = 2
 *   set(b, x, 9)         b -> T' (clone, then write)  refs(T) = 1
 *       T': [ . | . | x:9 | y:2 | . | z:3 | . | . ]
 *   set(a, z, 7)         a owns T alone: written in place
 *
 * LAYOUT
 *   struct dict { refs, count, mask, slots[mask + 1] }, one allocation.
 *   A slot is {cv_var *key, void *val}; key == NULL marks it empty. The
 *   index of a key is cv__key_hash(key) & mask; collisions probe linearly.
 *   Deletion shifts the following run back (no tombstones), so a probe can
 *   stop at the first empty slot and the table never degrades.
 *   The empty map is NULL (map.h), never a table with count 0.
 *
 * THE INVARIANT
 *   Every key sits in the probe run that starts at its home slot, with no
 *   empty slot between the home slot and the key.
 *
 * OPERATIONS
 *   find -> dict_find, set -> dict_set, del -> dict_del, share ->
 *   dict_share, release -> dict_release, walk -> dict_foreach,
 *   invariant -> dict_check. Internals: slot_lookup (probe), table_new,
 *   table_clone (copy with retains), table_resize (move, no retains),
 *   cv__slot_remove (backward shift, maps/slots.h).
 *
 * FAILURE SEMANTICS
 *   Every allocation (growth, clone) happens before the table is touched;
 *   if it fails the call returns CV_MAP_ENOMEM with the map as it was.
 *   What a write lets go of goes to the core (maps/key.h), whose hooks run
 *   once the write is whole (R14a). Shrinking after a delete is an
 *   optimisation: when its allocation fails the delete still succeeds.
 *
 * TEST AND DEBUG HOOKS
 *   dict_check walks the table and verifies the invariant, the count, the
 *   load bounds and the reference counts; the test builds run it after
 *   every write (maps/map.h). Forced var hashes
 *   (cv__var_new_hashed) build long probe runs and wrap-around.
 *
 * FURTHER READING
 *   Knuth, TAOCP vol. 3, 6.4 (linear probing, Algorithm R for deletion);
 *   Redis src/dict.c (the dictType idea); .NET AsyncLocal's
 *   AsyncLocalValueMap (small immutable maps replaced on write).
 */
#include <string.h>

#include "map.h"
#include "slots.h"

extern const struct cv_backend cv__backend_dictcopy;

/* {key, val}; key NULL: empty; val retained through the key's hooks. */
typedef cv_slot dslot;

typedef struct dict {
    _Atomic size_t d_refs;       /* holders: contexts, foreach walks */
    uint32_t d_count;            /* occupied slots, >= 1 */
    uint32_t d_mask;             /* capacity - 1; capacity a power of two */
    dslot d_slots[];             /* capacity slots */
} dict;

#define MIN_CAP 4u

/* A table of capacity cap may hold n pairs when n <= 3/4 cap. */
static int fits(uint32_t n, uint32_t cap)
{
    return (uint64_t)n * 4 <= (uint64_t)cap * 3;
}

static uint32_t cap_for(uint32_t n)
{
    uint32_t cap = MIN_CAP;
    while (!fits(n, cap))
        cap *= 2;
    return cap;
}

static int unshared(const dict *d)
{
    return atomic_load_explicit(&d->d_refs, memory_order_acquire) == 1;
}

/* The bytes of a table of capacity cap: what its block was asked for (the
 * core's block cache takes it back by size). */
static size_t table_bytes(uint32_t cap)
{
    return sizeof(dict) + (size_t)cap * sizeof(dslot);
}

/* The largest capacity whose table the core's cache keeps. A bigger one
 * goes straight to the hook, tested on the mask: the free of a big table
 * then costs two instructions more than cv__free, not six. */
#define CACHED_CAP ((CV_MAP_BLOCK_MAX - sizeof(dict)) / sizeof(dslot))

static void table_free(dict *d)
{
    if (d->d_mask < CACHED_CAP)
        cv__map_block_give(d, table_bytes(d->d_mask + 1));
    else
        cv__free(d);
}

static dict *table_new(uint32_t cap)
{
    dict *d = cv__map_block_alloc(table_bytes(cap));
    if (d == NULL)
        return NULL;
    atomic_init(&d->d_refs, 1);
    d->d_count = 0;
    d->d_mask = cap - 1;
    memset(d->d_slots, 0, (size_t)cap * sizeof(dslot));
    return d;
}

/* The slot holding key, or the empty slot where it would go. */
static dslot *slot_lookup(const dict *d, const cv_var *key)
{
    uint32_t i = cv__key_hash(key) & d->d_mask;
    for (;;) {
        const dslot *s = &d->d_slots[i];
        if (s->key == key || s->key == NULL)
            return (dslot *)s;
        i = (i + 1) & d->d_mask;
    }
}

/* Moves every pair of d into a new table of capacity cap (no retains: the
 * pairs change owner) and frees d. NULL, with d untouched, on failure. */
static dict *table_resize(dict *d, uint32_t cap)
{
    dict *n = table_new(cap);
    if (n == NULL)
        return NULL;
    for (uint32_t i = 0; i <= d->d_mask; i++) {
        dslot *s = &d->d_slots[i];
        if (s->key != NULL)
            *slot_lookup(n, s->key) = *s;
    }
    n->d_count = d->d_count;
    table_free(d);
    return n;
}

/* A private copy of d of capacity cap; every pair is retained once more. */
static dict *table_clone(const dict *d, uint32_t cap)
{
    dict *n = table_new(cap);
    if (n == NULL)
        return NULL;
    if (cap == d->d_mask + 1) {
        memcpy(n->d_slots, d->d_slots, (size_t)cap * sizeof(dslot));
    } else {
        for (uint32_t i = 0; i <= d->d_mask; i++) {
            const dslot *s = &d->d_slots[i];
            if (s->key != NULL)
                *slot_lookup(n, s->key) = *s;
        }
    }
    n->d_count = d->d_count;
    for (uint32_t i = 0; i <= n->d_mask; i++)
        if (n->d_slots[i].key != NULL)
            cv__slot_take(n->d_slots[i].key, n->d_slots[i].val);
    return n;
}

static void dict_release(cv_map *m)
{
    dict *d = (dict *)m;
    if (d == NULL)
        return;
    if (!cv__refs_drop(&d->d_refs, 1))
        return;
    cv__slots_drop(d->d_slots, d->d_mask, NULL);
    table_free(d);
}

static int dict_find(const cv_map *m, const cv_var *key, void **val)
{
    const dict *d = (const dict *)m;
    if (d == NULL)
        return 0;
    const dslot *s = slot_lookup(d, key);
    if (s->key == NULL)
        return 0;
    *val = s->val;
    return 1;
}

static int dict_set(cv_map **m, cv_var *key, void *val)
{
    dict *d = (dict *)*m;
    dslot *s = d ? slot_lookup(d, key) : NULL;
    if (s != NULL && s->key != NULL && s->val == val)
        return 0; /* same value: nothing to do, nothing to allocate */

    if (d == NULL || !unshared(d)) {
        uint32_t n = d ? d->d_count + (s->key == NULL) : 1;
        uint32_t cap = d ? d->d_mask + 1 : MIN_CAP;
        dict *c = d ? table_clone(d, fits(n, cap) ? cap : cap_for(n))
                    : table_new(cap);
        if (c == NULL)
            return CV_MAP_ENOMEM;
        /* the caller's reference to the old one */
        cv__map_drop_later(&cv__backend_dictcopy, (cv_map *)d);
        d = c;
        *m = (cv_map *)d;
        s = slot_lookup(d, key);
    } else if (s->key == NULL && !fits(d->d_count + 1, d->d_mask + 1)) {
        dict *g = table_resize(d, (d->d_mask + 1) * 2);
        if (g == NULL)
            return CV_MAP_ENOMEM;
        d = g;
        *m = (cv_map *)d;
        s = slot_lookup(d, key);
    }

    /* in place only on a table no one else can see; load at most 3/4 */
    CV_ASSERT(unshared(d) && fits(d->d_count + (s->key == NULL), d->d_mask + 1));
    if (s->key == NULL) {
        cv__slot_take(key, val);
        s->key = key;
        s->val = val;
        d->d_count++;
    } else {
        void *old = s->val;
        cv__slot_take_value(key, val);
        s->val = val;
        cv__slot_drop_value(key, old);
    }
    return 0;
}

static int dict_del(cv_map **m, const cv_var *key)
{
    dict *d = (dict *)*m;
    if (d == NULL)
        return 0;
    dslot *s = slot_lookup(d, key);
    if (s->key == NULL)
        return 0;
    cv_var *k = s->key;
    void *v = s->val;

    if (d->d_count == 1) {
        /* The empty map is NULL. The pair goes with the caller's reference:
         * freed here if unshared, kept by the other holders if not. */
        *m = NULL;
        cv__map_drop_later(&cv__backend_dictcopy, (cv_map *)d);
        return 1;
    }
    if (!unshared(d)) {
        uint32_t n = d->d_count - 1;
        dict *c = table_clone(d, n * 8 < d->d_mask + 1 ? cap_for(n)
                                                       : d->d_mask + 1);
        if (c == NULL)
            return CV_MAP_ENOMEM;
        cv__map_drop_later(&cv__backend_dictcopy, (cv_map *)d);
        d = c;
        *m = (cv_map *)d;
        s = slot_lookup(d, key);
    }
    CV_ASSERT(unshared(d) && s->key == key);
    cv__slot_remove(d->d_slots, d->d_mask, (uint32_t)(s - d->d_slots));
    d->d_count--;
    /* Shrink a table left at under 1/8 load; best effort. */
    if (d->d_mask + 1 > MIN_CAP && (d->d_count * 8 < d->d_mask + 1)) {
        dict *g = table_resize(d, cap_for(d->d_count));
        if (g != NULL) {
            d = g;
            *m = (cv_map *)d;
        }
    }
    cv__slot_drop(k, v);
    return 1;
}

static size_t dict_len(const cv_map *m)
{
    return m ? ((const dict *)m)->d_count : 0;
}

static int dict_foreach(const cv_map *m, cv_map_visit_cb cb, void *arg)
{
    const dict *d = (const dict *)m;
    if (d == NULL)
        return 0;
    for (uint32_t i = 0; i <= d->d_mask; i++) {
        const dslot *s = &d->d_slots[i];
        if (s->key != NULL) {
            int r = cb(s->key, s->val, arg);
            if (r != 0)
                return r;
        }
    }
    return 0;
}

static int dict_share(cv_map *m, cv_map **out)
{
    dict *d = (dict *)m;
    if (d != NULL)
        atomic_fetch_add_explicit(&d->d_refs, 1, memory_order_relaxed);
    *out = m;
    return 0;
}

static const char *dict_check(const cv_map *m)
{
    const dict *d = (const dict *)m;
    if (d == NULL)
        return NULL;
    uint32_t cap = d->d_mask + 1;
    if (atomic_load(&d->d_refs) < 1)
        return "dictcopy: reference count below 1";
    if ((cap & d->d_mask) != 0 || cap < MIN_CAP)
        return "dictcopy: capacity not a power of two >= 4";
    if (d->d_count == 0)
        return "dictcopy: empty table (the empty map must be NULL)";
    if (!fits(d->d_count, cap))
        return "dictcopy: load factor above 3/4";
    uint32_t seen = 0;
    for (uint32_t i = 0; i < cap; i++) {
        const dslot *s = &d->d_slots[i];
        if (s->key == NULL)
            continue;
        seen++;
        const char *e = cv__slot_check(d->d_slots, d->d_mask, i);
        if (e != NULL)
            return e;
    }
    if (seen != d->d_count)
        return "dictcopy: count does not match the occupied slots";
    return NULL;
}

CV_BACKEND_DEFINE(cv__backend_dictcopy, "dictcopy", dict);
