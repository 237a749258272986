/* SPDX-License-Identifier: MIT */
/*
 * map_ops.c -- the backend interface of maps/map.h driven directly, every
 * backend side by side in lockstep, each against a model per snapshot.
 *
 * Keys are vars with forced hashes (cv__var_new_hashed, core/internal.h):
 * the input picks a base hash B and, per key, how many low bits it shares
 * with B (0..32; 32 is a full collision), so tries get deep and collision
 * nodes appear. Up to NSNAP live references per backend (slot 0 starts as
 * the empty map, NULL); share() makes snapshots, and each slot has its own
 * model, so a write that leaks into a snapshot is a difference.
 *
 * Input: 4 bytes B, 1 byte key count (1..32), then per key 2 bytes (shared
 * low bits, free bits), then commands:
 *   s n k d   set key k = value d in slot n
 *   d n k     del key k from slot n (1 removed / 0 absent)
 *   f n k     find
 *   l n       len
 *   e n j     foreach (j > 0: stop after j pairs)
 *   h a n     slot n = share(slot a)
 *   r n       release slot n
 *   a         compare every slot completely
 *   o j       the next s/d/h fails its j-th allocation (j = 1..8): the
 *             call must return CV_ENOMEM and change nothing (then it is
 *             repeated without failure), or succeed with a right result
 *             (a backend may skip an optional step whose allocation
 *             failed; CV_ENOMEM without a failed allocation is an error)
 * After every command, check() runs on every live map of every backend and
 * every len is compared; after a write, every slot that shares history with
 * the written one is compared completely. Storing the value already there
 * and find must not allocate. At the end everything is released: live
 * allocations back to the baseline, value hooks balanced.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "internal.h"
#include "map.h"

#define NSNAP 6
#define NKEYS 32
#define NB 8

static const cv_backend *backends[NB];
static size_t nb;

typedef struct world {
    cv_var *key[NKEYS];
    int nkeys;
    cv_map *m[NB][NSNAP];
    int live[NSNAP];
    int fam[NSNAP];                       /* share family */
    signed char mv[NSNAP][NKEYS];         /* model: value or -1 */
    unsigned long step;
    int op;
} world;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void setup(void)
{
    nb = fz_backends(backends, NB);
}

FZ_TARGET("map_ops", setup)

#define DIE(w, b, ...)                                                       \
    fz_die("backend %s, step %lu, command '%c': %s", cv_backend_name(b),     \
           (w)->step, (w)->op, (snprintf(msgbuf, sizeof msgbuf, __VA_ARGS__), \
                                msgbuf))
static char msgbuf[512];

static uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

static void check_all(world *w)
{
    for (size_t b = 0; b < nb; b++)
        for (int n = 0; n < NSNAP; n++) {
            if (!w->live[n])
                continue;
            const char *e = backends[b]->check(w->m[b][n]);
            if (e != NULL)
                DIE(w, backends[b], "check() of slot %d: %s", n, e);
            size_t len = backends[b]->len(w->m[b][n]), want = 0;
            for (int k = 0; k < w->nkeys; k++)
                want += w->mv[n][k] >= 0;
            if (len != want)
                DIE(w, backends[b], "len of slot %d is %zu, model %zu%s", n,
                    len, want, " -- ISOLATION MISMATCH? (R9)");
        }
}

static void compare_one(world *w, size_t b, int n)
{
    for (int k = 0; k < w->nkeys; k++) {
        void *v = fz_value(5);
        long calls = tu_alloc_calls();
        int r = backends[b]->find(w->m[b][n], w->key[k], &v);
        if (tu_alloc_calls() != calls)
            DIE(w, backends[b], "find allocated");
        int want = w->mv[n][k];
        if (r != (want >= 0) || (r == 1 && fz_value_index(v) != want))
            DIE(w, backends[b],
                "slot %d key %d (hash %08x): find %d value %d, model %d"
                " -- ISOLATION MISMATCH? (R9)",
                n, k, cv__var_hash(w->key[k]), r,
                r == 1 ? fz_value_index(v) : -1, want);
    }
}

static void compare_slot(world *w, int n)
{
    for (size_t b = 0; b < nb; b++)
        compare_one(w, b, n);
}

static void compare_family(world *w, int n)
{
    for (int i = 0; i < NSNAP; i++)
        if (w->live[i] && w->fam[i] == w->fam[n])
            compare_slot(w, i);
}

typedef struct walk {
    int seen[NKEYS];
    int n, stop;
    world *w;
    const cv_backend *b;
} walk;

static int walk_cb(cv_var *key, void *value, void *arg)
{
    walk *k = arg;
    int i;
    for (i = 0; i < k->w->nkeys && k->w->key[i] != key; i++)
        ;
    if (i == k->w->nkeys)
        DIE(k->w, k->b, "foreach visited a key never stored");
    if (k->seen[i] != -1)
        DIE(k->w, k->b, "foreach visited key %d twice (R10)", i);
    k->seen[i] = fz_value_index(value);
    k->n++;
    return k->stop > 0 && k->n >= k->stop ? 55 : 0;
}

static void cmd_foreach(world *w, int n, int stop)
{
    int want = 0;
    for (int k = 0; k < w->nkeys; k++)
        want += w->mv[n][k] >= 0;
    for (size_t b = 0; b < nb; b++) {
        walk k = {.stop = stop, .w = w, .b = backends[b]};
        memset(k.seen, -1, sizeof k.seen);
        int r = backends[b]->foreach(w->m[b][n], walk_cb, &k);
        int full = stop == 0 || stop > want;
        if (r != (full ? 0 : 55) || k.n != (full ? want : stop))
            DIE(w, backends[b], "foreach of slot %d returned %d after %d "
                "pairs (model: %d pairs, stop %d)", n, r, k.n, want, stop);
        for (int i = 0; i < w->nkeys; i++)
            if (k.seen[i] != -1 && k.seen[i] != w->mv[n][i])
                DIE(w, backends[b], "foreach of slot %d: key %d is %d, "
                    "model %d", n, i, k.seen[i], w->mv[n][i]);
            else if (full && k.seen[i] == -1 && w->mv[n][i] >= 0)
                DIE(w, backends[b], "foreach of slot %d missed key %d", n, i);
    }
}

/* Runs one write on backend b with the k-th allocation failing (0: none).
 * A call that fails with CV_ENOMEM must have changed nothing (its slot is
 * compared with the model, which has not moved yet); it is then repeated
 * without a failure, so that every backend stays in step with the model.
 * Returns the successful call's result. */
static int write_op(world *w, size_t b, int op, int n, int k, int val,
                    int src, int fail)
{
    const cv_backend *be = backends[b];
    for (;;) {
        long fails = tu_alloc_failures_total();
        cv_map *before = w->m[b][n];
        if (fail > 0)
            tu_alloc_fail_at(fail, 0);
        int r;
        if (op == 's') {
            r = be->set(&w->m[b][n], w->key[k], fz_hold(val));
            fz_unhold(val);
        } else if (op == 'd')
            r = be->del(&w->m[b][n], w->key[k]);
        else
            r = be->share(w->m[b][src], &w->m[b][n]);
        tu_alloc_fail_at(0, 0);
        int hit = tu_alloc_failures_total() != fails;
        /* hit and success: an optional step was skipped (chainmap's
         * absorb/shrink); the model comparison checks the result. */
        if (r != CV_ENOMEM)
            return r;
        if (!hit)
            DIE(w, be, "CV_ENOMEM without a failed allocation");
        if (w->m[b][n] != before)
            DIE(w, be, "a call that failed with CV_ENOMEM changed *m");
        if (op != 'h') {
            const char *e = be->check(w->m[b][n]);
            if (e != NULL)
                DIE(w, be, "check() after CV_ENOMEM: %s", e);
            compare_one(w, b, n);
        }
        fail = 0;
    }
}

static void run(world *w, fz_reader *rd)
{
    int fail = 0;
    while (rd->p < rd->end && w->step < FZ_MAX_CMDS) {
        int op = fz_byte(rd);
        w->op = op;
        w->step++;
        int n, k, d, a;
        switch (op) {
        case 's':
        case 'd':
            n = fz_arg(rd, NSNAP);
            k = fz_arg(rd, w->nkeys);
            d = op == 's' ? fz_arg(rd, FZ_NVAL) : 0;
            if (!w->live[n])
                break;
            for (size_t b = 0; b < nb; b++) {
                long calls = tu_alloc_calls();
                int r = write_op(w, b, op, n, k, d, 0, fail);
                int want = op == 's' ? 0 : w->mv[n][k] >= 0;
                if (r != want)
                    DIE(w, backends[b], "%s returned %d, model %d",
                        op == 's' ? "set" : "del", r, want);
                if (op == 's' && w->mv[n][k] == d && tu_alloc_calls() != calls)
                    DIE(w, backends[b], "storing the value already there "
                        "allocated");
            }
            w->mv[n][k] = (signed char)(op == 's' ? d : -1);
            fail = 0;
            compare_family(w, n);
            break;
        case 'f':
            n = fz_arg(rd, NSNAP);
            fz_arg(rd, w->nkeys);
            if (w->live[n])
                compare_slot(w, n);
            break;
        case 'l':
            fz_arg(rd, NSNAP);
            break; /* check_all compares every len anyway */
        case 'e':
            n = fz_arg(rd, NSNAP);
            k = fz_arg(rd, 8);
            if (w->live[n])
                cmd_foreach(w, n, k);
            break;
        case 'h':
            a = fz_arg(rd, NSNAP);
            n = fz_arg(rd, NSNAP);
            if (!w->live[a] || a == n)
                break;
            if (w->live[n]) {
                for (size_t b = 0; b < nb; b++)
                    backends[b]->release(w->m[b][n]);
                w->live[n] = 0;
            }
            for (size_t b = 0; b < nb; b++) {
                w->m[b][n] = NULL;
                if (write_op(w, b, 'h', n, 0, 0, a, fail) != 0)
                    DIE(w, backends[b], "share failed");
            }
            w->live[n] = 1;
            w->fam[n] = w->fam[a];
            memcpy(w->mv[n], w->mv[a], sizeof w->mv[n]);
            fail = 0;
            break;
        case 'r':
            n = fz_arg(rd, NSNAP);
            if (!w->live[n])
                break;
            for (size_t b = 0; b < nb; b++)
                backends[b]->release(w->m[b][n]);
            w->live[n] = 0;
            break;
        case 'a':
            for (int i = 0; i < NSNAP; i++)
                if (w->live[i])
                    compare_slot(w, i);
            break;
        case 'o':
            fail = 1 + fz_arg(rd, 8);
            break;
        default:
            w->step--;
            continue;
        }
        check_all(w);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FZ_MAX_INPUT)
        return 0;
    fz_init("map_ops", setup);
    fz_exec_count++;
    /* The thread's cached blocks (core/context.c: contexts, tokens, map
     * blocks) go back to the hook here and before the leak check below:
     * a block a map freed into the cache is not a leak. */
    cv_thread_cleanup();
    long live0 = tu_alloc_live(), hooks0 = fz_hook_balance();
    fz_reader rd = {data, data + size};
    static world w;
    memset(&w, 0, sizeof w);
    memset(w.mv, -1, sizeof w.mv);
    uint32_t base = fz_u32(&rd);
    w.nkeys = 1 + fz_byte(&rd) % NKEYS;
    for (int i = 0; i < w.nkeys; i++) {
        int shared = fz_byte(&rd) % 33, freeb = fz_byte(&rd);
        uint32_t low = shared >= 32 ? 0xffffffffu : (1u << shared) - 1;
        uint32_t h = (base & low) | (mix32((uint32_t)i * 0x9e3779b9u + (uint32_t)freeb) & ~low);
        char name[16];
        snprintf(name, sizeof name, "k%d", i);
        cv_var_opts o = {.name = name, .retain = fz_hook_retain,
                         .release = fz_hook_release, .ud = fz_hook_ud()};
        if (cv__var_new_hashed(&o, h, &w.key[i]) != 0)
            fz_die("cv__var_new_hashed failed");
    }
    w.live[0] = 1;
    for (int i = 0; i < NSNAP; i++)
        w.fam[i] = i;
    run(&w, &rd);
    w.op = '.';
    for (int i = 0; i < NSNAP; i++)
        if (w.live[i])
            compare_slot(&w, i);
    for (int i = 0; i < NSNAP; i++)
        if (w.live[i])
            for (size_t b = 0; b < nb; b++)
                backends[b]->release(w.m[b][i]);
    for (int i = 0; i < w.nkeys; i++)
        cv_var_release(w.key[i]);
    cv_thread_cleanup();
    if (tu_alloc_live() != live0)
        fz_die("leak: %ld blocks still allocated after releasing every map "
               "and key", tu_alloc_live() - live0);
    if (fz_hook_balance() != hooks0)
        fz_die("value hooks unbalanced by %ld after releasing every map",
               fz_hook_balance() - hooks0);
    return 0;
}
