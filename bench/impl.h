/*
 * impl.h: what every implementation under benchmark offers the driver.
 *
 * Each implementation is a get-or-create cache of u64 keys with exactly-once
 * creation per key, written the way that library's users normally write it
 * (bench/impl_<name>.c).  They all get the same keys, hash the same 8 key
 * bytes with XXH3 (bench_hash, or mementos' own XXH3 of its key bytes), and
 * build objects with the same function (bench_object_create), so that the
 * only difference measured is the cache.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTOS_BENCH_IMPL_H
#define MEMENTOS_BENCH_IMPL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a creation builds: 32 bytes that remember their key, so that the
 * driver can check that every get returned the object of its own key. */
struct bench_object {
	uint64_t key;
	uint64_t payload[3];
};

/*
 * The one creation function.  Runs the workload's creation cost (nothing, a
 * spin of about 1 us, or a 10 ms sleep for the stampede), allocates the
 * object with malloc, counts the creation, and returns NULL when malloc
 * fails.  Any thread may call it; it blocks only for the configured cost.
 */
struct bench_object *bench_object_create(uint64_t key);

/* Frees an object from bench_object_create and counts the destruction. */
void bench_object_destroy(struct bench_object *obj);

/* XXH3_64bits of the 8 bytes of key: the hash every implementation uses. */
uint64_t bench_hash(uint64_t key);

/* Says that bench_impl.get never creates: the table must be filled with
 * bench_impl.fill before the timed phase, and only workloads that are all
 * hits can run against it (the floor). */
#define BENCH_IMPL_HITS_ONLY 1u

struct bench_impl {
	const char *name;     /* what --impl names: "mementos", "mutex", ... */
	const char *describe; /* one line for --list */
	unsigned flags;       /* BENCH_IMPL_* */

	/* Makes an empty table, not presized.  NULL on failure (message on
	 * stderr).  Called once per table, before any thread starts. */
	void *(*open)(void);

	/* Optional, for a table that bounds itself (NULL: the table keeps every
	 * object until close).  Called instead of open: makes an empty table
	 * that holds at most max_entries objects, plus bound_slack, evicting
	 * others; the next get of an evicted key creates it again.  The driver
	 * picks max_entries from the workload's keys (bench_workload.c, --help)
	 * and adapts its exactly-once checks to the evictions. */
	void *(*open_bounded)(uint64_t max_entries);
	uint64_t bound_slack; /* with open_bounded: objects it may hold past max_entries */
	/* With open_bounded: the objects the table evicted since open, by its
	 * own count.  Called only when no thread is in get or in a batch. */
	uint64_t (*evictions)(void *table);

	/* Optional (NULL when not needed): called by each benchmark thread
	 * before its first get and after its last (liburcu registers here). */
	void (*thread_begin)(void *table);
	void (*thread_end)(void *table);

	/* Optional, both or neither (NULL: no batches): the bounds of a batch
	 * of one thread's gets, as a server's request.  A thread calls
	 * begin_batch before the first get of each batch (--batch gets in the
	 * timed loop and the fill, one get per stampede round) and end_batch
	 * after the last, uses the objects those gets returned only in
	 * between, and never waits or sleeps in between (a get may still wait
	 * for another thread's creation).  begin_batch: 0, or a negative errno
	 * (then the batch does not run and end_batch is not called). */
	int (*begin_batch)(void *table);
	void (*end_batch)(void *table);

	/* Get-or-create: *obj is the one object of key, created by the first
	 * caller with bench_object_create; concurrent callers of the same key
	 * wait for that creation.  0, or a negative errno (then *obj is
	 * unspecified).  Any registered thread, concurrently, inside a batch
	 * when the implementation has them.  The object lives until close, or,
	 * with batches, at least until the batch ends. */
	int (*get)(void *table, uint64_t key, struct bench_object **obj);
	/* Optional (NULL: none): get for each of keys[0..n), n at most
	 * BENCH_BATCH_MAX, objs[i] the object of keys[i]; 0, or a negative
	 * errno when any get failed.  When present, the timed loop gets its
	 * keys through it, --batch keys per call (the fill still uses get). */
	int (*get_many)(void *table, const uint64_t *keys, size_t n, struct bench_object **objs);

	/* Single-threaded insertion before the timed phase.  NULL means get
	 * serves (every cache); the floor, which never creates, has its own. */
	int (*fill)(void *table, uint64_t key);

	/* Entries in the table.  Called only when no thread is in get or in a
	 * batch.  A table that evicts has destroyed every object it evicted
	 * when count returns, so that objects created == destroyed + count(). */
	size_t (*count)(void *table);

	/* Destroys every object with bench_object_destroy and frees the table.
	 * No thread may be in get or registered. */
	void (*close)(void *table);
};

/* Defined by each implementation's file; NULL-free list in bench/impls.c. */
extern const struct bench_impl bench_impl_mementos;
extern const struct bench_impl bench_impl_mementos_many;
extern const struct bench_impl bench_impl_mementos_guarded;
extern const struct bench_impl bench_impl_mementos_bounded;
extern const struct bench_impl bench_impl_floor;
extern const struct bench_impl bench_impl_mutex;
extern const struct bench_impl bench_impl_rwlock;
extern const struct bench_impl bench_impl_urcu;
extern const struct bench_impl bench_impl_tbb;

#ifdef __cplusplus
}
#endif

#endif /* MEMENTOS_BENCH_IMPL_H */
