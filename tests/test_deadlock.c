/*
 * Recursion and cycles are errors, not hangs: a create that asks for its own
 * key gets -EDEADLK at once, and a cycle of threads, each creating one key
 * and asking for the next, ends with -EDEADLK for at least one of them.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"

TestSuite(deadlock, .timeout = 120);

/* ---- a create asking for its own key -------------------------------------------------- */

static memento_class *self_cls;
static atomic_int inner_rc;

static void ask_for_own_key(struct counting *c, const struct args *a)
{
	(void)c;
	void *obj;
	atomic_store(&inner_rc, memento_get(self_cls, a, &obj));
}

Test(deadlock, create_asking_for_its_own_key_gets_edeadlk_at_once)
{
	memento_cache *cache = new_cache();
	struct counting counts = { .hook = ask_for_own_key };
	self_cls = counting_class(cache, "self", &counts);
	atomic_store(&inner_rc, 1);
	void *obj;
	struct timespec t0 = now_monotonic();
	cr_assert_eq(memento_get(self_cls, &(struct args){ 1, 0 }, &obj), 0,
	             "the outer create ignored the error and succeeded");
	cr_log_info("recursive get answered within %.3f ms", ms_between(t0, now_monotonic()));
	cr_assert_eq(atomic_load(&inner_rc), -EDEADLK);
	cr_assert_eq(atomic_load(&counts.creations), 1);
	memento_stats st = stats_of(self_cls);
	cr_assert_eq(st.deadlocks, 1);
	cr_assert_eq(st.waits, 0, "the recursive call never waited");
	/* Also through get_until, whatever its deadline. */
	void *again;
	cr_assert_eq(memento_get(self_cls, &(struct args){ 1, 0 }, &again), 0);
	cr_assert_eq(again, obj);
	memento_cache_free(cache);
}

/* ---- cycles across threads ------------------------------------------------------------------ */

/*
 * Thread i creates key i of a round and, inside create, asks for key
 * (i + 1) % n.  A barrier inside create makes sure every thread owns its
 * key before any asks for the next one, so the cycle forms every round.
 */
enum { MAX_RING = 4 };

struct ring {
	int n;
	memento_class *cls;
	pthread_barrier_t owned;
	uint64_t base; /* keys of this round: base .. base + n - 1 */
	atomic_int inner_deadlocks;
	int inner_rc[MAX_RING];
	int outer_rc[MAX_RING];
};

static int ring_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_u64(key, *(const uint64_t *)args);
}

static int ring_create(void **out, const void *args, void *ctx)
{
	struct ring *r = ctx;
	uint64_t k = *(const uint64_t *)args;
	int i = (int)(k - r->base);
	pthread_barrier_wait(&r->owned);
	uint64_t next = r->base + (uint64_t)((i + 1) % r->n);
	void *obj;
	int rc = memento_get(r->cls, &next, &obj);
	r->inner_rc[i] = rc;
	if (rc == -EDEADLK)
		atomic_fetch_add(&r->inner_deadlocks, 1);
	if (rc != 0)
		return rc;
	*out = (void *)(uintptr_t)(k + 1);
	return 0;
}

static void *ring_thread(int index, void *data)
{
	struct ring *r = data;
	uint64_t k = r->base + (uint64_t)index;
	void *obj;
	r->outer_rc[index] = memento_get(r->cls, &k, &obj);
	return NULL;
}

static void ring_rounds(int n, int rounds)
{
	memento_cache *cache = new_cache();
	struct ring *r = calloc(1, sizeof *r);
	r->n = n;
	memento_class_desc desc = { "ring", ring_key, ring_create, NULL, r };
	cr_assert_eq(memento_class_new(cache, &desc, &r->cls), 0);
	uint64_t total_deadlocks = 0;
	for (int round = 0; round < rounds; round++) {
		uint64_t detected_before = stats_of(r->cls).deadlocks;
		r->base = (uint64_t)round * MAX_RING;
		atomic_store(&r->inner_deadlocks, 0);
		pthread_barrier_init(&r->owned, NULL, (unsigned int)n);
		crowd_run(n, ring_thread, r, NULL);
		pthread_barrier_destroy(&r->owned);
		int deadlocks = atomic_load(&r->inner_deadlocks);
		cr_assert(deadlocks >= 1, "round %d: a cycle of %d threads ended without EDEADLK", round, n);
		/* One thread closes the cycle and detects it; the others get its
		 * EDEADLK as the shared outcome of the creation they waited on. */
		cr_assert_eq(stats_of(r->cls).deadlocks - detected_before, 1,
		             "round %d: detections", round);
		total_deadlocks += (uint64_t)deadlocks;
		/* Whoever broke the cycle failed its key; the failure travelled back
		 * along the ring, so nothing of this round is cached. */
		for (int i = 0; i < n; i++) {
			cr_assert(r->inner_rc[i] == 0 || r->inner_rc[i] == -EDEADLK,
			          "round %d thread %d: inner %s", round, i, memento_strerror(r->inner_rc[i]));
			cr_assert_neq(r->outer_rc[i], 0, "round %d thread %d completed a cycle", round, i);
		}
	}
	cr_assert_eq(stats_of(r->cls).deadlocks, (uint64_t)rounds);
	cr_log_info("%d-thread cycles: %d rounds, %llu EDEADLK", n, rounds,
	            (unsigned long long)total_deadlocks);
	memento_cache_free(cache);
	free(r);
}

Test(deadlock, two_thread_cycle_ends_with_edeadlk)
{
	ring_rounds(2, 200);
}

Test(deadlock, three_and_four_thread_cycles_end_with_edeadlk)
{
	ring_rounds(3, 100);
	ring_rounds(4, 100);
}

/* ---- waiting on a chain that is not a cycle is not a deadlock ------------------------- */

/*
 * Thread A creates K1 and, inside, gets K2, which thread B is creating
 * slowly.  A third thread C asks for K1 and waits behind A.  Nobody waits on
 * C, so no EDEADLK may be reported: a chain is not a cycle.
 */
struct chain {
	memento_class *cls;
	atomic_int b_inside;
	int rc[3];
};

static struct chain chain;

static int chain_create(void **out, const void *args, void *ctx)
{
	(void)ctx;
	uint64_t k = *(const uint64_t *)args;
	if (k == 2) {
		atomic_store(&chain.b_inside, 1);
		sleep_ms(100);
	} else if (k == 1) {
		uint64_t two = 2;
		void *obj;
		int rc = memento_get(chain.cls, &two, &obj);
		if (rc != 0)
			return rc;
	}
	*out = (void *)(uintptr_t)k;
	return 0;
}

static void *chain_thread(int index, void *data)
{
	(void)data;
	uint64_t k = index == 1 ? 2 : 1; /* A=0 and C=2 ask for K1, B=1 for K2 */
	if (index == 0)
		await_at_least(&chain.b_inside, 1, 10000);
	if (index == 2)
		sleep_ms(30);
	void *obj;
	chain.rc[index] = memento_get(chain.cls, &k, &obj);
	return NULL;
}

Test(deadlock, a_chain_of_waits_is_not_a_deadlock)
{
	memento_cache *cache = new_cache();
	memento_class_desc desc = { "chain", ring_key, chain_create, NULL, NULL };
	cr_assert_eq(memento_class_new(cache, &desc, &chain.cls), 0);
	crowd_run(3, chain_thread, NULL, NULL);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(chain.rc[i], 0, "thread %d: %s", i, memento_strerror(chain.rc[i]));
	cr_assert_eq(stats_of(chain.cls).deadlocks, 0);
	memento_cache_free(cache);
}
