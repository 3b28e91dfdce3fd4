/*
 * race_demo: many threads, released together, race for the same few keys;
 * each key's object is created once and every thread gets that one object.
 *
 * Each round, every thread gets every key, starting at a different key so
 * that all keys are contended at once; create sleeps so that the race is
 * real (the others must coalesce onto the running creation).  Between
 * rounds the keys are forgotten, so each round creates fresh objects.
 * Prints a short report; exits 1 if any invariant fails.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#define _POSIX_C_SOURCE 200809L /* pthread_barrier_t, nanosleep, clock_gettime */

#include <mementos.h>

#include "bench_cli.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct demo_obj {
	uint64_t key;
	int round;
};

struct demo {
	memento_class *cls;
	int nthreads, nkeys, nrounds;
	long sleep_ms;
	int round;                     /* written by main between barriers */
	uint64_t *key_ids;             /* args of key k: &key_ids[k] */
	void **seen;                   /* [thread * nkeys + key]: what get returned */
	int *rcs;                      /* [thread * nkeys + key]: get's return */
	pthread_barrier_t start, done; /* nthreads workers + main */
	atomic_int creations;          /* create calls in the current round */
	atomic_int destroys;
	int created;                   /* creations over all rounds */
};

struct worker {
	struct demo *d;
	int index;
	pthread_t thread;
};

static int demo_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_u64(key, *(const uint64_t *)args);
}

static int demo_create(void **obj, const void *args, void *ctx)
{
	struct demo *d = ctx;
	/* Long enough that every other thread arrives while this one creates. */
	struct timespec nap = { d->sleep_ms / 1000, (d->sleep_ms % 1000) * 1000000L };
	nanosleep(&nap, NULL);
	struct demo_obj *o = malloc(sizeof *o);
	if (o == NULL)
		return -ENOMEM;
	o->key = *(const uint64_t *)args;
	o->round = d->round;
	atomic_fetch_add_explicit(&d->creations, 1, memory_order_relaxed);
	*obj = o;
	return 0;
}

static void demo_destroy(void *obj, void *ctx)
{
	struct demo *d = ctx;
	atomic_fetch_add_explicit(&d->destroys, 1, memory_order_relaxed);
	free(obj);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct demo *d = w->d;
	for (int r = 0; r < d->nrounds; r++) {
		pthread_barrier_wait(&d->start);
		for (int j = 0; j < d->nkeys; j++) {
			int k = (w->index + j) % d->nkeys;
			size_t at = (size_t)w->index * (size_t)d->nkeys + (size_t)k;
			d->seen[at] = NULL;
			d->rcs[at] = memento_get(d->cls, &d->key_ids[k], &d->seen[at]);
		}
		pthread_barrier_wait(&d->done);
	}
	return NULL;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/*
 * Checks one round's results; prints one line.  prev holds each key's object
 * of the round before (NULL in the first) and receives this round's.
 */
static bool check_round(struct demo *d, const memento_stats *before, const memento_stats *after,
                        void **prev, double ms)
{
	int failed_gets = 0, split_keys = 0, stale_keys = 0;
	for (int k = 0; k < d->nkeys; k++) {
		void *first = d->seen[k];
		bool same = true;
		for (int t = 0; t < d->nthreads; t++) {
			size_t at = (size_t)t * (size_t)d->nkeys + (size_t)k;
			if (d->rcs[at] != 0) {
				if (failed_gets++ == 0)
					fprintf(stderr, "thread %d key %d: %s\n", t, k,
					        memento_strerror(d->rcs[at]));
			}
			same = same && d->seen[at] == first;
		}
		const struct demo_obj *o = first;
		if (!same || o == NULL || o->key != d->key_ids[k])
			split_keys++;
		else if (o == prev[k] || o->round != d->round)
			stale_keys++; /* not made in this round: forget did not take */
		prev[k] = first;
	}
	int creations = atomic_load_explicit(&d->creations, memory_order_relaxed);
	d->created += creations;
	uint64_t gets = (uint64_t)d->nthreads * (uint64_t)d->nkeys;
	printf("round %d: %llu gets, %d creations (want %d), %llu waited on a creation, "
	       "%llu hits; same pointer per key in all %d threads: %s; %.0f ms\n",
	       d->round, (unsigned long long)gets, creations, d->nkeys,
	       (unsigned long long)(after->waits - before->waits),
	       (unsigned long long)(after->hits - before->hits), d->nthreads,
	       split_keys == 0 ? "yes" : "NO", ms);
	if (failed_gets != 0)
		printf("  %d gets failed\n", failed_gets);
	if (split_keys != 0)
		printf("  %d keys got more than one object (or a wrong one)\n", split_keys);
	if (stale_keys != 0)
		printf("  %d keys returned an object from an earlier round\n", stale_keys);
	return failed_gets == 0 && split_keys == 0 && stale_keys == 0 && creations == d->nkeys;
}

static void usage(FILE *out)
{
	fputs("usage: mementos-race-demo [--threads N] [--keys N] [--rounds N] [--sleep-ms N]\n"
	      "  defaults: 16 threads, 8 keys, 3 rounds, create sleeps 20 ms\n",
	      out);
}


static bool run(struct demo *d)
{
	struct worker *workers = calloc((size_t)d->nthreads, sizeof *workers);
	void **prev = calloc((size_t)d->nkeys, sizeof *prev);
	if (workers == NULL || prev == NULL) {
		fprintf(stderr, "race_demo: out of memory\n");
		exit(1);
	}
	bool ok = true;
	int started = 0;
	for (; started < d->nthreads; started++) {
		workers[started] = (struct worker){ .d = d, .index = started };
		if (pthread_create(&workers[started].thread, NULL, worker_main, &workers[started]) != 0)
			break;
	}
	if (started < d->nthreads) {
		/* The barriers count every thread: without all of them, no round can run. */
		fprintf(stderr, "race_demo: could start only %d threads\n", started);
		exit(1);
	}

	for (int r = 1; r <= d->nrounds; r++) {
		memento_stats before, after;
		d->round = r;
		atomic_store_explicit(&d->creations, 0, memory_order_relaxed);
		memento_class_stats(d->cls, &before);
		/* The barriers order main's writes above before the workers' reads. */
		pthread_barrier_wait(&d->start);
		double t0 = now_ms();
		pthread_barrier_wait(&d->done);
		double ms = now_ms() - t0;
		memento_class_stats(d->cls, &after);
		ok = check_round(d, &before, &after, prev, ms) && ok;
		for (int k = 0; k < d->nkeys; k++) {
			int rc = memento_forget(d->cls, &d->key_ids[k]);
			if (rc != 0) {
				printf("  forget key %d: %s\n", k, memento_strerror(rc));
				ok = false;
			}
		}
	}
	for (int t = 0; t < d->nthreads; t++)
		pthread_join(workers[t].thread, NULL);
	free(workers);
	free(prev);
	return ok;
}

int main(int argc, char **argv)
{
	struct demo d = { .nthreads = 16, .nkeys = 8, .nrounds = 3, .sleep_ms = 20 };
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--threads") == 0)
			d.nthreads = (int)bench_parse_long(argv[++i], 1, 4096, usage);
		else if (strcmp(arg, "--keys") == 0)
			d.nkeys = (int)bench_parse_long(argv[++i], 1, 4096, usage);
		else if (strcmp(arg, "--rounds") == 0)
			d.nrounds = (int)bench_parse_long(argv[++i], 1, 1000, usage);
		else if (strcmp(arg, "--sleep-ms") == 0)
			d.sleep_ms = bench_parse_long(argv[++i], 0, 10000, usage);
		else if (strcmp(arg, "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}

	size_t cells = (size_t)d.nthreads * (size_t)d.nkeys;
	d.key_ids = calloc((size_t)d.nkeys, sizeof *d.key_ids);
	d.seen = calloc(cells, sizeof *d.seen);
	d.rcs = calloc(cells, sizeof *d.rcs);
	if (d.key_ids == NULL || d.seen == NULL || d.rcs == NULL) {
		fprintf(stderr, "race_demo: out of memory\n");
		return 1;
	}
	for (int k = 0; k < d.nkeys; k++)
		d.key_ids[k] = 1000 + (uint64_t)k;

	memento_cache *cache;
	int rc = memento_cache_new(&cache);
	memento_class_desc desc = {
		.name = "demo", .key = demo_key, .create = demo_create,
		.destroy = demo_destroy, .ctx = &d,
	};
	if (rc == 0)
		rc = memento_class_new(cache, &desc, &d.cls);
	if (rc != 0) {
		fprintf(stderr, "race_demo: %s\n", memento_strerror(rc));
		return 1;
	}
	pthread_barrier_init(&d.start, NULL, (unsigned)d.nthreads + 1);
	pthread_barrier_init(&d.done, NULL, (unsigned)d.nthreads + 1);

	printf("%d threads race for %d keys, %d rounds; create sleeps %ld ms\n", d.nthreads,
	       d.nkeys, d.nrounds, d.sleep_ms);
	bool ok = run(&d);

	memento_cache_free(cache);
	int destroys = atomic_load(&d.destroys);
	printf("cache freed: destroy ran %d times for %d objects created\n", destroys, d.created);
	ok = ok && destroys == d.created;

	pthread_barrier_destroy(&d.start);
	pthread_barrier_destroy(&d.done);
	free(d.key_ids);
	free(d.seen);
	free(d.rcs);
	puts(ok ? "OK: each key was created once per round; every thread got its one object"
	        : "FAILED: see above");
	return ok ? 0 : 1;
}
