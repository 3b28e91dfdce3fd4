/*
 * The eviction policy (lib/policy/), compiled into this suite: bounds under
 * random operations checked against a model of which nodes are held,
 * evictions, exact counts through remove and replace, entries heavier than
 * the bound, unbounded sets, a sketch that cannot be allocated, the sketch
 * itself, a loop larger than the cache, and touches racing with the policy.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "policy.h"
#include "sketch.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

TestSuite(policy, .timeout = 120);

/* ---- a model of the set ------------------------------------------------------- */

#define POOL 512

static struct memento__policy_node pool[POOL];

/* Which pool nodes the caller believes the policy holds. */
struct model {
	bool held[POOL];
	uint64_t count, weight;
	uint64_t evictions;
};

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static size_t rnd_below(size_t n)
{
	return (size_t)(rnd() % n);
}

static size_t index_of(const struct memento__policy_node *n)
{
	cr_assert(n >= pool && n < pool + POOL, "a node outside the pool: %p", (const void *)n);
	return (size_t)(n - pool);
}

/* A random node with held == want, or POOL when none. */
static size_t pick(const struct model *m, bool want)
{
	size_t start = rnd_below(POOL);
	for (size_t i = 0; i < POOL; i++) {
		size_t at = (start + i) % POOL;
		if (m->held[at] == want)
			return at;
	}
	return POOL;
}

static void model_add(struct model *m, size_t i)
{
	cr_assert(!m->held[i]);
	m->held[i] = true;
	m->count++;
	m->weight += pool[i].weight;
}

static void model_drop(struct model *m, size_t i)
{
	cr_assert(m->held[i], "node %zu left the policy twice, or was never held", i);
	m->held[i] = false;
	m->count--;
	m->weight -= pool[i].weight;
}

/*
 * The policy's lists are well formed, hold exactly the model's nodes with
 * the model's counts and weights, and the hand is in main.  White box: it
 * knows the three lists (window, main, and the private heavy one).
 */
static void check_lists(const struct memento__policy *p, const struct model *m)
{
	const struct memento__policy_list *lists[] = { &p->window, &p->main, &p->heavy };
	uint64_t count = 0, weight = 0;
	bool hand_found = p->hand == NULL;
	for (size_t l = 0; l < 3; l++) {
		uint64_t c = 0, w = 0;
		const struct memento__policy_node *prev = NULL;
		for (const struct memento__policy_node *n = lists[l]->head; n != NULL; n = n->next) {
			size_t i = index_of(n);
			cr_assert(m->held[i], "node %zu is in a list but not held", i);
			cr_assert_eq(n->prev, prev, "broken back link at node %zu", i);
			cr_assert_neq(n->region, 0, "a listed node has no region");
			cr_assert_eq(n->region, lists[l]->head->region, "two regions in one list");
			if (n == p->hand) {
				cr_assert_eq(lists[l], &p->main, "the hand is outside main");
				hand_found = true;
			}
			c++;
			w += n->weight;
			prev = n;
			cr_assert_leq(c, POOL, "a cycle in a list");
		}
		cr_assert_eq(lists[l]->tail, prev, "a list's tail is not its last node");
		cr_assert_eq(lists[l]->count, c, "list %zu: count %llu, walked %llu", l,
		             (unsigned long long)lists[l]->count, (unsigned long long)c);
		cr_assert_eq(lists[l]->weight, w, "list %zu: weight %llu, walked %llu", l,
		             (unsigned long long)lists[l]->weight, (unsigned long long)w);
		count += c;
		weight += w;
	}
	cr_assert(hand_found, "the hand points at no node of main");
	cr_assert_eq(count, m->count, "policy holds %llu nodes, model %llu",
	             (unsigned long long)count, (unsigned long long)m->count);
	cr_assert_eq(weight, m->weight, "policy holds weight %llu, model %llu",
	             (unsigned long long)weight, (unsigned long long)m->weight);
	for (size_t i = 0; i < POOL; i++)
		if (!m->held[i])
			cr_assert_eq(pool[i].region, 0, "node %zu is not held but has a region", i);
}

/* Evicts until NULL: each victim held, removed, once; then within bounds. */
static void evict_all(struct memento__policy *p, struct model *m)
{
	struct memento__policy_node *v;
	while ((v = memento__policy_evict(p)) != NULL) {
		size_t i = index_of(v);
		model_drop(m, i);
		cr_assert_eq(v->region, 0, "an evicted node still has a region");
		m->evictions++;
	}
	if (p->max_entries != 0)
		cr_assert_leq(m->count, p->max_entries, "%llu entries held, bound %llu",
		              (unsigned long long)m->count, (unsigned long long)p->max_entries);
	if (p->max_weight != 0)
		cr_assert_leq(m->weight, p->max_weight, "weight %llu held, bound %llu",
		              (unsigned long long)m->weight, (unsigned long long)p->max_weight);
}

/* A weight for a new node: 1 unweighted; else mostly light, now and then
 * heavier than the whole bound. */
static uint64_t new_weight(const struct memento__policy *p)
{
	if (p->max_weight == 0)
		return 1;
	if (rnd_below(50) == 0)
		return p->max_weight + 1 + rnd_below(10);
	return 1 + rnd_below(p->max_weight / 8 + 1);
}

/*
 * ops random operations: insert, remove, replace and touch (of held nodes
 * and of nodes already gone, as a stale reader would), checking everything
 * after each.
 */
static void random_ops(struct memento__policy *p, struct model *m, size_t ops)
{
	for (size_t op = 0; op < ops; op++) {
		unsigned kind = (unsigned)rnd_below(100);
		if (kind < 45) {
			size_t i = pick(m, false);
			cr_assert_neq(i, POOL, "the pool ran out: the policy holds too much");
			pool[i].weight = new_weight(p);
			pool[i].hash = (uint32_t)rnd_below(POOL * 2); /* some collide */
			memento__policy_insert(p, &pool[i]);
			model_add(m, i);
			evict_all(p, m);
		} else if (kind < 55) {
			size_t i = pick(m, true);
			if (i == POOL)
				continue;
			memento__policy_remove(p, &pool[i]);
			model_drop(m, i);
			cr_assert_eq(pool[i].region, 0);
		} else if (kind < 65) {
			size_t old = pick(m, true), fresh = pick(m, false);
			if (old == POOL || fresh == POOL)
				continue;
			pool[fresh].weight = new_weight(p);
			pool[fresh].hash = pool[old].hash;
			memento__policy_replace(p, &pool[old], &pool[fresh]);
			model_drop(m, old);
			model_add(m, fresh);
			cr_assert_eq(pool[old].region, 0, "a replaced node still has a region");
			check_lists(p, m);
			evict_all(p, m);
		} else {
			memento__policy_touch(&pool[rnd_below(POOL)]);
		}
		check_lists(p, m);
	}
}

static void reset_pool(uint64_t seed)
{
	memset(pool, 0, sizeof pool);
	rng_state = seed;
}

static void random_ops_with(uint64_t max_entries, uint64_t max_weight, uint64_t seed)
{
	static struct model m;
	memset(&m, 0, sizeof m);
	reset_pool(seed);
	struct memento__policy p;
	memento__policy_init(&p, max_entries, max_weight, NULL);
	random_ops(&p, &m, 20000);
	cr_assert_gt(m.evictions, 1000, "too few evictions to test anything");
	memento__policy_destroy(&p);
}

Test(policy, bound_entries)
{
	random_ops_with(100, 0, 1);
}

Test(policy, bound_weight)
{
	random_ops_with(0, 400, 2);
}

Test(policy, bound_both)
{
	random_ops_with(60, 300, 3);
}

Test(policy, bound_one_entry)
{
	random_ops_with(1, 0, 4);
}

Test(policy, bound_small_weight)
{
	random_ops_with(0, 9, 5);
}

/* ---- evictions, one by one ---------------------------------------------------------- */

Test(policy, evict_returns_held_nodes_once)
{
	reset_pool(6);
	static struct model m;
	memset(&m, 0, sizeof m);
	bool evicted[POOL] = { false };
	struct memento__policy p;
	memento__policy_init(&p, 40, 0, NULL);
	for (size_t i = 0; i < POOL; i++) {
		pool[i].weight = 1;
		pool[i].hash = (uint32_t)rnd();
		memento__policy_insert(&p, &pool[i]);
		model_add(&m, i);
		struct memento__policy_node *v;
		while ((v = memento__policy_evict(&p)) != NULL) {
			size_t at = index_of(v);
			cr_assert(!evicted[at], "node %zu evicted twice", at);
			evicted[at] = true;
			model_drop(&m, at);
		}
		cr_assert_eq(m.count, i < 40 ? i + 1 : 40, "after %zu inserts", i + 1);
		/* Hits on a few held nodes, so that the hand has bits to clear. */
		for (int t = 0; t < 8; t++) {
			size_t h = pick(&m, true);
			memento__policy_touch(&pool[h]);
		}
		check_lists(&p, &m);
	}
	size_t gone = 0;
	for (size_t i = 0; i < POOL; i++) {
		cr_assert(evicted[i] != m.held[i], "node %zu is both or neither", i);
		gone += evicted[i];
	}
	cr_assert_eq(gone, POOL - 40);
	memento__policy_destroy(&p);
}

Test(policy, remove_and_replace_keep_counts)
{
	reset_pool(7);
	static struct model m;
	memset(&m, 0, sizeof m);
	struct memento__policy p;
	memento__policy_init(&p, 0, 1000, NULL);
	for (size_t i = 0; i < 10; i++) {
		pool[i].weight = i + 1;
		memento__policy_insert(&p, &pool[i]);
		model_add(&m, i);
	}
	cr_assert_null(memento__policy_evict(&p));
	check_lists(&p, &m);

	pool[20].weight = 100;
	memento__policy_replace(&p, &pool[4], &pool[20]); /* weight 5 -> 100 */
	model_drop(&m, 4);
	model_add(&m, 20);
	check_lists(&p, &m);
	cr_assert_eq(m.weight, 55 - 5 + 100);

	memento__policy_remove(&p, &pool[0]);
	model_drop(&m, 0);
	memento__policy_remove(&p, &pool[9]);
	model_drop(&m, 9);
	memento__policy_remove(&p, &pool[20]);
	model_drop(&m, 20);
	check_lists(&p, &m);
	cr_assert_eq(m.count, 7);
	cr_assert_eq(p.window.count + p.main.count, 7);
	cr_assert_eq(p.window.weight + p.main.weight, 55 - 1 - 10 - 5);
	memento__policy_destroy(&p);
}

/*
 * The set exactly full (main and the window), then a node heavier than the
 * whole bound: it leaves first, and alone, whatever admission would say of
 * it; so does a node rebuilt heavier than the bound.
 */
Test(policy, heavier_than_the_bound_leaves_at_once)
{
	reset_pool(8);
	static struct model m;
	memset(&m, 0, sizeof m);
	struct memento__policy p;
	memento__policy_init(&p, 0, 1000, NULL);
	for (size_t i = 0; i < 100; i++) {
		pool[i].weight = 10;
		pool[i].hash = (uint32_t)i;
		memento__policy_insert(&p, &pool[i]);
		model_add(&m, i);
		cr_assert_null(memento__policy_evict(&p), "evicted within the bound");
	}
	cr_assert_gt(p.window.count, 0, "the window holds nodes older than the next");
	check_lists(&p, &m);

	pool[100].weight = 1001;
	pool[100].hash = 100;
	memento__policy_insert(&p, &pool[100]);
	cr_assert_eq(memento__policy_evict(&p), &pool[100], "the heavy node first");
	cr_assert_null(memento__policy_evict(&p), "and nothing else");
	check_lists(&p, &m);

	pool[101].weight = 5000;
	pool[101].hash = pool[50].hash;
	memento__policy_replace(&p, &pool[50], &pool[101]);
	model_drop(&m, 50);
	cr_assert_eq(memento__policy_evict(&p), &pool[101], "the rebuilt heavy node first");
	cr_assert_null(memento__policy_evict(&p), "and nothing else");
	check_lists(&p, &m);
	cr_assert_eq(m.weight, 990);
	memento__policy_destroy(&p);
}

/* ---- unbounded sets -------------------------------------------------------------- */

Test(policy, unbounded_keeps_insertion_order)
{
	reset_pool(9);
	struct memento__policy p;
	memento__policy_init(&p, 0, 0, NULL);
	cr_assert_null(memento__policy_oldest(&p));
	for (size_t i = 0; i < POOL; i++) {
		pool[i].weight = 1 + rnd_below(1000);
		memento__policy_insert(&p, &pool[i]);
		cr_assert_null(memento__policy_evict(&p), "an unbounded set evicted");
		if (i % 3 == 0)
			memento__policy_touch(&pool[i]);
	}
	/* Leave from the middle, and rebuild one in place. */
	memento__policy_remove(&p, &pool[100]);
	static struct memento__policy_node fresh;
	fresh.weight = 7;
	memento__policy_replace(&p, &pool[200], &fresh);
	for (size_t i = 0; i < POOL; i++) {
		if (i == 100)
			continue;
		const struct memento__policy_node *want = i == 200 ? &fresh : &pool[i];
		cr_assert_eq(memento__policy_oldest(&p), want, "oldest is not node %zu", i);
		memento__policy_remove(&p, (struct memento__policy_node *)want);
		cr_assert_null(memento__policy_evict(&p));
	}
	cr_assert_null(memento__policy_oldest(&p));
	cr_assert_null(p.sketch.table, "an unbounded set allocated a sketch");
	memento__policy_destroy(&p);
}

/* ---- the sketch's memory ---------------------------------------------------------- */

struct hooks_state {
	unsigned fail_first; /* calls that fail before the first success */
	unsigned calls;
	size_t live; /* bytes allocated and not yet freed */
};

static void *counting_alloc(size_t size, void *state)
{
	struct hooks_state *s = state;
	if (s->calls++ < s->fail_first)
		return NULL;
	void *p = malloc(size);
	if (p != NULL)
		s->live += size;
	return p;
}

static void counting_free(void *ptr, size_t size, void *state)
{
	struct hooks_state *s = state;
	cr_assert_leq(size, s->live, "freeing more than was allocated");
	s->live -= size;
	free(ptr);
}

Test(policy, sketch_allocation_failure_still_evicts)
{
	static struct model m;
	memset(&m, 0, sizeof m);
	reset_pool(10);
	struct hooks_state hs = { .fail_first = UINT32_MAX };
	const struct memento__policy_alloc hooks = { counting_alloc, counting_free, &hs };
	struct memento__policy p;
	memento__policy_init(&p, 100, 0, &hooks);
	cr_assert_eq(hs.calls, 0, "init allocated");
	random_ops(&p, &m, 20000);
	cr_assert_null(p.sketch.table);
	cr_assert_geq(hs.calls, 1, "the sketch was never asked for");
	/* Retried now and then: at most once per 64 evictions, and the first. */
	cr_assert_leq(hs.calls, 1 + m.evictions / 64, "%u tries for %llu evictions", hs.calls,
	              (unsigned long long)m.evictions);
	memento__policy_destroy(&p);
	cr_assert_eq(hs.live, 0);
}

Test(policy, sketch_allocation_retried_and_freed)
{
	static struct model m;
	memset(&m, 0, sizeof m);
	reset_pool(11);
	struct hooks_state hs = { .fail_first = 3 };
	const struct memento__policy_alloc hooks = { counting_alloc, counting_free, &hs };
	struct memento__policy p;
	memento__policy_init(&p, 50, 0, &hooks);
	random_ops(&p, &m, 20000);
	cr_assert_not_null(p.sketch.table, "no sketch after %u tries", hs.calls);
	cr_assert_eq(hs.calls, 4, "tried again after it succeeded");
	cr_assert_gt(hs.live, 0);
	memento__policy_destroy(&p);
	cr_assert_eq(hs.live, 0, "the sketch was not freed through the hooks");
}

/* ---- the sketch ----------------------------------------------------------------- */

Test(policy, sketch_counts_and_ages)
{
	struct memento__policy_sketch s = { 0 };
	const struct memento__policy_alloc hooks = { counting_alloc, counting_free,
		                                     &(struct hooks_state){ 0 } };
	cr_assert_eq(memento__policy_sketch_estimate(&s, 1), 0, "no table, no estimate");
	cr_assert(memento__policy_sketch_alloc(&s, 1000, &hooks));
	cr_assert_eq(s.sample_size, 10000);
	/* Before any halving a count-min sketch never underestimates. */
	static unsigned truth[3000];
	rng_state = 12;
	for (int i = 0; i < 9000; i++) {
		uint32_t k = (uint32_t)rnd_below(3000);
		truth[k]++;
		memento__policy_sketch_add(&s, k);
	}
	for (uint32_t k = 0; k < 3000; k++) {
		unsigned want = truth[k] < 15 ? truth[k] : 15;
		cr_assert_geq(memento__policy_sketch_estimate(&s, k), want, "key %u", k);
	}
	/* A key far above the rest stands out, and halves when the sample is full. */
	for (int i = 0; i < 14; i++)
		memento__policy_sketch_add(&s, 77777);
	cr_assert_geq(memento__policy_sketch_estimate(&s, 77777), 14);
	uint64_t last;
	do {
		last = s.additions;
		memento__policy_sketch_add(&s, (uint32_t)(100000 + rnd_below(1u << 20)));
	} while (s.additions >= last);
	unsigned aged = memento__policy_sketch_estimate(&s, 77777);
	cr_assert(aged >= 7 && aged < 14, "estimate %u after halving", aged);
	memento__policy_sketch_free(&s, &hooks);
	cr_assert_null(s.table);
}

/* ---- a loop larger than the cache --------------------------------------------------- */

/*
 * N keys in order, again and again, through a cache of N/10: LRU (and FIFO,
 * and SIEVE) miss every access, Belady misses 90%.  The policy must keep a
 * fixed part of the loop.
 */
Test(policy, loop_keeps_a_subset)
{
	enum { KEYS = 10000, CACHE = 1000, PASSES = 30, COUNTED = 20 };
	static struct memento__policy_node nodes[KEYS];
	static bool held[KEYS];
	struct memento__policy p;
	memento__policy_init(&p, CACHE, 0, NULL);
	uint64_t misses = 0, held_count = 0;
	for (int pass = 0; pass < PASSES; pass++) {
		for (uint32_t k = 0; k < KEYS; k++) {
			if (held[k]) {
				memento__policy_touch(&nodes[k]);
				continue;
			}
			misses += pass >= PASSES - COUNTED;
			nodes[k].weight = 1;
			nodes[k].hash = k * 0x9E3779B9u;
			memento__policy_insert(&p, &nodes[k]);
			held[k] = true;
			held_count++;
			struct memento__policy_node *v;
			while ((v = memento__policy_evict(&p)) != NULL) {
				size_t at = (size_t)(v - nodes);
				cr_assert(at < KEYS && held[at]);
				held[at] = false;
				held_count--;
			}
			cr_assert_leq(held_count, CACHE);
		}
	}
	double ratio = (double)misses / ((double)COUNTED * KEYS);
	cr_log_info("loop: miss ratio %.4f (LRU 1, Belady 0.9)", ratio);
	cr_assert_lt(ratio, 0.95, "miss ratio %.4f: the policy keeps nothing of the loop", ratio);
	memento__policy_destroy(&p);
}

/* ---- touches racing with the policy -------------------------------------------------- */

static atomic_bool touching;

/* A reader: touches any node, held or gone, as hits on stale entries do. */
static void *toucher(void *arg)
{
	uint64_t x = (uint64_t)(uintptr_t)arg | 1;
	while (atomic_load_explicit(&touching, memory_order_relaxed)) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memento__policy_touch(&pool[x % POOL]);
	}
	return NULL;
}

/* The policy's bound and lists hold while another thread touches without a
 * lock (and ThreadSanitizer sees every access to the bit, in its build). */
Test(policy, touches_race_with_the_policy)
{
	static struct model m;
	memset(&m, 0, sizeof m);
	reset_pool(13);
	struct memento__policy p;
	memento__policy_init(&p, 80, 0, NULL);
	atomic_store(&touching, true);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, toucher, (void *)(uintptr_t)12345), 0);
	random_ops(&p, &m, 20000);
	atomic_store(&touching, false);
	pthread_join(t, NULL);
	memento__policy_destroy(&p);
}
