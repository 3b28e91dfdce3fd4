/*
 * mementos: exactly one object per identity, from any number of threads.
 *
 * A memento_class says how to turn constructor arguments into an identity
 * (the key callback) and how to build an object for it (the create callback).
 * memento_get() returns the one object of that identity, building it on the
 * first call; concurrent callers of the same identity wait for that single
 * creation, callers of other identities never wait.
 *
 * Errors are negative errno values.  memento_strerror() describes them.
 *
 * Every function below states its contract in three fixed words:
 *   Threads:  which threads may call it, and with what else concurrently;
 *   Blocks:   whether it can sleep, and on what;
 *   Lifetime: how long a returned pointer stays valid.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTOS_H
#define MEMENTOS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The one source of the version; CMake reads these three lines. */
#define MEMENTO_VERSION_MAJOR 0
#define MEMENTO_VERSION_MINOR 1
#define MEMENTO_VERSION_PATCH 0
#define MEMENTO_VERSION_NUMBER \
	(MEMENTO_VERSION_MAJOR * 10000 + MEMENTO_VERSION_MINOR * 100 + MEMENTO_VERSION_PATCH)

/* Symbols are hidden by default; this marks the exported ones. */
#if defined(__GNUC__)
#define MEMENTO_API __attribute__((visibility("default")))
#else
#define MEMENTO_API
#endif

/* Largest key, in encoded bytes: a number or pointer field takes 16, a
 * string or bytes field 8 plus its length rounded up to a multiple of 8. */
#define MEMENTO_KEY_MAX 4096

typedef struct memento_cache memento_cache;
typedef struct memento_class memento_class;
typedef struct memento_key memento_key;

/*
 * Builds the identity of args by appending fields to key (memento_key_*).
 * Returns 0, or a negative error that the get/peek/forget call returns
 * unchanged.  Runs on the calling thread, outside every lock of the library.
 */
typedef int (*memento_key_fn)(memento_key *key, const void *args, void *ctx);

/*
 * Builds the object for args and stores it in *obj (NULL is a valid object).
 * Returns 0, or a negative error that every caller waiting on this creation
 * receives unchanged; nothing is cached on error.  Runs on the calling thread,
 * outside every lock of the library; it may call memento_get for other keys.
 * It may also end by thread cancellation, pthread_exit or a C++ exception:
 * the waiters then get -EOWNERDEAD.  Leaving it (or a key callback) with
 * longjmp is undefined.
 */
typedef int (*memento_create_fn)(void **obj, const void *args, void *ctx);

/*
 * Destroys an object; called exactly once per created object.  For a
 * MEMENTO_LIFETIME_CACHE class, by memento_cache_free.  For a guarded
 * class, once the object is removed and nothing can see it any more, by a
 * thread that calls into the cache outside its guards: the one whose
 * outermost memento_guard_leave, memento_ref_release, memento_forget,
 * memento_get_ref or memento_foreach (called outside a guard) or
 * memento_cache_barrier finds the object due; never inside a guard of
 * that thread on this cache, never under a lock of the library.  It may
 * call into the cache (but memento_cache_free).
 */
typedef void (*memento_destroy_fn)(void *obj, void *ctx);

typedef struct memento_class_desc {
	const char *name;           /* required, unique within its cache; copied */
	memento_key_fn key;         /* required: builds the identity of args */
	memento_create_fn create;   /* required: 0, or a negative error passed through unchanged */
	memento_destroy_fn destroy; /* optional: called exactly once per created object */
	void *ctx;                  /* handed to the three callbacks */
} memento_class_desc;

/*
 * Where a cache gets its memory.  alloc returns `size` bytes aligned to
 * `align` (a power of two, at most 64), or NULL when it has none; free takes
 * back a pointer that alloc returned, with the same size.  Both get `state`.
 * Threads: any thread that uses the cache calls them, concurrently, sometimes
 * while holding one of the cache's locks, so they must be thread-safe, must
 * not block for long and must not call into mementos.  Everything a cache
 * owns goes through them: the cache, its table, classes, entries, per-thread
 * records and counters, and temporary arrays.  Only the one record per thread
 * that all caches share comes from malloc.  A child of fork() that uses the
 * cache calls them too, so they must work there as malloc does.
 */
typedef struct memento_allocator {
	void *(*alloc)(size_t size, size_t align, void *state);
	void (*free)(void *ptr, size_t size, void *state);
	void *state;
} memento_allocator;

/*
 * Cache options.  Start from MEMENTO_CACHE_OPTIONS_INIT so that `size` is set:
 * the library reads only the fields that the caller's header knew about.
 */
typedef struct memento_cache_options {
	size_t size;              /* sizeof(memento_cache_options), set by the initializer */
	size_t initial_capacity;  /* entries to size the table for; 0: a small default;
	                             at most MEMENTO_CAPACITY_PER_SHARD_MAX per shard */
	unsigned int shards;      /* writer shards, rounded up to a power of two, at most
	                             MEMENTO_SHARDS_MAX; 0: MEMENTO_SHARDS_DEFAULT */
	uint64_t seed;            /* hash seed; 0: a random seed per cache */
	memento_allocator allocator; /* both functions, or neither: malloc and free */
} memento_cache_options;

#define MEMENTO_SHARDS_DEFAULT 16
#define MEMENTO_SHARDS_MAX 1024
/* The most classes one cache holds (an entry keeps its class in 15 bits). */
#define MEMENTO_CLASSES_MAX 32768
#define MEMENTO_CAPACITY_PER_SHARD_MAX ((size_t)1 << 29)
#define MEMENTO_CACHE_OPTIONS_INIT { sizeof(memento_cache_options), 0, 0, 0, { 0, 0, 0 } }

/*
 * How long a class's objects live.
 *
 * MEMENTO_LIFETIME_CACHE (the default): until memento_cache_free, even if
 * forgotten; a pointer from a get is valid as long as the cache is.
 *
 * MEMENTO_LIFETIME_GUARDED: an object that is forgotten, evicted, expired
 * or replaced by a refresh is destroyed once no guard that might have seen
 * it is still held and no memento_ref holds it.  Gets, get_until and peeks
 * of such a class work only inside memento_guard_enter/leave of its cache
 * (else -EPERM), and what they return stays valid until the calling
 * thread's outermost memento_guard_leave.  memento_get_ref works anywhere.
 */
typedef enum memento_lifetime {
	MEMENTO_LIFETIME_CACHE = 0,
	MEMENTO_LIFETIME_GUARDED = 1,
} memento_lifetime;

/* The weight of one object (bytes, say) for max_weight; called once per
 * object, after create, outside every lock.  0 counts as 1. */
typedef uint64_t (*memento_weigh_fn)(const void *obj, void *ctx);

/* ---- persistence: stores, encoders ------------------------------------------ */

/*
 * A store keeps results across restarts and shares them between the
 * processes of one machine: an LMDB environment in a directory, opened by
 * memento_store_open and named in the options of the classes it persists.
 * A store on a Redis server (a redis:// URI) shares them between machines,
 * with one computation per result across all of them; an LMDB store in
 * front of it (memento_store_options.next) serves repeats locally.
 */
typedef struct memento_store memento_store;

/* Store flags. */
#define MEMENTO_STORE_READONLY 1u /* read results, never write: a class computes
                                     what is missing or stale and keeps it in
                                     memory only (each counted in store_errors).
                                     LMDB still writes its reader table
                                     (lock.mdb) unless the filesystem is
                                     read-only */
#define MEMENTO_STORE_NOSYNC 2u   /* commit without fsync: a crash of the machine
                                     (not of a process) may lose the latest
                                     results, never corrupt older ones */

/* Start from MEMENTO_STORE_OPTIONS_INIT so that `size` is set. */
typedef struct memento_store_options {
	size_t size;        /* sizeof(memento_store_options), set by the initializer */
	uint64_t map_size;  /* initial map size in bytes; 0: 64 MiB.  The map
	                       grows (doubling) when it fills */
	unsigned int flags; /* MEMENTO_STORE_*; 0: durable, read-write */
	uint64_t timeout_ns; /* a Redis store's bound on connecting and on each
	                        command; 0: 1 s */
	memento_store *next; /* the next tier, or NULL: on a miss here, look
	                        there; a hit there fills this store.  Typically
	                        an LMDB store with a Redis store as next.  It
	                        must stay open while this one is; at most 4
	                        tiers in all */
	uint64_t lease_ns;   /* a Redis store's lease: how long a computation
	                        holds its key before others take it over if its
	                        holder stops renewing (renewed every lease_ns / 3
	                        while its creating get holds it); 0: 30 s; at
	                        least twice timeout_ns (else -EINVAL): a
	                        renewal on an open connection then lands in
	                        time; one that must reconnect (connect, AUTH,
	                        SELECT, the command) needs 6 timeouts */
} memento_store_options;

#define MEMENTO_STORE_OPTIONS_INIT { sizeof(memento_store_options), 0, 0, 0, NULL, 0 }

/*
 * A growing byte buffer that an encode callback appends to.
 */
typedef struct memento_buf memento_buf;

/*
 * Appends len bytes at data to buf (data may be NULL when len is 0).
 * Returns 0, -EINVAL (buf NULL, or data NULL with len > 0) or -ENOMEM.
 * Threads: the thread running the encode callback that received buf.
 * Blocks: no.
 */
MEMENTO_API int memento_buf_append(memento_buf *buf, const void *data, size_t len);

/*
 * Turns an object into bytes for the store.  Returns 0, or a negative
 * error: the object is then kept in memory only (counted in store_errors).
 * Runs outside every lock of the library and every store transaction.
 */
typedef int (*memento_encode_fn)(const void *obj, memento_buf *out, void *ctx);

/*
 * Builds an object from the bytes an encode made, into *obj; the bytes are
 * valid only during the call.  Returns 0, or a negative error: the record
 * is then treated as stale (counted in store_errors) and create runs.  The
 * object it makes is the class's like any other: destroy gets it.  Runs
 * inside a read transaction of an LMDB store (for a Redis store, on the
 * reply, with cancellation off), outside every lock of the cache: it must
 * not block for long nor call into mementos.
 */
typedef int (*memento_decode_fn)(void **obj, const void *data, size_t len, void *ctx);

/*
 * Asked by a get that waits for another thread's creation of args (the
 * args that get was given), every interrupt_every_ns of the wait, whether
 * to stop waiting: 0 goes on; a negative errno ends that get with it, and
 * any other value with -EINTR.  The creation goes on and later gets get
 * its object; nothing is counted beyond the get's miss and wait.  For a
 * waiter that must answer a signal or a shutdown (Python's Ctrl-C).  Not
 * asked by a creator, nor during a class's store waits for another
 * process (those are bounded by the store's timeouts), nor on hits.
 * memento_get_many asks for each key it waits on, one after the other: an
 * answer that uses up its reason (a signal handled) ends only that key's
 * wait.
 * Threads: the waiting thread, outside every lock of the cache; it may call
 * into mementos (a get of another key, a forget), like create, and may be
 * left by cancellation, pthread_exit or a C++ exception (the get then lets
 * go of the creation it waited on): it is the one place where a waiting
 * get can be cancelled.  It may fork: in the child the get creates the
 * object itself, since the thread it waited on is not there.
 */
typedef int (*memento_interrupt_fn)(const void *args, void *ctx);

/*
 * Class options.  Start from MEMENTO_CLASS_OPTIONS_INIT so that `size` is
 * set.  Bounds, expiry and refresh need MEMENTO_LIFETIME_GUARDED (a CACHE
 * class could free nothing by removing); failure_ttl_ns works with both.
 *
 * Bounds are kept per writer shard: each shard holds at most
 * ceil(max_entries / shards) ready objects of the class (and at most
 * ceil(max_weight / shards) of weight), so the class holds at most
 * max_entries plus one per shard, plus the creations in flight, plus the
 * removed objects still seen by guards or references.  Keys spread over
 * the shards by hash: a class may evict before it holds max_entries, and
 * an object heavier than its shard's share of max_weight is evicted as
 * soon as it is published (its caller still gets it).  Small bounds want
 * few shards (memento_cache_options.shards).
 *
 * Durations are in ns and measured with CLOCK_MONOTONIC_COARSE, whose
 * resolution (clock_getres; 1 to 4 ms on common kernels) they may be late
 * by.  A class that neither expires nor refreshes never reads the clock;
 * one that does reads it once per get, and once more when it creates, to
 * date the new object.
 */
typedef struct memento_class_options {
	size_t size;               /* sizeof(memento_class_options), set by the initializer */
	memento_lifetime lifetime;
	uint64_t max_entries;      /* 0: no bound on the number of objects */
	uint64_t max_weight;       /* 0: no bound on their total weight; needs weigh */
	memento_weigh_fn weigh;    /* the weight of an object; only with max_weight */
	uint64_t expire_after_ns;  /* an object this old is never returned: the next
	                              get creates anew, once; 0: never */
	uint64_t refresh_after_ns; /* an object this old (and not expired) is rebuilt by
	                              the first get that sees it, which runs create and
	                              returns the new object, while other gets go on
	                              returning the old one; a failed refresh keeps
	                              the old object and is retried this long after;
	                              0: never; must be below expire_after_ns */
	uint64_t failure_ttl_ns;   /* a failed create's error is returned by every
	                              get of that key for this long, without calling
	                              create; 0: failures are not remembered.  A
	                              creator that died (-EOWNERDEAD) is never
	                              remembered: it says nothing about the key */

	/* Persistence (see "persistence" below); all optional but encode and
	 * decode, which a store needs. */
	memento_store *store;       /* persist this class's results; NULL: memory only */
	const char *version;        /* code version, part of every result's
	                               fingerprint; copied; NULL: "" */
	memento_key_fn fingerprint; /* the inputs' contents, built with memento_key_*
	                               and memento_key_result; NULL: none */
	memento_encode_fn encode;   /* required with a store */
	memento_decode_fn decode;   /* required with a store */
	unsigned int flags;         /* MEMENTO_CLASS_* */

	/* Waits that can be cut short (see memento_interrupt_fn). */
	memento_interrupt_fn interrupt; /* NULL: a wait ends with the creation */
	uint64_t interrupt_every_ns;    /* how often a wait asks; 0: every 100 ms;
	                                   under 1 ms: every 1 ms; needs interrupt */
} memento_class_options;

/*
 * Class flags.
 *
 * MEMENTO_CLASS_REVALIDATE: every get (and get_until, get_ref) calls the
 * fingerprint callback, before looking the key up, and an object made for
 * another fingerprint is not returned: the get handles it as a forget and
 * makes the object anew (from the store, or by create), once however many
 * gets see the change.  Needs a fingerprint callback; not with
 * refresh_after_ns.  Peeks do not revalidate (they never call callbacks
 * other than key).  Without it, a memory hit never calls the fingerprint
 * callback.
 */
#define MEMENTO_CLASS_REVALIDATE 1u

#define MEMENTO_CLASS_OPTIONS_INIT \
	{ sizeof(memento_class_options), MEMENTO_LIFETIME_CACHE, 0, 0, 0, 0, 0, 0, \
	  0, 0, 0, 0, 0, 0, 0, 0 }

/* Per-class counters, summed over threads; see memento_class_stats(). */
typedef struct memento_stats {
	uint64_t hits;      /* gets and peeks that found a ready object */
	uint64_t misses;    /* gets that found no ready object: they created, waited, or
	                       failed before either (-EDEADLK, -ENOMEM) */
	uint64_t creations; /* create callbacks run */
	uint64_t failures;  /* of those, returned an error or were cancelled */
	uint64_t waits;     /* gets that waited on another thread's creation (coalesced) */
	uint64_t timeouts;  /* gets that returned -ETIMEDOUT */
	uint64_t deadlocks; /* gets that detected a deadlock (recursion or a cycle) and
	                       returned -EDEADLK; not those passing on a create's own */
	uint64_t evictions;   /* objects removed to keep the class within its bounds */
	uint64_t expirations; /* objects removed because they were too old */
	uint64_t refreshes;   /* objects replaced by a refresh (its create is counted
	                         in creations, a failed one in failures) */
	uint64_t destroyed;   /* objects destroyed before memento_cache_free (guarded
	                         classes).  Once quiet (no creation in flight, after
	                         memento_cache_barrier with no guard or reference
	                         held): creations + store_hits = live + destroyed +
	                         failures */
	uint64_t store_hits;   /* objects decoded from the store instead of created */
	uint64_t store_stale;  /* records found with another fingerprint: recomputed */
	uint64_t store_writes; /* records written */
	uint64_t store_errors; /* store faults: a record that failed its checksum or
	                          decode, an encode error, a write refused (read-only
	                          store, full disk, a Redis server down); each cost
	                          a computation or a write, never a wrong result */
	uint64_t remote_hits;   /* of store_hits, those read from a Redis store */
	uint64_t remote_waits;  /* creating gets that waited for another process's
	                           lease on a Redis store (another machine's
	                           computation, or another process's) */
	uint64_t remote_errors; /* of store_errors, those of a Redis store: a
	                           server down, slow or refusing, a bad record */
} memento_stats;

/*
 * The library's error codes: negative errno values.  A create or key callback
 * may return any other negative errno; it is passed through unchanged.
 */
#define MEMENTO_ERRNO_MAP(XX)                                                        \
	XX(EINVAL, "invalid argument")                                               \
	XX(ENOMEM, "out of memory")                                                  \
	XX(EEXIST, "a class with this name already exists in the cache")             \
	XX(E2BIG, "key larger than MEMENTO_KEY_MAX")                                 \
	XX(ENOSPC, "the cache already holds MEMENTO_CLASSES_MAX classes")            \
	XX(ENOENT, "no object for this key")                                         \
	XX(EINPROGRESS, "the object for this key is being created")                  \
	XX(EDEADLK, "waiting would deadlock: the key is being created by this "      \
	            "thread or by a thread waiting on it")                            \
	XX(ETIMEDOUT, "the deadline passed before the creation finished")            \
	XX(EOWNERDEAD, "the creating thread died (cancelled or exited) inside create") \
	XX(EPERM, "a guarded class was used outside a guard of its cache")          \
	XX(EBUSY, "this store directory is already open in this process")           \
	XX(EPROTO, "the store was written in a format this library does not read")   \
	XX(ENOTSUP, "the Redis server is a cluster node: Redis Cluster is not supported")

/* ---- version and errors ------------------------------------------------- */

/*
 * The version of the library linked at run time, as MEMENTO_VERSION_NUMBER.
 * Threads: any.  Blocks: no.
 */
MEMENTO_API unsigned int memento_version(void);

/*
 * A description of err (a negative errno, or 0).  Unknown codes, such as a
 * callback's own, get the C library's description.
 * Threads: any.  Blocks: no.  Lifetime: static; never free it.
 */
MEMENTO_API const char *memento_strerror(int err);

/*
 * The symbolic name of err, such as "EDEADLK"; "UNKNOWN" when not one of
 * MEMENTO_ERRNO_MAP.
 * Threads: any.  Blocks: no.  Lifetime: static.
 */
MEMENTO_API const char *memento_err_name(int err);

/* ---- caches --------------------------------------------------------------- */

/*
 * Creates an empty cache with default options.  Returns 0, -EINVAL (cache is
 * NULL) or -ENOMEM.
 * Threads: any.  Blocks: no.  Lifetime: until memento_cache_free().
 */
MEMENTO_API int memento_cache_new(memento_cache **cache);

/*
 * Creates an empty cache with options (NULL: defaults).  Returns 0, -EINVAL
 * (cache NULL, options->size too small, shards above MEMENTO_SHARDS_MAX,
 * initial_capacity above MEMENTO_CAPACITY_PER_SHARD_MAX per shard, or only one
 * of the allocator's two functions set) or -ENOMEM.  The table grows past initial_capacity as needed.
 * Threads: any.  Blocks: no.  Lifetime: until memento_cache_free().
 */
MEMENTO_API int memento_cache_new_with(memento_cache **cache, const memento_cache_options *options);

/*
 * Destroys every object the cache created and has not destroyed yet
 * (forgotten ones too, and those that references still hold), newest
 * first, then the classes and the cache.  The order is exact while the cache
 * has published fewer than 2^32 objects.  NULL is a no-op.
 * Threads: one, after every other use of this cache and its classes has
 * returned; never from a callback of this cache, destroy included (a
 * destroy callback must not call into the cache being freed).  Blocks: no.
 */
MEMENTO_API void memento_cache_free(memento_cache *cache);

/*
 * The process-wide cache, created on first call (like the originals' single
 * global cache).  Returns NULL only if that first creation ran out of memory;
 * a later call tries again.  It is never freed.
 * Threads: any.  Blocks: only while another thread creates it.
 * Lifetime: the process.
 */
MEMENTO_API memento_cache *memento_default_cache(void);

/*
 * The number of entries in the cache: ready objects plus creations in
 * flight plus failures that classes remember; forgotten, evicted or expired
 * objects are not counted.  Weakly consistent while other
 * threads insert.  Returns 0 for NULL.
 * Threads: any.  Blocks: no.
 */
MEMENTO_API size_t memento_count(memento_cache *cache);

/* ---- classes ---------------------------------------------------------------- */

/*
 * Registers a memoized class in cache (the metaclass of the originals).
 * desc is copied, name included.  Returns 0, -EINVAL (a NULL argument, or
 * desc without name, key or create), -EEXIST (name taken in this cache),
 * -ENOSPC (the cache has MEMENTO_CLASSES_MAX classes) or -ENOMEM.
 * Threads: any, concurrently with gets on other classes.  Blocks: briefly, on
 * the cache's class lock.  Lifetime: *cls lives until memento_cache_free().
 */
MEMENTO_API int memento_class_new(memento_cache *cache, const memento_class_desc *desc,
                                  memento_class **cls);

/*
 * memento_class_new() with options (NULL: the defaults, which are what
 * memento_class_new gives).  Returns what memento_class_new returns, or
 * -EINVAL for options that are wrong: a `size` below this header's struct,
 * or above it with a nonzero byte this library does not know; a lifetime
 * that is not one of memento_lifetime; bounds, expiry or refresh on a
 * MEMENTO_LIFETIME_CACHE class; max_weight without weigh or weigh without
 * max_weight; refresh_after_ns not below a nonzero expire_after_ns; a
 * store without encode or decode, or with refresh_after_ns; unknown
 * flags; MEMENTO_CLASS_REVALIDATE without a fingerprint callback or with
 * refresh_after_ns.
 * Threads, Blocks, Lifetime: as memento_class_new().
 */
MEMENTO_API int memento_class_new_with(memento_cache *cache, const memento_class_desc *desc,
                                       const memento_class_options *options,
                                       memento_class **cls);

/*
 * The class registered under name in cache.  Returns 0, -EINVAL or -ENOENT.
 * Threads: any.  Blocks: briefly, on the cache's class lock.
 * Lifetime: until memento_cache_free().
 */
MEMENTO_API int memento_class_find(memento_cache *cache, const char *name, memento_class **cls);

/*
 * The class's name and cache.  NULL for a NULL class.
 * Threads: any.  Blocks: no.  Lifetime: until memento_cache_free().
 */
MEMENTO_API const char *memento_class_name(const memento_class *cls);
MEMENTO_API memento_cache *memento_class_cache(const memento_class *cls);

/*
 * Sums the class's counters over every thread that used it.  Each counter is
 * exact once the threads are quiet; while they run the sum is a recent value
 * of each counter, not one snapshot of all.  Returns 0 or -EINVAL.
 * Threads: any.  Blocks: no.
 */
MEMENTO_API int memento_class_stats(const memento_class *cls, memento_stats *stats);

/* ---- getting objects ------------------------------------------------------- */

/*
 * Returns in *obj the object for the identity of args, creating it if absent.
 * Concurrent callers with the same identity get the same pointer; create runs
 * once.  Returns 0; the key callback's error; create's error (the caller that
 * ran it and every caller that was waiting on that attempt get the same one;
 * the next call tries again); -EDEADLK (the key is being created by this
 * thread, or waiting would close a cycle of threads waiting on each other);
 * -EOWNERDEAD (the creator was cancelled or exited inside create); -E2BIG;
 * -EINVAL; -ENOMEM.  *obj is written only on success.
 * Threads: any, concurrently with everything but memento_cache_free().
 * Blocks: a hit never blocks; a miss runs create or sleeps until another
 * thread's create of the same key finishes.  That sleep is not a
 * cancellation point (a class's interrupt callback, which it calls, may
 * hold one).  A creating get of a class with a store also
 * reads and writes the store and may wait for another process's
 * creation of the key (see memento_store_open): its waits for a Redis
 * lease nap in nanosleep, a cancellation point.  A caller waiting with a deadline counts as waiting
 * for deadlock detection: closing a cycle through it gives -EDEADLK.
 * A guarded class (MEMENTO_LIFETIME_GUARDED) returns -EPERM outside a
 * guard of its cache; an expired object is never returned (this get then
 * creates anew); a stale one is rebuilt by this get if no other get is,
 * else returned; a failure the class remembers returns its error without
 * calling create.
 * Lifetime: *obj stays valid until memento_cache_free(), even if forgotten;
 * for a guarded class, until this thread's outermost memento_guard_leave().
 */
MEMENTO_API int memento_get(memento_class *cls, const void *args, void **obj);

/*
 * memento_get() that stops waiting at deadline (absolute, CLOCK_MONOTONIC;
 * NULL waits forever) and then returns -ETIMEDOUT.  The deadline bounds only
 * waits: for another thread's creation (which goes on, and later callers
 * get its object), and, for a class with a store, for another process's
 * creation of the key (an LMDB key lock: checked every 1 ms; a Redis
 * lease: after each nap, at most 25 ms, and the commands between naps,
 * each bounded by the store's timeout_ns; the gets of this process that
 * were waiting on this one go on waiting).  A caller that becomes the
 * creator runs create to its end.  Returns what memento_get() returns, or -ETIMEDOUT, or -EINVAL
 * for a deadline with tv_nsec outside [0, 1e9).
 * Threads, Blocks, Lifetime: as memento_get(), sleeping at most until deadline.
 */
MEMENTO_API int memento_get_until(memento_class *cls, const void *args, void **obj,
                                  const struct timespec *deadline);

/*
 * memento_get() for each of args[0..n): objs[i] gets the object of args[i],
 * or NULL when that get failed, and rcs[i] (when rcs is not NULL) what
 * memento_get() would have returned for it.  Returns 0 when every get
 * succeeded, else the error of the first that failed; -EINVAL (nothing
 * done) when cls is NULL, or n > 0 and args or objs is NULL.
 * Faster than n calls when many keys are hits on a table larger than the
 * CPU's caches: it runs the key callbacks of a chunk of keys (32) first,
 * then looks them all up, so that their cache misses overlap, and
 * prefetches the objects it found.  Misses are then settled one by one,
 * in index order, exactly as memento_get() does (create or wait), after
 * every hit of their chunk.  Stats count each key as memento_get() would.
 * Threads: any, concurrently with everything but memento_cache_free().
 * Blocks: as memento_get() for each miss.  Uses about 9 KiB of stack (a
 * call from inside a callback adds its own).
 * Lifetime: each object as one from memento_get().
 */
MEMENTO_API int memento_get_many(memento_class *cls, const void *const args[], size_t n,
                                 void *objs[], int rcs[]);

/*
 * Returns in *obj the ready object for args without creating or waiting.
 * Returns 0, -ENOENT (none, expired, or a failure that its class
 * remembers), -EINPROGRESS (a creation is in flight), the key callback's
 * error, -E2BIG, -EINVAL, -ENOMEM, or -EPERM (a guarded class outside a
 * guard).  A stale object is returned, not rebuilt.
 * Threads: any, concurrently with everything but memento_cache_free().
 * Blocks: no.  Lifetime: as memento_get().
 */
MEMENTO_API int memento_peek(memento_class *cls, const void *args, void **obj);

/*
 * Unlinks the entry for args so that calls that start after this returns
 * build a fresh object.  The old object is not destroyed now: pointers to it
 * stay valid until memento_cache_free(), which destroys it, or, for a
 * guarded class, until no guard that might have seen it is held and no
 * reference holds it.  A creation in flight is detached: its creator and
 * the callers already waiting on it still get its result, which is then
 * retired, never cached.  A failure the class remembers is forgotten too.
 * Returns 0, -ENOENT (absent), the key callback's error, -E2BIG, -EINVAL
 * or -ENOMEM.  Works inside or outside a guard.
 * Threads: any, concurrently with everything but memento_cache_free().
 * Blocks: briefly, on the key's writer shard lock; outside a guard it may
 * run destroy callbacks of objects that are due.
 */
MEMENTO_API int memento_forget(memento_class *cls, const void *args);

/*
 * Calls visit for each ready object in the cache, with its class, until visit
 * returns nonzero; returns that value, 0 when every object was visited,
 * -EINVAL, or -ENOMEM.  Weakly consistent: an object that is created or
 * forgotten during the walk may or may not be visited; one that stays ready
 * the whole time is visited once.  The walk gathers each shard's objects
 * first and calls visit outside every lock and read-side section, so visit
 * may call any function of the library but memento_cache_free(), and may
 * block.
 * Threads: any, concurrently with everything but memento_cache_free().
 * Blocks: no (beyond what visit does).  Allocates a shard's worth of
 * pointers at a time.
 */
typedef int (*memento_visit_fn)(memento_class *cls, void *obj, void *ctx);
MEMENTO_API int memento_foreach(memento_cache *cache, memento_visit_fn visit, void *ctx);

/* ---- lifetimes: guards, references, reclamation --------------------------- */

/*
 * Enters a guard of cache on the calling thread: until the matching
 * memento_guard_leave, every object a get, get_until or peek returns (of
 * any class of cache) stays valid, even if it is forgotten, evicted,
 * expired or refreshed meanwhile.  Guards nest; only the outermost one
 * costs anything (one exchange on the thread's own record: no shared
 * write), and a thread may hold guards of several caches.  Returns 0,
 * -EINVAL (cache NULL) or -ENOMEM (the thread's first use of cache).
 *
 * A guard delays the destroy of every object of the cache removed while it
 * is held, by any thread, until it ends: hold one per request, not for the
 * life of a thread.  The library never waits for a guard to end, but
 * memento_cache_barrier does: a thread must not hold a guard of a cache
 * while it waits for another thread that is in memento_cache_barrier of
 * that cache (as with liburcu's read-side sections and synchronize_rcu).
 * A thread that exits inside a guard leaves it.
 * Threads: the calling thread's guard.  Blocks: no.
 */
MEMENTO_API int memento_guard_enter(memento_cache *cache);

/*
 * Leaves the calling thread's innermost guard of cache.  Leaving the
 * outermost one ends what it kept valid, and destroys objects that are
 * due (see memento_destroy_fn).  A leave without an enter on this thread
 * is ignored; NULL is a no-op.
 * Threads: the thread that entered.  Blocks: only in destroy callbacks.
 */
MEMENTO_API void memento_guard_leave(memento_cache *cache);

/*
 * A counted reference to an object: it keeps the object valid, inside or
 * outside any guard, on any thread, until it is released.  For holding an
 * object across requests.
 */
typedef struct memento_ref memento_ref;

/*
 * As memento_get(), inside or outside a guard (it never returns -EPERM),
 * but returns a counted reference in *ref instead of the object.  Every
 * successful call needs its own memento_ref_release().  For a class that
 * is not guarded the reference keeps nothing (its objects live until
 * memento_cache_free) but must be released all the same.
 * Threads, Blocks: as memento_get(); outside a guard it may run destroy
 * callbacks of objects that are due.
 * Lifetime: *ref until memento_ref_release(); never past
 * memento_cache_free().
 */
MEMENTO_API int memento_get_ref(memento_class *cls, const void *args, memento_ref **ref);

/*
 * The object of a reference (NULL for NULL).
 * Threads: any.  Blocks: no.  Lifetime: as the reference.
 */
MEMENTO_API void *memento_ref_object(const memento_ref *ref);

/*
 * Releases a reference; NULL is a no-op.  Releasing one twice is undefined.
 * Threads: any (not only the one that got it).  Blocks: outside a guard
 * of the cache it may run destroy callbacks of objects that are due.
 */
MEMENTO_API void memento_ref_release(memento_ref *ref);

/*
 * Returns once every object of cache that was removed (forgotten, evicted,
 * expired, replaced) before this call, and that no reference holds, has
 * been destroyed: it waits for the guards that other threads held when it
 * was called to end, and destroys what is due.  Destroys another thread
 * already started may still be running when it returns.  Called inside a
 * guard of cache it could wait for nothing and destroy nothing, and
 * returns at once.  NULL is a no-op.
 * Threads: any, concurrently with everything but memento_cache_free().
 * Blocks: until those guards end (sleeping in short naps), and in
 * destroy callbacks.
 */
MEMENTO_API void memento_cache_barrier(memento_cache *cache);

/* ---- key fields ------------------------------------------------------------ */

/*
 * Append one typed field to a key, inside a key callback.  Fields are typed
 * and length-prefixed, so ("ab","c") differs from ("a","bc"), and u64 1, i64 1
 * and f64 1.0 are three different keys.  f64 treats -0.0 as 0.0 and every NaN
 * as one value.  str stops at the NUL; bytes takes n bytes (p may be NULL when
 * n is 0); ptr keys on the address itself.  Returns 0, -EINVAL (NULL key or
 * string) or -E2BIG (the key would pass MEMENTO_KEY_MAX).  An error sticks to
 * the key: the get that called the key callback fails with it even if the
 * callback returns 0.
 * Threads: the thread running the key callback that received key.
 * Blocks: no.
 */
MEMENTO_API int memento_key_u64(memento_key *key, uint64_t value);
MEMENTO_API int memento_key_i64(memento_key *key, int64_t value);
MEMENTO_API int memento_key_f64(memento_key *key, double value);
MEMENTO_API int memento_key_str(memento_key *key, const char *s);
MEMENTO_API int memento_key_bytes(memento_key *key, const void *p, size_t n);
MEMENTO_API int memento_key_ptr(memento_key *key, const void *p);

/* ---- persistence ------------------------------------------------------------ */

/*
 * A class with a store (memento_class_options.store) persists its results.
 * A result's identity is (class name, key bytes); its fingerprint is the
 * XXH3-128 of the class's version and the fields its fingerprint callback
 * appends.  On a memory miss, the creating get computes the fingerprint
 * and reads the store: a record with this fingerprint is decoded and
 * becomes the object, without create (store_hits); a record with another
 * is stale (store_stale): create runs and its result replaces the record.
 * A memory hit touches neither the fingerprint nor the store.
 *
 * One computation per key across the processes of one machine: a creating
 * get that finds no fresh record takes a lock of the key (an OFD byte-range
 * lock on the file "keys.lock" in the store's directory), reads again, and
 * only then creates, writes and commits; the lock goes after the commit.
 * Gets for the key in other processes sleep in the kernel meanwhile and
 * then read the new record.  The kernel drops the lock of a process that
 * dies, so a creator killed inside create costs the others only its
 * computation: a process waiting for the key takes it as soon as the
 * kernel has closed the dead one's files (about 1 ms after kill -9 in the
 * tests), and creates it.  A deadline
 * (memento_get_until) bounds that wait too; it is checked every 1 ms.
 * Limits: one machine and a local filesystem (not NFS); a cycle of keys
 * whose creations wait on each other across processes is not detected
 * (within a process it is: -EDEADLK).
 *
 * Key fields made with memento_key_ptr mean nothing in another process: a
 * persisted class's get with such a key, or with such a field in its
 * fingerprint, returns -EINVAL.
 */

/*
 * Opens (creating if needed) the store in directory path: its parent must
 * exist; the directory is made if missing (not with READONLY).  options
 * NULL: defaults.  Returns 0; -EINVAL (a NULL argument, options->size too
 * small, unknown flags); -EBUSY (this directory is already open in this
 * process: share that store instead); -ENOENT, -ENOTDIR, -EACCES, -EROFS
 * (the path); -EPROTO (a store of another format); -EIO (not a store, or
 * damaged); -ENOMEM.
 * After fork(), a child that uses a store inherited from its parent
 * reopens it by itself on first use (LMDB environments must not cross a
 * fork); the child's own memento_store_open of that directory is -EBUSY,
 * the inherited store being open in it too.
 *
 * "lmdb:" before a path names the same directory.
 *
 * A path of the form redis://[[user]:password@]host[:port][/db] (user and
 * password percent-encoded) opens a store on that Redis server instead:
 * records in the same format and checked the same way, under the keys
 * "mementos:" class ":{" 48 hex digits "}", each key's lease under the
 * same name plus ":lease" (the braces are a cluster hash tag: a record
 * and its lease share a slot).  The open connects once, and fails with
 * -ECONNREFUSED, -ETIMEDOUT, -EACCES (credentials refused) or -ENOTSUP (a
 * Redis Cluster node: not supported; hiredis 0.14 cannot follow its
 * redirections).  map_size and NOSYNC mean nothing there.  Redis stores
 * are not registered by address: two opens give two stores.
 *
 * One computation per key across machines: a creating get that finds no
 * fresh record in any tier takes the key's lease on each Redis tier
 * (set when absent for lease_ns, with a random token), reads that tier
 * again, and only then creates; a thread of the store renews the lease
 * every lease_ns / 3 while the get holds it, and the holder deletes it
 * after its writes, only while it is still its own.  A get that finds the
 * lease taken (remote_waits) polls the record, napping 1 ms, then 1.5
 * times longer each time up to lease_ns / 10 (at most 25 ms), until a
 * fresh record comes (a hit), the lease is free (released without a
 * record, or expired: it takes it and creates), or the server fails it
 * (it creates without a lease).  A bad record meanwhile does not end the
 * wait: the holder overwrites it.  A holder killed with kill -9 costs the
 * others lease_ns and one nap.  A
 * holder that stalls for longer than lease_ns without renewing (stopped,
 * or cut off from the server) lets another take over: both compute, both
 * write a whole record of the same identity and fingerprint, and each
 * reader gets one of the two, never a mix (every record is checked
 * whole).  memento_get_until's deadline bounds the wait (-ETIMEDOUT).
 *
 * A server that is down or slow: every step of a connection (connect,
 * AUTH, SELECT) and every command is bounded by options->timeout_ns
 * (default 1 s); after one times out, the store fails its gets' commands
 * at once for 5 timeouts (at least 100 ms, at most 30 s), so that a get
 * pays one timeout, not one per command.  Meanwhile gets compute what no
 * tier holds, locally and without a lease (remote_errors), and go on
 * being served from memory and the LMDB tiers; the renewer goes on
 * renewing (and releasing what a get could not).  A restarted server is
 * found again by itself: a pooled connection it closed fails once and
 * the command runs again on a new one.  Limits: resolving a host name is
 * not bounded by the timeout (use an address, or a local resolver), nor
 * is a read that a signal interrupts again and again (hiredis retries on
 * EINTR); leases need a server that keeps keys with a TTL (an eviction
 * policy that evicts them, or a read-only replica, lets machines compute
 * a key each).
 *
 * Tiers: options->next names the store to look in on a miss here (at
 * most 4 tiers).  A hit there is copied into this store (into an LMDB
 * store by a thread of that store, in the background, many copies per
 * transaction: the get does not wait for the write; the copies land while
 * the store stays open, at memento_store_flush and at memento_store_close;
 * one lost to a crash or to an exit without either costs a later remote
 * read; store_writes counts it when queued);
 * a creation is written to every tier, the farthest first.  So an LMDB store with a
 * Redis store as next serves repeats from the machine's disk and shares
 * new results with the other machines.  next must stay open (and not be
 * closed) while this store is.
 * Threads: any.  Blocks: on the filesystem, and briefly on the store's
 * writer lock when the store is new; a Redis store, on its server for at
 * most timeout_ns per command (connect, AUTH, SELECT, INFO).
 * Lifetime: *store until memento_store_close(); a Redis store keeps a
 * thread (the lease renewer, started by its first lease) until then, and
 * an LMDB store with copies from a farther tier one (their writer, started
 * by the first copy).
 */
MEMENTO_API int memento_store_open(memento_store **store, const char *path,
                                   const memento_store_options *options);

/*
 * Waits until the copies from farther tiers queued for store and for its
 * next tiers (see memento_store_open, "Tiers") are written.  For a process
 * about to exit without closing, or one that wants another process to
 * find them now.  NULL is a no-op.
 * Threads: any.  Blocks: until the store's writer is idle (copies queued
 * meanwhile by other threads are waited for too).
 */
MEMENTO_API void memento_store_flush(memento_store *store);

/*
 * Closes a store.  NULL is a no-op.  Every cache with a class that uses
 * it, and every store that names it as next, must be freed or closed
 * first: closing it earlier is undefined (debug builds abort with an
 * assertion).
 * Threads: one, after every use of the store has returned.  Blocks: an
 * LMDB store's, until the copies queued for it are written; a Redis
 * store's, until its lease renewer has stopped (at most one round
 * of renewals and releases, each bounded by timeout_ns per step of its
 * connection).
 */
MEMENTO_API void memento_store_close(memento_store *store);

/*
 * Inside a fingerprint callback: declares that this result depends on
 * cls's result for args.  Gets it (creating it if needed, as memento_get,
 * inside or outside a guard) and appends its output digest: the XXH3-128
 * of its encoded bytes as stored.  So when cls's result is recomputed,
 * this one is stale exactly when those bytes changed (early cutoff).  For
 * a class without a store, or when its record cannot be read (a read-only
 * or full store), it appends cls's identity, version and fingerprint
 * instead: stale whenever that input changes.  Returns 0, what memento_get
 * returns, or what memento_key_* returns; an error sticks to key, as
 * theirs do.
 * Threads, Blocks: as memento_get().
 */
MEMENTO_API int memento_key_result(memento_key *key, memento_class *cls, const void *args);

#ifdef __cplusplus
}
#endif

#endif /* MEMENTOS_H */
