/*
 * The classes of the store benchmarks (store_bench.c, redis_bench.c): their
 * caches and persisted classes (made or the run dies), the blob payload
 * and the hit class whose store hits both time against a floor, the keys
 * of a set of hits, and a u64 key with a 64-byte record for classes whose
 * objects are NULL (wake-up, stampede).
 * Includes bench_util.h: the program defines BENCH_NAME first.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTO_BENCH_BLOB_H
#define MEMENTO_BENCH_BLOB_H

#include "bench_util.h"

#include <mementos.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_SEED UINT64_C(0x6d656d656e746f73)

/* A cache with the benchmarks' seed (shards 0: the library's default). */
static inline memento_cache *new_cache(size_t capacity, unsigned int shards)
{
	memento_cache_options co = MEMENTO_CACHE_OPTIONS_INIT;
	co.initial_capacity = capacity;
	co.shards = shards;
	co.seed = BENCH_SEED;
	memento_cache *cache;
	int rc = memento_cache_new_with(&cache, &co);
	if (rc != 0)
		die("memento_cache_new_with", rc);
	return cache;
}

/* A class in cache from d, persisted in store as version "1" with these
 * codecs; base holds its other options (NULL: none).  Dies, saying what,
 * when it cannot be made. */
static inline memento_class *persisted_class(memento_cache *cache, const memento_class_desc *d,
                                             const memento_class_options *base,
                                             memento_store *store, memento_encode_fn encode,
                                             memento_decode_fn decode, const char *what)
{
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	if (base != NULL)
		o = *base;
	o.store = store;
	o.version = "1";
	o.encode = encode;
	o.decode = decode;
	memento_class *cls;
	int rc = memento_class_new_with(cache, d, &o, &cls);
	if (rc != 0)
		die(what, rc);
	return cls;
}

/* ---- the hit class ------------------------------------------------------------------ */

/* What every decode builds: a copy of the payload, as a real decoder
 * that owns its object would. */
struct blob {
	size_t len;
	unsigned char data[];
};

struct hit_world {
	size_t payload; /* bytes */
};

struct hit_args {
	uint64_t id;
	uint64_t index;
};

static inline int hit_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_u64(key, ((const struct hit_args *)args)->id);
}

/* Only in the fill: the payload is the index, then bytes from the id. */
static inline int hit_create(void **obj, const void *args, void *ctx)
{
	const struct hit_args *a = args;
	const struct hit_world *w = ctx;
	struct blob *b = malloc(sizeof *b + w->payload);
	if (b == NULL)
		return -ENOMEM;
	b->len = w->payload;
	fill_random(b->data, w->payload, a->id);
	memcpy(b->data, &a->index, sizeof a->index);
	*obj = b;
	return 0;
}

static inline int hit_encode(const void *obj, memento_buf *out, void *ctx)
{
	(void)ctx;
	const struct blob *b = obj;
	return memento_buf_append(out, b->data, b->len);
}

/* The decode both sides run. */
static inline int hit_decode(void **obj, const void *data, size_t len, void *ctx)
{
	(void)ctx;
	struct blob *b = malloc(sizeof *b + len);
	if (b == NULL)
		return -ENOMEM;
	b->len = len;
	memcpy(b->data, data, len);
	*obj = b;
	return 0;
}

static inline void hit_destroy(void *obj, void *ctx)
{
	(void)ctx;
	free(obj);
}

static inline memento_class *hit_class(memento_cache *cache, const char *name,
                                       memento_store *store, struct hit_world *w)
{
	memento_class_desc d = { name, hit_key, hit_create, hit_destroy, w };
	return persisted_class(cache, &d, NULL, store, hit_encode, hit_decode,
	                       "memento_class_new_with");
}

/*
 * The keys of n hits, from seed: args[i] is a random id and the index i,
 * ident[i] the key bytes memento_get makes of it, and order a shuffle of
 * [0, n), the access order of both sides.
 */
static inline void hit_keys_make(struct hit_args *args, uint32_t *order,
                                 unsigned char (*ident)[16], size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++) {
		args[i].id = splitmix64(&seed);
		args[i].index = i;
		order[i] = (uint32_t)i;
		/* memento_key_u64's bytes: a tag word 'u', then the value,
		 * little-endian words (bench/hit_floor.c has the format). */
		uint64_t tag = 'u', v = args[i].id;
		for (int b = 0; b < 8; b++) {
			ident[i][b] = (unsigned char)(tag >> (8 * b));
			ident[i][8 + b] = (unsigned char)(v >> (8 * b));
		}
	}
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)(splitmix64(&seed) % (i + 1));
		uint32_t t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
}

/* The fill: every key of args created once, in index order, by the hit
 * class `name` in cache (and so written to store). */
static inline void hit_fill(memento_cache *cache, const char *name, memento_store *store,
                            struct hit_world *w, const struct hit_args *args, size_t n)
{
	memento_class *cls = hit_class(cache, name, store, w);
	for (size_t j = 0; j < n; j++) {
		void *obj;
		int rc = memento_get(cls, &args[j], &obj);
		if (rc != 0)
			die("memento_get (fill)", rc);
	}
}

/* ---- a u64 key, a NULL object and a 64-byte record ------------------------------------- */

/* The args point at the key. */
static inline int u64_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_u64(key, *(const uint64_t *)args);
}

static inline int marker_encode(const void *obj, memento_buf *out, void *ctx)
{
	(void)obj;
	(void)ctx;
	unsigned char b[64] = { 1 };
	return memento_buf_append(out, b, sizeof b);
}

static inline int marker_decode(void **obj, const void *data, size_t len, void *ctx)
{
	(void)data;
	(void)ctx;
	if (len != 64)
		return -EBADMSG;
	*obj = NULL;
	return 0;
}

#endif /* MEMENTO_BENCH_BLOB_H */
