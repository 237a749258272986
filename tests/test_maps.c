/*
 * test_maps.c -- the backend interface (maps/map.h) against a model, on
 * every backend.
 *
 * A pool of keys (some with forced, colliding hashes) and a set of live
 * snapshots, each with its own model (an array: key index -> value or
 * MISSING). Random operations (set, delete, share, release) run on random
 * snapshots; after every one, every live snapshot must still equal its model
 * (find, len, foreach) and pass the backend's check(). Sharing and writing
 * into one snapshot must never show in another (R9 at the map level).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "map.h"
#include "testutil.h"

#define NKEYS 48
#define NSNAP 12

typedef struct snap {
    cv_map *m;                 /* NULL is empty, as in map.h */
    void *model[NKEYS];        /* NULL: absent */
    int live;
} snap;

typedef struct world {
    const cv_backend *b;
    cv_var *keys[NKEYS];
    snap s[NSNAP];
    uint64_t rng;
} world;

static uint32_t rnd(world *w)
{
    /* xorshift64*: reproducible per seed, printed on failure. */
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return (uint32_t)((w->rng * UINT64_C(2685821657736338717)) >> 32);
}

static void keys_make(world *w)
{
    for (int i = 0; i < NKEYS; i++) {
        cv_var_opts o = {.name = "k"};
        uint32_t h;
        switch (i % 4) {
        case 0: h = 0xdeadbeefu; break;                    /* full collision */
        case 1: h = 0x1234u | ((uint32_t)i << 20); break;  /* shared low bits */
        default: h = (uint32_t)i * 2654435761u; break;     /* spread */
        }
        ASSERT_OK(cv__var_new_hashed(&o, h, &w->keys[i]));
    }
}

typedef struct seen {
    world *w;
    int count[NKEYS];
    int bad;
} seen;

static int seen_cb(cv_var *key, void *value, void *arg)
{
    seen *s = arg;
    for (int i = 0; i < NKEYS; i++)
        if (s->w->keys[i] == key) {
            s->count[i]++;
            return 0;
        }
    (void)value;
    s->bad++;
    return 0;
}

static void snap_verify(world *w, int si, uint64_t seed, int step)
{
    snap *s = &w->s[si];
    const char *why = w->b->check(s->m);
    if (why != NULL)
        fail_msg("seed %llu step %d snapshot %d: check: %s",
                 (unsigned long long)seed, step, si, why);
    size_t n = 0;
    for (int k = 0; k < NKEYS; k++) {
        void *got = NULL;
        int r = w->b->find(s->m, w->keys[k], &got);
        if (s->model[k] != NULL) {
            n++;
            if (r != 1 || got != s->model[k])
                fail_msg("seed %llu step %d snapshot %d key %d: find=%d "
                         "value %p, want %p",
                         (unsigned long long)seed, step, si, k, r, got,
                         s->model[k]);
        } else if (r != 0) {
            fail_msg("seed %llu step %d snapshot %d key %d: found %p, want "
                     "absent", (unsigned long long)seed, step, si, k, got);
        }
    }
    if (w->b->len(s->m) != n)
        fail_msg("seed %llu step %d snapshot %d: len %zu, want %zu",
                 (unsigned long long)seed, step, si, w->b->len(s->m), n);
    seen sn = {.w = w};
    assert_int_equal(w->b->foreach(s->m, seen_cb, &sn), 0);
    assert_int_equal(sn.bad, 0);
    for (int k = 0; k < NKEYS; k++)
        if (sn.count[k] != (s->model[k] != NULL))
            fail_msg("seed %llu step %d snapshot %d key %d: foreach visited "
                     "it %d times", (unsigned long long)seed, step, si, k,
                     sn.count[k]);
}

static void run_random(const cv_backend *b, uint64_t seed, int steps)
{
    world w = {.b = b, .rng = seed | 1};
    keys_make(&w);
    w.s[0].live = 1;
    for (int step = 0; step < steps; step++) {
        int si = (int)(rnd(&w) % NSNAP);
        if (!w.s[si].live)
            si = 0;
        snap *s = &w.s[si];
        if (!s->live) {
            s->live = 1;
            s->m = NULL;
            memset(s->model, 0, sizeof s->model);
        }
        int k = (int)(rnd(&w) % NKEYS);
        uint32_t op = rnd(&w) % 100;
        if (op < 50) {
            /* values are never dereferenced: small tagged pointers */
            void *v = (void *)(uintptr_t)(1 + rnd(&w) % 5);
            ASSERT_OK(b->set(&s->m, w.keys[k], v));
            s->model[k] = v;
        } else if (op < 75) {
            int r = b->del(&s->m, w.keys[k]);
            assert_int_equal(r, s->model[k] != NULL);
            s->model[k] = NULL;
        } else if (op < 92) {
            int di = (int)(rnd(&w) % NSNAP);
            if (di != si) {
                if (w.s[di].live)
                    b->release(w.s[di].m);
                ASSERT_OK(b->share(s->m, &w.s[di].m));
                memcpy(w.s[di].model, s->model, sizeof s->model);
                w.s[di].live = 1;
            }
        } else if (si != 0) {
            b->release(s->m);
            s->m = NULL;
            s->live = 0;
        }
        for (int i = 0; i < NSNAP; i++)
            if (w.s[i].live)
                snap_verify(&w, i, seed, step);
    }
    for (int i = 0; i < NSNAP; i++)
        if (w.s[i].live)
            b->release(w.s[i].m);
    for (int i = 0; i < NKEYS; i++)
        cv_var_release(w.keys[i]);
}

TEST(map_random_ops_match_model)
{
    long rounds = tu_scale(40, 4);
    for (long r = 0; r < rounds; r++)
        run_random(TEST_BACKEND, 0x9e3779b97f4a7c15ull * (uint64_t)(r + 1),
                   (int)tu_scale(600, 200));
}

TEST(map_empty_is_null)
{
    const cv_backend *b = TEST_BACKEND;
    cv_var *k = tu_var("k");
    cv_map *m = NULL;
    void *out = (void *)0x1;
    assert_int_equal(b->find(NULL, k, &out), 0);
    assert_ptr_equal(out, (void *)0x1);
    assert_int_equal(b->len(NULL), 0);
    assert_int_equal(b->del(&m, k), 0);
    assert_null(b->check(NULL));
    ASSERT_OK(b->set(&m, k, "v"));
    assert_int_equal(b->del(&m, k), 1);
    assert_int_equal(b->len(m), 0);
    assert_null(b->check(m));
    b->release(m);
    cv_var_release(k);
}

/* Storing the value already there changes nothing and allocates nothing. */
TEST(map_set_same_value_allocates_nothing)
{
    const cv_backend *b = TEST_BACKEND;
    cv_var *k[20];
    cv_map *m = NULL;
    for (int i = 0; i < 20; i++) {
        k[i] = tu_var("k");
        ASSERT_OK(b->set(&m, k[i], "v"));
    }
    cv_map *snap;
    ASSERT_OK(b->share(m, &snap));
    cv_map *before = m;
    long calls = tu_alloc_calls();
    ASSERT_OK(b->set(&m, k[7], "v"));
    assert_ptr_equal(m, before);
    assert_int_equal(tu_alloc_calls(), calls);
    b->release(snap);
    b->release(m);
    for (int i = 0; i < 20; i++)
        cv_var_release(k[i]);
}

/* A writer holding the only reference writes in place: no allocation. */
TEST(map_unshared_overwrite_in_place)
{
    const cv_backend *b = TEST_BACKEND;
    cv_var *k[40];
    cv_map *m = NULL;
    for (int i = 0; i < 40; i++) {
        k[i] = tu_var("k");
        ASSERT_OK(b->set(&m, k[i], "a"));
    }
    long calls = tu_alloc_calls();
    for (int i = 0; i < 40; i++)
        ASSERT_OK(b->set(&m, k[i], "b"));
    assert_int_equal(tu_alloc_calls(), calls);
    assert_null(b->check(m));
    b->release(m);
    for (int i = 0; i < 40; i++)
        cv_var_release(k[i]);
}

/* Slots retain values through the var's hooks and release each exactly once. */
TEST(map_value_hooks_balance)
{
    const cv_backend *b = TEST_BACKEND;
    tu_val v1 = {0}, v2 = {0};
    cv_var *k = tu_var_hooked("k", NULL);
    cv_map *m = NULL, *s = NULL;
    ASSERT_OK(b->set(&m, k, &v1));
    assert_true(v1.refs >= 1);
    ASSERT_OK(b->share(m, &s));
    ASSERT_OK(b->set(&m, k, &v2));
    assert_true(v1.refs >= 1);   /* the snapshot still holds v1 */
    assert_true(v2.refs >= 1);
    b->release(s);
    /* A layered backend may keep a shadowed value in a parent layer that m
     * still reaches until m's next write; never longer than m itself. */
    assert_true(v1.refs <= 1);
    assert_int_equal(b->del(&m, k), 1);
    assert_int_equal(v2.refs, 0);
    assert_true(v1.refs <= 1);
    b->release(m);
    m = NULL;
    assert_int_equal(v1.refs, 0);
    b->release(m);
    cv_var_release(k);
}
