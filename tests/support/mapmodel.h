/* SPDX-License-Identifier: MIT */
/*
 * mapmodel.h -- the one harness for tests that drive a backend through
 * maps/map.h: a world of keys and values, a model of one map, a random
 * generator, random histories of held maps, and the map-level OOM loop.
 *
 * A world holds up to MM_MAXK hooked keys (their hashes forced, so tests
 * build collisions, shared prefixes and full tiny tables) and MM_NV counted
 * values. A model says, per key, whether the map holds it and with which
 * value. mm_expect checks a map against its model in every way map.h
 * offers: check(), find on every key, len, and foreach (each pair once).
 *
 *   mm_world w;
 *   mm_world_init(&w, &cv__backend_hamt, 12, mm_hash_spread);
 *   cv_map *m = NULL;
 *   mm_model md = {0};
 *   mm_set(&w, &m, &md, 3, &w.vals[7]);     // set, asserting success
 *   mm_expect(&w, m, &md);
 *   w.b->release(m);
 *   mm_world_free(&w);
 *
 * The OOM loop (mm_oom_run) is SQLite's: for k = 1, 2, ... build a fresh
 * fixture, fail the k-th allocation (once, then in a second pass forever),
 * make the call; a call that fails must return CV_ENOMEM and leave the map,
 * its model, every other holder, the live blocks and the value retains as
 * they were; the loop ends at the first k the call succeeds with.
 */
#ifndef CV_MAPMODEL_H
#define CV_MAPMODEL_H

#include "internal.h"
#include "map.h"
#include "registry.h"
#include "testutil.h"

#define MM_MAXK 48
#define MM_NV 64
#define MM_MAXHELD 12

typedef struct mm_world {
    const cv_backend *b;
    int nk;                     /* keys in play, <= MM_MAXK */
    cv_var *keys[MM_MAXK];
    tu_val vals[MM_NV];         /* vals[i].tag == i */
} mm_world;

typedef struct mm_model {
    int has[MM_MAXK];
    void *val[MM_MAXK];
} mm_model;

/* The one generator of the tests: 32 bits a call, replayable from its
 * seed. */
uint32_t tu_rnd(uint32_t *s);

/* Key hashes, by key index i of nk. */
uint32_t mm_hash_spread(int i, int nk);   /* Fibonacci hashing of i + 1 */
uint32_t mm_hash_collide(int i, int nk);  /* all 0: one collision chain */
uint32_t mm_hash_half(int i, int nk);     /* the first half 0, then spread */
uint32_t mm_hash_mixed(int i, int nk);    /* full collisions, shared low
                                           * bits, spread: one in 4, 4, 2 */

void mm_world_init(mm_world *w, const cv_backend *b, int nk,
                   uint32_t (*hash)(int i, int nk));
void mm_world_free(mm_world *w);

int mm_len(const mm_world *w, const mm_model *md);
/* md := what m holds (by find). */
void mm_model_of(const mm_world *w, const cv_map *m, mm_model *md);
/* m maps exactly what md says, and check(m) holds. */
void mm_expect(const mm_world *w, const cv_map *m, const mm_model *md);
/* foreach over m, stopping after `stop_after` pairs (0: never); returns
 * what foreach returned (77 when stopped) and the pairs seen in *calls. */
int mm_walk(const mm_world *w, const cv_map *m, int stop_after, int *calls);

/* mm_expect(w, m, md), then m is released: how a test lets go of a map
 * whose contents it still checks. */
void mm_expect_release(const mm_world *w, cv_map *m, const mm_model *md);
/* check() holds on each of maps[0 .. n-1], then each is released. */
void mm_release_all(const cv_backend *b, cv_map **maps, int n);

/* Writes that must succeed, applied to the model too. */
void mm_set(const mm_world *w, cv_map **m, mm_model *md, int k, void *v);
void mm_del(const mm_world *w, cv_map **m, mm_model *md, int k);
/* Sets keys 0 .. n-1 to vals[0 .. n-1]. */
void mm_fill(const mm_world *w, cv_map **m, mm_model *md, int n);
/* The same writes, returning the backend's result (model updated only on
 * success): for OOM cases. */
int mm_try_set(const mm_world *w, cv_map **m, mm_model *md, int k, void *v);
int mm_try_del(const mm_world *w, cv_map **m, mm_model *md, int k);

/* ------------------------------------------------------------------------
 * Random histories: sets, deletes, shares and releases over `nheld` held
 * maps; every map touched is checked against its model after every step,
 * and every map every `all_every` steps and at the end. held[0] is never
 * released by the generator.
 * ------------------------------------------------------------------------ */
typedef struct mm_random {
    int nheld;                  /* <= MM_MAXHELD */
    long steps;
    uint32_t seed;
    /* percent of ops that set, given the map's size (NULL: 50); deletes
     * fill up to 80, shares to 93, releases the rest */
    unsigned (*set_pct)(int len);
    int all_every;              /* 0: only the map touched (and the end) */
    /* extra checks on a held map after each step (NULL: none) */
    void (*after)(const cv_map *m, void *arg);
    void *arg;
} mm_random;

void mm_random_run(const mm_world *w, const mm_random *r);

/* ------------------------------------------------------------------------
 * The OOM loop. held[0] is the map under test, held[1 ..] other holders.
 * ------------------------------------------------------------------------ */
/* The write under test: a set of keys[key] to vals[val], or a delete. */
typedef struct mm_op {
    int del;
    int key;
    int val;
} mm_op;
#define MM_SET(k, v) {0, (k), (v)}
#define MM_DEL(k) {1, (k), 0}

typedef struct mm_oom_case {
    const char *name;
    void (*build)(const mm_world *w, cv_map **held, mm_model *md);
    int shared;                 /* 1: held[1] shares held[0] after build */
    mm_op op;
    int want;                   /* op's result on success */
    /* after success, a backend's own check of the result (NULL: none);
     * returns NULL or what is wrong */
    const char *(*after)(const cv_map *m);
} mm_oom_case;

/* A build that makes nothing: the op starts from the empty map. */
void mm_build_empty(const mm_world *w, cv_map **held, mm_model *md);

/* Runs every case, both passes, in a world of nk keys made with `hash` on
 * backend b; a case that never met a failed allocation fails the test
 * when must_fail is set. Returns the allocations failed in all. */
long mm_oom_run(const cv_backend *b, int nk, uint32_t (*hash)(int, int),
                const mm_oom_case *cases, size_t n, int nheld, int must_fail);

#endif
