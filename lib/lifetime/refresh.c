/*
 * Refresh: an object older than its class's refresh_after_ns is rebuilt by
 * the first get that sees it, while the other gets go on returning it.
 * The new object gets an entry of its own, which takes the old one's place
 * in the table and in the policy; the old entry is retired like a
 * forgotten one, so that guards and references that hold it keep it.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

bool memento__refresh_claim(struct memento__entry *e)
{
	struct memento__life *l = memento__life_of(e);
	uint64_t at = atomic_load_explicit(&l->refresh_at, memory_order_relaxed);
	if (at & MEMENTO__REFRESHING)
		return false;
	/* Relaxed: written under the lock; hits only skip the lock on it. */
	atomic_store_explicit(&l->refresh_at, at | MEMENTO__REFRESHING, memory_order_relaxed);
	memento__life_hold(e);
	return true;
}

/* Under the lock: an entry of e's key and class for obj, ready, held by
 * the table (if linked) and the caller; NULL when out of memory. */
static struct memento__entry *successor(struct memento__shard *shard, memento_class *cls,
                                        const struct memento__entry *e, void *obj,
                                        uint64_t weight, uint64_t hash)
{
	uint32_t identity = atomic_load_explicit(&e->state, memory_order_relaxed) &
	                    ~(uint32_t)MEMENTO__STATE_BITS;
	struct memento__entry *fresh = memento__slab_alloc(shard, memento__entry_size(identity));
	if (fresh == NULL)
		return NULL;
	memento__entry_key_copy(fresh, e->key, memento__len_of(identity));
	atomic_init(&fresh->state, identity | MEMENTO__READY);
	fresh->seq = memento__next_seq(shard->cache);
	fresh->u.obj = obj;
	memento__life_start(fresh, shard, cls, 2u, weight, hash);
	return fresh;
}

struct memento__entry *memento__refresh_publish(memento_class *cls, struct memento__entry *e,
                                                void *obj, uint64_t weight, uint64_t hash,
                                                struct memento__counters *counters)
{
	struct memento__shard *shard = memento__life_of(e)->shard;
	memento_cache *cache = shard->cache;
	memento__shard_lock(shard);
	struct memento__entry *fresh = successor(shard, cls, e, obj, weight, hash);
	if (fresh == NULL) {
		memento__shard_unlock(shard);
		memento__refresh_fail(cls, e);
		/* Never held by anything: nothing else can have seen obj. */
		if (cls->destroy != NULL)
			cls->destroy(obj, cls->ctx);
		memento__count(counters, MEMENTO__DESTROYED);
		return NULL;
	}
	if (!(atomic_load_explicit(&e->state, memory_order_relaxed) & MEMENTO__UNLINKED) &&
	    memento__replace(shard, cls, e, fresh, hash, counters)) {
		memento__count(counters, MEMENTO__REFRESHES);
	} else {
		/* e was forgotten, evicted or expired while create ran: as
		 * for a creation forgotten in flight, the caller gets the new
		 * object, and nobody after it. */
		atomic_fetch_or_explicit(&fresh->state, MEMENTO__UNLINKED, memory_order_relaxed);
		memento__retire(shard, fresh);
	}
	memento__shard_unlock(shard);
	memento__life_release(cache, e); /* the claim's hold */
	return fresh;
}

void memento__refresh_fail(memento_class *cls, struct memento__entry *e)
{
	struct memento__shard *shard = memento__life_of(e)->shard;
	memento__shard_lock(shard);
	/* Relaxed: as in the claim.  Clears REFRESHING. */
	atomic_store_explicit(&memento__life_of(e)->refresh_at, memento__now() + cls->refresh_after,
	                      memory_order_relaxed);
	memento__shard_unlock(shard);
}
