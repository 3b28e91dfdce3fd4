/*
 * Shared by the test suites: a class whose objects know their key and
 * count their creations and destructions, threads released together by a
 * barrier, and monotonic-clock helpers.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTO_TEST_SUPPORT_H
#define MEMENTO_TEST_SUPPORT_H

#include <mementos.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define OBJ_MAGIC 0x6d656d656e746f73ull

/* What the counting class creates. */
struct obj {
	uint64_t magic; /* OBJ_MAGIC while alive, 0 once destroyed */
	uint64_t key;
	int serial;     /* 1 for the class's first creation, 2 for its second... */
	int payload;    /* from the args of the call that created it */
};

/* Arguments of the counting class: key is the identity, payload is not. */
struct args {
	uint64_t key;
	int payload;
};

/* Context of the counting class, handed to its callbacks. */
struct counting {
	atomic_int creations;    /* create calls */
	atomic_int destroys;     /* destroy calls */
	int sleep_ms;            /* each create sleeps this long first */
	int fail_with;           /* create returns this when nonzero */
	atomic_int fail_first_n; /* ... or fails only its first n calls with -EIO */
	void (*hook)(struct counting *c, const struct args *a); /* runs inside create */
	void *hook_data;
};

static inline void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static inline struct timespec now_monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts;
}

static inline struct timespec after_ms(struct timespec t, long ms)
{
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static inline double ms_between(struct timespec a, struct timespec b)
{
	return (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

static inline int counting_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_u64(key, ((const struct args *)args)->key);
}

static inline int counting_create(void **out, const void *args, void *ctx)
{
	struct counting *c = ctx;
	const struct args *a = args;
	int serial = atomic_fetch_add(&c->creations, 1) + 1;
	if (c->hook != NULL)
		c->hook(c, a);
	if (c->sleep_ms > 0)
		sleep_ms(c->sleep_ms);
	if (c->fail_with != 0)
		return c->fail_with;
	int left = atomic_load(&c->fail_first_n);
	while (left > 0)
		if (atomic_compare_exchange_weak(&c->fail_first_n, &left, left - 1))
			return -EIO;
	struct obj *o = malloc(sizeof *o);
	if (o == NULL)
		return -ENOMEM;
	*o = (struct obj){ OBJ_MAGIC, a->key, serial, a->payload };
	*out = o;
	return 0;
}

static inline void counting_destroy(void *obj, void *ctx)
{
	struct counting *c = ctx;
	struct obj *o = obj;
	atomic_fetch_add(&c->destroys, 1);
	if (o != NULL) {
		cr_assert_eq(o->magic, OBJ_MAGIC, "destroy of a destroyed object");
		o->magic = 0;
		free(o);
	}
}

/* A counting class made with options (NULL: the defaults). */
static inline memento_class *counting_class_with(memento_cache *cache, const char *name,
                                                 struct counting *c,
                                                 const memento_class_options *options)
{
	memento_class_desc desc = {
		.name = name,
		.key = counting_key,
		.create = counting_create,
		.destroy = counting_destroy,
		.ctx = c,
	};
	memento_class *cls = NULL;
	int rc = memento_class_new_with(cache, &desc, options, &cls);
	cr_assert_eq(rc, 0, "memento_class_new_with: %s", memento_strerror(rc));
	return cls;
}

/* A class named `name` of the counting kind, in cache. */
static inline memento_class *counting_class(memento_cache *cache, const char *name,
                                            struct counting *c)
{
	return counting_class_with(cache, name, c, NULL);
}

/* A cache, and in it a guarded counting class "g" with nothing else set. */
static inline memento_class *new_guarded_class(memento_cache **cache, struct counting *c);

/* Options of a guarded class with nothing else set. */
static inline memento_class_options guarded_options(void)
{
	memento_class_options opt = MEMENTO_CLASS_OPTIONS_INIT;
	opt.lifetime = MEMENTO_LIFETIME_GUARDED;
	return opt;
}

static inline memento_cache *new_cache(void)
{
	memento_cache *cache = NULL;
	int rc = memento_cache_new(&cache);
	cr_assert_eq(rc, 0, "memento_cache_new: %s", memento_strerror(rc));
	return cache;
}

static inline memento_class *new_guarded_class(memento_cache **cache, struct counting *c)
{
	*cache = new_cache();
	memento_class_options o = guarded_options();
	return counting_class_with(*cache, "g", c, &o);
}

/* The lightest class: u64 keys (the args point at one), 64-byte malloc'd
 * objects, no counting; for suites that watch memory over millions of
 * objects. */
static inline int plain_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_u64(key, *(const uint64_t *)args);
}

static inline int plain_create(void **obj, const void *args, void *ctx)
{
	(void)args;
	(void)ctx;
	*obj = malloc(64);
	return *obj != NULL ? 0 : -ENOMEM;
}

static inline void plain_destroy(void *obj, void *ctx)
{
	(void)ctx;
	free(obj);
}

static inline memento_class *plain_class(memento_cache *cache, const char *name,
                                         const memento_class_options *options)
{
	memento_class_desc desc = { name, plain_key, plain_create, plain_destroy, NULL };
	memento_class *cls;
	int rc = memento_class_new_with(cache, &desc, options, &cls);
	cr_assert_eq(rc, 0, "memento_class_new_with: %s", memento_strerror(rc));
	return cls;
}

static inline memento_stats stats_of(memento_class *cls)
{
	memento_stats st;
	cr_assert_eq(memento_class_stats(cls, &st), 0);
	return st;
}

/* Polls until *value reaches at least target, or gives up after limit_ms. */
static inline bool await_at_least(const atomic_int *value, int target, int limit_ms)
{
	for (int waited = 0; atomic_load(value) < target; waited++) {
		if (waited >= limit_ms)
			return false;
		sleep_ms(1);
	}
	return true;
}

/* Polls a class's coalesced-wait counter until it reaches target. */
static inline bool await_waits(memento_class *cls, uint64_t target, int limit_ms)
{
	for (int waited = 0; stats_of(cls).waits < target; waited++) {
		if (waited >= limit_ms)
			return false;
		sleep_ms(1);
	}
	return true;
}

/* A thread that gets key of a class (struct args { key, 1 }), started by
 * start_creation; for a class whose create is slow, so that others wait. */
struct slow_creator {
	memento_class *cls;
	uint64_t key;
	int rc;
	void *obj;
	pthread_t thread;
};

static inline void *slow_creator_run(void *p)
{
	struct slow_creator *s = p;
	s->rc = memento_get(s->cls, &(struct args){ s->key, 1 }, &s->obj);
	return NULL;
}

/* Starts a thread on the creation of key in class cls and returns once that
 * creation is under way; join s->thread to collect its result. */
static inline void start_creation(struct slow_creator *s, memento_class *cls, const struct counting *counts,
                           uint64_t key)
{
	*s = (struct slow_creator){ .cls = cls, .key = key };
	int before = atomic_load(&counts->creations);
	cr_assert_eq(pthread_create(&s->thread, NULL, slow_creator_run, s), 0);
	cr_assert(await_at_least(&counts->creations, before + 1, 10000));
}

/* Starts n threads running fn(i, data) and joins them. */
struct crowd_arg {
	int index;
	void *data;
	void *(*fn)(int index, void *data);
	void *result;
};

static inline void *crowd_trampoline(void *p)
{
	struct crowd_arg *a = p;
	a->result = a->fn(a->index, a->data);
	return NULL;
}

static inline void crowd_run(int n, void *(*fn)(int, void *), void *data, void **results)
{
	pthread_t *threads = calloc((size_t)n, sizeof *threads);
	struct crowd_arg *args = calloc((size_t)n, sizeof *args);
	cr_assert(threads != NULL && args != NULL);
	for (int i = 0; i < n; i++) {
		args[i] = (struct crowd_arg){ i, data, fn, NULL };
		cr_assert_eq(pthread_create(&threads[i], NULL, crowd_trampoline, &args[i]), 0);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(threads[i], NULL);
		if (results != NULL)
			results[i] = args[i].result;
	}
	free(threads);
	free(args);
}

/* A fresh directory /tmp/mementos-test-TAG-XXXXXX in dir (64 bytes), for
 * a test's store; temp_dir_remove deletes it and all it holds. */
static inline void temp_dir_make(char dir[64], const char *tag)
{
	snprintf(dir, 64, "/tmp/mementos-test-%s-XXXXXX", tag);
	cr_assert_not_null(mkdtemp(dir), "mkdtemp %s", dir);
}

static inline void temp_dir_remove(const char dir[64])
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%.63s'", dir);
	(void)system(cmd);
}

#endif /* MEMENTO_TEST_SUPPORT_H */
