/*
 * A writer shard: one ck_hs, the mutex that makes its writer single, and the
 * epoch record through which that writer defers frees.
 *
 * ck_hs frees a replaced map with free(p, size, defer = true) from inside a
 * write operation; readers may still be probing it, so such frees, and the
 * frees of failed entries, go through ck_epoch_call on the shard's writer
 * record and are reclaimed by ck_epoch_poll, always from the lock holder.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * ck_malloc carries no user pointer, so ck_hs's allocations find their shard
 * (its cache's allocator, its writer record for deferred frees) here: set
 * while this thread holds that shard's lock, and while the shard's table is
 * made or destroyed.
 */
static __thread struct memento__shard *writing_shard;

/*
 * Files a free for after the grace period, on the writer record of the
 * shard whose lock this thread holds.  The full fence orders the unlink
 * that made the object unreachable (a new map stored, a tombstone written)
 * before the epoch snapshot that ck_epoch_call takes with a plain load: ck
 * 0.7.1's poll frees what was filed under epoch e once every active reader
 * has seen e + 1, which is safe only if no reader that began at e + 1 can
 * still find the object.  (ck fixed this in its poll after 0.7.1.)
 */
static void defer_call(struct memento__shard *shard, ck_epoch_entry_t *entry, ck_epoch_cb_t *cb)
{
	atomic_thread_fence(memory_order_seq_cst);
	ck_epoch_call(&shard->writer, entry, cb);
}

/*
 * Every block handed to ck_hs starts after room for its deferred free and
 * for what freeing it needs: the cache whose allocator made it, and its size.
 */
struct block_header {
	alignas(max_align_t) ck_epoch_entry_t reclaim;
	memento_cache *cache;
	size_t size; /* with this header */
};

static void *hs_malloc(size_t size)
{
	/* ck_hs allocates only under a shard lock or in shard init. */
	assert(writing_shard != NULL);
	memento_cache *cache = writing_shard->cache;
	struct block_header *h = memento__alloc(cache, sizeof *h + size);
	if (h == NULL)
		return NULL;
	h->cache = cache;
	h->size = sizeof *h + size;
	/* ck_hs (DIRECT | SPMC mode) allocates nothing but its maps, and the
	 * newest one is the table: its size, in slots, give or take the
	 * map's header. */
	writing_shard->table_slots = size / sizeof(void *);
	return h + 1;
}

static void block_free(struct block_header *h)
{
	memento__free(h->cache, h, h->size);
}

static void block_reclaim(ck_epoch_entry_t *reclaim)
{
	/* Readers ended their sections before this grace period closed. */
	block_free(MEMENTO__CONTAINER(reclaim, struct block_header, reclaim));
}

static void hs_free(void *p, size_t size, bool defer)
{
	(void)size; /* the header has it, header included */
	if (p == NULL)
		return;
	struct block_header *h = (struct block_header *)p - 1;
	if (!defer) {
		block_free(h);
		return;
	}
	/* ck_hs defers only inside a write operation, under a shard lock. */
	assert(writing_shard != NULL);
	defer_call(writing_shard, &h->reclaim, block_reclaim);
}

static void *hs_realloc(void *p, size_t old_size, size_t new_size, bool defer)
{
	void *q = hs_malloc(new_size);
	if (q == NULL)
		return NULL;
	memcpy(q, p, old_size < new_size ? old_size : new_size);
	hs_free(p, old_size, defer);
	return q;
}

static struct ck_malloc hs_allocator = {
	.malloc = hs_malloc,
	.realloc = hs_realloc,
	.free = hs_free,
};

uint64_t memento__entry_hash(const memento_cache *cache, const struct memento__entry *e)
{
	return memento__key_hash(e->key, memento__entry_len(e),
	                         memento__class_seed(cache->seed, memento__entry_cls(e)));
}

/* ck_hs rehashes entries only when it grows a table, under the shard lock:
 * recomputing there is cheaper than 8 bytes in every entry. */
static unsigned long hs_hash(const void *object, unsigned long seed)
{
	(void)seed; /* the hash was seeded when the key was built */
	assert(writing_shard != NULL);
	return memento__entry_hash(writing_shard->cache, memento__untagged(object));
}

/*
 * An entry against a probe (or the entry ck_hs_put inserts): one compare
 * for class and length, then the key.
 */
static bool hs_compare(const void *stored, const void *probe)
{
	/* Another tag: another key, known without reading the entry. */
	if (((uintptr_t)stored ^ (uintptr_t)probe) >> MEMENTO__TAG_SHIFT)
		return false;
	/* The same tag, and a reader asked for candidates (internal.h). */
	if ((uintptr_t)probe & MEMENTO__PROBE_TAG_ONLY)
		return true;
	const struct memento__entry *a = memento__untagged(stored), *b = memento__untagged(probe);
	/* The entry's fields were published by ck_hs_put (see table insert). */
	MEMENTO__TSAN_ACQUIRE(a);
	uint32_t identity = atomic_load_explicit(&a->state, memory_order_relaxed);
	if ((identity ^ atomic_load_explicit(&b->state, memory_order_relaxed)) &
	    ~(uint32_t)MEMENTO__STATE_BITS)
		return false;
	return memento__entry_key_equal(a, b, memento__len_of(identity));
}

int memento__shard_init(struct memento__shard *shard, memento_cache *cache,
                        unsigned long capacity, uint64_t seed)
{
	memset(shard, 0, sizeof *shard);
	shard->cache = cache;
	/* Adaptive: a writer that finds the lock taken spins a little before
	 * it sleeps, since holds are short and a futex sleep and wake cost
	 * microseconds.  Two threads inserting past a 10,000 bound (three
	 * lock rounds per insert: claim, publish, the evicted entry's free)
	 * went from 3.15 to 3.85 M/s; one thread is unchanged. */
	pthread_mutexattr_t attr;
	if (pthread_mutexattr_init(&attr) != 0)
		return -ENOMEM;
	(void)pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
	int rc = pthread_mutex_init(&shard->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	if (rc != 0)
		return -ENOMEM;
	writing_shard = shard;
	bool made = ck_hs_init(&shard->hs, CK_HS_MODE_DIRECT | CK_HS_MODE_SPMC, hs_hash,
	                       hs_compare, &hs_allocator, capacity, (unsigned long)seed);
	writing_shard = NULL;
	if (!made) {
		pthread_mutex_destroy(&shard->lock);
		return -ENOMEM;
	}
	ck_epoch_register(&cache->epoch, &shard->writer, NULL);
	return 0;
}

/* Only with no reader and no writer left: from memento_cache_free. */
void memento__shard_destroy(struct memento__shard *shard)
{
	/* No section is open, so the barrier returns at once and runs every
	 * deferred free (into the slab, which goes next). */
	writing_shard = shard;
	ck_epoch_barrier(&shard->writer);
	ck_hs_destroy(&shard->hs);
	writing_shard = NULL;
	while (shard->orphans != NULL) {
		struct memento__creation *c = shard->orphans;
		shard->orphans = c->link.orphan_next;
		memento__free(shard->cache, c, sizeof *c);
	}
	memento__slab_destroy(shard);
	pthread_mutex_destroy(&shard->lock);
}

void memento__shard_lock(struct memento__shard *shard)
{
	pthread_mutex_lock(&shard->lock);
	writing_shard = shard;
}

/*
 * Under the lock: once tombstones are a quarter of the table's slots, a
 * rebuild clears them.  Without it, a table whose keys churn (forgets,
 * evictions) fills with tombstones, and every miss probes through them,
 * reading an entry at each occupied slot: measured, a bounded class's
 * inserts slowed threefold.  A rebuild costs a pass over the slots and a
 * hash per entry, once per slots / 4 removals.  A failed one (out of
 * memory) is tried again as many removals later.
 */
static void shard_sweep_tombstones(struct memento__shard *shard)
{
	if (shard->removed < shard->table_slots / 4 || shard->removed == 0)
		return;
	shard->removed = 0;
	(void)ck_hs_rebuild(&shard->hs);
}

void memento__shard_unlock(struct memento__shard *shard)
{
	shard_sweep_tombstones(shard);
	/* Reclaim what earlier grace periods released; never waits for readers. */
	if (shard->writer.n_pending != 0)
		ck_epoch_poll(&shard->writer);
	memento__reclaim_limbo(shard);
	writing_shard = NULL;
	pthread_mutex_unlock(&shard->lock);
}

/*
 * Links e; the caller holds the lock and has seen its key absent.  False
 * when out of memory (ck_hs could not grow).
 */
bool memento__shard_insert(struct memento__shard *shard, struct memento__entry *e,
                           uint64_t hash)
{
	/* ck_hs_put publishes e with a plain store; readers find e through it
	 * and then read its plain fields, which must be visible first. */
	atomic_thread_fence(memory_order_release);
	MEMENTO__TSAN_RELEASE(e);
	/* The tag needs the pointer's top 16 bits free (see internal.h). */
	if (MEMENTO__UNLIKELY(((uintptr_t)e & ~MEMENTO__UNTAG_MASK) != 0))
		abort();
	if (!ck_hs_put(&shard->hs, hash, memento__tagged(e, hash)))
		return false;
	atomic_store_explicit(&shard->count,
	                      atomic_load_explicit(&shard->count, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
	return true;
}

/*
 * Unlinks e and marks it UNLINKED; the caller holds the lock and has seen
 * that e is linked (UNLINKED clear).  Only one entry per key is ever linked,
 * so removing by e's key removes e itself.
 */
void memento__shard_unlink(struct memento__shard *shard, struct memento__entry *e)
{
	uint64_t hash = memento__entry_hash(shard->cache, e);
	ck_hs_remove(&shard->hs, hash, memento__tagged(e, hash));
	shard->removed++;
	atomic_store_explicit(&shard->count,
	                      atomic_load_explicit(&shard->count, memory_order_relaxed) - 1,
	                      memory_order_relaxed);
	/* Relaxed: UNLINKED is read under this lock (fail and the fork child
	 * decide by it), or it only filters (foreach), or it publishes nothing
	 * but itself (a front cache hit, get.c, which any get ordered after
	 * this forget sees by coherence on this word).  The RMW keeps the
	 * WAITERS bit a waiter may be setting. */
	atomic_fetch_or_explicit(&e->state, MEMENTO__UNLINKED, memory_order_relaxed);
}

static void creation_reclaim(ck_epoch_entry_t *reclaim)
{
	struct memento__creation *c =
		MEMENTO__CONTAINER(reclaim, struct memento__creation, link.reclaim);
	struct memento__shard *shard = c->shard;
	/* Pairs with the release before every reader's section end (get.c). */
	MEMENTO__TSAN_ACQUIRE(&shard->cache->epoch);
	/* Runs from ck_epoch_poll or barrier, under this shard's lock. */
	memento__slab_free(shard, c->entry);
	memento__free(shard->cache, c, sizeof *c);
}

struct orphan_walk {
	struct memento__shard *shard;
	const struct memento__thread *self;
};

static void drop_orphan(struct memento__entry *e, void *arg)
{
	struct orphan_walk *w = arg;
	uint32_t s = atomic_load_explicit(&e->state, memory_order_relaxed);
	if ((s & MEMENTO__PHASE) != MEMENTO__CREATING)
		return;
	struct memento__creation *c = e->u.creation;
	if (w->self != NULL && atomic_load_explicit(&c->owner, memory_order_relaxed) == w->self) {
		atomic_store_explicit(&c->refs, 1, memory_order_relaxed);
		return;
	}
	if (!(s & MEMENTO__UNLINKED))
		memento__shard_unlink(w->shard, e);
	c->link.orphan_next = w->shard->orphans;
	w->shard->orphans = c;
}

/*
 * In a fork child: a creation that another thread had in flight will never
 * finish, so it leaves the table (the next get creates again).  Every
 * CREATING entry in the slab is met, forgotten ones too (they are no longer
 * in the table, but their records still need freeing).  The entry stays in
 * the slab, holding no object, and its record goes on the orphan list that
 * memento_cache_free frees: the child handler must not call the user's
 * allocator, whose lock another thread may have held at the fork.  The
 * forking thread's own creations go on; their waiters were other threads,
 * so only the owner's reference is left.  (Publish and fail run under the
 * shard lock that the fork held, so no creation is caught half finished.)
 */
void memento__shard_drop_orphans(struct memento__shard *shard,
                                 const struct memento__thread *self)
{
	struct orphan_walk w = { shard, self };
	memento__slab_walk(shard, drop_orphan, &w);
}

/* Frees c, and its failed entry, once every reader that might see the
 * entry has left.  Under the lock. */
void memento__shard_defer_free(struct memento__shard *shard, struct memento__creation *c)
{
	defer_call(shard, &c->link.reclaim, creation_reclaim);
}
