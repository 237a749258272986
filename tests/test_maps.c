/*
 * test_maps.c -- the backend interface (maps/map.h) against a model, on
 * every backend, through the map harness (tests/support/mapmodel.h).
 *
 * map_random_ops_match_model: a pool of keys (a quarter with one full
 * collision, a quarter sharing their low bits) and a set of held maps,
 * each with its own model; random sets, deletes, shares and releases, and
 * after every step every held map must equal its model (find, len,
 * foreach, check()). Writing into one must never show in another (R9 at
 * the map level).
 *
 * map_oom_every_write: the map-level OOM loop over every write at every
 * size that crosses a threshold of some backend (growth, adaptive's K,
 * hamt's array nodes), shared and not.
 */
#include <stdlib.h>
#include <string.h>

#include "mapmodel.h"

TEST(map_random_ops_match_model)
{
    mm_world w;
    mm_world_init(&w, TEST_BACKEND, MM_MAXK, mm_hash_mixed);
    long rounds = tu_scale(40, 4);
    for (long r = 0; r < rounds; r++) {
        mm_random rr = {.nheld = MM_MAXHELD, .steps = tu_scale(600, 200),
                        .seed = 0x9e3779b9u * (uint32_t)(r + 1),
                        .all_every = 1};
        mm_random_run(&w, &rr);
    }
    mm_world_free(&w);
}

/* ------------------------------------------------------------------------
 * The OOM loop on every backend
 * ------------------------------------------------------------------------ */

/* Key OOM_NEW is never in a built map. */
enum { OOM_NEW = MM_MAXK - 1, OOM_HELD = 2 };
#define SET_NEW MM_SET(OOM_NEW, MM_NV - 1)
#define SET_EXISTING MM_SET(0, MM_NV - 2)

#define OOM_SIZES(X) X(0) X(1) X(2) X(3) X(4) X(5) X(7) X(8) X(9) X(12) \
    X(15) X(16) X(17) X(24) X(33) X(40)

#define OOM_BUILD(n)                                                       \
    static void build_##n(const mm_world *w, cv_map **held, mm_model *md)  \
    {                                                                      \
        mm_fill(w, &held[0], md, n);                                       \
    }
OOM_SIZES(OOM_BUILD)
#undef OOM_BUILD

/* Every write, on a map of n pairs, owned and shared; a set of the key
 * already there is a replace, a delete of key 1 removes it when n > 1. */
#define OOM_CASES(n)                                                       \
    {"set new, n=" #n, build_##n, 0, SET_NEW, 0, NULL},                    \
    {"set new, shared, n=" #n, build_##n, 1, SET_NEW, 0, NULL},            \
    {"replace, n=" #n, build_##n, 0, SET_EXISTING, 0, NULL},               \
    {"replace, shared, n=" #n, build_##n, 1, SET_EXISTING, 0, NULL},       \
    {"del, n=" #n, build_##n, 0, MM_DEL(1), (n) > 1, NULL},                \
    {"del, shared, n=" #n, build_##n, 1, MM_DEL(1), (n) > 1, NULL},        \
    {"del absent, shared, n=" #n, build_##n, 1, MM_DEL(OOM_NEW), 0, NULL},
static const mm_oom_case oom_cases[] = {OOM_SIZES(OOM_CASES)};
#undef OOM_CASES

/* Every failing write returns CV_ENOMEM and changes nothing (the map, its
 * other holder, blocks, bytes, value retains), on every backend; the
 * cases allocate (a first pair, a copy of a shared map), so some fail. */
TEST(map_oom_every_write)
{
    assert_true(mm_oom_run(TEST_BACKEND, MM_MAXK, mm_hash_mixed, oom_cases,
                           sizeof oom_cases / sizeof oom_cases[0], OOM_HELD,
                           0) > 0);
}

/* Writes that need no memory succeed with every allocation failing and
 * change the map as asked: storing the value already there (owned and
 * shared: the map stays the same pointer), overwriting in place, deleting
 * an absent key from a shared map, and a delete that empties a shared
 * one-pair map (the empty map is NULL, so no copy is made). */
TEST(map_writes_without_allocation)
{
    mm_world w;
    mm_world_init(&w, TEST_BACKEND, MM_MAXK, mm_hash_mixed);
    const cv_backend *b = TEST_BACKEND;
    cv_map *m = NULL, *s, *e = NULL, *e2;
    mm_model md = {0}, me = {0};
    mm_fill(&w, &m, &md, 40);
    mm_set(&w, &e, &me, 4, &w.vals[4]);
    ASSERT_OK(b->share(m, &s));
    ASSERT_OK(b->share(e, &e2));
    mm_model ms = md, me2 = me;
    cv_map *before = m;
    tu_alloc_fail_at(1, 1);
    for (int k = 0; k < 40; k++) {
        mm_set(&w, &s, &ms, k, md.val[k]);        /* same value, shared */
        mm_set(&w, &m, &md, k, md.val[k]);        /* same value, owned */
    }
    mm_del(&w, &s, &ms, OOM_NEW);                 /* absent */
    mm_del(&w, &e2, &me2, 4);                     /* empties a shared map */
    tu_alloc_fail_at(0, 0);
    assert_ptr_equal(m, before);
    assert_ptr_equal(s, before);
    assert_null(e2);
    mm_expect(&w, e, &me);
    b->release(s);
    /* m is its own again: an owned overwrite is in place */
    long calls = tu_alloc_calls();
    for (int k = 0; k < 40; k++)
        mm_set(&w, &m, &md, k, &w.vals[50 + k % 10]);
    assert_int_equal(tu_alloc_calls(), calls);
    mm_expect(&w, m, &md);
    b->release(m);
    b->release(e);
    mm_world_free(&w);
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
