/* SPDX-License-Identifier: MIT */
/*
 * slots.h -- the open-addressing slot array that dictcopy and chainmap
 * share: {key, val} slots, home slot = hash & mask, linear probing, and
 * deletion by backward shift (Knuth, TAOCP vol. 3, 6.4, Algorithm R), so
 * that no tombstone is ever needed for probing and a probe stops at the
 * first empty slot.
 */
#ifndef CV_SLOTS_H
#define CV_SLOTS_H

#include "map.h"

typedef struct cv_slot {
    cv_var *key;                 /* NULL: empty slot; else one var reference */
    void *val;                   /* owned as the backend says */
} cv_slot;

/* Empties slot i of slots[0..mask] and shifts the rest of its probe run
 * back, so no key is left behind an empty slot. The walk stops after one
 * lap, so a full table (chainmap's capacities 1 and 2) is safe. Moves
 * pairs only: the caller releases what slot i owned. */
static inline void cv__slot_remove(cv_slot *slots, uint32_t mask, uint32_t i)
{
    uint32_t j = i;
    for (uint32_t n = 0; n < mask; n++) {
        j = (j + 1) & mask;
        cv_slot *t = &slots[j];
        if (t->key == NULL)
            break;
        uint32_t home = cv__key_hash(t->key) & mask;
        /* t may move to i unless its home lies cyclically in (i, j]. */
        int stays = (i <= j) ? (i < home && home <= j)
                             : (i < home || home <= j);
        if (!stays) {
            slots[i] = *t;
            i = j;
        }
    }
    slots[i].key = NULL;
    slots[i].val = NULL;
}

/* Drops what every occupied slot of slots[0..mask] owns: a key reference,
 * and a value retain unless the value is `tomb` (a layered map's
 * "deleted here" marker; NULL when the map has none). */
static inline void cv__slots_drop(cv_slot *slots, uint32_t mask,
                                  const void *tomb)
{
    for (uint32_t i = 0; i <= mask; i++) {
        cv_slot *s = &slots[i];
        if (s->key == NULL)
            continue;
        if (tomb != NULL && s->val == tomb)
            cv__slot_drop_key(s->key);
        else
            cv__slot_drop(s->key, s->val);
    }
}

/* For check(): the occupied slot i holds a live key in the probe run that
 * starts at its home slot, with no empty slot and no copy of its key
 * between the home slot and i. NULL, or what is wrong. */
static inline const char *cv__slot_check(const cv_slot *slots, uint32_t mask,
                                         uint32_t i)
{
    const cv_var *k = slots[i].key;
    if (cv__key_refs(k) < 1)
        return "key with reference count below 1";
    for (uint32_t j = cv__key_hash(k) & mask; j != i; j = (j + 1) & mask) {
        if (slots[j].key == NULL)
            return "key behind an empty slot (probe run broken)";
        if (slots[j].key == k)
            return "duplicate key";
    }
    return NULL;
}

#endif /* CV_SLOTS_H */
