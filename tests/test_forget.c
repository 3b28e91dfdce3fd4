/*
 * memento_forget against creations in flight (the clobbering bug of
 * golang/go#31420 must not happen), and walks and forgets racing gets.
 *
 * Chosen semantics: forget detaches an in-flight creation.  Its creator and
 * the callers already waiting get its result; calls that start after forget
 * returned create afresh; the detached object is retired, never cached.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"

TestSuite(forget, .timeout = 120);

/* A creation that stays open until the test lets it go. */
struct gate {
	atomic_int entered; /* creations that reached the gate */
	atomic_int open;
};

static struct gate gate;

static void wait_at_gate(struct counting *c, const struct args *a)
{
	(void)c;
	if (a->payload != 1)
		return; /* only the first creator (payload 1) is held */
	atomic_fetch_add(&gate.entered, 1);
	while (!atomic_load(&gate.open))
		sleep_ms(1);
}

struct caller {
	memento_class *cls;
	uint64_t key;
	int payload;
	int rc;
	void *obj;
	pthread_t thread;
};

static void *caller_run(void *p)
{
	struct caller *c = p;
	c->rc = memento_get(c->cls, &(struct args){ c->key, c->payload }, &c->obj);
	return NULL;
}

static void caller_start(struct caller *c)
{
	cr_assert_eq(pthread_create(&c->thread, NULL, caller_run, c), 0);
}

enum { WAITERS = 8 };

static void forget_in_flight_round(bool creation_fails)
{
	memento_cache *cache = new_cache();
	struct counting counts = { .hook = wait_at_gate };
	memento_class *cls = counting_class(cache, "gated", &counts);
	gate = (struct gate){ 0 };

	/* The creator, held inside create. */
	struct caller creator = { .cls = cls, .key = 7, .payload = 1 };
	caller_start(&creator);
	cr_assert(await_at_least(&gate.entered, 1, 10000));

	/* Callers that wait on that creation. */
	struct caller waiters[WAITERS];
	for (int i = 0; i < WAITERS; i++) {
		waiters[i] = (struct caller){ .cls = cls, .key = 7, .payload = 100 + i };
		caller_start(&waiters[i]);
	}
	cr_assert(await_waits(cls, WAITERS, 10000), "waiters did not start waiting");

	/* Forget detaches the creation; a get started now creates afresh. */
	cr_assert_eq(memento_forget(cls, &(struct args){ 7, 0 }), 0);
	void *obj;
	cr_assert_eq(memento_peek(cls, &(struct args){ 7, 0 }, &obj), -ENOENT);
	struct caller after = { .cls = cls, .key = 7, .payload = 2 };
	caller_start(&after);
	pthread_join(after.thread, NULL);
	cr_assert_eq(after.rc, 0);
	struct obj *fresh = after.obj;
	cr_assert_eq(fresh->payload, 2, "the new caller made its own object");

	/* Now the detached creation finishes, successfully or not. */
	if (creation_fails)
		counts.fail_with = -EPIPE;
	atomic_store(&gate.open, 1);
	pthread_join(creator.thread, NULL);
	for (int i = 0; i < WAITERS; i++)
		pthread_join(waiters[i].thread, NULL);

	int expected_rc = creation_fails ? -EPIPE : 0;
	cr_assert_eq(creator.rc, expected_rc, "creator: %s", memento_strerror(creator.rc));
	for (int i = 0; i < WAITERS; i++) {
		cr_assert_eq(waiters[i].rc, expected_rc, "waiter %d: %s", i,
		             memento_strerror(waiters[i].rc));
		cr_assert_eq(waiters[i].obj, creator.obj, "waiter %d shares the creator's result", i);
	}
	if (!creation_fails) {
		struct obj *detached = creator.obj;
		cr_assert_eq(detached->payload, 1);
		cr_assert_neq((void *)detached, (void *)fresh);
	}

	/* No clobbering: the cache holds exactly the fresh object. */
	counts.fail_with = 0;
	cr_assert_eq(memento_count(cache), 1);
	cr_assert_eq(memento_peek(cls, &(struct args){ 7, 0 }, &obj), 0);
	cr_assert_eq(obj, (void *)fresh);
	cr_assert_eq(memento_get(cls, &(struct args){ 7, 3 }, &obj), 0);
	cr_assert_eq(obj, (void *)fresh);
	cr_assert_eq(atomic_load(&counts.creations), 2);

	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&counts.destroys), creation_fails ? 1 : 2,
	             "each created object destroyed exactly once");
}

Test(forget, in_flight_creation_is_detached_and_never_clobbers)
{
	forget_in_flight_round(false);
}

Test(forget, in_flight_creation_that_fails_is_detached_too)
{
	forget_in_flight_round(true);
}

static memento_class *self_forget_cls;
static atomic_int self_forget_rc;

static void forget_own_key(struct counting *c, const struct args *a)
{
	(void)c;
	if (a->payload == 42)
		atomic_store(&self_forget_rc, memento_forget(self_forget_cls, a));
}

Test(forget, forget_inside_create_detaches_its_own_creation)
{
	memento_cache *cache = new_cache();
	struct counting counts = { .hook = forget_own_key };
	self_forget_cls = counting_class(cache, "self-forget", &counts);
	atomic_store(&self_forget_rc, 1);
	struct obj *first;
	cr_assert_eq(memento_get(self_forget_cls, &(struct args){ 1, 42 }, (void **)&first), 0);
	cr_assert_eq(atomic_load(&self_forget_rc), 0, "forget of the in-flight key");
	cr_assert_eq(first->payload, 42, "the creator still gets its object");
	void *obj;
	cr_assert_eq(memento_peek(self_forget_cls, &(struct args){ 1, 0 }, &obj), -ENOENT);
	cr_assert_eq(memento_count(cache), 0);
	struct obj *second;
	cr_assert_eq(memento_get(self_forget_cls, &(struct args){ 1, 0 }, (void **)&second), 0);
	cr_assert_neq(first, second);
	cr_assert_eq(first->magic, OBJ_MAGIC, "the detached object lives until the cache is freed");
	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&counts.destroys), 2);
}

/* ---- gets, forgets and walks, all at once ------------------------------------------ */

enum { CHURN_KEYS = 64, CHURN_THREADS = 6 };

struct churn {
	memento_cache *cache;
	memento_class *cls;
	atomic_int stop;
	atomic_int gets, forgets, walks;
};

static int check_visit(memento_class *cls, void *obj, void *ctx)
{
	struct churn *c = ctx;
	struct obj *o = obj;
	cr_assert_eq(cls, c->cls);
	cr_assert_eq(o->magic, OBJ_MAGIC, "walk met a destroyed object");
	cr_assert(o->key < CHURN_KEYS);
	return 0;
}

static void *churn_thread(int index, void *data)
{
	struct churn *c = data;
	unsigned int rng = (unsigned int)index + 17;
	while (!atomic_load(&c->stop)) {
		uint64_t k = (uint64_t)rand_r(&rng) % CHURN_KEYS;
		int what = rand_r(&rng) % 16;
		if (index == 0 && what < 2) {
			cr_assert_eq(memento_foreach(c->cache, check_visit, c), 0);
			atomic_fetch_add(&c->walks, 1);
		} else if (what < 4) {
			int rc = memento_forget(c->cls, &(struct args){ k, 0 });
			cr_assert(rc == 0 || rc == -ENOENT, "forget: %s", memento_strerror(rc));
			atomic_fetch_add(&c->forgets, 1);
		} else {
			void *obj;
			int rc = memento_get(c->cls, &(struct args){ k, index }, &obj);
			cr_assert_eq(rc, 0, "get: %s", memento_strerror(rc));
			struct obj *o = obj;
			cr_assert_eq(o->magic, OBJ_MAGIC, "get returned a destroyed object");
			cr_assert_eq(o->key, k, "get returned another key's object");
			atomic_fetch_add(&c->gets, 1);
		}
	}
	return NULL;
}

static void *churn_timer(int index, void *data)
{
	struct churn *c = data;
	(void)index;
	sleep_ms(1500);
	atomic_store(&c->stop, 1);
	return NULL;
}

static void *churn_or_timer(int index, void *data)
{
	return index == CHURN_THREADS ? churn_timer(index, data) : churn_thread(index, data);
}

Test(forget, gets_forgets_and_walks_race_without_loss)
{
	struct churn c = { .cache = new_cache() };
	struct counting counts = { 0 };
	c.cls = counting_class(c.cache, "churn", &counts);
	crowd_run(CHURN_THREADS + 1, churn_or_timer, &c, NULL);
	cr_log_info("gets %d forgets %d walks %d creations %d", atomic_load(&c.gets),
	            atomic_load(&c.forgets), atomic_load(&c.walks), atomic_load(&counts.creations));
	cr_assert(atomic_load(&c.gets) > 0 && atomic_load(&c.forgets) > 0 && atomic_load(&c.walks) > 0);
	/* Once quiet, every key is either absent or its peek matches its get. */
	for (uint64_t k = 0; k < CHURN_KEYS; k++) {
		void *peeked, *got;
		int rc = memento_peek(c.cls, &(struct args){ k, 0 }, &peeked);
		cr_assert(rc == 0 || rc == -ENOENT);
		cr_assert_eq(memento_get(c.cls, &(struct args){ k, 0 }, &got), 0);
		if (rc == 0)
			cr_assert_eq(peeked, got);
	}
	cr_assert_eq(memento_count(c.cache), CHURN_KEYS);
	int created = atomic_load(&counts.creations);
	memento_stats st = stats_of(c.cls);
	cr_assert_eq(st.creations, (uint64_t)created);
	cr_assert_eq(st.failures, 0);
	memento_cache_free(c.cache);
	cr_assert_eq(atomic_load(&counts.destroys), created, "every object destroyed exactly once");
}
