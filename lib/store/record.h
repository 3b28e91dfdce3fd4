/*
 * One stored result: the record format of a store (docs/design.md,
 * "Record format").  Self-contained, so that the library, the
 * mementos-store tool and the fuzzer read records with this very code.
 *
 * A record, every integer little-endian:
 *
 *   off  size  field
 *     0     4  magic "MMRC"
 *     4     2  format version (MEMENTO__RECORD_VERSION)
 *     6     2  header size (MEMENTO__RECORD_HEADER)
 *     8     8  created: CLOCK_REALTIME, ns since the epoch
 *    16     8  compute: ns that create took
 *    24    16  fingerprint: XXH3-128 of version and inputs
 *    40    16  digest: XXH3-128 of the payload (the output digest)
 *    56     4  class name length
 *    60     4  key length
 *    64     8  payload length
 *    72     8  checksum: XXH3-64 of bytes [0, 72), the name and the key
 *    80        class name, key bytes, payload; nothing after
 *
 * The checksum covers the header and the identity; the digest covers the
 * payload: together every byte, with one pass over the payload.
 *
 * Concurrency: pure functions of their arguments; any thread.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTO_RECORD_H
#define MEMENTO_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEMENTO__RECORD_MAGIC 0x43524d4du /* "MMRC" read little-endian */
#define MEMENTO__RECORD_VERSION 1u
#define MEMENTO__RECORD_HEADER 80u

/* A 128-bit digest, as bytes (XXH3-128's canonical, big-endian form). */
struct memento__digest {
	unsigned char b[16];
};

/* A record's fields; the pointers point into the record's bytes. */
struct memento__record {
	uint64_t created_ns;
	uint64_t compute_ns;
	struct memento__digest fingerprint;
	struct memento__digest digest;
	const char *name; /* not NUL-terminated */
	uint32_t name_len;
	const unsigned char *key;
	uint32_t key_len;
	const unsigned char *payload;
	uint64_t payload_len;
};

/* Why a record was refused by memento__record_parse. */
enum memento__record_fault {
	MEMENTO__RECORD_OK = 0,
	MEMENTO__RECORD_SHORT,    /* shorter than its header or its lengths */
	MEMENTO__RECORD_MAGIC_BAD,
	MEMENTO__RECORD_VERSION_BAD, /* a format this library does not read */
	MEMENTO__RECORD_CHECKSUM, /* header or identity damaged */
	MEMENTO__RECORD_DIGEST,   /* payload damaged */
};

/* XXH3-128 of n bytes, in canonical form. */
struct memento__digest memento__digest_of(const void *p, size_t n, uint64_t seed);

/*
 * Where a record is filed in LMDB: a 24-byte key, the XXH3-64 of its class
 * name (big-endian, so that a class's records sort together), then the
 * XXH3-128 of its key bytes seeded with that hash.  The record holds the
 * whole name and key, compared on every read.
 */
#define MEMENTO__RECORD_KEY 24
uint64_t memento__record_class_hash(const char *name, size_t name_len);
void memento__record_key(uint64_t class_hash, const unsigned char *key, uint32_t key_len,
                         unsigned char out[MEMENTO__RECORD_KEY]);

/* The bytes a record of these lengths takes, or 0 if it would overflow. */
size_t memento__record_size(uint32_t name_len, uint32_t key_len, uint64_t payload_len);

/*
 * Writes the header, name and key of r at out (memento__record_size bytes
 * of room), and the checksum; r->digest must be the payload's.  The
 * payload is not copied: for a record whose payload is already in place.
 */
void memento__record_write_head(unsigned char *out, const struct memento__record *r);

/* Writes the whole record r at out: its head, then r->payload (which
 * must not overlap out). */
void memento__record_write(unsigned char *out, const struct memento__record *r);

/* Whether r is the record of this identity: class name and key bytes. */
bool memento__record_is(const struct memento__record *r, const char *name, size_t name_len,
                        const unsigned char *key, uint32_t key_len);

/* Where the payload starts in a record with r's lengths. */
size_t memento__record_payload_at(const struct memento__record *r);

/*
 * Reads and checks the record in n bytes at p: every length, the
 * checksum and the payload's digest.  Fills *r (pointing into p) and
 * returns MEMENTO__RECORD_OK, or the first fault found.  Never reads
 * outside [p, p + n).  On MEMENTO__RECORD_DIGEST, *r is filled too (the
 * checksum vouched for the header and identity: the tool shows whose
 * payload is damaged); on the other faults its contents are unspecified.
 */
enum memento__record_fault memento__record_parse(const void *p, size_t n,
                                                 struct memento__record *r);

/* A short description of a fault, for the tool. */
const char *memento__record_fault_name(enum memento__record_fault f);

#endif /* MEMENTO_RECORD_H */
