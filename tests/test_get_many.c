/*
 * memento_get_many: the same results as memento_get key by key (hits,
 * creations, each key's errors, the first error returned), keys that end
 * their chunk, nesting, guards, exactly-once creation across threads, and
 * a candidate of another key under the same tag (found by hashing keys as
 * the library does, so against the static library and its internals).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"

#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- a class whose key callback and create fail for some keys ------------- */

#define KEY_REFUSED UINT64_C(1000000000) /* and above: the key callback fails */

static bool create_fails(uint64_t key)
{
	return key % 5 == 4;
}

static int picky_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	uint64_t k = *(const uint64_t *)args;
	return k >= KEY_REFUSED ? -ERANGE : memento_key_u64(key, k);
}

static atomic_int picky_creations;

static int picky_create(void **obj, const void *args, void *ctx)
{
	(void)ctx;
	uint64_t k = *(const uint64_t *)args;
	atomic_fetch_add(&picky_creations, 1);
	if (create_fails(k))
		return -EIO;
	uint64_t *made = malloc(sizeof *made);
	if (made == NULL)
		return -ENOMEM;
	*made = k;
	*obj = made;
	return 0;
}

static void picky_destroy(void *obj, void *ctx)
{
	(void)ctx;
	free(obj);
}

static memento_class *picky_class(memento_cache *cache, const memento_class_options *options)
{
	memento_class_desc desc = { "picky", picky_key, picky_create, picky_destroy, NULL };
	memento_class *cls = NULL;
	int rc = memento_class_new_with(cache, &desc, options, &cls);
	cr_assert_eq(rc, 0, "memento_class_new_with: %s", memento_strerror(rc));
	return cls;
}

/* Points args[i] at keys[i]. */
static void point_at(const void **args, const uint64_t *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		args[i] = &keys[i];
}

static memento_cache *cache;

static void setup(void)
{
	cache = new_cache();
	atomic_store(&picky_creations, 0);
}

static void teardown(void)
{
	memento_cache_free(cache);
}

TestSuite(get_many, .init = setup, .fini = teardown, .timeout = 60);

Test(get_many, each_key_gets_what_memento_get_returns)
{
	memento_class *cls = picky_class(cache, NULL);
	/* 100 keys: more than a chunk; some made before, some twice in the
	 * batch, some refused by the key callback, some failing in create. */
	enum { N = 100 };
	uint64_t keys[N];
	for (size_t i = 0; i < N; i++)
		keys[i] = i % 10 == 9 ? KEY_REFUSED + i : i % 40;
	for (uint64_t k = 0; k < 10; k++) {
		void *obj;
		int rc = memento_get(cls, &k, &obj);
		cr_assert_eq(rc, create_fails(k) ? -EIO : 0);
	}
	int made_before = atomic_load(&picky_creations);

	const void *args[N];
	point_at(args, keys, N);
	void *objs[N];
	int rcs[N];
	int rc = memento_get_many(cls, args, N, objs, rcs);

	int first = 0, expected_creations = 0;
	bool seen[40] = { false };
	for (size_t i = 0; i < N; i++) {
		int want = keys[i] >= KEY_REFUSED ? -ERANGE : create_fails(keys[i]) ? -EIO : 0;
		if (first == 0)
			first = want;
		cr_assert_eq(rcs[i], want, "key %llu: %d, not %d", (unsigned long long)keys[i],
		             rcs[i], want);
		if (want == 0) {
			cr_assert_not_null(objs[i]);
			cr_assert_eq(*(uint64_t *)objs[i], keys[i], "another key's object");
			void *again;
			cr_assert_eq(memento_get(cls, &keys[i], &again), 0);
			cr_assert_eq(again, objs[i], "not the object memento_get returns");
		} else {
			cr_assert_null(objs[i]);
		}
		/* A key made before is a hit; a failed create is not remembered,
		 * so each get of a failing key creates. */
		if (keys[i] < KEY_REFUSED &&
		    (create_fails(keys[i]) || (keys[i] >= 10 && !seen[keys[i]])))
			expected_creations++;
		if (keys[i] < KEY_REFUSED)
			seen[keys[i]] = true;
	}
	cr_assert_eq(rc, first, "returned %d, the first error is %d", rc, first);
	cr_assert_neq(first, 0);
	cr_assert_eq(atomic_load(&picky_creations) - made_before, expected_creations);
}

Test(get_many, stats_count_each_key_as_memento_get_does)
{
	memento_class *cls = picky_class(cache, NULL);
	uint64_t keys[6] = { 1, 2, 1, 3, 1, 2 };
	const void *args[6];
	point_at(args, keys, 6);
	void *objs[6];
	cr_assert_eq(memento_get_many(cls, args, 6, objs, NULL), 0);
	memento_stats st = stats_of(cls);
	cr_assert_eq(st.misses, 3);
	cr_assert_eq(st.hits, 3);
	cr_assert_eq(st.creations, 3);
	cr_assert_eq(memento_get_many(cls, args, 6, objs, NULL), 0);
	st = stats_of(cls);
	cr_assert_eq(st.hits, 9);
	cr_assert_eq(st.misses, 3);
	cr_assert_eq(objs[0], objs[2]);
	cr_assert_eq(objs[1], objs[5]);
	cr_assert_neq(objs[0], objs[1]);
}

Test(get_many, a_remembered_failure_is_returned_without_create)
{
	memento_class_options opt = MEMENTO_CLASS_OPTIONS_INIT;
	opt.failure_ttl_ns = UINT64_C(3600000000000); /* an hour */
	memento_class *cls = picky_class(cache, &opt);
	uint64_t keys[4] = { 4, 1, 9, 4 }; /* 4 and 9 fail their create */
	const void *args[4];
	point_at(args, keys, 4);
	void *objs[4];
	int rcs[4];
	cr_assert_eq(memento_get_many(cls, args, 4, objs, rcs), -EIO);
	cr_assert_eq(atomic_load(&picky_creations), 3, "the second 4 was created again");
	for (int round = 0; round < 2; round++) {
		cr_assert_eq(memento_get_many(cls, args, 4, objs, rcs), -EIO);
		cr_assert_eq(rcs[0], -EIO);
		cr_assert_eq(rcs[1], 0);
		cr_assert_eq(*(uint64_t *)objs[1], 1);
		cr_assert_eq(rcs[2], -EIO);
		cr_assert_eq(rcs[3], -EIO);
	}
	cr_assert_eq(atomic_load(&picky_creations), 3, "a remembered failure ran create");
	memento_stats st = stats_of(cls);
	cr_assert_eq(st.misses, 4 + 3 + 3, "misses %llu", (unsigned long long)st.misses);
	cr_assert_eq(st.hits, 1 + 1);
}

Test(get_many, bad_input_is_refused_and_nothing_is_done)
{
	memento_class *cls = picky_class(cache, NULL);
	uint64_t key = 1;
	const void *args[1] = { &key };
	void *objs[1];
	cr_assert_eq(memento_get_many(NULL, args, 1, objs, NULL), -EINVAL);
	cr_assert_eq(memento_get_many(cls, NULL, 1, objs, NULL), -EINVAL);
	cr_assert_eq(memento_get_many(cls, args, 1, NULL, NULL), -EINVAL);
	cr_assert_eq(memento_get_many(cls, NULL, 0, NULL, NULL), 0);
	cr_assert_eq(atomic_load(&picky_creations), 0);
	cr_assert_eq(memento_get_many(cls, args, 1, objs, NULL), 0);
	cr_assert_eq(*(uint64_t *)objs[0], 1);
}

/* ---- an allocation refused on the first key ------------------------------------ */

static atomic_int refuse_next;

static void *refusing_alloc(size_t size, size_t align, void *state)
{
	(void)state;
	if (atomic_exchange(&refuse_next, 0))
		return NULL;
	return aligned_alloc(align < 16 ? 16 : align, (size + 63) / 64 * 64);
}

static void refusing_free(void *ptr, size_t size, void *state)
{
	(void)size;
	(void)state;
	free(ptr);
}

struct refused_run {
	memento_class *cls;
	int rc, rcs[2];
	void *objs[2];
};

/* A new thread's first call: the first key's lookup fails to allocate
 * the thread's record; the second key's gets it and goes to the table. */
static void *first_call_refused(int index, void *data)
{
	(void)index;
	struct refused_run *r = data;
	uint64_t keys[2] = { 1, 2 };
	const void *args[2];
	point_at(args, keys, 2);
	atomic_store(&refuse_next, 1);
	r->rc = memento_get_many(r->cls, args, 2, r->objs, r->rcs);
	return NULL;
}

Test(get_many, a_first_key_without_a_thread_record_does_not_stop_the_others)
{
	memento_cache_options copt = MEMENTO_CACHE_OPTIONS_INIT;
	copt.allocator = (memento_allocator){ refusing_alloc, refusing_free, NULL };
	memento_cache *own;
	cr_assert_eq(memento_cache_new_with(&own, &copt), 0);
	struct refused_run r = { .cls = picky_class(own, NULL) };
	uint64_t two = 2;
	void *made;
	cr_assert_eq(memento_get(r.cls, &two, &made), 0); /* key 2 is a hit later */
	crowd_run(1, first_call_refused, &r, NULL);
	cr_assert_eq(r.rc, -ENOMEM);
	cr_assert_eq(r.rcs[0], -ENOMEM);
	cr_assert_null(r.objs[0]);
	cr_assert_eq(r.rcs[1], 0);
	cr_assert_eq(r.objs[1], made);
	memento_cache_free(own);
}

/* ---- keys of every length ------------------------------------------------------ */

struct blob {
	size_t len;
	char fill;
};

static int blob_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	const struct blob *b = args;
	char *bytes = malloc(b->len);
	if (bytes == NULL)
		return -ENOMEM;
	memset(bytes, b->fill, b->len);
	int rc = memento_key_bytes(key, bytes, b->len);
	free(bytes);
	return rc;
}

static int blob_create(void **obj, const void *args, void *ctx)
{
	(void)ctx;
	struct blob *copy = malloc(sizeof *copy);
	if (copy == NULL)
		return -ENOMEM;
	*copy = *(const struct blob *)args;
	*obj = copy;
	return 0;
}

Test(get_many, keys_too_long_for_a_chunk_end_it)
{
	memento_class_desc desc = { "blob", blob_key, blob_create, picky_destroy, NULL };
	memento_class *cls;
	cr_assert_eq(memento_class_new(cache, &desc, &cls), 0);
	/* Lengths from 1 byte to near MEMENTO_KEY_MAX, several long ones in a
	 * row, so that chunks end early and a key alone passes the room. */
	enum { N = 80 };
	struct blob blobs[N];
	const void *args[N];
	for (size_t i = 0; i < N; i++) {
		size_t len = i % 4 == 0 ? 1 + i : i % 4 == 1 ? 600 + 7 * i : 4000 + i;
		blobs[i] = (struct blob){ len, (char)('a' + i % 26) };
		args[i] = &blobs[i];
	}
	void *objs[N];
	int rcs[N];
	for (int round = 0; round < 2; round++) { /* misses, then hits */
		cr_assert_eq(memento_get_many(cls, args, N, objs, rcs), 0);
		for (size_t i = 0; i < N; i++) {
			const struct blob *got = objs[i];
			cr_assert_eq(rcs[i], 0);
			cr_assert_eq(got->len, blobs[i].len, "key %zu: another key's object", i);
			cr_assert_eq(got->fill, blobs[i].fill);
		}
	}
	memento_stats st = stats_of(cls);
	cr_assert_eq(st.creations, N);
	cr_assert_eq(st.hits, N);
	/* The thread's key buffer was given back: a get of one more works. */
	struct blob last = { 4080, 'z' };
	void *obj;
	cr_assert_eq(memento_get(cls, &last, &obj), 0);
	cr_assert_eq(((struct blob *)obj)->len, 4080);
}

/* ---- nesting and guards --------------------------------------------------------- */

static memento_class *inner_cls;

/* A create that gets a batch of another class's objects. */
static int outer_create(void **obj, const void *args, void *ctx)
{
	(void)ctx;
	uint64_t k = *(const uint64_t *)args;
	uint64_t keys[40];
	const void *inner_args[40];
	for (size_t i = 0; i < 40; i++)
		keys[i] = k * 100 + i;
	point_at(inner_args, keys, 40);
	void *objs[40];
	int rc = memento_get_many(inner_cls, inner_args, 40, objs, NULL);
	if (rc != 0 && rc != -EIO)
		return rc;
	for (size_t i = 0; i < 40; i++)
		if (!create_fails(keys[i]) && (objs[i] == NULL || *(uint64_t *)objs[i] != keys[i]))
			return -EBADMSG;
	return picky_create(obj, args, ctx);
}

Test(get_many, a_create_may_get_a_batch_itself)
{
	inner_cls = picky_class(cache, NULL);
	memento_class_desc desc = { "outer", picky_key, outer_create, picky_destroy, NULL };
	memento_class *outer;
	cr_assert_eq(memento_class_new(cache, &desc, &outer), 0);
	uint64_t keys[3] = { 1, 2, 3 };
	const void *args[3];
	point_at(args, keys, 3);
	void *objs[3];
	int rcs[3];
	cr_assert_eq(memento_get_many(outer, args, 3, objs, rcs), 0);
	for (size_t i = 0; i < 3; i++)
		cr_assert_eq(*(uint64_t *)objs[i], keys[i]);
	cr_assert_eq(stats_of(inner_cls).creations, 120);
}

/* A key callback that gets an object itself (allowed: it nests), keying
 * on what it got; its probe is written in get_many's room, the nested
 * get's in the thread's scratch buffer. */
static int key_through_inner(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	void *got;
	int rc = memento_get(inner_cls, args, &got);
	if (rc != 0)
		return rc;
	rc = memento_key_u64(key, *(uint64_t *)got + 7);
	return rc != 0 ? rc : memento_key_str(key, "through the inner class");
}

Test(get_many, a_key_callback_may_get_objects_itself)
{
	inner_cls = picky_class(cache, NULL);
	memento_class_desc desc = { "keyed", key_through_inner, picky_create, picky_destroy, NULL };
	memento_class *keyed;
	cr_assert_eq(memento_class_new(cache, &desc, &keyed), 0);
	enum { N = 70 };
	uint64_t keys[N];
	const void *args[N];
	for (size_t i = 0; i < N; i++)
		keys[i] = create_fails(i) ? i + 1 : i; /* the inner gets all succeed */
	point_at(args, keys, N);
	void *objs[N];
	for (int round = 0; round < 2; round++) { /* creations, then hits */
		cr_assert_eq(memento_get_many(keyed, args, N, objs, NULL), 0, "round %d", round);
		for (size_t i = 0; i < N; i++) {
			void *one;
			cr_assert_eq(memento_get(keyed, args[i], &one), 0);
			cr_assert_eq(objs[i], one, "round %d, key %zu", round, i);
			cr_assert_eq(*(uint64_t *)one, keys[i]);
		}
	}
	/* Keys 0..69 less the ones replaced: one object per distinct key. */
	size_t distinct = 0;
	for (size_t i = 0; i < N; i++)
		distinct += i == 0 || keys[i] != keys[i - 1];
	cr_assert_eq(stats_of(keyed).creations, distinct);
	cr_assert_eq(stats_of(inner_cls).creations, distinct);
}

Test(get_many, a_guarded_class_needs_a_guard)
{
	memento_class_options opt = guarded_options();
	memento_class *cls = picky_class(cache, &opt);
	uint64_t keys[3] = { 1, 2, 1 };
	const void *args[3];
	point_at(args, keys, 3);
	void *objs[3];
	int rcs[3];
	cr_assert_eq(memento_get_many(cls, args, 3, objs, rcs), -EPERM);
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(rcs[i], -EPERM);
		cr_assert_null(objs[i]);
	}
	cr_assert_eq(memento_guard_enter(cache), 0);
	cr_assert_eq(memento_get_many(cls, args, 3, objs, rcs), 0);
	cr_assert_eq(objs[0], objs[2]);
	cr_assert_eq(*(uint64_t *)objs[1], 2);
	/* Hits in the same guard: from the thread's front cache and table. */
	cr_assert_eq(memento_get_many(cls, args, 3, objs, rcs), 0);
	cr_assert_eq(*(uint64_t *)objs[0], 1);
	memento_guard_leave(cache);
	cr_assert_eq(stats_of(cls).creations, 2);
}

/* ---- threads ---------------------------------------------------------------------- */

enum { THREADS = 8, ROUNDS = 200, KEYS = 48 };

struct crowd {
	memento_class *cls;
	pthread_barrier_t barrier;
	void *got[THREADS][KEYS];
	atomic_int wrong;
};

/* Each thread asks for the round's new keys in its own order.  Keys are
 * round * 1000 + 5 * slot: none fails its create. */
static void *ask_in_turn(int index, void *data)
{
	struct crowd *c = data;
	for (int round = 0; round < ROUNDS; round++) {
		uint64_t mine[KEYS];
		size_t slot[KEYS];
		const void *args[KEYS];
		void *objs[KEYS];
		for (size_t i = 0; i < KEYS; i++) {
			slot[i] = (i * 7 + (size_t)index * 5) % KEYS;
			mine[i] = (uint64_t)round * 1000 + 5 * slot[i];
		}
		point_at(args, mine, KEYS);
		pthread_barrier_wait(&c->barrier);
		if (memento_get_many(c->cls, args, KEYS, objs, NULL) != 0)
			atomic_fetch_add(&c->wrong, 1);
		for (size_t i = 0; i < KEYS; i++) {
			if (objs[i] == NULL || *(uint64_t *)objs[i] != mine[i])
				atomic_fetch_add(&c->wrong, 1);
			else
				c->got[index][slot[i]] = objs[i];
		}
		pthread_barrier_wait(&c->barrier);
		if (index == 0)
			for (int t = 1; t < THREADS; t++)
				for (size_t k = 0; k < KEYS; k++)
					if (c->got[t][k] != c->got[0][k])
						atomic_fetch_add(&c->wrong, 1);
		pthread_barrier_wait(&c->barrier);
	}
	return NULL;
}

Test(get_many, threads_asking_for_the_same_new_keys_create_each_once)
{
	struct crowd *c = calloc(1, sizeof *c);
	cr_assert_not_null(c);
	c->cls = picky_class(cache, NULL);
	pthread_barrier_init(&c->barrier, NULL, THREADS);
	crowd_run(THREADS, ask_in_turn, c, NULL);
	pthread_barrier_destroy(&c->barrier);
	int wrong = atomic_load(&c->wrong);
	free(c);
	cr_assert_eq(wrong, 0, "%d gets returned no object, a wrong one, or another thread's", wrong);
	cr_assert_eq(atomic_load(&picky_creations), ROUNDS * KEYS);
}

/* ---- a candidate of another key ------------------------------------------------------ */

struct signed_key {
	uint32_t sig;
	uint64_t key;
};

static int by_signature(const void *a, const void *b)
{
	const struct signed_key *x = a, *y = b;
	if (x->sig != y->sig)
		return x->sig < y->sig ? -1 : 1;
	return x->key < y->key ? -1 : x->key > y->key;
}

/* Where a key's probe starts in any table of up to 65,536 slots (the low 16
 * bits of its hash) and its tag (bits 32-47): two keys alike in both are
 * probed from the same slot and pass each other's tag check. */
static uint32_t signature(const memento_class *cls, uint64_t k)
{
	unsigned char bytes[MEMENTO_KEY_MAX];
	memento_key key = { .bytes = bytes, .len = 0, .err = 0 };
	cr_assert_eq(memento_key_u64(&key, k), 0);
	uint64_t h = memento__key_hash(bytes, key.len, cls->seed);
	return (uint32_t)(h & 0xffffu) | (uint32_t)((h >> 32) & 0xffffu) << 16;
}

/* Two pairs of keys, each alike in signature (none failing its create). */
static void find_lookalikes(const memento_class *cls, uint64_t pairs[2][2])
{
	enum { TRIES = 400000 };
	struct signed_key *all = malloc(TRIES * sizeof *all);
	cr_assert_not_null(all);
	size_t n = 0;
	for (uint64_t k = 0; n < TRIES; k++)
		if (!create_fails(k))
			all[n++] = (struct signed_key){ signature(cls, k), k };
	qsort(all, n, sizeof *all, by_signature);
	int found = 0;
	for (size_t i = 1; i < n && found < 2; i++) {
		if (all[i].sig == all[i - 1].sig) {
			pairs[found][0] = all[i - 1].key;
			pairs[found][1] = all[i].key;
			found++;
			i++; /* no key in two pairs */
		}
	}
	free(all);
	cr_assert_eq(found, 2, "no two pairs of lookalike keys among %d", TRIES);
}

struct lookalike_setup {
	memento_class *cls;
	uint64_t first, second; /* second may be UINT64_MAX: none */
};

/* Another thread makes them, so that this thread's front cache holds
 * neither and its gets go to the table. */
static void *make_in_order(int index, void *data)
{
	(void)index;
	struct lookalike_setup *s = data;
	void *obj;
	cr_assert_eq(memento_get(s->cls, &s->first, &obj), 0);
	if (s->second != UINT64_MAX)
		cr_assert_eq(memento_get(s->cls, &s->second, &obj), 0);
	return NULL;
}

Test(get_many, a_candidate_of_another_key_is_not_taken_for_it)
{
	memento_cache_options copt = MEMENTO_CACHE_OPTIONS_INIT;
	copt.shards = 1;
	copt.seed = UINT64_C(0x5eed);
	memento_cache *own;
	cr_assert_eq(memento_cache_new_with(&own, &copt), 0);
	memento_class *cls = picky_class(own, NULL);
	uint64_t pairs[2][2];
	find_lookalikes(cls, pairs);

	/* A hit: the first of a pair made first sits where the second's probe
	 * starts, so a probe for the second meets its tag first. */
	struct lookalike_setup hit = { cls, pairs[0][0], pairs[0][1] };
	crowd_run(1, make_in_order, &hit, NULL);
	/* A miss: the second of the other pair was never made; its probe
	 * meets the first's tag, then an empty slot. */
	struct lookalike_setup miss = { cls, pairs[1][0], UINT64_MAX };
	crowd_run(1, make_in_order, &miss, NULL);

	uint64_t keys[2] = { pairs[0][1], pairs[1][1] };
	const void *args[2];
	point_at(args, keys, 2);
	void *objs[2];
	int rcs[2];
	int made = atomic_load(&picky_creations);
	cr_assert_eq(memento_get_many(cls, args, 2, objs, rcs), 0);
	cr_assert_eq(*(uint64_t *)objs[0], keys[0], "a lookalike's object for a hit");
	cr_assert_eq(*(uint64_t *)objs[1], keys[1], "a lookalike's object for a miss");
	cr_assert_eq(atomic_load(&picky_creations), made + 1, "the miss was not created");
	memento_stats st = stats_of(cls);
	cr_assert_eq(st.hits, 1);
	memento_cache_free(own);
}
