/*
 * A persisted creation cancelled at each place user code runs in it: the
 * fingerprint callback, decode under the key's lock, encode.  Afterwards
 * nothing is left held (the key's lock, the store's mutex, LMDB's writer,
 * a reader slot), the cancelled object is destroyed, the counters add up,
 * and fork() still works.  (Not under ASan: gcc 12's ASan reports a false
 * stack-buffer-overflow when a thread is cancelled; see test_cancel.c.)
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static void dir_setup(void)
{
	temp_dir_make(dir, "cancel");
}

static void dir_teardown(void)
{
	temp_dir_remove(dir);
}

TestSuite(store_cancel, .init = dir_setup, .fini = dir_teardown, .timeout = 60);

enum where { IN_FINGERPRINT = 1, IN_DECODE, IN_ENCODE };

/* Key 1's creation is cancelled at `where`. */
struct victim {
	_Atomic int where; /* enum where; changed while a creation runs */
	atomic_int creations, destroys, decodes;
	int slow_ms;          /* create sleeps this long (then 0) */
	atomic_int in_create; /* a slow create has begun */
};

static int v_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_u64(key, *(const uint64_t *)args);
}

/* A pending cancel is acted on at the next cancellation point: the
 * library's own, or the callback's. */
static void cancel_here(void)
{
	pthread_cancel(pthread_self());
	pthread_testcancel();
}

static int v_fingerprint(memento_key *key, const void *args, void *ctx)
{
	struct victim *v = ctx;
	if (atomic_load(&v->where) == IN_FINGERPRINT && *(const uint64_t *)args == 1)
		cancel_here();
	return memento_key_u64(key, 42);
}

static int v_create(void **obj, const void *args, void *ctx)
{
	struct victim *v = ctx;
	atomic_fetch_add(&v->creations, 1);
	if (v->slow_ms > 0) {
		int ms = v->slow_ms;
		v->slow_ms = 0;
		atomic_store(&v->in_create, 1);
		sleep_ms(ms);
	}
	uint64_t *o = malloc(sizeof *o);
	if (o == NULL)
		return -ENOMEM;
	*o = *(const uint64_t *)args;
	*obj = o;
	return 0;
}

static void v_destroy(void *obj, void *ctx)
{
	struct victim *v = ctx;
	atomic_fetch_add(&v->destroys, 1);
	free(obj);
}

static int v_encode(const void *obj, memento_buf *out, void *ctx)
{
	struct victim *v = ctx;
	if (atomic_load(&v->where) == IN_ENCODE && *(const uint64_t *)obj == 1)
		cancel_here();
	return memento_buf_append(out, obj, sizeof(uint64_t));
}

static int v_decode(void **obj, const void *data, size_t len, void *ctx)
{
	struct victim *v = ctx;
	atomic_fetch_add(&v->decodes, 1);
	if (atomic_load(&v->where) == IN_DECODE)
		cancel_here();
	if (len != sizeof(uint64_t))
		return -EBADMSG;
	uint64_t *o = malloc(sizeof *o);
	if (o == NULL)
		return -ENOMEM;
	memcpy(o, data, sizeof *o);
	*obj = o;
	return 0;
}

static memento_class *victim_class(memento_cache *cache, memento_store *s, struct victim *v)
{
	memento_class_desc d = { "victim", v_key, v_create, v_destroy, v };
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	o.store = s;
	o.fingerprint = v_fingerprint;
	o.encode = v_encode;
	o.decode = v_decode;
	memento_class *cls = NULL;
	cr_assert_eq(memento_class_new_with(cache, &d, &o, &cls), 0);
	return cls;
}

struct asker {
	memento_class *cls;
	uint64_t key;
	int rc;
};

static void *ask(void *arg)
{
	struct asker *a = arg;
	void *obj;
	a->rc = memento_get(a->cls, &a->key, &obj);
	return NULL;
}

/* Gets key k on a thread of its own: true when that thread was cancelled. */
static bool get_cancelled(memento_class *cls, uint64_t k)
{
	struct asker a = { cls, k, 1 };
	pthread_t t;
	void *res;
	pthread_create(&t, NULL, ask, &a);
	pthread_join(t, &res);
	return res == PTHREAD_CANCELED;
}

/* Gets k within 2 s: a lock left held would time this out. */
static void get_soon(memento_class *cls, uint64_t k)
{
	struct timespec deadline = after_ms(now_monotonic(), 2000);
	void *obj;
	int rc = memento_get_until(cls, &k, &obj, &deadline);
	cr_assert_eq(rc, 0, "get %llu after the cancel: %s", (unsigned long long)k,
	             memento_strerror(rc));
	cr_assert_eq(*(uint64_t *)obj, k);
}

static void cancelled_at(enum where where)
{
	memento_store_options so = MEMENTO_STORE_OPTIONS_INIT;
	so.flags = MEMENTO_STORE_NOSYNC;
	memento_store *s;
	cr_assert_eq(memento_store_open(&s, dir, &so), 0);
	struct victim v = { .where = where == IN_DECODE ? 0 : where };
	memento_cache *cache = new_cache();
	memento_class *cls = victim_class(cache, s, &v);
	if (where == IN_DECODE) {
		/* A slow creation of key 1 holds the key's lock; a forget
		 * detaches it, so the next get creates again: it finds no
		 * record, waits for the lock, and reads the record under it. */
		v.slow_ms = 100;
		struct asker first = { cls, 1, 1 };
		pthread_t t;
		pthread_create(&t, NULL, ask, &first);
		while (!atomic_load(&v.in_create))
			sleep_ms(1);
		cr_assert_eq(memento_forget(cls, &(uint64_t){ 1 }), 0);
		atomic_store(&v.where, IN_DECODE);
		cr_assert(get_cancelled(cls, 1), "the get was not cancelled");
		pthread_join(t, NULL);
		cr_assert_eq(first.rc, 0);
		cr_assert_eq(atomic_load(&v.decodes), 1, "decoded %d times", atomic_load(&v.decodes));
	} else {
		cr_assert(get_cancelled(cls, 1), "the get was not cancelled");
	}
	atomic_store(&v.where, 0);

	/* Nothing held: the same key (its lock), another key (the store's
	 * mutex, the writer), both within a deadline. */
	get_soon(cls, 1);
	get_soon(cls, 2);
	memento_stats st;
	memento_class_stats(cls, &st);
	cr_assert_eq(st.store_errors, 0, "the store failed after the cancel");
	/* A fresh cache finds both in the store: the writes worked. */
	memento_cache *again = new_cache();
	memento_class *cls2 = victim_class(again, s, &v);
	get_soon(cls2, 1);
	get_soon(cls2, 2);
	memento_stats st2;
	memento_class_stats(cls2, &st2);
	cr_assert_eq(st2.store_hits, 2, "%llu store hits", (unsigned long long)st2.store_hits);
	memento_cache_free(again);

	/* Counted as a failure only when create ran. */
	cr_assert_eq(st.failures, where == IN_ENCODE ? 1u : 0u, "%llu failures",
	             (unsigned long long)st.failures);
	memento_cache_free(cache);
	/* Every object made was destroyed: the cancelled one too. */
	cr_assert_eq(atomic_load(&v.destroys),
	             atomic_load(&v.creations) + (int)st.store_hits + (int)st2.store_hits,
	             "%d destroys, %d creations", atomic_load(&v.destroys),
	             atomic_load(&v.creations));

	/* fork() takes the store's mutex: it must be free. */
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(0);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	memento_store_close(s);
}

Test(store_cancel, in_the_fingerprint)
{
	cancelled_at(IN_FINGERPRINT);
}

Test(store_cancel, in_decode_under_the_key_lock)
{
	cancelled_at(IN_DECODE);
}

Test(store_cancel, in_encode)
{
	cancelled_at(IN_ENCODE);
}
