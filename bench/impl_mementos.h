/*
 * impl_mementos.h: what the mementos implementations share, private to
 * them: the table (one cache, one class of u64 keys whose create builds
 * the bench object) and the functions that do not depend on the class's
 * lifetime.  impl_mementos.c defines them and the default class;
 * impl_mementos_guarded.c the guarded and bounded ones.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTOS_BENCH_IMPL_MEMENTOS_H
#define MEMENTOS_BENCH_IMPL_MEMENTOS_H

#include "impl.h"

#include <mementos.h>

struct mementos_table {
	memento_cache *cache;
	memento_class *cls;
};

/* A cache with default options and one class "bench_object" made with
 * options (NULL: the defaults).  NULL on failure, after a message that
 * starts with who. */
struct mementos_table *bench_mementos_open(const char *who, const memento_class_options *options);

/* memento_get on the table's class. */
int bench_mementos_get(void *table, uint64_t key, struct bench_object **obj);

/* memento_count of the cache. */
size_t bench_mementos_count(void *table);

/* memento_cache_free, which destroys every object not destroyed yet. */
void bench_mementos_close(void *table);

#endif /* MEMENTOS_BENCH_IMPL_MEMENTOS_H */
