/*
 * bench_memory.c: the single-threaded fill that comes before a timed phase,
 * and what it costs in memory.
 *
 * Bytes per entry is the growth of the resident set size (/proc/self/statm)
 * over a fill of n keys into an empty table, divided by n.  The resident
 * set sees every allocator, TBB's own included, which mallinfo would miss.
 * It counts the 32-byte object each entry holds (with malloc's overhead) for
 * every implementation alike, and memory the allocator keeps after growth.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "bench_driver.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Resident bytes of this process, or -1. */
static long long resident_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	if (f == NULL)
		return -1;
	long long size, resident;
	int n = fscanf(f, "%lld %lld", &size, &resident);
	fclose(f);
	return n == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

/* Keys base .. base + n - 1 through get, in one batch (impl.h): objects
 * are checked inside it. */
static int fill_batch(const struct bench_impl *impl, void *table, uint64_t base, size_t n)
{
	int rc = bench_batch_begin(impl, table);
	if (rc != 0) {
		fprintf(stderr, "mementos-bench: %s: fill: begin_batch failed: %s\n", impl->name,
		        strerror(-rc));
		return -1;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint64_t key = base + i;
		struct bench_object *obj;
		rc = impl->get(table, key, &obj);
		if (rc != 0) {
			fprintf(stderr, "mementos-bench: %s: fill of key %llu failed: %s\n", impl->name,
			        (unsigned long long)key, strerror(-rc));
		} else if (obj->key != key) {
			fprintf(stderr, "mementos-bench: %s: fill: get(%llu) returned another key's "
			                "object\n",
			        impl->name, (unsigned long long)key);
			rc = -1;
		}
	}
	bench_batch_end(impl, table);
	return rc == 0 ? 0 : -1;
}

int bench_fill(const struct bench_impl *impl, void *table, uint64_t base, size_t n,
               unsigned batch)
{
	if (impl->thread_begin != NULL)
		impl->thread_begin(table);
	int rc = 0;
	if (impl->fill != NULL) {
		for (size_t i = 0; i < n && rc == 0; i++) {
			rc = impl->fill(table, base + i);
			if (rc != 0)
				fprintf(stderr, "mementos-bench: %s: fill of key %llu failed: %s\n",
				        impl->name, (unsigned long long)(base + i), strerror(-rc));
		}
	} else {
		/* Without batches, one long "batch" with no bounds to call. */
		size_t step = impl->begin_batch != NULL ? batch : n;
		for (size_t i = 0; i < n && rc == 0; i += step)
			rc = fill_batch(impl, table, base + i, n - i < step ? n - i : step);
	}
	if (impl->thread_end != NULL)
		impl->thread_end(table);
	return rc == 0 ? 0 : -1;
}

int bench_fill_measured(const struct bench_impl *impl, void *table, uint64_t base, size_t n,
                        unsigned batch, double *bytes_per_entry)
{
	long long before = resident_bytes();
	if (bench_fill(impl, table, base, n, batch) != 0)
		return -1;
	long long after = resident_bytes();
	if (before < 0 || after < 0) {
		fprintf(stderr, "mementos-bench: cannot read /proc/self/statm\n");
		return -1;
	}
	*bytes_per_entry = (double)(after - before) / (double)n;
	return 0;
}
