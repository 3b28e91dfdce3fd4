/*
 * Many threads at once: a stampede on one new key, many threads over many
 * keys while the table grows, and a failing creation with waiters.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"

#include <string.h>

TestSuite(stampede, .timeout = 120);

/* ---- 64 threads released together on one new key ------------------------------- */

enum { STAMPEDE_THREADS = 64 };

struct stampede {
	pthread_barrier_t start;
	memento_class *cls;
	uint64_t key;
	int rc[STAMPEDE_THREADS];
};

static void *stampede_thread(int index, void *data)
{
	struct stampede *s = data;
	void *obj = NULL;
	pthread_barrier_wait(&s->start);
	s->rc[index] = memento_get(s->cls, &(struct args){ s->key, index }, &obj);
	return obj;
}

/* Holds the creation open until every other thread is waiting on it, so the
 * test checks coalescing, not luck. */
static memento_class *hold_cls;
static void hold_until_all_wait(struct counting *c, const struct args *a)
{
	(void)c;
	(void)a;
	await_waits(hold_cls, STAMPEDE_THREADS - 1, 20000);
}

Test(stampede, sixty_four_threads_one_new_key_one_creation)
{
	memento_cache *cache = new_cache();
	struct counting counts = { .sleep_ms = 50, .hook = hold_until_all_wait };
	struct stampede s = { .cls = counting_class(cache, "slow", &counts) };
	hold_cls = s.cls;
	for (int round = 0; round < 3; round++) {
		s.key = 1000 + (uint64_t)round;
		pthread_barrier_init(&s.start, NULL, STAMPEDE_THREADS);
		void *got[STAMPEDE_THREADS];
		memento_stats before = stats_of(s.cls);
		crowd_run(STAMPEDE_THREADS, stampede_thread, &s, got);
		pthread_barrier_destroy(&s.start);

		cr_assert_eq(atomic_load(&counts.creations), round + 1, "round %d: creations", round);
		for (int i = 0; i < STAMPEDE_THREADS; i++) {
			cr_assert_eq(s.rc[i], 0, "thread %d: %s", i, memento_strerror(s.rc[i]));
			cr_assert_eq(got[i], got[0], "thread %d got another object", i);
		}
		struct obj *o = got[0];
		cr_assert_eq(o->key, s.key);
		memento_stats st = stats_of(s.cls);
		cr_assert_eq(st.misses - before.misses, STAMPEDE_THREADS);
		cr_assert_eq(st.waits - before.waits, STAMPEDE_THREADS - 1);
		cr_assert_eq(st.creations - before.creations, 1);
	}
	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&counts.destroys), 3);
}

/* ---- 8 threads over 100,000 keys, each in its own random order ------------------ */

enum { MANY_THREADS = 8, MANY_KEYS = 100000 };

struct many {
	pthread_barrier_t start;
	memento_class *cls;
	atomic_int per_key[MANY_KEYS];
	void **seen; /* [thread][key] */
};

static int many_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_u64(key, *(const uint64_t *)args);
}

static int many_create(void **out, const void *args, void *ctx)
{
	struct many *m = ctx;
	uint64_t k = *(const uint64_t *)args;
	atomic_fetch_add(&m->per_key[k], 1);
	uint64_t *o = malloc(sizeof *o);
	if (o == NULL)
		return -ENOMEM;
	*o = k;
	*out = o;
	return 0;
}

static void many_destroy(void *obj, void *ctx)
{
	(void)ctx;
	free(obj);
}

static void *many_thread(int index, void *data)
{
	struct many *m = data;
	uint64_t *order = malloc(MANY_KEYS * sizeof *order);
	cr_assert(order != NULL);
	for (uint64_t k = 0; k < MANY_KEYS; k++)
		order[k] = k;
	unsigned int rng = (unsigned int)index * 2654435761u + 1;
	for (uint64_t k = MANY_KEYS - 1; k > 0; k--) {
		uint64_t j = (uint64_t)rand_r(&rng) % (k + 1);
		uint64_t t = order[k];
		order[k] = order[j];
		order[j] = t;
	}
	pthread_barrier_wait(&m->start);
	void **mine = m->seen + (size_t)index * MANY_KEYS;
	for (uint64_t n = 0; n < MANY_KEYS; n++) {
		uint64_t k = order[n];
		void *obj;
		int rc = memento_get(m->cls, &k, &obj);
		cr_assert_eq(rc, 0, "key %llu: %s", (unsigned long long)k, memento_strerror(rc));
		cr_assert_eq(*(uint64_t *)obj, k);
		mine[k] = obj;
	}
	free(order);
	return NULL;
}

Test(stampede, eight_threads_hundred_thousand_keys_one_creation_each)
{
	memento_cache *cache;
	memento_cache_options opt = MEMENTO_CACHE_OPTIONS_INIT;
	opt.shards = 4; /* small tables that must grow many times while read */
	cr_assert_eq(memento_cache_new_with(&cache, &opt), 0);
	struct many *m = calloc(1, sizeof *m);
	m->seen = calloc((size_t)MANY_THREADS * MANY_KEYS, sizeof *m->seen);
	cr_assert(m != NULL && m->seen != NULL);
	memento_class_desc desc = { "many", many_key, many_create, many_destroy, m };
	cr_assert_eq(memento_class_new(cache, &desc, &m->cls), 0);
	pthread_barrier_init(&m->start, NULL, MANY_THREADS);
	crowd_run(MANY_THREADS, many_thread, m, NULL);
	pthread_barrier_destroy(&m->start);

	for (int k = 0; k < MANY_KEYS; k++) {
		cr_assert_eq(atomic_load(&m->per_key[k]), 1, "key %d created %d times", k,
		             atomic_load(&m->per_key[k]));
		for (int t = 1; t < MANY_THREADS; t++)
			cr_assert_eq(m->seen[(size_t)t * MANY_KEYS + k], m->seen[k],
			             "key %d: thread %d got another object", k, t);
	}
	cr_assert_eq(memento_count(cache), MANY_KEYS);
	memento_stats st = stats_of(m->cls);
	cr_assert_eq(st.creations, MANY_KEYS);
	cr_assert_eq(st.hits + st.misses, (uint64_t)MANY_THREADS * MANY_KEYS);
	memento_cache_free(cache);
	free(m->seen);
	free(m);
}

/* ---- a failing creation: every waiter of that attempt gets its error ------------- */

enum { FAIL_THREADS = 16 };

Test(stampede, waiters_share_the_creators_error_and_nothing_is_cached)
{
	memento_cache *cache = new_cache();
	struct counting counts = { .fail_with = -ECONNREFUSED, .hook = hold_until_all_wait };
	struct stampede s = { .cls = counting_class(cache, "refused", &counts), .key = 5 };
	hold_cls = s.cls;
	/* hold_until_all_wait waits for STAMPEDE_THREADS - 1 waiters: run that many. */
	pthread_barrier_init(&s.start, NULL, STAMPEDE_THREADS);
	crowd_run(STAMPEDE_THREADS, stampede_thread, &s, NULL);
	pthread_barrier_destroy(&s.start);

	cr_assert_eq(atomic_load(&counts.creations), 1, "one attempt, shared by all");
	for (int i = 0; i < STAMPEDE_THREADS; i++)
		cr_assert_eq(s.rc[i], -ECONNREFUSED, "thread %d: %s", i, memento_strerror(s.rc[i]));
	cr_assert_eq(memento_count(cache), 0);
	void *obj;
	cr_assert_eq(memento_peek(s.cls, &(struct args){ 5, 0 }, &obj), -ENOENT);

	/* The next call tries again, and now succeeds. */
	counts.fail_with = 0;
	counts.hook = NULL;
	cr_assert_eq(memento_get(s.cls, &(struct args){ 5, 0 }, &obj), 0);
	cr_assert_eq(atomic_load(&counts.creations), 2);
	memento_stats st = stats_of(s.cls);
	cr_assert_eq(st.failures, 1);
	cr_assert_eq(st.waits, STAMPEDE_THREADS - 1);
	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&counts.destroys), 1);
}

/* ---- repeated small stampedes on fresh keys, mixed with failures ------------------ */

struct churn {
	pthread_barrier_t start;
	memento_class *cls;
	int rounds;
	atomic_int errors;
	void **first; /* [round]: the object every thread must agree on */
};

static void *churn_thread(int index, void *data)
{
	struct churn *c = data;
	for (int r = 0; r < c->rounds; r++) {
		pthread_barrier_wait(&c->start);
		void *obj = NULL;
		int rc;
		/* A failed attempt caches nothing: retrying must create again. */
		while ((rc = memento_get(c->cls, &(struct args){ (uint64_t)r, index }, &obj)) == -EIO)
			atomic_fetch_add(&c->errors, 1);
		cr_assert_eq(rc, 0, "%s", memento_strerror(rc));
		void *expected = NULL;
		/* The first thread to finish records the object; the rest must match. */
		if (!__atomic_compare_exchange_n(&c->first[r], &expected, obj, false, __ATOMIC_SEQ_CST,
		                                 __ATOMIC_SEQ_CST))
			cr_assert_eq(expected, obj, "round %d: two objects for one key", r);
	}
	return NULL;
}

Test(stampede, repeated_rounds_never_create_twice)
{
	enum { THREADS = 8, ROUNDS = 400 };
	memento_cache *cache = new_cache();
	struct counting counts = { 0 };
	atomic_store(&counts.fail_first_n, 50);
	struct churn c = { .cls = counting_class(cache, "churn", &counts), .rounds = ROUNDS };
	c.first = calloc(ROUNDS, sizeof *c.first);
	pthread_barrier_init(&c.start, NULL, THREADS);
	crowd_run(THREADS, churn_thread, &c, NULL);
	pthread_barrier_destroy(&c.start);
	/* Every round made exactly one object; the failed attempts made none. */
	cr_assert_eq(memento_count(cache), ROUNDS);
	cr_assert_eq(atomic_load(&counts.creations), ROUNDS + 50);
	memento_stats st = stats_of(c.cls);
	cr_assert_eq(st.failures, 50);
	cr_assert(atomic_load(&c.errors) >= 50);
	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&counts.destroys), ROUNDS);
	free(c.first);
}

/* ---- threads that come and go: records recycled, counts kept -------------------- */

struct transient {
	memento_class *cls;
	void *first;
};

static void *transient_thread(void *p)
{
	struct transient *t = p;
	void *obj;
	cr_assert_eq(memento_get(t->cls, &(struct args){ 1, 0 }, &obj), 0);
	cr_assert_eq(obj, t->first);
	cr_assert_eq(memento_get(t->cls, &(struct args){ 2, 0 }, &obj), 0);
	return NULL;
}

Test(stampede, exited_threads_keep_their_counts)
{
	enum { ROUNDS = 200, AT_ONCE = 4 };
	memento_cache *cache = new_cache();
	struct counting counts = { 0 };
	struct transient t = { .cls = counting_class(cache, "transient", &counts) };
	cr_assert_eq(memento_get(t.cls, &(struct args){ 1, 0 }, &t.first), 0);
	for (int r = 0; r < ROUNDS; r++) {
		pthread_t threads[AT_ONCE];
		for (int i = 0; i < AT_ONCE; i++)
			cr_assert_eq(pthread_create(&threads[i], NULL, transient_thread, &t), 0);
		for (int i = 0; i < AT_ONCE; i++)
			pthread_join(threads[i], NULL);
	}
	/* Every get of every exited thread is still counted. */
	memento_stats st = stats_of(t.cls);
	cr_assert_eq(st.hits + st.misses, 1 + 2 * ROUNDS * AT_ONCE);
	cr_assert_eq(st.creations, 2);
	cr_assert_eq(atomic_load(&counts.creations), 2);
	memento_cache_free(cache);
}

/* A thread that used a cache exits after the cache was freed, and meanwhile
 * uses a new cache: its record of the old one must be forgotten, not used. */
struct outliving {
	memento_class *cls;
	atomic_int used, freed;
	memento_class *next_cls;
};

static void *outliving_thread(void *p)
{
	struct outliving *o = p;
	void *obj;
	cr_assert_eq(memento_get(o->cls, &(struct args){ 1, 0 }, &obj), 0);
	atomic_fetch_add(&o->used, 1);
	while (!atomic_load(&o->freed))
		sleep_ms(1);
	cr_assert_eq(memento_get(o->next_cls, &(struct args){ 1, 0 }, &obj), 0);
	return NULL;
}

Test(stampede, threads_outlive_the_caches_they_used)
{
	for (int round = 0; round < 20; round++) {
		memento_cache *old = new_cache(), *next = new_cache();
		struct counting a = { 0 }, b = { 0 };
		struct outliving o = { .cls = counting_class(old, "old", &a),
			               .next_cls = counting_class(next, "next", &b) };
		pthread_t threads[4];
		for (int i = 0; i < 4; i++)
			cr_assert_eq(pthread_create(&threads[i], NULL, outliving_thread, &o), 0);
		/* The cache may be freed once every use of it has returned. */
		cr_assert(await_at_least(&o.used, 4, 10000));
		memento_cache_free(old);
		atomic_store(&o.freed, 1);
		for (int i = 0; i < 4; i++)
			pthread_join(threads[i], NULL);
		cr_assert_eq(atomic_load(&a.destroys), 1);
		cr_assert_eq(stats_of(o.next_cls).hits + stats_of(o.next_cls).misses, 4);
		memento_cache_free(next);
	}
}
