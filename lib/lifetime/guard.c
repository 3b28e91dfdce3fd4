/*
 * The lifetime layer: how long an object a get returned stays valid.
 *
 * A class made with MEMENTO_LIFETIME_CACHE keeps every object until
 * memento_cache_free, as the core always did.  A guarded class's objects
 * are reclaimed: once forgotten, evicted, expired or replaced by a refresh,
 * an object is destroyed as soon as no guard that might have seen it is
 * still held and no memento_ref holds it.  A guard is a read-side section
 * of the cache's epoch that the caller holds across many gets (a request,
 * say): entering the outermost one costs the one locked exchange that each
 * get used to pay, and the gets inside pay none.  Files: guard.c (guards),
 * ref.c (counted references), reclaim.c (from removal to destroy),
 * options.c (class options), freshness.c (expiry, refresh, remembered
 * failures), admit.c (the eviction policy's side of a class).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <errno.h>

struct memento__tcache *memento__tcache_find(memento_cache *cache)
{
	struct memento__thread *t = memento__self;
	if (t == NULL)
		return NULL;
	if (t->last_cache_id == cache->id)
		return t->last_tc;
	for (size_t i = 0; i < t->nslots; i++)
		if (t->slots[i].cache_id == cache->id)
			return t->slots[i].tc;
	return NULL;
}

void memento__front_forget_guarded(struct memento__tcache *tc)
{
	for (uint64_t bits = tc->front_guarded; bits != 0; bits &= bits - 1)
		tc->front[__builtin_ctzll(bits)].entry = NULL;
	tc->front_guarded = 0;
}

void memento__guard_abandon(struct memento__tcache *tc)
{
	memento__front_forget_guarded(tc);
	tc->guard_depth = 0;
	MEMENTO__TSAN_RELEASE(&tc->cache->epoch);
	while (ck_pr_load_uint(&tc->epoch.active) != 0)
		ck_epoch_end(&tc->epoch, NULL);
}

int memento_guard_enter(memento_cache *cache)
{
	if (cache == NULL)
		return -EINVAL;
	struct memento__tcache *tc = memento__tcache_for(cache);
	if (tc == NULL)
		return -ENOMEM;
	if (tc->guard_depth++ == 0)
		ck_epoch_begin(&tc->epoch, NULL);
	return 0;
}

void memento_guard_leave(memento_cache *cache)
{
	if (cache == NULL)
		return;
	struct memento__tcache *tc = memento__tcache_find(cache);
	/* A leave without an enter is ignored (documented). */
	if (tc == NULL || tc->guard_depth == 0)
		return;
	if (--tc->guard_depth != 0)
		return;
	memento__front_forget_guarded(tc);
	/* Pairs with the acquire in memento__reclaim_limbo. */
	MEMENTO__TSAN_RELEASE(&cache->epoch);
	ck_epoch_end(&tc->epoch, NULL);
	memento__reclaim_due_if_any(cache, tc);
}
