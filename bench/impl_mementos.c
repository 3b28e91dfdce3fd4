/*
 * impl_mementos.c: mementos as its users write it: one cache, one class
 * whose key is the u64 and whose create builds the bench object.  The
 * table and its functions serve the guarded implementations too
 * (impl_mementos.h); only the class's options differ.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "impl_mementos.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

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

struct mementos_table *bench_mementos_open(const char *who, const memento_class_options *options)
{
	struct mementos_table *t = calloc(1, sizeof *t);
	if (t == NULL) {
		fprintf(stderr, "%s: out of memory\n", who);
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
		rc = memento_class_new_with(t->cache, &desc, options, &t->cls);
	}
	if (rc != 0) {
		fprintf(stderr, "%s: cannot make a cache: %s\n", who, memento_strerror(rc));
		memento_cache_free(t->cache);
		free(t);
		return NULL;
	}
	return t;
}

int bench_mementos_get(void *table, uint64_t key, struct bench_object **obj)
{
	struct mementos_table *t = table;
	void *found;
	int rc = memento_get(t->cls, &key, &found);
	if (rc == 0)
		*obj = found;
	return rc;
}

size_t bench_mementos_count(void *table)
{
	return memento_count(((struct mementos_table *)table)->cache);
}

void bench_mementos_close(void *table)
{
	struct mementos_table *t = table;
	memento_cache_free(t->cache);
	free(t);
}

/* memento_get_many over the keys, in groups that an array on the stack
 * holds (the library works on 32 keys at a time anyway). */
static int mementos_get_many(void *table, const uint64_t *keys, size_t n,
                             struct bench_object **objs)
{
	struct mementos_table *t = table;
	enum { GROUP = 256 };
	const void *args[GROUP];
	for (size_t at = 0; at < n; at += GROUP) {
		size_t m = n - at < GROUP ? n - at : GROUP;
		for (size_t i = 0; i < m; i++)
			args[i] = &keys[at + i];
		int rc = memento_get_many(t->cls, args, m, (void **)(objs + at), NULL);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static void *mementos_open(void)
{
	return bench_mementos_open("mementos", NULL);
}

const struct bench_impl bench_impl_mementos = {
	.name = "mementos",
	.describe = "this library: memento_get on one class, the u64 as its key",
	.open = mementos_open,
	.get = bench_mementos_get,
	.count = bench_mementos_count,
	.close = bench_mementos_close,
};

const struct bench_impl bench_impl_mementos_many = {
	.name = "mementos-many",
	.describe = "this library: memento_get_many over each --batch keys, the same class",
	.open = mementos_open,
	.get = bench_mementos_get,
	.get_many = mementos_get_many,
	.count = bench_mementos_count,
	.close = bench_mementos_close,
};
