/*
 * A class's options: checked once, then turned into the flags its gets
 * test (memento_class.life) and the per-shard state its bounds, expiry and
 * remembered failures need.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

/* How often a wait asks its class's interrupt callback, unless told. */
#define INTERRUPT_EVERY_DEFAULT_NS 100000000u
/* Shorter slices would spend the waiter on the wait-for graph's lock. */
#define INTERRUPT_EVERY_MIN_NS 1000000u

/* Durations past this (146 years) mean "never" and keep sums in range. */
#define DURATION_MAX ((uint64_t)1 << 62)

static uint64_t duration(uint64_t ns)
{
	return ns < DURATION_MAX ? ns : DURATION_MAX;
}

/* The options the caller's header knew about, the rest defaulted.  A
 * newer header's larger struct is accepted when what this library does
 * not know of is zero (its defaults). */
static int options_read(const memento_class_options *in, memento_class_options *out)
{
	*out = (memento_class_options)MEMENTO_CLASS_OPTIONS_INIT;
	if (in == NULL)
		return 0;
	if (in->size < sizeof *out)
		return -EINVAL;
	const unsigned char *tail = (const unsigned char *)in + sizeof *out;
	for (size_t i = 0; i < in->size - sizeof *out; i++)
		if (tail[i] != 0)
			return -EINVAL;
	memcpy(out, in, sizeof *out);
	out->size = sizeof *out;
	return 0;
}

static int options_check(const memento_class_options *o)
{
	if (o->lifetime != MEMENTO_LIFETIME_CACHE && o->lifetime != MEMENTO_LIFETIME_GUARDED)
		return -EINVAL;
	/* A weight bound needs weights, and weights need a bound. */
	if ((o->max_weight != 0) != (o->weigh != NULL))
		return -EINVAL;
	/* Removing objects frees nothing when they live until the cache does. */
	if (o->lifetime == MEMENTO_LIFETIME_CACHE &&
	    (o->max_entries != 0 || o->max_weight != 0 || o->expire_after_ns != 0 ||
	     o->refresh_after_ns != 0))
		return -EINVAL;
	/* An interval with nothing to call is a mistake, not a default. */
	if (o->interrupt_every_ns != 0 && o->interrupt == NULL)
		return -EINVAL;
	/* A refresh due after expiry would never run. */
	if (o->refresh_after_ns != 0 && o->expire_after_ns != 0 &&
	    o->refresh_after_ns >= o->expire_after_ns)
		return -EINVAL;
	return 0;
}

static uint32_t life_flags(const memento_class_options *o)
{
	uint32_t life = 0;
	if (o->lifetime == MEMENTO_LIFETIME_GUARDED)
		life |= MEMENTO__LIFE_GUARDED;
	if (o->max_entries != 0 || o->max_weight != 0)
		life |= MEMENTO__LIFE_BOUNDED | MEMENTO__LIFE_POLICY;
	if (o->expire_after_ns != 0 || o->refresh_after_ns != 0)
		life |= MEMENTO__LIFE_TIMED;
	/* Expiry without a bound: a FIFO policy finds the oldest entries. */
	if (o->expire_after_ns != 0)
		life |= MEMENTO__LIFE_POLICY;
	if (o->failure_ttl_ns != 0)
		life |= MEMENTO__LIFE_REMEMBER;
	if (o->flags & MEMENTO_CLASS_REVALIDATE)
		life |= MEMENTO__LIFE_REVALIDATE;
	return life;
}

static void *policy_alloc(size_t size, void *state)
{
	return memento__alloc(state, size);
}

static void policy_free(void *p, size_t size, void *state)
{
	memento__free(state, p, size);
}

/* A shard's share of a bound: the bound over the shards, rounded up. */
static uint64_t shard_share(uint64_t bound, unsigned int nshards)
{
	return bound / nshards + (bound % nshards != 0);
}

int memento__class_options_apply(memento_class *cls, const memento_class_options *options)
{
	memento_class_options o;
	int rc = options_read(options, &o);
	if (rc == 0)
		rc = options_check(&o);
	if (rc != 0)
		return rc;
	cls->life = life_flags(&o);
	cls->identity = memento__class_identity(
		cls->index, cls->life & MEMENTO__LIFE_GUARDED,
		cls->life & (MEMENTO__LIFE_POLICY | MEMENTO__LIFE_TIMED),
		cls->life & MEMENTO__LIFE_REVALIDATE);
	cls->weigh = o.weigh;
	cls->expire_after = duration(o.expire_after_ns);
	cls->refresh_after = duration(o.refresh_after_ns);
	cls->failure_ttl = duration(o.failure_ttl_ns);
	cls->interrupt = o.interrupt;
	cls->interrupt_every = o.interrupt_every_ns == 0 ? INTERRUPT_EVERY_DEFAULT_NS
	                       : o.interrupt_every_ns < INTERRUPT_EVERY_MIN_NS
	                               ? INTERRUPT_EVERY_MIN_NS
	                               : duration(o.interrupt_every_ns);
	rc = memento__persist_apply(cls, &o);
	if (rc != 0)
		return rc;
	if (!(cls->life & (MEMENTO__LIFE_POLICY | MEMENTO__LIFE_REMEMBER)))
		return 0;

	memento_cache *cache = cls->cache;
	cls->shards = memento__zalloc(cache, cache->nshards * sizeof *cls->shards, 0);
	if (cls->shards == NULL)
		return -ENOMEM;
	struct memento__policy_alloc alloc = { policy_alloc, policy_free, cache };
	uint64_t entries = shard_share(o.max_entries, cache->nshards);
	uint64_t weight = shard_share(o.max_weight, cache->nshards);
	for (unsigned int i = 0; i < cache->nshards; i++)
		memento__policy_init(&cls->shards[i].policy, entries, weight, &alloc);
	return 0;
}

void memento__class_options_free(memento_class *cls)
{
	memento__persist_free(cls);
	if (cls->shards == NULL)
		return;
	memento_cache *cache = cls->cache;
	for (unsigned int i = 0; i < cache->nshards; i++) {
		struct memento__class_shard *cs = &cls->shards[i];
		memento__policy_destroy(&cs->policy);
		/* Their entries go with the slabs. */
		while (cs->remembered_head != NULL) {
			struct memento__creation *c = cs->remembered_head;
			cs->remembered_head = c->remembered_next;
			memento__free(cache, c, sizeof *c);
		}
	}
	memento__free(cache, cls->shards, cache->nshards * sizeof *cls->shards);
}
