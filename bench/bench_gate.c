/*
 * bench_gate.c: the start gate.  A mutex and a condition variable: the
 * threads wait for it only before they are timed.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "bench_driver.h"

void bench_gate_init(struct bench_gate *g)
{
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->changed, NULL);
	g->ready = 0;
	g->state = BENCH_GATE_SHUT;
}

void bench_gate_destroy(struct bench_gate *g)
{
	pthread_cond_destroy(&g->changed);
	pthread_mutex_destroy(&g->lock);
}

bool bench_gate_pass(struct bench_gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->ready++;
	pthread_cond_broadcast(&g->changed);
	while (g->state == BENCH_GATE_SHUT)
		pthread_cond_wait(&g->changed, &g->lock);
	bool open = g->state == BENCH_GATE_OPEN;
	pthread_mutex_unlock(&g->lock);
	return open;
}

void bench_gate_release(struct bench_gate *g, unsigned n, bool abort)
{
	pthread_mutex_lock(&g->lock);
	while (!abort && g->ready < n)
		pthread_cond_wait(&g->changed, &g->lock);
	g->state = abort ? BENCH_GATE_ABORTED : BENCH_GATE_OPEN;
	pthread_cond_broadcast(&g->changed);
	pthread_mutex_unlock(&g->lock);
}
