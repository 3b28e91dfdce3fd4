/*
 * Makes and spoils stores for tests/test_store_tool.sh, the test of
 * tools/mementos-store.
 *
 *   store_tool_fixture DIR                 a store with two classes, made
 *                                          through the library: "alpha" (3
 *                                          records, keys (u, s)) and "beta"
 *                                          (2 records, keys (s, i, f, b))
 *   store_tool_fixture DIR bulk N          N records of class "gamma" (u)
 *   store_tool_fixture DIR damage CLASS    flips the last payload byte of
 *                                          CLASS's first record, in data.mdb
 *   store_tool_fixture DIR age CLASS DAYS [EVERY]
 *                                          dates CLASS's records (every
 *                                          EVERY-th in key order) DAYS days
 *                                          back (a valid checksum: only the
 *                                          age changes)
 *   store_tool_fixture DIR corrupt         adds records that lie: lengths,
 *                                          magic, checksum, a short value, a
 *                                          short LMDB key, a record filed
 *                                          under another identity's key
 *
 * The last three work on the LMDB file directly, after the store is
 * closed, as damage from outside the library would.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <mementos.h>

#include "store/record.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What the classes compute from: a number and a string. */
struct args {
	uint64_t k;
	const char *s;
};

/* The object: a value the payload holds. */
struct val {
	uint64_t k, v;
};

/* Why: prints and exits, so every step of the fixture can fail loudly. */
static void die(const char *what, int rc)
{
	fprintf(stderr, "store_tool_fixture: %s: %d (%s)\n", what, rc,
	        rc < 0 ? memento_strerror(rc) : mdb_strerror(rc));
	exit(1);
}

/* Why: alpha's identity: a number and a name (u, s). */
static int alpha_key(memento_key *key, const void *args, void *ctx)
{
	const struct args *a = args;
	(void)ctx;
	memento_key_u64(key, a->k);
	return memento_key_str(key, a->s);
}

/* Why: beta's identity uses the other field types the tool shows. */
static int beta_key(memento_key *key, const void *args, void *ctx)
{
	const struct args *a = args;
	unsigned char b[3] = { (unsigned char)a->k, 0xab, 0xcd };
	(void)ctx;
	memento_key_str(key, a->s);
	memento_key_i64(key, -(int64_t)a->k);
	memento_key_f64(key, (double)a->k * 0.5);
	return memento_key_bytes(key, b, sizeof b);
}

/* Why: gamma's identity, for the bulk store: one number. */
static int gamma_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_u64(key, ((const struct args *)args)->k);
}

/* Why: the computation: anything deterministic will do. */
static int val_create(void **obj, const void *args, void *ctx)
{
	const struct args *a = args;
	struct val *v = malloc(sizeof *v);
	(void)ctx;
	if (v == NULL)
		return -ENOMEM;
	v->k = a->k;
	v->v = a->k * a->k + 7;
	*obj = v;
	return 0;
}

/* Why: objects are malloc'd by create and decode. */
static void val_destroy(void *obj, void *ctx)
{
	(void)ctx;
	free(obj);
}

/* Why: the payload is the struct's bytes (16). */
static int val_encode(const void *obj, memento_buf *out, void *ctx)
{
	(void)ctx;
	return memento_buf_append(out, obj, sizeof(struct val));
}

/* Why: reads back what val_encode wrote. */
static int val_decode(void **obj, const void *data, size_t len, void *ctx)
{
	(void)ctx;
	if (len != sizeof(struct val))
		return -EBADMSG;
	struct val *v = malloc(sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	memcpy(v, data, sizeof *v);
	*obj = v;
	return 0;
}

/* Why: one persisted class in cache over store. */
static memento_class *class_make(memento_cache *cache, memento_store *store, const char *name,
                                 memento_key_fn key)
{
	memento_class_desc d = { .name = name, .key = key, .create = val_create,
	                         .destroy = val_destroy };
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	o.store = store;
	o.version = "1";
	o.encode = val_encode;
	o.decode = val_decode;
	memento_class *cls;
	int rc = memento_class_new_with(cache, &d, &o, &cls);
	if (rc != 0)
		die("memento_class_new_with", rc);
	return cls;
}

/* Why: the ordinary way a store gets its records: gets through the library. */
static void make(const char *dir, uint64_t bulk)
{
	memento_store_options so = MEMENTO_STORE_OPTIONS_INIT;
	so.flags = MEMENTO_STORE_NOSYNC; /* the bulk store: thousands of commits */
	memento_store *store;
	int rc = memento_store_open(&store, dir, &so);
	if (rc != 0)
		die("memento_store_open", rc);
	memento_cache *cache;
	rc = memento_cache_new(&cache);
	if (rc != 0)
		die("memento_cache_new", rc);
	void *obj;
	if (bulk != 0) {
		memento_class *gamma = class_make(cache, store, "gamma", gamma_key);
		for (uint64_t i = 0; i < bulk; i++) {
			struct args a = { i, NULL };
			if ((rc = memento_get(gamma, &a, &obj)) != 0)
				die("memento_get gamma", rc);
		}
	} else {
		memento_class *alpha = class_make(cache, store, "alpha", alpha_key);
		memento_class *beta = class_make(cache, store, "beta", beta_key);
		static const char *const names[] = { "one", "two", "three" };
		for (uint64_t i = 1; i <= 3; i++) {
			struct args a = { i, names[i - 1] };
			if ((rc = memento_get(alpha, &a, &obj)) != 0)
				die("memento_get alpha", rc);
		}
		for (uint64_t i = 1; i <= 2; i++) {
			struct args a = { i, i == 1 ? "b\"1" : "b2" };
			if ((rc = memento_get(beta, &a, &obj)) != 0)
				die("memento_get beta", rc);
		}
	}
	memento_cache_free(cache);
	memento_store_close(store);
}

/* The raw LMDB side: data.mdb opened as the library lays it out. */
struct raw {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi results;
};

/* Why: the spoiling modes write data.mdb behind the library's back. */
static void raw_open(struct raw *r, const char *dir)
{
	int rc = mdb_env_create(&r->env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(r->env, 2);
	if (rc == 0)
		rc = mdb_env_open(r->env, dir, MDB_NOTLS, 0666);
	if (rc == 0)
		rc = mdb_txn_begin(r->env, NULL, 0, &r->txn);
	if (rc == 0)
		rc = mdb_dbi_open(r->txn, "results", 0, &r->results);
	if (rc != 0)
		die("opening data.mdb", rc);
}

/* Why: one commit for all of a mode's changes. */
static void raw_close(struct raw *r)
{
	int rc = mdb_txn_commit(r->txn);
	if (rc != 0)
		die("mdb_txn_commit", rc);
	mdb_env_close(r->env);
}

/* Why: puts a copy of n bytes under key k (LMDB's pages are read-only). */
static void raw_put(struct raw *r, const void *k, size_t klen, const void *v, size_t vlen)
{
	MDB_val key = { klen, (void *)k }, val = { vlen, (void *)v };
	int rc = mdb_put(r->txn, r->results, &key, &val, 0);
	if (rc != 0)
		die("mdb_put", rc);
}

/* Why: finds the records of a class by the name each holds, every
 * `every`-th of them in key order (1: all; 0: the first only); calls fn with
 * a writable copy, which it puts back when fn returns 1.  Returns how many. */
static int raw_each(struct raw *r, const char *cls, int every,
                    int (*fn)(unsigned char *rec, size_t n, struct memento__record *p, void *ctx),
                    void *ctx)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(r->txn, r->results, &cur);
	if (rc != 0)
		die("mdb_cursor_open", rc);
	/* Collected first: writing while the cursor walks would move it. */
	struct item {
		unsigned char k[24];
		size_t klen;
		unsigned char *v;
		size_t vlen;
	} *items = NULL;
	int n = 0, seen = 0;
	MDB_val k, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct memento__record p;
		if (memento__record_parse(v.mv_data, v.mv_size, &p) != MEMENTO__RECORD_OK ||
		    p.name_len != strlen(cls) || memcmp(p.name, cls, p.name_len) != 0 ||
		    k.mv_size != sizeof items->k)
			continue;
		if (every > 1 && seen++ % every != 0)
			continue;
		items = realloc(items, (size_t)(n + 1) * sizeof *items);
		if (items == NULL)
			die("realloc", -ENOMEM);
		memcpy(items[n].k, k.mv_data, k.mv_size);
		items[n].klen = k.mv_size;
		items[n].v = malloc(v.mv_size);
		if (items[n].v == NULL)
			die("malloc", -ENOMEM);
		memcpy(items[n].v, v.mv_data, v.mv_size);
		items[n].vlen = v.mv_size;
		n++;
		if (every == 0)
			break;
	}
	mdb_cursor_close(cur);
	for (int i = 0; i < n; i++) {
		struct memento__record p;
		if (memento__record_parse(items[i].v, items[i].vlen, &p) != MEMENTO__RECORD_OK)
			die("reparse", -EIO);
		if (fn(items[i].v, items[i].vlen, &p, ctx))
			raw_put(r, items[i].k, items[i].klen, items[i].v, items[i].vlen);
		free(items[i].v);
	}
	free(items);
	return n;
}

/* Why: a payload byte flipped is what the digest exists to catch. */
static int flip_payload(unsigned char *rec, size_t n, struct memento__record *p, void *ctx)
{
	(void)ctx;
	if (p->payload_len == 0)
		die("no payload to damage", -EINVAL);
	rec[n - 1] ^= 0x5a;
	return 1;
}

/* Why: rewrites the header with an older created_ns; write_head recomputes
 * the checksum, so the record stays valid. */
static int set_created(unsigned char *rec, size_t n, struct memento__record *p, void *ctx)
{
	(void)n;
	p->created_ns = *(const uint64_t *)ctx;
	/* write_head copies name and key from p, which point into rec: copy
	 * them out first. */
	unsigned char ident[2 * MEMENTO_KEY_MAX];
	size_t il = (size_t)p->name_len + p->key_len;
	if (il > sizeof ident)
		die("identity too long", -E2BIG);
	memcpy(ident, p->name, il);
	p->name = (const char *)ident;
	p->key = ident + p->name_len;
	memento__record_write_head(rec, p);
	return 1;
}

/* Why: keeps the first record of a class, for corrupt to make lies of. */
static int keep_copy(unsigned char *rec, size_t n, struct memento__record *p, void *ctx)
{
	unsigned char **out = ctx;
	(void)p;
	out[0] = malloc(n);
	if (out[0] == NULL)
		die("malloc", -ENOMEM);
	memcpy(out[0], rec, n);
	out[1] = (unsigned char *)(uintptr_t)n;
	return 0;
}

/* Why: little-endian fields at fixed offsets of a record (record.h). */
static void put_le(unsigned char *at, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		at[i] = (unsigned char)(v >> (8 * i));
}

/* Why: records whose lengths and sums lie, for the tool to survive and
 * report: each under a key with alpha's prefix (so that list alpha and
 * drop alpha see them), one under a 5-byte key. */
static void corrupt(struct raw *r)
{
	unsigned char *copy[2] = { NULL, NULL };
	if (raw_each(r, "alpha", 0, keep_copy, copy) != 1)
		die("no alpha record", -ENOENT);
	unsigned char *good = copy[0];
	size_t n = (size_t)(uintptr_t)copy[1];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(r->txn, r->results, &cur);
	if (rc == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	if (rc != 0)
		die("first key", rc);
	/* alpha's prefix: find a key of alpha's first record. */
	unsigned char key[24];
	for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if (v.mv_size == n && memcmp(v.mv_data, good, n) == 0)
			break;
	if (rc != 0)
		die("alpha's key", rc);
	memcpy(key, k.mv_data, sizeof key);
	mdb_cursor_close(cur);

	unsigned char *bad = malloc(n);
	if (bad == NULL)
		die("malloc", -ENOMEM);
	/* 1: a good record under a key that is not its identity's. */
	key[23] ^= 0x01;
	raw_put(r, key, sizeof key, good, n);
	/* 2: payload length that lies (huge): sums must not wrap. */
	key[23] = 0xf1;
	memcpy(bad, good, n);
	put_le(bad + 64, UINT64_MAX - 40, 8);
	raw_put(r, key, sizeof key, bad, n);
	/* 3: name length that lies. */
	key[23] = 0xf2;
	memcpy(bad, good, n);
	put_le(bad + 56, 0xffffffffu, 4);
	raw_put(r, key, sizeof key, bad, n);
	/* 4: cut short inside the header. */
	key[23] = 0xf3;
	raw_put(r, key, sizeof key, good, 40);
	/* 5: bad magic. */
	key[23] = 0xf4;
	memcpy(bad, good, n);
	bad[0] ^= 0xff;
	raw_put(r, key, sizeof key, bad, n);
	/* 6: a byte of the identity flipped: the checksum catches it. */
	key[23] = 0xf5;
	memcpy(bad, good, n);
	bad[MEMENTO__RECORD_HEADER] ^= 0x20;
	raw_put(r, key, sizeof key, bad, n);
	/* 7: three bytes under a 5-byte key. */
	raw_put(r, "\x00\x01\x02\x03\x04", 5, "abc", 3);
	/* 8: name 8 bytes longer, key 8 shorter: the sum is right, the
	 * checksum is not. */
	struct memento__record p;
	if (memento__record_parse(good, n, &p) != MEMENTO__RECORD_OK || p.key_len < 8)
		die("alpha's record", -EIO);
	key[23] = 0xf6;
	memcpy(bad, good, n);
	put_le(bad + 56, p.name_len + 8, 4);
	put_le(bad + 60, p.key_len - 8, 4);
	raw_put(r, key, sizeof key, bad, n);
	/* 9: the same lie with its checksum made right: a valid record whose
	 * identity (name "alpha" plus a key word, key cut mid-field) is not
	 * the one its LMDB key was made from. */
	key[23] = 0xf7;
	struct memento__record lie = p;
	lie.name_len += 8;
	lie.key_len -= 8;
	lie.key += 8;
	memento__record_write(bad, &lie);
	raw_put(r, key, sizeof key, bad, n);
	free(bad);
	free(good);
}

/* Why: the modes, as the test script calls them. */
int main(int argc, char **argv)
{
	if (argc == 2) {
		make(argv[1], 0);
		return 0;
	}
	if (argc == 4 && strcmp(argv[2], "bulk") == 0) {
		make(argv[1], strtoull(argv[3], NULL, 10));
		return 0;
	}
	struct raw r;
	if (argc == 4 && strcmp(argv[2], "damage") == 0) {
		raw_open(&r, argv[1]);
		if (raw_each(&r, argv[3], 0, flip_payload, NULL) != 1)
			die("no record of that class", -ENOENT);
		raw_close(&r);
		return 0;
	}
	if ((argc == 5 || argc == 6) && strcmp(argv[2], "age") == 0) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		double back = strtod(argv[4], NULL) * 86400e9;
		uint64_t ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec -
		              (uint64_t)back;
		raw_open(&r, argv[1]);
		int every = argc == 6 ? atoi(argv[5]) : 1;
		int n = raw_each(&r, argv[3], every < 1 ? 1 : every, set_created, &ns);
		raw_close(&r);
		printf("aged %d records\n", n);
		return 0;
	}
	if (argc == 3 && strcmp(argv[2], "corrupt") == 0) {
		raw_open(&r, argv[1]);
		corrupt(&r);
		raw_close(&r);
		return 0;
	}
	fprintf(stderr, "usage: store_tool_fixture DIR [bulk N | damage CLASS | age CLASS DAYS [EVERY] "
	                "| corrupt]\n");
	return 2;
}
