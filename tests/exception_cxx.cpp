// A C++ exception thrown by create unwinds through memento_get to its
// caller; the creation fails for the threads waiting on it (-EOWNERDEAD),
// nothing is cached, and the next get creates again.
// SPDX-License-Identifier: BSD-2-Clause
#include <mementos.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

constexpr int waiters = 4;
std::atomic<int> attempts{0};
std::atomic<bool> throw_next{true};
memento_class *cls;

int key_fn(memento_key *key, const void *args, void *)
{
	return memento_key_u64(key, *static_cast<const uint64_t *>(args));
}

int create_fn(void **obj, const void *, void *)
{
	int n = ++attempts;
	if (throw_next.exchange(false)) {
		// Throw only once every waiter waits on this creation.
		for (int i = 0; i < 10000; i++) {
			memento_stats st;
			memento_class_stats(cls, &st);
			if (st.waits >= waiters)
				break;
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
		}
		throw std::runtime_error("create failed");
	}
	*obj = new int(n);
	return 0;
}

void destroy_fn(void *obj, void *)
{
	delete static_cast<int *>(obj);
}

int fail(const char *what)
{
	std::fprintf(stderr, "exception_cxx: %s\n", what);
	return 1;
}

} // namespace

int main()
{
	memento_cache *cache = nullptr;
	if (memento_cache_new(&cache) != 0)
		return fail("cache");
	memento_class_desc desc = { "throwing", key_fn, create_fn, destroy_fn, nullptr };
	if (memento_class_new(cache, &desc, &cls) != 0)
		return fail("class");

	uint64_t key = 1;
	bool caught = false;
	std::thread creator([&] {
		void *obj;
		try {
			memento_get(cls, &key, &obj);
		} catch (const std::runtime_error &) {
			caught = true;
		}
	});
	while (attempts.load() == 0)
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	std::vector<int> rc(waiters, 1);
	std::vector<std::thread> threads;
	for (int i = 0; i < waiters; i++)
		threads.emplace_back([&, i] {
			void *obj;
			rc[i] = memento_get(cls, &key, &obj);
		});
	creator.join();
	for (auto &t : threads)
		t.join();

	if (!caught)
		return fail("the exception did not reach the caller");
	for (int i = 0; i < waiters; i++)
		if (rc[i] != -EOWNERDEAD) {
			std::fprintf(stderr, "waiter %d: %s\n", i, memento_strerror(rc[i]));
			return fail("a waiter did not get -EOWNERDEAD");
		}
	void *obj;
	if (memento_peek(cls, &key, &obj) != -ENOENT)
		return fail("the abandoned creation stayed in the cache");
	if (memento_get(cls, &key, &obj) != 0 || *static_cast<int *>(obj) != 2)
		return fail("the next get did not create again");
	if (memento_count(cache) != 1)
		return fail("count");
	memento_cache_free(cache);
	std::printf("exception_cxx: the exception reached its caller, %d waiters got -EOWNERDEAD, "
	            "the next get created again\n",
	            waiters);
	return 0;
}
