/*
 * impl_glib.h: the GHashTable that the mutex and rwlock implementations
 * share; they differ only in the lock around it.
 *
 * The table is a set of objects: an object's key is its first field, so
 * &obj->key and obj are the same pointer, and inserting that pointer as both
 * key and value keeps GHashTable in its set mode (no separate value array),
 * as g_hash_table_add would.  A lookup probes with a pointer to a bare u64.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTOS_BENCH_IMPL_GLIB_H
#define MEMENTOS_BENCH_IMPL_GLIB_H

#include "impl.h"

#include <errno.h>
#include <glib.h>

static inline guint bench_glib_hash(gconstpointer key)
{
	return (guint)bench_hash(*(const uint64_t *)key);
}

static inline gboolean bench_glib_equal(gconstpointer a, gconstpointer b)
{
	return *(const uint64_t *)a == *(const uint64_t *)b;
}

/* Not presized.  GLib aborts when it cannot allocate, so this never fails. */
static inline GHashTable *bench_glib_table_new(void)
{
	return g_hash_table_new(bench_glib_hash, bench_glib_equal);
}

static inline void bench_glib_table_add(GHashTable *objects, struct bench_object *obj)
{
	g_hash_table_insert(objects, &obj->key, obj);
}

/*
 * Get-or-create on the table, called with the caller's lock held for
 * writing: the object of key, created and added if absent.  0, or -ENOMEM
 * (then *out is NULL).
 */
static inline int bench_glib_table_get_or_create(GHashTable *objects, uint64_t key,
                                                 struct bench_object **out)
{
	struct bench_object *obj = g_hash_table_lookup(objects, &key);
	if (obj == NULL) {
		obj = bench_object_create(key);
		if (obj == NULL) {
			*out = NULL;
			return -ENOMEM;
		}
		bench_glib_table_add(objects, obj);
	}
	*out = obj;
	return 0;
}

/* Destroys every object, then the table. */
static inline void bench_glib_table_free(GHashTable *objects)
{
	GHashTableIter it;
	gpointer key, obj;
	g_hash_table_iter_init(&it, objects);
	while (g_hash_table_iter_next(&it, &key, &obj))
		bench_object_destroy(obj);
	g_hash_table_destroy(objects);
}

#endif /* MEMENTOS_BENCH_IMPL_GLIB_H */
