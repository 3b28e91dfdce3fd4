/*
 * A creator that dies inside create (pthread_cancel, pthread_exit): its
 * waiters wake with -EOWNERDEAD and the next get creates again.
 *
 * Not built under AddressSanitizer: gcc 12's ASan reports a false
 * stack-buffer-overflow in its sigaltstack interceptor when a thread is
 * cancelled inside a sleep (see NOTES-deps.md).  It runs in the plain and
 * ThreadSanitizer builds.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"

#include <sys/syscall.h>
#include <unistd.h>

TestSuite(cancel, .timeout = 60);

enum { WAITERS = 6 };

struct doomed {
	memento_class *cls;
	atomic_int inside;
	int exit_instead; /* pthread_exit rather than wait to be cancelled */
	int waiter_rc[WAITERS];
};

static struct doomed doomed;

static void doomed_hook(struct counting *c, const struct args *a)
{
	(void)c;
	if (a->payload != 1)
		return; /* only the first creator dies */
	/* Cancelled only at pthread_testcancel below, never inside a sleep:
	 * ThreadSanitizer cannot see the synchronisation of cleanup handlers
	 * that run inside its sleep interceptors (google/sanitizers#646) and
	 * would report false races.  The raw syscall is not intercepted. */
	int ignored;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &ignored);
	atomic_store(&doomed.inside, 1);
	/* Wait for the waiters, then die one way or the other. */
	await_waits(doomed.cls, WAITERS, 10000);
	if (doomed.exit_instead)
		pthread_exit(NULL);
	pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &ignored);
	for (;;) {
		pthread_testcancel();
		struct timespec ms = { 0, 1000000 };
		syscall(SYS_nanosleep, &ms, NULL);
	}
}

static void *doomed_creator(void *p)
{
	(void)p;
	void *obj;
	memento_get(doomed.cls, &(struct args){ 5, 1 }, &obj);
	cr_assert_fail("the creator survived");
	return NULL;
}

static void *waiter(int index, void *data)
{
	(void)data;
	void *obj;
	doomed.waiter_rc[index] = memento_get(doomed.cls, &(struct args){ 5, 2 }, &obj);
	return NULL;
}

static void creator_dies(bool by_exit)
{
	memento_cache *cache = new_cache();
	struct counting counts = { .hook = doomed_hook };
	doomed = (struct doomed){ .cls = counting_class(cache, "doomed", &counts) };
	doomed.exit_instead = by_exit;
	pthread_t creator;
	cr_assert_eq(pthread_create(&creator, NULL, doomed_creator, NULL), 0);
	cr_assert(await_at_least(&doomed.inside, 1, 10000));

	/* Waiters start now and block on the dying creation. */
	pthread_t threads[WAITERS];
	struct crowd_arg args[WAITERS];
	for (int i = 0; i < WAITERS; i++) {
		args[i] = (struct crowd_arg){ i, NULL, waiter, NULL };
		cr_assert_eq(pthread_create(&threads[i], NULL, crowd_trampoline, &args[i]), 0);
	}
	/* Once all wait, the creator exits by itself, or is cancelled here. */
	cr_assert(await_waits(doomed.cls, WAITERS, 10000));
	if (!by_exit)
		pthread_cancel(creator);
	void *creator_result;
	pthread_join(creator, &creator_result);
	if (!by_exit)
		cr_assert_eq(creator_result, PTHREAD_CANCELED);
	for (int i = 0; i < WAITERS; i++)
		pthread_join(threads[i], NULL);

	for (int i = 0; i < WAITERS; i++)
		cr_assert_eq(doomed.waiter_rc[i], -EOWNERDEAD, "waiter %d: %s", i,
		             memento_strerror(doomed.waiter_rc[i]));
	cr_assert_eq(memento_count(cache), 0);
	memento_stats st = stats_of(doomed.cls);
	cr_assert_eq(st.failures, 1);

	/* The next get creates again, and the cache works as before. */
	void *obj;
	cr_assert_eq(memento_get(doomed.cls, &(struct args){ 5, 3 }, &obj), 0);
	cr_assert_eq(((struct obj *)obj)->payload, 3);
	cr_assert_eq(atomic_load(&counts.creations), 2);
	cr_assert_eq(memento_count(cache), 1);
	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&counts.destroys), 1);
}

Test(cancel, cancelled_creator_wakes_waiters_with_eownerdead)
{
	creator_dies(false);
}

Test(cancel, creator_calling_pthread_exit_wakes_waiters_with_eownerdead)
{
	creator_dies(true);
}

/*
 * A waiter that leaves its class's interrupt callback by pthread_exit lets
 * go of the creation it waited on: once forgotten, the object is destroyed
 * at the next barrier, not only when the cache is freed.
 */
static int exit_when_asked(const void *args, void *ctx)
{
	(void)args;
	(void)ctx;
	pthread_exit(NULL);
}

static void *get_ref_of_7(void *p)
{
	memento_ref *ref = NULL;
	int rc = memento_get_ref(p, &(struct args){ 7, 1 }, &ref);
	memento_ref_release(ref);
	return (void *)(intptr_t)rc;
}

Test(cancel, a_waiter_exiting_in_its_interrupt_callback_lets_go_of_the_creation)
{
	memento_cache *cache = new_cache();
	struct counting counts = { .sleep_ms = 300 };
	memento_class_options o = guarded_options();
	o.interrupt = exit_when_asked;
	o.interrupt_every_ns = 5000000;
	memento_class *cls = counting_class_with(cache, "g", &counts, &o);
	pthread_t creator, waiter;
	cr_assert_eq(pthread_create(&creator, NULL, get_ref_of_7, cls), 0);
	cr_assert(await_at_least(&counts.creations, 1, 10000));
	cr_assert_eq(pthread_create(&waiter, NULL, get_ref_of_7, cls), 0);
	void *waiter_result, *creator_result;
	pthread_join(waiter, &waiter_result);
	cr_assert_eq(waiter_result, NULL, "the waiter returned instead of exiting");
	pthread_join(creator, &creator_result);
	cr_assert_eq((intptr_t)creator_result, 0);
	cr_assert_eq(stats_of(cls).waits, 1);

	cr_assert_eq(memento_forget(cls, &(struct args){ 7, 0 }), 0);
	memento_cache_barrier(cache);
	cr_assert_eq(atomic_load(&counts.destroys), 1, "the exited waiter still holds the object");
	memento_cache_free(cache);
}
