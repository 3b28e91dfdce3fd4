/*
 * impl_urcu: liburcu's lock-free resizable hash table (cds_lfht, default
 * flavour) with a placeholder node per key while its object is created.
 *
 * A hit is a lookup in a read-side section and one acquire load.  A miss
 * inserts a placeholder with cds_lfht_add_unique; the thread whose node went
 * in creates the object outside any read-side section, publishes it and
 * wakes the waiters.  A thread that finds a placeholder sleeps on a futex on
 * the node's state word, with no spin first (mementos does not spin either).
 *
 * Nodes stay in the table until close, even when a creation fails: a failed
 * node is claimed by the next caller, who creates again.  So a waiter can
 * leave its read-side section before it sleeps (it never holds up a grace
 * period), and nodes need neither an rcu_head nor a reference count.
 *
 * Growth is not CDS_LFHT_AUTO_RESIZE, whose lazy launch loses an update in
 * liburcu 0.13 (and upstream since): it queues the resize work, then sets
 * resize_initiated; a worker that runs the whole resize in between clears
 * the flag first, the late store leaves it set for good, and the table never
 * grows again.  On 2 busy cores, 3 fills of 200,000 keys in 20 ended stuck
 * at 16,384 buckets, and a fill of 1,000,000 keys ran for over ten minutes.
 * Instead the creating thread applies the library's own rule for large
 * tables (grow to the entry count once it reaches 8 per bucket, checked at
 * powers of two) with cds_lfht_resize, outside any read-side section.
 *
 * _LGPL_SOURCE inlines rcu_read_lock/unlock (small inline functions of
 * urcu's headers), as liburcu's documentation advises for speed.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#define _LGPL_SOURCE
#include <urcu.h> /* the flavour first: rculfhash.h uses it */
#include <urcu/rculfhash.h>

#include "impl.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* An entry's state word: a phase, and a bit saying someone sleeps on it. */
enum {
	URCU_CREATING = 0u, /* the thread that inserted or claimed it creates */
	URCU_READY = 1u,    /* obj is set; final */
	URCU_FAILED = 2u,   /* creation failed; the next caller claims it */
	URCU_PHASE = 3u,
	URCU_WAITERS = 4u,  /* set only while CREATING */
};

struct urcu_entry {
	struct cds_lfht_node node;
	uint64_t key;
	union {
		struct bench_object *obj;       /* once READY */
		struct urcu_entry *next_closed; /* close: deleted, not yet freed */
	};
	_Atomic uint32_t state;
};

/* rculfhash.c's CHAIN_LEN_RESIZE_THRESHOLD (3): grow at 2^3 entries a bucket. */
#define URCU_GROW_AT_LOAD 8u

struct urcu_table {
	struct cds_lfht *ht;
	_Atomic size_t ready;         /* entries with an object: count, growth */
	pthread_mutex_t resize_lock;  /* one resize at a time, sizes only up */
	unsigned long buckets;        /* under resize_lock */
};

static int urcu_match(struct cds_lfht_node *node, const void *key)
{
	const struct urcu_entry *e = caa_container_of(node, struct urcu_entry, node);
	return e->key == *(const uint64_t *)key;
}

static void *urcu_open(void)
{
	struct urcu_table *t = calloc(1, sizeof *t);
	if (t == NULL) {
		fprintf(stderr, "urcu: out of memory\n");
		return NULL;
	}
	/* The smallest start, as liburcu's examples make one; urcu_grow grows it. */
	t->ht = cds_lfht_new(1, 1, 0, 0, NULL);
	if (t->ht == NULL) {
		fprintf(stderr, "urcu: cds_lfht_new failed\n");
		free(t);
		return NULL;
	}
	atomic_init(&t->ready, 0);
	pthread_mutex_init(&t->resize_lock, NULL);
	t->buckets = 1;
	return t;
}

static void urcu_thread_begin(void *table)
{
	(void)table;
	rcu_register_thread();
}

static void urcu_thread_end(void *table)
{
	(void)table;
	rcu_unregister_thread();
}

/* Ends a creation: sets the final phase and wakes whoever sleeps on it. */
static void urcu_finish(struct urcu_entry *e, uint32_t phase)
{
	/* Release: the creator's writes of obj and of the object itself come
	 * before the phase, for the acquire loads in urcu_get and urcu_join. */
	uint32_t old = atomic_exchange_explicit(&e->state, phase, memory_order_release);
	if (old & URCU_WAITERS)
		syscall(SYS_futex, &e->state, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/*
 * The table now holds `entries` objects: grows it as liburcu's accounting
 * would (see the header).  The caller is registered and in no read-side
 * section, as cds_lfht_resize requires; the resize is synchronous.
 */
static void urcu_grow(struct urcu_table *t, size_t entries)
{
	if (entries & (entries - 1))
		return; /* the rule looks only at powers of two */
	pthread_mutex_lock(&t->resize_lock);
	if (entries / URCU_GROW_AT_LOAD >= t->buckets) {
		t->buckets = entries;
		cds_lfht_resize(t->ht, entries);
	}
	pthread_mutex_unlock(&t->resize_lock);
}

/* The caller inserted or claimed e (CREATING): create its object. */
static int urcu_create(struct urcu_table *t, struct urcu_entry *e, struct bench_object **out)
{
	struct bench_object *obj = bench_object_create(e->key);
	if (obj == NULL) {
		urcu_finish(e, URCU_FAILED);
		return -ENOMEM;
	}
	e->obj = obj;
	urcu_finish(e, URCU_READY);
	/* Relaxed: a count, read after joins; each value goes to one thread. */
	size_t entries = atomic_fetch_add_explicit(&t->ready, 1, memory_order_relaxed) + 1;
	urcu_grow(t, entries); /* after the wake-up: waiters do not wait for it */
	*out = obj;
	return 0;
}

/* Sleeps while the word still holds `expected` (returns at once if not). */
static void futex_wait(_Atomic uint32_t *word, uint32_t expected)
{
	int saved_errno = errno;
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
	errno = saved_errno; /* EAGAIN or EINTR: the caller looks again anyway */
}

/* e was found without an object: wait for its creation, or claim it. */
static int urcu_join(struct urcu_table *t, struct urcu_entry *e, struct bench_object **out)
{
	bool waited = false;
	for (;;) {
		/* Acquire: pairs with the release in urcu_finish (obj, *obj). */
		uint32_t s = atomic_load_explicit(&e->state, memory_order_acquire);
		switch (s & URCU_PHASE) {
		case URCU_READY:
			*out = e->obj;
			return 0;
		case URCU_FAILED:
			if (waited)
				return -ENOMEM; /* the creation this caller waited for */
			/* Relaxed: nothing is read on the strength of the claim;
			 * the claimer publishes its own obj with its own release. */
			if (atomic_compare_exchange_weak_explicit(&e->state, &s, URCU_CREATING,
			                                          memory_order_relaxed,
			                                          memory_order_relaxed))
				return urcu_create(t, e, out);
			break;
		default: /* CREATING */
			/* Relaxed: the bit only has to be in the word before the
			 * creator's exchange reads it (one atomic, one order);
			 * the kernel rechecks the word before sleeping. */
			if (!(s & URCU_WAITERS) &&
			    !atomic_compare_exchange_weak_explicit(&e->state, &s, s | URCU_WAITERS,
			                                           memory_order_relaxed,
			                                           memory_order_relaxed))
				break;
			futex_wait(&e->state, s | URCU_WAITERS);
			waited = true;
			break;
		}
	}
}

/* No node for key was seen: offer a placeholder. */
static int urcu_insert(struct urcu_table *t, uint64_t key, unsigned long hash,
                       struct bench_object **out)
{
	struct urcu_entry *mine = malloc(sizeof *mine);
	if (mine == NULL)
		return -ENOMEM;
	cds_lfht_node_init(&mine->node);
	mine->key = key;
	mine->obj = NULL;
	/* Plain init: cds_lfht_add_unique's full barrier before its commit
	 * publishes the node's fields to whoever finds it. */
	atomic_init(&mine->state, URCU_CREATING);

	rcu_read_lock();
	struct cds_lfht_node *found = cds_lfht_add_unique(t->ht, hash, urcu_match, &key, &mine->node);
	rcu_read_unlock();
	if (found == &mine->node)
		return urcu_create(t, mine, out);
	/* Another caller's node went in first.  Ours was never visible: no
	 * grace period before freeing it. */
	free(mine);
	return urcu_join(t, caa_container_of(found, struct urcu_entry, node), out);
}

static int urcu_get(void *table, uint64_t key, struct bench_object **out)
{
	struct urcu_table *t = table;
	unsigned long hash = (unsigned long)bench_hash(key);
	struct cds_lfht_iter iter;

	rcu_read_lock();
	cds_lfht_lookup(t->ht, hash, urcu_match, &key, &iter);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&iter);
	rcu_read_unlock();
	/* Nodes are freed only by close, so e outlives the read-side section. */
	if (node == NULL)
		return urcu_insert(t, key, hash, out);
	struct urcu_entry *e = caa_container_of(node, struct urcu_entry, node);
	/* Acquire: pairs with the release in urcu_finish (obj, *obj). */
	if (atomic_load_explicit(&e->state, memory_order_acquire) == URCU_READY) {
		*out = e->obj;
		return 0;
	}
	return urcu_join(t, e, out);
}

static size_t urcu_count(void *table)
{
	struct urcu_table *t = table;
	return atomic_load_explicit(&t->ready, memory_order_relaxed);
}

static void urcu_close(void *table)
{
	struct urcu_table *t = table;
	if (t == NULL)
		return;
	/* cds_lfht_del wants a registered reader; no thread is registered now,
	 * this one included (the interface says so). */
	rcu_register_thread();
	struct urcu_entry *deleted = NULL;
	struct urcu_entry *e;
	struct cds_lfht_iter iter;
	rcu_read_lock();
	cds_lfht_for_each_entry(t->ht, &iter, e, node) {
		cds_lfht_del(t->ht, &e->node);
		/* Relaxed: the threads that created are joined by now. */
		if (atomic_load_explicit(&e->state, memory_order_relaxed) == URCU_READY)
			bench_object_destroy(e->obj);
		e->next_closed = deleted;
		deleted = e;
	}
	rcu_read_unlock();
	if (cds_lfht_destroy(t->ht, NULL) != 0)
		fprintf(stderr, "urcu: cds_lfht_destroy failed\n");
	rcu_unregister_thread();
	/* Freed only now: the walk read each node's successor from the node,
	 * and no other thread can reach them (no resize worker either). */
	while (deleted != NULL) {
		struct urcu_entry *next = deleted->next_closed;
		free(deleted);
		deleted = next;
	}
	pthread_mutex_destroy(&t->resize_lock);
	free(t);
}

const struct bench_impl bench_impl_urcu = {
	.name = "urcu",
	.describe = "liburcu cds_lfht; placeholder via add_unique, waiters sleep on a futex",
	.flags = 0,
	.open = urcu_open,
	.thread_begin = urcu_thread_begin,
	.thread_end = urcu_thread_end,
	.get = urcu_get,
	.fill = NULL,
	.count = urcu_count,
	.close = urcu_close,
};
