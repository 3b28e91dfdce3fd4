/*
 * The Redis tier across real processes (lib/store/lease.c, redis.c,
 * persist.c): leases, their renewer and their release, tiers (an LMDB
 * store in front of Redis), a stalled server and the quiet window, and a
 * cluster node refused at open.  Each process opens its own store on the
 * server's URI and has its own cache, as two machines would (in the tier
 * tests, with an LMDB store of its own, or of its "machine"); each test
 * starts its own redis-server on a free loopback port (redis_server.h).
 *
 * Children never assert (procs.h): each writes what it saw into a shared
 * mapping (MAP_SHARED | MAP_ANONYMOUS), reports a failed step there and in
 * its exit status, and leaves with _exit(); the parent asserts.  Every
 * child dies with the test process (PR_SET_PDEATHSIG), and the suite's
 * fini kills and reaps any the test left, and the server.  The parent
 * forks before any thread exists in it (children start their own; the
 * tests that take a lease in the test process itself, which starts the
 * store's renewer thread, fork nothing afterwards), so the suite runs the
 * same under ThreadSanitizer.
 *
 * Times: leases of 300 to 400 ms (each store's timeout half of it, the
 * least a lease may be), so that a take-over costs a fraction of a
 * second; the only timing assertions are generous upper bounds.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "procs.h"
#include "redis_server.h"

#define ULL(x) ((unsigned long long)(x))

/* ---- the server, the directories and the children of a test ---------------------- */

static struct redis_server srv;     /* every test's */
static struct redis_server cluster; /* a_cluster_node_is_refused_at_open's */
enum { DIRS = 3 };
static char dirs[DIRS][64]; /* LMDB stores of the tier tests */

static void setup(void)
{
	server_new(&srv, "tier", false);
}

static void teardown(void)
{
	children_kill_all();
	server_free(&srv);
	server_free(&cluster);
	for (int i = 0; i < DIRS; i++)
		if (dirs[i][0] != '\0') {
			temp_dir_remove(dirs[i]);
			dirs[i][0] = '\0';
		}
}

TestSuite(redis_tier, .init = setup, .fini = teardown, .timeout = 60);

static int64_t now_ns(void)
{
	struct timespec t = now_monotonic();
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* ---- a persisted class whose records check themselves -------------------------- */

/* What the class makes: which key, by which process. */
struct val {
	uint64_t key;
	uint64_t creator; /* the pid of the process whose create made it */
	uint64_t check;   /* a hash of the two above */
};

static uint64_t val_check(const struct val *v)
{
	return mix64(v->key ^ mix64(v->creator + 0x9e3779b97f4a7c15ull));
}

static bool val_ok(const struct val *v, uint64_t key)
{
	return v->key == key && v->check == val_check(v);
}

enum { PROCS_MAX = 8, KEYS_MAX = 128 };

/* What every process of a test sees and writes: in a shared mapping. */
struct shared {
	atomic_int created[KEYS_MAX];    /* create calls per key, in every process */
	atomic_int creations;            /* create calls in all */
	atomic_int bad_records;          /* decodes that found wrong bytes */
	pthread_barrier_t start;         /* one_computation_across_processes's start line */
	atomic_int in_create[PROCS_MAX]; /* process i's create has begun */
	atomic_int waiting[PROCS_MAX];   /* process i found a lease taken (remote_waits) */
	atomic_int done[PROCS_MAX];      /* process i's get returned */
	atomic_int resume;               /* a held create may go on */
	atomic_int step;                 /* a child's step, for the parent */
	atomic_int next;                 /* the parent's step, for a child */
	int64_t done_ns[PROCS_MAX];      /* when process i's get returned */
	int rc[PROCS_MAX];               /* what process i's get returned */
	struct val got[PROCS_MAX];       /* and the object it got */
	memento_stats st[PROCS_MAX][4];  /* process i's class stats, by phase */
	double ms[PROCS_MAX][8];         /* timings, by phase */
	struct report rep[PROCS_MAX];
};

/* A process's view of the class (ctx): its own copy after fork. */
struct world {
	struct shared *sh;
	int idx;          /* this process's index in sh's arrays */
	int sleep_ms;     /* each create sleeps this long */
	int fail_with;    /* create fails with this (after the hook) when nonzero */
	void (*hook)(struct world *w, uint64_t key); /* inside create */
	int other;        /* the process the hook waits for */
	int hold_ms;      /* and then how long it holds on */
};

static int val_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_u64(key, *(const uint64_t *)args);
}

static int val_create(void **obj, const void *args, void *ctx)
{
	struct world *w = ctx;
	uint64_t k = *(const uint64_t *)args;
	atomic_fetch_add(&w->sh->created[k % KEYS_MAX], 1);
	atomic_fetch_add(&w->sh->creations, 1);
	if (w->hook != NULL)
		w->hook(w, k);
	if (w->sleep_ms > 0)
		sleep_ms(w->sleep_ms);
	if (w->fail_with != 0)
		return w->fail_with;
	struct val *v = malloc(sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	v->key = k;
	v->creator = (uint64_t)getpid();
	v->check = val_check(v);
	*obj = v;
	return 0;
}

static void val_destroy(void *obj, void *ctx)
{
	(void)ctx;
	free(obj);
}

static int val_encode(const void *obj, memento_buf *out, void *ctx)
{
	(void)ctx;
	return memento_buf_append(out, obj, sizeof(struct val));
}

/* Accepts only the exact bytes val_encode wrote. */
static int val_decode(void **obj, const void *data, size_t len, void *ctx)
{
	struct world *w = ctx;
	struct val v;
	if (len != sizeof v)
		goto bad;
	memcpy(&v, data, sizeof v);
	if (v.check != val_check(&v))
		goto bad;
	struct val *copy = malloc(sizeof *copy);
	if (copy == NULL)
		return -ENOMEM;
	*copy = v;
	*obj = copy;
	return 0;
bad:
	atomic_fetch_add(&w->sh->bad_records, 1);
	return -EBADMSG;
}

/* Hooks inside create.  Each announces that create has begun; a wait
 * that never ends gives up after a while, and the parent's checks then
 * fail. */

/* Never returns: the process waits for kill -9. */
static void hang_forever(struct world *w, uint64_t k)
{
	(void)k;
	atomic_store(&w->sh->in_create[w->idx], 1);
	for (;;)
		pause();
}

/* Holds on until the other process waits on the lease, then hold_ms
 * more, and until the parent says resume. */
static void hold_while_other_waits(struct world *w, uint64_t k)
{
	(void)k;
	atomic_store(&w->sh->in_create[w->idx], 1);
	(void)await_flag(&w->sh->waiting[w->other], 20000);
	sleep_ms(w->hold_ms);
	(void)await_flag(&w->sh->resume, 20000);
}

/* Holds on until the parent says resume. */
static void hold_until_resume(struct world *w, uint64_t k)
{
	(void)k;
	atomic_store(&w->sh->in_create[w->idx], 1);
	(void)await_flag(&w->sh->resume, 20000);
}

/* Holds on until the other process's get has returned, then hold_ms more. */
static void hold_until_other_done(struct world *w, uint64_t k)
{
	(void)k;
	atomic_store(&w->sh->in_create[w->idx], 1);
	(void)await_flag(&w->sh->done[w->other], 20000);
	sleep_ms(w->hold_ms);
}

/* ---- a process: its stores, its cache, its class ---------------------------------- */

struct proc {
	struct report *r;
	memento_store *redis; /* on srv */
	memento_store *lmdb;  /* NULL, or the front tier, redis its next */
	memento_cache *cache;
	memento_class *cls;
	struct world w;
};

/* Opens this process's stores: Redis with lease_ms and timeout_ms (0:
 * the defaults) and, given a directory, an LMDB store in front of it. */
static int proc_open(struct proc *p, struct shared *sh, int idx, int lease_ms, int timeout_ms,
                     const char *lmdb_dir)
{
	*p = (struct proc){ .r = &sh->rep[idx], .w = { .sh = sh, .idx = idx } };
	char uri[256];
	memento_store_options o = MEMENTO_STORE_OPTIONS_INIT;
	o.lease_ns = (uint64_t)lease_ms * 1000000u;
	o.timeout_ns = (uint64_t)timeout_ms * 1000000u;
	int rc = memento_store_open(&p->redis, uri_of(&srv, uri, sizeof uri, PASSWORD_IN_URI), &o);
	CHILD_CHECK(p->r, rc == 0, "store_open %s: %s", uri, memento_strerror(rc));
	if (lmdb_dir != NULL) {
		memento_store_options lo = MEMENTO_STORE_OPTIONS_INIT;
		lo.flags = MEMENTO_STORE_NOSYNC;
		lo.next = p->redis;
		rc = memento_store_open(&p->lmdb, lmdb_dir, &lo);
		CHILD_CHECK(p->r, rc == 0, "store_open %s: %s", lmdb_dir, memento_strerror(rc));
	}
	return 0;
}

/* A fresh cache, and in it the class on the front store. */
static int proc_cache(struct proc *p)
{
	int rc = memento_cache_new(&p->cache);
	CHILD_CHECK(p->r, rc == 0, "cache_new: %s", memento_strerror(rc));
	memento_class_desc d = { "val", val_key, val_create, val_destroy, &p->w };
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	o.store = p->lmdb != NULL ? p->lmdb : p->redis;
	o.version = "1";
	o.encode = val_encode;
	o.decode = val_decode;
	rc = memento_class_new_with(p->cache, &d, &o, &p->cls);
	CHILD_CHECK(p->r, rc == 0, "class_new_with: %s", memento_strerror(rc));
	return 0;
}

/* The class's stats into *st; the cache freed. */
static void proc_cache_free(struct proc *p, memento_stats *st)
{
	if (st != NULL)
		memento_class_stats(p->cls, st);
	memento_cache_free(p->cache);
	p->cache = NULL;
	p->cls = NULL;
}

static void proc_close(struct proc *p)
{
	memento_store_close(p->lmdb); /* names redis as its next: first */
	memento_store_close(p->redis);
}

/* Gets key k and checks that the object is k's and whole. */
static int proc_get(struct proc *p, uint64_t k, struct val *out)
{
	void *obj = NULL;
	int rc = memento_get(p->cls, &k, &obj);
	CHILD_CHECK(p->r, rc == 0, "get %llu: %s", ULL(k), memento_strerror(rc));
	const struct val *v = obj;
	CHILD_CHECK(p->r, v != NULL && val_ok(v, k), "get %llu: a wrong or damaged object", ULL(k));
	if (out != NULL)
		*out = *v;
	return 0;
}

/* A thread that raises sh->waiting[idx] once the class has waited on a
 * lease (remote_waits): the parent then knows the process polls. */
struct watcher {
	pthread_t thread;
	struct proc *p;
	atomic_int stop;
};

static void *watch(void *arg)
{
	struct watcher *wt = arg;
	while (!atomic_load(&wt->stop)) {
		memento_stats st;
		memento_class_stats(wt->p->cls, &st);
		if (st.remote_waits > 0) {
			atomic_store(&wt->p->w.sh->waiting[wt->p->w.idx], 1);
			break;
		}
		sleep_ms(1);
	}
	return NULL;
}

static int watch_start(struct watcher *wt, struct proc *p)
{
	wt->p = p;
	atomic_store(&wt->stop, 0);
	int rc = pthread_create(&wt->thread, NULL, watch, wt);
	CHILD_CHECK(p->r, rc == 0, "pthread_create: %s", strerror(rc));
	return 0;
}

static void watch_stop(struct watcher *wt)
{
	atomic_store(&wt->stop, 1);
	pthread_join(wt->thread, NULL);
}

/* One process that gets one key, as the tests below configure it. */
struct one_get {
	struct shared *sh;
	int idx;
	uint64_t key;
	int lease_ms; /* 0: the default; its store's timeout is half of it */
	bool watch;   /* raise waiting[idx] once it waits on a lease */
	int expect;   /* what the get must return: 0 or an error */
	void (*hook)(struct world *w, uint64_t key);
	int other, hold_ms, fail_with;
	const char *lmdb_dir; /* an LMDB tier in front of Redis, or NULL */
};

static int one_get_child(void *arg)
{
	const struct one_get *g = arg;
	struct shared *sh = g->sh;
	struct proc p;
	/* A lease is at least twice the timeout (else -EINVAL). */
	if (proc_open(&p, sh, g->idx, g->lease_ms, g->lease_ms / 2, g->lmdb_dir) != 0 ||
	    proc_cache(&p) != 0)
		return 1;
	p.w.hook = g->hook;
	p.w.other = g->other;
	p.w.hold_ms = g->hold_ms;
	p.w.fail_with = g->fail_with;
	struct watcher wt;
	if (g->watch && watch_start(&wt, &p) != 0)
		return 1;
	uint64_t k = g->key;
	void *obj = NULL;
	int rc = memento_get(p.cls, &k, &obj);
	sh->done_ns[g->idx] = now_ns();
	sh->rc[g->idx] = rc;
	if (rc == 0 && obj != NULL)
		sh->got[g->idx] = *(const struct val *)obj;
	atomic_store(&sh->done[g->idx], 1);
	if (g->watch)
		watch_stop(&wt);
	CHILD_CHECK(p.r, rc == g->expect, "get %llu: %s, not %s", ULL(k), memento_strerror(rc),
	            memento_strerror(g->expect));
	CHILD_CHECK(p.r, rc != 0 || (obj != NULL && val_ok(obj, k)),
	            "get %llu: a wrong or damaged object", ULL(k));
	proc_cache_free(&p, &sh->st[g->idx][0]);
	proc_close(&p);
	return 0;
}

/* ---- looking at the server ---------------------------------------------------------- */

/* How many keys of the server match a KEYS pattern. */
static size_t keys_matching(const char *pattern)
{
	redisContext *c = server_connect(&srv);
	redisReply *r = redisCommand(c, "KEYS %s", pattern);
	cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY, "KEYS %s failed", pattern);
	size_t n = r->elements;
	freeReplyObject(r);
	redisFree(c);
	return n;
}

#define LEASES "mementos:val:*:lease"
#define RECORDS "mementos:val:{*}"

/* ---- 1. one computation per key across processes ------------------------------------ */

enum { T1_PROCS = 4, T1_THREADS = 4, T1_KEYS = 16, T1_SLEEP_MS = 30 };

struct t1_asker {
	struct proc *p;
	int thread;
	struct report rep; /* this thread's first failure */
};

static void *t1_ask(void *arg)
{
	struct t1_asker *a = arg;
	struct shared *sh = a->p->w.sh;
	/* Each thread of a process starts at another quarter of the keys, and
	 * every process in the same order: each key has one first asker per
	 * process, all at once. */
	int start = a->thread * (T1_KEYS / T1_THREADS);
	pthread_barrier_wait(&sh->start);
	for (int j = 0; j < T1_KEYS; j++) {
		uint64_t k = (uint64_t)((start + j) % T1_KEYS);
		void *obj = NULL;
		int rc = memento_get(a->p->cls, &k, &obj);
		if (rc != 0) {
			child_fail(&a->rep, __LINE__, "thread %d, get %llu: %s", a->thread, ULL(k),
			           memento_strerror(rc));
			continue;
		}
		if (obj == NULL || !val_ok(obj, k))
			child_fail(&a->rep, __LINE__, "thread %d, get %llu: a wrong object", a->thread,
			           ULL(k));
	}
	return NULL;
}

struct t1_run {
	struct shared *sh;
	int idx;
};

static int t1_child(void *arg)
{
	const struct t1_run *run = arg;
	struct shared *sh = run->sh;
	int idx = run->idx;
	struct proc p;
	if (proc_open(&p, sh, idx, 0, 0, NULL) != 0 || proc_cache(&p) != 0)
		return 1;
	p.w.sleep_ms = T1_SLEEP_MS;
	pthread_t t[T1_THREADS];
	struct t1_asker a[T1_THREADS];
	for (int i = 0; i < T1_THREADS; i++) {
		a[i] = (struct t1_asker){ &p, i, { 0, "" } };
		int rc = pthread_create(&t[i], NULL, t1_ask, &a[i]);
		CHILD_CHECK(p.r, rc == 0, "pthread_create: %s", strerror(rc));
	}
	for (int i = 0; i < T1_THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < T1_THREADS; i++)
		if (a[i].rep.line != 0)
			return child_fail(p.r, a[i].rep.line, "%s", a[i].rep.msg);
	proc_cache_free(&p, &sh->st[idx][0]);
	proc_close(&p);
	return 0;
}

/*
 * 4 processes x 4 threads, each process with its own store and cache,
 * ask for the same 16 missing keys at once; create takes 30 ms.  Guards
 * the lease (taken only when free) and its release: each key is created
 * once in all, the others wait on the lease and read the record, and no
 * lease key is left to expire.
 */
Test(redis_tier, one_computation_across_processes)
{
	struct shared *sh = shared_new(sizeof *sh);
	shared_barrier_init(&sh->start, T1_PROCS * T1_THREADS);

	struct timespec t0 = now_monotonic();
	pid_t pids[T1_PROCS];
	for (int i = 0; i < T1_PROCS; i++) {
		struct t1_run run = { sh, i };
		pids[i] = spawn(t1_child, &run);
	}
	for (int i = 0; i < T1_PROCS; i++) {
		char who[32];
		snprintf(who, sizeof who, "process %d", i);
		expect_ok(pids[i], &sh->rep[i], 30000, who);
	}
	double ms = ms_between(t0, now_monotonic());

	for (int k = 0; k < T1_KEYS; k++)
		cr_assert_eq(atomic_load(&sh->created[k]), 1, "key %d created %d times", k,
		             atomic_load(&sh->created[k]));
	uint64_t creations = 0, waits = 0, hits = 0;
	for (int i = 0; i < T1_PROCS; i++) {
		const memento_stats *st = &sh->st[i][0];
		/* One creating get per key in each process: it computed the key,
		 * or read another process's record from Redis. */
		cr_assert_eq(st->creations + st->store_hits, T1_KEYS,
		             "process %d: %llu creations + %llu store hits", i, ULL(st->creations),
		             ULL(st->store_hits));
		cr_assert_eq(st->remote_hits, st->store_hits, "process %d: %llu of %llu hits remote", i,
		             ULL(st->remote_hits), ULL(st->store_hits));
		cr_assert_eq(st->store_errors, 0, "process %d: %llu store errors", i,
		             ULL(st->store_errors));
		cr_assert_eq(st->remote_errors, 0);
		cr_assert_eq(st->store_writes, st->creations);
		creations += st->creations;
		waits += st->remote_waits;
		hits += st->store_hits;
	}
	cr_assert_eq(creations, T1_KEYS, "%llu creations counted", ULL(creations));
	cr_assert_eq(hits, (T1_PROCS - 1) * T1_KEYS);
	cr_assert_gt(waits, 0, "no process ever waited on another's lease");
	cr_assert_eq(atomic_load(&sh->bad_records), 0);
	/* Every lease was released, none left to expire (the default lease
	 * is 30 s): only the records remain. */
	cr_assert_eq(keys_matching(LEASES), 0, "lease keys left behind");
	cr_assert_eq(keys_matching(RECORDS), T1_KEYS);
	cr_log_info("%d processes x %d threads, %d keys: %.0f ms, %llu remote waits", T1_PROCS,
	            T1_THREADS, T1_KEYS, ms, ULL(waits));
	pthread_barrier_destroy(&sh->start);
	munmap(sh, sizeof *sh);
}

/* ---- 2. a creator killed inside create ------------------------------------------------ */

enum { T2_LEASE_MS = 400, T2_KEY = 7 };

/*
 * A takes the lease and hangs in create; B waits on it; A is killed with
 * kill -9.  Guards the lease's expiry and the waiter's take-over: B
 * computes the key itself within a lease of the kill (plus slack), and
 * not before it (A's renewer kept the lease while A lived).
 */
Test(redis_tier, a_killed_creator_is_taken_over)
{
	struct shared *sh = shared_new(sizeof *sh);
	struct one_get a = { .sh = sh, .idx = 0, .key = T2_KEY, .lease_ms = T2_LEASE_MS,
		             .hook = hang_forever };
	pid_t pa = spawn(one_get_child, &a);
	cr_assert(await_flag(&sh->in_create[0], 10000), "A never reached create");

	struct one_get b = { .sh = sh, .idx = 1, .key = T2_KEY, .lease_ms = T2_LEASE_MS,
		             .watch = true };
	pid_t pb = spawn(one_get_child, &b);
	cr_assert(await_flag(&sh->waiting[1], 10000), "B never waited on A's lease");
	/* A's renewer holds the lease meanwhile: B is still waiting. */
	sleep_ms(2 * T2_LEASE_MS);
	cr_assert_eq(atomic_load(&sh->done[1]), 0, "B went on while A held the lease");

	int64_t killed = now_ns();
	kill_child(pa);
	expect_ok(pb, &sh->rep[1], 10000, "B");
	double ms = (double)(sh->done_ns[1] - killed) / 1e6;
	const memento_stats *st = &sh->st[1][0];
	cr_assert_eq(sh->got[1].creator, (uint64_t)pb, "B's object is not B's");
	cr_assert_eq(st->creations, 1, "B: %llu creations", ULL(st->creations));
	cr_assert_eq(st->remote_waits, 1, "B: %llu remote waits", ULL(st->remote_waits));
	cr_assert_eq(st->store_hits, 0);
	cr_assert_eq(st->store_writes, 1);
	cr_assert_eq(atomic_load(&sh->creations), 2, "A's and B's creations");
	cr_assert_lt(ms, T2_LEASE_MS + 1000.0, "B took %.0f ms after the kill, lease %d ms", ms,
	             T2_LEASE_MS);
	cr_assert_eq(keys_matching(LEASES), 0, "lease keys left behind");
	cr_assert_eq(keys_matching(RECORDS), 1);
	cr_log_info("take-over: %.0f ms after the kill (lease %d ms)", ms, T2_LEASE_MS);
	munmap(sh, sizeof *sh);
}

/* ---- 3. the renewer ------------------------------------------------------------------- */

enum { T3_LEASE_MS = 300, T3_HOLD_MS = 1000, T3_KEY = 11 };

/*
 * A's create lasts three leases (from the moment B waits on it); B waits.
 * Guards the renewer: without it, A's lease expires and B computes too.
 * Also checks the lease key itself: one key, its token, a TTL of at most
 * a lease.
 */
Test(redis_tier, the_lease_is_renewed_while_create_runs)
{
	struct shared *sh = shared_new(sizeof *sh);
	struct one_get a = { .sh = sh, .idx = 0, .key = T3_KEY, .lease_ms = T3_LEASE_MS,
		             .hook = hold_while_other_waits, .other = 1, .hold_ms = T3_HOLD_MS };
	pid_t pa = spawn(one_get_child, &a);
	cr_assert(await_flag(&sh->in_create[0], 10000), "A never reached create");
	struct one_get b = { .sh = sh, .idx = 1, .key = T3_KEY, .lease_ms = T3_LEASE_MS,
		             .watch = true };
	pid_t pb = spawn(one_get_child, &b);
	cr_assert(await_flag(&sh->waiting[1], 10000), "B never waited on A's lease");

	/* Two leases later A still holds its lease, renewed. */
	sleep_ms(2 * T3_LEASE_MS);
	redisContext *c = server_connect(&srv);
	redisReply *r = redisCommand(c, "KEYS %s", LEASES);
	cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY);
	cr_assert_eq(r->elements, 1, "%zu lease keys while A creates", r->elements);
	redisReply *v = redisCommand(c, "GET %b", r->element[0]->str, r->element[0]->len);
	cr_assert(v != NULL && v->type == REDIS_REPLY_STRING && v->len == 32,
	          "the lease does not hold a 32-digit token");
	freeReplyObject(v);
	redisReply *ttl = redisCommand(c, "PTTL %b", r->element[0]->str, r->element[0]->len);
	cr_assert(ttl != NULL && ttl->type == REDIS_REPLY_INTEGER);
	cr_assert(ttl->integer > 0 && ttl->integer <= T3_LEASE_MS, "the lease's TTL is %lld ms",
	          (long long)ttl->integer);
	freeReplyObject(ttl);
	freeReplyObject(r);
	redisFree(c);

	atomic_store(&sh->resume, 1);
	expect_ok(pa, &sh->rep[0], 10000, "A");
	expect_ok(pb, &sh->rep[1], 10000, "B");
	cr_assert_eq(atomic_load(&sh->creations), 1, "B computed too: the lease was not renewed");
	const memento_stats *sb = &sh->st[1][0];
	cr_assert_eq(sb->creations, 0);
	cr_assert_eq(sb->remote_waits, 1);
	cr_assert_eq(sb->store_hits, 1);
	cr_assert_eq(sb->remote_hits, 1);
	cr_assert_eq(sh->got[1].creator, (uint64_t)pa, "B's object is not A's");
	cr_assert_eq(sh->st[0][0].creations, 1);
	cr_assert_eq(sh->st[0][0].store_writes, 1);
	cr_assert_eq(keys_matching(LEASES), 0, "lease keys left behind");
	munmap(sh, sizeof *sh);
}

/* ---- 4. a holder that stalls past its lease ---------------------------------------- */

enum { T4_LEASE_MS = 300, T4_KEY = 23 };

/*
 * A takes the lease and is stopped (SIGSTOP) inside create, renewer and
 * all; B, waiting, takes the lease over once it expires and computes.
 * Then A goes on and writes too.  Both return their own valid object; the
 * record left is whole (A's, written last), and a fresh process reads it
 * without computing.
 */
Test(redis_tier, a_stalled_holder_costs_two_computations_never_a_bad_value)
{
	struct shared *sh = shared_new(sizeof *sh);
	struct one_get a = { .sh = sh, .idx = 0, .key = T4_KEY, .lease_ms = T4_LEASE_MS,
		             .hook = hold_until_resume };
	pid_t pa = spawn(one_get_child, &a);
	cr_assert(await_flag(&sh->in_create[0], 10000), "A never reached create");
	struct one_get b = { .sh = sh, .idx = 1, .key = T4_KEY, .lease_ms = T4_LEASE_MS,
		             .watch = true };
	pid_t pb = spawn(one_get_child, &b);
	cr_assert(await_flag(&sh->waiting[1], 10000), "B never waited on A's lease");

	cr_assert_eq(kill(pa, SIGSTOP), 0);
	expect_ok(pb, &sh->rep[1], 10000, "B, while A is stopped");
	atomic_store(&sh->resume, 1);
	cr_assert_eq(kill(pa, SIGCONT), 0);
	expect_ok(pa, &sh->rep[0], 10000, "A, continued");

	cr_assert_eq(atomic_load(&sh->creations), 2);
	cr_assert_eq(sh->got[0].creator, (uint64_t)pa);
	cr_assert_eq(sh->got[1].creator, (uint64_t)pb);
	const memento_stats *sa = &sh->st[0][0], *sb = &sh->st[1][0];
	cr_assert_eq(sb->creations, 1);
	cr_assert_eq(sb->remote_waits, 1);
	cr_assert_eq(sb->store_writes, 1);
	cr_assert_eq(sa->creations, 1);
	cr_assert_eq(sa->store_writes, 1, "A's late write: %llu writes, %llu errors",
	             ULL(sa->store_writes), ULL(sa->store_errors));
	cr_assert_eq(sa->store_errors, 0);

	struct one_get c = { .sh = sh, .idx = 2, .key = T4_KEY, .lease_ms = T4_LEASE_MS };
	expect_ok(spawn(one_get_child, &c), &sh->rep[2], 10000, "C");
	const memento_stats *sc = &sh->st[2][0];
	cr_assert_eq(sc->creations, 0);
	cr_assert_eq(sc->store_hits, 1);
	cr_assert_eq(sc->remote_hits, 1);
	cr_assert_eq(sc->store_errors, 0);
	cr_assert_eq(sh->got[2].creator, (uint64_t)pa, "the record is not the last one written");
	cr_assert_eq(atomic_load(&sh->bad_records), 0);
	cr_assert_eq(keys_matching(LEASES), 0, "lease keys left behind");
	munmap(sh, sizeof *sh);
}

/*
 * The same stall, but A's create fails once it goes on, while B, which
 * took the lease over, still computes; C waits on B's lease meanwhile.
 * Guards the release's compare: A must not delete B's lease (else C
 * takes it and computes a third time); C reads B's record.
 */
Test(redis_tier, a_late_holder_never_releases_its_successors_lease)
{
	struct shared *sh = shared_new(sizeof *sh);
	struct one_get a = { .sh = sh, .idx = 0, .key = T4_KEY, .lease_ms = T4_LEASE_MS,
		             .hook = hold_until_resume, .fail_with = -EIO, .expect = -EIO };
	pid_t pa = spawn(one_get_child, &a);
	cr_assert(await_flag(&sh->in_create[0], 10000), "A never reached create");
	/* B holds its creation until A's get has returned, and 300 ms more:
	 * two naps of C's at most. */
	struct one_get b = { .sh = sh, .idx = 1, .key = T4_KEY, .lease_ms = T4_LEASE_MS,
		             .watch = true, .hook = hold_until_other_done, .other = 0,
		             .hold_ms = 300 };
	pid_t pb = spawn(one_get_child, &b);
	cr_assert(await_flag(&sh->waiting[1], 10000), "B never waited on A's lease");

	cr_assert_eq(kill(pa, SIGSTOP), 0);
	cr_assert(await_flag(&sh->in_create[1], 10000), "B never took A's lease over");
	struct one_get c = { .sh = sh, .idx = 2, .key = T4_KEY, .lease_ms = T4_LEASE_MS,
		             .watch = true };
	pid_t pc = spawn(one_get_child, &c);
	cr_assert(await_flag(&sh->waiting[2], 10000), "C never waited on B's lease");

	atomic_store(&sh->resume, 1);
	cr_assert_eq(kill(pa, SIGCONT), 0);
	expect_ok(pa, &sh->rep[0], 10000, "A, continued");
	expect_ok(pb, &sh->rep[1], 10000, "B");
	expect_ok(pc, &sh->rep[2], 10000, "C");

	cr_assert_eq(atomic_load(&sh->creations), 2, "%d creations: A released B's lease?",
	             atomic_load(&sh->creations));
	const memento_stats *sc = &sh->st[2][0];
	cr_assert_eq(sc->creations, 0);
	cr_assert_eq(sc->remote_waits, 1);
	cr_assert_eq(sc->store_hits, 1);
	cr_assert_eq(sh->got[1].creator, (uint64_t)pb);
	cr_assert_eq(sh->got[2].creator, (uint64_t)pb, "C's object is not B's");
	cr_assert_eq(sh->st[0][0].failures, 1);
	cr_assert_eq(keys_matching(LEASES), 0, "lease keys left behind");
	munmap(sh, sizeof *sh);
}

/*
 * A get that takes a lease reads the record again before computing: the
 * record may have come after its first read, its holder gone since.
 * Machine 2 has two processes on one LMDB store: C takes the LMDB key
 * lock and the Redis lease and is stopped inside create; B read both
 * tiers (nothing) and sleeps on the LMDB key lock.  Machine 1's A takes
 * the expired lease over, computes, writes Redis and releases.  C goes on
 * and fails, writing nothing: B gets the key lock, finds nothing in LMDB,
 * takes the free lease, and must find A's record in Redis, not compute.
 */
Test(redis_tier, a_lease_holder_reads_again_before_computing)
{
	struct shared *sh = shared_new(sizeof *sh);
	temp_dir_make(dirs[0], "tier-m1");
	temp_dir_make(dirs[1], "tier-m2");
	enum { A, B, C };
	struct one_get c = { .sh = sh, .idx = C, .key = 5, .lease_ms = T4_LEASE_MS,
		             .hook = hold_until_resume, .fail_with = -EIO, .expect = -EIO,
		             .lmdb_dir = dirs[1] };
	pid_t pc = spawn(one_get_child, &c);
	cr_assert(await_flag(&sh->in_create[C], 10000), "C never reached create");
	struct one_get b = { .sh = sh, .idx = B, .key = 5, .lmdb_dir = dirs[1] };
	pid_t pb = spawn(one_get_child, &b);
	int seen = await_key_lock_waiter(dirs[1], 10000);
	cr_assert_neq(seen, 0, "B never waited on C's key lock");
	if (seen < 0) {
		cr_log_info("/proc/locks unreadable: giving B 300 ms to block");
		sleep_ms(300);
	}

	cr_assert_eq(kill(pc, SIGSTOP), 0);
	struct one_get a = { .sh = sh, .idx = A, .key = 5, .lease_ms = T4_LEASE_MS,
		             .lmdb_dir = dirs[0] };
	expect_ok(spawn(one_get_child, &a), &sh->rep[A], 10000, "A, while C is stopped");
	cr_assert_eq(sh->st[A][0].creations, 1);
	cr_assert_eq(sh->st[A][0].remote_waits, 1, "A did not wait on C's lease");
	cr_assert_eq(atomic_load(&sh->done[B]), 0, "B went on while C held the key lock");

	atomic_store(&sh->resume, 1);
	cr_assert_eq(kill(pc, SIGCONT), 0);
	expect_ok(pc, &sh->rep[C], 10000, "C, continued");
	expect_ok(pb, &sh->rep[B], 10000, "B");
	const memento_stats *sb = &sh->st[B][0];
	cr_assert_eq(atomic_load(&sh->creations), 2, "%d creations: B computed A's key",
	             atomic_load(&sh->creations));
	cr_assert_eq(sb->creations, 0);
	cr_assert_eq(sb->remote_hits, 1);
	cr_assert_eq(sb->remote_waits, 0);
	cr_assert_eq(sb->store_writes, 1, "B did not fill its LMDB tier");
	cr_assert_eq(sh->got[B].creator, (uint64_t)sh->got[A].creator);
	cr_assert_eq(keys_matching(LEASES), 0, "lease keys left behind");
	munmap(sh, sizeof *sh);
}

/*
 * While a lease is held, its record is replaced by garbage: a get waiting
 * on the lease reads it, and waits on (the holder will overwrite it)
 * instead of computing; it then gets the holder's object.
 */
Test(redis_tier, a_bad_record_does_not_end_a_lease_wait)
{
	struct shared *sh = shared_new(sizeof *sh);
	struct one_get a = { .sh = sh, .idx = 0, .key = 9, .lease_ms = T4_LEASE_MS,
		             .hook = hold_until_resume };
	pid_t pa = spawn(one_get_child, &a);
	cr_assert(await_flag(&sh->in_create[0], 10000), "A never reached create");

	/* The record's key is the lease's less ":lease". */
	redisContext *c = server_connect(&srv);
	redisReply *r = redisCommand(c, "KEYS %s", LEASES);
	cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
	size_t len = r->element[0]->len - strlen(":lease");
	redisReply *set = redisCommand(c, "SET %b %s", r->element[0]->str, len,
	                               "garbage, not a record");
	cr_assert(set != NULL && set->type == REDIS_REPLY_STATUS);
	freeReplyObject(set);
	freeReplyObject(r);
	redisFree(c);
	cr_assert_eq(keys_matching(RECORDS), 1);

	struct one_get b = { .sh = sh, .idx = 1, .key = 9, .lease_ms = T4_LEASE_MS, .watch = true };
	pid_t pb = spawn(one_get_child, &b);
	cr_assert(await_flag(&sh->waiting[1], 10000), "B never waited on A's lease");
	sleep_ms(100); /* B reads the garbage again, nap after nap */
	cr_assert_eq(atomic_load(&sh->done[1]), 0, "B went on while A held the lease");
	atomic_store(&sh->resume, 1);
	expect_ok(pa, &sh->rep[0], 10000, "A");
	expect_ok(pb, &sh->rep[1], 10000, "B");
	cr_assert_eq(atomic_load(&sh->creations), 1, "B computed on a bad record");
	const memento_stats *sb = &sh->st[1][0];
	cr_assert_eq(sb->creations, 0);
	cr_assert_eq(sb->remote_waits, 1);
	cr_assert_eq(sb->store_hits, 1);
	cr_assert_eq(sh->got[1].creator, (uint64_t)pa);
	cr_assert_eq(keys_matching(LEASES), 0, "lease keys left behind");
	munmap(sh, sizeof *sh);
}

/*
 * A creation that fails releases its lease at once (the default lease is
 * 30 s): the next process neither waits nor finds a record, and computes.
 */
Test(redis_tier, a_failed_creation_releases_its_lease)
{
	struct shared *sh = shared_new(sizeof *sh);
	struct one_get a = { .sh = sh, .idx = 0, .key = 3, .fail_with = -EIO, .expect = -EIO };
	expect_ok(spawn(one_get_child, &a), &sh->rep[0], 10000, "A");
	cr_assert_eq(keys_matching(LEASES), 0, "a failed creation left its lease");
	cr_assert_eq(keys_matching(RECORDS), 0, "a failed creation wrote a record");
	struct one_get b = { .sh = sh, .idx = 1, .key = 3 };
	expect_ok(spawn(one_get_child, &b), &sh->rep[1], 10000, "B");
	const memento_stats *sb = &sh->st[1][0];
	cr_assert_eq(sb->creations, 1);
	cr_assert_eq(sb->remote_waits, 0);
	cr_assert_eq(atomic_load(&sh->creations), 2);
	cr_assert_eq(keys_matching(LEASES), 0);
	cr_assert_eq(keys_matching(RECORDS), 1);
	munmap(sh, sizeof *sh);
}

/* ---- 5. tiers: LMDB in front of Redis ------------------------------------------------ */

enum { T5_KEYS = 20, T5_NEW = 5, T5_TIMEOUT_MS = 200 };

/* Process 1 ("machine 1"): computes every key, writing both tiers. */
static int t5_first(void *arg)
{
	struct shared *sh = arg;
	struct proc p;
	if (proc_open(&p, sh, 0, 0, T5_TIMEOUT_MS, dirs[0]) != 0 || proc_cache(&p) != 0)
		return 1;
	for (uint64_t k = 0; k < T5_KEYS; k++)
		if (proc_get(&p, k, NULL) != 0)
			return 1;
	proc_cache_free(&p, &sh->st[0][0]);
	proc_close(&p);
	return 0;
}

/* Process 2 ("machine 2", its own LMDB store): reads them from Redis,
 * then from its LMDB; then, Redis gone, still from its LMDB, and computes
 * new keys alone. */
static int t5_second(void *arg)
{
	struct shared *sh = arg;
	struct proc p;
	if (proc_open(&p, sh, 1, 0, T5_TIMEOUT_MS, dirs[1]) != 0)
		return 1;
	for (int phase = 0; phase < 2; phase++) {
		if (proc_cache(&p) != 0)
			return 1;
		for (uint64_t k = 0; k < T5_KEYS; k++)
			if (proc_get(&p, k, NULL) != 0)
				return 1;
		proc_cache_free(&p, &sh->st[1][phase]);
		if (phase == 0) {
			/* The copies into LMDB are written in the background:
			 * close lands them (test_redis checks them landing while
			 * the store is open). */
			proc_close(&p);
			if (proc_open(&p, sh, 1, 0, T5_TIMEOUT_MS, dirs[1]) != 0)
				return 1;
		}
	}
	atomic_store(&sh->step, 1);
	CHILD_CHECK(p.r, await_flag(&sh->next, 20000), "the parent never stopped Redis");
	/* Redis is gone. */
	if (proc_cache(&p) != 0)
		return 1;
	for (uint64_t k = 0; k < T5_KEYS; k++)
		if (proc_get(&p, k, NULL) != 0)
			return 1;
	double worst = 0;
	for (uint64_t k = T5_KEYS; k < T5_KEYS + T5_NEW; k++) {
		struct timespec t0 = now_monotonic();
		if (proc_get(&p, k, NULL) != 0)
			return 1;
		double ms = ms_between(t0, now_monotonic());
		worst = ms > worst ? ms : worst;
	}
	sh->ms[1][0] = worst;
	proc_cache_free(&p, &sh->st[1][2]);
	/* The new keys were written to its LMDB. */
	if (proc_cache(&p) != 0)
		return 1;
	for (uint64_t k = T5_KEYS; k < T5_KEYS + T5_NEW; k++)
		if (proc_get(&p, k, NULL) != 0)
			return 1;
	proc_cache_free(&p, &sh->st[1][3]);
	proc_close(&p);
	return 0;
}

/*
 * Guards persist.c's walk over tiers: a hit in Redis fills the LMDB tier
 * in front of it (a second run reads LMDB only), a creation writes both,
 * and with Redis down the LMDB tier still serves, and new keys are
 * computed locally, each get bounded, the faults counted as remote.
 */
Test(redis_tier, an_lmdb_tier_in_front_of_redis)
{
	struct shared *sh = shared_new(sizeof *sh);
	temp_dir_make(dirs[0], "tier-lmdb1");
	temp_dir_make(dirs[1], "tier-lmdb2");

	expect_ok(spawn(t5_first, sh), &sh->rep[0], 20000, "process 1");
	const memento_stats *s1 = &sh->st[0][0];
	cr_assert_eq(s1->creations, T5_KEYS);
	cr_assert_eq(s1->store_hits, 0);
	cr_assert_eq(s1->store_writes, 2 * T5_KEYS, "%llu writes: not both tiers",
	             ULL(s1->store_writes));
	cr_assert_eq(s1->store_errors, 0);
	cr_assert_eq(keys_matching(RECORDS), T5_KEYS);

	pid_t p2 = spawn(t5_second, sh);
	cr_assert(await_flag(&sh->step, 20000), "process 2 never finished its first runs");
	server_stop(&srv);
	atomic_store(&sh->next, 1);
	expect_ok(p2, &sh->rep[1], 20000, "process 2");

	/* From Redis, into its own LMDB. */
	const memento_stats *a = &sh->st[1][0];
	cr_assert_eq(a->creations, 0, "process 2 computed %llu keys", ULL(a->creations));
	cr_assert_eq(a->store_hits, T5_KEYS);
	cr_assert_eq(a->remote_hits, T5_KEYS);
	cr_assert_eq(a->store_writes, T5_KEYS, "its LMDB tier was not filled: %llu writes",
	             ULL(a->store_writes));
	cr_assert_eq(a->store_errors, 0);
	/* Then from its LMDB alone. */
	const memento_stats *b = &sh->st[1][1];
	cr_assert_eq(b->creations, 0);
	cr_assert_eq(b->store_hits, T5_KEYS);
	cr_assert_eq(b->remote_hits, 0, "read Redis again: %llu", ULL(b->remote_hits));
	cr_assert_eq(b->store_writes, 0);
	/* Redis gone: the old keys from LMDB, the new ones computed. */
	const memento_stats *c = &sh->st[1][2];
	cr_assert_eq(c->creations, T5_NEW);
	cr_assert_eq(c->store_hits, T5_KEYS);
	cr_assert_eq(c->remote_hits, 0);
	cr_assert_eq(c->store_writes, T5_NEW, "%llu writes: not to LMDB", ULL(c->store_writes));
	cr_assert_geq(c->remote_errors, T5_NEW, "%llu remote errors", ULL(c->remote_errors));
	cr_assert_geq(c->store_errors, c->remote_errors);
	cr_assert_lt(sh->ms[1][0], T5_TIMEOUT_MS + 1000.0, "a get took %.0f ms with Redis down",
	             sh->ms[1][0]);
	const memento_stats *d = &sh->st[1][3];
	cr_assert_eq(d->creations, 0);
	cr_assert_eq(d->store_hits, T5_NEW);
	cr_assert_eq(atomic_load(&sh->creations), T5_KEYS + T5_NEW);
	cr_assert_eq(atomic_load(&sh->bad_records), 0);
	munmap(sh, sizeof *sh);
}

/*
 * At most 4 tiers; a hit in the last of four fills the three in front,
 * and a creation writes all four.  In the test process, which forks
 * nothing afterwards (its lease starts the renewer thread).
 */
Test(redis_tier, tiers_are_walked_and_at_most_four)
{
	struct shared *sh = shared_new(sizeof *sh);
	char uri[256];
	memento_store *r = NULL, *l[DIRS] = { NULL };
	memento_store_options o = MEMENTO_STORE_OPTIONS_INIT;
	cr_assert_eq(memento_store_open(&r, uri_of(&srv, uri, sizeof uri, PASSWORD_IN_URI), &o), 0);
	/* l[0] -> l[1] -> l[2] -> r */
	for (int i = DIRS; i-- > 0;) {
		temp_dir_make(dirs[i], "tier-chain");
		o.next = i + 1 < DIRS ? l[i + 1] : r;
		o.flags = MEMENTO_STORE_NOSYNC;
		int rc = memento_store_open(&l[i], dirs[i], &o);
		cr_assert_eq(rc, 0, "tier %d: %s", i, memento_strerror(rc));
	}
	/* A fifth tier, LMDB or Redis, is refused. */
	char fifth_dir[64];
	temp_dir_make(fifth_dir, "tier-fifth");
	memento_store *fifth = NULL;
	o.next = l[0];
	cr_assert_eq(memento_store_open(&fifth, fifth_dir, &o), -EINVAL);
	cr_assert_eq(memento_store_open(&fifth, uri, &o), -EINVAL);
	temp_dir_remove(fifth_dir);

	struct proc p = { .r = &sh->rep[0], .redis = r, .w = { .sh = sh } };
	/* Key 1 in Redis only; key 2 through all four tiers. */
	cr_assert_eq(proc_cache(&p), 0);
	cr_assert_eq(proc_get(&p, 1, NULL), 0, "line %d: %s", p.r->line, p.r->msg);
	proc_cache_free(&p, &sh->st[0][0]);
	cr_assert_eq(sh->st[0][0].store_writes, 1);
	p.lmdb = l[0];
	cr_assert_eq(proc_cache(&p), 0);
	cr_assert_eq(proc_get(&p, 1, NULL), 0, "line %d: %s", p.r->line, p.r->msg);
	cr_assert_eq(proc_get(&p, 2, NULL), 0, "line %d: %s", p.r->line, p.r->msg);
	proc_cache_free(&p, &sh->st[0][1]);
	const memento_stats *st = &sh->st[0][1];
	cr_assert_eq(st->creations, 1);
	cr_assert_eq(st->store_hits, 1);
	cr_assert_eq(st->remote_hits, 1);
	cr_assert_eq(st->store_writes, 3 + 4, "%llu writes: 3 fills and 4 tiers",
	             ULL(st->store_writes));
	/* Both keys now in the third tier (l[2] -> r): no remote read, once
	 * the background copies are written. */
	memento_store_flush(l[0]);
	p.lmdb = l[2];
	cr_assert_eq(proc_cache(&p), 0);
	cr_assert_eq(proc_get(&p, 1, NULL), 0, "line %d: %s", p.r->line, p.r->msg);
	cr_assert_eq(proc_get(&p, 2, NULL), 0, "line %d: %s", p.r->line, p.r->msg);
	proc_cache_free(&p, &sh->st[0][2]);
	cr_assert_eq(sh->st[0][2].store_hits, 2);
	cr_assert_eq(sh->st[0][2].remote_hits, 0);
	cr_assert_eq(sh->st[0][2].creations, 0);

	for (int i = 0; i < DIRS; i++)
		memento_store_close(l[i]);
	memento_store_close(r);
	cr_assert_eq(atomic_load(&sh->creations), 2);
	cr_assert_eq(keys_matching(LEASES), 0);
	munmap(sh, sizeof *sh);
}

/*
 * Two tiers on one server (two stores on one URI, one the other's next):
 * one get takes the key's one lease for both, and never waits on itself.
 * In the test process, which forks nothing afterwards.
 */
Test(redis_tier, two_tiers_on_one_server_do_not_wait_on_themselves)
{
	struct shared *sh = shared_new(sizeof *sh);
	char uri[256];
	uri_of(&srv, uri, sizeof uri, PASSWORD_IN_URI);
	memento_store *far = NULL, *near = NULL;
	memento_store_options o = MEMENTO_STORE_OPTIONS_INIT;
	cr_assert_eq(memento_store_open(&far, uri, &o), 0);
	o.next = far;
	cr_assert_eq(memento_store_open(&near, uri, &o), 0);
	struct proc p = { .r = &sh->rep[0], .redis = near, .w = { .sh = sh } };
	cr_assert_eq(proc_cache(&p), 0);
	uint64_t k = 4;
	void *obj = NULL;
	struct timespec t0 = now_monotonic(), deadline = after_ms(t0, 5000);
	int rc = memento_get_until(p.cls, &k, &obj, &deadline);
	double ms = ms_between(t0, now_monotonic());
	cr_assert_eq(rc, 0, "get: %s after %.0f ms", memento_strerror(rc), ms);
	cr_assert(val_ok(obj, k));
	proc_cache_free(&p, &sh->st[0][0]);
	const memento_stats *st = &sh->st[0][0];
	cr_assert_eq(st->creations, 1);
	cr_assert_eq(st->remote_waits, 0, "the get waited on its own lease");
	cr_assert_eq(st->store_writes, 2);
	cr_assert_eq(st->store_errors, 0);
	memento_store_close(near);
	memento_store_close(far);
	cr_assert_eq(keys_matching(LEASES), 0, "lease keys left behind");
	cr_assert_eq(keys_matching(RECORDS), 1);
	munmap(sh, sizeof *sh);
}

/* A renewal (every lease / 3, bounded by the timeout) must land before the
 * lease ends: a lease under two timeouts is refused. */
Test(redis_tier, a_lease_under_two_timeouts_is_refused)
{
	char uri[256];
	uri_of(&srv, uri, sizeof uri, PASSWORD_IN_URI);
	memento_store_options o = MEMENTO_STORE_OPTIONS_INIT;
	memento_store *s = NULL;
	o.lease_ns = 399000000u; /* the default timeout is 1 s */
	cr_assert_eq(memento_store_open(&s, uri, &o), -EINVAL);
	o.timeout_ns = 200000000u;
	o.lease_ns = 399000000u;
	cr_assert_eq(memento_store_open(&s, uri, &o), -EINVAL);
	o.lease_ns = 400000000u;
	cr_assert_eq(memento_store_open(&s, uri, &o), 0);
	memento_store_close(s);
	o.lease_ns = 0; /* 30 s */
	o.timeout_ns = 15000000000u;
	cr_assert_eq(memento_store_open(&s, uri, &o), 0);
	memento_store_close(s);
	o.timeout_ns = 15000000001u;
	cr_assert_eq(memento_store_open(&s, uri, &o), -EINVAL);
}

/* ---- 6. a server that stalls --------------------------------------------------------- */

enum { T6_TIMEOUT_MS = 200, T6_MORE = 5, T6_KEY_AFTER = 100 };

/* Opens the store while the server answers; then, the server stopped,
 * gets missing keys; then, continued, gets one more that lands. */
static int t6_child(void *arg)
{
	struct shared *sh = arg;
	struct proc p;
	if (proc_open(&p, sh, 0, 0, T6_TIMEOUT_MS, NULL) != 0 || proc_cache(&p) != 0)
		return 1;
	atomic_store(&sh->step, 1);
	CHILD_CHECK(p.r, await_flag(&sh->next, 20000), "the server was never stopped");
	struct timespec t0 = now_monotonic();
	if (proc_get(&p, 0, NULL) != 0)
		return 1;
	sh->ms[0][0] = ms_between(t0, now_monotonic());
	memento_class_stats(p.cls, &sh->st[0][0]);
	t0 = now_monotonic();
	for (uint64_t k = 1; k <= T6_MORE; k++)
		if (proc_get(&p, k, NULL) != 0)
			return 1;
	sh->ms[0][1] = ms_between(t0, now_monotonic());
	proc_cache_free(&p, &sh->st[0][1]);
	atomic_store(&sh->step, 2);
	CHILD_CHECK(p.r, await_flag(&sh->resume, 20000), "the server was never continued");
	/* Past the quiet window (5 timeouts from the last one, before the
	 * parent continued the server). */
	sleep_ms(5 * T6_TIMEOUT_MS + 200);
	if (proc_cache(&p) != 0 || proc_get(&p, T6_KEY_AFTER, NULL) != 0)
		return 1;
	proc_cache_free(&p, &sh->st[0][2]);
	proc_close(&p);
	return 0;
}

/*
 * The server is stopped (SIGSTOP): the kernel still accepts connections,
 * nothing answers.  Guards the timeouts and the quiet window: the first
 * get pays one timeout (not one per step: read, lease, write), the next
 * ones none, each computes locally and counts remote errors; once the
 * server goes on and the window is over, results are shared again.
 */
Test(redis_tier, a_stalled_server_costs_a_get_at_most_one_timeout)
{
	struct shared *sh = shared_new(sizeof *sh);
	pid_t x = spawn(t6_child, sh);
	cr_assert(await_flag(&sh->step, 10000), "the store never opened");
	cr_assert_eq(kill(srv.pid, SIGSTOP), 0);
	atomic_store(&sh->next, 1);
	struct timespec end = after_ms(now_monotonic(), 20000);
	while (atomic_load(&sh->step) < 2 && ms_between(now_monotonic(), end) > 0 &&
	       waitpid(x, NULL, WNOHANG) == 0)
		sleep_ms(1);
	cr_assert_eq(kill(srv.pid, SIGCONT), 0);
	atomic_store(&sh->resume, 1);
	expect_ok(x, &sh->rep[0], 20000, "the process");

	const memento_stats *first = &sh->st[0][0], *all = &sh->st[0][1], *after = &sh->st[0][2];
	cr_assert_eq(first->creations, 1);
	cr_assert_geq(first->remote_errors, 1);
	cr_assert_lt(sh->ms[0][0], 1000.0, "the first get took %.0f ms, timeout %d ms",
	             sh->ms[0][0], T6_TIMEOUT_MS);
	/* Without the quiet window each would pay three timeouts. */
	cr_assert_lt(sh->ms[0][1], 1000.0, "%d more gets took %.0f ms, timeout %d ms", T6_MORE,
	             sh->ms[0][1], T6_TIMEOUT_MS);
	cr_assert_eq(all->creations, 1 + T6_MORE);
	cr_assert_geq(all->remote_errors, 1 + T6_MORE);
	cr_assert_eq(all->store_writes, 0);
	cr_assert_eq(after->creations, 1);
	cr_assert_eq(after->store_writes, 1, "not shared again: %llu writes, %llu errors",
	             ULL(after->store_writes), ULL(after->store_errors));
	cr_assert_eq(after->remote_errors, 0);

	struct one_get y = { .sh = sh, .idx = 1, .key = T6_KEY_AFTER };
	expect_ok(spawn(one_get_child, &y), &sh->rep[1], 10000, "a fresh process");
	cr_assert_eq(sh->st[1][0].remote_hits, 1);
	cr_assert_eq(sh->st[1][0].creations, 0);
	cr_log_info("stalled server: first get %.0f ms, %d more %.0f ms", sh->ms[0][0], T6_MORE,
	            sh->ms[0][1]);
	munmap(sh, sizeof *sh);
}

/* ---- 7. a cluster node --------------------------------------------------------------- */

Test(redis_tier, a_cluster_node_is_refused_at_open)
{
	server_new(&cluster, "tier-cluster", true);
	char uri[256];
	memento_store *s = NULL;
	int rc = memento_store_open(&s, uri_of(&cluster, uri, sizeof uri, PASSWORD_IN_URI), NULL);
	cr_assert_eq(rc, -ENOTSUP, "a cluster node: %s", memento_strerror(rc));
	cr_assert_null(s);
	/* A plain server is not taken for one. */
	rc = memento_store_open(&s, uri_of(&srv, uri, sizeof uri, PASSWORD_IN_URI), NULL);
	cr_assert_eq(rc, 0, "%s", memento_strerror(rc));
	memento_store_close(s);
}
