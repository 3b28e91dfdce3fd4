/*
 * A stand-in for <criterion/criterion.h>, used only in the ThreadSanitizer
 * build.  Criterion 2.4 cannot start under TSan: its runner maps an arena at
 * a random address in [0x2000'0000'0000, 0x6000'0000'0000), which TSan's
 * shadow and protected ranges cover entirely (Criterion issue #274, "Could
 * not initialize inheritable arena").  The suites compile unchanged against
 * this header: it offers the part of Criterion's API they use, and
 * runner.c runs each test in a forked child, as Criterion does.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTO_TSAN_CRITERION_H
#define MEMENTO_TSAN_CRITERION_H

#include <stdbool.h>
#include <string.h>

struct shim_suite_options {
	void (*init)(void);
	void (*fini)(void);
	double timeout;
};

struct shim_test {
	const char *suite;
	const char *name;
	void (*fn)(void);
	struct shim_test *next;
};

struct shim_suite {
	const char *name;
	struct shim_suite_options options;
	struct shim_suite *next;
};

void shim_register_test(struct shim_test *test);
void shim_register_suite(struct shim_suite *suite);
void shim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 4, 5)));
void shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define Test(suite, name, ...)                                                      \
	static void suite##_##name##_impl(void);                                    \
	static struct shim_test suite##_##name##_desc = { #suite, #name,            \
		                                          suite##_##name##_impl, 0 }; \
	__attribute__((constructor)) static void suite##_##name##_register(void)    \
	{                                                                           \
		shim_register_test(&suite##_##name##_desc);                         \
	}                                                                           \
	static void suite##_##name##_impl(void)

#define TestSuite(suite, ...)                                                       \
	static struct shim_suite suite##_suite_desc = { #suite, { __VA_ARGS__ }, 0 }; \
	__attribute__((constructor)) static void suite##_suite_register(void)       \
	{                                                                           \
		shim_register_suite(&suite##_suite_desc);                           \
	}

/* The message arguments are optional, as in Criterion: "" glues an empty
 * format in front of the caller's literal. */
#define SHIM_CHECK(cond, expr, ...) \
	((cond) ? (void)0 : shim_fail(__FILE__, __LINE__, expr, "" __VA_ARGS__))

#define cr_assert(cond, ...) SHIM_CHECK(cond, #cond, __VA_ARGS__)
#define cr_assert_fail(...) shim_fail(__FILE__, __LINE__, "cr_assert_fail", "" __VA_ARGS__)
#define cr_assert_eq(a, b, ...) SHIM_CHECK((a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) SHIM_CHECK((a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) SHIM_CHECK((a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) SHIM_CHECK((a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) SHIM_CHECK((a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) SHIM_CHECK((a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_null(p, ...) SHIM_CHECK((p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) SHIM_CHECK((p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) \
	SHIM_CHECK(strcmp((a), (b)) == 0, #a " equals " #b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) \
	SHIM_CHECK(strcmp((a), (b)) != 0, #a " differs from " #b, __VA_ARGS__)
#define cr_log_info(...) shim_log(__VA_ARGS__)

#endif /* MEMENTO_TSAN_CRITERION_H */
