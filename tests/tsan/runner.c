/*
 * The runner behind tests/tsan/criterion/criterion.h: runs every registered
 * test in a forked child with its suite's init, fini and timeout, and prints
 * a Criterion-like synthesis line.  Exits nonzero if any test failed or
 * crashed.  Options: --filter SUITE[::TEST] runs the matching tests only;
 * Criterion's --jobs, -jN, --short-filename and --verbose are accepted and
 * ignored (tests run one at a time).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct shim_test *tests;
static struct shim_suite *suites;

void shim_register_test(struct shim_test *test)
{
	test->next = tests;
	tests = test;
}

void shim_register_suite(struct shim_suite *suite)
{
	suite->next = suites;
	suites = suite;
}

void shim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
	fprintf(stderr, "[----] %s:%d: Assertion failed: %s\n[----]   ", file, line, expr);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	_exit(1);
}

void shim_log(const char *fmt, ...)
{
	fputs("[----] ", stderr);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static const struct shim_suite *suite_named(const char *name)
{
	for (const struct shim_suite *s = suites; s != NULL; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

static int by_name(const void *a, const void *b)
{
	const struct shim_test *x = *(struct shim_test *const *)a, *y = *(struct shim_test *const *)b;
	int c = strcmp(x->suite, y->suite);
	return c != 0 ? c : strcmp(x->name, y->name);
}

static bool selected(const struct shim_test *t, const char *filter)
{
	if (filter == NULL)
		return true;
	char full[512];
	snprintf(full, sizeof full, "%s::%s", t->suite, t->name);
	return strcmp(filter, t->suite) == 0 || strcmp(filter, full) == 0;
}

/* 0 passed, 1 failed, 2 crashed or timed out. */
static int run_one(const struct shim_test *t)
{
	const struct shim_suite *s = suite_named(t->suite);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0) {
		if (s != NULL && s->options.timeout > 0)
			alarm((unsigned int)s->options.timeout + 1);
		if (s != NULL && s->options.init != NULL)
			s->options.init();
		t->fn();
		if (s != NULL && s->options.fini != NULL)
			s->options.fini();
		fflush(NULL);
		_exit(0);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		;
	if (WIFEXITED(status))
		return WEXITSTATUS(status) == 0 ? 0 : 1;
	fprintf(stderr, "[----] %s::%s: killed by signal %d%s\n", t->suite, t->name, WTERMSIG(status),
	        WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
	return 2;
}

int main(int argc, char **argv)
{
	const char *filter = NULL;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc)
			filter = argv[++i];

	size_t n = 0;
	for (struct shim_test *t = tests; t != NULL; t = t->next)
		n++;
	struct shim_test **order = calloc(n, sizeof *order);
	if (order == NULL)
		return 2;
	n = 0;
	for (struct shim_test *t = tests; t != NULL; t = t->next)
		order[n++] = t;
	qsort(order, n, sizeof *order, by_name);

	int tested = 0, passing = 0, failing = 0, crashing = 0;
	for (size_t i = 0; i < n; i++) {
		if (!selected(order[i], filter))
			continue;
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		int r = run_one(order[i]);
		clock_gettime(CLOCK_MONOTONIC, &b);
		double sec = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
		tested++;
		passing += r == 0;
		failing += r == 1;
		crashing += r == 2;
		fprintf(stderr, "[%s] %s::%s: (%.2fs)\n", r == 0 ? "PASS" : "FAIL", order[i]->suite,
		        order[i]->name, sec);
	}
	fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d\n",
	        tested, passing, failing, crashing);
	free(order);
	return failing + crashing == 0 && tested > 0 ? 0 : 1;
}
