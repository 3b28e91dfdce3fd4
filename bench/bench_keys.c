/*
 * bench_keys.c: the key streams, pregenerated so that a timed get pays one
 * array read for its key, the same for every implementation.
 *
 * Zipf samples use the method of Gray, Sundaresan, Englert, Baclawski and
 * Weinberger, "Quickly generating billion-record synthetic databases"
 * (SIGMOD 1994), which YCSB also uses: zeta(n) is summed once, then each
 * sample costs one pow().  Rank 0 is the most popular key.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "bench_driver.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* A double uniform in [0, 1), from the top 53 bits. */
static double uniform01(uint64_t *state)
{
	return (double)(bench_random(state) >> 11) * 0x1p-53;
}

static int stream_alloc(struct bench_stream *s, size_t len)
{
	s->len = len;
	s->index = malloc(len * sizeof *s->index);
	return s->index != NULL ? 0 : -ENOMEM;
}

int bench_stream_uniform(struct bench_stream *s, size_t len, uint32_t n, uint64_t seed)
{
	if (stream_alloc(s, len) != 0)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		/* Multiply-shift onto [0, n): no division, bias below 2^-32. */
		uint64_t r = bench_random(&seed) >> 32;
		s->index[i] = (uint32_t)((r * n) >> 32);
	}
	return 0;
}

/* ---- Zipf ------------------------------------------------------------------------- */

struct zipf {
	double n, theta, alpha, zetan, eta, half_pow_theta;
};

/* Summed from the smallest term up, so that the small terms still count. */
static double zeta(uint64_t n, double theta)
{
	double sum = 0;
	for (uint64_t i = n; i >= 1; i--)
		sum += pow((double)i, -theta);
	return sum;
}

static void zipf_init(struct zipf *z, uint64_t n, double theta)
{
	double zeta2 = 1 + pow(0.5, theta);
	z->n = (double)n;
	z->theta = theta;
	z->alpha = 1 / (1 - theta);
	z->zetan = zeta(n, theta);
	z->eta = (1 - pow(2 / z->n, 1 - theta)) / (1 - zeta2 / z->zetan);
	z->half_pow_theta = pow(0.5, theta);
}

static uint64_t zipf_next(const struct zipf *z, double u)
{
	double uz = u * z->zetan;
	if (uz < 1)
		return 0;
	if (uz < 1 + z->half_pow_theta)
		return 1;
	double rank = z->n * pow(z->eta * u - z->eta + 1, z->alpha);
	return rank < z->n - 1 ? (uint64_t)rank : (uint64_t)z->n - 1;
}

int bench_stream_zipf(struct bench_stream *s, size_t len, uint64_t n, double theta,
                      uint64_t seed)
{
	if (n < 2 || n > UINT32_MAX || theta <= 0 || theta >= 1)
		return -EINVAL;
	if (stream_alloc(s, len) != 0)
		return -ENOMEM;
	struct zipf z;
	zipf_init(&z, n, theta);
	for (size_t i = 0; i < len; i++)
		s->index[i] = (uint32_t)zipf_next(&z, uniform01(&seed));
	return 0;
}

void bench_stream_free(struct bench_stream *s)
{
	free(s->index);
	s->index = NULL;
	s->len = 0;
}
