/*
 * impl_mutex: the usual C answer, a GLib GHashTable behind one GMutex.
 *
 * Lookup, creation and insertion all happen under the one lock, which is
 * what makes creation exactly-once; it also makes every other caller, of
 * any key, wait while an object is being created.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "impl.h"
#include "impl_glib.h"

#include <glib.h>
#include <stdio.h>

struct mutex_table {
	GMutex lock;
	GHashTable *objects; /* &obj->key -> obj */
};

static void *mutex_open(void)
{
	struct mutex_table *t = g_try_new0(struct mutex_table, 1);
	if (t == NULL) {
		fprintf(stderr, "mutex: out of memory\n");
		return NULL;
	}
	g_mutex_init(&t->lock);
	t->objects = bench_glib_table_new();
	return t;
}

static int mutex_get(void *table, uint64_t key, struct bench_object **out)
{
	struct mutex_table *t = table;
	g_mutex_lock(&t->lock);
	int rc = bench_glib_table_get_or_create(t->objects, key, out);
	g_mutex_unlock(&t->lock);
	return rc;
}

static size_t mutex_count(void *table)
{
	struct mutex_table *t = table;
	return g_hash_table_size(t->objects);
}

static void mutex_close(void *table)
{
	struct mutex_table *t = table;
	if (t == NULL)
		return;
	bench_glib_table_free(t->objects);
	g_mutex_clear(&t->lock);
	g_free(t);
}

const struct bench_impl bench_impl_mutex = {
	.name = "mutex",
	.describe = "GLib GHashTable + one GMutex; lookup and creation under the lock",
	.flags = 0,
	.open = mutex_open,
	.thread_begin = NULL,
	.thread_end = NULL,
	.get = mutex_get,
	.fill = NULL,
	.count = mutex_count,
	.close = mutex_close,
};
