/*
 * bench_object.c: the one creation function every implementation calls, its
 * per-workload cost, and the counts of creations and destructions that the
 * driver checks exactly-once creation with.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "bench_driver.h"

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <xxhash.h>

/* ---- clock, sleep, random numbers ------------------------------------------------ */

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

void bench_sleep_ns(uint64_t ns)
{
	/* An absolute deadline, so that a signal cannot stretch the sleep. */
	uint64_t until = bench_now_ns() + ns;
	struct timespec deadline = {
		.tv_sec = (time_t)(until / UINT64_C(1000000000)),
		.tv_nsec = (long)(until % UINT64_C(1000000000)),
	};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR)
		;
}

uint64_t bench_random(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

uint64_t bench_hash(uint64_t key)
{
	return XXH3_64bits(&key, sizeof key);
}

/* ---- the creation cost ----------------------------------------------------------------- */

/* Written by the child's main thread before it starts any benchmark thread
 * (pthread_create orders the write before every read). */
static enum bench_cost_kind cost_kind = BENCH_COST_NONE;
static uint64_t cost_amount;

void bench_object_set_cost(enum bench_cost_kind kind, uint64_t amount)
{
	cost_kind = kind;
	cost_amount = amount;
}

/* Dependent multiply-adds: the same work on every machine state, and the
 * empty asm keeps the compiler from folding the loop. */
static uint64_t spin(uint64_t iters, uint64_t x)
{
	for (uint64_t i = 0; i < iters; i++) {
		x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

uint64_t bench_spin_calibrate(uint64_t ns)
{
	/* The fastest of a few tries: the one least disturbed by the machine. */
	const uint64_t iters = 2000000;
	uint64_t best = UINT64_MAX;
	for (int i = 0; i < 5; i++) {
		uint64_t t0 = bench_now_ns();
		volatile uint64_t sink = spin(iters, t0);
		(void)sink;
		uint64_t took = bench_now_ns() - t0;
		best = took < best ? took : best;
	}
	uint64_t n = (uint64_t)((double)iters * (double)ns / (double)(best != 0 ? best : 1));
	return n != 0 ? n : 1;
}

/* ---- the counts ------------------------------------------------------------------------- */

/*
 * Striped, one cache line per thread (modulo the stripes), so that counting
 * does not add a contended cache line to every creation of the insert
 * workload.  Relaxed: the counts order nothing; the driver reads them only
 * after the counting threads were joined or passed a barrier, which orders
 * every increment before the read.
 */
#define STRIPES 64

struct stripe {
	alignas(64) _Atomic uint64_t created;
	_Atomic uint64_t destroyed;
};

static struct stripe stripes[STRIPES];
static _Atomic unsigned next_stripe;
static _Thread_local struct stripe *my_stripe;

static struct stripe *stripe_of_this_thread(void)
{
	if (my_stripe == NULL) {
		/* Relaxed: only spreads threads over the stripes. */
		unsigned i = atomic_fetch_add_explicit(&next_stripe, 1, memory_order_relaxed);
		my_stripe = &stripes[i % STRIPES];
	}
	return my_stripe;
}

uint64_t bench_objects_created(void)
{
	uint64_t n = 0;
	for (int i = 0; i < STRIPES; i++)
		n += atomic_load_explicit(&stripes[i].created, memory_order_relaxed);
	return n;
}

uint64_t bench_objects_destroyed(void)
{
	uint64_t n = 0;
	for (int i = 0; i < STRIPES; i++)
		n += atomic_load_explicit(&stripes[i].destroyed, memory_order_relaxed);
	return n;
}

/* ---- create and destroy ---------------------------------------------------------------------- */

struct bench_object *bench_object_create(uint64_t key)
{
	uint64_t spun = 0;
	if (cost_kind == BENCH_COST_SPIN)
		spun = spin(cost_amount, key);
	else if (cost_kind == BENCH_COST_SLEEP)
		bench_sleep_ns(cost_amount);

	struct bench_object *obj = malloc(sizeof *obj);
	if (obj == NULL)
		return NULL;
	obj->key = key;
	obj->payload[1] = spun; /* keeps the spin's result alive */
	obj->payload[2] = 0;
	atomic_fetch_add_explicit(&stripe_of_this_thread()->created, 1, memory_order_relaxed);
	/* Last: the end of the creation, from which stampede measures how long
	 * the waiters take to return.  The waiters read it through the object,
	 * which the implementation published to them. */
	obj->payload[BENCH_OBJECT_CREATED_AT] = cost_kind == BENCH_COST_SLEEP ? bench_now_ns() : 0;
	return obj;
}

void bench_object_destroy(struct bench_object *obj)
{
	if (obj == NULL)
		return;
	atomic_fetch_add_explicit(&stripe_of_this_thread()->destroyed, 1, memory_order_relaxed);
	free(obj);
}
