/*
 * The frequency sketch: a count-min sketch of 4-bit counters that forgets,
 * after Caffeine's FrequencySketch (TinyLFU, Einziger, Friedman and Manes,
 * 2017).  A key's four counters lie in one 64-byte block, one in each pair
 * of its words, so that an addition or an estimate touches one cache line;
 * the estimate is the least of the four.  An addition raises only the
 * counters that hold that least (conservative update): the others already
 * count more than the key's occurrences, and raising them would only add to
 * the collisions that other keys' estimates suffer.  After sample_size
 * additions (10 x the capacity) every counter is halved, and then after
 * every half sample, so that estimates follow the recent past: one pass
 * over a table of fewer than 2 x capacity words (or 8) each 5 x capacity
 * additions, less than half a word per addition, amortised.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "sketch.h"

#include <string.h>

#define COUNTER_MAX 15u
#define BLOCK_WORDS 8u
/* 16 counters a word, 8 bytes a key: past 2^27 keys (1 GiB), a larger
 * table costs more than its accuracy brings. */
#define WORDS_MAX ((uint64_t)1 << 27)
#define SAMPLE_PER_KEY 10u

#define HALVE_MASK UINT64_C(0x7777777777777777)

/* splitmix64's finalizer: the block index takes the low half and the four
 * counters the high half, each half a function of every bit of hash. */
static uint64_t spread(uint32_t hash)
{
	uint64_t z = hash + UINT64_C(0x9E3779B97F4A7C15);
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static uint64_t *block_of(const struct memento__policy_sketch *s, uint64_t z)
{
	return s->table + (size_t)(z & (s->words / BLOCK_WORDS - 1)) * BLOCK_WORDS;
}

/* Counter i of z: word 2i or 2i + 1 of its block, and a nibble of it. */
static uint64_t *counter_word(uint64_t *block, uint64_t z, unsigned i, unsigned *shift)
{
	unsigned byte = (unsigned)(z >> (32 + 8 * i)) & 0xFFu;
	*shift = ((byte >> 1) & 15u) * 4u;
	return &block[2 * i + (byte & 1u)];
}

bool memento__policy_sketch_alloc(struct memento__policy_sketch *s, uint64_t capacity,
                                  const struct memento__policy_alloc *alloc)
{
	uint64_t words = BLOCK_WORDS;
	while (words < capacity && words < WORDS_MAX)
		words <<= 1;
	if (words > SIZE_MAX / sizeof *s->table)
		return false;
	size_t size = (size_t)words * sizeof *s->table;
	uint64_t *table = alloc->alloc(size, alloc->state);
	if (table == NULL)
		return false;
	memset(table, 0, size);
	s->table = table;
	s->words = (size_t)words;
	s->additions = 0;
	if (capacity > WORDS_MAX)
		capacity = WORDS_MAX;
	s->sample_size = SAMPLE_PER_KEY * (capacity > 0 ? capacity : 1);
	return true;
}

void memento__policy_sketch_free(struct memento__policy_sketch *s,
                                 const struct memento__policy_alloc *alloc)
{
	if (s->table != NULL)
		alloc->free(s->table, s->words * sizeof *s->table, alloc->state);
	s->table = NULL;
	s->words = 0;
	s->additions = 0;
}

/* Ages every estimate by half: the sketch now weighs as much as half a
 * sample, and the next halving comes after another half. */
static void halve(struct memento__policy_sketch *s)
{
	for (size_t i = 0; i < s->words; i++)
		s->table[i] = (s->table[i] >> 1) & HALVE_MASK;
	s->additions /= 2;
}

void memento__policy_sketch_add(struct memento__policy_sketch *s, uint32_t hash)
{
	if (s->table == NULL)
		return;
	uint64_t z = spread(hash);
	uint64_t *block = block_of(s, z);
	uint64_t *w[4];
	unsigned shift[4], c[4], least = COUNTER_MAX;
	for (unsigned i = 0; i < 4; i++) {
		w[i] = counter_word(block, z, i, &shift[i]);
		c[i] = (unsigned)(*w[i] >> shift[i]) & COUNTER_MAX;
		if (c[i] < least)
			least = c[i];
	}
	if (least == COUNTER_MAX)
		return; /* saturated: it ages no other key */
	for (unsigned i = 0; i < 4; i++)
		if (c[i] == least)
			*w[i] += (uint64_t)1 << shift[i];
	if (++s->additions >= s->sample_size)
		halve(s);
}

unsigned memento__policy_sketch_estimate(const struct memento__policy_sketch *s, uint32_t hash)
{
	if (s->table == NULL)
		return 0;
	uint64_t z = spread(hash);
	uint64_t *block = block_of(s, z);
	unsigned least = COUNTER_MAX;
	for (unsigned i = 0; i < 4; i++) {
		unsigned shift;
		const uint64_t *w = counter_word(block, z, i, &shift);
		unsigned c = (unsigned)(*w >> shift) & COUNTER_MAX;
		if (c < least)
			least = c;
	}
	return least;
}
