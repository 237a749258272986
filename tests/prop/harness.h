/* SPDX-License-Identifier: MIT */
/*
 * harness.h -- the RapidCheck state machine shared by prop.cc (model vs
 * ctxvar, every backend) and prop_cpython.cc (model and CPython's
 * contextvars vs ctxvar).
 *
 * Each command is a rc::state::Command<Model, Sut>: checkPreconditions
 * says when it is valid in the model, apply() is its effect on the model
 * (model.h), run() performs it on ctxvar, predicts the result from the model
 * and asserts it, and, when the Sut has a Mirror (CPython), performs it there
 * too and asserts the same outcome. Objects are named by creation index, so
 * RapidCheck can drop commands while shrinking and repair what follows.
 *
 * Values are counted objects: the value hooks (R14) count retains and
 * releases; at the end of every case the harness releases whatever the test
 * still holds, calls cv_thread_cleanup() and checks that every retain was
 * matched by a release and that the library holds no allocation (counted
 * through cv_set_allocator).
 */
#ifndef CV_PROP_HARNESS_H
#define CV_PROP_HARNESS_H

#include <rapidcheck.h>
#include <rapidcheck/state.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "model.h"

namespace pm {

/* ------------------------------------------------------------------------
 * Allocation counting (installed once, before any other call).
 * ------------------------------------------------------------------------ */
inline std::atomic<long> g_live_allocs{0};

inline void *count_malloc(size_t n, void *)
{
    void *p = std::malloc(n);
    if (p)
        g_live_allocs.fetch_add(1, std::memory_order_relaxed);
    return p;
}
inline void count_free(void *p, void *)
{
    g_live_allocs.fetch_sub(1, std::memory_order_relaxed);
    std::free(p);
}
inline void install_counting_allocator()
{
    static const cv_allocator a = {count_malloc, count_free, nullptr};
    if (cv_set_allocator(&a) != 0) {
        std::fprintf(stderr, "cv_set_allocator failed\n");
        std::exit(2);
    }
}

/* ------------------------------------------------------------------------
 * Counted values (global, reset per case, so a failing case that leaves
 * objects behind never makes a hook write into freed memory).
 * ------------------------------------------------------------------------ */
/* A value is an object with a real reference count (R14b): the library's
 * holds plus the caller's own reference, held only while the harness
 * passes the value into a call (hold .. unhold). At zero it is dead: the
 * library must never retain or release it again (a new pass makes a new
 * object at the same address). */
struct PVal {
    long refs = 0;
    bool user = false;
    bool dead = false;
};
inline PVal g_vals[NVAL];
inline long g_retains = 0, g_releases = 0;
inline std::string g_hook_error;
inline char g_hook_ud; /* the ud every hooked var is made with */

inline void *val_ptr(int id) { return id == NULLV ? nullptr : &g_vals[id]; }
inline void *hold(int id)
{
    if (id != NULLV)
        g_vals[id].user = true, g_vals[id].dead = false;
    return val_ptr(id);
}
inline void unhold(int id)
{
    if (id != NULLV) {
        g_vals[id].user = false;
        if (g_vals[id].refs == 0)
            g_vals[id].dead = true;
    }
}
inline int val_id(const void *p)
{
    if (p == nullptr)
        return NULLV;
    for (int i = 0; i < NVAL - 1; i++)
        if (p == &g_vals[i])
            return i;
    return -2; /* not a value the test ever set */
}

/* A hook that writes (R14a). When value 0 dies (its count reaches zero:
 * the last holder let go of it), its release hook sets the sink var --
 * a var of the harness's that no command names and the model does not
 * know -- in the current context, and checks there and then that the get
 * answers what the context maps. Every prediction of the model about the
 * other vars must still hold afterwards; foreach and len leave the sink
 * out. When value 0 dies depends on the backend (chainmap keeps shadowed
 * values a while), which is why the model cannot predict the sink. */
inline cv_var *g_sink = nullptr;
inline bool g_sink_on = false;
inline long g_sink_writes = 0;

inline bool sink_consistent()
{
    void *a = nullptr, *b = nullptr;
    int ra = cv_var_get(g_sink, &a);
    int rf = (cv_var_get)(g_sink, &a);
    int rb = cv_context_get(cv_context_current(), g_sink, &b);
    if (ra != rf)
        return false;
    return rb == 1 ? (ra == 0 && a == b) : (rb == 0 && ra == CV_ELOOKUP);
}

inline void sink_write()
{
    g_sink_on = false; /* no nesting: a write made here triggers no write */
    int r = cv_var_set(g_sink, hold(1), nullptr);
    unhold(1);
    if (r != 0)
        g_hook_error = "a hook's write failed";
    else if (!sink_consistent())
        g_hook_error = "after a hook's write the get disagrees with the "
                       "context (R14a)";
    g_sink_writes++;
    g_sink_on = true;
}

/* Pairs of c that are the model's: all but the sink's. */
inline size_t model_len(const cv_context *c)
{
    void *x;
    size_t n = cv_context_len(c);
    return g_sink && cv_context_get(c, g_sink, &x) == 1 ? n - 1 : n;
}

/* What both hooks check first: their ud, their count, and that v is a value
 * the test set and has not seen die (R14b). Returns v's id, or -1 when v
 * is NULL or an error was recorded. */
inline int hook_value(void *v, void *ud, long &calls, const char *hook, const char *done)
{
    if (ud != &g_hook_ud)
        g_hook_error = std::string(hook) + " hook got a foreign ud";
    calls++;
    if (v == nullptr)
        return -1;
    int id = val_id(v);
    if (id < 0)
        g_hook_error = std::string(hook) + " hook got a pointer never set";
    else if (g_vals[id].dead)
        g_hook_error = std::string("value ") + done + " after its count reached zero (R14b)";
    else
        return id;
    return -1;
}

extern "C" inline void hook_retain(void *v, void *ud)
{
    int id = hook_value(v, ud, g_retains, "retain", "retained");
    if (id >= 0)
        g_vals[id].refs++;
}
extern "C" inline void hook_release(void *v, void *ud)
{
    int id = hook_value(v, ud, g_releases, "release", "released");
    if (id < 0)
        return;
    if (--g_vals[id].refs < 0)
        g_hook_error = "value released more often than retained";
    else if (g_vals[id].refs == 0 && !g_vals[id].user) {
        g_vals[id].dead = true;
        if (id == 0 && g_sink_on)
            sink_write();
    }
}

inline void reset_values()
{
    for (auto &v : g_vals)
        v = PVal();
    g_retains = g_releases = 0;
    g_hook_error.clear();
}

/* ------------------------------------------------------------------------
 * The mirror: another implementation driven in lockstep (CPython).
 * Contexts are named by model id; 0 is the case's base context.
 * ------------------------------------------------------------------------ */
/* RC_ASSERT shows operands: pointers to opaque types cannot be shown. */
inline bool truth(bool b) { return b; }

constexpr int NA = 1000; /* the mirror cannot express this call */

struct Mirror {
    virtual ~Mirror() {}
    virtual void begin() = 0;
    virtual void end() = 0;
    virtual void new_var(int id, bool has_dflt, int dflt) = 0;
    virtual int set(int var, int val, int new_tok) = 0; /* new_tok -1: none */
    virtual Out get(int var) = 0;
    virtual int get_or(int var, int d) = 0;
    virtual int reset(int var, int tok) = 0;
    virtual Out token_old(int tok) = 0; /* err 1: had a value, 0: MISSING */
    virtual int token_var(int tok) = 0;
    virtual void copy(int ctx, int id) = 0; /* ctx: a model id */
    virtual void new_ctx(int id) = 0;
    virtual int enter(int ctx) = 0;
    virtual int exit(int ctx) = 0;
    virtual int run_begin(int ctx) = 0; /* enter for a run */
    virtual void run_end(int ctx) = 0;  /* unwind and exit, as ctxvar does */
    virtual Out ctx_get(int ctx, int var) = 0; /* err 1 found / 0 absent */
    virtual std::map<int, int> items(int ctx) = 0;
    virtual long len(int ctx) = 0;
    virtual void release_var(int id) = 0;
    virtual void release_ctx(int id) = 0;
    virtual void release_tok(int id) = 0;
};

/* ------------------------------------------------------------------------
 * The system under test: ctxvar handles by model id.
 * ------------------------------------------------------------------------ */
struct Sut {
    const cv_backend *backend;
    Mirror *py;
    std::vector<cv_var *> vars;
    std::vector<bool> var_held;
    std::vector<cv_context *> ctxs; /* [0]: the base, read through current */
    std::vector<bool> ctx_held;
    std::vector<cv_token *> toks;
    std::vector<bool> tok_held;
    std::unordered_map<const cv_var *, int> var_id;
    bool torn_down = false;

    Sut(const cv_backend *b, Mirror *m) : backend(b), py(m)
    {
        ctxs.push_back(nullptr);
        ctx_held.push_back(false);
        cv_var_opts o = {};
        o.name = "sink";
        o.retain = hook_retain;
        o.release = hook_release;
        o.ud = &g_hook_ud;
        if (cv_var_new_ex(&o, &g_sink) != 0)
            std::abort();
        g_sink_on = true;
        if (py)
            py->begin();
    }

    /* Releases what the test holds, tokens first, then contexts and vars in
     * creation order (the commands release in every other order). */
    void teardown()
    {
        if (torn_down)
            return;
        torn_down = true;
        g_sink_on = false;
        for (size_t i = 0; i < toks.size(); i++)
            if (tok_held[i])
                cv_token_release(toks[i]);
        for (size_t i = 0; i < ctxs.size(); i++)
            if (ctx_held[i])
                cv_context_release(ctxs[i]);
        for (size_t i = 0; i < vars.size(); i++)
            if (var_held[i])
                cv_var_release(vars[i]);
        cv_thread_cleanup();
        cv_var_release(g_sink);
        g_sink = nullptr;
        if (py)
            py->end();
    }
    ~Sut() { teardown(); }

    /* The pointer of context id c; the base only while it is current. */
    cv_context *ctx(const Model &s, int c) const
    {
        if (c == s.top()) {
            cv_context *cur = cv_context_current();
            RC_ASSERT(truth(cur != nullptr));
            if (c != 0)
                RC_ASSERT(truth(cur == ctxs[c]));
            return cur;
        }
        RC_ASSERT(c != 0);
        return ctxs[c];
    }
};

using Cmd = rc::state::Command<Model, Sut>;
using CmdSP = std::shared_ptr<const Cmd>;

inline std::string vname(int v) { return "v" + std::to_string(v); }
inline std::string valname(int v)
{
    return v == NULLV ? "NULL" : v == NONE ? "MISSING" : "val" + std::to_string(v);
}
inline std::string cname(int c)
{
    return c < 0 ? "current" : c == 0 ? "base" : "c" + std::to_string(c);
}

inline void check_hooks()
{
    RC_ASSERT(g_hook_error == std::string());
}

/* Resolves "-1: the current context" against the model. */
inline int resolve(const Model &s, int c) { return c < 0 ? s.top() : c; }

/* Preconditions every command that names a var, context or token shares: the
 * model still holds it (shrinking may have dropped the command that made
 * it, or moved a release before it). */
inline void pre_var_held(const Model &s, int var)
{
    RC_PRE(truth(var < (int)s.vars.size() && s.vars[var].held));
}
inline void pre_ctx_held(const Model &s, int ctx)
{
    RC_PRE(truth(ctx < (int)s.ctxs.size() && s.ctxs[ctx].held));
}
inline void pre_tok_held(const Model &s, int tok)
{
    RC_PRE(truth(tok < (int)s.toks.size() && s.toks[tok].held));
}
/* ctx is -1 (the current context, always there) or a held one. */
inline void pre_ctx_or_current(const Model &s, int ctx)
{
    if (ctx >= 0)
        pre_ctx_held(s, ctx);
}

/* A token against the model's: its var, whether it was used, and the old
 * value it recorded (none: the out-parameter stays untouched). */
inline void check_token(cv_token *tp, const MTok &t, const cv_var *var)
{
    static char untouched; /* sentinel: not a value the test ever set */
    RC_ASSERT(truth(cv_token_var(tp) == var));
    RC_ASSERT(cv_token_used(tp) == (t.used ? 1 : 0));
    void *old = &untouched;
    int h = cv_token_old_value(tp, &old);
    RC_ASSERT(h == (t.has_old ? 1 : 0));
    if (t.has_old)
        RC_ASSERT(val_id(old) == t.old);
    else
        RC_ASSERT(truth(old == (void *)&untouched));
}

/* A command on one var, and one on one token, with no other
 * precondition than that the model holds it. */
struct VarCmd : Cmd {
    int var;
    explicit VarCmd(int v) : var(v) {}
    void checkPreconditions(const Model &s) const override { pre_var_held(s, var); }
};
struct TokCmd : Cmd {
    int tok;
    explicit TokCmd(int t) : tok(t) {}
    void checkPreconditions(const Model &s) const override { pre_tok_held(s, tok); }
};

/* How set and reset show the var they write: through a token's var or
 * by name. */
inline std::string var_expr(int via_tok, int var)
{
    return via_tok >= 0 ? "token_var(t" + std::to_string(via_tok) + ")" : vname(var);
}

/* A command on one context, -1 for the current one, and no other
 * precondition. */
struct CtxCmd : Cmd {
    int ctx;
    explicit CtxCmd(int c) : ctx(c) {}
    void checkPreconditions(const Model &s) const override { pre_ctx_or_current(s, ctx); }
};

/* ------------------------------------------------------------------------
 * Commands
 * ------------------------------------------------------------------------ */
struct NewVar : Cmd {
    int api;        /* 0 cv_var_new, 1 cv_var_new_default, 2 cv_var_new_ex */
    bool has_dflt;
    int dflt;
    bool hooks;
    bool null_name; /* R1: CV_EINVAL, nothing made */
    NewVar(int api_, bool d, int dv, bool h, bool nn)
        : api(api_), has_dflt(d), dflt(dv), hooks(h), null_name(nn)
    {
        if (hooks)
            api = 2;
        if (api == 0)
            has_dflt = false;
        if (api == 1)
            has_dflt = true;
        if (!has_dflt)
            dflt = NONE;
    }
    void apply(Model &s) const override
    {
        if (null_name)
            return;
        MVar v;
        v.has_dflt = has_dflt;
        v.dflt = dflt;
        v.hooks = hooks;
        s.vars.push_back(v);
    }
    void run(const Model &s, Sut &sut) const override
    {
        std::string name = vname((int)s.vars.size());
        const char *nm = null_name ? nullptr : name.c_str();
        cv_var *v = nullptr;
        int r;
        if (api == 0)
            r = cv_var_new(nm, &v);
        else if (api == 1)
            r = cv_var_new_default(nm, val_ptr(dflt), &v);
        else {
            cv_var_opts o = {};
            o.name = nm;
            o.has_default = has_dflt;
            o.dflt = has_dflt ? hold(dflt) : nullptr;
            if (hooks) {
                o.retain = hook_retain;
                o.release = hook_release;
                o.ud = &g_hook_ud;
            }
            r = cv_var_new_ex(&o, &v);
            if (has_dflt)
                unhold(dflt);
        }
        if (null_name) {
            RC_ASSERT(r == CV_EINVAL);
            return;
        }
        if (r == 0) {
            sut.vars.push_back(v);
            sut.var_held.push_back(true);
            sut.var_id[v] = (int)sut.vars.size() - 1;
        }
        RC_ASSERT(r == 0);
        RC_ASSERT(std::string(cv_var_name(v)) == name);
        if (sut.py)
            sut.py->new_var((int)sut.vars.size() - 1, has_dflt, dflt);
        check_hooks();
    }
    void show(std::ostream &os) const override
    {
        static const char *apis[] = {"cv_var_new", "cv_var_new_default",
                                     "cv_var_new_ex"};
        os << "new_var(" << apis[api] << (null_name ? ", name=NULL" : "");
        if (has_dflt)
            os << ", default=" << valname(dflt);
        if (hooks)
            os << ", hooks";
        os << ")";
    }
};

struct Set : Cmd {
    int var, via_tok, val;
    bool tok;
    Set(int v, int vt, int x, bool t) : var(v), via_tok(vt), val(x), tok(t) {}
    int target(const Model &s) const
    {
        return via_tok >= 0 ? s.toks[via_tok].var : var;
    }
    void checkPreconditions(const Model &s) const override
    {
        if (via_tok >= 0)
            pre_tok_held(s, via_tok);
        else
            pre_var_held(s, var);
    }
    void apply(Model &s) const override { s.set(target(s), val, tok); }
    void run(const Model &s, Sut &sut) const override
    {
        int v = target(s);
        cv_var *vp = via_tok >= 0 ? cv_token_var(sut.toks[via_tok]) : sut.vars[v];
        RC_ASSERT(truth(vp == sut.vars[v])); /* R7 */
        cv_token *t = nullptr;
        int r = cv_var_set(vp, hold(val), tok ? &t : nullptr);
        unhold(val);
        if (r == 0 && tok) {
            sut.toks.push_back(t);
            sut.tok_held.push_back(true);
        }
        RC_ASSERT(r == 0);
        check_hooks();
        Model s2 = s;
        int tid = s2.set(v, val, tok);
        if (tok) {
            check_token(t, s2.toks[tid], vp); /* fresh: not used */
        }
        if (sut.py) {
            int pr = sut.py->set(v, val, tok ? tid : -1);
            RC_ASSERT(pr == 0);
        }
    }
    void show(std::ostream &os) const override
    {
        os << "set(" << var_expr(via_tok, var) << ", " << valname(val)
           << (tok ? ", &tok)" : ", NULL)");
    }
};

struct Get : VarCmd {
    explicit Get(int v) : VarCmd(v) {}
    void run(const Model &s, Sut &sut) const override
    {
        Out e = s.get(var);
        void *out = (void *)&sut;
        int r = cv_var_get(sut.vars[var], &out);
        RC_ASSERT(r == e.err);
        if (r == 0)
            RC_ASSERT(val_id(out) == e.val);
        else
            RC_ASSERT(truth(out == (void *)&sut)); /* R3: untouched */
        if (sut.py) {
            Out p = sut.py->get(var);
            RC_ASSERT(p.err == e.err);
            if (p.err == 0)
                RC_ASSERT(p.val == e.val);
        }
    }
    void show(std::ostream &os) const override { os << "get(" << vname(var) << ")"; }
};

struct GetOr : VarCmd {
    int d;
    GetOr(int v, int d_) : VarCmd(v), d(d_) {}
    void run(const Model &s, Sut &sut) const override
    {
        int e = s.get_or(var, d);
        RC_ASSERT(val_id(cv_var_get_or(sut.vars[var], val_ptr(d))) == e);
        if (sut.py)
            RC_ASSERT(sut.py->get_or(var, d) == e);
    }
    void show(std::ostream &os) const override
    {
        os << "get_or(" << vname(var) << ", " << valname(d) << ")";
    }
};

struct Reset : Cmd {
    int var, via_tok, tok;
    Reset(int v, int vt, int t) : var(v), via_tok(vt), tok(t) {}
    int target(const Model &s) const
    {
        return via_tok >= 0 ? s.toks[via_tok].var : var;
    }
    void checkPreconditions(const Model &s) const override
    {
        pre_tok_held(s, tok);
        if (via_tok >= 0)
            pre_tok_held(s, via_tok);
        else
            pre_var_held(s, var);
    }
    void apply(Model &s) const override { s.reset(target(s), tok); }
    void run(const Model &s, Sut &sut) const override
    {
        int v = target(s);
        cv_var *vp = via_tok >= 0 ? cv_token_var(sut.toks[via_tok]) : sut.vars[v];
        int e = s.reset_err(v, tok);
        int r = cv_var_reset(vp, sut.toks[tok]);
        RC_ASSERT(r == e);
        RC_ASSERT(cv_token_used(sut.toks[tok]) == (e == 0 || s.toks[tok].used ? 1 : 0));
        check_hooks();
        if (sut.py) {
            int p = sut.py->reset(v, tok);
            RC_ASSERT(p == e);
        }
    }
    void show(std::ostream &os) const override
    {
        os << "reset(" << var_expr(via_tok, var) << ", t" << tok << ")";
    }
};

struct TokInfo : TokCmd {
    explicit TokInfo(int t) : TokCmd(t) {}
    void run(const Model &s, Sut &sut) const override
    {
        const MTok &t = s.toks[tok];
        cv_token *tp = sut.toks[tok];
        check_token(tp, t, sut.vars[t.var]);
        if (sut.py) {
            RC_ASSERT(sut.py->token_var(tok) == t.var);
            Out p = sut.py->token_old(tok);
            RC_ASSERT(p.err == (t.has_old ? 1 : 0));
            if (t.has_old)
                RC_ASSERT(p.val == t.old);
        }
    }
    void show(std::ostream &os) const override { os << "token_info(t" << tok << ")"; }
};

/* Copy of the current context (ctx -1) or of a held one. */
struct Copy : CtxCmd {
    explicit Copy(int c) : CtxCmd(c) {}
    void apply(Model &s) const override { s.copy(resolve(s, ctx)); }
    void run(const Model &s, Sut &sut) const override
    {
        cv_context *n = nullptr;
        int r = ctx < 0 ? cv_copy_context(&n) : cv_context_copy(sut.ctxs[ctx], &n);
        if (r == 0) {
            sut.ctxs.push_back(n);
            sut.ctx_held.push_back(true);
        }
        RC_ASSERT(r == 0);
        RC_ASSERT(truth(cv_context_backend(n) == sut.backend));
        check_hooks();
        if (sut.py)
            sut.py->copy(resolve(s, ctx), (int)sut.ctxs.size() - 1);
    }
    void show(std::ostream &os) const override
    {
        if (ctx < 0)
            os << "copy_context()";
        else
            os << "context_copy(" << cname(ctx) << ")";
    }
};

struct NewCtx : Cmd {
    bool on;
    explicit NewCtx(bool o) : on(o) {}
    void apply(Model &s) const override { s.new_ctx(); }
    void run(const Model &, Sut &sut) const override
    {
        cv_context *n = nullptr;
        int r = on ? cv_context_new_on(sut.backend, &n) : cv_context_new(&n);
        if (r == 0) {
            sut.ctxs.push_back(n);
            sut.ctx_held.push_back(true);
        }
        RC_ASSERT(r == 0);
        RC_ASSERT(truth(cv_context_backend(n) == sut.backend));
        RC_ASSERT(cv_context_len(n) == 0u);
        if (sut.py)
            sut.py->new_ctx((int)sut.ctxs.size() - 1);
    }
    void show(std::ostream &os) const override
    {
        os << (on ? "context_new_on(backend)" : "context_new()");
    }
};

/* Enter and Exit: one call on a held context or the current one (ctx -1),
 * whose result must be the model's (enter_err, exit_err); the model then
 * takes the same step. */
struct SwitchCmd : CtxCmd {
    using Call = int (*)(cv_context *);
    using Want = int (Model::*)(int) const;
    using Step = void (*)(Model &, int);
    const char *name;
    Call call;
    Want want;
    Step step;
    SwitchCmd(int c, const char *n, Call f, Want w, Step st)
        : CtxCmd(c), name(n), call(f), want(w), step(st) {}
    void apply(Model &s) const override { step(s, resolve(s, ctx)); }
    void run(const Model &s, Sut &sut) const override
    {
        int c = resolve(s, ctx);
        int e = (s.*want)(c);
        RC_ASSERT(call(sut.ctx(s, c)) == e);
        after(sut, c, e);
    }
    /* What else holds once the call on context c returned e. */
    virtual void after(Sut &sut, int c, int e) const = 0;
    void show(std::ostream &os) const override
    {
        os << name << "(" << cname(ctx) << ")";
    }
};

struct Enter : SwitchCmd { /* ctx -1: the current one (always CV_EENTERED) */
    explicit Enter(int c)
        : SwitchCmd(c, "enter", cv_context_enter, &Model::enter_err,
                    [](Model &s, int k) { s.enter(k); }) {}
    void after(Sut &sut, int c, int e) const override
    {
        if (e == 0)
            RC_ASSERT(truth(cv_context_current() == sut.ctxs[c]));
        if (sut.py)
            RC_ASSERT(sut.py->enter(c) == e);
    }
};

struct Exit : SwitchCmd { /* ctx -1: the current one */
    explicit Exit(int c)
        : SwitchCmd(c, "exit", cv_context_exit, &Model::exit_err,
                    [](Model &s, int k) { s.exit(k); }) {}
    void after(Sut &sut, int c, int e) const override
    {
        check_hooks();
        if (sut.py) {
            int p = sut.py->exit(c);
            if (p != NA)
                RC_ASSERT(p == e);
        }
    }
};

inline rc::Gen<CmdSP> genCommand(const Model &s);

struct RunCall {
    const Model *s;
    Sut *sut;
    const std::vector<CmdSP> *inner;
    int ctx;
    int ret;
    std::exception_ptr err;
    int calls;
};

extern "C" inline int run_tramp(void *arg)
{
    RunCall *rc_ = static_cast<RunCall *>(arg);
    rc_->calls++;
    try {
        Model m = *rc_->s;
        m.enter(rc_->ctx, true);
        m.depth++;
        for (const auto &c : *rc_->inner) {
            c->checkPreconditions(m);
            c->run(m, *rc_->sut);
            c->apply(m);
        }
    } catch (...) {
        rc_->err = std::current_exception();
    }
    return rc_->ret;
}

struct Run : Cmd {
    int ctx;
    int ret;
    std::vector<CmdSP> inner;
    Run(const Model &s, int c, int r) : ctx(c), ret(r)
    {
        if (s.ctxs[c].entered)
            return;
        Model m = s;
        m.enter(c, true);
        m.depth++;
        inner = *rc::gen::resize(6, rc::state::gen::commands(m, genCommand));
    }
    void checkPreconditions(const Model &s) const override
    {
        pre_ctx_held(s, ctx);
        if (s.ctxs[ctx].entered)
            return;
        Model m = s;
        m.enter(ctx, true);
        m.depth++;
        for (const auto &c : inner) {
            c->checkPreconditions(m);
            c->apply(m);
        }
    }
    void apply(Model &s) const override
    {
        if (s.ctxs[ctx].entered)
            return;
        s.enter(ctx, true);
        s.depth++;
        for (const auto &c : inner)
            c->apply(s);
        s.depth--;
        s.unwind_run(ctx);
    }
    void run(const Model &s, Sut &sut) const override
    {
        bool entered = s.ctxs[ctx].entered;
        int e = entered ? CV_EENTERED : ret;
        cv_context *before = cv_context_current();
        int p = 0;
        if (sut.py)
            p = sut.py->run_begin(ctx);
        RunCall call{&s, &sut, &inner, ctx, ret, nullptr, 0};
        int r = cv_context_run(sut.ctxs[ctx], run_tramp, &call);
        if (sut.py && !entered)
            sut.py->run_end(ctx);
        if (call.err)
            std::rethrow_exception(call.err);
        RC_ASSERT(r == e);
        RC_ASSERT(call.calls == (entered ? 0 : 1));
        RC_ASSERT(truth(cv_context_current() == before)); /* R11: restored */
        check_hooks();
        if (sut.py)
            RC_ASSERT(p == (entered ? CV_EENTERED : 0));
    }
    void show(std::ostream &os) const override
    {
        os << "run(" << cname(ctx) << ", fn -> " << ret << ") {";
        for (size_t i = 0; i < inner.size(); i++) {
            os << (i ? "; " : " ");
            inner[i]->show(os);
        }
        os << " }";
    }
};

struct CtxGet : Cmd {
    int ctx, var;
    CtxGet(int c, int v) : ctx(c), var(v) {}
    void checkPreconditions(const Model &s) const override
    {
        pre_ctx_or_current(s, ctx);
        pre_var_held(s, var);
    }
    void run(const Model &s, Sut &sut) const override
    {
        int c = resolve(s, ctx);
        const auto &m = s.ctxs[c].m;
        auto it = m.find(var);
        void *out = (void *)&sut;
        int r = cv_context_get(sut.ctx(s, c), sut.vars[var], &out);
        RC_ASSERT(r == (it != m.end() ? 1 : 0));
        if (r == 1)
            RC_ASSERT(val_id(out) == it->second);
        else
            RC_ASSERT(truth(out == (void *)&sut));
        if (sut.py) {
            Out p = sut.py->ctx_get(c, var);
            RC_ASSERT(p.err == r);
            if (r == 1)
                RC_ASSERT(p.val == it->second);
        }
    }
    void show(std::ostream &os) const override
    {
        os << "context_get(" << cname(ctx) << ", " << vname(var) << ")";
    }
};

struct Visit {
    Sut *sut;
    std::vector<std::pair<int, int>> seen;
    size_t stop;
};
extern "C" inline int visit_cb(cv_var *v, void *value, void *arg)
{
    Visit *x = static_cast<Visit *>(arg);
    if (v == g_sink)
        return 0; /* the hooks' var, not the model's */
    auto it = x->sut->var_id.find(v);
    x->seen.emplace_back(it == x->sut->var_id.end() ? -1 : it->second,
                         val_id(value));
    return x->stop != 0 && x->seen.size() >= x->stop ? 4242 : 0;
}

struct Foreach : CtxCmd {
    size_t stop; /* 0: walk all; k: the callback stops after k pairs */
    Foreach(int c, size_t st) : CtxCmd(c), stop(st) {}
    void run(const Model &s, Sut &sut) const override
    {
        int c = resolve(s, ctx);
        const auto &m = s.ctxs[c].m;
        Visit x{&sut, {}, stop};
        int r = cv_context_foreach(sut.ctx(s, c), visit_cb, &x);
        bool early = stop != 0 && stop <= m.size();
        RC_ASSERT(r == (early ? 4242 : 0));
        RC_ASSERT(x.seen.size() == (early ? stop : m.size()));
        std::set<int> keys; /* R10: each pair once, and only pairs of c */
        for (auto &kv : x.seen) {
            RC_ASSERT(keys.insert(kv.first).second);
            auto it = m.find(kv.first);
            RC_ASSERT(it != m.end());
            RC_ASSERT(it->second == kv.second);
        }
        if (sut.py)
            RC_ASSERT(sut.py->items(c) == m);
    }
    void show(std::ostream &os) const override
    {
        os << "foreach(" << cname(ctx) << ", stop after " << stop << ")";
    }
};

struct Len : CtxCmd {
    explicit Len(int c) : CtxCmd(c) {}
    void run(const Model &s, Sut &sut) const override
    {
        int c = resolve(s, ctx);
        RC_ASSERT(model_len(sut.ctx(s, c)) == s.ctxs[c].m.size());
        if (sut.py)
            RC_ASSERT(sut.py->len(c) == (long)s.ctxs[c].m.size());
    }
    void show(std::ostream &os) const override { os << "len(" << cname(ctx) << ")"; }
};

struct Release : Cmd {
    int kind; /* 0 var, 1 context, 2 token */
    int id;
    Release(int k, int i) : kind(k), id(i) {}
    void checkPreconditions(const Model &s) const override
    {
        if (kind == 0)
            pre_var_held(s, id);
        else if (kind == 1)
            RC_PRE(truth(id > 0 && id < (int)s.ctxs.size() && s.ctxs[id].held));
        else
            pre_tok_held(s, id);
    }
    void apply(Model &s) const override
    {
        if (kind == 0)
            s.vars[id].held = false;
        else if (kind == 1)
            s.ctxs[id].held = false;
        else
            s.toks[id].held = false;
    }
    void run(const Model &, Sut &sut) const override
    {
        if (kind == 0) {
            sut.var_held[id] = false;
            cv_var_release(sut.vars[id]);
            if (sut.py)
                sut.py->release_var(id);
        } else if (kind == 1) {
            sut.ctx_held[id] = false;
            cv_context_release(sut.ctxs[id]);
            if (sut.py)
                sut.py->release_ctx(id);
        } else {
            sut.tok_held[id] = false;
            cv_token_release(sut.toks[id]);
            if (sut.py)
                sut.py->release_tok(id);
        }
        check_hooks();
    }
    void show(std::ostream &os) const override
    {
        static const char *k[] = {"var_release(v", "context_release(c",
                                  "token_release(t"};
        os << k[kind] << id << ")";
    }
};

/* Sets the sink (the var the hooks write, unknown to the model) to value 0
 * or to NULL in the current context. Replacing value 0 there may be its
 * death, whose hook then writes the very var this set is writing (the
 * third case of R14a): the get must answer the hook's value. */
struct SinkSet : Cmd {
    bool zero;
    explicit SinkSet(bool z) : zero(z) {}
    void run(const Model &, Sut &) const override
    {
        int r = cv_var_set(g_sink, zero ? hold(0) : nullptr, nullptr);
        if (zero)
            unhold(0);
        RC_ASSERT(r == 0);
        RC_ASSERT(sink_consistent());
        check_hooks();
    }
    void show(std::ostream &os) const override
    {
        os << "set(sink, " << (zero ? "val0" : "NULL") << ")";
    }
};

/* Misuse with NULL arguments: CV_EINVAL (or 0 / NULL where documented). */
struct Invalid : Cmd {
    int kind;
    explicit Invalid(int k) : kind(k) {}
    static int fn(void *) { return 1; }
    void run(const Model &, Sut &sut) const override
    {
        void *out = &sut;
        cv_context *c = nullptr;
        cv_var *v = nullptr;
        switch (kind) {
        case 0: RC_ASSERT(cv_var_get(nullptr, &out) == CV_EINVAL); break;
        case 1: RC_ASSERT(cv_var_set(nullptr, nullptr, nullptr) == CV_EINVAL); break;
        case 2: RC_ASSERT(cv_var_reset(nullptr, nullptr) == CV_EINVAL); break;
        case 3: RC_ASSERT(cv_context_enter(nullptr) == CV_EINVAL); break;
        case 4: RC_ASSERT(cv_context_exit(nullptr) == CV_EINVAL); break;
        case 5: RC_ASSERT(cv_context_run(nullptr, fn, nullptr) == CV_EINVAL); break;
        case 6: RC_ASSERT(cv_context_copy(nullptr, &c) == CV_EINVAL); break;
        case 7: RC_ASSERT(cv_copy_context(nullptr) == CV_EINVAL); break;
        case 8: RC_ASSERT(cv_context_get(nullptr, nullptr, &out) == CV_EINVAL); break;
        case 9: RC_ASSERT(cv_context_foreach(nullptr, visit_cb, nullptr) == CV_EINVAL); break;
        case 10: RC_ASSERT(cv_context_len(nullptr) == 0u); break;
        case 11: RC_ASSERT(cv_token_old_value(nullptr, &out) == CV_EINVAL); break;
        case 12: RC_ASSERT(cv_token_used(nullptr) == CV_EINVAL); break;
        case 13: RC_ASSERT(cv_var_new(nullptr, &v) == CV_EINVAL); break;
        case 14: RC_ASSERT(cv_var_new("x", nullptr) == CV_EINVAL); break;
        case 15: RC_ASSERT(truth(cv_var_get_or(nullptr, val_ptr(1)) == val_ptr(1))); break;
        default: RC_ASSERT(cv_context_new(nullptr) == CV_EINVAL); break;
        }
        RC_ASSERT(truth(out == (void *)&sut));
        RC_ASSERT(truth(c == nullptr && v == nullptr));
    }
    void show(std::ostream &os) const override { os << "invalid_args(#" << kind << ")"; }
};

/* ------------------------------------------------------------------------
 * Generation
 * ------------------------------------------------------------------------ */
/* The ids of the held entries of a model table, from `first` on. */
template <typename T>
std::vector<int> held_ids(const std::vector<T> &table, size_t first = 0)
{
    std::vector<int> r;
    for (size_t i = first; i < table.size(); i++)
        if (table[i].held)
            r.push_back((int)i);
    return r;
}
inline std::vector<int> held_vars(const Model &s) { return held_ids(s.vars); }
inline std::vector<int> held_ctxs(const Model &s) { return held_ids(s.ctxs, 1); }
inline std::vector<int> held_toks(const Model &s) { return held_ids(s.toks); }

/* A context argument: -1 (the current one) or a held context. */
inline int pick_ctx(const std::vector<int> &cs)
{
    if (cs.empty() || *rc::gen::inRange(0, 4) == 0)
        return -1;
    return *rc::gen::elementOf(cs);
}

enum Kind {
    K_NEWVAR, K_SET, K_GET, K_GETOR, K_RESET, K_TOKINFO, K_COPYCUR, K_COPY,
    K_NEWCTX, K_ENTER, K_EXIT, K_RUN, K_CTXGET, K_FOREACH, K_LEN, K_RELVAR,
    K_RELCTX, K_RELTOK, K_INVALID, K_SINKSET
};

/* Kinds the mirror cannot take: set by prop_cpython.cc. */
inline bool g_no_invalid = false;

inline rc::Gen<CmdSP> genCommand(const Model &s)
{
    return rc::gen::exec([s]() -> CmdSP {
        auto vs = held_vars(s);
        auto cs = held_ctxs(s);
        auto ts = held_toks(s);
        std::vector<int> kinds;
        auto add = [&](int k, int w) { kinds.insert(kinds.end(), w, k); };
        add(K_NEWVAR, s.vars.size() < 8 ? 3 : 1);
        add(K_COPYCUR, 3);
        add(K_NEWCTX, 1);
        add(K_ENTER, 1);
        add(K_EXIT, 2);
        add(K_FOREACH, 1);
        add(K_LEN, 1);
        if (!g_no_invalid)
            add(K_INVALID, 1);
        add(K_SINKSET, 2);
        if (!vs.empty() || !ts.empty())
            add(K_SET, 7);
        if (!vs.empty()) {
            add(K_GET, 4);
            add(K_GETOR, 2);
            add(K_CTXGET, 3);
            add(K_RELVAR, 1);
        }
        if (!ts.empty()) {
            add(K_RESET, 5);
            add(K_TOKINFO, 1);
            add(K_RELTOK, 2);
        }
        if (!cs.empty()) {
            add(K_COPY, 2);
            add(K_ENTER, 3);
            add(K_EXIT, 1);
            add(K_RELCTX, 2);
            if (s.depth < 2)
                add(K_RUN, 3);
        }
        auto var_or_tok = [&](int &var, int &via) {
            via = -1;
            var = 0;
            if (!ts.empty() && (vs.empty() || *rc::gen::inRange(0, 5) == 0))
                via = *rc::gen::elementOf(ts);
            else
                var = *rc::gen::elementOf(vs);
        };
        auto val = [] { return *rc::gen::inRange(0, NVAL); };
        int var, via;
        switch (*rc::gen::elementOf(kinds)) {
        case K_NEWVAR:
            return std::make_shared<NewVar>(*rc::gen::inRange(0, 3),
                                            *rc::gen::arbitrary<bool>(), val(),
                                            *rc::gen::inRange(0, 3) != 0,
                                            *rc::gen::inRange(0, 20) == 0);
        case K_SET:
            var_or_tok(var, via);
            return std::make_shared<Set>(var, via, val(),
                                         *rc::gen::inRange(0, 4) != 0);
        case K_GET:
            return std::make_shared<Get>(*rc::gen::elementOf(vs));
        case K_GETOR:
            return std::make_shared<GetOr>(*rc::gen::elementOf(vs), val());
        case K_RESET:
            if (vs.empty())
                via = *rc::gen::elementOf(ts), var = 0;
            else
                var_or_tok(var, via);
            return std::make_shared<Reset>(var, via, *rc::gen::elementOf(ts));
        case K_TOKINFO:
            return std::make_shared<TokInfo>(*rc::gen::elementOf(ts));
        case K_COPYCUR:
            return std::make_shared<Copy>(-1);
        case K_COPY:
            return std::make_shared<Copy>(*rc::gen::elementOf(cs));
        case K_NEWCTX:
            return std::make_shared<NewCtx>(*rc::gen::arbitrary<bool>());
        case K_ENTER:
            return std::make_shared<Enter>(pick_ctx(cs));
        case K_EXIT:
            return std::make_shared<Exit>(pick_ctx(cs));
        case K_RUN:
            return std::make_shared<Run>(s, *rc::gen::elementOf(cs),
                                         *rc::gen::inRange(-3, 100));
        case K_CTXGET:
            return std::make_shared<CtxGet>(pick_ctx(cs), *rc::gen::elementOf(vs));
        case K_FOREACH:
            return std::make_shared<Foreach>(pick_ctx(cs),
                                             (size_t)*rc::gen::inRange(0, 4));
        case K_LEN:
            return std::make_shared<Len>(pick_ctx(cs));
        case K_RELVAR:
            return std::make_shared<Release>(0, *rc::gen::elementOf(vs));
        case K_RELCTX:
            return std::make_shared<Release>(1, *rc::gen::elementOf(cs));
        case K_RELTOK:
            return std::make_shared<Release>(2, *rc::gen::elementOf(ts));
        case K_SINKSET:
            return std::make_shared<SinkSet>(*rc::gen::arbitrary<bool>());
        default:
            return std::make_shared<Invalid>(*rc::gen::inRange(0, 17));
        }
    });
}

/* One test case: a fresh thread state, a generated command sequence, then
 * everything released and the R14 / allocation balance checked. */
inline void run_case(const cv_backend *b, Mirror *py)
{
    cv_thread_cleanup();
    long live0 = g_live_allocs.load();
    reset_values();
    {
        Sut sut(b, py);
        rc::state::check(Model(), sut, genCommand);
        sut.teardown();
    }
    check_hooks();
    for (int i = 0; i < NVAL - 1; i++)
        RC_ASSERT(g_vals[i].refs == 0L); /* R14: retains matched */
    RC_ASSERT(g_retains == g_releases);
    RC_ASSERT(g_live_allocs.load() == live0); /* nothing leaked */
}

} /* namespace pm */

#endif
