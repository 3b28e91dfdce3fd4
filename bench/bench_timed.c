/*
 * bench_timed.c: one timed phase.  The threads start together, each calls
 * get in a loop over its own key source for a fixed duration, checks every
 * object it gets, and optionally times every BENCH_SAMPLE_EVERY-th call.
 *
 * The loop is the same for every implementation: one array read for the
 * key, one indirect call, one compare of the object's key, one predictable
 * branch for sampling, and a relaxed load of the stop flag every
 * STOP_CHECK_EVERY gets.  An implementation with batches (impl.h) gets a
 * copy of the loop in which the gets between two loads of the stop flag
 * are one batch of run->batch gets, inside begin_batch and end_batch: the
 * object's key is compared before the batch ends, and the stop flag is
 * read outside every batch.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "bench_driver.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STOP_CHECK_EVERY 64

/* ---- the workers ------------------------------------------------------------------ */

struct worker {
	alignas(64) pthread_t thread; /* a cache line each: no false sharing */
	const struct bench_timed *run;
	unsigned index;
	struct bench_gate *gate;
	_Atomic bool *stop;
	uint64_t ops, start_ns, end_ns;
	int rc;            /* a failed get, or begin_batch */
	bool failed_batch; /* rc is begin_batch's */
	bool wrong_object; /* get returned another key's object */
	uint64_t bad_key;
};

static void sample_add(struct bench_samples *s, uint64_t ns)
{
	if (s->n < s->cap)
		s->ns[s->n++] = ns < UINT32_MAX ? (uint32_t)ns : UINT32_MAX;
}

/*
 * The timed loop: gets until the stop flag, or until a get goes wrong.
 * Inlined into worker_loop twice, so that batched is a constant in each
 * copy and the copy without batches has no trace of them.
 */
static inline __attribute__((always_inline)) void worker_loop_as(struct worker *w, bool batched)
{
	const struct bench_timed *run = w->run;
	int (*const get)(void *, uint64_t, struct bench_object **) = run->impl->get;
	void *const table = run->table;
	const struct bench_source src = run->sources[w->index];
	struct bench_samples *const samples =
		run->samples != NULL ? &run->samples[w->index] : NULL;
	const unsigned block = batched ? run->batch : STOP_CHECK_EVERY;

	w->start_ns = bench_now_ns();
	uint64_t i = 0;
	/* Relaxed: the flag only ends the loop; the join orders the results. */
	while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
		if (batched) {
			int rc = run->impl->begin_batch(table);
			if (__builtin_expect(rc != 0, 0)) {
				w->rc = rc;
				w->failed_batch = true;
				w->end_ns = bench_now_ns();
				w->ops = i;
				return;
			}
		}
		for (unsigned j = 0; j < block; j++, i++) {
			uint64_t key = bench_source_key(&src, i);
			struct bench_object *obj;
			int rc;
			if (samples != NULL && i % BENCH_SAMPLE_EVERY == 0) {
				uint64_t t0 = bench_now_ns();
				rc = get(table, key, &obj);
				sample_add(samples, bench_now_ns() - t0);
			} else {
				rc = get(table, key, &obj);
			}
			if (__builtin_expect(rc != 0 || obj->key != key, 0)) {
				w->rc = rc;
				w->wrong_object = rc == 0;
				w->bad_key = key;
				if (batched)
					run->impl->end_batch(table);
				w->end_ns = bench_now_ns();
				w->ops = i;
				return;
			}
		}
		if (batched)
			run->impl->end_batch(table);
	}
	w->end_ns = bench_now_ns();
	w->ops = i;
}

/*
 * The timed loop of an implementation with get_many: one call per group of
 * run->batch keys, then every object checked.  No latency samples: a
 * call's time is not one get's.
 */
static void worker_loop_many(struct worker *w)
{
	const struct bench_timed *run = w->run;
	const struct bench_source src = run->sources[w->index];
	const unsigned n = run->batch;
	uint64_t *keys = malloc(n * sizeof *keys);
	struct bench_object **objs = malloc(n * sizeof *objs);
	w->start_ns = bench_now_ns();
	uint64_t i = 0;
	w->rc = keys != NULL && objs != NULL ? 0 : -ENOMEM;
	/* Relaxed: as in worker_loop_as. */
	while (w->rc == 0 && !atomic_load_explicit(w->stop, memory_order_relaxed)) {
		for (unsigned j = 0; j < n; j++)
			keys[j] = bench_source_key(&src, i + j);
		w->rc = run->impl->get_many(run->table, keys, n, objs);
		for (unsigned j = 0; j < n && w->rc == 0; j++) {
			if (__builtin_expect(objs[j]->key != keys[j], 0)) {
				w->wrong_object = true;
				w->bad_key = keys[j];
				w->rc = -EINVAL;
			}
		}
		if (w->rc != 0 && !w->wrong_object)
			w->bad_key = keys[0];
		i += n;
	}
	w->end_ns = bench_now_ns();
	w->ops = i;
	free(keys);
	free(objs);
}

static void worker_loop(struct worker *w)
{
	if (w->run->impl->get_many != NULL)
		worker_loop_many(w);
	else if (w->run->impl->begin_batch != NULL)
		worker_loop_as(w, true);
	else
		worker_loop_as(w, false);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct bench_impl *impl = w->run->impl;
	if (impl->thread_begin != NULL)
		impl->thread_begin(w->run->table);
	if (bench_gate_pass(w->gate))
		worker_loop(w);
	if (impl->thread_end != NULL)
		impl->thread_end(w->run->table);
	return NULL;
}

/* ---- a run --------------------------------------------------------------------------- */

static int report_failures(const struct bench_timed *run, const struct worker *w)
{
	int failed = 0;
	for (unsigned t = 0; t < run->threads; t++) {
		if (w[t].wrong_object)
			fprintf(stderr, "mementos-bench: %s: get(%llu) returned another key's object\n",
			        run->impl->name, (unsigned long long)w[t].bad_key);
		else if (w[t].failed_batch)
			fprintf(stderr, "mementos-bench: %s: begin_batch failed: %s\n", run->impl->name,
			        strerror(-w[t].rc));
		else if (w[t].rc != 0)
			fprintf(stderr, "mementos-bench: %s: get(%llu) failed: %s\n", run->impl->name,
			        (unsigned long long)w[t].bad_key, strerror(-w[t].rc));
		failed |= w[t].wrong_object || w[t].rc != 0;
	}
	return failed ? -1 : 0;
}

int bench_timed_run(struct bench_timed *run)
{
	struct worker *w = aligned_alloc(alignof(struct worker), run->threads * sizeof *w);
	if (w == NULL) {
		fprintf(stderr, "mementos-bench: out of memory for %u threads\n", run->threads);
		return -1;
	}
	memset(w, 0, run->threads * sizeof *w);
	struct bench_gate gate;
	bench_gate_init(&gate);
	_Atomic bool stop = false;

	unsigned started = 0;
	for (; started < run->threads; started++) {
		struct worker *me = &w[started];
		me->run = run;
		me->index = started;
		me->gate = &gate;
		me->stop = &stop;
		int err = pthread_create(&me->thread, NULL, worker_main, me);
		if (err != 0) {
			fprintf(stderr, "mementos-bench: cannot start thread %u: %s\n", started + 1,
			        strerror(err));
			break;
		}
	}
	bool aborted = started < run->threads;
	bench_gate_release(&gate, started, aborted);
	if (!aborted) {
		bench_sleep_ns(run->run_ns);
		/* Relaxed: see worker_main. */
		atomic_store_explicit(&stop, true, memory_order_relaxed);
	}
	for (unsigned t = 0; t < started; t++)
		pthread_join(w[t].thread, NULL);
	bench_gate_destroy(&gate);

	int rc = aborted ? -1 : report_failures(run, w);
	if (rc == 0) {
		/* From the first thread's start to the last one's end: a thread
		 * that starts late (more threads than cores) still counts. */
		uint64_t first = UINT64_MAX, last = 0;
		run->total_ops = 0;
		for (unsigned t = 0; t < run->threads; t++) {
			run->ops[t] = w[t].ops;
			run->total_ops += w[t].ops;
			first = w[t].start_ns < first ? w[t].start_ns : first;
			last = w[t].end_ns > last ? w[t].end_ns : last;
		}
		run->seconds = (double)(last - first) / 1e9;
	}
	free(w);
	return rc;
}
