/*
 * fork() while other threads create: the child can use the cache, creations
 * that were in flight in the parent are created again in the child (never
 * waited on forever), and the parent goes on as if nothing happened.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"
#include "support_alloc.h"

#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

enum { KEYS = 64, WORKERS = 6, FORKS = 12 };

struct crowd {
	memento_class *cls;
	atomic_bool stop;
	atomic_long gets;
};

/* Keeps creations in flight: forgets keys and gets them again (each create
 * sleeps), so at any fork some keys are mid-creation and some threads wait. */
static void *churn(int index, void *data)
{
	struct crowd *c = data;
	unsigned int k = (unsigned int)index * 7;
	while (!atomic_load(&c->stop)) {
		struct args a = { k++ % KEYS, 0 };
		void *o;
		int rc = memento_get(c->cls, &a, &o);
		cr_assert_eq(rc, 0, "parent get: %s", memento_err_name(rc));
		cr_assert_eq(((struct obj *)o)->key, a.key);
		if (k % 5 == 0)
			(void)memento_forget(c->cls, &a);
		atomic_fetch_add(&c->gets, 1);
	}
	return NULL;
}

/* Exit codes of the child, so the parent can say what went wrong. */
enum { CHILD_OK = 0, CHILD_GET_FAILED = 10, CHILD_WRONG_OBJECT, CHILD_HUNG, CHILD_COUNT };

/* The child: one thread.  Every key must be gettable (ready, or created
 * again if it was in flight), within a deadline that only a hang misses. */
static int child_checks(memento_cache *cache, memento_class *cls)
{
	struct timespec deadline = after_ms(now_monotonic(), 5000);
	for (uint64_t k = 0; k < KEYS; k++) {
		struct args a = { k, 0 };
		void *o;
		int rc = memento_get_until(cls, &a, &o, &deadline);
		if (rc == -ETIMEDOUT)
			return CHILD_HUNG;
		if (rc != 0)
			return CHILD_GET_FAILED;
		if (((struct obj *)o)->key != k || ((struct obj *)o)->magic != OBJ_MAGIC)
			return CHILD_WRONG_OBJECT;
	}
	if (memento_count(cache) != KEYS)
		return CHILD_COUNT;
	/* Freeing needs grace periods to advance past the parent's readers. */
	memento_cache_free(cache);
	return CHILD_OK;
}

/* Waits for pid for up to limit_ms; kills it and reports a hang after. */
static int wait_child(pid_t pid, int limit_ms)
{
	int status;
	for (int waited = 0; waited < limit_ms; waited++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		cr_assert_neq(r, -1, "waitpid");
		if (r == pid) {
			cr_assert(WIFEXITED(status), "child died of signal %d",
			          WIFSIGNALED(status) ? WTERMSIG(status) : 0);
			return WEXITSTATUS(status);
		}
		sleep_ms(1);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return CHILD_HUNG;
}

Test(fork, child_recreates_what_was_in_flight_and_parent_is_unaffected)
{
	struct counting count = { .sleep_ms = 1 };
	memento_cache *cache = new_cache();
	struct crowd crowd = { .cls = counting_class(cache, "forked", &count) };
	pthread_t threads[WORKERS];
	struct crowd_arg args[WORKERS];
	for (int i = 0; i < WORKERS; i++) {
		args[i] = (struct crowd_arg){ i, &crowd, churn, NULL };
		cr_assert_eq(pthread_create(&threads[i], NULL, crowd_trampoline, &args[i]), 0);
	}

	for (int f = 0; f < FORKS; f++) {
		sleep_ms(5);
		pid_t pid = fork();
		cr_assert_neq(pid, -1, "fork");
		if (pid == 0)
			_exit(child_checks(cache, crowd.cls));
		int code = wait_child(pid, 10000);
		cr_assert_eq(code, CHILD_OK, "fork %d: child exit code %d", f, code);
	}

	atomic_store(&crowd.stop, true);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(threads[i], NULL);
	cr_assert_gt(atomic_load(&crowd.gets), 0);
	/* The parent's own books still balance. */
	memento_stats st = stats_of(crowd.cls);
	cr_assert_eq(st.creations, (uint64_t)atomic_load(&count.creations));
	memento_cache_free(cache);
	cr_assert_eq(atomic_load(&count.destroys), atomic_load(&count.creations));
	printf("fork: %d forks while %d threads created; every child got all %d keys\n", FORKS,
	       WORKERS, KEYS);
}

/* The thread that forks may itself be creating: its creation goes on in
 * the child (it is the child's own thread) and completes there. */
static void fork_inside_create(struct counting *c, const struct args *a)
{
	(void)a;
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		*(int *)c->hook_data = 1; /* this copy is the child's */
		return;
	}
	int code = wait_child(pid, 10000);
	cr_assert_eq(code, CHILD_OK, "child exit code %d", code);
}

struct self_fork {
	memento_class *cls;
	int in_child;
};

Test(fork, a_creator_that_forks_finishes_its_creation_in_the_child)
{
	struct self_fork sf = { 0 };
	struct counting count = { .hook = fork_inside_create, .hook_data = &sf.in_child };
	memento_cache *cache = new_cache();
	sf.cls = counting_class(cache, "self", &count);
	struct args a = { 1, 0 };
	void *o;
	int rc = memento_get(sf.cls, &a, &o);
	if (sf.in_child) {
		/* The child's create returned and published; a second get hits. */
		void *again;
		int ok = rc == 0 && memento_get(sf.cls, &a, &again) == 0 && again == o &&
		         atomic_load(&count.creations) == 1;
		_exit(ok ? CHILD_OK : CHILD_GET_FAILED);
	}
	cr_assert_eq(rc, 0);
	memento_cache_free(cache);
}

/*
 * An allocator with a lock of its own, held by a thread stuck inside it at
 * the moment of fork() while another thread's creation is in flight: the
 * child must not need that lock (the library's child handler must not call
 * the allocator), or the child hangs inside fork() itself.
 */
struct stuck_allocator {
	pthread_mutex_t lock;
	atomic_int block_next; /* the next alloc waits, holding the lock */
	atomic_int blocked;    /* an alloc is waiting now */
	atomic_int release;
};

static void *stuck_alloc(size_t size, size_t align, void *state)
{
	struct stuck_allocator *a = state;
	pthread_mutex_lock(&a->lock);
	int expected = 1;
	if (atomic_compare_exchange_strong(&a->block_next, &expected, 0)) {
		atomic_store(&a->blocked, 1);
		while (!atomic_load(&a->release))
			sleep_ms(1);
	}
	void *p = aligned_alloc(align, (size + align - 1) / align * align);
	pthread_mutex_unlock(&a->lock);
	return p;
}

static void stuck_free(void *p, size_t size, void *state)
{
	struct stuck_allocator *a = state;
	(void)size;
	pthread_mutex_lock(&a->lock);
	free(p);
	pthread_mutex_unlock(&a->lock);
}

/* Holds the creation of key 1 until released (a counting hook). */
struct key1_gate {
	atomic_int creating; /* key 1's creation is under way */
	atomic_int finish;
};

static void key1_waits_for_gate(struct counting *c, const struct args *a)
{
	struct key1_gate *gate = c->hook_data;
	if (a->key != 1)
		return;
	atomic_store(&gate->creating, 1);
	while (!atomic_load(&gate->finish))
		sleep_ms(1);
}

struct stuck_run {
	memento_class *cls;
	struct stuck_allocator *alloc;
	struct key1_gate gate;
};

static void *stuck_worker(int index, void *data)
{
	struct stuck_run *run = data;
	struct args a = { (uint64_t)index + 1, 0 }; /* thread 0: key 1, the slow one */
	void *o;
	if (index == 1) {
		/* A first get, a hit, makes this thread's records (under the
		 * registry lock); the blocked allocation must be one made
		 * outside every library lock, as a new creation's record is
		 * (this thread has none kept yet: it has created nothing). */
		struct args warm = { 100, 0 };
		cr_assert_eq(memento_get(run->cls, &warm, &o), 0);
		while (!atomic_load(&run->gate.creating))
			sleep_ms(1);
		atomic_store(&run->alloc->block_next, 1);
	}
	cr_assert_eq(memento_get(run->cls, &a, &o), 0);
	return NULL;
}

Test(fork, the_child_handler_never_calls_the_allocator)
{
	struct stuck_allocator alloc = { .lock = PTHREAD_MUTEX_INITIALIZER };
	memento_cache_options opt = MEMENTO_CACHE_OPTIONS_INIT;
	opt.allocator = (memento_allocator){ stuck_alloc, stuck_free, &alloc };
	memento_cache *cache;
	cr_assert_eq(memento_cache_new_with(&cache, &opt), 0);
	struct stuck_run run = { .alloc = &alloc };
	struct counting count = { .hook = key1_waits_for_gate, .hook_data = &run.gate };
	run.cls = counting_class(cache, "stuck", &count);
	struct args warm = { 100, 0 };
	void *o;
	cr_assert_eq(memento_get(run.cls, &warm, &o), 0);

	pthread_t threads[2];
	struct crowd_arg args[2];
	for (int i = 0; i < 2; i++) {
		args[i] = (struct crowd_arg){ i, &run, stuck_worker, NULL };
		cr_assert_eq(pthread_create(&threads[i], NULL, crowd_trampoline, &args[i]), 0);
	}
	cr_assert(await_at_least(&alloc.blocked, 1, 10000));

	/* Key 1 is in flight on thread 0; thread 1 holds the allocator's lock. */
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0)
		_exit(CHILD_OK);
	int code = wait_child(pid, 10000);

	atomic_store(&alloc.release, 1);
	atomic_store(&run.gate.finish, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(threads[i], NULL);
	cr_assert_eq(code, CHILD_OK, "the child hung in fork(): exit code %d", code);
	memento_cache_free(cache);
}

/*
 * A creation in flight on another thread, forgotten before the fork: it is
 * no longer in the table, yet the child must still release its record.
 * The child frees the cache and checks the cache's allocator is back to
 * nothing.
 */
enum { CHILD_LEAKED = 20 };

struct forgotten_run {
	memento_class *cls;
	struct key1_gate gate;
};

static void *get_key_1(int index, void *data)
{
	(void)index;
	struct forgotten_run *run = data;
	void *o;
	cr_assert_eq(memento_get(run->cls, &(struct args){ 1, 0 }, &o), 0);
	return NULL;
}

Test(fork, a_forgotten_creation_in_flight_is_released_in_the_child)
{
	struct hook h = { 0 };
	memento_cache_options opt = hooked_options(&h, 4);
	memento_cache *cache;
	cr_assert_eq(memento_cache_new_with(&cache, &opt), 0);
	struct forgotten_run run = { 0 };
	struct counting count = { .hook = key1_waits_for_gate, .hook_data = &run.gate };
	run.cls = counting_class(cache, "forgotten", &count);

	pthread_t creator;
	struct crowd_arg arg = { 0, &run, get_key_1, NULL };
	cr_assert_eq(pthread_create(&creator, NULL, crowd_trampoline, &arg), 0);
	cr_assert(await_at_least(&run.gate.creating, 1, 10000));
	cr_assert_eq(memento_forget(run.cls, &(struct args){ 1, 0 }), 0);

	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		memento_cache_free(cache);
		_exit(atomic_load(&h.live_blocks) == 0 ? CHILD_OK : CHILD_LEAKED);
	}
	int code = wait_child(pid, 10000);

	atomic_store(&run.gate.finish, 1);
	pthread_join(creator, NULL);
	memento_cache_free(cache);
	cr_assert_eq(code, CHILD_OK, "the child's cache left blocks behind: exit code %d", code);
	cr_assert_eq(atomic_load(&h.live_blocks), 0);
}

/* ---- guards and references across fork ------------------------------------------------ */

/* Parent threads that hold, at the fork, a guard around a forgotten object
 * and a reference to another. */
struct holders {
	memento_cache *cache;
	memento_class *cls;
	atomic_int ready;
	atomic_bool done;
	struct obj *guarded; /* key 1: got in a guard, then forgotten; held till done */
	memento_ref *ref;    /* key 2: referenced, then forgotten */
};

static void *hold_guard(void *p)
{
	struct holders *h = p;
	cr_assert_eq(memento_guard_enter(h->cache), 0);
	struct args a = { 1, 0 };
	void *o;
	cr_assert_eq(memento_get(h->cls, &a, &o), 0);
	h->guarded = o;
	atomic_fetch_add(&h->ready, 1);
	while (!atomic_load(&h->done))
		sleep_ms(1);
	memento_guard_leave(h->cache);
	return NULL;
}

static void *hold_ref(void *p)
{
	struct holders *h = p;
	struct args a = { 2, 0 };
	cr_assert_eq(memento_get_ref(h->cls, &a, &h->ref), 0);
	cr_assert_eq(memento_guard_enter(h->cache), 0); /* and a guard, to leave behind too */
	atomic_fetch_add(&h->ready, 1);
	while (!atomic_load(&h->done))
		sleep_ms(1);
	memento_guard_leave(h->cache);
	return NULL;
}

enum { CHILD_KEPT_TOO_LONG = 20, CHILD_REF_LOST, CHILD_GUARD_BROKEN };

static int child_after_guards(struct holders *h, struct counting *count)
{
	/* The parent's holders are gone: their guards with them. */
	memento_cache_barrier(h->cache);
	if (atomic_load(&count->destroys) != 1)
		return CHILD_KEPT_TOO_LONG;
	/* A reference is memory, not a thread: it survives, and releases. */
	struct obj *referenced = memento_ref_object(h->ref);
	if (referenced->magic != OBJ_MAGIC)
		return CHILD_REF_LOST;
	memento_ref_release(h->ref);
	if (atomic_load(&count->destroys) != 2)
		return CHILD_REF_LOST;
	/* The child's own guards work. */
	if (memento_guard_enter(h->cache) != 0)
		return CHILD_GUARD_BROKEN;
	struct args a = { 1, 0 };
	void *o;
	if (memento_get(h->cls, &a, &o) != 0 || ((struct obj *)o)->magic != OBJ_MAGIC ||
	    memento_forget(h->cls, &a) != 0)
		return CHILD_GUARD_BROKEN;
	memento_cache_barrier(h->cache); /* inside a guard: returns at once */
	if (((struct obj *)o)->magic != OBJ_MAGIC)
		return CHILD_GUARD_BROKEN;
	memento_guard_leave(h->cache);
	memento_cache_barrier(h->cache);
	if (atomic_load(&count->destroys) != 3)
		return CHILD_GUARD_BROKEN;
	memento_cache_free(h->cache);
	return CHILD_OK;
}

Test(fork, guards_of_threads_left_in_the_parent_end_in_the_child)
{
	struct counting count = { 0 };
	memento_cache *cache = new_cache();
	memento_class_options o = guarded_options();
	struct holders h = { .cache = cache,
		             .cls = counting_class_with(cache, "guarded", &count, &o) };
	pthread_t guard_holder, ref_holder;
	cr_assert_eq(pthread_create(&guard_holder, NULL, hold_guard, &h), 0);
	cr_assert_eq(pthread_create(&ref_holder, NULL, hold_ref, &h), 0);
	while (atomic_load(&h.ready) != 2)
		sleep_ms(1);
	struct args one = { 1, 0 }, two = { 2, 0 };
	cr_assert_eq(memento_forget(h.cls, &one), 0);
	cr_assert_eq(memento_forget(h.cls, &two), 0);

	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0)
		_exit(child_after_guards(&h, &count));
	int code = wait_child(pid, 10000);
	cr_assert_eq(code, CHILD_OK, "child exit code %d", code);

	/* In the parent the holders are still there: nothing destroyed (a
	 * barrier now would wait for their guards, which wait for us). */
	cr_assert_eq(atomic_load(&count.destroys), 0);
	atomic_store(&h.done, true);
	pthread_join(guard_holder, NULL);
	pthread_join(ref_holder, NULL);
	memento_cache_barrier(cache);
	cr_assert_eq(atomic_load(&count.destroys), 1, "the guarded one; the reference holds the other");
	memento_ref_release(h.ref);
	cr_assert_eq(atomic_load(&count.destroys), 2);
	memento_cache_free(cache);
}

/*
 * A waiter whose class's interrupt callback forks: in the child the
 * creation it waited on was another thread's, dropped with that thread, so
 * the get claims the key again and creates it there instead of waiting for
 * ever; in the parent it goes on waiting for the creator's object.
 */
static pid_t forked_in_callback = -1; /* 0 in the child */

static int fork_once_when_asked(const void *args, void *ctx)
{
	(void)args;
	(void)ctx;
	if (forked_in_callback == -1)
		forked_in_callback = fork();
	return 0;
}

Test(fork, a_waiter_that_forks_in_its_interrupt_callback_creates_in_the_child)
{
	memento_cache *cache = new_cache();
	struct counting counts = { .sleep_ms = 300 };
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	o.interrupt = fork_once_when_asked;
	o.interrupt_every_ns = 10 * 1000 * 1000;
	memento_class *cls = counting_class_with(cache, "f", &counts, &o);
	struct slow_creator s;
	start_creation(&s, cls, &counts, 1);
	void *obj = NULL;
	int rc = memento_get(cls, &(struct args){ 1, 2 }, &obj);
	if (forked_in_callback == 0) {
		/* The child: made here, by this get (payload 2), not awaited. */
		_exit(rc != 0                            ? CHILD_GET_FAILED
		      : ((struct obj *)obj)->payload != 2 ? CHILD_WRONG_OBJECT
		                                          : CHILD_OK);
	}
	cr_assert_gt(forked_in_callback, 0, "the callback never forked");
	cr_assert_eq(wait_child(forked_in_callback, 10000), CHILD_OK);
	pthread_join(s.thread, NULL);
	cr_assert_eq(rc, 0);
	cr_assert_eq(obj, s.obj, "the parent's get did not wait for the creator");
	cr_assert_eq(stats_of(cls).waits, 1);
	memento_cache_free(cache);
}
