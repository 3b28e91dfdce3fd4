/*
 * What redis.c (connections, records) and lease.c (leases and their
 * renewer) share about a Redis store; private to those two files.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTO_STORE_REDIS_H
#define MEMENTO_STORE_REDIS_H

#include "internal.h"

#include <hiredis/hiredis.h>

#define MEMENTO__REDIS_POOL_MAX 8

/* The leases this process holds on one server, and the thread that renews
 * them (lease.c).  Everything under `lock`. */
struct memento__leases {
	pthread_mutex_t lock;
	pthread_cond_t wake; /* CLOCK_MONOTONIC: the renewer's naps, and its stop */
	struct memento__lease *held;
	struct memento__lease_copy *pending; /* releases left to the renewer */
	uint64_t lease_ns;
	/* Bumped in a fork child: the leases listed before are the parent's,
	 * and a release of one of them must touch neither list nor server. */
	unsigned int generation;
	bool renewer_running, stopping;
	bool release_waiting; /* a release was left to the renewer: go now */
	_Atomic bool stopping_hint; /* stopping, read without the lock (relaxed:
	                               it only cuts a round of releases short) */
	pthread_t renewer;
};

struct memento__redis {
	struct memento__redis_target target;
	struct timeval timeout;
	uint64_t timeout_ns;
	/* After a command timed out, commands fail at once until this
	 * CLOCK_MONOTONIC time: a stalled server costs one get one timeout,
	 * not every get and every step of each.  Relaxed: a hint, read and
	 * written whole. */
	_Atomic uint64_t quiet_until_ns;
	pthread_mutex_t lock; /* the pool */
	redisContext *idle[MEMENTO__REDIS_POOL_MAX];
	unsigned int nidle;
	struct memento__leases leases;
};

/* A connection of the pool (*pooled set), or a new one; -EAGAIN at once
 * while the server is quiet, unless bypass_quiet (the renewer's).  Give it
 * back with the command's result, which closes it when it broke. */
MEMENTO__HIDDEN int memento__redis_take(struct memento__redis *r, redisContext **c,
                                        bool bypass_quiet, bool *pooled);
MEMENTO__HIDDEN void memento__redis_give_back(struct memento__redis *r, redisContext *c, int rc);
/* One command, argv form: 0 with *reply (freed by the caller), -EPROTO for
 * an error reply (*reply set too), or the connection's error (*reply NULL). */
MEMENTO__HIDDEN int memento__redis_command(redisContext *c, int argc, const char **argv,
                                           const size_t *lens, redisReply **reply);
/* Runs fn on a connection of the pool (take, fn, give back), once more on
 * a new connection when a pooled one turns out closed by the server
 * (fn's -ECONNRESET or -EPIPE): so only work that may run twice.
 * Cancellation off inside.  Returns fn's result, or the connection's. */
typedef int (*memento__redis_conn_fn)(redisContext *c, void *ctx);
MEMENTO__HIDDEN int memento__redis_with_connection(struct memento__redis *r, bool bypass_quiet,
                                                   memento__redis_conn_fn fn, void *ctx);
/* One command on a connection of the pool (take, command, give back),
 * once more on a new connection when a pooled one turns out closed by the
 * server: so only commands that may run twice.  Cancellation off inside.
 * Returns as memento__redis_command. */
MEMENTO__HIDDEN int memento__redis_run(struct memento__redis *r, int argc, const char **argv,
                                       const size_t *lens, redisReply **reply,
                                       bool bypass_quiet);
/* Closes the idle connections (under the pool's lock). */
MEMENTO__HIDDEN void memento__redis_drop_idle(struct memento__redis *r);
/* The connection's error as a negative errno. */
MEMENTO__HIDDEN int memento__redis_context_error(const redisContext *c);
/* "mementos:" name ":{" 48 hex digits "}" suffix, NUL-terminated; NULL when
 * out of memory.  *len: its length. */
MEMENTO__HIDDEN char *memento__redis_key(const char *name, const struct memento__store_key *key,
                                         const char *suffix, size_t *len);

/* lease.c, called by redis.c's open, close and fork handlers. */
MEMENTO__HIDDEN void memento__leases_init(struct memento__redis *r, uint64_t lease_ns);
MEMENTO__HIDDEN void memento__leases_stop(struct memento__redis *r);
MEMENTO__HIDDEN void memento__leases_fork_prepare(struct memento__redis *r);
MEMENTO__HIDDEN void memento__leases_fork_parent(struct memento__redis *r);
MEMENTO__HIDDEN void memento__leases_fork_child(struct memento__redis *r);

#endif /* MEMENTO_STORE_REDIS_H */
