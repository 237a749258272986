/*
 * adaptive.h -- the tuning constant and the debug hook of the adaptive
 * backend (maps/adaptive.c), for its tests and benchmarks. Not installed;
 * the library's users reach adaptive only through the backend table.
 */
#ifndef CV_ADAPTIVE_H
#define CV_ADAPTIVE_H

#include "map.h"

/* K: the most pairs the small form (an array scanned by identity) holds.
 * A set that would make it K + 1 promotes the map to a HAMT; a delete that
 * leaves a HAMT with K / 2 pairs demotes it again. Chosen by measurement;
 * see docs/design/adaptive.md. May be set at build time to measure
 * (the library, its tests and benchmarks must then agree on it). */
#ifndef CV_ADAPTIVE_MAX
#define CV_ADAPTIVE_MAX 8
#endif

/* 1: m is in the small form (the empty map NULL counts as small);
 * 0: m is a HAMT. */
CV_HIDDEN int cv__adaptive_is_small(const cv_map *m);

#endif /* CV_ADAPTIVE_H */
