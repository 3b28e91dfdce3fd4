/*
 * impl_mementos.c: mementos as its users write it: one cache, one class
 * whose key is the u64 and whose create builds the bench object.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "impl.h"

#include <mementos.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct mementos_table {
	memento_cache *cache;
	memento_class *cls;
};

static int key_u64(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_u64(key, *(const uint64_t *)args);
}

static int create_object(void **obj, const void *args, void *ctx)
{
	(void)ctx;
	struct bench_object *made = bench_object_create(*(const uint64_t *)args);
	if (made == NULL)
		return -ENOMEM;
	*obj = made;
	return 0;
}

static void destroy_object(void *obj, void *ctx)
{
	(void)ctx;
	bench_object_destroy(obj);
}

static void *mementos_open(void)
{
	struct mementos_table *t = calloc(1, sizeof *t);
	if (t == NULL) {
		fprintf(stderr, "mementos: out of memory\n");
		return NULL;
	}
	/* Default options: not presized, a random seed, the default shards. */
	int rc = memento_cache_new(&t->cache);
	if (rc == 0) {
		memento_class_desc desc = {
			.name = "bench_object",
			.key = key_u64,
			.create = create_object,
			.destroy = destroy_object,
		};
		rc = memento_class_new(t->cache, &desc, &t->cls);
	}
	if (rc != 0) {
		fprintf(stderr, "mementos: cannot make a cache: %s\n", memento_strerror(rc));
		memento_cache_free(t->cache);
		free(t);
		return NULL;
	}
	return t;
}

static int mementos_get(void *table, uint64_t key, struct bench_object **obj)
{
	struct mementos_table *t = table;
	void *found;
	int rc = memento_get(t->cls, &key, &found);
	if (rc == 0)
		*obj = found;
	return rc;
}

static size_t mementos_count(void *table)
{
	return memento_count(((struct mementos_table *)table)->cache);
}

static void mementos_close(void *table)
{
	struct mementos_table *t = table;
	memento_cache_free(t->cache);
	free(t);
}

const struct bench_impl bench_impl_mementos = {
	.name = "mementos",
	.describe = "this library: memento_get on one class, the u64 as its key",
	.open = mementos_open,
	.get = mementos_get,
	.count = mementos_count,
	.close = mementos_close,
};
