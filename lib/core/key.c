/*
 * memento_key: canonical key bytes built from typed fields.
 *
 * A key is a sequence of 8-byte little-endian words.  A fixed field is a tag
 * word (the type tag in its low byte) and the value's word; a sized field is
 * a tag word with the length in its high half, then the bytes, zero-padded
 * to a whole word.  The tag keeps u64 1, i64 1 and f64 1.0 apart; the length
 * keeps ("ab","c") apart from ("a","bc").
 *
 * Why words: XXH3 reads a key of 9 to 16 bytes as two 8-byte loads (longer
 * keys as pairs of them).  When a load spans bytes written by more than one
 * recent store, the CPU cannot forward it from the store buffer and it
 * waits for those stores to reach the cache: 8 ns of a hit, measured with a
 * tag byte and an 8-byte value.  Word-sized, word-aligned stores forward.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <xxhash.h>

enum {
	TAG_U64 = 'u',
	TAG_I64 = 'i',
	TAG_F64 = 'f',
	TAG_PTR = 'p',
	TAG_STR = 's',
	TAG_BYTES = 'b',
};

uint64_t memento__key_hash(const void *bytes, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(bytes, len, seed);
}

/* Reserves n bytes (whole words) at the end of the key, or records why not. */
static unsigned char *key_reserve(memento_key *key, size_t n)
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

/* One 8-byte store: see the top of this file. */
static void put_word(unsigned char *at, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	memcpy(at, &v, sizeof v);
}

/*
 * A string's bytes, through the C library's memcpy.  Kept out of line on
 * purpose: inlined into key_sized, gcc 12 turns the copy into `rep movsq`,
 * several times slower for short strings than the library call.
 */
static __attribute__((noinline)) void copy_bytes(unsigned char *to, const void *from, size_t n)
{
	memcpy(to, from, n);
}

static int key_fixed(memento_key *key, unsigned char tag, uint64_t v)
{
	if (key == NULL)
		return -EINVAL;
	unsigned char *at = key_reserve(key, 16);
	if (at == NULL)
		return key->err;
	put_word(at, tag);
	put_word(at + 8, v);
	return 0;
}

static int key_sized(memento_key *key, unsigned char tag, const void *p, size_t n)
{
	if (key == NULL)
		return -EINVAL;
	/* Checked before reserving so that n cannot wrap the addition. */
	if (n > MEMENTO_KEY_MAX) {
		if (key->err == 0)
			key->err = -E2BIG;
		return key->err;
	}
	size_t words = memento__round_to_words(n);
	unsigned char *at = key_reserve(key, 8 + words);
	if (at == NULL)
		return key->err;
	put_word(at, tag | (uint64_t)n << 32);
	if (n != 0) {
		put_word(at + words, 0); /* the padding of the last word */
		copy_bytes(at + 8, p, n);
	}
	return 0;
}

int memento_key_u64(memento_key *key, uint64_t value)
{
	return key_fixed(key, TAG_U64, value);
}

int memento_key_i64(memento_key *key, int64_t value)
{
	return key_fixed(key, TAG_I64, (uint64_t)value);
}

int memento_key_f64(memento_key *key, double value)
{
	uint64_t bits;
	if (isnan(value))
		value = NAN; /* every NaN is one key */
	else if (value == 0.0)
		value = 0.0; /* -0.0 == 0.0 is one key */
	memcpy(&bits, &value, sizeof bits);
	return key_fixed(key, TAG_F64, bits);
}

int memento_key_ptr(memento_key *key, const void *p)
{
	return key_fixed(key, TAG_PTR, (uint64_t)(uintptr_t)p);
}

int memento_key_str(memento_key *key, const char *s)
{
	if (key != NULL && s == NULL) {
		if (key->err == 0)
			key->err = -EINVAL;
		return -EINVAL;
	}
	/* Bounded: a string longer than the key limit fails without a full scan. */
	size_t n = s != NULL ? strnlen(s, (size_t)MEMENTO_KEY_MAX + 1) : 0;
	return key_sized(key, TAG_STR, s, n);
}

int memento_key_bytes(memento_key *key, const void *p, size_t n)
{
	if (key != NULL && p == NULL && n != 0) {
		if (key->err == 0)
			key->err = -EINVAL;
		return -EINVAL;
	}
	return key_sized(key, TAG_BYTES, p, n);
}

static uint64_t get_word(const unsigned char *at)
{
	uint64_t v;
	memcpy(&v, at, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

bool memento__key_has_ptr(const unsigned char *bytes, uint32_t len)
{
	/* Walks the fields as the appends above laid them out. */
	uint32_t at = 0;
	while (at + 8 <= len) {
		uint64_t tag = get_word(bytes + at);
		unsigned char type = (unsigned char)tag;
		if (type == TAG_PTR)
			return true;
		if (type == TAG_STR || type == TAG_BYTES)
			at += 8 + (uint32_t)memento__round_to_words((size_t)(tag >> 32));
		else
			at += 16;
	}
	return false;
}
