/* SPDX-License-Identifier: MIT */
/*
 * model.h -- the reference model of the property tests: PEP 567 written
 * with plain C++ containers, independently of core/ and maps/.
 *
 * A context is a std::map snapshot (var id -> value id); copying one copies
 * the map, which is R9 by construction. The thread's stack of entered
 * contexts is a std::vector of context ids whose bottom is the thread's base
 * context (id 0, empty at the start). A token records its var, the context
 * it was made in, and the old value or MISSING (R5). Every object is named by
 * its creation index; "held" says whether the test still owns a reference
 * (the library may keep the object alive longer, R16: the model does not
 * need to know).
 *
 * The functions below predict results and error codes per SPEC.md R3-R12.
 */
#ifndef CV_PROP_MODEL_H
#define CV_PROP_MODEL_H

#include <map>
#include <vector>

extern "C" {
#include "ctxvar.h"
}

namespace pm {

/* Values are ids 0..NVAL-1 of counted objects; NULLV is the NULL pointer. */
constexpr int NVAL = 6;
constexpr int NULLV = NVAL - 1;
constexpr int NONE = -1; /* "no value" / MISSING */

struct MVar {
    bool held = true;     /* the test owns a reference */
    bool has_dflt = false;
    int dflt = NONE;
    bool hooks = false;   /* made with value hooks (R14) */
};

struct MCtx {
    std::map<int, int> m; /* var id -> value id */
    bool held = true;     /* the test owns a reference (never for the base) */
    bool entered = false;
    bool run_frame = false; /* entered by a cv_context_run in progress */
};

struct MTok {
    int var = 0;
    int ctx = 0;
    bool has_old = false;
    int old = NONE;
    bool used = false;
    bool held = true;
};

/* A predicted outcome: err (0 or CV_E*) and, when err is 0, a value id. */
struct Out {
    int err = 0;
    int val = NONE;
    bool operator==(const Out &o) const
    {
        return err == o.err && (err != 0 || val == o.val);
    }
};

struct Model {
    std::vector<MVar> vars;
    std::vector<MCtx> ctxs;
    std::vector<MTok> toks;
    std::vector<int> stack; /* entered contexts, bottom = base (id 0) */
    int depth = 0;          /* nesting of cv_context_run, for generation */

    Model()
    {
        MCtx base;
        base.held = false;
        base.entered = true;
        ctxs.push_back(base);
        stack.push_back(0);
    }

    int top() const { return stack.back(); }
    const MCtx &cur() const { return ctxs[top()]; }
    MCtx &cur() { return ctxs[top()]; }

    /* R3 */
    Out get(int v) const
    {
        auto it = cur().m.find(v);
        if (it != cur().m.end())
            return {0, it->second};
        if (vars[v].has_dflt)
            return {0, vars[v].dflt};
        return {CV_ELOOKUP, NONE};
    }

    /* R4 */
    int get_or(int v, int d) const
    {
        auto it = cur().m.find(v);
        return it != cur().m.end() ? it->second : d;
    }

    /* R5; returns the new token's id when tok, else -1. */
    int set(int v, int val, bool tok)
    {
        MCtx &c = cur();
        MTok t;
        t.var = v;
        t.ctx = top();
        auto it = c.m.find(v);
        t.has_old = it != c.m.end();
        t.old = t.has_old ? it->second : NONE;
        c.m[v] = val;
        if (!tok)
            return -1;
        toks.push_back(t);
        return (int)toks.size() - 1;
    }

    /* R6 */
    int reset_err(int v, int t) const
    {
        const MTok &k = toks[t];
        if (k.used)
            return CV_ETOKEN_USED;
        if (k.var != v)
            return CV_ETOKEN_VAR;
        if (k.ctx != top())
            return CV_ETOKEN_CTX;
        return 0;
    }
    void reset(int v, int t)
    {
        if (reset_err(v, t) != 0)
            return;
        MTok &k = toks[t];
        if (k.has_old)
            cur().m[v] = k.old;
        else
            cur().m.erase(v);
        k.used = true;
    }

    /* R8 */
    int copy(int c)
    {
        MCtx n;
        n.m = ctxs[c].m;
        ctxs.push_back(n);
        return (int)ctxs.size() - 1;
    }
    int new_ctx()
    {
        ctxs.push_back(MCtx());
        return (int)ctxs.size() - 1;
    }

    /* R11-R13: entering is exclusive; exit only the current one, never the
     * base, and never the context a cv_context_run in progress entered (run
     * exits it; CPython refuses it too). */
    int enter_err(int c) const { return ctxs[c].entered ? CV_EENTERED : 0; }
    void enter(int c, bool run_frame = false)
    {
        if (enter_err(c) != 0)
            return;
        ctxs[c].entered = true;
        ctxs[c].run_frame = run_frame;
        stack.push_back(c);
    }
    int exit_err(int c) const
    {
        return (c != top() || c == 0 || ctxs[c].run_frame) ? CV_ENOTENTERED : 0;
    }
    void pop()
    {
        ctxs[top()].entered = false;
        ctxs[top()].run_frame = false;
        stack.pop_back();
    }
    void exit(int c)
    {
        if (exit_err(c) == 0)
            pop();
    }
    /* End of cv_context_run(c): whatever fn left entered is unwound. */
    void unwind_run(int c)
    {
        while (top() != c)
            pop();
        pop();
    }
};

} /* namespace pm */

#endif
