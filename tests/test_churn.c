/*
 * Threads that come and go: each thread's records are recycled when it
 * exits, so a server that runs short-lived threads keeps a flat footprint.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"
#include "support_alloc.h"

#include <malloc.h>

enum { WAVE = 8, THREADS = 10000, KEYS = 100 };

struct churn {
	memento_class *cls;
	int next;
	pthread_barrier_t *all_in; /* when set, the wave's threads meet after their get */
};

static void *one_get(int index, void *data)
{
	struct churn *c = data;
	struct args a = { (uint64_t)((c->next + index) % KEYS), 0 };
	void *o;
	int rc = memento_get(c->cls, &a, &o);
	cr_assert_eq(rc, 0, "get: %s", memento_err_name(rc));
	cr_assert_eq(((struct obj *)o)->key, a.key);
	if (c->all_in != NULL)
		pthread_barrier_wait(c->all_in);
	return NULL;
}

/* Runs threads [from, to) in waves of WAVE at a time. */
static void run_threads(struct churn *c, int from, int to)
{
	for (c->next = from; c->next < to; c->next += WAVE)
		crowd_run(WAVE, one_get, c, NULL);
}

static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1 /* their allocators keep freed memory quarantined */
#else
#define SANITIZED 0
#endif

Test(churn, ten_thousand_short_lived_threads_leave_memory_flat, .timeout = 300)
{
	struct hook h = { 0 };
	struct counting count = { 0 };
	memento_cache *cache = NULL;
	memento_cache_options opt = hooked_options(&h, 0);
	cr_assert_eq(memento_cache_new_with(&cache, &opt), 0);
	struct churn c = { .cls = counting_class(cache, "churn", &count) };

	/* Warm up: every key created, and once WAVE threads holding records
	 * at the same time, so that every record later threads need exists. */
	pthread_barrier_t all_in;
	pthread_barrier_init(&all_in, NULL, WAVE);
	c.all_in = &all_in;
	run_threads(&c, 0, WAVE);
	c.all_in = NULL;
	pthread_barrier_destroy(&all_in);
	run_threads(&c, WAVE, 1000);
	long blocks = atomic_load(&h.live_blocks), bytes = atomic_load(&h.live_bytes);
	size_t heap = heap_in_use();

	run_threads(&c, 1000, THREADS);
	long blocks_after = atomic_load(&h.live_blocks);
	long bytes_after = atomic_load(&h.live_bytes);
	size_t heap_after = heap_in_use();

	/* The cache's own memory: exactly the same, block for block. */
	cr_assert_eq(blocks_after, blocks, "cache blocks grew from %ld to %ld", blocks,
	             blocks_after);
	cr_assert_eq(bytes_after, bytes, "cache bytes grew from %ld to %ld", bytes, bytes_after);
	/* The process heap (per-thread records come from malloc): flat within
	 * the noise of glibc's own per-thread bookkeeping. */
	if (!SANITIZED)
		cr_assert_leq(heap_after, heap + 64 * 1024, "heap grew from %zu to %zu", heap,
		              heap_after);
	cr_assert_eq(atomic_load(&count.creations), KEYS);
	memento_stats st = stats_of(c.cls);
	cr_assert_eq(st.hits + st.misses, THREADS, "counts of exited threads are kept");

	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&h.live_blocks), 0);
	printf("churn: %d threads came and went, %d at a time; cache memory stayed at %ld bytes "
	       "in %ld blocks, heap %+ld bytes from thread 1000 to %d\n",
	       THREADS, WAVE, bytes, blocks, (long)heap_after - (long)heap, THREADS);
}
