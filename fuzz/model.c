/* SPDX-License-Identifier: MIT */
/*
 * model.c -- the reference model of the ctx language: plain C arrays,
 * written from SPEC.md alone (no code of core/ or maps/ is used or
 * mirrored). A context is a row of FZ_MAX_VARIDS value indexes (-1: the
 * var has no value there); contexts are never freed within a world, a
 * slot only forgets its uid; the thread's stack of entered contexts is an
 * array of uids with the base (uid 0) at the bottom.
 *
 * Rules it encodes: R3 (get: value, else default, else LOOKUP), R4
 * (get_or: value, else the explicit default), R5/R6 (tokens; reset checks
 * used, var, context in that order), R8/R9 (a copy is a copy of the row),
 * R11/R12 (enter/exit/run; a context entered anywhere cannot be entered;
 * only the top can be exited; the base never, nor a context a run entered
 * from inside that run's fn), R10 (items once each).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

typedef struct mtok {
    int live;
    int var;       /* var id */
    int ctx;       /* uid */
    int old;       /* value index or FZ_MISSING */
    int used;
} mtok;

typedef struct mstate {
    int var_slot[FZ_NVARS];                 /* var id, or -1 */
    int ctx_slot[FZ_NCTX];                  /* uid, or -1 */
    mtok tok[FZ_NTOK];
    int has_def[FZ_MAX_VARIDS];
    int def[FZ_MAX_VARIDS];
    int nuid;                               /* uids made, base included */
    signed char vals[FZ_MAX_UIDS][FZ_MAX_VARIDS];
    unsigned char entered[FZ_MAX_UIDS];
    unsigned char by_run[FZ_MAX_UIDS];      /* entered by a run: only the
                                               run exits it */
    int stack[FZ_MAX_DEPTH];
    int depth;
} mstate;

typedef struct model {
    mstate s;
    mstate saved;
} model;

void *fz_model_new(void)
{
    model *m = calloc(1, sizeof *m);
    if (m == NULL)
        abort();
    return m;
}

static mstate *S(void *self) { return &((model *)self)->s; }

static void m_begin(void *self)
{
    mstate *s = S(self);
    memset(s, 0, sizeof *s);
    for (int i = 0; i < FZ_NVARS; i++)
        s->var_slot[i] = -1;
    for (int i = 0; i < FZ_NCTX; i++)
        s->ctx_slot[i] = -1;
    memset(s->vals, -1, sizeof s->vals);
    s->nuid = 1;                 /* uid 0: the base, entered */
    s->entered[0] = 1;
    s->stack[0] = 0;
    s->depth = 1;
}

static void m_end(void *self) { (void)self; }
static void m_save(void *self) { ((model *)self)->saved = ((model *)self)->s; }
static void m_restore(void *self) { ((model *)self)->s = ((model *)self)->saved; }

static int top(mstate *s) { return s->stack[s->depth - 1]; }

static int m_var_new(void *self, int slot, int id, int has_default, int dflt)
{
    mstate *s = S(self);
    if (id >= FZ_MAX_VARIDS)
        abort();
    s->var_slot[slot] = id;
    s->has_def[id] = has_default;
    s->def[id] = dflt;
    return 0;
}

static void m_var_release(void *self, int slot) { S(self)->var_slot[slot] = -1; }

static void put(mstate *s, int uid, int var, int val) { s->vals[uid][var] = (signed char)val; }

static int m_set(void *self, int vslot, int val, int tslot)
{
    mstate *s = S(self);
    int id = s->var_slot[vslot], c = top(s);
    if (tslot >= 0) {
        mtok *t = &s->tok[tslot];
        t->live = 1;
        t->var = id;
        t->ctx = c;
        t->old = s->vals[c][id];
        t->used = 0;
    }
    put(s, c, id, val);
    return 0;
}

static int m_set_via_token(void *self, int tslot, int val)
{
    mstate *s = S(self);
    put(s, top(s), s->tok[tslot].var, val);
    return 0;
}

static int m_get(void *self, int vslot, int *val)
{
    mstate *s = S(self);
    int id = s->var_slot[vslot];
    int v = s->vals[top(s)][id];
    if (v >= 0) {
        *val = v;
        return 0;
    }
    if (s->has_def[id]) {
        *val = s->def[id];
        return 0;
    }
    return CV_ELOOKUP;
}

static int m_get_or(void *self, int vslot, int dflt, int *val)
{
    mstate *s = S(self);
    int v = s->vals[top(s)][s->var_slot[vslot]];
    *val = v >= 0 ? v : dflt;
    return 0;
}

static int m_reset(void *self, int vslot, int tslot)
{
    mstate *s = S(self);
    mtok *t = &s->tok[tslot];
    if (t->used)
        return CV_ETOKEN_USED;
    if (t->var != s->var_slot[vslot])
        return CV_ETOKEN_VAR;
    if (t->ctx != top(s))
        return CV_ETOKEN_CTX;
    put(s, t->ctx, t->var, t->old);
    t->used = 1;
    return 0;
}

static void m_tok_release(void *self, int tslot) { S(self)->tok[tslot].live = 0; }

static int m_tok_info(void *self, int tslot, int *var_id, int *used, int *old)
{
    mtok *t = &S(self)->tok[tslot];
    *var_id = t->var;
    *used = t->used;
    *old = t->old;
    return 0;
}

static int new_uid(mstate *s, int slot, int from)
{
    if (s->nuid >= FZ_MAX_UIDS)
        abort();              /* the interpreter caps creations */
    int u = s->nuid++;
    if (from >= 0)
        memcpy(s->vals[u], s->vals[from], sizeof s->vals[u]);
    s->entered[u] = 0;
    s->ctx_slot[slot] = u;
    return 0;
}

static int m_ctx_new(void *self, int slot) { return new_uid(S(self), slot, -1); }
static int m_ctx_copy_current(void *self, int slot) { return new_uid(S(self), slot, top(S(self))); }
static int m_ctx_copy(void *self, int src, int slot) { return new_uid(S(self), slot, S(self)->ctx_slot[src]); }
static void m_ctx_release(void *self, int slot) { S(self)->ctx_slot[slot] = -1; }

static int m_enter(void *self, int slot)
{
    mstate *s = S(self);
    int u = s->ctx_slot[slot];
    if (s->entered[u])
        return CV_EENTERED;
    if (s->depth >= FZ_MAX_DEPTH)
        abort();
    s->entered[u] = 1;
    s->stack[s->depth++] = u;
    return 0;
}

static int m_exit(void *self, int slot)
{
    mstate *s = S(self);
    int u = slot < 0 ? top(s) : s->ctx_slot[slot];
    if (u == 0 || !s->entered[u] || top(s) != u || s->by_run[u])
        return CV_ENOTENTERED;
    s->entered[u] = 0;
    s->depth--;
    return 0;
}

/* R11: a context entered by run is exited by that run (fn cannot exit it:
 * there would be nothing left for run to restore; CPython's Context.run
 * fails in that case too). */
static int m_run_begin(void *self, int slot)
{
    int r = m_enter(self, slot);
    if (r == 0)
        S(self)->by_run[top(S(self))] = 1;
    return r;
}

static void m_run_end(void *self, int depth_before)
{
    mstate *s = S(self);
    while (s->depth > depth_before && s->depth > 1) {
        int u = s->stack[--s->depth];
        s->entered[u] = 0;
        s->by_run[u] = 0;
    }
}

static int uid_of(mstate *s, int slot) { return slot < 0 ? top(s) : s->ctx_slot[slot]; }

static int m_len(void *self, int slot, long *n)
{
    mstate *s = S(self);
    int u = uid_of(s, slot);
    long k = 0;
    for (int i = 0; i < FZ_MAX_VARIDS; i++)
        k += s->vals[u][i] >= 0;
    *n = k;
    return 0;
}

static int m_items(void *self, int slot, fz_pair *out, int cap, int *n)
{
    mstate *s = S(self);
    int u = uid_of(s, slot), k = 0;
    for (int i = 0; i < FZ_MAX_VARIDS && k < cap; i++)
        if (s->vals[u][i] >= 0) {
            out[k].var = i;
            out[k].val = s->vals[u][i];
            k++;
        }
    *n = k;
    return 0;
}

static int m_ctx_get(void *self, int slot, int vslot, int *val)
{
    mstate *s = S(self);
    int v = s->vals[s->ctx_slot[slot]][s->var_slot[vslot]];
    if (v < 0)
        return 0;
    *val = v;
    return 1;
}

const fz_ref_ops fz_model_ops = {
    .name = "model",
    .begin = m_begin,
    .end = m_end,
    .save = m_save,
    .restore = m_restore,
    .var_new = m_var_new,
    .var_release = m_var_release,
    .set = m_set,
    .set_via_token = m_set_via_token,
    .get = m_get,
    .get_or = m_get_or,
    .reset = m_reset,
    .tok_release = m_tok_release,
    .tok_info = m_tok_info,
    .ctx_new = m_ctx_new,
    .ctx_copy_current = m_ctx_copy_current,
    .ctx_copy = m_ctx_copy,
    .ctx_release = m_ctx_release,
    .enter = m_enter,
    .exit = m_exit,
    .run_begin = m_run_begin,
    .run_end = m_run_end,
    .len = m_len,
    .items = m_items,
    .ctx_get = m_ctx_get,
};
