/*
 * impl_floor.c: not a cache, the physical reference for a hit.  A ck_hs of
 * pointers to {key, object} records, filled before the timed phase by one
 * thread; get is bench_hash and ck_hs_get, nothing else: no epoch section
 * (the table never changes while threads read it), no once-state, no
 * creation.  A key that is absent is an error, so only the workloads that
 * are all hits can run against it (BENCH_IMPL_HITS_ONLY).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "ck_plain_malloc.h"
#include "impl.h"

#include <ck_hs.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct floor_record {
	uint64_t key; /* first: probes are records too */
	struct bench_object *obj;
};

struct floor_table {
	ck_hs_t hs;
	size_t count; /* written by fill; read by count, when no get runs */
};

static unsigned long record_hash(const void *record, unsigned long seed)
{
	(void)seed; /* bench_hash has its own, the same for every implementation */
	return (unsigned long)bench_hash(((const struct floor_record *)record)->key);
}

static bool record_same_key(const void *stored, const void *probe)
{
	return ((const struct floor_record *)stored)->key == ((const struct floor_record *)probe)->key;
}

static void *floor_open(void)
{
	struct floor_table *t = malloc(sizeof *t);
	/* 16 slots: not presized; it grows as fill inserts, as the caches do. */
	if (t == NULL || !ck_hs_init(&t->hs, CK_HS_MODE_OBJECT | CK_HS_MODE_SPMC, record_hash,
	                             record_same_key, &ck_plain_allocator, 16, 0)) {
		fprintf(stderr, "floor: out of memory\n");
		free(t);
		return NULL;
	}
	t->count = 0;
	return t;
}

static int floor_fill(void *table, uint64_t key)
{
	struct floor_table *t = table;
	unsigned long hash = (unsigned long)bench_hash(key);
	struct floor_record probe = { .key = key };
	if (ck_hs_get(&t->hs, hash, &probe) != NULL)
		return -EEXIST;
	struct floor_record *r = malloc(sizeof *r);
	if (r == NULL)
		return -ENOMEM;
	r->key = key;
	r->obj = bench_object_create(key);
	if (r->obj == NULL || !ck_hs_put(&t->hs, hash, r)) {
		bench_object_destroy(r->obj);
		free(r);
		return -ENOMEM;
	}
	t->count++;
	return 0;
}

static int floor_get(void *table, uint64_t key, struct bench_object **obj)
{
	struct floor_table *t = table;
	struct floor_record probe = { .key = key };
	const struct floor_record *r = ck_hs_get(&t->hs, (unsigned long)bench_hash(key), &probe);
	if (r == NULL)
		return -ENOENT;
	*obj = r->obj;
	return 0;
}

static size_t floor_count(void *table)
{
	return ((struct floor_table *)table)->count;
}

static void floor_close(void *table)
{
	struct floor_table *t = table;
	ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
	void *p;
	while (ck_hs_next(&t->hs, &it, &p)) {
		struct floor_record *r = p;
		bench_object_destroy(r->obj);
		free(r);
	}
	ck_hs_destroy(&t->hs);
	free(t);
}

const struct bench_impl bench_impl_floor = {
	.name = "floor",
	.describe = "not a cache: bench_hash + ck_hs_get on a prefilled table, the floor of a hit",
	.flags = BENCH_IMPL_HITS_ONLY,
	.open = floor_open,
	.get = floor_get,
	.fill = floor_fill,
	.count = floor_count,
	.close = floor_close,
};
