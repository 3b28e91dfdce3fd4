/*
 * libFuzzer harness: runs each input as a program of operations against one
 * cache (the language is described in fuzz_ops.h) and checks every result
 * against a model of what the cache must hold.  A broken promise aborts.
 *
 * Single-threaded on purpose, so that the model is exact (the stress suites
 * cover threads).  Callbacks run nested programs: a key callback or a create
 * may get other keys, forget its own, walk the cache or register a class,
 * as the header allows.  Each callback updates the model while it runs, so
 * nesting needs no special case.
 *
 * Checked:
 *  - every return value: 0, or exactly the error the model predicts (a
 *    callback's own error passed through, or one of the documented codes);
 *  - a successful get returns the object of its own class and key, the one
 *    the model holds for that key if any; a key got and not forgotten gives
 *    the same object again (a final sweep gets every key once more);
 *  - create runs only for a key the cache does not hold; a failed create
 *    caches nothing; a creation detached by forget is never seen again;
 *  - memento_count, memento_foreach (every stable object once) and the
 *    class counters agree with the model;
 *  - destroy runs exactly once per created object, inside memento_cache_free,
 *    newest first; LeakSanitizer checks that the cache frees the rest;
 *  - with the harness's allocator (OPTF_ALLOCATOR): every block is freed with
 *    its own size, the freed cache holds none, and each -ENOMEM that an
 *    allocation it refused caused changed nothing.
 *
 * Lifetimes (memento_class_new_with, guards, references, barriers):
 *  - class options: the model decides validity from the header's rules
 *    alone (size, lifetime, bounds/expiry/refresh only when GUARDED, weight
 *    bound iff weigh, refresh below expiry) and expects -EINVAL for the
 *    rest; the cache goes on as before;
 *  - a guarded class's get, get_until and peek outside a guard give -EPERM
 *    without running the key callback; guards nest, a leave without an
 *    enter is ignored; memento_get_ref works anywhere;
 *  - a guarded class's object is destroyed only outside every guard of
 *    this (the only) thread, only from the calls that the header lists,
 *    never while a memento_ref holds it or its class still holds it (for a
 *    bounded class: a destroy of an object the model thought linked is
 *    how the model learns of an eviction), never under a library lock (the
 *    destroy callback forgets a key: a relock would hang), exactly once;
 *    a CACHE class's objects only in memento_cache_free;
 *  - every object a call returns (get, peek, visit, memento_ref_object) is
 *    alive and its key's;
 *  - bounded classes: the model cannot know which entry is evicted, so a
 *    ready key of such a class may hit or create, a peek or forget may
 *    find it gone; but after every operation the class holds at most its
 *    bound (per shard share times shards: exact with one shard), counted
 *    from its statistics (creations published - forgotten - evictions),
 *    and, in every complete walk, counted and weighed from what it visits;
 *  - remembered failures (failure_ttl_ns of an hour or more): the next gets
 *    return the error without running create, a peek gives -ENOENT, the
 *    entry counts in memento_count, until a forget;
 *  - memento_cache_barrier outside a guard: every object that was removed
 *    and is not referenced is destroyed by then, and for a guarded class
 *    creations = visited + destroyed + failures + in flight + removed
 *    objects still referenced;
 *  - statistics: evictions only in bounded classes, at least the ones the
 *    model learned; destroyed = the destroys seen before the free; no
 *    expirations or refreshes (durations never run out within a run).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "fuzz_ops.h"

#include <mementos.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
	MAX_DEPTH = 4,      /* nested programs inside callbacks */
	MAX_OPS = 1500,     /* per input, nested ones included */
	MAX_CLASSES = 40,   /* past 8 a class's counters live in segments */
	HISTORY = 16,       /* recent args that OP_AGAIN can repeat */
	NBUCKETS = 1024,
	BIG = 12000,        /* longest generated string */
	MAX_REFS = 32,      /* references held at once (more are released at once) */
};

/* What library call is running, innermost first: destroy may run only in
 * some of them. */
enum api {
	API_NONE,
	API_GET,
	API_PEEK,
	API_FORGET,
	API_GET_REF,
	API_FOREACH,
	API_GUARD_ENTER,
	API_GUARD_LEAVE,
	API_REF_RELEASE,
	API_BARRIER,
	API_CLASS_NEW,
	API_OTHER,
};

static const char *const api_names[] = {
	"none", "get", "peek", "forget", "get_ref", "foreach", "guard_enter", "guard_leave",
	"ref_release", "barrier", "class_new", "other",
};

#define CHECK(cond, ...) ((cond) ? (void)0 : fail(__LINE__, #cond, __VA_ARGS__))

__attribute__((noreturn, format(printf, 3, 4))) static void fail(int line, const char *cond,
                                                               const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "fuzz_ops.c:%d: invariant broken: %s: ", line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* FUZZ_OPS_TRACE=1 in the environment: one line per call, to read a crash by. */
static int trace_on = -1;

__attribute__((format(printf, 2, 3))) static void trace(int depth, const char *fmt, ...)
{
	if (trace_on < 0)
		trace_on = getenv("FUZZ_OPS_TRACE") != NULL;
	if (!trace_on)
		return;
	va_list ap;
	fprintf(stderr, "%*s", 2 * depth, "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- reading the input ---------------------------------------------------------- */

struct reader {
	const uint8_t *p;
	size_t n, off;
};

static uint8_t rd_u8(struct reader *rd)
{
	return rd->off < rd->n ? rd->p[rd->off++] : 0;
}

static uint64_t rd_u64(struct reader *rd)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)rd_u8(rd) << (8 * i);
	return v;
}

/* len bytes of the input (fewer at its end), as a reader of their own. */
static struct reader rd_slice(struct reader *rd, size_t len)
{
	size_t left = rd->n - rd->off;
	struct reader sub = { rd->p + rd->off, len < left ? len : left, 0 };
	rd->off += sub.n;
	return sub;
}

/* ---- the run's memory ------------------------------------------------------------- */

/* Everything a run allocates for itself, freed after memento_cache_free. */
struct block {
	struct block *next;
	max_align_t data[];
};

static struct block *arena;

static void *arena_alloc(size_t size)
{
	struct block *b = malloc(sizeof *b + size);
	CHECK(b != NULL, "out of memory");
	b->next = arena;
	arena = b;
	return memset(b->data, 0, size);
}

static void arena_free(void)
{
	while (arena != NULL) {
		struct block *next = arena->next;
		free(arena);
		arena = next;
	}
}

/* ---- an allocator that keeps books and fails on demand -------------------------- */

/*
 * A cache with OPTF_ALLOCATOR gets its memory here.  It checks the hook's
 * contract (alignment, free with the size of the alloc), knows how much the
 * cache holds, and refuses allocations when the input says so: every -ENOMEM
 * path then runs, and the model checks that each changed nothing.
 */
struct alloc_rec {
	struct alloc_rec *next;
	void *p;
	size_t size;
};

static struct tracker {
	struct alloc_rec *buckets[1024];
	size_t live, bytes;
	uint64_t refused;
	int countdown; /* refuse the allocation after this many more; -1: none */
	bool sticky;   /* and every one after it */
	bool refusing;
} T;

static void tracker_arm(int countdown, bool sticky)
{
	T.countdown = countdown;
	T.sticky = sticky;
	T.refusing = false;
}

static bool tracker_refuses(void)
{
	if (T.refusing)
		return true;
	if (T.countdown < 0 || T.countdown-- > 0)
		return false;
	T.refusing = T.sticky;
	return true;
}

static struct alloc_rec **tracker_slot(void *p)
{
	struct alloc_rec **at = &T.buckets[((uintptr_t)p >> 4) % 1024];
	while (*at != NULL && (*at)->p != p)
		at = &(*at)->next;
	return at;
}

static void *fz_alloc(size_t size, size_t align, void *state)
{
	CHECK(state == &T, "allocator state %p", state);
	CHECK(align != 0 && (align & (align - 1)) == 0 && align <= 64, "alignment %zu", align);
	if (tracker_refuses()) {
		T.refused++;
		return NULL;
	}
	void *p = align <= alignof(max_align_t)
	                  ? malloc(size != 0 ? size : 1)
	                  : aligned_alloc(align, size != 0 ? (size + align - 1) & ~(align - 1) : align);
	struct alloc_rec *r = malloc(sizeof *r);
	CHECK(p != NULL && r != NULL, "out of memory");
	*r = (struct alloc_rec){ .p = p, .size = size };
	struct alloc_rec **at = tracker_slot(p);
	CHECK(*at == NULL, "allocator returned %p twice", p);
	*at = r;
	T.live++;
	T.bytes += size;
	return p;
}

static void fz_free(void *p, size_t size, void *state)
{
	CHECK(state == &T, "allocator state %p", state);
	struct alloc_rec **at = tracker_slot(p);
	CHECK(*at != NULL, "free of %p, which alloc did not return (or freed twice)", p);
	struct alloc_rec *r = *at;
	CHECK(r->size == size, "free of %p with size %zu; alloc gave it %zu", p, size, r->size);
	*at = r->next;
	T.live--;
	T.bytes -= size;
	free(r);
	free(p);
}

/* Generated fields point into these; sizes past BIG must never be read. */
static char big_str[BIG + 1];
static unsigned char big_bytes[8192];

static void big_init(void)
{
	if (big_str[0] != '\0')
		return;
	memset(big_str, 'x', BIG);
	for (size_t i = 0; i < sizeof big_bytes; i++)
		big_bytes[i] = (unsigned char)(i * 131u + 7u);
}

/* A NUL-terminated string of len 'x'. */
static const char *long_str(size_t len)
{
	return big_str + (BIG - len);
}

/* ---- args: what a get hands its callbacks ---------------------------------------- */

struct field {
	uint8_t kind;
	uint64_t v;    /* integer, double bits, pointer value, or the NULL-key call */
	const void *p; /* str/bytes */
	size_t n;      /* bytes */
};

struct recipe {
	struct field fields[MAX_FIELDS];
	unsigned nfields;
	uint8_t keyret, create;
	unsigned nest_at;
	struct reader key_block, create_block;
};

/* Objects' weights (create's argument % 8), for classes with weigh. */
static const uint64_t weights[8] = { 0, 1, 1, 2, 3, 5, 8, 40 };

static const int error_table[16] = {
	-EIO,         -EAGAIN,      -ENOENT, -EEXIST, -EINVAL, -ENOMEM, -E2BIG, -EDEADLK,
	-ETIMEDOUT,   -EOWNERDEAD,  -EINPROGRESS, -1, -4095, -100000, INT_MIN, -ECANCELED,
};

/* Around the limit: a sized field takes 8 bytes and its bytes in whole
 * words, so 4081 to 4088 bytes fill MEMENTO_KEY_MAX exactly, 4089 passes it,
 * and 4080 leaves room for one empty field. */
static const size_t long_str_lens[] = { 0, 1, 63, 255, 4081, 4088, 4089, 4095, 4096, 4097,
	                                5000, BIG };
static const size_t long_byte_lens[] = { 0, 1, 255, 4080, 4088, 4089, 4096, 4097, 8192,
	                                 SIZE_MAX / 2, SIZE_MAX };

static double f64_special(uint8_t i)
{
	static const uint64_t nan_payload = 0x7ff0000000000123ull, neg_nan = 0xfff8000000000000ull;
	double d;
	switch (i % 12) {
	case 0: return 0.0;
	case 1: return -0.0;
	case 2: return NAN;
	case 3: memcpy(&d, &neg_nan, sizeof d); return d;
	case 4: memcpy(&d, &nan_payload, sizeof d); return d;
	case 5: return INFINITY;
	case 6: return -INFINITY;
	case 7: return 1.0;
	case 8: return -1.0;
	case 9: return 5e-324; /* the smallest subnormal */
	case 10: return 1.0 / 3.0;
	default: return 1e308;
	}
}

/* A string of the input: up to len bytes, NUL-terminated, in the arena. */
static char *read_string(struct reader *rd, size_t len)
{
	struct reader s = rd_slice(rd, len);
	char *copy = arena_alloc(s.n + 1);
	memcpy(copy, s.p, s.n);
	return copy;
}

static void read_field(struct reader *rd, struct field *f)
{
	f->kind = rd_u8(rd) % FIELD_COUNT;
	switch (f->kind) {
	case FIELD_U64_SMALL:
	case FIELD_PTR_SMALL:
	case FIELD_BYTES_NULL:
	case FIELD_NULL_KEY:
		f->v = rd_u8(rd);
		break;
	case FIELD_I64_SMALL:
		f->v = (uint64_t)(int64_t)(int8_t)rd_u8(rd);
		break;
	case FIELD_U64:
	case FIELD_I64:
	case FIELD_F64:
	case FIELD_PTR:
		f->v = rd_u64(rd);
		break;
	case FIELD_F64_SPECIAL: {
		double d = f64_special(rd_u8(rd));
		memcpy(&f->v, &d, sizeof d);
		break;
	}
	case FIELD_STR:
		f->p = read_string(rd, rd_u8(rd) % 64);
		break;
	case FIELD_STR_LONG:
		f->p = long_str(long_str_lens[rd_u8(rd) % (sizeof long_str_lens / sizeof(size_t))]);
		break;
	case FIELD_BYTES: {
		struct reader s = rd_slice(rd, rd_u8(rd) % 64);
		f->p = s.p;
		f->n = s.n;
		break;
	}
	case FIELD_BYTES_LONG:
		f->p = big_bytes;
		f->n = long_byte_lens[rd_u8(rd) % (sizeof long_byte_lens / sizeof(size_t))];
		break;
	default: /* FIELD_STR_NULL */
		break;
	}
}

/* ---- the model's keys --------------------------------------------------------------- */

/*
 * The model's own encoding of a key: what makes two keys equal is its
 * business, not the library's.  Only the sizes follow the library's
 * encoding (an 8-byte tag word, then an 8-byte value, or the bytes padded
 * to whole words), so that the model knows exactly which key passes
 * MEMENTO_KEY_MAX.
 */
enum { FIXED_SIZE = 8 + 8, SIZED_HEADER = 8 };

static size_t padded(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

struct mkey {
	unsigned char bytes[MEMENTO_KEY_MAX];
	size_t len;
	int err; /* the first failed append's error; sticks */
};

static bool mk_room(struct mkey *mk, size_t n)
{
	if (mk->err != 0)
		return false;
	if (n > MEMENTO_KEY_MAX - mk->len) {
		mk->err = -E2BIG;
		return false;
	}
	return true;
}

static int mk_fixed(struct mkey *mk, unsigned char tag, uint64_t v)
{
	if (!mk_room(mk, FIXED_SIZE))
		return mk->err;
	memset(mk->bytes + mk->len, 0, FIXED_SIZE);
	mk->bytes[mk->len] = tag;
	memcpy(mk->bytes + mk->len + 8, &v, 8);
	mk->len += FIXED_SIZE;
	return 0;
}

static int mk_sized(struct mkey *mk, unsigned char tag, const void *p, size_t n)
{
	if (n > MEMENTO_KEY_MAX) {
		if (mk->err == 0)
			mk->err = -E2BIG;
		return mk->err;
	}
	if (!mk_room(mk, SIZED_HEADER + padded(n)))
		return mk->err;
	uint32_t len32 = (uint32_t)n;
	memset(mk->bytes + mk->len, 0, SIZED_HEADER + padded(n));
	mk->bytes[mk->len] = tag;
	memcpy(mk->bytes + mk->len + 4, &len32, 4);
	if (n != 0)
		memcpy(mk->bytes + mk->len + SIZED_HEADER, p, n);
	mk->len += SIZED_HEADER + padded(n);
	return 0;
}

static int mk_invalid(struct mkey *mk)
{
	if (mk->err == 0)
		mk->err = -EINVAL;
	return -EINVAL;
}

/* The documented equalities: -0.0 is 0.0, every NaN is one value. */
static uint64_t f64_canonical(uint64_t bits)
{
	double d;
	memcpy(&d, &bits, sizeof d);
	if (isnan(d))
		return 0x7ff8000000000000ull;
	return d == 0.0 ? 0 : bits;
}

/* Appends f to the model key; returns the error the library must return. */
static int mk_append(struct mkey *mk, const struct field *f)
{
	switch (f->kind) {
	case FIELD_U64_SMALL:
	case FIELD_U64:
		return mk_fixed(mk, 'u', f->v);
	case FIELD_I64_SMALL:
	case FIELD_I64:
		return mk_fixed(mk, 'i', f->v);
	case FIELD_F64_SPECIAL:
	case FIELD_F64:
		return mk_fixed(mk, 'f', f64_canonical(f->v));
	case FIELD_PTR_SMALL:
	case FIELD_PTR:
		return mk_fixed(mk, 'p', f->v);
	case FIELD_STR:
	case FIELD_STR_LONG:
		return mk_sized(mk, 's', f->p, strlen(f->p));
	case FIELD_BYTES:
	case FIELD_BYTES_LONG:
		return mk_sized(mk, 'b', f->p, f->n);
	case FIELD_STR_NULL:
		return mk_invalid(mk);
	case FIELD_BYTES_NULL:
		return f->v == 0 ? mk_sized(mk, 'b', NULL, 0) : mk_invalid(mk);
	default: /* FIELD_NULL_KEY: the key is untouched */
		return -EINVAL;
	}
}

static bool null_arg(const struct field *f)
{
	return f->kind == FIELD_STR_NULL || f->kind == FIELD_NULL_KEY ||
	       (f->kind == FIELD_BYTES_NULL && f->v != 0);
}

static int lib_append(memento_key *key, const struct field *f)
{
	double d;
	switch (f->kind) {
	case FIELD_U64_SMALL:
	case FIELD_U64:
		return memento_key_u64(key, f->v);
	case FIELD_I64_SMALL:
	case FIELD_I64:
		return memento_key_i64(key, (int64_t)f->v);
	case FIELD_F64_SPECIAL:
	case FIELD_F64:
		memcpy(&d, &f->v, sizeof d);
		return memento_key_f64(key, d);
	case FIELD_PTR_SMALL:
	case FIELD_PTR:
		return memento_key_ptr(key, (const void *)(uintptr_t)f->v);
	case FIELD_STR:
	case FIELD_STR_LONG:
		return memento_key_str(key, f->p);
	case FIELD_BYTES:
	case FIELD_BYTES_LONG:
		return memento_key_bytes(key, f->p, f->n);
	case FIELD_STR_NULL:
		return memento_key_str(key, NULL);
	case FIELD_BYTES_NULL:
		return memento_key_bytes(key, NULL, (size_t)f->v);
	default: /* FIELD_NULL_KEY */
		switch (f->v % 6) {
		case 0: return memento_key_u64(NULL, 1);
		case 1: return memento_key_i64(NULL, -1);
		case 2: return memento_key_f64(NULL, 1.0);
		case 3: return memento_key_str(NULL, "x");
		case 4: return memento_key_bytes(NULL, "x", 1);
		default: return memento_key_ptr(NULL, &d);
		}
	}
}

/* ---- the model's cache ------------------------------------------------------------ */

enum state { ABSENT, CREATING, READY, REMEMBERED };

#define OBJ_MAGIC 0x6f626a6563742121ull
#define DEAD_MAGIC 0x6465616421212121ull
#define CLASS_MAGIC 0x636c617373212121ull

/* An object that a create made. */
struct fobj {
	uint64_t magic;
	struct fobj *next; /* every object of the run */
	unsigned cls;
	const unsigned char *key;
	size_t len;
	uint64_t serial;       /* order of creation, for the destroy order */
	bool ever_ready;       /* was ever the ready object of its key */
	struct entry *entry;   /* while it is that */
	uint64_t unlinked_at;  /* event count when it stopped being that */
	int destroyed;
	uint64_t weight; /* what the harness's weigh says of it */
	int weighed;     /* how many times weigh ran on it */
	unsigned refs;   /* memento_refs held on it */
	bool evicted;    /* its class evicted it (the model learned it) */
};

/* A key the cache holds: being created, ready, or a failure its class remembers. */
struct entry {
	struct entry *chain;
	size_t pos; /* in R.linked */
	unsigned cls;
	const struct recipe *r;
	const unsigned char *key;
	size_t len;
	uint64_t hash;
	enum state state;
	bool linked;
	struct fobj *obj;  /* READY; NULL is a valid object */
	uint64_t ready_at; /* event count */
	int error;         /* REMEMBERED: what every get returns */
	bool forgetting;   /* a forget found it and has not returned yet */
};

struct fclass {
	uint64_t magic;
	unsigned idx;
	char *name;
	memento_class *cls;
	bool has_destroy;
	/* what memento_class_stats must say */
	uint64_t hits, creations, failures, deadlocks_found, deadlocks_passed;
	uint64_t out_of_memory; /* gets that returned -ENOMEM: perhaps a miss */
	/* successful creations, and the destroys they must get */
	uint64_t made, made_null, destroys, destroys_null;
	/* options */
	bool guarded, remember, weighted;
	uint64_t max_entries, max_weight;     /* 0: no bound */
	uint64_t bound_entries, bound_weight; /* what the header allows in all
	                                         shards together; 0: no bound */
	/* lifetimes */
	uint64_t remembered_returns; /* gets that returned a remembered failure */
	uint64_t destroys_live;      /* destroys before memento_cache_free */
	uint64_t published;          /* objects that became ready and linked */
	uint64_t forgot_ready;       /* forgets that unlinked a ready object */
	uint64_t evictions_learned;  /* evictions the model noticed */
	unsigned inflight;           /* creates running */
};

static bool bounded(const struct fclass *fc)
{
	return fc->max_entries != 0 || fc->max_weight != 0;
}

static struct run {
	memento_cache *cache;
	struct fclass *classes[MAX_CLASSES];
	unsigned nclasses;
	struct entry *buckets[NBUCKETS];
	struct entry **linked;
	size_t nlinked, caplinked;
	struct fobj *objs;
	struct {
		unsigned cls; /* UINT_MAX: the NULL class */
		const struct recipe *r;
	} history[HISTORY];
	unsigned nhistory, history_next;
	unsigned budget;
	uint64_t events;      /* changes to what is ready */
	uint64_t null_events; /* NULL objects becoming or ceasing to be ready */
	uint64_t serial;
	uint64_t last_destroyed;
	bool freeing;
	unsigned opt_flags; /* OPTF_* */
	unsigned nshards;   /* of the cache, as the options ask */
	unsigned depth;     /* guards this thread holds on the cache */
	unsigned walking;   /* memento_foreach calls in progress */
	int api;            /* the innermost library call running (API_*) */
	struct held_ref {
		memento_ref *ref;
		struct fobj *obj; /* NULL for a NULL object */
		unsigned cls;
	} refs[MAX_REFS];
	unsigned nrefs;
	memento_class *probe; /* the harness's own class, for destroy's probe */
} R;

/* An object returned on a failed create, which must never be seen. */
static struct fobj poison = { .magic = 0x706f69736f6e2121ull };

/* What untouched out-parameters keep. */
static char untouched;

static uint64_t key_hash(unsigned cls, const unsigned char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull ^ cls;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static struct entry *model_find(unsigned cls, const struct mkey *mk)
{
	uint64_t h = key_hash(cls, mk->bytes, mk->len);
	for (struct entry *e = R.buckets[h % NBUCKETS]; e != NULL; e = e->chain)
		if (e->hash == h && e->cls == cls && e->len == mk->len &&
		    memcmp(e->key, mk->bytes, mk->len) == 0)
			return e;
	return NULL;
}

/* A create began: the cache now holds the key, being created. */
static struct entry *model_link(unsigned cls, const struct recipe *r, const struct mkey *mk)
{
	struct entry *e = arena_alloc(sizeof *e);
	unsigned char *key = arena_alloc(mk->len + 1);
	memcpy(key, mk->bytes, mk->len);
	*e = (struct entry){ .cls = cls, .r = r, .key = key, .len = mk->len,
		             .hash = key_hash(cls, mk->bytes, mk->len), .state = CREATING,
		             .linked = true };
	struct entry **b = &R.buckets[e->hash % NBUCKETS];
	e->chain = *b;
	*b = e;
	if (R.nlinked == R.caplinked) {
		R.caplinked = R.caplinked != 0 ? 2 * R.caplinked : 64;
		R.linked = realloc(R.linked, R.caplinked * sizeof *R.linked);
		CHECK(R.linked != NULL, "out of memory");
	}
	e->pos = R.nlinked;
	R.linked[R.nlinked++] = e;
	return e;
}

static void model_unlink(struct entry *e)
{
	struct entry **p = &R.buckets[e->hash % NBUCKETS];
	while (*p != e)
		p = &(*p)->chain;
	*p = e->chain;
	R.linked[e->pos] = R.linked[--R.nlinked];
	R.linked[e->pos]->pos = e->pos;
	e->linked = false;
	if (e->state == READY) {
		R.events++;
		if (e->obj != NULL) {
			e->obj->entry = NULL;
			e->obj->unlinked_at = R.events;
		} else {
			R.null_events++;
		}
	}
}

static void model_publish(struct entry *e, struct fobj *obj)
{
	e->state = READY;
	e->obj = obj;
	e->ready_at = ++R.events;
	if (obj != NULL) {
		obj->ever_ready = true;
		obj->entry = e;
	} else {
		R.null_events++;
	}
}

static struct fobj *fobj_new(unsigned cls, const struct mkey *mk)
{
	struct fobj *o = arena_alloc(sizeof *o);
	unsigned char *key = arena_alloc(mk->len + 1);
	memcpy(key, mk->bytes, mk->len);
	*o = (struct fobj){ .magic = OBJ_MAGIC, .next = R.objs, .cls = cls, .key = key,
		            .len = mk->len, .serial = ++R.serial };
	R.objs = o;
	return o;
}

/* obj, returned for class cls and key mk, is an object of that class and key. */
static void check_obj(void *obj, unsigned cls, const struct mkey *mk)
{
	if (obj == NULL)
		return;
	struct fobj *o = obj;
	CHECK(o != &poison, "the object of a failed create was returned");
	CHECK(o->magic != DEAD_MAGIC && o->destroyed == 0, "a destroyed object returned");
	CHECK(o->magic == OBJ_MAGIC, "not an object: %p", obj);
	CHECK(o->cls == cls, "an object of class %u returned for class %u", o->cls, cls);
	CHECK(o->len == mk->len && memcmp(o->key, mk->bytes, mk->len) == 0,
	      "the object of another key returned");
}

static memento_stats stats_of(const struct fclass *fc)
{
	memento_stats s;
	int rc = memento_class_stats(fc->cls, &s);
	CHECK(rc == 0, "stats: %d", rc);
	return s;
}

/* A bounded class's ready entry that the cache no longer holds: the model
 * learns of an eviction (it cannot know which entry the policy takes). */
static void learn_evicted(struct entry *e)
{
	struct fclass *fc = R.classes[e->cls];
	CHECK(e->linked && e->state == READY && bounded(fc),
	      "class %u: a key the cache must hold is gone", e->cls);
	fc->evictions_learned++;
	if (e->obj != NULL)
		e->obj->evicted = true;
	model_unlink(e);
}

/* Around every library call: which one is running, for destroy's check. */
static int api_enter(enum api api)
{
	int saved = R.api;
	R.api = api;
	return saved;
}

static void api_leave(int saved)
{
	R.api = saved;
}

/* The harness's own calls (checks, probes) must not use up the input's
 * allocation refusals, nor meet them. */
struct tracker_state {
	int countdown;
	bool sticky, refusing;
};

static struct tracker_state tracker_pause(void)
{
	struct tracker_state st = { T.countdown, T.sticky, T.refusing };
	tracker_arm(-1, false);
	return st;
}

static void tracker_resume(struct tracker_state st)
{
	T.countdown = st.countdown;
	T.sticky = st.sticky;
	T.refusing = st.refusing;
}

static struct fclass *class_of_ctx(void *ctx)
{
	struct fclass *fc = ctx;
	CHECK(fc != NULL && fc->magic == CLASS_MAGIC, "a callback got another ctx");
	return fc;
}

/* Every code a call returned has a name or a description. */
static void check_code(int rc)
{
	const char *text = memento_strerror(rc);
	CHECK(text != NULL && text[0] != '\0', "no description for %d", rc);
	CHECK(memento_err_name(rc) != NULL, "no name for %d", rc);
}

/* ---- calls and their callbacks ---------------------------------------------------- */

/* What one get/peek/forget's callbacks saw and did. */
struct frame {
	struct mkey mk; /* the key its args must build */
	int key_runs, key_ret;
	enum state pre; /* what the lookup after the key callback finds */
	struct entry *pre_entry;
	struct fobj *pre_obj;
	int create_runs, create_ret;
	struct fobj *made;
	struct entry *entry; /* the one its create linked */
	bool is_forget;      /* a forget's frame: it marks what it finds */
};

/* The args a get hands to the library (for NULL args, null_call stands in). */
struct call {
	const struct recipe *r;
	unsigned cls;
	int depth;
	struct frame *f;
};

static struct recipe null_recipe;
static struct call null_call;

static void run_block(const struct reader *block, int depth);

static int key_result(const struct frame *f)
{
	if (f->key_ret > 0)
		return -EINVAL;
	return f->key_ret != 0 ? f->key_ret : f->mk.err;
}

/*
 * Builds r's key in the model, and when key is not NULL also in the library,
 * checking each append's result; c (key callback only) runs the key block.
 */
static int key_build(const struct recipe *r, memento_key *key, struct mkey *mk,
                     const struct call *c)
{
	int last = 0;
	mk->len = 0;
	mk->err = 0;
	for (unsigned i = 0; i <= r->nfields; i++) {
		if (c != NULL && i == r->nest_at)
			run_block(&r->key_block, c->depth + 1);
		if (i == r->nfields)
			break;
		const struct field *f = &r->fields[i];
		int had = mk->err;
		int want = mk_append(mk, f);
		if (key == NULL)
			continue;
		last = lib_append(key, f);
		if (want == 0)
			CHECK(last == 0, "append of kind %u failed: %d", f->kind, last);
		else if (null_arg(f))
			CHECK(last == -EINVAL, "NULL argument of kind %u: %d", f->kind, last);
		else if (had == 0)
			CHECK(last == -E2BIG, "append of kind %u past the limit: %d", f->kind, last);
		else
			CHECK(last == -EINVAL || last == -E2BIG, "append after an error: %d", last);
	}
	return last;
}

static void frame_init(struct frame *f, const struct recipe *r)
{
	f->key_runs = f->key_ret = 0;
	f->pre = ABSENT;
	f->pre_entry = NULL;
	f->pre_obj = NULL;
	f->create_runs = f->create_ret = 0;
	f->made = NULL;
	f->entry = NULL;
	f->is_forget = false;
	key_build(r, NULL, &f->mk, NULL);
}

static const struct call *call_of(const void *args, struct fclass *fc)
{
	const struct call *c = args != NULL ? args : &null_call;
	CHECK(!R.freeing, "a callback ran inside memento_cache_free");
	CHECK(c->cls == fc->idx, "class %u's callback got class %u's args", fc->idx, c->cls);
	return c;
}

static int fz_key(memento_key *key, const void *args, void *ctx)
{
	struct fclass *fc = class_of_ctx(ctx);
	const struct call *c = call_of(args, fc);
	struct frame *f = c->f;
	struct mkey mk;
	f->key_runs++;
	int last = key_build(c->r, key, &mk, c);

	uint8_t arg = (uint8_t)(c->r->keyret >> 2);
	switch (c->r->keyret & 3) {
	case KEYRET_ZERO: f->key_ret = 0; break;
	case KEYRET_LAST: f->key_ret = last; break;
	case KEYRET_ERROR: f->key_ret = error_table[arg % 16]; break;
	default: f->key_ret = arg + 1; break;
	}
	/* The key block has run: this is what the lookup will find. */
	if (key_result(f) == 0) {
		f->pre_entry = model_find(c->cls, &f->mk);
		f->pre = f->pre_entry != NULL ? f->pre_entry->state : ABSENT;
		f->pre_obj = f->pre_entry != NULL ? f->pre_entry->obj : NULL;
		/* From here until the forget returns, a destroy of its object is
		 * the forget's doing (outside a guard it drains at once). */
		if (f->is_forget && f->pre_entry != NULL)
			f->pre_entry->forgetting = true;
	}
	return f->key_ret;
}

static int fz_create(void **obj, const void *args, void *ctx)
{
	struct fclass *fc = class_of_ctx(ctx);
	const struct call *c = call_of(args, fc);
	struct frame *f = c->f;
	CHECK(f->key_runs == 1 && key_result(f) == 0, "create without a good key");
	/* A bounded class may have evicted a key the model holds ready. */
	CHECK(f->pre == ABSENT || (f->pre == READY && bounded(fc)),
	      "create for a key the cache holds (%s)",
	      f->pre == READY ? "ready" : f->pre == CREATING ? "being created" : "failure remembered");
	CHECK(f->create_runs == 0, "create ran twice for one get");
	f->create_runs = 1;
	if (f->pre == READY)
		learn_evicted(f->pre_entry);
	fc->creations++; /* counted as it starts: a nested stats sees it */
	fc->inflight++;
	f->entry = model_link(c->cls, c->r, &f->mk);

	run_block(&c->r->create_block, c->depth + 1);

	uint8_t arg = (uint8_t)(c->r->create >> 3);
	unsigned mode = c->r->create & 7;
	if (mode == CREATE_NULL && fc->guarded)
		mode = CREATE_OBJECT; /* see fuzz_ops.h */
	switch (mode) {
	case CREATE_NULL:
		*obj = NULL;
		f->create_ret = 0;
		break;
	case CREATE_ERROR:
		f->create_ret = error_table[arg % 16];
		break;
	case CREATE_POSITIVE:
		f->create_ret = arg + 1;
		break;
	case CREATE_ERROR_SET:
		*obj = &poison;
		f->create_ret = error_table[arg % 16];
		break;
	default:
		*obj = f->made = fobj_new(c->cls, &f->mk);
		f->made->weight = weights[arg % 8];
		f->create_ret = 0;
		break;
	}
	fc->inflight--; /* nothing of the harness runs until the get returns */
	return f->create_ret;
}

static uint64_t fz_weigh(const void *obj, void *ctx)
{
	struct fclass *fc = class_of_ctx(ctx);
	CHECK(!R.freeing, "weigh inside memento_cache_free");
	CHECK(fc->weighted, "weigh of class %u, registered without one", fc->idx);
	CHECK(obj != NULL && obj != &poison, "weigh of %p", obj);
	struct fobj *o = (struct fobj *)(uintptr_t)obj;
	CHECK(o->magic == OBJ_MAGIC && o->cls == fc->idx, "weigh of a stranger");
	CHECK(o->weighed == 0, "weigh ran twice on one object");
	o->weighed++;
	return o->weight;
}

/* The harness's own class: destroy forgets one of its keys, which takes the
 * key's shard lock (the only lock with one shard): if destroy ran under a
 * library lock, that would hang, and libFuzzer reports the timeout.  Never
 * in R.classes, and no input can name it (longer than NAME_INPUT's 31
 * bytes), so no model sees it. */
static int probe_key(memento_key *key, const void *args, void *ctx)
{
	(void)args;
	(void)ctx;
	return memento_key_u64(key, 0x9e37);
}

static int probe_create(void **obj, const void *args, void *ctx)
{
	(void)obj;
	(void)args;
	(void)ctx;
	CHECK(false, "the probe class's create ran");
	return -EIO;
}

static void destroy_probe(void)
{
	struct tracker_state st = tracker_pause();
	if (R.probe == NULL) {
		memento_class_desc desc = { "fuzz_ops: the destroy callback's probe class",
			                    probe_key, probe_create, NULL, NULL };
		int rc = memento_class_new(R.cache, &desc, &R.probe);
		CHECK(rc == 0, "probe class: %d", rc);
	}
	int saved = api_enter(API_FORGET);
	int rc = memento_forget(R.probe, NULL);
	api_leave(saved);
	CHECK(rc == -ENOENT, "forget in destroy: %d", rc);
	tracker_resume(st);
}

static bool destroy_may_run_in(int api)
{
	switch (api) {
	case API_GUARD_LEAVE:
	case API_REF_RELEASE:
	case API_FORGET:
	case API_GET_REF:
	case API_FOREACH:
	case API_BARRIER:
		return true;
	default:
		return false;
	}
}

static void fz_destroy(void *obj, void *ctx)
{
	struct fclass *fc = class_of_ctx(ctx);
	CHECK(fc->has_destroy, "destroy of a class registered without one");
	if (!R.freeing) {
		CHECK(fc->guarded, "destroy of class %u's object outside memento_cache_free", fc->idx);
		CHECK(R.depth == 0, "destroy inside a guard (depth %u) of the thread", R.depth);
		CHECK(destroy_may_run_in(R.api), "destroy inside memento_%s", api_names[R.api]);
	}
	fc->destroys++;
	if (obj == NULL) {
		CHECK(R.freeing, "destroy of a NULL object of a guarded class");
		fc->destroys_null++;
		return;
	}
	struct fobj *o = obj;
	CHECK(o != &poison, "destroy of the object of a failed create");
	CHECK(o->magic != DEAD_MAGIC && o->destroyed == 0, "object destroyed twice");
	CHECK(o->magic == OBJ_MAGIC && o->cls == fc->idx, "destroy of a stranger");
	if (R.freeing) {
		CHECK(o->serial < R.last_destroyed, "destroyed out of order: %llu after %llu",
		      (unsigned long long)o->serial, (unsigned long long)R.last_destroyed);
		R.last_destroyed = o->serial;
	} else {
		CHECK(o->refs == 0, "destroy of an object that %u memento_refs hold", o->refs);
		if (o->entry != NULL && !o->entry->forgetting) {
			CHECK(bounded(fc), "destroy of an object its class still holds (key not forgotten)");
			learn_evicted(o->entry);
			/* Evictions are counted when they happen, before this. */
			memento_stats s = stats_of(fc);
			CHECK(s.evictions >= fc->evictions_learned,
			      "destroy of an object its class holds: not forgotten, and %llu evictions "
			      "counted for %llu seen", (unsigned long long)s.evictions,
			      (unsigned long long)fc->evictions_learned);
		}
		fc->destroys_live++;
	}
	o->destroyed = 1;
	o->magic = DEAD_MAGIC;
	if (!R.freeing)
		destroy_probe();
}

/* ---- operations ---------------------------------------------------------------------- */

static struct fclass *read_class(struct reader *rd)
{
	uint8_t b = rd_u8(rd);
	if (b == 255 || R.nclasses == 0)
		return NULL;
	return R.classes[b % R.nclasses];
}

static const struct recipe *read_recipe(struct reader *rd, struct fclass *fc)
{
	struct recipe *r = arena_alloc(sizeof *r);
	r->nfields = rd_u8(rd) % (MAX_FIELDS + 1);
	for (unsigned i = 0; i < r->nfields; i++)
		read_field(rd, &r->fields[i]);
	r->keyret = rd_u8(rd);
	r->nest_at = rd_u8(rd) % (r->nfields + 1);
	r->key_block = rd_slice(rd, rd_u8(rd));
	r->create = rd_u8(rd);
	r->create_block = rd_slice(rd, rd_u8(rd));

	unsigned slot = R.history_next++ % HISTORY;
	R.history[slot].cls = fc != NULL ? fc->idx : UINT_MAX;
	R.history[slot].r = r;
	if (R.nhistory < HISTORY)
		R.nhistory++;
	return r;
}

static void read_deadline(struct reader *rd, struct timespec *ts, const struct timespec **dl,
                          bool *valid)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	*dl = ts;
	*valid = true;
	*ts = now;
	switch (rd_u8(rd) % 13) {
	case 0: *dl = NULL; break;                          /* wait forever */
	case 1: ts->tv_sec -= 1; break;                     /* passed */
	case 2: break;                                      /* now */
	case 3: ts->tv_sec += 1; break;                     /* soon */
	case 4: ts->tv_sec += 3600; break;                  /* later */
	case 5: *ts = (struct timespec){ 0, 0 }; break;     /* the clock's epoch */
	case 6: *ts = (struct timespec){ -5, 0 }; break;    /* before it */
	case 7: ts->tv_nsec = -1; *valid = false; break;
	case 8: ts->tv_nsec = 1000000000L; *valid = false; break;
	case 9: *ts = (struct timespec){ 0, LONG_MAX }; *valid = false; break;
	case 10: *ts = (struct timespec){ 0, LONG_MIN }; *valid = false; break;
	case 11: *ts = (struct timespec){ (time_t)INT64_MAX, 999999999L }; break;
	default: *ts = (struct timespec){ (time_t)INT64_MIN, 0 }; break;
	}
}

/*
 * What a get, peek or forget of recipe r sets up before calling in: the
 * frame its callbacks record into, the call they find through their args,
 * and those args: the call itself, or NULL (F_NULL_ARGS) for the built-in
 * recipe, whose call the callbacks then find in null_call.
 */
static const void *call_begin(struct fclass *fc, const struct recipe *r, unsigned flags,
                              int depth, struct frame *f, struct call *c)
{
	bool null_args = flags & F_NULL_ARGS;
	if (null_args)
		r = &null_recipe;
	frame_init(f, r);
	*c = (struct call){ r, fc != NULL ? fc->idx : UINT_MAX, depth, f };
	if (!null_args)
		return c;
	null_call = *c;
	return NULL;
}

/* A reference the model now holds: kept in R.refs, or, when that is full,
 * released at once. */
static void ref_release_at(unsigned i, int depth);

static void ref_keep(memento_ref *ref, struct fobj *o, unsigned cls, int depth)
{
	if (o != NULL)
		o->refs++;
	R.refs[R.nrefs++] = (struct held_ref){ ref, o, cls };
	if (R.nrefs == MAX_REFS)
		ref_release_at(0, depth);
}

enum get_kind { GK_GET, GK_UNTIL, GK_REF, GK_MANY };

static const char *const get_names[] = { "get", "get_until", "get_ref", "get_many" };

/* memento_get_many of one key: its result, which must be the call's, in
 * *rc_of_key (when it got that far). */
static int get_many_one(memento_class *cls, const void *args, void **out, int *rc_of_key)
{
	const void *one[1] = { args };
	return memento_get_many(cls, one, 1, out, rc_of_key);
}

static void do_get(struct fclass *fc, const struct recipe *r, unsigned flags, enum get_kind kind,
                   const struct timespec *deadline, bool deadline_ok, int depth)
{
	bool null_args = flags & F_NULL_ARGS;
	struct frame f;
	struct call c;
	const void *args = call_begin(fc, r, flags, depth, &f, &c);
	memento_class *cls = fc != NULL ? fc->cls : NULL;
	void *obj = &untouched;
	memento_ref *ref = (memento_ref *)(void *)&untouched;
	void **out = flags & F_NULL_OUT ? NULL : &obj;
	memento_ref **ref_out = flags & F_NULL_OUT ? NULL : &ref;
	/* A guarded class's get and get_until need a guard; a get_ref does not. */
	bool refused_outside = fc != NULL && fc->guarded && kind != GK_REF && R.depth == 0;
	uint64_t refused = T.refused;
	int saved = api_enter(kind == GK_REF ? API_GET_REF : API_GET);
	int rc_of_key = 1; /* no errno is positive */
	int rc = kind == GK_REF     ? memento_get_ref(cls, args, ref_out)
	         : kind == GK_UNTIL ? memento_get_until(cls, args, out, deadline)
	         : kind == GK_MANY  ? get_many_one(cls, args, out, &rc_of_key)
	                            : memento_get(cls, args, out);
	api_leave(saved);
	check_code(rc);
	/* What a failed get leaves in its out-parameter: get_many writes NULL. */
	void *unwritten = kind == GK_MANY ? NULL : &untouched;
	if (kind == GK_MANY && cls != NULL && out != NULL)
		CHECK(rc_of_key == rc, "get_many of one key returned %d, its rcs[0] is %d", rc,
		      rc_of_key);
	if (kind == GK_REF && rc == 0)
		obj = memento_ref_object(ref);
	trace(depth, "%s class %d%s%s: %d%s%s", get_names[kind], (int)c.cls,
	      null_args ? " NULL args" : "", out == NULL ? " NULL out" : "", rc,
	      f.create_runs ? " (created)" : "", deadline_ok ? "" : " (bad deadline)");

	if (fc == NULL || out == NULL || !deadline_ok) {
		CHECK(rc == -EINVAL, "get with a NULL argument or a bad deadline: %d", rc);
		CHECK(f.create_runs == 0, "create ran for an invalid get");
		return;
	}
	if (rc == -ENOMEM && T.refused != refused && f.create_runs == 0) {
		/* Out of memory before create: nothing may have changed (but what
		 * the key callback's nested calls did, which the model has seen). */
		CHECK(obj == unwritten && ref == (memento_ref *)(void *)&untouched,
		      "get wrote its out-parameter and failed with -ENOMEM");
		fc->out_of_memory++;
		return;
	}
	if (refused_outside) {
		CHECK(rc == -EPERM, "%s of a guarded class outside a guard: %d", get_names[kind], rc);
		CHECK(f.key_runs == 0, "the key callback ran for a get refused with -EPERM");
		CHECK(obj == unwritten, "get wrote *obj and failed with -EPERM");
		return;
	}
	CHECK(f.key_runs == 1, "key callback ran %d times", f.key_runs);
	int kerr = key_result(&f);
	if (kerr != 0) {
		CHECK(rc == kerr, "key error %d became %d", kerr, rc);
		CHECK(f.create_runs == 0, "create ran after a key error");
		if (rc == -EDEADLK)
			fc->deadlocks_passed++;
	} else if (f.create_runs != 0) {
		/* A missing key, or a bounded class's evicted one (fz_create saw
		 * to the model). */
		int want = f.create_ret > 0 ? -EINVAL : f.create_ret;
		CHECK(rc == want, "create returned %d, get %d", f.create_ret, rc);
		if (rc == 0) {
			CHECK(obj == f.made, "get returned %p, create made %p", obj, (void *)f.made);
			fc->made++;
			fc->made_null += f.made == NULL;
			if (f.made != NULL)
				CHECK(f.made->weighed == (fc->weighted ? 1 : 0),
				      "weigh ran %d times for a new object of class %u", f.made->weighed,
				      fc->idx);
			/* Detached by a forget inside create: retired, never ready. */
			if (f.entry->linked) {
				model_publish(f.entry, f.made);
				fc->published++;
			}
		} else {
			fc->failures++;
			/* A failure the class remembers stays linked (a create that
			 * itself says its creator died is not remembered: lib's
			 * reading of -EOWNERDEAD). */
			if (f.entry->linked && fc->remember && rc != -EOWNERDEAD) {
				f.entry->state = REMEMBERED;
				f.entry->error = rc;
			} else if (f.entry->linked) {
				model_unlink(f.entry);
			}
			if (rc == -EDEADLK)
				fc->deadlocks_passed++;
		}
	} else if (f.pre == READY) {
		CHECK(rc == 0 && obj == f.pre_obj, "a ready key gave %d, %p instead of %p", rc, obj,
		      (void *)f.pre_obj);
		fc->hits++;
	} else if (f.pre == CREATING) {
		CHECK(rc == -EDEADLK, "get of a key this thread creates: %d", rc);
		fc->deadlocks_found++;
	} else if (f.pre == REMEMBERED) {
		CHECK(rc == f.pre_entry->error, "a remembered failure (%d) gave %d",
		      f.pre_entry->error, rc);
		fc->remembered_returns++;
	} else {
		CHECK(false, "a missing key, but create did not run (%d)", rc);
	}
	if (rc == 0) {
		check_obj(obj, fc->idx, &f.mk);
		if (kind == GK_REF)
			ref_keep(ref, obj, fc->idx, depth);
	} else {
		CHECK(obj == unwritten && ref == (memento_ref *)(void *)&untouched,
		      "get wrote its out-parameter and failed with %d", rc);
	}
}

static void do_peek(struct fclass *fc, const struct recipe *r, unsigned flags, int depth)
{
	bool null_args = flags & F_NULL_ARGS;
	struct frame f;
	struct call c;
	const void *args = call_begin(fc, r, flags, depth, &f, &c);
	void *obj = &untouched;
	void **out = flags & F_NULL_OUT ? NULL : &obj;
	bool refused_outside = fc != NULL && fc->guarded && R.depth == 0;
	uint64_t refused = T.refused;
	int saved = api_enter(API_PEEK);
	int rc = memento_peek(fc != NULL ? fc->cls : NULL, args, out);
	api_leave(saved);
	check_code(rc);
	trace(depth, "peek class %d%s%s: %d", (int)c.cls, null_args ? " NULL args" : "",
	      out == NULL ? " NULL obj" : "", rc);
	CHECK(f.create_runs == 0, "create ran for a peek");

	if (fc == NULL || out == NULL) {
		CHECK(rc == -EINVAL, "peek with a NULL argument: %d", rc);
		return;
	}
	if (rc == -ENOMEM && T.refused != refused)
		return;
	if (refused_outside) {
		CHECK(rc == -EPERM, "peek of a guarded class outside a guard: %d", rc);
		CHECK(f.key_runs == 0, "the key callback ran for a peek refused with -EPERM");
		CHECK(obj == &untouched, "peek wrote *obj and failed with -EPERM");
		return;
	}
	CHECK(f.key_runs == 1, "key callback ran %d times", f.key_runs);
	int kerr = key_result(&f);
	if (kerr != 0) {
		CHECK(rc == kerr, "key error %d became %d", kerr, rc);
	} else if (f.pre == READY && rc == -ENOENT && bounded(fc)) {
		learn_evicted(f.pre_entry);
	} else if (f.pre == READY) {
		CHECK(rc == 0 && obj == f.pre_obj, "peek of a ready key: %d, %p", rc, obj);
		check_obj(obj, fc->idx, &f.mk);
		fc->hits++;
	} else if (f.pre == CREATING) {
		CHECK(rc == -EINPROGRESS, "peek of a key being created: %d", rc);
	} else {
		CHECK(rc == -ENOENT, "peek of a %s key: %d",
		      f.pre == REMEMBERED ? "failed (remembered)" : "missing", rc);
	}
	if (rc != 0)
		CHECK(obj == &untouched, "peek wrote *obj and failed with %d", rc);
}

static void do_forget(struct fclass *fc, const struct recipe *r, unsigned flags, int depth)
{
	bool null_args = flags & F_NULL_ARGS;
	struct frame f;
	struct call c;
	const void *args = call_begin(fc, r, flags, depth, &f, &c);
	f.is_forget = true;
	uint64_t refused = T.refused;
	int saved = api_enter(API_FORGET);
	int rc = memento_forget(fc != NULL ? fc->cls : NULL, args);
	api_leave(saved);
	if (f.pre_entry != NULL)
		f.pre_entry->forgetting = false;
	check_code(rc);
	trace(depth, "forget class %d%s: %d", (int)c.cls, null_args ? " NULL args" : "", rc);
	CHECK(f.create_runs == 0, "create ran for a forget");

	if (fc == NULL) {
		CHECK(rc == -EINVAL, "forget with a NULL class: %d", rc);
		return;
	}
	if (rc == -ENOMEM && T.refused != refused)
		return; /* nothing forgotten */
	CHECK(f.key_runs == 1, "key callback ran %d times", f.key_runs);
	int kerr = key_result(&f);
	if (kerr != 0) {
		CHECK(rc == kerr, "key error %d became %d", kerr, rc);
	} else if (f.pre == READY && rc == -ENOENT && bounded(fc)) {
		learn_evicted(f.pre_entry);
	} else if (f.pre != ABSENT) {
		CHECK(rc == 0, "forget of a held key: %d", rc);
		if (f.pre == READY)
			fc->forgot_ready++;
		model_unlink(f.pre_entry);
	} else {
		CHECK(rc == -ENOENT, "forget of a missing key: %d", rc);
	}
}

/* A bounded class's evictions that the model has not learned of yet: how
 * many of its ready keys the cache no longer holds. */
static uint64_t unlearned_evictions(const struct fclass *fc, const memento_stats *s)
{
	CHECK(s->evictions >= fc->evictions_learned,
	      "class %u: %llu evictions counted, but the model saw %llu", fc->idx,
	      (unsigned long long)s->evictions, (unsigned long long)fc->evictions_learned);
	return s->evictions - fc->evictions_learned;
}

/* How many ready objects a bounded class holds, from its statistics. */
static uint64_t bounded_live(const struct fclass *fc, const memento_stats *s)
{
	uint64_t gone = fc->forgot_ready + s->evictions + s->expirations;
	CHECK(gone <= fc->published,
	      "class %u: %llu objects published, %llu forgotten, %llu evicted, %llu expired",
	      fc->idx, (unsigned long long)fc->published, (unsigned long long)fc->forgot_ready,
	      (unsigned long long)s->evictions, (unsigned long long)s->expirations);
	return fc->published - gone;
}

/* After every operation: no bounded class holds more than its bound. */
static void check_bounds(void)
{
	for (unsigned i = 0; i < R.nclasses; i++) {
		struct fclass *fc = R.classes[i];
		if (!bounded(fc))
			continue;
		memento_stats s = stats_of(fc);
		(void)unlearned_evictions(fc, &s);
		uint64_t live = bounded_live(fc, &s);
		if (fc->bound_entries != 0)
			CHECK(live <= fc->bound_entries, "class %u holds %llu objects, bound %llu", i,
			      (unsigned long long)live, (unsigned long long)fc->bound_entries);
	}
}

static void check_count(void)
{
	size_t n = memento_count(R.cache);
	trace(0, "count: %zu", n);
	/* Exact: the model's linked entries, less the evictions it has not
	 * learned of (bounded classes). */
	size_t want = R.nlinked;
	for (unsigned i = 0; i < R.nclasses; i++) {
		if (!bounded(R.classes[i]))
			continue;
		memento_stats s = stats_of(R.classes[i]);
		want -= unlearned_evictions(R.classes[i], &s);
	}
	CHECK(n == want, "memento_count %zu, model %zu", n, want);
}

static void check_stats(struct fclass *fc, unsigned flags)
{
	memento_stats s;
	memset(&s, 0xa5, sizeof s);
	if (fc == NULL || (flags & F_NULL_OUT)) {
		int rc = memento_class_stats(fc != NULL ? fc->cls : NULL, fc != NULL ? NULL : &s);
		CHECK(rc == -EINVAL, "stats with a NULL argument: %d", rc);
		return;
	}
	int rc = memento_class_stats(fc->cls, &s);
	CHECK(rc == 0, "stats: %d", rc);
	CHECK(s.hits == fc->hits, "hits %llu, model %llu", (unsigned long long)s.hits,
	      (unsigned long long)fc->hits);
	CHECK(s.creations == fc->creations, "creations %llu, model %llu",
	      (unsigned long long)s.creations, (unsigned long long)fc->creations);
	CHECK(s.failures == fc->failures, "failures %llu, model %llu",
	      (unsigned long long)s.failures, (unsigned long long)fc->failures);
	CHECK(s.waits == 0 && s.timeouts == 0, "waits or timeouts in one thread");
	/* A get that found its key being created is a miss and a deadlock; one
	 * that merely passed on a callback's -EDEADLK may count as one. */
	CHECK(s.deadlocks >= fc->deadlocks_found &&
	              s.deadlocks <= fc->deadlocks_found + fc->deadlocks_passed,
	      "deadlocks %llu, model %llu + %llu", (unsigned long long)s.deadlocks,
	      (unsigned long long)fc->deadlocks_found, (unsigned long long)fc->deadlocks_passed);
	uint64_t misses = fc->creations + fc->remembered_returns;
	CHECK(s.misses >= misses && s.misses <= misses + fc->deadlocks_found + fc->out_of_memory,
	      "misses %llu, creations %llu, remembered failures returned %llu",
	      (unsigned long long)s.misses, (unsigned long long)fc->creations,
	      (unsigned long long)fc->remembered_returns);

	/* Durations never run out within a run. */
	CHECK(s.expirations == 0 && s.refreshes == 0, "%llu expirations, %llu refreshes",
	      (unsigned long long)s.expirations, (unsigned long long)s.refreshes);
	if (!fc->guarded)
		CHECK(s.evictions == 0 && s.destroyed == 0,
		      "a CACHE class: %llu evictions, %llu destroyed",
		      (unsigned long long)s.evictions, (unsigned long long)s.destroyed);
	if (bounded(fc))
		(void)bounded_live(fc, &s);
	else
		CHECK(s.evictions == 0, "%llu evictions in an unbounded class",
		      (unsigned long long)s.evictions);
	(void)unlearned_evictions(fc, &s);
	if (fc->has_destroy)
		CHECK(s.destroyed == fc->destroys_live, "destroyed %llu, destroy ran %llu times",
		      (unsigned long long)s.destroyed, (unsigned long long)fc->destroys_live);
	else
		CHECK(s.destroyed <= fc->made, "destroyed %llu of %llu objects",
		      (unsigned long long)s.destroyed, (unsigned long long)fc->made);
}

/* ---- names and classes --------------------------------------------------------------- */

static const char *read_name(struct reader *rd)
{
	switch (rd_u8(rd) % NAME_COUNT) {
	case NAME_A: return "a";
	case NAME_B: return "b";
	case NAME_AB: return "ab";
	case NAME_BASE: return "base";
	case NAME_EMPTY: return "";
	case NAME_LONG: return long_str(1000);
	case NAME_HUGE: return long_str(BIG);
	case NAME_NULL: return NULL;
	default: return read_string(rd, rd_u8(rd) % 32);
	}
}

static struct fclass *class_named(const char *name)
{
	for (unsigned i = 0; i < R.nclasses; i++)
		if (strcmp(R.classes[i]->name, name) == 0)
			return R.classes[i];
	return NULL;
}

/* ---- class options ------------------------------------------------------------------- */

#define HOUR_NS (3600ull * 1000000000ull)

/* What OP_CLASS_NEW asks for: memento_class_new (given false), or
 * memento_class_new_with with NULL options or with these. */
struct class_opts {
	bool given, null;
	union {
		memento_class_options o;
		unsigned char raw[sizeof(memento_class_options) + 16];
	} u;
};

static void read_class_options(struct reader *rd, struct class_opts *co)
{
	static const unsigned bad_lifetimes[] = { 2, 3, 255, INT_MAX };
	static const size_t short_sizes[] = { 0, 1, 8, sizeof(memento_class_options) - 1 };
	uint8_t life = rd_u8(rd), of = rd_u8(rd), entries = rd_u8(rd), weight = rd_u8(rd);
	memento_class_options *o = &co->u.o;
	memset(&co->u, 0, sizeof co->u);
	*o = (memento_class_options)MEMENTO_CLASS_OPTIONS_INIT;
	co->given = true;
	co->null = false;
	switch (life & 3) {
	case 0: o->lifetime = MEMENTO_LIFETIME_CACHE; break;
	case 3: o->lifetime = (memento_lifetime)bad_lifetimes[(life >> 5) & 3]; break;
	default: o->lifetime = MEMENTO_LIFETIME_GUARDED; break;
	}
	switch ((life >> 2) & 7) {
	case CSIZE_SHORT: o->size = short_sizes[(life >> 5) & 3]; break;
	case CSIZE_LONGER: o->size = sizeof co->u.raw; break;
	case CSIZE_TAIL_SET:
		o->size = sizeof co->u.raw;
		co->u.raw[sizeof *o + weight % 16] = (unsigned char)(0x80 | entries);
		break;
	default: break;
	}
	if (of & OO_ENTRIES)
		o->max_entries = entries & 0x80 ? UINT64_MAX : 1 + entries % 8;
	if (of & OO_WEIGHT)
		o->max_weight = weight & 0x80 ? UINT64_MAX : 1 + weight % 32;
	if (of & OO_WEIGH)
		o->weigh = fz_weigh;
	/* Never runs out within a run: a run takes milliseconds, and what
	 * time a run takes is not deterministic under fuzzing. */
	uint64_t d = of & OO_HUGE ? UINT64_MAX - 1 : HOUR_NS;
	if (of & OO_EXPIRE)
		o->expire_after_ns = d;
	if (of & OO_REFRESH)
		o->refresh_after_ns = of & OO_LATE ? d + (weight & 1) : d / 2;
	if (of & OO_TTL)
		o->failure_ttl_ns = of & OO_HUGE ? UINT64_MAX : HOUR_NS;
}

/* The header's rules for memento_class_new_with's options, on their own. */
static bool options_valid(const struct class_opts *co)
{
	const memento_class_options *o = &co->u.o;
	if (o->size < sizeof *o)
		return false;
	for (size_t i = sizeof *o; i < o->size; i++)
		if (co->u.raw[i] != 0)
			return false;
	if (o->lifetime != MEMENTO_LIFETIME_CACHE && o->lifetime != MEMENTO_LIFETIME_GUARDED)
		return false;
	if (o->lifetime == MEMENTO_LIFETIME_CACHE &&
	    (o->max_entries != 0 || o->max_weight != 0 || o->expire_after_ns != 0 ||
	     o->refresh_after_ns != 0))
		return false;
	if ((o->max_weight != 0) != (o->weigh != NULL))
		return false;
	if (o->refresh_after_ns != 0 && o->expire_after_ns != 0 &&
	    o->refresh_after_ns >= o->expire_after_ns)
		return false;
	return true;
}

/* What the header lets all shards together hold: each shard holds at most
 * ceil(bound / shards). */
static uint64_t bound_total(uint64_t bound, unsigned shards)
{
	if (bound == 0)
		return 0;
	uint64_t share = bound / shards + (bound % shards != 0);
	return share > UINT64_MAX / shards ? UINT64_MAX : share * shards;
}

static void class_new(const char *name, uint8_t cflags, const struct class_opts *co)
{
	bool invalid = name == NULL || (cflags & (CN_NO_KEY | CN_NO_CREATE | CN_NULL_DESC |
	                                         CN_NULL_OUT | CN_NULL_CACHE));
	bool taken = name != NULL && class_named(name) != NULL;
	const memento_class_options *opts = co != NULL && co->given ? &co->u.o : NULL;
	bool bad_options = opts != NULL && !options_valid(co);
	if (!invalid && !taken && R.nclasses == MAX_CLASSES)
		return;
	/* The library must copy the name: ours is gone once the call returns. */
	char *copy = name != NULL ? strdup(name) : NULL;
	CHECK(name == NULL || copy != NULL, "out of memory");

	struct fclass *fc = calloc(1, sizeof *fc);
	CHECK(fc != NULL, "out of memory");
	*fc = (struct fclass){ .magic = CLASS_MAGIC, .idx = R.nclasses,
		               .has_destroy = !(cflags & CN_NO_DESTROY) };
	memento_class_desc desc = {
		.name = copy,
		.key = cflags & CN_NO_KEY ? NULL : fz_key,
		.create = cflags & CN_NO_CREATE ? NULL : fz_create,
		.destroy = fc->has_destroy ? fz_destroy : NULL,
		.ctx = fc,
	};
	memento_class *cls = (memento_class *)(void *)&untouched;
	memento_cache *cache = cflags & CN_NULL_CACHE ? NULL : R.cache;
	const memento_class_desc *d = cflags & CN_NULL_DESC ? NULL : &desc;
	memento_class **out = cflags & CN_NULL_OUT ? NULL : &cls;
	uint64_t refused = T.refused;
	int saved = api_enter(API_CLASS_NEW);
	int rc = co == NULL || (!co->given && !co->null) ? memento_class_new(cache, d, out)
	                                                 : memento_class_new_with(cache, d, opts, out);
	api_leave(saved);
	check_code(rc);
	if (copy != NULL)
		memset(copy, '?', strlen(copy));
	free(copy);

	trace(0, "class_new \"%.20s\" flags %#x%s: %d", name != NULL ? name : "(null)", cflags,
	      opts == NULL ? "" : bad_options ? " (bad options)" : " (options)", rc);
	int want = invalid ? -EINVAL : taken ? -EEXIST : bad_options ? -EINVAL : 0;
	/* The header does not say which of two reasons wins. */
	if (!invalid && taken && bad_options && rc == -EINVAL)
		want = -EINVAL;
	if (!invalid && !taken && rc == -ENOMEM && T.refused != refused)
		want = -ENOMEM; /* and no class registered */
	CHECK(rc == want, "class_new: %d, expected %d", rc, want);
	if (rc != 0) {
		CHECK(cls == (memento_class *)(void *)&untouched, "class_new failed but wrote *cls");
		free(fc);
		return;
	}
	fc->name = strdup(name);
	fc->cls = cls;
	CHECK(fc->name != NULL, "out of memory");
	if (opts != NULL) {
		fc->guarded = opts->lifetime == MEMENTO_LIFETIME_GUARDED;
		fc->remember = opts->failure_ttl_ns != 0;
		fc->weighted = opts->weigh != NULL;
		fc->max_entries = opts->max_entries;
		fc->max_weight = opts->max_weight;
		fc->bound_entries = bound_total(opts->max_entries, R.nshards);
		fc->bound_weight = bound_total(opts->max_weight, R.nshards);
	}
	R.classes[R.nclasses++] = fc;
	CHECK(strcmp(memento_class_name(cls), name) == 0, "class name is not its own");
	CHECK(memento_class_cache(cls) == R.cache, "class in another cache");
}

static void class_find(const char *name, unsigned flags)
{
	memento_class *cls = (memento_class *)(void *)&untouched;
	int rc = memento_class_find(flags & FIND_NULL_CACHE ? NULL : R.cache, name,
	                            flags & FIND_NULL_OUT ? NULL : &cls);
	check_code(rc);
	trace(0, "class_find \"%.20s\": %d", name != NULL ? name : "(null)", rc);
	if (name == NULL || (flags & (FIND_NULL_CACHE | FIND_NULL_OUT))) {
		CHECK(rc == -EINVAL, "class_find with a NULL argument: %d", rc);
		return;
	}
	struct fclass *fc = class_named(name);
	if (fc == NULL) {
		CHECK(rc == -ENOENT, "class_find of a missing name: %d", rc);
		return;
	}
	CHECK(rc == 0 && cls == fc->cls, "class_find of \"%.20s\": %d", name, rc);
}

/* ---- foreach -------------------------------------------------------------------------- */

struct walk {
	uint64_t start, null_start; /* R.events and R.null_events when it began */
	unsigned visits, stop_at, nest_at;
	int ret;
	struct reader nest;
	int depth;
	bool nested; /* the nested program ran */
	struct fobj **seen;
	size_t nseen, capseen, null_visits;
	/* per class: objects visited, and their weights (at least 1 each) */
	uint64_t count[MAX_CLASSES], weight[MAX_CLASSES];
};

static int fz_visit(memento_class *cls, void *obj, void *ctx)
{
	struct walk *w = ctx;
	CHECK(!R.freeing, "visit inside memento_cache_free");
	w->visits++;
	struct fclass *fc = NULL;
	for (unsigned i = 0; i < R.nclasses && fc == NULL; i++)
		if (R.classes[i]->cls == cls)
			fc = R.classes[i];
	CHECK(fc != NULL, "visit of an unknown class %p", (void *)cls);
	w->count[fc->idx]++;
	if (obj == NULL) {
		w->null_visits++;
		w->weight[fc->idx]++;
	} else {
		struct fobj *o = obj;
		CHECK(o != &poison, "visit of the object of a failed create");
		CHECK(o->magic != DEAD_MAGIC && o->destroyed == 0, "visit of a destroyed object");
		CHECK(o->magic == OBJ_MAGIC && o->cls == fc->idx, "visit of a stranger");
		CHECK(o->ever_ready, "visit of an object that was never ready (detached at birth)");
		CHECK(o->entry != NULL || o->unlinked_at > w->start,
		      "visit of an object forgotten (or evicted) before the walk");
		w->weight[fc->idx] += o->weight != 0 ? o->weight : 1;
		if (w->nseen == w->capseen) {
			w->capseen = w->capseen != 0 ? 2 * w->capseen : 32;
			w->seen = realloc(w->seen, w->capseen * sizeof *w->seen);
			CHECK(w->seen != NULL, "out of memory");
		}
		w->seen[w->nseen++] = o;
	}
	if (w->visits == w->nest_at) {
		w->nested = true;
		run_block(&w->nest, w->depth + 1);
	}
	return w->visits == w->stop_at ? w->ret : 0;
}

static int ptr_order(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
	return (x > y) - (x < y);
}

static size_t times_seen(const struct walk *w, struct fobj *o)
{
	if (w->nseen == 0)
		return 0;
	struct fobj **hit = bsearch(&o, w->seen, w->nseen, sizeof *w->seen, ptr_order);
	if (hit == NULL)
		return 0;
	while (hit > w->seen && hit[-1] == o)
		hit--;
	size_t n = 0;
	while (hit + n < w->seen + w->nseen && hit[n] == o)
		n++;
	return n;
}

/*
 * A complete walk visited every object that stayed ready exactly once; a
 * bounded class's ready object that it did not visit was evicted (before
 * or during the walk: it never comes back).  And no bounded class held more
 * than its bounds.
 */
static void check_walk_complete(struct walk *w)
{
	if (w->nseen != 0)
		qsort(w->seen, w->nseen, sizeof *w->seen, ptr_order);
	size_t stable_null = 0, nevicted = 0;
	struct entry **evicted = NULL;
	for (size_t i = 0; i < R.nlinked; i++) {
		struct entry *e = R.linked[i];
		if (e->state != READY || e->ready_at > w->start)
			continue;
		if (e->obj == NULL) {
			stable_null++;
			continue;
		}
		size_t n = times_seen(w, e->obj);
		if (n == 0 && bounded(R.classes[e->cls])) {
			evicted = realloc(evicted, (nevicted + 1) * sizeof *evicted);
			CHECK(evicted != NULL, "out of memory");
			evicted[nevicted++] = e;
			continue;
		}
		CHECK(n == 1, "an object ready throughout the walk was visited %zu times", n);
	}
	for (size_t i = 0; i < nevicted; i++)
		learn_evicted(evicted[i]);
	free(evicted);
	uint64_t churn = R.null_events - w->null_start;
	CHECK(w->null_visits >= stable_null && w->null_visits <= stable_null + churn,
	      "%zu NULL objects visited, %zu ready throughout, %llu came or went",
	      w->null_visits, stable_null, (unsigned long long)churn);

	for (unsigned i = 0; i < R.nclasses; i++) {
		struct fclass *fc = R.classes[i];
		if (!bounded(fc))
			continue;
		if (fc->bound_entries != 0)
			CHECK(w->count[i] <= fc->bound_entries, "class %u: %llu objects visited, bound %llu",
			      i, (unsigned long long)w->count[i], (unsigned long long)fc->bound_entries);
		if (fc->bound_weight != 0)
			CHECK(w->weight[i] <= fc->bound_weight, "class %u: weight %llu visited, bound %llu",
			      i, (unsigned long long)w->weight[i], (unsigned long long)fc->bound_weight);
		if (!w->nested) {
			/* Nothing changed during the walk: it saw what the class holds. */
			memento_stats s = stats_of(fc);
			uint64_t live = bounded_live(fc, &s);
			CHECK(w->count[i] == live, "class %u: %llu objects visited, %llu held", i,
			      (unsigned long long)w->count[i], (unsigned long long)live);
		}
	}
}

/* Returns whether the walk was complete (then w->count holds what it saw). */
static bool walk(struct walk *w, unsigned flags)
{
	uint64_t refused = T.refused;
	R.walking++;
	int saved = api_enter(API_FOREACH);
	int rc = memento_foreach(flags & FE_NULL_CACHE ? NULL : R.cache,
	                         flags & FE_NULL_VISIT ? NULL : fz_visit, w);
	api_leave(saved);
	R.walking--;
	trace(w->depth, "foreach flags %#x: %d after %u visits", flags, rc, w->visits);
	bool complete = false;
	if (flags & (FE_NULL_CACHE | FE_NULL_VISIT)) {
		CHECK(rc == -EINVAL && w->visits == 0, "foreach with a NULL argument: %d", rc);
	} else if (rc == -ENOMEM && T.refused != refused) {
		/* Cut short: what it visited was checked one by one. */
	} else if (w->stop_at != 0 && w->visits >= w->stop_at) {
		CHECK(rc == w->ret && w->visits == w->stop_at, "foreach stopped by %d returned %d",
		      w->ret, rc);
	} else {
		CHECK(rc == 0, "complete foreach returned %d", rc);
		check_walk_complete(w);
		complete = true;
	}
	free(w->seen);
	w->seen = NULL;
	return complete;
}

static void do_foreach(unsigned stop_at, int ret, unsigned nest_at, struct reader nest,
                       unsigned flags, int depth)
{
	struct walk w = { .start = R.events, .null_start = R.null_events, .stop_at = stop_at,
		          .nest_at = nest_at, .ret = ret, .nest = nest, .depth = depth };
	(void)walk(&w, flags);
}

/* ---- guards, references, barriers ---------------------------------------------------- */

static bool guard_enter(int depth)
{
	uint64_t refused = T.refused;
	int saved = api_enter(API_GUARD_ENTER);
	int rc = memento_guard_enter(R.cache);
	api_leave(saved);
	trace(depth, "guard_enter (depth %u): %d", R.depth, rc);
	if (rc == -ENOMEM && T.refused != refused)
		return false; /* the thread's first use of the cache */
	CHECK(rc == 0, "guard_enter: %d", rc);
	R.depth++;
	return true;
}

static void guard_leave(int depth)
{
	/* The outermost leave destroys what is due: outside the guard. */
	if (R.depth > 0)
		R.depth--;
	int saved = api_enter(API_GUARD_LEAVE);
	memento_guard_leave(R.cache);
	api_leave(saved);
	trace(depth, "guard_leave (depth now %u)", R.depth);
}

static void ref_release_at(unsigned i, int depth)
{
	struct held_ref h = R.refs[i];
	R.refs[i] = R.refs[--R.nrefs];
	/* Before the call: it may destroy the object. */
	if (h.obj != NULL) {
		CHECK(h.obj->refs > 0, "a reference the model does not count");
		h.obj->refs--;
	}
	int saved = api_enter(API_REF_RELEASE);
	memento_ref_release(h.ref);
	api_leave(saved);
	trace(depth, "ref_release of class %u's (%u held)", h.cls, R.nrefs);
}

static void check_ref(const struct held_ref *h)
{
	void *obj = memento_ref_object(h->ref);
	CHECK(obj == (void *)h->obj, "memento_ref_object: %p, the reference was to %p", obj,
	      (void *)h->obj);
	if (h->obj != NULL)
		CHECK(h->obj->magic == OBJ_MAGIC && h->obj->destroyed == 0,
		      "a referenced object was destroyed");
}

static void do_ref(unsigned kind, uint8_t which, int depth)
{
	switch (kind) {
	case REF_OBJECT:
		if (R.nrefs != 0)
			check_ref(&R.refs[which % R.nrefs]);
		break;
	case REF_RELEASE:
		if (R.nrefs != 0)
			ref_release_at(which % R.nrefs, depth);
		break;
	case REF_RELEASE_NULL: {
		int saved = api_enter(API_REF_RELEASE);
		memento_ref_release(NULL);
		api_leave(saved);
		break;
	}
	case REF_OBJECT_NULL:
		CHECK(memento_ref_object(NULL) == NULL, "memento_ref_object(NULL)");
		break;
	default: /* REF_RELEASE_ALL */
		while (R.nrefs != 0)
			ref_release_at(which & 1 ? R.nrefs - 1 : 0, depth);
		break;
	}
}

/*
 * After a barrier outside every guard (and outside every walk, whose
 * snapshot holds what it is about to visit): every removed object that no
 * reference holds has been destroyed, and each guarded class's objects
 * are accounted for.  A walk of the cache (learning evictions) says which
 * objects the cache still holds.
 */
static void check_after_barrier(void)
{
	struct tracker_state st = tracker_pause();
	struct walk w = { .start = R.events, .null_start = R.null_events, .depth = MAX_DEPTH + 1 };
	bool complete = walk(&w, 0);
	tracker_resume(st);
	CHECK(complete, "the walk after the barrier was cut short");

	uint64_t held_removed[MAX_CLASSES] = { 0 };
	for (struct fobj *o = R.objs; o != NULL; o = o->next) {
		struct fclass *fc = R.classes[o->cls];
		if (!fc->guarded || o->destroyed)
			continue;
		if (o->entry == NULL && o->refs == 0)
			CHECK(!fc->has_destroy, "class %u: object %llu was removed%s, not referenced, "
			      "and not destroyed by the barrier", o->cls, (unsigned long long)o->serial,
			      o->evicted ? " (evicted)" : "");
		if (o->entry == NULL && o->refs != 0)
			held_removed[o->cls]++;
	}
	for (unsigned i = 0; i < R.nclasses; i++) {
		struct fclass *fc = R.classes[i];
		if (!fc->guarded)
			continue;
		memento_stats s = stats_of(fc);
		uint64_t accounted = w.count[i] + s.destroyed + s.failures + fc->inflight +
		                     held_removed[i];
		CHECK(s.creations == accounted,
		      "class %u after a barrier: %llu creations, but %llu live + %llu destroyed + "
		      "%llu failed + %u in flight + %llu removed and referenced",
		      i, (unsigned long long)s.creations, (unsigned long long)w.count[i],
		      (unsigned long long)s.destroyed, (unsigned long long)s.failures, fc->inflight,
		      (unsigned long long)held_removed[i]);
	}
}

static void do_barrier(unsigned flags, int depth)
{
	uint64_t refused = T.refused;
	int saved = api_enter(API_BARRIER);
	memento_cache_barrier(flags & BARRIER_NULL ? NULL : R.cache);
	api_leave(saved);
	trace(depth, "barrier%s (guard depth %u, walks %u)", flags & BARRIER_NULL ? " NULL" : "",
	      R.depth, R.walking);
	/* Inside a guard it returns at once; a refused allocation (the
	 * thread's first use of the cache) leaves it nothing to do. */
	if ((flags & BARRIER_NULL) || R.depth != 0 || R.walking != 0 || T.refused != refused)
		return;
	check_after_barrier();
}

/* ---- misc -------------------------------------------------------------------------------- */

static void check_errors(void)
{
	static const struct {
		int code;
		const char *name, *text;
	} map[] = {
#define XX(code, text) { -code, #code, text },
		MEMENTO_ERRNO_MAP(XX)
#undef XX
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
		CHECK(strcmp(memento_err_name(map[i].code), map[i].name) == 0, "name of %s",
		      map[i].name);
		CHECK(strcmp(memento_strerror(map[i].code), map[i].text) == 0, "text of %s",
		      map[i].name);
	}
	CHECK(strcmp(memento_err_name(0), "OK") == 0, "name of 0");
	for (size_t i = 0; i < 16; i++)
		check_code(error_table[i]);
	static const int others[] = { 1, 42, INT_MAX, INT_MIN + 1, -EIO, -ECANCELED, -100000 };
	for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
		check_code(others[i]);
		CHECK(strcmp(memento_err_name(others[i]), "UNKNOWN") == 0, "name of %d", others[i]);
	}
}

static void do_misc(uint8_t which)
{
	switch (which % MISC_COUNT) {
	case MISC_VERSION:
		CHECK(memento_version() == MEMENTO_VERSION_NUMBER, "version %u", memento_version());
		break;
	case MISC_ERRORS:
		check_errors();
		break;
	case MISC_DEFAULT: {
		/* Never freed, never used here: a process-wide object must stay empty. */
		memento_cache *d = memento_default_cache();
		CHECK(d != NULL && d == memento_default_cache(), "default cache");
		CHECK(memento_count(d) == 0, "default cache not empty");
		break;
	}
	default:
		CHECK(memento_class_name(NULL) == NULL, "name of NULL");
		CHECK(memento_class_cache(NULL) == NULL, "cache of NULL");
		CHECK(memento_count(NULL) == 0, "count of NULL");
		memento_cache_free(NULL);
		CHECK(memento_cache_new(NULL) == -EINVAL, "cache_new(NULL)");
		CHECK(memento_cache_new_with(NULL, NULL) == -EINVAL, "cache_new_with(NULL)");
		CHECK(memento_guard_enter(NULL) == -EINVAL, "guard_enter(NULL)");
		memento_guard_leave(NULL);
		memento_ref_release(NULL);
		CHECK(memento_ref_object(NULL) == NULL, "ref_object(NULL)");
		memento_cache_barrier(NULL);
		break;
	}
}

/* ---- the interpreter ---------------------------------------------------------------------- */

static const uint8_t opcode_of[16] = {
	OP_CLASS_NEW, OP_GET,     OP_GET_UNTIL,  OP_PEEK,  OP_FORGET, OP_AGAIN,
	OP_COUNT,     OP_FOREACH, OP_CLASS_FIND, OP_STATS, OP_MISC,   OP_FAIL,
	OP_GUARD,     OP_GET_REF, OP_REF,        OP_BARRIER,
};

static void do_again(struct reader *rd, unsigned flags, int depth)
{
	uint8_t which = rd_u8(rd);
	struct timespec ts;
	const struct timespec *dl = NULL;
	bool dl_ok = true;
	unsigned kind = flags & 7;
	if (kind == AGAIN_GET_UNTIL)
		read_deadline(rd, &ts, &dl, &dl_ok);
	if (R.nhistory == 0)
		return;
	unsigned slot = (R.history_next - 1 - which % R.nhistory) % HISTORY;
	unsigned ci = R.history[slot].cls;
	struct fclass *fc = ci != UINT_MAX ? R.classes[ci] : NULL;
	const struct recipe *r = R.history[slot].r;
	bool guarded = kind >= AGAIN_GUARDED_GET && guard_enter(depth);
	switch (kind) {
	case AGAIN_GET:
	case AGAIN_GUARDED_GET: do_get(fc, r, 0, GK_GET, NULL, true, depth); break;
	case AGAIN_PEEK:
	case AGAIN_GUARDED_PEEK: do_peek(fc, r, 0, depth); break;
	case AGAIN_FORGET:
	case AGAIN_GUARDED_FORGET: do_forget(fc, r, 0, depth); break;
	case AGAIN_GET_REF: do_get(fc, r, 0, GK_REF, NULL, true, depth); break;
	default: do_get(fc, r, 0, GK_UNTIL, dl, dl_ok, depth); break;
	}
	if (guarded)
		guard_leave(depth);
}

static void run_program(struct reader *rd, int depth)
{
	while (rd->off < rd->n && R.budget > 0) {
		R.budget--;
		uint8_t code = rd_u8(rd);
		unsigned flags = code >> 4;
		struct fclass *fc;
		const struct recipe *r;
		switch (opcode_of[code & 15]) {
		case OP_CLASS_NEW: {
			const char *name = read_name(rd);
			uint8_t cflags = rd_u8(rd);
			struct class_opts co = { .null = cflags & CN_NULL_OPTIONS };
			if (cflags & CN_OPTIONS)
				read_class_options(rd, &co);
			class_new(name, cflags, &co);
			break;
		}
		case OP_GET:
			fc = read_class(rd);
			r = read_recipe(rd, fc);
			do_get(fc, r, flags, flags & F_MANY ? GK_MANY : GK_GET, NULL, true, depth);
			break;
		case OP_GET_UNTIL: {
			struct timespec ts;
			const struct timespec *dl;
			bool dl_ok;
			fc = read_class(rd);
			read_deadline(rd, &ts, &dl, &dl_ok);
			r = read_recipe(rd, fc);
			do_get(fc, r, flags, GK_UNTIL, dl, dl_ok, depth);
			break;
		}
		case OP_PEEK:
			fc = read_class(rd);
			r = read_recipe(rd, fc);
			do_peek(fc, r, flags, depth);
			break;
		case OP_FORGET:
			fc = read_class(rd);
			r = read_recipe(rd, fc);
			do_forget(fc, r, flags, depth);
			break;
		case OP_AGAIN:
			do_again(rd, flags, depth);
			break;
		case OP_COUNT:
			check_count();
			break;
		case OP_FOREACH: {
			static const int rets[] = { 1, -1, 42, -EINVAL, INT_MAX, INT_MIN };
			unsigned stop_at = rd_u8(rd);
			int ret = rets[rd_u8(rd) % 6];
			unsigned nest_at = rd_u8(rd);
			struct reader nest = rd_slice(rd, rd_u8(rd));
			do_foreach(stop_at, ret, nest_at, nest, flags, depth);
			break;
		}
		case OP_CLASS_FIND: {
			const char *name = read_name(rd);
			class_find(name, flags);
			break;
		}
		case OP_STATS:
			check_stats(read_class(rd), flags);
			break;
		case OP_FAIL: {
			uint8_t after = rd_u8(rd);
			tracker_arm(flags & FAIL_NEVER ? -1 : after, flags & FAIL_STICKY);
			trace(depth, "fail after %u%s", after, flags & FAIL_NEVER ? ": never" : "");
			break;
		}
		case OP_GUARD:
			switch (flags % 8) {
			case GUARD_ENTER:
				guard_enter(depth);
				break;
			case GUARD_LEAVE:
				guard_leave(depth);
				break;
			case GUARD_ENTER_NULL:
				CHECK(memento_guard_enter(NULL) == -EINVAL, "guard_enter(NULL)");
				break;
			case GUARD_LEAVE_NULL:
				memento_guard_leave(NULL);
				break;
			default: { /* GUARD_SCOPED */
				struct reader block = rd_slice(rd, rd_u8(rd));
				bool entered = guard_enter(depth);
				run_block(&block, depth + 1);
				if (entered)
					guard_leave(depth);
				break;
			}
			}
			break;
		case OP_GET_REF:
			fc = read_class(rd);
			r = read_recipe(rd, fc);
			do_get(fc, r, flags, GK_REF, NULL, true, depth);
			break;
		case OP_REF:
			do_ref(flags % 8, rd_u8(rd), depth);
			break;
		case OP_BARRIER:
			do_barrier(flags, depth);
			break;
		default:
			do_misc(rd_u8(rd));
			break;
		}
		check_bounds();
	}
}

static void run_block(const struct reader *block, int depth)
{
	if (depth > MAX_DEPTH)
		return;
	struct reader rd = *block;
	rd.off = 0;
	run_program(&rd, depth);
}

/* ---- one input ---------------------------------------------------------------------------------- */

static unsigned pow2_at_least(unsigned n)
{
	unsigned p = 1;
	while (p < n)
		p <<= 1;
	return p;
}

static void cache_open(struct reader *rd)
{
	/* Room past the struct: a newer header's caller may pass a larger size. */
	union {
		memento_cache_options o;
		unsigned char raw[sizeof(memento_cache_options) + 64];
	} u;
	memset(&u, 0, sizeof u);
	u.o = (memento_cache_options)MEMENTO_CACHE_OPTIONS_INIT;
	uint8_t byte = rd_u8(rd);
	unsigned mode = (byte & 15u) % OPT_COUNT;
	R.opt_flags = byte & ~15u;
	if (R.opt_flags & OPTF_ALLOCATOR)
		u.o.allocator = (memento_allocator){ fz_alloc, fz_free, &T };
	tracker_arm(R.opt_flags & OPTF_FAIL_NEW ? rd_u8(rd) : -1, false);
	R.nshards = MEMENTO_SHARDS_DEFAULT; /* unless the options say otherwise */

	int want = 0;
	switch (mode) {
	case OPT_NEW:
		CHECK(memento_cache_new(&R.cache) == 0, "cache_new");
		return;
	case OPT_NEW_WITH_NULL:
		CHECK(memento_cache_new_with(&R.cache, NULL) == 0, "cache_new_with(NULL)");
		return;
	case OPT_CUSTOM:
		u.o.shards = rd_u8(rd);
		u.o.initial_capacity = (size_t)rd_u8(rd) * 37;
		u.o.seed = rd_u8(rd);
		R.nshards = pow2_at_least(u.o.shards != 0 ? u.o.shards : MEMENTO_SHARDS_DEFAULT);
		break;
	case OPT_SHARDS_MAX:
		u.o.shards = MEMENTO_SHARDS_MAX;
		R.nshards = MEMENTO_SHARDS_MAX;
		break;
	case OPT_SHARDS_OVER:
		u.o.shards = MEMENTO_SHARDS_MAX + 1u + rd_u8(rd);
		want = -EINVAL;
		break;
	case OPT_CAPACITY_OVER: {
		u.o.shards = rd_u8(rd);
		size_t shards = pow2_at_least(u.o.shards != 0 ? u.o.shards : MEMENTO_SHARDS_DEFAULT);
		u.o.initial_capacity = rd_u8(rd) & 1 ? SIZE_MAX
		                                      : (MEMENTO_CAPACITY_PER_SHARD_MAX + 1) * shards;
		want = -EINVAL;
		break;
	}
	case OPT_SIZE_SHORT:
		u.o.size = rd_u8(rd) % sizeof(size_t);
		want = -EINVAL;
		break;
	case OPT_SIZE_OLD: /* or a newer and larger one */
		if (rd_u8(rd) & 1) {
			u.o.size = offsetof(memento_cache_options, shards);
			u.o.initial_capacity = 100;
			u.o.shards = MEMENTO_SHARDS_MAX + 1; /* past its size: must be ignored */
			u.o.allocator.free = fz_free;        /* so must this */
		} else {
			u.o.size = sizeof u.raw;
		}
		break;
	default: /* OPT_ALLOC_HALF */
		if (rd_u8(rd) & 1)
			u.o.allocator = (memento_allocator){ fz_alloc, NULL, &T };
		else
			u.o.allocator = (memento_allocator){ NULL, fz_free, &T };
		want = -EINVAL;
		break;
	}
	memento_cache *cache = (memento_cache *)(void *)&untouched;
	uint64_t refused = T.refused;
	int rc = memento_cache_new_with(&cache, &u.o);
	trace(0, "cache_new_with mode %u flags %#x: %d", mode, R.opt_flags, rc);
	if (want == 0 && rc == -ENOMEM && T.refused != refused)
		want = -ENOMEM;
	CHECK(rc == want, "cache_new_with (mode %u): %d, expected %d", mode, rc, want);
	if (rc != 0) {
		CHECK(cache == (memento_cache *)(void *)&untouched, "failed cache_new wrote *cache");
		CHECK(T.live == 0, "a failed cache_new_with kept %zu blocks", T.live);
		tracker_arm(-1, false);
		rc = memento_cache_new_with(&cache, want == -ENOMEM ? &u.o : NULL);
		CHECK(rc == 0, "cache_new_with again: %d", rc);
	}
	R.cache = cache;
}

/* The end of a run: every key once more (in a guard), the guards left,
 * half the references released, a barrier, the counts, then the free. */
static void finish(void)
{
	tracker_arm(-1, false);
	for (size_t i = 0; i < R.nlinked; i++)
		CHECK(R.linked[i]->state != CREATING, "a creation still in flight at the top");
	/* A copy: the gets below only hit (or, in a bounded class, may create
	 * anew), but the array is the model's. */
	size_t n = R.nlinked;
	struct entry **all = malloc((n + 1) * sizeof *all);
	CHECK(all != NULL, "out of memory");
	if (n != 0)
		memcpy(all, R.linked, n * sizeof *all);
	CHECK(guard_enter(MAX_DEPTH + 1), "guard_enter failed");
	for (size_t i = 0; i < n; i++) {
		struct entry *e = all[i];
		do_get(R.classes[e->cls], e->r, e->r == &null_recipe ? F_NULL_ARGS : 0, GK_GET, NULL,
		       true, MAX_DEPTH + 1);
	}
	free(all);
	while (R.depth != 0)
		guard_leave(MAX_DEPTH + 1);
	for (unsigned i = 0; i < R.nrefs; i++)
		ref_release_at(i, MAX_DEPTH + 1); /* every other one: the rest stay held */
	do_barrier(0, MAX_DEPTH + 1);
	check_count();
	do_foreach(0, 0, 0, (struct reader){ 0 }, 0, MAX_DEPTH + 1);
	for (unsigned i = 0; i < R.nclasses; i++)
		check_stats(R.classes[i], 0);
	check_bounds();

	/* Free must not fail, and must still destroy newest first: what is
	 * left, references held or not. */
	if (R.opt_flags & OPTF_FAIL_FREE)
		tracker_arm(0, true);
	R.freeing = true;
	R.last_destroyed = UINT64_MAX;
	memento_cache_free(R.cache);
	R.freeing = false;
	tracker_arm(-1, false);
	CHECK(T.live == 0 && T.bytes == 0, "the freed cache kept %zu blocks, %zu bytes", T.live,
	      T.bytes);

	for (unsigned i = 0; i < R.nclasses; i++) {
		struct fclass *fc = R.classes[i];
		uint64_t want = fc->has_destroy ? fc->made : 0;
		uint64_t want_null = fc->has_destroy ? fc->made_null : 0;
		CHECK(fc->destroys == want && fc->destroys_null == want_null,
		      "class %u: %llu destroys (%llu of NULL) for %llu objects (%llu NULL)", i,
		      (unsigned long long)fc->destroys, (unsigned long long)fc->destroys_null,
		      (unsigned long long)want, (unsigned long long)want_null);
	}
	for (struct fobj *o = R.objs; o != NULL; o = o->next)
		CHECK(o->destroyed == (int)R.classes[o->cls]->has_destroy,
		      "object %llu of class %u destroyed %d times", (unsigned long long)o->serial,
		      o->cls, o->destroyed);
}

static void reset(void)
{
	for (unsigned i = 0; i < R.nclasses; i++) {
		free(R.classes[i]->name);
		free(R.classes[i]);
	}
	free(R.linked);
	arena_free();
	memset(&R, 0, sizeof R);
	memset(&T, 0, sizeof T);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	big_init();
	null_recipe = (struct recipe){ .nfields = 1,
		                       .fields = { { .kind = FIELD_U64, .v = 0xd1ce } } };
	struct reader rd = { data, size, 0 };
	R.budget = MAX_OPS;
	cache_open(&rd);
	class_new("base", 0, NULL);
	run_program(&rd, 0);
	finish();
	reset();
	return 0;
}
