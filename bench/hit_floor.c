/*
 * hit_floor: the cost of a memento_get hit next to the floor it stands on.
 *
 * The floor is what any hit must do at least, done here without the
 * library: build the same key bytes through a key callback, hash them with
 * XXH3_64bits_withSeed, and ck_hs_get them (OBJECT|SPMC mode, the stored
 * object carries its hash) inside ck_epoch_begin/end on a registered record.
 * It has no once-state, no per-thread records, no stats, no shards.
 *
 * Both sides run over the same keys in the same pre-shuffled order, one
 * thread, rounds alternating which side goes first so that drift and noise
 * fall on both.  Each shape and key count gets its own cache and table.
 *
 * Output, CSV on stdout (progress on stderr):
 *   shape,keys,impl,median_ns_per_op,min_ns_per_op,rounds
 * impl is mementos, floor or ratio; a ratio row holds mementos/floor of the
 * medians and of the minimums, in the two ns columns.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, strnlen */

#include "ck_plain_malloc.h"

#include <mementos.h>

#include "bench_cli.h"

#include <ck_epoch.h>
#include <ck_hs.h>
#include <xxhash.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Fixed so that two runs hash the same keys into the same buckets. */
#define BENCH_SEED UINT64_C(0x6d656d656e746f73)

/* What both key callbacks read: a number and, for string shapes, a string. */
struct bench_args {
	uint64_t id;
	const char *str;
};

/* ---- the floor's key encoding ------------------------------------------------ */

/*
 * The same bytes as memento_key_u64/memento_key_str (8-byte little-endian
 * words: a tag word, then the value, or a tag word with the length in its
 * high half and the bytes zero-padded to whole words), with the same checks
 * (sticky error, bound on the total, bounded strlen), so that the floor does
 * the library's encoding work and no less.
 */
struct floor_key {
	unsigned char *bytes; /* MEMENTO_KEY_MAX bytes of room */
	uint32_t len;
	int err;
};

static unsigned char *floor_key_room(struct floor_key *key, size_t n)
{
	if (key->err != 0)
		return NULL;
	if (n > (size_t)MEMENTO_KEY_MAX - key->len) {
		key->err = -E2BIG;
		return NULL;
	}
	unsigned char *at = key->bytes + key->len;
	key->len += (uint32_t)n;
	return at;
}

/* As the library stores them: whole 8-byte words. */
static void store_word(unsigned char *at, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	memcpy(at, &v, sizeof v);
}

static int floor_key_u64(struct floor_key *key, uint64_t v)
{
	unsigned char *at = floor_key_room(key, 16);
	if (at == NULL)
		return key->err;
	store_word(at, 'u');
	store_word(at + 8, v);
	return 0;
}

static int floor_key_str(struct floor_key *key, const char *s)
{
	if (s == NULL) {
		if (key->err == 0)
			key->err = -EINVAL;
		return -EINVAL;
	}
	size_t n = strnlen(s, (size_t)MEMENTO_KEY_MAX + 1);
	if (n > MEMENTO_KEY_MAX) {
		if (key->err == 0)
			key->err = -E2BIG;
		return key->err;
	}
	size_t words = (n + 7) & ~(size_t)7;
	unsigned char *at = floor_key_room(key, 8 + words);
	if (at == NULL)
		return key->err;
	store_word(at, 's' | (uint64_t)n << 32);
	if (n != 0) {
		store_word(at + words, 0);
		memcpy(at + 8, s, n);
	}
	return 0;
}

typedef int (*floor_key_fn)(struct floor_key *key, const void *args, void *ctx);

/* ---- key shapes: one callback for each side ------------------------------------ */

static int mkey_u64(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_u64(key, ((const struct bench_args *)args)->id);
}

static int fkey_u64(struct floor_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return floor_key_u64(key, ((const struct bench_args *)args)->id);
}

static int mkey_u64_str(memento_key *key, const void *args, void *ctx)
{
	const struct bench_args *a = args;
	(void)ctx;
	int rc = memento_key_u64(key, a->id);
	return rc != 0 ? rc : memento_key_str(key, a->str);
}

static int fkey_u64_str(struct floor_key *key, const void *args, void *ctx)
{
	const struct bench_args *a = args;
	(void)ctx;
	int rc = floor_key_u64(key, a->id);
	return rc != 0 ? rc : floor_key_str(key, a->str);
}

static int mkey_str(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_str(key, ((const struct bench_args *)args)->str);
}

static int fkey_str(struct floor_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return floor_key_str(key, ((const struct bench_args *)args)->str);
}

struct shape {
	const char *name;
	size_t str_len; /* 0: no string field */
	memento_key_fn mkey;
	floor_key_fn fkey;
};

static const struct shape shapes[] = {
	{ "u64", 0, mkey_u64, fkey_u64 },             /* 9 key bytes */
	{ "u64+str24", 24, mkey_u64_str, fkey_u64_str }, /* 38 key bytes */
	{ "str100", 100, mkey_str, fkey_str },         /* 105 key bytes */
};

/* ---- the floor table --------------------------------------------------------------- */

/* Probe and stored object share this head: ck_hs compares one with the other. */
struct floor_ref {
	uint64_t hash;
	const unsigned char *bytes;
	uint32_t len;
};

struct floor_entry {
	struct floor_ref ref; /* first: ck_hs hands the entry to floor_compare */
	void *obj;
	unsigned char key[];
};

struct floor {
	ck_hs_t hs;
	ck_epoch_t epoch;
	ck_epoch_record_t *reader;
	floor_key_fn key;
	uint64_t seed;
	struct floor_entry **entries; /* to free them */
	size_t nentries;
	unsigned char scratch[MEMENTO_KEY_MAX];
};

static unsigned long floor_hash(const void *object, unsigned long seed)
{
	(void)seed; /* hashed with its seed when the key was built */
	return (unsigned long)((const struct floor_ref *)object)->hash;
}

static bool floor_compare(const void *stored, const void *probe)
{
	const struct floor_ref *a = stored, *b = probe;
	return a->hash == b->hash && a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

static int floor_init(struct floor *f, floor_key_fn key, size_t capacity, uint64_t seed)
{
	memset(f, 0, sizeof *f);
	f->key = key;
	f->seed = seed;
	f->entries = calloc(capacity != 0 ? capacity : 1, sizeof *f->entries);
	/* Room for twice the keys, as mementos sizes its shards: the same load. */
	if (f->entries == NULL ||
	    !ck_hs_init(&f->hs, CK_HS_MODE_OBJECT | CK_HS_MODE_SPMC, floor_hash, floor_compare,
	                &ck_plain_allocator, (unsigned long)(2 * capacity + 2), (unsigned long)seed)) {
		free(f->entries);
		return -ENOMEM;
	}
	ck_epoch_init(&f->epoch);
	/* ck reads the record's alignment: a cache line. */
	f->reader = aligned_alloc(CK_MD_CACHELINE, sizeof *f->reader);
	if (f->reader == NULL) {
		ck_hs_destroy(&f->hs);
		free(f->entries);
		return -ENOMEM;
	}
	ck_epoch_register(&f->epoch, f->reader, NULL);
	return 0;
}

static void floor_destroy(struct floor *f)
{
	ck_hs_destroy(&f->hs);
	for (size_t i = 0; i < f->nentries; i++)
		free(f->entries[i]);
	free(f->entries);
	/* ck_epoch records cannot be unlinked from their epoch; both die here. */
	free(f->reader);
}

static int floor_build_key(struct floor *f, const void *args, struct floor_ref *probe)
{
	struct floor_key key = { .bytes = f->scratch, .len = 0, .err = 0 };
	int rc = f->key(&key, args, NULL);
	if (rc == 0)
		rc = key.err;
	if (rc != 0)
		return rc;
	probe->hash = XXH3_64bits_withSeed(key.bytes, key.len, f->seed);
	probe->bytes = key.bytes;
	probe->len = key.len;
	return 0;
}

/* Not a hit path: fills the table before timing. */
static int floor_insert(struct floor *f, const void *args, void *obj)
{
	struct floor_ref probe;
	int rc = floor_build_key(f, args, &probe);
	if (rc != 0)
		return rc;
	struct floor_entry *e = malloc(sizeof *e + probe.len);
	if (e == NULL)
		return -ENOMEM;
	memcpy(e->key, probe.bytes, probe.len);
	e->ref = (struct floor_ref){ .hash = probe.hash, .bytes = e->key, .len = probe.len };
	e->obj = obj;
	if (!ck_hs_put(&f->hs, e->ref.hash, e)) {
		free(e);
		return -EEXIST;
	}
	f->entries[f->nentries++] = e;
	return 0;
}

/*
 * The floor of a hit.  noinline: memento_get is a call into a shared
 * library, so the floor must not win by being inlined into the timing loop.
 */
__attribute__((noinline)) static int floor_get(struct floor *f, const void *args, void **obj)
{
	struct floor_ref probe;
	int rc = floor_build_key(f, args, &probe);
	if (rc != 0)
		return rc;
	ck_epoch_begin(f->reader, NULL);
	const struct floor_entry *e = ck_hs_get(&f->hs, probe.hash, &probe);
	void *found = e != NULL ? e->obj : NULL;
	ck_epoch_end(f->reader, NULL);
	if (e == NULL)
		return -ENOENT;
	*obj = found;
	return 0;
}

/* ---- the keys ------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

struct keyset {
	size_t n;
	struct bench_args *args;
	char *strings;   /* n strings of str_len chars, each NUL-terminated */
	uint32_t *order; /* a permutation of [0, n): the access order of both sides */
};

/*
 * Ids are scattered 64-bit numbers; strings are pseudo-random letters ending
 * in the key's index, so they are unique and share no long prefix.
 */
static int keyset_make(struct keyset *ks, size_t n, size_t str_len)
{
	uint64_t rng = UINT64_C(42);
	memset(ks, 0, sizeof *ks);
	ks->n = n;
	ks->args = calloc(n, sizeof *ks->args);
	ks->order = calloc(n, sizeof *ks->order);
	if (str_len != 0)
		ks->strings = malloc(n * (str_len + 1));
	if (ks->args == NULL || ks->order == NULL || (str_len != 0 && ks->strings == NULL))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		ks->args[i].id = splitmix64(&rng);
		ks->order[i] = (uint32_t)i;
		if (str_len == 0)
			continue;
		char *s = ks->strings + i * (str_len + 1);
		char tail[24];
		int tail_len = snprintf(tail, sizeof tail, "-%zu", i);
		size_t head = str_len - (size_t)tail_len;
		for (size_t j = 0; j < head; j++)
			s[j] = (char)('a' + splitmix64(&rng) % 26);
		memcpy(s + head, tail, (size_t)tail_len + 1);
		ks->args[i].str = s;
	}
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)(splitmix64(&rng) % (i + 1));
		uint32_t t = ks->order[i];
		ks->order[i] = ks->order[j];
		ks->order[j] = t;
	}
	return 0;
}

static void keyset_free(struct keyset *ks)
{
	free(ks->args);
	free(ks->strings);
	free(ks->order);
}

/* ---- timing ---------------------------------------------------------------------------- */

/* The returned objects end here, so no lookup is dead code. */
static volatile uintptr_t sink;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "hit_floor: %s: %s\n", what, memento_strerror(err));
	exit(1);
}

/*
 * A round is `ops` gets along the shuffled order, cyclically, from `start`:
 * a small key set is walked several times, a large one only in part (both
 * sides walk the same part).  Walked in runs so that no division is timed.
 */
struct walk {
	size_t start, ops;
};

static double time_mementos(memento_class *cls, const struct keyset *ks, struct walk w)
{
	uintptr_t acc = 0;
	uint64_t t0 = now_ns();
	for (size_t done = 0, pos = w.start % ks->n; done < w.ops; pos = 0) {
		size_t end = ks->n - pos < w.ops - done ? ks->n : pos + (w.ops - done);
		done += end - pos;
		for (; pos < end; pos++) {
			void *obj;
			int rc = memento_get(cls, &ks->args[ks->order[pos]], &obj);
			if (rc != 0)
				die("memento_get", rc);
			acc += (uintptr_t)obj;
		}
	}
	uint64_t t1 = now_ns();
	sink += acc;
	return (double)(t1 - t0) / (double)w.ops;
}

/* The twin of time_mementos, kept apart on purpose: one loop through a
 * function pointer would put an indirect call into every timed get. */
static double time_floor(struct floor *f, const struct keyset *ks, struct walk w)
{
	uintptr_t acc = 0;
	uint64_t t0 = now_ns();
	for (size_t done = 0, pos = w.start % ks->n; done < w.ops; pos = 0) {
		size_t end = ks->n - pos < w.ops - done ? ks->n : pos + (w.ops - done);
		done += end - pos;
		for (; pos < end; pos++) {
			void *obj;
			int rc = floor_get(f, &ks->args[ks->order[pos]], &obj);
			if (rc != 0)
				die("floor_get", rc);
			acc += (uintptr_t)obj;
		}
	}
	uint64_t t1 = now_ns();
	sink += acc;
	return (double)(t1 - t0) / (double)w.ops;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median_of(const double *v, int n)
{
	double s[n];
	memcpy(s, v, (size_t)n * sizeof *s);
	qsort(s, (size_t)n, sizeof *s, cmp_double);
	return n % 2 != 0 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static double min_of(const double *v, int n)
{
	double m = v[0];
	for (int i = 1; i < n; i++)
		m = v[i] < m ? v[i] : m;
	return m;
}

/* ---- one shape at one key count ---------------------------------------------------- */

/* The object is the args record itself: stable, and distinct per key. */
static int bench_create(void **obj, const void *args, void *ctx)
{
	(void)ctx;
	*obj = (void *)(uintptr_t)args;
	return 0;
}

struct config {
	int rounds;
	size_t ops_per_round; /* gets per side per round */
	size_t key_counts[4];
	int nkey_counts;
};

static void run_case(const struct shape *sh, size_t nkeys, const struct config *cfg)
{
	struct keyset ks;
	fprintf(stderr, "%s keys=%zu: filling\n", sh->name, nkeys);
	if (keyset_make(&ks, nkeys, sh->str_len) != 0)
		die("keys", -ENOMEM);

	memento_cache_options opt = MEMENTO_CACHE_OPTIONS_INIT;
	opt.initial_capacity = nkeys;
	opt.seed = BENCH_SEED;
	memento_cache *cache;
	memento_class *cls;
	int rc = memento_cache_new_with(&cache, &opt);
	if (rc != 0)
		die("memento_cache_new_with", rc);
	memento_class_desc desc = { .name = "bench", .key = sh->mkey, .create = bench_create };
	rc = memento_class_new(cache, &desc, &cls);
	if (rc != 0)
		die("memento_class_new", rc);

	struct floor *f = malloc(sizeof *f);
	if (f == NULL || floor_init(f, sh->fkey, nkeys, BENCH_SEED) != 0)
		die("floor", -ENOMEM);

	/*
	 * Each side is filled in key order on its own, so that each one's
	 * entries lie together in the heap as they would in a program that
	 * uses only one; then both must agree on every object.
	 */
	for (size_t i = 0; i < nkeys; i++) {
		void *obj;
		rc = memento_get(cls, &ks.args[i], &obj);
		if (rc != 0)
			die("memento_get (fill)", rc);
	}
	for (size_t i = 0; i < nkeys; i++) {
		rc = floor_insert(f, &ks.args[i], &ks.args[i]);
		if (rc != 0)
			die("floor_insert", rc);
	}
	for (size_t i = 0; i < nkeys; i++) {
		void *a = NULL, *b = NULL;
		if (memento_get(cls, &ks.args[i], &a) != 0 || floor_get(f, &ks.args[i], &b) != 0 ||
		    a != b || a != &ks.args[i])
			die("fill: the two sides disagree", -EINVAL);
	}

	/* One untimed pass each: page faults and first touches are not hits. */
	struct walk all = { .start = 0, .ops = nkeys };
	(void)time_mementos(cls, &ks, all);
	(void)time_floor(f, &ks, all);

	fprintf(stderr, "%s keys=%zu: %d rounds of %zu gets per side\n", sh->name, nkeys,
	        cfg->rounds, cfg->ops_per_round);
	double mem[cfg->rounds], flo[cfg->rounds];
	for (int r = 0; r < cfg->rounds; r++) {
		/* Large sets: each round moves on to the next part of the order. */
		struct walk w = { .start = (size_t)r * cfg->ops_per_round, .ops = cfg->ops_per_round };
		if (r % 2 == 0) {
			mem[r] = time_mementos(cls, &ks, w);
			flo[r] = time_floor(f, &ks, w);
		} else {
			flo[r] = time_floor(f, &ks, w);
			mem[r] = time_mementos(cls, &ks, w);
		}
	}

	double mmed = median_of(mem, cfg->rounds), fmed = median_of(flo, cfg->rounds);
	double mmin = min_of(mem, cfg->rounds), fmin = min_of(flo, cfg->rounds);
	printf("%s,%zu,mementos,%.2f,%.2f,%d\n", sh->name, nkeys, mmed, mmin, cfg->rounds);
	printf("%s,%zu,floor,%.2f,%.2f,%d\n", sh->name, nkeys, fmed, fmin, cfg->rounds);
	printf("%s,%zu,ratio,%.3f,%.3f,%d\n", sh->name, nkeys, mmed / fmed, mmin / fmin, cfg->rounds);
	fflush(stdout);

	memento_cache_free(cache);
	floor_destroy(f);
	free(f);
	keyset_free(&ks);
}

/* ---- main -------------------------------------------------------------------------------- */

static void usage(FILE *out)
{
	fputs("usage: mementos-hit-floor [--quick] [--rounds N] [--keys N] [--shape NAME]\n"
	      "  --quick     3 rounds, 1000 and 100000 keys: a few seconds\n"
	      "  --rounds N  timed rounds per side (default 11)\n"
	      "  --keys N    one key count instead of 1000 and 1000000\n"
	      "  --shape S   one shape: u64, u64+str24 or str100 (default: all)\n"
	      "CSV on stdout: shape,keys,impl,median_ns_per_op,min_ns_per_op,rounds\n"
	      "(impl ratio: mementos/floor of the medians and of the minimums)\n",
	      out);
}


int main(int argc, char **argv)
{
	struct config cfg = {
		.rounds = 11,
		.ops_per_round = 500000,
		.key_counts = { 1000, 1000000 },
		.nkey_counts = 2,
	};
	long keys = 0, rounds = 0;
	const char *only = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			cfg.rounds = 3;
			cfg.ops_per_round = 200000;
			cfg.key_counts[1] = 100000;
		} else if (strcmp(argv[i], "--rounds") == 0) {
			rounds = bench_parse_long(argv[++i], 1, 1001, usage);
		} else if (strcmp(argv[i], "--keys") == 0) {
			keys = bench_parse_long(argv[++i], 1, 100000000, usage);
		} else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc) {
			only = argv[++i];
		} else if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (rounds != 0)
		cfg.rounds = (int)rounds;
	if (keys != 0) {
		cfg.key_counts[0] = (size_t)keys;
		cfg.nkey_counts = 1;
	}

	size_t nshapes = sizeof shapes / sizeof shapes[0], matched = 0;
	for (size_t s = 0; s < nshapes; s++)
		matched += only == NULL || strcmp(only, shapes[s].name) == 0;
	if (matched == 0) {
		usage(stderr);
		return 2;
	}

	printf("shape,keys,impl,median_ns_per_op,min_ns_per_op,rounds\n");
	fflush(stdout);
	for (size_t s = 0; s < nshapes; s++) {
		if (only != NULL && strcmp(only, shapes[s].name) != 0)
			continue;
		for (int k = 0; k < cfg.nkey_counts; k++)
			run_case(&shapes[s], cfg.key_counts[k], &cfg);
	}
	return 0;
}
