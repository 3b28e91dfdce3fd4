/*
 * impl_rwlock: a GLib GHashTable behind a GRWLock.
 *
 * Hits share the read lock.  A miss takes the write lock, looks again (another
 * thread may have created the object between the two locks), and creates
 * under the write lock, so creation is exactly-once and every other caller,
 * of any key, waits for it.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "impl.h"
#include "impl_glib.h"

#include <glib.h>
#include <stdio.h>

struct rwlock_table {
	GRWLock lock;
	GHashTable *objects; /* &obj->key -> obj */
};

static void *rwlock_open(void)
{
	struct rwlock_table *t = g_try_new0(struct rwlock_table, 1);
	if (t == NULL) {
		fprintf(stderr, "rwlock: out of memory\n");
		return NULL;
	}
	g_rw_lock_init(&t->lock);
	t->objects = bench_glib_table_new();
	return t;
}

static int rwlock_get(void *table, uint64_t key, struct bench_object **out)
{
	struct rwlock_table *t = table;
	g_rw_lock_reader_lock(&t->lock);
	struct bench_object *obj = g_hash_table_lookup(t->objects, &key);
	g_rw_lock_reader_unlock(&t->lock);
	if (obj != NULL) {
		*out = obj;
		return 0;
	}

	/* A miss: look again under the write lock, create if still absent. */
	g_rw_lock_writer_lock(&t->lock);
	int rc = bench_glib_table_get_or_create(t->objects, key, out);
	g_rw_lock_writer_unlock(&t->lock);
	return rc;
}

static size_t rwlock_count(void *table)
{
	struct rwlock_table *t = table;
	return g_hash_table_size(t->objects);
}

static void rwlock_close(void *table)
{
	struct rwlock_table *t = table;
	if (t == NULL)
		return;
	bench_glib_table_free(t->objects);
	g_rw_lock_clear(&t->lock);
	g_free(t);
}

const struct bench_impl bench_impl_rwlock = {
	.name = "rwlock",
	.describe = "GLib GHashTable + GRWLock; read-locked hits, create under the write lock",
	.flags = 0,
	.open = rwlock_open,
	.thread_begin = NULL,
	.thread_end = NULL,
	.get = rwlock_get,
	.fill = NULL,
	.count = rwlock_count,
	.close = rwlock_close,
};
