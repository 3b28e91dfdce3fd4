/*
 * fork() while other threads create: the child can use the cache, creations
 * that were in flight in the parent are created again in the child (never
 * waited on forever), and the parent goes on as if nothing happened.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"

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
