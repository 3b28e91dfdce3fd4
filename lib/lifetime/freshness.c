/*
 * Time: expiry and refresh of a ready object, and failures remembered for
 * failure_ttl_ns.  Only classes with such options read the clock, once
 * per check, and a creation once more to date its object.  The clock is
 * CLOCK_MONOTONIC_COARSE: a few ns to read, a few ms of resolution.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <errno.h>
#include <time.h>

uint64_t memento__now(void)
{
	return memento__clock_ns(CLOCK_MONOTONIC_COARSE);
}

enum memento__freshness memento__freshness_timed(const memento_class *cls,
                                                 struct memento__entry *e, uint64_t *now)
{
	const struct memento__life *l = memento__life_of(e);
	uint64_t t = memento__now_once(now);
	if (cls->expire_after != 0 && t - l->born >= cls->expire_after)
		return MEMENTO__EXPIRED;
	/* Relaxed: a stale value sends the get to the shard lock, which
	 * looks again. */
	uint64_t at = atomic_load_explicit(&l->refresh_at, memory_order_relaxed);
	if (!(at & MEMENTO__REFRESHING) && t >= at)
		return MEMENTO__STALE;
	return MEMENTO__FRESH;
}

/* ---- remembered failures ------------------------------------------------------------ */

/* How many expired failures an insert sweeps at most: enough to keep up,
 * since each insert adds one. */
#define SWEEP_MAX 4

static struct memento__class_shard *class_shard(const struct memento__creation *c)
{
	return &c->cls->shards[c->shard - c->shard->cache->shards];
}

static void remembered_unlist(struct memento__class_shard *cs, struct memento__creation *c)
{
	if (c->remembered_prev != NULL)
		c->remembered_prev->remembered_next = c->remembered_next;
	else
		cs->remembered_head = c->remembered_next;
	if (c->remembered_next != NULL)
		c->remembered_next->remembered_prev = c->remembered_prev;
	else
		cs->remembered_tail = c->remembered_prev;
}

void memento__remembered_drop(struct memento__shard *shard, struct memento__entry *e)
{
	struct memento__creation *c = e->u.creation;
	remembered_unlist(class_shard(c), c);
	memento__shard_unlink(shard, e);
	memento__creation_unref_locked(c); /* the table's reference */
}

bool memento__remember_failure(struct memento__creation *c)
{
	/* A creator that died (cancelled, exited) says nothing of the key. */
	if (!(c->cls->life & MEMENTO__LIFE_REMEMBER) || c->error == -EOWNERDEAD ||
	    c->no_outcome)
		return false;
	struct memento__class_shard *cs = class_shard(c);
	uint64_t now = memento__now();
	/* The oldest ones first, whose time is up: a flood of failing keys
	 * that are never asked for again must not pile up. */
	for (int n = 0; n < SWEEP_MAX && cs->remembered_head != NULL; n++) {
		struct memento__creation *old = cs->remembered_head;
		if (now < old->retry_at)
			break;
		memento__remembered_drop(c->shard, old->entry);
	}
	c->retry_at = now + c->cls->failure_ttl;
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed); /* the table's; under the lock */
	c->remembered_next = NULL;
	c->remembered_prev = cs->remembered_tail;
	if (cs->remembered_tail != NULL)
		cs->remembered_tail->remembered_next = c;
	else
		cs->remembered_head = c;
	cs->remembered_tail = c;
	return true;
}
