/*
 * impl_mementos_guarded.c: mementos' guarded classes, as a server uses
 * them: one guard per request.  The class is mementos' (impl_mementos.h:
 * same cache, key, create and get), made MEMENTO_LIFETIME_GUARDED; the
 * driver's batches are the requests: begin_batch enters a guard of the
 * cache, end_batch leaves it, and every get in between runs inside it, so
 * that a get past the front cache pays no epoch section of its own (no
 * locked exchange) and the objects stay valid until the batch ends.
 *
 *   mementos-guarded  no bound: nothing is ever removed, so nothing is
 *                     destroyed before close, as with mementos.
 *   mementos-bounded  max_entries = what open_bounded gets: the driver
 *                     gives max(1, keys / 2), half the workload's keys
 *                     (bench_workload.c; insert, which has none of its
 *                     own, gets uniform's).  mementos keeps a bound per
 *                     writer shard, ceil(max_entries / 16) with the
 *                     default 16 shards, so the table may hold up to 15
 *                     more than max_entries (bound_slack).  Evicted
 *                     objects are destroyed once no guard can see them,
 *                     by a thread leaving its guard; count() first waits
 *                     for that (memento_cache_barrier), as impl.h asks.
 *                     evictions() is the class's counter (memento_stats).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "impl_mementos.h"

static void *guarded_open(void)
{
	memento_class_options options = MEMENTO_CLASS_OPTIONS_INIT;
	options.lifetime = MEMENTO_LIFETIME_GUARDED;
	return bench_mementos_open("mementos-guarded", &options);
}

static void *bounded_open(uint64_t max_entries)
{
	memento_class_options options = MEMENTO_CLASS_OPTIONS_INIT;
	options.lifetime = MEMENTO_LIFETIME_GUARDED;
	options.max_entries = max_entries;
	return bench_mementos_open("mementos-bounded", &options);
}

static int guard_enter(void *table)
{
	return memento_guard_enter(((struct mementos_table *)table)->cache);
}

static void guard_leave(void *table)
{
	memento_guard_leave(((struct mementos_table *)table)->cache);
}

/* The class's own count of its evictions. */
static uint64_t class_evictions(void *table)
{
	memento_stats stats;
	if (memento_class_stats(((struct mementos_table *)table)->cls, &stats) != 0)
		return 0;
	return stats.evictions;
}

/* Called outside every guard: destroys what was removed, then counts. */
static size_t settled_count(void *table)
{
	memento_cache_barrier(((struct mementos_table *)table)->cache);
	return bench_mementos_count(table);
}

const struct bench_impl bench_impl_mementos_guarded = {
	.name = "mementos-guarded",
	.describe = "mementos' class made MEMENTO_LIFETIME_GUARDED: one guard per batch of gets",
	.open = guarded_open,
	.begin_batch = guard_enter,
	.end_batch = guard_leave,
	.get = bench_mementos_get,
	.count = settled_count,
	.close = bench_mementos_close,
};

const struct bench_impl bench_impl_mementos_bounded = {
	.name = "mementos-bounded",
	.describe = "mementos-guarded with max_entries at half the workload's keys",
	.open_bounded = bounded_open,
	.bound_slack = MEMENTO_SHARDS_DEFAULT - 1,
	.evictions = class_evictions,
	.begin_batch = guard_enter,
	.end_batch = guard_leave,
	.get = bench_mementos_get,
	.count = settled_count,
	.close = bench_mementos_close,
};
