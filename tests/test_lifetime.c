/*
 * Guarded classes: class options, guards, counted references, and the
 * reclamation of removed objects (destroyed once, never while a guard or a
 * reference might still use them, and not much later).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"
#include "support_alloc.h"

#include <string.h>
#include <unistd.h>

TestSuite(lifetime, .timeout = 300);

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#else
#define UNDER_ASAN 0
#endif

static struct args args_of(uint64_t key)
{
	return (struct args){ .key = key, .payload = 0 };
}

/* A get inside a guard: the object, asserted alive. */
static struct obj *guarded_get(memento_class *cls, uint64_t key)
{
	struct args a = args_of(key);
	void *obj = NULL;
	int rc = memento_get(cls, &a, &obj);
	cr_assert_eq(rc, 0, "get %llu: %s", (unsigned long long)key, memento_strerror(rc));
	struct obj *o = obj;
	cr_assert_eq(o->magic, OBJ_MAGIC, "a get returned a destroyed object");
	cr_assert_eq(o->key, key);
	return o;
}

static void forget(memento_class *cls, uint64_t key)
{
	struct args a = args_of(key);
	cr_assert_eq(memento_forget(cls, &a), 0);
}

/* ---- options ------------------------------------------------------------------------ */

static uint64_t weigh_one(const void *obj, void *ctx)
{
	(void)obj;
	(void)ctx;
	return 1;
}

static int try_class(memento_cache *cache, const char *name, const memento_class_options *o)
{
	static struct counting c;
	memento_class_desc desc = { name, counting_key, counting_create, counting_destroy, &c };
	memento_class *cls = NULL;
	return memento_class_new_with(cache, &desc, o, &cls);
}

Test(lifetime, bad_options_are_refused_and_the_cache_stays_usable)
{
	memento_cache *cache = new_cache();
	memento_class_options o;

	o = guarded_options();
	o.size = sizeof o - 1;
	cr_assert_eq(try_class(cache, "a", &o), -EINVAL, "too small a size");
	o.size = 0;
	cr_assert_eq(try_class(cache, "a", &o), -EINVAL, "a size of 0");

	o = guarded_options();
	o.lifetime = (memento_lifetime)2;
	cr_assert_eq(try_class(cache, "a", &o), -EINVAL, "an unknown lifetime");

	const char *on_cache[] = { "max_entries", "max_weight", "expire", "refresh" };
	for (int i = 0; i < 4; i++) {
		o = (memento_class_options)MEMENTO_CLASS_OPTIONS_INIT;
		o.max_entries = i == 0 ? 10 : 0;
		o.max_weight = i == 1 ? 10 : 0;
		o.weigh = i == 1 ? weigh_one : NULL;
		o.expire_after_ns = i == 2 ? 1000 : 0;
		o.refresh_after_ns = i == 3 ? 1000 : 0;
		cr_assert_eq(try_class(cache, "a", &o), -EINVAL, "%s on a CACHE class", on_cache[i]);
	}

	o = guarded_options();
	o.max_weight = 100;
	cr_assert_eq(try_class(cache, "a", &o), -EINVAL, "max_weight without weigh");
	o = guarded_options();
	o.weigh = weigh_one;
	cr_assert_eq(try_class(cache, "a", &o), -EINVAL, "weigh without max_weight");
	o = guarded_options();
	o.expire_after_ns = 1000;
	o.refresh_after_ns = 1000;
	cr_assert_eq(try_class(cache, "a", &o), -EINVAL, "refresh not below expiry");

	/* A newer caller's larger struct: fine while its extra bytes are 0. */
	struct {
		memento_class_options o;
		uint64_t newer_field;
	} larger;
	memset(&larger, 0, sizeof larger);
	larger.o = guarded_options();
	larger.o.size = sizeof larger;
	larger.newer_field = 1;
	cr_assert_eq(try_class(cache, "a", &larger.o), -EINVAL, "an unknown nonzero field");
	larger.newer_field = 0;
	cr_assert_eq(try_class(cache, "a", &larger.o), 0, "an unknown zero field");

	/* Remembered failures need no guard; nothing refused took a name. */
	o = (memento_class_options)MEMENTO_CLASS_OPTIONS_INIT;
	o.failure_ttl_ns = 1000000;
	cr_assert_eq(try_class(cache, "b", &o), 0);
	cr_assert_eq(try_class(cache, "c", NULL), 0);
	memento_class *found;
	cr_assert_eq(memento_class_find(cache, "a", &found), 0);
	cr_assert_eq(memento_class_find(cache, "d", &found), -ENOENT);
	memento_cache_free(cache);
}

/* ---- guards --------------------------------------------------------------------------- */

static atomic_int keys_built;

static int counted_key(memento_key *key, const void *args, void *ctx)
{
	atomic_fetch_add(&keys_built, 1);
	return counting_key(key, args, ctx);
}

Test(lifetime, a_guarded_class_outside_a_guard_is_refused_before_its_key_is_built)
{
	memento_cache *cache = new_cache();
	static struct counting c;
	memento_class_options o = guarded_options();
	memento_class_desc desc = { "g", counted_key, counting_create, counting_destroy, &c };
	memento_class *cls;
	cr_assert_eq(memento_class_new_with(cache, &desc, &o, &cls), 0);
	struct args a = args_of(1);
	void *obj = NULL;
	struct timespec deadline = after_ms(now_monotonic(), 10);

	cr_assert_eq(memento_get(cls, &a, &obj), -EPERM);
	cr_assert_eq(memento_get_until(cls, &a, &obj, &deadline), -EPERM);
	cr_assert_eq(memento_peek(cls, &a, &obj), -EPERM);
	cr_assert_eq(atomic_load(&keys_built), 0);
	cr_assert_eq(atomic_load(&c.creations), 0);
	cr_assert_null(obj);

	cr_assert_eq(memento_guard_enter(cache), 0);
	cr_assert_eq(memento_get(cls, &a, &obj), 0);
	cr_assert_eq(memento_peek(cls, &a, &obj), 0);
	memento_guard_leave(cache);
	/* forget works anywhere. */
	cr_assert_eq(memento_forget(cls, &a), 0);
	cr_assert_eq(memento_get(cls, &a, &obj), -EPERM);
	memento_cache_free(cache);
}

Test(lifetime, guards_nest_and_a_leave_without_enter_is_ignored)
{
	memento_cache *cache;
	static struct counting c;
	memento_class *cls = new_guarded_class(&cache, &c);
	struct args a = args_of(1);
	void *obj;

	memento_guard_leave(cache); /* ignored */
	memento_guard_leave(NULL);
	cr_assert_eq(memento_guard_enter(cache), 0);
	cr_assert_eq(memento_guard_enter(cache), 0);
	memento_guard_leave(cache);
	cr_assert_eq(memento_get(cls, &a, &obj), 0, "still inside the outer guard");
	memento_guard_leave(cache);
	cr_assert_eq(memento_get(cls, &a, &obj), -EPERM, "both guards left");
	memento_guard_leave(cache); /* ignored again: the next guard still works */
	cr_assert_eq(memento_guard_enter(cache), 0);
	cr_assert_eq(memento_get(cls, &a, &obj), 0);
	memento_guard_leave(cache);
	cr_assert_eq(memento_guard_enter(NULL), -EINVAL);
	memento_cache_free(cache);
}

Test(lifetime, a_thread_may_hold_guards_of_several_caches)
{
	memento_cache *one = new_cache(), *two = new_cache();
	static struct counting c1, c2;
	memento_class_options o = guarded_options();
	memento_class *a = counting_class_with(one, "g", &c1, &o);
	memento_class *b = counting_class_with(two, "g", &c2, &o);
	struct args k = args_of(5);
	void *obj;
	cr_assert_eq(memento_guard_enter(one), 0);
	cr_assert_eq(memento_get(b, &k, &obj), -EPERM, "a guard of one cache is not one of another");
	cr_assert_eq(memento_guard_enter(two), 0);
	cr_assert_eq(memento_get(a, &k, &obj), 0);
	cr_assert_eq(memento_get(b, &k, &obj), 0);
	memento_guard_leave(one);
	cr_assert_eq(memento_get(a, &k, &obj), -EPERM);
	cr_assert_eq(memento_get(b, &k, &obj), 0);
	memento_guard_leave(two);
	memento_cache_free(one);
	memento_cache_free(two);
}

/* ---- reclamation ---------------------------------------------------------------------- */

Test(lifetime, a_forgotten_object_lives_until_the_outermost_guard_ends_then_is_destroyed_once)
{
	memento_cache *cache;
	static struct counting c;
	memento_class *cls = new_guarded_class(&cache, &c);

	cr_assert_eq(memento_guard_enter(cache), 0);
	struct obj *first = guarded_get(cls, 1);
	cr_assert_eq(memento_guard_enter(cache), 0); /* nested */
	forget(cls, 1);
	struct obj *second = guarded_get(cls, 1);
	cr_assert_neq(first, second, "a forget makes the next get create anew");
	memento_guard_leave(cache);
	memento_cache_barrier(cache); /* inside a guard: returns at once */
	cr_assert_eq(first->magic, OBJ_MAGIC, "destroyed inside the guard that got it");
	cr_assert_eq(atomic_load(&c.destroys), 0);
	memento_guard_leave(cache);

	memento_cache_barrier(cache);
	cr_assert_eq(atomic_load(&c.destroys), 1, "the forgotten object, and only it");
	memento_stats st = stats_of(cls);
	cr_assert_eq(st.destroyed, 1);
	cr_assert_eq(st.creations, 2);

	/* Forgetting the second: destroyed at the barrier, the cache empty. */
	forget(cls, 1);
	memento_cache_barrier(cache);
	cr_assert_eq(atomic_load(&c.destroys), 2);
	cr_assert_eq(memento_count(cache), 0);
	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&c.destroys), 2, "cache_free destroys nothing twice");
}

Test(lifetime, cache_free_destroys_what_is_still_linked_or_waiting)
{
	memento_cache *cache;
	static struct counting c;
	memento_class *cls = new_guarded_class(&cache, &c);
	cr_assert_eq(memento_guard_enter(cache), 0);
	for (uint64_t k = 0; k < 100; k++)
		guarded_get(cls, k);
	for (uint64_t k = 0; k < 50; k++)
		forget(cls, k); /* in limbo: this thread's guard may still use them */
	memento_guard_leave(cache);
	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&c.destroys), 100);
}

/* Long keys: entries of their own chunk, given back to the allocator. */
static int long_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	char text[400];
	memset(text, 'k', sizeof text - 1);
	text[sizeof text - 1] = '\0';
	memento_key_str(key, text);
	return memento_key_u64(key, ((const struct args *)args)->key);
}

Test(lifetime, a_guard_leaves_no_front_slot_behind_to_an_object_it_kept)
{
	memento_cache *cache = new_cache();
	static struct counting c;
	memento_class_options o = guarded_options();
	memento_class_desc desc = { "long", long_key, counting_create, counting_destroy, &c };
	memento_class *cls;
	cr_assert_eq(memento_class_new_with(cache, &desc, &o, &cls), 0);
	struct args a = args_of(1);
	void *obj;
	cr_assert_eq(memento_guard_enter(cache), 0);
	cr_assert_eq(memento_get(cls, &a, &obj), 0);
	cr_assert_eq(memento_get(cls, &a, &obj), 0); /* from the table: into the front */
	memento_guard_leave(cache);
	forget(cls, 1);
	memento_cache_barrier(cache); /* destroyed, its entry's chunk freed */
	cr_assert_eq(atomic_load(&c.destroys), 1);
	/* A slot left from the first guard would point into freed memory
	 * (AddressSanitizer reports the read). */
	memento_ref *ref;
	cr_assert_eq(memento_get_ref(cls, &a, &ref), 0);
	cr_assert_eq(((struct obj *)memento_ref_object(ref))->serial, 2);
	memento_ref_release(ref);
	cr_assert_eq(memento_guard_enter(cache), 0);
	cr_assert_eq(memento_get(cls, &a, &obj), 0);
	cr_assert_eq(((struct obj *)obj)->serial, 2);
	memento_guard_leave(cache);
	memento_cache_free(cache);
}

/* ---- references ----------------------------------------------------------------------- */

Test(lifetime, a_reference_keeps_its_object_outside_any_guard_until_released)
{
	memento_cache *cache;
	static struct counting c;
	memento_class *cls = new_guarded_class(&cache, &c);
	struct args a = args_of(3);

	memento_ref *created, *hit;
	cr_assert_eq(memento_get_ref(cls, &a, &created), 0, "no guard needed");
	cr_assert_eq(memento_get_ref(cls, &a, &hit), 0);
	struct obj *o1 = memento_ref_object(created);
	cr_assert_eq(memento_ref_object(hit), o1);
	cr_assert_eq(atomic_load(&c.creations), 1);

	forget(cls, 3);
	memento_cache_barrier(cache);
	cr_assert_eq(o1->magic, OBJ_MAGIC, "two references hold it");
	memento_ref_release(created);
	memento_cache_barrier(cache);
	cr_assert_eq(o1->magic, OBJ_MAGIC, "one reference holds it");
	cr_assert_eq(atomic_load(&c.destroys), 0);
	memento_ref_release(hit); /* outside a guard: destroyed right here */
	cr_assert_eq(atomic_load(&c.destroys), 1);
	memento_ref_release(NULL);
	cr_assert_null(memento_ref_object(NULL));
	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&c.destroys), 1);
}

Test(lifetime, a_release_inside_a_guard_destroys_at_its_leave)
{
	memento_cache *cache;
	static struct counting c;
	memento_class *cls = new_guarded_class(&cache, &c);
	struct args a = args_of(4);
	memento_ref *ref;
	cr_assert_eq(memento_get_ref(cls, &a, &ref), 0);
	forget(cls, 4);
	memento_cache_barrier(cache);
	cr_assert_eq(memento_guard_enter(cache), 0);
	memento_ref_release(ref);
	cr_assert_eq(atomic_load(&c.destroys), 0, "never inside a guard of the releasing thread");
	memento_guard_leave(cache);
	cr_assert_eq(atomic_load(&c.destroys), 1, "the leave destroys it");
	memento_cache_free(cache);
}

Test(lifetime, references_to_a_never_reclaimed_class_are_valid_and_cost_nothing)
{
	memento_cache *cache = new_cache();
	static struct counting c;
	memento_class *cls = counting_class(cache, "plain", &c);
	struct args a = args_of(9);
	memento_ref *ref;
	cr_assert_eq(memento_get_ref(cls, &a, &ref), 0);
	struct obj *o = memento_ref_object(ref);
	forget(cls, 9);
	memento_ref_release(ref);
	memento_cache_barrier(cache);
	cr_assert_eq(o->magic, OBJ_MAGIC, "lives until the cache is freed");
	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&c.destroys), 1);
}

/* A creation forgotten while it runs: its creator gets it, then it goes. */
static memento_class *forget_in_create_cls;

static void forget_own_key(struct counting *c, const struct args *a)
{
	(void)c;
	cr_assert_eq(memento_forget(forget_in_create_cls, a), 0);
}

Test(lifetime, a_creation_forgotten_in_flight_is_destroyed_after_its_creator_is_done)
{
	memento_cache *cache = new_cache();
	static struct counting c;
	c.hook = forget_own_key;
	memento_class_options o = guarded_options();
	memento_class *cls = counting_class_with(cache, "g", &c, &o);
	forget_in_create_cls = cls;

	cr_assert_eq(memento_guard_enter(cache), 0);
	struct obj *o1 = guarded_get(cls, 8);
	cr_assert_eq(memento_count(cache), 0, "never linked after the forget");
	memento_cache_barrier(cache);
	cr_assert_eq(o1->magic, OBJ_MAGIC);
	memento_guard_leave(cache);
	memento_cache_barrier(cache);
	cr_assert_eq(atomic_load(&c.destroys), 1);

	memento_ref *ref;
	struct args eight = args_of(8);
	cr_assert_eq(memento_get_ref(cls, &eight, &ref), 0);
	memento_cache_barrier(cache);
	cr_assert_eq(((struct obj *)memento_ref_object(ref))->magic, OBJ_MAGIC,
	             "the creator's reference holds it");
	memento_ref_release(ref);
	cr_assert_eq(atomic_load(&c.destroys), 2);
	memento_cache_free(cache);
}

/* ---- the barrier waits for other threads' guards ------------------------------------ */

struct holder {
	memento_cache *cache;
	memento_class *cls;
	atomic_int stage; /* 1: holds the object in a guard; 2: told to leave */
	struct obj *held;
};

static void *hold_in_guard(void *p)
{
	struct holder *h = p;
	cr_assert_eq(memento_guard_enter(h->cache), 0);
	h->held = guarded_get(h->cls, 11);
	atomic_store(&h->stage, 1);
	while (atomic_load(&h->stage) != 2)
		sleep_ms(1);
	cr_assert_eq(h->held->magic, OBJ_MAGIC, "destroyed under a guard");
	memento_guard_leave(h->cache);
	return NULL;
}

static void *barrier_thread(void *p)
{
	struct holder *h = p;
	memento_cache_barrier(h->cache);
	return NULL;
}

Test(lifetime, the_barrier_waits_for_guards_held_when_it_was_called)
{
	memento_cache *cache;
	static struct counting c;
	memento_class *cls = new_guarded_class(&cache, &c);
	struct holder h = { cache, cls, 0, NULL };
	pthread_t holder, barrier;
	cr_assert_eq(pthread_create(&holder, NULL, hold_in_guard, &h), 0);
	while (atomic_load(&h.stage) != 1)
		sleep_ms(1);
	forget(cls, 11);
	cr_assert_eq(pthread_create(&barrier, NULL, barrier_thread, &h), 0);
	sleep_ms(100);
	cr_assert_eq(atomic_load(&c.destroys), 0, "the holder's guard still sees it");
	cr_assert_eq(pthread_tryjoin_np(barrier, NULL), EBUSY, "the barrier waits for that guard");
	atomic_store(&h.stage, 2);
	pthread_join(holder, NULL);
	pthread_join(barrier, NULL);
	cr_assert_eq(atomic_load(&c.destroys), 1);
	memento_cache_free(cache);
}

/* ---- memory stays flat -------------------------------------------------------------- */

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, resident = 0;
	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%ld %ld", &pages, &resident), 2);
	fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Cycles of get + forget over `keys` keys, one guard per cycle; the
 * cache's live bytes and the process's RSS after a warm-up and at the end. */
static void cycle(memento_cache *cache, memento_class *cls, uint64_t cycles, uint64_t keys,
                  bool forget_each)
{
	for (uint64_t i = 0; i < cycles; i++) {
		uint64_t k = i % keys;
		void *obj;
		cr_assert_eq(memento_guard_enter(cache), 0);
		cr_assert_eq(memento_get(cls, &k, &obj), 0);
		if (forget_each)
			cr_assert_eq(memento_forget(cls, &k), 0);
		memento_guard_leave(cache);
	}
}

Test(lifetime, get_and_forget_cycles_keep_memory_flat)
{
	static struct hook hook;
	memento_cache_options co = hooked_options(&hook, 0);
	memento_cache *cache;
	cr_assert_eq(memento_cache_new_with(&cache, &co), 0);
	memento_class_options o = guarded_options();
	memento_class *cls = plain_class(cache, "flat", &o);

	cycle(cache, cls, 200000, 100, true);
	long bytes0 = atomic_load(&hook.live_bytes), rss0 = rss_kib();
	cycle(cache, cls, 10000000, 100, true);
	memento_cache_barrier(cache);
	long bytes1 = atomic_load(&hook.live_bytes), rss1 = rss_kib();
	cr_log_info("10,000,000 get+forget cycles: cache %ld -> %ld bytes, RSS %ld -> %ld KiB",
	            bytes0, bytes1, rss0, rss1);
	cr_assert_leq(bytes1, bytes0 + 64 * 1024, "the cache's memory grew: %ld -> %ld", bytes0,
	              bytes1);
	if (!UNDER_ASAN) /* its quarantine holds freed memory: RSS tells nothing */
		cr_assert_leq(rss1, rss0 + 4096, "RSS grew: %ld -> %ld KiB", rss0, rss1);
	memento_stats st = stats_of(cls);
	cr_assert_eq(st.creations, 10200000);
	cr_assert_eq(st.destroyed, st.creations, "every forgotten object destroyed");
	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&hook.live_blocks), 0);
}

/* ---- readers that sleep inside guards, against every kind of removal ----------------- */

struct race {
	memento_cache *cache;
	memento_class *cls;      /* bounded, refreshed and expiring */
	memento_class *expiring; /* expiring fast, unbounded */
	atomic_bool stop;
	atomic_long checked; /* objects re-checked alive at the end of a guard */
};

static uint64_t next_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

static void *reader(int index, void *data)
{
	struct race *r = data;
	uint64_t rnd = 0x9E3779B97F4A7C15ull * (uint64_t)(index + 1);
	memento_ref *kept[4] = { 0 };
	while (!atomic_load(&r->stop)) {
		struct obj *got[8];
		int n = 1 + (int)(next_random(&rnd) % 8);
		cr_assert_eq(memento_guard_enter(r->cache), 0);
		for (int i = 0; i < n; i++) {
			uint64_t pick = next_random(&rnd);
			memento_class *cls = pick % 3 == 0 ? r->expiring : r->cls;
			/* Half the gets on a hot 32: old enough to refresh. */
			got[i] = guarded_get(cls, (pick >> 8) % (pick % 2 ? 32 : 256));
		}
		if (next_random(&rnd) % 4 == 0) {
			struct timespec nap = { 0, (long)(next_random(&rnd) % 2000000) };
			nanosleep(&nap, NULL); /* removals and reclaims go on meanwhile */
		}
		for (int i = 0; i < n; i++)
			cr_assert_eq(got[i]->magic, OBJ_MAGIC, "destroyed while a guard held it");
		atomic_fetch_add(&r->checked, n);
		memento_guard_leave(r->cache);

		/* References held across guards, released now and then. */
		int slot = (int)(next_random(&rnd) % 4);
		if (kept[slot] != NULL) {
			cr_assert_eq(((struct obj *)memento_ref_object(kept[slot]))->magic, OBJ_MAGIC,
			             "destroyed while a reference held it");
			memento_ref_release(kept[slot]);
			kept[slot] = NULL;
		} else {
			struct args a = args_of(next_random(&rnd) % 256);
			cr_assert_eq(memento_get_ref(r->cls, &a, &kept[slot]), 0);
		}
	}
	for (int i = 0; i < 4; i++)
		memento_ref_release(kept[i]);
	return NULL;
}

static void *remover(int index, void *data)
{
	struct race *r = data;
	uint64_t rnd = 0xD1B54A32D192ED03ull * (uint64_t)(index + 1);
	while (!atomic_load(&r->stop)) {
		uint64_t pick = next_random(&rnd);
		struct args a = args_of((pick >> 8) % 256);
		int rc = memento_forget(pick % 3 == 0 ? r->expiring : r->cls, &a);
		cr_assert(rc == 0 || rc == -ENOENT);
		if (next_random(&rnd) % 64 == 0)
			memento_cache_barrier(r->cache);
	}
	return NULL;
}

static void *race_driver(int index, void *data)
{
	return index < 2 ? remover(index, data) : reader(index, data);
}

static void *race_timer(void *data)
{
	struct race *r = data;
	sleep_ms(1500);
	atomic_store(&r->stop, true);
	return NULL;
}

Test(lifetime, readers_sleeping_in_guards_never_see_an_object_destroyed)
{
	memento_cache_options co = MEMENTO_CACHE_OPTIONS_INIT;
	co.shards = 4;
	memento_cache *cache;
	cr_assert_eq(memento_cache_new_with(&cache, &co), 0);
	static struct counting c;
	memento_class_options o = guarded_options();
	o.max_entries = 64;       /* evictions */
	o.expire_after_ns = 30000000;  /* expirations */
	o.refresh_after_ns = 10000000; /* replacements */
	memento_class *cls = counting_class_with(cache, "raced", &c, &o);
	memento_class_options fast = guarded_options();
	fast.expire_after_ns = 5000000;
	memento_class *expiring = counting_class_with(cache, "expiring", &c, &fast);
	struct race r = { .cache = cache, .cls = cls, .expiring = expiring };
	pthread_t timer;
	cr_assert_eq(pthread_create(&timer, NULL, race_timer, &r), 0);
	crowd_run(10, race_driver, &r, NULL);
	pthread_join(timer, NULL);

	memento_cache_barrier(cache);
	memento_stats st = stats_of(cls), st2 = stats_of(expiring);
	st.creations += st2.creations;
	st.evictions += st2.evictions;
	st.expirations += st2.expirations;
	st.refreshes += st2.refreshes;
	st.destroyed += st2.destroyed;
	st.failures += st2.failures;
	cr_log_info("%ld objects re-checked; %llu creations, %llu evictions, %llu expirations, "
	            "%llu refreshes, %llu destroyed",
	            atomic_load(&r.checked), (unsigned long long)st.creations,
	            (unsigned long long)st.evictions, (unsigned long long)st.expirations,
	            (unsigned long long)st.refreshes, (unsigned long long)st.destroyed);
	cr_assert_gt(st.evictions, 0);
	cr_assert_gt(st.refreshes, 0);
	cr_assert_gt(st.expirations, 0);
	cr_assert_eq(st.failures, 0);
	cr_assert_eq(st.creations, memento_count(cache) + st.destroyed,
	             "once quiet: creations = live + destroyed");
	cr_assert_eq((uint64_t)atomic_load(&c.destroys), st.destroyed);
	memento_cache_free(cache);
	cr_assert_eq((uint64_t)atomic_load(&c.destroys), st.creations, "each destroyed once");
}
