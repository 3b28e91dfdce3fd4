/*
 * Bounded classes through the cache: a class never holds more than its
 * bound plus the documented per-shard slack, evicted objects stay valid in
 * the guard that got them and are destroyed once, the hit path's mark
 * keeps a hot key in, weights bound like counts, and memory stays flat.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"
#include "support_alloc.h"

TestSuite(bounds, .timeout = 300);

static memento_cache *cache_with_shards(unsigned int shards)
{
	memento_cache_options co = MEMENTO_CACHE_OPTIONS_INIT;
	co.shards = shards;
	memento_cache *cache;
	cr_assert_eq(memento_cache_new_with(&cache, &co), 0);
	return cache;
}

static memento_class *bounded(memento_cache *cache, struct counting *c, uint64_t max_entries)
{
	memento_class_options o = guarded_options();
	o.max_entries = max_entries;
	return counting_class_with(cache, "bounded", c, &o);
}

static struct obj *get_in_guard(memento_class *cls, uint64_t key)
{
	struct args a = { .key = key };
	void *obj;
	int rc = memento_get(cls, &a, &obj);
	cr_assert_eq(rc, 0, "get: %s", memento_strerror(rc));
	struct obj *o = obj;
	cr_assert_eq(o->magic, OBJ_MAGIC, "a get returned a destroyed object");
	cr_assert_eq(o->key, key);
	return o;
}

Test(bounds, a_class_never_holds_more_than_its_bound_plus_a_slot_per_shard)
{
	const unsigned int shard_counts[] = { 1, 4, 16 };
	for (int s = 0; s < 3; s++) {
		unsigned int shards = shard_counts[s];
		memento_cache *cache = cache_with_shards(shards);
		static struct counting c;
		c = (struct counting){ 0 };
		const uint64_t bound = 1000;
		memento_class *cls = bounded(cache, &c, bound);
		size_t most = 0;
		for (uint64_t k = 0; k < 50000; k++) {
			cr_assert_eq(memento_guard_enter(cache), 0);
			get_in_guard(cls, k);
			if (k % 7 == 0)
				get_in_guard(cls, k / 2); /* some hits, too */
			memento_guard_leave(cache);
			size_t n = memento_count(cache);
			if (n > most)
				most = n;
		}
		cr_log_info("%u shards: at most %zu objects held, bound %llu", shards, most,
		            (unsigned long long)bound);
		cr_assert_leq(most, bound + shards - 1, "%u shards: %zu held", shards, most);
		cr_assert_geq(most, bound * 9 / 10, "%u shards: the bound is used (%zu)", shards, most);
		memento_cache_barrier(cache);
		memento_stats st = stats_of(cls);
		cr_assert_eq(st.creations, st.evictions + memento_count(cache),
		             "every object is held or was evicted");
		cr_assert_eq(st.destroyed, st.evictions, "every evicted object destroyed");
		cr_assert_eq((uint64_t)atomic_load(&c.destroys), st.destroyed);
		memento_cache_free(cache);
		cr_assert_eq((uint64_t)atomic_load(&c.destroys), st.creations);
	}
}

Test(bounds, an_evicted_object_stays_valid_in_the_guard_that_got_it)
{
	memento_cache *cache = cache_with_shards(1);
	static struct counting c;
	memento_class *cls = bounded(cache, &c, 10);
	cr_assert_eq(memento_guard_enter(cache), 0);
	struct obj *first = get_in_guard(cls, 0);
	for (uint64_t k = 1; k < 1000; k++)
		get_in_guard(cls, k);
	cr_assert_gt(stats_of(cls).evictions, 900);
	cr_assert_eq(first->magic, OBJ_MAGIC, "evicted, but this guard may still use it");
	memento_guard_leave(cache);
	memento_cache_barrier(cache);
	cr_assert_eq((uint64_t)atomic_load(&c.destroys), stats_of(cls).evictions);
	memento_cache_free(cache);
}

Test(bounds, a_key_hit_between_misses_stays_in)
{
	memento_cache *cache = cache_with_shards(1);
	static struct counting c;
	memento_class *cls = bounded(cache, &c, 100);
	for (uint64_t k = 1; k < 100000; k++) {
		cr_assert_eq(memento_guard_enter(cache), 0);
		struct obj *hot = get_in_guard(cls, 0);
		cr_assert_eq(hot->serial, 1, "the hot key was evicted after %llu misses",
		             (unsigned long long)k);
		get_in_guard(cls, k); /* a miss, never asked again */
		memento_guard_leave(cache);
	}
	memento_cache_free(cache);
}

static uint64_t weigh_payload(const void *obj, void *ctx)
{
	(void)ctx;
	return (uint64_t)((const struct obj *)obj)->payload;
}

struct weight_sum {
	uint64_t sum;
	size_t n;
};

static int add_weight(memento_class *cls, void *obj, void *ctx)
{
	(void)cls;
	struct weight_sum *w = ctx;
	w->sum += (uint64_t)((struct obj *)obj)->payload;
	w->n++;
	return 0;
}

Test(bounds, weights_bound_like_counts_and_a_too_heavy_object_is_returned_then_evicted)
{
	memento_cache *cache = cache_with_shards(4);
	static struct counting c;
	memento_class_options o = guarded_options();
	o.max_weight = 4000; /* 1000 per shard */
	o.weigh = weigh_payload;
	memento_class_desc desc = { "weighted", counting_key, counting_create, counting_destroy, &c };
	memento_class *cls;
	cr_assert_eq(memento_class_new_with(cache, &desc, &o, &cls), 0);
	uint64_t most = 0;
	for (uint64_t k = 0; k < 20000; k++) {
		struct args a = { .key = k, .payload = (int)(1 + k % 50) };
		void *obj;
		cr_assert_eq(memento_guard_enter(cache), 0);
		cr_assert_eq(memento_get(cls, &a, &obj), 0);
		memento_guard_leave(cache);
		struct weight_sum w = { 0, 0 };
		if (k % 97 == 0) {
			cr_assert_eq(memento_guard_enter(cache), 0);
			cr_assert_eq(memento_foreach(cache, add_weight, &w), 0);
			memento_guard_leave(cache);
			if (w.sum > most)
				most = w.sum;
		}
	}
	cr_log_info("weights: at most %llu held, bound 4000", (unsigned long long)most);
	cr_assert_leq(most, 4000, "weight held: %llu", (unsigned long long)most);
	cr_assert_geq(most, 3000);

	/* Heavier than a shard's share (1000): returned, never kept. */
	struct args heavy = { .key = 1u << 30, .payload = 1500 };
	void *obj;
	cr_assert_eq(memento_guard_enter(cache), 0);
	cr_assert_eq(memento_get(cls, &heavy, &obj), 0);
	cr_assert_eq(((struct obj *)obj)->payload, 1500);
	void *again;
	cr_assert_eq(memento_peek(cls, &heavy, &again), -ENOENT, "evicted at once");
	cr_assert_eq(((struct obj *)obj)->magic, OBJ_MAGIC, "but valid in the guard");
	memento_guard_leave(cache);
	memento_cache_free(cache);
}

/* Distinct keys, a guard per batch of 100 gets. */
static void distinct_gets(memento_cache *cache, memento_class *cls, uint64_t from, uint64_t to)
{
	for (uint64_t k = from; k < to;) {
		cr_assert_eq(memento_guard_enter(cache), 0);
		for (uint64_t end = k + 100; k < end && k < to; k++) {
			void *obj;
			cr_assert_eq(memento_get(cls, &k, &obj), 0);
		}
		memento_guard_leave(cache);
	}
}

#if defined(__SANITIZE_THREAD__)
#define DISTINCT_KEYS 1000000 /* TSan runs this 20x slower */
#else
#define DISTINCT_KEYS 10000000
#endif

Test(bounds, distinct_keys_past_a_bound_keep_memory_flat)
{
	static struct hook hook;
	memento_cache_options co = hooked_options(&hook, 0);
	memento_cache *cache;
	cr_assert_eq(memento_cache_new_with(&cache, &co), 0);
	memento_class_options o = guarded_options();
	o.max_entries = 10000;
	memento_class *cls = plain_class(cache, "flat", &o);

	distinct_gets(cache, cls, 0, 200000);
	memento_cache_barrier(cache);
	long bytes0 = atomic_load(&hook.live_bytes);
	distinct_gets(cache, cls, 200000, 200000 + DISTINCT_KEYS);
	memento_cache_barrier(cache);
	long bytes1 = atomic_load(&hook.live_bytes);
	cr_log_info("%d distinct keys, bound 10000: cache %ld -> %ld bytes", DISTINCT_KEYS, bytes0,
	            bytes1);
	cr_assert_leq(bytes1, bytes0 + bytes0 / 10, "the cache's memory grew: %ld -> %ld", bytes0,
	              bytes1);
	memento_stats st = stats_of(cls);
	cr_assert_eq(st.creations, 200000 + DISTINCT_KEYS);
	cr_assert_leq(memento_count(cache), 10000 + 15);
	cr_assert_eq(st.destroyed, st.evictions);
	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&hook.live_blocks), 0);
}
