/*
 * Time in a class's options: expiry, refresh while serving the current
 * object, and failures remembered for failure_ttl_ns.  Durations here are
 * tens of ms, well above the coarse clock's few ms of resolution.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"


#define MS 1000000ull

static memento_cache *cache;
static struct counting counts;

static void fresh_setup(void)
{
	cache = new_cache();
	counts = (struct counting){ 0 };
}

static void fresh_teardown(void)
{
	memento_cache_free(cache);
}

TestSuite(freshness, .init = fresh_setup, .fini = fresh_teardown, .timeout = 60);

static int get_key(memento_class *cls, uint64_t key, struct obj **out)
{
	struct args a = { .key = key };
	void *obj = NULL;
	int rc = memento_get(cls, &a, &obj);
	*out = obj;
	return rc;
}

static struct obj *must_get(memento_class *cls, uint64_t key)
{
	struct obj *o;
	int rc = get_key(cls, key, &o);
	cr_assert_eq(rc, 0, "get %llu: %s", (unsigned long long)key, memento_strerror(rc));
	cr_assert_eq(o->magic, OBJ_MAGIC, "a destroyed object returned");
	return o;
}

static memento_class *timed_class(uint64_t expire_ms, uint64_t refresh_ms)
{
	memento_class_options o = guarded_options();
	o.expire_after_ns = expire_ms * MS;
	o.refresh_after_ns = refresh_ms * MS;
	return counting_class_with(cache, "timed", &counts, &o);
}

/* ---- expiry ------------------------------------------------------------------------ */

Test(freshness, an_expired_object_is_never_returned_and_is_replaced)
{
	memento_class *cls = timed_class(60, 0);
	cr_assert_eq(memento_guard_enter(cache), 0);
	struct obj *first = must_get(cls, 1);
	cr_assert_eq(must_get(cls, 1), first, "young: the same object");
	sleep_ms(80);
	void *peeked;
	struct args a = { .key = 1 };
	cr_assert_eq(memento_peek(cls, &a, &peeked), -ENOENT, "peek never returns it expired");
	struct obj *second = must_get(cls, 1);
	cr_assert_neq(second, first);
	cr_assert_eq(first->magic, OBJ_MAGIC, "still valid inside the guard that got it");
	memento_guard_leave(cache);
	memento_cache_barrier(cache);
	memento_stats st = stats_of(cls);
	cr_assert_eq(st.creations, 2);
	cr_assert_eq(st.expirations, 1);
	cr_assert_eq(st.destroyed, 1);
	cr_assert_eq(atomic_load(&counts.destroys), 1);
}

struct crowd {
	memento_class *cls;
	pthread_barrier_t start;
};

static void *get_after_barrier(int index, void *data)
{
	(void)index;
	struct crowd *c = data;
	cr_assert_eq(memento_guard_enter(cache), 0);
	pthread_barrier_wait(&c->start);
	struct obj *o = must_get(c->cls, 7);
	int serial = o->serial;
	memento_guard_leave(cache);
	return (void *)(intptr_t)serial;
}

Test(freshness, many_gets_of_an_expired_key_create_once)
{
	memento_class *cls = timed_class(40, 0);
	counts.sleep_ms = 20; /* the replacement takes a while: the others wait */
	cr_assert_eq(memento_guard_enter(cache), 0);
	must_get(cls, 7);
	memento_guard_leave(cache);
	sleep_ms(60);
	enum { THREADS = 8 };
	struct crowd c = { .cls = cls };
	pthread_barrier_init(&c.start, NULL, THREADS);
	void *serials[THREADS];
	crowd_run(THREADS, get_after_barrier, &c, serials);
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq((intptr_t)serials[i], 2, "thread %d got creation %ld", i,
		             (long)(intptr_t)serials[i]);
	cr_assert_eq(atomic_load(&counts.creations), 2);
	cr_assert_eq(stats_of(cls).expirations, 1);
	pthread_barrier_destroy(&c.start);
}

Test(freshness, expired_objects_nobody_asks_for_leave_as_new_ones_come)
{
	memento_class *cls = timed_class(40, 0);
	cr_assert_eq(memento_guard_enter(cache), 0);
	for (uint64_t k = 0; k < 1000; k++)
		must_get(cls, k);
	memento_guard_leave(cache);
	sleep_ms(60);
	cr_assert_eq(memento_guard_enter(cache), 0);
	for (uint64_t k = 1000; k < 2000; k++)
		must_get(cls, k);
	memento_guard_leave(cache);
	memento_cache_barrier(cache);
	cr_assert_eq(memento_count(cache), 1000, "the expired thousand swept by the new");
	cr_assert_eq(stats_of(cls).expirations, 1000);
	cr_assert_eq(atomic_load(&counts.destroys), 1000);
}

static int count_visit(memento_class *cls, void *obj, void *ctx)
{
	(void)cls;
	(void)obj;
	(*(int *)ctx)++;
	return 0;
}

Test(freshness, foreach_leaves_expired_objects_out)
{
	memento_class *cls = timed_class(40, 0);
	cr_assert_eq(memento_guard_enter(cache), 0);
	must_get(cls, 1);
	must_get(cls, 2);
	memento_guard_leave(cache);
	int seen = 0;
	cr_assert_eq(memento_foreach(cache, count_visit, &seen), 0);
	cr_assert_eq(seen, 2);
	sleep_ms(60);
	seen = 0;
	cr_assert_eq(memento_foreach(cache, count_visit, &seen), 0);
	cr_assert_eq(seen, 0);
}

/* ---- refresh ---------------------------------------------------------------------------- */

struct refresher {
	memento_class *cls;
	atomic_int started;
	struct obj *got;
	double took_ms;
};

static void *get_timed(void *p)
{
	struct refresher *r = p;
	cr_assert_eq(memento_guard_enter(cache), 0);
	atomic_store(&r->started, 1);
	struct timespec t0 = now_monotonic();
	struct obj *o = must_get(r->cls, 5);
	r->took_ms = ms_between(t0, now_monotonic());
	r->got = o;
	/* Hold the guard until told: the test reads r->got. */
	memento_guard_leave(cache);
	return NULL;
}

Test(freshness, a_stale_object_is_rebuilt_by_one_get_while_the_others_get_it_at_once)
{
	memento_class *cls = timed_class(0, 50);
	cr_assert_eq(memento_guard_enter(cache), 0);
	struct obj *old = must_get(cls, 5);
	memento_guard_leave(cache);
	sleep_ms(70);

	counts.sleep_ms = 300; /* the refresh's create */
	struct refresher first = { .cls = cls }, others[4];
	pthread_t t_first, t_others[4];
	cr_assert_eq(pthread_create(&t_first, NULL, get_timed, &first), 0);
	while (atomic_load(&counts.creations) < 2)
		sleep_ms(1); /* the first get is inside the refresh's create */
	for (int i = 0; i < 4; i++) {
		others[i] = (struct refresher){ .cls = cls };
		cr_assert_eq(pthread_create(&t_others[i], NULL, get_timed, &others[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t_others[i], NULL);
		cr_assert_eq(others[i].got, old, "a get during the refresh returns the current one");
		cr_assert_lt(others[i].took_ms, 150.0, "and does not wait for the refresh (%.1f ms)",
		             others[i].took_ms);
	}
	pthread_join(t_first, NULL);
	cr_assert_neq(first.got, old, "the refreshing get returns the new object");
	cr_assert_geq(first.took_ms, 250.0);
	cr_assert_eq(atomic_load(&counts.creations), 2, "one refresh, however many gets");

	counts.sleep_ms = 0;
	cr_assert_eq(memento_guard_enter(cache), 0);
	cr_assert_eq(must_get(cls, 5), first.got, "the new object replaced the old");
	memento_guard_leave(cache);
	memento_cache_barrier(cache);
	memento_stats st = stats_of(cls);
	cr_assert_eq(st.refreshes, 1);
	cr_assert_eq(st.destroyed, 1, "the old object, once no guard holds it");
	cr_assert_eq(atomic_load(&counts.destroys), 1);
}

struct stale_crowd {
	memento_class *cls;
	pthread_barrier_t start;
	uint64_t key;
	int first;            /* the serial of the key's first object */
	atomic_int refreshed; /* gets that returned the rebuilt object */
};

static void *get_stale_after_barrier(int index, void *data)
{
	(void)index;
	struct stale_crowd *c = data;
	cr_assert_eq(memento_guard_enter(cache), 0);
	pthread_barrier_wait(&c->start);
	if (must_get(c->cls, c->key)->serial != c->first)
		atomic_fetch_add(&c->refreshed, 1);
	memento_guard_leave(cache);
	return NULL;
}

Test(freshness, many_gets_of_a_stale_key_at_once_refresh_it_once)
{
	memento_class *cls = timed_class(0, 20);
	enum { THREADS = 8, ROUNDS = 30 };
	for (int round = 0; round < ROUNDS; round++) {
		struct stale_crowd c = { .cls = cls, .key = 1000 + (uint64_t)round };
		int before = atomic_load(&counts.creations);
		counts.sleep_ms = 0;
		cr_assert_eq(memento_guard_enter(cache), 0);
		c.first = must_get(cls, c.key)->serial;
		cr_assert_eq(c.first, before + 1);
		memento_guard_leave(cache);
		sleep_ms(30);
		counts.sleep_ms = 20;
		pthread_barrier_init(&c.start, NULL, THREADS);
		crowd_run(THREADS, get_stale_after_barrier, &c, NULL);
		pthread_barrier_destroy(&c.start);
		cr_assert_eq(atomic_load(&counts.creations), before + 2,
		             "round %d: one refresh, however many saw it stale at once", round);
		cr_assert_eq(atomic_load(&c.refreshed), 1, "round %d", round);
	}
}

Test(freshness, a_failed_refresh_keeps_the_object_and_retries_a_period_later)
{
	memento_class *cls = timed_class(0, 50);
	cr_assert_eq(memento_guard_enter(cache), 0);
	struct obj *old = must_get(cls, 6);
	sleep_ms(70);
	atomic_store(&counts.fail_first_n, 1);
	cr_assert_eq(must_get(cls, 6), old, "the failed refresh's get still gets the object");
	cr_assert_eq(atomic_load(&counts.creations), 2);
	cr_assert_eq(stats_of(cls).failures, 1);
	cr_assert_eq(must_get(cls, 6), old);
	cr_assert_eq(atomic_load(&counts.creations), 2, "no new attempt before the period");
	sleep_ms(70);
	struct obj *fresh = must_get(cls, 6);
	cr_assert_neq(fresh, old, "the next attempt, a period later, succeeds");
	cr_assert_eq(atomic_load(&counts.creations), 3);
	memento_guard_leave(cache);
	cr_assert_eq(stats_of(cls).refreshes, 1);
}

Test(freshness, refresh_before_expiry_serves_then_expiry_replaces)
{
	memento_class *cls = timed_class(100, 40);
	atomic_store(&counts.fail_first_n, 0);
	cr_assert_eq(memento_guard_enter(cache), 0);
	must_get(cls, 9);
	memento_guard_leave(cache);
	/* Refreshes keep failing: expiry still ends the old object. */
	counts.fail_with = -EIO;
	sleep_ms(120);
	cr_assert_eq(memento_guard_enter(cache), 0);
	struct obj *o;
	cr_assert_eq(get_key(cls, 9, &o), -EIO, "expired: created anew, and that failed");
	memento_guard_leave(cache);
	cr_assert_eq(stats_of(cls).expirations, 1);
}

/* ---- remembered failures -------------------------------------------------------------- */

static memento_class *remembering_class(memento_lifetime lifetime, uint64_t ttl_ms)
{
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	o.lifetime = lifetime;
	o.failure_ttl_ns = ttl_ms * MS;
	return counting_class_with(cache, "remembering", &counts, &o);
}

static void remembered_for_ttl(memento_lifetime lifetime)
{
	memento_class *cls = remembering_class(lifetime, 80);
	if (lifetime == MEMENTO_LIFETIME_GUARDED)
		cr_assert_eq(memento_guard_enter(cache), 0);
	counts.fail_with = -EIO;
	struct obj *o;
	cr_assert_eq(get_key(cls, 3, &o), -EIO);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(get_key(cls, 3, &o), -EIO);
	cr_assert_eq(atomic_load(&counts.creations), 1, "the backend is not asked again");
	struct args a = { .key = 3 };
	void *peeked;
	cr_assert_eq(memento_peek(cls, &a, &peeked), -ENOENT);
	cr_assert_eq(get_key(cls, 4, &o), -EIO, "another key is another failure");
	cr_assert_eq(atomic_load(&counts.creations), 2);
	counts.fail_with = 0;
	sleep_ms(100);
	cr_assert_eq(get_key(cls, 3, &o), 0, "after the ttl, create runs again");
	cr_assert_eq(atomic_load(&counts.creations), 3);
	if (lifetime == MEMENTO_LIFETIME_GUARDED)
		memento_guard_leave(cache);
	memento_stats st = stats_of(cls);
	cr_assert_eq(st.failures, 2);
	cr_assert_eq(st.misses, 13);
}

Test(freshness, a_failure_is_remembered_for_its_ttl_by_a_cache_class)
{
	remembered_for_ttl(MEMENTO_LIFETIME_CACHE);
}

Test(freshness, a_failure_is_remembered_for_its_ttl_by_a_guarded_class)
{
	remembered_for_ttl(MEMENTO_LIFETIME_GUARDED);
}

Test(freshness, without_a_ttl_failures_are_not_remembered)
{
	memento_class *cls = remembering_class(MEMENTO_LIFETIME_CACHE, 0);
	counts.fail_with = -EIO;
	struct obj *o;
	for (int i = 0; i < 5; i++)
		cr_assert_eq(get_key(cls, 3, &o), -EIO);
	cr_assert_eq(atomic_load(&counts.creations), 5);
	cr_assert_eq(memento_count(cache), 0);
}

Test(freshness, forget_ends_a_remembered_failure)
{
	memento_class *cls = remembering_class(MEMENTO_LIFETIME_CACHE, 10000);
	counts.fail_with = -EIO;
	struct obj *o;
	cr_assert_eq(get_key(cls, 3, &o), -EIO);
	cr_assert_eq(memento_count(cache), 1, "a remembered failure is an entry");
	struct args a = { .key = 3 };
	cr_assert_eq(memento_forget(cls, &a), 0);
	cr_assert_eq(memento_count(cache), 0);
	counts.fail_with = 0;
	cr_assert_eq(get_key(cls, 3, &o), 0);
	cr_assert_eq(atomic_load(&counts.creations), 2);
}

Test(freshness, remembered_failures_leave_when_their_time_is_up)
{
	memento_class *cls = remembering_class(MEMENTO_LIFETIME_CACHE, 40);
	counts.fail_with = -EIO;
	struct obj *o;
	for (uint64_t k = 0; k < 1000; k++)
		cr_assert_eq(get_key(cls, k, &o), -EIO);
	cr_assert_eq(memento_count(cache), 1000);
	sleep_ms(60);
	for (uint64_t k = 1000; k < 2000; k++)
		cr_assert_eq(get_key(cls, k, &o), -EIO);
	cr_assert_eq(memento_count(cache), 1000, "each new failure sweeps old ones out");
}

static void *fail_slowly_crowd(int index, void *data)
{
	(void)index;
	struct crowd *c = data;
	pthread_barrier_wait(&c->start);
	struct obj *o;
	return (void *)(intptr_t)get_key(c->cls, 12, &o);
}

Test(freshness, waiters_share_the_failure_and_later_gets_get_it_remembered)
{
	memento_class *cls = remembering_class(MEMENTO_LIFETIME_CACHE, 10000);
	counts.fail_with = -ECONNREFUSED;
	counts.sleep_ms = 30;
	enum { THREADS = 6 };
	struct crowd c = { .cls = cls };
	pthread_barrier_init(&c.start, NULL, THREADS);
	void *results[THREADS];
	crowd_run(THREADS, fail_slowly_crowd, &c, results);
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq((intptr_t)results[i], -ECONNREFUSED);
	cr_assert_eq(atomic_load(&counts.creations), 1);
	struct obj *o;
	cr_assert_eq(get_key(cls, 12, &o), -ECONNREFUSED);
	cr_assert_eq(atomic_load(&counts.creations), 1);
	pthread_barrier_destroy(&c.start);
}
