/*
 * memento_key: canonical key bytes built from typed fields.
 *
 * Each field is a one-byte type tag, then either a fixed 8-byte little-endian
 * value or a 4-byte length and that many bytes.  The tag keeps u64 1, i64 1
 * and f64 1.0 apart; the length keeps ("ab","c") apart from ("a","bc").
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

/* Reserves n bytes at the end of the key, or records why not. */
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

/* One 8-byte store on the hit path, not a loop of byte stores. */
static void put_le64(unsigned char *at, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	memcpy(at, &v, sizeof v);
}

/*
 * Byte stores on purpose: written as one 4-byte store, gcc 12 turns the
 * memcpy of the field's bytes in key_sized into an inline `rep movsq`,
 * several times slower for short strings than the libc call.
 */
static void put_le32(unsigned char *at, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		at[i] = (unsigned char)(v >> (8 * i));
}

static int key_fixed(memento_key *key, unsigned char tag, uint64_t v)
{
	if (key == NULL)
		return -EINVAL;
	unsigned char *at = key_reserve(key, 1 + 8);
	if (at == NULL)
		return key->err;
	at[0] = tag;
	put_le64(at + 1, v);
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
	unsigned char *at = key_reserve(key, 1 + 4 + n);
	if (at == NULL)
		return key->err;
	at[0] = tag;
	put_le32(at + 1, (uint32_t)n);
	if (n != 0)
		memcpy(at + 5, p, n);
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
