/*
 * Per-class counters kept per thread, so that counting a hit writes only
 * memory of the counting thread; a reader sums over the cache's records.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <stdlib.h>
#include <errno.h>

/* Class index -> (segment, offset) for indexes past the inline counters. */
static unsigned int segment_of(uint32_t index, uint32_t *offset)
{
	unsigned int top = 31u - (unsigned int)__builtin_clz(index); /* index >= 8 */
	unsigned int s = top - 3u;
	*offset = index - (8u << s);
	return s;
}

static size_t segment_size(unsigned int s)
{
	return ((size_t)8 << s) * sizeof(struct memento__counters);
}

struct memento__counters *memento__counters_slow(struct memento__tcache *tc, uint32_t index)
{
	uint32_t offset;
	unsigned int s = segment_of(index, &offset);
	/* Only this thread stores segments of tc: relaxed is enough to read. */
	struct memento__counters *seg = atomic_load_explicit(&tc->segments[s], memory_order_relaxed);
	if (MEMENTO__UNLIKELY(seg == NULL)) {
		seg = memento__zalloc(tc->cache, segment_size(s), 0);
		if (seg == NULL)
			return NULL;
		/* Release: a summing reader that loads seg sees it zeroed. */
		atomic_store_explicit(&tc->segments[s], seg, memory_order_release);
	}
	return &seg[offset];
}

void memento__counters_free(struct memento__tcache *tc)
{
	for (unsigned int s = 0; s < MEMENTO__COUNTER_SEGMENTS; s++)
		memento__free(tc->cache,
		              atomic_load_explicit(&tc->segments[s], memory_order_relaxed),
		              segment_size(s));
}

static const struct memento__counters *counters_peek(const struct memento__tcache *tc,
                                                     uint32_t index)
{
	if (index < MEMENTO__COUNTERS_INLINE)
		return &tc->counters[index];
	uint32_t offset;
	unsigned int s = segment_of(index, &offset);
	const struct memento__counters *seg =
		atomic_load_explicit(&tc->segments[s], memory_order_acquire);
	return seg != NULL ? &seg[offset] : NULL;
}

void memento__stats_sum(const memento_class *cls, memento_stats *out)
{
	uint64_t sum[MEMENTO__NSTATS] = { 0 };
	/* Acquire: pairs with the release that pushed each record. */
	const struct memento__tcache *tc =
		atomic_load_explicit(&cls->cache->tcaches, memory_order_acquire);
	for (; tc != NULL; tc = tc->next) {
		const struct memento__counters *c = counters_peek(tc, cls->index);
		if (c == NULL)
			continue;
		for (int i = 0; i < MEMENTO__NSTATS; i++)
			sum[i] += atomic_load_explicit(&c->n[i], memory_order_relaxed);
	}
	*out = (memento_stats){
		.hits = sum[MEMENTO__HITS],
		.misses = sum[MEMENTO__MISSES],
		.creations = sum[MEMENTO__CREATIONS],
		.failures = sum[MEMENTO__FAILURES],
		.waits = sum[MEMENTO__WAITS],
		.timeouts = sum[MEMENTO__TIMEOUTS],
		.deadlocks = sum[MEMENTO__DEADLOCKS],
		.evictions = sum[MEMENTO__EVICTIONS],
		.expirations = sum[MEMENTO__EXPIRATIONS],
		.refreshes = sum[MEMENTO__REFRESHES],
		.destroyed = sum[MEMENTO__DESTROYED],
		.store_hits = sum[MEMENTO__STORE_HITS],
		.store_stale = sum[MEMENTO__STORE_STALE],
		.store_writes = sum[MEMENTO__STORE_WRITES],
		.store_errors = sum[MEMENTO__STORE_ERRORS],
		.remote_hits = sum[MEMENTO__REMOTE_HITS],
		.remote_waits = sum[MEMENTO__REMOTE_WAITS],
		.remote_errors = sum[MEMENTO__REMOTE_ERRORS],
	};
}

int memento_class_stats(const memento_class *cls, memento_stats *stats)
{
	if (cls == NULL || stats == NULL)
		return -EINVAL;
	memento__stats_sum(cls, stats);
	return 0;
}
