/* SPDX-License-Identifier: MIT */
/*
 * test_hamt.c -- the hamt backend's internals: node kinds and their
 * transitions, canonical deletion, every depth, big maps, snapshot chains,
 * allocation failure on every allocating path, value hooks.
 *
 * Keys are made with forced hashes (cv__var_new_hashed) and carry the
 * counting hooks, so main.c's hook balance covers every test here. The
 * backend is called directly through its struct; cv__hamt_shape prints a
 * map's node structure: B<bitmap>(slots) with "." for a pair,
 * A(frag:child ...) for an array node, C<n> for a collision node.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "map.h"
#include "mapmodel.h"
#include "registry.h"
#include "testutil.h"

/* Test hooks of maps/hamt.c. */
extern const unsigned cv__hamt_array_above;
size_t cv__hamt_shape(const cv_map *m, char *buf, size_t cap);

#define H (&cv__backend_hamt)
#define SHAPE_CAP 8192

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static cv_var *hkey(uint32_t hash)
{
    cv_var_opts o = {
        .name = "k",
        .retain = tu_hook_retain,
        .release = tu_hook_release,
    };
    cv_var *v = NULL;
    ASSERT_OK(cv__var_new_hashed(&o, hash, &v));
    return v;
}

/* k[0 .. n-1]: n keys of one hash, a full collision. */
static void hkeys_colliding(cv_var **k, unsigned n, uint32_t hash)
{
    for (unsigned i = 0; i < n; i++)
        k[i] = hkey(hash);
}

static void release_keys(cv_var **k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cv_var_release(k[i]);
}

static void check_map(const cv_map *m, const char *file, int line)
{
    const char *e = H->check(m);
    if (e != NULL) {
        print_error("%s:%d: check: %s\n", file, line, e);
        _fail(file, line);
    }
}
#define CHECK(m) check_map((m), __FILE__, __LINE__)

static char *shape(const cv_map *m)
{
    static char bufs[4][SHAPE_CAP];
    static unsigned next;
    char *b = bufs[next++ % 4];
    size_t n = cv__hamt_shape(m, b, SHAPE_CAP);
    assert_true(n < SHAPE_CAP);
    return b;
}

static unsigned count_char(const char *s, char c)
{
    unsigned n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

/* Nodes on the longest root-to-leaf path, from the shape string. */
static unsigned shape_depth(const char *s)
{
    unsigned d = 0, best = 0;
    for (; *s; s++) {
        if (*s == '(')
            d++;
        else if (*s == ')')
            d--;
        else if ((*s == 'B' || *s == 'A' || *s == 'C') && d + 1 > best)
            best = d + 1;
    }
    return best;
}

static void set_ok(cv_map **m, cv_var *k, void *v)
{
    ASSERT_OK(H->set(m, k, v));
    CHECK(*m);
}

static void del_ok(cv_map **m, cv_var *k, int want)
{
    ASSERT_ERR(H->del(m, k), want);
    CHECK(*m);
}

/* The map made by setting keys[i] = vals[i] for every i with vals[i] set,
 * in the order given by `order` (NULL: ascending). */
static cv_map *build(cv_var **keys, void **vals, size_t n, const size_t *order)
{
    cv_map *m = NULL;
    for (size_t j = 0; j < n; j++) {
        size_t i = order ? order[j] : j;
        if (vals[i] != NULL)
            set_ok(&m, keys[i], vals[i]);
    }
    return m;
}

/* foreach visits each pair of the model once and nothing else. */
struct visit {
    cv_var **keys;
    void **vals;
    size_t n;
    unsigned char *seen;
    size_t visits;
    int bad;
};

static int visit_cb(cv_var *k, void *v, void *arg)
{
    struct visit *vi = arg;
    vi->visits++;
    for (size_t i = 0; i < vi->n; i++) {
        if (vi->keys[i] == k) {
            if (vi->vals[i] != v || vi->seen[i]++)
                vi->bad = 1;
            return 0;
        }
    }
    vi->bad = 1;
    return 0;
}

/* m holds exactly the pairs keys[i] -> vals[i] with vals[i] != NULL. */
static void expect_model(const cv_map *m, cv_var **keys, void **vals,
                         size_t n)
{
    size_t want = 0;
    for (size_t i = 0; i < n; i++) {
        void *got = NULL;
        int r = H->find(m, keys[i], &got);
        if (vals[i] != NULL) {
            want++;
            assert_int_equal(r, 1);
            assert_ptr_equal(got, vals[i]);
        } else {
            assert_int_equal(r, 0);
        }
    }
    assert_int_equal(H->len(m), want);
    struct visit vi = {.keys = keys, .vals = vals, .n = n,
                       .seen = calloc(n ? n : 1, 1)};
    assert_non_null(vi.seen);
    ASSERT_OK(H->foreach(m, visit_cb, &vi));
    free(vi.seen);
    assert_int_equal(vi.bad, 0);
    assert_int_equal(vi.visits, want);
}

#define rnd tu_rnd /* tests/support/mapmodel.h: tests must replay */

/* v[i] tagged i; vals[i] = &v[i] when present, else NULL. */
static void tag_values(tu_val *v, void **vals, unsigned n, int present)
{
    for (unsigned i = 0; i < n; i++) {
        v[i] = (tu_val){.tag = (int)i};
        vals[i] = present ? &v[i] : NULL;
    }
}

static void shuffle(size_t *a, size_t n, uint32_t *seed)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd(seed) % i;
        size_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* ------------------------------------------------------------------------
 * Basics
 * ------------------------------------------------------------------------ */

TEST(hamt_empty_map_is_null)
{
    (void)state;
    tu_val a = {.tag = 1};
    cv_var *k = hkey(7);
    cv_map *m = NULL;
    void *out = &a;
    assert_int_equal(H->find(NULL, k, &out), 0);
    assert_ptr_equal(out, &a);
    assert_int_equal(H->len(NULL), 0);
    assert_int_equal(H->del(&m, k), 0);
    assert_null(H->check(NULL));
    cv_map *s = (cv_map *)&a;
    ASSERT_OK(H->share(NULL, &s));
    assert_null(s);
    set_ok(&m, k, &a);
    assert_int_equal(H->len(m), 1);
    assert_string_equal(shape(m), "B80(.)");
    del_ok(&m, k, 1);
    assert_null(m);
    assert_int_equal(a.refs, 0);
    H->release(NULL);
    cv_var_release(k);
}

TEST(hamt_same_value_allocates_nothing)
{
    (void)state;
    tu_val a = {.tag = 1}, b = {.tag = 2};
    cv_var *k[3] = {hkey(1), hkey(1 | 1u << 5), hkey(1)};
    cv_map *m = NULL;
    for (int i = 0; i < 3; i++)
        set_ok(&m, k[i], &a);
    cv_map *before = m;
    long calls = tu_alloc_calls();
    for (int i = 0; i < 3; i++)
        set_ok(&m, k[i], &a);
    assert_ptr_equal(m, before);
    assert_int_equal(tu_alloc_calls(), calls);

    /* Shared: still nothing to do. */
    cv_map *snap = NULL;
    ASSERT_OK(H->share(m, &snap));
    for (int i = 0; i < 3; i++)
        set_ok(&m, k[i], &a);
    assert_ptr_equal(m, before);
    assert_int_equal(tu_alloc_calls(), calls);

    /* Owned: a new value is written in place, without allocating. */
    H->release(snap);
    set_ok(&m, k[2], &b);
    assert_ptr_equal(m, before);
    assert_int_equal(tu_alloc_calls(), calls);
    assert_int_equal(a.refs, 2);
    assert_int_equal(b.refs, 1);
    H->release(m);
    assert_int_equal(a.refs, 0);
    assert_int_equal(b.refs, 0);
    release_keys(k, 3);
}

TEST(hamt_shared_set_copies_only_the_path)
{
    (void)state;
    enum { N = 600 };
    static cv_var *k[N];
    static tu_val v[N];
    uint32_t seed = 99;
    cv_map *m = NULL;
    for (size_t i = 0; i < N; i++) {
        k[i] = hkey(rnd(&seed));
        set_ok(&m, k[i], &v[i]);
    }
    char before[SHAPE_CAP];
    snprintf(before, sizeof before, "%s", shape(m));
    cv_map *snap = NULL;
    ASSERT_OK(H->share(m, &snap));
    long live = tu_alloc_live();
    tu_val x = {.tag = 9};
    set_ok(&m, k[17], &x);
    assert_ptr_not_equal(m, snap);
    /* One new node per level of the path (2 or 3 at this size). */
    long added = tu_alloc_live() - live;
    assert_true(added >= 1 && added <= 3);
    assert_string_equal(shape(snap), before);
    assert_string_equal(shape(m), before);
    void *out = NULL;
    assert_int_equal(H->find(snap, k[17], &out), 1);
    assert_ptr_equal(out, &v[17]);
    assert_int_equal(H->find(m, k[17], &out), 1);
    assert_ptr_equal(out, &x);
    /* Writing again in the copy: its path is owned now, in place. */
    long calls = tu_alloc_calls();
    set_ok(&m, k[17], &v[3]);
    assert_int_equal(tu_alloc_calls(), calls);
    H->release(snap);
    CHECK(m);
    H->release(m);
    assert_int_equal(x.refs, 0);
    release_keys(k, N);
}

/* ------------------------------------------------------------------------
 * Node kinds
 * ------------------------------------------------------------------------ */

/* Keys at every fragment of one level: the node there is a bitmap node up
 * to the threshold and an array node above it, on the way up and down. */
static void transitions_at(uint32_t low, unsigned level)
{
    const unsigned T = cv__hamt_array_above;
    cv_var *k[32];
    void *vals[32];
    tu_val v[32];
    for (unsigned j = 0; j < 32; j++) {
        k[j] = hkey(low | j << (5 * level));
        v[j] = (tu_val){.tag = (int)j};
        vals[j] = &v[j];
    }
    cv_map *m = NULL;
    for (unsigned j = 0; j < 32; j++) {
        set_ok(&m, k[j], &v[j]);
        const char *s = shape(m);
        assert_int_equal(count_char(s, 'A'), j + 1 > T ? 1 : 0);
        assert_int_equal(H->len(m), j + 1);
    }
    expect_model(m, k, vals, 32);
    /* Down again, from the other end: array until T remain. */
    for (unsigned j = 32; j-- > 0;) {
        del_ok(&m, k[j], 1);
        vals[j] = NULL;
        const char *s = shape(m);
        assert_int_equal(count_char(s, 'A'), j > T ? 1 : 0);
        cv_map *direct = build(k, vals, 32, NULL);
        assert_string_equal(s, shape(direct));
        H->release(direct);
    }
    assert_null(m);
    release_keys(k, 32);
}

TEST(hamt_bitmap_array_transitions)
{
    (void)state;
    assert_true(cv__hamt_array_above >= 4 && cv__hamt_array_above < 32);
    transitions_at(0, 0);
    transitions_at(3, 1);          /* below a one-child root */
    transitions_at(0x155, 4);
    /* Around the threshold, back and forth, owned and shared. */
    const unsigned T = cv__hamt_array_above;
    cv_var *k[32];
    tu_val v = {.tag = 1};
    for (unsigned j = 0; j < 32; j++)
        k[j] = hkey(j);
    cv_map *m = NULL;
    for (unsigned j = 0; j < T; j++)
        set_ok(&m, k[j], &v);
    for (int round = 0; round < 4; round++) {
        cv_map *snap = NULL;
        if (round & 1)
            ASSERT_OK(H->share(m, &snap));
        set_ok(&m, k[T], &v);
        assert_int_equal(count_char(shape(m), 'A'), 1);
        if (snap)
            assert_int_equal(count_char(shape(snap), 'A'), 0);
        H->release(snap);
        snap = NULL;
        if (round & 2)
            ASSERT_OK(H->share(m, &snap));
        del_ok(&m, k[T], 1);
        assert_int_equal(count_char(shape(m), 'A'), 0);
        if (snap)
            assert_int_equal(count_char(shape(snap), 'A'), 1);
        H->release(snap);
    }
    H->release(m);
    release_keys(k, 32);
}

/* Below an array node a lone key keeps a one-pair node; when the array
 * node turns back into a bitmap node, those pairs move up. */
TEST(hamt_array_children_collapse_on_convert)
{
    (void)state;
    const unsigned T = cv__hamt_array_above;
    cv_var *k[64];
    void *vals[64];
    tu_val v = {.tag = 1};
    /* Fragments 0..T at level 0; fragment 0 and 1 get a second key. */
    unsigned n = 0;
    for (unsigned j = 0; j <= T; j++)
        k[n++] = hkey(j);
    k[n++] = hkey(0 | 1u << 5);
    k[n++] = hkey(1 | 1u << 5);
    for (unsigned i = 0; i < n; i++)
        vals[i] = &v;
    cv_map *m = build(k, vals, n, NULL);
    assert_int_equal(count_char(shape(m), 'A'), 1);
    cv_map *snap = NULL;
    ASSERT_OK(H->share(m, &snap));
    del_ok(&m, k[T], 1); /* fragment T leaves: T fragments remain */
    vals[T] = NULL;
    assert_int_equal(count_char(shape(m), 'A'), 0);
    cv_map *direct = build(k, vals, n, NULL);
    assert_string_equal(shape(m), shape(direct));
    H->release(direct);
    vals[T] = &v;
    expect_model(snap, k, vals, n);
    H->release(snap);
    /* The same owned. */
    set_ok(&m, k[T], &v);
    del_ok(&m, k[T], 1);
    vals[T] = NULL;
    expect_model(m, k, vals, n);
    H->release(m);
    release_keys(k, n);
}

TEST(hamt_collision_nodes)
{
    (void)state;
    const uint32_t h = 0xdeadbeefu;
    cv_var *k[6];
    void *vals[6];
    tu_val v[6];
    hkeys_colliding(k, 5, h);
    k[5] = hkey(h ^ 0x80000000u); /* differs in the very last bit */
    tag_values(v, vals, 6, 0);
    cv_map *m = NULL;
    for (unsigned i = 0; i < 5; i++) {
        set_ok(&m, k[i], &v[i]);
        vals[i] = &v[i];
        expect_model(m, k, vals, 6);
    }
    assert_int_equal(count_char(shape(m), 'C'), 1);
    assert_non_null(strstr(shape(m), "C5"));
    assert_int_equal(shape_depth(shape(m)), 8);
    set_ok(&m, k[5], &v[5]);
    vals[5] = &v[5];
    expect_model(m, k, vals, 6);
    /* Replace inside the collision node, shared and owned. */
    cv_map *snap = NULL;
    ASSERT_OK(H->share(m, &snap));
    set_ok(&m, k[2], &v[0]);
    void *out = NULL;
    assert_int_equal(H->find(snap, k[2], &out), 1);
    assert_ptr_equal(out, &v[2]);
    set_ok(&m, k[2], &v[2]);
    H->release(snap);
    /* Dissolve: down to one colliding key, which moves back up. */
    size_t order[6] = {0, 1, 2, 3, 4, 5};
    for (unsigned i = 0; i < 4; i++) {
        ASSERT_OK(H->share(m, &snap));
        del_ok(&m, k[i], 1);
        vals[i] = NULL;
        expect_model(m, k, vals, 6);
        cv_map *direct = build(k, vals, 6, order);
        assert_string_equal(shape(m), shape(direct));
        H->release(direct);
        H->release(snap);
    }
    assert_int_equal(count_char(shape(m), 'C'), 0);
    /* Two keys left, differing in bit 31: a chain to level 6. */
    assert_int_equal(shape_depth(shape(m)), 7);
    del_ok(&m, k[5], 1);
    assert_string_equal(shape(m), "B8000(.)");
    del_ok(&m, k[4], 1);
    assert_null(m);
    release_keys(k, 6);
}

/* Keys whose hashes agree on the first k bits for every k up to 32: every
 * level is reached, and a walk visits every pair once at every depth (the
 * deepest iterator frame is where gh-93065 and immutables#84 were). */
TEST(hamt_every_depth_and_full_iteration)
{
    (void)state;
    const uint32_t base = 0x9e3779b9u;
    cv_var *k[35];
    void *vals[35];
    tu_val v[35];
    for (unsigned b = 0; b < 32; b++)
        k[b] = hkey(base ^ (1u << b));
    hkeys_colliding(&k[32], 3, base);
    tag_values(v, vals, 35, 1);
    /* Pairs (base, base ^ 1 << b): the path is as deep as the first
     * fragment they differ in. */
    for (unsigned b = 0; b < 32; b++) {
        cv_map *m = NULL;
        set_ok(&m, k[32], &v[32]);
        set_ok(&m, k[b], &v[b]);
        assert_int_equal(shape_depth(shape(m)), b / 5 + 1);
        void *pv[2] = {&v[32], &v[b]};
        cv_var *pk[2] = {k[32], k[b]};
        expect_model(m, pk, pv, 2);
        H->release(m);
    }
    /* All at once, in several orders, with the collision node at level 7:
     * same shape every time, every pair visited once. */
    uint32_t seed = 7;
    size_t order[35];
    for (size_t i = 0; i < 35; i++)
        order[i] = i;
    char first[SHAPE_CAP] = "";
    for (int round = 0; round < 8; round++) {
        cv_map *m = build(k, vals, 35, order);
        assert_int_equal(shape_depth(shape(m)), 8);
        expect_model(m, k, vals, 35);
        if (round == 0)
            snprintf(first, sizeof first, "%s", shape(m));
        else
            assert_string_equal(shape(m), first);
        H->release(m);
        shuffle(order, 35, &seed);
    }
    /* Only the deepest keys: the walk goes straight to level 7. */
    cv_map *m = NULL;
    set_ok(&m, k[32], &v[32]);
    set_ok(&m, k[33], &v[33]);
    assert_int_equal(shape_depth(shape(m)), 8);
    cv_var *dk[2] = {k[32], k[33]};
    void *dv[2] = {&v[32], &v[33]};
    expect_model(m, dk, dv, 2);
    H->release(m);
    release_keys(k, 35);
}

static int stop_at_third(cv_var *k, void *v, void *arg)
{
    (void)k;
    (void)v;
    int *n = arg;
    return ++*n == 3 ? 42 : 0;
}

TEST(hamt_foreach_stops_early)
{
    (void)state;
    cv_var *k[40];
    tu_val v = {.tag = 1};
    cv_map *m = NULL;
    for (unsigned i = 0; i < 40; i++) {
        k[i] = hkey(i * 0x01010101u);
        set_ok(&m, k[i], &v);
    }
    int n = 0;
    assert_int_equal(H->foreach(m, stop_at_third, &n), 42);
    assert_int_equal(n, 3);
    H->release(m);
    release_keys(k, 40);
}

/* ------------------------------------------------------------------------
 * Canonical deletion: a map's shape depends on its keys only.
 * ------------------------------------------------------------------------ */

static void canonical_round(uint32_t mask, uint32_t fixed, size_t n,
                            uint32_t seed)
{
    cv_var **k = malloc(n * sizeof *k);
    void **vals = calloc(n, sizeof *vals);
    tu_val *v = calloc(n, sizeof *v);
    size_t *order = malloc(n * sizeof *order);
    assert_true(k && vals && v && order);
    for (size_t i = 0; i < n; i++) {
        k[i] = hkey((rnd(&seed) & mask) | fixed);
        order[i] = i;
    }
    cv_map *m = NULL, *snap = NULL;
    int check_every = n <= 300;
    for (size_t step = 0; step < 4 * n; step++) {
        size_t i = rnd(&seed) % n;
        if (rnd(&seed) % 8 == 0) {
            H->release(snap);
            ASSERT_OK(H->share(m, &snap));
        }
        if (rnd(&seed) % 3 == 0) {
            ASSERT_ERR(H->del(&m, k[i]), vals[i] != NULL);
            vals[i] = NULL;
        } else {
            vals[i] = &v[rnd(&seed) % n];
            ASSERT_OK(H->set(&m, k[i], vals[i]));
        }
        if (check_every || step % 64 == 0)
            CHECK(m);
        if (step % (n / 4 + 1) == 0) {
            shuffle(order, n, &seed);
            cv_map *direct = build(k, vals, n, order);
            assert_string_equal(shape(m), shape(direct));
            H->release(direct);
        }
    }
    CHECK(snap);
    expect_model(m, k, vals, n);
    /* Delete everything, comparing shapes on the way down. */
    shuffle(order, n, &seed);
    for (size_t j = 0; j < n; j++) {
        size_t i = order[j];
        ASSERT_ERR(H->del(&m, k[i]), vals[i] != NULL);
        vals[i] = NULL;
        CHECK(m);
        if (j % 16 == 0) {
            cv_map *direct = build(k, vals, n, NULL);
            assert_string_equal(shape(m), shape(direct));
            H->release(direct);
        }
    }
    assert_null(m);
    H->release(snap);
    release_keys(k, n);
    free(k);
    free(vals);
    free(v);
    free(order);
}

TEST(hamt_canonical_after_any_history)
{
    (void)state;
    canonical_round(0xffffffffu, 0, 300, 1);   /* real-looking hashes */
    canonical_round(0x1f, 0, 120, 2);          /* 32 hashes: collisions */
    canonical_round(0x3ff, 0, 250, 3);         /* dense two levels */
    canonical_round(0x3ff, 0x5a000000u, 250, 4);
    canonical_round(0xc0000003u, 0x00aa5500u, 60, 5); /* deep + top bits */
    canonical_round(0x000f8000u, 0x12345u, 200, 6);   /* level 3 dense */
}

/* ------------------------------------------------------------------------
 * Size
 * ------------------------------------------------------------------------ */

static int count_cb(cv_var *k, void *v, void *arg)
{
    (void)k;
    (void)v;
    ++*(size_t *)arg;
    return 0;
}

TEST(hamt_million_keys)
{
    (void)state;
    size_t n = (size_t)tu_scale(1000000, 20000);
    cv_var **k = malloc(n * sizeof *k);
    assert_non_null(k);
    for (size_t i = 0; i < n; i++)
        ASSERT_OK(cv_var_new("m", &k[i]));
    cv_map *m = NULL;
    for (size_t i = 0; i < n; i++)
        ASSERT_OK(H->set(&m, k[i], (void *)(uintptr_t)(i + 1)));
    CHECK(m);
    assert_int_equal(H->len(m), n);
    for (size_t i = 0; i < n; i++) {
        void *out = NULL;
        assert_int_equal(H->find(m, k[i], &out), 1);
        assert_int_equal((uintptr_t)out, i + 1);
    }
    size_t visits = 0;
    ASSERT_OK(H->foreach(m, count_cb, &visits));
    assert_int_equal(visits, n);
    /* A snapshot in the middle keeps the full map. */
    cv_map *snap = NULL;
    ASSERT_OK(H->share(m, &snap));
    for (size_t i = 0; i < n; i += 2)
        ASSERT_ERR(H->del(&m, k[i]), 1);
    CHECK(m);
    assert_int_equal(H->len(m), n / 2);
    assert_int_equal(H->len(snap), n);
    H->release(snap);
    for (size_t i = 1; i < n; i += 2)
        ASSERT_ERR(H->del(&m, k[i]), 1);
    assert_null(m);
    for (size_t i = 0; i < n; i++)
        cv_var_release(k[i]);
    free(k);
}

/* ------------------------------------------------------------------------
 * Snapshots: long chains of share + set, released in random order (R9).
 * ------------------------------------------------------------------------ */

TEST(hamt_snapshot_chains)
{
    (void)state;
    enum { K = 200 };
    size_t S = (size_t)tu_scale(2000, 300);
    cv_var *k[K];
    tu_val v[16];
    uint32_t seed = 2024;
    for (unsigned i = 0; i < K; i++)
        k[i] = hkey(i < 40 ? (rnd(&seed) & 0x3ff) : rnd(&seed));
    for (unsigned i = 0; i < 16; i++)
        v[i] = (tu_val){.tag = (int)i};
    cv_map **snaps = calloc(S, sizeof *snaps);
    void **model = calloc(S * K, sizeof *model); /* snapshot s: row s */
    void *cur[K] = {0};
    size_t *order = malloc(S * sizeof *order);
    assert_true(snaps && model && order);
    cv_map *m = NULL;
    for (size_t s = 0; s < S; s++) {
        ASSERT_OK(H->share(m, &snaps[s]));
        memcpy(&model[s * K], cur, sizeof cur);
        size_t i = rnd(&seed) % K;
        if (rnd(&seed) % 4 == 0) {
            ASSERT_ERR(H->del(&m, k[i]), cur[i] != NULL);
            cur[i] = NULL;
        } else {
            cur[i] = &v[rnd(&seed) % 16];
            ASSERT_OK(H->set(&m, k[i], cur[i]));
        }
        order[s] = s;
    }
    CHECK(m);
    expect_model(m, k, cur, K);
    shuffle(order, S, &seed);
    for (size_t j = 0; j < S; j++) {
        size_t s = order[j];
        CHECK(snaps[s]);
        expect_model(snaps[s], k, &model[s * K], K);
        H->release(snaps[s]);
        /* The live map stays intact whatever dies around it. */
        if (j % 64 == 0) {
            CHECK(m);
            expect_model(m, k, cur, K);
        }
    }
    H->release(m);
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(v[i].refs, 0);
    release_keys(k, K);
    free(snaps);
    free(model);
    free(order);
}

/* ------------------------------------------------------------------------
 * Allocation failure on every allocating path
 * ------------------------------------------------------------------------ */

struct oom_case {
    const char *name;
    uint32_t before[40];      /* hashes present before the op */
    unsigned nbefore;
    int shared;               /* a snapshot holds the map during the op */
    int del;                  /* 1: delete `target`; 0: set it */
    unsigned target;          /* index into before[]; nbefore: a new key */
    uint32_t new_hash;        /* hash of the new key */
};

struct pair {
    cv_var *k;
    void *v;
};

static int pair_cmp(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    return x->k < y->k ? -1 : x->k > y->k;
}

struct dump {
    struct pair p[64];
    size_t n;
};

static int dump_cb(cv_var *k, void *v, void *arg)
{
    struct dump *d = arg;
    d->p[d->n].k = k;
    d->p[d->n].v = v;
    d->n++;
    return 0;
}

static void dump_map(const cv_map *m, struct dump *d)
{
    d->n = 0;
    ASSERT_OK(H->foreach(m, dump_cb, d));
    qsort(d->p, d->n, sizeof d->p[0], pair_cmp);
}

static void oom_run(const struct oom_case *c)
{
    cv_var *k[41];
    tu_val v[41], nv = {.tag = 99};
    for (unsigned i = 0; i < c->nbefore; i++) {
        k[i] = hkey(c->before[i]);
        v[i] = (tu_val){.tag = (int)i};
    }
    k[c->nbefore] = hkey(c->new_hash);
    for (int forever = 0; forever <= 1; forever++) {
        for (long n = 1;; n++) {
            assert_true(n < 100);
            cv_map *m = NULL, *snap = NULL;
            for (unsigned i = 0; i < c->nbefore; i++)
                set_ok(&m, k[i], &v[i]);
            if (c->shared)
                ASSERT_OK(H->share(m, &snap));
            cv_map *was = m;
            char before_shape[SHAPE_CAP];
            snprintf(before_shape, sizeof before_shape, "%s", shape(m));
            struct dump before, after;
            dump_map(m, &before);
            long live = tu_alloc_live();
            long hooks = tu_hook_balance();

            long calls = tu_alloc_calls();
            tu_alloc_fail_at(n, forever);
            int r = c->del ? H->del(&m, k[c->target])
                           : H->set(&m, k[c->target], &nv);
            long failed = tu_alloc_fail_off();

            if (r == CV_ENOMEM) {
                assert_true(failed >= 1);
                assert_ptr_equal(m, was);
                CHECK(m);
                assert_string_equal(shape(m), before_shape);
                dump_map(m, &after);
                assert_int_equal(after.n, before.n);
                assert_memory_equal(after.p, before.p,
                                    before.n * sizeof before.p[0]);
                assert_int_equal(tu_alloc_live(), live);
                assert_int_equal(tu_hook_balance(), hooks);
            } else {
                if (r != (c->del ? 1 : 0))
                    print_error("oom case %s: k=%ld\n", c->name, n);
                assert_int_equal(r, c->del ? 1 : 0);
                CHECK(m);
                void *out = NULL;
                assert_int_equal(H->find(m, k[c->target], &out), !c->del);
                if (!c->del)
                    assert_ptr_equal(out, &nv);
                if (snap) {
                    CHECK(snap);
                    dump_map(snap, &after);
                    assert_int_equal(after.n, before.n);
                    assert_memory_equal(after.p, before.p,
                                        before.n * sizeof before.p[0]);
                }
            }
            H->release(snap);
            H->release(m);
            if (r != CV_ENOMEM) {
                /* Every allocation the op makes was a failure point that
                 * reported CV_ENOMEM: k = 1 .. made failed, made + 1 won. */
                long made = tu_alloc_calls() - calls;
                assert_int_equal(n - 1, made);
                if (getenv("CV_TEST_VERBOSE"))
                    print_message("oom %-24s shared=%d forever=%d: %ld "
                                  "allocations\n",
                                  c->name, c->shared, forever, made);
                break;
            }
        }
    }
    release_keys(k, c->nbefore + 1);
    for (unsigned i = 0; i < c->nbefore; i++)
        assert_int_equal(v[i].refs, 0);
    assert_int_equal(nv.refs, 0);
}

TEST(hamt_oom_every_path)
{
    (void)state;
    const unsigned T = cv__hamt_array_above;
    struct oom_case c;

    for (int shared = 0; shared <= 1; shared++) {
        /* Insert into a bitmap node. */
        c = (struct oom_case){.name = "insert", .before = {1, 2, 3},
                              .nbefore = 3, .shared = shared,
                              .target = 3, .new_hash = 4};
        oom_run(&c);
        /* Insert one level down (path of two). */
        c = (struct oom_case){.name = "insert deep",
                              .before = {1, 1 | 2u << 5, 7}, .nbefore = 3,
                              .shared = shared, .target = 3,
                              .new_hash = 1 | 3u << 5};
        oom_run(&c);
        /* Split a pair's slot into a subtree, one level and seven. */
        c = (struct oom_case){.name = "split", .before = {1, 2},
                              .nbefore = 2, .shared = shared, .target = 2,
                              .new_hash = 1 | 1u << 5};
        oom_run(&c);
        c = (struct oom_case){.name = "split deep", .before = {5, 2},
                              .nbefore = 2, .shared = shared, .target = 2,
                              .new_hash = 5 | 1u << 31};
        oom_run(&c);
        /* Collision node made, then grown. */
        c = (struct oom_case){.name = "collision", .before = {0xabcdef01u},
                              .nbefore = 1, .shared = shared, .target = 1,
                              .new_hash = 0xabcdef01u};
        oom_run(&c);
        c = (struct oom_case){.name = "collision grow",
                              .before = {0xabcdef01u, 0xabcdef01u, 3},
                              .nbefore = 3, .shared = shared, .target = 3,
                              .new_hash = 0xabcdef01u};
        oom_run(&c);
        /* Bitmap node to array node (with a subtree among its slots). */
        c = (struct oom_case){.name = "to array", .nbefore = T,
                              .shared = shared, .target = T,
                              .new_hash = T};
        for (unsigned j = 0; j < T; j++)
            c.before[j] = j;
        c.before[0] = 0;
        c.before[1] = 1 | 1u << 5; /* fragment 1 holds a subtree */
        c.before[c.nbefore++] = 1;
        c.target = c.nbefore;
        oom_run(&c);
        /* Insert into an array node (a new one-pair child). */
        c = (struct oom_case){.name = "array insert", .nbefore = T + 1,
                              .shared = shared, .target = T + 1,
                              .new_hash = 31};
        for (unsigned j = 0; j <= T; j++)
            c.before[j] = j;
        oom_run(&c);
        /* Replace a value at depth 3 (path copy when shared). */
        c = (struct oom_case){.name = "replace deep",
                              .before = {1, 1 | 1u << 5, 1 | 1u << 5 | 1u << 10,
                                         9},
                              .nbefore = 4, .shared = shared, .target = 2};
        oom_run(&c);
        /* Deletes: shrink a leaf, collapse upward, dissolve a collision,
         * array node back to a bitmap node. */
        c = (struct oom_case){.name = "del shrink", .before = {1, 2, 3},
                              .nbefore = 3, .shared = shared, .del = 1,
                              .target = 1};
        oom_run(&c);
        c = (struct oom_case){.name = "del collapse",
                              .before = {1, 1 | 1u << 5, 1 | 2u << 5 | 1u << 10,
                                         1 | 2u << 5 | 2u << 10, 4},
                              .nbefore = 5, .shared = shared, .del = 1,
                              .target = 2};
        oom_run(&c);
        c = (struct oom_case){.name = "del collision",
                              .before = {0x11u, 0x11u, 0x11u, 0x12u},
                              .nbefore = 4, .shared = shared, .del = 1,
                              .target = 1};
        oom_run(&c);
        c = (struct oom_case){.name = "del collision dissolve",
                              .before = {0x11u, 0x11u, 0x12u},
                              .nbefore = 3, .shared = shared, .del = 1,
                              .target = 0};
        oom_run(&c);
        c = (struct oom_case){.name = "del to bitmap", .nbefore = T + 1,
                              .shared = shared, .del = 1, .target = 3};
        for (unsigned j = 0; j <= T; j++)
            c.before[j] = j;
        c.before[c.nbefore++] = 5 | 1u << 5; /* fragment 5 holds a subtree */
        oom_run(&c);
        c = (struct oom_case){.name = "del in array", .nbefore = T + 3,
                              .shared = shared, .del = 1, .target = 0};
        for (unsigned j = 0; j < T + 3; j++)
            c.before[j] = j;
        oom_run(&c);
        /* Last key: no allocation, map becomes NULL. */
        c = (struct oom_case){.name = "del last", .before = {77},
                              .nbefore = 1, .shared = shared, .del = 1,
                              .target = 0};
        oom_run(&c);
        c = (struct oom_case){.name = "new root", .nbefore = 0,
                              .shared = shared, .target = 0,
                              .new_hash = 5};
        oom_run(&c);
    }
}

/* ------------------------------------------------------------------------
 * Value hooks: every holder retains once and releases once.
 * ------------------------------------------------------------------------ */

TEST(hamt_value_hooks_balance)
{
    (void)state;
    cv_var *k[50];
    tu_val v[4] = {{.tag = 0}, {.tag = 1}, {.tag = 2}, {.tag = 3}};
    cv_map *m = NULL;
    for (unsigned i = 0; i < 50; i++) {
        k[i] = hkey(i % 10 == 0 ? 0x777u : i * 0x9e3779b9u);
        set_ok(&m, k[i], &v[0]);
    }
    assert_int_equal(v[0].refs, 50);
    cv_map *snap = NULL;
    ASSERT_OK(H->share(m, &snap));
    assert_int_equal(v[0].refs, 50); /* sharing retains no value */
    for (unsigned i = 0; i < 50; i += 2)
        set_ok(&m, k[i], &v[1]);
    assert_int_equal(v[1].refs, 25);
    assert_true(v[0].refs >= 50); /* copies of shared nodes retain too */
    H->release(snap);
    assert_int_equal(v[0].refs, 25);
    assert_int_equal(v[1].refs, 25);
    /* In place: the old value is released, the new one retained. */
    set_ok(&m, k[1], &v[2]);
    assert_int_equal(v[0].refs, 24);
    assert_int_equal(v[2].refs, 1);
    for (unsigned i = 0; i < 50; i += 3)
        del_ok(&m, k[i], 1);
    ASSERT_OK(H->share(m, &snap));
    for (unsigned i = 1; i < 50; i += 3)
        del_ok(&m, k[i], 1);
    H->release(m);
    assert_true(v[0].refs + v[1].refs + v[2].refs > 0);
    H->release(snap);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(v[i].refs, 0);
    release_keys(k, 50);
}
