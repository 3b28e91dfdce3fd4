/*
 * The cache's allocator hook: everything a cache owns goes through it, sizes
 * come back on free, and when any one allocation fails the call that needed
 * it returns -ENOMEM, nothing leaks, and the cache goes on working.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"
#include "support_alloc.h"

#include <string.h>

/* ---- the scenario --------------------------------------------------------------- */

/* Retries op while it reports -ENOMEM (one injected failure at most, so the
 * retry succeeds); any other error fails the test. */
#define RETRY_ENOMEM(enomems, call)                                                      \
	do {                                                                             \
		int rc_;                                                                 \
		while ((rc_ = (call)) == -ENOMEM)                                        \
			(enomems)++;                                                     \
		cr_assert_eq(rc_, 0, "%s: %s", #call, memento_err_name(rc_));            \
	} while (0)

enum { SCENARIO_KEYS = 300, SCENARIO_CLASSES = 10 };

struct nested {
	memento_class *inner; /* the key callback of the outer class gets from it */
	struct counting *count;
};

/* A key callback that itself gets an object, so the key is built on the heap. */
static int nesting_key(memento_key *key, const void *args, void *ctx)
{
	struct nested *n = ctx;
	void *inner = NULL;
	int rc = memento_get(n->inner, args, &inner);
	if (rc != 0)
		return rc;
	return memento_key_u64(key, ((const struct obj *)inner)->key);
}

static int nesting_create(void **out, const void *args, void *ctx)
{
	struct nested *n = ctx;
	return counting_create(out, args, n->count);
}

static void nesting_destroy(void *obj, void *ctx)
{
	struct nested *n = ctx;
	counting_destroy(obj, n->count);
}

static int count_visit(memento_class *cls, void *obj, void *ctx)
{
	(void)cls;
	(void)obj;
	++*(size_t *)ctx;
	return 0;
}

/*
 * Cache and class creation, first gets, table growth, counters past the
 * inline ones, nested key building, peek, forget and recreation, foreach,
 * stats, and the final free: every allocation path a cache has.  Returns
 * how many calls reported -ENOMEM.
 */
static int scenario(struct hook *h)
{
	int enomems = 0;
	struct counting count = { 0 };
	memento_cache *cache = NULL;
	memento_cache_options opt = hooked_options(h, 2);
	RETRY_ENOMEM(enomems, memento_cache_new_with(&cache, &opt));

	memento_class *cls[SCENARIO_CLASSES];
	for (int i = 0; i < SCENARIO_CLASSES; i++) {
		char name[16];
		snprintf(name, sizeof name, "class-%d", i);
		memento_class_desc desc = { name, counting_key, counting_create, counting_destroy,
		                            &count };
		RETRY_ENOMEM(enomems, memento_class_new(cache, &desc, &cls[i]));
	}
	struct nested nest = { cls[1], &count };
	memento_class *outer;
	memento_class_desc outer_desc = { "outer", nesting_key, nesting_create, nesting_destroy,
	                                  &nest };
	RETRY_ENOMEM(enomems, memento_class_new(cache, &outer_desc, &outer));

	/* Growth: the table starts small, 300 keys over 2 shards outgrow it. */
	long bytes_before = atomic_load(&h->live_bytes);
	void *first[SCENARIO_KEYS];
	for (int k = 0; k < SCENARIO_KEYS; k++) {
		struct args a = { (uint64_t)k, k };
		RETRY_ENOMEM(enomems, memento_get(cls[0], &a, &first[k]));
		cr_assert_eq(((struct obj *)first[k])->key, (uint64_t)k);
	}
	/* The entries (24 bytes at least, in chunks) and their table slots are
	 * the allocator's too. */
	cr_assert_geq(atomic_load(&h->live_bytes) - bytes_before, SCENARIO_KEYS * (24 + 8));
	/* The last class counts outside the inline counters. */
	struct args last = { 7, 7 };
	void *o;
	RETRY_ENOMEM(enomems, memento_get(cls[SCENARIO_CLASSES - 1], &last, &o));
	RETRY_ENOMEM(enomems, memento_get(outer, &last, &o));

	/* Hits give the same objects; a forgotten key is created again. */
	for (int k = 0; k < SCENARIO_KEYS; k++) {
		struct args a = { (uint64_t)k, k };
		RETRY_ENOMEM(enomems, memento_peek(cls[0], &a, &o));
		cr_assert_eq(o, first[k], "key %d changed object", k);
	}
	for (int k = 0; k < SCENARIO_KEYS; k += 3) {
		struct args a = { (uint64_t)k, k };
		RETRY_ENOMEM(enomems, memento_forget(cls[0], &a));
	}
	for (int k = 0; k < SCENARIO_KEYS; k += 3) {
		struct args a = { (uint64_t)k, k };
		RETRY_ENOMEM(enomems, memento_get(cls[0], &a, &o));
		cr_assert_neq(o, first[k], "forgotten key %d kept its object", k);
	}
	size_t visited = 0;
	int rc;
	while ((rc = memento_foreach(cache, count_visit, &visited)) == -ENOMEM) {
		enomems++;
		visited = 0;
	}
	cr_assert_eq(rc, 0);
	/* Linked: 300 in class 0, one in the last class, one in outer, one in
	 * class 1 (built by outer's key callback). */
	cr_assert_eq(visited, SCENARIO_KEYS + 3);
	cr_assert_eq(memento_count(cache), SCENARIO_KEYS + 3);

	memento_stats st = stats_of(cls[0]);
	cr_assert_eq(st.creations, SCENARIO_KEYS + SCENARIO_KEYS / 3);

	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&count.destroys), atomic_load(&count.creations),
	             "every created object is destroyed once");
	return enomems;
}

static void assert_clean(struct hook *h, const char *when)
{
	cr_assert_eq(atomic_load(&h->live_blocks), 0, "%s: %ld blocks leaked", when,
	             atomic_load(&h->live_blocks));
	cr_assert_eq(atomic_load(&h->live_bytes), 0, "%s: %ld bytes leaked", when,
	             atomic_load(&h->live_bytes));
	cr_assert_eq(atomic_load(&h->size_mismatches), 0, "%s: free with the wrong size", when);
	cr_assert_eq(atomic_load(&h->bad_alignments), 0, "%s: bad alignment asked", when);
}

Test(alloc, everything_a_cache_owns_goes_through_its_allocator)
{
	struct hook h = { 0 };
	cr_assert_eq(scenario(&h), 0);
	/* Cache, shards, tables, classes and names, entry chunks, creation
	 * records, thread records... */
	cr_assert_gt(atomic_load(&h.allocs), 2 * SCENARIO_CLASSES + 2);
	assert_clean(&h, "no failure");
}

Test(alloc, failing_any_one_allocation_gives_enomem_and_leaks_nothing)
{
	/* Fail allocation 1, then 2, ... until the scenario runs through
	 * without reaching the failing one. */
	long n;
	long total_failed = 0, total_enomem = 0;
	for (n = 1;; n++) {
		struct hook h = { .fail_at = n };
		int enomems = scenario(&h);
		assert_clean(&h, "after a failure");
		long failed = atomic_load(&h.failed);
		total_failed += failed;
		total_enomem += enomems;
		/* A call may absorb a failure: a table that cannot grow after an
		 * insert stays as it is (ck tries again on a later one), and
		 * cache_free sorts without its array.  No call reports more. */
		cr_assert_leq(enomems, failed, "n=%ld: %d ENOMEM for %ld failures", n, enomems,
		              failed);
		if (failed == 0)
			break;
	}
	cr_assert_gt(n, 2 * SCENARIO_CLASSES + 2, "the scenario passes many allocation points");
	cr_assert_gt(total_enomem, n / 2, "most failures reach the caller as -ENOMEM");
	printf("alloc: failed each of %ld allocations in turn: %ld injected, %ld reported as "
	       "-ENOMEM, 0 leaked\n",
	       n - 1, total_failed, total_enomem);
}

Test(alloc, half_an_allocator_is_einval)
{
	struct hook h = { 0 };
	memento_cache *cache = NULL;
	memento_cache_options opt = hooked_options(&h, 0);
	opt.allocator.free = NULL;
	cr_assert_eq(memento_cache_new_with(&cache, &opt), -EINVAL);
	opt = hooked_options(&h, 0);
	opt.allocator.alloc = NULL;
	cr_assert_eq(memento_cache_new_with(&cache, &opt), -EINVAL);
	cr_assert_null(cache);
	cr_assert_eq(atomic_load(&h.allocs), 0);
}

Test(alloc, a_cache_that_cannot_be_made_is_enomem)
{
	struct hook h = { .fail_at = 1 };
	memento_cache *cache = NULL;
	memento_cache_options opt = hooked_options(&h, 4);
	cr_assert_eq(memento_cache_new_with(&cache, &opt), -ENOMEM);
	cr_assert_null(cache);
	assert_clean(&h, "failed creation");
}

/* Threads come and go and use the cache concurrently: the allocator is
 * called from all of them, and the books still balance at the end. */
static void *hooked_worker(int index, void *data)
{
	memento_class *cls = data;
	for (int k = 0; k < 2000; k++) {
		struct args a = { (uint64_t)((k * 7 + index) % 1500), 0 };
		void *o;
		cr_assert_eq(memento_get(cls, &a, &o), 0);
		cr_assert_eq(((struct obj *)o)->key, a.key);
	}
	return NULL;
}

Test(alloc, concurrent_threads_share_one_allocator)
{
	struct hook h = { 0 };
	struct counting count = { 0 };
	memento_cache *cache = NULL;
	memento_cache_options opt = hooked_options(&h, 4);
	cr_assert_eq(memento_cache_new_with(&cache, &opt), 0);
	memento_class *cls = counting_class(cache, "shared", &count);
	for (int round = 0; round < 3; round++)
		crowd_run(8, hooked_worker, cls, NULL);
	cr_assert_eq(atomic_load(&count.creations), 1500);
	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&count.destroys), 1500);
	assert_clean(&h, "after threads");
}
