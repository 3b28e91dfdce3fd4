/*
 * redis_bench: a store on a Redis server (lib/store/redis.c, lease.c,
 * persist.c) measured against what the same work costs done by hand, as
 * ratios against a reference measured in the same run.  Medians over
 * rounds; within a round the two sides alternate pass by pass (A B, B A,
 * ...) so that the noise of a shared VM falls on both.
 *
 *   remote_hit  a memento_get that misses memory and finds its record on
 *               the Redis store (fingerprint, GET, checks, decode,
 *               publish), a fresh cache per pass so that every get is a
 *               memory miss, against the floor: one GET of the same key
 *               on one reused hiredis connection (redisCommandArgv), the
 *               record's checks (memento__record_parse and the identity
 *               and fingerprint compares: record.c compiled in) and the
 *               same decode; payloads of 64 and 4096 bytes.  raw-get is
 *               the GET alone (the round trip and hiredis's reply).  Each
 *               side's wall time per get, and its client thread's CPU
 *               time per get (client_cpu: its own work and system calls,
 *               without the waits for the server), which shows the
 *               library's overhead apart from the round trip's noise.
 *   stampede    P processes x T threads get one missing key at once (a
 *               process-shared barrier); create sleeps C ms.  One creation
 *               in all, or the run fails.  Delays from the moment create
 *               returns to each waiter's get return: waiters in other
 *               processes (they poll the record under the creator's
 *               lease) and in the creator's process (they wait on its
 *               entry).
 *   tier        a Zipf workload (s = 0.99) over K keys whose records are
 *               all on the Redis server, through a bounded class (1% of K)
 *               so that many gets miss memory: the class on the Redis
 *               store alone against the class on an LMDB store (NOSYNC)
 *               whose next tier is the same Redis store.  gets/s, and the
 *               remote hits of each.  Each round is a fresh cache per side
 *               on a new trace; the LMDB store lives through the rounds,
 *               filled first by an untimed pass (reported on its own as
 *               tiered-cold-first-pass).
 *
 * The benchmark starts its own redis-server (127.0.0.1, a free port, no
 * persistence) unless --uri names one.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp, prctl */
#endif
#define BENCH_NAME "redis_bench"

#include <mementos.h>

#include "bench_blob.h"
#include "bench_cli.h"
#include "bench_util.h"

#include "internal.h" /* lib/: record.h, and the URI parse (uri.c compiled in) */

#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CLASS_PREFIX "rbench-"
#define STAMPEDE_MAXP 64
#define STAMPEDE_MAXT 64

/* ---- configuration ------------------------------------------------------------ */

struct config {
	int rounds;
	/* remote_hit */
	size_t hit_keys, hit_passes;
	size_t payload_only; /* 0, or the one payload size to run */
	/* stampede */
	int procs, threads, stampedes;
	long create_ms;
	uint64_t lease_ns; /* 0: the library's default */
	/* tier */
	size_t zipf_keys, zipf_gets, zipf_payload;
	bool quick;
	const char *uri;
	struct memento__redis_target target;
};

/* ---- the server ----------------------------------------------------------------- */

static pid_t server_pid = -1;
static pid_t server_owner = -1; /* the process that started it: only it stops it */
static char server_dir[600];

static void server_stop(void)
{
	if (server_pid > 0 && getpid() == server_owner) {
		kill(server_pid, SIGKILL);
		waitpid(server_pid, NULL, 0);
		server_pid = -1;
		remove_dir(server_dir);
	}
}

/* At exit, an early one (die) included: the run's directories, by the
 * process that made them.  Each benchmark removes its own when it ends
 * normally; what is left here is what a failure left. */
static pid_t base_owner = -1;

static void base_dir_remove(void)
{
	if (getpid() != base_owner)
		return;
	server_stop();
	remove_dir(base_dir);
}

/* A port the kernel just gave out and took back: free, most likely. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die_sys("socket");
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t n = sizeof a;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &n) != 0)
		die_sys("bind");
	close(fd);
	return ntohs(a.sin_port);
}

/* A raw connection as the library makes one: the timeout on connect and
 * on each command, AUTH and SELECT when the URI has them. */
static redisContext *raw_connect(const struct memento__redis_target *t, bool quiet)
{
	struct timeval tv = { 1, 0 };
	redisContext *c = redisConnectWithTimeout(t->host, t->port, tv);
	if (c == NULL || c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK) {
		if (!quiet)
			fprintf(stderr, "redis_bench: connect %s:%d: %s\n", t->host, t->port,
			        c != NULL ? c->errstr : "out of memory");
		if (c != NULL)
			redisFree(c);
		return NULL;
	}
	redisReply *reply = NULL;
	if (t->password != NULL) {
		const char *argv[3] = { "AUTH", t->user != NULL ? t->user : t->password, t->password };
		size_t lens[3] = { 4, strlen(argv[1]), strlen(t->password) };
		reply = redisCommandArgv(c, t->user != NULL ? 3 : 2, argv, lens);
		if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
			goto fail;
		freeReplyObject(reply);
	}
	if (t->db != 0) {
		char db[16];
		int n = snprintf(db, sizeof db, "%d", t->db);
		const char *argv[2] = { "SELECT", db };
		size_t lens[2] = { 6, (size_t)n };
		reply = redisCommandArgv(c, 2, argv, lens);
		if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
			goto fail;
		freeReplyObject(reply);
	}
	return c;
fail:
	if (!quiet)
		fprintf(stderr, "redis_bench: AUTH/SELECT refused: %s\n",
		        reply != NULL ? reply->str : c->errstr);
	if (reply != NULL)
		freeReplyObject(reply);
	redisFree(c);
	return NULL;
}

static bool ping(const struct memento__redis_target *t)
{
	redisContext *c = raw_connect(t, true);
	if (c == NULL)
		return false;
	redisReply *reply = redisCommand(c, "PING");
	bool ok = reply != NULL && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0;
	if (reply != NULL)
		freeReplyObject(reply);
	redisFree(c);
	return ok;
}

/* Starts redis-server on a free loopback port and waits until it answers
 * PING; a few ports are tried (another process may take a port between
 * free_port and the server's bind).  Fills *uri. */
static void server_start(char *uri, size_t n)
{
	snprintf(server_dir, sizeof server_dir, "%s/redis", base_dir);
	if (mkdir(server_dir, 0700) != 0)
		die_sys(server_dir);
	char log[700];
	snprintf(log, sizeof log, "%s/redis.log", server_dir);
	server_owner = getpid();
	atexit(server_stop);
	for (int attempt = 0; attempt < 5; attempt++) {
		int port = free_port();
		char port_s[16];
		snprintf(port_s, sizeof port_s, "%d", port);
		pid_t parent = getpid();
		fflush(NULL);
		pid_t pid = fork();
		if (pid < 0)
			die_sys("fork");
		if (pid == 0) {
			/* Dies with the benchmark, however it ends. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(127);
			int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
			int null = open("/dev/null", O_RDONLY);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
			if (null >= 0)
				dup2(null, 0);
			execlp("redis-server", "redis-server", "--port", port_s, "--bind", "127.0.0.1",
			       "--save", "", "--appendonly", "no", "--dir", server_dir, "--loglevel",
			       "warning", (char *)NULL);
			fprintf(stderr, "exec redis-server: %s\n", strerror(errno));
			_exit(127);
		}
		server_pid = pid;
		struct memento__redis_target t = { .host = "127.0.0.1", .port = port };
		for (int waited = 0; waited < 10000; waited += 10) {
			if (ping(&t)) {
				snprintf(uri, n, "redis://127.0.0.1:%d", port);
				return;
			}
			int status;
			if (waitpid(pid, &status, WNOHANG) == pid) {
				server_pid = -1;
				if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
					die_msg("redis-server could not be run: is it installed? "
					        "(scripts/deps.sh installs it)");
				break; /* the port, most likely: another one */
			}
			sleep_ns(10000000);
		}
		if (server_pid > 0) {
			kill(server_pid, SIGKILL);
			waitpid(server_pid, NULL, 0);
			server_pid = -1;
		}
		fprintf(stderr, "redis_bench: redis-server on port %d did not start; see %s\n", port,
		        log);
	}
	die_msg("redis-server did not start");
}

/* Deletes this benchmark's keys from a server that is not ours. */
static void cleanup_keys(const struct memento__redis_target *t)
{
	redisContext *c = raw_connect(t, false);
	if (c == NULL)
		return;
	char cursor[32] = "0";
	size_t deleted = 0;
	do {
		redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor,
		                             "mementos:" CLASS_PREFIX "*");
		if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
			if (r != NULL)
				freeReplyObject(r);
			break;
		}
		snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
		redisReply *keys = r->element[1];
		for (size_t i = 0; i < keys->elements; i++) {
			const char *argv[2] = { "DEL", keys->element[i]->str };
			size_t lens[2] = { 3, keys->element[i]->len };
			redisReply *d = redisCommandArgv(c, 2, argv, lens);
			if (d != NULL) {
				deleted += d->type == REDIS_REPLY_INTEGER ? (size_t)d->integer : 0;
				freeReplyObject(d);
			}
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);
	fprintf(stderr, "deleted %zu keys mementos:" CLASS_PREFIX "* from the server\n", deleted);
	redisFree(c);
}

static memento_store *redis_store_open(const struct config *cfg)
{
	memento_store_options so = MEMENTO_STORE_OPTIONS_INIT;
	so.lease_ns = cfg->lease_ns;
	/* A lease must be at least twice the command timeout (1 s by default). */
	if (cfg->lease_ns != 0 && cfg->lease_ns < UINT64_C(2000000000))
		so.timeout_ns = cfg->lease_ns / 2;
	memento_store *store;
	int rc = memento_store_open(&store, cfg->uri, &so);
	if (rc != 0)
		die("memento_store_open (redis)", rc);
	return store;
}

/* ---- remote_hit --------------------------------------------------------------- */

/* One payload size: its keys, access order, and the floor's Redis keys. */
struct hit_set {
	const char *name; /* the class name */
	struct hit_world world;
	size_t n;
	struct hit_args *args;
	uint32_t *order;           /* shuffled [0, n): both sides' order */
	unsigned char (*ident)[16]; /* by index: the memento key bytes */
	char **rkey;                /* by index: the record's Redis key */
	size_t rkey_len;
	struct memento__digest fingerprint; /* the records' (one version, no inputs) */
};

static void hit_set_make(struct hit_set *s, const char *name, size_t payload, size_t n,
                         uint64_t seed)
{
	memset(s, 0, sizeof *s);
	s->name = name;
	s->world.payload = payload;
	s->n = n;
	s->args = calloc(n, sizeof *s->args);
	s->order = calloc(n, sizeof *s->order);
	s->ident = calloc(n, sizeof *s->ident);
	s->rkey = calloc(n, sizeof *s->rkey);
	if (!s->args || !s->order || !s->ident || !s->rkey)
		die("calloc", -ENOMEM);
	hit_keys_make(s->args, s->order, s->ident, n, seed);
	/* The Redis key: "mementos:" name ":{" hex of the 24-byte record key "}"
	 * (memento_store_open's comment; record.h has the record key). */
	static const char hex[] = "0123456789abcdef";
	uint64_t class_hash = memento__record_class_hash(name, strlen(name));
	s->rkey_len = strlen("mementos:") + strlen(name) + 2 + 2 * MEMENTO__RECORD_KEY + 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char rk[MEMENTO__RECORD_KEY];
		memento__record_key(class_hash, s->ident[i], 16, rk);
		char *k = malloc(s->rkey_len + 1), *w = k;
		if (k == NULL)
			die("malloc", -ENOMEM);
		w += sprintf(w, "mementos:%s:{", name);
		for (size_t j = 0; j < sizeof rk; j++) {
			*w++ = hex[rk[j] >> 4];
			*w++ = hex[rk[j] & 15];
		}
		*w++ = '}';
		*w = '\0';
		s->rkey[i] = k;
	}
}

static void hit_set_free(struct hit_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->rkey[i]);
	free(s->rkey);
	free(s->args);
	free(s->order);
	free(s->ident);
}

/*
 * The floor of a remote hit: GET on a reused connection, the record's
 * checks (what persist.c's visit checks: parse with checksum and digest,
 * identity, fingerprint), the decode.  noinline: memento_get is a call
 * into a shared library, so the floor must not win by being inlined.
 */
__attribute__((noinline)) static int floor_get(redisContext *c, const struct hit_set *s,
                                               uint32_t i, void **obj)
{
	const char *argv[2] = { "GET", s->rkey[i] };
	size_t lens[2] = { 3, s->rkey_len };
	redisReply *reply = redisCommandArgv(c, 2, argv, lens);
	if (reply == NULL)
		return -EIO;
	int rc = -ENOENT;
	if (reply->type == REDIS_REPLY_STRING) {
		struct memento__record r;
		if (memento__record_parse(reply->str, reply->len, &r) != MEMENTO__RECORD_OK ||
		    !memento__record_is(&r, s->name, strlen(s->name), s->ident[i], 16) ||
		    memcmp(r.fingerprint.b, s->fingerprint.b, sizeof r.fingerprint.b) != 0)
			rc = -EIO;
		else
			rc = hit_decode(obj, r.payload, (size_t)r.payload_len, NULL);
	}
	freeReplyObject(reply);
	return rc;
}

/* The GET alone: the round trip and hiredis's reply. */
__attribute__((noinline)) static int raw_get(redisContext *c, const struct hit_set *s, uint32_t i)
{
	const char *argv[2] = { "GET", s->rkey[i] };
	size_t lens[2] = { 3, s->rkey_len };
	redisReply *reply = redisCommandArgv(c, 2, argv, lens);
	if (reply == NULL)
		return -EIO;
	int rc = reply->type == REDIS_REPLY_STRING ? 0 : -ENOENT;
	freeReplyObject(reply);
	return rc;
}

/* A pass through a fresh cache whose class is on store: every key once,
 * all memory misses.  Only the gets are timed: wall time per get, and in
 * *cpu the thread's CPU time per get; *st the class's stats.  what names
 * the gets when one fails. */
static double time_hit_pass(memento_store *store, struct hit_set *s, const char *what,
                            double *cpu, memento_stats *st)
{
	memento_cache *cache = new_cache(s->n, 0);
	memento_class *cls = hit_class(cache, s->name, store, &s->world);
	uint64_t c0 = cpu_ns(), t0 = now_ns();
	for (size_t i = 0; i < s->n; i++) {
		void *obj;
		int rc = memento_get(cls, &s->args[s->order[i]], &obj);
		if (rc != 0)
			die(what, rc);
	}
	uint64_t t = now_ns() - t0;
	*cpu = (double)(cpu_ns() - c0) / (double)s->n;
	memento_class_stats(cls, st);
	memento_cache_free(cache);
	return (double)t / (double)s->n;
}

/* A pass of remote hits: the class on the Redis store. */
static double time_remote_hits(memento_store *store, struct hit_set *s, double *cpu)
{
	memento_stats st;
	double t = time_hit_pass(store, s, "memento_get (remote hit)", cpu, &st);
	if (st.remote_hits != s->n || st.store_hits != s->n || st.creations != 0 ||
	    st.store_errors != 0 || st.remote_waits != 0) {
		fprintf(stderr,
		        "remote hits: %" PRIu64 " remote hits, %" PRIu64 " store hits, %" PRIu64
		        " creations, %" PRIu64 " store errors, %" PRIu64 " remote waits for %zu gets\n",
		        st.remote_hits, st.store_hits, st.creations, st.store_errors, st.remote_waits,
		        s->n);
		die_msg("remote hits: not every get was a remote hit");
	}
	return t;
}

/* An LMDB store in a fresh directory of the run (*dir, for the caller to
 * remove and free) whose next tier is rstore; flags: MEMENTO_STORE_NOSYNC
 * or durable. */
static memento_store *lmdb_tier_open(memento_store *rstore, const char *name, unsigned flags,
                                     char **dir)
{
	*dir = subdir(name);
	memento_store_options so = MEMENTO_STORE_OPTIONS_INIT;
	so.flags = flags;
	so.next = rstore;
	memento_store *lstore;
	int rc = memento_store_open(&lstore, *dir, &so);
	if (rc != 0)
		die("memento_store_open (lmdb, next = redis)", rc);
	return lstore;
}

/* The remote hit: a memory miss and an LMDB miss, then a Redis hit,
 * copied into the LMDB tier (a fresh store directory per pass, opened and
 * removed untimed; flags: MEMENTO_STORE_NOSYNC or durable). */
static double time_tiered_remote_hits(memento_store *rstore, struct hit_set *s, unsigned flags,
                                      double *cpu)
{
	char *dir;
	memento_store *lstore = lmdb_tier_open(rstore, "tiered-hit", flags, &dir);
	memento_stats st;
	double t = time_hit_pass(lstore, s, "memento_get (tiered remote hit)", cpu, &st);
	if (st.remote_hits != s->n || st.store_hits != s->n || st.creations != 0 ||
	    st.store_writes != s->n || st.store_errors != 0)
		die_msg("tiered remote hits: not every get was an LMDB miss, a Redis hit and a fill");
	memento_store_close(lstore);
	remove_dir(dir);
	free(dir);
	return t;
}

/* The floor's pass: the same keys and order; the decoded objects are kept
 * and freed after the pass, untimed, as the cache's are. */
static double time_floor(redisContext *c, struct hit_set *s, void **objs, double *cpu)
{
	uint64_t c0 = cpu_ns(), t0 = now_ns();
	for (size_t i = 0; i < s->n; i++) {
		int rc = floor_get(c, s, s->order[i], &objs[i]);
		if (rc != 0)
			die("floor GET", rc);
	}
	uint64_t t = now_ns() - t0;
	*cpu = (double)(cpu_ns() - c0) / (double)s->n;
	for (size_t i = 0; i < s->n; i++)
		free(objs[i]);
	return (double)t / (double)s->n;
}

static double time_raw_get(redisContext *c, struct hit_set *s, double *cpu)
{
	uint64_t c0 = cpu_ns(), t0 = now_ns();
	for (size_t i = 0; i < s->n; i++) {
		int rc = raw_get(c, s, s->order[i]);
		if (rc != 0)
			die("raw GET", rc);
	}
	uint64_t t = now_ns() - t0;
	*cpu = (double)(cpu_ns() - c0) / (double)s->n;
	return (double)t / (double)s->n;
}

/* Reads every record raw once: the floor's keys are the library's, each
 * record is its key's (payload index), and the fingerprint is one. */
static void hit_set_check(redisContext *c, struct hit_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		const char *argv[2] = { "GET", s->rkey[i] };
		size_t lens[2] = { 3, s->rkey_len };
		redisReply *reply = redisCommandArgv(c, 2, argv, lens);
		if (reply == NULL || reply->type != REDIS_REPLY_STRING)
			die_msg("remote_hit: a record is not where the floor looks (Redis key)");
		struct memento__record r;
		uint64_t index;
		if (memento__record_parse(reply->str, reply->len, &r) != MEMENTO__RECORD_OK ||
		    !memento__record_is(&r, s->name, strlen(s->name), s->ident[i], 16) ||
		    r.payload_len != s->world.payload)
			die_msg("remote_hit: a record is not its key's");
		memcpy(&index, r.payload, sizeof index);
		if (index != i)
			die_msg("remote_hit: a record holds another key's payload");
		if (i == 0)
			s->fingerprint = r.fingerprint;
		else if (memcmp(s->fingerprint.b, r.fingerprint.b, sizeof r.fingerprint.b) != 0)
			die_msg("remote_hit: records with two fingerprints");
		freeReplyObject(reply);
	}
}

static void bench_remote_hit(const struct config *cfg)
{
	struct hit_set sets[2];
	hit_set_make(&sets[0], CLASS_PREFIX "hit64", 64, cfg->hit_keys, 1);
	hit_set_make(&sets[1], CLASS_PREFIX "hit4096", 4096, cfg->hit_keys, 2);
	memento_store *store = redis_store_open(cfg);

	fprintf(stderr, "remote_hit: filling %zu keys x 2 sizes\n", cfg->hit_keys);
	memento_cache *cache = new_cache(2 * cfg->hit_keys, 0);
	for (int i = 0; i < 2; i++)
		hit_fill(cache, sets[i].name, store, &sets[i].world, sets[i].args, sets[i].n);
	memento_cache_free(cache);

	redisContext *c = raw_connect(&cfg->target, false);
	if (c == NULL)
		die_msg("remote_hit: no raw connection");
	void **objs = malloc(cfg->hit_keys * sizeof *objs);
	if (objs == NULL)
		die("malloc", -ENOMEM);

	for (int i = 0; i < 2; i++) {
		struct hit_set *s = &sets[i];
		hit_set_check(c, s);
		if (cfg->payload_only != 0 && cfg->payload_only != s->world.payload)
			continue;
		/* Untimed: both sides once (the library's pool gets its connection). */
		double cm, cf, cg;
		(void)time_remote_hits(store, s, &cm);
		(void)time_floor(c, s, objs, &cf);
		(void)time_raw_get(c, s, &cg);

		fprintf(stderr, "remote_hit %s: %d rounds of %zu gets per side\n", s->name,
		        cfg->rounds, cfg->hit_passes * s->n);
		/* Wall time per get, and the client thread's CPU time per get
		 * (its own work and system calls, without the waits for the
		 * server): the library's overhead, away from the round trip's
		 * noise. */
		double m[cfg->rounds], f[cfg->rounds], g[cfg->rounds];
		double mc[cfg->rounds], fc[cfg->rounds], gc[cfg->rounds];
		double tn[cfg->rounds], td[cfg->rounds];
		double np = (double)cfg->hit_passes;
		for (int r = 0; r < cfg->rounds; r++) {
			m[r] = f[r] = g[r] = mc[r] = fc[r] = gc[r] = 0;
			/* One pass each per round: a durable fill syncs per get. */
			double ignored;
			tn[r] = time_tiered_remote_hits(store, s, MEMENTO_STORE_NOSYNC, &ignored);
			td[r] = time_tiered_remote_hits(store, s, 0, &ignored);
			for (size_t k = 0; k < cfg->hit_passes; k++) {
				if (((size_t)r + k) % 2 == 0) {
					m[r] += time_remote_hits(store, s, &cm) / np;
					f[r] += time_floor(c, s, objs, &cf) / np;
					g[r] += time_raw_get(c, s, &cg) / np;
				} else {
					g[r] += time_raw_get(c, s, &cg) / np;
					f[r] += time_floor(c, s, objs, &cf) / np;
					m[r] += time_remote_hits(store, s, &cm) / np;
				}
				mc[r] += cm / np;
				fc[r] += cf / np;
				gc[r] += cg / np;
			}
			fprintf(stderr,
			        "  round %d: mementos %.0f  floor %.0f  raw-get %.0f ns"
			        "  (client cpu %.0f / %.0f / %.0f ns)\n",
			        r, m[r], f[r], g[r], mc[r], fc[r], gc[r]);
		}
		double mm = median_of(m, cfg->rounds), fm = median_of(f, cfg->rounds),
		       gm = median_of(g, cfg->rounds);
		double mcm = median_of(mc, cfg->rounds), fcm = median_of(fc, cfg->rounds),
		       gcm = median_of(gc, cfg->rounds);
		char v[40], ref[40];
		snprintf(ref, sizeof ref, "floor-%zuB", s->world.payload);
		snprintf(v, sizeof v, "mementos-%zuB", s->world.payload);
		add_row("remote_hit", v, "median", mm, "ns/op", mm / fm, ref, cfg->rounds);
		add_row("remote_hit", ref, "median", fm, "ns/op", NAN, NULL, cfg->rounds);
		snprintf(v, sizeof v, "raw-get-%zuB", s->world.payload);
		add_row("remote_hit", v, "median", gm, "ns/op", gm / fm, ref, cfg->rounds);
		snprintf(v, sizeof v, "mementos-%zuB", s->world.payload);
		add_row("remote_hit", v, "client_cpu", mcm, "ns/op", mcm / fcm, ref, cfg->rounds);
		add_row("remote_hit", ref, "client_cpu", fcm, "ns/op", NAN, NULL, cfg->rounds);
		double tnm = median_of(tn, cfg->rounds), tdm = median_of(td, cfg->rounds);
		snprintf(v, sizeof v, "tiered-nosync-%zuB", s->world.payload);
		add_row("remote_hit", v, "median", tnm, "ns/op", tnm / fm, ref, cfg->rounds);
		snprintf(v, sizeof v, "tiered-durable-%zuB", s->world.payload);
		add_row("remote_hit", v, "median", tdm, "ns/op", tdm / fm, ref, cfg->rounds);
		snprintf(v, sizeof v, "raw-get-%zuB", s->world.payload);
		add_row("remote_hit", v, "client_cpu", gcm, "ns/op", gcm / fcm, ref, cfg->rounds);
	}
	free(objs);
	redisFree(c);
	memento_store_close(store);
	hit_set_free(&sets[0]);
	hit_set_free(&sets[1]);
}

/* ---- stampede ------------------------------------------------------------------ */

/* Shared by the processes (MAP_SHARED, made before fork). */
struct st_shared {
	pthread_barrier_t start, end;
	int nproc, nthreads, rounds;
	long create_ms;
	uint64_t key_base;
	_Atomic int failures;
	_Atomic int ready; /* processes past their warm-up */
	_Atomic int creations[]; /* per round; then the arrays below (flat) */
};

/* Where the flat arrays after the struct live. */
struct st_view {
	struct st_shared *sh;
	uint64_t *t_create_ret; /* per round: create's last moment */
	int *creator_proc, *creator_thread; /* per round */
	uint64_t *t_ret; /* [round][proc][thread]: get return */
	uint64_t *stats; /* [proc][4]: creations, remote_waits, remote_hits, waits */
	size_t size;
};

static void st_view_of(struct st_shared *sh, int rounds, int nproc, int nthreads,
                       struct st_view *v)
{
	/* Offsets first: with sh NULL, only the size is wanted. */
	size_t at = sizeof *sh + (size_t)rounds * sizeof(_Atomic int);
	at = (at + 7) & ~(size_t)7;
	size_t o_create = at;
	at += (size_t)rounds * sizeof(uint64_t);
	size_t o_ret = at;
	at += (size_t)rounds * (size_t)nproc * (size_t)nthreads * sizeof(uint64_t);
	size_t o_stats = at;
	at += (size_t)nproc * 4 * sizeof(uint64_t);
	size_t o_cproc = at;
	at += (size_t)rounds * sizeof(int);
	size_t o_cthread = at;
	at += (size_t)rounds * sizeof(int);
	*v = (struct st_view){ .sh = sh, .size = at };
	if (sh == NULL)
		return;
	unsigned char *base = (unsigned char *)sh;
	v->t_create_ret = (uint64_t *)(void *)(base + o_create);
	v->t_ret = (uint64_t *)(void *)(base + o_ret);
	v->stats = (uint64_t *)(void *)(base + o_stats);
	v->creator_proc = (int *)(void *)(base + o_cproc);
	v->creator_thread = (int *)(void *)(base + o_cthread);
}

struct st_proc {
	struct st_view v;
	int me;
	memento_class *cls;
};

static _Thread_local int st_thread = -1;

static int st_create(void **obj, const void *args, void *ctx)
{
	struct st_proc *p = ctx;
	struct st_shared *sh = p->v.sh;
	uint64_t key = *(const uint64_t *)args;
	*obj = NULL;
	if (key < sh->key_base) /* a warm-up key */
		return 0;
	int r = (int)(key - sh->key_base);
	atomic_fetch_add(&sh->creations[r], 1);
	p->v.creator_proc[r] = p->me;
	p->v.creator_thread[r] = st_thread;
	sleep_ns(sh->create_ms * 1000000L);
	/* The last moment create can see: encode, SET, lease release and the
	 * publish follow. */
	p->v.t_create_ret[r] = now_ns();
	return 0;
}

struct st_thread_arg {
	struct st_proc *p;
	int t;
};

static void *st_thread_main(void *arg)
{
	struct st_thread_arg *a = arg;
	struct st_proc *p = a->p;
	struct st_shared *sh = p->v.sh;
	st_thread = a->t;
	for (int r = 0; r < sh->rounds; r++) {
		uint64_t key = sh->key_base + (uint64_t)r;
		void *obj;
		pthread_barrier_wait(&sh->start);
		int rc = memento_get(p->cls, &key, &obj);
		uint64_t t = now_ns();
		p->v.t_ret[((size_t)r * (size_t)sh->nproc + (size_t)p->me) * (size_t)sh->nthreads +
		           (size_t)a->t] = t;
		if (rc != 0) {
			fprintf(stderr, "stampede: process %d thread %d round %d: get: %s\n", p->me, a->t,
			        r, memento_strerror(rc));
			atomic_fetch_add(&sh->failures, 1);
		}
		pthread_barrier_wait(&sh->end);
	}
	return NULL;
}

/* One process of the stampede: its own store (opened after fork), cache
 * and class; T threads. */
static void st_run(const struct config *cfg, struct st_view *v, int me)
{
	struct st_shared *sh = v->sh;
	struct st_proc p = { *v, me, NULL };
	memento_store *store = redis_store_open(cfg);
	memento_cache *cache = new_cache(64, 0);
	memento_class_desc d = { CLASS_PREFIX "stampede", u64_key, st_create, NULL, &p };
	p.cls = persisted_class(cache, &d, NULL, store, marker_encode, marker_decode,
	                        "memento_class_new_with");
	/* Warm-up: this process's connection, on a key of its own. */
	uint64_t warm = sh->key_base - 1 - (uint64_t)me;
	void *obj;
	int rc;
	if ((rc = memento_get(p.cls, &warm, &obj)) != 0)
		die("memento_get (warm-up)", rc);
	memento_stats before;
	memento_class_stats(p.cls, &before);

	pthread_t th[STAMPEDE_MAXT];
	struct st_thread_arg args[STAMPEDE_MAXT];
	for (int t = 0; t < sh->nthreads; t++) {
		args[t] = (struct st_thread_arg){ &p, t };
		if (pthread_create(&th[t], NULL, st_thread_main, &args[t]) != 0)
			die_sys("pthread_create");
	}
	for (int t = 0; t < sh->nthreads; t++)
		pthread_join(th[t], NULL);
	memento_stats st;
	memento_class_stats(p.cls, &st);
	uint64_t *out = v->stats + (size_t)me * 4;
	out[0] = st.creations - before.creations;
	out[1] = st.remote_waits - before.remote_waits;
	out[2] = st.remote_hits - before.remote_hits;
	out[3] = st.waits - before.waits;
	memento_cache_free(cache);
	memento_store_close(store);
}

/* The p50, p90 and max of n waiters' delays from create's return (none
 * when n is 0); d is sorted in place. */
static void waiter_rows(const char *variant, double *d, size_t n)
{
	if (n == 0)
		return;
	double p50 = quantile(d, n, 0.5), p90 = quantile(d, n, 0.9);
	double worst = d[n - 1];
	add_row("stampede", variant, "p50", p50, "ns", NAN, "create-return", (int)n);
	add_row("stampede", variant, "p90", p90, "ns", NAN, "create-return", (int)n);
	add_row("stampede", variant, "max", worst, "ns", NAN, "create-return", (int)n);
}

/* Set when a stampede created other than once: main exits nonzero. */
static bool stampede_failed;

static void bench_stampede(const struct config *cfg)
{
	int nproc = cfg->procs, nthreads = cfg->threads, rounds = cfg->stampedes;
	struct st_view v;
	st_view_of(NULL, rounds, nproc, nthreads, &v);
	size_t size = v.size;
	struct st_shared *sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	                            -1, 0);
	if (sh == MAP_FAILED)
		die_sys("mmap");
	memset(sh, 0, size);
	st_view_of(sh, rounds, nproc, nthreads, &v);
	sh->nproc = nproc;
	sh->nthreads = nthreads;
	sh->rounds = rounds;
	sh->create_ms = cfg->create_ms;
	/* Keys no earlier run left on a server: from the clock. */
	uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	sh->key_base = (splitmix64(&seed) >> 8) | (UINT64_C(1) << 40);
	pthread_barrierattr_t ba;
	pthread_barrierattr_init(&ba);
	pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
	unsigned all = (unsigned)(nproc * nthreads);
	pthread_barrier_init(&sh->start, &ba, all);
	pthread_barrier_init(&sh->end, &ba, all);

	fprintf(stderr, "stampede: %d processes x %d threads, create %ld ms, %d stampedes\n", nproc,
	        nthreads, cfg->create_ms, rounds);
	pid_t pids[STAMPEDE_MAXP];
	fflush(NULL);
	for (int i = 0; i < nproc; i++) {
		pid_t pid = fork();
		if (pid < 0)
			die_sys("fork");
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			st_run(cfg, &v, i);
			fflush(NULL);
			_exit(0);
		}
		pids[i] = pid;
	}
	/* A watchdog: a hang is a result to report, not a stuck run. */
	uint64_t limit = now_ns() + (uint64_t)(30 + rounds * (10 + 4 * cfg->create_ms / 1000)) *
	                                UINT64_C(1000000000);
	int left = nproc, bad = 0;
	while (left > 0) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid < 0)
			die_sys("waitpid");
		if (pid == 0) {
			if (now_ns() > limit) {
				fprintf(stderr, "stampede: HUNG: %d of %d processes still running; killed\n",
				        left, nproc);
				for (int i = 0; i < nproc; i++)
					kill(pids[i], SIGKILL);
				while (waitpid(-1, NULL, 0) > 0)
					;
				exit(1);
			}
			sleep_ns(5000000);
			continue;
		}
		bool known = false;
		for (int i = 0; i < nproc; i++)
			known |= pids[i] == pid;
		if (!known)
			continue; /* not a stampede process (the server?) */
		left--;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "stampede: process %d ended with status %d\n", (int)pid, status);
			bad++;
		}
	}
	if (bad != 0 || atomic_load(&sh->failures) != 0)
		die_msg("stampede: a process or a get failed");

	/* One creation per stampede, or the run fails. */
	int total = 0, wrong = 0;
	for (int r = 0; r < rounds; r++) {
		int n = atomic_load(&sh->creations[r]);
		total += n;
		if (n != 1) {
			fprintf(stderr, "stampede %d: %d creations\n", r, n);
			wrong++;
		}
	}
	uint64_t sum[4] = { 0 };
	for (int i = 0; i < nproc; i++)
		for (int k = 0; k < 4; k++)
			sum[k] += v.stats[(size_t)i * 4 + (size_t)k];

	size_t nsamp = (size_t)rounds * (size_t)nproc * (size_t)nthreads;
	double *remote = malloc(nsamp * sizeof *remote), *local = malloc(nsamp * sizeof *local);
	double *window = malloc((size_t)rounds * sizeof *window);
	if (remote == NULL || local == NULL || window == NULL)
		die("malloc", -ENOMEM);
	size_t nr = 0, nl = 0, nw = 0;
	for (int r = 0; r < rounds && wrong == 0; r++) {
		int cp = v.creator_proc[r], ct = v.creator_thread[r];
		uint64_t t0 = v.t_create_ret[r];
		for (int p = 0; p < nproc; p++) {
			for (int t = 0; t < nthreads; t++) {
				uint64_t tr = v.t_ret[((size_t)r * (size_t)nproc + (size_t)p) *
				                              (size_t)nthreads +
				                      (size_t)t];
				double d = (double)(int64_t)(tr - t0);
				if (p == cp && t == ct)
					window[nw++] = d;
				else if (p == cp)
					local[nl++] = d;
				else
					remote[nr++] = d;
			}
		}
	}
	add_row("stampede", "creations", "total", (double)total, "creations", NAN, NULL, rounds);
	add_row("stampede", "creations", "not-once", (double)wrong, "stampedes", NAN, NULL, rounds);
	add_row("stampede", "remote_waits", "total", (double)sum[1], "gets", NAN, NULL, rounds);
	add_row("stampede", "remote_hits", "total", (double)sum[2], "gets", NAN, NULL, rounds);
	add_row("stampede", "local_waits", "total", (double)sum[3], "gets", NAN, NULL, rounds);
	if (wrong != 0) {
		stampede_failed = true;
		fprintf(stderr, "stampede: %d of %d stampedes did not create exactly once\n", wrong,
		        rounds);
		return; /* main exits nonzero after printing */
	}
	waiter_rows("other-process-waiters", remote, nr);
	waiter_rows("creator-process-waiters", local, nl);
	/* The creator's own get: encode, SET, lease release, publish. */
	add_row("stampede", "creator-get", "p50", quantile(window, nw, 0.5), "ns", NAN,
	        "create-return", (int)nw);
	add_row("stampede", "creator-get", "max", window[nw - 1], "ns", NAN, "create-return",
	        (int)nw);
	free(remote);
	free(local);
	free(window);
	pthread_barrier_destroy(&sh->start);
	pthread_barrier_destroy(&sh->end);
	munmap(sh, size);
}

/* ---- tier ------------------------------------------------------------------------ */

#define ZIPF_S 0.99
#define ZIPF_BATCH 64 /* gets per guard: one "request" */

struct zipf_world {
	size_t payload;
	uint64_t *ids; /* by rank */
};

static int zipf_create(void **obj, const void *args, void *ctx)
{
	const struct zipf_world *w = ctx;
	struct blob *b = malloc(sizeof *b + w->payload);
	if (b == NULL)
		return -ENOMEM;
	b->len = w->payload;
	fill_random(b->data, w->payload, *(const uint64_t *)args);
	*obj = b;
	return 0;
}

static memento_class *zipf_class(memento_cache *cache, memento_store *store,
                                 struct zipf_world *w, uint64_t bound)
{
	memento_class_desc d = { CLASS_PREFIX "zipf", u64_key, zipf_create, hit_destroy, w };
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	if (bound != 0) {
		o.lifetime = MEMENTO_LIFETIME_GUARDED;
		o.max_entries = bound;
	}
	return persisted_class(cache, &d, &o, store, hit_encode, hit_decode,
	                       "memento_class_new_with (zipf)");
}

/* m draws of ranks in [0, k), Zipf(s): the inverse of the CDF. */
static void zipf_trace(uint32_t *out, size_t m, const double *cdf, size_t k, uint64_t seed)
{
	for (size_t i = 0; i < m; i++) {
		double u = (double)(splitmix64(&seed) >> 11) * 0x1.0p-53 * cdf[k - 1];
		size_t lo = 0, hi = k - 1;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (cdf[mid] < u)
				lo = mid + 1;
			else
				hi = mid;
		}
		out[i] = (uint32_t)lo;
	}
}

/* One pass of the trace through a fresh cache: gets/s; *st its counters. */
static double time_zipf(memento_store *store, struct zipf_world *w, const uint32_t *trace,
                        size_t m, uint64_t bound, memento_stats *st)
{
	memento_cache *cache = new_cache(2 * bound, 4); /* small bounds want few shards */
	memento_class *cls = zipf_class(cache, store, w, bound);
	uint64_t t0 = now_ns();
	for (size_t i = 0; i < m; i += ZIPF_BATCH) {
		size_t end = i + ZIPF_BATCH < m ? i + ZIPF_BATCH : m;
		memento_guard_enter(cache);
		for (size_t j = i; j < end; j++) {
			void *obj;
			int rc = memento_get(cls, &w->ids[trace[j]], &obj);
			if (rc != 0)
				die("memento_get (zipf)", rc);
		}
		memento_guard_leave(cache);
	}
	uint64_t t = now_ns() - t0;
	memento_class_stats(cls, st);
	if (st->creations != 0 || st->store_errors != 0) {
		fprintf(stderr, "tier: %" PRIu64 " creations, %" PRIu64 " store errors\n",
		        st->creations, st->store_errors);
		die_msg("tier: a get created or met a store error (every record is on the server)");
	}
	memento_cache_free(cache);
	return (double)m * 1e9 / (double)t;
}

static void bench_tier(const struct config *cfg)
{
	size_t k = cfg->zipf_keys, m = cfg->zipf_gets;
	uint64_t bound = k / 100 > 0 ? k / 100 : 1;
	struct zipf_world w = { cfg->zipf_payload, malloc(k * sizeof(uint64_t)) };
	double *cdf = malloc(k * sizeof *cdf);
	uint32_t *trace = malloc(m * sizeof *trace);
	if (w.ids == NULL || cdf == NULL || trace == NULL)
		die("malloc", -ENOMEM);
	uint64_t seed = 77;
	double acc = 0;
	for (size_t i = 0; i < k; i++) {
		w.ids[i] = splitmix64(&seed);
		acc += 1.0 / pow((double)(i + 1), ZIPF_S);
		cdf[i] = acc;
	}
	memento_store *rstore = redis_store_open(cfg);

	/* The fill: every record on the server. */
	fprintf(stderr, "tier: filling %zu keys of %zu B\n", k, w.payload);
	memento_cache *cache = new_cache(k, 0);
	memento_class *cls = zipf_class(cache, rstore, &w, 0);
	for (size_t i = 0; i < k; i++) {
		void *obj;
		int rc = memento_get(cls, &w.ids[i], &obj);
		if (rc != 0)
			die("memento_get (zipf fill)", rc);
	}
	memento_cache_free(cache);

	char *dir;
	memento_store *lstore = lmdb_tier_open(rstore, "tier-lmdb", MEMENTO_STORE_NOSYNC, &dir);

	/* The first pass of each side, untimed as a round but reported: the
	 * LMDB tier starts empty and fills from the server. */
	memento_stats st, cold_st;
	zipf_trace(trace, m, cdf, k, 1000);
	double cold = time_zipf(lstore, &w, trace, m, bound, &cold_st);
	(void)time_zipf(rstore, &w, trace, m, bound, &st);

	fprintf(stderr, "tier: %d rounds of %zu gets per side, %zu keys, bound %" PRIu64 "\n",
	        cfg->rounds, m, k, bound);
	double red[cfg->rounds], tier[cfg->rounds];
	double red_remote[cfg->rounds], tier_remote[cfg->rounds], red_mem[cfg->rounds],
	        tier_mem[cfg->rounds], tier_store[cfg->rounds];
	for (int r = 0; r < cfg->rounds; r++) {
		zipf_trace(trace, m, cdf, k, 2000 + (uint64_t)r); /* the same for both sides */
		memento_stats sr, stt;
		if (r % 2 == 0) {
			red[r] = time_zipf(rstore, &w, trace, m, bound, &sr);
			tier[r] = time_zipf(lstore, &w, trace, m, bound, &stt);
		} else {
			tier[r] = time_zipf(lstore, &w, trace, m, bound, &stt);
			red[r] = time_zipf(rstore, &w, trace, m, bound, &sr);
		}
		red_remote[r] = (double)sr.remote_hits;
		tier_remote[r] = (double)stt.remote_hits;
		tier_store[r] = (double)stt.store_hits;
		red_mem[r] = (double)sr.hits / (double)m;
		tier_mem[r] = (double)stt.hits / (double)m;
		fprintf(stderr,
		        "  round %d: redis-only %.0f gets/s (%.0f remote hits)  tiered %.0f gets/s "
		        "(%.0f remote hits, %.0f store hits)  memory hits %.3f / %.3f\n",
		        r, red[r], red_remote[r], tier[r], tier_remote[r], tier_store[r], red_mem[r],
		        tier_mem[r]);
	}
	double rm = median_of(red, cfg->rounds), tm = median_of(tier, cfg->rounds);
	add_row("tier", "tiered-lmdb+redis", "median", tm, "gets/s", tm / rm, "redis-only",
	        cfg->rounds);
	add_row("tier", "redis-only", "median", rm, "gets/s", NAN, NULL, cfg->rounds);
	add_row("tier", "tiered-lmdb+redis", "remote_hits", median_of(tier_remote, cfg->rounds),
	        "per-pass", NAN, NULL, cfg->rounds);
	add_row("tier", "tiered-lmdb+redis", "store_hits", median_of(tier_store, cfg->rounds),
	        "per-pass", NAN, NULL, cfg->rounds);
	add_row("tier", "redis-only", "remote_hits", median_of(red_remote, cfg->rounds), "per-pass",
	        NAN, NULL, cfg->rounds);
	add_row("tier", "tiered-lmdb+redis", "memory_hit_ratio", median_of(tier_mem, cfg->rounds),
	        "fraction", NAN, NULL, cfg->rounds);
	add_row("tier", "redis-only", "memory_hit_ratio", median_of(red_mem, cfg->rounds),
	        "fraction", NAN, NULL, cfg->rounds);
	add_row("tier", "tiered-cold-first-pass", "once", cold, "gets/s", cold / rm, "redis-only", 1);
	add_row("tier", "tiered-cold-first-pass", "remote_hits", (double)cold_st.remote_hits,
	        "per-pass", NAN, NULL, 1);
	add_row("tier", "gets-per-pass", "count", (double)m, "gets", NAN, NULL, cfg->rounds);

	memento_store_close(lstore);
	memento_store_close(rstore);
	remove_dir(dir);
	free(dir);
	free(w.ids);
	free(cdf);
	free(trace);
}

/* ---- output ------------------------------------------------------------------------ */

/* The brief's targets, shown next to the rows they apply to. */
static const char *target_of(const struct row *r, bool *judged, bool *met)
{
	*judged = false;
	if (strcmp(r->benchmark, "remote_hit") == 0 &&
	    (strncmp(r->variant, "mementos-", 9) == 0 || strncmp(r->variant, "tiered-", 7) == 0) &&
	    strcmp(r->stat, "median") == 0) {
		*judged = true;
		*met = r->ratio <= 1.3;
		return "<= 1.3x";
	}
	if (strcmp(r->benchmark, "stampede") == 0 && strcmp(r->variant, "creations") == 0 &&
	    strcmp(r->stat, "not-once") == 0) {
		*judged = true;
		*met = r->value == 0;
		return "0 (1 each)";
	}
	return "";
}

/* ---- main ------------------------------------------------------------------------ */

static void usage(FILE *out)
{
	fputs("usage: mementos-redis-bench [--quick] [--rounds N] [--csv FILE] [--uri URI]\n"
	      "                            [--only LIST] [options]\n"
	      "  --quick         tiny sizes, 3 rounds (unless --rounds): a smoke run\n"
	      "  --rounds N      timed rounds per side (default 5); medians are over rounds\n"
	      "  --csv FILE      write the results as CSV\n"
	      "  --uri URI       use this Redis server (redis://...) instead of starting one;\n"
	      "                  the keys mementos:" CLASS_PREFIX "* are deleted at the end\n"
	      "  --dir DIR       where to make the run's temporary directory (default /tmp)\n"
	      "  --only LIST     comma-separated: remote_hit,stampede,tier\n"
	      "  --payload N     remote_hit with one payload size only: 64 or 4096 (profiling)\n"
	      "  --procs P       stampede processes (default 4; --quick 2)\n"
	      "  --threads T     stampede threads per process (default 4; --quick 2)\n"
	      "  --create-ms C   stampede create duration (default 50)\n"
	      "  --stampedes S   stampedes (default 4 per round; --quick 3)\n"
	      "  --lease-ms L    the Redis store's lease_ns, in ms (default: the library's);\n"
	      "                  under 2000, the command timeout becomes L / 2\n"
	      "  --keys K        tier: Zipf keys (default 10000; --quick 200)\n"
	      "  --gets M        tier: gets per pass (default 100000; --quick 2000)\n",
	      out);
}

#define ARG_LONG(min, max) bench_parse_long(i + 1 < argc ? argv[++i] : NULL, (min), (max), usage)

int main(int argc, char **argv)
{
	struct config cfg = {
		.rounds = 5,
		.hit_keys = 2000,
		.hit_passes = 4,
		.procs = 4,
		.threads = 4,
		.create_ms = 50,
		.zipf_keys = 10000,
		.zipf_gets = 100000,
		.zipf_payload = 256,
	};
	long rounds = 0, procs = 0, threads = 0, stampedes = 0, keys = 0, gets = 0;
	const char *csv = NULL, *dir = "/tmp", *only = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			cfg.quick = true;
		} else if (strcmp(argv[i], "--rounds") == 0) {
			rounds = ARG_LONG(1, 1001);
		} else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc) {
			csv = argv[++i];
		} else if (strcmp(argv[i], "--uri") == 0 && i + 1 < argc) {
			cfg.uri = argv[++i];
		} else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			only = argv[++i];
		} else if (strcmp(argv[i], "--payload") == 0) {
			cfg.payload_only = (size_t)ARG_LONG(1, 4096);
		} else if (strcmp(argv[i], "--procs") == 0) {
			procs = ARG_LONG(1, STAMPEDE_MAXP);
		} else if (strcmp(argv[i], "--threads") == 0) {
			threads = ARG_LONG(1, STAMPEDE_MAXT);
		} else if (strcmp(argv[i], "--create-ms") == 0) {
			cfg.create_ms = ARG_LONG(0, 60000);
		} else if (strcmp(argv[i], "--stampedes") == 0) {
			stampedes = ARG_LONG(1, 10000);
		} else if (strcmp(argv[i], "--lease-ms") == 0) {
			cfg.lease_ns = (uint64_t)ARG_LONG(1, 3600000) * 1000000u;
		} else if (strcmp(argv[i], "--keys") == 0) {
			keys = ARG_LONG(100, 100000000);
		} else if (strcmp(argv[i], "--gets") == 0) {
			gets = ARG_LONG(1, 1000000000);
		} else if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (cfg.quick) {
		cfg.rounds = 3;
		cfg.hit_keys = 200;
		cfg.hit_passes = 2;
		cfg.procs = 2;
		cfg.threads = 2;
		cfg.zipf_keys = 200;
		cfg.zipf_gets = 2000;
	}
	if (rounds != 0)
		cfg.rounds = (int)rounds;
	cfg.stampedes = cfg.quick ? 3 : 4 * cfg.rounds;
	if (procs != 0)
		cfg.procs = (int)procs;
	if (threads != 0)
		cfg.threads = (int)threads;
	if (stampedes != 0)
		cfg.stampedes = (int)stampedes;
	if (keys != 0)
		cfg.zipf_keys = (size_t)keys;
	if (gets != 0)
		cfg.zipf_gets = (size_t)gets;
	if (cfg.payload_only != 0 && cfg.payload_only != 64 && cfg.payload_only != 4096) {
		usage(stderr);
		return 2;
	}

	/* A server that goes away must fail a command, not kill the run. */
	signal(SIGPIPE, SIG_IGN);
	/* Freed memory stays in the process: each remote-hit pass frees a
	 * cache (or the floor's objects) and builds another, and a trimmed
	 * heap would put page faults into whichever side ran next. */
	mallopt(M_TRIM_THRESHOLD, 1 << 30);
	mallopt(M_MMAP_THRESHOLD, 256 << 20);

	char cpu[256];
	cpu_model(cpu, sizeof cpu);
	base_dir_make(dir, "mementos-redis-bench");
	base_owner = getpid();
	atexit(base_dir_remove);
	char uri[128];
	bool own_server = cfg.uri == NULL;
	if (own_server) {
		server_start(uri, sizeof uri);
		cfg.uri = uri;
	}
	int rc = memento__redis_uri_parse(cfg.uri, &cfg.target);
	if (rc != 0)
		die("--uri", rc);

	/* The server without its credentials, and the command without --uri's. */
	printf("mementos-redis-bench: cpu %s; server %s:%d/%d%s%s; rounds %d%s; command:", cpu,
	       cfg.target.host, cfg.target.port, cfg.target.db,
	       cfg.target.password != NULL ? " (with a password)" : "",
	       own_server ? " (started here)" : "", cfg.rounds, cfg.quick ? " (quick)" : "");
	for (int i = 0; i < argc; i++)
		printf(" %s", i > 0 && strcmp(argv[i - 1], "--uri") == 0 ? "URI" : argv[i]);
	printf("\n");
	fflush(stdout);

	if (bench_selected(only, "remote_hit"))
		bench_remote_hit(&cfg);
	if (bench_selected(only, "stampede"))
		bench_stampede(&cfg);
	if (bench_selected(only, "tier"))
		bench_tier(&cfg);
	if (!own_server)
		cleanup_keys(&cfg.target);

	static const struct table_layout layout = { 26, 17, 10, 14, "fraction", target_of };
	print_table(stdout, cpu, &layout);
	if (csv != NULL)
		write_csv(csv, cpu);
	memento__redis_target_free(&cfg.target);
	server_stop();
	remove_dir(base_dir);
	if (stampede_failed) {
		fprintf(stderr, "redis_bench: a stampede created more or less than once\n");
		return 1;
	}
	return 0;
}
