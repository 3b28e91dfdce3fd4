/*
 * A class's persistence: its options, and the creating get through the
 * store (docs/design.md, "Persistence").
 *
 * The creating get of a key (the one thread of this process that the
 * entry's once-initialization chose) runs, over the store's tiers (the
 * store, its next, ...; usually LMDB then Redis):
 *
 *   fp = fingerprint(args)
 *   read each tier in turn: the first fresh record (same identity and fp,
 *     checksum, decode) is the result, copied into the tiers before it
 *     (an LMDB tier's copy is written in the background: fill.c; but
 *     at once when found under the exclusions below)
 *   then tier by tier, take the key's exclusion and read that tier again:
 *     LMDB: lock the key across processes (keylock.c), sleeping while
 *       another process of the machine computes it
 *     Redis: take the key's lease (lease.c); while another holds it, poll
 *       the tier's record with a growing nap, and take the lease over when
 *       it expires
 *   create, outside every lock and transaction; encode once; write every
 *     tier, the farthest first
 *   release the exclusions, the nearest last
 *
 * So each missing key is created once in all (once per lease), a waiter
 * on the machine reads the result as soon as the creator's commit is
 * followed by its unlock, and one on another machine at its next poll.
 * No write transaction is open during create or encode.
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

/* A lease's waiter naps this long at first, then 1.5 times longer each
 * time, up to lease_ns / 10 within [NAP_FIRST_NS, NAP_MAX_NS]. */
#define NAP_FIRST_NS 1000000u /* 1 ms */
#define NAP_MAX_NS 25000000u  /* 25 ms */

/* What one tier's exclusion holds; on the creator's stack. */
struct tier_hold {
	struct memento__key_lock lock;
	struct memento__lease lease;
};

/* One production: what its reads compare and what its write needs. */
struct production {
	memento_class *cls;
	const unsigned char *key;
	uint32_t key_len;
	struct memento__digest fingerprint;
	struct memento__store_key store_key;
	struct memento__counters *counters;
	memento_store *tiers[MEMENTO__STORE_TIERS_MAX];
	unsigned int ntiers;
	struct tier_hold holds[MEMENTO__STORE_TIERS_MAX];
	bool copy_wanted;    /* the tier being read is not the first: keep the record */
	unsigned char *copy; /* the fresh record read, for the nearer tiers */
	size_t copy_len;
	char token[MEMENTO__LEASE_TOKEN]; /* for every lease it takes */
	bool has_token;
	bool waited;       /* counted in remote_waits */
	bool excluding;    /* taking or holding the tiers' exclusions */
	bool stale;        /* a read found the key's record with another fingerprint */
	bool fault;        /* a read found it damaged, or failed; counted once */
	bool remote_fault; /* ... in a Redis tier */
	bool *created; /* out: create ran (counted in creations) */
	void **made;   /* out: the decoded object */
};

static int fresh_visit(const void *data, size_t len, void *ctx)
{
	struct production *p = ctx;
	memento_class *cls = p->cls;
	struct memento__record r;
	if (memento__record_parse(data, len, &r) != MEMENTO__RECORD_OK)
		return -EBADMSG; /* damaged: recomputed and rewritten */
	if (!memento__record_is(&r, cls->name, strlen(cls->name), p->key, p->key_len))
		return -ENOENT; /* another identity whose hash collided: replaced */
	if (memcmp(r.fingerprint.b, p->fingerprint.b, sizeof r.fingerprint.b) != 0) {
		p->stale = true;
		return -ENOENT;
	}
	void *obj = NULL;
	int rc = cls->persist->decode(&obj, r.payload, (size_t)r.payload_len, cls->ctx);
	if (rc != 0)
		return -EBADMSG;
	*p->made = obj;
	if (p->copy_wanted) {
		/* Out of memory: the nearer tiers go without. */
		p->copy = malloc(len);
		if (p->copy != NULL) {
			memcpy(p->copy, data, len);
			p->copy_len = len;
		}
	}
	return 0;
}

static void count_write(struct production *p, memento_store *tier, int rc)
{
	memento__count(p->counters, rc == 0 ? MEMENTO__STORE_WRITES : MEMENTO__STORE_ERRORS);
	if (rc != 0 && memento__store_is_remote(tier))
		memento__count(p->counters, MEMENTO__REMOTE_ERRORS);
}

/* Copies the record read from tier `upto` into the writable tiers before
 * it: queued for an LMDB tier's writer (fill.c; counted as written once
 * queued), else written here. */
static void fill_nearer(struct production *p, unsigned int upto)
{
	struct memento__record head;
	if (p->copy == NULL ||
	    memento__record_parse(p->copy, p->copy_len, &head) != MEMENTO__RECORD_OK)
		upto = 0; /* cannot happen: the same bytes parsed in the visit */
	for (unsigned int i = upto; i-- > 0;) {
		memento_store *tier = p->tiers[i];
		if (!memento__store_writable(tier))
			continue;
		/* Under the exclusions, written now: a process waiting on the
		 * LMDB tier's key lock reads it as soon as the lock goes. */
		int rc = -EAGAIN;
		if (!memento__store_is_remote(tier) && !p->excluding)
			rc = memento__fill_queue(tier, &p->store_key, p->copy, p->copy_len);
		if (rc != 0)
			rc = memento__store_write(tier, p->cls->name, &p->store_key, &head);
		count_write(p, tier, rc);
	}
	free(p->copy);
	p->copy = NULL;
}

/* Reads tier i: 0 when it held a fresh record, now decoded into *p->made
 * (and copied into the tiers before it), counted as a hit; -ENOENT (none,
 * or stale), -EBADMSG (a bad record), or the store's error. */
static int read_fresh(struct production *p, unsigned int i)
{
	memento_store *tier = p->tiers[i];
	p->copy_wanted = i > 0;
	int rc = memento__store_read(tier, p->cls->name, &p->store_key, fresh_visit, p);
	if (rc == 0) {
		memento__count(p->counters, MEMENTO__STORE_HITS);
		if (memento__store_is_remote(tier))
			memento__count(p->counters, MEMENTO__REMOTE_HITS);
		if (i > 0)
			fill_nearer(p, i);
	} else if (rc != -ENOENT) {
		/* damaged, undecodable, or the store failed */
		p->fault = true;
		if (memento__store_is_remote(tier))
			p->remote_fault = true;
	}
	return rc;
}

/* What an encode callback left by cancellation must free. */
static void buf_abandoned(void *arg)
{
	memento__buf_free(arg);
}

/* Encodes obj and writes its record to every tier, the farthest first
 * (a Redis tier's waiters poll it; the nearer tiers' wait on locks
 * released after all writes); counts each write or error. */
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
	if (rc != 0) {
		memento__buf_free(&buf);
		memento__count(p->counters, MEMENTO__STORE_ERRORS);
		return;
	}
	struct memento__record head = {
		.created_ns = memento__clock_ns(CLOCK_REALTIME),
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
	/* Off: a cancelled write would leak buf (LMDB's are off anyway). */
	int cancel = memento__cancel_off();
	for (unsigned int i = p->ntiers; i-- > 0;) {
		if (memento__store_writable(p->tiers[i]))
			count_write(p, p->tiers[i],
			            memento__store_write(p->tiers[i], cls->name, &p->store_key,
			                                 &head));
	}
	memento__buf_free(&buf);
	memento__cancel_restore(cancel);
}

/* Releases every tier's exclusion, the nearest last. */
static void holds_release(struct production *p)
{
	for (unsigned int i = p->ntiers; i-- > 0;) {
		memento__redis_lease_release(&p->holds[i].lease);
		memento__key_unlock(&p->holds[i].lock);
	}
}

static void holds_abandoned(void *arg)
{
	holds_release(arg);
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
	if (p->remote_fault)
		memento__count(p->counters, MEMENTO__REMOTE_ERRORS);
}

/* Creates (no fresh record in any tier, the exclusions held) and writes. */
static int create_and_write(struct production *p, const void *args)
{
	memento_class *cls = p->cls;
	count_findings(p, true);
	p->stale = p->fault = p->remote_fault = false;

	memento__count(p->counters, MEMENTO__CREATIONS);
	*p->created = true;
	uint64_t t0 = memento__clock_ns(CLOCK_MONOTONIC);
	int rc = memento__callback_result(cls->create(p->made, args, cls->ctx));
	if (rc != 0) {
		memento__count(p->counters, MEMENTO__FAILURES);
		return rc;
	}
	bool writable = false;
	for (unsigned int i = 0; i < p->ntiers; i++)
		writable |= memento__store_writable(p->tiers[i]);
	if (!writable) {
		memento__count(p->counters, MEMENTO__STORE_ERRORS); /* not stored */
		return 0;
	}
	struct made_scope m = { cls, p->made };
	pthread_cleanup_push(made_abandoned, &m);
	write_result(p, *p->made, memento__clock_ns(CLOCK_MONOTONIC) - t0);
	pthread_cleanup_pop(0);
	return 0;
}

/* Takes tier i's lease, waiting while another holds it.  1: a fresh record
 * came (a hit); 0: go on (lease held, or the tier is away: computed
 * without it); -ETIMEDOUT: the deadline passed while it waited. */
static int lease_wait(struct production *p, unsigned int i, const struct timespec *deadline)
{
	memento_store *tier = p->tiers[i];
	uint64_t nap = NAP_FIRST_NS, nap_max = memento__store_lease_ns(tier) / 10;
	nap_max = nap_max < NAP_FIRST_NS ? NAP_FIRST_NS : nap_max > NAP_MAX_NS ? NAP_MAX_NS : nap_max;
	if (!p->has_token) {
		memento__lease_token(p->token);
		p->has_token = true;
	}
	for (;;) {
		int rc = memento__store_lease_take(tier, p->cls->name, &p->store_key, p->token,
		                                   &p->holds[i].lease);
		if (rc == 0)
			return read_fresh(p, i) == 0 ? 1 : 0; /* published just before? */
		if (rc != -EBUSY) {
			p->fault = p->remote_fault = true;
			return 0;
		}
		if (!p->waited) {
			p->waited = true;
			memento__count(p->counters, MEMENTO__REMOTE_WAITS);
		}
		if (deadline != NULL) {
			uint64_t left;
			if (memento__deadline_passed(deadline, &left))
				return -ETIMEDOUT;
			if (nap > left)
				nap = left;
		}
		/* A cancellation point: the caller's handler releases the holds. */
		struct timespec ts = { (time_t)(nap / 1000000000u), (long)(nap % 1000000000u) };
		nanosleep(&ts, NULL);
		rc = read_fresh(p, i);
		if (rc == 0)
			return 1;
		/* None yet, a stale one, or a bad one (the holder overwrites
		 * it): wait on.  The tier away: compute. */
		if (rc != -ENOENT && rc != -EBADMSG)
			return 0;
		nap += nap / 2;
		if (nap > nap_max)
			nap = nap_max;
	}
}

/* Takes tier i's exclusion and reads it again (see the top of the file);
 * returns as lease_wait does. */
static int exclude(struct production *p, unsigned int i, const struct timespec *deadline)
{
	memento_store *tier = p->tiers[i];
	if (!memento__store_writable(tier))
		return 0;
	if (memento__store_is_remote(tier))
		return lease_wait(p, i, deadline);
	if (!memento__store_has_key_locks(tier))
		return 0;
	/* The 64 bits of the key's identity past the class's. */
	uint64_t h = XXH3_64bits_withSeed(p->store_key.b, sizeof p->store_key.b, 0);
	int rc = memento__key_lock(tier, h, deadline, &p->holds[i].lock);
	if (rc == 0)
		return read_fresh(p, i) == 0 ? 1 : 0;
	if (rc != -ETIMEDOUT)
		p->fault = true; /* no lock: create all the same */
	return rc == -ETIMEDOUT ? rc : 0;
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
	for (memento_store *t = cls->persist->store; t != NULL; t = memento__store_next(t))
		p.tiers[p.ntiers++] = t;

	for (unsigned int i = 0; i < p.ntiers; i++) {
		if (read_fresh(&p, i) == 0) {
			count_findings(&p, false);
			return 0;
		}
	}
	/* Exclusions in one order for every production (LMDB, then Redis),
	 * whatever the chain's: none waits on another in the opposite order. */
	unsigned int order[MEMENTO__STORE_TIERS_MAX];
	for (unsigned int i = 0; i < p.ntiers; i++) {
		unsigned int j = i;
		for (; j > 0 && memento__store_order(p.tiers[order[j - 1]], p.tiers[i]) > 0; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	/* Covers the waits, the reads under the exclusions (decode), create
	 * and encode: a cancelled creator releases every key. */
	pthread_cleanup_push(holds_abandoned, &p);
	p.excluding = true;
	for (unsigned int k = 0; k < p.ntiers && rc == 0; k++)
		rc = exclude(&p, order[k], deadline);
	if (rc == -ETIMEDOUT) {
		out->lock_timed_out = true; /* no outcome: see get.c */
		count_findings(&p, false);
	} else if (rc == 1) {
		count_findings(&p, false);
		rc = 0;
	} else {
		rc = create_and_write(&p, args);
	}
	pthread_cleanup_pop(0);
	holds_release(&p);
	return rc;
}
