/*
 * Private to the library; never installed.
 *
 * The library's layers, one folder each, one concept per file:
 *
 * core/  one object per identity: keys, the table, entries and their
 *        creations, per-thread records, the get protocol, caches
 *   key.c     memento_key: typed field encoding, the key's hash
 *   table.c   a writer shard: ck_hs + writer mutex + writer epoch record
 *   entry.c   an entry's state machine and its creation record: start,
 *             join, publish, fail, wait, wake
 *   slab.c    where a shard's entries live: chunks and free lists
 *   thread.c  per-thread records: epoch record per cache, scratch key
 *             buffer, the wait-for graph that finds deadlocks
 *   stats.c   per-thread counters and their sums
 *   get.c     the get/peek/forget protocol on top of the above
 *   cache.c   caches, classes, the default cache, foreach
 *   fork.c    the fork handlers
 *   alloc.c   the cache's allocator
 *   error.c   error names and descriptions, version
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTO_INTERNAL_H
#define MEMENTO_INTERNAL_H

#include "mementos.h"

#include <ck_epoch.h>
#include <ck_hs.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MEMENTO__HIDDEN __attribute__((visibility("hidden")))
#define MEMENTO__LIKELY(x) __builtin_expect(!!(x), 1)
#define MEMENTO__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MEMENTO__CACHELINE 64
#define MEMENTO__CONTAINER(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))


/*
 * ThreadSanitizer cannot see the ordering that ck provides: ck_pr is inline
 * assembly and libck is not instrumented.  Where our own plain fields are
 * published through ck (an entry through ck_hs_put, a grace period through
 * ck_epoch), these annotations state the happens-before edge ck gives.
 */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MEMENTO__TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define MEMENTO__TSAN 1
#endif
#ifdef MEMENTO__TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define MEMENTO__TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define MEMENTO__TSAN_RELEASE(p) __tsan_release((void *)(p))
#else
#define MEMENTO__TSAN_ACQUIRE(p) ((void)(p))
#define MEMENTO__TSAN_RELEASE(p) ((void)(p))
#endif

struct memento__thread;
struct memento__tcache;
struct memento__shard;

/* ---- key.c ------------------------------------------------------------------ */

struct memento_key {
	unsigned char *bytes; /* MEMENTO_KEY_MAX bytes of room */
	uint32_t len;
	int err; /* first error of an append; sticks */
};

MEMENTO__HIDDEN uint64_t memento__key_hash(const void *bytes, size_t len, uint64_t seed);

/* n rounded up to whole 8-byte words: key fields and entries both come in them. */
static inline size_t memento__round_to_words(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* A class's hash seed: a function of the cache's seed and the class index
 * alone, so that a table can rehash an entry without reading its class. */
static inline uint64_t memento__class_seed(uint64_t cache_seed, uint32_t index)
{
	return cache_seed ^ ((uint64_t)(index + 1) * 0x9E3779B97F4A7C15ull);
}

/* ---- entry.c ---------------------------------------------------------------- */

/*
 * Entry state word (also the futex word waiters sleep on).  The low two bits
 * are the phase; WAITERS says a thread sleeps on the word; UNLINKED says the
 * entry left its table (forgotten, or failed), changed under the shard lock.
 * A phase of 0 is a free slot in its shard's slab.  The high bits are the
 * entry's identity, fixed for its life: the key's length and the class
 * index.  Every change to the word keeps them.
 */
enum {
	MEMENTO__CREATING = 1,
	MEMENTO__READY = 2,
	MEMENTO__FAILED = 3,
	MEMENTO__PHASE = 3,
	MEMENTO__WAITERS = 4,
	MEMENTO__UNLINKED = 8,
	MEMENTO__STATE_BITS = 15,
};

#define MEMENTO__LEN_SHIFT 4
#define MEMENTO__LEN_MASK 0x1FFFu /* 13 bits */
#define MEMENTO__CLS_SHIFT 17     /* 15 bits */

_Static_assert(MEMENTO_KEY_MAX <= MEMENTO__LEN_MASK, "a key length fits its 13 bits");
_Static_assert(MEMENTO_CLASSES_MAX == 1u << (32 - MEMENTO__CLS_SHIFT),
               "a class index fits its 15 bits");

/* The identity bits of a key of len bytes in class index cls. */
static inline uint32_t memento__identity(uint32_t cls, uint32_t len)
{
	return cls << MEMENTO__CLS_SHIFT | len << MEMENTO__LEN_SHIFT;
}

static inline uint32_t memento__len_of(uint32_t word)
{
	return (word >> MEMENTO__LEN_SHIFT) & MEMENTO__LEN_MASK;
}

static inline uint32_t memento__cls_of(uint32_t word)
{
	return word >> MEMENTO__CLS_SHIFT;
}

/*
 * An entry is what a hit reads, and nothing else: 16 bytes and the key,
 * carved from its shard's slab (slab.c).  A one-u64 key (16 bytes) makes a
 * 32-byte entry, two to a cache line.  What only a creation needs lives in
 * a creation record (below) until it finishes.
 *
 * ck_hs compares entries with probes of the same layout: a lookup builds
 * its key in a buffer laid out as an entry (state holding only the
 * identity; seq and u unused), and ck_hs_put probes with the entry it
 * inserts.
 */
struct memento__entry {
	_Atomic uint32_t state; /* phase, flags and identity (above) */
	uint32_t seq; /* READY: publication order, low 32 bits (destroy order) */
	union {
		void *obj;                          /* READY: the object */
		struct memento__creation *creation; /* CREATING, FAILED */
		struct memento__entry *free_next;   /* a free slot: its slab list */
	} u;
	unsigned char key[]; /* whole 8-byte words (key.c) */
};

/* The smallest entry: room for memento_cache_free's record (cache.c). */
#define MEMENTO__ENTRY_MIN 24

/* Bytes an entry with a key of len bytes takes in its slab. */
static inline size_t memento__entry_size(size_t len)
{
	size_t n = memento__round_to_words(offsetof(struct memento__entry, key) + len);
	return n > MEMENTO__ENTRY_MIN ? n : MEMENTO__ENTRY_MIN;
}

/* Identity bits never change, so a relaxed load will do. */
static inline uint32_t memento__entry_len(const struct memento__entry *e)
{
	return memento__len_of(atomic_load_explicit(&e->state, memory_order_relaxed));
}

static inline uint32_t memento__entry_cls(const struct memento__entry *e)
{
	return memento__cls_of(atomic_load_explicit(&e->state, memory_order_relaxed));
}

/*
 * Whether e holds the key of probe (laid out as an entry), given that their
 * state words agree on the identity bits: the key, word by word (keys are
 * whole words).
 */
static inline bool memento__entry_key_equal(const struct memento__entry *e,
                                            const struct memento__entry *probe, uint32_t len)
{
	for (uint32_t at = 0; at < len; at += 8) {
		uint64_t x, y;
		memcpy(&x, e->key + at, sizeof x);
		memcpy(&y, probe->key + at, sizeof y);
		if (x != y)
			return false;
	}
	return true;
}

/* Room for the largest probe: a thread's scratch buffer, or a nested one. */
#define MEMENTO__PROBE_SIZE (offsetof(struct memento__entry, key) + MEMENTO_KEY_MAX)

/*
 * One creation in flight, taken from the creator's spare (or allocated)
 * when a get claims a new key, and released with its last reference (the
 * creator's and each waiter's): kept as the releasing thread's spare, or
 * freed.  A failed creation also frees its entry, after a grace period
 * (readers may still be probing it), through `reclaim`.
 */
struct memento__creation {
	_Atomic(struct memento__thread *) owner; /* the creator, until it finishes */
	struct memento__entry *entry;
	struct memento__shard *shard;
	_Atomic uint32_t refs;
	int error; /* FAILED: create's error */
	union {
		ck_epoch_entry_t reclaim;           /* failed: deferred free */
		struct memento__creation *orphan_next; /* fork child: shard's orphans */
	} link;
};

/* The calling thread's spare record for tc's cache, allocated if it has
 * none; NULL when out of memory.  Outside every lock. */
MEMENTO__HIDDEN struct memento__creation *memento__creation_spare(struct memento__tcache *tc);
/* Under the shard lock, key absent: links a new CREATING entry for probe,
 * owned by tc's thread, and takes tc's spare record for it; false when out
 * of memory. */
MEMENTO__HIDDEN bool memento__creation_start(struct memento__shard *shard,
                                             const struct memento__entry *probe, uint64_t hash,
                                             struct memento__tcache *tc);
/* Under the shard lock, e CREATING and linked: a waiter's reference. */
MEMENTO__HIDDEN struct memento__creation *memento__creation_join(struct memento__entry *e);
MEMENTO__HIDDEN void memento__creation_unref(struct memento__creation *c);
MEMENTO__HIDDEN void memento__creation_publish(struct memento__creation *c, void *obj);
MEMENTO__HIDDEN void memento__creation_fail(struct memento__creation *c, int err);
MEMENTO__HIDDEN int memento__creation_wait(struct memento__creation *c,
                                           const struct timespec *deadline, bool *timed_out);

/* ---- slab.c ------------------------------------------------------------------- */

/* Free lists for entry sizes 24, 32, ... 256; larger entries get a chunk each. */
#define MEMENTO__SLAB_LISTS 30
#define MEMENTO__SLAB_SMALL_MAX 256

struct memento__chunk;

/* One shard's entry storage; only the shard lock holder touches it. */
struct memento__slab {
	struct memento__chunk *chunks; /* every chunk, newest first */
	struct memento__chunk *bump;   /* the small-entry chunk being filled */
	size_t next_chunk_size;
	struct memento__entry *free[MEMENTO__SLAB_LISTS];
};

/* Under the shard lock.  Uninitialised room for an entry of size bytes. */
MEMENTO__HIDDEN struct memento__entry *memento__slab_alloc(struct memento__shard *shard,
                                                           size_t size);
/* Under the shard lock, with no reader left that could find e. */
MEMENTO__HIDDEN void memento__slab_free(struct memento__shard *shard, struct memento__entry *e);
/* Every slot handed out, in no order: live entries and free slots (phase
 * 0).  No concurrency: memento_cache_free, or a fork child holding every
 * lock.  visit may overwrite the entry: the walk has read its length. */
MEMENTO__HIDDEN void memento__slab_walk(struct memento__shard *shard,
                                        void (*visit)(struct memento__entry *e, void *ctx),
                                        void *ctx);
/* Frees every chunk; no concurrency. */
MEMENTO__HIDDEN void memento__slab_destroy(struct memento__shard *shard);

/* ---- table.c ------------------------------------------------------------------ */

/*
 * One writer shard: ck_hs allows one writer and many readers, so writers of
 * a shard serialise on its mutex.  Only the lock holder touches `writer`
 * (ck_epoch_call/poll), `slab`, `orphans` and the ck_hs write operations.
 */
struct memento__shard {
	ck_epoch_record_t writer; /* cache-line aligned by ck */
	pthread_mutex_t lock;
	ck_hs_t hs;
	memento_cache *cache;
	_Atomic size_t count; /* linked entries; written under lock */
	struct memento__slab slab;
	struct memento__creation *orphans; /* fork child: records of dead creators */
};

MEMENTO__HIDDEN int memento__shard_init(struct memento__shard *shard, memento_cache *cache,
                                        unsigned long capacity, uint64_t seed);
MEMENTO__HIDDEN void memento__shard_destroy(struct memento__shard *shard);
MEMENTO__HIDDEN void memento__shard_lock(struct memento__shard *shard);
MEMENTO__HIDDEN void memento__shard_unlock(struct memento__shard *shard);
MEMENTO__HIDDEN bool memento__shard_insert(struct memento__shard *shard, struct memento__entry *e,
                                           uint64_t hash);
MEMENTO__HIDDEN void memento__shard_unlink(struct memento__shard *shard, struct memento__entry *e);
/* Under the lock: frees c and its failed entry once no reader can see it. */
MEMENTO__HIDDEN void memento__shard_defer_free(struct memento__shard *shard,
                                               struct memento__creation *c);
/* The hash an entry was linked under. */
MEMENTO__HIDDEN uint64_t memento__entry_hash(const memento_cache *cache,
                                             const struct memento__entry *e);
/* In a fork child, every lock held: unlinks the creations in flight of
 * other threads, forgotten ones too, and keeps their records for
 * memento_cache_free to free. */
MEMENTO__HIDDEN void memento__shard_drop_orphans(struct memento__shard *shard,
                                                 const struct memento__thread *self);

/* ---- stats.c ----------------------------------------------------------------- */

enum memento__stat {
	MEMENTO__HITS,
	MEMENTO__MISSES,
	MEMENTO__CREATIONS,
	MEMENTO__FAILURES,
	MEMENTO__WAITS,
	MEMENTO__TIMEOUTS,
	MEMENTO__DEADLOCKS,
	MEMENTO__NSTATS
};

/* One thread's counters for one class.  Only that thread writes them. */
struct memento__counters {
	_Atomic uint64_t n[MEMENTO__NSTATS];
};

/* Classes with an index below this count in the record itself. */
#define MEMENTO__COUNTERS_INLINE 8
/* Segment s holds the counters of classes [8 << s, 16 << s). */
#define MEMENTO__COUNTER_SEGMENTS 29

/* ---- thread.c ----------------------------------------------------------------- */

/*
 * A thread's latest hits in one cache, direct-mapped by the key's hash
 * (get.c).  Only ready entries go in: a ready entry keeps its memory until
 * memento_cache_free, forgotten or not, so a slot never dangles, and a get
 * that finds its key here rechecks the entry's state (READY, not UNLINKED)
 * to see forgets.
 */
#define MEMENTO__FRONT_SLOTS 64

struct memento__front_slot {
	uint64_t hash; /* the entry's, so that a mismatch never touches it */
	struct memento__entry *entry; /* NULL: empty */
};

/*
 * One thread's record for one cache: its epoch record, its counters and
 * its front cache.
 * Kept on the cache's list until the cache is freed; when its thread exits
 * it is unregistered and recycled by the next new thread, counters and all,
 * so counts from exited threads are never lost.
 */
struct memento__tcache {
	ck_epoch_record_t epoch; /* first, cache-line aligned by ck */
	struct memento__thread *thread; /* owner; NULL while free; under registry lock */
	struct memento__tcache *next;   /* cache's list; push-only */
	memento_cache *cache;
	/* A free creation record, kept by the thread for its next creation:
	 * its allocation happens outside every lock, and only when none is
	 * kept.  Only the record's thread touches it. */
	struct memento__creation *spare;
	struct memento__counters counters[MEMENTO__COUNTERS_INLINE];
	_Atomic(struct memento__counters *) segments[MEMENTO__COUNTER_SEGMENTS];
	/* Only the record's thread touches it; a recycled record's slots stay
	 * valid for its next thread (same cache, entries still ready). */
	struct memento__front_slot front[MEMENTO__FRONT_SLOTS];
};

struct memento__slot {
	uint64_t cache_id;
	struct memento__tcache *tc;
};

struct memento__thread {
	uint64_t last_cache_id; /* one-entry lookup cache for memento__tcache_for */
	struct memento__tcache *last_tc;
	struct memento__slot *slots; /* this thread's records, one per cache used */
	size_t nslots, capslots;
	struct memento__creation *waiting_on; /* under the wait-graph lock */
	bool scratch_busy;                    /* a key is being built in scratch */
	/* The probe a lookup builds: laid out as an entry (see entry.c). */
	alignas(8) unsigned char scratch[MEMENTO__PROBE_SIZE];
};

extern MEMENTO__HIDDEN __thread struct memento__thread *memento__self
	__attribute__((tls_model("initial-exec")));

MEMENTO__HIDDEN struct memento__tcache *memento__tcache_slow(memento_cache *cache);
MEMENTO__HIDDEN void memento__tcache_free(memento_cache *cache, struct memento__tcache *tc);

MEMENTO__HIDDEN void memento__registry_add(memento_cache *cache);
MEMENTO__HIDDEN void memento__registry_remove(memento_cache *cache);
MEMENTO__HIDDEN void memento__registry_lock(void);
MEMENTO__HIDDEN void memento__registry_unlock(void);
/* Under the registry lock: the live caches, through registry_next. */
MEMENTO__HIDDEN memento_cache *memento__registry_first(void);
MEMENTO__HIDDEN void memento__wait_graph_lock(void);
MEMENTO__HIDDEN void memento__wait_graph_unlock(void);
/* In a fork child, under every lock: ends the sections of the threads that
 * did not survive and frees their records (self is the one that did). */
MEMENTO__HIDDEN void memento__threads_drop_others(struct memento__thread *self);
MEMENTO__HIDDEN int memento__wait_begin(struct memento__thread *self, struct memento__creation *c);
MEMENTO__HIDDEN void memento__wait_end(struct memento__thread *self);

MEMENTO__HIDDEN struct memento__counters *memento__counters_slow(struct memento__tcache *tc,
                                                                 uint32_t index);

/* The calling thread's counters for class `index`; NULL when out of memory. */
static inline struct memento__counters *memento__counters_for(struct memento__tcache *tc,
                                                              uint32_t index)
{
	if (MEMENTO__LIKELY(index < MEMENTO__COUNTERS_INLINE))
		return &tc->counters[index];
	return memento__counters_slow(tc, index);
}

/* Single writer: a plain load and store, no locked instruction. */
static inline void memento__count(struct memento__counters *c, enum memento__stat s)
{
	atomic_store_explicit(&c->n[s], atomic_load_explicit(&c->n[s], memory_order_relaxed) + 1,
	                      memory_order_relaxed);
}

/* Frees tc's counter segments; only when tc itself is freed. */
MEMENTO__HIDDEN void memento__counters_free(struct memento__tcache *tc);
MEMENTO__HIDDEN void memento__stats_sum(const memento_class *cls, memento_stats *out);

/* ---- alloc.c -------------------------------------------------------------------- */

/* The allocator options name, with malloc/free filled in; -EINVAL if half set. */
MEMENTO__HIDDEN int memento__allocator_read(const memento_allocator *in, memento_allocator *out);
/* align 0: alignof(max_align_t).  NULL when out of memory. */
MEMENTO__HIDDEN void *memento__alloc_with(const memento_allocator *a, size_t size, size_t align);
MEMENTO__HIDDEN void memento__free_with(const memento_allocator *a, void *p, size_t size);
MEMENTO__HIDDEN void *memento__zalloc_with(const memento_allocator *a, size_t size, size_t align);
/* Zeroed memory of cache's allocator (align 0: the default). */
MEMENTO__HIDDEN void *memento__zalloc(memento_cache *cache, size_t size, size_t align);
/* Like realloc, through cache's allocator: p is freed only on success. */
MEMENTO__HIDDEN void *memento__grow(memento_cache *cache, void *p, size_t old_size,
                                    size_t new_size);

/* ---- fork.c --------------------------------------------------------------------- */

/* Registers the fork handlers, once per process; from the first new cache. */
MEMENTO__HIDDEN void memento__fork_handlers_install(void);

/* ---- cache.c -------------------------------------------------------------------- */

MEMENTO__HIDDEN void memento__default_cache_lock(void);
MEMENTO__HIDDEN void memento__default_cache_unlock(void);

struct memento_class {
	memento_cache *cache;
	char *name;
	memento_key_fn key;
	memento_create_fn create;
	memento_destroy_fn destroy;
	void *ctx;
	uint64_t seed; /* the cache's seed mixed with the class index */
	uint32_t index;
};

struct memento_cache {
	memento_allocator allocator; /* for everything the cache owns */
	uint64_t id; /* unique for the life of the process, never reused */
	uint64_t seed;
	unsigned int shard_shift; /* shard = hash >> shift; 64 for one shard */
	unsigned int nshards;
	struct memento__shard *shards;
	ck_epoch_t epoch;
	_Atomic(struct memento__tcache *) tcaches; /* every thread record of this cache */
	_Atomic uint64_t next_seq;                 /* publication order of objects */

	pthread_mutex_t class_lock;
	memento_class **classes;
	uint32_t nclasses, capclasses;

	memento_cache *registry_prev, *registry_next; /* under the registry lock */
};

static inline void *memento__alloc(memento_cache *cache, size_t size)
{
	return memento__alloc_with(&cache->allocator, size, 0);
}

static inline void memento__free(memento_cache *cache, void *p, size_t size)
{
	memento__free_with(&cache->allocator, p, size);
}

static inline struct memento__shard *memento__shard_of(memento_cache *cache, uint64_t hash)
{
	/* Top bits: ck_hs indexes its buckets with the low ones. */
	size_t i = cache->shard_shift < 64 ? (size_t)(hash >> cache->shard_shift) : 0;
	return &cache->shards[i];
}

/* This thread's record for cache if it is the one it used last, else NULL;
 * never allocates. */
static inline struct memento__tcache *memento__tcache_last(const memento_cache *cache)
{
	struct memento__thread *t = memento__self;
	return t != NULL && t->last_cache_id == cache->id ? t->last_tc : NULL;
}

/* This thread's record for cache, or NULL when out of memory. */
static inline struct memento__tcache *memento__tcache_for(memento_cache *cache)
{
	struct memento__thread *t = memento__self;
	if (MEMENTO__LIKELY(t != NULL && t->last_cache_id == cache->id))
		return t->last_tc;
	return memento__tcache_slow(cache);
}

#endif /* MEMENTO_INTERNAL_H */
