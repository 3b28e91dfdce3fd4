/*
 * The record format: writing a header, parsing and checking a record.
 * The layout is in record.h.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "record.h"

#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

static void put_u16(unsigned char *at, uint16_t v)
{
	at[0] = (unsigned char)v;
	at[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *at, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		at[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *at, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		at[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t get_u16(const unsigned char *at)
{
	return (uint16_t)(at[0] | at[1] << 8);
}

static uint32_t get_u32(const unsigned char *at)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | at[i];
	return v;
}

static uint64_t get_u64(const unsigned char *at)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | at[i];
	return v;
}

struct memento__digest memento__digest_of(const void *p, size_t n, uint64_t seed)
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits_withSeed(p, n, seed));
	struct memento__digest d;
	memcpy(d.b, c.digest, sizeof d.b);
	return d;
}

uint64_t memento__record_class_hash(const char *name, size_t name_len)
{
	return XXH3_64bits(name, name_len);
}

void memento__record_key(uint64_t class_hash, const unsigned char *key, uint32_t key_len,
                         unsigned char out[MEMENTO__RECORD_KEY])
{
	for (int i = 0; i < 8; i++)
		out[i] = (unsigned char)(class_hash >> (56 - 8 * i));
	struct memento__digest d = memento__digest_of(key, key_len, class_hash);
	memcpy(out + 8, d.b, sizeof d.b);
}

size_t memento__record_size(uint32_t name_len, uint32_t key_len, uint64_t payload_len)
{
	uint64_t fixed = (uint64_t)MEMENTO__RECORD_HEADER + name_len + key_len;
	if (fixed > SIZE_MAX || payload_len > SIZE_MAX - fixed)
		return 0; /* cannot be (32-bit size_t) */
	return (size_t)(fixed + payload_len);
}

size_t memento__record_payload_at(const struct memento__record *r)
{
	return (size_t)MEMENTO__RECORD_HEADER + r->name_len + r->key_len;
}

/* The checksum of a record's first 72 bytes, its name and its key, which
 * lie one after the other at p. */
static uint64_t checksum_of(const unsigned char *p, uint32_t name_len, uint32_t key_len)
{
	XXH3_state_t st;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, p, 72);
	XXH3_64bits_update(&st, p + MEMENTO__RECORD_HEADER, (size_t)name_len + key_len);
	return XXH3_64bits_digest(&st);
}

void memento__record_write_head(unsigned char *out, const struct memento__record *r)
{
	put_u32(out, MEMENTO__RECORD_MAGIC);
	put_u16(out + 4, MEMENTO__RECORD_VERSION);
	put_u16(out + 6, MEMENTO__RECORD_HEADER);
	put_u64(out + 8, r->created_ns);
	put_u64(out + 16, r->compute_ns);
	memcpy(out + 24, r->fingerprint.b, 16);
	memcpy(out + 40, r->digest.b, 16);
	put_u32(out + 56, r->name_len);
	put_u32(out + 60, r->key_len);
	put_u64(out + 64, r->payload_len);
	memcpy(out + MEMENTO__RECORD_HEADER, r->name, r->name_len);
	memcpy(out + MEMENTO__RECORD_HEADER + r->name_len, r->key, r->key_len);
	put_u64(out + 72, checksum_of(out, r->name_len, r->key_len));
}

void memento__record_write(unsigned char *out, const struct memento__record *r)
{
	memento__record_write_head(out, r);
	if (r->payload_len != 0)
		memcpy(out + memento__record_payload_at(r), r->payload, (size_t)r->payload_len);
}

bool memento__record_is(const struct memento__record *r, const char *name, size_t name_len,
                        const unsigned char *key, uint32_t key_len)
{
	return r->name_len == name_len && memcmp(r->name, name, name_len) == 0 &&
	       r->key_len == key_len && memcmp(r->key, key, key_len) == 0;
}

enum memento__record_fault memento__record_parse(const void *data, size_t n,
                                                 struct memento__record *r)
{
	const unsigned char *p = data;
	if (n < MEMENTO__RECORD_HEADER)
		return MEMENTO__RECORD_SHORT;
	if (get_u32(p) != MEMENTO__RECORD_MAGIC)
		return MEMENTO__RECORD_MAGIC_BAD;
	if (get_u16(p + 4) != MEMENTO__RECORD_VERSION || get_u16(p + 6) != MEMENTO__RECORD_HEADER)
		return MEMENTO__RECORD_VERSION_BAD;
	r->name_len = get_u32(p + 56);
	r->key_len = get_u32(p + 60);
	r->payload_len = get_u64(p + 64);
	/* The lengths must add up to exactly n; no sum may wrap. */
	size_t need = memento__record_size(r->name_len, r->key_len, r->payload_len);
	if (need == 0 || need != n)
		return MEMENTO__RECORD_SHORT;
	if (get_u64(p + 72) != checksum_of(p, r->name_len, r->key_len))
		return MEMENTO__RECORD_CHECKSUM;
	r->created_ns = get_u64(p + 8);
	r->compute_ns = get_u64(p + 16);
	memcpy(r->fingerprint.b, p + 24, 16);
	memcpy(r->digest.b, p + 40, 16);
	r->name = (const char *)p + MEMENTO__RECORD_HEADER;
	r->key = p + MEMENTO__RECORD_HEADER + r->name_len;
	r->payload = r->key + r->key_len;
	struct memento__digest d = memento__digest_of(r->payload, (size_t)r->payload_len, 0);
	if (memcmp(d.b, r->digest.b, sizeof d.b) != 0)
		return MEMENTO__RECORD_DIGEST;
	return MEMENTO__RECORD_OK;
}

const char *memento__record_fault_name(enum memento__record_fault f)
{
	switch (f) {
	case MEMENTO__RECORD_OK:
		return "ok";
	case MEMENTO__RECORD_SHORT:
		return "lengths do not match the record's size";
	case MEMENTO__RECORD_MAGIC_BAD:
		return "not a mementos record (bad magic)";
	case MEMENTO__RECORD_VERSION_BAD:
		return "record format version not known to this library";
	case MEMENTO__RECORD_CHECKSUM:
		return "header or identity checksum mismatch";
	case MEMENTO__RECORD_DIGEST:
		return "payload digest mismatch";
	}
	return "unknown fault";
}
