/*
 * Caches and their classes: creation, the default cache, counting, walking
 * the ready objects, and the final free that destroys every object.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ---- creation ------------------------------------------------------------------- */

static uint64_t random_seed(void)
{
	uint64_t seed = 0;
	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
		/* No entropy yet (early boot): still differ between caches. */
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		seed = ((uint64_t)now.tv_sec << 30) ^ (uint64_t)now.tv_nsec ^ (uint64_t)(uintptr_t)&seed;
	}
	return seed != 0 ? seed : 1;
}

static unsigned int round_up_pow2(unsigned int n)
{
	unsigned int p = 1;
	while (p < n)
		p <<= 1;
	return p;
}

/*
 * The options the caller's header knew about, the rest defaulted; shards
 * comes back as the power of two the cache will use.
 */
static int options_read(const memento_cache_options *in, memento_cache_options *out)
{
	*out = (memento_cache_options)MEMENTO_CACHE_OPTIONS_INIT;
	if (in != NULL) {
		if (in->size < sizeof in->size)
			return -EINVAL;
		memcpy(out, in, in->size < sizeof *out ? in->size : sizeof *out);
		out->size = sizeof *out;
	}
	if (out->shards > MEMENTO_SHARDS_MAX)
		return -EINVAL;
	out->shards = round_up_pow2(out->shards != 0 ? out->shards : MEMENTO_SHARDS_DEFAULT);
	/* ck 0.7.1 rounds a table's starting size with a 32-bit helper: keep
	 * each shard's first table (two slots per entry) below 2^31 slots. */
	if (out->initial_capacity / out->shards > MEMENTO_CAPACITY_PER_SHARD_MAX)
		return -EINVAL;
	return 0;
}

static void cache_destroy(memento_cache *cache, unsigned int shards_ready);

int memento_cache_new_with(memento_cache **out, const memento_cache_options *options)
{
	memento_cache_options opt;
	if (out == NULL)
		return -EINVAL;
	int rc = options_read(options, &opt);
	if (rc != 0)
		return rc;

	memento_allocator allocator;
	rc = memento__allocator_read(&opt.allocator, &allocator);
	if (rc != 0)
		return rc;

	memento_cache *cache = memento__zalloc_with(&allocator, sizeof *cache, 0);
	if (cache == NULL)
		return -ENOMEM;
	cache->allocator = allocator;
	cache->seed = opt.seed != 0 ? opt.seed : random_seed();
	cache->nshards = opt.shards;
	cache->shard_shift = 64u - (unsigned int)__builtin_ctz(cache->nshards);
	ck_epoch_init(&cache->epoch);
	if (pthread_mutex_init(&cache->class_lock, NULL) != 0) {
		memento__free_with(&allocator, cache, sizeof *cache);
		return -ENOMEM;
	}

	/* Aligned: ck's epoch records inside want whole cache lines. */
	cache->shards = memento__zalloc(cache, cache->nshards * sizeof *cache->shards,
	                                MEMENTO__CACHELINE);
	if (cache->shards == NULL) {
		cache_destroy(cache, 0);
		return -ENOMEM;
	}
	/* ck_hs grows when half full: room for twice the expected entries. */
	unsigned long slots = 2 * (opt.initial_capacity / cache->nshards + 1);
	for (unsigned int i = 0; i < cache->nshards; i++) {
		rc = memento__shard_init(&cache->shards[i], cache, slots, cache->seed);
		if (rc != 0) {
			cache_destroy(cache, i);
			return rc;
		}
	}
	memento__fork_handlers_install();
	memento__registry_add(cache);
	*out = cache;
	return 0;
}

int memento_cache_new(memento_cache **cache)
{
	return memento_cache_new_with(cache, NULL);
}

/* ---- the default cache ----------------------------------------------------------- */

static _Atomic(memento_cache *) default_cache;
static pthread_mutex_t default_cache_lock = PTHREAD_MUTEX_INITIALIZER;

void memento__default_cache_lock(void)
{
	pthread_mutex_lock(&default_cache_lock);
}

void memento__default_cache_unlock(void)
{
	pthread_mutex_unlock(&default_cache_lock);
}

memento_cache *memento_default_cache(void)
{
	/* Acquire: pairs with the release below; the cache is initialised. */
	memento_cache *cache = atomic_load_explicit(&default_cache, memory_order_acquire);
	if (MEMENTO__LIKELY(cache != NULL))
		return cache;
	pthread_mutex_lock(&default_cache_lock);
	cache = atomic_load_explicit(&default_cache, memory_order_relaxed);
	if (cache == NULL && memento_cache_new(&cache) == 0)
		atomic_store_explicit(&default_cache, cache, memory_order_release);
	pthread_mutex_unlock(&default_cache_lock);
	return cache;
}

/* ---- classes ----------------------------------------------------------------------- */

/* Under class_lock. */
static memento_class *class_named(memento_cache *cache, const char *name)
{
	for (uint32_t i = 0; i < cache->nclasses; i++)
		if (strcmp(cache->classes[i]->name, name) == 0)
			return cache->classes[i];
	return NULL;
}

/* Under class_lock. */
static int class_add(memento_cache *cache, const memento_class_desc *desc, memento_class **out)
{
	if (class_named(cache, desc->name) != NULL)
		return -EEXIST;
	if (cache->nclasses == UINT32_MAX)
		return -ENOMEM;
	if (cache->nclasses == cache->capclasses) {
		uint32_t cap = cache->capclasses != 0 ? 2 * cache->capclasses : 8;
		memento_class **grown = memento__grow(cache, cache->classes,
		                                      cache->capclasses * sizeof *grown,
		                                      cap * sizeof *grown);
		if (grown == NULL)
			return -ENOMEM;
		cache->classes = grown;
		cache->capclasses = cap;
	}
	size_t name_size = strlen(desc->name) + 1;
	memento_class *cls = memento__zalloc(cache, sizeof *cls, 0);
	char *name = memento__alloc(cache, name_size);
	if (cls == NULL || name == NULL) {
		memento__free(cache, cls, sizeof *cls);
		memento__free(cache, name, name_size);
		return -ENOMEM;
	}
	memcpy(name, desc->name, name_size);
	cls->cache = cache;
	cls->name = name;
	cls->key = desc->key;
	cls->create = desc->create;
	cls->destroy = desc->destroy;
	cls->ctx = desc->ctx;
	cls->index = cache->nclasses;
	/* Each class hashes with its own seed: equal keys of two classes land
	 * apart (the compare also checks the class). */
	cls->seed = cache->seed ^ ((uint64_t)(cls->index + 1) * 0x9E3779B97F4A7C15ull);
	cache->classes[cache->nclasses++] = cls;
	*out = cls;
	return 0;
}

int memento_class_new(memento_cache *cache, const memento_class_desc *desc, memento_class **cls)
{
	if (cache == NULL || desc == NULL || cls == NULL || desc->name == NULL ||
	    desc->key == NULL || desc->create == NULL)
		return -EINVAL;
	pthread_mutex_lock(&cache->class_lock);
	int rc = class_add(cache, desc, cls);
	pthread_mutex_unlock(&cache->class_lock);
	return rc;
}

int memento_class_find(memento_cache *cache, const char *name, memento_class **cls)
{
	if (cache == NULL || name == NULL || cls == NULL)
		return -EINVAL;
	pthread_mutex_lock(&cache->class_lock);
	memento_class *found = class_named(cache, name);
	pthread_mutex_unlock(&cache->class_lock);
	if (found == NULL)
		return -ENOENT;
	*cls = found;
	return 0;
}

const char *memento_class_name(const memento_class *cls)
{
	return cls != NULL ? cls->name : NULL;
}

memento_cache *memento_class_cache(const memento_class *cls)
{
	return cls != NULL ? cls->cache : NULL;
}

/* ---- reading the whole cache ------------------------------------------------------ */

size_t memento_count(memento_cache *cache)
{
	if (cache == NULL)
		return 0;
	size_t n = 0;
	for (unsigned int i = 0; i < cache->nshards; i++)
		n += atomic_load_explicit(&cache->shards[i].count, memory_order_relaxed);
	return n;
}

struct visit_item {
	memento_class *cls;
	void *obj;
};

/*
 * The ready objects of one shard, gathered in one read-side section so that
 * visit can run outside it: a visitor may block (a memento_get that waits),
 * and a section must not.  The objects stay valid until the cache is freed.
 */
static int shard_snapshot(struct memento__shard *shard, struct memento__tcache *tc,
                          struct visit_item **items, size_t *n, size_t *size)
{
	size_t cap = atomic_load_explicit(&shard->count, memory_order_relaxed) + 16;
	memento_cache *cache = shard->cache;
	struct visit_item *v = memento__alloc(cache, cap * sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	size_t len = 0;
	int rc = 0;
	ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
	void *p;
	/* One section for the whole walk keeps the iterator's map alive. */
	ck_epoch_begin(&tc->epoch, NULL);
	while (ck_hs_next_spmc(&shard->hs, &it, &p)) {
		struct memento__entry *e = p;
		MEMENTO__TSAN_ACQUIRE(e); /* published by ck_hs_put */
		/* Acquire: pairs with the release that published obj. */
		uint32_t s = atomic_load_explicit(&e->head.state, memory_order_acquire);
		if ((s & (MEMENTO__PHASE | MEMENTO__UNLINKED)) != MEMENTO__READY)
			continue;
		if (len == cap) {
			struct visit_item *grown =
				memento__grow(cache, v, cap * sizeof *v, 2 * cap * sizeof *v);
			if (grown == NULL) {
				rc = -ENOMEM;
				break;
			}
			v = grown;
			cap *= 2;
		}
		v[len++] = (struct visit_item){ (memento_class *)e->head.cls, e->obj };
	}
	MEMENTO__TSAN_RELEASE(&cache->epoch);
	ck_epoch_end(&tc->epoch, NULL);
	if (rc != 0) {
		memento__free(cache, v, cap * sizeof *v);
		return rc;
	}
	*items = v;
	*n = len;
	*size = cap * sizeof *v;
	return 0;
}

int memento_foreach(memento_cache *cache, memento_visit_fn visit, void *ctx)
{
	if (cache == NULL || visit == NULL)
		return -EINVAL;
	struct memento__tcache *tc = memento__tcache_for(cache);
	if (tc == NULL)
		return -ENOMEM;
	int rc = 0;
	for (unsigned int i = 0; i < cache->nshards && rc == 0; i++) {
		struct visit_item *items;
		size_t n, size;
		rc = shard_snapshot(&cache->shards[i], tc, &items, &n, &size);
		if (rc != 0)
			break;
		for (size_t k = 0; k < n && rc == 0; k++)
			rc = visit(items[k].cls, items[k].obj, ctx);
		memento__free(cache, items, size);
	}
	return rc;
}

/* ---- freeing ------------------------------------------------------------------------ */

/*
 * memento_cache_free destroys objects newest first: an object built from
 * others (its create called memento_get) was published after them, so it
 * goes before them.  The entries are sorted by publication order in an
 * array; if that array cannot be allocated, free must still not fail, and a
 * merge sort of the linked list, slower on big caches, does the same.
 */

static struct memento__entry **next_of(struct memento__entry *e)
{
	return &memento__cold(e)->link.next;
}

static uint64_t seq_of(const struct memento__entry *e)
{
	return memento__cold(e)->seq;
}

/* Merges two lists sorted newest first. */
static struct memento__entry *merge_newest_first(struct memento__entry *a,
                                                 struct memento__entry *b)
{
	struct memento__entry *head = NULL, **tail = &head;
	while (a != NULL && b != NULL) {
		struct memento__entry **from = seq_of(a) > seq_of(b) ? &a : &b;
		*tail = *from;
		tail = next_of(*from);
		*from = *next_of(*from);
	}
	*tail = a != NULL ? a : b;
	return head;
}

static struct memento__entry *list_sort_newest_first(struct memento__entry *list)
{
	if (list == NULL || *next_of(list) == NULL)
		return list;
	struct memento__entry *slow = list, *fast = *next_of(list);
	while (fast != NULL && *next_of(fast) != NULL) {
		slow = *next_of(slow);
		fast = *next_of(*next_of(fast));
	}
	struct memento__entry *second = *next_of(slow);
	*next_of(slow) = NULL;
	return merge_newest_first(list_sort_newest_first(list), list_sort_newest_first(second));
}

static int newest_first(const void *a, const void *b)
{
	uint64_t x = seq_of(*(struct memento__entry *const *)a);
	uint64_t y = seq_of(*(struct memento__entry *const *)b);
	return (x < y) - (x > y);
}

static struct memento__entry *sort_newest_first(memento_cache *cache,
                                                struct memento__entry *list, size_t n)
{
	struct memento__entry **all = n > 1 ? memento__alloc(cache, n * sizeof *all) : NULL;
	if (all == NULL)
		return list_sort_newest_first(list);
	size_t i = 0;
	for (struct memento__entry *e = list; e != NULL; e = *next_of(e))
		all[i++] = e;
	qsort(all, n, sizeof *all, newest_first);
	for (i = 0; i + 1 < n; i++)
		*next_of(all[i]) = all[i + 1];
	*next_of(all[n - 1]) = NULL;
	list = all[0];
	memento__free(cache, all, n * sizeof *all);
	return list;
}

/* Every entry that holds an object, linked or retired, on one list. */
static struct memento__entry *collect_objects(memento_cache *cache, size_t *n)
{
	struct memento__entry *all = NULL;
	*n = 0;
	for (unsigned int i = 0; i < cache->nshards; i++) {
		struct memento__shard *shard = &cache->shards[i];
		ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
		void *p;
		while (ck_hs_next(&shard->hs, &it, &p)) {
			struct memento__entry *e = p;
			*next_of(e) = all;
			all = e;
			++*n;
		}
		while (shard->retired != NULL) {
			struct memento__entry *e = shard->retired;
			shard->retired = *next_of(e);
			*next_of(e) = all;
			all = e;
			++*n;
		}
	}
	return all;
}

static void cache_destroy(memento_cache *cache, unsigned int shards_ready)
{
	for (unsigned int i = 0; i < shards_ready; i++)
		memento__shard_destroy(&cache->shards[i]);
	struct memento__tcache *tc = atomic_load_explicit(&cache->tcaches, memory_order_relaxed);
	while (tc != NULL) {
		struct memento__tcache *next = tc->next;
		memento__tcache_free(cache, tc);
		tc = next;
	}
	for (uint32_t i = 0; i < cache->nclasses; i++) {
		memento_class *cls = cache->classes[i];
		memento__free(cache, cls->name, strlen(cls->name) + 1);
		memento__free(cache, cls, sizeof *cls);
	}
	memento__free(cache, cache->classes, cache->capclasses * sizeof *cache->classes);
	memento__free(cache, cache->shards, cache->nshards * sizeof *cache->shards);
	pthread_mutex_destroy(&cache->class_lock);
	memento_allocator allocator = cache->allocator;
	memento__free_with(&allocator, cache, sizeof *cache);
}

void memento_cache_free(memento_cache *cache)
{
	if (cache == NULL)
		return;
	/* From here no exiting thread touches this cache's records. */
	memento__registry_remove(cache);

	size_t n;
	struct memento__entry *e = collect_objects(cache, &n);
	e = sort_newest_first(cache, e, n);
	while (e != NULL) {
		struct memento__entry *next = *next_of(e);
		const memento_class *cls = e->head.cls;
		/* Only READY entries can remain: every creation has returned. */
		if ((atomic_load_explicit(&e->head.state, memory_order_relaxed) & MEMENTO__PHASE) ==
		            MEMENTO__READY &&
		    cls->destroy != NULL)
			cls->destroy(e->obj, cls->ctx);
		memento__entry_free(e);
		e = next;
	}
	cache_destroy(cache, cache->nshards);
}
