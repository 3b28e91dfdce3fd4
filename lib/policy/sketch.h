/*
 * The frequency sketch behind admission (sketch.c); private to policy.c.
 * Every function runs under the policy's lock.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTO_POLICY_SKETCH_H
#define MEMENTO_POLICY_SKETCH_H

#include "policy.h"

/* Room for about `capacity` distinct keys: false when out of memory, and
 * the sketch stays without a table. */
bool memento__policy_sketch_alloc(struct memento__policy_sketch *s, uint64_t capacity,
                                  const struct memento__policy_alloc *alloc);
void memento__policy_sketch_free(struct memento__policy_sketch *s,
                                 const struct memento__policy_alloc *alloc);
/* One more occurrence of hash; nothing without a table. */
void memento__policy_sketch_add(struct memento__policy_sketch *s, uint32_t hash);
/* hash's estimated occurrences in the recent sample, 0 to 15; 0 without a
 * table. */
unsigned memento__policy_sketch_estimate(const struct memento__policy_sketch *s, uint32_t hash);

#endif /* MEMENTO_POLICY_SKETCH_H */
