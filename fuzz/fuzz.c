/*
 * fuzz.c -- the shared part of the fuzz targets: bytes, values with counted
 * hooks, and the interpreter of the ctx language (see fuzz.h) that runs
 * every command on the library and on a reference side by side and
 * compares what each observes. The allocator is tests/support/testalloc.c.
 *
 * The interpreter runs one world at a time on one backend: the thread's
 * base context is made on that backend (cv_backend_set_default, then
 * lazily on first use, as a program would), and cv_thread_cleanup ends it.
 * A world cannot run in lockstep with another backend's world on the same
 * thread, because cv_context_run nests a callback; the targets therefore
 * run the input once per backend and compare each run with the reference
 * as it goes (and the digests of all runs at the end).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

const char *fz_target = "fuzz";

void fz_init(const char *target, void (*setup)(void))
{
    static int done;
    if (done)
        return;
    done = 1;
    fz_target = target;
    setup();
    tu_alloc_install();
}
unsigned long fz_exec_count;
fz_lookup_fn fz_backend_lookup = cv_backend_get;

void fz_die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "\n%s: ", fz_target);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (execution #%lu of this process)\n", fz_exec_count);
    fflush(stderr);
    abort();
}

/* ------------------------------------------------------------------------
 * Bytes
 * ------------------------------------------------------------------------ */
int fz_byte(fz_reader *r)
{
    return r->p < r->end ? *r->p++ : 0;
}

int fz_arg(fz_reader *r, int n)
{
    int b = fz_byte(r);
    if (b >= '0' && b <= '9')
        b -= '0';
    return b % n;
}

uint32_t fz_u32(fz_reader *r)
{
    uint32_t x = 0;
    for (int i = 0; i < 4; i++)
        x |= (uint32_t)fz_byte(r) << (8 * i);
    return x;
}

/* ------------------------------------------------------------------------
 * Values and hooks
 * ------------------------------------------------------------------------ */
/* A pool value models an object with a real reference count (R14b): the
 * library's holds (hook retains minus releases) plus the caller's own
 * reference, which the interpreter holds only while it passes the value
 * into a call (fz_hold .. fz_unhold), as `v.set(obj)` does with a
 * temporary. When both are gone the object is dead: a retain or release
 * of it after that means its count passed through zero while something
 * still held it. Passing a dead value again makes a new object (a new
 * allocation at the same address). */
static struct {
    long refs;                 /* hook retains minus releases */
    int user;                  /* the caller holds it (during a call) */
    int dead;                  /* the count reached zero */
    char pad[8];
} pool[FZ_NVAL];
static long null_refs;         /* the hooks also see the NULL value */
static char hook_ud;           /* every hooked var gets &hook_ud ... */

/* ... except a var made by W, whose ud is its rule: when a value released
 * through it dies (its count reaches zero), the hook sets var slot
 * `target` to value `val` (R14a: hooks may call back into the library). */
typedef struct fz_writer {
    int target;
    int val;
} fz_writer;
static fz_writer writers[FZ_NVARS];

static void hook_write_fire(const fz_writer *w);

void *fz_value(int i)
{
    return i <= 0 ? NULL : (void *)&pool[i];
}

/* The caller's reference to value i, for the length of one call. */
void *fz_hold(int i)
{
    if (i > 0) {
        pool[i].user = 1;
        pool[i].dead = 0;
    }
    return fz_value(i);
}

void fz_unhold(int i)
{
    if (i > 0) {
        pool[i].user = 0;
        if (pool[i].refs == 0)
            pool[i].dead = 1;
    }
}

int fz_value_index(const void *p)
{
    if (p == NULL)
        return 0;
    for (int i = 1; i < FZ_NVAL; i++)
        if (p == (const void *)&pool[i])
            return i;
    return -1;
}

static const fz_writer *writer_of(const void *ud)
{
    for (int i = 0; i < FZ_NVARS; i++)
        if (ud == &writers[i])
            return &writers[i];
    return NULL;
}

static long *refs_of(void *value, void *ud)
{
    if (ud != &hook_ud && writer_of(ud) == NULL)
        fz_die("value hook called with the wrong ud %p", ud);
    int i = fz_value_index(value);
    if (i < 0)
        fz_die("value hook called with a value never stored: %p", value);
    return i == 0 ? &null_refs : &pool[i].refs;
}

void fz_hook_retain(void *value, void *ud)
{
    long *r = refs_of(value, ud);
    int i = fz_value_index(value);
    if (i > 0 && pool[i].dead)
        fz_die("value %d retained after its count reached zero (R14b: a "
               "holder must retain before any holder releases)", i);
    ++*r;
}

void fz_hook_release(void *value, void *ud)
{
    long *r = refs_of(value, ud);
    int i = fz_value_index(value);
    if (i > 0 && pool[i].dead)
        fz_die("value %d released after its count reached zero (R14b)", i);
    if (--*r < 0)
        fz_die("value %d released more often than retained (R14)", i);
    if (*r > 0 || i <= 0 || pool[i].user)
        return;
    pool[i].dead = 1;
    const fz_writer *w = writer_of(ud);
    if (w != NULL)
        hook_write_fire(w);
}

void *fz_hook_ud(void) { return &hook_ud; }

long fz_hook_balance(void)
{
    long b = null_refs;
    for (int i = 0; i < FZ_NVAL; i++)
        b += pool[i].refs;
    return b;
}

/* ------------------------------------------------------------------------
 * Backends
 * ------------------------------------------------------------------------ */
size_t fz_backends(const cv_backend **out, size_t cap)
{
    const char *env = getenv("CTXVAR_FUZZ_BACKENDS");
    if (env == NULL || env[0] == '\0') {
        size_t n = cv_backend_list(out, cap);
        return n < cap ? n : cap;
    }
    size_t n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", env);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok && n < cap;
         tok = strtok_r(NULL, ",", &save)) {
        const cv_backend *b = fz_backend_lookup(tok);
        if (b == NULL) {
            fprintf(stderr, "%s: CTXVAR_FUZZ_BACKENDS: unknown backend '%s'\n",
                    fz_target, tok);
            exit(2);
        }
        out[n++] = b;
    }
    return n;
}

/* ========================================================================
 * The interpreter
 * ======================================================================== */

typedef struct interp {
    const fz_opts *o;
    const fz_ref_ops *ref;
    void *rs;                           /* ref self */
    fz_reader r;
    size_t max_cmds;
    unsigned long steps;
    uint64_t digest;
    long enomem;
    long absorbed;                      /* failed allocations worked around */
    const char *op;                     /* the command running, for messages */

    cv_var *var[FZ_NVARS];
    cv_token *tok[FZ_NTOK];
    cv_context *ctx[FZ_NCTX];
    int next_var_id;
    int ctxs_made;                      /* contexts made (uids used), base 1 */
    int depth;                          /* entered contexts, base included */
    int no_body;                        /* a run the ref refused: fn must
                                           not be called */
    unsigned long bodies;               /* run bodies entered through fn */
    int run_depth;
    int frame_depth[FZ_MAX_RUN + 1];    /* depth right after each run entered */
    long fail_mark;                     /* failures before the real call */

    /* Writes made by W hooks inside the library, to be made on the
     * reference once the library call returns (R14a: as if just after). */
    struct {
        int slot, val, result;
    } hw[16];
    int nhw;
    int in_hook;                        /* a hook's own write runs no hook */
    int hooks_off;                      /* the final teardown */
    long hook_writes;                   /* made, over the whole input */
} interp;

static interp *cur_interp;              /* the one running, for the hooks */

static void mix(interp *in, long x)
{
    in->digest ^= (uint64_t)x + 0x9e3779b97f4a7c15u;
    in->digest *= 0x100000001b3u;
}

#if defined(__GNUC__)
__attribute__((noreturn, format(printf, 2, 3)))
#endif
static void die_in(const interp *in, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fz_die("backend %s vs %s, step %lu, command '%s': %s",
           cv_backend_name(in->o->backend), in->ref->name, in->steps, in->op,
           msg);
}
#define DIE die_in

/* OOM bookkeeping around each real call that may allocate. */
static void before_real(interp *in)
{
    if (in->o->oom)
        in->ref->save(in->rs);
    in->fail_mark = tu_alloc_failures_total();
}

static void full_compare(interp *in, const char *why);
static void hook_writes_apply(interp *in);

/* Returns 1 when the real call failed with an injected ENOMEM (the ref was
 * rolled back and the whole state compared: the caller stops there). */
static int after_real(interp *in, int real)
{
    int injected = tu_alloc_failures_total() != in->fail_mark;
    if (real == CV_ENOMEM && in->o->oom)
        in->ref->restore(in->rs); /* before the hooks' writes are made */
    hook_writes_apply(in);
    if (real == CV_ENOMEM) {
        if (!in->o->oom || !injected)
            DIE(in, "CV_ENOMEM but no allocation failed");
        in->enomem++;
        tu_alloc_fail_at(0, 0); /* "forever" lasts until the call returns */
        full_compare(in, "after a call failed with CV_ENOMEM (a failed call "
                         "must change nothing)");
        return 1;
    }
    if (injected) {
        /* A backend may skip an optional step whose allocation failed
         * (chainmap's absorb and shrink are documented so): the call then
         * succeeds, and the comparison with the reference checks that its
         * result is right. */
        tu_alloc_fail_at(0, 0);
        in->absorbed++;
    }
    return 0;
}

static void check_err(interp *in, int real, int want)
{
    mix(in, real);
    if (real != want)
        DIE(in, "library returned %d (%s), %s says %d (%s)", real,
            cv_err_name(real), in->ref->name, want, cv_err_name(want));
}

static int var_id_of(interp *in, const cv_var *v)
{
    const char *name = cv_var_name(v);
    if (name == NULL || name[0] != 'v')
        DIE(in, "a var with a foreign name '%s'", name ? name : "(null)");
    return atoi(name + 1);
}

static int value_index(interp *in, const void *p)
{
    int i = fz_value_index(p);
    if (i < 0)
        DIE(in, "the library returned a value it was never given: %p", p);
    return i;
}

/* ------------------------------------------------------------------------
 * Items: foreach on the library side, compared with the ref's items.
 * ------------------------------------------------------------------------ */
#define STOP_RET 77

typedef struct walk {
    interp *in;
    fz_pair got[FZ_MAX_VARIDS + 1];
    int n;
    int stop_after;     /* 0: never stop */
    int set_var;        /* -1: no write during the walk */
    int set_val;
    int set_err;        /* what that write returned */
} walk;

static int walk_cb(cv_var *v, void *value, void *arg)
{
    walk *w = arg;
    if (w->n > FZ_MAX_VARIDS)
        DIE(w->in, "foreach visited more pairs than vars exist");
    w->got[w->n].var = var_id_of(w->in, v);
    w->got[w->n].val = value_index(w->in, value);
    w->n++;
    if (w->n == 1 && w->set_var >= 0)
    {
        w->set_err = cv_var_set(w->in->var[w->set_var],
                                fz_hold(w->set_val), NULL);
        fz_unhold(w->set_val);
    }
    if (w->stop_after > 0 && w->n >= w->stop_after)
        return STOP_RET;
    return 0;
}

static int pair_cmp(const void *a, const void *b)
{
    const fz_pair *x = a, *y = b;
    return x->var != y->var ? (x->var < y->var ? -1 : 1)
                            : (x->val > y->val) - (x->val < y->val);
}

static void print_pairs(const char *what, const fz_pair *p, int n)
{
    fprintf(stderr, "  %s (%d):", what, n);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " v%d=%d", p[i].var, p[i].val);
    fprintf(stderr, "\n");
}

/* Compares a walk (full or stopped) with the ref's pairs. */
static void compare_items(interp *in, walk *w, int ret, const fz_pair *want,
                          int nwant, const char *what)
{
    qsort(w->got, (size_t)w->n, sizeof w->got[0], pair_cmp);
    for (int i = 1; i < w->n; i++)
        if (w->got[i].var == w->got[i - 1].var) {
            print_pairs("library", w->got, w->n);
            DIE(in, "%s: foreach visited v%d twice (R10)", what, w->got[i].var);
        }
    int full = w->stop_after == 0 || w->stop_after > nwant;
    /* A stopped walk's pairs depend on the backend's order: not digested. */
    for (int i = 0; full && i < w->n; i++)
        mix(in, w->got[i].var * 64 + w->got[i].val);
    mix(in, w->n);
    mix(in, ret);
    int want_n = full ? nwant : w->stop_after;
    int want_ret = full ? 0 : STOP_RET;
    int ok = w->n == want_n && ret == want_ret;
    for (int i = 0, j = 0; ok && i < w->n; i++) {
        while (j < nwant && want[j].var < w->got[i].var)
            j++;
        ok = j < nwant && want[j].var == w->got[i].var &&
             want[j].val == w->got[i].val;
    }
    if (!ok) {
        print_pairs("library", w->got, w->n);
        print_pairs(in->ref->name, want, nwant);
        DIE(in, "%s: the contents differ (foreach returned %d, want %d; "
                "stop after %d)%s",
            what, ret, want_ret, w->stop_after,
            in->ctxs_made > 1 || w->set_var >= 0
                ? " -- ISOLATION MISMATCH (R9: a copy, or the snapshot a "
                  "foreach walks, must not see the other side's writes)"
                : "");
    }
}

/* ------------------------------------------------------------------------
 * Full state comparison: every live context, the current one, every var's
 * get, every token.
 * ------------------------------------------------------------------------ */
static void items_of(interp *in, int slot, const char *why)
{
    fz_pair want[FZ_MAX_VARIDS];
    int nwant = 0;
    if (in->ref->items(in->rs, slot, want, FZ_MAX_VARIDS, &nwant) != 0)
        return;
    cv_context *c = slot < 0 ? cv_context_current() : in->ctx[slot];
    if (c == NULL)
        DIE(in, "%s: cv_context_current() returned NULL", why);
    walk w = {.in = in, .set_var = -1};
    int ret = cv_context_foreach(c, walk_cb, &w);
    compare_items(in, &w, ret, want, nwant, why);
    long n = (long)cv_context_len(c), rn = -1;
    in->ref->len(in->rs, slot, &rn);
    if (n != rn)
        DIE(in, "%s: len %ld, %s says %ld", why, n, in->ref->name, rn);
}

static void full_compare(interp *in, const char *why)
{
    for (int i = 0; i < FZ_NCTX; i++)
        if (in->ctx[i] != NULL)
            items_of(in, i, why);
    items_of(in, -1, why);
    for (int i = 0; i < FZ_NVARS; i++) {
        if (in->var[i] == NULL)
            continue;
        void *out = NULL;
        int want = -1, wr = in->ref->get(in->rs, i, &want);
        int r = cv_var_get(in->var[i], &out);
        if (r != wr || (r == 0 && value_index(in, out) != want))
            DIE(in, "%s: get(var slot %d) differs", why, i);
    }
    for (int i = 0; i < FZ_NTOK; i++) {
        if (in->tok[i] == NULL)
            continue;
        int vid, used, old;
        in->ref->tok_info(in->rs, i, &vid, &used, &old);
        void *o = NULL;
        int had = cv_token_old_value(in->tok[i], &o);
        int rold = had == 1 ? value_index(in, o) : FZ_MISSING;
        if (var_id_of(in, cv_token_var(in->tok[i])) != vid || rold != old ||
            (used != FZ_UNKNOWN && cv_token_used(in->tok[i]) != used))
            DIE(in, "%s: token slot %d differs", why, i);
    }
}

/* ------------------------------------------------------------------------
 * Commands
 * ------------------------------------------------------------------------ */
/* drop_var, drop_tok, drop_ctx: release what slot s of that table holds,
 * and the reference's twin of it; an empty slot is left alone. The slot is
 * emptied first (a hook must not write a released var), and the writes the
 * hooks made are mirrored after (the command may go on to other calls). */
#define DEFINE_DROP(table, type, release)                                  \
    static void drop_##table(interp *in, int s)                            \
    {                                                                      \
        if (in->table[s] == NULL)                                          \
            return;                                                        \
        type *x = in->table[s];                                            \
        in->table[s] = NULL;                                               \
        release(x);                                                        \
        in->ref->table##_release(in->rs, s);                               \
        hook_writes_apply(in);                                             \
    }
DEFINE_DROP(var, cv_var, cv_var_release)
DEFINE_DROP(tok, cv_token, cv_token_release)
DEFINE_DROP(ctx, cv_context, cv_context_release)
#undef DEFINE_DROP

/* Called by the value hook of a W var when a value dies. */
static void hook_write_fire(const fz_writer *w)
{
    interp *in = cur_interp;
    if (in == NULL || in->in_hook || in->hooks_off ||
        in->nhw == (int)(sizeof in->hw / sizeof in->hw[0]))
        return;
    cv_var *v = in->var[w->target];
    if (v == NULL)
        return;
    in->in_hook = 1;
    int r = cv_var_set(v, fz_hold(w->val), NULL);
    fz_unhold(w->val);
    in->in_hook = 0;
    in->hw[in->nhw].slot = w->target;
    in->hw[in->nhw].val = w->val;
    in->hw[in->nhw].result = r;
    in->nhw++;
    in->hook_writes++;
}

/* The hooks' writes, made on the reference in the order the library made
 * them; then the hooks' view of the current context is compared. */
static void hook_writes_apply(interp *in)
{
    int n = in->nhw;
    in->nhw = 0;
    for (int i = 0; i < n; i++) {
        int slot = in->hw[i].slot, val = in->hw[i].val, r = in->hw[i].result;
        mix(in, 7000 + slot * 16 + val);
        if (r == CV_ENOMEM) {
            if (!in->o->oom)
                DIE(in, "a hook's write failed with CV_ENOMEM, no allocation "
                        "failed");
            tu_alloc_fail_at(0, 0);
            continue; /* a failed write changed nothing */
        }
        if (in->o->oom)
            in->ref->save(in->rs); /* the next restore keeps this write */
        int rr = in->ref->set(in->rs, slot, val, -1);
        if (rr == FZ_SKIP)
            DIE(in, "%s cannot make a hook's write", in->ref->name);
        if (r != rr)
            DIE(in, "a hook's write of var slot %d returned %d (%s), %s says "
                    "%d (R14a)", slot, r, cv_err_name(r), in->ref->name, rr);
    }
    if (n > 0) {
        /* what the hooks wrote is what a get answers now (R14a) */
        int want, got;
        int slot = in->hw[n - 1].slot;
        if (in->var[slot] != NULL &&
            in->ref->get_or(in->rs, slot, 0, &want) != FZ_SKIP) {
            got = value_index(in, cv_var_get_or(in->var[slot], NULL));
            if (got != want)
                DIE(in, "after a hook's write, get(var slot %d) is %d, %s says "
                        "%d (R14a: the cache must see the hook's write)",
                    slot, got, in->ref->name, want);
        }
    }
}

static void cmd_var_new_as(interp *in, int writer)
{
    int s = fz_arg(&in->r, FZ_NVARS), f = fz_byte(&in->r),
        d = fz_arg(&in->r, FZ_NVAL);
    int target = writer ? fz_arg(&in->r, FZ_NVARS) : 0;
    int wval = writer ? fz_arg(&in->r, FZ_NVAL) : 0;
    if (f >= '0' && f <= '9')
        f -= '0';
    if (writer)
        f |= 2; /* a writer is hooked */
    if (in->next_var_id >= FZ_MAX_VARIDS)
        return;
    drop_var(in, s);
    int id = in->next_var_id;
    char name[16];
    snprintf(name, sizeof name, "v%d", id);
    before_real(in);
    int rr = in->ref->var_new(in->rs, s, id, f & 1, d);
    if (rr == FZ_SKIP)
        return;
    cv_var *v = NULL;
    int r;
    if (f & 2 || f & 4) {
        cv_var_opts o = {.name = name, .has_default = f & 1,
                         .dflt = fz_hold(d)};
        if (f & 2) {
            o.retain = fz_hook_retain;
            o.release = fz_hook_release;
            o.ud = (void *)((char *)&hook_ud);
        }
        if (writer) {
            writers[s] = (fz_writer){.target = target, .val = wval};
            o.ud = &writers[s];
        }
        r = cv_var_new_ex(&o, &v);
    } else if (f & 1) {
        r = cv_var_new_default(name, fz_hold(d), &v);
    } else {
        r = cv_var_new(name, &v);
    }
    fz_unhold(d);
    if (after_real(in, r))
        return;
    check_err(in, r, rr);
    in->var[s] = v;
    in->next_var_id++;
    if (strcmp(cv_var_name(v), name) != 0)
        DIE(in, "cv_var_name is '%s', want '%s' (R1)", cv_var_name(v), name);
}

static void cmd_set(interp *in, int with_token)
{
    int s = fz_arg(&in->r, FZ_NVARS), d = fz_arg(&in->r, FZ_NVAL);
    int t = with_token ? fz_arg(&in->r, FZ_NTOK) : -1;
    if (in->var[s] == NULL)
        return;
    if (t >= 0)
        drop_tok(in, t);
    before_real(in);
    int rr = in->ref->set(in->rs, s, d, t);
    if (rr == FZ_SKIP)
        return;
    cv_token *tok = NULL;
    int r = cv_var_set(in->var[s], fz_hold(d), t >= 0 ? &tok : NULL);
    fz_unhold(d);
    if (after_real(in, r))
        return;
    check_err(in, r, rr);
    if (t >= 0)
        in->tok[t] = tok;
}

static void cmd_set_via_token(interp *in)
{
    int t = fz_arg(&in->r, FZ_NTOK), d = fz_arg(&in->r, FZ_NVAL);
    if (in->tok[t] == NULL)
        return;
    before_real(in);
    int rr = in->ref->set_via_token(in->rs, t, d);
    if (rr == FZ_SKIP)
        return;
    int r = cv_var_set(cv_token_var(in->tok[t]), fz_hold(d), NULL);
    fz_unhold(d);
    if (after_real(in, r))
        return;
    check_err(in, r, rr);
}

static void cmd_get(interp *in, int with_default)
{
    int s = fz_arg(&in->r, FZ_NVARS);
    int d = with_default ? fz_arg(&in->r, FZ_NVAL) : 0;
    if (in->var[s] == NULL)
        return;
    int want = -1, got;
    long calls = tu_alloc_calls();
    if (with_default) {
        if (in->ref->get_or(in->rs, s, d, &want) == FZ_SKIP)
            return;
        got = value_index(in, cv_var_get_or(in->var[s], fz_value(d)));
        mix(in, got);
        if (got != want)
            DIE(in, "get_or(var slot %d, %d) is value %d, %s says %d%s", s, d,
                got, in->ref->name, want,
                in->ctxs_made > 1 ? " -- ISOLATION MISMATCH (R9)" : "");
    } else {
        int rr = in->ref->get(in->rs, s, &want);
        if (rr == FZ_SKIP)
            return;
        void *out = fz_value(3);
        int r = cv_var_get(in->var[s], &out);
        check_err(in, r, rr);
        if (r == 0) {
            got = value_index(in, out);
            mix(in, got);
            if (got != want)
                DIE(in, "get(var slot %d) is value %d, %s says %d%s", s, got,
                    in->ref->name, want,
                    in->ctxs_made > 1 ? " -- ISOLATION MISMATCH (R9: a copy "
                                        "must not see the other side's writes)"
                                      : "");
        } else if (out != fz_value(3)) {
            DIE(in, "a failed get wrote *out (R3)");
        }
    }
    if (tu_alloc_calls() != calls)
        DIE(in, "getting a value allocated (R13)");
}

static void cmd_reset(interp *in)
{
    int s = fz_arg(&in->r, FZ_NVARS), t = fz_arg(&in->r, FZ_NTOK);
    if (in->var[s] == NULL || in->tok[t] == NULL)
        return;
    before_real(in);
    int rr = in->ref->reset(in->rs, s, t);
    if (rr == FZ_SKIP)
        return;
    int r = cv_var_reset(in->var[s], in->tok[t]);
    if (after_real(in, r))
        return;
    check_err(in, r, rr);
}

static void cmd_tok_info(interp *in)
{
    int t = fz_arg(&in->r, FZ_NTOK);
    if (in->tok[t] == NULL)
        return;
    int vid, used, old;
    if (in->ref->tok_info(in->rs, t, &vid, &used, &old) == FZ_SKIP)
        return;
    cv_var *v = cv_token_var(in->tok[t]);
    void *o = NULL;
    int had = cv_token_old_value(in->tok[t], &o);
    int rold = had == 1 ? value_index(in, o) : FZ_MISSING;
    int rused = cv_token_used(in->tok[t]);
    mix(in, rold);
    mix(in, rused);
    if (had < 0 || var_id_of(in, v) != vid || rold != old ||
        (used != FZ_UNKNOWN && rused != used))
        DIE(in, "token slot %d: var v%d old %d used %d, %s says v%d old %d "
                "used %d", t, var_id_of(in, v), rold, rused, in->ref->name,
            vid, old, used);
}

static int can_make_ctx(interp *in) { return in->ctxs_made < FZ_MAX_UIDS; }

static void cmd_ctx_new(interp *in, int kind)
{
    int c = fz_arg(&in->r, FZ_NCTX), src = 0, f = 0;
    if (kind == 'N')
        f = fz_arg(&in->r, 2);
    else if (kind == 'c')
        src = fz_arg(&in->r, FZ_NCTX), c = fz_arg(&in->r, FZ_NCTX);
    if (!can_make_ctx(in) || (kind == 'c' && in->ctx[src] == NULL))
        return;
    if (kind == 'c' && c == src) {
        /* copy into the slot it comes from: keep the source alive */
    } else {
        drop_ctx(in, c);
    }
    before_real(in);
    int rr = kind == 'N'   ? in->ref->ctx_new(in->rs, c)
             : kind == 'C' ? in->ref->ctx_copy_current(in->rs, c)
                           : in->ref->ctx_copy(in->rs, src, c);
    if (rr == FZ_SKIP)
        return;
    cv_context *n = NULL;
    int r = kind == 'N'   ? (f ? cv_context_new_on(in->o->backend, &n)
                               : cv_context_new(&n))
            : kind == 'C' ? cv_copy_context(&n)
                          : cv_context_copy(in->ctx[src], &n);
    if (after_real(in, r))
        return;
    check_err(in, r, rr);
    if (cv_context_backend(n) != in->o->backend)
        DIE(in, "a new context is on backend %s",
            cv_backend_name(cv_context_backend(n)));
    if (kind == 'c' && c == src)
        cv_context_release(in->ctx[c]); /* the ref's slot was overwritten */
    in->ctx[c] = n;
    in->ctxs_made++;
}

static void cmd_enter(interp *in)
{
    int c = fz_arg(&in->r, FZ_NCTX);
    if (in->ctx[c] == NULL || in->depth >= FZ_MAX_DEPTH)
        return;
    before_real(in);
    int rr = in->ref->enter(in->rs, c);
    if (rr == FZ_SKIP)
        return;
    int r = cv_context_enter(in->ctx[c]);
    if (after_real(in, r))
        return;
    check_err(in, r, rr);
    if (r == 0)
        in->depth++;
}

static void cmd_exit(interp *in, int current)
{
    int c = current ? -1 : fz_arg(&in->r, FZ_NCTX);
    if (c >= 0 && in->ctx[c] == NULL)
        return;
    if (current && in->depth == 1 && in->o->skip_base_exit)
        return;
    if (in->run_depth > 0 && in->depth == in->frame_depth[in->run_depth] &&
        in->o->skip_run_frame_exit &&
        (current || in->ctx[c] == cv_context_current()))
        return;
    before_real(in);
    int rr = in->ref->exit(in->rs, c);
    if (rr == FZ_SKIP)
        return;
    int r;
    if (current) {
        cv_context *cur = cv_context_current();
        r = cur == NULL ? CV_ENOMEM : cv_context_exit(cur);
    } else {
        r = cv_context_exit(in->ctx[c]);
    }
    if (after_real(in, r))
        return;
    check_err(in, r, rr);
    if (r == 0)
        in->depth--;
}

static int exec_block(interp *in, int in_run);

static int run_body_cb(void *arg)
{
    interp *in = arg;
    if (in->no_body)
        DIE(in, "run called fn although %s says it cannot enter (R11)",
            in->ref->name);
    in->bodies++;
    return exec_block(in, 1);
}

static void cmd_run(interp *in)
{
    int c = fz_arg(&in->r, FZ_NCTX);
    if (in->ctx[c] == NULL || in->run_depth >= FZ_MAX_RUN ||
        in->depth >= FZ_MAX_DEPTH) {
        exec_block(in, 1); /* the body runs inline */
        return;
    }
    int before = in->depth;
    int rr = in->ref->run_begin(in->rs, c);
    if (rr == FZ_SKIP) {
        exec_block(in, 1);
        return;
    }
    if (rr != 0) {
        in->no_body = 1;
        int r = cv_context_run(in->ctx[c], run_body_cb, in);
        in->no_body = 0;
        check_err(in, r, rr);
        exec_block(in, 1);
        return;
    }
    in->run_depth++;
    in->frame_depth[in->run_depth] = ++in->depth;
    const char *op = in->op;
    unsigned long bodies = in->bodies;
    int r = cv_context_run(in->ctx[c], run_body_cb, in);
    if (in->bodies == bodies)
        DIE(in, "run returned %d without calling fn (R11)", r);
    in->op = op;
    in->run_depth--;
    in->depth = before;
    in->ref->run_end(in->rs, before);
    mix(in, r);
    if (r < 0)
        DIE(in, "run returned %s, %s entered", cv_err_name(r), in->ref->name);
    /* r is what the body's ')' returned; the body checked the rest. */
}

static void cmd_len(interp *in)
{
    int c = fz_arg(&in->r, 10);
    if (c >= FZ_NCTX)
        c = -1;
    else if (in->ctx[c] == NULL)
        return;
    long want = -1;
    if (in->ref->len(in->rs, c, &want) == FZ_SKIP)
        return;
    cv_context *x = c < 0 ? cv_context_current() : in->ctx[c];
    if (x == NULL) {
        if (in->o->oom) {
            tu_alloc_fail_at(0, 0);
            return;
        }
        DIE(in, "cv_context_current() returned NULL");
    }
    long n = (long)cv_context_len(x);
    mix(in, n);
    if (n != want)
        DIE(in, "len of %s is %ld, %s says %ld%s",
            c < 0 ? "the current context" : "a context slot", n,
            in->ref->name, want,
            in->ctxs_made > 1 ? " -- ISOLATION MISMATCH (R9)" : "");
}

static void cmd_foreach(interp *in)
{
    int c = fz_arg(&in->r, 10), k = fz_arg(&in->r, 8),
        w = fz_arg(&in->r, 2), s = fz_arg(&in->r, FZ_NVARS),
        d = fz_arg(&in->r, FZ_NVAL);
    if (c >= FZ_NCTX)
        c = -1;
    else if (in->ctx[c] == NULL)
        return;
    if (w && (in->var[s] == NULL || in->o->oom))
        w = 0;
    fz_pair want[FZ_MAX_VARIDS];
    int nwant = 0;
    if (in->ref->items(in->rs, c, want, FZ_MAX_VARIDS, &nwant) == FZ_SKIP)
        return;
    before_real(in);
    int rr = 0;
    if (w && nwant > 0)
        rr = in->ref->set(in->rs, s, d, -1);
    if (rr == FZ_SKIP)
        return; /* only a reference that cannot set skips here */
    cv_context *x = c < 0 ? cv_context_current() : in->ctx[c];
    walk wk = {.in = in, .stop_after = k, .set_var = w ? s : -1,
               .set_val = d};
    int ret = x == NULL ? CV_ENOMEM : cv_context_foreach(x, walk_cb, &wk);
    if (ret == CV_ENOMEM && after_real(in, ret))
        return;
    if (after_real(in, 0))
        return;
    compare_items(in, &wk, ret, want, nwant,
                  c < 0 ? "foreach(current)" : "foreach(context slot)");
    if (w && nwant > 0)
        check_err(in, wk.set_err, rr);
}

static void cmd_ctx_get(interp *in)
{
    int c = fz_arg(&in->r, FZ_NCTX), s = fz_arg(&in->r, FZ_NVARS);
    if (in->ctx[c] == NULL || in->var[s] == NULL)
        return;
    int want = -1;
    int rr = in->ref->ctx_get(in->rs, c, s, &want);
    if (rr == FZ_SKIP)
        return;
    void *out = NULL;
    long calls = tu_alloc_calls();
    int r = cv_context_get(in->ctx[c], in->var[s], &out);
    check_err(in, r, rr);
    if (r == 1 && value_index(in, out) != want)
        DIE(in, "context slot %d [var slot %d] is value %d, %s says %d%s", c,
            s, value_index(in, out), in->ref->name, want,
            in->ctxs_made > 1 ? " -- ISOLATION MISMATCH (R9)" : "");
    if (tu_alloc_calls() != calls)
        DIE(in, "cv_context_get allocated (R13)");
}

static int exec_block(interp *in, int in_run)
{
    while (in->r.p < in->r.end && in->steps < in->max_cmds) {
        int op = fz_byte(&in->r);
        char opname[2] = {(char)op, 0};
        in->op = opname;
        in->steps++;
        mix(in, op);
        switch (op) {
        case 'V': cmd_var_new_as(in, 0); break;
        case 'W': cmd_var_new_as(in, 1); break;
        case 'v': drop_var(in, fz_arg(&in->r, FZ_NVARS)); break;
        case 'S': cmd_set(in, 1); break;
        case 's': cmd_set(in, 0); break;
        case 'T': cmd_set_via_token(in); break;
        case 'G': cmd_get(in, 0); break;
        case 'O': cmd_get(in, 1); break;
        case 'R': cmd_reset(in); break;
        case 't': drop_tok(in, fz_arg(&in->r, FZ_NTOK)); break;
        case 'I': cmd_tok_info(in); break;
        case 'N': case 'C': case 'c': cmd_ctx_new(in, op); break;
        case 'x': drop_ctx(in, fz_arg(&in->r, FZ_NCTX)); break;
        case 'E': cmd_enter(in); break;
        case 'X': cmd_exit(in, 0); break;
        case 'Q': cmd_exit(in, 1); break;
        case '(': cmd_run(in); break;
        case ')': {
            int ret = fz_arg(&in->r, 100);
            if (in_run) {
                in->op = "";
                return ret;
            }
            break;
        }
        case 'L': cmd_len(in); break;
        case 'F': cmd_foreach(in); break;
        case 'K': cmd_ctx_get(in); break;
        default: in->steps--; break; /* not a command: skipped */
        }
        if (in->nhw > 0)
            hook_writes_apply(in);
        in->op = "";
    }
    return 0;
}

void fz_ctx_run(const uint8_t *data, size_t size, const fz_opts *o,
                fz_result *res)
{
    interp in;
    memset(&in, 0, sizeof in);
    in.o = o;
    in.ref = o->ref;
    in.rs = o->ref_self;
    in.r.p = data;
    in.r.end = data + (size > FZ_MAX_INPUT ? FZ_MAX_INPUT : size);
    in.max_cmds = o->max_cmds ? o->max_cmds : FZ_MAX_CMDS;
    in.depth = 1;
    in.ctxs_made = 1;
    in.digest = 0xcbf29ce484222325u;
    in.op = "begin";

    tu_alloc_install();
    cv_thread_cleanup();
    interp *outer = cur_interp;
    cur_interp = &in;
    long live0 = tu_alloc_live(), hooks0 = fz_hook_balance();
    if (cv_backend_set_default(o->backend) != 0)
        DIE(&in, "cv_backend_set_default failed");
    in.ref->begin(in.rs);
    if (!o->lazy_base && cv_context_current() == NULL)
        DIE(&in, "cv_context_current() returned NULL");
    if (o->oom && o->fail_at > 0)
        tu_alloc_fail_at(o->fail_at, o->fail_forever);

    exec_block(&in, 0);

    /* Nothing fails from here on. */
    tu_alloc_fail_at(0, 0);
    in.op = "end";
    if (in.nhw > 0)
        hook_writes_apply(&in);
    full_compare(&in, "final state");
    in.hooks_off = 1;
    for (int i = 0; i < FZ_NTOK; i++)
        drop_tok(&in, i);
    for (int i = 0; i < FZ_NVARS; i++)
        drop_var(&in, i);
    for (int i = 0; i < FZ_NCTX; i++)
        drop_ctx(&in, i);
    cv_thread_cleanup();
    in.ref->end(in.rs);
    if (tu_alloc_live() != live0)
        DIE(&in, "leak: %ld blocks still allocated after releasing everything "
                 "(R16)", tu_alloc_live() - live0);
    if (fz_hook_balance() != hooks0)
        DIE(&in, "value hooks unbalanced by %ld after releasing everything "
                 "(R14)", fz_hook_balance() - hooks0);
    cur_interp = outer;
    if (res) {
        res->hook_writes = in.hook_writes;
        res->steps = in.steps;
        res->digest = in.digest;
        res->enomem = in.enomem;
        res->absorbed = in.absorbed;
    }
}
