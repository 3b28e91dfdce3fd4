/*
 * A class's persistence: its options, and the creating get through the
 * store (docs/design.md, "Persistence").
 *
 * The creating get of a key (the one thread of this process that the
 * entry's once-initialization chose) runs:
 *
 *   fp = fingerprint(args)
 *   read the record: fresh (same identity and fp, checksum, decode) -> done
 *   lock the key across processes (keylock.c), sleeping while another
 *     process computes it
 *   read again: another process may have just written it -> done
 *   create, outside every lock and transaction; encode; write and commit
 *   unlock
 *
 * So each missing key is created once per machine, and a waiting process
 * reads the result as soon as the creator's commit is followed by its
 * unlock.  No write transaction is open during create or encode.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <errno.h>
#include <time.h>
#include <xxhash.h>

int memento__persist_apply(memento_class *cls, const memento_class_options *o)
{
	if (o->flags & ~(unsigned int)MEMENTO_CLASS_REVALIDATE)
		return -EINVAL;
	/* Revalidation checks a fingerprint, and a refresh's successor entry
	 * would carry none. */
	if ((o->flags & MEMENTO_CLASS_REVALIDATE) &&
	    (o->fingerprint == NULL || o->refresh_after_ns != 0))
		return -EINVAL;
	if (o->store == NULL && o->version == NULL && o->fingerprint == NULL)
		return 0;
	if (o->store != NULL && (o->encode == NULL || o->decode == NULL))
		return -EINVAL;
	/* A refresh rebuilds an object the store would hand back unchanged. */
	if (o->store != NULL && o->refresh_after_ns != 0)
		return -EINVAL;
	memento_cache *cache = cls->cache;
	struct memento__persist *ps = memento__zalloc(cache, sizeof *ps, 0);
	if (ps == NULL)
		return -ENOMEM;
	const char *version = o->version != NULL ? o->version : "";
	size_t vlen = strlen(version);
	ps->version = memento__alloc(cache, vlen + 1);
	if (ps->version == NULL) {
		memento__free(cache, ps, sizeof *ps);
		return -ENOMEM;
	}
	memcpy(ps->version, version, vlen + 1);
	ps->version_seed = XXH3_64bits(version, vlen);
	ps->name_hash = memento__record_class_hash(cls->name, strlen(cls->name));
	ps->fingerprint = o->fingerprint;
	ps->encode = o->encode;
	ps->decode = o->decode;
	ps->store = o->store;
	if (ps->store != NULL)
		memento__store_use(ps->store, +1);
	cls->persist = ps;
	return 0;
}

void memento__persist_free(memento_class *cls)
{
	struct memento__persist *ps = cls->persist;
	if (ps == NULL)
		return;
	if (ps->store != NULL)
		memento__store_use(ps->store, -1);
	memento__free(cls->cache, ps->version, strlen(ps->version) + 1);
	memento__free(cls->cache, ps, sizeof *ps);
	cls->persist = NULL;
}

/* ---- the creating get ------------------------------------------------------- */

/* One production: what its reads compare and what its write needs. */
struct production {
	memento_class *cls;
	const unsigned char *key;
	uint32_t key_len;
	struct memento__digest fingerprint;
	struct memento__store_key store_key;
	struct memento__counters *counters;
	bool stale;  /* a read found the key's record with another fingerprint */
	bool fault;  /* a read found it damaged, or failed; counted once */
	bool *created; /* out: create ran (counted in creations) */
	void **made; /* out: the decoded object */
};

static int fresh_visit(const void *data, size_t len, void *ctx)
{
	struct production *p = ctx;
	memento_class *cls = p->cls;
	struct memento__record r;
	if (memento__record_parse(data, len, &r) != MEMENTO__RECORD_OK) {
		p->fault = true;
		return -EIO; /* damaged: recomputed and rewritten */
	}
	if (!memento__record_is(&r, cls->name, strlen(cls->name), p->key, p->key_len))
		return -ENOENT; /* another identity whose hash collided: replaced */
	if (memcmp(r.fingerprint.b, p->fingerprint.b, sizeof r.fingerprint.b) != 0) {
		p->stale = true;
		return -ENOENT;
	}
	void *obj = NULL;
	int rc = cls->persist->decode(&obj, r.payload, (size_t)r.payload_len, cls->ctx);
	if (rc != 0) {
		p->fault = true;
		return -EIO;
	}
	*p->made = obj;
	return 0;
}

/* 0 when the store held a fresh record, now decoded into *p->made. */
static int read_fresh(struct production *p)
{
	int rc = memento__store_read(p->cls->persist->store, p->cls->name, &p->store_key,
	                             fresh_visit, p);
	if (rc != 0 && rc != -ENOENT)
		p->fault = true; /* damaged, undecodable, or the store failed */
	return rc;
}

static uint64_t clock_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* What an encode callback left by cancellation must free. */
static void buf_abandoned(void *arg)
{
	memento__buf_free(arg);
}

/* Encodes obj and writes its record; counts the write or the error. */
static void write_result(struct production *p, const void *obj, uint64_t compute_ns)
{
	memento_class *cls = p->cls;
	memento_buf buf;
	memento__buf_init(&buf, cls->cache);
	int rc;
	pthread_cleanup_push(buf_abandoned, &buf);
	rc = cls->persist->encode(obj, &buf, cls->ctx);
	pthread_cleanup_pop(0);
	if (rc == 0)
		rc = buf.err;
	if (rc == 0) {
		struct memento__record head = {
			.created_ns = clock_ns(CLOCK_REALTIME),
			.compute_ns = compute_ns,
			.fingerprint = p->fingerprint,
			.digest = memento__digest_of(buf.data, buf.len, 0),
			.name = cls->name,
			.name_len = (uint32_t)strlen(cls->name),
			.key = p->key,
			.key_len = p->key_len,
			.payload = buf.data,
			.payload_len = buf.len,
		};
		rc = memento__store_write(cls->persist->store, cls->name, &p->store_key, &head);
	}
	memento__buf_free(&buf);
	memento__count(p->counters, rc == 0 ? MEMENTO__STORE_WRITES : MEMENTO__STORE_ERRORS);
}

static void unlock_abandoned(void *arg)
{
	memento__key_unlock(arg);
}

/* What a creation cancelled inside encode must destroy: its object, which
 * will never be published. */
struct made_scope {
	memento_class *cls;
	void **made;
};

static void made_abandoned(void *arg)
{
	struct made_scope *m = arg;
	if (m->cls->destroy != NULL)
		m->cls->destroy(*m->made, m->cls->ctx);
}

/* Counts what the reads found, once each: a fault, and a stale record
 * when it is recomputed (recomputing). */
static void count_findings(const struct production *p, bool recomputing)
{
	if (p->stale && recomputing)
		memento__count(p->counters, MEMENTO__STORE_STALE);
	if (p->fault)
		memento__count(p->counters, MEMENTO__STORE_ERRORS);
}

/*
 * Under the key's lock (when l holds it): reads again, else creates and
 * writes.  1: a store hit; 0: created; else create's error.
 */
static int create_locked(struct production *p, const void *args, bool locked)
{
	memento_class *cls = p->cls;
	if (locked && read_fresh(p) == 0)
		return 1;
	count_findings(p, true);
	p->stale = p->fault = false;

	memento__count(p->counters, MEMENTO__CREATIONS);
	*p->created = true;
	uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
	int rc = memento__callback_result(cls->create(p->made, args, cls->ctx));
	if (rc != 0) {
		memento__count(p->counters, MEMENTO__FAILURES);
		return rc;
	}
	if (!memento__store_writable(cls->persist->store)) {
		memento__count(p->counters, MEMENTO__STORE_ERRORS); /* not stored */
		return 0;
	}
	struct made_scope m = { cls, p->made };
	pthread_cleanup_push(made_abandoned, &m);
	write_result(p, *p->made, clock_ns(CLOCK_MONOTONIC) - t0);
	pthread_cleanup_pop(0);
	return 0;
}

int memento__persist_produce(memento_class *cls, const unsigned char *key, uint32_t key_len,
                             const void *args, const struct memento__digest *fingerprint,
                             const struct timespec *deadline,
                             struct memento__counters *counters, void **made,
                             struct memento__produced *out)
{
	if (memento__key_has_ptr(key, key_len))
		return -EINVAL; /* an address means nothing in another process */
	struct production p = {
		.cls = cls, .key = key, .key_len = key_len, .counters = counters, .made = made,
		.created = &out->created,
	};
	int rc = 0;
	if (fingerprint != NULL)
		p.fingerprint = *fingerprint;
	else
		rc = memento__fingerprint(cls, args, &p.fingerprint);
	if (rc != 0)
		return rc;
	memento__store_key_of(cls, key, key_len, &p.store_key);
	memento_store *store = cls->persist->store;

	if (read_fresh(&p) == 0) {
		rc = 1;
	} else {
		struct memento__key_lock lock = { 0 };
		/* Covers the wait, the read under the lock (decode), create and
		 * encode: a cancelled creator releases the key. */
		pthread_cleanup_push(unlock_abandoned, &lock);
		bool locked = false;
		if (memento__store_writable(store) && memento__store_has_key_locks(store)) {
			/* The 64 bits of the key's identity past the class's. */
			uint64_t h = XXH3_64bits_withSeed(p.store_key.b, sizeof p.store_key.b, 0);
			rc = memento__key_lock(store, h, deadline, &lock);
			locked = rc == 0;
			if (rc != 0 && rc != -ETIMEDOUT)
				p.fault = true; /* no lock: create all the same */
		}
		if (rc == -ETIMEDOUT) {
			out->lock_timed_out = true; /* no outcome: see get.c */
			count_findings(&p, false);
		} else {
			rc = create_locked(&p, args, locked);
		}
		pthread_cleanup_pop(0);
		memento__key_unlock(&lock);
	}
	if (rc == 1) {
		count_findings(&p, false);
		memento__count(counters, MEMENTO__STORE_HITS);
		rc = 0;
	}
	return rc;
}
