/*
 * A Redis server as a place to keep records: connections (hiredis), each
 * command bounded by a timeout, GET and SET of one record.  A store opened
 * with a redis:// URI reads and writes its records here (store.c); its
 * leases, one computation per key across machines, are lease.c's.
 *
 * A hiredis context serves one thread at a time: idle connections wait in
 * a small pool under a mutex, a get takes one or connects a new one
 * (connect, AUTH, SELECT, each within the timeout), and gives it back
 * unless it failed (a connection that failed is closed: the next command
 * connects again, which is how a restarted server is found).  A command
 * that times out makes the store quiet for a while (quiet_until_ns):
 * commands fail at once, so that a stalled server costs a get one timeout,
 * not one per step.  Commands are built with the argv forms: no key or
 * value is ever formatted into a command.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "store/redis.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>

/* How long a store stays quiet after a timeout: this many timeouts,
 * within the bounds below. */
#define QUIET_TIMEOUTS 5
#define QUIET_MIN_NS 100000000u            /* 100 ms */
#define QUIET_MAX_NS ((uint64_t)30000000000u) /* 30 s */

static struct timeval timeval_of(uint64_t ns)
{
	return (struct timeval){ .tv_sec = (time_t)(ns / 1000000000u),
		                 .tv_usec = (suseconds_t)(ns % 1000000000u / 1000u) };
}

int memento__redis_context_error(const redisContext *c)
{
	switch (c->err) {
	case REDIS_ERR_IO:
		/* hiredis leaves the socket's errno: a timeout is EAGAIN. */
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS ||
		    errno == ETIMEDOUT)
			return -ETIMEDOUT;
		return errno != 0 ? -errno : -EIO;
	case REDIS_ERR_EOF:
		return -ECONNRESET;
	case REDIS_ERR_OOM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/* A write to a socket the server has closed raises SIGPIPE, whose default
 * kills the process, and hiredis writes with write(2): the signal is
 * blocked in this thread around a command, and one that the command
 * raised is taken back (sigtimedwait), so that the command fails with
 * EPIPE instead.  A SIGPIPE already pending stays pending.  The caller
 * has cancellation off (sigtimedwait is a cancellation point). */
struct sigpipe_guard {
	sigset_t old;
	bool was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
	sigset_t pipe_set, pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &g->old);
	sigpending(&pending);
	g->was_pending = sigismember(&pending, SIGPIPE) == 1;
}

static void sigpipe_restore(const struct sigpipe_guard *g)
{
	/* One pending now that was not before was raised in the window, by
	 * this command (a blocked SIGPIPE would stay pending, to kill the
	 * process when the caller unblocks it). */
	if (!g->was_pending) {
		sigset_t pipe_set;
		sigemptyset(&pipe_set);
		sigaddset(&pipe_set, SIGPIPE);
		struct timespec zero = { 0, 0 };
		int saved = errno;
		while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
			;
		errno = saved;
	}
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

int memento__redis_command(redisContext *c, int argc, const char **argv, const size_t *lens,
                   redisReply **reply)
{
	struct sigpipe_guard g;
	sigpipe_block(&g);
	errno = 0;
	*reply = redisCommandArgv(c, argc, argv, lens);
	int rc = *reply == NULL ? memento__redis_context_error(c)
	                        : (*reply)->type == REDIS_REPLY_ERROR ? -EPROTO : 0;
	sigpipe_restore(&g);
	return rc;
}

/* Connects, authenticates and selects the database: a ready connection,
 * or -ECONNREFUSED, -ETIMEDOUT, -EACCES (refused credentials), -EIO. */
static int connect_one(struct memento__redis *r, redisContext **out)
{
	const struct memento__redis_target *t = &r->target;
	int cancel = memento__cancel_off(); /* connect() is a cancellation point */
	errno = 0;
	redisContext *c = redisConnectWithTimeout(t->host, t->port, r->timeout);
	int rc = 0;
	if (c == NULL)
		rc = -ENOMEM;
	else if (c->err)
		rc = c->err == REDIS_ERR_IO && errno == ECONNREFUSED ? -ECONNREFUSED
		                                                     : memento__redis_context_error(c);
	if (rc == 0 && redisSetTimeout(c, r->timeout) != REDIS_OK)
		rc = memento__redis_context_error(c);
	/* Not into programs this process runs. */
	if (rc == 0)
		(void)fcntl(c->fd, F_SETFD, FD_CLOEXEC);
	redisReply *reply = NULL;
	if (rc == 0 && t->password != NULL) {
		const char *argv[3] = { "AUTH", t->user, t->password };
		size_t lens[3] = { 4, t->user ? strlen(t->user) : 0, strlen(t->password) };
		if (t->user == NULL) {
			argv[1] = t->password;
			lens[1] = lens[2];
		}
		rc = memento__redis_command(c, t->user != NULL ? 3 : 2, argv, lens, &reply);
		if (rc == -EPROTO)
			rc = -EACCES;
		freeReplyObject(reply);
		reply = NULL;
	}
	if (rc == 0 && t->db != 0) {
		char db[16];
		int n = snprintf(db, sizeof db, "%d", t->db);
		const char *argv[2] = { "SELECT", db };
		size_t lens[2] = { 6, (size_t)n };
		rc = memento__redis_command(c, 2, argv, lens, &reply);
		freeReplyObject(reply);
		if (rc == -EPROTO)
			rc = -EINVAL; /* no such database */
	}
	if (rc != 0 && c != NULL)
		redisFree(c); /* close(): with cancellation still off */
	memento__cancel_restore(cancel);
	if (rc == 0)
		*out = c;
	return rc;
}

/* A timeout: quiet for a while (see the top of the file). */
static void quiet_after(struct memento__redis *r, int rc)
{
	if (rc != -ETIMEDOUT)
		return;
	uint64_t quiet = r->timeout_ns * QUIET_TIMEOUTS;
	quiet = quiet < QUIET_MIN_NS ? QUIET_MIN_NS : quiet > QUIET_MAX_NS ? QUIET_MAX_NS : quiet;
	atomic_store_explicit(&r->quiet_until_ns, memento__clock_ns(CLOCK_MONOTONIC) + quiet,
	                      memory_order_relaxed);
}

int memento__redis_take(struct memento__redis *r, redisContext **c, bool bypass_quiet,
                        bool *pooled)
{
	uint64_t quiet = atomic_load_explicit(&r->quiet_until_ns, memory_order_relaxed);
	if (!bypass_quiet && quiet != 0 && memento__clock_ns(CLOCK_MONOTONIC) < quiet)
		return -EAGAIN; /* not -ETIMEDOUT: nothing was sent */
	pthread_mutex_lock(&r->lock);
	*c = r->nidle > 0 ? r->idle[--r->nidle] : NULL;
	pthread_mutex_unlock(&r->lock);
	if (pooled != NULL)
		*pooled = *c != NULL;
	if (*c != NULL)
		return 0;
	int rc = connect_one(r, c);
	quiet_after(r, rc);
	return rc;
}

/* Back to the pool, or closed when it failed (or the pool is full).  A
 * command's own failures (an error reply, a record its caller refused)
 * leave the connection fine: only the context's error breaks it. */
void memento__redis_give_back(struct memento__redis *r, redisContext *c, int rc)
{
	quiet_after(r, rc);
	if (c->err == 0) {
		pthread_mutex_lock(&r->lock);
		if (r->nidle < MEMENTO__REDIS_POOL_MAX) {
			r->idle[r->nidle++] = c;
			c = NULL;
		}
		pthread_mutex_unlock(&r->lock);
	}
	if (c != NULL)
		redisFree(c);
}

/* Closes the idle connections (in a fork child: this process's copies). */
static void drop_idle(struct memento__redis *r)
{
	while (r->nidle > 0)
		redisFree(r->idle[--r->nidle]);
}

void memento__redis_drop_idle(struct memento__redis *r)
{
	pthread_mutex_lock(&r->lock);
	drop_idle(r);
	pthread_mutex_unlock(&r->lock);
}

int memento__redis_with_connection(struct memento__redis *r, bool bypass_quiet,
                                   memento__redis_conn_fn fn, void *ctx)
{
	int cancel = memento__cancel_off(); /* the connection would leak */
	int rc;
	for (int attempt = 0;; attempt++) {
		redisContext *c;
		bool pooled;
		rc = memento__redis_take(r, &c, bypass_quiet, &pooled);
		if (rc != 0)
			break;
		rc = fn(c, ctx);
		memento__redis_give_back(r, c, rc);
		/* A pooled connection that the server closed since (a restart,
		 * an idle timeout): so are the other idle ones, most likely.
		 * Once more on a new one; what runs here may run twice. */
		if (attempt > 0 || !pooled || (rc != -ECONNRESET && rc != -EPIPE))
			break;
		memento__redis_drop_idle(r);
	}
	memento__cancel_restore(cancel);
	return rc;
}

struct one_command {
	int argc;
	const char **argv;
	const size_t *lens;
	redisReply **reply;
};

static int one_command_on(redisContext *c, void *ctx)
{
	struct one_command *cmd = ctx;
	return memento__redis_command(c, cmd->argc, cmd->argv, cmd->lens, cmd->reply);
}

int memento__redis_run(struct memento__redis *r, int argc, const char **argv,
                       const size_t *lens, redisReply **reply, bool bypass_quiet)
{
	struct one_command cmd = { argc, argv, lens, reply };
	*reply = NULL;
	return memento__redis_with_connection(r, bypass_quiet, one_command_on, &cmd);
}

/* A cluster node answers commands for its own slots only, and redirects
 * the others (MOVED): hiredis 0.14 cannot follow, so a node is refused at
 * open, clearly, rather than failing most gets later.  A server that
 * forbids INFO (an ACL) is taken as it is. */
static int cluster_check(redisContext *c)
{
	const char *argv[2] = { "INFO", "cluster" };
	size_t lens[2] = { 4, 7 };
	redisReply *reply;
	int rc = memento__redis_command(c, 2, argv, lens, &reply);
	if (rc == 0 && reply->type == REDIS_REPLY_STRING &&
	    strstr(reply->str, "cluster_enabled:1") != NULL)
		rc = -ENOTSUP;
	if (rc == -EPROTO)
		rc = 0;
	freeReplyObject(reply);
	return rc;
}

int memento__redis_open(struct memento__redis **out, const char *uri, uint64_t timeout_ns,
                        uint64_t lease_ns)
{
	struct memento__redis *r = calloc(1, sizeof *r);
	if (r == NULL)
		return -ENOMEM;
	int rc = memento__redis_uri_parse(uri, &r->target);
	if (rc != 0) {
		free(r);
		return rc;
	}
	r->timeout_ns = timeout_ns != 0 ? timeout_ns : MEMENTO__REDIS_TIMEOUT_NS;
	lease_ns = lease_ns != 0 ? lease_ns : MEMENTO__REDIS_LEASE_NS;
	/* A renewal (every lease_ns / 3, itself bounded by the timeout) must
	 * land before the lease ends. */
	if (lease_ns / 2 < r->timeout_ns) {
		memento__redis_target_free(&r->target);
		free(r);
		return -EINVAL;
	}
	r->timeout = timeval_of(r->timeout_ns);
	pthread_mutex_init(&r->lock, NULL);
	memento__leases_init(r, lease_ns);
	/* One connection now: a wrong password, an unreachable server or a
	 * cluster is the open's error, not every get's. */
	redisContext *c;
	rc = connect_one(r, &c);
	if (rc == 0) {
		rc = cluster_check(c);
		memento__redis_give_back(r, c, rc);
	}
	if (rc != 0) {
		memento__redis_close(r);
		return rc;
	}
	*out = r;
	return 0;
}

const struct memento__redis_target *memento__redis_target_of(const struct memento__redis *r)
{
	return &r->target;
}

void memento__redis_close(struct memento__redis *r)
{
	if (r == NULL)
		return;
	memento__leases_stop(r); /* its renewer uses the pool */
	drop_idle(r);
	pthread_mutex_destroy(&r->lock);
	memento__redis_target_free(&r->target);
	free(r);
}

int memento__redis_get(struct memento__redis *r, const void *key, size_t key_len,
                       memento__store_visit_fn visit, void *ctx)
{
	const char *argv[2] = { "GET", key };
	size_t lens[2] = { 3, key_len };
	redisReply *reply;
	/* Off through visit too: the reply would leak. */
	int cancel = memento__cancel_off();
	int rc = memento__redis_run(r, 2, argv, lens, &reply, false);
	if (rc == 0) {
		if (reply->type == REDIS_REPLY_NIL)
			rc = -ENOENT;
		else if (reply->type != REDIS_REPLY_STRING)
			rc = -EPROTO;
		else
			rc = visit(reply->str, reply->len, ctx);
	}
	freeReplyObject(reply);
	memento__cancel_restore(cancel);
	return rc;
}

int memento__redis_set(struct memento__redis *r, const void *key, size_t key_len,
                       const void *value, size_t value_len)
{
	const char *argv[3] = { "SET", key, value };
	size_t lens[3] = { 3, key_len, value_len };
	redisReply *reply;
	int rc = memento__redis_run(r, 3, argv, lens, &reply, false);
	freeReplyObject(reply);
	return rc;
}

char *memento__redis_key(const char *name, const struct memento__store_key *key,
                         const char *suffix, size_t *len)
{
	static const char hex[] = "0123456789abcdef";
	size_t name_len = strlen(name), suffix_len = strlen(suffix);
	size_t n = sizeof "mementos:" - 1 + name_len + 2 + 2 * sizeof key->b + 1 + suffix_len;
	char *out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	char *w = out;
	memcpy(w, "mementos:", 9);
	w += 9;
	memcpy(w, name, name_len);
	w += name_len;
	*w++ = ':';
	*w++ = '{';
	for (size_t i = 0; i < sizeof key->b; i++) {
		*w++ = hex[key->b[i] >> 4];
		*w++ = hex[key->b[i] & 15];
	}
	*w++ = '}';
	memcpy(w, suffix, suffix_len + 1);
	*len = n;
	return out;
}

int memento__redis_get_record(struct memento__redis *r, const char *name,
                              const struct memento__store_key *key,
                              memento__store_visit_fn visit, void *ctx)
{
	size_t len;
	char *k = memento__redis_key(name, key, "", &len);
	if (k == NULL)
		return -ENOMEM;
	int rc = memento__redis_get(r, k, len, visit, ctx);
	free(k);
	return rc;
}

int memento__redis_set_record(struct memento__redis *r, const char *name,
                              const struct memento__store_key *key,
                              const struct memento__record *head)
{
	size_t size = memento__record_size(head->name_len, head->key_len, head->payload_len);
	if (size == 0)
		return -E2BIG;
	size_t len;
	char *k = memento__redis_key(name, key, "", &len);
	unsigned char *v = malloc(size);
	int rc = -ENOMEM;
	if (k != NULL && v != NULL) {
		memento__record_write(v, head);
		rc = memento__redis_set(r, k, len, v, size);
	}
	free(v);
	free(k);
	return rc;
}

void memento__redis_fork_prepare(struct memento__redis *r)
{
	if (r == NULL)
		return;
	memento__leases_fork_prepare(r);
	pthread_mutex_lock(&r->lock);
}

void memento__redis_fork_parent(struct memento__redis *r)
{
	if (r == NULL)
		return;
	pthread_mutex_unlock(&r->lock);
	memento__leases_fork_parent(r);
}

void memento__redis_fork_child(struct memento__redis *r)
{
	if (r == NULL)
		return;
	/* The parent's sockets: this process closes its copies, the parent
	 * keeps using its own.  (Connections that other threads of the
	 * parent had taken are theirs; the child never sees them again.) */
	drop_idle(r);
	pthread_mutex_unlock(&r->lock);
	memento__leases_fork_child(r);
}
