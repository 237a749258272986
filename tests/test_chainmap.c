/*
 * test_chainmap.c -- the chainmap backend's internals, through map.h:
 * isolation at every depth against a model, tombstones, compaction at the
 * bound (and what it releases), a long chain of copies, and an OOM loop on
 * every allocating path.
 */
#include <string.h>

#include "chainmap.h"
#include "map.h"

#include "testutil.h"

#define B (&cv__backend_chainmap)
#define D CV_CHAINMAP_MAX_DEPTH

/* ------------------------------------------------------------------------
 * Keys, values, and a model of one map
 * ------------------------------------------------------------------------ */

#define NK 12 /* keys in play: few, so writes collide and shadow */

typedef struct model {
    int has[NK];
    void *val[NK];
} model;

typedef struct world {
    cv_var *keys[NK];
    tu_val vals[64];
} world;

/* Hooked keys (R14 balance is checked after each test); with `collide`
 * the first half share hash 0, so tiny tables fill and probe runs wrap. */
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
        uint32_t h = (collide && i < NK / 2) ? 0u : (uint32_t)i * 2654435761u;
        ASSERT_OK(cv__var_new_hashed(&o, h, &w->keys[i]));
    }
    for (int i = 0; i < 64; i++)
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

/* m maps exactly what md says: find, len, foreach (each pair once), check. */
static void expect_model(const world *w, const cv_map *m, const model *md)
{
    const char *err = B->check(m);
    if (err != NULL)
        fail_msg("check: %s", err);
    size_t n = 0;
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
            n++;
        }
    }
    assert_int_equal(B->len(m), n);
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
 * Isolation (R9) at every depth
 * ------------------------------------------------------------------------ */

/* Share, then write both sides, at every depth up to and past the bound:
 * neither side ever sees the other's write, nor a write made after. */
TEST(chainmap_isolation_both_ways_at_every_depth)
{
    (void)state;
    world w;
    world_init(&w, 0);
    cv_map *a = NULL;
    model ma = {0};
    set_ok(&w, &a, &ma, 0, &w.vals[0]);
    set_ok(&w, &a, &ma, 1, &w.vals[1]);
    for (int step = 0; step < 3 * D + 3; step++) {
        cv_map *b;
        ASSERT_OK(B->share(a, &b));
        model mb = ma;
        int ka = step % NK, kb = (step + 5) % NK;
        /* a writes after the copy: b must not see it, and vice versa */
        set_ok(&w, &a, &ma, ka, &w.vals[10 + step % 40]);
        expect_model(&w, b, &mb);
        set_ok(&w, &b, &mb, kb, &w.vals[11 + step % 40]);
        del_ok(&w, &b, &mb, 0);
        expect_model(&w, a, &ma);
        expect_model(&w, b, &mb);
        assert_true(cv__chainmap_depth(a) <= D);
        assert_true(cv__chainmap_depth(b) <= D);
        /* keep going down a's line half the time, b's the other half */
        if (step % 2) {
            B->release(a);
            a = b;
            ma = mb;
        } else {
            B->release(b);
        }
        if (!ma.has[0])
            set_ok(&w, &a, &ma, 0, &w.vals[0]);
    }
    B->release(a);
    world_free(&w);
}

/* Many maps, random share/set/del/release, each checked against its own
 * model after every step: every map is a snapshot of its own history. */
static void random_against_model(int collide, uint32_t seed)
{
    world w;
    world_init(&w, collide);
    enum { NM = 8 };
    cv_map *m[NM] = {0};
    model md[NM];
    memset(md, 0, sizeof md);
    int live[NM] = {1, 0, 0, 0, 0, 0, 0, 0};
    unsigned max_depth = 0;
    long steps = tu_scale(20000, 1500);
    for (long t = 0; t < steps; t++) {
        int i = (int)(rnd(&seed) % NM);
        if (!live[i])
            continue;
        uint32_t op = rnd(&seed) % 10;
        int k = (int)(rnd(&seed) % NK);
        if (op < 5) {
            set_ok(&w, &m[i], &md[i], k, &w.vals[rnd(&seed) % 64]);
        } else if (op < 7) {
            del_ok(&w, &m[i], &md[i], k);
        } else if (op < 9) {
            int j = (int)(rnd(&seed) % NM);
            if (j == i)
                continue;
            if (live[j])
                B->release(m[j]);
            ASSERT_OK(B->share(m[i], &m[j]));
            md[j] = md[i];
            live[j] = 1;
        } else if (i != 0) {
            B->release(m[i]);
            m[i] = NULL;
            live[i] = 0;
        }
        for (int j = 0; j < NM; j++) {
            if (!live[j])
                continue;
            expect_model(&w, m[j], &md[j]);
            unsigned d = cv__chainmap_depth(m[j]);
            assert_true(d <= D);
            if (d > max_depth)
                max_depth = d;
        }
    }
    if (!tu_quick())
        assert_int_equal(max_depth, D); /* reached, never passed */
    for (int j = 0; j < NM; j++)
        if (live[j])
            B->release(m[j]);
    world_free(&w);
}

TEST(chainmap_random_snapshots_match_model)
{
    (void)state;
    random_against_model(0, 1);
    random_against_model(0, 99);
}

TEST(chainmap_random_snapshots_colliding_hashes)
{
    (void)state;
    random_against_model(1, 7);
}

/* ------------------------------------------------------------------------
 * Tombstones
 * ------------------------------------------------------------------------ */

TEST(chainmap_tombstones_hide_lower_layers)
{
    (void)state;
    world w;
    world_init(&w, 0);
    cv_map *a = NULL;
    model ma = {0};
    set_ok(&w, &a, &ma, 0, &w.vals[0]);
    set_ok(&w, &a, &ma, 1, &w.vals[1]);
    set_ok(&w, &a, &ma, 2, &w.vals[2]);
    cv_map *b;
    ASSERT_OK(B->share(a, &b));
    model mb = ma;

    del_ok(&w, &b, &mb, 0); /* a tombstone in a new layer over a's */
    assert_int_equal(cv__chainmap_depth(b), 1);
    expect_model(&w, b, &mb);
    expect_model(&w, a, &ma);
    ASSERT_ERR(B->del(&b, w.keys[0]), 0); /* hidden: nothing to delete */
    del_ok(&w, &b, &mb, 1);               /* in place, second tombstone */
    assert_int_equal(B->len(b), 1);
    set_ok(&w, &b, &mb, 0, &w.vals[9]);   /* re-set over the tombstone */
    expect_model(&w, b, &mb);
    set_ok(&w, &b, &mb, 5, &w.vals[5]);   /* new in b's layer only */
    del_ok(&w, &b, &mb, 5);               /* not below: slot dropped */
    expect_model(&w, b, &mb);
    expect_model(&w, a, &ma);

    /* foreach stops at the first non-zero return and returns it */
    walk wk = {.w = &w, .stop_after = 1};
    assert_int_equal(B->foreach(b, walk_cb, &wk), 77);
    assert_int_equal(wk.calls, 1);

    /* deleting every visible key gives the empty map, NULL, though the
     * layers below still hold pairs for a */
    del_ok(&w, &b, &mb, 0);
    del_ok(&w, &b, &mb, 2);
    assert_null(b);
    assert_int_equal(B->len(b), 0);
    expect_model(&w, a, &ma);
    B->release(a);
    world_free(&w);
}

/* An unshared top left with no slot is popped: the map is its parent. */
TEST(chainmap_empty_top_layer_is_popped)
{
    (void)state;
    world w;
    world_init(&w, 0);
    cv_map *a = NULL, *b;
    model ma = {0};
    set_ok(&w, &a, &ma, 0, &w.vals[0]);
    ASSERT_OK(B->share(a, &b));
    model mb = ma;
    set_ok(&w, &b, &mb, 1, &w.vals[1]);
    assert_int_equal(cv__chainmap_depth(b), 1);
    del_ok(&w, &b, &mb, 1);
    assert_ptr_equal(b, a);
    assert_int_equal(cv__chainmap_depth(b), 0);
    expect_model(&w, b, &mb);
    B->release(b);
    B->release(a);
    world_free(&w);
}

/* Once the snapshot that froze a layer is gone, the owner's next in-place
 * write absorbs it: the values it alone shadowed are released then, without
 * waiting for a compaction; tombstones over depth 0 vanish. */
TEST(chainmap_private_parent_absorbed_on_next_write)
{
    (void)state;
    cv_var *k0 = tu_var_hooked("k0", NULL), *k1 = tu_var_hooked("k1", NULL);
    cv_var *k2 = tu_var_hooked("k2", NULL);
    tu_val v[4];
    memset(v, 0, sizeof v);
    cv_map *a = NULL, *s;
    ASSERT_OK(B->set(&a, k0, &v[0]));
    ASSERT_OK(B->set(&a, k1, &v[1]));
    ASSERT_OK(B->share(a, &s));
    ASSERT_OK(B->set(&a, k0, &v[2]));      /* pushes over the frozen L0 */
    assert_int_equal(B->del(&a, k1), 1);   /* tombstone in a's layer */
    assert_int_equal(cv__chainmap_depth(a), 1);
    B->release(s);                         /* L0 is a's alone now */
    assert_int_equal(v[0].refs, 1);        /* shadowed, still held */
    ASSERT_OK(B->set(&a, k2, &v[3]));      /* in place, then absorbs L0 */
    assert_int_equal(cv__chainmap_depth(a), 0);
    assert_int_equal(v[0].refs, 0);
    assert_int_equal(v[1].refs, 0);
    assert_null(B->check(a));
    assert_int_equal(B->len(a), 2);
    void *out;
    assert_int_equal(B->find(a, k1, &out), 0);
    assert_int_equal(B->find(a, k0, &out), 1);
    assert_ptr_equal(out, &v[2]);
    B->release(a);
    for (int i = 0; i < 4; i++)
        assert_int_equal(v[i].refs, 0);
    cv_var_release(k0);
    cv_var_release(k1);
    cv_var_release(k2);
}

/* Regression: a delete that pops an emptied top leaves a top others may
 * share; absorbing its private parent then would rewrite a layer that
 * another map reads. */
TEST(chainmap_regress_pop_leaves_shared_top_unabsorbed)
{
    (void)state;
    world w;
    world_init(&w, 0);
    cv_map *p = NULL, *q, *s;
    model mq = {0};
    set_ok(&w, &p, &mq, 0, &w.vals[0]);
    ASSERT_OK(B->share(p, &q));
    set_ok(&w, &q, &mq, 1, &w.vals[1]); /* L0 over P */
    B->release(p);                      /* P is L0's alone */
    ASSERT_OK(B->share(q, &s));         /* L0 shared by q and s */
    model ms = mq;
    set_ok(&w, &q, &mq, 2, &w.vals[2]); /* L1 over L0 */
    del_ok(&w, &q, &mq, 2);             /* L1 empty: popped, q is L0 */
    assert_ptr_equal(q, s);
    expect_model(&w, s, &ms);
    expect_model(&w, q, &mq);
    B->release(q);
    B->release(s);
    world_free(&w);
}

/* ------------------------------------------------------------------------
 * Compaction
 * ------------------------------------------------------------------------ */

/* Every write over a shared top pushes a layer until depth D; the next one
 * flattens to depth 0, with the same contents, tombstones gone. */
TEST(chainmap_compaction_exactly_at_the_bound)
{
    (void)state;
    world w;
    world_init(&w, 0);
    cv_map *m = NULL;
    model md = {0};
    for (int k = 0; k < NK; k++)
        set_ok(&w, &m, &md, k, &w.vals[k]);
    cv_map *held[3 * (D + 1)];
    int nheld = 0;
    for (int round = 0; round < 3; round++) {
        for (int d = 1; d <= D + 1; d++) {
            ASSERT_OK(B->share(m, &held[nheld++])); /* freezes the top */
            int k = (d + 4 * round) % NK;
            if (d % 3 == 0 && md.has[k])
                del_ok(&w, &m, &md, k);
            else
                set_ok(&w, &m, &md, k, &w.vals[20 + 10 * round + d]);
            assert_int_equal(cv__chainmap_depth(m), d <= D ? d : 0);
            expect_model(&w, m, &md);
        }
    }
    for (int i = 0; i < nheld; i++) {
        assert_null(B->check(held[i]));
        B->release(held[i]);
    }
    B->release(m);
    world_free(&w);
}

/* A shadowed value lives as long as a layer holds it, and the flatten at
 * the bound lets it go once nothing else does. */
TEST(chainmap_compaction_releases_shadowed_values)
{
    (void)state;
    cv_var *v = tu_var_hooked("v", NULL);
    tu_val vals[D + 2];
    memset(vals, 0, sizeof vals);
    cv_map *m = NULL;
    ASSERT_OK(B->set(&m, v, &vals[0]));
    for (int i = 1; i <= D; i++) {
        cv_map *snap;
        ASSERT_OK(B->share(m, &snap));
        ASSERT_OK(B->set(&m, v, &vals[i])); /* pushes over the frozen top */
        B->release(snap); /* only m's chain holds the old layer now */
        assert_int_equal(cv__chainmap_depth(m), i);
        assert_int_equal(vals[i - 1].refs, 1); /* shadowed, still held */
    }
    cv_map *snap;
    ASSERT_OK(B->share(m, &snap));
    ASSERT_OK(B->set(&m, v, &vals[D + 1])); /* flattens */
    assert_int_equal(cv__chainmap_depth(m), 0);
    /* snap still holds the old chain: nothing shadowed is released yet */
    assert_int_equal(vals[0].refs, 1);
    B->release(snap);
    for (int i = 0; i <= D; i++)
        assert_int_equal(vals[i].refs, 0);
    assert_int_equal(vals[D + 1].refs, 1);
    assert_int_equal(B->len(m), 1);
    B->release(m);
    assert_int_equal(vals[D + 1].refs, 0);
    cv_var_release(v);
}

/* A chain of 10,000 copies, each written once: depth never passes D (so a
 * find is at most D + 1 probes) and every copy still reads its snapshot. */
TEST(chainmap_long_chain_of_copies_stays_bounded)
{
    (void)state;
    world w;
    world_init(&w, 0);
    enum { KEEP = 16 };
    cv_map *ring[KEEP] = {0};
    cv_map *m = NULL;
    model md = {0};
    long n = tu_scale(10000, 1000);
    for (long i = 0; i < n; i++) {
        cv_map *c;
        ASSERT_OK(B->share(m, &c));
        if (i % 7 == 6)
            del_ok(&w, &c, &md, (int)(i % NK));
        else
            set_ok(&w, &c, &md, (int)(i % NK), &w.vals[i % 64]);
        assert_true(cv__chainmap_depth(c) <= D);
        /* keep the last KEEP copies alive, so their layers stay frozen */
        int slot = (int)(i % KEEP);
        B->release(ring[slot]);
        ring[slot] = m;
        m = c;
        if (i % 97 == 0)
            expect_model(&w, m, &md);
    }
    expect_model(&w, m, &md);
    for (int i = 0; i < KEEP; i++) {
        assert_null(B->check(ring[i]));
        B->release(ring[i]);
    }
    B->release(m);
    world_free(&w);
}

/* ------------------------------------------------------------------------
 * OOM on every allocating path
 * ------------------------------------------------------------------------ */

/* One scenario: build() makes the maps, op() makes the one call under
 * test on held[0]. */
typedef struct oom_case {
    const char *name;
    void (*build)(const world *w, cv_map **held, model *md);
    int (*op)(const world *w, cv_map **m, model *md); /* applies to model */
    int want;                                         /* op's success */
} oom_case;

/* held[0] is the map under test; held[1..3] are other holders. */
enum { NHELD = 4 };

static void build_empty(const world *w, cv_map **held, model *md)
{
    (void)w;
    (void)held;
    (void)md;
}

static void build_one(const world *w, cv_map **held, model *md)
{
    set_ok(w, &held[0], md, 0, (void *)&w->vals[0]);
}

/* Unshared top of capacity 1 holding one pair over a frozen parent. */
static void build_small_top(const world *w, cv_map **held, model *md)
{
    set_ok(w, &held[0], md, 0, (void *)&w->vals[0]);
    set_ok(w, &held[0], md, 1, (void *)&w->vals[1]);
    ASSERT_OK(B->share(held[0], &held[1]));
    set_ok(w, &held[0], md, 2, (void *)&w->vals[2]);
    assert_int_equal(cv__chainmap_depth(held[0]), 1);
}

/* A shared top at depth 0 (the next write pushes a layer). */
static void build_shared(const world *w, cv_map **held, model *md)
{
    for (int k = 0; k < 4; k++)
        set_ok(w, &held[0], md, k, (void *)&w->vals[k]);
    ASSERT_OK(B->share(held[0], &held[1]));
}

/* A shared top at depth D (the next write flattens). */
static void build_deep(const world *w, cv_map **held, model *md)
{
    for (int k = 0; k < 6; k++)
        set_ok(w, &held[0], md, k, (void *)&w->vals[k]);
    for (int d = 1; d <= D; d++) {
        cv_map *s;
        ASSERT_OK(B->share(held[0], &s));
        if (d == 3)
            del_ok(w, &held[0], md, 1);
        else
            set_ok(w, &held[0], md, d % 6, (void *)&w->vals[10 + d]);
        B->release(s);
    }
    ASSERT_OK(B->share(held[0], &held[1]));
    assert_int_equal(cv__chainmap_depth(held[0]), D);
}

static int op_set_new(const world *w, cv_map **m, model *md)
{
    int r = B->set(m, w->keys[7], (void *)&w->vals[7]);
    if (r == 0) {
        md->has[7] = 1;
        md->val[7] = (void *)&w->vals[7];
    }
    return r;
}

static int op_set_existing(const world *w, cv_map **m, model *md)
{
    int r = B->set(m, w->keys[0], (void *)&w->vals[33]);
    if (r == 0)
        md->val[0] = (void *)&w->vals[33];
    return r;
}

static int op_del_lower(const world *w, cv_map **m, model *md)
{
    int r = B->del(m, w->keys[0]);
    if (r == 1) {
        md->has[0] = 0;
        md->val[0] = NULL;
    }
    return r;
}

static const oom_case oom_cases[] = {
    {.name = "first layer", .build = build_empty, .op = op_set_new, .want = 0},
    {.name = "growth of a one-slot top", .build = build_one,
     .op = op_set_new, .want = 0},
    {.name = "growth of a top over a parent", .build = build_small_top,
     .op = op_set_new, .want = 0},
    {.name = "tombstone grows the top", .build = build_small_top,
     .op = op_del_lower, .want = 1},
    {.name = "push a layer (set)", .build = build_shared,
     .op = op_set_existing, .want = 0},
    {.name = "push a layer (tombstone)", .build = build_shared,
     .op = op_del_lower, .want = 1},
    {.name = "flatten (set new)", .build = build_deep, .op = op_set_new,
     .want = 0},
    {.name = "flatten (set existing)", .build = build_deep,
     .op = op_set_existing, .want = 0},
    {.name = "flatten (tombstone)", .build = build_deep, .op = op_del_lower,
     .want = 1},
};

TEST(chainmap_oom_every_allocating_path)
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
                long live = tu_alloc_live();
                long hooks = tu_hook_balance();
                tu_alloc_fail_at(k, forever);
                int r = oc->op(&w, &held[0], &md);
                tu_alloc_fail_at(0, 0);
                if (r == CV_ENOMEM) {
                    failures_seen++;
                    /* unchanged: same pointer, contents, blocks, retains */
                    assert_ptr_equal(held[0], before);
                    assert_int_equal(tu_alloc_live(), live);
                    assert_int_equal(tu_hook_balance(), hooks);
                } else {
                    if (r != oc->want)
                        fail_msg("%s: got %d", oc->name, r);
                }
                expect_model(&w, held[0], &md);
                for (int i = 1; i < NHELD; i++)
                    expect_model(&w, held[i], &others[i]);
                for (int i = 0; i < NHELD; i++)
                    B->release(held[i]);
                if (r != CV_ENOMEM)
                    break;
                assert_true(k < 100);
            }
            /* every case here allocates: the loop saw it fail first */
            if (failures_seen == 0)
                fail_msg("%s: no allocation failed", oc->name);
        }
    }
    world_free(&w);
}

/* Writes that need no memory never fail: same value, in-place overwrite,
 * a delete in place, and a delete that empties the map. */
TEST(chainmap_writes_without_allocation)
{
    (void)state;
    world w;
    world_init(&w, 0);
    cv_map *m = NULL, *s;
    model md = {0};
    set_ok(&w, &m, &md, 0, &w.vals[0]);
    set_ok(&w, &m, &md, 1, &w.vals[1]);
    ASSERT_OK(B->share(m, &s));
    model ms = md;
    tu_alloc_fail_at(1, 1);
    set_ok(&w, &s, &ms, 0, &w.vals[0]); /* same value, shared: no push */
    set_ok(&w, &m, &md, 0, &w.vals[0]);
    del_ok(&w, &s, &ms, 9);             /* absent */
    tu_alloc_fail_at(0, 0);
    set_ok(&w, &m, &md, 2, &w.vals[2]); /* pushes: m's own top now */
    tu_alloc_fail_at(1, 1);
    set_ok(&w, &m, &md, 2, &w.vals[3]); /* in place */
    del_ok(&w, &m, &md, 2);             /* in place, pops the empty top */
    tu_alloc_fail_at(0, 0);
    assert_ptr_equal(m, s);
    expect_model(&w, m, &md);
    expect_model(&w, s, &ms);
    /* a delete that leaves nothing visible needs no tombstone layer */
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
    B->release(s);
    B->release(m);
    world_free(&w);
}
