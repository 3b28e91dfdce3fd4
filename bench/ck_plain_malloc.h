/*
 * ck_plain_malloc.h: a ck_malloc on malloc and free, for the benchmarks'
 * floors, whose ck_hs is written only while nobody reads it (filled before
 * the timed phase, or by the one thread that reads it): a map that ck_hs
 * replaces and asks to free "deferred" can be freed at once.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTOS_BENCH_CK_PLAIN_MALLOC_H
#define MEMENTOS_BENCH_CK_PLAIN_MALLOC_H

#include <ck_malloc.h>

#include <stdbool.h>
#include <stdlib.h>

static void *ck_plain_malloc(size_t size)
{
	return malloc(size);
}

static void ck_plain_free(void *p, size_t size, bool defer)
{
	(void)size;
	(void)defer; /* no reader can hold the map: see above */
	free(p);
}

static void *ck_plain_realloc(void *p, size_t old_size, size_t new_size, bool defer)
{
	(void)old_size;
	(void)defer;
	return realloc(p, new_size);
}

static struct ck_malloc ck_plain_allocator = {
	.malloc = ck_plain_malloc,
	.realloc = ck_plain_realloc,
	.free = ck_plain_free,
};

#endif /* MEMENTOS_BENCH_CK_PLAIN_MALLOC_H */
