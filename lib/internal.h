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
#include "policy/policy.h"
#include "store/record.h"

#include <ck_epoch.h>
#include <ck_hs.h>
#include <pthread.h>
#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

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
struct memento__counters;

/* A callback's positive return breaks its contract; report it as such. */
static inline int memento__callback_result(int rc)
{
	return rc > 0 ? -EINVAL : rc;
}

/* ---- key.c ------------------------------------------------------------------ */

struct memento_key {
	unsigned char *bytes; /* MEMENTO_KEY_MAX bytes of room */
	uint32_t len;
	int err; /* first error of an append; sticks */
};

MEMENTO__HIDDEN uint64_t memento__key_hash(const void *bytes, size_t len, uint64_t seed);
/* Whether a key's fields include a memento_key_ptr one. */
MEMENTO__HIDDEN bool memento__key_has_ptr(const unsigned char *bytes, uint32_t len);

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
 * entry left its table (forgotten, failed, evicted, expired, replaced),
 * changed under the shard lock.  A phase of 0 is a free slot in its shard's
 * slab.  The high bits are the entry's identity, fixed for its life: the
 * class index, the key's length in words, GUARDED (the class's objects are
 * reclaimed: the entry carries a lifetime trailer after its key),
 * FULL_LIFE (that trailer is the full one: the class has a bound, expiry or
 * refresh) and FINGERPRINTED (the class revalidates: the fingerprint its
 * object was made for follows, last).  Every change to the word keeps them.
 */
enum {
	MEMENTO__CREATING = 1,
	MEMENTO__READY = 2,
	MEMENTO__FAILED = 3,
	MEMENTO__PHASE = 3,
	MEMENTO__WAITERS = 4,
	MEMENTO__UNLINKED = 8,
	MEMENTO__STATE_BITS = 15,
	MEMENTO__GUARDED = 16, /* identity: a lifetime trailer follows the key */
	MEMENTO__FULL_LIFE = 1 << 15, /* identity: that trailer is the full one */
	MEMENTO__FINGERPRINTED = 1 << 16, /* identity: a fingerprint ends the entry */
};

#define MEMENTO__WORDS_SHIFT 5
#define MEMENTO__WORDS_MASK 0x3FFu /* 10 bits: key length in 8-byte words */
#define MEMENTO__CLS_SHIFT 17      /* 15 bits */

_Static_assert(MEMENTO_KEY_MAX / 8 <= MEMENTO__WORDS_MASK, "a key's words fit their 10 bits");
_Static_assert(MEMENTO_KEY_MAX % 8 == 0, "keys are whole words");
_Static_assert(MEMENTO__WORDS_SHIFT + 10 <= 15 && 16 < MEMENTO__CLS_SHIFT,
               "length, FULL_LIFE, FINGERPRINTED and class apart");
_Static_assert(MEMENTO_CLASSES_MAX == 1u << (32 - MEMENTO__CLS_SHIFT),
               "a class index fits its 15 bits");

/* The identity bits of a class (index cls; guarded: it reclaims its
 * objects; full_life: with a bound, expiry or refresh; fingerprinted: it
 * revalidates), to which a key adds its length (memento__identity_of). */
static inline uint32_t memento__class_identity(uint32_t cls, bool guarded, bool full_life,
                                               bool fingerprinted)
{
	return cls << MEMENTO__CLS_SHIFT | (guarded ? (uint32_t)MEMENTO__GUARDED : 0) |
	       (guarded && full_life ? (uint32_t)MEMENTO__FULL_LIFE : 0) |
	       (fingerprinted ? (uint32_t)MEMENTO__FINGERPRINTED : 0);
}

/* The identity bits of a key of len bytes (whole words) in a class with
 * these class identity bits. */
static inline uint32_t memento__identity_of(uint32_t class_identity, uint32_t len)
{
	return class_identity | (len / 8) << MEMENTO__WORDS_SHIFT;
}

static inline uint32_t memento__len_of(uint32_t word)
{
	/* The words times 8, in one shift and one mask (a hit takes two). */
	return (word >> (MEMENTO__WORDS_SHIFT - 3)) & (MEMENTO__WORDS_MASK << 3);
}

static inline uint32_t memento__cls_of(uint32_t word)
{
	return word >> MEMENTO__CLS_SHIFT;
}

static inline bool memento__guarded_of(uint32_t word)
{
	return (word & MEMENTO__GUARDED) != 0;
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

/*
 * What a guarded class's entry carries after its key: its object's
 * lifetime.  Written when the object is published, then read by hits.
 * A class without bound, expiry or refresh has only the short trailer,
 * up to and including u.gone (32 bytes); the others the whole struct
 * (FULL_LIFE in the identity): smaller entries are fewer pages for a hit
 * on a large table to walk.
 */
struct memento__life {
	/* Holders of the object: the table (until the grace period after the
	 * entry's removal ends), the creation record (while its creator and
	 * waiters may still read the object), and each memento_ref.  The last
	 * to let go makes the entry due for destroy (lifetime/reclaim.c). */
	_Atomic uint32_t refs;
	uint32_t key_words;            /* so that a policy node finds its entry */
	struct memento__shard *shard;  /* where the entry goes back when freed */
	union {
		struct memento__policy_node node; /* full, linked: its place in the policy */
		struct {                          /* removed: */
			struct memento__entry *next; /* limbo, then the due stack */
			unsigned int stamp;          /* global epoch at removal */
		} gone;
	} u;
	/* The full trailer only, from here on. */
	uint64_t born; /* ns, coarse monotonic clock: publication */
	/* ns: the first get from then on rebuilds the object; the top bit
	 * (MEMENTO__REFRESHING) says a get is doing it.  Written under the
	 * shard lock, read by hits. */
	_Atomic uint64_t refresh_at;
};

/* The short trailer: the holds and the removal links. */
#define MEMENTO__SHORT_LIFE \
	(offsetof(struct memento__life, u) + sizeof(((struct memento__life *)0)->u.gone))

#define MEMENTO__REFRESHING ((uint64_t)1 << 63)

/* A removed entry's links overlay the policy's, never the visited bit that
 * a late hit may still set. */
_Static_assert(sizeof(((struct memento__life *)0)->u.gone) <=
                       offsetof(struct memento__policy_node, weight),
               "gone overlays only the policy's links");

/* The smallest entry: room for memento_cache_free's record (cache.c). */
#define MEMENTO__ENTRY_MIN 24

/* Bytes of an entry with this identity up to its fingerprint, if any. */
static inline size_t memento__entry_fp_at(uint32_t identity)
{
	size_t n = offsetof(struct memento__entry, key) + memento__len_of(identity);
	if (memento__guarded_of(identity))
		n += (identity & MEMENTO__FULL_LIFE) ? sizeof(struct memento__life) : MEMENTO__SHORT_LIFE;
	return memento__round_to_words(n);
}

/* Bytes an entry with this identity takes in its slab. */
static inline size_t memento__entry_size(uint32_t identity)
{
	size_t n = memento__entry_fp_at(identity);
	if (identity & MEMENTO__FINGERPRINTED)
		n += sizeof(struct memento__digest);
	return n > MEMENTO__ENTRY_MIN ? n : MEMENTO__ENTRY_MIN;
}

/* The entry whose trailer holds policy node n. */
static inline struct memento__entry *memento__entry_of_node(struct memento__policy_node *n)
{
	struct memento__life *l = MEMENTO__CONTAINER(n, struct memento__life, u.node);
	return (struct memento__entry *)(void *)((unsigned char *)l - 8 * (size_t)l->key_words -
	                                         offsetof(struct memento__entry, key));
}

/* A guarded entry's trailer, just past its key (whole words, so aligned). */
static inline struct memento__life *memento__life_of(const struct memento__entry *e)
{
	uint32_t len = memento__len_of(atomic_load_explicit(&e->state, memory_order_relaxed));
	return (struct memento__life *)(void *)((unsigned char *)(uintptr_t)e->key + len);
}

/* The fingerprint e's object was made for (a revalidating class's entry):
 * written by its creator before it is published, then read by hits. */
static inline struct memento__digest *memento__fp_of(const struct memento__entry *e)
{
	uint32_t identity = atomic_load_explicit(&e->state, memory_order_relaxed);
	return (struct memento__digest *)(void *)((unsigned char *)(uintptr_t)e +
	                                          memento__entry_fp_at(identity));
}

/* Bytes e takes in its slab, from its identity bits. */
static inline size_t memento__entry_size_of(const struct memento__entry *e)
{
	return memento__entry_size(atomic_load_explicit(&e->state, memory_order_relaxed));
}

/* Copies a key of len bytes into an entry, word by word (keys are whole
 * words): a memcpy here became an inline `rep movsq`, slow to start for a
 * 16-byte key. */
static inline void memento__entry_key_copy(struct memento__entry *to, const unsigned char *key,
                                           uint32_t len)
{
	for (uint32_t at = 0; at < len; at += 8)
		memcpy(to->key + at, key + at, 8);
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
	memento_class *cls;
	uint64_t hash; /* the key's */
	_Atomic uint32_t refs;
	int error; /* FAILED: create's error */
	/* FAILED without an outcome: the creator stopped at its deadline
	 * waiting for another process's key lock; its waiters start over
	 * (get.c) and it is never remembered.  Written by the creator before
	 * the failure's release. */
	bool no_outcome;
	/* A failure its class remembers (failure_ttl_ns): the entry stays
	 * linked, FAILED, and holds a reference on the record until retry_at
	 * (ns, coarse monotonic); the record is on its class's list of
	 * remembered failures in the shard, oldest first. */
	uint64_t retry_at;
	struct memento__creation *remembered_prev, *remembered_next;
	union {
		ck_epoch_entry_t reclaim;           /* failed: deferred free */
		struct memento__creation *orphan_next; /* fork child: shard's orphans */
	} link;
};

/* The calling thread's spare record for tc's cache, allocated if it has
 * none; NULL when out of memory.  Outside every lock. */
MEMENTO__HIDDEN struct memento__creation *memento__creation_spare(struct memento__tcache *tc);
/* Under the shard lock, key absent: links a new CREATING entry of cls for
 * probe, owned by tc's thread, and takes tc's spare record for it; false
 * when out of memory. */
MEMENTO__HIDDEN bool memento__creation_start(struct memento__shard *shard, memento_class *cls,
                                             const struct memento__entry *probe, uint64_t hash,
                                             struct memento__tcache *tc);
/* Under the shard lock, e CREATING and linked: a waiter's reference. */
MEMENTO__HIDDEN struct memento__creation *memento__creation_join(struct memento__entry *e);
/* Drops a reference; the lock-free and the under-the-lock variants. */
MEMENTO__HIDDEN void memento__creation_unref(struct memento__creation *c);
MEMENTO__HIDDEN void memento__creation_unref_locked(struct memento__creation *c);
/*
 * The creator's success: obj becomes the entry's object (weight: its
 * weight for a weighted class, else 1).  hold: a guarded entry gets one
 * more hold, for the creator's memento_ref.  Counts evictions in counters.
 * Drops the creator's reference.
 */
MEMENTO__HIDDEN void memento__creation_publish(struct memento__creation *c, void *obj,
                                               uint64_t weight, bool hold,
                                               struct memento__counters *counters);
MEMENTO__HIDDEN void memento__creation_fail(struct memento__creation *c, int err);
/*
 * A guarded entry's trailer, before the entry becomes ready: refs holds,
 * its shard, and for a full trailer its policy node (weight, hash) and
 * times (dated now).
 */
MEMENTO__HIDDEN void memento__life_start(struct memento__entry *e, struct memento__shard *shard,
                                         const memento_class *cls, uint32_t refs,
                                         uint64_t weight, uint64_t hash);
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
/* Under the shard lock, with no reader left that could find e, and e not
 * READY (a guarded entry is marked dead before it comes back). */
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
	/* ck_hs leaves a tombstone for each removal, which only a rebuild
	 * clears: removals since the last one, and the table's size in
	 * slots, to rebuild once a quarter of them are tombstones. */
	size_t removed, table_slots;
	struct memento__slab slab;
	struct memento__creation *orphans; /* fork child: records of dead creators */
	/* Guarded entries removed from the table, waiting for their grace
	 * period, oldest first (lifetime/reclaim.c). */
	struct memento__entry *limbo_head, *limbo_tail;
};

/*
 * The table's words are entry pointers with 16 bits of the key's hash in
 * their own top 16 bits (ck_hs in CK_HS_MODE_DIRECT never reads them;
 * ck's pointer packing is off in Debian's build).  Bits 32-47 of the hash:
 * the top ones choose the shard, which all of a shard's keys share, and
 * the low ones the bucket, which the keys probed together mostly share.  A probe carries
 * the same tag, so compare rejects most slots that are not the key's
 * without reading their entry: a cache miss less per occupied slot probed
 * (docs/design.md, "The table").  User-space pointers on x86-64 and
 * arm64 Linux stay below 2^48 unless a mapping asks for more; insert
 * checks.
 */
#define MEMENTO__TAG_SHIFT 48
#define MEMENTO__UNTAG_MASK (((uintptr_t)1 << MEMENTO__TAG_SHIFT) - 1)

static inline void *memento__tagged(const void *e, uint64_t hash)
{
	return (void *)((uintptr_t)e | (uintptr_t)((hash >> 32) & 0xffffu) << MEMENTO__TAG_SHIFT);
}

static inline struct memento__entry *memento__untagged(const void *word)
{
	return (struct memento__entry *)((uintptr_t)word & MEMENTO__UNTAG_MASK);
}

/* The entry linked under probe's key (reader-safe: inside an epoch
 * section, or under the lock), or NULL. */
static inline struct memento__entry *memento__table_get(struct memento__shard *shard,
                                                        uint64_t hash,
                                                        const struct memento__entry *probe)
{
	return memento__untagged(ck_hs_get(&shard->hs, hash, memento__tagged(probe, hash)));
}

/*
 * A tag-only probe: bit 0 of a probe word (entries are 8-aligned, so no
 * stored word has it) tells compare to match on the tag alone, without
 * reading the entry.  ck_hs_get then costs one cache miss, the slot's,
 * and returns a candidate: the key's entry, or, about once in 65,536
 * occupied slots probed, another key's with the same tag, before which
 * the probe stopped.  The caller checks the key (memento_get_many, which
 * prefetches every candidate first, then checks them all); a candidate
 * that is not the key's sends it down the exact path.  Only for reads:
 * a writer's probe is always exact.
 */
#define MEMENTO__PROBE_TAG_ONLY ((uintptr_t)1)

static inline struct memento__entry *memento__table_candidate(struct memento__shard *shard,
                                                              uint64_t hash,
                                                              const struct memento__entry *probe)
{
	void *word = (void *)((uintptr_t)memento__tagged(probe, hash) | MEMENTO__PROBE_TAG_ONLY);
	return memento__untagged(ck_hs_get(&shard->hs, hash, word));
}

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
	MEMENTO__EVICTIONS,
	MEMENTO__EXPIRATIONS,
	MEMENTO__REFRESHES,
	MEMENTO__DESTROYED,
	MEMENTO__STORE_HITS,
	MEMENTO__STORE_STALE,
	MEMENTO__STORE_WRITES,
	MEMENTO__STORE_ERRORS,
	MEMENTO__REMOTE_HITS,
	MEMENTO__REMOTE_WAITS,
	MEMENTO__REMOTE_ERRORS,
	MEMENTO__NSTATS
};

/* One thread's counters for one class.  Only that thread writes them.
 * Padded to a power of two, so that indexing by class is a shift. */
struct memento__counters {
	_Atomic uint64_t n[32];
};
_Static_assert(MEMENTO__NSTATS <= 32, "the counters fit their padded array");

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
	/* Only the record's thread touches these.  A recycled record's slots
	 * of never-reclaimed classes stay valid for its next thread (same
	 * cache, entries still ready); slots of guarded classes are valid
	 * only inside the guard that filled them, and are emptied when it
	 * ends (front_guarded says which). */
	struct memento__front_slot front[MEMENTO__FRONT_SLOTS];
	uint64_t front_guarded; /* bit i: front[i] holds a guarded class's entry */
	uint32_t guard_depth;   /* guards entered and not left (lifetime/guard.c) */
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
/* One more in each fork child (its handler counts it): a thread that sees
 * it change across a callback it ran is now in a child, where the other
 * threads' creations in flight were dropped as orphans. */
MEMENTO__HIDDEN extern _Atomic unsigned long memento__fork_children;

/* ---- cache.c -------------------------------------------------------------------- */

MEMENTO__HIDDEN void memento__default_cache_lock(void);
MEMENTO__HIDDEN void memento__default_cache_unlock(void);

/* What a class's options ask of its gets (memento_class.life). */
enum {
	MEMENTO__LIFE_GUARDED = 1,  /* objects are reclaimed: gets need a guard */
	MEMENTO__LIFE_BOUNDED = 2,  /* hits touch the eviction policy */
	MEMENTO__LIFE_TIMED = 4,    /* hits check expiry and refresh */
	MEMENTO__LIFE_REMEMBER = 8, /* failures are remembered for failure_ttl */
	MEMENTO__LIFE_POLICY = 16,  /* per-shard policies hold the entries */
	MEMENTO__LIFE_REVALIDATE = 32, /* every get checks the object's fingerprint */
};

/* A class's state in one shard, under that shard's lock. */
struct memento__class_shard {
	struct memento__policy policy; /* MEMENTO__LIFE_POLICY */
	struct memento__creation *remembered_head, *remembered_tail; /* oldest first */
};

struct memento_class {
	memento_cache *cache;
	char *name;
	memento_key_fn key;
	memento_create_fn create;
	memento_destroy_fn destroy;
	void *ctx;
	uint64_t seed; /* the cache's seed mixed with the class index */
	uint32_t index;
	uint32_t identity; /* memento__class_identity: what its keys' entries share */
	uint32_t life;     /* MEMENTO__LIFE_* */
	memento_weigh_fn weigh;
	uint64_t expire_after, refresh_after, failure_ttl; /* ns; 0: never */
	memento_interrupt_fn interrupt; /* asked during waits; NULL: never */
	uint64_t interrupt_every;       /* ns between its calls */
	struct memento__class_shard *shards; /* one per cache shard, or NULL */
	struct memento__persist *persist;    /* store/persist.c, or NULL */
};

/* A cache's classes by index; replaced arrays stay, chained, until the
 * cache is freed, so that a reader without the lock never sees one go. */
struct memento__class_array {
	struct memento__class_array *older;
	uint32_t cap;
	memento_class *at[];
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

	pthread_mutex_t class_lock;
	/* Read without the lock by reclamation (memento__class_at): a grown
	 * array replaces it, and the old one stays until the cache is freed. */
	_Atomic(struct memento__class_array *) classes;
	uint32_t nclasses; /* under class_lock */

	memento_cache *registry_prev, *registry_next; /* under the registry lock */

	/* Written by creations and removals, read by neither hits nor the
	 * fields above: a line of their own, so that those writes do not
	 * take the hit path's lines away. */
	alignas(MEMENTO__CACHELINE) _Atomic uint64_t next_seq; /* publication order */
	/* Guarded entries whose objects are due for destroy: a stack pushed
	 * by whoever ends their last hold, emptied by drains (reclaim.c). */
	_Atomic(struct memento__entry *) due;
};

/* The next publication number, for an object's destroy order. */
static inline uint32_t memento__next_seq(memento_cache *cache)
{
	/* Relaxed: a publication that depends on another is already later
	 * in the counter's modification order (docs/design.md). */
	return (uint32_t)atomic_fetch_add_explicit(&cache->next_seq, 1, memory_order_relaxed);
}

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


/* ---- lifetime/ -------------------------------------------------------------------- */

/* guard.c */

static inline bool memento__in_guard(const struct memento__tcache *tc)
{
	return tc->guard_depth != 0;
}

/* This thread's record for cache, without allocating one; NULL if none. */
MEMENTO__HIDDEN struct memento__tcache *memento__tcache_find(memento_cache *cache);
/* Empties the front slots that hold guarded entries: the guard that made
 * them safe is ending.  The record's thread, or the registry lock holder
 * for a record whose thread is gone. */
MEMENTO__HIDDEN void memento__front_forget_guarded(struct memento__tcache *tc);
/* The record's thread is gone (exit, or a fork child): ends its guards and
 * every read-side section it was in. */
MEMENTO__HIDDEN void memento__guard_abandon(struct memento__tcache *tc);

/* reclaim.c */

/* Under the shard lock: e (guarded, READY, UNLINKED, out of any policy)
 * waits in limbo for every guard that might have seen it to end. */
MEMENTO__HIDDEN void memento__retire(struct memento__shard *shard, struct memento__entry *e);
/* Under the shard lock: lets go of the limbo entries whose grace period
 * has ended, and moves the global epoch on when it can. */
MEMENTO__HIDDEN void memento__reclaim_limbo(struct memento__shard *shard);
/* Drops one hold on a guarded entry; the last one makes it due. */
MEMENTO__HIDDEN void memento__life_release(memento_cache *cache, struct memento__entry *e);
/* Destroys every due object and frees its entry.  Outside every lock and
 * every guard of cache (tc is this thread's record for it). */
MEMENTO__HIDDEN void memento__reclaim_due(memento_cache *cache, struct memento__tcache *tc);

/* One more hold on a guarded entry that something already holds (the
 * table, a record, a guard in which it was found linked). */
static inline void memento__life_hold(struct memento__entry *e)
{
	/* Relaxed: the hold being taken is ordered by what makes e safe to
	 * reach now; its release is an acq_rel RMW. */
	atomic_fetch_add_explicit(&memento__life_of(e)->refs, 1, memory_order_relaxed);
}

static inline void memento__reclaim_due_if_any(memento_cache *cache, struct memento__tcache *tc)
{
	/* Relaxed: only a hint; the drain's exchange is the acquire. */
	if (tc != NULL && !memento__in_guard(tc) &&
	    atomic_load_explicit(&cache->due, memory_order_relaxed) != NULL)
		memento__reclaim_due(cache, tc);
}

/* options.c */

/* The class options, checked, applied to cls (its per-shard state
 * allocated).  0, -EINVAL or -ENOMEM. */
MEMENTO__HIDDEN int memento__class_options_apply(memento_class *cls,
                                                 const memento_class_options *options);
/* Frees a class's per-shard state, and the records of the failures it
 * still remembers.  No concurrency. */
MEMENTO__HIDDEN void memento__class_options_free(memento_class *cls);

/* freshness.c */

/* The coarse monotonic clock, in ns (resolution: clock_getres of
 * CLOCK_MONOTONIC_COARSE, a few ms). */
MEMENTO__HIDDEN uint64_t memento__now(void);

/* The clock, read into *now the first time (0: not read yet). */
static inline uint64_t memento__now_once(uint64_t *now)
{
	if (*now == 0)
		*now = memento__now();
	return *now;
}

enum memento__freshness {
	MEMENTO__FRESH,   /* return it */
	MEMENTO__EXPIRED, /* never return it: replace it */
	MEMENTO__STALE,   /* return it, but rebuild it first if no one is */
};

/* The slow half of memento__freshness_of: a class that expires or
 * refreshes.  *now is read once if still 0. */
MEMENTO__HIDDEN enum memento__freshness memento__freshness_timed(const memento_class *cls,
                                                                 struct memento__entry *e,
                                                                 uint64_t *now);

/* A hit's check of a ready entry of cls: touches it for a bounded class,
 * and says whether it may be returned. */
static inline enum memento__freshness memento__freshness_of(const memento_class *cls,
                                                            struct memento__entry *e,
                                                            uint64_t *now)
{
	if (MEMENTO__LIKELY(!(cls->life & (MEMENTO__LIFE_BOUNDED | MEMENTO__LIFE_TIMED))))
		return MEMENTO__FRESH;
	if (cls->life & MEMENTO__LIFE_BOUNDED)
		memento__policy_touch(&memento__life_of(e)->u.node);
	if (!(cls->life & MEMENTO__LIFE_TIMED))
		return MEMENTO__FRESH;
	return memento__freshness_timed(cls, e, now);
}

/* Under the shard lock, e's creation failed with c->error: whether its
 * class remembers it (then e stays linked, FAILED, until c->retry_at). */
MEMENTO__HIDDEN bool memento__remember_failure(struct memento__creation *c);
/* Under the shard lock: e, a remembered failure, leaves the table. */
MEMENTO__HIDDEN void memento__remembered_drop(struct memento__shard *shard,
                                              struct memento__entry *e);

/* admit.c */

/* Under the shard lock: a guarded entry just published.  Retires it if it
 * was forgotten while created; else hands it to its class's policy, which
 * may evict (counted in counters), and sweeps expired entries. */
MEMENTO__HIDDEN void memento__admit(struct memento__shard *shard, memento_class *cls,
                                    struct memento__entry *e,
                                    struct memento__counters *counters);
/* Under the shard lock: a linked, ready, guarded entry leaves the table
 * (forgotten, expired or replaced) and is retired. */
MEMENTO__HIDDEN void memento__drop(struct memento__shard *shard, memento_class *cls,
                                   struct memento__entry *e);
/* Under the shard lock: old, linked and ready, gives its key and its place
 * in the policy to fresh (a refresh), and is retired; false if ck_hs did
 * not find old's key (never, while old is linked). */
MEMENTO__HIDDEN bool memento__replace(struct memento__shard *shard, memento_class *cls,
                                      struct memento__entry *old, struct memento__entry *fresh,
                                      uint64_t hash, struct memento__counters *counters);

/* refresh.c */

/* Under the shard lock: e (linked, ready, stale) is to be rebuilt by the
 * caller, unless a get already does it: then false.  True: e is held for
 * the caller, marked as being refreshed. */
MEMENTO__HIDDEN bool memento__refresh_claim(struct memento__entry *e);
/* The caller's create for a claimed refresh of e returned obj: it replaces
 * e's object, or, if e left the table meanwhile, is retired at once.
 * Returns the entry that holds obj, held for the caller (hold); NULL when
 * out of memory (obj is then destroyed, e's object stays).  Drops the
 * claim's hold on e. */
MEMENTO__HIDDEN struct memento__entry *memento__refresh_publish(memento_class *cls,
                                                               struct memento__entry *e,
                                                               void *obj, uint64_t weight,
                                                               uint64_t hash,
                                                               struct memento__counters *counters);
/* The caller's create for a claimed refresh of e failed: e's object stays,
 * and the next refresh comes refresh_after from now.  Keeps the hold. */
MEMENTO__HIDDEN void memento__refresh_fail(memento_class *cls, struct memento__entry *e);

/* The class of index idx in cache, from any thread (class arrays are
 * never freed before the cache). */
static inline memento_class *memento__class_at(memento_cache *cache, uint32_t idx)
{
	/* Acquire: pairs with the release that published the array. */
	return atomic_load_explicit(&cache->classes, memory_order_acquire)->at[idx];
}

/* ---- store/ ------------------------------------------------------------------- */

/* Cancellation off, for a section that holds a mutex or an LMDB
 * transaction, which no cleanup handler could unwind (a cancellation point
 * inside, open() or fsync(), would leave it held); returns the state that
 * memento__cancel_restore puts back. */
static inline int memento__cancel_off(void)
{
	int old;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	return old;
}

static inline void memento__cancel_restore(int old)
{
	int ignored;
	pthread_setcancelstate(old, &ignored);
}

/* The clock's time in ns (CLOCK_MONOTONIC for waits and timeouts,
 * CLOCK_REALTIME for a record's creation time). */
static inline uint64_t memento__clock_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A caller's absolute deadline in ns: 0 for a negative tv_sec (passed long
 * ago, as the header says), UINT64_MAX past what 64 bits of ns hold (584
 * years: never).  tv_nsec was checked to be in [0, 1e9). */
static inline uint64_t memento__deadline_ns(const struct timespec *deadline)
{
	if (deadline->tv_sec < 0)
		return 0;
	if ((uint64_t)deadline->tv_sec >= UINT64_MAX / 1000000000u - 1)
		return UINT64_MAX;
	return (uint64_t)deadline->tv_sec * 1000000000u + (uint64_t)deadline->tv_nsec;
}

/* Whether an absolute CLOCK_MONOTONIC deadline has passed; *left_ns (when
 * not NULL) gets the time left, 0 once passed. */
static inline bool memento__deadline_passed(const struct timespec *deadline, uint64_t *left_ns)
{
	uint64_t now = memento__clock_ns(CLOCK_MONOTONIC);
	uint64_t at = memento__deadline_ns(deadline);
	if (left_ns != NULL)
		*left_ns = at > now ? at - now : 0;
	return at <= now;
}

/* What an encode callback appends to (buf.c). */
struct memento_buf {
	memento_cache *cache; /* whose allocator holds data */
	unsigned char *data;
	size_t len, cap;
	int err; /* first failure; sticks */
};

MEMENTO__HIDDEN void memento__buf_init(memento_buf *buf, memento_cache *cache);
MEMENTO__HIDDEN void memento__buf_free(memento_buf *buf);

/* A record's key in the store (record.h, memento__record_key). */
struct memento__store_key {
	unsigned char b[MEMENTO__RECORD_KEY];
};

/* Gets a record's bytes, valid during the call only, inside a read
 * transaction; returns what the read returns. */
typedef int (*memento__store_visit_fn)(const void *data, size_t len, void *ctx);

/* store.c.  Every function: any thread, concurrently. */
MEMENTO__HIDDEN void memento__store_use(memento_store *s, int delta);
MEMENTO__HIDDEN bool memento__store_writable(const memento_store *s);
/* Whether creations take keylock.c's locks: LMDB stores (one machine). */
MEMENTO__HIDDEN bool memento__store_has_key_locks(const memento_store *s);
/* A Redis store: its hits and faults are remote_*, it takes leases. */
MEMENTO__HIDDEN bool memento__store_is_remote(const memento_store *s);
/* The next tier (memento_store_options.next), or NULL. */
#define MEMENTO__STORE_TIERS_MAX 4
MEMENTO__HIDDEN memento_store *memento__store_next(const memento_store *s);
struct memento__lease;
/* A remote store's lease length. */
MEMENTO__HIDDEN uint64_t memento__store_lease_ns(const memento_store *s);
/* A remote store's lease on key (lease.c): 0, -EBUSY (another's), or an
 * error. */
MEMENTO__HIDDEN int memento__store_lease_take(memento_store *s, const char *name,
                                              const struct memento__store_key *key,
                                              const char *token, struct memento__lease *l);
/* Orders stores for taking their exclusions: LMDB before Redis, then by
 * directory or server, so that no two productions wait on each other in
 * opposite orders.  <0, 0 (the same place), >0. */
MEMENTO__HIDDEN int memento__store_order(const memento_store *a, const memento_store *b);
/* Calls visit with the record of class `name` under key: returns visit's
 * result, -ENOENT when there is none, or the store's error. */
MEMENTO__HIDDEN int memento__store_read(memento_store *s, const char *name,
                                        const struct memento__store_key *key,
                                        memento__store_visit_fn visit, void *ctx);
/* Writes (and commits) the record head (record.h, payload included)
 * under key, growing an LMDB map when it is full.  -EROFS for a read-only
 * store. */
MEMENTO__HIDDEN int memento__store_write(memento_store *s, const char *name,
                                         const struct memento__store_key *key,
                                         const struct memento__record *head);
/* Writes n whole records (their bytes as they are) in one transaction,
 * each unless its key holds a record made at or after it (copies from a
 * farther tier must not replace a newer creation); n in
 * [1, MEMENTO__STORE_PUT_MAX]. */
#define MEMENTO__STORE_PUT_MAX 256
MEMENTO__HIDDEN int memento__store_put_records(memento_store *s, size_t n,
                                               const struct memento__store_key *const *keys,
                                               const void *const *records, const size_t *lens);
MEMENTO__HIDDEN const char *memento__store_lock_path(const memento_store *s);
MEMENTO__HIDDEN struct memento__key_locks *memento__store_key_locks(memento_store *s);
MEMENTO__HIDDEN pthread_mutex_t *memento__store_mutex(memento_store *s);

/* keylock.c: a key's lock across processes, held by one thread from
 * memento__key_lock to memento__key_unlock.  Lives on the holder's stack,
 * listed in its store (so that a fork child finds it). */
struct memento__key_lock {
	memento_store *store; /* NULL: not held */
	int fd;
	off_t at; /* the key's byte */
	struct memento__key_lock *prev, *next;
};

/* A store's key locks in this process, under the store's mutex: those in
 * use, and descriptors of keys.lock kept open for the next ones. */
#define MEMENTO__KEY_LOCK_POOL 8
struct memento__key_locks {
	struct memento__key_lock *held;
	int pool[MEMENTO__KEY_LOCK_POOL];
	unsigned int npool;
};

/* Waits for the lock of the key with this hash (sleeping in the kernel;
 * without a deadline, or until it passes: -ETIMEDOUT).  0 or -errno. */
MEMENTO__HIDDEN int memento__key_lock(memento_store *s, uint64_t hash,
                                      const struct timespec *deadline,
                                      struct memento__key_lock *l);
/* Releases l if held; then a no-op. */
MEMENTO__HIDDEN void memento__key_unlock(struct memento__key_lock *l);
/* In a fork child, under the store's mutex: closes the inherited copies. */
MEMENTO__HIDDEN void memento__key_locks_drop_inherited(memento_store *s);
/* When the store closes: closes the kept descriptors. */
MEMENTO__HIDDEN void memento__key_locks_close(memento_store *s);

/* fill.c: an LMDB store's fills from a farther tier, written in the
 * background.  Under `lock`. */
struct memento__fill;
struct memento__fills {
	pthread_mutex_t lock;
	pthread_cond_t wake; /* the writer: work, or stop */
	pthread_cond_t idle; /* flushes: the queue is empty, nothing in flight */
	struct memento__fill *head, *tail;
	size_t records, bytes;
	bool running, stopping, writing;
	pthread_t writer;
};
MEMENTO__HIDDEN struct memento__fills *memento__store_fills(memento_store *s);
MEMENTO__HIDDEN void memento__fills_init(struct memento__fills *f);
/* Queues a copy of a whole record for s: 0, or -EAGAIN (the queue is
 * full, or no writer: write it yourself), -ENOMEM. */
MEMENTO__HIDDEN int memento__fill_queue(memento_store *s, const struct memento__store_key *key,
                                        const void *record, size_t len);
/* Waits until what was queued is written. */
MEMENTO__HIDDEN void memento__fills_flush(memento_store *s);
/* At close: writes what is queued, stops the writer. */
MEMENTO__HIDDEN void memento__fills_stop(memento_store *s);
MEMENTO__HIDDEN void memento__fills_free(struct memento__fills *f);
MEMENTO__HIDDEN void memento__fills_fork_prepare(memento_store *s);
MEMENTO__HIDDEN void memento__fills_fork_parent(memento_store *s);
MEMENTO__HIDDEN void memento__fills_fork_child(memento_store *s);

/* uri.c: a Redis store's address, redis://[[user]:password@]host[:port][/db]. */
struct memento__redis_target {
	char *host;
	int port; /* default 6379 */
	char *user, *password; /* NULL: none */
	int db;
};

MEMENTO__HIDDEN bool memento__is_redis_uri(const char *s);
/* 0, -EINVAL (not such a URI, or a part out of range) or -ENOMEM. */
MEMENTO__HIDDEN int memento__redis_uri_parse(const char *uri, struct memento__redis_target *out);
MEMENTO__HIDDEN void memento__redis_target_free(struct memento__redis_target *t);

/* redis.c: records on a Redis server.  Every function: any thread,
 * concurrently; each command bounded by the timeout. */
#define MEMENTO__REDIS_TIMEOUT_NS 1000000000u
#define MEMENTO__REDIS_LEASE_NS ((uint64_t)30000000000u)
struct memento__redis;
/* Connects once (AUTH, SELECT, a look at INFO): 0, -EINVAL (the URI),
 * -ECONNREFUSED, -ETIMEDOUT, -EACCES (credentials refused), -ENOTSUP (a
 * cluster node), -EIO, -ENOMEM; -EINVAL too when lease_ns is under twice
 * the timeout.  0 ns: the defaults. */
MEMENTO__HIDDEN int memento__redis_open(struct memento__redis **out, const char *uri,
                                        uint64_t timeout_ns, uint64_t lease_ns);
MEMENTO__HIDDEN void memento__redis_close(struct memento__redis *r);
MEMENTO__HIDDEN const struct memento__redis_target *
memento__redis_target_of(const struct memento__redis *r);
/* Calls visit with the value of key (valid during the call, with
 * cancellation off): visit's result, -ENOENT (none), or the connection's
 * error. */
MEMENTO__HIDDEN int memento__redis_get(struct memento__redis *r, const void *key, size_t key_len,
                                       memento__store_visit_fn visit, void *ctx);
MEMENTO__HIDDEN int memento__redis_set(struct memento__redis *r, const void *key, size_t key_len,
                                       const void *value, size_t value_len);
/* A record of class `name` under its store key: the Redis key is
 * "mementos:" name ":{" 48 hex digits of key "}" (the braces: a cluster
 * hash tag).  The record's bytes are the same as in LMDB. */
MEMENTO__HIDDEN int memento__redis_get_record(struct memento__redis *r, const char *name,
                                              const struct memento__store_key *key,
                                              memento__store_visit_fn visit, void *ctx);
MEMENTO__HIDDEN int memento__redis_set_record(struct memento__redis *r, const char *name,
                                              const struct memento__store_key *key,
                                              const struct memento__record *head);
/* lease.c: a key's lease, held by one thread from take to release; on the
 * holder's stack, listed in its store for the renewer. */
#define MEMENTO__LEASE_TOKEN 32
struct memento__lease {
	struct memento__redis *redis; /* NULL: not held */
	char *key;
	size_t key_len;
	char token[MEMENTO__LEASE_TOKEN]; /* hex */
	unsigned int generation;
	struct memento__lease *prev, *next;
};
/* A production's lease token: 16 random bytes in hex. */
MEMENTO__HIDDEN void memento__lease_token(char out[MEMENTO__LEASE_TOKEN]);
/* 0: taken (or held with this token already), renewed until released;
 * -EBUSY: another holder has it; or the connection's error (-ETIMEDOUT:
 * perhaps taken; l is then held all the same, to be released). */
MEMENTO__HIDDEN int memento__redis_lease_take(struct memento__redis *r, const char *name,
                                              const struct memento__store_key *key,
                                              const char token[MEMENTO__LEASE_TOKEN],
                                              struct memento__lease *l);
MEMENTO__HIDDEN uint64_t memento__redis_lease_ns(const struct memento__redis *r);
/* Deletes the lease if it is still l's; then a no-op. */
MEMENTO__HIDDEN void memento__redis_lease_release(struct memento__lease *l);
/* fork(): the pool's mutex is held across it; the child drops the
 * parent's connections (closing its copies of their sockets).  NULL: no-op. */
MEMENTO__HIDDEN void memento__redis_fork_prepare(struct memento__redis *r);
MEMENTO__HIDDEN void memento__redis_fork_parent(struct memento__redis *r);
MEMENTO__HIDDEN void memento__redis_fork_child(struct memento__redis *r);

/* A class's persistence (persist.c); NULL for a class without a store,
 * version or fingerprint. */
struct memento__persist {
	memento_store *store; /* or NULL: fingerprint only (memento_key_result) */
	char *version;
	uint64_t version_seed; /* XXH3-64 of version: seeds the fingerprint */
	uint64_t name_hash;    /* XXH3-64 of the class name: records' first 8 bytes */
	memento_key_fn fingerprint;
	memento_encode_fn encode;
	memento_decode_fn decode;
};

/* Checks and takes the persistence options of o for cls; 0 or -EINVAL,
 * -ENOMEM.  cls->persist stays NULL when o asks for none. */
MEMENTO__HIDDEN int memento__persist_apply(memento_class *cls, const memento_class_options *o);
MEMENTO__HIDDEN void memento__persist_free(memento_class *cls);

/* What a production tells its caller besides its result; the caller
 * zeroes it, and a cleanup handler may read it after a cancellation. */
struct memento__produced {
	bool created;        /* create ran: counted in creations */
	bool lock_timed_out; /* -ETIMEDOUT from the key lock's wait, not create */
};

/*
 * The creating get of a persisted class (cls->persist->store set): makes
 * *made for the key (the creation's entry key) from the store or by
 * create, which it counts; writes what create made.  fingerprint: args'
 * fingerprint when the get computed it already (revalidation), else NULL.
 * Returns 0, create's error, or the fingerprint callback's, -EINVAL (a
 * pointer field in the key), or -ETIMEDOUT with out->lock_timed_out set
 * (the deadline passed while it waited for another process's key lock:
 * not create's -ETIMEDOUT).
 * Outside every lock of the cache.
 */
MEMENTO__HIDDEN int memento__persist_produce(memento_class *cls, const unsigned char *key,
                                             uint32_t key_len, const void *args,
                                             const struct memento__digest *fingerprint,
                                             const struct timespec *deadline,
                                             struct memento__counters *counters, void **made,
                                             struct memento__produced *out);

/* fingerprint.c: the fingerprint of args for cls (version and callback). */
MEMENTO__HIDDEN int memento__fingerprint(memento_class *cls, const void *args,
                                         struct memento__digest *out);
MEMENTO__HIDDEN void memento__store_key_of(const memento_class *cls, const unsigned char *key,
                                           uint32_t key_len, struct memento__store_key *out);

#endif /* MEMENTO_INTERNAL_H */
