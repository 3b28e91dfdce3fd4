/*
 * A shard's entries live in its slab: chunks of the cache's allocator,
 * filled front to back, entries packed at 8-byte steps with no per-entry
 * header.  A freed entry goes on a free list for its exact size, keeping its
 * identity bits, so the walk below can still step over it.  An entry larger
 * than MEMENTO__SLAB_SMALL_MAX gets a chunk of its own, freed with it.
 * Freed are: failed creations, after their grace period, and a guarded
 * class's entries once their objects were destroyed (lifetime/).  Other
 * ready entries are never freed before the cache is: their objects stay
 * valid until memento_cache_free, and each thread's front cache (get.c)
 * keeps pointers to them, forgotten or not, with no epoch section to
 * protect them.
 *
 * Everything here runs under the shard lock, or with no other thread left
 * (memento_cache_free).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <assert.h>

struct memento__chunk {
	struct memento__chunk *prev, *next; /* the slab's chunk list */
	size_t size;                        /* of this allocation, header included */
	size_t used;                        /* data bytes handed out */
	alignas(MEMENTO__CACHELINE) unsigned char data[];
};

/* Small chunks start at this size and double up to the largest. */
#define FIRST_CHUNK 1024u
#define LARGEST_CHUNK (64u * 1024u)

static size_t list_of(size_t size)
{
	return size / 8 - 3; /* 24 -> 0 */
}

static struct memento__chunk *chunk_new(struct memento__shard *shard, size_t data_size)
{
	size_t size = sizeof(struct memento__chunk) + data_size;
	struct memento__chunk *c = memento__alloc_with(&shard->cache->allocator, size,
	                                               MEMENTO__CACHELINE);
	if (c == NULL)
		return NULL;
	c->prev = NULL;
	c->next = shard->slab.chunks;
	if (c->next != NULL)
		c->next->prev = c;
	shard->slab.chunks = c;
	c->size = size;
	c->used = 0;
	return c;
}

static void chunk_free(struct memento__shard *shard, struct memento__chunk *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		shard->slab.chunks = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	memento__free_with(&shard->cache->allocator, c, c->size);
}

static size_t chunk_room(const struct memento__chunk *c)
{
	return c->size - sizeof *c - c->used;
}

struct memento__entry *memento__slab_alloc(struct memento__shard *shard, size_t size)
{
	struct memento__slab *slab = &shard->slab;
	if (size > MEMENTO__SLAB_SMALL_MAX) {
		struct memento__chunk *own = chunk_new(shard, size);
		if (own == NULL)
			return NULL;
		own->used = size;
		return (struct memento__entry *)(void *)own->data;
	}
	struct memento__entry **list = &slab->free[list_of(size)];
	if (*list != NULL) {
		struct memento__entry *e = *list;
		*list = e->u.free_next;
		return e;
	}
	if (slab->bump == NULL || chunk_room(slab->bump) < size) {
		/* The old chunk's tail (under 256 bytes) stays unused. */
		size_t data = slab->next_chunk_size != 0 ? slab->next_chunk_size : FIRST_CHUNK;
		struct memento__chunk *c = chunk_new(shard, data);
		if (c == NULL)
			return NULL;
		slab->bump = c;
		slab->next_chunk_size = data < LARGEST_CHUNK ? 2 * data : LARGEST_CHUNK;
	}
	struct memento__entry *e = (struct memento__entry *)(void *)(slab->bump->data + slab->bump->used);
	slab->bump->used += size;
	return e;
}

void memento__slab_free(struct memento__shard *shard, struct memento__entry *e)
{
	/* Never a ready entry: front caches may hold those (a guarded one is
	 * marked dead first, once no guard or reference can see it). */
	assert((atomic_load_explicit(&e->state, memory_order_relaxed) & MEMENTO__PHASE) !=
	       MEMENTO__READY);
	size_t size = memento__entry_size_of(e);
	if (size > MEMENTO__SLAB_SMALL_MAX) {
		chunk_free(shard, MEMENTO__CONTAINER(e, struct memento__chunk, data));
		return;
	}
	/* Phase 0, identity kept (the walk steps by its length).  Relaxed: no
	 * reader is left (a grace period has passed). */
	atomic_store_explicit(&e->state,
	                      atomic_load_explicit(&e->state, memory_order_relaxed) &
	                              ~(uint32_t)MEMENTO__STATE_BITS,
	                      memory_order_relaxed);
	struct memento__entry **list = &shard->slab.free[list_of(size)];
	e->u.free_next = *list;
	*list = e;
}

void memento__slab_walk(struct memento__shard *shard,
                        void (*visit)(struct memento__entry *e, void *ctx), void *ctx)
{
	for (struct memento__chunk *c = shard->slab.chunks; c != NULL; c = c->next) {
		size_t at = 0;
		while (at < c->used) {
			struct memento__entry *e = (struct memento__entry *)(void *)(c->data + at);
			/* Before visit may reuse e. */
			at += memento__entry_size_of(e);
			visit(e, ctx);
		}
	}
}

void memento__slab_destroy(struct memento__shard *shard)
{
	while (shard->slab.chunks != NULL)
		chunk_free(shard, shard->slab.chunks);
	memset(&shard->slab, 0, sizeof shard->slab);
}
