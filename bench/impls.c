/*
 * impls.c: the implementations built into mementos-bench, in the order of
 * --list and of the default run.  The optional ones exist when CMake found
 * their library and defined MEMENTOS_BENCH_HAVE_<LIBRARY>.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "bench_driver.h"

const struct bench_impl *const bench_impls[] = {
	&bench_impl_mementos,
	&bench_impl_mementos_many,
	&bench_impl_mementos_guarded,
	&bench_impl_mementos_bounded,
#ifdef MEMENTOS_BENCH_HAVE_GLIB
	&bench_impl_mutex,
	&bench_impl_rwlock,
#endif
#ifdef MEMENTOS_BENCH_HAVE_URCU
	&bench_impl_urcu,
#endif
#ifdef MEMENTOS_BENCH_HAVE_TBB
	&bench_impl_tbb,
#endif
	&bench_impl_floor, /* last: the reference the others are read against */
};

const size_t bench_nimpls = sizeof bench_impls / sizeof bench_impls[0];
