/*
 * Leases: one computation per key across every process and machine that
 * shares a Redis store (docs/design.md, "The Redis tier").
 *
 * A lease is the key "mementos:" class ":{" hex "}:lease" (the record's
 * hash tag: one slot) holding a random token, set when absent with
 * PX lease_ns by a Lua script that also answers "yours" when the key
 * already holds the caller's token (one production takes the same lease
 * twice when two of its tiers are one server; and a command that ran but
 * whose reply was lost may run again).  The process that sets it computes;
 * the others poll the record (persist.c).  While the holder computes, this file's renewer thread
 * extends each held lease every lease_ns / 3, and only while the token
 * is still the holder's; the holder deletes it only while it is still
 * its own.  Both checks are one Lua script each, so they are atomic in
 * the server.  A holder that dies stops renewing: its lease expires
 * within lease_ns and a waiter takes it over.  A holder that stalls past
 * its lease (stopped, or cut off from the server) may find its key taken
 * over: both compute and both write a whole record of the same identity
 * and fingerprint, and each reader gets one of them, checked whole.
 *
 * The renewer is one thread per store, started by the first lease and
 * joined at close; signals blocked.  It renews every held lease in one
 * pipelined round trip, from copies taken under the list's lock, so that
 * a slow server never holds up a lease's release; the quiet window
 * (redis.c) does not stop it, and after a failed round it tries again
 * sooner (lease_ns / 10).  A release that cannot reach the server is left
 * to it too, retried until the lease would have expired anyway: the
 * creator's get does not wait for a stalled server twice.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "store/redis.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* Sets KEYS[1] to ARGV[1] for ARGV[2] ms when absent, or extends it when it
 * holds ARGV[1] already: 1; else (another's) 0. */
static const char TAKE[] = "local v = redis.call('get', KEYS[1]) "
                           "if v == false then "
                           "redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2]) return 1 end "
                           "if v == ARGV[1] then "
                           "redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end "
                           "return 0";
/* Extends KEYS[1] by ARGV[2] ms while it holds ARGV[1]: 1, else 0. */
static const char RENEW[] = "if redis.call('get', KEYS[1]) == ARGV[1] then "
                            "return redis.call('pexpire', KEYS[1], ARGV[2]) "
                            "else return 0 end";
/* Deletes KEYS[1] while it holds ARGV[1]: 1, else 0. */
static const char RELEASE[] = "if redis.call('get', KEYS[1]) == ARGV[1] then "
                              "return redis.call('del', KEYS[1]) "
                              "else return 0 end";

/* ---- the list and its renewer ----------------------------------------------------- */

/* The renewer's condition variable, on CLOCK_MONOTONIC (its naps). */
static void wake_init(struct memento__leases *ls)
{
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&ls->wake, &attr);
	pthread_condattr_destroy(&attr);
}

void memento__leases_init(struct memento__redis *r, uint64_t lease_ns)
{
	struct memento__leases *ls = &r->leases;
	pthread_mutex_init(&ls->lock, NULL);
	wake_init(ls);
	ls->lease_ns = lease_ns;
}

uint64_t memento__redis_lease_ns(const struct memento__redis *r)
{
	return r->leases.lease_ns;
}

/* The lease's length as Redis reads it: decimal milliseconds, at least 1. */
static int lease_ms(const struct memento__leases *ls, char *out, size_t n)
{
	uint64_t ms = ls->lease_ns / 1000000u;
	return snprintf(out, n, "%llu", (unsigned long long)(ms != 0 ? ms : 1));
}

/* A lease to renew (a copy), or a release left to the renewer. */
struct memento__lease_copy {
	struct memento__lease_copy *next; /* the pending releases */
	char *key;
	size_t key_len;
	char token[MEMENTO__LEASE_TOKEN];
	uint64_t until_ns; /* a pending release: given up then (expired) */
};
typedef struct memento__lease_copy renewal;

/* What a round of renewals sends. */
struct renewals {
	const renewal *w;
	size_t n;
	char ms[24];
	size_t ms_len;
};

/* Renews each lease: one round trip, pipelined, on connection c. */
static int renew_on(redisContext *c, void *ctx)
{
	const struct renewals *rs = ctx;
	const renewal *w = rs->w;
	size_t n = rs->n;
	const char *ms = rs->ms;
	size_t ms_len = rs->ms_len;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *argv[6] = { "EVAL", RENEW, "1", w[i].key, w[i].token, ms };
		size_t lens[6] = { 4, sizeof RENEW - 1, 1, w[i].key_len, sizeof w[i].token, ms_len };
		if (redisAppendCommandArgv(c, 6, argv, lens) != REDIS_OK)
			rc = memento__redis_context_error(c);
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		void *reply = NULL;
		errno = 0;
		if (redisGetReply(c, &reply) != REDIS_OK)
			rc = memento__redis_context_error(c);
		/* A 0 is a lease lost (expired, taken over): its holder goes on
		 * and writes a whole record all the same. */
		freeReplyObject(reply);
	}
	return rc;
}

/* Renews each of n leases: 0, or the error (the server away: the waiters
 * find it so too).  Retried on a new connection when a pooled one was
 * closed by the server (a restart): else each round would close one dead
 * connection and the leases would expire under live holders. */
static int renew_all(struct memento__redis *r, const renewal *w, size_t n)
{
	struct renewals rs = { .w = w, .n = n };
	rs.ms_len = (size_t)lease_ms(&r->leases, rs.ms, sizeof rs.ms);
	return memento__redis_with_connection(r, true, renew_on, &rs);
}

static int release_one(struct memento__redis *r, const char *key, size_t key_len,
                       const char token[MEMENTO__LEASE_TOKEN], bool bypass_quiet)
{
	const char *argv[5] = { "EVAL", RELEASE, "1", key, token };
	size_t lens[5] = { 4, sizeof RELEASE - 1, 1, key_len, MEMENTO__LEASE_TOKEN };
	redisReply *reply;
	int rc = memento__redis_run(r, 5, argv, lens, &reply, bypass_quiet);
	freeReplyObject(reply);
	return rc == -EPROTO ? 0 : rc; /* an error reply: retrying will not help */
}

static void copy_free(renewal *w)
{
	free(w->key);
	free(w);
}

/* Tries the pending releases (taken off the list), at most
 * RELEASES_PER_ROUND and none once the store is closing (they expire);
 * returns those to try again. */
#define RELEASES_PER_ROUND 64
static renewal *release_pending(struct memento__redis *r, renewal *list)
{
	renewal *keep = NULL;
	uint64_t now = memento__clock_ns(CLOCK_MONOTONIC);
	unsigned int tried = 0;
	while (list != NULL) {
		renewal *w = list;
		list = w->next;
		bool stopping = atomic_load_explicit(&r->leases.stopping_hint, memory_order_relaxed);
		bool again = now < w->until_ns && !stopping;
		if (again && tried < RELEASES_PER_ROUND) {
			tried++;
			again = release_one(r, w->key, w->key_len, w->token, true) != 0;
		}
		if (again) {
			w->next = keep;
			keep = w;
		} else {
			copy_free(w);
		}
	}
	return keep;
}

/* Copies of the held leases (under ls->lock): *n of them, or NULL. */
static renewal *held_copy(struct memento__leases *ls, size_t *n)
{
	size_t count = 0;
	for (struct memento__lease *l = ls->held; l != NULL; l = l->next)
		count++;
	*n = 0;
	if (count == 0)
		return NULL;
	renewal *w = calloc(count, sizeof *w);
	if (w == NULL)
		return NULL;
	for (struct memento__lease *l = ls->held; l != NULL; l = l->next) {
		w[*n].key = malloc(l->key_len);
		if (w[*n].key == NULL)
			break;
		memcpy(w[*n].key, l->key, l->key_len);
		w[*n].key_len = l->key_len;
		memcpy(w[*n].token, l->token, sizeof l->token);
		(*n)++;
	}
	return w;
}

static void *renewer_main(void *arg)
{
	struct memento__redis *r = arg;
	struct memento__leases *ls = &r->leases;
	bool failed = false;
	pthread_mutex_lock(&ls->lock);
	while (!ls->stopping) {
		uint64_t at = memento__clock_ns(CLOCK_MONOTONIC) + ls->lease_ns / (failed ? 10 : 3);
		struct timespec ts = { (time_t)(at / 1000000000u), (long)(at % 1000000000u) };
		while (!ls->stopping && !ls->release_waiting &&
		       pthread_cond_timedwait(&ls->wake, &ls->lock, &ts) != ETIMEDOUT)
			;
		ls->release_waiting = false;
		if (ls->stopping)
			break;
		size_t n;
		renewal *w = held_copy(ls, &n);
		renewal *pending = ls->pending;
		ls->pending = NULL;
		pthread_mutex_unlock(&ls->lock);
		failed = n > 0 && renew_all(r, w, n) != 0;
		for (size_t i = 0; i < n; i++)
			free(w[i].key);
		free(w);
		pending = release_pending(r, pending);
		pthread_mutex_lock(&ls->lock);
		while (pending != NULL) {
			renewal *p = pending;
			pending = p->next;
			p->next = ls->pending;
			ls->pending = p;
		}
		failed |= ls->pending != NULL;
	}
	pthread_mutex_unlock(&ls->lock);
	return NULL;
}

static void pending_free(struct memento__leases *ls)
{
	while (ls->pending != NULL) {
		renewal *w = ls->pending;
		ls->pending = w->next;
		copy_free(w);
	}
}

/* Under ls->lock.  Without a renewer a lease still holds for lease_ns:
 * a failed start costs only the renewals. */
static void renewer_start(struct memento__redis *r)
{
	struct memento__leases *ls = &r->leases;
	if (ls->renewer_running || ls->stopping)
		return;
	/* Signals are the application's: none is delivered to this thread. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ls->renewer_running = pthread_create(&ls->renewer, NULL, renewer_main, r) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void memento__leases_stop(struct memento__redis *r)
{
	struct memento__leases *ls = &r->leases;
	pthread_mutex_lock(&ls->lock);
	ls->stopping = true;
	atomic_store_explicit(&ls->stopping_hint, true, memory_order_relaxed);
	bool running = ls->renewer_running;
	ls->renewer_running = false;
	pthread_cond_broadcast(&ls->wake);
	pthread_mutex_unlock(&ls->lock);
	if (running)
		pthread_join(ls->renewer, NULL);
	pending_free(ls); /* they expire by themselves */
	pthread_cond_destroy(&ls->wake);
	pthread_mutex_destroy(&ls->lock);
}

void memento__leases_fork_prepare(struct memento__redis *r)
{
	pthread_mutex_lock(&r->leases.lock);
}

void memento__leases_fork_parent(struct memento__redis *r)
{
	pthread_mutex_unlock(&r->leases.lock);
}

void memento__leases_fork_child(struct memento__redis *r)
{
	struct memento__leases *ls = &r->leases;
	/* The parent's leases and renewer stay the parent's.  The condition
	 * variable may record the parent's renewer as a waiter: made anew. */
	ls->held = NULL;
	pending_free(ls);
	ls->generation++;
	ls->renewer_running = false;
	wake_init(ls);
	pthread_mutex_unlock(&ls->lock);
}

/* ---- one lease ---------------------------------------------------------------------- */

void memento__lease_token(char out[MEMENTO__LEASE_TOKEN])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[MEMENTO__LEASE_TOKEN / 2];
	/* getrandom is a cancellation point (its caller's handler owns
	 * nothing yet, but keep it simple: off). */
	int cancel = memento__cancel_off();
	if (getrandom(b, sizeof b, GRND_NONBLOCK) != (ssize_t)sizeof b) {
		/* No entropy yet (early boot): unique enough by process,
		 * time and stack address. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t seed[4] = { (uint64_t)getpid(), (uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec,
			             (uint64_t)(uintptr_t)out };
		XXH128_hash_t h = XXH3_128bits(seed, sizeof seed);
		memcpy(b, &h.low64, 8);
		memcpy(b + 8, &h.high64, 8);
	}
	memento__cancel_restore(cancel);
	for (size_t i = 0; i < sizeof b; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
}

/* Lists l (taken, or perhaps taken) for the renewer and the release. */
static void held_add(struct memento__redis *r, struct memento__lease *l)
{
	struct memento__leases *ls = &r->leases;
	pthread_mutex_lock(&ls->lock);
	l->redis = r;
	l->generation = ls->generation;
	l->prev = NULL;
	l->next = ls->held;
	if (ls->held != NULL)
		ls->held->prev = l;
	ls->held = l;
	renewer_start(r);
	pthread_mutex_unlock(&ls->lock);
}

int memento__redis_lease_take(struct memento__redis *r, const char *name,
                              const struct memento__store_key *key,
                              const char token[MEMENTO__LEASE_TOKEN], struct memento__lease *l)
{
	int cancel = memento__cancel_off(); /* the key would leak */
	l->redis = NULL;
	l->key = memento__redis_key(name, key, ":lease", &l->key_len);
	if (l->key == NULL) {
		memento__cancel_restore(cancel);
		return -ENOMEM;
	}
	memcpy(l->token, token, sizeof l->token);
	char ms[24];
	size_t ms_len = (size_t)lease_ms(&r->leases, ms, sizeof ms);
	const char *argv[6] = { "EVAL", TAKE, "1", l->key, l->token, ms };
	size_t lens[6] = { 4, sizeof TAKE - 1, 1, l->key_len, sizeof l->token, ms_len };
	redisReply *reply;
	int rc = memento__redis_run(r, 6, argv, lens, &reply, false);
	if (rc == 0 && reply->type != REDIS_REPLY_INTEGER)
		rc = -EPROTO;
	else if (rc == 0 && reply->integer == 0)
		rc = -EBUSY; /* another holder's */
	freeReplyObject(reply);
	/* Taken; or perhaps taken, when the script may have run but its
	 * reply was lost (a timeout, a reset): listed too, so that a lease
	 * that was set is renewed and released (the caller computes without
	 * waiting, as when the server is away).  Listing one that was not
	 * set costs a renewal and a release that find another token. */
	bool perhaps = rc != 0 && rc != -EBUSY && rc != -EAGAIN && rc != -ENOMEM &&
	               rc != -EPROTO && rc != -ECONNREFUSED;
	if (rc == 0 || perhaps) {
		held_add(r, l);
	} else {
		free(l->key);
		l->key = NULL;
	}
	memento__cancel_restore(cancel);
	return rc;
}

void memento__redis_lease_release(struct memento__lease *l)
{
	struct memento__redis *r = l->redis;
	if (r == NULL)
		return;
	struct memento__leases *ls = &r->leases;
	int cancel = memento__cancel_off();
	pthread_mutex_lock(&ls->lock);
	bool ours = l->generation == ls->generation; /* else: a fork child's copy */
	if (ours) {
		if (l->prev != NULL)
			l->prev->next = l->next;
		else
			ls->held = l->next;
		if (l->next != NULL)
			l->next->prev = l->prev;
	}
	pthread_mutex_unlock(&ls->lock);
	if (ours && release_one(r, l->key, l->key_len, l->token, false) != 0) {
		/* The server is away or quiet: the renewer tries again (else
		 * the lease expires, and waiters take over then). */
		renewal *w = calloc(1, sizeof *w);
		if (w != NULL) {
			w->key = l->key;
			w->key_len = l->key_len;
			memcpy(w->token, l->token, sizeof w->token);
			w->until_ns = memento__clock_ns(CLOCK_MONOTONIC) + ls->lease_ns;
			l->key = NULL;
			pthread_mutex_lock(&ls->lock);
			w->next = ls->pending;
			ls->pending = w;
			ls->release_waiting = true; /* now, not at the next round */
			pthread_cond_signal(&ls->wake);
			pthread_mutex_unlock(&ls->lock);
		}
	}
	free(l->key);
	l->key = NULL;
	l->redis = NULL;
	memento__cancel_restore(cancel);
}
