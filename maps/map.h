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
 *  - On failure (only CV_ENOMEM) *m is unchanged, the map is unchanged, and
 *    nothing leaks.
 *
 * Keys are vars (cv_var *), compared by identity and hashed once at their
 * creation (cv__var_hash), so no backend calls a hash or equality callback
 * on the hot path. Tests reach collisions and deep tries through
 * cv__var_new_hashed. A slot that stores a pair owns one reference to the
 * var and one retain of the value (cv__entry_retain / cv__entry_release in
 * core/internal.h); replacing a value releases the old one.
 *
 * Reference counts on maps are atomic: maps are shared between contexts
 * that may live in different threads. The "only reference" test is an
 * acquire load of the count == 1, as for Rust's Arc::get_mut: a count of one
 * seen by the owner cannot grow behind its back, because growing it needs a
 * reference.
 */
#ifndef CV_MAP_H
#define CV_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "../core/internal.h"

/* Opaque: each backend casts it to its own struct. */
typedef struct cv_map cv_map;

typedef int (*cv_map_visit_cb)(cv_var *key, void *value, void *arg);

struct cv_backend {
    const char *name;     /* "hamt", "dictcopy", "chainmap", ... */
    const char *summary;  /* one line for --help and reports */

    /* 1 and *val set: found; 0: absent. Never allocates. m may be NULL. */
    int (*find)(const cv_map *m, const cv_var *key, void **val);

    /* Maps key to val (insert or replace). Returns 0 or CV_ENOMEM. Storing
     * the value already there changes nothing and allocates nothing. */
    int (*set)(cv_map **m, cv_var *key, void *val);

    /* Removes key. Returns 1 removed, 0 absent (nothing changed), or
     * CV_ENOMEM (a shared map must be copied to remove from it). */
    int (*del)(cv_map **m, const cv_var *key);

    /* Number of pairs. */
    size_t (*len)(const cv_map *m);

    /* Calls cb(key, value, arg) once per pair, order unspecified; stops at
     * the first non-zero return and returns it. The map must not be written
     * during the walk (the core walks a shared reference, so it is not). */
    int (*foreach)(const cv_map *m, cv_map_visit_cb cb, void *arg);

    /* Another reference to the same contents, O(1). 0 or CV_ENOMEM. */
    int (*share)(cv_map *m, cv_map **out);

    /* Drops one reference; the last one frees all the map alone owned. */
    void (*release)(cv_map *m);

    /* Walks the whole structure and verifies the backend's invariant
     * (counts, shapes, reference counts). NULL if it holds, else a static
     * description of the first violation. For tests and fuzzers: O(n). */
    const char *(*check)(const cv_map *m);
};

/* The backends of the library, one line each (the registry in
 * core/backend.c expands this list; a new backend adds one line). */
#define CV_BACKEND_LIST(X) \
    X(dictcopy) \
    X(chainmap) \
    X(hamt) \
    X(adaptive)

#define CV__BACKEND_DECL(name) extern const struct cv_backend cv__backend_##name;
CV_BACKEND_LIST(CV__BACKEND_DECL)
#undef CV__BACKEND_DECL

/* The recommended default backend (R15): chainmap, the fastest on the PEP
 * 550 mix at every N measured (results/, README "Backends and how to choose"). */
#define CV_BACKEND_RECOMMENDED chainmap

#endif /* CV_MAP_H */
