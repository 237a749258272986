/* SPDX-License-Identifier: MIT */
/*
 * map.h -- the interface every map backend implements.
 *
 * A backend is one const struct cv_backend of function pointers (Redis's
 * dictType layout with hamt.c's persistent verbs). The core calls nothing
 * else, so HAMT, dict-copy and ChainMap plug in without the core knowing
 * which is which.
 *
 * The model: a map is a reference-counted, persistent value.
 *
 *  - NULL is the empty map in every backend. An empty context therefore
 *    costs no map allocation, and find/len/foreach/share/release accept NULL.
 *  - share() hands out another reference in O(1). From then on neither
 *    reference can observe a change made through the other (R9).
 *  - set()/del() take the caller's reference by address (cv_map **m). When
 *    the caller holds the only reference, the backend may change the map in
 *    place (the "transient" case: a context that has not been copied since
 *    its last write pays no copy). Otherwise it builds a new map that shares
 *    what it can, stores it in *m and drops the caller's reference to the
 *    old one. Either way the caller still holds exactly one reference.
 *  - On failure (only CV_MAP_ENOMEM) *m is unchanged, the map is unchanged, and
 *    nothing leaks.
 *
 * Keys are vars (cv_var *), compared by identity and hashed once at their
 * creation, so no backend calls a hash or equality callback on the hot
 * path. What a map may know of a key is maps/key.h: its hash, and taking
 * and dropping a slot's key reference and value retain. A slot that stores
 * a pair owns one of each; replacing a value drops the old one. Tests reach
 * collisions and deep tries through vars with forced hashes.
 *
 * A backend is written from this header and key.h alone (plus libc). The
 * core owns the registry of backends and the default (core/registry.h).
 *
 * Reference counts on maps are atomic: maps are shared between contexts
 * that may live in different threads. The "only reference" test is an
 * acquire load of the count == 1, as for Rust's Arc::get_mut: a count of one
 * seen by the owner cannot grow behind its back, because growing it needs a
 * reference.
 */
#ifndef CV_MAP_H
#define CV_MAP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "key.h"

/* ------------------------------------------------------------------------
 * What the core gives a backend
 * ------------------------------------------------------------------------ */

/* The only error a backend returns; equal to ctxvar.h's CV_MAP_ENOMEM (the
 * core checks it at compile time). */
#define CV_MAP_ENOMEM (-1)

#if defined(__GNUC__)
#define CV_LIKELY(x) __builtin_expect(!!(x), 1)
#define CV_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define CV_HIDDEN __attribute__((visibility("hidden")))
#else
#define CV_LIKELY(x) (x)
#define CV_UNLIKELY(x) (x)
#define CV_HIDDEN
#endif

/* Invariant checks: compiled in when CV_DEBUG is defined (the test,
 * property and fuzz builds), out of the release library. */
#ifdef CV_DEBUG
CV_HIDDEN void cv__assert_fail(const char *expr, const char *file, int line);
#define CV_ASSERT(cond)                                                   \
    ((cond) ? (void)0 : cv__assert_fail(#cond, __FILE__, __LINE__))
#else
#define CV_ASSERT(cond) ((void)0)
#endif

/* Every byte a backend holds comes from the allocation hook (core). */
CV_HIDDEN void *cv__malloc(size_t size);
CV_HIDDEN void cv__free(void *p);

/* The same for a map's small blocks, made and dropped on a write into a
 * copy (a pushed layer): the core keeps a few freed ones per thread and
 * size, so that the next write takes one back without a call to the hook.
 * cv__map_block_free takes only a block of cv__map_block_alloc (never
 * NULL, never one of cv__malloc: the cache hands a block out again for
 * any request of its size class, which may be more than cv__malloc was
 * asked for), with the size it was asked for. A write that fails must not
 * free such a block it obtained in the same write: the failed call would
 * leave cached a block it took from the hook. A backend allocates those
 * blocks so that a failing write has none to free. */
#define CV_MAP_BLOCK_MAX 280     /* bigger blocks go to the hook as they are */
CV_HIDDEN void *cv__map_block_take(size_t size); /* size <= CV_MAP_BLOCK_MAX */
CV_HIDDEN void cv__map_block_give(void *p, size_t size);

static inline void *cv__map_block_alloc(size_t size)
{
    return size <= CV_MAP_BLOCK_MAX ? cv__map_block_take(size)
                                    : cv__malloc(size);
}

static inline void cv__map_block_free(void *p, size_t size)
{
    if (size <= CV_MAP_BLOCK_MAX)
        cv__map_block_give(p, size);
    else
        cv__free(p);
}

/*
 * Drops `amount` from a reference count (any width: a macro over the
 * type-generic atomics; each argument is a plain lvalue or constant);
 * true if that was the last of it. Every count of the library drops
 * through here. A holder that reads the count at exactly `amount` holds
 * everything left: no other thread can change it (taking a reference
 * needs one), so the locked instruction is skipped -- the fresh copy
 * released, a map made private by a write and then dropped, the last
 * token of a var. The acquire load and the acq_rel drop both order the
 * other holders' earlier drops before the free (as release + an acquire
 * fence would, at the same cost on x86, and ThreadSanitizer models them,
 * which it does not do for standalone fences).
 */
#define cv__refs_drop(refs, amount)                                       \
    (atomic_load_explicit((refs), memory_order_acquire) == (amount) ||    \
     atomic_fetch_sub_explicit((refs), (amount), memory_order_acq_rel)    \
         == (amount))

/* Opaque: each backend casts it to its own struct. */
typedef struct cv_map cv_map;

typedef int (*cv_map_visit_cb)(cv_var *key, void *value, void *arg);

struct cv_backend {
    const char *name;     /* "hamt", "dictcopy", "chainmap", ... */

    /* 1 and *val set: found; 0: absent. Never allocates, never calls into
     * the core (the get's miss fills its cache entry around it: context.c,
     * entry_fill). m may be NULL. */
    int (*find)(const cv_map *m, const cv_var *key, void **val);

    /* Maps key to val (insert or replace). Returns 0 or CV_MAP_ENOMEM. Storing
     * the value already there changes nothing and allocates nothing. */
    int (*set)(cv_map **m, cv_var *key, void *val);

    /* Removes key. Returns 1 removed, 0 absent (nothing changed), or
     * CV_MAP_ENOMEM (a shared map must be copied to remove from it). */
    int (*del)(cv_map **m, const cv_var *key);

    /* Number of pairs. */
    size_t (*len)(const cv_map *m);

    /* Calls cb(key, value, arg) once per pair, order unspecified; stops at
     * the first non-zero return and returns it. The map must not be written
     * during the walk (the core walks a shared reference, so it is not). */
    int (*foreach)(const cv_map *m, cv_map_visit_cb cb, void *arg);

    /* Another reference to the same contents, O(1). 0 or CV_MAP_ENOMEM. */
    int (*share)(cv_map *m, cv_map **out);

    /* Drops one reference; the last one frees all the map alone owned.
     * Not called by a backend from inside its own set or del: there it
     * hands the reference to cv__map_drop_later. */
    void (*release)(cv_map *m);

    /* Walks the whole structure and verifies the backend's invariant
     * (counts, shapes, reference counts). NULL if it holds, else a static
     * description of the first violation. O(n): test machinery. In the
     * test, property, fuzz and stress builds (CV_DEBUG) the core runs it
     * after every successful set and del and aborts on a violation. */
    const char *(*check)(const cv_map *m);

    /* Optional; NULL: the core shares and releases through share and
     * release. Non-NULL says that every non-NULL map of this backend starts
     * with a cv_map_head (its first member) whose count share and release
     * raise and drop exactly as cv__map_share and cv__map_release below do;
     * the core then does that itself, inline (no indirect call on a copy or
     * a release), and calls destroy(m) once it has dropped m's last
     * reference: destroy frees what m alone owned, as release would have.
     * Not called from inside the backend's own set or del. */
    void (*destroy)(cv_map *m);
};

/* The table of a backend whose functions are <prefix>_find, _set, _del,
 * _len, _foreach, _share, _release and _check:
 *   CV_BACKEND_DEFINE(cv__backend_hamt, "hamt", hamt);   */
#define CV_BACKEND_DEFINE(sym, label, prefix)                              \
    const struct cv_backend sym = {                                        \
        .name = label, .find = prefix##_find, .set = prefix##_set,         \
        .del = prefix##_del, .len = prefix##_len,                          \
        .foreach = prefix##_foreach, .share = prefix##_share,              \
        .release = prefix##_release, .check = prefix##_check}
/* The same for a backend whose maps start with a cv_map_head (below) and
 * that frees a map whose last reference went in <prefix>_destroy. */
#define CV_BACKEND_DEFINE_HEADED(sym, label, prefix)                       \
    const struct cv_backend sym = {                                        \
        .name = label, .find = prefix##_find, .set = prefix##_set,         \
        .del = prefix##_del, .len = prefix##_len,                          \
        .foreach = prefix##_foreach, .share = prefix##_share,              \
        .release = prefix##_release, .destroy = prefix##_destroy,          \
        .check = prefix##_check}

/* The head of a map whose backend has destroy: its reference count at
 * offset 0, the same for every such backend, so that the core shares and
 * drops references without knowing which backend it holds. A count never
 * goes past CV_MAP_MAX_REFS (share refuses a holder there, with room above
 * for racing sharers that undo). */
typedef struct cv_map_head {
    _Atomic uint32_t refs;
} cv_map_head;

#define CV_MAP_MAX_REFS ((uint32_t)1 << 31)

/* Another reference to m (see share): one relaxed increment for a backend
 * with destroy, a NULL map needs none. 0 or CV_MAP_ENOMEM. */
static inline int cv__map_share(const struct cv_backend *ops, cv_map *m,
                                cv_map **out)
{
    if (CV_LIKELY(ops->destroy != NULL)) {
        cv_map_head *h = (cv_map_head *)m;
        if (h != NULL &&
            CV_UNLIKELY(atomic_fetch_add_explicit(&h->refs, 1,
                                                  memory_order_relaxed) >=
                        CV_MAP_MAX_REFS)) {
            atomic_fetch_sub_explicit(&h->refs, 1, memory_order_relaxed);
            return CV_MAP_ENOMEM;
        }
        *out = m;
        return 0;
    }
    return ops->share(m, out);
}

/* Drops one reference to m (see release). */
static inline void cv__map_release(const struct cv_backend *ops, cv_map *m)
{
    if (CV_LIKELY(ops->destroy != NULL)) {
        cv_map_head *h = (cv_map_head *)m;
        if (h != NULL && cv__refs_drop(&h->refs, 1))
            ops->destroy(m);
        return;
    }
    ops->release(m);
}

/* Drops one reference to m, a map of a backend with destroy, that the
 * backend itself held (a parent layer's, in the backend's destroy): true
 * if it was the last, and the caller then frees m as destroy would. The
 * core may keep the reference instead of dropping it, when it can prove
 * that it is not the last (core/context.c, "The spare"). */
CV_HIDDEN int cv__map_head_drop(cv_map *m);

/* Inside set or del: m (a reference the write let go of: an old root, a
 * node, a parked layer) is released with ops->release once the write is
 * whole (key.h says why). Outside a write it is released at once. A write
 * hands over at most CV_MAP_DROPS_MAX references and drops at most
 * CV_SLOT_DROPS_MAX slots of vars with hooks (checked by CV_ASSERT). */
#define CV_MAP_DROPS_MAX 40
#define CV_SLOT_DROPS_MAX 8
CV_HIDDEN void cv__map_drop_later(const struct cv_backend *ops, cv_map *m);

#endif /* CV_MAP_H */
