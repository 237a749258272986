/* SPDX-License-Identifier: MIT */
/*
 * adaptive.c -- a small array scanned by identity, promoted to a HAMT when
 * it grows past K pairs and demoted back when it shrinks to K / 2.
 *
 * WHAT AND WHY
 * Most contexts hold a handful of vars (a request id, a user, a locale, a
 * trace span), and for a handful the best map is no map at all: an array
 * of pairs scanned by comparing addresses (.NET's AsyncLocalValueMap,
 * OpenTelemetry Java's ArrayBasedContext). No hash is read, a find is a
 * few compares in one or two cache lines, a copy is one atomic increment,
 * and the first write after a copy clones at most K pairs. Past K pairs
 * the scan and the O(n) clone lose to a trie, so the map becomes a HAMT,
 * built through the hamt backend's own interface (cv__backend_hamt).
 *
 * THE INVARIANT
 *   A map is NULL, or an array of 1..K distinct keys in a block of
 *   capacity <= K, or a valid HAMT of more than K / 2 pairs. Between
 *   K / 2 + 1 and K pairs either form is valid, depending on the history:
 *   the hysteresis that keeps a set and reset at the boundary (K + 1, K)
 *   from rebuilding a HAMT each time.
 *
 * COSTS (n pairs, K = CV_ADAPTIVE_MAX = 8)
 *   small form         find O(n) compares; set/del O(n) scan, then in
 *                      place, or one clone of at most K pairs if shared;
 *                      8-byte header + 16 bytes a pair (capacity 2, 4, 8)
 *   large form         hamt's costs, plus a test of bit 0 and an indirect
 *                      call through cv__backend_hamt
 *   promotion          K + 1 hamt sets, once per map that crosses K
 *   demotion           one block, K / 2 retains
 *   share              O(1): an atomic increment, in both forms
 * K = 8 is where the small form stops being faster than hamt or within
 * noise on every operation; the figures: docs/design/adaptive.md.
 *
 * WORKED EXAMPLE (K = 8)
 *   a = {v1:1, v2:2, v3:3}          a -> [refs 1 | n 3 cap 4 | v1 v2 v3 .]
 *   b = copy(a)                     a, b -> the same block, refs = 2
 *   set(b, v1, 9)                   shared: b gets a clone, every pair
 *                                   retained; a keeps the original
 *   set(b, v4..v8, ...)             b owns its block: in place, grows to 8
 *   set(b, v9, ...)                 the 9th pair: promote; b -> (root | 1),
 *                                   b's array block is released
 *   del(b, v9..v6)                  HAMT deletes while it keeps > 4 pairs
 *   del(b, v5)                      4 left: demote to a fresh array of
 *                                   capacity 8; the HAMT is released
 *   a is {v1:1, v2:2, v3:3} throughout.
 *
 * LAYOUT
 *   The cv_map * handed out is NULL (empty), a struct small * (bit 0
 *   clear: {refs, count, cap, pairs[cap]}, one block), or a HAMT root | 1
 *   (bit 0 set: the hamt backend's map itself). Tagging the pointer rather
 *   than wrapping the HAMT costs the large form no allocation and no load;
 *   bit 0 is free because every block comes from the allocation hook.
 *
 * FAILURE SEMANTICS
 *   Allocate first, then mutate, then release. Promotion builds the whole
 *   HAMT while the array is untouched; if a hamt set fails, the partial
 *   HAMT is released and *m, the array and every count are as they were
 *   (its sets retained values as they went, so the hooks see those retains
 *   undone: balanced, R14). Demotion allocates its array before it reads
 *   the HAMT and fails as a whole if it cannot (a HAMT of K / 2 pairs
 *   would break the invariant). What a write lets go of goes to the core
 *   (maps/key.h), whose hooks run once the write is whole (R14a).
 *
 * TEST HOOKS
 *   ad_check verifies the invariant (hamt's own check for the large form);
 *   cv__adaptive_is_small (maps/adaptive.h) tells tests the form.
 *
 * A CHANGE TO HAMT.C THAT WOULD PAY
 *   A bulk constructor that plans the final trie and allocates each node
 *   once would make promotion one or two allocations instead of K + 1
 *   reallocations of a growing root; hidden exports of hamt's find/set
 *   would remove the indirect call on the large form's hot paths.
 *
 * FURTHER READING
 *   .NET System.Private.CoreLib/src/System/Threading/AsyncLocal.cs
 *   (AsyncLocalValueMap: one- to sixteen-element maps, then a Dictionary);
 *   OpenTelemetry Java context/ArrayBasedContext.java; CPython
 *   Python/hamt.c (the trie of the large form).
 */
#include <string.h>

#include "adaptive.h"

/* ------------------------------------------------------------------------
 * Layout
 * ------------------------------------------------------------------------ */

#define K ((uint32_t)CV_ADAPTIVE_MAX)
/* A large map is demoted when a delete leaves it with DEMOTE_AT pairs. */
#define DEMOTE_AT (K / 2)
_Static_assert(CV_ADAPTIVE_MAX >= 2 && CV_ADAPTIVE_MAX <= 1024,
               "adaptive threshold out of range");

/* Bit 0 of a cv_map * set: the rest is a HAMT root (cv__backend_hamt's
 * own map). Clear: a struct small, or NULL. Every block of the library
 * comes from the hook (cv__malloc, cv__map_block_alloc), which (like
 * malloc) aligns for any object, and
 * both kinds of block start with a 4-byte atomic: bit 0 is always free. */
#define LARGE_TAG ((uintptr_t)1)

/* The large form is the hamt backend's own map, reached through its table. */
extern const struct cv_backend cv__backend_hamt;
extern const struct cv_backend cv__backend_adaptive;
#define HAMT (&cv__backend_hamt)
#define SELF (&cv__backend_adaptive)

typedef struct apair {
    cv_var *key;                 /* never NULL in the first s_count pairs */
    void *val;                   /* retained through the key's hooks */
} apair;

typedef struct small {
    _Atomic uint32_t s_refs;     /* holders: contexts, foreach walks */
    uint16_t s_count;            /* pairs in use, 1..s_cap */
    uint16_t s_cap;              /* pairs allocated, <= K */
    apair s_pairs[];             /* in no order; [s_count, s_cap) unused */
} small;

static inline int is_large(const cv_map *m)
{
    return ((uintptr_t)m & LARGE_TAG) != 0;
}

static inline cv_map *large_inner(const cv_map *m)
{
    return (cv_map *)((uintptr_t)m & ~LARGE_TAG);
}

static inline cv_map *large_wrap(cv_map *inner)
{
    return (cv_map *)((uintptr_t)inner | LARGE_TAG);
}

static inline int unshared(const small *s)
{
    return atomic_load_explicit(&s->s_refs, memory_order_acquire) == 1;
}

/* The capacity for n pairs: a power of two from 2, at most K, so that a
 * map grown one set at a time reallocates log2 K times at most. */
static uint32_t cap_for(uint32_t n)
{
    uint32_t cap = 2;
    while (cap < n)
        cap *= 2;
    return cap < K ? cap : K;
}

/* The bytes of a block for cap pairs: what it was asked for (the core's
 * block cache takes it back by size). */
static size_t small_bytes(uint32_t cap)
{
    return sizeof(small) + (size_t)cap * sizeof(apair);
}

static void small_free(small *s)
{
    cv__map_block_free(s, small_bytes(s->s_cap));
}

/* A block with room for cap pairs and none in use. */
static small *small_new(uint32_t cap)
{
    small *s = cv__map_block_alloc(small_bytes(cap));
    if (s != NULL) {
        atomic_init(&s->s_refs, 1);
        s->s_count = 0;
        s->s_cap = (uint16_t)cap;
    }
    return s;
}

/* The pair of key, or NULL. The whole of find for the small form: keys are
 * compared by address, nothing is hashed. */
static inline apair *small_lookup(const small *s, const cv_var *key)
{
    for (uint32_t i = 0; i < s->s_count; i++)
        if (s->s_pairs[i].key == key)
            return (apair *)&s->s_pairs[i];
    return NULL;
}

static void small_release(small *s)
{
    if (s == NULL)
        return;
    if (!cv__refs_drop(&s->s_refs, 1))
        return;
    for (uint32_t i = 0; i < s->s_count; i++)
        cv__slot_drop(s->s_pairs[i].key, s->s_pairs[i].val);
    small_free(s);
}

/* A private copy of s with room for cap pairs, leaving out pair `skip`
 * (s->s_count: none); every pair copied is retained once more. */
static small *small_clone(const small *s, uint32_t cap, uint32_t skip)
{
    small *c = small_new(cap);
    if (c == NULL)
        return NULL;
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->s_count; i++) {
        if (i == skip)
            continue;
        c->s_pairs[n] = s->s_pairs[i];
        cv__slot_take(c->s_pairs[n].key, c->s_pairs[n].val);
        n++;
    }
    c->s_count = (uint16_t)n;
    return c;
}

/* ------------------------------------------------------------------------
 * Read side
 * ------------------------------------------------------------------------ */

static int ad_find(const cv_map *m, const cv_var *key, void **val)
{
    if (CV_UNLIKELY(is_large(m)))
        return HAMT->find(large_inner(m), key, val);
    const small *s = (const small *)m;
    if (s == NULL)
        return 0;
    const apair *p = small_lookup(s, key);
    if (p == NULL)
        return 0;
    *val = p->val;
    return 1;
}

static size_t ad_len(const cv_map *m)
{
    if (is_large(m))
        return HAMT->len(large_inner(m));
    return m ? ((const small *)m)->s_count : 0;
}

static int ad_foreach(const cv_map *m, cv_map_visit_cb cb, void *arg)
{
    if (is_large(m))
        return HAMT->foreach(large_inner(m), cb, arg);
    const small *s = (const small *)m;
    if (s == NULL)
        return 0;
    for (uint32_t i = 0; i < s->s_count; i++) {
        int r = cb(s->s_pairs[i].key, s->s_pairs[i].val, arg);
        if (r != 0)
            return r;
    }
    return 0;
}

static int ad_share(cv_map *m, cv_map **out)
{
    if (is_large(m)) {
        cv_map *inner;
        int r = HAMT->share(large_inner(m), &inner);
        if (r != 0)
            return r;
        *out = large_wrap(inner);
        return 0;
    }
    small *s = (small *)m;
    if (s != NULL)
        atomic_fetch_add_explicit(&s->s_refs, 1, memory_order_relaxed);
    *out = m;
    return 0;
}

static void ad_release(cv_map *m)
{
    if (is_large(m))
        HAMT->release(large_inner(m));
    else
        small_release((small *)m);
}

/* ------------------------------------------------------------------------
 * Promotion and demotion
 * ------------------------------------------------------------------------ */

/* s holds K pairs and key is not among them: builds a HAMT of the K pairs
 * and key:val through the hamt backend's own interface, and only then
 * lets go of s. On failure the partial HAMT is released (its retains are
 * undone one for one) and s and *m are as they were. */
static int promote(cv_map **m, small *s, cv_var *key, void *val)
{
    cv_map *h = NULL;
    int r = 0;
    for (uint32_t i = 0; i < s->s_count && r == 0; i++)
        r = HAMT->set(&h, s->s_pairs[i].key, s->s_pairs[i].val);
    if (r == 0)
        r = HAMT->set(&h, key, val);
    if (r != 0) {
        cv__map_drop_later(HAMT, h);
        return r;
    }
    *m = large_wrap(h);
    /* the caller's reference; frees s if it was alone */
    cv__map_drop_later(SELF, (cv_map *)s);
    return 0;
}

typedef struct demote_fill {
    small *to;                   /* the new small map, being filled */
    const cv_var *skip;          /* the key being deleted */
} demote_fill;

static int demote_cb(cv_var *k, void *v, void *arg)
{
    demote_fill *f = arg;
    if (k != f->skip) {
        f->to->s_pairs[f->to->s_count++] = (apair){.key = k, .val = v};
        cv__slot_take(k, v);
    }
    return 0;
}

/* h holds DEMOTE_AT + 1 pairs, key among them: copies the others into a
 * small map (retained), stores it in *m, then drops the caller's
 * reference to h, which releases the removed pair if h was ours alone.
 * The small map gets room for K pairs: a map that was large is likely to
 * grow again, and growing in place then costs no reallocation. */
static int demote(cv_map **m, cv_map *h, const cv_var *key)
{
    small *s = small_new(K);
    if (s == NULL)
        return CV_MAP_ENOMEM;
    demote_fill f = {.to = s, .skip = key};
    HAMT->foreach(h, demote_cb, &f);
    *m = (cv_map *)s;
    cv__map_drop_later(HAMT, h);
    return 1;
}

/* ------------------------------------------------------------------------
 * Write side
 * ------------------------------------------------------------------------ */

static int large_set(cv_map **m, cv_var *key, void *val)
{
    cv_map *h = large_inner(*m);
    int r = HAMT->set(&h, key, val);
    if (r == 0)
        *m = large_wrap(h);
    return r;
}

static int ad_set(cv_map **m, cv_var *key, void *val)
{
    if (is_large(*m))
        return large_set(m, key, val);
    small *s = (small *)*m;
    if (s == NULL) {
        s = small_new(cap_for(1));
        if (s == NULL)
            return CV_MAP_ENOMEM;
        cv__slot_take(key, val);
        s->s_pairs[0] = (apair){.key = key, .val = val};
        s->s_count = 1;
        *m = (cv_map *)s;
        return 0;
    }
    apair *p = small_lookup(s, key);
    if (p != NULL && p->val == val)
        return 0; /* same value: nothing to do, nothing to allocate */
    if (p == NULL && s->s_count == K)
        return promote(m, s, key, val);

    if (!unshared(s)) {
        uint32_t n = s->s_count + (p == NULL);
        small *c = small_clone(s, cap_for(n), s->s_count);
        if (c == NULL)
            return CV_MAP_ENOMEM;
        if (p != NULL)
            p = &c->s_pairs[p - s->s_pairs];
        /* the caller's reference to the shared one */
        cv__map_drop_later(SELF, (cv_map *)s);
        s = c;
        *m = (cv_map *)s;
    } else if (p == NULL && s->s_count == s->s_cap) {
        /* Grow: the pairs change block, not owner (no retains). */
        small *g = small_new(cap_for(s->s_count + 1u));
        if (g == NULL)
            return CV_MAP_ENOMEM;
        memcpy(g->s_pairs, s->s_pairs, s->s_count * sizeof(apair));
        g->s_count = s->s_count;
        small_free(s);
        s = g;
        *m = (cv_map *)s;
    }

    /* in place only on a block no one else sees, never past K pairs */
    CV_ASSERT(unshared(s) && s->s_count + (p == NULL) <= s->s_cap &&
              s->s_cap <= K);
    if (p == NULL) {
        cv__slot_take(key, val);
        s->s_pairs[s->s_count++] = (apair){.key = key, .val = val};
    } else {
        void *old = p->val;
        cv__slot_take_value(key, val);
        p->val = val;
        cv__slot_drop_value(key, old); /* last: the map is whole again */
    }
    return 0;
}

static int large_del(cv_map **m, const cv_var *key)
{
    cv_map *h = large_inner(*m);
    if (HAMT->len(h) > DEMOTE_AT + 1u) {
        int r = HAMT->del(&h, key);
        if (r == 1)
            *m = large_wrap(h);
        /* the invariant: a HAMT holds more than K / 2 pairs */
        CV_ASSERT(r < 0 || HAMT->len(large_inner(*m)) > DEMOTE_AT);
        return r;
    }
    void *v;
    if (HAMT->find(h, key, &v) == 0)
        return 0;
    return demote(m, h, key);
}

static int ad_del(cv_map **m, const cv_var *key)
{
    if (is_large(*m))
        return large_del(m, key);
    small *s = (small *)*m;
    if (s == NULL)
        return 0;
    apair *p = small_lookup(s, key);
    if (p == NULL)
        return 0;
    if (s->s_count == 1) {
        /* The empty map is NULL. The pair goes with the caller's
         * reference: freed here if unshared, kept by the others if not. */
        *m = NULL;
        cv__map_drop_later(SELF, (cv_map *)s);
        return 1;
    }
    if (!unshared(s)) {
        uint32_t i = (uint32_t)(p - s->s_pairs);
        small *c = small_clone(s, cap_for(s->s_count - 1u), i);
        if (c == NULL)
            return CV_MAP_ENOMEM;
        *m = (cv_map *)c;
        /* the removed pair stays with the others */
        cv__map_drop_later(SELF, (cv_map *)s);
        return 1;
    }
    /* In place: the last pair fills the hole (order is unspecified). */
    CV_ASSERT(unshared(s));
    apair gone = *p;
    *p = s->s_pairs[--s->s_count];
    cv__slot_drop(gone.key, gone.val);
    return 1;
}

/* ------------------------------------------------------------------------
 * Check and debug
 * ------------------------------------------------------------------------ */

static const char *ad_check(const cv_map *m)
{
    if (m == NULL)
        return NULL;
    if (is_large(m)) {
        const cv_map *h = large_inner(m);
        if (h == NULL)
            return "adaptive: large map with a NULL HAMT";
        const char *e = HAMT->check(h);
        if (e != NULL)
            return e;
        if (HAMT->len(h) <= DEMOTE_AT)
            return "adaptive: large map at or below K / 2 (not demoted)";
        return NULL;
    }
    const small *s = (const small *)m;
    if (atomic_load(&s->s_refs) < 1)
        return "adaptive: reference count below 1";
    if (s->s_count == 0)
        return "adaptive: empty small map (the empty map must be NULL)";
    if (s->s_cap > K)
        return "adaptive: small map with room for more than K pairs";
    if (s->s_count > s->s_cap)
        return "adaptive: more pairs than capacity";
    for (uint32_t i = 0; i < s->s_count; i++) {
        const cv_var *k = s->s_pairs[i].key;
        if (k == NULL)
            return "adaptive: NULL key among the pairs in use";
        if (cv__key_refs(k) < 1)
            return "adaptive: key with reference count below 1";
        for (uint32_t j = 0; j < i; j++)
            if (s->s_pairs[j].key == k)
                return "adaptive: duplicate key";
    }
    return NULL;
}

int cv__adaptive_is_small(const cv_map *m)
{
    return !is_large(m);
}

CV_BACKEND_DEFINE(cv__backend_adaptive, "adaptive", ad);
