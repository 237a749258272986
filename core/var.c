/*
 * var.c -- context variables: creation, hashing, lifetime (R1, R2, R14).
 *
 * A var is a key. Its identity is its address; its hash is a mix of that
 * address, computed once here so that no map ever hashes on the hot path.
 * The reference count covers the user's reference, every map slot holding
 * the var, and every token made by it (R2, R16).
 */
#include <string.h>

#include "internal.h"
#include "trace.h"

uint32_t cv__hash_ptr(const void *p)
{
    /* The murmur3 64-bit finaliser: allocator addresses differ in a few
     * middle bits only, and every bit of the result must depend on them
     * because the HAMT consumes the hash 5 bits at a time from the bottom. */
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return (uint32_t)x;
}

static int var_make(const cv_var_opts *opts, int force, uint32_t hash,
                    cv_var **out)
{
    if (opts == NULL || opts->name == NULL || out == NULL)
        return CV_EINVAL;
    /* Hooks come in pairs: a retain with no release would leak every value. */
    if ((opts->retain == NULL) != (opts->release == NULL))
        return CV_EINVAL;
    size_t n = strlen(opts->name);
    cv_var *v = cv__malloc(sizeof *v + n + 1);
    if (v == NULL)
        return CV_ENOMEM;
    atomic_init(&v->v_refs, 1);
    v->v_key.k_hash = force ? hash : cv__hash_ptr(v);
    v->v_has_default = opts->has_default != 0;
    v->v_default = v->v_has_default ? opts->dflt : NULL;
    v->v_retain = opts->retain;
    v->v_release = opts->release;
    v->v_ud = opts->ud;
    memcpy(v->v_name, opts->name, n + 1);
    if (v->v_has_default)
        cv__value_retain(v, v->v_default); /* the default is a holder (R14) */
    *out = v;
    CV_TRACE_VAR_NEW(v);
    return 0;
}

int cv_var_new_ex(const cv_var_opts *opts, cv_var **out)
{
    return var_make(opts, 0, 0, out);
}

int cv__var_new_hashed(const cv_var_opts *opts, uint32_t hash, cv_var **out)
{
    return var_make(opts, 1, hash, out);
}

int cv_var_new(const char *name, cv_var **out)
{
    cv_var_opts o = {.name = name};
    return var_make(&o, 0, 0, out);
}

int cv_var_new_default(const char *name, void *dflt, cv_var **out)
{
    cv_var_opts o = {.name = name, .has_default = 1, .dflt = dflt};
    return var_make(&o, 0, 0, out);
}

const char *cv_var_name(const cv_var *v)
{
    return v ? v->v_name : NULL;
}

/* The var is gone before its default's hook runs (R14a): the hook sees a
 * whole state, and whatever it calls cannot reach the var. */
void cv__var_decref(cv_var *v)
{
    if (!cv__refs_drop(&v->v_refs, 1))
        return;
    CV_TRACE_VAR_FREE(v);
    void (*release)(void *, void *) = v->v_has_default ? v->v_release : NULL;
    void *dflt = v->v_default, *ud = v->v_ud;
    cv__free(v);
    if (release != NULL)
        release(dflt, ud);
}

/* ------------------------------------------------------------------------
 * What a map slot takes (maps/key.h). Drops are in context.c, beside the
 * write section that defers them.
 * ------------------------------------------------------------------------ */

void cv__slot_take(cv_var *k, void *val)
{
    cv__var_incref(k);
    cv__value_retain(k, val);
}

void cv__slot_take_key(cv_var *k)
{
    cv__var_incref(k);
}

void cv__slot_take_value(const cv_var *k, void *val)
{
    cv__value_retain(k, val);
}

size_t cv__key_refs(const cv_var *k)
{
    return atomic_load_explicit(&k->v_refs, memory_order_relaxed);
}

void cv_var_release(cv_var *v)
{
    CV_TRACE_VAR_RELEASE(v);
    if (v != NULL)
        cv__var_decref(v);
}
