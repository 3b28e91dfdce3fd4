/*
 * An entry's life: CREATING (one owner runs create), then READY (holds the
 * object until the cache is freed) or FAILED (unlinked, freed once the last
 * waiter and the last reader are gone).  Waiters sleep on the state word,
 * a Linux futex; the finishing owner wakes them only if one announced itself
 * with the WAITERS bit.
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

/* One allocation: the cold part, then the hot part and its key bytes. */
static size_t entry_size(uint32_t key_len)
{
	return sizeof(struct memento__entry_cold) + sizeof(struct memento__entry) + key_len;
}

struct memento__entry *memento__entry_new(const struct memento__head *probe,
                                          struct memento__thread *owner)
{
	struct memento__entry_cold *cold =
		memento__alloc(probe->cls->cache, entry_size(probe->len));
	if (cold == NULL)
		return NULL;
	struct memento__entry *e = memento__entry_of(cold);
	memcpy(e->key, probe->bytes, probe->len);
	e->head.hash = probe->hash;
	e->head.cls = probe->cls;
	e->head.bytes = e->key;
	e->head.len = probe->len;
	atomic_init(&e->head.state, MEMENTO__CREATING);
	e->obj = NULL;
	atomic_init(&cold->owner, owner);
	cold->link.next = NULL;
	cold->seq = 0;
	atomic_init(&cold->refs, 1); /* the creator's */
	cold->error = 0;
	return e;
}

void memento__entry_free(struct memento__entry *e)
{
	memento__free(e->head.cls->cache, memento__cold(e), entry_size(e->head.len));
}

/*
 * Takes a waiter's reference, unless the entry already failed and lost its
 * last one (then it is waiting for a grace period to be freed).  The caller
 * is in an epoch section or holds the shard lock, so e is still readable.
 */
bool memento__entry_ref(struct memento__entry *e)
{
	_Atomic uint32_t *refs = &memento__cold(e)->refs;
	uint32_t n = atomic_load_explicit(refs, memory_order_relaxed);
	do {
		if (n == 0)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(refs, &n, n + 1, memory_order_relaxed,
	                                                memory_order_relaxed));
	return true;
}

void memento__entry_unref(struct memento__entry *e)
{
	/* Acq_rel: every holder's reads of e happen before the free. */
	if (atomic_fetch_sub_explicit(&memento__cold(e)->refs, 1, memory_order_acq_rel) == 1)
		memento__shard_defer_free(memento__shard_of(e->head.cls->cache, e->head.hash), e);
}

/*
 * Moves a CREATING entry to phase `to`, keeping the UNLINKED bit, and wakes
 * the sleepers.  Returns the state it replaced.
 */
static uint32_t entry_finish(struct memento__entry *e, uint32_t to)
{
	/* The owner edge goes first: a deadlock walk that still sees this
	 * thread as owner must not find it waiting on anything newer. */
	atomic_store_explicit(&memento__cold(e)->owner, NULL, memory_order_release);
	uint32_t old = atomic_load_explicit(&e->head.state, memory_order_relaxed);
	/* Release: obj and error are visible to whoever acquires the phase. */
	while (!atomic_compare_exchange_weak_explicit(&e->head.state, &old,
	                                              to | (old & MEMENTO__UNLINKED),
	                                              memory_order_release, memory_order_relaxed))
		;
	if (old & MEMENTO__WAITERS)
		syscall(SYS_futex, &e->head.state, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
	return old;
}

/*
 * The owner's success.  If memento_forget detached the entry meanwhile, the
 * object is retired here, since forget saw no object to retire.
 */
void memento__entry_publish(struct memento__entry *e, void *obj)
{
	memento_cache *cache = e->head.cls->cache;
	e->obj = obj;
	memento__cold(e)->seq = atomic_fetch_add_explicit(&cache->next_seq, 1, memory_order_relaxed);
	uint32_t old = entry_finish(e, MEMENTO__READY);
	if (old & MEMENTO__UNLINKED) {
		struct memento__shard *shard = memento__shard_of(cache, e->head.hash);
		memento__shard_lock(shard);
		memento__shard_retire(shard, e);
		memento__shard_unlock(shard);
	}
}

/*
 * The owner's failure (an error from create, or its thread died): unlink,
 * hand err to every waiter, drop the owner's reference.
 */
void memento__entry_fail(struct memento__entry *e, int err)
{
	struct memento__shard *shard = memento__shard_of(e->head.cls->cache, e->head.hash);
	memento__shard_lock(shard);
	if (!(atomic_load_explicit(&e->head.state, memory_order_relaxed) & MEMENTO__UNLINKED))
		memento__shard_unlink(shard, e);
	memento__shard_unlock(shard);
	memento__cold(e)->error = err;
	entry_finish(e, MEMENTO__FAILED);
	memento__entry_unref(e);
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

static int wait_outcome(struct memento__entry *e, uint32_t s)
{
	return (s & MEMENTO__PHASE) == MEMENTO__READY ? 0 : memento__cold(e)->error;
}

/*
 * Waits, holding a reference, until e leaves CREATING or deadline passes.
 * Returns 0 (READY) or the creation's error (FAILED); or -ETIMEDOUT with
 * *timed_out set, which tells this wait's own timeout from a create that
 * itself returned -ETIMEDOUT.  Leaves errno as it found it.
 */
int memento__entry_wait(struct memento__entry *e, const struct timespec *deadline,
                        bool *timed_out)
{
	int saved_errno = errno;
	int rc = 0;
	*timed_out = false;
	for (;;) {
		/* Acquire: pairs with the release in entry_finish. */
		uint32_t s = atomic_load_explicit(&e->head.state, memory_order_acquire);
		if ((s & MEMENTO__PHASE) != MEMENTO__CREATING) {
			rc = wait_outcome(e, s);
			break;
		}
		if (!(s & MEMENTO__WAITERS)) {
			if (!atomic_compare_exchange_weak_explicit(&e->head.state, &s, s | MEMENTO__WAITERS,
			                                           memory_order_relaxed,
			                                           memory_order_relaxed))
				continue;
			s |= MEMENTO__WAITERS;
		}
		if (!futex_wait_until(&e->head.state, s, deadline)) {
			/* One last look: the creation may have finished at the deadline. */
			s = atomic_load_explicit(&e->head.state, memory_order_acquire);
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
