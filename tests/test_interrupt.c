/*
 * memento_class_options.interrupt: a get waiting for another thread's
 * creation asks its class's callback every interrupt_every_ns whether to
 * stop; an error ends that get while the creation goes on, 0 waits on, and
 * a callback that waits itself keeps deadlocks detected.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"

TestSuite(interrupt, .timeout = 60);

#define MS 1000000ull

/* What the callback does, reached through the counting class's hook_data. */
struct asking {
	atomic_int calls;
	int stop_at;   /* the call (from 1) that returns stop_with; 0: none */
	int stop_with;
	/* The cycle test's thread A: tells that it is in its callback, then
	 * waits there for the class's waits to reach await_waits. */
	memento_class *cls;
	atomic_bool in_callback;
	uint64_t await_waits;
};

static _Thread_local bool is_thread_a;

static int ask(const void *args, void *ctx)
{
	(void)args;
	struct counting *c = ctx;
	struct asking *a = c->hook_data;
	int n = atomic_fetch_add(&a->calls, 1) + 1;
	if (is_thread_a && !atomic_load(&a->in_callback)) {
		atomic_store(&a->in_callback, true);
		cr_assert(await_waits(a->cls, a->await_waits, 5000), "thread B never waited");
	}
	return n == a->stop_at ? a->stop_with : 0;
}

static memento_class *asking_class(memento_cache *cache, struct counting *c, struct asking *a,
                                   uint64_t every_ns)
{
	c->hook_data = a;
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	o.interrupt = ask;
	o.interrupt_every_ns = every_ns;
	return a->cls = counting_class_with(cache, "asking", c, &o);
}

/* A cache, an asking class in it, and (scene_run) a thread creating key 1
 * for create_ms, so that other gets of key 1 wait. */
struct scene {
	memento_cache *cache;
	struct counting counts;
	struct asking asking;
	memento_class *cls;
	struct slow_creator creator;
};

static void scene_init(struct scene *sc, int create_ms, uint64_t every_ns, int stop_at,
                       int stop_with)
{
	*sc = (struct scene){ .counts = { .sleep_ms = create_ms },
		              .asking = { .stop_at = stop_at, .stop_with = stop_with } };
	sc->cache = new_cache();
	sc->cls = asking_class(sc->cache, &sc->counts, &sc->asking, every_ns);
}

static void scene_run(struct scene *sc)
{
	start_creation(&sc->creator, sc->cls, &sc->counts, 1);
}

static void scene_end(struct scene *sc)
{
	pthread_join(sc->creator.thread, NULL);
	memento_cache_free(sc->cache);
}

/* The key is still being created: the get returned before the creation
 * ended, whatever the clock says. */
static void assert_in_flight(memento_class *cls, uint64_t key)
{
	void *obj;
	cr_assert_eq(memento_peek(cls, &(struct args){ key, 0 }, &obj), -EINPROGRESS);
}

Test(interrupt, an_error_ends_the_wait_and_the_creation_goes_on)
{
	struct scene sc;
	scene_init(&sc, 800, 20 * MS, 3, -ECANCELED);
	scene_run(&sc);
	void *obj = &obj;
	cr_assert_eq(memento_get(sc.cls, &(struct args){ 1, 2 }, &obj), -ECANCELED);
	cr_assert_eq(obj, (void *)&obj, "out pointer written");
	cr_assert_eq(atomic_load(&sc.asking.calls), 3, "asked %d times", atomic_load(&sc.asking.calls));
	assert_in_flight(sc.cls, 1);

	pthread_join(sc.creator.thread, NULL);
	cr_assert_eq(sc.creator.rc, 0);
	cr_assert_eq(memento_get(sc.cls, &(struct args){ 1, 3 }, &obj), 0);
	cr_assert_eq(obj, sc.creator.obj);
	cr_assert_eq(atomic_load(&sc.counts.creations), 1);
	memento_stats st = stats_of(sc.cls);
	cr_assert_eq(st.waits, 1);
	cr_assert_eq(st.timeouts, 0, "an interrupt is not a timeout");
	cr_assert_eq(st.failures, 0);
	cr_assert_eq(atomic_load(&sc.asking.calls), 3, "the creator or a hit asked");
	memento_cache_free(sc.cache);
}

Test(interrupt, a_positive_answer_is_eintr)
{
	struct scene sc;
	scene_init(&sc, 500, 10 * MS, 1, 7);
	scene_run(&sc);
	void *obj;
	cr_assert_eq(memento_get(sc.cls, &(struct args){ 1, 2 }, &obj), -EINTR);
	assert_in_flight(sc.cls, 1);
	scene_end(&sc);
}

/* Zero waits on, through every slice, for the object or the failure. */
Test(interrupt, zero_waits_for_the_outcome_success_or_failure)
{
	for (int failing = 0; failing < 2; failing++) {
		struct scene sc;
		scene_init(&sc, 200, 5 * MS, 0, 0);
		sc.counts.fail_with = failing ? -EIO : 0;
		scene_run(&sc);
		void *obj = NULL;
		int rc = memento_get(sc.cls, &(struct args){ 1, 2 }, &obj);
		pthread_join(sc.creator.thread, NULL);
		cr_assert_eq(rc, failing ? -EIO : 0, "failing %d: %s", failing, memento_strerror(rc));
		cr_assert_eq(sc.creator.rc, rc);
		cr_assert_eq(obj, sc.creator.obj);
		cr_assert_gt(atomic_load(&sc.asking.calls), 0, "failing %d: never asked", failing);
		cr_assert_eq(atomic_load(&sc.counts.creations), 1, "failing %d: the waiter created",
		             failing);
		cr_assert_eq(stats_of(sc.cls).waits, 1);
		memento_cache_free(sc.cache);
	}
}

/* memento_get_until's deadline still ends the wait, counted as a timeout. */
Test(interrupt, the_deadline_still_bounds_the_wait)
{
	struct scene sc;
	scene_init(&sc, 800, 30 * MS, 0, 0);
	scene_run(&sc);
	struct timespec deadline = after_ms(now_monotonic(), 100);
	void *obj;
	cr_assert_eq(memento_get_until(sc.cls, &(struct args){ 1, 2 }, &obj, &deadline), -ETIMEDOUT);
	cr_assert_geq(ms_between(deadline, now_monotonic()), 0.0, "returned before the deadline");
	assert_in_flight(sc.cls, 1);
	cr_assert_eq(stats_of(sc.cls).timeouts, 1);
	cr_assert_gt(atomic_load(&sc.asking.calls), 0, "a slice ended before the deadline");
	scene_end(&sc);
}

/* A deadline long past (negative tv_sec) times out at once, unasked; one
 * past what 64 bits of ns hold is none: the callback is still asked. */
Test(interrupt, deadlines_at_the_ends_of_the_range)
{
	struct scene sc;
	scene_init(&sc, 600, 10 * MS, 1, -ECANCELED);
	scene_run(&sc);
	void *obj;
	struct timespec past = { -5, 0 };
	cr_assert_eq(memento_get_until(sc.cls, &(struct args){ 1, 2 }, &obj, &past), -ETIMEDOUT);
	cr_assert_eq(atomic_load(&sc.asking.calls), 0);
	struct timespec far = { (time_t)1 << 55, 0 };
	cr_assert_eq(memento_get_until(sc.cls, &(struct args){ 1, 2 }, &obj, &far), -ECANCELED);
	assert_in_flight(sc.cls, 1);
	scene_end(&sc);
}

/* Slices are at least 1 ms: a 1 ns interval cannot spin the waiter. */
Test(interrupt, an_interval_under_a_millisecond_is_one)
{
	struct scene sc;
	scene_init(&sc, 200, 1, 0, 0);
	scene_run(&sc);
	struct timespec start = now_monotonic();
	void *obj;
	cr_assert_eq(memento_get(sc.cls, &(struct args){ 1, 2 }, &obj), 0);
	double waited_ms = ms_between(start, now_monotonic());
	int calls = atomic_load(&sc.asking.calls);
	cr_assert_leq(calls, waited_ms + 2, "%d calls in %.1f ms", calls, waited_ms);
	scene_end(&sc);
}

/* memento_get_many's waits ask too; so do memento_get_ref's. */
Test(interrupt, get_many_and_get_ref_ask_too)
{
	struct scene sc;
	scene_init(&sc, 600, 10 * MS, 1, -ECANCELED);
	scene_run(&sc);
	struct args one = { 1, 2 };
	const void *args[] = { &one };
	void *objs[1];
	int rcs[1];
	cr_assert_eq(memento_get_many(sc.cls, args, 1, objs, rcs), -ECANCELED);
	cr_assert_eq(rcs[0], -ECANCELED);
	cr_assert_null(objs[0]);

	sc.asking.stop_at = 2;
	memento_ref *ref = NULL;
	cr_assert_eq(memento_get_ref(sc.cls, &one, &ref), -ECANCELED);
	cr_assert_null(ref);
	assert_in_flight(sc.cls, 1);
	scene_end(&sc);
}

/*
 * The callback runs with its thread's wait unregistered (it may wait
 * itself), so a cycle can close while it runs: thread A waits for key 2
 * (B's creation) inside its creation of key 1; in A's callback, B, inside
 * its creation of key 2, starts waiting for key 1.  Registering A's wait
 * again finds the cycle: A's get of key 2 fails with -EDEADLK instead of
 * both threads waiting forever.  (B asks its own callback too, with its
 * edge out; if A comes back then, B finds the cycle instead: one of the
 * two, exactly once.)
 */
static struct {
	memento_class *cls;
	atomic_int inner_rc_a, inner_rc_b;
	struct asking *asking;
} cycle;

static void cycle_hook(struct counting *c, const struct args *in)
{
	(void)c;
	void *obj;
	if (in->key == 1) {
		is_thread_a = true;
		atomic_store(&cycle.inner_rc_a, memento_get(cycle.cls, &(struct args){ 2, 0 }, &obj));
	} else if (in->key == 2) {
		for (int i = 0; i < 5000 && !atomic_load(&cycle.asking->in_callback); i++)
			sleep_ms(1);
		cr_assert(atomic_load(&cycle.asking->in_callback), "thread A never asked");
		atomic_store(&cycle.inner_rc_b, memento_get(cycle.cls, &(struct args){ 1, 0 }, &obj));
	}
}

Test(interrupt, a_cycle_that_closes_during_the_callback_is_found)
{
	memento_cache *cache = new_cache();
	struct counting counts = { .hook = cycle_hook };
	struct asking a = { .await_waits = 2 };
	cycle.asking = &a;
	cycle.cls = asking_class(cache, &counts, &a, 10 * MS);
	atomic_store(&cycle.inner_rc_a, 1);
	atomic_store(&cycle.inner_rc_b, 1);

	struct slow_creator b;
	start_creation(&b, cycle.cls, &counts, 2); /* B: key 2, waits in its hook */
	void *obj;
	int rc_a = memento_get(cycle.cls, &(struct args){ 1, 0 }, &obj); /* A: this thread */
	is_thread_a = false;
	pthread_join(b.thread, NULL);

	int inner_a = atomic_load(&cycle.inner_rc_a), inner_b = atomic_load(&cycle.inner_rc_b);
	cr_assert((inner_a == -EDEADLK && inner_b == 0) || (inner_a == 0 && inner_b == -EDEADLK),
	          "A's wait for key 2: %d, B's for key 1: %d", inner_a, inner_b);
	cr_assert_eq(rc_a, 0);
	cr_assert_eq(b.rc, 0);
	memento_stats st = stats_of(cycle.cls);
	cr_assert_eq(st.deadlocks, 1);
	cr_assert_eq(st.waits, 2);
	memento_cache_free(cache);
}

Test(interrupt, an_interval_without_a_callback_is_refused)
{
	memento_cache *cache = new_cache();
	struct counting counts = { 0 };
	memento_class_desc desc = { .name = "c", .key = counting_key, .create = counting_create,
		                    .destroy = counting_destroy, .ctx = &counts };
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	o.interrupt_every_ns = MS;
	memento_class *cls = NULL;
	cr_assert_eq(memento_class_new_with(cache, &desc, &o, &cls), -EINVAL);
	cr_assert_null(cls);
	o.interrupt = ask;
	o.interrupt_every_ns = 0; /* the default interval */
	cr_assert_eq(memento_class_new_with(cache, &desc, &o, &cls), 0);
	memento_cache_free(cache);
}
