/*
 * The get protocol (see DESIGN.md):
 *
 *   key   = cls->key(args)            built in the thread's scratch buffer
 *   hash  = XXH3(key, class seed)     once
 *   this thread's front cache holds a ready entry for key -> return obj
 *   epoch section { ck_hs_get; READY -> keep in front, return obj }
 *   miss: shard lock { recheck; link a CREATING entry owned by this thread }
 *         create() outside every lock; publish or fail; wake the waiters
 *   CREATING seen: take a reference, leave the section, then sleep
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

/* One call's view of its key, from key callback to the end of the lookup. */
struct lookup {
	memento_class *cls;
	struct memento__tcache *tc;
	struct memento__counters *counters;
	struct memento__entry *probe; /* the key, laid out as an entry */
	uint64_t hash;
	unsigned char *heap_probe; /* when the scratch buffer was busy */
};

static void lookup_end(struct lookup *lk)
{
	if (lk->heap_probe != NULL) {
		memento__free(lk->cls->cache, lk->heap_probe, MEMENTO__PROBE_SIZE);
		lk->heap_probe = NULL;
	} else if (lk->probe != NULL) {
		lk->tc->thread->scratch_busy = false;
	}
	lk->probe = NULL;
}

/* A key callback left by cancellation or an exception: release its buffer. */
static void key_abandoned(void *arg)
{
	lookup_end(arg);
}

/* A callback's positive return breaks its contract; report it as such. */
static int callback_result(int rc)
{
	return rc > 0 ? -EINVAL : rc;
}

/*
 * Builds the key of args; lookup_hash then hashes it.  On success the
 * caller must call lookup_end once it no longer needs lk->probe.  Always
 * inlined: it is most of the hit path, and lk then stays in registers.
 */
static inline __attribute__((always_inline)) int lookup_begin(struct lookup *lk,
                                                              memento_class *cls,
                                                              const void *args)
{
	lk->cls = cls;
	lk->heap_probe = NULL;
	lk->probe = NULL;
	lk->tc = memento__tcache_for(cls->cache);
	if (MEMENTO__UNLIKELY(lk->tc == NULL))
		return -ENOMEM;
	lk->counters = memento__counters_for(lk->tc, cls->index);
	if (MEMENTO__UNLIKELY(lk->counters == NULL))
		return -ENOMEM;

	struct memento__thread *t = lk->tc->thread;
	unsigned char *room = t->scratch;
	if (MEMENTO__UNLIKELY(t->scratch_busy)) {
		/* A key callback is itself getting an object: nest on the heap. */
		room = lk->heap_probe = memento__alloc(cls->cache, MEMENTO__PROBE_SIZE);
		if (room == NULL)
			return -ENOMEM;
	} else {
		t->scratch_busy = true;
	}
	lk->probe = (struct memento__entry *)(void *)room;
	memento_key key = { .bytes = lk->probe->key, .len = 0, .err = 0 };

	int rc;
	pthread_cleanup_push(key_abandoned, lk);
	rc = callback_result(cls->key(&key, args, cls->ctx));
	pthread_cleanup_pop(0);
	if (rc == 0)
		rc = key.err;
	if (MEMENTO__UNLIKELY(rc != 0)) {
		lookup_end(lk);
		return rc;
	}
	atomic_store_explicit(&lk->probe->state, memento__identity(cls->index, key.len),
	                      memory_order_relaxed);
	return 0;
}

/*
 * The probe's hash, just after the key callback.  Fixed fields are stored
 * as whole words, which the CPU forwards to XXH3's loads (key.c); a
 * string's memcpy may not be, and then the first load waits for those
 * stores to reach the cache.
 */
static inline __attribute__((always_inline)) void lookup_hash(struct lookup *lk)
{
	lk->hash = memento__key_hash(lk->probe->key, memento__entry_len(lk->probe), lk->cls->seed);
}

/* The shard that holds the probe's key: only past the front cache. */
static struct memento__shard *lookup_shard(const struct lookup *lk)
{
	return memento__shard_of(lk->cls->cache, lk->hash);
}

static struct memento__front_slot *front_slot(struct lookup *lk)
{
	return &lk->tc->front[lk->hash % MEMENTO__FRONT_SLOTS];
}

/*
 * The probe's entry if this thread's front cache holds it, still ready and
 * not forgotten; else NULL.  No epoch section: a ready entry's memory lives
 * until memento_cache_free (see struct memento__front_slot).
 */
static inline __attribute__((always_inline)) struct memento__entry *front_find(struct lookup *lk)
{
	const struct memento__front_slot *f = front_slot(lk);
	struct memento__entry *e = f->entry;
	if (f->hash != lk->hash || e == NULL)
		return NULL;
	/* Acquire, as on the table path.  It orders nothing new: the slot was
	 * filled after an acquire load saw e ready, by this thread or by the
	 * record's previous thread (records pass under the registry lock).
	 * But a forget that happened before this get has set UNLINKED in this
	 * word, and coherence makes that visible here. */
	uint32_t s = atomic_load_explicit(&e->state, memory_order_acquire);
	uint32_t identity = atomic_load_explicit(&lk->probe->state, memory_order_relaxed);
	/* Same identity bits, phase READY, UNLINKED clear (WAITERS may linger). */
	if (((s ^ identity) & ~(uint32_t)MEMENTO__WAITERS) != MEMENTO__READY)
		return NULL;
	if (!memento__entry_key_equal(e, lk->probe, memento__len_of(identity)))
		return NULL;
	return e;
}

/* e, ready and found for the probe, replaces its front slot's entry. */
static void front_keep(struct lookup *lk, struct memento__entry *e)
{
	struct memento__front_slot *f = front_slot(lk);
	f->hash = lk->hash;
	f->entry = e;
}

static void section_begin(struct lookup *lk)
{
	ck_epoch_begin(&lk->tc->epoch, NULL);
}

static void section_end(struct lookup *lk)
{
	/* Pairs with the acquire in creation_reclaim (table.c). */
	MEMENTO__TSAN_RELEASE(&lk->cls->cache->epoch);
	ck_epoch_end(&lk->tc->epoch, NULL);
}

static uint32_t phase_of(struct memento__entry *e)
{
	/* Acquire: pairs with the release that published obj or error. */
	return atomic_load_explicit(&e->state, memory_order_acquire) & MEMENTO__PHASE;
}

enum claim {
	CLAIM_READY,  /* found ready: the entry holds the object */
	CLAIM_WAIT,   /* found creating: a reference on the creation is held */
	CLAIM_CREATE, /* linked a new entry whose creation this thread owns */
};

/* What claim found or made. */
struct claimed {
	struct memento__entry *entry;       /* CLAIM_READY */
	struct memento__creation *creation; /* CLAIM_WAIT, CLAIM_CREATE */
};

/* Under the shard lock: finds the entry for the probe, or links a new one. */
static int claim(struct lookup *lk, struct claimed *out)
{
	struct memento__thread *self = lk->tc->thread;
	/* The record a creation needs comes before the lock, so that the
	 * user's allocator runs outside it (a chunk of entries, now and then,
	 * does not). */
	struct memento__creation *record = memento__creation_spare(lk->tc);
	if (record == NULL)
		return -ENOMEM;
	int rc;
	struct memento__shard *shard = lookup_shard(lk);
	memento__shard_lock(shard);
	/* The lock excludes frees of this shard's entries: no section needed. */
	struct memento__entry *e = ck_hs_get(&shard->hs, lk->hash, lk->probe);
	if (e == NULL) {
		rc = memento__creation_start(shard, lk->probe, lk->hash, lk->tc) ? CLAIM_CREATE
		                                                                     : -ENOMEM;
		out->creation = record;
	} else if (phase_of(e) == MEMENTO__READY) {
		rc = CLAIM_READY;
		out->entry = e;
	} else if (atomic_load_explicit(&e->u.creation->owner, memory_order_relaxed) == self) {
		rc = -EDEADLK; /* recursion: this thread is creating this key */
	} else {
		out->creation = memento__creation_join(e);
		rc = CLAIM_WAIT;
	}
	memento__shard_unlock(shard);
	return rc;
}

/* What a dying creator's cleanup handler needs. */
struct creation {
	struct memento__creation *record;
	struct memento__counters *counters;
};

/*
 * Cancellation, pthread_exit or a C++ exception inside create: fail the
 * entry for its waiters.  (The library is built with -fexceptions so that
 * this handler also runs when an exception unwinds through it.)
 */
static void creator_died(void *arg)
{
	struct creation *c = arg;
	memento__count(c->counters, MEMENTO__FAILURES);
	memento__creation_fail(c->record, -EOWNERDEAD);
}

static int call_create(memento_class *cls, const void *args, void **made)
{
	return callback_result(cls->create(made, args, cls->ctx));
}

/* This thread owns the creation: run create outside every lock and settle it. */
static int create_and_settle(memento_class *cls, struct memento__counters *counters,
                             struct memento__creation *record, const void *args, void **obj)
{
	struct creation c = { .record = record, .counters = counters };
	void *made = NULL;
	int rc;

	memento__count(counters, MEMENTO__CREATIONS);
	pthread_cleanup_push(creator_died, &c);
	rc = call_create(cls, args, &made);
	pthread_cleanup_pop(0);

	if (rc == 0) {
		memento__creation_publish(record, made);
		*obj = made;
	} else {
		memento__count(counters, MEMENTO__FAILURES);
		memento__creation_fail(record, rc);
	}
	return rc;
}

/* Holding a reference on another thread's creation: wait and share its outcome. */
static int wait_and_share(struct memento__thread *self, struct memento__counters *counters,
                          struct memento__creation *c, const struct timespec *deadline,
                          void **obj)
{
	int rc = memento__wait_begin(self, c);
	if (rc == -EDEADLK) {
		memento__count(counters, MEMENTO__DEADLOCKS);
	} else {
		bool timed_out;
		memento__count(counters, MEMENTO__WAITS);
		rc = memento__creation_wait(c, deadline, &timed_out);
		memento__wait_end(self);
		if (rc == 0)
			*obj = c->entry->u.obj; /* ready: the entry lives with the cache */
		else if (timed_out)
			memento__count(counters, MEMENTO__TIMEOUTS);
	}
	memento__creation_unref(c);
	return rc;
}

static bool deadline_valid(const struct timespec *deadline)
{
	return deadline == NULL || (deadline->tv_nsec >= 0 && deadline->tv_nsec < 1000000000L);
}

/* memento_get and memento_get_until, each with its own inlined copy. */
static inline __attribute__((always_inline)) int get(memento_class *cls, const void *args,
                                                     void **obj,
                                                     const struct timespec *deadline)
{
	if (MEMENTO__UNLIKELY(cls == NULL || obj == NULL))
		return -EINVAL;
	struct lookup lk;
	int rc = lookup_begin(&lk, cls, args);
	if (MEMENTO__UNLIKELY(rc != 0))
		return rc;

	lookup_hash(&lk);
	struct memento__entry *e = front_find(&lk);
	if (MEMENTO__LIKELY(e != NULL)) {
		lookup_end(&lk);
		memento__count(lk.counters, MEMENTO__HITS);
		*obj = e->u.obj;
		return 0;
	}

	section_begin(&lk);
	e = ck_hs_get(&lookup_shard(&lk)->hs, lk.hash, lk.probe);
	if (MEMENTO__LIKELY(e != NULL) && MEMENTO__LIKELY(phase_of(e) == MEMENTO__READY)) {
		section_end(&lk);
		front_keep(&lk, e);
		lookup_end(&lk);
		memento__count(lk.counters, MEMENTO__HITS);
		*obj = e->u.obj; /* ready: the entry lives with the cache */
		return 0;
	}
	section_end(&lk);

	/* Everything but a ready hit is settled under the shard lock. */
	struct claimed got;
	rc = claim(&lk, &got);
	lookup_end(&lk); /* the key now lives in the entry, if it was needed */
	if (rc == CLAIM_READY) {
		front_keep(&lk, got.entry);
		memento__count(lk.counters, MEMENTO__HITS);
		*obj = got.entry->u.obj;
		return 0;
	}
	memento__count(lk.counters, MEMENTO__MISSES);
	switch (rc) {
	case CLAIM_CREATE:
		return create_and_settle(cls, lk.counters, got.creation, args, obj);
	case CLAIM_WAIT:
		return wait_and_share(lk.tc->thread, lk.counters, got.creation, deadline, obj);
	default:
		if (rc == -EDEADLK)
			memento__count(lk.counters, MEMENTO__DEADLOCKS);
		return rc;
	}
}

int memento_get(memento_class *cls, const void *args, void **obj)
{
	return get(cls, args, obj, NULL);
}

int memento_get_until(memento_class *cls, const void *args, void **obj,
                      const struct timespec *deadline)
{
	if (!deadline_valid(deadline))
		return -EINVAL;
	return get(cls, args, obj, deadline);
}

int memento_peek(memento_class *cls, const void *args, void **obj)
{
	if (cls == NULL || obj == NULL)
		return -EINVAL;
	struct lookup lk;
	int rc = lookup_begin(&lk, cls, args);
	if (rc != 0)
		return rc;

	lookup_hash(&lk);
	struct memento__entry *e = front_find(&lk);
	uint32_t phase = MEMENTO__READY;
	if (e == NULL) {
		section_begin(&lk);
		e = ck_hs_get(&lookup_shard(&lk)->hs, lk.hash, lk.probe);
		phase = e != NULL ? phase_of(e) : 0;
		section_end(&lk);
		if (phase == MEMENTO__READY)
			front_keep(&lk, e);
	}
	/* Ready: the entry lives with the cache, outside any section. */
	void *found = phase == MEMENTO__READY ? e->u.obj : NULL;
	lookup_end(&lk);

	switch (phase) {
	case MEMENTO__READY:
		memento__count(lk.counters, MEMENTO__HITS);
		*obj = found;
		return 0;
	case MEMENTO__CREATING:
		return -EINPROGRESS;
	default:
		return -ENOENT; /* absent, or a failed entry on its way out */
	}
}

int memento_forget(memento_class *cls, const void *args)
{
	if (cls == NULL)
		return -EINVAL;
	struct lookup lk;
	int rc = lookup_begin(&lk, cls, args);
	if (rc != 0)
		return rc;

	lookup_hash(&lk);
	struct memento__shard *shard = lookup_shard(&lk);
	memento__shard_lock(shard);
	struct memento__entry *e = ck_hs_get(&shard->hs, lk.hash, lk.probe);
	if (e == NULL)
		rc = -ENOENT;
	else /* the entry, and its object once ready, stay until cache_free */
		memento__shard_unlink(shard, e);
	memento__shard_unlock(shard);
	lookup_end(&lk);
	return rc;
}
