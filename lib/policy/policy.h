/*
 * The eviction policy of one bounded set of entries (a class's share of one
 * shard): which entry leaves when the set is over its bound.
 *
 * Self-contained: it knows nothing of caches, tables or threads, so the
 * hit-ratio benchmark (bench/) replays traces through this very code.
 *
 * Concurrency: every function below but memento__policy_touch runs under
 * the lock of its set (the shard lock, in the library), one at a time.
 * memento__policy_touch is the hit path: any thread, no lock, concurrently
 * with everything else; it may only set a bit that is clear, which the
 * policy reads and clears under the lock.  A touch that races with the
 * policy is allowed to be lost.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTO_POLICY_H
#define MEMENTO_POLICY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a policy gets the memory of its frequency sketch. */
struct memento__policy_alloc {
	void *(*alloc)(size_t size, void *state); /* NULL when out of memory */
	void (*free)(void *p, size_t size, void *state);
	void *state;
};

/*
 * What the policy keeps of one entry; embedded in the entry.  The caller
 * sets weight and hash before memento__policy_insert and never writes the
 * rest.
 */
struct memento__policy_node {
	struct memento__policy_node *prev, *next; /* the policy's lists */
	uint64_t weight;                          /* caller: >= 1; 1 when unweighted */
	uint32_t hash;                            /* caller: 32 bits of the key's hash, not the shard's */
	_Atomic uint8_t visited;                  /* set by touch, cleared by the policy */
	uint8_t region;                           /* the policy's: which list holds it; 0: none */
};

/* The hit path: marks n as used since the policy last looked. */
static inline void memento__policy_touch(struct memento__policy_node *n)
{
	/* Relaxed both: the bit orders nothing, and it is written only when
	 * clear, so a hot entry's line stays shared among the readers. */
	if (!atomic_load_explicit(&n->visited, memory_order_relaxed))
		atomic_store_explicit(&n->visited, 1, memory_order_relaxed);
}

struct memento__policy_list {
	struct memento__policy_node *head, *tail; /* head: newest */
	uint64_t count, weight;
};

/* A count-min sketch of recent arrivals and sampled hits, with periodic
 * halving (sketch.c). */
struct memento__policy_sketch {
	uint64_t *table; /* NULL until the set first fills */
	size_t words;    /* a power of two, at least 8 (one 64-byte block) */
	uint64_t additions, sample_size;
};

struct memento__policy {
	uint64_t max_entries, max_weight; /* 0: no bound of that kind */
	struct memento__policy_alloc alloc;
	struct memento__policy_list window, main;
	struct memento__policy_node *hand; /* main's sweep position */
	struct memento__policy_sketch sketch;
	bool sketch_failed; /* its allocation failed: admit without it */

	/* The rest is policy.c's own. */
	struct memento__policy_list heavy; /* heavier than max_weight: evicted first */
	uint64_t window_entries, window_weight; /* the window's share; UINT64_MAX: no bound */
	uint64_t main_entries, main_weight;     /* the bound less the window's share */
	uint64_t sketch_retry; /* after a failed allocation: evictions before the next try */
	uint64_t random;       /* admission's coin (xorshift state) */
};

/* Starts an empty set with these bounds (0, 0: unbounded: one FIFO list).
 * Allocates nothing; the sketch comes when the set first fills, through
 * alloc (NULL, or a NULL alloc->alloc: malloc and free). */
void memento__policy_init(struct memento__policy *p, uint64_t max_entries, uint64_t max_weight,
                          const struct memento__policy_alloc *alloc);
/* Frees the sketch; the nodes are the caller's. */
void memento__policy_destroy(struct memento__policy *p);

/* A new entry arrives (after a miss): it is held from now on.  Then the
 * caller evicts until memento__policy_evict answers NULL. */
void memento__policy_insert(struct memento__policy *p, struct memento__policy_node *n);
/* n leaves for another reason than eviction (forgotten, expired). */
void memento__policy_remove(struct memento__policy *p, struct memento__policy_node *n);
/* n's entry is rebuilt (refresh): fresh takes its place, counts and all
 * (fresh->weight may differ; if it grew, the caller evicts as after an
 * insert). */
void memento__policy_replace(struct memento__policy *p, struct memento__policy_node *old,
                             struct memento__policy_node *fresh);
/* While the set is over a bound: the entry to evict, already removed from
 * the policy (possibly the one just inserted; an entry heavier than
 * max_weight first); NULL once within bounds.  O(1) amortised per insert
 * (policy.c says why). */
struct memento__policy_node *memento__policy_evict(struct memento__policy *p);
/* An unbounded set's oldest entry (the first inserted still held), for
 * expiry; NULL when empty.  A bounded set may answer NULL: its expired
 * entries leave by eviction. */
struct memento__policy_node *memento__policy_oldest(const struct memento__policy *p);

#endif /* MEMENTO_POLICY_H */
