/*
 * A guarded class's entries and its per-shard eviction policy (policy/):
 * a published entry is handed to the policy, which may evict others (or
 * it); a removed one leaves it; a refreshed one gives its place to its
 * successor.  Everything here runs under the shard lock.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

/* How many expired entries a publication sweeps at most from the oldest
 * end of an unbounded class's FIFO: enough to keep up, since each one
 * adds one. */
#define SWEEP_MAX 4

static struct memento__policy *policy_of(struct memento__shard *shard, memento_class *cls)
{
	return &cls->shards[shard - shard->cache->shards].policy;
}

/* e, out of the policy already, leaves the table and waits for its grace
 * period. */
static void leave(struct memento__shard *shard, struct memento__entry *e)
{
	if (!(atomic_load_explicit(&e->state, memory_order_relaxed) & MEMENTO__UNLINKED))
		memento__shard_unlink(shard, e);
	memento__retire(shard, e);
}

void memento__drop(struct memento__shard *shard, memento_class *cls, struct memento__entry *e)
{
	if (cls->life & MEMENTO__LIFE_POLICY)
		memento__policy_remove(policy_of(shard, cls), &memento__life_of(e)->u.node);
	leave(shard, e);
}

/* An unbounded expiring class: the oldest entries leave once expired,
 * whether or not anyone asks for them again. */
static void sweep_expired(struct memento__shard *shard, memento_class *cls,
                          struct memento__policy *p, struct memento__counters *counters)
{
	uint64_t now = 0;
	for (int n = 0; n < SWEEP_MAX; n++) {
		struct memento__policy_node *oldest = memento__policy_oldest(p);
		if (oldest == NULL)
			return;
		struct memento__entry *e = memento__entry_of_node(oldest);
		if (memento__freshness_timed(cls, e, &now) != MEMENTO__EXPIRED)
			return;
		memento__drop(shard, cls, e);
		memento__count(counters, MEMENTO__EXPIRATIONS);
	}
}

/* Evicts while the policy is over its bounds. */
static void evict_over(struct memento__shard *shard, struct memento__policy *p,
                       struct memento__counters *counters)
{
	struct memento__policy_node *victim;
	while ((victim = memento__policy_evict(p)) != NULL) {
		leave(shard, memento__entry_of_node(victim));
		memento__count(counters, MEMENTO__EVICTIONS);
	}
}

void memento__admit(struct memento__shard *shard, memento_class *cls, struct memento__entry *e,
                    struct memento__counters *counters)
{
	if (atomic_load_explicit(&e->state, memory_order_relaxed) & MEMENTO__UNLINKED) {
		/* Forgotten while it was created: its creator and waiters get
		 * it, and nobody after them. */
		memento__retire(shard, e);
		return;
	}
	if (!(cls->life & MEMENTO__LIFE_POLICY))
		return;
	struct memento__policy *p = policy_of(shard, cls);
	memento__policy_insert(p, &memento__life_of(e)->u.node);
	evict_over(shard, p, counters);
	if (cls->expire_after != 0)
		sweep_expired(shard, cls, p, counters);
}

bool memento__replace(struct memento__shard *shard, memento_class *cls,
                      struct memento__entry *old, struct memento__entry *fresh, uint64_t hash,
                      struct memento__counters *counters)
{
	/* As for an insert: fresh's fields before the store that links it. */
	atomic_thread_fence(memory_order_release);
	MEMENTO__TSAN_RELEASE(fresh);
	void *previous;
	if (!ck_hs_fas(&shard->hs, hash, memento__tagged(fresh, hash), &previous))
		return false;
	/* Relaxed, as in memento__shard_unlink: hits see it by coherence. */
	atomic_fetch_or_explicit(&old->state, MEMENTO__UNLINKED, memory_order_relaxed);
	if (cls->life & MEMENTO__LIFE_POLICY) {
		struct memento__policy *p = policy_of(shard, cls);
		memento__policy_replace(p, &memento__life_of(old)->u.node,
		                        &memento__life_of(fresh)->u.node);
		memento__retire(shard, old);
		evict_over(shard, p, counters); /* the new weight may be more */
		return true;
	}
	memento__retire(shard, old);
	return true;
}
