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

/* Destroys an object; called exactly once per created object. */
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
	XX(EOWNERDEAD, "the creating thread died (cancelled or exited) inside create")

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
 * Destroys every object the cache ever created (forgotten ones too), newest
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
 * flight; forgotten objects are not counted.  Weakly consistent while other
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
 * cancellation point.  A caller waiting with a deadline counts as waiting
 * for deadlock detection: closing a cycle through it gives -EDEADLK.
 * Lifetime: *obj stays valid until memento_cache_free(), even if forgotten.
 */
MEMENTO_API int memento_get(memento_class *cls, const void *args, void **obj);

/*
 * memento_get() that stops waiting at deadline (absolute, CLOCK_MONOTONIC;
 * NULL waits forever) and then returns -ETIMEDOUT.  The deadline bounds only
 * the wait for another thread's creation: the creation goes on and later
 * callers get its object; a caller that becomes the creator runs create to
 * its end.  Returns what memento_get() returns, or -ETIMEDOUT, or -EINVAL
 * for a deadline with tv_nsec outside [0, 1e9).
 * Threads, Blocks, Lifetime: as memento_get(), sleeping at most until deadline.
 */
MEMENTO_API int memento_get_until(memento_class *cls, const void *args, void **obj,
                                  const struct timespec *deadline);

/*
 * Returns in *obj the ready object for args without creating or waiting.
 * Returns 0, -ENOENT (none), -EINPROGRESS (a creation is in flight), the key
 * callback's error, -E2BIG, -EINVAL or -ENOMEM.
 * Threads: any, concurrently with everything but memento_cache_free().
 * Blocks: no.  Lifetime: as memento_get().
 */
MEMENTO_API int memento_peek(memento_class *cls, const void *args, void **obj);

/*
 * Unlinks the entry for args so that calls that start after this returns
 * build a fresh object.  The old object is not destroyed: pointers to it stay
 * valid until memento_cache_free(), which destroys it.  A creation in flight
 * is detached: its creator and the callers already waiting on it still get
 * its result, which is then retired, never cached.  Returns 0, -ENOENT
 * (absent), the key callback's error, -E2BIG, -EINVAL or -ENOMEM.
 * Threads: any, concurrently with everything but memento_cache_free().
 * Blocks: briefly, on the key's writer shard lock.
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

#ifdef __cplusplus
}
#endif

#endif /* MEMENTOS_H */
