/*
 * registry.h -- the map backends of the library and the recommended
 * default (R15). Core-private: backend.c builds the registry from the list,
 * tests and benchmarks name backends through it. A new backend is one file
 * in maps/ and one line here.
 */
#ifndef CV_REGISTRY_H
#define CV_REGISTRY_H

#include "../maps/map.h"

#define CV_BACKEND_LIST(X) \
    X(dictcopy) \
    X(chainmap) \
    X(hamt) \
    X(adaptive)

#define CV__BACKEND_DECL(name) extern const struct cv_backend cv__backend_##name;
CV_BACKEND_LIST(CV__BACKEND_DECL)
#undef CV__BACKEND_DECL

/* The recommended default backend: chainmap, the fastest on the PEP 550
 * mix at every N measured (results/, README "Backends and how to choose"). */
#define CV_BACKEND_RECOMMENDED chainmap

#endif /* CV_REGISTRY_H */
