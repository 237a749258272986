/* SPDX-License-Identifier: MIT */
/*
 * mapmodel.c -- the map-level test harness (mapmodel.h).
 */
#include <string.h>

#include "mapmodel.h"

uint32_t tu_rnd(uint32_t *s)
{
    /* A Weyl sequence through murmur3's finalizer: all 32 bits usable,
     * any seed (0 too). */
    uint32_t z = (*s += 0x9e3779b9u);
    z = (z ^ (z >> 16)) * 0x85ebca6bu;
    z = (z ^ (z >> 13)) * 0xc2b2ae35u;
    return z ^ (z >> 16);
}

uint32_t mm_hash_spread(int i, int nk)
{
    (void)nk;
    return (uint32_t)(i + 1) * 2654435761u;
}

uint32_t mm_hash_collide(int i, int nk)
{
    (void)i;
    (void)nk;
    return 0;
}

uint32_t mm_hash_half(int i, int nk)
{
    return i < nk / 2 ? 0u : mm_hash_spread(i, nk);
}

uint32_t mm_hash_mixed(int i, int nk)
{
    switch (i % 4) {
    case 0: return 0xdeadbeefu;                          /* full collision */
    case 1: return 0x1234u | ((uint32_t)i << 20);        /* shared low bits */
    default: return mm_hash_spread(i, nk);
    }
}

void mm_world_init(mm_world *w, const cv_backend *b, int nk,
                   uint32_t (*hash)(int i, int nk))
{
    assert_true(nk > 0 && nk <= MM_MAXK);
    memset(w, 0, sizeof *w);
    w->b = b;
    w->nk = nk;
    for (int i = 0; i < nk; i++) {
        char name[16];
        snprintf(name, sizeof name, "k%d", i);
        cv_var_opts o = {
            .name = name,
            .retain = tu_hook_retain,
            .release = tu_hook_release,
        };
        ASSERT_OK(cv__var_new_hashed(&o, hash(i, nk), &w->keys[i]));
    }
    for (int i = 0; i < MM_NV; i++)
        w->vals[i].tag = i;
}

void mm_world_free(mm_world *w)
{
    for (int i = 0; i < w->nk; i++)
        cv_var_release(w->keys[i]);
}

int mm_len(const mm_world *w, const mm_model *md)
{
    int n = 0;
    for (int i = 0; i < w->nk; i++)
        n += md->has[i];
    return n;
}

void mm_model_of(const mm_world *w, const cv_map *m, mm_model *md)
{
    memset(md, 0, sizeof *md);
    for (int i = 0; i < w->nk; i++)
        md->has[i] = w->b->find(m, w->keys[i], &md->val[i]);
}

typedef struct walk {
    const mm_world *w;
    int seen[MM_MAXK];
    void *val[MM_MAXK];
    int stop_after;             /* 0: never stop */
    int calls;
} walk;

static int walk_cb(cv_var *k, void *v, void *arg)
{
    walk *wk = arg;
    int i = 0;
    while (i < wk->w->nk && wk->w->keys[i] != k)
        i++;
    if (i == wk->w->nk)
        fail_msg("foreach: a key that is not in the world");
    wk->seen[i]++;
    wk->val[i] = v;
    wk->calls++;
    return wk->stop_after && wk->calls == wk->stop_after ? 77 : 0;
}

int mm_walk(const mm_world *w, const cv_map *m, int stop_after, int *calls)
{
    walk wk = {.w = w, .stop_after = stop_after};
    int r = w->b->foreach(m, walk_cb, &wk);
    *calls = wk.calls;
    return r;
}

void mm_expect(const mm_world *w, const cv_map *m, const mm_model *md)
{
    const char *err = w->b->check(m);
    if (err != NULL)
        fail_msg("check: %s", err);
    walk wk = {.w = w};
    assert_int_equal(w->b->foreach(m, walk_cb, &wk), 0);
    for (int i = 0; i < w->nk; i++) {
        void *v = NULL;
        int r = w->b->find(m, w->keys[i], &v);
        if (r != md->has[i])
            fail_msg("key %d: find %d, model %d", i, r, md->has[i]);
        if (wk.seen[i] != md->has[i])
            fail_msg("key %d: foreach saw it %d times, model %d", i,
                     wk.seen[i], md->has[i]);
        if (md->has[i] && (v != md->val[i] || wk.val[i] != md->val[i]))
            fail_msg("key %d: value %p (foreach %p), model %p", i, v,
                     wk.val[i], md->val[i]);
    }
    int n = mm_len(w, md);
    assert_int_equal(w->b->len(m), (size_t)n);
    assert_true(m != NULL || n == 0);
}

/* After every successful write, the backend's check() (as the core does
 * in the test build). */
static void checked(const mm_world *w, const cv_map *m, const char *op, int k)
{
    const char *why = w->b->check(m);
    if (why != NULL)
        fail_msg("%s of key %d: check: %s", op, k, why);
}

void mm_expect_release(const mm_world *w, cv_map *m, const mm_model *md)
{
    mm_expect(w, m, md);
    w->b->release(m);
}

void mm_release_all(const cv_backend *b, cv_map **maps, int n)
{
    for (int i = 0; i < n; i++) {
        const char *why = b->check(maps[i]);
        if (why != NULL)
            fail_msg("map %d of %d: check: %s", i, n, why);
        b->release(maps[i]);
    }
}

int mm_try_set(const mm_world *w, cv_map **m, mm_model *md, int k, void *v)
{
    int r = w->b->set(m, w->keys[k], v);
    if (r == 0) {
        checked(w, *m, "set", k);
        md->has[k] = 1;
        md->val[k] = v;
    }
    return r;
}

int mm_try_del(const mm_world *w, cv_map **m, mm_model *md, int k)
{
    int r = w->b->del(m, w->keys[k]);
    if (r >= 0)
        checked(w, *m, "del", k);
    if (r == 1) {
        md->has[k] = 0;
        md->val[k] = NULL;
    }
    return r;
}

void mm_set(const mm_world *w, cv_map **m, mm_model *md, int k, void *v)
{
    ASSERT_OK(mm_try_set(w, m, md, k, v));
}

void mm_del(const mm_world *w, cv_map **m, mm_model *md, int k)
{
    int want = md->has[k];
    ASSERT_ERR(mm_try_del(w, m, md, k), want);
}

void mm_fill(const mm_world *w, cv_map **m, mm_model *md, int n)
{
    for (int k = 0; k < n; k++)
        mm_set(w, m, md, k, (void *)&w->vals[k % MM_NV]);
}

/* ------------------------------------------------------------------------
 * Random histories
 * ------------------------------------------------------------------------ */

static void random_step(const mm_world *w, const mm_random *r, cv_map **held,
                        mm_model *mods, int *live, uint32_t *s, int h)
{
    int k = (int)(tu_rnd(s) % (uint32_t)w->nk);
    uint32_t op = tu_rnd(s) % 100;
    unsigned set_pct = r->set_pct ? r->set_pct(mm_len(w, &mods[h])) : 50;
    if (op < set_pct) {
        mm_set(w, &held[h], &mods[h], k, (void *)&w->vals[tu_rnd(s) % MM_NV]);
    } else if (op < 80) {
        mm_del(w, &held[h], &mods[h], k);
    } else if (op < 93) {
        int to = (int)(tu_rnd(s) % (uint32_t)r->nheld);
        if (to != h) {
            if (live[to])
                w->b->release(held[to]);
            ASSERT_OK(w->b->share(held[h], &held[to]));
            mods[to] = mods[h];
            live[to] = 1;
        }
    } else if (h != 0) {
        w->b->release(held[h]);
        held[h] = NULL;
        live[h] = 0;
    }
}

static void random_check(const mm_world *w, const mm_random *r,
                         cv_map *const *held, const mm_model *mods, int i)
{
    mm_expect(w, held[i], &mods[i]);
    if (r->after)
        r->after(held[i], r->arg);
}

void mm_random_run(const mm_world *w, const mm_random *r)
{
    assert_true(r->nheld > 0 && r->nheld <= MM_MAXHELD);
    cv_map *held[MM_MAXHELD] = {0};
    mm_model mods[MM_MAXHELD];
    int live[MM_MAXHELD] = {1};
    memset(mods, 0, sizeof mods);
    uint32_t s = r->seed;
    for (long step = 0; step < r->steps; step++) {
        int h = (int)(tu_rnd(&s) % (uint32_t)r->nheld);
        if (!live[h])
            h = 0;
        random_step(w, r, held, mods, live, &s, h);
        int all = (r->all_every && step % r->all_every == 0) ||
                  step + 1 == r->steps;
        for (int i = 0; i < r->nheld; i++)
            if (live[i] && (all || i == h))
                random_check(w, r, held, mods, i);
    }
    for (int i = 0; i < r->nheld; i++)
        if (live[i])
            w->b->release(held[i]);
}

/* ------------------------------------------------------------------------
 * The OOM loop
 * ------------------------------------------------------------------------ */

/* One k of one pass; returns the op's result. */
static int oom_step(const mm_world *w, const mm_oom_case *oc, int nheld,
                    long k, int forever)
{
    cv_map *held[MM_MAXHELD] = {0};
    mm_model md = {0}, others[MM_MAXHELD];
    oc->build(w, held, &md);
    if (oc->shared)
        ASSERT_OK(w->b->share(held[0], &held[1]));
    for (int i = 1; i < nheld; i++)
        mm_model_of(w, held[i], &others[i]);
    cv_map *before = held[0];
    mm_model md_before = md;
    /* The thread's cached map blocks back to the hook (cv_set_allocator
     * drops them): the write must reach the hook for every block it
     * makes, or its k-th allocation would not be the one that fails. */
    tu_alloc_install();
    long live = tu_alloc_live(), bytes = tu_alloc_live_bytes();
    long hooks = tu_hook_balance();
    tu_alloc_fail_at(k, forever);
    int r = oc->op.del ? mm_try_del(w, &held[0], &md, oc->op.key)
                       : mm_try_set(w, &held[0], &md, oc->op.key,
                                    (void *)&w->vals[oc->op.val]);
    long failed = tu_alloc_fail_off();
    if (r == CV_ENOMEM) {
        if (failed == 0)
            fail_msg("%s: CV_ENOMEM with no failed allocation", oc->name);
        /* unchanged: same pointer, contents, blocks, bytes, retains */
        assert_ptr_equal(held[0], before);
        assert_memory_equal(&md, &md_before, sizeof md);
        if (tu_alloc_live() != live || tu_alloc_live_bytes() != bytes ||
            tu_hook_balance() != hooks)
            fail_msg("%s k=%ld forever=%d: the failed call left %ld blocks, "
                     "%ld bytes, %ld retains", oc->name, k, forever,
                     tu_alloc_live() - live, tu_alloc_live_bytes() - bytes,
                     tu_hook_balance() - hooks);
    } else {
        if (r != oc->want)
            fail_msg("%s k=%ld: got %d, want %d", oc->name, k, r, oc->want);
        const char *why = oc->after ? oc->after(held[0]) : NULL;
        if (why != NULL)
            fail_msg("%s: %s", oc->name, why);
    }
    mm_expect(w, held[0], &md);
    for (int i = 1; i < nheld; i++)
        mm_expect(w, held[i], &others[i]);
    for (int i = 0; i < nheld; i++)
        w->b->release(held[i]);
    return r;
}

void mm_build_empty(const mm_world *w, cv_map **held, mm_model *md)
{
    (void)w;
    (void)held;
    (void)md;
}

long mm_oom_run(const cv_backend *b, int nk, uint32_t (*hash)(int, int),
                const mm_oom_case *cases, size_t n, int nheld, int must_fail)
{
    assert_true(nheld > 1 && nheld <= MM_MAXHELD);
    mm_world w;
    mm_world_init(&w, b, nk, hash);
    long before = tu_alloc_failures_total();
    for (size_t c = 0; c < n; c++) {
        for (int forever = 0; forever <= 1; forever++) {
            long k = 1;
            while (oom_step(&w, &cases[c], nheld, k, forever) == CV_ENOMEM) {
                if (++k > 1000)
                    fail_msg("%s: still failing after 1000 allocations",
                             cases[c].name);
            }
            if (must_fail && k == 1)
                fail_msg("%s: no allocation failed", cases[c].name);
        }
    }
    mm_world_free(&w);
    return tu_alloc_failures_total() - before;
}
