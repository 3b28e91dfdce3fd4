/*
 * The get protocol (docs/design.md):
 *
 *   key   = cls->key(args)            built in the thread's scratch buffer
 *   hash  = XXH3(key, class seed)     once
 *   this thread's front cache holds a ready entry for key -> return obj
 *   epoch section (unless a guard holds one) { ck_hs_get; READY -> keep
 *         in front, return obj }
 *   otherwise, after the section: shard lock { look again: ready -> obj;
 *         creating -> take a reference on its creation; absent -> link a
 *         CREATING entry owned by this thread }
 *   creator: create() outside every lock; publish or fail; wake the waiters
 *   waiter: sleep on the entry's state word, then share the outcome
 *
 * A guarded class's hits also check the object's age (expiry, refresh) and
 * mark it used for its eviction policy; the shard lock settles what such a
 * check finds (an expired object replaced, a stale one rebuilt by one get).
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
	uint64_t now; /* the clock, once read (classes that expire or refresh) */
	struct memento__digest fp; /* args' fingerprint (classes that revalidate) */
};

static void lookup_end(struct lookup *lk)
{
	if (lk->heap_probe != NULL) {
		memento__free(lk->cls->cache, lk->heap_probe, MEMENTO__PROBE_SIZE);
		lk->heap_probe = NULL;
	} else if (lk->probe != NULL &&
	           (unsigned char *)lk->probe == lk->tc->thread->scratch) {
		lk->tc->thread->scratch_busy = false;
	} /* else the probe lies in memento_get_many's buffer, its own */
	lk->probe = NULL;
}

/* A key callback left by cancellation or an exception: release its buffer. */
static void key_abandoned(void *arg)
{
	lookup_end(arg);
}

/*
 * Builds the key of args; lookup_hash then hashes it.  On success the
 * caller must call lookup_end once it no longer needs lk->probe.  Always
 * inlined: it is most of the hit path, and lk then stays in registers.
 * Outside a guard of its cache, a guarded class's lookup is refused
 * (-EPERM) before its key callback runs, unless guard_free (a get that
 * returns a counted reference).  A get (revalidate) of a revalidating
 * class computes the fingerprint of args first, before the key callback
 * and the lookup: an object made after this is made from inputs at least
 * this new, so its entry can carry this fingerprint without ever passing
 * off old inputs as new.
 */
static inline __attribute__((always_inline)) int lookup_begin(struct lookup *lk,
                                                              memento_class *cls,
                                                              const void *args,
                                                              bool guard_free,
                                                              bool revalidate,
                                                              unsigned char *room)
{
	lk->cls = cls;
	lk->heap_probe = NULL;
	lk->probe = NULL;
	lk->now = 0;
	lk->tc = memento__tcache_for(cls->cache);
	if (MEMENTO__UNLIKELY(lk->tc == NULL))
		return -ENOMEM;
	if (MEMENTO__UNLIKELY(cls->life & (MEMENTO__LIFE_GUARDED | MEMENTO__LIFE_REVALIDATE))) {
		if ((cls->life & MEMENTO__LIFE_GUARDED) && !guard_free &&
		    !memento__in_guard(lk->tc))
			return -EPERM;
		if (revalidate && (cls->life & MEMENTO__LIFE_REVALIDATE)) {
			int rc = memento__fingerprint(cls, args, &lk->fp);
			if (rc != 0)
				return rc;
		}
	}
	lk->counters = memento__counters_for(lk->tc, cls->index);
	if (MEMENTO__UNLIKELY(lk->counters == NULL))
		return -ENOMEM;

	struct memento__thread *t = lk->tc->thread;
	if (room != NULL) {
		/* memento_get_many's own buffer, with MEMENTO__PROBE_SIZE free. */
	} else if (MEMENTO__UNLIKELY(t->scratch_busy)) {
		/* A key callback is itself getting an object: nest on the heap. */
		room = lk->heap_probe = memento__alloc(cls->cache, MEMENTO__PROBE_SIZE);
		if (room == NULL)
			return -ENOMEM;
	} else {
		room = t->scratch;
		t->scratch_busy = true;
	}
	lk->probe = (struct memento__entry *)(void *)room;
	memento_key key = { .bytes = lk->probe->key, .len = 0, .err = 0 };

	int rc;
	pthread_cleanup_push(key_abandoned, lk);
	rc = memento__callback_result(cls->key(&key, args, cls->ctx));
	pthread_cleanup_pop(0);
	if (rc == 0)
		rc = key.err;
	if (MEMENTO__UNLIKELY(rc != 0)) {
		lookup_end(lk);
		return rc;
	}
	atomic_store_explicit(&lk->probe->state, memento__identity_of(cls->identity, key.len),
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

/*
 * Whether a ready entry found for the probe may be returned by a get:
 * touches it for a bounded class, checks its age for a timed one and its
 * fingerprint for a revalidating one.  One test for the other classes.
 */
static inline __attribute__((always_inline)) bool hit_fresh(struct lookup *lk,
                                                            struct memento__entry *e)
{
	const memento_class *cls = lk->cls;
	if (MEMENTO__LIKELY(!(cls->life & (MEMENTO__LIFE_BOUNDED | MEMENTO__LIFE_TIMED |
	                                   MEMENTO__LIFE_REVALIDATE))))
		return true;
	if (memento__freshness_of(cls, e, &lk->now) != MEMENTO__FRESH)
		return false;
	return !(cls->life & MEMENTO__LIFE_REVALIDATE) ||
	       memcmp(memento__fp_of(e), &lk->fp, sizeof lk->fp) == 0;
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
 * not forgotten; else NULL.  No epoch section: a never-reclaimed class's
 * ready entry lives until memento_cache_free, and a guarded class's is in
 * a slot only during the guard in which it was found linked, which keeps
 * it (see struct memento__tcache).
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

/* e, ready and found for the probe, replaces its front slot's entry.  A
 * guarded class's entry goes in only inside a guard, and leaves with it. */
static void front_keep(struct lookup *lk, struct memento__entry *e)
{
	struct memento__front_slot *f = front_slot(lk);
	uint64_t bit = (uint64_t)1 << (lk->hash % MEMENTO__FRONT_SLOTS);
	if (lk->cls->life & MEMENTO__LIFE_GUARDED) {
		if (!memento__in_guard(lk->tc))
			return;
		lk->tc->front_guarded |= bit;
	} else {
		lk->tc->front_guarded &= ~bit;
	}
	f->hash = lk->hash;
	f->entry = e;
}


/* A read-side section for a lookup, unless a guard of the cache already
 * holds one on this thread (then the entries found stay until it ends). */
static bool section_begin(struct lookup *lk)
{
	if (memento__in_guard(lk->tc))
		return false;
	ck_epoch_begin(&lk->tc->epoch, NULL);
	return true;
}

static void section_end(struct lookup *lk, bool began)
{
	if (!began)
		return;
	/* Pairs with the acquires in creation_reclaim (table.c) and
	 * memento__reclaim_limbo. */
	MEMENTO__TSAN_RELEASE(&lk->cls->cache->epoch);
	ck_epoch_end(&lk->tc->epoch, NULL);
}

/* The entry's state word, acquired: pairs with the release that published
 * its object or error. */
static uint32_t state_of(struct memento__entry *e)
{
	return atomic_load_explicit(&e->state, memory_order_acquire);
}

/* A hold for a memento_ref on e, found while something keeps it (a
 * section, a guard, the lock, a record): only guarded entries count. */
static void hold_for_ref(struct memento__entry *e)
{
	if (memento__guarded_of(atomic_load_explicit(&e->state, memory_order_relaxed)))
		memento__life_hold(e);
}

enum claim {
	CLAIM_READY,      /* found ready: the entry holds the object */
	CLAIM_WAIT,       /* found creating: a reference on the creation is held */
	CLAIM_CREATE,     /* linked a new entry whose creation this thread owns */
	CLAIM_REFRESH,    /* found stale: this thread rebuilds it (entry held) */
	CLAIM_REMEMBERED, /* found a failure its class remembers: its error */
};

/* What claim found or made. */
struct claimed {
	struct memento__entry *entry;       /* CLAIM_READY, CLAIM_REFRESH */
	struct memento__creation *creation; /* CLAIM_WAIT, CLAIM_CREATE */
	int error;                          /* CLAIM_REMEMBERED */
};

/*
 * Under the lock, e found ready: returns it, rebuilds it, or, expired,
 * drops it (then NULL: the caller creates anew).
 */
static int claim_ready(struct lookup *lk, struct memento__shard *shard, struct memento__entry *e,
                       bool hold, struct claimed *out)
{
	memento_class *cls = lk->cls;
	enum memento__freshness f = MEMENTO__FRESH;
	if (cls->life & MEMENTO__LIFE_TIMED)
		f = memento__freshness_timed(cls, e, &lk->now);
	if (f == MEMENTO__EXPIRED) {
		memento__drop(shard, cls, e);
		memento__count(lk->counters, MEMENTO__EXPIRATIONS);
		return -ENOENT;
	}
	if ((cls->life & MEMENTO__LIFE_REVALIDATE) &&
	    memcmp(memento__fp_of(e), &lk->fp, sizeof lk->fp) != 0) {
		/* Made from other inputs: handled as a forget, then made anew. */
		if (cls->life & MEMENTO__LIFE_GUARDED)
			memento__drop(shard, cls, e);
		else
			memento__shard_unlink(shard, e);
		return -ENOENT;
	}
	out->entry = e;
	if (f == MEMENTO__STALE && memento__refresh_claim(e))
		return CLAIM_REFRESH;
	if (hold)
		hold_for_ref(e);
	return CLAIM_READY;
}

/* Under the shard lock: finds the entry for the probe, or links a new one.
 * hold: a ready entry found is held for a memento_ref. */
static int claim(struct lookup *lk, bool hold, struct claimed *out)
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
	struct memento__entry *e = memento__table_get(shard, lk->hash, lk->probe);
	if (e != NULL) {
		uint32_t phase = atomic_load_explicit(&e->state, memory_order_relaxed) & MEMENTO__PHASE;
		if (phase == MEMENTO__READY) {
			rc = claim_ready(lk, shard, e, hold, out);
			if (rc != -ENOENT)
				goto unlock;
		} else if (phase == MEMENTO__FAILED) {
			/* Linked and failed: a failure the class remembers. */
			struct memento__creation *c = e->u.creation;
			if (memento__now_once(&lk->now) < c->retry_at) {
				out->error = c->error;
				rc = CLAIM_REMEMBERED;
				goto unlock;
			}
			memento__remembered_drop(shard, e);
		} else if (atomic_load_explicit(&e->u.creation->owner, memory_order_relaxed) == self) {
			rc = -EDEADLK; /* recursion: this thread is creating this key */
			goto unlock;
		} else {
			out->creation = memento__creation_join(e);
			rc = CLAIM_WAIT;
			goto unlock;
		}
	}
	rc = memento__creation_start(shard, lk->cls, lk->probe, lk->hash, lk->tc) ? CLAIM_CREATE
	                                                                         : -ENOMEM;
	out->creation = record;
unlock:
	memento__shard_unlock(shard);
	return rc;
}

/* What a dying creator's cleanup handler needs. */
struct creation {
	struct memento__creation *record;
	struct memento__counters *counters;
	struct memento__produced produced; /* did create run (a persisted class) */
};

/*
 * Cancellation, pthread_exit or a C++ exception inside create: fail the
 * entry for its waiters.  (The library is built with -fexceptions so that
 * this handler also runs when an exception unwinds through it.)
 */
static void creator_died(void *arg)
{
	struct creation *c = arg;
	/* A failure of create: a persisted class may die before it, in its
	 * fingerprint, its decode or the wait for another process. */
	if (c->produced.created)
		memento__count(c->counters, MEMENTO__FAILURES);
	memento__creation_fail(c->record, -EOWNERDEAD);
}

static int call_create(memento_class *cls, const void *args, void **made)
{
	return memento__callback_result(cls->create(made, args, cls->ctx));
}

/* The weight a weighted class's policy counts for obj (at least 1). */
static uint64_t weight_of(const memento_class *cls, const void *obj)
{
	if (cls->weigh == NULL)
		return 1;
	uint64_t w = cls->weigh(obj, cls->ctx);
	return w != 0 ? w : 1;
}

/* The object for a creation: from create, or for a persisted class from
 * its store or create (store/persist.c).  Counts the creation, and its
 * failure, when create runs. */
static int produce(memento_class *cls, struct memento__counters *counters,
                   struct memento__creation *record, const void *args,
                   const struct memento__digest *fp, const struct timespec *deadline,
                   void **made, struct memento__produced *produced)
{
	if (MEMENTO__LIKELY(cls->persist == NULL || cls->persist->store == NULL)) {
		memento__count(counters, MEMENTO__CREATIONS);
		produced->created = true;
		int rc = call_create(cls, args, made);
		if (rc != 0)
			memento__count(counters, MEMENTO__FAILURES);
		return rc;
	}
	const struct memento__entry *e = record->entry;
	int rc = memento__persist_produce(cls, e->key, memento__entry_len(e), args, fp, deadline,
	                                  counters, made, produced);
	/* Before the failure's release publishes it to the waiters. */
	record->no_outcome = produced->lock_timed_out;
	return rc;
}

/* This thread owns the creation: run create outside every lock and settle
 * it.  hold: the entry is held for a memento_ref.  fp: a revalidating
 * class's fingerprint of args, which the entry keeps; else NULL. */
static int create_and_settle(memento_class *cls, struct memento__counters *counters,
                             struct memento__creation *record, const void *args,
                             const struct memento__digest *fp,
                             const struct timespec *deadline, bool hold,
                             struct memento__entry **out)
{
	struct creation c = { .record = record, .counters = counters };
	void *made = NULL;
	int rc;

	pthread_cleanup_push(creator_died, &c);
	rc = produce(cls, counters, record, args, fp, deadline, &made, &c.produced);
	pthread_cleanup_pop(0);

	if (rc == 0) {
		/* Read before publish: it may let go of the record. */
		struct memento__entry *e = record->entry;
		/* Before publish, whose release makes it visible with the object. */
		if (fp != NULL)
			*memento__fp_of(e) = *fp;
		memento__creation_publish(record, made, weight_of(cls, made),
		                          hold && (cls->life & MEMENTO__LIFE_GUARDED), counters);
		*out = e;
	} else {
		/* Without an outcome, this get alone timed out, and the gets
		 * waiting on it start over (get). */
		if (record->no_outcome)
			memento__count(counters, MEMENTO__TIMEOUTS);
		memento__creation_fail(record, rc);
	}
	return rc;
}

/* A wait left by unwinding out of the class's interrupt callback
 * (cancellation, pthread_exit, a C++ exception): the waiter's reference on
 * the creation and its probe go.  Its wait-for edge is already out. */
struct abandoned_wait {
	struct lookup *lk;
	struct memento__creation *creation;
};

static void wait_abandoned(void *arg)
{
	struct abandoned_wait *w = arg;
	memento__creation_unref(w->creation);
	lookup_end(w->lk);
}

/*
 * memento__creation_wait, in slices of the class's interrupt_every when it
 * has an interrupt callback, which is asked after each slice.  The wait is
 * registered for deadlock detection (self->waiting_on) except while the
 * callback runs, since the callback may itself wait; registering it again
 * may find a cycle that formed meanwhile.  *interrupted: the callback or
 * that cycle ended the wait, which is then neither a timeout nor an
 * outcome.  *orphaned: the callback forked and this is the child, where c,
 * another thread's, was dropped and will never finish; the key is claimed
 * again.
 */
static int wait_interruptible(memento_class *cls, const void *args,
                              struct memento__thread *self, struct memento__counters *counters,
                              struct memento__creation *c, const struct timespec *deadline,
                              bool *timed_out, bool *interrupted, bool *orphaned)
{
	*interrupted = false;
	*orphaned = false;
	if (cls->interrupt == NULL)
		return memento__creation_wait(c, deadline, timed_out);
	uint64_t deadline_at = deadline != NULL ? memento__deadline_ns(deadline) : UINT64_MAX;
	for (;;) {
		uint64_t slice_at = memento__clock_ns(CLOCK_MONOTONIC) + cls->interrupt_every;
		bool by_slice = slice_at < deadline_at;
		struct timespec slice = { .tv_sec = (time_t)(slice_at / 1000000000u),
		                          .tv_nsec = (long)(slice_at % 1000000000u) };
		int rc = memento__creation_wait(c, by_slice ? &slice : deadline, timed_out);
		if (!*timed_out || !by_slice)
			return rc;
		*timed_out = false;
		memento__wait_end(self);
		/* Relaxed: a change is this thread's own doing (a fork in the
		 * callback), seen in program order. */
		unsigned long forks = atomic_load_explicit(&memento__fork_children,
		                                           memory_order_relaxed);
		int stop = cls->interrupt(args, cls->ctx);
		if (stop != 0) {
			*interrupted = true;
			return stop < 0 ? stop : -EINTR;
		}
		if (atomic_load_explicit(&memento__fork_children, memory_order_relaxed) != forks &&
		    (atomic_load_explicit(&c->entry->state, memory_order_acquire) &
		     MEMENTO__PHASE) == MEMENTO__CREATING) {
			*orphaned = true;
			return -EOWNERDEAD;
		}
		if (memento__wait_begin(self, c) == -EDEADLK) {
			*interrupted = true;
			memento__count(counters, MEMENTO__DEADLOCKS);
			return -EDEADLK;
		}
	}
}

/* Holding a reference on another thread's creation: wait and share its
 * outcome.  The record keeps the entry while it is read (and held, for a
 * memento_ref).  *retry: the caller claims the key again, because the
 * creation ended without an outcome (its creator's own deadline passed)
 * or, fp set (a revalidating get), made its object for other inputs. */
static int wait_and_share(memento_class *cls, const void *args, struct memento__thread *self,
                          struct memento__counters *counters, struct memento__creation *c,
                          const struct timespec *deadline, const struct memento__digest *fp,
                          bool hold, struct memento__entry **out, bool *retry)
{
	*retry = false;
	int rc = memento__wait_begin(self, c);
	if (rc == -EDEADLK) {
		memento__count(counters, MEMENTO__DEADLOCKS);
	} else {
		bool timed_out, interrupted, orphaned;
		memento__count(counters, MEMENTO__WAITS);
		rc = wait_interruptible(cls, args, self, counters, c, deadline, &timed_out,
		                        &interrupted, &orphaned);
		memento__wait_end(self);
		if (rc == 0 && fp != NULL &&
		    memcmp(memento__fp_of(c->entry), fp, sizeof *fp) != 0) {
			/* A revalidating get joined a creation from other inputs:
			 * not its object; the claim again rebuilds it, once. */
			*retry = true;
		} else if (rc == 0) {
			*out = c->entry;
			if (hold)
				hold_for_ref(c->entry);
		} else if (timed_out) {
			memento__count(counters, MEMENTO__TIMEOUTS);
		} else if (interrupted) {
			/* The creation goes on; nothing of it is read. */
		} else if (orphaned) {
			/* Its record stays with the orphans (the dead owner's
			 * reference keeps it from our unref below). */
			*retry = true;
		} else {
			/* Acquire in the wait saw FAILED: no_outcome is the
			 * creator's, written before. */
			*retry = c->no_outcome;
		}
	}
	memento__creation_unref(c);
	return rc;
}

/* What a dying refresher's cleanup handler needs. */
struct refresh {
	memento_class *cls;
	struct memento__entry *entry;
	struct memento__counters *counters;
};

static void refresher_died(void *arg)
{
	struct refresh *r = arg;
	memento__count(r->counters, MEMENTO__FAILURES);
	memento__refresh_fail(r->cls, r->entry);
	memento__life_release(r->cls->cache, r->entry);
}

/*
 * This thread claimed the refresh of e, which it holds: rebuilds the object
 * outside every lock and returns the new one's entry, or e's after a failure
 * (counted, and retried refresh_after later).  hold: the entry returned
 * stays held, for a memento_ref; else the hold goes (the caller's guard
 * keeps the entry).
 */
static void refresh_and_settle(struct lookup *lk, const void *args, struct memento__entry *e,
                               bool hold, struct memento__entry **out)
{
	memento_class *cls = lk->cls;
	struct refresh r = { cls, e, lk->counters };
	void *made = NULL;
	int rc;

	memento__count(lk->counters, MEMENTO__CREATIONS);
	pthread_cleanup_push(refresher_died, &r);
	rc = call_create(cls, args, &made);
	pthread_cleanup_pop(0);

	struct memento__entry *got = NULL;
	if (rc == 0)
		got = memento__refresh_publish(cls, e, made, weight_of(cls, made), lk->hash,
		                               lk->counters);
	else
		memento__count(lk->counters, MEMENTO__FAILURES);
	if (got == NULL) {
		if (rc != 0)
			memento__refresh_fail(cls, e);
		got = e;
	}
	if (!hold)
		memento__life_release(cls->cache, got);
	*out = got;
}

static bool deadline_valid(const struct timespec *deadline)
{
	return deadline == NULL || (deadline->tv_nsec >= 0 && deadline->tv_nsec < 1000000000L);
}

/* What a lookup makes of the entry it found in the table. */
enum found {
	FOUND_HIT,        /* ready, linked, fresh: the entry holds the object */
	FOUND_REMEMBERED, /* a failure its class remembers: *rc is its error */
	FOUND_SETTLE,     /* anything else: the shard lock settles it */
};

/*
 * Judges e, found in the table for lk's key, inside the section that
 * found it; its state is acquired (pairs with the release that published
 * its object or error).  An entry a forget detached after the probe found
 * it (its creation then published) goes to the lock, as the front check
 * sends it.  A remembered failure costs no create and no lock.
 */
static inline __attribute__((always_inline)) enum found judge_found(struct lookup *lk,
                                                                    struct memento__entry *e,
                                                                    int *rc)
{
	uint32_t s = state_of(e);
	uint32_t phase = s & (MEMENTO__PHASE | MEMENTO__UNLINKED);
	if (MEMENTO__LIKELY(phase == MEMENTO__READY) && MEMENTO__LIKELY(hit_fresh(lk, e)))
		return FOUND_HIT;
	if (phase == MEMENTO__FAILED && memento__now_once(&lk->now) < e->u.creation->retry_at) {
		*rc = e->u.creation->error;
		return FOUND_REMEMBERED;
	}
	return FOUND_SETTLE;
}

static int settle(struct lookup *lk, const void *args, const struct timespec *deadline,
                  bool hold, struct memento__entry **out);

/*
 * The protocol behind memento_get, memento_get_until and memento_get_ref,
 * each with its own inlined copy: *out gets the entry that holds the
 * object.  hold: a get that returns a counted reference (works outside a
 * guard; a guarded entry returned is held).
 */
static inline __attribute__((always_inline)) int get(memento_class *cls, const void *args,
                                                     const struct timespec *deadline,
                                                     bool hold, struct memento__entry **out)
{
	struct lookup lk;
	int rc = lookup_begin(&lk, cls, args, hold, true, NULL);
	if (MEMENTO__UNLIKELY(rc != 0))
		return rc;

	lookup_hash(&lk);
	struct memento__entry *e = front_find(&lk);
	if (MEMENTO__LIKELY(e != NULL)) {
		if (MEMENTO__LIKELY(hit_fresh(&lk, e))) {
			lookup_end(&lk);
			memento__count(lk.counters, MEMENTO__HITS);
			if (hold)
				hold_for_ref(e); /* in the front: this guard keeps it */
			*out = e;
			return 0;
		}
		/* Expired, stale or made from other inputs: the shard lock
		 * settles it. */
	} else {
		bool began = section_begin(&lk);
		e = memento__table_get(lookup_shard(&lk), lk.hash, lk.probe);
		if (MEMENTO__LIKELY(e != NULL)) {
			enum found found = judge_found(&lk, e, &rc);
			if (MEMENTO__LIKELY(found == FOUND_HIT)) {
				if (hold)
					hold_for_ref(e);
				section_end(&lk, began);
				front_keep(&lk, e);
				lookup_end(&lk);
				memento__count(lk.counters, MEMENTO__HITS);
				*out = e;
				return 0;
			}
			if (found == FOUND_REMEMBERED) {
				section_end(&lk, began);
				lookup_end(&lk);
				memento__count(lk.counters, MEMENTO__MISSES);
				return rc;
			}
		}
		section_end(&lk, began);
	}

	return settle(&lk, args, deadline, hold, out);
}

/*
 * Everything but a fresh hit is settled under the shard lock: once, unless
 * the creation this get waited on ended without an outcome (its creator
 * stopped at its own deadline waiting for another process); then the key,
 * still in the probe, is claimed again, and counted once.  lk holds a
 * hashed key; settle ends it.  No epoch section may be open.
 */
static __attribute__((noinline)) int settle(struct lookup *lk, const void *args,
                                            const struct timespec *deadline, bool hold,
                                            struct memento__entry **out)
{
	memento_class *cls = lk->cls;
	int rc;
	for (bool first = true;; first = false) {
		struct claimed got = { 0 };
		rc = claim(lk, hold, &got);
		if (rc != CLAIM_WAIT)
			lookup_end(lk); /* the key now lives in the entry, if needed */
		if (first)
			memento__count(lk->counters, rc == CLAIM_READY || rc == CLAIM_REFRESH
			                                    ? MEMENTO__HITS
			                                    : MEMENTO__MISSES);
		switch (rc) {
		case CLAIM_READY:
			front_keep(lk, got.entry);
			*out = got.entry;
			return 0;
		case CLAIM_REFRESH:
			refresh_and_settle(lk, args, got.entry, hold, out);
			return 0;
		case CLAIM_REMEMBERED:
			return got.error;
		case CLAIM_CREATE:
			return create_and_settle(cls, lk->counters, got.creation, args,
			                         (cls->life & MEMENTO__LIFE_REVALIDATE) ? &lk->fp
			                                                                : NULL,
			                         deadline, hold, out);
		case CLAIM_WAIT: {
			bool retry;
			struct abandoned_wait w = { lk, got.creation };
			pthread_cleanup_push(wait_abandoned, &w);
			rc = wait_and_share(cls, args, lk->tc->thread, lk->counters, got.creation,
			                    deadline,
			                    (cls->life & MEMENTO__LIFE_REVALIDATE) ? &lk->fp : NULL,
			                    hold, out, &retry);
			pthread_cleanup_pop(0);
			if (retry)
				continue;
			lookup_end(lk);
			return rc;
		}
		default:
			if (rc == -EDEADLK)
				memento__count(lk->counters, MEMENTO__DEADLOCKS);
			return rc;
		}
	}
}

int memento_get(memento_class *cls, const void *args, void **obj)
{
	if (MEMENTO__UNLIKELY(cls == NULL || obj == NULL))
		return -EINVAL;
	struct memento__entry *e;
	int rc = get(cls, args, NULL, false, &e);
	if (MEMENTO__LIKELY(rc == 0))
		*obj = e->u.obj;
	return rc;
}

int memento_get_until(memento_class *cls, const void *args, void **obj,
                      const struct timespec *deadline)
{
	if (cls == NULL || obj == NULL || !deadline_valid(deadline))
		return -EINVAL;
	struct memento__entry *e;
	int rc = get(cls, args, deadline, false, &e);
	if (rc == 0)
		*obj = e->u.obj;
	return rc;
}

int memento_get_ref(memento_class *cls, const void *args, memento_ref **ref)
{
	if (cls == NULL || ref == NULL)
		return -EINVAL;
	struct memento__entry *e;
	int rc = get(cls, args, NULL, true, &e);
	if (rc == 0)
		*ref = (memento_ref *)(void *)e;
	/* Outside a guard, this call is a place where due objects go. */
	memento__reclaim_due_if_any(cls->cache, memento__tcache_last(cls->cache));
	return rc;
}

int memento_peek(memento_class *cls, const void *args, void **obj)
{
	if (cls == NULL || obj == NULL)
		return -EINVAL;
	struct lookup lk;
	int rc = lookup_begin(&lk, cls, args, false, false, NULL);
	if (rc != 0)
		return rc;

	lookup_hash(&lk);
	struct memento__entry *e = front_find(&lk);
	uint32_t phase = MEMENTO__READY;
	bool began = false, from_table = e == NULL;
	if (from_table) {
		began = section_begin(&lk);
		e = memento__table_get(lookup_shard(&lk), lk.hash, lk.probe);
		phase = e != NULL ? state_of(e) & MEMENTO__PHASE : 0;
	}
	/* A stale object is returned, not rebuilt: a peek never creates. */
	if (phase == MEMENTO__READY &&
	    memento__freshness_of(cls, e, &lk.now) == MEMENTO__EXPIRED)
		phase = 0;
	/* Ready: the entry lives with the cache, or with the caller's guard. */
	void *found = phase == MEMENTO__READY ? e->u.obj : NULL;
	section_end(&lk, began);
	if (from_table && phase == MEMENTO__READY)
		front_keep(&lk, e);
	lookup_end(&lk);

	switch (phase) {
	case MEMENTO__READY:
		memento__count(lk.counters, MEMENTO__HITS);
		*obj = found;
		return 0;
	case MEMENTO__CREATING:
		return -EINPROGRESS;
	default:
		return -ENOENT; /* absent, expired, or failed */
	}
}

int memento_forget(memento_class *cls, const void *args)
{
	if (cls == NULL)
		return -EINVAL;
	struct lookup lk;
	int rc = lookup_begin(&lk, cls, args, true, false, NULL);
	if (rc != 0)
		return rc;

	lookup_hash(&lk);
	struct memento__shard *shard = lookup_shard(&lk);
	memento__shard_lock(shard);
	struct memento__entry *e = memento__table_get(shard, lk.hash, lk.probe);
	if (e == NULL) {
		rc = -ENOENT;
	} else {
		uint32_t phase = atomic_load_explicit(&e->state, memory_order_relaxed) & MEMENTO__PHASE;
		if (phase == MEMENTO__FAILED)
			memento__remembered_drop(shard, e);
		else if (phase == MEMENTO__READY && (cls->life & MEMENTO__LIFE_GUARDED))
			memento__drop(shard, cls, e); /* destroyed once no guard or ref sees it */
		else /* kept until cache_free, or, in flight, retired when published */
			memento__shard_unlink(shard, e);
	}
	memento__shard_unlock(shard);
	lookup_end(&lk);
	memento__reclaim_due_if_any(cls->cache, lk.tc);
	return rc;
}

/* ---- batches ------------------------------------------------------------------ */

/*
 * memento_get_many works on chunks of keys, in four steps (docs/design.md,
 * "Batches"): build and hash every key; look each one up with a tag-only
 * probe (one cache miss, the slot's) and prefetch the entry it names; then
 * check every candidate, whose entry is now on its way or in the cache;
 * then settle, in order, what was not a fresh hit.  A single get's misses
 * come one after another, since its code between them fills the core's
 * window of instructions in flight; here the misses of different keys
 * overlap.
 */
#define MANY_CHUNK 32
/* Probes of a chunk, end to end, written there by the key callbacks.  A
 * key starts in the room while less than MANY_ROOM is used (32 keys of 6
 * words; 16-byte keys are 2), and the room has space past that for the
 * longest key.  The thread's scratch buffer stays free for the gets that
 * a key callback or settling a key may run (a create that gets others). */
#define MANY_ROOM 2048

enum many_step {
	MANY_DONE,      /* rc holds the result: a key callback's error */
	MANY_FAILED,    /* rc holds a failure its class remembers (a miss) */
	MANY_HIT,       /* e is a fresh ready entry for the key */
	MANY_CANDIDATE, /* e is what a tag-only probe found, or NULL */
	MANY_SETTLE,    /* the shard lock settles it (settle()) */
};

struct many_chunk {
	size_t n;
	struct lookup lk[MANY_CHUNK];
	struct memento__entry *e[MANY_CHUNK];
	unsigned char step[MANY_CHUNK];
	int rc[MANY_CHUNK]; /* MANY_DONE, MANY_FAILED */
	alignas(8) unsigned char room[MANY_ROOM + MEMENTO__PROBE_SIZE];
};

/* Cancelled while settling a key: the keys left release their probes. */
static void many_abandoned(void *arg)
{
	struct many_chunk *c = arg;
	for (size_t i = 0; i < c->n; i++)
		lookup_end(&c->lk[i]);
}

/* Builds and hashes the keys of args[0..n) while they fit the chunk;
 * returns how many it took (at least one). */
static size_t many_keys(struct many_chunk *c, memento_class *cls, const void *const args[],
                        size_t n)
{
	size_t used = 0, i = 0;
	c->n = 0;
	while (i < n && i < MANY_CHUNK && used < MANY_ROOM) {
		struct lookup *lk = &c->lk[i];
		int rc = lookup_begin(lk, cls, args[i], false, true, c->room + used);
		i++;
		c->n = i;
		if (rc != 0) {
			lk->probe = NULL;
			lk->heap_probe = NULL;
			c->step[i - 1] = MANY_DONE;
			c->rc[i - 1] = rc;
			continue;
		}
		lookup_hash(lk);
		c->step[i - 1] = MANY_CANDIDATE;
		used += memento__round_to_words(offsetof(struct memento__entry, key) +
		                                memento__entry_len(lk->probe));
	}
	return c->n;
}

/* Finds what a probe can find without the lock: front hits, then
 * candidates from the table, each prefetched; then checks the candidates. */
static void many_find(struct many_chunk *c)
{
	bool began = false;
	struct lookup *opener = NULL; /* the lookup whose thread record began the section */
	for (size_t i = 0; i < c->n; i++) {
		if (c->step[i] != MANY_CANDIDATE)
			continue;
		struct lookup *lk = &c->lk[i];
		struct memento__entry *e = front_find(lk);
		if (e != NULL) {
			c->e[i] = e;
			c->step[i] = hit_fresh(lk, e) ? MANY_HIT : MANY_SETTLE;
			continue;
		}
		if (opener == NULL) {
			/* Not c->lk[0]: a key whose lookup failed early has no
			 * thread record. */
			began = section_begin(lk);
			opener = lk;
		}
		e = memento__table_candidate(lookup_shard(lk), lk->hash, lk->probe);
		if (e != NULL)
			__builtin_prefetch(e);
		c->e[i] = e;
	}
	for (size_t i = 0; i < c->n; i++) {
		if (c->step[i] != MANY_CANDIDATE)
			continue;
		struct lookup *lk = &c->lk[i];
		struct memento__entry *e = c->e[i];
		if (e != NULL) {
			/* The entry's identity and key were published by ck_hs_put
			 * (see table insert), as for hs_compare. */
			MEMENTO__TSAN_ACQUIRE(e);
			uint32_t identity = atomic_load_explicit(&lk->probe->state, memory_order_relaxed);
			uint32_t s = atomic_load_explicit(&e->state, memory_order_relaxed);
			if (((s ^ identity) & ~(uint32_t)MEMENTO__STATE_BITS) != 0 ||
			    !memento__entry_key_equal(e, lk->probe, memento__len_of(identity))) {
				/* Another key under the same tag: probe exactly. */
				e = memento__table_get(lookup_shard(lk), lk->hash, lk->probe);
			}
		}
		enum found found = e != NULL ? judge_found(lk, e, &c->rc[i]) : FOUND_SETTLE;
		if (found == FOUND_HIT) {
			c->e[i] = e;
			c->step[i] = MANY_HIT;
			/* The caller is about to read it. */
			__builtin_prefetch(e->u.obj);
			front_keep(lk, e);
		} else {
			c->step[i] = found == FOUND_REMEMBERED ? MANY_FAILED : MANY_SETTLE;
		}
	}
	if (opener != NULL)
		section_end(opener, began);
}

/* The results, in order: hits at once, the rest through the lock. */
static int many_finish(struct many_chunk *c, const void *const args[], void *objs[], int rcs[])
{
	int first = 0;
	pthread_cleanup_push(many_abandoned, c);
	for (size_t i = 0; i < c->n; i++) {
		struct lookup *lk = &c->lk[i];
		int rc;
		if (c->step[i] == MANY_DONE) {
			rc = c->rc[i];
		} else if (c->step[i] == MANY_FAILED) {
			lookup_end(lk);
			memento__count(lk->counters, MEMENTO__MISSES);
			rc = c->rc[i];
		} else if (c->step[i] == MANY_HIT) {
			lookup_end(lk);
			memento__count(lk->counters, MEMENTO__HITS);
			rc = 0;
		} else {
			rc = settle(lk, args[i], NULL, false, &c->e[i]);
		}
		objs[i] = rc == 0 ? c->e[i]->u.obj : NULL;
		if (rcs != NULL)
			rcs[i] = rc;
		if (rc != 0 && first == 0)
			first = rc;
	}
	pthread_cleanup_pop(0);
	return first;
}

int memento_get_many(memento_class *cls, const void *const args[], size_t n, void *objs[],
                     int rcs[])
{
	if (cls == NULL || (n != 0 && (args == NULL || objs == NULL)))
		return -EINVAL;
	int first = 0;
	struct many_chunk c;
	for (size_t at = 0; at < n;) {
		size_t took = many_keys(&c, cls, args + at, n - at);
		many_find(&c);
		int rc = many_finish(&c, args + at, objs + at, rcs != NULL ? rcs + at : NULL);
		if (rc != 0 && first == 0)
			first = rc;
		at += took;
	}
	return first;
}
