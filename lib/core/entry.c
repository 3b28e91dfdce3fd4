/*
 * An entry's life: CREATING (one owner runs create), then READY (holds the
 * object until the cache is freed; for a guarded class, until it is
 * removed and reclaimed, lifetime/reclaim.c) or FAILED (unlinked, freed
 * once the last waiter and the last reader are gone; or, a failure its
 * class remembers, linked until its ttl ends, lifetime/freshness.c).
 * Waiters sleep on the state word, a Linux futex; the finishing owner
 * wakes them only if one announced itself with the WAITERS bit.
 *
 * While CREATING, the entry's u points to its creation record: the owner
 * (for deadlock walks), the references of the creator and its waiters, and
 * the error to hand them.  A ready entry drops the record, so it holds only
 * what a hit reads.  Joining a creation and leaving CREATING both happen
 * under the shard lock, which is what makes u safe to read as the record.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct memento__creation *memento__creation_spare(struct memento__tcache *tc)
{
	if (tc->spare == NULL)
		tc->spare = memento__alloc(tc->cache, sizeof *tc->spare);
	return tc->spare;
}

bool memento__creation_start(struct memento__shard *shard, memento_class *cls,
                             const struct memento__entry *probe, uint64_t hash,
                             struct memento__tcache *tc)
{
	struct memento__creation *c = tc->spare;
	uint32_t identity = atomic_load_explicit(&probe->state, memory_order_relaxed);
	uint32_t len = memento__len_of(identity);
	struct memento__entry *e = memento__slab_alloc(shard, memento__entry_size(identity));
	if (e == NULL)
		return false;
	memento__entry_key_copy(e, probe->key, len);
	e->seq = 0;
	e->u.creation = c;
	atomic_init(&e->state, identity | MEMENTO__CREATING);
	atomic_init(&c->owner, tc->thread);
	c->entry = e;
	c->shard = shard;
	c->cls = cls;
	c->hash = hash;
	atomic_init(&c->refs, 1); /* the creator's */
	c->error = 0;
	c->no_outcome = false;
	if (!memento__shard_insert(shard, e, hash)) {
		memento__slab_free(shard, e);
		return false;
	}
	tc->spare = NULL;
	return true;
}

/* A record no one references: kept as this thread's spare if it has none. */
static void creation_release(struct memento__creation *c)
{
	memento_cache *cache = c->shard->cache;
	struct memento__tcache *tc = memento__tcache_last(cache);
	if (tc != NULL && tc->spare == NULL)
		tc->spare = c;
	else
		memento__free(cache, c, sizeof *c);
}

struct memento__creation *memento__creation_join(struct memento__entry *e)
{
	/* Under the lock, CREATING: publish and fail change u and the phase
	 * under this lock too, and the creator's reference is still held. */
	struct memento__creation *c = e->u.creation;
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

/*
 * The last reference on c is gone: a ready entry keeps its object and lets
 * go of the record (and of the record's hold on a guarded entry); a failed
 * one, unlinked, is freed with its record once no reader can probe it.
 * Returns whether that free still needs the shard lock, which the caller
 * may hold.
 */
static bool creation_last_unref(struct memento__creation *c)
{
	struct memento__entry *e = c->entry;
	uint32_t s = atomic_load_explicit(&e->state, memory_order_relaxed);
	if ((s & MEMENTO__PHASE) != MEMENTO__READY)
		return true;
	memento_cache *cache = c->shard->cache;
	creation_release(c);
	if (memento__guarded_of(s))
		memento__life_release(cache, e);
	return false;
}

void memento__creation_unref(struct memento__creation *c)
{
	/* Acq_rel: every holder's reads of c happen before the free. */
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (creation_last_unref(c)) {
		memento__shard_lock(c->shard);
		memento__shard_defer_free(c->shard, c);
		memento__shard_unlock(c->shard);
	}
}

void memento__creation_unref_locked(struct memento__creation *c)
{
	/* Acq_rel: as above. */
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (creation_last_unref(c))
		memento__shard_defer_free(c->shard, c);
}

/*
 * Under the shard lock: moves a CREATING entry to phase `to`, keeping the
 * UNLINKED bit and the identity.  Returns the state it replaced; the caller
 * wakes the sleepers, outside the lock, if it had WAITERS.
 */
static uint32_t entry_finish(struct memento__creation *c, uint32_t to)
{
	struct memento__entry *e = c->entry;
	/* The owner edge goes first: a deadlock walk that still sees this
	 * thread as owner must not find it waiting on anything newer. */
	atomic_store_explicit(&c->owner, NULL, memory_order_release);
	uint32_t old = atomic_load_explicit(&e->state, memory_order_relaxed);
	/* Release: obj and error are visible to whoever acquires the phase. */
	while (!atomic_compare_exchange_weak_explicit(
		&e->state, &old, (old & ~(uint32_t)(MEMENTO__PHASE | MEMENTO__WAITERS)) | to,
		memory_order_release, memory_order_relaxed))
		;
	return old;
}

static void entry_wake(struct memento__entry *e, uint32_t old)
{
	if (old & MEMENTO__WAITERS)
		syscall(SYS_futex, &e->state, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

void memento__life_start(struct memento__entry *e, struct memento__shard *shard,
                         const memento_class *cls, uint32_t refs, uint64_t weight, uint64_t hash)
{
	struct memento__life *l = memento__life_of(e);
	uint32_t identity = atomic_load_explicit(&e->state, memory_order_relaxed);
	atomic_init(&l->refs, refs);
	l->key_words = memento__len_of(identity) / 8;
	l->shard = shard;
	if (!(identity & MEMENTO__FULL_LIFE))
		return; /* the short trailer ends here */
	l->u.node = (struct memento__policy_node){ .weight = weight, .hash = (uint32_t)hash };
	l->born = (cls->life & MEMENTO__LIFE_TIMED) ? memento__now() : 0;
	atomic_init(&l->refresh_at,
	            cls->refresh_after != 0 ? l->born + cls->refresh_after : UINT64_MAX >> 1);
}

/*
 * The owner's success.  Under the lock, because a joining waiter reads
 * e->u as the creation record while the phase is CREATING.  A forgotten
 * entry (UNLINKED) of a never-reclaimed class keeps its object all the
 * same, until the cache is freed; a guarded one goes to reclamation.
 */
void memento__creation_publish(struct memento__creation *c, void *obj, uint64_t weight,
                               bool hold, struct memento__counters *counters)
{
	struct memento__entry *e = c->entry;
	memento_cache *cache = c->shard->cache;
	bool guarded = memento__guarded_of(atomic_load_explicit(&e->state, memory_order_relaxed));
	memento__shard_lock(c->shard);
	e->u.obj = obj;
	e->seq = memento__next_seq(cache);
	/* Held by the table and by the record (the creator and waiters read
	 * the object through it, outside any guard for a memento_get_ref),
	 * and for the creator's memento_ref if it asked. */
	if (guarded)
		memento__life_start(e, c->shard, c->cls, 2u + (hold ? 1u : 0u), weight, c->hash);
	uint32_t old = entry_finish(c, MEMENTO__READY);
	if (guarded)
		memento__admit(c->shard, c->cls, e, counters);
	memento__shard_unlock(c->shard);
	entry_wake(e, old);
	memento__creation_unref(c);
}

/*
 * The owner's failure (an error from create, or its thread died): unlink,
 * hand err to every waiter, drop the owner's reference.
 */
void memento__creation_fail(struct memento__creation *c, int err)
{
	struct memento__entry *e = c->entry;
	memento__shard_lock(c->shard);
	c->error = err;
	if (!(atomic_load_explicit(&e->state, memory_order_relaxed) & MEMENTO__UNLINKED) &&
	    !memento__remember_failure(c))
		memento__shard_unlink(c->shard, e);
	uint32_t old = entry_finish(c, MEMENTO__FAILED);
	memento__shard_unlock(c->shard);
	entry_wake(e, old);
	memento__creation_unref(c);
}

/* Sleeps while the word holds `expected`; false once deadline has passed. */
static bool futex_wait_until(_Atomic uint32_t *word, uint32_t expected,
                             const struct timespec *deadline)
{
	/* WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline (WAIT takes a
	 * relative one). */
	long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, expected, deadline, NULL,
	                 FUTEX_BITSET_MATCH_ANY);
	if (r == 0 || errno == EAGAIN || errno == EINTR)
		return true; /* woken, the word changed, or a signal: look again */
	/* ETIMEDOUT, or EINVAL for a deadline before the clock's epoch (a
	 * negative tv_sec), which passed long ago. */
	return deadline == NULL;
}

static int wait_outcome(const struct memento__creation *c, uint32_t s)
{
	return (s & MEMENTO__PHASE) == MEMENTO__READY ? 0 : c->error;
}

/*
 * Waits, holding a reference on c, until its entry leaves CREATING or the
 * deadline passes.
 * Returns 0 (READY) or the creation's error (FAILED); or -ETIMEDOUT with
 * *timed_out set, which tells this wait's own timeout from a create that
 * itself returned -ETIMEDOUT.  Leaves errno as it found it.
 */
int memento__creation_wait(struct memento__creation *c, const struct timespec *deadline,
                           bool *timed_out)
{
	struct memento__entry *e = c->entry;
	int saved_errno = errno;
	int rc = 0;
	*timed_out = false;
	for (;;) {
		/* Acquire: pairs with the release in entry_finish. */
		uint32_t s = atomic_load_explicit(&e->state, memory_order_acquire);
		if ((s & MEMENTO__PHASE) != MEMENTO__CREATING) {
			rc = wait_outcome(c, s);
			break;
		}
		if (!(s & MEMENTO__WAITERS)) {
			if (!atomic_compare_exchange_weak_explicit(&e->state, &s, s | MEMENTO__WAITERS,
			                                           memory_order_relaxed,
			                                           memory_order_relaxed))
				continue;
			s |= MEMENTO__WAITERS;
		}
		if (!futex_wait_until(&e->state, s, deadline)) {
			/* One last look: the creation may have finished at the deadline. */
			s = atomic_load_explicit(&e->state, memory_order_acquire);
			if ((s & MEMENTO__PHASE) == MEMENTO__CREATING) {
				*timed_out = true;
				rc = -ETIMEDOUT;
				break;
			}
		}
	}
	errno = saved_errno;
	return rc;
}
