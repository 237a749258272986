/*
 * canary.c -- a test-only backend with the naive ChainMap.new_child
 * semantics, so that the suite can prove it catches an isolation bug.
 *
 * share() gives the copy a new empty child layer whose parent is the
 * *live* original layer, and the original keeps writing into its own layer
 * in place, child or no child. So the copy sees every later write of the
 * original: exactly what aiotask-context's chainmap_context_factory ships
 * (a child task reads its parent's dict through collections.ChainMap), and
 * what R9 forbids. Writes of the copy go into the copy's own layer, so the
 * original never sees them: the bug shows in one direction only, which is
 * why an R9 test must write the original after the copy.
 *
 * Apart from that it is a correct map: find, len, foreach, del and release
 * honour tombstones, own their references and leak nothing, so a harness
 * run on it reports assertion failures, not crashes. It is never in the
 * library: only tu_extra_backends (CV_TEST_BACKEND=canary) reaches it.
 *
 * Each layer is a small open-addressing table (linear probing, tombstones
 * as a sentinel value, a slot is never removed); len and foreach recount
 * across layers because a parent's live writes change what a child shows.
 */
#include <string.h>

#include "extra_backends.h"
#include "internal.h"
#include "map.h"
#include "slots.h"

/* {key, val}: key NULL empty, else one var reference; val a retained
 * value, or CN_TOMB. */
typedef cv_slot cnslot;

typedef struct cnode cnode;
struct cnode {
    _Atomic size_t n_refs;       /* the holder and each child layer */
    cnode *n_parent;             /* owned reference; NULL at the root */
    uint32_t n_used;             /* occupied slots */
    uint32_t n_mask;             /* capacity - 1 */
    cnslot *n_slots;             /* separate, so growth keeps the node */
};

static const char cn_tomb;
#define CN_TOMB ((void *)&cn_tomb)

static cnode *cn_new(cnode *parent)
{
    cnode *n = cv__malloc(sizeof *n);
    cnslot *s = cv__malloc(4 * sizeof *s);
    if (n == NULL || s == NULL) {
        cv__free(n);
        cv__free(s);
        return NULL;
    }
    memset(s, 0, 4 * sizeof *s);
    atomic_init(&n->n_refs, 1);
    n->n_parent = parent;
    n->n_used = 0;
    n->n_mask = 3;
    n->n_slots = s;
    return n;
}

static cnslot *cn_lookup(const cnode *n, const cv_var *key)
{
    uint32_t i = cv__key_hash(key) & n->n_mask;
    while (n->n_slots[i].key != key && n->n_slots[i].key != NULL)
        i = (i + 1) & n->n_mask;
    return &n->n_slots[i];
}

/* The topmost slot for key from n down, or NULL. */
static const cnslot *cn_chain(const cnode *n, const cv_var *key)
{
    for (; n != NULL; n = n->n_parent) {
        const cnslot *s = cn_lookup(n, key);
        if (s->key == key)
            return s;
    }
    return NULL;
}

/* Room for one more slot in n (load <= 1/2). 0 or CV_MAP_ENOMEM. */
static int cn_room(cnode *n)
{
    if ((n->n_used + 1) * 2 <= n->n_mask + 1)
        return 0;
    uint32_t cap = (n->n_mask + 1) * 2;
    cnslot *s = cv__malloc(cap * sizeof *s);
    if (s == NULL)
        return CV_MAP_ENOMEM;
    memset(s, 0, cap * sizeof *s);
    cnslot *old = n->n_slots;
    uint32_t oldcap = n->n_mask + 1;
    n->n_slots = s;
    n->n_mask = cap - 1;
    for (uint32_t i = 0; i < oldcap; i++)
        if (old[i].key != NULL)
            *cn_lookup(n, old[i].key) = old[i];
    cv__free(old);
    return 0;
}

static void cn_release(cv_map *m)
{
    cnode *n = (cnode *)m;
    while (n != NULL) {
        if (atomic_fetch_sub(&n->n_refs, 1) != 1)
            return;
        cnode *parent = n->n_parent;
        cv__slots_drop(n->n_slots, n->n_mask, CN_TOMB);
        cv__free(n->n_slots);
        cv__free(n);
        n = parent;
    }
}

static int cn_find(const cv_map *m, const cv_var *key, void **val)
{
    const cnslot *s = cn_chain((const cnode *)m, key);
    if (s == NULL || s->val == CN_TOMB)
        return 0;
    *val = s->val;
    return 1;
}

/* THE BUG: writes go into the holder's own layer whatever its count, so
 * the children that read it through n_parent see them. */
static int cn_write(cv_map **m, cv_var *key, void *val)
{
    cnode *n = (cnode *)*m;
    if (n == NULL) {
        n = cn_new(NULL);
        if (n == NULL)
            return CV_MAP_ENOMEM;
        *m = (cv_map *)n;
    }
    cnslot *s = cn_lookup(n, key);
    if (s->key == key) {
        void *old = s->val;
        if (val != CN_TOMB)
            cv__slot_take_value(key, val);
        s->val = val;
        if (old != CN_TOMB)
            cv__slot_drop_value(key, old);
        return 0;
    }
    if (cn_room(n) < 0) /* never for a node made above: it has room */
        return CV_MAP_ENOMEM;
    s = cn_lookup(n, key);
    if (val == CN_TOMB)
        cv__slot_take_key(key);
    else
        cv__slot_take(key, val);
    s->key = key;
    s->val = val;
    n->n_used++;
    return 0;
}

static int cn_set(cv_map **m, cv_var *key, void *val)
{
    void *cur;
    if (cn_find(*m, key, &cur) && cur == val)
        return 0;
    return cn_write(m, key, val);
}

static int cn_del(cv_map **m, const cv_var *key)
{
    void *cur;
    if (!cn_find(*m, key, &cur))
        return 0;
    int r = cn_write(m, (cv_var *)key, CN_TOMB);
    return r < 0 ? r : 1;
}

/* 1: a layer from top down to (not including) n has a slot for key. */
static int cn_shadowed(const cnode *top, const cnode *n, const cv_var *key)
{
    for (; top != n; top = top->n_parent)
        if (cn_lookup(top, key)->key == key)
            return 1;
    return 0;
}

static int cn_foreach(const cv_map *m, cv_map_visit_cb cb, void *arg)
{
    const cnode *top = (const cnode *)m;
    for (const cnode *n = top; n != NULL; n = n->n_parent)
        for (uint32_t i = 0; i <= n->n_mask; i++) {
            const cnslot *s = &n->n_slots[i];
            if (s->key == NULL || s->val == CN_TOMB ||
                cn_shadowed(top, n, s->key))
                continue;
            int r = cb(s->key, s->val, arg);
            if (r != 0)
                return r;
        }
    return 0;
}

static int cn_count_cb(cv_var *key, void *value, void *arg)
{
    (void)key;
    (void)value;
    ++*(size_t *)arg;
    return 0;
}

static size_t cn_len(const cv_map *m)
{
    size_t n = 0;
    cn_foreach(m, cn_count_cb, &n);
    return n;
}

/* ChainMap.new_child(): a fresh layer over the live original. */
static int cn_share(cv_map *m, cv_map **out)
{
    cnode *parent = (cnode *)m;
    if (parent == NULL) {
        *out = NULL;
        return 0;
    }
    cnode *n = cn_new(parent);
    if (n == NULL)
        return CV_MAP_ENOMEM;
    atomic_fetch_add(&parent->n_refs, 1);
    *out = (cv_map *)n;
    return 0;
}

static const char *cn_check(const cv_map *m)
{
    for (const cnode *n = (const cnode *)m; n != NULL; n = n->n_parent)
        if (atomic_load(&n->n_refs) < 1)
            return "canary: reference count below 1";
    return NULL;
}

CV_BACKEND_DEFINE(tu_canary_backend, "canary", cn);
