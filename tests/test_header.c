/*
 * The public header stands alone, survives being included twice, and its
 * macros agree with the library.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <mementos.h>
#include <mementos.h>

#include "support.h"

TestSuite(header, .timeout = 10);

Test(header, included_twice_and_consistent)
{
	cr_assert_eq(memento_version(), MEMENTO_VERSION_NUMBER);
	cr_assert(MEMENTO_KEY_MAX >= 256);
	cr_assert(MEMENTO_SHARDS_DEFAULT >= 1 && MEMENTO_SHARDS_DEFAULT <= MEMENTO_SHARDS_MAX);
	memento_cache_options opt = MEMENTO_CACHE_OPTIONS_INIT;
	cr_assert_eq(opt.size, sizeof opt);
	memento_class_options class_opt = MEMENTO_CLASS_OPTIONS_INIT;
	cr_assert_eq(class_opt.size, sizeof class_opt);
	cr_assert_eq(class_opt.lifetime, MEMENTO_LIFETIME_CACHE);
	cr_assert_eq(class_opt.max_entries + class_opt.max_weight + class_opt.expire_after_ns +
	                     class_opt.refresh_after_ns + class_opt.failure_ttl_ns,
	             0);
	cr_assert_null(class_opt.weigh);
	memento_store_options store_opt = MEMENTO_STORE_OPTIONS_INIT;
	cr_assert_eq(store_opt.size, sizeof store_opt);
	cr_assert_null(store_opt.next);
	cr_assert_eq(store_opt.timeout_ns + store_opt.lease_ns + store_opt.map_size, 0);
	int codes = 0;
#define COUNT_CODE(code, text) codes += (code) > 0 && sizeof(text) > 1;
	MEMENTO_ERRNO_MAP(COUNT_CODE)
#undef COUNT_CODE
	cr_assert_eq(codes, 14);
}
