/*
 * Shared by the suites that watch a cache's memory: a counting allocator
 * for memento_cache_options.allocator that can fail its n-th allocation.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTO_TEST_SUPPORT_ALLOC_H
#define MEMENTO_TEST_SUPPORT_ALLOC_H

#include "support.h"

#include <string.h>

/*
 * A counting allocator that can fail its n-th allocation.  Each block has a
 * header in front that remembers its size, so that a free with the wrong
 * size (which would corrupt a user's pool allocator) is caught.
 */
struct hook {
	atomic_long allocs;     /* alloc calls so far */
	long fail_at;           /* the alloc call that fails (1-based); 0: none */
	atomic_long failed;     /* failures injected */
	atomic_long live_blocks;
	atomic_long live_bytes;
	atomic_long size_mismatches;
	atomic_long bad_alignments;
};

#define HOOK_HEADER 64 /* >= every alignment the library may ask for */

static inline void *hook_alloc(size_t size, size_t align, void *state)
{
	struct hook *h = state;
	long n = atomic_fetch_add(&h->allocs, 1) + 1;
	if (align == 0 || (align & (align - 1)) != 0 || align > HOOK_HEADER)
		atomic_fetch_add(&h->bad_alignments, 1);
	if (n == h->fail_at) {
		atomic_fetch_add(&h->failed, 1);
		return NULL;
	}
	unsigned char *p = aligned_alloc(HOOK_HEADER, HOOK_HEADER + ((size + HOOK_HEADER - 1) / HOOK_HEADER) * HOOK_HEADER);
	if (p == NULL)
		return NULL;
	memcpy(p, &size, sizeof size);
	atomic_fetch_add(&h->live_blocks, 1);
	atomic_fetch_add(&h->live_bytes, (long)size);
	return p + HOOK_HEADER;
}

static inline void hook_free(void *ptr, size_t size, void *state)
{
	struct hook *h = state;
	cr_assert_not_null(ptr, "free of NULL reached the allocator");
	unsigned char *p = (unsigned char *)ptr - HOOK_HEADER;
	size_t stored;
	memcpy(&stored, p, sizeof stored);
	if (stored != size)
		atomic_fetch_add(&h->size_mismatches, 1);
	atomic_fetch_sub(&h->live_blocks, 1);
	atomic_fetch_sub(&h->live_bytes, (long)stored);
	free(p);
}

static inline memento_cache_options hooked_options(struct hook *h, unsigned int shards)
{
	memento_cache_options opt = MEMENTO_CACHE_OPTIONS_INIT;
	opt.shards = shards;
	opt.seed = 42; /* the same allocations in the same order, run after run */
	opt.allocator = (memento_allocator){ hook_alloc, hook_free, h };
	return opt;
}

#endif /* MEMENTO_TEST_SUPPORT_ALLOC_H */
