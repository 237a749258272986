/*
 * test_adaptive.c -- the adaptive backend's internals, through map.h:
 * promotion exactly above K and demotion at K / 2 (with the hysteresis
 * between them), isolation of snapshots taken on both sides of either
 * change, random histories against a model (with and without colliding
 * hashes), and an OOM loop on every allocating path.
 */
#include <string.h>

#include "adaptive.h"
#include "internal.h"
#include "map.h"
#include "registry.h"

#include "testutil.h"

#define B (&cv__backend_adaptive)
#define KK ((int)CV_ADAPTIVE_MAX)

/* ------------------------------------------------------------------------
 * Keys, values, and a model of one map
 * ------------------------------------------------------------------------ */

#define NK (2 * CV_ADAPTIVE_MAX + 4) /* enough to cross K both ways */
#define NV 64

typedef struct model {
    int has[NK];
    void *val[NK];
} model;

typedef struct world {
    cv_var *keys[NK];
    tu_val vals[NV];
} world;

/* Hooked keys (R14 balance is checked after each test); with `collide`
 * every key has hash 0, so the large form is one HAMT collision node. */
static void world_init(world *w, int collide)
{
    memset(w, 0, sizeof *w);
    for (int i = 0; i < NK; i++) {
        char name[16];
        snprintf(name, sizeof name, "k%d", i);
        cv_var_opts o = {
            .name = name,
            .retain = tu_hook_retain,
            .release = tu_hook_release,
        };
        uint32_t h = collide ? 0u : (uint32_t)(i + 1) * 2654435761u;
        ASSERT_OK(cv__var_new_hashed(&o, h, &w->keys[i]));
    }
    for (int i = 0; i < NV; i++)
        w->vals[i].tag = i;
}

static void world_free(world *w)
{
    for (int i = 0; i < NK; i++)
        cv_var_release(w->keys[i]);
}

static int key_index(const world *w, const cv_var *k)
{
    for (int i = 0; i < NK; i++)
        if (w->keys[i] == k)
            return i;
    return -1;
}

typedef struct walk {
    const world *w;
    int seen[NK];
    void *val[NK];
    int stop_after; /* 0: never stop */
    int calls;
} walk;

static int walk_cb(cv_var *k, void *v, void *arg)
{
    walk *wk = arg;
    int i = key_index(wk->w, k);
    assert_true(i >= 0);
    wk->seen[i]++;
    wk->val[i] = v;
    wk->calls++;
    return wk->stop_after && wk->calls == wk->stop_after ? 77 : 0;
}

static int model_len(const model *md)
{
    int n = 0;
    for (int i = 0; i < NK; i++)
        n += md->has[i];
    return n;
}

/* m maps exactly what md says: find, len, foreach (each pair once),
 * check, and the form the thresholds allow for its size. */
static void expect_model(const world *w, const cv_map *m, const model *md)
{
    const char *err = B->check(m);
    if (err != NULL)
        fail_msg("check: %s", err);
    walk wk = {.w = w};
    assert_int_equal(B->foreach(m, walk_cb, &wk), 0);
    for (int i = 0; i < NK; i++) {
        void *v = NULL;
        int r = B->find(m, w->keys[i], &v);
        if (r != md->has[i])
            fail_msg("key %d: find %d, model %d", i, r, md->has[i]);
        assert_int_equal(wk.seen[i], md->has[i]);
        if (md->has[i]) {
            assert_ptr_equal(v, md->val[i]);
            assert_ptr_equal(wk.val[i], md->val[i]);
        }
    }
    int n = model_len(md);
    assert_int_equal(B->len(m), (size_t)n);
    assert_true(m != NULL || n == 0);
    if (n > KK)
        assert_false(cv__adaptive_is_small(m));
    if (n <= KK / 2)
        assert_true(cv__adaptive_is_small(m));
}

static void model_of(const world *w, const cv_map *m, model *md)
{
    memset(md, 0, sizeof *md);
    for (int i = 0; i < NK; i++)
        md->has[i] = B->find(m, w->keys[i], &md->val[i]);
}

static void set_ok(const world *w, cv_map **m, model *md, int k, void *v)
{
    ASSERT_OK(B->set(m, w->keys[k], v));
    md->has[k] = 1;
    md->val[k] = v;
}

static void del_ok(const world *w, cv_map **m, model *md, int k)
{
    ASSERT_ERR(B->del(m, w->keys[k]), md->has[k]);
    md->has[k] = 0;
    md->val[k] = NULL;
}

static uint32_t rnd(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
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
        while (model_len(&md) > KK / 2 + 1) {
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
        while (model_len(&md) < KK) {
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
        walk wk = {.w = &w, .stop_after = k / 2 + 1};
        assert_int_equal(B->foreach(m, walk_cb, &wk), 77);
        assert_int_equal(wk.calls, k / 2 + 1);
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
    for (int k = 0; k < KK; k++)
        set_ok(&w, &a, &ma, k, &w.vals[k]);

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
    for (int k = KK; model_len(&mc) > KK / 2; k--)
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
    for (int k = KK + 1; model_len(&md) <= KK; k++)
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
 * every step. */
static void random_snapshots(int collide, uint32_t seed)
{
    enum { NH = 6 };
    world w;
    world_init(&w, collide);
    cv_map *held[NH] = {0};
    model mods[NH];
    memset(mods, 0, sizeof mods);
    long steps = tu_scale(20000, 2000);
    uint32_t s = seed;
    for (long step = 0; step < steps; step++) {
        int h = (int)(rnd(&s) % NH);
        int k = (int)(rnd(&s) % NK);
        uint32_t op = rnd(&s) % 16;
        /* sets outnumber deletes while small, the reverse while large, so
         * sizes wander across both thresholds */
        int big = model_len(&mods[h]) > KK;
        if (op < (big ? 5u : 9u)) {
            set_ok(&w, &held[h], &mods[h], k, &w.vals[rnd(&s) % NV]);
        } else if (op < 14) {
            del_ok(&w, &held[h], &mods[h], k);
        } else if (op == 14) {
            int to = (int)(rnd(&s) % NH);
            if (to != h) {
                B->release(held[to]);
                ASSERT_OK(B->share(held[h], &held[to]));
                mods[to] = mods[h];
            }
        } else {
            B->release(held[h]);
            held[h] = NULL;
            memset(&mods[h], 0, sizeof mods[h]);
        }
        if (step % 7 == 0 || step + 1 == steps)
            for (int i = 0; i < NH; i++)
                expect_model(&w, held[i], &mods[i]);
        else
            expect_model(&w, held[h], &mods[h]);
    }
    for (int i = 0; i < NH; i++)
        B->release(held[i]);
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
    for (int k = 0; k < 3; k++)
        set_ok(&w, &m, &md, k, &w.vals[k]);
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
    for (int k = 4; model_len(&md) <= KK; k++)
        set_ok(&w, &m, &md, k, &w.vals[k]);
    assert_false(cv__adaptive_is_small(m));
    for (int k = 0; model_len(&md) > KK / 2 + 1; k++)
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

    /* a delete that empties a shared one-pair map needs no copy */
    cv_map *e = NULL, *e2;
    model me = {0};
    set_ok(&w, &e, &me, 4, &w.vals[4]);
    ASSERT_OK(B->share(e, &e2));
    model me2 = me;
    tu_alloc_fail_at(1, 1);
    del_ok(&w, &e2, &me2, 4);
    tu_alloc_fail_at(0, 0);
    assert_null(e2);
    expect_model(&w, e, &me);
    B->release(e);
    B->release(m);
    world_free(&w);
}

/* ------------------------------------------------------------------------
 * OOM on every allocating path
 * ------------------------------------------------------------------------ */

/* held[0] is the map under test; held[1..] are other holders. */
enum { NHELD = 3 };

typedef struct oom_case {
    const char *name;
    void (*build)(const world *w, cv_map **held, model *md);
    int (*op)(const world *w, cv_map **m, model *md);
    int want;      /* op's success */
    int small;     /* the form after success: 1 small, 0 large */
} oom_case;

static void fill(const world *w, cv_map **m, model *md, int n)
{
    for (int k = 0; k < n; k++)
        set_ok(w, m, md, k, (void *)&w->vals[k]);
}

static void build_empty(const world *w, cv_map **held, model *md)
{
    (void)w;
    (void)held;
    (void)md;
}

/* Two pairs in a block with room for two: the next new key grows it. */
static void build_full_block(const world *w, cv_map **held, model *md)
{
    fill(w, &held[0], md, 2);
}

static void build_small_shared(const world *w, cv_map **held, model *md)
{
    fill(w, &held[0], md, 3);
    ASSERT_OK(B->share(held[0], &held[1]));
}

static void build_k(const world *w, cv_map **held, model *md)
{
    fill(w, &held[0], md, KK);
    assert_true(cv__adaptive_is_small(held[0]));
}

static void build_k_shared(const world *w, cv_map **held, model *md)
{
    build_k(w, held, md);
    ASSERT_OK(B->share(held[0], &held[1]));
}

static void build_large(const world *w, cv_map **held, model *md)
{
    fill(w, &held[0], md, KK + 3);
    assert_false(cv__adaptive_is_small(held[0]));
}

static void build_large_shared(const world *w, cv_map **held, model *md)
{
    build_large(w, held, md);
    ASSERT_OK(B->share(held[0], &held[1]));
}

/* Large with K / 2 + 1 pairs: the next delete of a present key demotes. */
static void build_edge(const world *w, cv_map **held, model *md)
{
    fill(w, &held[0], md, KK + 1);
    for (int k = KK; model_len(md) > KK / 2 + 1; k--)
        del_ok(w, &held[0], md, k);
    assert_false(cv__adaptive_is_small(held[0]));
}

static void build_edge_shared(const world *w, cv_map **held, model *md)
{
    build_edge(w, held, md);
    ASSERT_OK(B->share(held[0], &held[1]));
}

/* keys[NK - 1] is never among the built pairs */
static int op_set_new(const world *w, cv_map **m, model *md)
{
    int r = B->set(m, w->keys[NK - 1], (void *)&w->vals[NV - 1]);
    if (r == 0) {
        md->has[NK - 1] = 1;
        md->val[NK - 1] = (void *)&w->vals[NV - 1];
    }
    return r;
}

static int op_set_existing(const world *w, cv_map **m, model *md)
{
    int r = B->set(m, w->keys[0], (void *)&w->vals[NV - 2]);
    if (r == 0)
        md->val[0] = (void *)&w->vals[NV - 2];
    return r;
}

static int op_del(const world *w, cv_map **m, model *md)
{
    int r = B->del(m, w->keys[1]);
    if (r == 1) {
        md->has[1] = 0;
        md->val[1] = NULL;
    }
    return r;
}

static const oom_case oom_cases[] = {
    {.name = "first pair", .build = build_empty, .op = op_set_new,
     .want = 0, .small = 1},
    {.name = "small growth", .build = build_full_block, .op = op_set_new,
     .want = 0, .small = 1},
    {.name = "small copy (set new)", .build = build_small_shared,
     .op = op_set_new, .want = 0, .small = 1},
    {.name = "small copy (set existing)", .build = build_small_shared,
     .op = op_set_existing, .want = 0, .small = 1},
    {.name = "small copy (del)", .build = build_small_shared, .op = op_del,
     .want = 1, .small = 1},
    {.name = "promotion", .build = build_k, .op = op_set_new, .want = 0,
     .small = 0},
    {.name = "promotion of a shared map", .build = build_k_shared,
     .op = op_set_new, .want = 0, .small = 0},
    {.name = "large set new", .build = build_large, .op = op_set_new,
     .want = 0, .small = 0},
    {.name = "large set, shared", .build = build_large_shared,
     .op = op_set_existing, .want = 0, .small = 0},
    {.name = "large del", .build = build_large, .op = op_del, .want = 1,
     .small = 0},
    {.name = "large del, shared", .build = build_large_shared, .op = op_del,
     .want = 1, .small = 0},
    {.name = "demotion", .build = build_edge, .op = op_del, .want = 1,
     .small = 1},
    {.name = "demotion of a shared map", .build = build_edge_shared,
     .op = op_del, .want = 1, .small = 1},
};

TEST(adaptive_oom_every_allocating_path)
{
    (void)state;
    world w;
    world_init(&w, 0);
    for (size_t c = 0; c < sizeof oom_cases / sizeof oom_cases[0]; c++) {
        const oom_case *oc = &oom_cases[c];
        for (int forever = 0; forever <= 1; forever++) {
            int failures_seen = 0;
            for (long k = 1;; k++) {
                cv_map *held[NHELD] = {0};
                model md = {0}, others[NHELD];
                oc->build(&w, held, &md);
                for (int i = 1; i < NHELD; i++)
                    model_of(&w, held[i], &others[i]);
                cv_map *before = held[0];
                model md_before = md;
                long live = tu_alloc_live();
                long hooks = tu_hook_balance();
                tu_alloc_fail_at(k, forever);
                int r = oc->op(&w, &held[0], &md);
                tu_alloc_fail_at(0, 0);
                if (r == CV_ENOMEM) {
                    failures_seen++;
                    /* unchanged: same pointer, contents, blocks, retains */
                    assert_ptr_equal(held[0], before);
                    assert_memory_equal(&md, &md_before, sizeof md);
                    assert_int_equal(tu_alloc_live(), live);
                    assert_int_equal(tu_hook_balance(), hooks);
                } else {
                    if (r != oc->want)
                        fail_msg("%s: got %d", oc->name, r);
                    if (cv__adaptive_is_small(held[0]) != oc->small)
                        fail_msg("%s: wrong form after success", oc->name);
                }
                expect_model(&w, held[0], &md);
                for (int i = 1; i < NHELD; i++)
                    expect_model(&w, held[i], &others[i]);
                for (int i = 0; i < NHELD; i++)
                    B->release(held[i]);
                if (r != CV_ENOMEM)
                    break;
                assert_true(k < 200);
            }
            /* every case here allocates: the loop saw it fail first */
            if (failures_seen == 0)
                fail_msg("%s: no allocation failed", oc->name);
        }
    }
    world_free(&w);
}
