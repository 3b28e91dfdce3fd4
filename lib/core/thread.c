/*
 * Per-thread state.
 *
 * A thread that uses the library gets one memento__thread (scratch key
 * buffer, its slot list, the edge it adds to the wait-for graph) and, per
 * cache it uses, one memento__tcache (its epoch record and counters).  The
 * hit path finds the tcache through a one-entry cache in the thread record.
 *
 * Two global locks, both off the hit path:
 *  - the registry lock orders caches coming and going against threads
 *    coming and going: a thread touches a cache's records only while the
 *    cache is registered, and a cache frees its records only after it left
 *    the registry;
 *  - the wait-graph lock makes deadlock detection exact: every edge
 *    "thread waits on creation" is added and removed under it, and an exiting
 *    thread passes through it before its record is freed, so a walk never
 *    reads a freed record (the exiting thread owns no creation any more: its
 *    creations ended, by return, cancellation, pthread_exit or exception).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

__thread struct memento__thread *memento__self __attribute__((tls_model("initial-exec")));

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static memento_cache *registry_head; /* live caches, under registry_lock */
static uint64_t registry_next_id = 1;

static pthread_mutex_t wait_graph_lock = PTHREAD_MUTEX_INITIALIZER;

static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static int exit_key_err;

/* ---- the registry of live caches ---------------------------------------------- */

void memento__registry_add(memento_cache *cache)
{
	pthread_mutex_lock(&registry_lock);
	cache->id = registry_next_id++;
	cache->registry_prev = NULL;
	cache->registry_next = registry_head;
	if (registry_head != NULL)
		registry_head->registry_prev = cache;
	registry_head = cache;
	pthread_mutex_unlock(&registry_lock);
}

void memento__registry_remove(memento_cache *cache)
{
	pthread_mutex_lock(&registry_lock);
	if (cache->registry_prev != NULL)
		cache->registry_prev->registry_next = cache->registry_next;
	else
		registry_head = cache->registry_next;
	if (cache->registry_next != NULL)
		cache->registry_next->registry_prev = cache->registry_prev;
	pthread_mutex_unlock(&registry_lock);
}

void memento__registry_lock(void)
{
	pthread_mutex_lock(&registry_lock);
}

void memento__registry_unlock(void)
{
	pthread_mutex_unlock(&registry_lock);
}

memento_cache *memento__registry_first(void)
{
	return registry_head;
}

void memento__wait_graph_lock(void)
{
	pthread_mutex_lock(&wait_graph_lock);
}

void memento__wait_graph_unlock(void)
{
	pthread_mutex_unlock(&wait_graph_lock);
}

/* Under registry_lock. */
static bool registry_has(uint64_t id)
{
	for (memento_cache *c = registry_head; c != NULL; c = c->registry_next)
		if (c->id == id)
			return true;
	return false;
}

/* ---- thread records -------------------------------------------------------------- */

static void thread_exit(void *arg);

static void exit_key_create(void)
{
	exit_key_err = pthread_key_create(&exit_key, thread_exit);
}

static struct memento__thread *thread_self(void)
{
	struct memento__thread *t = memento__self;
	if (t != NULL)
		return t;
	pthread_once(&exit_key_once, exit_key_create);
	if (exit_key_err != 0)
		return NULL;
	t = calloc(1, sizeof *t);
	if (t == NULL)
		return NULL;
	if (pthread_setspecific(exit_key, t) != 0) {
		free(t);
		return NULL;
	}
	memento__self = t;
	return t;
}

/* Under registry_lock: the caller's record for cache, recycled or new. */
static struct memento__tcache *tcache_acquire(memento_cache *cache, struct memento__thread *t)
{
	struct memento__tcache *tc;
	ck_epoch_record_t *rec = ck_epoch_recycle(&cache->epoch, NULL);
	if (rec != NULL) {
		tc = MEMENTO__CONTAINER(rec, struct memento__tcache, epoch);
		tc->thread = t;
		return tc;
	}
	/* Aligned: ck's epoch record wants whole cache lines. */
	tc = memento__zalloc(cache, sizeof *tc, MEMENTO__CACHELINE);
	if (tc == NULL)
		return NULL;
	tc->thread = t;
	tc->cache = cache;
	ck_epoch_register(&cache->epoch, &tc->epoch, NULL);
	tc->next = atomic_load_explicit(&cache->tcaches, memory_order_relaxed);
	/* Release: a stats reader that finds tc sees it initialised. */
	atomic_store_explicit(&cache->tcaches, tc, memory_order_release);
	return tc;
}

/* Only from memento_cache_free, once no thread can use the record. */
void memento__tcache_free(memento_cache *cache, struct memento__tcache *tc)
{
	memento__counters_free(tc);
	memento__free(cache, tc->spare, sizeof *tc->spare);
	memento__free(cache, tc, sizeof *tc);
}

/* Under registry_lock: forgets the slots of caches that were freed. */
static void slots_prune(struct memento__thread *t)
{
	size_t kept = 0;
	for (size_t i = 0; i < t->nslots; i++)
		if (registry_has(t->slots[i].cache_id))
			t->slots[kept++] = t->slots[i];
	t->nslots = kept;
}

static bool slots_reserve(struct memento__thread *t)
{
	if (t->nslots < t->capslots)
		return true;
	size_t cap = t->capslots != 0 ? 2 * t->capslots : 4;
	struct memento__slot *s = realloc(t->slots, cap * sizeof *s);
	if (s == NULL)
		return false;
	t->slots = s;
	t->capslots = cap;
	return true;
}

struct memento__tcache *memento__tcache_slow(memento_cache *cache)
{
	struct memento__thread *t = thread_self();
	if (t == NULL)
		return NULL;

	struct memento__tcache *tc = NULL;
	for (size_t i = 0; i < t->nslots; i++)
		if (t->slots[i].cache_id == cache->id)
			tc = t->slots[i].tc;

	if (tc == NULL) {
		pthread_mutex_lock(&registry_lock);
		slots_prune(t);
		if (slots_reserve(t))
			tc = tcache_acquire(cache, t);
		if (tc != NULL)
			t->slots[t->nslots++] = (struct memento__slot){ cache->id, tc };
		pthread_mutex_unlock(&registry_lock);
		if (tc == NULL)
			return NULL;
	}
	t->last_cache_id = cache->id;
	t->last_tc = tc;
	return tc;
}

/*
 * pthread key destructor.  Cancellation cleanup handlers ran before it, so
 * this thread owns no creation any more.
 */
static void thread_exit(void *arg)
{
	struct memento__thread *t = arg;

	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < t->nslots; i++) {
		if (!registry_has(t->slots[i].cache_id))
			continue; /* freed with its cache */
		struct memento__tcache *tc = t->slots[i].tc;
		/* A thread that exits inside a guard leaves it. */
		if (memento__in_guard(tc))
			memento__guard_abandon(tc);
		/* A reader record defers nothing, so no barrier is needed. */
		ck_epoch_unregister(&tc->epoch);
		tc->thread = NULL;
	}
	pthread_mutex_unlock(&registry_lock);

	/* A deadlock walk that reached this record holds this lock; once we
	 * have passed through it, no walk can reach us (we own no entry). */
	pthread_mutex_lock(&wait_graph_lock);
	memento__self = NULL;
	pthread_mutex_unlock(&wait_graph_lock);
	free(t->slots);
	free(t);
}

/*
 * A record whose thread is gone without its exit destructor (fork's child):
 * close the read-side sections it was in, so that grace periods advance,
 * and release it for reuse, as thread_exit would have.  Under registry_lock.
 */
static void tcache_abandon(struct memento__tcache *tc)
{
	memento__guard_abandon(tc);
	ck_epoch_unregister(&tc->epoch);
	tc->thread = NULL;
}

void memento__threads_drop_others(struct memento__thread *self)
{
	for (memento_cache *c = registry_head; c != NULL; c = c->registry_next) {
		for (struct memento__tcache *tc = atomic_load_explicit(&c->tcaches, memory_order_relaxed);
		     tc != NULL; tc = tc->next) {
			struct memento__thread *t = tc->thread;
			if (t == NULL || t == self)
				continue;
			/* All of t's records go at once, so t is met only here. */
			for (size_t i = 0; i < t->nslots; i++)
				if (registry_has(t->slots[i].cache_id))
					tcache_abandon(t->slots[i].tc);
			free(t->slots);
			free(t);
		}
	}
}

/* ---- the wait-for graph ------------------------------------------------------------- */

/*
 * Adds the edge "self waits on c" unless it would close a cycle: then
 * returns -EDEADLK.  The walk follows c's creator, the creation that
 * creator waits on, its creator, and so on.  Edges are only added under the
 * lock, so of the threads that close a cycle, the last to add its edge sees
 * it.  An owner read here is either current or already cleared: owners
 * clear their creations before they wait on anything else, and before they
 * exit.  Every record reached is alive: a waiter holds a reference on the
 * creation it waits on until after its edge is gone.
 */
int memento__wait_begin(struct memento__thread *self, struct memento__creation *c)
{
	int rc = 0;
	pthread_mutex_lock(&wait_graph_lock);
	for (struct memento__creation *at = c; at != NULL;) {
		struct memento__thread *owner =
			atomic_load_explicit(&at->owner, memory_order_acquire);
		if (owner == NULL)
			break;
		if (owner == self) {
			rc = -EDEADLK;
			break;
		}
		at = owner->waiting_on;
	}
	if (rc == 0)
		self->waiting_on = c;
	pthread_mutex_unlock(&wait_graph_lock);
	return rc;
}

void memento__wait_end(struct memento__thread *self)
{
	pthread_mutex_lock(&wait_graph_lock);
	self->waiting_on = NULL;
	pthread_mutex_unlock(&wait_graph_lock);
}
