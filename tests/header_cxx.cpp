// The public header compiles as C++ and links from C++ code.
// SPDX-License-Identifier: BSD-2-Clause
#include <mementos.h>
#include <mementos.h>

#include <cstdio>

static int key_fn(memento_key *key, const void *args, void *)
{
	return memento_key_u64(key, *static_cast<const uint64_t *>(args));
}

static int create_fn(void **obj, const void *args, void *)
{
	*obj = new uint64_t(*static_cast<const uint64_t *>(args));
	return 0;
}

static void destroy_fn(void *obj, void *)
{
	delete static_cast<uint64_t *>(obj);
}

int main()
{
	memento_cache *cache = nullptr;
	if (memento_cache_new(&cache) != 0)
		return 1;
	memento_class_desc desc = { "cxx", key_fn, create_fn, destroy_fn, nullptr };
	memento_class *cls = nullptr;
	if (memento_class_new(cache, &desc, &cls) != 0)
		return 2;
	uint64_t k = 7;
	void *a = nullptr, *b = nullptr;
	if (memento_get(cls, &k, &a) != 0 || memento_get(cls, &k, &b) != 0 || a != b)
		return 3;
	memento_class_options opt = MEMENTO_CLASS_OPTIONS_INIT;
	opt.lifetime = MEMENTO_LIFETIME_GUARDED;
	opt.max_entries = 4;
	memento_class_desc guarded_desc = { "cxx-guarded", key_fn, create_fn, destroy_fn, nullptr };
	memento_class *guarded = nullptr;
	if (memento_class_new_with(cache, &guarded_desc, &opt, &guarded) != 0)
		return 5;
	memento_ref *ref = nullptr;
	if (memento_guard_enter(cache) != 0 || memento_get(guarded, &k, &a) != 0 ||
	    memento_get_ref(guarded, &k, &ref) != 0 || memento_ref_object(ref) != a)
		return 6;
	memento_guard_leave(cache);
	memento_ref_release(ref);
	memento_cache_barrier(cache);
	memento_cache_free(cache);
	std::printf("C++ consumer: version %u\n", memento_version());
	return memento_version() == MEMENTO_VERSION_NUMBER ? 0 : 4;
}
