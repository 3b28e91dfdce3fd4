/*
 * libFuzzer harness for the store's record decoder (lib/store/record.c):
 * whatever bytes a store file holds, memento__record_parse must neither
 * read outside them nor accept a record whose bytes were changed.
 *
 * The first input byte picks a mode:
 *   even: the rest is a record as found in a store.  Parsing must not
 *         crash; a record it accepts must lie within the input and must
 *         come out byte for byte when written back from its fields.
 *   odd:  the rest describes a record (lengths, then bytes); the harness
 *         writes it with memento__record_write, which must parse
 *         back to the same fields, then flips one bit at an offset the
 *         input chooses, which the parser must refuse.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "store/record.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "fuzz_record: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                     \
		}                                                                    \
	} while (0)

static void parse_found(const uint8_t *data, size_t size)
{
	/* A copy of exactly the input, so that ASan sees any read past it. */
	uint8_t *copy = malloc(size != 0 ? size : 1);
	CHECK(copy != NULL);
	memcpy(copy, data, size);
	struct memento__record r;
	if (memento__record_parse(copy, size, &r) == MEMENTO__RECORD_OK) {
		size_t n = memento__record_size(r.name_len, r.key_len, r.payload_len);
		CHECK(n == size);
		CHECK(r.payload + r.payload_len == copy + size);
		uint8_t *again = malloc(size);
		CHECK(again != NULL);
		memento__record_write(again, &r);
		CHECK(memcmp(again, copy, size) == 0);
		free(again);
	}
	free(copy);
}

static uint32_t take_u16(const uint8_t **p, size_t *n)
{
	uint32_t v = 0;
	for (int i = 0; i < 2 && *n > 0; i++, (*p)++, (*n)--)
		v = v << 8 | **p;
	return v;
}

static void write_then_damage(const uint8_t *data, size_t size)
{
	uint32_t flip_at = take_u16(&data, &size);
	uint32_t name_len = take_u16(&data, &size) % 64;
	uint32_t key_len = take_u16(&data, &size) % 256;
	if (name_len + key_len > size)
		return;
	struct memento__record r = { 0 };
	r.created_ns = size * 7919u;
	r.compute_ns = size;
	r.name = (const char *)data;
	r.name_len = name_len;
	r.key = data + name_len;
	r.key_len = key_len;
	r.payload = data + name_len + key_len;
	r.payload_len = size - name_len - key_len;
	r.digest = memento__digest_of(r.payload, (size_t)r.payload_len, 0);
	memset(r.fingerprint.b, (int)(size & 0xff), sizeof r.fingerprint.b);

	size_t total = memento__record_size(name_len, key_len, r.payload_len);
	CHECK(total != 0);
	uint8_t *rec = malloc(total);
	CHECK(rec != NULL);
	memento__record_write(rec, &r);

	struct memento__record back;
	CHECK(memento__record_parse(rec, total, &back) == MEMENTO__RECORD_OK);
	CHECK(back.name_len == name_len && back.key_len == key_len);
	CHECK(back.payload_len == r.payload_len);
	CHECK(memcmp(back.name, r.name, name_len) == 0);
	CHECK(memcmp(back.key, r.key, key_len) == 0);
	CHECK(memcmp(back.payload, r.payload, (size_t)r.payload_len) == 0);
	CHECK(memcmp(back.fingerprint.b, r.fingerprint.b, 16) == 0);
	CHECK(back.created_ns == r.created_ns && back.compute_ns == r.compute_ns);

	/* Any one bit changed anywhere is refused. */
	size_t bit = flip_at % (total * 8);
	rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	CHECK(memento__record_parse(rec, total, &back) != MEMENTO__RECORD_OK);
	free(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] % 2 == 0)
		parse_found(data + 1, size - 1);
	else
		write_then_damage(data + 1, size - 1);
	return 0;
}
