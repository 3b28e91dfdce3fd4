/*
 * Memory of a cache: every allocation a cache owns goes through the
 * allocator its options named, or through malloc and free when they named
 * none.  The functions here pass sizes back on free, because a user's
 * allocator (a pool, an arena, a counting hook in a test) may need them.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void *default_alloc(size_t size, size_t align, void *state)
{
	(void)state;
	if (align <= alignof(max_align_t))
		return malloc(size != 0 ? size : 1);
	/* aligned_alloc wants a multiple of the alignment. */
	size_t rounded = (size + align - 1) & ~(align - 1);
	return aligned_alloc(align, rounded != 0 ? rounded : align);
}

static void default_free(void *p, size_t size, void *state)
{
	(void)size;
	(void)state;
	free(p);
}

int memento__allocator_read(const memento_allocator *in, memento_allocator *out)
{
	if ((in->alloc == NULL) != (in->free == NULL))
		return -EINVAL;
	if (in->alloc == NULL)
		*out = (memento_allocator){ default_alloc, default_free, NULL };
	else
		*out = *in;
	return 0;
}

void *memento__alloc_with(const memento_allocator *a, size_t size, size_t align)
{
	return a->alloc(size, align != 0 ? align : alignof(max_align_t), a->state);
}

void memento__free_with(const memento_allocator *a, void *p, size_t size)
{
	if (p != NULL)
		a->free(p, size, a->state);
}

void *memento__zalloc_with(const memento_allocator *a, size_t size, size_t align)
{
	void *p = memento__alloc_with(a, size, align);
	if (p != NULL)
		memset(p, 0, size);
	return p;
}

void *memento__zalloc(memento_cache *cache, size_t size, size_t align)
{
	return memento__zalloc_with(&cache->allocator, size, align);
}

void *memento__grow(memento_cache *cache, void *p, size_t old_size, size_t new_size)
{
	void *q = memento__alloc(cache, new_size);
	if (q == NULL)
		return NULL;
	if (p != NULL)
		memcpy(q, p, old_size < new_size ? old_size : new_size);
	memento__free(cache, p, old_size);
	return q;
}
