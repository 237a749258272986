/*
 * key.h -- what a map may know about its keys, and nothing else.
 *
 * A key is a var (cv_var *), compared by identity. A map may read its hash
 * (fixed when the var is made, so no map hashes on the hot path) and may
 * take and drop what a slot owns: one reference to the key and one retain
 * of the value. Everything else about a var -- its name, its default, its
 * hooks, its reference count -- belongs to core/ and is out of reach here.
 *
 * Drops are where user code runs (the value's release hook, and the var's
 * own when its last reference goes with its default). A drop made while the
 * core has a write under way is held back and run once the write is whole
 * (docs/SPEC.md R14a): the map, the context and the lookup cache all say
 * the new value by then, so the hook may call any ctxvar function. A map
 * therefore drops freely, in any order, from inside set and del. What it
 * must not do inside a write is release a whole map or node of its own
 * with its release function (that could drop without bound): it hands the
 * reference to cv__map_drop_later instead (maps/map.h).
 *
 * Retains run where they are made, in the middle of a write; a retain hook
 * must not call ctxvar (it is a reference increment: Py_INCREF, an atomic
 * add). Every holder retains a value before any holder lets go of it, so a
 * value's count never passes through zero while it is still held (R14b).
 */
#ifndef CV_KEY_H
#define CV_KEY_H

#include <stddef.h>
#include <stdint.h>

typedef struct cv_var cv_var;

/* The first member of every var: the part a map reads. */
struct cv_key {
    uint32_t k_hash;             /* fixed at creation */
};

static inline uint32_t cv__key_hash(const cv_var *k)
{
    return ((const struct cv_key *)(const void *)k)->k_hash;
}

/* A slot starts holding key -> val: one key reference, one value retain. */
void cv__slot_take(cv_var *k, void *val);
/* The halves: a tombstone holds only its key; a value replaced in a slot
 * that keeps its key changes only the value. */
void cv__slot_take_key(cv_var *k);
void cv__slot_take_value(const cv_var *k, void *val);

/* A slot lets go of what it held (deferred inside a write, see the top).
 * The key reference goes last: it may be the var's last. */
void cv__slot_drop(cv_var *k, void *val);
void cv__slot_drop_key(cv_var *k);
void cv__slot_drop_value(const cv_var *k, void *val);

/* For check(): the key's reference count, which every slot holding it
 * must see as at least one. */
size_t cv__key_refs(const cv_var *k);

#endif /* CV_KEY_H */
