/*
 * Writes the seed corpus of the fuzz_ops harness: small programs in the
 * language of fuzz_ops.h, each exercising a few operations.
 *
 *   mementos-fuzz-corpus tests/fuzz/corpus
 *
 * Deterministic: the same files every time, so the committed corpus can be
 * regenerated and diffed.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "fuzz_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buf {
	unsigned char b[2048];
	size_t n;
};

static void put(struct buf *b, unsigned v)
{
	if (b->n == sizeof b->b) {
		fprintf(stderr, "make_corpus: a seed outgrew its buffer\n");
		exit(1);
	}
	b->b[b->n++] = (unsigned char)v;
}

static void put64(struct buf *b, unsigned long long v)
{
	for (int i = 0; i < 8; i++)
		put(b, (unsigned)(v >> (8 * i)) & 0xff);
}

static void op(struct buf *b, unsigned opcode, unsigned flags)
{
	put(b, opcode | flags << 4);
}

static void block(struct buf *b, const struct buf *inner)
{
	if (inner->n > 255) {
		fprintf(stderr, "make_corpus: a block of %zu bytes (at most 255)\n", inner->n);
		exit(1);
	}
	put(b, (unsigned)inner->n);
	for (size_t i = 0; i < inner->n; i++)
		put(b, inner->b[i]);
}

static const struct buf empty;

/* The end of args: key return, where the key block runs, and create. */
static void args_end(struct buf *b, unsigned keyret, unsigned nest_at, const struct buf *key_block,
                     unsigned create, const struct buf *create_block)
{
	put(b, keyret);
	put(b, nest_at);
	block(b, key_block);
	put(b, create);
	block(b, create_block);
}

/* Args of one small u64 field. */
static void args_one(struct buf *b, unsigned v, unsigned keyret, unsigned create,
                     const struct buf *create_block)
{
	put(b, 1);
	put(b, FIELD_U64_SMALL);
	put(b, v);
	args_end(b, keyret, 0, &empty, create, create_block);
}

static void args_u64(struct buf *b, unsigned v, unsigned create)
{
	args_one(b, v, KEYRET_ZERO, create, &empty);
}

/* A get whose create runs a nested program. */
static void get_nested(struct buf *b, unsigned cls, unsigned v, unsigned create,
                       const struct buf *create_block)
{
	op(b, OP_GET, 0);
	put(b, cls);
	args_one(b, v, KEYRET_ZERO, create, create_block);
}

static void get_u64(struct buf *b, unsigned cls, unsigned v, unsigned create)
{
	op(b, OP_GET, 0);
	put(b, cls);
	args_u64(b, v, create);
}

/* A get with one field given as kind + payload bytes. */
static void get_field(struct buf *b, unsigned cls, const unsigned char *field, size_t n)
{
	op(b, OP_GET, 0);
	put(b, cls);
	put(b, 1);
	for (size_t i = 0; i < n; i++)
		put(b, field[i]);
	args_end(b, KEYRET_LAST, 0, &empty, CREATE_OBJECT, &empty);
}

static void class_new(struct buf *b, unsigned name, unsigned cflags)
{
	op(b, OP_CLASS_NEW, 0);
	put(b, name);
	put(b, cflags);
}

static void again(struct buf *b, unsigned kind, unsigned which)
{
	op(b, OP_AGAIN, kind);
	put(b, which);
	if (kind == AGAIN_GET_UNTIL)
		put(b, 0);
}

static void stats(struct buf *b, unsigned cls)
{
	op(b, OP_STATS, 0);
	put(b, cls);
}

static void foreach(struct buf *b, unsigned stop, unsigned ret, unsigned nest_at,
                    const struct buf *nest)
{
	op(b, OP_FOREACH, 0);
	put(b, stop);
	put(b, ret);
	put(b, nest_at);
	block(b, nest);
}

/* ---- lifetimes ---------------------------------------------------------------------- */

/* classopts' life byte: lifetime, size variant, variant index. */
#define LIFE_CACHE 0u
#define LIFE_GUARDED 1u
#define LIFE_BAD(i) (3u | (unsigned)(i) << 5)
#define LIFE_SIZE(sel, i) ((unsigned)(sel) << 2 | (unsigned)(i) << 5)

/* A class with options, named by the input (NAME_INPUT, up to 31 bytes). */
static void class_with(struct buf *b, const char *name, unsigned cflags, unsigned life,
                       unsigned oflags, unsigned entries, unsigned weight)
{
	op(b, OP_CLASS_NEW, 0);
	put(b, NAME_INPUT);
	put(b, (unsigned)strlen(name));
	for (const char *c = name; *c != '\0'; c++)
		put(b, (unsigned char)*c);
	put(b, cflags | CN_OPTIONS);
	put(b, life);
	put(b, oflags);
	put(b, entries);
	put(b, weight);
}

static void guarded(struct buf *b, const struct buf *inner)
{
	op(b, OP_GUARD, GUARD_SCOPED);
	block(b, inner);
}

static void guard(struct buf *b, unsigned kind)
{
	op(b, OP_GUARD, kind);
}

static void get_ref_u64(struct buf *b, unsigned cls, unsigned v, unsigned create)
{
	op(b, OP_GET_REF, 0);
	put(b, cls);
	args_u64(b, v, create);
}

static void peek_u64(struct buf *b, unsigned cls, unsigned v)
{
	op(b, OP_PEEK, 0);
	put(b, cls);
	args_u64(b, v, CREATE_OBJECT);
}

static void forget_u64(struct buf *b, unsigned cls, unsigned v)
{
	op(b, OP_FORGET, 0);
	put(b, cls);
	args_u64(b, v, CREATE_OBJECT);
}

static void get_until_u64(struct buf *b, unsigned cls, unsigned deadline, unsigned v)
{
	op(b, OP_GET_UNTIL, 0);
	put(b, cls);
	put(b, deadline);
	args_u64(b, v, CREATE_OBJECT);
}

static void ref(struct buf *b, unsigned kind, unsigned which)
{
	op(b, OP_REF, kind);
	put(b, which);
}

static void barrier(struct buf *b)
{
	op(b, OP_BARRIER, 0);
}

/* ---- the seeds ------------------------------------------------------------------- */

static void seed_empty(struct buf *b)
{
	put(b, OPT_NEW);
}

static void seed_hit(struct buf *b)
{
	put(b, OPT_NEW);
	get_u64(b, 0, 1, CREATE_OBJECT);
	get_u64(b, 0, 1, CREATE_OBJECT); /* a hit: create must not run */
	again(b, AGAIN_GET, 0);
	again(b, AGAIN_PEEK, 1);
	op(b, OP_COUNT, 0);
	stats(b, 0);
}

static void seed_integers(struct buf *b)
{
	static const unsigned char u64s[] = { FIELD_U64_SMALL, 7 }, i64s[] = { FIELD_I64_SMALL, 0xff },
				   ptrs[] = { FIELD_PTR_SMALL, 0 }, ptr1[] = { FIELD_PTR_SMALL, 1 };
	put(b, OPT_NEW);
	get_field(b, 0, u64s, sizeof u64s);
	get_field(b, 0, i64s, sizeof i64s);
	get_field(b, 0, ptrs, sizeof ptrs);
	get_field(b, 0, ptr1, sizeof ptr1);
	static const unsigned raw[] = { FIELD_U64, FIELD_I64, FIELD_F64, FIELD_PTR };
	for (size_t k = 0; k < sizeof raw / sizeof raw[0]; k++) {
		op(b, OP_GET, 0);
		put(b, 0);
		put(b, 1);
		put(b, raw[k]);
		put64(b, 0xffffffffffffffffull);
		args_end(b, KEYRET_ZERO, 0, &empty, CREATE_OBJECT, &empty);
	}
	op(b, OP_GET, 0); /* i64 -1 raw: the same key as i64 small 0xff */
	put(b, 0);
	put(b, 1);
	put(b, FIELD_I64);
	put64(b, 0xffffffffffffffffull);
	args_end(b, KEYRET_ZERO, 0, &empty, CREATE_OBJECT, &empty);
	op(b, OP_COUNT, 0);
}

/* u64 1, i64 1 and f64 1.0 are three keys; -0.0 is 0.0; every NaN is one. */
static void seed_typed(struct buf *b)
{
	static const unsigned char u[] = { FIELD_U64_SMALL, 1 }, i[] = { FIELD_I64_SMALL, 1 },
				   f[] = { FIELD_F64_SPECIAL, 7 };
	put(b, OPT_NEW);
	get_field(b, 0, u, sizeof u);
	get_field(b, 0, i, sizeof i);
	get_field(b, 0, f, sizeof f);
	for (unsigned s = 0; s < 12; s++) {
		unsigned char sp[] = { FIELD_F64_SPECIAL, (unsigned char)s };
		get_field(b, 0, sp, sizeof sp);
	}
	op(b, OP_COUNT, 0);
	foreach(b, 0, 0, 0, &empty);
}

static void seed_f64_raw(struct buf *b)
{
	static const unsigned long long bits[] = { 0x8000000000000000ull, 0x7ff8000000000001ull,
		                                   0xfff0000000000001ull, 0x3ff0000000000000ull };
	put(b, OPT_NEW);
	for (size_t k = 0; k < sizeof bits / sizeof bits[0]; k++) {
		op(b, OP_GET, 0);
		put(b, 0);
		put(b, 1);
		put(b, FIELD_F64);
		put64(b, bits[k]);
		args_end(b, KEYRET_ZERO, 0, &empty, CREATE_OBJECT, &empty);
	}
	op(b, OP_COUNT, 0);
}

/* ("ab","c") is not ("a","bc"); a string stops at its NUL. */
static void seed_strings(struct buf *b)
{
	put(b, OPT_NEW);
	op(b, OP_GET, 0);
	put(b, 0);
	put(b, 2);
	put(b, FIELD_STR), put(b, 2), put(b, 'a'), put(b, 'b');
	put(b, FIELD_STR), put(b, 1), put(b, 'c');
	args_end(b, KEYRET_LAST, 0, &empty, CREATE_OBJECT, &empty);
	op(b, OP_GET, 0);
	put(b, 0);
	put(b, 2);
	put(b, FIELD_STR), put(b, 1), put(b, 'a');
	put(b, FIELD_STR), put(b, 2), put(b, 'b'), put(b, 'c');
	args_end(b, KEYRET_LAST, 0, &empty, CREATE_OBJECT, &empty);
	op(b, OP_GET, 0);
	put(b, 0);
	put(b, 1);
	put(b, FIELD_STR), put(b, 4), put(b, 'a'), put(b, 0), put(b, 'z'), put(b, 'z');
	args_end(b, KEYRET_LAST, 0, &empty, CREATE_OBJECT, &empty);
	op(b, OP_GET, 0); /* "a": the same key as "a\0zz" */
	put(b, 0);
	put(b, 1);
	put(b, FIELD_STR), put(b, 1), put(b, 'a');
	args_end(b, KEYRET_LAST, 0, &empty, CREATE_OBJECT, &empty);
	op(b, OP_GET, 0); /* "" and bytes of size 0 differ */
	put(b, 0);
	put(b, 2);
	put(b, FIELD_STR), put(b, 0);
	put(b, FIELD_BYTES), put(b, 0);
	args_end(b, KEYRET_ZERO, 0, &empty, CREATE_OBJECT, &empty);
	op(b, OP_COUNT, 0);
}

static void seed_long_strings(struct buf *b)
{
	put(b, OPT_NEW);
	for (unsigned k = 0; k < 12; k++) {
		unsigned char f[] = { FIELD_STR_LONG, (unsigned char)k };
		get_field(b, 0, f, sizeof f);
	}
	again(b, AGAIN_GET, 6); /* around 4088 characters: exactly MEMENTO_KEY_MAX */
	op(b, OP_COUNT, 0);
	stats(b, 0);
}

static void seed_long_bytes(struct buf *b)
{
	put(b, OPT_NEW);
	for (unsigned k = 0; k < 11; k++) {
		unsigned char f[] = { FIELD_BYTES_LONG, (unsigned char)k };
		get_field(b, 0, f, sizeof f);
	}
	op(b, OP_COUNT, 0);
}

/* Fields that together reach the limit, exactly and by one byte. */
static void seed_key_limit(struct buf *b)
{
	put(b, OPT_NEW);
	op(b, OP_GET, 0); /* 8 + 4080 + 8 = 4096 */
	put(b, 0);
	put(b, 2);
	put(b, FIELD_BYTES_LONG), put(b, 3);
	put(b, FIELD_BYTES), put(b, 0);
	args_end(b, KEYRET_LAST, 0, &empty, CREATE_OBJECT, &empty);
	op(b, OP_GET, 0); /* 8 + 4080 + 16 = 4104: -E2BIG */
	put(b, 0);
	put(b, 2);
	put(b, FIELD_BYTES_LONG), put(b, 3);
	put(b, FIELD_U64_SMALL), put(b, 1);
	args_end(b, KEYRET_ZERO, 0, &empty, CREATE_OBJECT, &empty);
	op(b, OP_GET, 0); /* the error sticks: later fields fail too */
	put(b, 0);
	put(b, 3);
	put(b, FIELD_BYTES_LONG), put(b, 7);
	put(b, FIELD_U64_SMALL), put(b, 1);
	put(b, FIELD_STR_NULL);
	args_end(b, KEYRET_LAST, 0, &empty, CREATE_OBJECT, &empty);
	op(b, OP_COUNT, 0);
}

static void seed_null_fields(struct buf *b)
{
	put(b, OPT_NEW);
	static const unsigned char snull[] = { FIELD_STR_NULL }, bnull0[] = { FIELD_BYTES_NULL, 0 },
				   bnull5[] = { FIELD_BYTES_NULL, 5 };
	get_field(b, 0, snull, sizeof snull);
	get_field(b, 0, bnull0, sizeof bnull0);
	get_field(b, 0, bnull5, sizeof bnull5);
	for (unsigned k = 0; k < 6; k++) {
		unsigned char f[] = { FIELD_NULL_KEY, (unsigned char)k };
		get_field(b, 0, f, sizeof f);
	}
	op(b, OP_COUNT, 0);
}

static void seed_key_returns(struct buf *b)
{
	put(b, OPT_NEW);
	for (unsigned k = 0; k < 16; k++) {
		op(b, OP_GET, 0);
		put(b, 0);
		args_one(b, 3, KEYRET_ERROR | k << 2, CREATE_OBJECT, &empty);
	}
	op(b, OP_GET, 0);
	put(b, 0);
	put(b, 1);
	put(b, FIELD_U64_SMALL), put(b, 3);
	args_end(b, KEYRET_POSITIVE | 4 << 2, 0, &empty, CREATE_OBJECT, &empty);
	op(b, OP_PEEK, 0);
	put(b, 0);
	put(b, 0);
	args_end(b, KEYRET_ERROR, 0, &empty, CREATE_OBJECT, &empty);
	op(b, OP_FORGET, 0);
	put(b, 0);
	put(b, 0);
	args_end(b, KEYRET_POSITIVE, 0, &empty, CREATE_OBJECT, &empty);
	stats(b, 0);
}

static void seed_creates(struct buf *b)
{
	put(b, OPT_NEW);
	get_u64(b, 0, 1, CREATE_NULL); /* NULL is an object, cached */
	get_u64(b, 0, 1, CREATE_OBJECT);
	for (unsigned k = 0; k < 16; k++)
		get_u64(b, 0, 2, CREATE_ERROR | k << 3);
	get_u64(b, 0, 2, CREATE_POSITIVE);
	get_u64(b, 0, 2, CREATE_ERROR_SET | 1 << 3);
	op(b, OP_PEEK, 0);
	put(b, 0);
	args_u64(b, 2, CREATE_OBJECT);
	get_u64(b, 0, 2, CREATE_OBJECT); /* now it works */
	op(b, OP_COUNT, 0);
	stats(b, 0);
	foreach(b, 0, 0, 0, &empty);
}

static void seed_forget(struct buf *b)
{
	put(b, OPT_NEW);
	get_u64(b, 0, 5, CREATE_OBJECT);
	op(b, OP_FORGET, 0);
	put(b, 0);
	args_u64(b, 5, CREATE_OBJECT);
	op(b, OP_FORGET, 0); /* absent now */
	put(b, 0);
	args_u64(b, 5, CREATE_OBJECT);
	op(b, OP_PEEK, 0);
	put(b, 0);
	args_u64(b, 5, CREATE_OBJECT);
	get_u64(b, 0, 5, CREATE_NULL); /* a fresh object, NULL this time */
	again(b, AGAIN_FORGET, 0);
	again(b, AGAIN_GET, 1);
	op(b, OP_COUNT, 0);
	foreach(b, 0, 0, 0, &empty);
}

static void seed_classes(struct buf *b)
{
	put(b, OPT_NEW);
	class_new(b, NAME_A, 0);
	class_new(b, NAME_A, 0); /* taken */
	class_new(b, NAME_BASE, 0);
	class_new(b, NAME_AB, CN_NO_DESTROY);
	class_new(b, NAME_EMPTY, 0);
	class_new(b, NAME_LONG, 0);
	class_new(b, NAME_HUGE, CN_NO_DESTROY);
	class_new(b, NAME_NULL, 0);
	class_new(b, NAME_B, CN_NO_KEY);
	class_new(b, NAME_B, CN_NO_CREATE);
	class_new(b, NAME_B, CN_NULL_DESC);
	class_new(b, NAME_B, CN_NULL_OUT);
	class_new(b, NAME_B, CN_NULL_CACHE);
	op(b, OP_CLASS_NEW, 0);
	put(b, NAME_INPUT);
	put(b, 3), put(b, 'x'), put(b, 0), put(b, 'y'); /* "x" */
	put(b, 0);
	for (unsigned c = 0; c < 7; c++)
		get_u64(b, c, 1, CREATE_OBJECT);
	for (unsigned n = 0; n < NAME_COUNT; n++) {
		op(b, OP_CLASS_FIND, 0);
		put(b, n);
		if (n == NAME_INPUT)
			put(b, 1), put(b, 'x');
	}
	op(b, OP_CLASS_FIND, FIND_NULL_CACHE);
	put(b, NAME_A);
	op(b, OP_CLASS_FIND, FIND_NULL_OUT);
	put(b, NAME_A);
	for (unsigned c = 0; c < 7; c++)
		stats(b, c);
}

/* Past 8 classes the counters live in segments. */
static void seed_many_classes(struct buf *b)
{
	put(b, OPT_NEW);
	for (unsigned k = 0; k < 20; k++) {
		op(b, OP_CLASS_NEW, 0);
		put(b, NAME_INPUT);
		put(b, 2), put(b, 'c'), put(b, 'a' + k);
		put(b, k % 3 == 0 ? CN_NO_DESTROY : 0);
	}
	for (unsigned c = 0; c < 21; c++)
		get_u64(b, c, 9, CREATE_OBJECT);
	for (unsigned c = 0; c < 21; c++)
		stats(b, c);
	foreach(b, 0, 0, 0, &empty);
}

static void seed_deadlines(struct buf *b)
{
	put(b, OPT_NEW);
	for (unsigned d = 0; d < 13; d++) {
		op(b, OP_GET_UNTIL, 0);
		put(b, 0);
		put(b, d);
		args_u64(b, d % 3, CREATE_OBJECT);
	}
	op(b, OP_AGAIN, AGAIN_GET_UNTIL);
	put(b, 0);
	put(b, 7);
	stats(b, 0);
}

static void seed_nulls(struct buf *b)
{
	put(b, OPT_NEW);
	op(b, OP_GET, F_NULL_ARGS);
	put(b, 0);
	args_u64(b, 0, CREATE_OBJECT);
	op(b, OP_GET, F_NULL_ARGS);
	put(b, 0);
	args_u64(b, 0, CREATE_OBJECT);
	op(b, OP_GET, F_NULL_OUT);
	put(b, 0);
	args_u64(b, 0, CREATE_OBJECT);
	op(b, OP_PEEK, F_NULL_ARGS);
	put(b, 0);
	args_u64(b, 0, CREATE_OBJECT);
	op(b, OP_PEEK, F_NULL_OUT);
	put(b, 0);
	args_u64(b, 0, CREATE_OBJECT);
	get_u64(b, 255, 1, CREATE_OBJECT); /* NULL class */
	op(b, OP_FORGET, F_NULL_ARGS);
	put(b, 0);
	args_u64(b, 0, CREATE_OBJECT);
	op(b, OP_FORGET, 0);
	put(b, 255);
	args_u64(b, 0, CREATE_OBJECT);
	op(b, OP_STATS, F_NULL_OUT);
	put(b, 0);
	stats(b, 255);
	op(b, OP_FOREACH, FE_NULL_CACHE);
	put(b, 0), put(b, 0), put(b, 0), put(b, 0);
	op(b, OP_FOREACH, FE_NULL_VISIT);
	put(b, 0), put(b, 0), put(b, 0), put(b, 0);
	op(b, OP_MISC, 0);
	put(b, MISC_NULLS);
}

static void seed_misc(struct buf *b)
{
	put(b, OPT_NEW);
	for (unsigned k = 0; k < MISC_COUNT; k++) {
		op(b, OP_MISC, 0);
		put(b, k);
	}
}

static void seed_options(struct buf *b, unsigned mode)
{
	put(b, mode);
	put(b, 3); /* shards, or a variant */
	put(b, 1);
	put(b, 0);
	get_u64(b, 0, 1, CREATE_OBJECT);
	get_u64(b, 0, 2, CREATE_OBJECT);
	get_u64(b, 0, 1, CREATE_OBJECT);
	op(b, OP_COUNT, 0);
}

/* A create that gets keys of another class. */
static void seed_nested_other(struct buf *b)
{
	struct buf inner = { .n = 0 };
	get_u64(&inner, 1, 7, CREATE_OBJECT);
	get_u64(&inner, 1, 8, CREATE_NULL);
	op(&inner, OP_COUNT, 0);
	put(b, OPT_NEW);
	class_new(b, NAME_A, 0);
	get_nested(b, 0, 1, CREATE_OBJECT, &inner);
	again(b, AGAIN_GET, 0);
	again(b, AGAIN_GET, 1);
	op(b, OP_COUNT, 0);
	foreach(b, 0, 0, 0, &empty);
}

/* A create that asks for its own key (-EDEADLK), peeks it (-EINPROGRESS). */
static void seed_nested_self(struct buf *b)
{
	struct buf inner = { .n = 0 };
	again(&inner, AGAIN_GET, 0);
	again(&inner, AGAIN_PEEK, 0);
	again(&inner, AGAIN_GET_UNTIL, 0);
	op(&inner, OP_COUNT, 0);
	foreach(&inner, 0, 0, 0, &empty);
	put(b, OPT_NEW);
	get_nested(b, 0, 1, CREATE_OBJECT, &inner);
	stats(b, 0);
}

/* A create that fails with the -EDEADLK of its own nested get. */
static void seed_nested_deadlock_error(struct buf *b)
{
	struct buf inner = { .n = 0 };
	again(&inner, AGAIN_GET, 0);
	put(b, OPT_NEW);
	get_nested(b, 0, 4, CREATE_ERROR | 7 << 3, &inner);
	stats(b, 0);
}

/* A create that forgets its own key, then gets it: a second creation. */
static void seed_nested_forget(struct buf *b)
{
	struct buf inner = { .n = 0 };
	again(&inner, AGAIN_FORGET, 0);
	again(&inner, AGAIN_PEEK, 0);
	again(&inner, AGAIN_GET, 0);
	op(&inner, OP_COUNT, 0);
	put(b, OPT_NEW);
	get_nested(b, 0, 1, CREATE_OBJECT, &inner);
	again(b, AGAIN_GET, 0);
	foreach(b, 0, 0, 0, &empty);
	stats(b, 0);
}

/* The same, but the detached creation fails. */
static void seed_nested_forget_fail(struct buf *b)
{
	struct buf inner = { .n = 0 };
	again(&inner, AGAIN_FORGET, 0);
	put(b, OPT_NEW);
	get_nested(b, 0, 1, CREATE_ERROR, &inner);
	again(b, AGAIN_PEEK, 0);
	op(b, OP_COUNT, 0);
}

/* A key callback that gets another key while its own is half built. */
static void seed_nested_in_key(struct buf *b)
{
	struct buf inner = { .n = 0 };
	get_u64(&inner, 0, 77, CREATE_OBJECT);
	op(&inner, OP_FORGET, 0);
	put(&inner, 0);
	args_u64(&inner, 1, CREATE_OBJECT);
	put(b, OPT_NEW);
	get_u64(b, 0, 1, CREATE_OBJECT);
	op(b, OP_GET, 0);
	put(b, 0);
	put(b, 2);
	put(b, FIELD_U64_SMALL), put(b, 1);
	put(b, FIELD_STR), put(b, 3), put(b, 'k'), put(b, 'e'), put(b, 'y');
	args_end(b, KEYRET_LAST, 1, &inner, CREATE_OBJECT, &empty);
	again(b, AGAIN_GET, 0);
	op(b, OP_COUNT, 0);
}

/* A visitor that stops the walk, and one that gets and forgets. */
static void seed_foreach(struct buf *b)
{
	struct buf inner = { .n = 0 };
	op(&inner, OP_FORGET, 0);
	put(&inner, 0);
	args_u64(&inner, 2, CREATE_OBJECT);
	get_u64(&inner, 0, 100, CREATE_OBJECT);
	foreach(&inner, 0, 0, 0, &empty);
	put(b, OPT_NEW);
	for (unsigned v = 0; v < 6; v++)
		get_u64(b, 0, v, v == 3 ? CREATE_NULL : CREATE_OBJECT);
	for (unsigned r = 0; r < 6; r++)
		foreach(b, 2, r, 0, &empty);
	foreach(b, 100, 0, 0, &empty);
	foreach(b, 0, 0, 1, &inner);
	op(b, OP_COUNT, 0);
}

/* Three levels of creates, destroyed newest first. */
static void seed_nested_chain(struct buf *b)
{
	struct buf level2 = { .n = 0 }, level1 = { .n = 0 };
	get_u64(&level2, 0, 3, CREATE_OBJECT);
	get_nested(&level1, 0, 2, CREATE_OBJECT, &level2);
	put(b, OPT_NEW);
	get_nested(b, 0, 1, CREATE_OBJECT, &level1);
	op(b, OP_COUNT, 0);
}

/* A create that registers a class and uses it. */
static void seed_nested_class(struct buf *b)
{
	struct buf inner = { .n = 0 };
	class_new(&inner, NAME_B, 0);
	get_u64(&inner, 1, 1, CREATE_OBJECT);
	op(&inner, OP_CLASS_FIND, 0);
	put(&inner, NAME_B);
	put(b, OPT_NEW);
	get_u64(b, 0, 1, CREATE_OBJECT);
	get_nested(b, 0, 2, CREATE_OBJECT, &inner);
	stats(b, 1);
}

static void seed_mixed(struct buf *b)
{
	put(b, OPT_CUSTOM);
	put(b, 1), put(b, 0), put(b, 42);
	class_new(b, NAME_A, CN_NO_DESTROY);
	op(b, OP_GET, 0);
	put(b, 1);
	put(b, 4);
	put(b, FIELD_U64), put64(b, 123456789);
	put(b, FIELD_I64_SMALL), put(b, 0x80);
	put(b, FIELD_F64_SPECIAL), put(b, 1);
	put(b, FIELD_BYTES), put(b, 4), put(b, 0), put(b, 1), put(b, 2), put(b, 3);
	args_end(b, KEYRET_LAST, 0, &empty, CREATE_OBJECT, &empty);
	op(b, OP_GET, 0); /* f64 0.0 where the first had -0.0: the same key */
	put(b, 1);
	put(b, 4);
	put(b, FIELD_U64), put64(b, 123456789);
	put(b, FIELD_I64_SMALL), put(b, 0x80);
	put(b, FIELD_F64_SPECIAL), put(b, 0);
	put(b, FIELD_BYTES), put(b, 4), put(b, 0), put(b, 1), put(b, 2), put(b, 3);
	args_end(b, KEYRET_LAST, 0, &empty, CREATE_OBJECT, &empty);
	again(b, AGAIN_FORGET, 1);
	again(b, AGAIN_GET, 0);
	op(b, OP_COUNT, 0);
	stats(b, 1);
}

/* The harness's allocator, refusing the k-th allocation of a few operations. */
static void seed_alloc_fail(struct buf *b)
{
	put(b, OPT_CUSTOM | OPTF_ALLOCATOR);
	put(b, 2), put(b, 0), put(b, 0);
	for (unsigned k = 0; k < 4; k++) {
		op(b, OP_FAIL, 0);
		put(b, k);
		get_u64(b, 0, k, CREATE_OBJECT);
		again(b, AGAIN_GET, 0);
	}
	op(b, OP_FAIL, 0);
	put(b, 0);
	class_new(b, NAME_A, 0);
	class_new(b, NAME_A, 0); /* registered only now */
	op(b, OP_FAIL, 0);
	put(b, 0);
	foreach(b, 0, 0, 0, &empty);
	op(b, OP_FAIL, FAIL_STICKY);
	put(b, 1);
	get_u64(b, 1, 1, CREATE_OBJECT);
	get_u64(b, 1, 2, CREATE_OBJECT);
	again(b, AGAIN_FORGET, 5);
	op(b, OP_FAIL, FAIL_NEVER);
	put(b, 0);
	get_u64(b, 1, 2, CREATE_OBJECT);
	op(b, OP_COUNT, 0);
	stats(b, 0);
	stats(b, 1);
}

/* Growing tables while allocations fail now and then. */
static void seed_alloc_grow(struct buf *b)
{
	put(b, OPT_CUSTOM | OPTF_ALLOCATOR);
	put(b, 1), put(b, 0), put(b, 0);
	for (unsigned v = 0; v < 40; v++) {
		if (v % 7 == 3) {
			op(b, OP_FAIL, 0);
			put(b, v % 3);
		}
		get_u64(b, 0, v, CREATE_OBJECT);
	}
	op(b, OP_COUNT, 0);
}

/* Class counters past the inline ones, allocated on first use, refused. */
static void seed_alloc_counters(struct buf *b)
{
	put(b, OPT_CUSTOM | OPTF_ALLOCATOR);
	put(b, 0), put(b, 0), put(b, 0);
	for (unsigned k = 0; k < 10; k++) {
		op(b, OP_CLASS_NEW, 0);
		put(b, NAME_INPUT);
		put(b, 1), put(b, '0' + k);
		put(b, 0);
	}
	op(b, OP_FAIL, 0);
	put(b, 0);
	get_u64(b, 9, 1, CREATE_OBJECT);
	get_u64(b, 9, 1, CREATE_OBJECT);
	stats(b, 9);
}

/* Every allocation of memento_cache_free refused: destroy order must hold. */
static void seed_alloc_fail_free(struct buf *b)
{
	struct buf inner = { .n = 0 };
	get_u64(&inner, 0, 50, CREATE_OBJECT);
	put(b, OPT_CUSTOM | OPTF_ALLOCATOR | OPTF_FAIL_FREE);
	put(b, 4), put(b, 0), put(b, 0);
	for (unsigned v = 0; v < 12; v++)
		get_nested(b, 0, v, v == 5 ? CREATE_NULL : CREATE_OBJECT, v % 4 == 0 ? &inner : &empty);
	again(b, AGAIN_FORGET, 3);
	get_u64(b, 0, 8, CREATE_OBJECT);
}

/* Refusals while the cache itself is created. */
static void seed_alloc_fail_new(struct buf *b, unsigned countdown)
{
	put(b, OPT_CUSTOM | OPTF_ALLOCATOR | OPTF_FAIL_NEW);
	put(b, countdown);
	put(b, 4), put(b, 0), put(b, 0);
	get_u64(b, 0, 1, CREATE_OBJECT);
}

static void seed_alloc_fail_new0(struct buf *b) { seed_alloc_fail_new(b, 0); }
static void seed_alloc_fail_new5(struct buf *b) { seed_alloc_fail_new(b, 5); }
static void seed_alloc_fail_new9(struct buf *b) { seed_alloc_fail_new(b, 9); }

static void seed_alloc_half(struct buf *b)
{
	put(b, OPT_ALLOC_HALF);
	put(b, 1);
	get_u64(b, 0, 1, CREATE_OBJECT);
	op(b, OP_COUNT, 0);
}


/* Every invalid combination of class options (-EINVAL, nothing
 * registered), then valid ones, used. */
static void seed_class_options(struct buf *b)
{
	put(b, OPT_CUSTOM);
	put(b, 1), put(b, 0), put(b, 0);
	for (unsigned i = 0; i < 4; i++) /* size 0, 1, 8, the struct less one byte */
		class_with(b, "a", 0, LIFE_GUARDED | LIFE_SIZE(CSIZE_SHORT, i), 0, 0, 0);
	class_with(b, "a", 0, LIFE_GUARDED | LIFE_SIZE(CSIZE_TAIL_SET, 0), 0, 0, 3);
	for (unsigned i = 0; i < 4; i++) /* lifetimes 2, 3, 255, INT_MAX */
		class_with(b, "a", 0, LIFE_BAD(i), 0, 0, 0);
	class_with(b, "a", 0, LIFE_CACHE, OO_ENTRIES, 2, 0);
	class_with(b, "a", 0, LIFE_CACHE, OO_WEIGHT | OO_WEIGH, 0, 5);
	class_with(b, "a", 0, LIFE_CACHE, OO_EXPIRE, 0, 0);
	class_with(b, "a", 0, LIFE_CACHE, OO_REFRESH, 0, 0);
	class_with(b, "a", 0, LIFE_GUARDED, OO_WEIGHT, 0, 5);         /* no weigh */
	class_with(b, "a", 0, LIFE_GUARDED, OO_WEIGH, 0, 5);          /* no max_weight */
	class_with(b, "a", 0, LIFE_GUARDED, OO_EXPIRE | OO_REFRESH | OO_LATE, 0, 0); /* = */
	class_with(b, "a", 0, LIFE_GUARDED, OO_EXPIRE | OO_REFRESH | OO_LATE, 0, 1); /* > */
	class_with(b, "a", 0, LIFE_GUARDED, OO_EXPIRE | OO_REFRESH | OO_LATE | OO_HUGE, 0, 1);
	class_with(b, "a", CN_NULL_DESC, LIFE_GUARDED, 0, 0, 0);
	op(b, OP_CLASS_FIND, 0);
	put(b, NAME_A); /* none of them registered */
	/* Valid: 1 .. 7 */
	class_with(b, "a", 0, LIFE_GUARDED | LIFE_SIZE(CSIZE_LONGER, 0), 0, 0, 0);
	class_with(b, "b", 0, LIFE_CACHE, OO_TTL, 0, 0);
	class_with(b, "t", 0, LIFE_GUARDED, OO_EXPIRE | OO_REFRESH, 0, 0);
	class_with(b, "u", 0, LIFE_GUARDED, OO_REFRESH | OO_LATE | OO_TTL, 0, 1);
	class_with(b, "h", 0, LIFE_GUARDED, OO_EXPIRE | OO_REFRESH | OO_HUGE | OO_TTL, 0, 0);
	class_with(b, "e", 0, LIFE_GUARDED, OO_ENTRIES | OO_EXPIRE, 0x80, 0); /* UINT64_MAX */
	op(b, OP_CLASS_NEW, 0);
	put(b, NAME_AB);
	put(b, CN_NULL_OPTIONS);
	class_with(b, "a", 0, LIFE_BAD(0), 0, 0, 0); /* taken and invalid */
	struct buf inner = { .n = 0 };
	for (unsigned c = 1; c < 8; c++)
		get_u64(&inner, c, 1, CREATE_OBJECT);
	for (unsigned c = 1; c < 8; c++)
		get_u64(&inner, c, 1, CREATE_OBJECT);
	guarded(b, &inner);
	for (unsigned c = 0; c < 8; c++)
		stats(b, c);
	barrier(b);
	op(b, OP_COUNT, 0);
}

/* A guarded class: -EPERM outside a guard, without a key built. */
static void seed_guarded(struct buf *b)
{
	put(b, OPT_NEW);
	class_with(b, "g", 0, LIFE_GUARDED, 0, 0, 0);
	get_u64(b, 1, 1, CREATE_OBJECT);
	get_until_u64(b, 1, 3, 1);
	peek_u64(b, 1, 1);
	forget_u64(b, 1, 1); /* works anywhere: -ENOENT */
	struct buf inner = { .n = 0 }, nested = { .n = 0 };
	get_u64(&nested, 1, 3, CREATE_OBJECT);
	again(&nested, AGAIN_GET, 1);
	get_u64(&inner, 1, 1, CREATE_OBJECT);
	get_u64(&inner, 1, 1, CREATE_OBJECT); /* a hit */
	peek_u64(&inner, 1, 1);
	get_until_u64(&inner, 1, 4, 2);
	get_u64(&inner, 0, 9, CREATE_OBJECT); /* a CACHE class inside a guard */
	guarded(&inner, &nested);
	op(&inner, OP_COUNT, 0);
	stats(&inner, 1);
	guarded(b, &inner);
	guard(b, GUARD_LEAVE); /* without an enter: ignored */
	guard(b, GUARD_ENTER_NULL);
	guard(b, GUARD_LEAVE_NULL);
	get_u64(b, 1, 1, CREATE_OBJECT);
	struct buf again_inner = { .n = 0 };
	forget_u64(&again_inner, 1, 1);
	get_u64(&again_inner, 1, 1, CREATE_OBJECT); /* anew; the old one lives on */
	peek_u64(&again_inner, 1, 2);
	guarded(b, &again_inner);
	barrier(b);
	stats(b, 1);
	foreach(b, 0, 0, 0, &empty);
}

/* Guards nest; only the outermost leave ends them. */
static void seed_guard_nest(struct buf *b)
{
	put(b, OPT_CUSTOM);
	put(b, 1), put(b, 0), put(b, 0);
	class_with(b, "g", 0, LIFE_GUARDED, 0, 0, 0);
	guard(b, GUARD_ENTER);
	guard(b, GUARD_ENTER);
	get_u64(b, 1, 1, CREATE_OBJECT);
	forget_u64(b, 1, 1);
	guard(b, GUARD_LEAVE);
	get_u64(b, 1, 2, CREATE_OBJECT); /* still inside the outer one */
	again(b, AGAIN_PEEK, 0);
	guard(b, GUARD_LEAVE); /* destroys the forgotten object */
	get_u64(b, 1, 2, CREATE_OBJECT); /* -EPERM */
	guard(b, GUARD_LEAVE);
	again(b, AGAIN_GUARDED_GET, 0);
	again(b, AGAIN_GUARDED_PEEK, 0);
	again(b, AGAIN_GUARDED_FORGET, 0);
	again(b, AGAIN_GUARDED_GET, 0);
	barrier(b);
	guard(b, GUARD_ENTER);
	get_u64(b, 1, 5, CREATE_OBJECT); /* the run ends inside a guard */
	stats(b, 1);
}

/* Counted references, inside and outside guards, released in any order. */
static void seed_refs(struct buf *b)
{
	put(b, OPT_CUSTOM);
	put(b, 1), put(b, 0), put(b, 0);
	class_with(b, "g", 0, LIFE_GUARDED, 0, 0, 0);
	get_ref_u64(b, 1, 1, CREATE_OBJECT); /* outside a guard: it creates */
	get_ref_u64(b, 1, 1, CREATE_OBJECT); /* a hit */
	ref(b, REF_OBJECT, 0);
	ref(b, REF_OBJECT, 1);
	forget_u64(b, 1, 1);
	barrier(b); /* both references hold it */
	ref(b, REF_RELEASE, 1);
	barrier(b);
	ref(b, REF_OBJECT, 0);
	ref(b, REF_RELEASE, 0); /* destroyed here */
	barrier(b);
	struct buf inner = { .n = 0 };
	get_ref_u64(&inner, 1, 2, CREATE_OBJECT);
	forget_u64(&inner, 1, 2);
	ref(&inner, REF_RELEASE, 0); /* destroyed at the leave, not here */
	get_u64(&inner, 1, 3, CREATE_OBJECT);
	get_ref_u64(&inner, 1, 3, CREATE_OBJECT);
	guarded(b, &inner);
	get_ref_u64(b, 0, 5, CREATE_OBJECT); /* a CACHE class's reference */
	get_ref_u64(b, 0, 6, CREATE_NULL);
	ref(b, REF_OBJECT, 1);
	ref(b, REF_OBJECT, 2);
	ref(b, REF_RELEASE_NULL, 0);
	ref(b, REF_OBJECT_NULL, 0);
	op(b, OP_GET_REF, F_NULL_OUT);
	put(b, 1);
	args_u64(b, 1, CREATE_OBJECT);
	get_ref_u64(b, 255, 1, CREATE_OBJECT);
	for (unsigned k = 10; k < 15; k++)
		get_ref_u64(b, 1, k, CREATE_OBJECT);
	for (unsigned k = 10; k < 13; k++)
		forget_u64(b, 1, k);
	ref(b, REF_RELEASE, 3);
	ref(b, REF_RELEASE_ALL, 1); /* newest first */
	again(b, AGAIN_GET_REF, 0);
	get_ref_u64(b, 1, 20, CREATE_ERROR);
	barrier(b);
	stats(b, 1);
	stats(b, 0); /* the references still held are the free's */
}

/* A bound of 3 entries in one shard: evictions, never more than 3 held. */
static void seed_bounded(struct buf *b)
{
	put(b, OPT_CUSTOM);
	put(b, 1), put(b, 0), put(b, 0);
	class_with(b, "b", 0, LIFE_GUARDED, OO_ENTRIES, 2, 0);
	struct buf fill = { .n = 0 };
	for (unsigned k = 0; k < 8; k++)
		get_u64(&fill, 1, k, CREATE_OBJECT);
	op(&fill, OP_COUNT, 0);
	stats(&fill, 1);
	guarded(b, &fill);
	struct buf mix = { .n = 0 };
	get_u64(&mix, 1, 0, CREATE_OBJECT);
	get_u64(&mix, 1, 7, CREATE_OBJECT);
	peek_u64(&mix, 1, 5);
	forget_u64(&mix, 1, 6);
	forget_u64(&mix, 1, 1);
	foreach(&mix, 0, 0, 0, &empty);
	guarded(b, &mix);
	barrier(b);
	stats(b, 1);
	foreach(b, 0, 0, 0, &empty);
	get_ref_u64(b, 1, 20, CREATE_OBJECT);
	struct buf more = { .n = 0 };
	for (unsigned k = 21; k < 26; k++)
		get_u64(&more, 1, k, CREATE_OBJECT);
	guarded(b, &more);
	barrier(b); /* the reference holds an evicted object */
	ref(b, REF_OBJECT, 0);
	ref(b, REF_RELEASE_ALL, 0);
	barrier(b);
	op(b, OP_COUNT, 0);
	stats(b, 1);
}

/* A weight bound (10, in one shard): an object of weight 40 is returned,
 * then evicted at once; then both bounds together. */
static void seed_weighted(struct buf *b)
{
	put(b, OPT_CUSTOM);
	put(b, 1), put(b, 0), put(b, 0);
	class_with(b, "w", 0, LIFE_GUARDED, OO_WEIGHT | OO_WEIGH, 0, 9);
	class_with(b, "x", 0, LIFE_GUARDED, OO_ENTRIES | OO_WEIGHT | OO_WEIGH, 3, 11);
	struct buf inner = { .n = 0 };
	for (unsigned k = 0; k < 8; k++)
		get_u64(&inner, 1, k, CREATE_OBJECT | k << 3);
	peek_u64(&inner, 1, 7); /* the heavy one: gone */
	for (unsigned k = 0; k < 8; k++)
		get_u64(&inner, 2, k, CREATE_OBJECT | (k + 3) << 3);
	foreach(&inner, 0, 0, 0, &empty);
	guarded(b, &inner);
	barrier(b);
	stats(b, 1);
	stats(b, 2);
	get_ref_u64(b, 1, 30, CREATE_OBJECT | 7 << 3);
	ref(b, REF_OBJECT, 0);
	op(b, OP_COUNT, 0);
}

/* A bound of 3 over 16 shards: at most one per shard. */
static void seed_bounded_shards(struct buf *b)
{
	put(b, OPT_NEW);
	class_with(b, "b", 0, LIFE_GUARDED, OO_ENTRIES, 2, 0);
	struct buf inner = { .n = 0 };
	for (unsigned k = 0; k < 24; k++)
		get_u64(&inner, 1, k, CREATE_OBJECT);
	guarded(b, &inner);
	foreach(b, 0, 0, 0, &empty);
	barrier(b);
	op(b, OP_COUNT, 0);
	stats(b, 1);
}

/* Failures remembered for an hour: the error again, without a create. */
static void seed_remembered(struct buf *b)
{
	put(b, OPT_CUSTOM);
	put(b, 1), put(b, 0), put(b, 0);
	class_with(b, "r", 0, LIFE_CACHE, OO_TTL, 0, 0);
	class_with(b, "s", 0, LIFE_GUARDED, OO_TTL | OO_HUGE, 0, 0);
	get_u64(b, 1, 1, CREATE_ERROR);
	get_u64(b, 1, 1, CREATE_OBJECT); /* -EIO, remembered */
	peek_u64(b, 1, 1);
	op(b, OP_COUNT, 0);
	get_ref_u64(b, 1, 1, CREATE_OBJECT);
	foreach(b, 0, 0, 0, &empty);
	forget_u64(b, 1, 1);
	get_u64(b, 1, 1, CREATE_OBJECT); /* created at last */
	get_u64(b, 1, 2, CREATE_POSITIVE);
	get_u64(b, 1, 2, CREATE_OBJECT);
	get_u64(b, 1, 3, CREATE_ERROR | 9 << 3); /* -EOWNERDEAD */
	get_u64(b, 1, 3, CREATE_OBJECT);
	struct buf detach = { .n = 0 };
	again(&detach, AGAIN_FORGET, 0);
	get_nested(b, 1, 4, CREATE_ERROR, &detach); /* detached: not remembered */
	get_u64(b, 1, 4, CREATE_OBJECT);
	struct buf inner = { .n = 0 };
	get_u64(&inner, 2, 1, CREATE_ERROR | 2 << 3);
	get_u64(&inner, 2, 1, CREATE_OBJECT);
	peek_u64(&inner, 2, 1);
	forget_u64(&inner, 2, 1);
	get_u64(&inner, 2, 1, CREATE_OBJECT);
	guarded(b, &inner);
	barrier(b);
	op(b, OP_COUNT, 0);
	stats(b, 1);
	stats(b, 2);
}

/* Expiry and refresh that never come due within a run (an hour, or about
 * UINT64_MAX): the options' paths, a FIFO policy for expiry alone. */
static void seed_timed(struct buf *b)
{
	put(b, OPT_CUSTOM);
	put(b, 2), put(b, 0), put(b, 0);
	class_with(b, "e", 0, LIFE_GUARDED, OO_EXPIRE, 0, 0);
	class_with(b, "r", 0, LIFE_GUARDED, OO_EXPIRE | OO_REFRESH | OO_HUGE, 0, 0);
	class_with(b, "b", 0, LIFE_GUARDED, OO_ENTRIES | OO_EXPIRE | OO_REFRESH, 3, 0);
	struct buf inner = { .n = 0 };
	for (unsigned c = 1; c < 4; c++) {
		get_u64(&inner, c, 1, CREATE_OBJECT);
		get_u64(&inner, c, 2, CREATE_OBJECT);
		get_u64(&inner, c, 1, CREATE_OBJECT);
		peek_u64(&inner, c, 2);
	}
	forget_u64(&inner, 1, 1);
	foreach(&inner, 0, 0, 0, &empty);
	guarded(b, &inner);
	get_ref_u64(b, 2, 3, CREATE_OBJECT);
	barrier(b);
	for (unsigned c = 1; c < 4; c++)
		stats(b, c);
}

/* Barriers: inside a guard (nothing), inside a create, inside a visitor,
 * NULL, and outside everything. */
static void seed_barrier(struct buf *b)
{
	put(b, OPT_CUSTOM);
	put(b, 1), put(b, 0), put(b, 0);
	class_with(b, "g", 0, LIFE_GUARDED, 0, 0, 0);
	struct buf inner = { .n = 0 };
	get_u64(&inner, 1, 1, CREATE_OBJECT);
	forget_u64(&inner, 1, 1);
	barrier(&inner); /* inside the guard: returns at once */
	get_u64(&inner, 1, 2, CREATE_OBJECT);
	guarded(b, &inner);
	barrier(b);
	struct buf in_create = { .n = 0 };
	again(&in_create, AGAIN_FORGET, 1);
	barrier(&in_create);
	get_ref_u64(&in_create, 1, 4, CREATE_OBJECT);
	get_nested(b, 0, 3, CREATE_OBJECT, &in_create);
	struct buf in_visit = { .n = 0 };
	forget_u64(&in_visit, 1, 4);
	barrier(&in_visit);
	foreach(b, 0, 0, 1, &in_visit);
	op(b, OP_BARRIER, BARRIER_NULL);
	ref(b, REF_RELEASE_ALL, 0);
	barrier(b);
	stats(b, 1);
}

/* Callbacks that leave or enter guards: the key callback leaves the get's
 * guard, a create enters one it does not leave, one leaves it. */
static void seed_guard_callbacks(struct buf *b)
{
	put(b, OPT_CUSTOM);
	put(b, 1), put(b, 0), put(b, 0);
	class_with(b, "g", 0, LIFE_GUARDED, 0, 0, 0);
	struct buf leave = { .n = 0 }, enter = { .n = 0 }, scoped = { .n = 0 };
	guard(&leave, GUARD_LEAVE);
	guard(&enter, GUARD_ENTER);
	get_u64(&scoped, 1, 50, CREATE_OBJECT);
	forget_u64(&scoped, 1, 50);
	struct buf inner = { .n = 0 };
	get_u64(&inner, 1, 1, CREATE_OBJECT);
	op(&inner, OP_GET, 0); /* its key callback leaves the guard */
	put(&inner, 1);
	put(&inner, 1);
	put(&inner, FIELD_U64_SMALL), put(&inner, 1);
	args_end(&inner, KEYRET_ZERO, 0, &leave, CREATE_OBJECT, &empty);
	get_u64(&inner, 1, 1, CREATE_OBJECT); /* -EPERM now */
	guarded(b, &inner);
	struct buf inner2 = { .n = 0 };
	get_nested(&inner2, 1, 2, CREATE_OBJECT, &leave); /* its create leaves the guard */
	get_u64(&inner2, 1, 2, CREATE_OBJECT);
	guarded(b, &inner2);
	get_nested(b, 0, 3, CREATE_OBJECT, &enter); /* enters one, kept */
	get_u64(b, 1, 3, CREATE_OBJECT);
	guard(b, GUARD_LEAVE);
	struct buf inner3 = { .n = 0 };
	get_nested(&inner3, 1, 4, CREATE_OBJECT, &scoped);
	op(&inner3, OP_GUARD, GUARD_SCOPED);
	block(&inner3, &scoped);
	guarded(b, &inner3);
	barrier(b);
	stats(b, 1);
}

/* Refused allocations in the new calls: the thread's first guard, class
 * options, get_ref, a bounded class's policy, the free. */
static void seed_alloc_lifetime(struct buf *b)
{
	put(b, OPT_CUSTOM | OPTF_ALLOCATOR | OPTF_FAIL_FREE);
	put(b, 1), put(b, 0), put(b, 0);
	op(b, OP_FAIL, 0);
	put(b, 0);
	guard(b, GUARD_ENTER); /* the first use of the cache: -ENOMEM */
	guard(b, GUARD_LEAVE);
	for (unsigned k = 0; k < 4; k++) {
		op(b, OP_FAIL, 0);
		put(b, k);
		class_with(b, "b", 0, LIFE_GUARDED, OO_ENTRIES | OO_TTL, 1, 0);
	}
	op(b, OP_FAIL, FAIL_NEVER);
	put(b, 0);
	class_with(b, "b", 0, LIFE_GUARDED, OO_ENTRIES | OO_TTL, 1, 0); /* -EEXIST if it is */
	for (unsigned k = 0; k < 3; k++) {
		op(b, OP_FAIL, 0);
		put(b, k);
		get_ref_u64(b, 1, k, CREATE_OBJECT);
	}
	struct buf inner = { .n = 0 };
	for (unsigned k = 0; k < 12; k++) {
		if (k % 3 == 1) {
			op(&inner, OP_FAIL, 0);
			put(&inner, k % 4);
		}
		get_u64(&inner, 1, 10 + k, k == 5 ? CREATE_ERROR : CREATE_OBJECT);
	}
	guarded(b, &inner);
	op(b, OP_FAIL, FAIL_STICKY);
	put(b, 0);
	ref(b, REF_RELEASE, 0);
	barrier(b);
	forget_u64(b, 1, 11);
	op(b, OP_FAIL, FAIL_NEVER);
	put(b, 0);
	barrier(b);
	stats(b, 1);
}

/* More than 8 classes (counters in segments), guarded ones among them. */
static void seed_many_guarded(struct buf *b)
{
	put(b, OPT_CUSTOM);
	put(b, 1), put(b, 0), put(b, 0);
	for (unsigned k = 0; k < 10; k++) {
		char name[3] = { 'g', (char)('a' + k), 0 };
		class_with(b, name, k % 4 == 3 ? CN_NO_DESTROY : 0, k % 2 ? LIFE_GUARDED : LIFE_CACHE,
		           k % 2 && k > 5 ? OO_ENTRIES : 0, 1, 0);
	}
	for (unsigned half = 0; half < 2; half++) {
		struct buf inner = { .n = 0 };
		for (unsigned c = 1 + 5 * half; c < 6 + 5 * half; c++) {
			get_u64(&inner, c, 1, CREATE_OBJECT);
			get_u64(&inner, c, 2, CREATE_OBJECT);
			forget_u64(&inner, c, 1);
		}
		guarded(b, &inner);
	}
	barrier(b);
	for (unsigned c = 1; c < 11; c++)
		stats(b, c);
}

struct seed {
	const char *name;
	void (*make)(struct buf *b);
};

static void seed_opt_custom(struct buf *b) { seed_options(b, OPT_CUSTOM); }
static void seed_opt_null(struct buf *b) { seed_options(b, OPT_NEW_WITH_NULL); }
static void seed_opt_shards_max(struct buf *b) { seed_options(b, OPT_SHARDS_MAX); }
static void seed_opt_shards_over(struct buf *b) { seed_options(b, OPT_SHARDS_OVER); }
static void seed_opt_capacity_over(struct buf *b) { seed_options(b, OPT_CAPACITY_OVER); }
static void seed_opt_size_short(struct buf *b) { seed_options(b, OPT_SIZE_SHORT); }
static void seed_opt_size_old(struct buf *b) { seed_options(b, OPT_SIZE_OLD); }

/* memento_get_many of one key (F_MANY): misses, hits, errors, long keys,
 * nesting, NULLs and a guarded class in and out of a guard. */
static void get_many_u64(struct buf *b, unsigned cls, unsigned v, unsigned create)
{
	op(b, OP_GET, F_MANY);
	put(b, cls);
	args_u64(b, v, create);
}

static void seed_get_many(struct buf *b)
{
	put(b, OPT_NEW);
	get_many_u64(b, 0, 1, CREATE_OBJECT);
	get_many_u64(b, 0, 1, CREATE_OBJECT); /* a hit */
	get_u64(b, 0, 1, CREATE_OBJECT);      /* and for memento_get */
	get_many_u64(b, 0, 2, CREATE_ERROR);
	get_many_u64(b, 0, 3, CREATE_NULL);
	get_many_u64(b, 0, 4, CREATE_POSITIVE);
	for (unsigned k = 0; k < 8; k++) {
		unsigned char f[] = { FIELD_STR_LONG, (unsigned char)k };
		op(b, OP_GET, F_MANY);
		put(b, 0);
		put(b, 1);
		for (size_t i = 0; i < sizeof f; i++)
			put(b, f[i]);
		args_end(b, KEYRET_LAST, 0, &empty, CREATE_OBJECT, &empty);
	}
	struct buf inner = { .n = 0 };
	get_many_u64(&inner, 0, 7, CREATE_OBJECT);
	get_many_u64(&inner, 0, 5, CREATE_OBJECT); /* its own key: -EDEADLK */
	op(b, OP_GET, F_MANY);
	put(b, 0);
	args_one(b, 5, KEYRET_ZERO, CREATE_OBJECT, &inner);
	op(b, OP_GET, F_MANY | F_NULL_ARGS);
	put(b, 0);
	args_u64(b, 0, CREATE_OBJECT);
	op(b, OP_GET, F_MANY | F_NULL_OUT);
	put(b, 0);
	args_u64(b, 0, CREATE_OBJECT);
	get_many_u64(b, 255, 1, CREATE_OBJECT); /* NULL class */
	class_with(b, "g", 0, LIFE_GUARDED, 0, 0, 0);
	get_many_u64(b, 1, 1, CREATE_OBJECT); /* outside a guard: -EPERM */
	struct buf guarded_gets = { .n = 0 };
	get_many_u64(&guarded_gets, 1, 1, CREATE_OBJECT);
	get_many_u64(&guarded_gets, 1, 1, CREATE_OBJECT);
	guarded(b, &guarded_gets);
	op(b, OP_COUNT, 0);
	stats(b, 0);
	stats(b, 1);
}

static const struct seed seeds[] = {
	{ "empty", seed_empty },
	{ "hit", seed_hit },
	{ "integers", seed_integers },
	{ "typed", seed_typed },
	{ "f64-raw", seed_f64_raw },
	{ "strings", seed_strings },
	{ "long-strings", seed_long_strings },
	{ "long-bytes", seed_long_bytes },
	{ "key-limit", seed_key_limit },
	{ "null-fields", seed_null_fields },
	{ "key-returns", seed_key_returns },
	{ "creates", seed_creates },
	{ "forget", seed_forget },
	{ "classes", seed_classes },
	{ "many-classes", seed_many_classes },
	{ "deadlines", seed_deadlines },
	{ "nulls", seed_nulls },
	{ "misc", seed_misc },
	{ "opt-custom", seed_opt_custom },
	{ "opt-null", seed_opt_null },
	{ "opt-shards-max", seed_opt_shards_max },
	{ "opt-shards-over", seed_opt_shards_over },
	{ "opt-capacity-over", seed_opt_capacity_over },
	{ "opt-size-short", seed_opt_size_short },
	{ "opt-size-old", seed_opt_size_old },
	{ "nested-other", seed_nested_other },
	{ "nested-self", seed_nested_self },
	{ "nested-deadlock-error", seed_nested_deadlock_error },
	{ "nested-forget", seed_nested_forget },
	{ "nested-forget-fail", seed_nested_forget_fail },
	{ "nested-in-key", seed_nested_in_key },
	{ "nested-chain", seed_nested_chain },
	{ "nested-class", seed_nested_class },
	{ "foreach", seed_foreach },
	{ "mixed", seed_mixed },
	{ "alloc-fail", seed_alloc_fail },
	{ "alloc-grow", seed_alloc_grow },
	{ "alloc-counters", seed_alloc_counters },
	{ "alloc-fail-free", seed_alloc_fail_free },
	{ "alloc-fail-new0", seed_alloc_fail_new0 },
	{ "alloc-fail-new5", seed_alloc_fail_new5 },
	{ "alloc-fail-new9", seed_alloc_fail_new9 },
	{ "alloc-half", seed_alloc_half },
	{ "class-options", seed_class_options },
	{ "guarded", seed_guarded },
	{ "guard-nest", seed_guard_nest },
	{ "refs", seed_refs },
	{ "bounded", seed_bounded },
	{ "weighted", seed_weighted },
	{ "bounded-shards", seed_bounded_shards },
	{ "remembered", seed_remembered },
	{ "timed", seed_timed },
	{ "barrier", seed_barrier },
	{ "guard-callbacks", seed_guard_callbacks },
	{ "alloc-lifetime", seed_alloc_lifetime },
	{ "many-guarded", seed_many_guarded },
	{ "get-many", seed_get_many },
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s <corpus directory>\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
		struct buf b = { .n = 0 };
		char path[4096];
		seeds[i].make(&b);
		snprintf(path, sizeof path, "%s/%02zu-%s", argv[1], i, seeds[i].name);
		FILE *f = fopen(path, "wb");
		if (f == NULL || fwrite(b.b, 1, b.n, f) != b.n || fclose(f) != 0) {
			perror(path);
			return 1;
		}
	}
	printf("make_corpus: %zu seeds in %s\n", sizeof seeds / sizeof seeds[0], argv[1]);
	return 0;
}
