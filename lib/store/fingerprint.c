/*
 * Fingerprints: what a result was computed from.  A class's fingerprint of
 * args is the XXH3-128 of the fields its fingerprint callback appends,
 * seeded with the hash of its version; memento_key_result appends an
 * upstream result's output digest, which gives early cutoff
 * (docs/design.md, "Staleness").
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <errno.h>
#include <xxhash.h>

static const unsigned char no_fields[1];

/*
 * Where a fingerprint's fields are built: the thread's scratch key buffer
 * when it is free, as a get's key is (a revalidating get computes one
 * before its key, so the buffer is free then; gets nested in the callback
 * then build theirs on the heap), else a heap buffer.
 */
struct fields {
	memento_cache *cache;
	struct memento__thread *scratch_of; /* the thread whose scratch it is, or NULL */
	unsigned char *bytes;
};

static int fields_take(struct fields *f, memento_cache *cache)
{
	f->cache = cache;
	f->scratch_of = NULL;
	struct memento__tcache *tc = memento__tcache_for(cache);
	if (tc != NULL && !tc->thread->scratch_busy) {
		tc->thread->scratch_busy = true;
		f->scratch_of = tc->thread;
		f->bytes = tc->thread->scratch;
		return 0;
	}
	f->bytes = memento__alloc(cache, MEMENTO_KEY_MAX);
	return f->bytes != NULL ? 0 : -ENOMEM;
}

/* Also what a fingerprint callback left by cancellation must give back. */
static void fields_abandoned(void *arg)
{
	struct fields *f = arg;
	if (f->scratch_of != NULL)
		f->scratch_of->scratch_busy = false;
	else
		memento__free(f->cache, f->bytes, MEMENTO_KEY_MAX);
}

int memento__fingerprint(memento_class *cls, const void *args, struct memento__digest *out)
{
	const struct memento__persist *ps = cls->persist;
	uint64_t seed = ps != NULL ? ps->version_seed : XXH3_64bits(no_fields, 0);
	if (ps == NULL || ps->fingerprint == NULL) {
		*out = memento__digest_of(no_fields, 0, seed);
		return 0;
	}
	struct fields f;
	if (fields_take(&f, cls->cache) != 0)
		return -ENOMEM;
	memento_key key = { .bytes = f.bytes, .len = 0, .err = 0 };
	int rc;
	pthread_cleanup_push(fields_abandoned, &f);
	rc = memento__callback_result(ps->fingerprint(&key, args, cls->ctx));
	pthread_cleanup_pop(0);
	if (rc == 0)
		rc = key.err;
	/* An address means nothing in another process or after a restart: a
	 * stale record could pass for fresh. */
	if (rc == 0 && ps->store != NULL && memento__key_has_ptr(key.bytes, key.len))
		rc = -EINVAL;
	if (rc == 0)
		*out = memento__digest_of(key.bytes, key.len, seed);
	fields_abandoned(&f);
	return rc;
}

void memento__store_key_of(const memento_class *cls, const unsigned char *key, uint32_t key_len,
                           struct memento__store_key *out)
{
	memento__record_key(cls->persist->name_hash, key, key_len, out->b);
}

/* Reading an upstream record's digest: the record must be the class's,
 * for this key, with the fingerprint its inputs have now. */
struct digest_read {
	const memento_class *cls;
	const unsigned char *key;
	uint32_t key_len;
	struct memento__digest fingerprint;
	struct memento__digest digest; /* out */
};

static int digest_visit(const void *data, size_t len, void *ctx)
{
	struct digest_read *d = ctx;
	struct memento__record r;
	if (memento__record_parse(data, len, &r) != MEMENTO__RECORD_OK)
		return -EIO;
	if (!memento__record_is(&r, d->cls->name, strlen(d->cls->name), d->key, d->key_len) ||
	    memcmp(r.fingerprint.b, d->fingerprint.b, sizeof r.fingerprint.b) != 0)
		return -ENOENT;
	d->digest = r.digest;
	return 0;
}

/* Appends what stands for cls's result at entry e (key bytes) for args. */
static int append_upstream(memento_key *key, memento_class *cls, const struct memento__entry *e,
                           const void *args)
{
	struct digest_read d = { .cls = cls, .key = e->key, .key_len = memento__entry_len(e) };
	int rc = memento__fingerprint(cls, args, &d.fingerprint);
	if (rc != 0)
		return rc;
	const struct memento__persist *ps = cls->persist;
	if (ps != NULL && ps->store != NULL) {
		struct memento__store_key sk;
		memento__store_key_of(cls, d.key, d.key_len, &sk);
		/* The nearest tier that has it (a creation writes them all). */
		for (memento_store *t = ps->store; t != NULL; t = memento__store_next(t)) {
			if (memento__store_read(t, cls->name, &sk, digest_visit, &d) == 0) {
				/* 'd': an output digest, apart from the fields below. */
				memento_key_u64(key, 'd');
				return memento_key_bytes(key, d.digest.b, sizeof d.digest.b);
			}
		}
	}
	/* No bytes to digest: the upstream's identity and fingerprint (which
	 * holds its version) stand for its result. */
	memento_key_u64(key, 'i');
	memento_key_str(key, cls->name);
	memento_key_bytes(key, d.key, d.key_len);
	return memento_key_bytes(key, d.fingerprint.b, sizeof d.fingerprint.b);
}

int memento_key_result(memento_key *key, memento_class *cls, const void *args)
{
	if (key == NULL)
		return -EINVAL;
	if (key->err != 0)
		return key->err;
	int rc = -EINVAL;
	memento_ref *ref = NULL;
	if (cls != NULL)
		rc = memento_get_ref(cls, args, &ref);
	if (rc == 0) {
		rc = append_upstream(key, cls, (const struct memento__entry *)(const void *)ref, args);
		memento_ref_release(ref);
	}
	if (rc != 0 && key->err == 0)
		key->err = rc;
	return rc;
}
