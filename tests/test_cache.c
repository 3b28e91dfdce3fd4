/*
 * Caches and classes: creation with and without options, bad input, class
 * names, the default cache, error texts, the version.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"

#include <limits.h>
#include <string.h>

TestSuite(cache, .timeout = 30);

Test(cache, new_and_free)
{
	memento_cache *cache = NULL;
	cr_assert_eq(memento_cache_new(&cache), 0);
	cr_assert_not_null(cache);
	cr_assert_eq(memento_count(cache), 0);
	memento_cache_free(cache);
	memento_cache_free(NULL); /* a no-op */
}

Test(cache, new_rejects_bad_arguments)
{
	cr_assert_eq(memento_cache_new(NULL), -EINVAL);
	cr_assert_eq(memento_cache_new_with(NULL, NULL), -EINVAL);
	memento_cache *cache = (memento_cache *)&cache;
	memento_cache_options too_small = { 0 };
	cr_assert_eq(memento_cache_new_with(&cache, &too_small), -EINVAL);
	memento_cache_options too_many = MEMENTO_CACHE_OPTIONS_INIT;
	too_many.shards = MEMENTO_SHARDS_MAX + 1;
	cr_assert_eq(memento_cache_new_with(&cache, &too_many), -EINVAL);
	memento_cache_options too_big = MEMENTO_CACHE_OPTIONS_INIT;
	too_big.shards = 2;
	too_big.initial_capacity = 2 * MEMENTO_CAPACITY_PER_SHARD_MAX + 2;
	cr_assert_eq(memento_cache_new_with(&cache, &too_big), -EINVAL);
	too_big.initial_capacity = SIZE_MAX;
	cr_assert_eq(memento_cache_new_with(&cache, &too_big), -EINVAL);
	cr_assert_eq(cache, (memento_cache *)&cache, "out pointer written on failure");
}

/* Each option value gives a cache that works the same. */
static void exercise(memento_cache *cache)
{
	struct counting counts = { 0 };
	memento_class *cls = counting_class(cache, "c", &counts);
	void *first[300];
	for (uint64_t i = 0; i < 300; i++)
		cr_assert_eq(memento_get(cls, &(struct args){ i, 0 }, &first[i]), 0);
	for (uint64_t i = 0; i < 300; i++) {
		void *again;
		cr_assert_eq(memento_get(cls, &(struct args){ i, 0 }, &again), 0);
		cr_assert_eq(again, first[i]);
	}
	cr_assert_eq(memento_count(cache), 300);
	cr_assert_eq(atomic_load(&counts.creations), 300);
	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&counts.destroys), 300);
}

Test(cache, options_shape_the_table_not_the_semantics)
{
	unsigned int shards[] = { 0, 1, 3, 16, MEMENTO_SHARDS_MAX };
	size_t capacities[] = { 0, 1, 100000 };
	for (size_t s = 0; s < sizeof shards / sizeof shards[0]; s++) {
		for (size_t c = 0; c < sizeof capacities / sizeof capacities[0]; c++) {
			memento_cache_options opt = MEMENTO_CACHE_OPTIONS_INIT;
			opt.shards = shards[s];
			opt.initial_capacity = capacities[c];
			opt.seed = s * 7 + c;
			memento_cache *cache;
			cr_assert_eq(memento_cache_new_with(&cache, &opt), 0, "shards %u capacity %zu",
			             shards[s], capacities[c]);
			exercise(cache);
		}
	}
}

Test(cache, options_from_an_older_header_are_accepted)
{
	/* A caller compiled when the options ended after `shards`. */
	memento_cache_options opt = MEMENTO_CACHE_OPTIONS_INIT;
	opt.size = offsetof(memento_cache_options, shards) + sizeof opt.shards;
	opt.shards = 2;
	opt.seed = 12345; /* beyond the old size: must be ignored, not read */
	memento_cache *cache;
	cr_assert_eq(memento_cache_new_with(&cache, &opt), 0);
	exercise(cache);
}

static memento_class_desc counting_desc(const char *name, struct counting *c)
{
	return (memento_class_desc){ name, counting_key, counting_create, counting_destroy, c };
}

Test(cache, class_new_rejects_bad_arguments)
{
	memento_cache *cache = new_cache();
	struct counting counts = { 0 };
	memento_class_desc desc = counting_desc("x", &counts);
	memento_class *cls = (memento_class *)&cls;
	cr_assert_eq(memento_class_new(NULL, &desc, &cls), -EINVAL);
	cr_assert_eq(memento_class_new(cache, NULL, &cls), -EINVAL);
	cr_assert_eq(memento_class_new(cache, &desc, NULL), -EINVAL);
	memento_class_desc no_name = desc, no_key = desc, no_create = desc;
	no_name.name = NULL;
	no_key.key = NULL;
	no_create.create = NULL;
	cr_assert_eq(memento_class_new(cache, &no_name, &cls), -EINVAL);
	cr_assert_eq(memento_class_new(cache, &no_key, &cls), -EINVAL);
	cr_assert_eq(memento_class_new(cache, &no_create, &cls), -EINVAL);
	cr_assert_eq(cls, (memento_class *)&cls, "out pointer written on failure");
	/* The cache is still usable: the name was not taken by a failed call. */
	cr_assert_eq(memento_class_new(cache, &desc, &cls), 0);
	void *obj;
	cr_assert_eq(memento_get(cls, &(struct args){ 1, 0 }, &obj), 0);
	memento_cache_free(cache);
}

Test(cache, duplicate_class_name_is_eexist_and_the_first_class_keeps_working)
{
	memento_cache *cache = new_cache();
	struct counting a = { 0 }, b = { 0 };
	memento_class *first = counting_class(cache, "pool", &a);
	memento_class_desc again = counting_desc("pool", &b);
	memento_class *second = NULL;
	cr_assert_eq(memento_class_new(cache, &again, &second), -EEXIST);
	cr_assert_null(second);
	void *obj;
	cr_assert_eq(memento_get(first, &(struct args){ 1, 0 }, &obj), 0);
	cr_assert_eq(atomic_load(&a.creations), 1);
	/* The same name in another cache is another class. */
	memento_cache *other = new_cache();
	memento_class *elsewhere = counting_class(other, "pool", &b);
	cr_assert_neq(elsewhere, first);
	memento_cache_free(other);
	memento_cache_free(cache);
}

/*
 * An entry keeps its class index in the top 15 bits of its state word: the
 * last class must still tell its keys from the first class's, and one class
 * more must be refused without harming the cache.  Single-threaded, and the
 * 32768 name checks take over a minute under ThreadSanitizer's interceptors,
 * so that build leaves it out.
 */
#ifndef __SANITIZE_THREAD__
Test(cache, class_limit_is_enospc_and_the_last_class_works)
{
	memento_cache *cache = new_cache();
	struct counting counts = { 0 };
	memento_class *first = NULL, *last = NULL;
	for (uint32_t i = 0; i < MEMENTO_CLASSES_MAX; i++) {
		char name[16];
		snprintf(name, sizeof name, "c%u", i);
		memento_class_desc desc = counting_desc(name, &counts);
		memento_class *cls = NULL;
		cr_assert_eq(memento_class_new(cache, &desc, &cls), 0, "class %u", i);
		if (i == 0)
			first = cls;
		last = cls;
	}
	memento_class_desc one_more = counting_desc("one-more", &counts);
	memento_class *refused = NULL;
	cr_assert_eq(memento_class_new(cache, &one_more, &refused), -ENOSPC);
	cr_assert_null(refused);
	cr_assert_eq(memento_class_find(cache, "one-more", &refused), -ENOENT);

	struct args a = { 7, 0 };
	void *in_first, *in_last, *again;
	cr_assert_eq(memento_get(first, &a, &in_first), 0);
	cr_assert_eq(memento_get(last, &a, &in_last), 0);
	cr_assert_neq(in_first, in_last, "equal keys of two classes are two objects");
	cr_assert_eq(memento_get(last, &a, &again), 0);
	cr_assert_eq(again, in_last);
	cr_assert_eq(memento_peek(first, &a, &again), 0);
	cr_assert_eq(again, in_first);
	cr_assert_eq(atomic_load(&counts.creations), 2);
	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&counts.destroys), 2);
}
#endif

Test(cache, classes_are_found_by_name)
{
	memento_cache *cache = new_cache();
	struct counting counts = { 0 };
	memento_class *cls = counting_class(cache, "regex", &counts);
	memento_class *found = NULL;
	cr_assert_eq(memento_class_find(cache, "regex", &found), 0);
	cr_assert_eq(found, cls);
	cr_assert_eq(memento_class_find(cache, "nope", &found), -ENOENT);
	cr_assert_eq(memento_class_find(NULL, "regex", &found), -EINVAL);
	cr_assert_eq(memento_class_find(cache, NULL, &found), -EINVAL);
	cr_assert_eq(memento_class_find(cache, "regex", NULL), -EINVAL);
	cr_assert_str_eq(memento_class_name(cls), "regex");
	cr_assert_eq(memento_class_cache(cls), cache);
	cr_assert_null(memento_class_name(NULL));
	cr_assert_null(memento_class_cache(NULL));
	memento_cache_free(cache);
}

Test(cache, class_name_is_copied)
{
	memento_cache *cache = new_cache();
	struct counting counts = { 0 };
	char name[16] = "mutable";
	memento_class *cls = counting_class(cache, name, &counts);
	strcpy(name, "changed");
	cr_assert_str_eq(memento_class_name(cls), "mutable");
	memento_cache_free(cache);
}

Test(cache, default_cache_is_one_usable_cache)
{
	memento_cache *a = memento_default_cache();
	memento_cache *b = memento_default_cache();
	cr_assert_not_null(a);
	cr_assert_eq(a, b);
	static struct counting counts; /* the default cache outlives this test */
	memento_class *cls = counting_class(a, "default-test", &counts);
	void *x, *y;
	cr_assert_eq(memento_get(cls, &(struct args){ 1, 0 }, &x), 0);
	cr_assert_eq(memento_get(cls, &(struct args){ 1, 0 }, &y), 0);
	cr_assert_eq(x, y);
}

static void *default_from_many(int index, void *data)
{
	(void)index;
	(void)data;
	return memento_default_cache();
}

Test(cache, default_cache_is_created_once_under_contention)
{
	void *seen[16];
	crowd_run(16, default_from_many, NULL, seen);
	for (int i = 0; i < 16; i++) {
		cr_assert_not_null(seen[i]);
		cr_assert_eq(seen[i], seen[0]);
	}
}

Test(cache, many_caches_come_and_go_on_one_thread)
{
	/* Each cache leaves a per-thread record behind; they must be pruned. */
	for (int i = 0; i < 2000; i++) {
		memento_cache *cache = new_cache();
		struct counting counts = { 0 };
		memento_class *cls = counting_class(cache, "c", &counts);
		void *obj;
		cr_assert_eq(memento_get(cls, &(struct args){ (uint64_t)i, 0 }, &obj), 0);
		cr_assert_eq(((struct obj *)obj)->key, (uint64_t)i);
		memento_cache_free(cache);
		cr_assert_eq(atomic_load(&counts.destroys), 1);
	}
}

Test(cache, two_caches_used_alternately_stay_apart)
{
	memento_cache *c1 = new_cache(), *c2 = new_cache();
	struct counting k1 = { 0 }, k2 = { 0 };
	memento_class *a = counting_class(c1, "same", &k1);
	memento_class *b = counting_class(c2, "same", &k2);
	for (int round = 0; round < 3; round++) {
		for (uint64_t i = 0; i < 100; i++) {
			void *x, *y;
			cr_assert_eq(memento_get(a, &(struct args){ i, 0 }, &x), 0);
			cr_assert_eq(memento_get(b, &(struct args){ i, 0 }, &y), 0);
			cr_assert_neq(x, y);
		}
	}
	cr_assert_eq(atomic_load(&k1.creations), 100);
	cr_assert_eq(atomic_load(&k2.creations), 100);
	cr_assert_eq(stats_of(a).hits, 200);
	cr_assert_eq(stats_of(b).hits, 200);
	memento_cache_free(c1);
	memento_cache_free(c2);
}

Test(cache, errors_have_names_and_descriptions)
{
	static const int ours[] = { EINVAL, ENOMEM, EEXIST, E2BIG, ENOENT,
		                    EINPROGRESS, EDEADLK, ETIMEDOUT, EOWNERDEAD };
	static const char *names[] = { "EINVAL", "ENOMEM", "EEXIST", "E2BIG", "ENOENT",
		                       "EINPROGRESS", "EDEADLK", "ETIMEDOUT", "EOWNERDEAD" };
	for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
		cr_assert_str_eq(memento_err_name(-ours[i]), names[i]);
		const char *text = memento_strerror(-ours[i]);
		cr_assert(text != NULL && strlen(text) > 5);
		cr_assert_str_neq(text, "unknown error");
	}
	cr_assert_str_eq(memento_err_name(0), "OK");
	cr_assert_str_eq(memento_strerror(0), "success");
	/* A callback's own code gets the C library's text. */
	cr_assert_str_eq(memento_err_name(-ECONNREFUSED), "UNKNOWN");
	cr_assert_str_eq(memento_strerror(-ECONNREFUSED), strerror(ECONNREFUSED));
	cr_assert_str_eq(memento_strerror(-99999), "unknown error");
	cr_assert_str_eq(memento_strerror(5), "unknown error");
	/* A callback may return any negative int; INT_MIN has no errno. */
	cr_assert_str_eq(memento_strerror(INT_MIN), "unknown error");
}

Test(cache, version_matches_the_header)
{
	cr_assert_eq(memento_version(), MEMENTO_VERSION_NUMBER);
	cr_assert_eq(MEMENTO_VERSION_NUMBER,
	             MEMENTO_VERSION_MAJOR * 10000 + MEMENTO_VERSION_MINOR * 100 + MEMENTO_VERSION_PATCH);
}
