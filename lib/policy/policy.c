/*
 * The eviction policy: a small FIFO window in front of a main region swept
 * by a SIEVE hand, with TinyLFU admission between them.  An entry arrives
 * in the window, which keeps the newest 1% of the bound; when the window
 * overflows, its oldest entry is the candidate for main.  Main is a FIFO
 * list whose entries never move: a hand walks it from the oldest end toward
 * the newest, wrapping, clears the visited bits it passes and stops at the
 * first entry without one, main's victim (SIEVE, Zhang et al., NSDI 2024).
 * While main has room the candidate enters; otherwise it competes with the
 * victim on their estimated frequencies in a count-min sketch (sketch.c),
 * and enters only if clearly more frequent (W-TinyLFU, as in Caffeine, with
 * a margin for the candidate's own arrival and the sketch's noise); the
 * loser is evicted.  A hit only sets its entry's visited bit
 * (memento__policy_touch): no lock, no list, no counter.  So the sketch
 * counts what the policy sees under the lock: every arrival (a miss) and
 * every visited bit it clears (a sampled hit, once per sweep however many
 * hits set it).  Cost: insert, remove and replace are O(1).  An eviction
 * moves entries from the window to main, each at most once per arrival,
 * and its hand clears at most SWEEP_MAX bits before it takes the entry it
 * stands on, so evict costs O(1) amortised per arrival: one move, and at
 * most SWEEP_MAX + 1 hand steps and two sketch lookups per call (counting
 * hits too, the hand's steps are at most one per eviction plus one per
 * touch that found its bit clear).  Halving the sketch adds less than half
 * a word per sketch addition, amortised.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "policy.h"

#include "sketch.h"

#include <assert.h>
#include <stdlib.h>

/* The window's share of each bound, in percent (at least one entry, or a
 * weight of one).  10% missed more on every trace of the benchmark. */
#define WINDOW_PERCENT 1u
/* How many visited bits the hand clears at most in one look for a victim,
 * after which it takes the entry it stands on, visited or not: the bound on
 * one eviction's work, which touches racing with the sweep cannot stretch.
 * Unbounded sweeps missed no less in the benchmark; 16 missed a little more. */
#define SWEEP_MAX 64u
/* How many more occurrences than the victim a candidate needs: one for the
 * arrival that made it a candidate (the victim's own arrival has long been
 * halved away), one for the sketch's collisions.  With less, a loop larger
 * than the sample admits every newcomer on noise alone and keeps nothing. */
#define COLD_MARGIN 2u
/* A candidate hit in the window showed reuse that the sketch need not vouch
 * for: it only has to be more frequent than the victim. */
#define WARM_MARGIN 0u
/* A candidate this frequent that loses to the victim still gets in one time
 * in 128 (as in Caffeine): an adversary who makes the victim's counters
 * collide with hot keys cannot keep every newcomer out. */
#define FREQUENT 6u
#define FREQUENT_ODDS_MASK 127u
/* After a failed sketch allocation, the evictions before the next try: at
 * least this many, and about the set's size (one turnover). */
#define RETRY_MIN 64u

enum { REGION_NONE, REGION_WINDOW, REGION_MAIN, REGION_HEAVY };

/* ---- lists ----------------------------------------------------------------- */

static struct memento__policy_list *list_of(struct memento__policy *p, uint8_t region)
{
	switch (region) {
	case REGION_WINDOW: return &p->window;
	case REGION_MAIN: return &p->main;
	default: assert(region == REGION_HEAVY); return &p->heavy;
	}
}

static void link_head(struct memento__policy *p, struct memento__policy_node *n, uint8_t region)
{
	struct memento__policy_list *l = list_of(p, region);
	n->region = region;
	n->prev = NULL;
	n->next = l->head;
	if (l->head != NULL)
		l->head->prev = n;
	else
		l->tail = n;
	l->head = n;
	l->count++;
	l->weight += n->weight;
}

static void unlink_node(struct memento__policy *p, struct memento__policy_node *n)
{
	assert(n->region != REGION_NONE);
	struct memento__policy_list *l = list_of(p, n->region);
	/* The hand goes on toward the newer end, as it would have. */
	if (n == p->hand)
		p->hand = n->prev;
	if (n->prev != NULL)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next != NULL)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
	l->count--;
	l->weight -= n->weight;
	n->prev = n->next = NULL;
	n->region = REGION_NONE;
}

/* ---- bounds ---------------------------------------------------------------- */

static bool bounded(const struct memento__policy *p)
{
	return p->max_entries != 0 || p->max_weight != 0;
}

static uint64_t limit(uint64_t bound)
{
	return bound != 0 ? bound : UINT64_MAX;
}

static uint64_t window_share(uint64_t bound)
{
	if (bound == 0)
		return UINT64_MAX;
	uint64_t w = bound / 100 * WINDOW_PERCENT + bound % 100 * WINDOW_PERCENT / 100;
	return w > 0 ? w : 1;
}

static bool over_bound(const struct memento__policy *p)
{
	uint64_t count = p->window.count + p->main.count + p->heavy.count;
	uint64_t weight = p->window.weight + p->main.weight + p->heavy.weight;
	return count > limit(p->max_entries) || weight > limit(p->max_weight);
}

static bool window_over(const struct memento__policy *p)
{
	return p->window.count > p->window_entries || p->window.weight > p->window_weight;
}

static bool main_fits(const struct memento__policy *p, const struct memento__policy_node *n)
{
	return p->main.count < p->main_entries && p->main.weight <= p->main_weight &&
	       n->weight <= p->main_weight - p->main.weight;
}

/* ---- the sketch and the hand --------------------------------------------------- */

/*
 * Whether n was touched since the policy last looked, clearing the bit and
 * counting the sampled hit.  Relaxed: the bit orders nothing, and a touch
 * that lands between the load and the store is lost, as the contract
 * allows (the entry simply looks unused once).
 */
static bool take_visit(struct memento__policy *p, struct memento__policy_node *n)
{
	if (!atomic_load_explicit(&n->visited, memory_order_relaxed))
		return false;
	atomic_store_explicit(&n->visited, 0, memory_order_relaxed);
	memento__policy_sketch_add(&p->sketch, n->hash);
	return true;
}

/* The set is full: the sketch, if it has none and may try now. */
static void ensure_sketch(struct memento__policy *p)
{
	if (p->sketch.table != NULL)
		return;
	if (p->sketch_failed && p->sketch_retry > 0) {
		p->sketch_retry--;
		return;
	}
	uint64_t held = p->window.count + p->main.count + p->heavy.count;
	p->sketch_failed = !memento__policy_sketch_alloc(&p->sketch, held, &p->alloc);
	if (p->sketch_failed)
		p->sketch_retry = held > RETRY_MIN ? held : RETRY_MIN;
}

/* Main's victim: the first unvisited entry from the hand on, or the entry
 * the hand stands on after SWEEP_MAX cleared bits; NULL when main is empty. */
static struct memento__policy_node *main_victim(struct memento__policy *p)
{
	struct memento__policy_node *n = p->hand != NULL ? p->hand : p->main.tail;
	for (unsigned swept = 0; n != NULL && swept < SWEEP_MAX && take_visit(p, n); swept++)
		n = n->prev != NULL ? n->prev : p->main.tail;
	p->hand = n;
	return n;
}

/* xorshift64: admission's coin needs no quality, only no pattern an
 * adversary can see. */
static uint64_t coin(struct memento__policy *p)
{
	uint64_t x = p->random;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	p->random = x;
	return x;
}

/* TinyLFU: whether the candidate takes the victim's place.  Ties keep the
 * victim: an entry seen as often as the one it would replace brings
 * nothing but the cost of the change.  Without a sketch every candidate
 * wins, and main is a plain SIEVE. */
static bool admit(struct memento__policy *p, const struct memento__policy_node *candidate,
                  const struct memento__policy_node *victim, bool warm)
{
	if (p->sketch.table == NULL)
		return true;
	unsigned c = memento__policy_sketch_estimate(&p->sketch, candidate->hash);
	unsigned v = memento__policy_sketch_estimate(&p->sketch, victim->hash);
	if (c > v + (warm ? WARM_MARGIN : COLD_MARGIN))
		return true;
	return c >= FREQUENT && (coin(p) & FREQUENT_ODDS_MASK) == 0;
}

/* The window's oldest entry against main's victim: the loser leaves. */
static struct memento__policy_node *compete(struct memento__policy *p,
                                            struct memento__policy_node *candidate)
{
	/* A hit in the window counts once, as main's hand would count it. */
	bool warm = take_visit(p, candidate);
	struct memento__policy_node *victim = main_victim(p);
	unlink_node(p, candidate);
	if (victim == NULL || !admit(p, candidate, victim, warm))
		return candidate;
	unlink_node(p, victim);
	link_head(p, candidate, REGION_MAIN);
	return victim;
}

/* ---- the contract -------------------------------------------------------------- */

static void *default_alloc(size_t size, void *state)
{
	(void)state;
	return malloc(size);
}

static void default_free(void *ptr, size_t size, void *state)
{
	(void)size;
	(void)state;
	free(ptr);
}

void memento__policy_init(struct memento__policy *p, uint64_t max_entries, uint64_t max_weight,
                          const struct memento__policy_alloc *alloc)
{
	*p = (struct memento__policy){
		.max_entries = max_entries,
		.max_weight = max_weight,
		.window_entries = window_share(max_entries),
		.window_weight = window_share(max_weight),
		.main_entries = max_entries != 0 ? max_entries - window_share(max_entries) : UINT64_MAX,
		.main_weight = max_weight != 0 ? max_weight - window_share(max_weight) : UINT64_MAX,
		.random = UINT64_C(0x9E3779B97F4A7C15), /* fixed: replays repeat */
	};
	if (alloc != NULL && alloc->alloc != NULL)
		p->alloc = *alloc;
	else
		p->alloc = (struct memento__policy_alloc){ default_alloc, default_free, NULL };
}

void memento__policy_destroy(struct memento__policy *p)
{
	memento__policy_sketch_free(&p->sketch, &p->alloc);
}

void memento__policy_insert(struct memento__policy *p, struct memento__policy_node *n)
{
	/* Relaxed, as every access to the bit: it orders nothing, and a stale
	 * touch that races with this marks the newcomer once, harmlessly. */
	atomic_store_explicit(&n->visited, 0, memory_order_relaxed);
	if (!bounded(p)) {
		link_head(p, n, REGION_MAIN);
		return;
	}
	memento__policy_sketch_add(&p->sketch, n->hash);
	link_head(p, n, p->max_weight != 0 && n->weight > p->max_weight ? REGION_HEAVY
	                                                                 : REGION_WINDOW);
}

void memento__policy_remove(struct memento__policy *p, struct memento__policy_node *n)
{
	unlink_node(p, n);
}

void memento__policy_replace(struct memento__policy *p, struct memento__policy_node *old,
                             struct memento__policy_node *fresh)
{
	assert(old->region != REGION_NONE);
	uint8_t region = old->region;
	if (p->max_weight != 0 && fresh->weight > p->max_weight)
		region = REGION_HEAVY;
	else if (region == REGION_HEAVY)
		region = REGION_WINDOW;
	/* Relaxed: a touch of old that races with this is lost, as any touch
	 * that races with the policy may be. */
	atomic_store_explicit(&fresh->visited,
	                      atomic_load_explicit(&old->visited, memory_order_relaxed),
	                      memory_order_relaxed);
	if (region != old->region) {
		unlink_node(p, old);
		link_head(p, fresh, region);
		return;
	}
	struct memento__policy_list *l = list_of(p, region);
	fresh->prev = old->prev;
	fresh->next = old->next;
	fresh->region = region;
	if (fresh->prev != NULL)
		fresh->prev->next = fresh;
	else
		l->head = fresh;
	if (fresh->next != NULL)
		fresh->next->prev = fresh;
	else
		l->tail = fresh;
	l->weight = l->weight - old->weight + fresh->weight;
	if (p->hand == old)
		p->hand = fresh;
	old->prev = old->next = NULL;
	old->region = REGION_NONE;
}

struct memento__policy_node *memento__policy_evict(struct memento__policy *p)
{
	if (p->heavy.tail != NULL) {
		struct memento__policy_node *n = p->heavy.tail;
		unlink_node(p, n);
		return n;
	}
	if (!bounded(p))
		return NULL;
	/* Moving entries from the window to main changes no total. */
	bool over = over_bound(p);
	if (over)
		ensure_sketch(p);
	for (;;) {
		struct memento__policy_node *candidate = p->window.tail;
		if (candidate != NULL && (window_over(p) || p->main.count == 0)) {
			/* Filling main as the window overflows, full or not, keeps
			 * each call's work to the entries that just arrived. */
			if (main_fits(p, candidate)) {
				unlink_node(p, candidate);
				link_head(p, candidate, REGION_MAIN);
				continue;
			}
			if (!over)
				return NULL;
			return compete(p, candidate);
		}
		if (!over)
			return NULL;
		/* The window is within its share, so main is over its own. */
		struct memento__policy_node *victim = main_victim(p);
		assert(victim != NULL);
		unlink_node(p, victim);
		return victim;
	}
}

struct memento__policy_node *memento__policy_oldest(const struct memento__policy *p)
{
	return bounded(p) ? NULL : p->main.tail;
}
