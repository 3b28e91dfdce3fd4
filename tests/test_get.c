/*
 * get, peek and forget on one thread: identity, creation counts, failures,
 * NULL objects, forgetting, destruction, statistics, foreach, bad input.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"

#include <string.h>

static memento_cache *cache;
static struct counting counts;
static memento_class *cls;

static void setup(void)
{
	cache = new_cache();
	cls = counting_class(cache, "counting", &counts);
}

static void teardown(void)
{
	memento_cache_free(cache);
}

static struct obj *get_ok(memento_class *c, uint64_t key, int payload)
{
	struct args a = { key, payload };
	void *obj = NULL;
	int rc = memento_get(c, &a, &obj);
	cr_assert_eq(rc, 0, "get %llu: %s", (unsigned long long)key, memento_strerror(rc));
	return obj;
}

TestSuite(get, .init = setup, .fini = teardown, .timeout = 30);

Test(get, same_key_same_pointer_created_once)
{
	struct obj *a = get_ok(cls, 42, 0);
	cr_assert_eq(a->magic, OBJ_MAGIC);
	cr_assert_eq(a->key, 42);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(get_ok(cls, 42, 0), a);
	cr_assert_eq(atomic_load(&counts.creations), 1);
	memento_stats st = stats_of(cls);
	cr_assert_eq(st.hits, 100);
	cr_assert_eq(st.misses, 1);
	cr_assert_eq(st.creations, 1);
}

Test(get, a_hit_never_calls_create)
{
	get_ok(cls, 1, 0);
	counts.fail_with = -EIO; /* a create now would fail the get */
	for (int i = 0; i < 10; i++)
		get_ok(cls, 1, 0);
	cr_assert_eq(atomic_load(&counts.creations), 1);
}

Test(get, different_keys_different_objects)
{
	struct obj *a = get_ok(cls, 1, 0), *b = get_ok(cls, 2, 0);
	cr_assert_neq(a, b);
	cr_assert_eq(a->key, 1);
	cr_assert_eq(b->key, 2);
	cr_assert_eq(memento_count(cache), 2);
}

Test(get, another_class_with_an_equal_key_gets_another_object)
{
	static struct counting other_counts;
	memento_class *other = counting_class(cache, "other", &other_counts);
	struct obj *a = get_ok(cls, 7, 0), *b = get_ok(other, 7, 0);
	cr_assert_neq(a, b);
	cr_assert_eq(get_ok(other, 7, 0), b);
	cr_assert_eq(atomic_load(&counts.creations), 1);
	cr_assert_eq(atomic_load(&other_counts.creations), 1);
}

Test(get, partial_signature_first_callers_arguments_win)
{
	/* The key uses args->key only; payload is an argument outside the key. */
	struct obj *first = get_ok(cls, 5, 111);
	struct obj *second = get_ok(cls, 5, 222);
	cr_assert_eq(first, second);
	cr_assert_eq(second->payload, 111);
}

static atomic_int null_creations;
static int create_null(void **out, const void *args, void *ctx)
{
	(void)args;
	(void)ctx;
	atomic_fetch_add(&null_creations, 1);
	*out = NULL;
	return 0;
}

Test(get, null_object_is_cached_like_any_other)
{
	memento_class_desc desc = { "nulls", counting_key, create_null, NULL, NULL };
	memento_class *c;
	cr_assert_eq(memento_class_new(cache, &desc, &c), 0);
	struct args a = { 3, 0 };
	void *obj = (void *)&obj;
	cr_assert_eq(memento_get(c, &a, &obj), 0);
	cr_assert_null(obj);
	obj = (void *)&obj;
	cr_assert_eq(memento_get(c, &a, &obj), 0);
	cr_assert_null(obj);
	obj = (void *)&obj;
	cr_assert_eq(memento_peek(c, &a, &obj), 0);
	cr_assert_null(obj);
	cr_assert_eq(atomic_load(&null_creations), 1);
}

Test(get, failure_caches_nothing_and_the_next_call_creates_again)
{
	atomic_store(&counts.fail_first_n, 1);
	struct args a = { 9, 0 };
	void *obj = (void *)&obj;
	cr_assert_eq(memento_get(cls, &a, &obj), -EIO);
	cr_assert_eq(obj, (void *)&obj, "out pointer written on failure");
	cr_assert_eq(memento_count(cache), 0);
	cr_assert_eq(memento_peek(cls, &a, &obj), -ENOENT);
	struct obj *o = get_ok(cls, 9, 0);
	cr_assert_eq(o->serial, 2, "the second attempt created");
	cr_assert_eq(get_ok(cls, 9, 0), o);
	memento_stats st = stats_of(cls);
	cr_assert_eq(st.creations, 2);
	cr_assert_eq(st.failures, 1);
	cr_assert_eq(st.misses, 2);
	cr_assert_eq(st.hits, 1);
}

Test(get, create_error_is_passed_through_unchanged)
{
	int errors[] = { -EIO, -ECONNREFUSED, -ENOSPC, -12345 };
	for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
		counts.fail_with = errors[i];
		struct args a = { 100 + i, 0 };
		void *obj;
		cr_assert_eq(memento_get(cls, &a, &obj), errors[i]);
	}
	counts.fail_with = 4; /* positive: a broken callback */
	struct args a = { 200, 0 };
	void *obj;
	cr_assert_eq(memento_get(cls, &a, &obj), -EINVAL);
	cr_assert_eq(memento_count(cache), 0);
}

Test(get, peek_never_creates)
{
	struct args a = { 77, 0 };
	void *obj = NULL;
	cr_assert_eq(memento_peek(cls, &a, &obj), -ENOENT);
	cr_assert_eq(atomic_load(&counts.creations), 0);
	struct obj *o = get_ok(cls, 77, 0);
	cr_assert_eq(memento_peek(cls, &a, &obj), 0);
	cr_assert_eq(obj, o);
	cr_assert_eq(stats_of(cls).hits, 1);
}

Test(get, forget_then_get_creates_a_fresh_object_and_the_old_stays_valid)
{
	struct obj *old = get_ok(cls, 11, 1);
	struct args a = { 11, 0 };
	cr_assert_eq(memento_forget(cls, &a), 0);
	cr_assert_eq(memento_count(cache), 0);
	cr_assert_eq(memento_forget(cls, &a), -ENOENT);
	void *obj;
	cr_assert_eq(memento_peek(cls, &a, &obj), -ENOENT);
	struct obj *fresh = get_ok(cls, 11, 2);
	cr_assert_neq(fresh, old);
	cr_assert_eq(fresh->payload, 2);
	/* The old object is not destroyed before the cache is. */
	cr_assert_eq(old->magic, OBJ_MAGIC);
	cr_assert_eq(old->payload, 1);
	cr_assert_eq(atomic_load(&counts.destroys), 0);
	cr_assert_eq(get_ok(cls, 11, 3), fresh);
}

Test(get, destroy_runs_exactly_once_per_object_at_free)
{
	memento_cache *c = new_cache();
	struct counting k = { 0 };
	memento_class *kc = counting_class(c, "k", &k);
	for (uint64_t i = 0; i < 50; i++)
		get_ok(kc, i, 0);
	struct args a = { 3, 0 };
	for (int round = 0; round < 5; round++) {
		cr_assert_eq(memento_forget(kc, &a), 0);
		get_ok(kc, 3, 0);
	}
	atomic_store(&k.fail_first_n, 2);
	cr_assert_eq(memento_get(kc, &(struct args){ 1000, 0 }, &(void *){ NULL }), -EIO);
	cr_assert_eq(atomic_load(&k.destroys), 0);
	memento_cache_free(c);
	/* 50 keys + 5 recreations; the failed creation made no object. */
	cr_assert_eq(atomic_load(&k.creations), 56);
	cr_assert_eq(atomic_load(&k.destroys), 55);
}

/* Objects built from other objects are destroyed before them. */
static memento_class *dep_cls;
static int destroy_order[8];
static atomic_int destroyed_n;

static int dep_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_i64(key, *(const int *)args);
}

static int dep_create(void **out, const void *args, void *ctx)
{
	(void)ctx;
	int level = *(const int *)args;
	if (level > 0) {
		int below = level - 1;
		void *inner;
		int rc = memento_get(dep_cls, &below, &inner);
		if (rc != 0)
			return rc;
	}
	int *o = malloc(sizeof *o);
	*o = level;
	*out = o;
	return 0;
}

static void dep_destroy(void *obj, void *ctx)
{
	(void)ctx;
	destroy_order[atomic_fetch_add(&destroyed_n, 1)] = *(int *)obj;
	free(obj);
}

Test(get, objects_are_destroyed_newest_first)
{
	memento_cache *c = new_cache();
	memento_class_desc desc = { "dep", dep_key, dep_create, dep_destroy, NULL };
	cr_assert_eq(memento_class_new(c, &desc, &dep_cls), 0);
	int top = 4;
	void *obj;
	cr_assert_eq(memento_get(dep_cls, &top, &obj), 0); /* builds 0, 1, 2, 3, then 4 */
	cr_assert_eq(memento_count(c), 5);
	memento_cache_free(c);
	cr_assert_eq(atomic_load(&destroyed_n), 5);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(destroy_order[i], 4 - i, "destroyed level %d in place %d", destroy_order[i], i);
}

Test(get, create_may_get_other_keys)
{
	memento_class_desc desc = { "dep", dep_key, dep_create, NULL, NULL };
	cr_assert_eq(memento_class_new(cache, &desc, &dep_cls), 0);
	int top = 2;
	void *obj;
	cr_assert_eq(memento_get(dep_cls, &top, &obj), 0);
	cr_assert_eq(*(int *)obj, 2);
	int one = 1;
	void *inner;
	cr_assert_eq(memento_peek(dep_cls, &one, &inner), 0);
	cr_assert_eq(*(int *)inner, 1);
	/* No destroy callback: the cache frees nothing of the user's; free them here. */
	for (int i = 0; i <= 2; i++) {
		cr_assert_eq(memento_peek(dep_cls, &i, &inner), 0);
		free(inner);
	}
}

static int count_visit(memento_class *c, void *obj, void *ctx)
{
	int *seen = ctx;
	struct obj *o = obj;
	if (c == cls) {
		cr_assert_eq(o->magic, OBJ_MAGIC);
		cr_assert(o->key < 64);
		seen[o->key]++;
	}
	return 0;
}

static int stop_at_third(memento_class *c, void *obj, void *ctx)
{
	(void)c;
	(void)obj;
	return ++*(int *)ctx == 3 ? 99 : 0;
}

Test(get, foreach_visits_every_ready_object_once)
{
	for (uint64_t i = 0; i < 64; i++)
		get_ok(cls, i, 0);
	struct args gone = { 10, 0 };
	cr_assert_eq(memento_forget(cls, &gone), 0);
	int seen[64] = { 0 };
	cr_assert_eq(memento_foreach(cache, count_visit, seen), 0);
	for (int i = 0; i < 64; i++)
		cr_assert_eq(seen[i], i == 10 ? 0 : 1, "key %d seen %d times", i, seen[i]);
	int calls = 0;
	cr_assert_eq(memento_foreach(cache, stop_at_third, &calls), 99);
	cr_assert_eq(calls, 3);
	cr_assert_eq(memento_foreach(NULL, stop_at_third, &calls), -EINVAL);
	cr_assert_eq(memento_foreach(cache, NULL, &calls), -EINVAL);
}

Test(get, count_follows_gets_forgets_and_failures)
{
	cr_assert_eq(memento_count(cache), 0);
	for (uint64_t i = 0; i < 1000; i++)
		get_ok(cls, i, 0);
	cr_assert_eq(memento_count(cache), 1000);
	for (uint64_t i = 0; i < 1000; i += 2)
		cr_assert_eq(memento_forget(cls, &(struct args){ i, 0 }), 0);
	cr_assert_eq(memento_count(cache), 500);
	counts.fail_with = -EIO;
	cr_assert_eq(memento_get(cls, &(struct args){ 5000, 0 }, &(void *){ NULL }), -EIO);
	cr_assert_eq(memento_count(cache), 500);
	cr_assert_eq(memento_count(NULL), 0);
}

Test(get, bad_input_gives_einval_and_the_cache_stays_usable)
{
	struct args a = { 1, 0 };
	void *obj = NULL;
	struct timespec bad_deadline = { 0, 1000000000L }, negative = { 0, -1 };
	cr_assert_eq(memento_get(NULL, &a, &obj), -EINVAL);
	cr_assert_eq(memento_get(cls, &a, NULL), -EINVAL);
	cr_assert_eq(memento_get_until(NULL, &a, &obj, NULL), -EINVAL);
	cr_assert_eq(memento_get_until(cls, &a, NULL, NULL), -EINVAL);
	cr_assert_eq(memento_get_until(cls, &a, &obj, &bad_deadline), -EINVAL);
	cr_assert_eq(memento_get_until(cls, &a, &obj, &negative), -EINVAL);
	cr_assert_eq(memento_peek(NULL, &a, &obj), -EINVAL);
	cr_assert_eq(memento_peek(cls, &a, NULL), -EINVAL);
	cr_assert_eq(memento_forget(NULL, &a), -EINVAL);
	cr_assert_eq(memento_class_stats(NULL, &(memento_stats){ 0 }), -EINVAL);
	cr_assert_eq(memento_class_stats(cls, NULL), -EINVAL);
	cr_assert_eq(memento_count(cache), 0);
	cr_assert_eq(atomic_load(&counts.creations), 0);
	struct obj *o = get_ok(cls, 1, 0);
	cr_assert_eq(get_ok(cls, 1, 0), o);
}

Test(get, stats_add_up)
{
	for (uint64_t i = 0; i < 10; i++)
		get_ok(cls, i, 0);
	for (uint64_t i = 0; i < 10; i++)
		get_ok(cls, i, 0);
	atomic_store(&counts.fail_first_n, 3);
	for (uint64_t i = 10; i < 13; i++)
		cr_assert_eq(memento_get(cls, &(struct args){ i, 0 }, &(void *){ NULL }), -EIO);
	memento_stats st = stats_of(cls);
	cr_assert_eq(st.hits, 10);
	cr_assert_eq(st.misses, 13);
	cr_assert_eq(st.creations, 13);
	cr_assert_eq(st.failures, 3);
	cr_assert_eq(st.waits, 0);
	cr_assert_eq(st.timeouts, 0);
	cr_assert_eq(st.deadlocks, 0);
	cr_assert_eq(st.creations - st.failures, memento_count(cache));
}

/* Past the inline counters: many classes in one cache, each counted apart. */
Test(get, stats_of_many_classes_stay_apart)
{
	enum { N = 300 };
	static struct counting many_counts[N];
	memento_class *classes[N];
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof name, "class-%d", i);
		classes[i] = counting_class(cache, name, &many_counts[i]);
	}
	for (int i = 0; i < N; i++)
		for (int j = 0; j <= i % 5; j++)
			get_ok(classes[i], 1, 0);
	for (int i = 0; i < N; i++) {
		memento_stats st = stats_of(classes[i]);
		cr_assert_eq(st.creations, 1, "class %d", i);
		cr_assert_eq(st.hits, (uint64_t)(i % 5), "class %d", i);
	}
}

/* A visitor runs outside the walk's read-side section: it may create (and
 * so block), forget, and walk again. */
static memento_class *walk_other;
static int busy_visit(memento_class *c, void *obj, void *ctx)
{
	int *visited = ctx;
	if (c != cls)
		return 0;
	struct obj *o = obj;
	void *made;
	cr_assert_eq(memento_get(walk_other, &(struct args){ o->key, 0 }, &made), 0);
	cr_assert_eq(memento_forget(cls, &(struct args){ o->key, 0 }), 0);
	(*visited)++;
	return 0;
}

Test(get, foreach_visitor_may_create_forget_and_block)
{
	static struct counting slow = { .sleep_ms = 2 };
	walk_other = counting_class(cache, "made-while-walking", &slow);
	for (uint64_t i = 0; i < 20; i++)
		get_ok(cls, i, 0);
	int visited = 0;
	cr_assert_eq(memento_foreach(cache, busy_visit, &visited), 0);
	cr_assert_eq(visited, 20);
	cr_assert_eq(atomic_load(&slow.creations), 20);
	cr_assert_eq(memento_count(cache), 20, "20 forgotten, 20 made while walking");
}
