/*
 * Reclamation of a guarded class's objects: from removal to destroy.
 *
 *   removed (forgotten, evicted, expired, replaced), under the shard lock
 *     -> limbo: the shard's list, oldest first, each entry stamped with the
 *        global epoch read after its unlink
 *     -> its grace period ends once every thread in a read-side section
 *        (a guard, or a get's own) began it after that stamp: the table's
 *        hold is dropped (memento__reclaim_limbo, from every shard unlock)
 *     -> the last hold (table, creation record, memento_ref) is dropped:
 *        the entry is pushed on the cache's due stack
 *     -> a drain, by a thread outside every lock and every guard of the
 *        cache, marks it dead, calls destroy, and gives the entry back to
 *        its slab.
 *
 * Grace periods use the cache's ck_epoch records (the threads' sections)
 * but not ck's callback buckets: a stamp per entry says exactly which
 * sections could have seen it, which memento_cache_barrier needs.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <sched.h>
#include <time.h>

static unsigned int global_epoch(memento_cache *cache)
{
	return ck_pr_load_uint(&cache->epoch.epoch);
}

void memento__retire(struct memento__shard *shard, struct memento__entry *e)
{
	struct memento__life *l = memento__life_of(e);
	l->u.gone.next = NULL;
	/* Orders the unlink before the epoch read, against a section's
	 * begin (store active, fence, load epoch): a section that began at
	 * a later epoch than the stamp cannot find e any more. */
	atomic_thread_fence(memory_order_seq_cst);
	l->u.gone.stamp = global_epoch(shard->cache);
	if (shard->limbo_tail != NULL)
		memento__life_of(shard->limbo_tail)->u.gone.next = e;
	else
		shard->limbo_head = e;
	shard->limbo_tail = e;
}

/*
 * How far back the oldest open section began: epochs are measured as ages
 * from `now` (unsigned differences, so that the counter may wrap), and an
 * entry stamped longer ago than every open section's start can go.  A
 * record caught between its begin's two stores shows its previous epoch,
 * older still: it only delays.  Moves the global epoch on when every open
 * section has seen it, as ck's own poll does, so that the next look finds
 * more to let go.
 */
struct horizon {
	unsigned int now;
	unsigned int oldest_age; /* of the open sections; meaningless if all_clear */
	bool all_clear;          /* no section open: everything can go */
};

static struct horizon horizon_scan(memento_cache *cache)
{
	/* Orders the limbo entries' unlinks (and their stamps) before the
	 * reads of the records below: see memento__retire. */
	atomic_thread_fence(memory_order_seq_cst);
	struct horizon h = { global_epoch(cache), 0, true };
	/* Acquire: pairs with the release that pushed each record. */
	for (struct memento__tcache *tc = atomic_load_explicit(&cache->tcaches, memory_order_acquire);
	     tc != NULL; tc = tc->next) {
		if (ck_pr_load_uint(&tc->epoch.active) == 0)
			continue;
		unsigned int age = h.now - ck_pr_load_uint(&tc->epoch.epoch);
		h.all_clear = false;
		if (age > h.oldest_age)
			h.oldest_age = age;
	}
	if (!h.all_clear && h.oldest_age == 0)
		(void)ck_pr_cas_uint(&cache->epoch.epoch, h.now, h.now + 1);
	return h;
}

/* Whether an entry stamped at epoch `stamp` can no longer be seen. */
static bool horizon_passed(const struct horizon *h, unsigned int stamp)
{
	return h->all_clear || h->now - stamp > h->oldest_age;
}

void memento__reclaim_limbo(struct memento__shard *shard)
{
	if (shard->limbo_head == NULL)
		return;
	memento_cache *cache = shard->cache;
	struct horizon h = horizon_scan(cache);
	/* Pairs with the release before every section's end: the readers'
	 * uses of these objects happen before their destroy. */
	MEMENTO__TSAN_ACQUIRE(&cache->epoch);
	while (shard->limbo_head != NULL) {
		struct memento__entry *e = shard->limbo_head;
		struct memento__life *l = memento__life_of(e);
		/* A section that began at or before the stamp may hold e. */
		if (!horizon_passed(&h, l->u.gone.stamp))
			break;
		shard->limbo_head = l->u.gone.next;
		if (shard->limbo_head == NULL)
			shard->limbo_tail = NULL;
		memento__life_release(cache, e); /* the table's hold */
	}
}

static void due_push(memento_cache *cache, struct memento__entry *e)
{
	struct memento__life *l = memento__life_of(e);
	struct memento__entry *head = atomic_load_explicit(&cache->due, memory_order_relaxed);
	do
		l->u.gone.next = head;
	/* Release: the drain that takes e sees its link and every write of
	 * the holders that let it go (their acq_rel drops came first). */
	while (!atomic_compare_exchange_weak_explicit(&cache->due, &head, e, memory_order_release,
	                                              memory_order_relaxed));
}

void memento__life_release(memento_cache *cache, struct memento__entry *e)
{
	/* Acq_rel: every holder's use of the object happens before the last
	 * drop, which then pushes it for destroy. */
	if (atomic_fetch_sub_explicit(&memento__life_of(e)->refs, 1, memory_order_acq_rel) == 1)
		due_push(cache, e);
}

/* Whatever a drain left when its thread was cancelled inside destroy (or
 * an exception left it) goes back on the stack for the next drain. */
static void drain_abandoned(void *arg)
{
	struct memento__entry **rest = arg;
	while (*rest != NULL) {
		struct memento__entry *e = *rest;
		*rest = memento__life_of(e)->u.gone.next;
		due_push(memento__life_of(e)->shard->cache, e);
	}
}

/* e is due: no guard, record or reference can reach it. */
static void destroy_due(memento_cache *cache, struct memento__tcache *tc,
                        struct memento__entry *e)
{
	uint32_t s = atomic_load_explicit(&e->state, memory_order_relaxed);
	memento_class *cls = memento__class_at(cache, memento__cls_of(s));
	struct memento__shard *shard = memento__life_of(e)->shard;
	/* Dead before destroy runs: memento_cache_free, or a fork child whose
	 * drainer vanished, destroys only READY entries, so never twice.
	 * Relaxed: nothing else can reach e. */
	atomic_store_explicit(&e->state, (s & ~(uint32_t)MEMENTO__PHASE) | MEMENTO__FAILED,
	                      memory_order_relaxed);
	if (cls->destroy != NULL)
		cls->destroy(e->u.obj, cls->ctx);
	struct memento__counters *counters = memento__counters_for(tc, cls->index);
	if (counters != NULL)
		memento__count(counters, MEMENTO__DESTROYED);
	memento__shard_lock(shard);
	memento__slab_free(shard, e);
	memento__shard_unlock(shard);
}

void memento__reclaim_due(memento_cache *cache, struct memento__tcache *tc)
{
	/* Acquire: pairs with the release of each push. */
	struct memento__entry *rest = atomic_exchange_explicit(&cache->due, NULL, memory_order_acquire);
	pthread_cleanup_push(drain_abandoned, &rest);
	while (rest != NULL) {
		struct memento__entry *e = rest;
		rest = memento__life_of(e)->u.gone.next;
		destroy_due(cache, tc, e);
	}
	pthread_cleanup_pop(0);
}

/* True while some shard's limbo holds an entry removed at or before
 * epoch `upto` (a limbo is oldest first). */
static bool limbo_holds_upto(memento_cache *cache, unsigned int upto)
{
	bool holds = false;
	for (unsigned int i = 0; i < cache->nshards && !holds; i++) {
		struct memento__shard *shard = &cache->shards[i];
		memento__shard_lock(shard);
		memento__reclaim_limbo(shard);
		struct memento__entry *e = shard->limbo_head;
		/* Ages from upto, as in horizon_passed: stamped at or before
		 * upto is an age (upto - stamp) below half the counter. */
		holds = e != NULL && upto - memento__life_of(e)->u.gone.stamp < 1u << 31;
		memento__shard_unlock(shard);
	}
	return holds;
}

/* Waits a little longer each time: the guards waited on may be long. */
static void barrier_pause(unsigned int round)
{
	if (round < 16) {
		sched_yield();
		return;
	}
	unsigned int shift = round - 16 < 10 ? round - 16 : 10;
	struct timespec pause = { 0, (long)(1000u << shift) }; /* 1 us to 1 ms */
	nanosleep(&pause, NULL);
}

void memento_cache_barrier(memento_cache *cache)
{
	if (cache == NULL)
		return;
	struct memento__tcache *tc = memento__tcache_for(cache);
	/* Inside its own guard it could wait for nothing and destroy nothing. */
	if (tc == NULL || memento__in_guard(tc))
		return;
	/* Orders the removals that returned before this call before the read
	 * of the epoch they were stamped at or before. */
	atomic_thread_fence(memory_order_seq_cst);
	unsigned int upto = global_epoch(cache);
	for (unsigned int round = 0;; round++) {
		bool waiting = limbo_holds_upto(cache, upto);
		memento__reclaim_due(cache, tc);
		if (!waiting)
			break;
		barrier_pause(round);
	}
}
