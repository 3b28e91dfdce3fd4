/*
 * bench_stampede.c: rounds in which every thread, released by one barrier,
 * asks for the same new key, whose creation sleeps (the creation cost set
 * by the caller).  One thread creates; the others must wait for it and get
 * its object.  Per round: exactly one creation, one object for all, and
 * the delay from the end of the creation (stamped in the object) to each
 * thread's return; the creator's own return counts too.  Each get is a
 * batch of its own (impl.h), which ends before the thread waits at the
 * round's barrier: what the driver checks of the object (its address, key
 * and creation stamp) is copied inside the batch.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "bench_driver.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a thread got in one round, copied while its batch held the object. */
struct got {
	int rc;
	uintptr_t obj; /* compared only: the object may be gone */
	uint64_t key, created_ns, returned_ns;
};

struct stampede {
	const struct bench_impl *impl;
	void *table;
	unsigned threads, rounds;
	uint64_t first_key;
	struct bench_gate gate;
	pthread_barrier_t start, done; /* the threads and the driver */
	/* [round * threads + thread], each written by its own thread: */
	struct got *got;
};

struct stampeder {
	struct stampede *s;
	unsigned index;
	pthread_t thread;
};

static void *stampeder_main(void *arg)
{
	struct stampeder *me = arg;
	struct stampede *s = me->s;
	if (s->impl->thread_begin != NULL)
		s->impl->thread_begin(s->table);
	if (bench_gate_pass(&s->gate)) {
		for (unsigned r = 0; r < s->rounds; r++) {
			struct got *got = &s->got[(size_t)r * s->threads + me->index];
			pthread_barrier_wait(&s->start);
			got->rc = bench_batch_begin(s->impl, s->table);
			if (got->rc == 0) {
				struct bench_object *obj;
				got->rc = s->impl->get(s->table, s->first_key + r, &obj);
				got->returned_ns = bench_now_ns();
				if (got->rc == 0) {
					got->obj = (uintptr_t)obj;
					got->key = obj->key;
					got->created_ns = obj->payload[BENCH_OBJECT_CREATED_AT];
				}
				bench_batch_end(s->impl, s->table);
			}
			pthread_barrier_wait(&s->done);
		}
	}
	if (s->impl->thread_end != NULL)
		s->impl->thread_end(s->table);
	return NULL;
}

/* After the round's done barrier, which orders every thread's writes
 * (and every creation's count) before these reads. */
static int check_round(struct stampede *s, unsigned r, uint64_t released_ns, uint64_t creations,
                       struct bench_stampede_result *out)
{
	uint64_t key = s->first_key + r;
	uintptr_t first = 0;
	uint64_t last_return = released_ns;
	for (unsigned t = 0; t < s->threads; t++) {
		const struct got *got = &s->got[(size_t)r * s->threads + t];
		if (got->rc != 0) {
			fprintf(stderr, "mementos-bench: %s: stampede get(%llu) failed: %s\n",
			        s->impl->name, (unsigned long long)key, strerror(-got->rc));
			return -1;
		}
		if (got->key != key || (first != 0 && got->obj != first)) {
			fprintf(stderr,
			        "mementos-bench: %s: stampede round %u: threads got different objects\n",
			        s->impl->name, r);
			return -1;
		}
		first = got->obj;
		uint64_t created_at = got->created_ns;
		uint64_t returned = got->returned_ns;
		double wake_us = returned > created_at ? (double)(returned - created_at) / 1e3 : 0;
		out->worst_wake_us = wake_us > out->worst_wake_us ? wake_us : out->worst_wake_us;
		last_return = returned > last_return ? returned : last_return;
	}
	out->seconds += (double)(last_return - released_ns) / 1e9;
	out->ops += s->threads;
	out->max_creations = creations > out->max_creations ? creations : out->max_creations;
	if (creations != 1) {
		fprintf(stderr, "mementos-bench: %s: stampede round %u: %llu creations of one key\n",
		        s->impl->name, r, (unsigned long long)creations);
		return -1;
	}
	return 0;
}

static int run_rounds(struct stampede *s, struct bench_stampede_result *out)
{
	int rc = 0;
	for (unsigned r = 0; r < s->rounds; r++) {
		uint64_t created_before = bench_objects_created();
		uint64_t released = bench_now_ns();
		pthread_barrier_wait(&s->start);
		pthread_barrier_wait(&s->done);
		uint64_t creations = bench_objects_created() - created_before;
		/* Every round runs, so that the threads never hang at a barrier. */
		if (check_round(s, r, released, creations, out) != 0)
			rc = -1;
	}
	return rc;
}

int bench_stampede_run(const struct bench_impl *impl, void *table, unsigned threads,
                       unsigned rounds, uint64_t first_key, struct bench_stampede_result *out)
{
	struct stampede s = {
		.impl = impl,
		.table = table,
		.threads = threads,
		.rounds = rounds,
		.first_key = first_key,
	};
	s.got = calloc((size_t)rounds * threads, sizeof *s.got);
	struct stampeder *who = calloc(threads, sizeof *who);
	if (s.got == NULL || who == NULL) {
		fprintf(stderr, "mementos-bench: out of memory for the stampede\n");
		free(s.got);
		free(who);
		return -1;
	}
	bench_gate_init(&s.gate);
	pthread_barrier_init(&s.start, NULL, threads + 1);
	pthread_barrier_init(&s.done, NULL, threads + 1);
	memset(out, 0, sizeof *out);

	unsigned started = 0;
	for (; started < threads; started++) {
		who[started].s = &s;
		who[started].index = started;
		int err = pthread_create(&who[started].thread, NULL, stampeder_main, &who[started]);
		if (err != 0) {
			fprintf(stderr, "mementos-bench: cannot start thread %u: %s\n", started + 1,
			        strerror(err));
			break;
		}
	}
	bool aborted = started < threads;
	bench_gate_release(&s.gate, started, aborted);
	int rc = aborted ? -1 : run_rounds(&s, out);
	for (unsigned t = 0; t < started; t++)
		pthread_join(who[t].thread, NULL);

	pthread_barrier_destroy(&s.done);
	pthread_barrier_destroy(&s.start);
	bench_gate_destroy(&s.gate);
	free(s.got);
	free(who);
	return rc;
}
