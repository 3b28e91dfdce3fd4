/*
 * Counted references: a memento_ref is the entry itself, held.  For a
 * never-reclaimed class there is nothing to count: the object lives until
 * the cache is freed.  memento_get_ref is in core/get.c, with the gets.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

void *memento_ref_object(const memento_ref *ref)
{
	if (ref == NULL)
		return NULL;
	/* The holder keeps the entry, and the object it was published with. */
	return ((const struct memento__entry *)(const void *)ref)->u.obj;
}

void memento_ref_release(memento_ref *ref)
{
	if (ref == NULL)
		return;
	struct memento__entry *e = (struct memento__entry *)(void *)ref;
	if (!memento__guarded_of(atomic_load_explicit(&e->state, memory_order_relaxed)))
		return;
	memento_cache *cache = memento__life_of(e)->shard->cache;
	memento__life_release(cache, e);
	/* The release may have made it due: destroy it here, unless this
	 * thread is inside a guard of the cache (its leave will). */
	memento__reclaim_due_if_any(cache, memento__tcache_for(cache));
}
