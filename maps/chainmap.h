/*
 * chainmap.h -- the tuning constant and the debug hook of the chainmap
 * backend (maps/chainmap.c), for its tests and benchmarks. Not installed;
 * the library's users reach chainmap only through the backend table.
 */
#ifndef CV_CHAINMAP_H
#define CV_CHAINMAP_H

#include "map.h"

/* The deepest a chain may get: a write that would push a layer at depth
 * CV_CHAINMAP_MAX_DEPTH + 1 compacts the chain instead (a merge of the
 * small top layers, or a flatten); see "COMPACTION" in chainmap.c. Chosen
 * by measurement: docs/design/chainmap.md. */
#define CV_CHAINMAP_MAX_DEPTH 8

/* A compaction at the depth bound merges the fewest top layers whose slots
 * (plus the write) are fewer than 1 / CV_CHAINMAP_MERGE_RATIO of the slots
 * of the layer below them, onto that layer; when no layer qualifies it
 * flattens. Chosen by measurement: docs/design/chainmap.md. */
#define CV_CHAINMAP_MERGE_RATIO 2

/* Layers below the top one (0 for a single layer and for the empty map). */
CV_HIDDEN unsigned cv__chainmap_depth(const cv_map *m);

#endif /* CV_CHAINMAP_H */
