/*
 * mementos-hitratio: the eviction policy's miss ratios (lib/policy/, this
 * very code, one instance as large as the whole cache) next to exact LRU,
 * SIEVE, FIFO and Belady's offline optimum, on synthetic traces.
 *
 * Workloads, over N keys (--keys; 1,000,000 by default):
 *   zipf-0.8, zipf-0.99, zipf-1.2   Zipf popularity (sampled from its exact
 *                                   CDF), ranks shuffled over the keys
 *   loop                            keys 0, 1, ... N-1, again and again
 *   scan                            zipf-0.99, and one access in four is a
 *                                   sequential scan: runs of N/5 keys from a
 *                                   second range of N keys that the Zipf
 *                                   part never uses, cycling through it
 * Each trace has a warm-up (2 x N accesses) whose misses are not counted,
 * then 20 x N counted accesses.  Cache sizes: 0.1%, 0.3%, 1%, 3% and 10% of
 * N entries.  Everything follows from --seed: two runs print the same
 * numbers on any machine.
 *
 * The simulations keep their own key -> slot map (an array: keys are dense
 * integers).  mementos: a hit calls memento__policy_touch; a miss inserts a
 * node (weight 1, hash a 32-bit mix of the key) and evicts until
 * memento__policy_evict answers NULL.  Belady: on a miss in a full cache,
 * the resident (or the newcomer) whose next use is farthest leaves (next
 * uses precomputed, residents in an indexed max-heap).
 *
 * Checks (exit status 1 when one fails): the policy never holds more than
 * its bound once evict answers NULL, and evicts only nodes it holds;
 * Belady misses no more than any other policy over the whole trace (the
 * warm-up included: the optimum is optimal from an empty cache, not on a
 * suffix); on the loop, the policy misses less than LRU.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include "policy.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NONE UINT32_MAX  /* an empty map slot, or no next use */
#define SCAN_RUN_DIVISOR 5 /* a scan run is N/5 keys long, longer than every cache */
#define ZIPF_PER_SCAN 3    /* after three times as many Zipf accesses */

static const double size_fractions[] = { 0.001, 0.003, 0.01, 0.03, 0.10 };
#define NSIZES (sizeof size_fractions / sizeof size_fractions[0])

enum workload { W_ZIPF_08, W_ZIPF_099, W_ZIPF_12, W_LOOP, W_SCAN, NWORKLOADS };
static const char *const workload_names[NWORKLOADS] = { "zipf-0.8", "zipf-0.99", "zipf-1.2",
	                                                "loop", "scan" };

enum sim { S_MEMENTOS, S_LRU, S_SIEVE, S_FIFO, S_BELADY, NSIMS };
static const char *const sim_names[NSIMS] = { "mementos", "lru", "sieve", "fifo", "belady" };

struct options {
	uint32_t keys;
	uint32_t length; /* counted accesses, per key */
	uint32_t warmup; /* uncounted accesses first, per key */
	uint64_t seed;
	const char *markdown; /* NULL: no markdown file */
	int only;             /* a workload, or -1 for all */
};

struct trace {
	uint32_t *keys;
	uint32_t *next_use; /* index of the same key's next access, or NONE */
	size_t len, warmup;
	uint32_t key_space;
};

struct counts {
	uint64_t misses;     /* after the warm-up */
	uint64_t all_misses; /* the warm-up's too */
};

static struct counts results[NWORKLOADS][NSIZES][NSIMS];
static uint32_t sizes[NSIZES];
static bool failed;

/* ---- randomness ----------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static double uniform(uint64_t *state)
{
	return (double)(splitmix(state) >> 11) * 0x1.0p-53;
}

/* The node's hash: a 32-bit mix of the key, as the library passes 32 bits of
 * XXH3. */
static uint32_t key_hash(uint32_t key)
{
	uint64_t s = key;
	return (uint32_t)(splitmix(&s) >> 32);
}

static void *xmalloc(size_t size)
{
	void *p = malloc(size);
	if (p == NULL) {
		fprintf(stderr, "hitratio: out of memory (%zu bytes)\n", size);
		exit(2);
	}
	return p;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- traces -------------------------------------------------------------------- */

/* Which key has popularity rank r: a shuffle, so that popularity has
 * nothing to do with key order (nor with the hash). */
static uint32_t *shuffled(uint32_t n, uint64_t *rng)
{
	uint32_t *perm = xmalloc(n * sizeof *perm);
	for (uint32_t i = 0; i < n; i++)
		perm[i] = i;
	for (uint32_t i = n - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(uniform(rng) * (double)(i + 1));
		uint32_t t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	return perm;
}

/* Zipf's exact CDF over ranks 0..n-1 (P(r) proportional to 1/(r+1)^alpha),
 * sampled by binary search. */
struct zipf {
	double *cdf;
	uint32_t n;
};

static void zipf_init(struct zipf *z, uint32_t n, double alpha)
{
	z->n = n;
	z->cdf = xmalloc(n * sizeof *z->cdf);
	double sum = 0;
	for (uint32_t i = 0; i < n; i++) {
		sum += pow((double)i + 1, -alpha);
		z->cdf[i] = sum;
	}
	for (uint32_t i = 0; i < n; i++)
		z->cdf[i] /= sum;
	z->cdf[n - 1] = 1.0;
}

static uint32_t zipf_rank(const struct zipf *z, uint64_t *rng)
{
	double u = uniform(rng);
	uint32_t lo = 0, hi = z->n - 1; /* the first rank whose cdf exceeds u */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (z->cdf[mid] > u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static void trace_make(struct trace *t, enum workload w, const struct options *o)
{
	uint32_t n = o->keys;
	uint64_t rng = o->seed ^ ((uint64_t)(w + 1) << 56);
	t->warmup = (size_t)o->warmup * n;
	t->len = t->warmup + (size_t)o->length * n;
	t->keys = xmalloc(t->len * sizeof *t->keys);
	t->key_space = w == W_SCAN ? 2 * n : n;

	if (w == W_LOOP) {
		for (size_t i = 0; i < t->len; i++)
			t->keys[i] = (uint32_t)(i % n);
	} else {
		static const double alphas[NWORKLOADS] = { 0.8, 0.99, 1.2, 0, 0.99 };
		struct zipf z;
		zipf_init(&z, n, alphas[w]);
		uint32_t *perm = shuffled(n, &rng);
		/* Each period: 3 x N/5 Zipf accesses, then a scan run of N/5. */
		size_t scan_run = n / SCAN_RUN_DIVISOR, scan_at = 0;
		size_t period = (ZIPF_PER_SCAN + 1) * scan_run;
		for (size_t i = 0; i < t->len; i++) {
			if (w == W_SCAN && i % period >= ZIPF_PER_SCAN * scan_run) {
				t->keys[i] = n + (uint32_t)(scan_at++ % n);
				continue;
			}
			t->keys[i] = perm[zipf_rank(&z, &rng)];
		}
		free(perm);
		free(z.cdf);
	}

	/* Belady's input: each access's next use of the same key. */
	t->next_use = xmalloc(t->len * sizeof *t->next_use);
	uint32_t *last = xmalloc(t->key_space * sizeof *last);
	memset(last, 0xFF, t->key_space * sizeof *last);
	for (size_t i = t->len; i-- > 0;) {
		t->next_use[i] = last[t->keys[i]];
		last[t->keys[i]] = (uint32_t)i;
	}
	free(last);
}

static void trace_free(struct trace *t)
{
	free(t->keys);
	free(t->next_use);
}

/* ---- simulations ------------------------------------------------------------------ */

/* Every simulation maps keys to slots of its own (NONE: not held). */
static uint32_t *map_new(const struct trace *t)
{
	uint32_t *map = xmalloc(t->key_space * sizeof *map);
	memset(map, 0xFF, t->key_space * sizeof *map);
	return map;
}

static void count_miss(const struct trace *t, size_t i, struct counts *c)
{
	c->all_misses++;
	if (i >= t->warmup)
		c->misses++;
}

static void *hook_alloc(size_t size, void *state)
{
	(void)state;
	return malloc(size);
}

static void hook_free(void *p, size_t size, void *state)
{
	(void)size;
	(void)state;
	free(p);
}

static void sim_mementos(const struct trace *t, uint32_t size, struct counts *c)
{
	struct memento__policy p;
	const struct memento__policy_alloc hooks = { hook_alloc, hook_free, NULL };
	memento__policy_init(&p, size, 0, &hooks);
	/* One slot more than the bound: the insert comes before the evictions. */
	uint32_t slots = size + 1;
	struct memento__policy_node *nodes = calloc(slots, sizeof *nodes);
	uint32_t *owner = xmalloc(slots * sizeof *owner);
	uint32_t *free_slots = xmalloc(slots * sizeof *free_slots);
	if (nodes == NULL)
		exit(2);
	uint32_t nfree = slots, held = 0;
	for (uint32_t s = 0; s < slots; s++)
		free_slots[s] = slots - 1 - s;
	uint32_t *map = map_new(t);

	for (size_t i = 0; i < t->len; i++) {
		uint32_t k = t->keys[i];
		if (map[k] != NONE) {
			memento__policy_touch(&nodes[map[k]]);
			continue;
		}
		count_miss(t, i, c);
		if (nfree == 0) {
			fprintf(stderr, "hitratio: mementos holds %" PRIu32 " > %" PRIu32 "\n", held, size);
			failed = true;
			break;
		}
		uint32_t s = free_slots[--nfree];
		nodes[s].weight = 1;
		nodes[s].hash = key_hash(k);
		owner[s] = k;
		map[k] = s;
		held++;
		memento__policy_insert(&p, &nodes[s]);
		struct memento__policy_node *v;
		while ((v = memento__policy_evict(&p)) != NULL) {
			uint32_t vs = (uint32_t)(v - nodes);
			if (vs >= slots || map[owner[vs]] != vs) {
				fprintf(stderr, "hitratio: mementos evicted a node it does not hold\n");
				failed = true;
				goto out;
			}
			map[owner[vs]] = NONE;
			free_slots[nfree++] = vs;
			held--;
		}
		if (held > size) {
			fprintf(stderr, "hitratio: mementos holds %" PRIu32 " > %" PRIu32 "\n", held, size);
			failed = true;
			break;
		}
	}
out:
	memento__policy_destroy(&p);
	free(map);
	free(free_slots);
	free(owner);
	free(nodes);
}

/* LRU and SIEVE share a doubly linked list of slots, head the newest. */
struct dlist {
	uint32_t *prev, *next, *key;
	uint32_t head, tail;
};

static void dlist_init(struct dlist *l, uint32_t slots)
{
	l->prev = xmalloc(slots * sizeof *l->prev);
	l->next = xmalloc(slots * sizeof *l->next);
	l->key = xmalloc(slots * sizeof *l->key);
	l->head = l->tail = NONE;
}

static void dlist_free(struct dlist *l)
{
	free(l->prev);
	free(l->next);
	free(l->key);
}

static void dlist_push(struct dlist *l, uint32_t s)
{
	l->prev[s] = NONE;
	l->next[s] = l->head;
	if (l->head != NONE)
		l->prev[l->head] = s;
	else
		l->tail = s;
	l->head = s;
}

static void dlist_unlink(struct dlist *l, uint32_t s)
{
	if (l->prev[s] != NONE)
		l->next[l->prev[s]] = l->next[s];
	else
		l->head = l->next[s];
	if (l->next[s] != NONE)
		l->prev[l->next[s]] = l->prev[s];
	else
		l->tail = l->prev[s];
}

static void sim_lru(const struct trace *t, uint32_t size, struct counts *c)
{
	struct dlist l;
	dlist_init(&l, size);
	uint32_t *map = map_new(t), used = 0;
	for (size_t i = 0; i < t->len; i++) {
		uint32_t k = t->keys[i], s = map[k];
		if (s != NONE) {
			dlist_unlink(&l, s);
			dlist_push(&l, s);
			continue;
		}
		count_miss(t, i, c);
		if (used < size) {
			s = used++;
		} else {
			s = l.tail;
			dlist_unlink(&l, s);
			map[l.key[s]] = NONE;
		}
		l.key[s] = k;
		map[k] = s;
		dlist_push(&l, s);
	}
	free(map);
	dlist_free(&l);
}

/* SIEVE as published: one FIFO list, a hand from the tail toward the head
 * that clears visited bits and evicts the first unvisited entry. */
static void sim_sieve(const struct trace *t, uint32_t size, struct counts *c)
{
	struct dlist l;
	dlist_init(&l, size);
	unsigned char *visited = calloc(size, 1);
	if (visited == NULL)
		exit(2);
	uint32_t *map = map_new(t), used = 0, hand = NONE;
	for (size_t i = 0; i < t->len; i++) {
		uint32_t k = t->keys[i], s = map[k];
		if (s != NONE) {
			visited[s] = 1;
			continue;
		}
		count_miss(t, i, c);
		if (used < size) {
			s = used++;
		} else {
			s = hand != NONE ? hand : l.tail;
			while (visited[s]) {
				visited[s] = 0;
				s = l.prev[s] != NONE ? l.prev[s] : l.tail;
			}
			hand = l.prev[s];
			dlist_unlink(&l, s);
			map[l.key[s]] = NONE;
		}
		visited[s] = 0;
		l.key[s] = k;
		map[k] = s;
		dlist_push(&l, s);
	}
	free(map);
	free(visited);
	dlist_free(&l);
}

static void sim_fifo(const struct trace *t, uint32_t size, struct counts *c)
{
	uint32_t *ring = xmalloc(size * sizeof *ring);
	uint32_t *map = map_new(t), used = 0, at = 0;
	for (size_t i = 0; i < t->len; i++) {
		uint32_t k = t->keys[i];
		if (map[k] != NONE)
			continue;
		count_miss(t, i, c);
		if (used < size) {
			used++;
		} else {
			map[ring[at]] = NONE;
		}
		ring[at] = k;
		map[k] = at;
		at = at + 1 == size ? 0 : at + 1;
	}
	free(map);
	free(ring);
}

/* Belady's MIN: residents in a max-heap on their next use; map holds each
 * resident's heap position. */
struct heap {
	uint32_t *next, *key; /* by heap position */
	uint32_t *pos;        /* by key: heap position, or NONE */
	uint32_t len;
};

static void heap_set(struct heap *h, uint32_t at, uint32_t next, uint32_t key)
{
	h->next[at] = next;
	h->key[at] = key;
	h->pos[key] = at;
}

static void heap_up(struct heap *h, uint32_t at)
{
	uint32_t next = h->next[at], key = h->key[at];
	while (at > 0) {
		uint32_t up = (at - 1) / 2;
		if (h->next[up] >= next)
			break;
		heap_set(h, at, h->next[up], h->key[up]);
		at = up;
	}
	heap_set(h, at, next, key);
}

static void heap_down(struct heap *h, uint32_t at)
{
	uint32_t next = h->next[at], key = h->key[at];
	for (;;) {
		uint32_t child = 2 * at + 1;
		if (child >= h->len)
			break;
		if (child + 1 < h->len && h->next[child + 1] > h->next[child])
			child++;
		if (h->next[child] <= next)
			break;
		heap_set(h, at, h->next[child], h->key[child]);
		at = child;
	}
	heap_set(h, at, next, key);
}

static void sim_belady(const struct trace *t, uint32_t size, struct counts *c)
{
	struct heap h = {
		.next = xmalloc(size * sizeof *h.next),
		.key = xmalloc(size * sizeof *h.key),
		.pos = map_new(t),
	};
	for (size_t i = 0; i < t->len; i++) {
		uint32_t k = t->keys[i], next = t->next_use[i], at = h.pos[k];
		if (at != NONE) {
			/* Its next use was now: it only moves later. */
			h.next[at] = next;
			heap_up(&h, at);
			continue;
		}
		count_miss(t, i, c);
		if (h.len < size) {
			heap_set(&h, h.len++, next, k);
			heap_up(&h, h.len - 1);
		} else if (h.next[0] > next) {
			h.pos[h.key[0]] = NONE;
			heap_set(&h, 0, next, k);
			heap_down(&h, 0);
		}
		/* Otherwise the newcomer is the one used last: it leaves at once. */
	}
	free(h.pos);
	free(h.key);
	free(h.next);
}

static void (*const sims[NSIMS])(const struct trace *, uint32_t, struct counts *) = {
	sim_mementos, sim_lru, sim_sieve, sim_fifo, sim_belady,
};

/* ---- output -------------------------------------------------------------------- */

static double ratio(const struct counts *c, const struct trace *t)
{
	return (double)c->misses / (double)(t->len - t->warmup);
}

static void check(enum workload w, size_t z)
{
	const struct counts *r = results[w][z];
	for (int s = 0; s < NSIMS; s++) {
		if (r[S_BELADY].all_misses > r[s].all_misses) {
			fprintf(stderr, "hitratio: %s, size %" PRIu32 ": belady misses %" PRIu64
			        " > %s's %" PRIu64 "\n", workload_names[w], sizes[z],
			        r[S_BELADY].all_misses, sim_names[s], r[s].all_misses);
			failed = true;
		}
	}
	if (w == W_LOOP && r[S_MEMENTOS].misses >= r[S_LRU].misses) {
		fprintf(stderr, "hitratio: loop, size %" PRIu32 ": mementos misses %" PRIu64
		        " >= lru's %" PRIu64 "\n", sizes[z], r[S_MEMENTOS].misses, r[S_LRU].misses);
		failed = true;
	}
}

static void cpu_name(char *out, size_t room)
{
	snprintf(out, room, "unknown");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f == NULL)
		return;
	char line[256];
	while (fgets(line, sizeof line, f) != NULL) {
		char *colon = strchr(line, ':');
		if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
			colon += 1 + (colon[1] == ' ');
			colon[strcspn(colon, "\n")] = '\0';
			snprintf(out, room, "%s", colon);
			break;
		}
	}
	fclose(f);
}

static void write_markdown(const struct options *o, double seconds)
{
	FILE *f = fopen(o->markdown, "w");
	if (f == NULL) {
		perror(o->markdown);
		failed = true;
		return;
	}
	char cpu[128];
	cpu_name(cpu, sizeof cpu);
	fprintf(f, "# mementos-hitratio\n\n");
	fprintf(f, "Miss ratios (misses / counted accesses) of the eviction policy "
	           "(`lib/policy/`, one instance as large as the cache) against exact LRU, "
	           "SIEVE, FIFO and Belady's offline optimum.  `mementos/LRU`: below 1, the "
	           "policy misses less than LRU.\n\n");
	fprintf(f, "%" PRIu32 " keys; per workload %" PRIu32 " x keys warm-up accesses, then "
	           "%" PRIu32 " x keys counted accesses; seed %" PRIu64 ".  The `scan` workload "
	           "is zipf-0.99 with one access in four a sequential scan over %" PRIu32
	           " other keys, in runs of %" PRIu32 ".\n\n",
	        o->keys, o->warmup, o->length, o->seed, o->keys, o->keys / 5);
	fprintf(f, "Run on %s in %.0f s (one thread).  Miss ratios depend only on the "
	           "traces and the seed, never on the machine.\n", cpu, seconds);
	bool all_le = true, strict = true;
	for (int w = 0; w < NWORKLOADS; w++) {
		if (o->only >= 0 && o->only != w)
			continue;
		uint64_t counted = (uint64_t)o->length * o->keys;
		fprintf(f, "\n## %s\n\n", workload_names[w]);
		fprintf(f, "| size | entries | mementos | LRU | SIEVE | FIFO | Belady | "
		           "mementos/LRU |\n|--:|--:|--:|--:|--:|--:|--:|--:|\n");
		for (size_t z = 0; z < NSIZES; z++) {
			const struct counts *r = results[w][z];
			double m[NSIMS];
			for (int s = 0; s < NSIMS; s++)
				m[s] = (double)r[s].misses / (double)counted;
			fprintf(f, "| %.1f%% | %" PRIu32 " | %.4f | %.4f | %.4f | %.4f | %.4f | %.3f |\n",
			        size_fractions[z] * 100, sizes[z], m[S_MEMENTOS], m[S_LRU], m[S_SIEVE],
			        m[S_FIFO], m[S_BELADY],
			        r[S_LRU].misses ? (double)r[S_MEMENTOS].misses / (double)r[S_LRU].misses
			                        : 1.0);
			all_le &= r[S_MEMENTOS].misses <= r[S_LRU].misses;
			if (w == W_LOOP || w == W_SCAN)
				strict &= r[S_MEMENTOS].misses < r[S_LRU].misses;
		}
	}
	fprintf(f, "\nmementos at or below LRU at every point: %s; strictly below on loop "
	           "and scan: %s.\n", all_le ? "yes" : "no", strict ? "yes" : "no");
	fclose(f);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: mementos-hitratio [options]\n"
	        "\n"
	        "Replays synthetic traces through the eviction policy (mementos), exact LRU,\n"
	        "SIEVE, FIFO and Belady's optimum, at cache sizes of 0.1%%, 0.3%%, 1%%, 3%% and\n"
	        "10%% of the keys.  Workloads: zipf-0.8, zipf-0.99, zipf-1.2 (shuffled Zipf\n"
	        "popularity), loop (all keys in order, again and again), scan (zipf-0.99 with\n"
	        "one access in four a sequential scan over other keys).\n"
	        "\n"
	        "CSV on stdout, one row per workload, size and policy:\n"
	        "  workload    the workload's name\n"
	        "  size        the cache's bound, in entries\n"
	        "  policy      mementos, lru, sieve, fifo or belady\n"
	        "  accesses    accesses counted (after the warm-up)\n"
	        "  misses      misses among them\n"
	        "  miss_ratio  misses / accesses\n"
	        "Progress on stderr.  Exit status 1 when a check fails (the policy over its\n"
	        "bound or evicting what it does not hold, Belady missing more than another\n"
	        "policy over the whole trace, the policy missing no less than LRU on loop).\n"
	        "\n"
	        "options:\n"
	        "  --keys N         key space (default 1000000)\n"
	        "  --length L       counted accesses per key (default 20)\n"
	        "  --warmup W       uncounted accesses per key first (default 2)\n"
	        "  --seed S         the traces' seed (default 1)\n"
	        "  --workload NAME  only this workload\n"
	        "  --markdown FILE  also write the tables, in markdown, to FILE\n"
	        "  --quick          --keys 100000 --length 10 --warmup 2\n"
	        "  --smoke          --keys 20000 --length 5 --warmup 1 (the ctest run)\n"
	        "  --help           this text\n");
}

static bool parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v == 0 || v > UINT32_MAX / 4)
		return false;
	*out = (uint32_t)v;
	return true;
}

int main(int argc, char **argv)
{
	struct options o = { .keys = 1000000, .length = 20, .warmup = 2, .seed = 1, .only = -1 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool ok = true;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--quick") == 0) {
			o.keys = 100000, o.length = 10, o.warmup = 2;
		} else if (strcmp(a, "--smoke") == 0) {
			o.keys = 20000, o.length = 5, o.warmup = 1;
		} else if (strcmp(a, "--keys") == 0 && v != NULL) {
			ok = parse_u32(v, &o.keys), i++;
		} else if (strcmp(a, "--length") == 0 && v != NULL) {
			ok = parse_u32(v, &o.length), i++;
		} else if (strcmp(a, "--warmup") == 0 && v != NULL) {
			ok = parse_u32(v, &o.warmup), i++;
		} else if (strcmp(a, "--seed") == 0 && v != NULL) {
			o.seed = strtoull(v, NULL, 0), i++;
		} else if (strcmp(a, "--markdown") == 0 && v != NULL) {
			o.markdown = v, i++;
		} else if (strcmp(a, "--workload") == 0 && v != NULL) {
			o.only = -2;
			for (int w = 0; w < NWORKLOADS; w++)
				if (strcmp(v, workload_names[w]) == 0)
					o.only = w;
			ok = o.only >= 0, i++;
		} else {
			ok = false;
		}
		if (!ok) {
			fprintf(stderr, "hitratio: bad argument: %s (try --help)\n", a);
			return 2;
		}
	}
	if ((uint64_t)o.keys * (o.length + o.warmup) >= NONE || o.keys < 1000) {
		fprintf(stderr, "hitratio: --keys must be at least 1000, and the trace shorter "
		                "than 2^32 accesses\n");
		return 2;
	}
	for (size_t z = 0; z < NSIZES; z++)
		sizes[z] = (uint32_t)llround(size_fractions[z] * o.keys);

	double start = now();
	printf("workload,size,policy,accesses,misses,miss_ratio\n");
	for (int w = 0; w < NWORKLOADS; w++) {
		if (o.only >= 0 && o.only != w)
			continue;
		double t0 = now();
		struct trace t;
		trace_make(&t, (enum workload)w, &o);
		fprintf(stderr, "%s: %zu accesses (%zu warm-up) made in %.1f s\n", workload_names[w],
		        t.len, t.warmup, now() - t0);
		for (size_t z = 0; z < NSIZES; z++) {
			for (int s = 0; s < NSIMS; s++) {
				t0 = now();
				struct counts *c = &results[w][z][s];
				sims[s](&t, sizes[z], c);
				printf("%s,%" PRIu32 ",%s,%zu,%" PRIu64 ",%.6f\n", workload_names[w], sizes[z],
				       sim_names[s], t.len - t.warmup, c->misses, ratio(c, &t));
				fprintf(stderr, "  size %7" PRIu32 " %-8s miss ratio %.4f  (%.1f s)\n",
				        sizes[z], sim_names[s], ratio(c, &t), now() - t0);
			}
			fflush(stdout);
			check((enum workload)w, z);
		}
		trace_free(&t);
	}
	double seconds = now() - start;
	fprintf(stderr, "hitratio: %.1f s%s\n", seconds, failed ? ", CHECKS FAILED" : "");
	if (o.markdown != NULL)
		write_markdown(&o, seconds);
	return failed ? 1 : 0;
}
