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

/* Key OOM_NEW is never in a built map; held[1] shares held[0] in the
 * shared builds. */
enum { OOM_NEW = MM_MAXK - 1, OOM_HELD = 2 };

#define OOM_SIZES(X) X(0) X(1) X(2) X(3) X(4) X(5) X(7) X(8) X(9) X(12) \
    X(15) X(16) X(17) X(24) X(33) X(40)

#define OOM_BUILD(n)                                                       \
    static void build_##n(const mm_world *w, cv_map **held, mm_model *md)  \
    {                                                                      \
        mm_fill(w, &held[0], md, n);                                       \
    }                                                                      \
    static void build_shared_##n(const mm_world *w, cv_map **held,         \
                                 mm_model *md)                             \
    {                                                                      \
        mm_fill(w, &held[0], md, n);                                       \
        ASSERT_OK(w->b->share(held[0], &held[1]));                         \
    }
OOM_SIZES(OOM_BUILD)
#undef OOM_BUILD

static int op_set_new(const mm_world *w, cv_map **m, mm_model *md)
{
    return mm_try_set(w, m, md, OOM_NEW, (void *)&w->vals[MM_NV - 1]);
}

static int op_set_existing(const mm_world *w, cv_map **m, mm_model *md)
{
    return mm_try_set(w, m, md, 0, (void *)&w->vals[MM_NV - 2]);
}

static int op_del(const mm_world *w, cv_map **m, mm_model *md)
{
    return mm_try_del(w, m, md, 1);
}

static int op_del_absent(const mm_world *w, cv_map **m, mm_model *md)
{
    return mm_try_del(w, m, md, OOM_NEW);
}

/* Every write, on a map of n pairs, owned and shared; a set of the key
 * already there is a replace, a delete of key 1 removes it when n > 1. */
#define OOM_CASES(n)                                                       \
    {"set new, n=" #n, build_##n, op_set_new, 0, NULL},                    \
    {"set new, shared, n=" #n, build_shared_##n, op_set_new, 0, NULL},     \
    {"replace, n=" #n, build_##n, op_set_existing, 0, NULL},               \
    {"replace, shared, n=" #n, build_shared_##n, op_set_existing, 0, NULL}, \
    {"del, n=" #n, build_##n, op_del, (n) > 1, NULL},                      \
    {"del, shared, n=" #n, build_shared_##n, op_del, (n) > 1, NULL},       \
    {"del absent, shared, n=" #n, build_shared_##n, op_del_absent, 0, NULL},
static const mm_oom_case oom_cases[] = {OOM_SIZES(OOM_CASES)};
#undef OOM_CASES

/* Every failing write returns CV_ENOMEM and changes nothing (the map, its
 * other holder, blocks, bytes, value retains), on every backend. */
TEST(map_oom_every_write)
{
    mm_world w;
    mm_world_init(&w, TEST_BACKEND, MM_MAXK, mm_hash_mixed);
    long before = tu_alloc_failures_total();
    mm_oom_run(&w, oom_cases, sizeof oom_cases / sizeof oom_cases[0],
               OOM_HELD, 0);
    /* the cases allocate (a first pair, a copy of a shared map) */
    assert_true(tu_alloc_failures_total() > before);
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
