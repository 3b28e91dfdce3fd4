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

	/* Aligned: its write-hot fields keep a line of their own. */
	memento_cache *cache = memento__zalloc_with(&allocator, sizeof *cache, MEMENTO__CACHELINE);
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

/* Under class_lock: the current array, read without the acquire. */
static struct memento__class_array *classes_locked(memento_cache *cache)
{
	return atomic_load_explicit(&cache->classes, memory_order_relaxed);
}

static size_t class_array_size(uint32_t cap)
{
	return sizeof(struct memento__class_array) + cap * sizeof(memento_class *);
}

/* Under class_lock. */
static memento_class *class_named(memento_cache *cache, const char *name)
{
	struct memento__class_array *a = classes_locked(cache);
	for (uint32_t i = 0; i < cache->nclasses; i++)
		if (strcmp(a->at[i]->name, name) == 0)
			return a->at[i];
	return NULL;
}

/* Under class_lock: room for one more class.  A full array is replaced by
 * one twice its size; the old one stays (memento__class_at). */
static int classes_reserve(memento_cache *cache)
{
	struct memento__class_array *a = classes_locked(cache);
	uint32_t cap = a != NULL ? a->cap : 0;
	if (cache->nclasses < cap)
		return 0;
	uint32_t grown_cap = cap != 0 ? 2 * cap : 8;
	struct memento__class_array *grown = memento__alloc(cache, class_array_size(grown_cap));
	if (grown == NULL)
		return -ENOMEM;
	grown->older = a;
	grown->cap = grown_cap;
	if (a != NULL)
		memcpy(grown->at, a->at, cap * sizeof *a->at);
	/* Release: a reader that loads the array sees its pointers. */
	atomic_store_explicit(&cache->classes, grown, memory_order_release);
	return 0;
}

static void class_free(memento_class *cls)
{
	memento_cache *cache = cls->cache;
	memento__class_options_free(cls);
	memento__free(cache, cls->name, strlen(cls->name) + 1);
	memento__free(cache, cls, sizeof *cls);
}

/* A class for desc, not yet in the cache (index: the one it will get). */
static int class_make(memento_cache *cache, const memento_class_desc *desc,
                      const memento_class_options *options, uint32_t index, memento_class **out)
{
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
	cls->index = index;
	/* Each class hashes with its own seed: equal keys of two classes land
	 * apart (the compare also checks the class). */
	cls->seed = memento__class_seed(cache->seed, cls->index);
	int rc = memento__class_options_apply(cls, options);
	if (rc != 0) {
		class_free(cls); /* options that fail allocate nothing that stays */
		return rc;
	}
	*out = cls;
	return 0;
}

/* Under class_lock. */
static int class_add(memento_cache *cache, const memento_class_desc *desc,
                     const memento_class_options *options, memento_class **out)
{
	if (class_named(cache, desc->name) != NULL)
		return -EEXIST;
	if (cache->nclasses == MEMENTO_CLASSES_MAX)
		return -ENOSPC;
	int rc = classes_reserve(cache);
	if (rc == 0)
		rc = class_make(cache, desc, options, cache->nclasses, out);
	if (rc != 0)
		return rc;
	/* Entries of this class exist only after it is returned, so a reader
	 * of its index always finds it: the caller's own publication orders
	 * it (a get on the class came through the caller). */
	classes_locked(cache)->at[cache->nclasses++] = *out;
	return 0;
}

int memento_class_new_with(memento_cache *cache, const memento_class_desc *desc,
                           const memento_class_options *options, memento_class **cls)
{
	if (cache == NULL || desc == NULL || cls == NULL || desc->name == NULL ||
	    desc->key == NULL || desc->create == NULL)
		return -EINVAL;
	pthread_mutex_lock(&cache->class_lock);
	int rc = class_add(cache, desc, options, cls);
	pthread_mutex_unlock(&cache->class_lock);
	return rc;
}

int memento_class_new(memento_cache *cache, const memento_class_desc *desc, memento_class **cls)
{
	return memento_class_new_with(cache, desc, NULL, cls);
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
	struct memento__entry *held; /* a guarded class's entry, held; else NULL */
};

/* Lets go of a snapshot's holds and its array. */
static void snapshot_release(memento_cache *cache, struct visit_item *v, size_t n, size_t size)
{
	for (size_t k = 0; k < n; k++)
		if (v[k].held != NULL)
			memento__life_release(cache, v[k].held);
	memento__free(cache, v, size);
}

/*
 * The ready objects of one shard, gathered in one read-side section so that
 * visit can run outside it: a visitor may block (a memento_get that waits),
 * and a section must not.  A never-reclaimed class's objects stay valid
 * until the cache is freed; a guarded class's entry is held until its
 * visit is over.  Expired objects are left out.
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
		struct memento__entry *e = memento__untagged(p);
		MEMENTO__TSAN_ACQUIRE(e); /* published by ck_hs_put */
		/* Acquire: pairs with the release that published obj. */
		uint32_t s = atomic_load_explicit(&e->state, memory_order_acquire);
		if ((s & (MEMENTO__PHASE | MEMENTO__UNLINKED)) != MEMENTO__READY)
			continue;
		memento_class *cls = memento__class_at(cache, memento__cls_of(s));
		uint64_t now = 0;
		if ((cls->life & MEMENTO__LIFE_TIMED) &&
		    memento__freshness_timed(cls, e, &now) == MEMENTO__EXPIRED)
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
		struct memento__entry *held = NULL;
		if (memento__guarded_of(s)) {
			/* Found linked in this section: the table still holds it. */
			memento__life_hold(e);
			held = e;
		}
		v[len++] = (struct visit_item){ cls, e->u.obj, held };
	}
	MEMENTO__TSAN_RELEASE(&cache->epoch);
	ck_epoch_end(&tc->epoch, NULL);
	if (rc != 0) {
		snapshot_release(cache, v, len, cap * sizeof *v);
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
		snapshot_release(cache, items, n, size);
	}
	memento__reclaim_due_if_any(cache, tc);
	return rc;
}

/* ---- freeing ------------------------------------------------------------------------ */

/*
 * memento_cache_free destroys objects newest first: an object built from
 * others (its create called memento_get) was published after them, so it
 * goes before them.  Every ready entry, linked or forgotten, is found in
 * the slabs and rewritten in place as a `dying` record (the entries are
 * dead by then, and each has room for one); the records are sorted by age
 * in an array, or, if that array cannot be allocated (free must not fail),
 * by a merge sort of their list, slower on big caches.
 *
 * Age counts publications since the entry's, modulo 2^32: exact while fewer
 * than 2^32 objects were published after the oldest one still held.
 */
struct dying {
	struct dying *next; /* over state and seq, read first */
	void *obj;          /* where the entry had it */
	uint32_t cls;
	uint32_t age; /* 0: the newest */
};

_Static_assert(sizeof(struct dying) <= MEMENTO__ENTRY_MIN, "a dying record fits in every entry");
_Static_assert(offsetof(struct dying, obj) == offsetof(struct memento__entry, u.obj),
               "obj stays where the entry had it");

struct dying_list {
	struct dying *head;
	size_t n;
	uint32_t newest; /* seq of the last publication */
};

static void collect_dying(struct memento__entry *e, void *arg)
{
	struct dying_list *list = arg;
	uint32_t s = atomic_load_explicit(&e->state, memory_order_relaxed);
	/* Every creation has returned: what is not READY holds no object. */
	if ((s & MEMENTO__PHASE) != MEMENTO__READY)
		return;
	uint32_t age = list->newest - e->seq;
	struct dying *d = (struct dying *)(void *)e;
	d->next = list->head; /* state and seq are read: overwrite them */
	d->cls = memento__cls_of(s);
	d->age = age;
	list->head = d;
	list->n++;
}

/* Merges two lists sorted newest first. */
static struct dying *merge_newest_first(struct dying *a, struct dying *b)
{
	struct dying *head = NULL, **tail = &head;
	while (a != NULL && b != NULL) {
		struct dying **from = a->age < b->age ? &a : &b;
		*tail = *from;
		tail = &(*from)->next;
		*from = (*from)->next;
	}
	*tail = a != NULL ? a : b;
	return head;
}

static struct dying *list_sort_newest_first(struct dying *list)
{
	if (list == NULL || list->next == NULL)
		return list;
	struct dying *slow = list, *fast = list->next;
	while (fast != NULL && fast->next != NULL) {
		slow = slow->next;
		fast = fast->next->next;
	}
	struct dying *second = slow->next;
	slow->next = NULL;
	return merge_newest_first(list_sort_newest_first(list), list_sort_newest_first(second));
}

static int newest_first(const void *a, const void *b)
{
	uint32_t x = (*(struct dying *const *)a)->age;
	uint32_t y = (*(struct dying *const *)b)->age;
	return (x > y) - (x < y);
}

static struct dying *sort_newest_first(memento_cache *cache, struct dying *list, size_t n)
{
	struct dying **all = n > 1 ? memento__alloc(cache, n * sizeof *all) : NULL;
	if (all == NULL)
		return list_sort_newest_first(list);
	size_t i = 0;
	for (struct dying *d = list; d != NULL; d = d->next)
		all[i++] = d;
	qsort(all, n, sizeof *all, newest_first);
	for (i = 0; i + 1 < n; i++)
		all[i]->next = all[i + 1];
	all[n - 1]->next = NULL;
	list = all[0];
	memento__free(cache, all, n * sizeof *all);
	return list;
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
	struct memento__class_array *a = classes_locked(cache);
	for (uint32_t i = 0; i < cache->nclasses; i++)
		class_free(a->at[i]);
	while (a != NULL) {
		struct memento__class_array *older = a->older;
		memento__free(cache, a, class_array_size(a->cap));
		a = older;
	}
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

	struct dying_list list = {
		.newest = (uint32_t)(atomic_load_explicit(&cache->next_seq, memory_order_relaxed) - 1),
	};
	for (unsigned int i = 0; i < cache->nshards; i++)
		memento__slab_walk(&cache->shards[i], collect_dying, &list);
	for (struct dying *d = sort_newest_first(cache, list.head, list.n); d != NULL; d = d->next) {
		const memento_class *cls = classes_locked(cache)->at[d->cls];
		if (cls->destroy != NULL)
			cls->destroy(d->obj, cls->ctx);
	}
	/* The entries go with their slabs. */
	cache_destroy(cache, cache->nshards);
}
