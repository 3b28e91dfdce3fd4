/*
 * The children of the multi-process suites (test_store_procs.c,
 * test_redis_tier.c): forked with spawn, tracked until reaped so that the
 * suite's fini can kill and reap what a failed test left
 * (children_kill_all), and judged by the parent (expect_ok,
 * expect_all_ok).  A child never asserts: it writes what it saw into a
 * shared mapping (shared_new), reports its first failed step there
 * (CHILD_CHECK, child_fail) and in its exit status, and leaves with
 * _exit().  Also: barriers across processes, polling for a flag another
 * process raises or for a process asleep on an LMDB store's key lock, and
 * mix64, the hash of the suites' self-checking records.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTO_TEST_PROCS_H
#define MEMENTO_TEST_PROCS_H

#include "support.h"

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the children of a test ---------------------------------------------------------- */

enum { LIVE_MAX = 64 };
static pid_t live[LIVE_MAX]; /* children not reaped yet */

static inline void track(pid_t pid)
{
	for (int i = 0; i < LIVE_MAX; i++)
		if (live[i] == 0) {
			live[i] = pid;
			return;
		}
}

static inline void untrack(pid_t pid)
{
	for (int i = 0; i < LIVE_MAX; i++)
		if (live[i] == pid)
			live[i] = 0;
}

/* For a suite's fini: a test that failed may have left children (stopped
 * ones too); none outlives it. */
static inline void children_kill_all(void)
{
	for (int i = 0; i < LIVE_MAX; i++)
		if (live[i] > 0) {
			kill(live[i], SIGKILL);
			waitpid(live[i], NULL, 0);
			live[i] = 0;
		}
}

/* Zeroed memory that every process forked afterwards shares. */
static inline void *shared_new(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(p, MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

/* A barrier in shared memory (shared_new) for count threads of any of
 * the processes. */
static inline void shared_barrier_init(pthread_barrier_t *b, unsigned count)
{
	pthread_barrierattr_t attr;
	pthread_barrierattr_init(&attr);
	cr_assert_eq(pthread_barrierattr_setpshared(&attr, PTHREAD_PROCESS_SHARED), 0);
	cr_assert_eq(pthread_barrier_init(b, &attr, count), 0);
	pthread_barrierattr_destroy(&attr);
}

/* What a child that failed a step says about it. */
struct report {
	int line; /* of the failed check in the suite's file; 0: none */
	char msg[240];
};

__attribute__((format(printf, 3, 4))) static inline int child_fail(struct report *r, int line,
                                                                   const char *fmt, ...)
{
	if (r->line != 0)
		return 1; /* the first failure tells */
	r->line = line;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof r->msg, fmt, ap);
	va_end(ap);
	return 1;
}

/* In a child, instead of an assertion: report and leave with status 1. */
#define CHILD_CHECK(r, cond, ...)                                    \
	do {                                                         \
		if (!(cond))                                         \
			return child_fail((r), __LINE__, __VA_ARGS__); \
	} while (0)

typedef int (*child_fn)(void *arg);

/* Forks a child that runs fn(arg) and _exit()s with what it returns. */
static inline pid_t spawn(child_fn fn, void *arg)
{
	fflush(NULL);
	pid_t parent = getpid();
	pid_t pid = fork();
	cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(99); /* the test died meanwhile */
		_exit(fn(arg));
	}
	track(pid);
	return pid;
}

/* Waits up to limit_ms for pid to end: 0 and its wait status, or -1 when
 * it was still running then (it is killed and reaped). */
static inline int reap(pid_t pid, int limit_ms, int *status)
{
	struct timespec end = after_ms(now_monotonic(), limit_ms);
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		cr_assert_neq(r, -1, "waitpid %d: %s", (int)pid, strerror(errno));
		if (r == pid) {
			untrack(pid);
			return 0;
		}
		if (ms_between(now_monotonic(), end) <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			untrack(pid);
			return -1;
		}
		sleep_ms(1);
	}
}

/* The child must exit with status 0 within limit_ms (else it is killed). */
static inline void expect_ok(pid_t pid, const struct report *r, int limit_ms, const char *who)
{
	int status = 0;
	int hung = reap(pid, limit_ms, &status);
	cr_assert_eq(hung, 0, "%s: still running after %d ms (killed); line %d: %s", who, limit_ms,
	             r->line, r->msg);
	cr_assert(WIFEXITED(status), "%s: died of signal %d", who,
	          WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	cr_assert_eq(WEXITSTATUS(status), 0, "%s: exit %d; line %d: %s", who, WEXITSTATUS(status),
	             r->line, r->msg);
}

/* Every child must exit with status 0 within limit_ms (all together); the
 * first that fails or hangs gets the others killed. */
static inline void expect_all_ok(const pid_t *pids, int n, const struct report *reports,
                                 int limit_ms, const char *who)
{
	struct timespec end = after_ms(now_monotonic(), limit_ms);
	int left = n;
	bool done[64] = { false };
	cr_assert_leq(n, 64);
	while (left > 0) {
		for (int i = 0; i < n; i++) {
			int status;
			if (done[i] || waitpid(pids[i], &status, WNOHANG) != pids[i])
				continue;
			done[i] = true;
			left--;
			untrack(pids[i]);
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				for (int j = 0; j < n; j++)
					if (!done[j])
						kill(pids[j], SIGKILL); /* reaped by fini */
				cr_assert(WIFEXITED(status), "%s %d: died of signal %d", who, i,
				          WIFSIGNALED(status) ? WTERMSIG(status) : 0);
				cr_assert_fail("%s %d: exit %d; line %d: %s", who, i,
				               WEXITSTATUS(status), reports[i].line, reports[i].msg);
			}
		}
		if (left > 0 && ms_between(now_monotonic(), end) <= 0) {
			for (int j = 0; j < n; j++)
				if (!done[j])
					kill(pids[j], SIGKILL);
			cr_assert_fail("%s: %d of %d still running after %d ms (killed)", who, left, n,
			               limit_ms);
		}
		sleep_ms(1);
	}
}

/* Kills a child with SIGKILL and reaps it. */
static inline void kill_child(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	untrack(pid);
}

/* ---- waiting on other processes ---------------------------------------------------- */

/* Polls until *flag is nonzero: false if it is not within limit_ms. */
static inline bool await_flag(atomic_int *flag, int limit_ms)
{
	struct timespec end = after_ms(now_monotonic(), limit_ms);
	while (atomic_load(flag) == 0) {
		if (ms_between(now_monotonic(), end) <= 0)
			return false;
		sleep_ms(1);
	}
	return true;
}

/*
 * Waits until a process sleeps in the kernel for a lock on the keys.lock
 * of the LMDB store in dir: /proc/locks lists such a waiter with "->" and
 * the file's device and inode.  1: seen; 0: not within limit_ms; -1:
 * /proc/locks cannot be read here.
 */
static inline int await_key_lock_waiter(const char *dir, int limit_ms)
{
	char path[128];
	snprintf(path, sizeof path, "%s/keys.lock", dir);
	struct stat st;
	if (stat(path, &st) != 0)
		return 0;
	char needle[64];
	snprintf(needle, sizeof needle, " %02x:%02x:%lu ", major(st.st_dev), minor(st.st_dev),
	         (unsigned long)st.st_ino);
	struct timespec end = after_ms(now_monotonic(), limit_ms);
	for (;;) {
		FILE *f = fopen("/proc/locks", "r");
		if (f == NULL)
			return -1;
		char line[256];
		bool seen = false;
		while (!seen && fgets(line, sizeof line, f) != NULL)
			seen = strstr(line, "->") != NULL && strstr(line, needle) != NULL;
		fclose(f);
		if (seen)
			return 1;
		if (ms_between(now_monotonic(), end) <= 0)
			return 0;
		sleep_ms(1);
	}
}

/* ---- self-checking records ----------------------------------------------------------- */

/* A 64-bit mixer (a finalizer of MurmurHash3): the records' check words. */
static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

#endif /* MEMENTO_TEST_PROCS_H */
