/*
 * impl_tbb: oneTBB's concurrent_hash_map, used as its documentation shows.
 *
 * A hit is find() with a const_accessor (a read lock on the bucket, then on
 * the element).  A miss is insert() with an accessor, which holds the new
 * element's write lock; the object is created while it is held, so callers
 * of the same key block in find/insert until it is set, and callers of other
 * keys do not wait.  TBB's waiters spin, then yield, and retry: they do not
 * sleep.
 *
 * The only C++ in the project: exceptions stop here, at the C boundary.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "impl.h"

#include <tbb/concurrent_hash_map.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <new>

namespace {

struct bench_key_compare {
	std::size_t hash(const std::uint64_t &key) const
	{
		return static_cast<std::size_t>(bench_hash(key));
	}
	bool equal(const std::uint64_t &a, const std::uint64_t &b) const { return a == b; }
};

using object_map = tbb::concurrent_hash_map<std::uint64_t, bench_object *, bench_key_compare>;

void *tbb_open()
{
	try {
		return new object_map(); /* not presized */
	} catch (const std::exception &e) {
		std::fprintf(stderr, "tbb: %s\n", e.what());
		return nullptr;
	}
}

int tbb_get(void *table, std::uint64_t key, bench_object **out)
{
	auto *map = static_cast<object_map *>(table);
	try {
		{
			object_map::const_accessor hit;
			if (map->find(hit, key)) {
				*out = hit->second;
				return 0;
			}
		}
		object_map::accessor slot;
		if (map->insert(slot, key)) {
			/* Ours, write-locked: every other caller of key waits here. */
			bench_object *obj = bench_object_create(key);
			if (obj == nullptr) {
				map->erase(slot); /* the next caller tries again */
				return -ENOMEM;
			}
			slot->second = obj;
		}
		*out = slot->second;
		return 0;
	} catch (const std::bad_alloc &) {
		return -ENOMEM;
	} catch (...) {
		return -EIO; /* none is expected: TBB throws only bad_alloc here */
	}
}

std::size_t tbb_count(void *table)
{
	return static_cast<object_map *>(table)->size();
}

void tbb_close(void *table)
{
	auto *map = static_cast<object_map *>(table);
	if (map == nullptr)
		return;
	for (auto &item : *map)
		bench_object_destroy(item.second);
	delete map;
}

} // namespace

extern "C" const struct bench_impl bench_impl_tbb = {
	.name = "tbb",
	.describe = "oneTBB concurrent_hash_map; const_accessor hits, create under the insert accessor",
	.flags = 0,
	.open = tbb_open,
	.open_bounded = nullptr,
	.bound_slack = 0,
	.evictions = nullptr,
	.thread_begin = nullptr,
	.thread_end = nullptr,
	.begin_batch = nullptr,
	.end_batch = nullptr,
	.get = tbb_get,
	.get_many = nullptr,
	.fill = nullptr,
	.count = tbb_count,
	.close = tbb_close,
};
