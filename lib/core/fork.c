/*
 * Caches across fork().  The child of a multithreaded process has one
 * thread; every other thread's creation in flight, read-side section and
 * record stops existing mid-step.  So the handlers registered here hold
 * every lock of every live cache across fork(), which leaves each cache in a
 * consistent state in both processes, and the child then lets go of what
 * belonged to the threads it does not have:
 *   - a creation another thread had in flight is unlinked (and kept for
 *     memento_cache_free to free): nobody in the child can finish it, and
 *     the next get of its key creates again;
 *   - those threads' read-side sections end and their records are released
 *     for reuse, so that grace periods (and the frees they release) advance.
 * The parent is unaffected: its handler only unlocks.  Neither handler
 * calls the cache's allocator, whose own lock another thread may hold.
 *
 * Lock order, the same as everywhere else: the default-cache lock, the
 * registry lock, then per cache its class lock and shard locks in index
 * order, and the wait-graph lock last.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

_Atomic unsigned long memento__fork_children;

static void lock_everything(void)
{
	memento__default_cache_lock();
	memento__registry_lock();
	for (memento_cache *c = memento__registry_first(); c != NULL; c = c->registry_next) {
		pthread_mutex_lock(&c->class_lock);
		for (unsigned int i = 0; i < c->nshards; i++)
			pthread_mutex_lock(&c->shards[i].lock);
	}
	memento__wait_graph_lock();
}

/* The forking thread locked each of these, so it may unlock them in either
 * process (they are default mutexes: no owner check). */
static void unlock_everything(void)
{
	memento__wait_graph_unlock();
	for (memento_cache *c = memento__registry_first(); c != NULL; c = c->registry_next) {
		for (unsigned int i = c->nshards; i-- > 0;)
			pthread_mutex_unlock(&c->shards[i].lock);
		pthread_mutex_unlock(&c->class_lock);
	}
	memento__registry_unlock();
	memento__default_cache_unlock();
}

static void fork_child(void)
{
	/* Still under every lock: nothing can move while we clean up. */
	struct memento__thread *self = memento__self;
	for (memento_cache *c = memento__registry_first(); c != NULL; c = c->registry_next)
		for (unsigned int i = 0; i < c->nshards; i++)
			memento__shard_drop_orphans(&c->shards[i], self);
	memento__threads_drop_others(self);
	/* Relaxed: only this thread runs, and it reads it itself. */
	atomic_fetch_add_explicit(&memento__fork_children, 1, memory_order_relaxed);
	unlock_everything();
}

static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;

static void handlers_register(void)
{
	/* Failure (ENOMEM) leaves fork() as unsafe as without the library's
	 * help; there is no caller to report it to. */
	(void)pthread_atfork(lock_everything, unlock_everything, fork_child);
}

void memento__fork_handlers_install(void)
{
	pthread_once(&handlers_once, handlers_register);
}
