/*
 * The per-thread front cache (a thread's latest hits, checked before the
 * table): it must never hand out an entry that was forgotten, whether the
 * forget came from the same thread, another thread, or before the thread
 * record was passed on to a new thread, nor hide a creation in flight;
 * and keys that share a front slot, or the same key in two classes, must
 * never be confused.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"

static memento_cache *cache;
static struct counting counts;
static memento_class *cls; /* of the counting kind, in cache */

static void setup(void)
{
	cache = new_cache();
	cls = counting_class(cache, "counting", &counts);
}

static void teardown(void)
{
	memento_cache_free(cache);
}

TestSuite(front, .init = setup, .fini = teardown, .timeout = 120);

static struct obj *get_ok(memento_class *c, uint64_t key)
{
	struct args a = { key, 0 };
	void *obj = NULL;
	int rc = memento_get(c, &a, &obj);
	cr_assert_eq(rc, 0, "get %llu: %s", (unsigned long long)key, memento_strerror(rc));
	return obj;
}

/* Enough gets of key that a thread's front cache holds its entry: the
 * first may create, the second is a table hit that fills the front. */
static struct obj *get_until_front(memento_class *c, uint64_t key)
{
	struct obj *o = get_ok(c, key);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(get_ok(c, key), o);
	return o;
}

Test(front, forget_on_the_same_thread_is_seen_by_its_next_get_and_peek)
{
	struct obj *old = get_until_front(cls, 5);
	cr_assert_eq(stats_of(cls).hits, 3, "front hits count as hits");
	struct args a = { 5, 0 };
	cr_assert_eq(memento_forget(cls, &a), 0);
	void *seen = NULL;
	cr_assert_eq(memento_peek(cls, &a, &seen), -ENOENT);

	struct obj *fresh = get_ok(cls, 5);
	cr_assert_neq(fresh, old);
	cr_assert_eq(fresh->serial, 2);
	cr_assert_eq(get_until_front(cls, 5), fresh);
	cr_assert_eq(memento_peek(cls, &a, &seen), 0);
	cr_assert_eq(seen, fresh);
	cr_assert_eq(atomic_load(&counts.creations), 2);
}

Test(front, keys_sharing_front_slots_and_classes_sharing_keys_stay_apart)
{
	/* Static: teardown frees the cache, and destroy writes to its class's
	 * counts, after this function has returned. */
	static struct counting a_counts, b_counts;
	memento_class *a = counting_class(cache, "a", &a_counts);
	memento_class *b = counting_class(cache, "b", &b_counts);
	/* Far more keys than front slots, so that many share one; each pass
	 * refills the slots in another order.  A slot that holds another key
	 * (or the same key of the other class: the class seeds the hash) must
	 * send the get to the table, and then hold the new entry. */
	enum { KEYS = 2000 };
	static struct obj *in_a[KEYS], *in_b[KEYS];
	for (uint64_t k = 0; k < KEYS; k++) {
		in_a[k] = get_ok(a, k);
		in_b[k] = get_ok(b, k);
		cr_assert_neq(in_a[k], in_b[k]);
	}
	for (int pass = 0; pass < 4; pass++) {
		for (uint64_t i = 0; i < KEYS; i++) {
			uint64_t k = (i * 7919 + (uint64_t)pass * 13) % KEYS;
			for (int again = 0; again < 2; again++) {
				cr_assert_eq(get_ok(a, k), in_a[k], "class a, key %llu", (unsigned long long)k);
				cr_assert_eq(get_ok(b, k), in_b[k], "class b, key %llu", (unsigned long long)k);
			}
		}
	}
	cr_assert_eq(atomic_load(&a_counts.creations), KEYS);
	cr_assert_eq(atomic_load(&b_counts.creations), KEYS);
}

/*
 * Every round: all threads get the key until their front caches hold it,
 * then one thread forgets it, then all get it again at once.  All must get
 * one fresh object; a thread whose front cache still served the old entry
 * would return the previous round's object.
 */
enum { CROWD = 8, ROUNDS = 200 };

struct forget_rounds {
	memento_class *cls;
	pthread_barrier_t barrier;
	struct obj *before[CROWD], *after[CROWD];
};

static void *forget_rounds_thread(int index, void *data)
{
	struct forget_rounds *r = data;
	for (int round = 0; round < ROUNDS; round++) {
		r->before[index] = get_until_front(r->cls, 9);
		pthread_barrier_wait(&r->barrier);
		if (index == 0)
			cr_assert_eq(memento_forget(r->cls, &(struct args){ 9, 0 }), 0);
		pthread_barrier_wait(&r->barrier);
		r->after[index] = get_ok(r->cls, 9);
		pthread_barrier_wait(&r->barrier);
		if (index == 0) {
			for (int i = 0; i < CROWD; i++) {
				cr_assert_eq(r->before[i], r->before[0], "round %d: one object before", round);
				cr_assert_eq(r->after[i], r->after[0], "round %d: one object after", round);
			}
			cr_assert_neq(r->after[0], r->before[0],
			              "round %d: a forgotten object came back", round);
		}
		pthread_barrier_wait(&r->barrier);
	}
	return NULL;
}

Test(front, a_forget_on_one_thread_reaches_every_threads_front_cache)
{
	struct forget_rounds r = { .cls = cls };
	cr_assert_eq(pthread_barrier_init(&r.barrier, NULL, CROWD), 0);
	crowd_run(CROWD, forget_rounds_thread, &r, NULL);
	pthread_barrier_destroy(&r.barrier);
	/* The first object, then one per forget. */
	cr_assert_eq(atomic_load(&counts.creations), ROUNDS + 1);
}

static void *fill_front(void *c)
{
	return get_until_front(c, 3);
}

Test(front, a_thread_record_passed_on_does_not_pass_on_forgotten_entries)
{
	for (int round = 0; round < 20; round++) {
		/* The first thread fills its front cache and exits, leaving its
		 * record to the next new thread; the key is forgotten between. */
		pthread_t t;
		void *old = NULL, *fresh = NULL;
		cr_assert_eq(pthread_create(&t, NULL, fill_front, cls), 0);
		cr_assert_eq(pthread_join(t, &old), 0);
		cr_assert_eq(memento_forget(cls, &(struct args){ 3, 0 }), 0);
		cr_assert_eq(pthread_create(&t, NULL, fill_front, cls), 0);
		cr_assert_eq(pthread_join(t, &fresh), 0);
		cr_assert_neq(fresh, old, "round %d: a forgotten object came back", round);
		cr_assert_eq(memento_forget(cls, &(struct args){ 3, 0 }), 0);
	}
	cr_assert_eq(atomic_load(&counts.creations), 40);
}

static void *get_in_thread(void *c)
{
	return get_ok(c, 4);
}

Test(front, a_stale_slot_never_hides_a_creation_in_flight)
{
	struct obj *old = get_until_front(cls, 4);
	struct args a = { 4, 0 };
	cr_assert_eq(memento_forget(cls, &a), 0);

	/* Another thread creates the key again, slowly; this thread's slot
	 * still points at the forgotten entry. */
	counts.sleep_ms = 300;
	pthread_t creator;
	cr_assert_eq(pthread_create(&creator, NULL, get_in_thread, cls), 0);
	cr_assert(await_at_least(&counts.creations, 2, 10000), "the creation never started");
	void *seen = NULL;
	cr_assert_eq(memento_peek(cls, &a, &seen), -EINPROGRESS);
	struct timespec deadline = after_ms(now_monotonic(), 20);
	cr_assert_eq(memento_get_until(cls, &a, &seen, &deadline), -ETIMEDOUT);
	cr_assert_eq(seen, NULL, "nothing is written on failure");

	void *fresh = NULL;
	cr_assert_eq(pthread_join(creator, &fresh), 0);
	cr_assert_neq(fresh, old);
	cr_assert_eq(get_until_front(cls, 4), fresh);
	cr_assert_eq(atomic_load(&counts.creations), 2);
}
