/*
 * test_adaptive.c -- the adaptive backend's internals, through map.h and
 * the map harness (tests/support/mapmodel.h): promotion exactly above K and
 * demotion at K / 2 (with the hysteresis between them), isolation of
 * snapshots taken on both sides of either change, random histories against
 * a model (with and without colliding hashes), and an OOM loop on every
 * allocating path.
 */
#include <string.h>

#include "adaptive.h"
#include "mapmodel.h"

#define B (&cv__backend_adaptive)
#define KK ((int)CV_ADAPTIVE_MAX)
#define NK (2 * CV_ADAPTIVE_MAX + 4) /* enough to cross K both ways */
#define NV MM_NV

typedef mm_world world;
typedef mm_model model;
#define set_ok mm_set
#define del_ok mm_del
#define world_free mm_world_free

/* Hooked keys (R14 balance is checked after each test); with `collide`
 * every key has hash 0, so the large form is one HAMT collision node. */
static void world_init(world *w, int collide)
{
    mm_world_init(w, B, NK, collide ? mm_hash_collide : mm_hash_spread);
}

/* m maps exactly what md says, in the form the thresholds allow. */
static void expect_model(const world *w, const cv_map *m, const model *md)
{
    mm_expect(w, m, md);
    int n = mm_len(w, md);
    if (n > KK)
        assert_false(cv__adaptive_is_small(m));
    if (n <= KK / 2)
        assert_true(cv__adaptive_is_small(m));
}

/* ------------------------------------------------------------------------
 * The thresholds
 * ------------------------------------------------------------------------ */

/* Small up to K pairs, a HAMT from K + 1; a HAMT stays one down to K / 2
 * + 1 pairs and turns small again at K / 2; contents survive each change. */
TEST(adaptive_promotes_above_k_demotes_at_half)
{
    (void)state;
    for (int collide = 0; collide <= 1; collide++) {
        world w;
        world_init(&w, collide);
        cv_map *m = NULL;
        model md = {0};
        assert_true(cv__adaptive_is_small(m));
        for (int k = 0; k < KK; k++) {
            set_ok(&w, &m, &md, k, &w.vals[k]);
            assert_true(cv__adaptive_is_small(m));
            expect_model(&w, m, &md);
        }
        /* overwriting at K is no growth */
        set_ok(&w, &m, &md, 0, &w.vals[40]);
        assert_true(cv__adaptive_is_small(m));
        set_ok(&w, &m, &md, KK, &w.vals[KK]); /* K + 1: promoted */
        assert_false(cv__adaptive_is_small(m));
        expect_model(&w, m, &md);

        /* Hysteresis: K + 1 -> K -> K + 1 at the boundary stays large. */
        del_ok(&w, &m, &md, KK);
        assert_false(cv__adaptive_is_small(m));
        set_ok(&w, &m, &md, KK, &w.vals[KK]);
        assert_false(cv__adaptive_is_small(m));
        expect_model(&w, m, &md);

        /* Down to K / 2 + 1: still large; one more: small. */
        int k = KK;
        while (mm_len(&w, &md) > KK / 2 + 1) {
            del_ok(&w, &m, &md, k--);
            assert_false(cv__adaptive_is_small(m));
            expect_model(&w, m, &md);
        }
        del_ok(&w, &m, &md, KK + 1); /* absent at the edge: nothing */
        assert_false(cv__adaptive_is_small(m));
        del_ok(&w, &m, &md, k--);
        assert_true(cv__adaptive_is_small(m));
        expect_model(&w, m, &md);

        /* Small again: it takes K + 1 pairs to promote once more. */
        while (mm_len(&w, &md) < KK) {
            k++;
            set_ok(&w, &m, &md, k, &w.vals[k]);
        }
        assert_true(cv__adaptive_is_small(m));
        expect_model(&w, m, &md);
        k++;
        set_ok(&w, &m, &md, k, &w.vals[k]);
        assert_false(cv__adaptive_is_small(m));
        expect_model(&w, m, &md);

        /* and back down to empty, which is NULL */
        for (int i = 0; i < NK; i++)
            if (md.has[i])
                del_ok(&w, &m, &md, i);
        assert_null(m);
        world_free(&w);
    }
}

/* foreach stops at the first non-zero return in both forms. */
TEST(adaptive_foreach_stops_early)
{
    (void)state;
    world w;
    world_init(&w, 0);
    cv_map *m = NULL;
    model md = {0};
    for (int k = 0; k < NK; k++) {
        set_ok(&w, &m, &md, k, &w.vals[k]);
        int calls;
        assert_int_equal(mm_walk(&w, m, k / 2 + 1, &calls), 77);
        assert_int_equal(calls, k / 2 + 1);
    }
    B->release(m);
    world_free(&w);
}

/* ------------------------------------------------------------------------
 * Isolation (R9) across promotion and demotion
 * ------------------------------------------------------------------------ */

TEST(adaptive_isolation_across_promote_and_demote)
{
    (void)state;
    world w;
    world_init(&w, 0);
    cv_map *a = NULL, *b, *c, *d;
    model ma = {0};
    mm_fill(&w, &a, &ma, KK);

    /* b promotes while a, its snapshot, stays small and unchanged */
    ASSERT_OK(B->share(a, &b));
    model mb = ma;
    set_ok(&w, &b, &mb, KK, &w.vals[KK]);
    assert_false(cv__adaptive_is_small(b));
    assert_true(cv__adaptive_is_small(a));
    expect_model(&w, a, &ma);
    expect_model(&w, b, &mb);

    /* c, a snapshot of the large b, demotes; b keeps every pair */
    ASSERT_OK(B->share(b, &c));
    model mc = mb;
    for (int k = KK; mm_len(&w, &mc) > KK / 2; k--)
        del_ok(&w, &c, &mc, k);
    assert_true(cv__adaptive_is_small(c));
    assert_false(cv__adaptive_is_small(b));
    expect_model(&w, b, &mb);
    expect_model(&w, c, &mc);

    /* writes on every side after the change stay on that side */
    set_ok(&w, &a, &ma, 0, &w.vals[30]);
    set_ok(&w, &b, &mb, 1, &w.vals[31]);
    set_ok(&w, &c, &mc, 0, &w.vals[32]);
    del_ok(&w, &b, &mb, 2);

    /* d: a snapshot of the demoted c, promoted again on its own */
    ASSERT_OK(B->share(c, &d));
    model md = mc;
    for (int k = KK + 1; mm_len(&w, &md) <= KK; k++)
        set_ok(&w, &d, &md, k, &w.vals[k]);
    assert_false(cv__adaptive_is_small(d));
    assert_true(cv__adaptive_is_small(c));

    expect_model(&w, a, &ma);
    expect_model(&w, b, &mb);
    expect_model(&w, c, &mc);
    expect_model(&w, d, &md);
    B->release(a);
    B->release(b);
    B->release(c);
    B->release(d);
    world_free(&w);
}

/* Random sets, deletes, shares and releases over a few held maps, sized
 * to cross K and K / 2 often: every held map matches its model after
 * every step. Sets outnumber deletes while small, the reverse while
 * large, so sizes wander across both thresholds. */
static unsigned set_pct(int len)
{
    return len > KK ? 25 : 55;
}

static void form_ok(const cv_map *m, void *arg)
{
    (void)arg;
    size_t n = B->len(m);
    if (n > (size_t)KK)
        assert_false(cv__adaptive_is_small(m));
    if (n <= (size_t)KK / 2)
        assert_true(cv__adaptive_is_small(m));
}

static void random_snapshots(int collide, uint32_t seed)
{
    world w;
    world_init(&w, collide);
    mm_random r = {.nheld = 6, .steps = tu_scale(20000, 2000), .seed = seed,
                   .set_pct = set_pct, .all_every = 7, .after = form_ok};
    mm_random_run(&w, &r);
    world_free(&w);
}

TEST(adaptive_random_snapshots_match_model)
{
    (void)state;
    random_snapshots(0, 12345u);
    random_snapshots(1, 777u);
}

/* ------------------------------------------------------------------------
 * Writes that need no memory
 * ------------------------------------------------------------------------ */

TEST(adaptive_writes_without_allocation)
{
    (void)state;
    world w;
    world_init(&w, 0);
    cv_map *m = NULL, *s;
    model md = {0};
    mm_fill(&w, &m, &md, 3);
    ASSERT_OK(B->share(m, &s));
    model ms = md;
    tu_alloc_fail_at(1, 1);
    set_ok(&w, &s, &ms, 0, &w.vals[0]); /* same value, shared */
    del_ok(&w, &s, &ms, 9);             /* absent */
    tu_alloc_fail_at(0, 0);
    set_ok(&w, &m, &md, 3, &w.vals[3]); /* m's own copy, room for 4 */
    tu_alloc_fail_at(1, 1);
    set_ok(&w, &m, &md, 3, &w.vals[4]); /* in place */
    del_ok(&w, &m, &md, 0);             /* in place */
    set_ok(&w, &m, &md, 0, &w.vals[5]); /* into the hole: no growth */
    tu_alloc_fail_at(0, 0);
    expect_model(&w, m, &md);
    expect_model(&w, s, &ms);
    B->release(s);

    /* large: same value, and an absent key at the demotion edge */
    for (int k = 4; mm_len(&w, &md) <= KK; k++)
        set_ok(&w, &m, &md, k, &w.vals[k]);
    assert_false(cv__adaptive_is_small(m));
    for (int k = 0; mm_len(&w, &md) > KK / 2 + 1; k++)
        del_ok(&w, &m, &md, k);
    assert_false(cv__adaptive_is_small(m));
    ASSERT_OK(B->share(m, &s));
    ms = md;
    tu_alloc_fail_at(1, 1);
    for (int k = 0; k < NK; k++) {
        if (md.has[k])
            set_ok(&w, &s, &ms, k, md.val[k]);
        else
            del_ok(&w, &s, &ms, k);
    }
    tu_alloc_fail_at(0, 0);
    assert_ptr_equal(m, s);
    expect_model(&w, s, &ms);
    B->release(s);

    B->release(m);
    world_free(&w);
}

/* ------------------------------------------------------------------------
 * OOM on every allocating path
 * ------------------------------------------------------------------------ */

/* held[0] is the map under test; held[1..] are other holders. The cases
 * of every backend are in test_maps.c (map_oom_every_write); these are the
 * paths of the two forms and the changes between them. */
enum { NHELD = 3 };

/* Two pairs in a block with room for two: the next new key grows it. */
static void build_full_block(const world *w, cv_map **held, model *md)
{
    mm_fill(w, &held[0], md, 2);
}

static void build_small(const world *w, cv_map **held, model *md)
{
    mm_fill(w, &held[0], md, 3);
}

static void build_k(const world *w, cv_map **held, model *md)
{
    mm_fill(w, &held[0], md, KK);
    assert_true(cv__adaptive_is_small(held[0]));
}

static void build_large(const world *w, cv_map **held, model *md)
{
    mm_fill(w, &held[0], md, KK + 3);
    assert_false(cv__adaptive_is_small(held[0]));
}

/* Large with K / 2 + 1 pairs: the next delete of a present key demotes. */
static void build_edge(const world *w, cv_map **held, model *md)
{
    mm_fill(w, &held[0], md, KK + 1);
    for (int k = KK; mm_len(w, md) > KK / 2 + 1; k--)
        del_ok(w, &held[0], md, k);
    assert_false(cv__adaptive_is_small(held[0]));
}

/* The writes: keys[NK - 1] is never among the built pairs. */
#define SET_NEW MM_SET(NK - 1, NV - 1)
#define SET_EXISTING MM_SET(0, NV - 2)
#define DEL MM_DEL(1)

static const char *is_small(const cv_map *m)
{
    return cv__adaptive_is_small(m) ? NULL : "large, want small";
}

static const char *is_large(const cv_map *m)
{
    return cv__adaptive_is_small(m) ? "small, want large" : NULL;
}

static const mm_oom_case oom_cases[] = {
    {"first pair", mm_build_empty, 0, SET_NEW, 0, is_small},
    {"small growth", build_full_block, 0, SET_NEW, 0, is_small},
    {"small copy (set new)", build_small, 1, SET_NEW, 0, is_small},
    {"small copy (set existing)", build_small, 1, SET_EXISTING, 0,
     is_small},
    {"small copy (del)", build_small, 1, DEL, 1, is_small},
    {"promotion", build_k, 0, SET_NEW, 0, is_large},
    {"promotion of a shared map", build_k, 1, SET_NEW, 0, is_large},
    {"large set new", build_large, 0, SET_NEW, 0, is_large},
    {"large set, shared", build_large, 1, SET_EXISTING, 0, is_large},
    {"large del", build_large, 0, DEL, 1, is_large},
    {"large del, shared", build_large, 1, DEL, 1, is_large},
    {"demotion", build_edge, 0, DEL, 1, is_small},
    {"demotion of a shared map", build_edge, 1, DEL, 1, is_small},
};

TEST(adaptive_oom_every_allocating_path)
{
    (void)state;
    mm_oom_run(B, NK, mm_hash_spread, oom_cases,
               sizeof oom_cases / sizeof oom_cases[0], NHELD, 1);
}
