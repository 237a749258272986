/* SPDX-License-Identifier: MIT */
/*
 * test_chainmap.c -- the chainmap backend's internals, through map.h:
 * isolation at every depth against a model, tombstones, compaction at the
 * bound (and what it releases), a long chain of copies, merges in linear
 * histories over big maps (depth, snapshots, bytes retained, release of
 * shadowed values), and an OOM loop on every allocating path.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "chainmap.h"
#include "mapmodel.h"
#include "rcval.h"

#define B (&cv__backend_chainmap)
#define D CV_CHAINMAP_MAX_DEPTH

#define NK 12 /* keys in play: few, so writes collide and shadow */

typedef mm_world world;
typedef mm_model model;
#define set_ok mm_set
#define del_ok mm_del
#define expect_model mm_expect
#define expect_release mm_expect_release
#define world_free mm_world_free
#define rnd tu_rnd

/* Hooked keys (R14 balance is checked after each test); with `collide`
 * the first half share hash 0, so tiny tables fill and probe runs wrap. */
static void world_init(world *w, int collide)
{
    mm_world_init(w, B, NK, collide ? mm_hash_half : mm_hash_spread);
}

/* A test's start: the world (spread hashes) and *m holding its first n
 * keys, as *md says. */
static void start(world *w, cv_map **m, model *md, int n)
{
    world_init(w, 0);
    *m = NULL;
    memset(md, 0, sizeof *md);
    mm_fill(w, m, md, n);
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
    cv_map *a;
    model ma;
    start(&w, &a, &ma, 2);
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
 * model after every step: every map is a snapshot of its own history, and
 * no chain ever passes the depth bound (which the long runs reach). */
static void depth_ok(const cv_map *m, void *arg)
{
    unsigned *max_depth = arg;
    unsigned d = cv__chainmap_depth(m);
    assert_true(d <= D);
    if (d > *max_depth)
        *max_depth = d;
}

static void random_against_model(int collide, uint32_t seed)
{
    world w;
    world_init(&w, collide);
    unsigned max_depth = 0;
    mm_random r = {.nheld = 8, .steps = tu_scale(20000, 1500), .seed = seed,
                   .all_every = 1, .after = depth_ok, .arg = &max_depth};
    mm_random_run(&w, &r);
    if (!tu_quick())
        assert_int_equal(max_depth, D); /* reached, never passed */
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
    cv_map *a;
    model ma;
    start(&w, &a, &ma, 3);
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
    int calls;
    assert_int_equal(mm_walk(&w, b, 1, &calls), 77);
    assert_int_equal(calls, 1);

    /* deleting every visible key gives the empty map, NULL, though the
     * layers below still hold pairs for a */
    del_ok(&w, &b, &mb, 0);
    del_ok(&w, &b, &mb, 2);
    assert_null(b);
    assert_int_equal(B->len(b), 0);
    expect_release(&w, a, &ma);
    world_free(&w);
}

/* An unshared top left with no slot is popped: the map is its parent. */
TEST(chainmap_empty_top_layer_is_popped)
{
    (void)state;
    world w;
    cv_map *a, *b;
    model ma;
    start(&w, &a, &ma, 0);
    set_ok(&w, &a, &ma, 0, &w.vals[0]);
    ASSERT_OK(B->share(a, &b));
    model mb = ma;
    set_ok(&w, &b, &mb, 1, &w.vals[1]);
    assert_int_equal(cv__chainmap_depth(b), 1);
    del_ok(&w, &b, &mb, 1);
    assert_ptr_equal(b, a);
    assert_int_equal(cv__chainmap_depth(b), 0);
    expect_release(&w, b, &mb);
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
    cv_map *p, *q, *s;
    model mq;
    start(&w, &p, &mq, 0);
    set_ok(&w, &p, &mq, 0, &w.vals[0]);
    ASSERT_OK(B->share(p, &q));
    set_ok(&w, &q, &mq, 1, &w.vals[1]); /* L0 over P */
    B->release(p);                      /* P is L0's alone */
    ASSERT_OK(B->share(q, &s));         /* L0 shared by q and s */
    model ms = mq;
    set_ok(&w, &q, &mq, 2, &w.vals[2]); /* L1 over L0 */
    del_ok(&w, &q, &mq, 2);             /* L1 empty: popped, q is L0 */
    assert_ptr_equal(q, s);
    expect_release(&w, q, &mq);
    expect_release(&w, s, &ms);
    world_free(&w);
}

/* ------------------------------------------------------------------------
 * Compaction
 * ------------------------------------------------------------------------ */

/* Every write over a shared top pushes a layer until depth D; the next one
 * flattens to depth 0, with the same contents, tombstones gone (12 pairs:
 * no layer is big enough to merge onto). */
TEST(chainmap_compaction_exactly_at_the_bound)
{
    (void)state;
    world w;
    cv_map *m;
    model md;
    start(&w, &m, &md, NK);
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
    mm_release_all(B, held, nheld);
    B->release(m);
    world_free(&w);
}

/* A shadowed value lives as long as a layer holds it, and the flatten at
 * the bound (a one-pair map always flattens: the count of shared writes
 * reaches it) lets it go once nothing else does. */
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
    mm_release_all(B, ring, KEEP);
    B->release(m);
    world_free(&w);
}

/* ------------------------------------------------------------------------
 * Compaction in a linear history: merges of the small top layers
 * ------------------------------------------------------------------------ */

/* Many keys of one history, each a hooked var; values are tu_vals. */
typedef struct hist {
    int n;          /* keys */
    cv_var **keys;
    void **cur;     /* the model of the live map: NULL = absent */
} hist;

static void hist_init(hist *h, int n)
{
    h->n = n;
    h->keys = calloc((size_t)n, sizeof *h->keys);
    h->cur = calloc((size_t)n, sizeof *h->cur);
    assert_non_null(h->keys);
    assert_non_null(h->cur);
    for (int i = 0; i < n; i++)
        h->keys[i] = tu_var_hooked("h", NULL);
}

static void hist_free(hist *h)
{
    for (int i = 0; i < h->n; i++)
        cv_var_release(h->keys[i]);
    free(h->keys);
    free(h->cur);
}

/* m maps exactly what cur says (find on every key, and len). */
static void hist_expect(const hist *h, const cv_map *m, void *const *cur)
{
    size_t n = 0;
    for (int i = 0; i < h->n; i++) {
        void *v = NULL;
        int r = B->find(m, h->keys[i], &v);
        if (r != (cur[i] != NULL) || (r == 1 && v != cur[i]))
            fail_msg("key %d: find %d %p, model %p", i, r, v, cur[i]);
        n += cur[i] != NULL;
    }
    assert_int_equal(B->len(m), n);
}

/* A linear history at N = 1000: snapshot, then one write in the live map,
 * over and over, every snapshot kept. Sets of spread keys (the merged part
 * grows: merges onto the bottom and onto merged layers), sets of a few hot
 * keys (merges drop what they shadow), deletes of bottom keys and of keys
 * set in the history (tombstones in merged layers), re-sets over those.
 * Depth never passes D, and afterwards every snapshot reads exactly the
 * map it was taken from, replayed from the log of writes. */
TEST(chainmap_history_merges_keep_depth_and_snapshots)
{
    (void)state;
    enum { HN = 1000 };
    hist h;
    hist_init(&h, HN);
    long steps = tu_scale(2500, 260); /* past HN shared writes: a flatten */
    tu_val *vals = calloc((size_t)steps + 1, sizeof *vals);
    cv_map **snaps = calloc((size_t)steps, sizeof *snaps);
    int *lk = calloc((size_t)steps, sizeof *lk);      /* key of write i */
    void **lv = calloc((size_t)steps, sizeof *lv);    /* value; NULL: del */
    void **replay = calloc(HN, sizeof *replay);
    assert_true(vals && snaps && lk && lv && replay);
    cv_map *m = NULL;
    for (int k = 0; k < HN; k++) {
        ASSERT_OK(B->set(&m, h.keys[k], &vals[steps]));
        h.cur[k] = replay[k] = &vals[steps];
    }
    uint32_t seed = 12345;
    int merges = 0, merges_above_bottom = 0, flattens = 0;
    for (long i = 0; i < steps; i++) {
        ASSERT_OK(B->share(m, &snaps[i]));
        unsigned before = cv__chainmap_depth(m);
        uint32_t op = rnd(&seed) % 10;
        int k;
        if (op < 6)
            k = (int)((i * 37) % HN);     /* spread: period HN */
        else if (op < 8)
            k = (int)(rnd(&seed) % 4);    /* hot */
        else
            k = (int)(rnd(&seed) % 64);   /* deleted, sometimes re-set */
        if (op >= 8 && h.cur[k] != NULL) {
            assert_int_equal(B->del(&m, h.keys[k]), 1);
            h.cur[k] = lv[i] = NULL;
        } else {
            ASSERT_OK(B->set(&m, h.keys[k], &vals[i]));
            h.cur[k] = lv[i] = &vals[i];
        }
        lk[i] = k;
        unsigned after = cv__chainmap_depth(m);
        assert_true(after <= D);
        if (before == D) { /* a compaction: merge or flatten */
            merges += after > 0;
            merges_above_bottom += after > 1;
            flattens += after == 0;
        } else {
            assert_int_equal(after, before + 1); /* a push */
        }
        if (i % 50 == 0) {
            const char *err = B->check(m);
            if (err != NULL)
                fail_msg("step %ld: check: %s", i, err);
        }
    }
    hist_expect(&h, m, h.cur);
    assert_true(merges > 0);
    assert_true(merges_above_bottom > 0); /* tiers: a merge onto a merge */
    if (!tu_quick())
        assert_true(flattens > 0); /* shared writes reached the count */
    /* snaps[i] is the map before write i */
    for (long i = 0; i < steps; i++) {
        hist_expect(&h, snaps[i], replay);
        if (i % 50 == 0)
            assert_null(B->check(snaps[i]));
        replay[lk[i]] = lv[i];
    }
    for (long i = 0; i < steps; i++)
        B->release(snaps[i]);
    B->release(m);
    for (long i = 0; i <= steps; i++)
        assert_int_equal(vals[i].refs, 0);
    free(vals);
    free(snaps);
    free(lk);
    free(lv);
    free(replay);
    hist_free(&h);
}

/* Bytes the allocator holds for h snapshots of an n-pair map, per snapshot,
 * in the shape of bench/memory.c without the contexts: a history (each
 * snapshot the previous one plus a set) or siblings (each a copy of the
 * same map plus a set). */
static long snapshot_bytes(int n, int h, int fork)
{
    hist hs;
    hist_init(&hs, n);
    static tu_val two[2];
    cv_map *m = NULL;
    for (int k = 0; k < n; k++)
        ASSERT_OK(B->set(&m, hs.keys[k], &two[0]));
    cv_map **snaps = calloc((size_t)h, sizeof *snaps);
    assert_non_null(snaps);
    /* the thread's cached blocks back to the hook (cv_set_allocator drops
     * them): the bytes counted from here are the snapshots' */
    tu_alloc_install();
    long before = tu_alloc_live_bytes();
    for (int i = 0; i < h; i++) {
        ASSERT_OK(B->share(m, &snaps[i]));
        cv_map **w = fork ? &snaps[i] : &m;
        ASSERT_OK(B->set(w, hs.keys[i % n], &two[(i / n + 1) & 1]));
        assert_true(cv__chainmap_depth(*w) <= D);
    }
    long per = (tu_alloc_live_bytes() - before) / h;
    for (int i = 0; i < h; i++)
        B->release(snaps[i]);
    B->release(m);
    free(snaps);
    hist_free(&hs);
    return per;
}

/* What a history retains per snapshot does not grow with the map. A
 * snapshot costs its pushed one-slot layer (40 bytes: a 24-byte header and one slot) plus its share of
 * the merged layers: about 140 bytes measured at either size here (with
 * the ratio 2, a slot is copied into a merged layer a few times, each copy
 * 16 bytes at a load of at most 3/4). Flattening the whole chain at every
 * compaction instead costs a table of 2048 slots at n = 1000 per D + 1
 * snapshots: over 3,600 bytes each, and four times that at n = 4096; 400
 * is far from both. Siblings cost one pushed layer each, exactly. */
TEST(chainmap_history_bytes_per_snapshot_bounded)
{
    (void)state;
    int h = (int)tu_scale(600, 300);
    long small = snapshot_bytes(1000, h, 0);
    long big = snapshot_bytes(4096, h, 0);
    print_message("history: %ld bytes a snapshot at n = 1000, %ld at 4096\n",
                  small, big);
    if (small > 400 || big > 400)
        fail_msg("history: %ld and %ld bytes a snapshot, bound 400", small,
                 big);
    assert_int_equal(snapshot_bytes(1000, h, 1), 40);
}

/* A big layer just under the top at depth D (grown in place, its parents
 * held by snapshots) is a merge base for a small top, but the merged top
 * must not then be copied again and again as it grows by one slot a
 * write: a layer is merged only with at least half its size coming down
 * from above. Without that rule this history copies about 150 slots a
 * write (4,700 bytes a snapshot measured); with it, one flatten of the
 * 1,000 pairs, then merges as usual: 270. */
TEST(chainmap_history_over_a_big_layer_does_not_recopy_the_top)
{
    (void)state;
    enum { BIG = 1000, H = 300 };
    hist h;
    hist_init(&h, BIG + H + D);
    static tu_val one;
    cv_map *m = NULL, *held[D], *snaps[H];
    ASSERT_OK(B->set(&m, h.keys[0], &one));
    for (int d = 1; d < D; d++) { /* pushes to depth D - 1 */
        ASSERT_OK(B->share(m, &held[d - 1]));
        ASSERT_OK(B->set(&m, h.keys[d], &one));
    }
    for (int k = D; k < BIG; k++) /* in place: the top grows */
        ASSERT_OK(B->set(&m, h.keys[k], &one));
    assert_int_equal(cv__chainmap_depth(m), D - 1);
    long before = tu_alloc_live_bytes();
    for (int i = 0; i < H; i++) {
        ASSERT_OK(B->share(m, &snaps[i]));
        ASSERT_OK(B->set(&m, h.keys[BIG + i], &one));
        assert_true(cv__chainmap_depth(m) <= D);
    }
    long per = (tu_alloc_live_bytes() - before) / H;
    print_message("history over a big layer: %ld bytes a snapshot\n", per);
    if (per > 1000)
        fail_msg("%ld bytes a snapshot, bound 1000", per);
    assert_int_equal(B->len(m), BIG + H);
    assert_null(B->check(m));
    for (int i = 0; i < H; i++)
        B->release(snaps[i]);
    for (int d = 0; d < D - 1; d++)
        B->release(held[d]);
    B->release(m);
    assert_int_equal(one.refs, 0);
    hist_free(&h);
}

/* A value shadowed in a history is released once no snapshot holds it:
 * one shadowed inside the merged layers at the next compaction (within D
 * shared writes), one shadowed in the bottom layer -- which merges never
 * rewrite, and here never outgrow, since one key is written over and
 * over -- at the flatten that min(count, 65535) shared writes since the
 * last one force: within count + D + 1 shared writes, since a compaction
 * comes at least every D + 1. */
TEST(chainmap_history_releases_shadowed_values)
{
    (void)state;
    enum { HN = 100, WINDOW = 3 };
    hist h;
    hist_init(&h, HN);
    tu_val bottom[HN];
    memset(bottom, 0, sizeof bottom);
    cv_map *m = NULL;
    for (int k = 0; k < HN; k++)
        ASSERT_OK(B->set(&m, h.keys[k], &bottom[k]));
    long steps = HN + 3 * D;
    tu_val *vals = calloc((size_t)steps, sizeof *vals);
    cv_map *ring[WINDOW] = {0};
    assert_non_null(vals);
    long released_at = -1;
    for (long i = 0; i < steps; i++) {
        cv_map *snap;
        ASSERT_OK(B->share(m, &snap));
        if (i == 0)
            assert_int_equal(B->del(&m, h.keys[1]), 1); /* hides bottom[1] */
        else
            ASSERT_OK(B->set(&m, h.keys[0], &vals[i])); /* shadows */
        /* only the last WINDOW snapshots are kept */
        B->release(ring[i % WINDOW]);
        ring[i % WINDOW] = snap;
        assert_true(cv__chainmap_depth(m) <= D);
        /* held: the live value, the bottom's two, and at most one a layer
         * above the bottom (D of them) or a kept snapshot's */
        long live = 0;
        for (long j = 1; j <= i; j++)
            live += vals[j].refs > 0;
        if (live > D + WINDOW + 1)
            fail_msg("step %ld: %ld shadowed values still held", i, live);
        if (released_at < 0 && bottom[0].refs == 0) {
            assert_int_equal(bottom[1].refs, 0);
            released_at = i;
        }
    }
    print_message("bottom values released at shared write %ld\n",
                  released_at + 1);
    /* at shared write released_at + 1: the flatten comes within count +
     * D + 1 of them (the count is HN - 1 after the delete), and the last
     * snapshot of the chain before it goes WINDOW writes later */
    if (released_at < 0 || released_at + 1 > (HN - 1) + D + 1 + WINDOW)
        fail_msg("bottom value released at shared write %ld, bound %d",
                 released_at + 1, (HN - 1) + D + 1 + WINDOW);
    void *v;
    assert_int_equal(B->find(m, h.keys[1], &v), 0);
    assert_int_equal(B->find(m, h.keys[0], &v), 1);
    assert_ptr_equal(v, &vals[steps - 1]);
    assert_int_equal(B->len(m), HN - 1);
    for (int j = 0; j < WINDOW; j++)
        B->release(ring[j]);
    B->release(m);
    for (long j = 0; j < steps; j++)
        assert_int_equal(vals[j].refs, 0);
    for (int k = 0; k < HN; k++)
        assert_int_equal(bottom[k].refs, 0);
    free(vals);
    hist_free(&h);
}

/* A chain at depth D whose next shared write merges onto the bottom:
 * 40 pairs below (key MN is never in it), D one-slot layers above (key 0
 * set, key 1 deleted, key 2 set, then key 3 over and over), every layer
 * held by a snapshot. */
enum { MN = 40 };
_Static_assert(MN + 1 <= MM_MAXK && D + 2 <= MM_MAXHELD, "harness sizes");

/* held[0]: the chain; held[1 .. D]: a snapshot of each layer as it was
 * pushed; held[D + 1]: the top itself, so the next write is shared. */
static void build_mergeable(const world *w, cv_map **held, model *md)
{
    mm_fill(w, &held[0], md, MN);
    for (int d = 1; d <= D; d++) {
        ASSERT_OK(B->share(held[0], &held[d]));
        int k = d <= 3 ? d - 1 : 3;
        if (k == 1)
            mm_del(w, &held[0], md, k);
        else
            mm_set(w, &held[0], md, k, (void *)&w->vals[MN + d]);
    }
    ASSERT_OK(B->share(held[0], &held[D + 1]));
    assert_int_equal(cv__chainmap_depth(held[0]), D);
}

/* Once it succeeds the write is a merge (depth 1, over the bottom). */
static const char *merged(const cv_map *m)
{
    return cv__chainmap_depth(m) == 1 ? NULL : "not a merge onto the bottom";
}

/* OOM at every allocation of a merge (there is one: the merged layer,
 * counted first), for the writes a merge makes: a new key, an existing
 * one, a tombstone for a bottom key, re-setting the deleted key (its
 * tombstone is dropped). The harness checks that a failed call leaves the
 * chain, every snapshot, the blocks and the value retains as they were. */
static const mm_oom_case merge_cases[] = {
    {"merge: set new", build_mergeable, 0, MM_SET(MN, 60), 0, merged},
    {"merge: set existing", build_mergeable, 0, MM_SET(3, 61), 0, merged},
    {"merge: tombstone", build_mergeable, 0, MM_DEL(5), 1, merged},
    {"merge: re-set deleted", build_mergeable, 0, MM_SET(1, 63), 0, merged},
};

TEST(chainmap_oom_every_allocation_of_a_merge)
{
    (void)state;
    mm_oom_run(B, MN + 1, mm_hash_spread, merge_cases,
               sizeof merge_cases / sizeof merge_cases[0], D + 2, 1);
}

/* A merge that keeps nothing -- a tombstone for a key the bottom lacks,
 * over layers that hold nothing else -- makes no layer: the map becomes
 * the bottom itself, and the write cannot fail. */
TEST(chainmap_merge_keeping_nothing_is_the_base)
{
    (void)state;
    hist h;
    hist_init(&h, MN + 1);
    tu_val v[MN + D + 1];
    memset(v, 0, sizeof v);
    cv_map *m = NULL, *held[D];
    for (int k = 0; k < MN; k++)
        ASSERT_OK(B->set(&m, h.keys[k], &v[k]));
    cv_map *bottom = m;
    for (int d = 1; d <= D; d++) { /* key MN, which the bottom lacks */
        ASSERT_OK(B->share(m, &held[d - 1]));
        ASSERT_OK(B->set(&m, h.keys[MN], &v[MN + d]));
    }
    assert_int_equal(cv__chainmap_depth(m), D);
    cv_map *snap;
    ASSERT_OK(B->share(m, &snap));
    tu_alloc_fail_at(1, 1);
    assert_int_equal(B->del(&m, h.keys[MN]), 1);
    tu_alloc_fail_at(0, 0);
    assert_ptr_equal(m, bottom);
    assert_int_equal(cv__chainmap_depth(m), 0);
    assert_int_equal(B->len(m), MN);
    assert_null(B->check(m));
    void *out;
    assert_int_equal(B->find(snap, h.keys[MN], &out), 1);
    assert_ptr_equal(out, &v[MN + D]);
    B->release(snap);
    for (int d = 0; d < D; d++)
        B->release(held[d]);
    assert_int_equal(v[MN + D].refs, 0); /* only the chain held it */
    B->release(m);
    for (int i = 0; i < MN + D + 1; i++)
        assert_int_equal(v[i].refs, 0);
    hist_free(&h);
}

/* ------------------------------------------------------------------------
 * OOM on every allocating path
 * ------------------------------------------------------------------------ */

/* held[0] is the map under test; held[1..3] are other holders. The cases
 * of every backend are in test_maps.c (map_oom_every_write); these are the
 * paths of layers: growth over a parent, pushes and flattens. */
enum { NHELD = 4 };

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

/* Four pairs at depth 0 (shared, the next write pushes a layer). */
static void build_four(const world *w, cv_map **held, model *md)
{
    mm_fill(w, &held[0], md, 4);
}

/* A top at depth D (shared, the next write flattens). */
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
    assert_int_equal(cv__chainmap_depth(held[0]), D);
}

/* The writes: key 7 is never among the built pairs. */
#define SET_NEW MM_SET(7, 7)
#define SET_EXISTING MM_SET(0, 33)
#define DEL_LOWER MM_DEL(0)

static const mm_oom_case oom_cases[] = {
    {"first layer", mm_build_empty, 0, SET_NEW, 0, NULL},
    {"growth of a one-slot top", build_one, 0, SET_NEW, 0, NULL},
    {"growth of a top over a parent", build_small_top, 0, SET_NEW, 0,
     NULL},
    {"tombstone grows the top", build_small_top, 0, DEL_LOWER, 1, NULL},
    {"push a layer (set)", build_four, 1, SET_EXISTING, 0, NULL},
    {"push a layer (tombstone)", build_four, 1, DEL_LOWER, 1, NULL},
    {"flatten (set new)", build_deep, 1, SET_NEW, 0, NULL},
    {"flatten (set existing)", build_deep, 1, SET_EXISTING, 0, NULL},
    {"flatten (tombstone)", build_deep, 1, DEL_LOWER, 1, NULL},
};

TEST(chainmap_oom_every_allocating_path)
{
    (void)state;
    mm_oom_run(B, NK, mm_hash_spread, oom_cases,
               sizeof oom_cases / sizeof oom_cases[0], NHELD, 1);
}

/* Writes that need no memory never fail: same value, in-place overwrite,
 * a delete in place (every backend's: map_writes_without_allocation). */
TEST(chainmap_writes_without_allocation)
{
    (void)state;
    world w;
    cv_map *m, *s;
    model md;
    start(&w, &m, &md, 2);
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
    expect_release(&w, s, &ms);
    expect_release(&w, m, &md);
    world_free(&w);
}

/* ------------------------------------------------------------------------
 * The core's map block cache (core/context.c, "Map blocks"), through the
 * layer a write into a shared map pushes (40 bytes, one slot).
 * ------------------------------------------------------------------------ */

/* A fork of m written once: m shared, k set in the share, which is
 * returned (its pushed layer from the cache, or the hook). */
static cv_map *forked_map(cv_map *m, cv_var *k, void *v)
{
    cv_map *s;
    ASSERT_OK(B->share(m, &s));
    ASSERT_OK(B->set(&s, k, v)); /* pushes a layer over m */
    return s;
}

/* The write of a fork: the same, the share released (its pushed layer
 * freed: into the cache). */
static void fork_write_map(cv_map *m, cv_var *k, void *v)
{
    B->release(forked_map(m, k, v));
}

/* A one-pair map on a drained cache, with the thread's exit cleanup armed
 * (a block is cached only then). */
static cv_map *cache_start(hist *hs)
{
    static tu_val one;
    hist_init(hs, 2);
    assert_non_null(cv_context_current()); /* arms the exit cleanup */
    cv_thread_cleanup(); /* no context, nothing cached; still armed */
    cv_map *m = NULL;
    ASSERT_OK(B->set(&m, hs->keys[0], &one));
    return m;
}

static void cache_end(hist *hs, cv_map *m)
{
    B->release(m);
    hist_free(hs);
}

/* A layer freed by one write is the next write's: no call to the hook,
 * and the same block. */
TEST(chainmap_block_cache_reuses_a_freed_layer)
{
    (void)state;
    hist hs;
    cv_map *m = cache_start(&hs);
    static tu_val two;
    long calls = tu_alloc_calls();
    fork_write_map(m, hs.keys[1], &two);        /* from the hook, kept */
    assert_int_equal(tu_alloc_calls(), calls + 1);
    cv_map *s = forked_map(m, hs.keys[1], &two);
    assert_int_equal(tu_alloc_calls(), calls + 1); /* the cached layer */
    cv_map *first = s;
    B->release(s);
    for (int i = 0; i < 100; i++)
        fork_write_map(m, hs.keys[1], &two);
    assert_int_equal(tu_alloc_calls(), calls + 1);
    s = forked_map(m, hs.keys[1], &two);
    assert_ptr_equal(s, first);                 /* last in, first out */
    B->release(s);
    cache_end(&hs, m);
}

/* Cached blocks go back to the hook at cv_thread_cleanup; a class keeps
 * at most a few, the rest go back at once. */
TEST(chainmap_block_cache_drained_by_cleanup)
{
    (void)state;
    hist hs;
    cv_map *m = cache_start(&hs);
    static tu_val two;
    long live = tu_alloc_live();
    fork_write_map(m, hs.keys[1], &two);
    assert_int_equal(tu_alloc_live(), live + 1); /* cached, not freed */
    cv_map *s[64];
    for (int i = 0; i < 64; i++)                /* 64 layers at once */
        s[i] = forked_map(m, hs.keys[1], &two);
    for (int i = 0; i < 64; i++)
        B->release(s[i]);
    long kept = tu_alloc_live() - live;
    assert_true(kept >= 1 && kept <= 8);        /* a short list */
    cv_thread_cleanup();
    assert_int_equal(tu_alloc_live(), live);
    assert_non_null(cv_context_current());
    cache_end(&hs, m);
}

/* cv_set_allocator gives the calling thread's cached map blocks back to
 * the hook they came from, and the next write asks the new hook. */
TEST(chainmap_block_cache_follows_the_allocator)
{
    (void)state;
    hist hs;
    cv_map *m = cache_start(&hs);
    static tu_val two;
    tu_side_alloc side = {0};
    cv_allocator a = tu_side_allocator(&side);
    ASSERT_OK(cv_set_allocator(&a));
    fork_write_map(m, hs.keys[1], &two);        /* the side's, cached */
    assert_int_equal(side.live, 1);
    tu_alloc_install();                         /* back to tu */
    assert_int_equal(side.live, 0);
    long live = tu_alloc_live();
    cv_map *s = forked_map(m, hs.keys[1], &two); /* tu's block, not a */
    assert_int_equal(tu_alloc_live(), live + 1); /* side one reused */
    B->release(s);
    assert_int_equal(side.live, 0);
    cache_end(&hs, m);
    cv_thread_cleanup();
}

/* A thread's cached map blocks are given back when it exits. */
static void *fork_writes_and_exit(void *arg)
{
    hist *hs = arg;
    static tu_val one, two;
    cv_map *m = NULL;
    ASSERT_OK(B->set(&m, hs->keys[0], &one));
    assert_non_null(cv_context_current()); /* arms the exit cleanup */
    for (int i = 0; i < 8; i++)
        fork_write_map(m, hs->keys[1], &two);
    B->release(m);                          /* cached too */
    return NULL;
}

TEST(chainmap_block_cache_drained_at_thread_exit)
{
    (void)state;
    hist hs;
    hist_init(&hs, 2);
    long live = tu_alloc_live();
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fork_writes_and_exit, &hs), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(tu_alloc_live(), live);
    hist_free(&hs);
}

/* A write that fails with blocks cached changes nothing: not the map, not
 * the hook's live blocks, not the cache, whose block the next write of its
 * size still takes with every allocation failing. */
TEST(chainmap_block_cache_oom_with_warm_cache)
{
    (void)state;
    hist hs;
    cv_map *m = cache_start(&hs);
    static tu_val two;
    fork_write_map(m, hs.keys[1], &two);     /* a 40-byte layer cached */
    long live = tu_alloc_live(), bytes = tu_alloc_live_bytes();
    /* m is unshared and full (capacity 1): a new key grows it to 56
     * bytes, a class with nothing cached */
    tu_alloc_fail_at(1, 1);
    int r = B->set(&m, hs.keys[1], &two);
    long failed = tu_alloc_fail_off();
    assert_int_equal(r, CV_MAP_ENOMEM);
    assert_int_equal(failed, 1);
    assert_int_equal(B->len(m), 1);
    assert_int_equal(tu_alloc_live(), live);
    assert_int_equal(tu_alloc_live_bytes(), bytes);
    tu_alloc_fail_at(1, 1);
    cv_map *s = forked_map(m, hs.keys[1], &two); /* the cached layer */
    assert_int_equal(tu_alloc_fail_off(), 0);
    void *out;
    assert_int_equal(B->find(s, hs.keys[1], &out), 1);
    assert_int_equal(B->find(m, hs.keys[1], &out), 0);
    B->release(s);
    cache_end(&hs, m);
}

/* ------------------------------------------------------------------------
 * Borrowed keys: a slot over a key the chain below holds owns no
 * reference to the var (docs/design/chainmap.md, "Borrowed keys")
 * ------------------------------------------------------------------------ */

/* The pushed layer borrows: the var's count does not move, the var
 * outlives the user's release and the original map's, and goes exactly
 * once, with the last owning layer. */
TEST(chainmap_borrowed_key_keeps_the_var_until_the_owner_goes)
{
    (void)state;
    rc_reset();
    tu_rc *d = rc_new("dflt", NULL, NULL);
    tu_rc *x1 = rc_new("x1", NULL, NULL), *x2 = rc_new("x2", NULL, NULL);
    cv_var *v = rc_var("v", d);
    rc_unref(d); /* the var's retain alone holds it: it dies with the var */
    cv_map *a = NULL, *b;
    ASSERT_OK(B->set(&a, v, x1));
    assert_int_equal(cv__key_refs(v), 2);
    ASSERT_OK(B->share(a, &b));
    ASSERT_OK(B->set(&b, v, x2));
    assert_int_equal(cv__key_refs(v), 2); /* borrowed: no reference taken */
    assert_null(B->check(b));
    cv_var_release(v);
    B->release(a);
    assert_false(d->dead); /* b's parent layer owns the var */
    void *got = NULL;
    assert_int_equal(B->find(b, v, &got), 1);
    assert_ptr_equal(got, x2);
    B->release(b);
    assert_true(d->dead); /* freed with the owning layer, once */
    rc_unref(x1);
    rc_unref(x2);
    assert_int_equal(rc_violations(), 0);
    assert_int_equal(rc_live(), 0);
    rc_reset();
}

/* x2's destructor: the user's last references go inside the drops of
 * the write that let go of x2 -- the var, and the entered context, which
 * is exited and so freed, with the layer that owned the var. */
static cv_context *borrow_ctx;
static void borrow_dtor(tu_rc *self, void *arg)
{
    (void)self;
    cv_var_release((cv_var *)arg);
    assert_int_equal(cv_context_exit(borrow_ctx), 0);
}

/* Absorbing a private parent parks the top: a borrowed slot parked with
 * a value must own its key first, or the parked layer's release (after
 * the write's other drops, whose hooks may free the chain that owned the
 * var) reads a freed var. Caught by valgrind and ASan. */
TEST(chainmap_borrowed_slot_parked_by_absorb_owns_its_key)
{
    (void)state;
    const cv_backend *old = cv_backend_default();
    ASSERT_OK(cv_backend_set_default(B));
    rc_reset();
    cv_var *v = rc_var("v", NULL);
    tu_rc *x1 = rc_new("x1", NULL, NULL), *x3 = rc_new("x3", NULL, NULL);
    tu_rc *x2 = rc_new("x2", borrow_dtor, v);
    cv_context *c, *snap;
    ASSERT_OK(cv_context_new(&c));
    ASSERT_OK(cv_context_enter(c));
    borrow_ctx = c;
    ASSERT_OK(cv_var_set(v, x1, NULL));         /* L0 {v: x1}, owned */
    ASSERT_OK(cv_context_copy(c, &snap));       /* L0 shared */
    ASSERT_OK(cv_var_set(v, x2, NULL));         /* N {v: x2} borrows */
    cv_context_release(snap);                   /* L0 private to N */
    cv_context_release(c);                      /* entered: alive */
    rc_unref(x2);
    /* N's slot takes x3, absorb moves it into L0 and parks N with x1;
     * x2's drop runs first and frees the context, L0 and its slot */
    ASSERT_OK(cv_var_set(v, x3, NULL));
    assert_true(x2->dead);
    rc_unref(x1);
    rc_unref(x3);
    assert_int_equal(rc_violations(), 0);
    assert_int_equal(rc_live(), 0);
    rc_reset();
    ASSERT_OK(cv_backend_set_default(old));
}
