/*
 * The Redis building blocks of the scale-out tier (lib/store/uri.c,
 * redis.c) against a real redis-server that each test starts on a free
 * loopback port, with a password, and stops: URIs, credentials, records
 * of any bytes, a server that goes away and comes back, and one that
 * accepts connections and never answers.  Linked with the static library:
 * these functions are internal until memento_store_open reaches them.
 * The server comes from redis_server.h (shared with test_redis_tier.c,
 * which tests leases and tiers across processes).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "redis_server.h"
#include "internal.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct redis_server srv;

static void setup(void)
{
	server_new(&srv, "redis", false);
}

static void teardown(void)
{
	server_free(&srv);
}

TestSuite(redis, .init = setup, .fini = teardown, .timeout = 60);

/* ---- URIs ------------------------------------------------------------------------- */

Test(redis, uris_parse_and_bad_ones_are_refused)
{
	struct memento__redis_target t;
	cr_assert_eq(memento__redis_uri_parse("redis://localhost", &t), 0);
	cr_assert_str_eq(t.host, "localhost");
	cr_assert_eq(t.port, 6379);
	cr_assert_null(t.password);
	cr_assert_eq(t.db, 0);
	memento__redis_target_free(&t);

	cr_assert_eq(memento__redis_uri_parse("redis://u%40x:p%3Aw@[::1]:7001/3", &t), 0);
	cr_assert_str_eq(t.user, "u@x");
	cr_assert_str_eq(t.password, "p:w");
	cr_assert_str_eq(t.host, "::1");
	cr_assert_eq(t.port, 7001);
	cr_assert_eq(t.db, 3);
	memento__redis_target_free(&t);

	cr_assert_eq(memento__redis_uri_parse("redis://:pw@h/", &t), 0);
	cr_assert_null(t.user);
	cr_assert_str_eq(t.password, "pw");
	memento__redis_target_free(&t);

	const char *bad[] = {
		"", "redis:/h", "http://h", "redis://", "redis://:pw@", "redis://h:0",
		"redis://h:65536", "redis://h:12x", "redis://h/x", "redis://[::1", "redis://p%4@h",
		"redis://h:", "redis://h/-1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(memento__redis_uri_parse(bad[i], &t), -EINVAL, "accepted \"%s\"", bad[i]);
}

/* ---- credentials and records ---------------------------------------------------- */

Test(redis, a_wrong_password_fails_the_open)
{
	char uri[256];
	struct memento__redis *r = NULL;
	cr_assert_eq(memento__redis_open(&r, uri_of(&srv, uri, sizeof uri, "wrong"), 0, 0), -EACCES);
	cr_assert_eq(memento__redis_open(&r, uri_of(&srv, uri, sizeof uri, NULL), 0, 0), 0,
	             "without a password the connection itself works");
	/* ... but no command does. */
	cr_assert_eq(memento__redis_set(r, "k", 1, "v", 1), -EPROTO);
	memento__redis_close(r);
	cr_assert_eq(memento__redis_open(&r, uri_of(&srv, uri, sizeof uri, PASSWORD_IN_URI), 0, 0), 0);
	memento__redis_close(r);
}

static int copy_visit(const void *data, size_t len, void *ctx)
{
	void **out = ctx;
	unsigned char *copy = malloc(len + sizeof(size_t));
	memcpy(copy, &len, sizeof len);
	memcpy(copy + sizeof len, data, len);
	*out = copy;
	return 0;
}

Test(redis, records_of_any_bytes_round_trip)
{
	char uri[256];
	struct memento__redis *r;
	cr_assert_eq(memento__redis_open(&r, uri_of(&srv, uri, sizeof uri, PASSWORD_IN_URI), 0, 0), 0);
	/* Keys and values with NULs, spaces, CRLF: argv, never formatted. */
	unsigned char key[24], value[5000];
	for (size_t i = 0; i < sizeof key; i++)
		key[i] = (unsigned char)(i * 37);
	for (size_t i = 0; i < sizeof value; i++)
		value[i] = (unsigned char)(i * 131 + 7);
	memcpy(value, "\r\n$-1\r\n \0", 9);
	void *got = NULL;
	cr_assert_eq(memento__redis_get(r, key, sizeof key, copy_visit, &got), -ENOENT);
	cr_assert_eq(memento__redis_set(r, key, sizeof key, value, sizeof value), 0);
	cr_assert_eq(memento__redis_get(r, key, sizeof key, copy_visit, &got), 0);
	size_t len;
	memcpy(&len, got, sizeof len);
	cr_assert_eq(len, sizeof value);
	cr_assert_eq(memcmp((unsigned char *)got + sizeof len, value, sizeof value), 0);
	free(got);
	memento__redis_close(r);
}

/* ---- a server that goes away, comes back, or never answers --------------------- */

Test(redis, a_restarted_server_is_found_again)
{
	char uri[256];
	struct memento__redis *r;
	uri_of(&srv, uri, sizeof uri, PASSWORD_IN_URI);
	cr_assert_eq(memento__redis_open(&r, uri, 200000000u, 0), 0);
	cr_assert_eq(memento__redis_set(r, "k", 1, "v1", 2), 0);
	server_stop(&srv);
	struct timespec t0 = now_monotonic();
	int rc = memento__redis_set(r, "k", 1, "v2", 2);
	cr_assert_lt(rc, 0, "a write to a dead server succeeded");
	rc = memento__redis_set(r, "k", 1, "v2", 2);
	cr_assert_lt(rc, 0);
	cr_assert_lt(ms_between(t0, now_monotonic()), 1000.0, "a dead server took long");
	server_start(&srv);
	cr_assert_eq(memento__redis_set(r, "k", 1, "v3", 2), 0, "not reconnected");
	void *got = NULL;
	cr_assert_eq(memento__redis_get(r, "k", 1, copy_visit, &got), 0);
	cr_assert_eq(memcmp((char *)got + sizeof(size_t), "v3", 2), 0);
	free(got);
	memento__redis_close(r);
}

/* A pooled connection that a restarted server closed costs nothing: the
 * command runs again on a new connection. */
Test(redis, a_restart_between_commands_costs_no_error)
{
	char uri[256];
	struct memento__redis *r;
	uri_of(&srv, uri, sizeof uri, PASSWORD_IN_URI);
	cr_assert_eq(memento__redis_open(&r, uri, 200000000u, 0), 0);
	cr_assert_eq(memento__redis_set(r, "k", 1, "v1", 2), 0);
	server_stop(&srv);
	server_start(&srv);
	int rc = memento__redis_set(r, "k", 1, "v2", 2);
	cr_assert_eq(rc, 0, "the first command after a restart: %s", memento_strerror(rc));
	void *got = NULL;
	cr_assert_eq(memento__redis_get(r, "k", 1, copy_visit, &got), 0);
	cr_assert_eq(memcmp((char *)got + sizeof(size_t), "v2", 2), 0);
	free(got);
	memento__redis_close(r);
}

/* A large write to a connection the server closed: EPIPE and a retry on a
 * new connection, not a SIGPIPE that kills the process. */
Test(redis, a_closed_connection_raises_no_sigpipe)
{
	char uri[256];
	struct memento__redis *r;
	uri_of(&srv, uri, sizeof uri, PASSWORD_IN_URI);
	cr_assert_eq(memento__redis_open(&r, uri, 0, 0), 0);
	redisContext *raw = server_connect(&srv);
	freeReplyObject(redisCommand(raw, "CLIENT KILL TYPE normal")); /* all but raw */
	redisFree(raw);
	size_t n = 2u << 20;
	char *v = calloc(1, n);
	int rc = memento__redis_set(r, "k", 1, v, n);
	cr_assert_eq(rc, 0, "%s", memento_strerror(rc));
	free(v);
	memento__redis_close(r);
}

/* A listener that accepts and never answers: a command costs the timeout. */
Test(redis, a_server_that_never_answers_costs_the_timeout)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(fd, 16), 0); /* the kernel completes handshakes: no accept needed */
	socklen_t n = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &n);
	char uri[128];
	snprintf(uri, sizeof uri, "redis://:pw@127.0.0.1:%d", ntohs(a.sin_port));
	struct memento__redis *r = NULL;
	struct timespec t0 = now_monotonic();
	int rc = memento__redis_open(&r, uri, 150000000u, 0); /* AUTH never answered */
	double ms = ms_between(t0, now_monotonic());
	cr_assert_eq(rc, -ETIMEDOUT, "open: %s", memento_strerror(rc));
	cr_assert_geq(ms, 140.0, "returned before the timeout: %.1f ms", ms);
	cr_assert_lt(ms, 1000.0, "took %.1f ms for a 150 ms timeout", ms);
	close(fd);
}

/* ---- a store on Redis, through the public API ------------------------------------ */

struct counted {
	atomic_int creations;
};

static int c_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_u64(key, *(const uint64_t *)args);
}

static int c_create(void **obj, const void *args, void *ctx)
{
	struct counted *c = ctx;
	atomic_fetch_add(&c->creations, 1);
	uint64_t *v = malloc(sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	*v = *(const uint64_t *)args * 3 + 1;
	*obj = v;
	return 0;
}

static void c_destroy(void *obj, void *ctx)
{
	(void)ctx;
	free(obj);
}

static int c_encode(const void *obj, memento_buf *out, void *ctx)
{
	(void)ctx;
	return memento_buf_append(out, obj, sizeof(uint64_t));
}

static int c_decode(void **obj, const void *data, size_t len, void *ctx)
{
	(void)ctx;
	if (len != sizeof(uint64_t))
		return -EBADMSG;
	uint64_t *v = malloc(sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	memcpy(v, data, sizeof *v);
	*obj = v;
	return 0;
}

static memento_store *redis_store(uint64_t timeout_ns)
{
	char uri[256];
	memento_store_options o = MEMENTO_STORE_OPTIONS_INIT;
	o.timeout_ns = timeout_ns;
	memento_store *s = NULL;
	int rc = memento_store_open(&s, uri_of(&srv, uri, sizeof uri, PASSWORD_IN_URI), &o);
	cr_assert_eq(rc, 0, "store_open: %s", memento_strerror(rc));
	return s;
}

/* Gets keys [0, n) in a fresh cache; returns the class's stats. */
static memento_stats run_keys(memento_store *s, int n, struct counted *c)
{
	memento_cache *cache = new_cache();
	memento_class_desc d = { "val", c_key, c_create, c_destroy, c };
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	o.store = s;
	o.version = "1";
	o.encode = c_encode;
	o.decode = c_decode;
	memento_class *cls;
	cr_assert_eq(memento_class_new_with(cache, &d, &o, &cls), 0);
	for (uint64_t k = 0; k < (uint64_t)n; k++) {
		void *obj;
		int rc = memento_get(cls, &k, &obj);
		cr_assert_eq(rc, 0, "get %llu: %s", (unsigned long long)k, memento_strerror(rc));
		cr_assert_eq(*(uint64_t *)obj, k * 3 + 1, "a wrong value for key %llu",
		             (unsigned long long)k);
	}
	memento_stats st;
	memento_class_stats(cls, &st);
	memento_cache_free(cache);
	return st;
}

Test(redis, a_store_opens_on_a_uri_and_checks_its_credentials)
{
	char uri[256];
	memento_store *s = NULL;
	cr_assert_eq(memento_store_open(&s, uri_of(&srv, uri, sizeof uri, "wrong"), NULL), -EACCES);
	cr_assert_eq(memento_store_open(&s, "redis://127.0.0.1:notaport", NULL), -EINVAL);
	s = redis_store(0);
	memento_store_close(s);
}

/* A child process that opens its own store and cache: its creations. */
static int child_run(int n)
{
	memento_store *s = NULL;
	char uri[256];
	if (memento_store_open(&s, uri_of(&srv, uri, sizeof uri, PASSWORD_IN_URI), NULL) != 0)
		return 100;
	struct counted c = { 0 };
	memento_stats st = run_keys(s, n, &c);
	memento_store_close(s);
	if (st.store_errors != 0)
		return 101;
	return atomic_load(&c.creations);
}

static int in_a_child(int n)
{
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(child_run(n));
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "the child died");
	return WEXITSTATUS(status);
}

Test(redis, two_processes_share_results_through_redis)
{
	cr_assert_eq(in_a_child(20), 20, "the first process did not create everything");
	cr_assert_eq(in_a_child(20), 0, "the second process created what the first stored");
	cr_assert_eq(in_a_child(25), 5, "only the new keys are created");
}

/* Every value in Redis replaced by garbage: recomputed, never returned. */
Test(redis, garbage_in_redis_is_recomputed)
{
	memento_store *s = redis_store(0);
	struct counted c = { 0 };
	run_keys(s, 10, &c);
	redisContext *raw = server_connect(&srv);
	redisReply *r = redisCommand(raw, "KEYS mementos:val:*");
	cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
	cr_assert_eq(r->elements, 10, "%zu keys", r->elements);
	for (size_t i = 0; i < r->elements; i++) {
		const char *argv[3] = { "SET", r->element[i]->str, "garbage, not a record" };
		size_t lens[3] = { 3, r->element[i]->len, 21 };
		freeReplyObject(redisCommandArgv(raw, 3, argv, lens));
	}
	freeReplyObject(r);
	redisFree(raw);
	atomic_store(&c.creations, 0);
	memento_stats st = run_keys(s, 10, &c);
	cr_assert_eq(st.creations, 10);
	cr_assert_eq(st.store_errors, 10);
	cr_assert_eq(st.store_writes, 10, "not overwritten");
	st = run_keys(s, 10, &c);
	cr_assert_eq(st.store_hits, 10);
	memento_store_close(s);
}

/* Redis killed mid-run: gets go on from memory and create, each bounded,
 * errors counted; restarted, the store shares again by itself. */
Test(redis, a_dead_server_costs_computations_not_gets)
{
	memento_store *s = redis_store(200000000u);
	struct counted c = { 0 };
	run_keys(s, 5, &c);
	server_stop(&srv);
	struct timespec t0 = now_monotonic();
	memento_stats st = run_keys(s, 5, &c);
	double ms = ms_between(t0, now_monotonic());
	cr_assert_eq(st.creations, 5);
	cr_assert_geq(st.store_errors, 5, "%llu store errors", (unsigned long long)st.store_errors);
	cr_assert_lt(ms, 5 * 2 * 3 * 200.0, "5 gets took %.0f ms", ms);
	server_start(&srv); /* empty: --save "" */
	st = run_keys(s, 5, &c);
	cr_assert_eq(st.store_writes, 5, "not reconnected: %llu writes, %llu errors",
	             (unsigned long long)st.store_writes, (unsigned long long)st.store_errors);
	st = run_keys(s, 5, &c);
	cr_assert_eq(st.store_hits, 5);
	memento_store_close(s);
}

/* Records in an LMDB store's results database, counted by a child process
 * (LMDB forbids a second environment of one directory in a process):
 * polls until `want` or 5 s; the child's exit status says which. */
#include <lmdb.h>

static bool lmdb_reaches(const char *dir, size_t want)
{
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		for (int waited = 0; waited < 5000; waited += 10) {
			MDB_env *env;
			MDB_txn *txn;
			MDB_dbi dbi;
			MDB_stat st = { 0 };
			if (mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 2) == 0 &&
			    mdb_env_open(env, dir, MDB_RDONLY, 0) == 0 &&
			    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
				if (mdb_dbi_open(txn, "results", 0, &dbi) == 0)
					mdb_stat(txn, dbi, &st);
				mdb_txn_abort(txn);
			}
			mdb_env_close(env);
			if (st.ms_entries >= want)
				_exit(0);
			sleep_ms(10);
		}
		_exit(1);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* A hit in the Redis tier is copied into the LMDB tier in front of it by
 * the store's writer thread, while the store stays open (fill.c). */
Test(redis, a_remote_hit_is_copied_into_the_lmdb_tier)
{
	memento_store *r = redis_store(0);
	struct counted c = { 0 };
	run_keys(r, 50, &c);
	char ldir[64];
	temp_dir_make(ldir, "fill");
	memento_store_options o = MEMENTO_STORE_OPTIONS_INIT;
	o.next = r;
	o.flags = MEMENTO_STORE_NOSYNC;
	memento_store *l;
	cr_assert_eq(memento_store_open(&l, ldir, &o), 0);
	memento_stats st = run_keys(l, 50, &c);
	cr_assert_eq(st.remote_hits, 50);
	cr_assert_eq(st.creations, 0);
	cr_assert_eq(st.store_writes, 50, "fills counted once queued");
	cr_assert(lmdb_reaches(ldir, 50), "the fills did not land while the store was open");
	server_stop(&srv); /* now only the LMDB tier can answer */
	st = run_keys(l, 50, &c);
	cr_assert_eq(st.store_hits, 50);
	cr_assert_eq(st.remote_hits + st.creations, 0);
	memento_store_close(l);
	memento_store_close(r);
	temp_dir_remove(ldir);
}

/* ---- leases, SIGPIPE and copies: the internals the tier tests cannot reach ------ */

#include "store/redis.h"

/* The server closed every pooled connection (a restart, CLIENT KILL) while
 * a lease is held: the renewer's next round must not spend a round per
 * dead connection (8 of them: 1/3 + 8/10 of a lease) but retry at once on
 * a new one, or the lease expires under its live holder. */
Test(redis, the_renewer_outlives_closed_connections)
{
	char uri[256];
	struct memento__redis *r;
	uri_of(&srv, uri, sizeof uri, PASSWORD_IN_URI);
	cr_assert_eq(memento__redis_open(&r, uri, 100000000u, 1000000000u), 0);
	redisContext *pooled[MEMENTO__REDIS_POOL_MAX];
	for (int i = 0; i < MEMENTO__REDIS_POOL_MAX; i++)
		cr_assert_eq(memento__redis_take(r, &pooled[i], false, NULL), 0);
	for (int i = 0; i < MEMENTO__REDIS_POOL_MAX; i++)
		memento__redis_give_back(r, pooled[i], 0);

	struct memento__store_key key = { { 7 } };
	char token[MEMENTO__LEASE_TOKEN];
	memento__lease_token(token);
	struct memento__lease lease = { 0 };
	cr_assert_eq(memento__redis_lease_take(r, "lease", &key, token, &lease), 0);
	redisContext *raw = server_connect(&srv);
	freeReplyObject(redisCommand(raw, "CLIENT KILL TYPE normal")); /* all but raw */
	sleep_ms(1500);
	redisReply *got = redisCommandArgv(raw, 2, (const char *[]){ "GET", lease.key },
	                                   (size_t[]){ 3, lease.key_len });
	cr_assert(got != NULL && got->type == REDIS_REPLY_STRING,
	          "the lease expired while its holder lived");
	cr_assert_eq(got->len, sizeof token);
	cr_assert_eq(memcmp(got->str, token, sizeof token), 0);
	freeReplyObject(got);
	char *name = strdup(lease.key);
	size_t name_len = lease.key_len;
	memento__redis_lease_release(&lease);
	got = redisCommandArgv(raw, 2, (const char *[]){ "GET", name }, (size_t[]){ 3, name_len });
	cr_assert(got != NULL && got->type == REDIS_REPLY_NIL, "the release left the lease");
	freeReplyObject(got);
	free(name);
	redisFree(raw);
	memento__redis_close(r);
}

/* A caller that blocks SIGPIPE itself: the one a command raised is taken
 * back all the same (else it kills the process when the caller unblocks). */
Test(redis, a_blocked_sigpipe_is_not_left_pending)
{
	char uri[256];
	struct memento__redis *r;
	uri_of(&srv, uri, sizeof uri, PASSWORD_IN_URI);
	cr_assert_eq(memento__redis_open(&r, uri, 0, 0), 0);
	sigset_t pipe_set, old, pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	redisContext *raw = server_connect(&srv);
	freeReplyObject(redisCommand(raw, "CLIENT KILL TYPE normal"));
	redisFree(raw);
	size_t n = 2u << 20;
	char *v = calloc(1, n);
	int rc = memento__redis_set(r, "k", 1, v, n);
	free(v);
	sigpending(&pending);
	bool left = sigismember(&pending, SIGPIPE) == 1;
	if (left) {
		struct timespec zero = { 0, 0 };
		sigtimedwait(&pipe_set, NULL, &zero); /* not to kill the runner */
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	cr_assert_eq(rc, 0, "%s", memento_strerror(rc));
	cr_assert(!left, "a SIGPIPE was left pending");
	memento__redis_close(r);
}

/* A copy from a farther tier, written after a newer creation committed,
 * must not replace it (store.c, memento__store_put_records). */
static int created_visit(const void *data, size_t len, void *ctx)
{
	struct memento__record rec;
	if (memento__record_parse(data, len, &rec) != MEMENTO__RECORD_OK)
		return -EBADMSG;
	*(uint64_t *)ctx = rec.created_ns;
	return 0;
}

static void record_at(struct memento__record *h, uint64_t created, unsigned char *out)
{
	static const unsigned char payload[8] = "payload";
	*h = (struct memento__record){
		.created_ns = created,
		.digest = memento__digest_of(payload, sizeof payload, 0),
		.name = "copy",
		.name_len = 4,
		.key = payload,
		.key_len = 1,
		.payload = payload,
		.payload_len = sizeof payload,
	};
	if (out != NULL)
		memento__record_write(out, h);
}

Test(redis, a_copy_never_replaces_a_newer_record)
{
	char dir[64];
	temp_dir_make(dir, "copy");
	memento_store *s;
	cr_assert_eq(memento_store_open(&s, dir, NULL), 0);
	struct memento__store_key key = { { 9 } };
	struct memento__record h;
	record_at(&h, 200, NULL);
	cr_assert_eq(memento__store_write(s, "copy", &key, &h), 0);

	size_t len = memento__record_size(4, 1, 8);
	unsigned char older[256], newer[256];
	cr_assert_leq(len, sizeof older);
	record_at(&h, 100, older);
	record_at(&h, 300, newer);
	const struct memento__store_key *keys[1] = { &key };
	const void *records[1] = { older };
	size_t lens[1] = { len };
	uint64_t created = 0;
	cr_assert_eq(memento__store_put_records(s, 1, keys, records, lens), 0);
	cr_assert_eq(memento__store_read(s, "copy", &key, created_visit, &created), 0);
	cr_assert_eq(created, 200, "an older copy replaced the record");
	records[0] = newer;
	cr_assert_eq(memento__store_put_records(s, 1, keys, records, lens), 0);
	cr_assert_eq(memento__store_read(s, "copy", &key, created_visit, &created), 0);
	cr_assert_eq(created, 300, "a newer copy did not land");
	memento_store_close(s);
	temp_dir_remove(dir);
}
