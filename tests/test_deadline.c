/*
 * memento_get_until: a wait that outlasts its deadline returns -ETIMEDOUT
 * near the deadline, while the creation goes on and later callers get its
 * object.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"

TestSuite(deadline, .timeout = 60);

Test(deadline, wait_times_out_near_the_deadline_and_the_creation_goes_on)
{
	enum { CREATE_MS = 600, DEADLINE_MS = 50 };
	memento_cache *cache = new_cache();
	struct counting counts = { .sleep_ms = CREATE_MS };
	struct slow_creator s;
	start_creation(&s, counting_class(cache, "slow", &counts), &counts, 1);

	struct timespec start = now_monotonic();
	struct timespec deadline = after_ms(start, DEADLINE_MS);
	void *obj = (void *)&obj;
	int rc = memento_get_until(s.cls, &(struct args){ 1, 2 }, &obj, &deadline);
	struct timespec end = now_monotonic();
	double late_ms = ms_between(deadline, end);
	cr_log_info("returned %.3f ms after the deadline", late_ms);
	cr_assert_eq(rc, -ETIMEDOUT, "%s", memento_strerror(rc));
	cr_assert_eq(obj, (void *)&obj, "out pointer written on timeout");
	cr_assert_geq(late_ms, 0.0, "returned before the deadline");
	/* It returned because of the deadline, long before the creation ended. */
	cr_assert_lt(ms_between(start, end), CREATE_MS - 100);
	cr_assert_eq(stats_of(s.cls).timeouts, 1);

	/* The creation went on; its object is what everyone gets now. */
	pthread_join(s.thread, NULL);
	cr_assert_eq(s.rc, 0);
	cr_assert_eq(memento_get_until(s.cls, &(struct args){ 1, 3 }, &obj, &deadline), 0,
	             "a ready object is returned even past the deadline");
	cr_assert_eq(obj, s.obj);
	cr_assert_eq(atomic_load(&counts.creations), 1);
	memento_cache_free(cache);
}

/* A second in the past, and a negative tv_sec (which the kernel refuses
 * rather than times out): both time out at once, neither creates. */
Test(deadline, past_deadline_times_out_at_once_without_a_creation)
{
	memento_cache *cache = new_cache();
	struct counting counts = { .sleep_ms = 400 };
	struct slow_creator s;
	start_creation(&s, counting_class(cache, "slow", &counts), &counts, 4);
	struct timespec past = after_ms(now_monotonic(), -1000);
	past.tv_sec -= 1;
	struct timespec before_epoch = { -5, 0 };
	const struct timespec *deadlines[] = { &past, &before_epoch };
	for (int i = 0; i < 2; i++) {
		void *obj;
		struct timespec start = now_monotonic();
		cr_assert_eq(memento_get_until(s.cls, &(struct args){ 4, 0 }, &obj, deadlines[i]),
		             -ETIMEDOUT, "deadline %d", i);
		cr_assert_lt(ms_between(start, now_monotonic()), 150.0, "deadline %d: waited for the creation", i);
	}
	pthread_join(s.thread, NULL);
	cr_assert_eq(atomic_load(&counts.creations), 1);
	memento_cache_free(cache);
}

Test(deadline, a_caller_that_becomes_creator_runs_create_to_its_end)
{
	memento_cache *cache = new_cache();
	struct counting counts = { .sleep_ms = 20 };
	memento_class *cls = counting_class(cache, "c", &counts);
	struct timespec past = { 0, 0 };
	void *obj = NULL;
	cr_assert_eq(memento_get_until(cls, &(struct args){ 1, 0 }, &obj, &past), 0);
	cr_assert_not_null(obj);
	cr_assert_eq(atomic_load(&counts.creations), 1);
	memento_cache_free(cache);
}

/* Many timed waiters with staggered deadlines on one slow creation. */
struct staggered {
	memento_class *cls;
	int rc[16];
	double late_ms[16];
};

static void *staggered_waiter(int index, void *data)
{
	struct staggered *st = data;
	struct timespec deadline = after_ms(now_monotonic(), 20 + 10 * index);
	void *obj;
	st->rc[index] = memento_get_until(st->cls, &(struct args){ 9, 0 }, &obj, &deadline);
	st->late_ms[index] = ms_between(deadline, now_monotonic());
	return NULL;
}

Test(deadline, staggered_deadlines_each_expire_on_their_own)
{
	memento_cache *cache = new_cache();
	struct counting counts = { .sleep_ms = 800 };
	struct staggered st = { .cls = counting_class(cache, "slow", &counts) };
	struct slow_creator s;
	start_creation(&s, st.cls, &counts, 9);
	crowd_run(16, staggered_waiter, &st, NULL);
	for (int i = 0; i < 16; i++) {
		cr_assert_eq(st.rc[i], -ETIMEDOUT, "waiter %d: %s", i, memento_strerror(st.rc[i]));
		cr_assert_geq(st.late_ms[i], 0.0, "waiter %d returned early", i);
	}
	cr_assert_eq(stats_of(st.cls).timeouts, 16);
	pthread_join(s.thread, NULL);
	cr_assert_eq(s.rc, 0);
	memento_cache_free(cache);
}

Test(deadline, a_wait_leaves_errno_alone)
{
	memento_cache *cache = new_cache();
	struct counting counts = { .sleep_ms = 100 };
	struct slow_creator s;
	start_creation(&s, counting_class(cache, "slow", &counts), &counts, 8);
	void *obj;
	errno = 4242;
	cr_assert_eq(memento_get(s.cls, &(struct args){ 8, 0 }, &obj), 0);
	cr_assert_eq(errno, 4242);
	struct timespec soon = after_ms(now_monotonic(), 1);
	pthread_join(s.thread, NULL);
	cr_assert_eq(memento_get_until(s.cls, &(struct args){ 8, 0 }, &obj, &soon), 0);
	cr_assert_eq(errno, 4242);
	memento_cache_free(cache);
}

/* A create that itself fails with -ETIMEDOUT is not its waiters' timeout. */
Test(deadline, create_returning_etimedout_is_not_counted_as_a_timeout)
{
	memento_cache *cache = new_cache();
	struct counting counts = { .sleep_ms = 100, .fail_with = -ETIMEDOUT };
	struct slow_creator s;
	start_creation(&s, counting_class(cache, "slow", &counts), &counts, 3);
	void *obj;
	cr_assert_eq(memento_get(s.cls, &(struct args){ 3, 0 }, &obj), -ETIMEDOUT);
	pthread_join(s.thread, NULL);
	cr_assert_eq(s.rc, -ETIMEDOUT);
	memento_stats st = stats_of(s.cls);
	cr_assert_eq(st.timeouts, 0);
	cr_assert_eq(st.failures, 1);
	memento_cache_free(cache);
}
