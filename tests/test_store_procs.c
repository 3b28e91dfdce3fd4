/*
 * Persistence across real processes: fork(), kill -9, and nothing shared
 * but the store's directory.  A second process finds what a first one
 * computed; processes that ask for the same missing keys at once compute
 * each key once between them; a creator killed inside create is taken over
 * by the process waiting on it, and a deadline bounds that wait; results a
 * writer returned survive its kill -9 mid-stream; a child uses the store it
 * inherited; a child forked inside create does not keep its parent's key
 * locked.  (One process: test_store.c.)
 *
 * Children never assert (procs.h): each writes what it saw into a shared
 * mapping (MAP_SHARED | MAP_ANONYMOUS), reports a failed step there and in
 * its exit status, and leaves with _exit(); the parent asserts.  Every
 * child dies with the test process (PR_SET_PDEATHSIG), and the suite's
 * fini kills and reaps any the test left.  The parent forks before any
 * thread exists in it (children start their own), so the suite runs the
 * same under ThreadSanitizer.  Every test has its own store directory
 * under /tmp.
 *
 * Where the test process never opens the store, each child opens it
 * itself.  Where it does (the last two tests), its children use the store
 * they inherited, which the library reopens in them: their own
 * memento_store_open of the directory would be -EBUSY, the inherited store
 * being open in that process too.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "procs.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the store directory and the children of a test ------------------------- */

static char dir[64];

static void dir_setup(void)
{
	temp_dir_make(dir, "procs");
}

static void dir_teardown(void)
{
	children_kill_all();
	temp_dir_remove(dir);
}

TestSuite(store_procs, .init = dir_setup, .fini = dir_teardown, .timeout = 60);

/* ---- a persisted class whose records check themselves -------------------------- */

/* What the class makes: which key, in which world, by which process. */
struct val {
	uint64_t key;
	uint64_t tag;     /* the creating process's tag (a round, a version) */
	uint64_t creator; /* the pid of the process whose create made it */
	uint64_t pad;     /* bytes of a key-dependent pattern after it in the record */
	uint64_t check;   /* a hash of the four above */
};

static uint64_t val_check(const struct val *v)
{
	return mix64(v->key ^ mix64(v->tag ^ mix64(v->creator ^ mix64(v->pad + 1))));
}

static unsigned char pad_byte(uint64_t key, uint64_t i)
{
	return (unsigned char)(mix64(key * 4099 + i / 8) >> (i % 8 * 8));
}

/* 0 to 6 KiB: some records take LMDB overflow pages. */
static uint64_t pad_of(uint64_t key)
{
	return mix64(key + 17) % 6144;
}

/* Counters every process bumps: in a shared mapping. */
struct counters {
	atomic_int creations;   /* create calls, in every process */
	atomic_int in_create;   /* a create that hangs has started */
	atomic_int bad_records; /* decodes that found wrong bytes */
};

/* A process's view of the class (ctx): its own copy after fork. */
struct world {
	struct counters *sh;
	atomic_int *also; /* a second shared counter create bumps, or NULL */
	uint64_t tag;
	int sleep_ms;
	int hang;   /* create never returns: it waits for kill -9 */
	int padded; /* records carry pad_of(key) bytes of pattern */
	void (*hook)(struct world *w, uint64_t key); /* inside create */
	void *hook_data;
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
	atomic_fetch_add(&w->sh->creations, 1);
	if (w->also != NULL)
		atomic_fetch_add(w->also, 1);
	if (w->hang) {
		atomic_store(&w->sh->in_create, 1);
		for (;;)
			pause();
	}
	if (w->hook != NULL)
		w->hook(w, k);
	if (w->sleep_ms > 0)
		sleep_ms(w->sleep_ms);
	struct val *v = malloc(sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	v->key = k;
	v->tag = w->tag;
	v->creator = (uint64_t)getpid();
	v->pad = w->padded ? pad_of(k) : 0;
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
	const struct val *v = obj;
	int rc = memento_buf_append(out, v, sizeof *v);
	unsigned char chunk[256];
	for (uint64_t at = 0; rc == 0 && at < v->pad; at += sizeof chunk) {
		size_t n = v->pad - at < sizeof chunk ? (size_t)(v->pad - at) : sizeof chunk;
		for (size_t i = 0; i < n; i++)
			chunk[i] = pad_byte(v->key, at + i);
		rc = memento_buf_append(out, chunk, n);
	}
	return rc;
}

/* Accepts only the exact bytes val_encode wrote. */
static int val_decode(void **obj, const void *data, size_t len, void *ctx)
{
	struct world *w = ctx;
	struct val v;
	if (len < sizeof v)
		goto bad;
	memcpy(&v, data, sizeof v);
	if (v.check != val_check(&v) || len != sizeof v + v.pad)
		goto bad;
	const unsigned char *tail = (const unsigned char *)data + sizeof v;
	for (uint64_t i = 0; i < v.pad; i++)
		if (tail[i] != pad_byte(v.key, i))
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

static memento_class_options val_options(memento_store *s, const char *version)
{
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	o.store = s;
	o.version = version;
	o.encode = val_encode;
	o.decode = val_decode;
	return o;
}

/* ---- the same, for a child: report instead of assert ------------------------------ */

static int child_store(struct report *r, unsigned int flags, memento_store **s)
{
	memento_store_options so = MEMENTO_STORE_OPTIONS_INIT;
	so.flags = flags;
	int rc = memento_store_open(s, dir, &so);
	CHILD_CHECK(r, rc == 0, "store_open: %s", memento_strerror(rc));
	return 0;
}

static int child_class(struct report *r, memento_cache *cache, const char *name,
                       memento_store *s, const char *version, struct world *w,
                       memento_class **cls)
{
	memento_class_desc d = { name, val_key, val_create, val_destroy, w };
	memento_class_options o = val_options(s, version);
	int rc = memento_class_new_with(cache, &d, &o, cls);
	CHILD_CHECK(r, rc == 0, "class_new_with %s: %s", name, memento_strerror(rc));
	return 0;
}

/* Gets key k and checks that the object is k's and whole. */
static int child_get(struct report *r, memento_class *cls, uint64_t k, struct val *out)
{
	void *obj = NULL;
	int rc = memento_get(cls, &k, &obj);
	CHILD_CHECK(r, rc == 0, "get %llu: %s", (unsigned long long)k, memento_strerror(rc));
	const struct val *v = obj;
	CHILD_CHECK(r, v != NULL && v->key == k && v->check == val_check(v),
	            "get %llu: a wrong or damaged object", (unsigned long long)k);
	*out = *v;
	return 0;
}

/* The same, for the parent. */
static memento_store *parent_store(unsigned int flags)
{
	memento_store_options so = MEMENTO_STORE_OPTIONS_INIT;
	so.flags = flags;
	memento_store *s = NULL;
	int rc = memento_store_open(&s, dir, &so);
	cr_assert_eq(rc, 0, "store_open: %s", memento_strerror(rc));
	return s;
}

static memento_class *parent_class(memento_cache *cache, const char *name, memento_store *s,
                                   const char *version, struct world *w)
{
	memento_class_desc d = { name, val_key, val_create, val_destroy, w };
	memento_class_options o = val_options(s, version);
	memento_class *cls = NULL;
	int rc = memento_class_new_with(cache, &d, &o, &cls);
	cr_assert_eq(rc, 0, "class_new_with %s: %s", name, memento_strerror(rc));
	return cls;
}

static struct val parent_get(memento_class *cls, uint64_t k)
{
	void *obj = NULL;
	int rc = memento_get(cls, &k, &obj);
	cr_assert_eq(rc, 0, "get %llu: %s", (unsigned long long)k, memento_strerror(rc));
	const struct val *v = obj;
	cr_assert(v != NULL && v->key == k && v->check == val_check(v), "get %llu: wrong object",
	          (unsigned long long)k);
	return *v;
}

static bool same_val(const struct val *a, const struct val *b)
{
	return memcmp(a, b, sizeof *a) == 0;
}

#define ULL(x) ((unsigned long long)(x))

/* ---- 1. a restart is a second process -------------------------------------------- */

enum { T1_KEYS = 24, T1_RUNS = 4 };

struct t1_shared {
	struct counters sh;
	struct report rep[T1_RUNS];
	struct val seen[T1_RUNS][2][T1_KEYS]; /* per run, class a then b */
	memento_stats st[T1_RUNS][2];
};

struct t1_run {
	struct t1_shared *m;
	int idx;
	const char *version_a, *version_b;
	uint64_t tag;
};

/* Opens the store, gets every key of classes a and b, closes it. */
static int t1_child(void *arg)
{
	struct t1_run *run = arg;
	struct t1_shared *m = run->m;
	struct report *r = &m->rep[run->idx];
	memento_store *s;
	if (child_store(r, MEMENTO_STORE_NOSYNC, &s) != 0)
		return 1;
	memento_cache *cache;
	CHILD_CHECK(r, memento_cache_new(&cache) == 0, "cache_new");
	struct world wa = { .sh = &m->sh, .tag = run->tag }, wb = wa;
	memento_class *ca, *cb;
	if (child_class(r, cache, "a", s, run->version_a, &wa, &ca) != 0 ||
	    child_class(r, cache, "b", s, run->version_b, &wb, &cb) != 0)
		return 1;
	for (uint64_t k = 0; k < T1_KEYS; k++)
		if (child_get(r, ca, k, &m->seen[run->idx][0][k]) != 0 ||
		    child_get(r, cb, k, &m->seen[run->idx][1][k]) != 0)
			return 1;
	memento_class_stats(ca, &m->st[run->idx][0]);
	memento_class_stats(cb, &m->st[run->idx][1]);
	memento_cache_free(cache);
	memento_store_close(s);
	return 0;
}

static void expect_found(const memento_stats *st, const char *what)
{
	cr_assert_eq(st->creations, 0, "%s: %llu creations", what, ULL(st->creations));
	cr_assert_eq(st->store_hits, T1_KEYS, "%s: %llu store hits", what, ULL(st->store_hits));
	cr_assert_eq(st->store_errors, 0, "%s: %llu store errors", what, ULL(st->store_errors));
}

Test(store_procs, restart_in_a_second_process)
{
	struct t1_shared *m = shared_new(sizeof *m);
	/* Run 0 computes; 1 restarts; 2 changes a's version; 3 restarts. */
	const char *version_a[T1_RUNS] = { "1", "1", "2", "2" };
	pid_t pid[T1_RUNS];
	int creations_after[T1_RUNS];
	for (int i = 0; i < T1_RUNS; i++) {
		struct t1_run run = { m, i, version_a[i], "1", 100 * (uint64_t)(i + 1) };
		pid[i] = spawn(t1_child, &run);
		char who[32];
		snprintf(who, sizeof who, "run %d", i);
		expect_ok(pid[i], &m->rep[i], 10000, who);
		creations_after[i] = atomic_load(&m->sh.creations);
	}

	/* Run 0 computed every key of both classes and stored it. */
	for (int c = 0; c < 2; c++) {
		const memento_stats *st = &m->st[0][c];
		cr_assert_eq(st->creations, T1_KEYS);
		cr_assert_eq(st->store_writes, T1_KEYS);
		cr_assert_eq(st->store_hits, 0);
		for (int k = 0; k < T1_KEYS; k++)
			cr_assert(m->seen[0][c][k].tag == 100 &&
			          m->seen[0][c][k].creator == (uint64_t)pid[0]);
	}
	cr_assert_eq(creations_after[0], 2 * T1_KEYS);

	/* Run 1, a fresh process with other tags: everything found, nothing
	 * computed, the very values of run 0. */
	expect_found(&m->st[1][0], "restart, class a");
	expect_found(&m->st[1][1], "restart, class b");
	cr_assert_eq(creations_after[1], 2 * T1_KEYS, "the restart created");
	for (int c = 0; c < 2; c++)
		cr_assert_eq(memcmp(m->seen[1][c], m->seen[0][c], sizeof m->seen[0][c]), 0,
		             "class %c: the restart saw other values", "ab"[c]);

	/* Run 2: a's new version recomputes all of a, and none of b. */
	const memento_stats *a2 = &m->st[2][0];
	cr_assert_eq(a2->creations, T1_KEYS, "new version: %llu creations", ULL(a2->creations));
	cr_assert_eq(a2->store_stale, T1_KEYS);
	cr_assert_eq(a2->store_hits, 0);
	cr_assert_eq(a2->store_writes, T1_KEYS);
	for (int k = 0; k < T1_KEYS; k++)
		cr_assert(m->seen[2][0][k].tag == 300 && m->seen[2][0][k].creator == (uint64_t)pid[2],
		          "key %d of the new version is not run 2's", k);
	expect_found(&m->st[2][1], "new version of a, class b");
	cr_assert_eq(memcmp(m->seen[2][1], m->seen[0][1], sizeof m->seen[0][1]), 0);
	cr_assert_eq(creations_after[2], 3 * T1_KEYS);

	/* Run 3: the new version's records replaced the old ones. */
	expect_found(&m->st[3][0], "restart after the new version, class a");
	expect_found(&m->st[3][1], "restart after the new version, class b");
	cr_assert_eq(memcmp(m->seen[3][0], m->seen[2][0], sizeof m->seen[2][0]), 0);
	cr_assert_eq(memcmp(m->seen[3][1], m->seen[0][1], sizeof m->seen[0][1]), 0);
	cr_assert_eq(creations_after[3], 3 * T1_KEYS);
	cr_assert_eq(atomic_load(&m->sh.bad_records), 0);
	munmap(m, sizeof *m);
}

/* ---- 2. one computation per key across processes ------------------------------------ */

enum { T2_PROCS = 4, T2_THREADS = 3, T2_KEYS = 16, T2_ROUNDS = 4, T2_SLEEP_MS = 3 };

struct t2_shared {
	struct counters sh;
	pthread_barrier_t go; /* every thread of every process, each round */
	atomic_int creations[T2_ROUNDS];
	struct val seen[T2_ROUNDS][T2_PROCS][T2_THREADS][T2_KEYS];
	int rc[T2_ROUNDS][T2_PROCS][T2_THREADS]; /* a get's error, 0: none */
	memento_stats st[T2_ROUNDS][T2_PROCS];
	struct report rep[T2_PROCS];
};

struct t2_asker {
	struct t2_shared *m;
	memento_class *cls;
	int proc, thread, round;
};

static void *t2_ask(void *arg)
{
	struct t2_asker *a = arg;
	struct t2_shared *m = a->m;
	int i = a->proc * T2_THREADS + a->thread;
	/* Four starting points: each key has several first askers at once. */
	int start = (i % 4) * (T2_KEYS / 4);
	pthread_barrier_wait(&m->go);
	for (int j = 0; j < T2_KEYS; j++) {
		uint64_t k = (uint64_t)((start + j) % T2_KEYS);
		void *obj = NULL;
		int rc = memento_get(a->cls, &k, &obj);
		if (rc != 0) {
			m->rc[a->round][a->proc][a->thread] = rc;
			continue;
		}
		m->seen[a->round][a->proc][a->thread][k] = *(const struct val *)obj;
	}
	return NULL;
}

struct t2_run {
	struct t2_shared *m;
	int proc;
};

static int t2_child(void *arg)
{
	struct t2_run *run = arg;
	struct t2_shared *m = run->m;
	struct report *r = &m->rep[run->proc];
	memento_store *s;
	if (child_store(r, MEMENTO_STORE_NOSYNC, &s) != 0)
		return 1;
	for (int round = 0; round < T2_ROUNDS; round++) {
		/* A new version each round: every key is missing or stale. */
		char version[16];
		snprintf(version, sizeof version, "round-%d", round);
		memento_cache *cache;
		CHILD_CHECK(r, memento_cache_new(&cache) == 0, "cache_new");
		struct world w = { .sh = &m->sh, .also = &m->creations[round], .tag = (uint64_t)round,
			           .sleep_ms = T2_SLEEP_MS };
		memento_class *cls;
		if (child_class(r, cache, "shared", s, version, &w, &cls) != 0)
			return 1;
		pthread_t t[T2_THREADS];
		struct t2_asker a[T2_THREADS];
		for (int i = 0; i < T2_THREADS; i++) {
			a[i] = (struct t2_asker){ m, cls, run->proc, i, round };
			int rc = pthread_create(&t[i], NULL, t2_ask, &a[i]);
			CHILD_CHECK(r, rc == 0, "pthread_create: %s", strerror(rc));
		}
		for (int i = 0; i < T2_THREADS; i++)
			pthread_join(t[i], NULL);
		memento_class_stats(cls, &m->st[round][run->proc]);
		memento_cache_free(cache);
	}
	memento_store_close(s);
	return 0;
}

Test(store_procs, one_computation_across_processes)
{
	struct t2_shared *m = shared_new(sizeof *m);
	shared_barrier_init(&m->go, T2_PROCS * T2_THREADS);

	struct timespec t0 = now_monotonic();
	pid_t pids[T2_PROCS];
	for (int p = 0; p < T2_PROCS; p++) {
		struct t2_run run = { m, p };
		pids[p] = spawn(t2_child, &run);
	}
	expect_all_ok(pids, T2_PROCS, m->rep, 30000, "process");
	double ms = ms_between(t0, now_monotonic());

	for (int r = 0; r < T2_ROUNDS; r++) {
		int made = atomic_load(&m->creations[r]);
		cr_assert_eq(made, T2_KEYS, "round %d: %d creations of %d keys across %d processes", r,
		             made, T2_KEYS, T2_PROCS);
		uint64_t creations = 0, stale = 0;
		for (int p = 0; p < T2_PROCS; p++) {
			const memento_stats *st = &m->st[r][p];
			creations += st->creations;
			stale += st->store_stale;
			/* One creating get per key in each process: it computed the
			 * key, or found another process's record. */
			cr_assert_eq(st->creations + st->store_hits, T2_KEYS,
			             "round %d, process %d: %llu creations + %llu store hits", r, p,
			             ULL(st->creations), ULL(st->store_hits));
			cr_assert_eq(st->store_errors, 0);
			cr_assert_eq(st->failures, 0);
			for (int t = 0; t < T2_THREADS; t++) {
				int rc = m->rc[r][p][t];
				cr_assert_eq(rc, 0, "round %d, process %d, thread %d: %s", r, p, t,
				             memento_strerror(rc));
			}
		}
		cr_assert_eq(creations, T2_KEYS, "round %d: the processes' stats count %llu creations",
		             r, ULL(creations));
		if (r > 0)
			cr_assert_eq(stale, T2_KEYS, "round %d: %llu stale records replaced", r,
			             ULL(stale));
		/* Every caller in every process saw the one value of each key. */
		for (int k = 0; k < T2_KEYS; k++) {
			const struct val *first = &m->seen[r][0][0][k];
			cr_assert(first->key == (uint64_t)k && first->tag == (uint64_t)r &&
			          first->check == val_check(first),
			          "round %d, key %d: wrong value", r, k);
			for (int p = 0; p < T2_PROCS; p++) {
				for (int t = 0; t < T2_THREADS; t++) {
					const struct val *v = &m->seen[r][p][t][k];
					cr_assert(same_val(v, first),
					          "round %d, key %d: process %d thread %d saw pid "
					          "%llu's value, process 0 thread 0 pid %llu's",
					          r, k, p, t, ULL(v->creator), ULL(first->creator));
				}
			}
		}
	}
	cr_assert_eq(atomic_load(&m->sh.bad_records), 0);
	printf("store_procs: %d processes x %d threads, %d keys, %d rounds: %.0f ms\n", T2_PROCS,
	       T2_THREADS, T2_KEYS, T2_ROUNDS, ms);
	pthread_barrier_destroy(&m->go);
	munmap(m, sizeof *m);
}

/* ---- 3. a creator killed inside create ------------------------------------------------- */

enum { T3_KEY = 7, T3_DEADLINE_MS = 300, T3_BOUND_MS = 5000 };
enum { T3_HANGER, T3_TIMED, T3_PAST, T3_TAKER, T3_LATER, T3_N };

struct t3_shared {
	struct counters sh;
	struct report rep[T3_N];
	atomic_int asking[T3_N];   /* about to call get */
	atomic_int returned[T3_N]; /* get returned */
	struct timespec returned_at[T3_N];
	double get_ms[T3_N];
	int rc[T3_N];
	int rc_again[T3_N]; /* T3_TIMED: a second get_until, 20 ms */
	double again_ms[T3_N];
	struct val got[T3_N];
	memento_stats st[T3_N];
};

struct t3_run {
	struct t3_shared *m;
	int idx;
	int hang;
	int deadline_ms; /* get_until with this deadline; 0: get; -1: get_until
	                    with a deadline long past (a negative tv_sec) */
};

static int t3_child(void *arg)
{
	struct t3_run *run = arg;
	struct t3_shared *m = run->m;
	int i = run->idx;
	struct report *r = &m->rep[i];
	memento_store *s;
	if (child_store(r, MEMENTO_STORE_NOSYNC, &s) != 0)
		return 1;
	memento_cache *cache;
	CHILD_CHECK(r, memento_cache_new(&cache) == 0, "cache_new");
	struct world w = { .sh = &m->sh, .tag = (uint64_t)i, .hang = run->hang };
	memento_class *cls;
	if (child_class(r, cache, "slow", s, "1", &w, &cls) != 0)
		return 1;
	uint64_t k = T3_KEY;
	void *obj = NULL;
	atomic_store(&m->asking[i], 1);
	struct timespec t0 = now_monotonic();
	int rc;
	if (run->deadline_ms != 0) {
		struct timespec deadline = run->deadline_ms > 0 ? after_ms(t0, run->deadline_ms)
		                                                : (struct timespec){ -5, 0 };
		rc = memento_get_until(cls, &k, &obj, &deadline);
	} else {
		rc = memento_get(cls, &k, &obj);
	}
	struct timespec t1 = now_monotonic();
	m->returned_at[i] = t1;
	m->get_ms[i] = ms_between(t0, t1);
	m->rc[i] = rc;
	atomic_store(&m->returned[i], 1);
	if (rc == 0) {
		const struct val *v = obj;
		CHILD_CHECK(r, v->key == k && v->check == val_check(v), "a wrong object");
		m->got[i] = *v;
	}
	if (run->deadline_ms > 0) {
		/* A timeout leaves nothing behind: the next get waits again. */
		struct timespec t2 = now_monotonic(), deadline = after_ms(t2, 20);
		m->rc_again[i] = memento_get_until(cls, &k, &obj, &deadline);
		m->again_ms[i] = ms_between(t2, now_monotonic());
	}
	memento_class_stats(cls, &m->st[i]);
	memento_cache_free(cache);
	memento_store_close(s);
	return 0;
}

Test(store_procs, a_killed_creator_is_taken_over)
{
	struct t3_shared *m = shared_new(sizeof *m);

	/* The creator: inside create for good. */
	struct t3_run hanger = { m, T3_HANGER, 1, 0 };
	pid_t a = spawn(t3_child, &hanger);
	cr_assert(await_flag(&m->sh.in_create, T3_BOUND_MS), "the creator never reached create");

	/* A deadline bounds the wait on another process's creation. */
	struct t3_run timed = { m, T3_TIMED, 0, T3_DEADLINE_MS };
	pid_t d = spawn(t3_child, &timed);
	expect_ok(d, &m->rep[T3_TIMED], T3_BOUND_MS, "the waiter with a deadline");
	cr_assert_eq(m->rc[T3_TIMED], -ETIMEDOUT, "get_until: %s", memento_strerror(m->rc[T3_TIMED]));
	cr_assert_geq(m->get_ms[T3_TIMED], T3_DEADLINE_MS - 1.0, "returned %.1f ms before it",
	              T3_DEADLINE_MS - m->get_ms[T3_TIMED]);
	cr_assert_lt(m->get_ms[T3_TIMED], T3_DEADLINE_MS + 500.0, "returned %.1f ms after it",
	             m->get_ms[T3_TIMED] - T3_DEADLINE_MS);
	cr_assert_eq(m->rc_again[T3_TIMED], -ETIMEDOUT, "the second get_until: %s",
	             memento_strerror(m->rc_again[T3_TIMED]));
	cr_assert_geq(m->again_ms[T3_TIMED], 19.0, "the second get_until did not wait: %.1f ms",
	              m->again_ms[T3_TIMED]);
	cr_assert_eq(m->st[T3_TIMED].creations, 0, "the waiter with a deadline created");
	cr_assert_eq(atomic_load(&m->sh.creations), 1);

	/* A deadline long past (a negative tv_sec) times out at once, here too. */
	struct t3_run past = { m, T3_PAST, 0, -1 };
	pid_t e = spawn(t3_child, &past);
	expect_ok(e, &m->rep[T3_PAST], T3_BOUND_MS, "the waiter with a deadline long past");
	cr_assert_eq(m->rc[T3_PAST], -ETIMEDOUT, "get_until: %s", memento_strerror(m->rc[T3_PAST]));
	cr_assert_eq(m->st[T3_PAST].creations, 0, "the waiter with a past deadline created");
	cr_assert_eq(atomic_load(&m->sh.creations), 1);

	/* A waiter without one sleeps on the key's lock... */
	struct t3_run taker = { m, T3_TAKER, 0, 0 };
	pid_t b = spawn(t3_child, &taker);
	cr_assert(await_flag(&m->asking[T3_TAKER], T3_BOUND_MS), "the taker never asked");
	int waiting = await_key_lock_waiter(dir, T3_BOUND_MS);
	if (waiting < 0) {
		printf("store_procs: /proc/locks unreadable: giving the taker 300 ms to block\n");
		sleep_ms(300);
	} else {
		cr_assert_eq(waiting, 1, "no process waits on keys.lock (returned: %d)",
		             atomic_load(&m->returned[T3_TAKER]));
	}
	cr_assert_eq(atomic_load(&m->returned[T3_TAKER]), 0, "the taker did not wait: %s",
	             memento_strerror(m->rc[T3_TAKER]));
	cr_assert_eq(atomic_load(&m->sh.creations), 1, "the taker created while the creator lived");

	/* ... and computes the key itself as soon as the creator dies. */
	struct timespec killed_at = now_monotonic();
	cr_assert_eq(kill(a, SIGKILL), 0);
	int status;
	cr_assert_eq(reap(a, T3_BOUND_MS, &status), 0);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	expect_ok(b, &m->rep[T3_TAKER], T3_BOUND_MS, "the taker");
	double takeover_ms = ms_between(killed_at, m->returned_at[T3_TAKER]);
	cr_assert_eq(m->rc[T3_TAKER], 0, "the taker's get: %s", memento_strerror(m->rc[T3_TAKER]));
	cr_assert_lt(takeover_ms, (double)T3_BOUND_MS);
	const struct val *got = &m->got[T3_TAKER];
	cr_assert_eq(got->creator, (uint64_t)b, "the taker's value was made by pid %llu",
	             ULL(got->creator));
	cr_assert_eq(atomic_load(&m->sh.creations), 2, "the killed attempt and the taker's");
	const memento_stats *st = &m->st[T3_TAKER];
	cr_assert_eq(st->creations, 1);
	cr_assert_eq(st->store_hits, 0);
	cr_assert_eq(st->store_writes, 1);
	cr_assert_eq(st->store_errors, 0);

	/* The taker's result is the store's. */
	struct t3_run later = { m, T3_LATER, 0, 0 };
	pid_t c = spawn(t3_child, &later);
	expect_ok(c, &m->rep[T3_LATER], T3_BOUND_MS, "the later process");
	cr_assert_eq(m->rc[T3_LATER], 0);
	cr_assert_eq(m->st[T3_LATER].store_hits, 1);
	cr_assert_eq(m->st[T3_LATER].creations, 0);
	cr_assert(same_val(&m->got[T3_LATER], got), "the later process got another value");
	cr_assert_eq(atomic_load(&m->sh.creations), 2);
	printf("store_procs: deadline %d ms, get_until returned after %.1f ms; "
	       "taken over %.1f ms after kill -9 (the taker waited %.1f ms in all)\n",
	       T3_DEADLINE_MS, m->get_ms[T3_TIMED], takeover_ms, m->get_ms[T3_TAKER]);
	munmap(m, sizeof *m);
}

/* ---- 4. kill -9 of a writer ------------------------------------------------------------ */

/* At least T4_ROUNDS writers; more, up to T4_ROUNDS_MAX, while fewer than
 * T4_MIN_LOGGED keys came back (a disk whose syncs are slow). */
enum {
	T4_ROUNDS = 20,
	T4_ROUNDS_MAX = 100,
	T4_MIN_LOGGED = 20,
	T4_MAX_DELAY_MS = 30,
	T4_LOG_MAX = 1 << 14,
	T4_LOST_MAX = 8,
};

struct t4_entry {
	uint64_t key;
	uint64_t check; /* of the value the writer's get returned */
};

struct t4_shared {
	struct counters sh;
	struct report rep[T4_ROUNDS_MAX + 1];
	atomic_int logged; /* entries of log: keys whose get returned */
	struct t4_entry log[T4_LOG_MAX];
	/* The checker's findings. */
	int lost, changed;
	uint64_t lost_keys[T4_LOST_MAX], changed_keys[T4_LOST_MAX];
	memento_stats st;
};

struct t4_run {
	struct t4_shared *m;
	int idx;
	uint64_t first;
};

static int t4_open(struct t4_run *run, memento_cache **cache, memento_class **cls,
                   struct world *w)
{
	struct report *r = &run->m->rep[run->idx];
	memento_store *s;
	/* Durable: every commit is synced (as the default store is). */
	if (child_store(r, 0, &s) != 0)
		return 1;
	CHILD_CHECK(r, memento_cache_new(cache) == 0, "cache_new");
	*w = (struct world){ .sh = &run->m->sh, .tag = 4, .padded = 1 };
	return child_class(r, *cache, "crash", s, "1", w, cls);
}

/* Computes new keys until killed; logs each one its get returned. */
static int t4_writer(void *arg)
{
	struct t4_run *run = arg;
	struct t4_shared *m = run->m;
	struct report *r = &m->rep[run->idx];
	memento_cache *cache;
	memento_class *cls;
	struct world w;
	if (t4_open(run, &cache, &cls, &w) != 0)
		return 1;
	for (uint64_t k = run->first;; k++) {
		int n = atomic_load(&m->logged);
		if (n >= T4_LOG_MAX)
			return 0;
		struct val v;
		if (child_get(r, cls, k, &v) != 0)
			return 1;
		m->log[n] = (struct t4_entry){ k, v.check };
		atomic_store(&m->logged, n + 1); /* after the entry: a kill between loses it */
	}
}

/* Every logged key must come back from the store, as it was returned. */
static int t4_checker(void *arg)
{
	struct t4_run *run = arg;
	struct t4_shared *m = run->m;
	struct report *r = &m->rep[run->idx];
	memento_cache *cache;
	memento_class *cls;
	struct world w;
	if (t4_open(run, &cache, &cls, &w) != 0)
		return 1;
	int n = atomic_load(&m->logged);
	for (int i = 0; i < n; i++) {
		int before = atomic_load(&m->sh.creations);
		struct val v;
		if (child_get(r, cls, m->log[i].key, &v) != 0)
			return 1;
		if (atomic_load(&m->sh.creations) != before) {
			if (m->lost < T4_LOST_MAX)
				m->lost_keys[m->lost] = m->log[i].key;
			m->lost++;
		} else if (v.check != m->log[i].check) {
			if (m->changed < T4_LOST_MAX)
				m->changed_keys[m->changed] = m->log[i].key;
			m->changed++;
		}
	}
	/* The last writer's key in flight, and the one past it: whatever the
	 * kill left of them must decode, or be absent. */
	uint64_t next = n > 0 ? m->log[n - 1].key + 1 : 0;
	for (uint64_t k = next; k < next + 2; k++) {
		struct val v;
		if (child_get(r, cls, k, &v) != 0)
			return 1;
	}
	memento_class_stats(cls, &m->st);
	return 0;
}

Test(store_procs, crash_safety_under_kill9)
{
	struct t4_shared *m = shared_new(sizeof *m);
	unsigned int seed = (unsigned int)time(NULL) ^ (unsigned int)getpid();
	printf("store_procs: crash_safety_under_kill9: seed %u\n", seed);
	struct timespec t0 = now_monotonic();
	int killed = 0, rounds = 0;
	for (int round = 0; round < T4_ROUNDS_MAX; round++) {
		if (round >= T4_ROUNDS && atomic_load(&m->logged) >= T4_MIN_LOGGED)
			break;
		rounds++;
		int n = atomic_load(&m->logged);
		struct t4_run run = { m, round, n > 0 ? m->log[n - 1].key + 1 : 0 };
		pid_t pid = spawn(t4_writer, &run);
		sleep_ms((int)(rand_r(&seed) % (T4_MAX_DELAY_MS + 1)));
		kill(pid, SIGKILL);
		int status;
		cr_assert_eq(reap(pid, 5000, &status), 0, "round %d: the writer did not die", round);
		if (WIFSIGNALED(status)) {
			cr_assert_eq(WTERMSIG(status), SIGKILL, "round %d: signal %d", round,
			             WTERMSIG(status));
			killed++;
		} else {
			const struct report *r = &m->rep[round];
			cr_assert_eq(WEXITSTATUS(status), 0, "round %d: writer exit %d; line %d: %s",
			             round, WEXITSTATUS(status), r->line, r->msg);
		}
	}
	int logged = atomic_load(&m->logged);
	double writing_ms = ms_between(t0, now_monotonic());

	cr_assert_gt(logged, 0, "%d writers returned no key at all", rounds);
	struct t4_run check = { m, T4_ROUNDS_MAX, 0 };
	pid_t pid = spawn(t4_checker, &check);
	expect_ok(pid, &m->rep[T4_ROUNDS_MAX], 20000, "the checker");
	cr_assert_eq(m->lost, 0,
	             "%d of %d returned keys were not in the store (created again), first %llu",
	             m->lost, logged, ULL(m->lost_keys[0]));
	cr_assert_eq(m->changed, 0, "%d returned keys came back with another value, first %llu",
	             m->changed, ULL(m->changed_keys[0]));
	cr_assert_eq(m->st.store_errors, 0, "%llu records failed their checksum or decode",
	             ULL(m->st.store_errors));
	cr_assert_eq(atomic_load(&m->sh.bad_records), 0);
	cr_assert_geq(m->st.store_hits, (uint64_t)logged);
	cr_assert_gt(killed, 0, "no writer was killed");
	printf("store_procs: %d writers, %d killed with kill -9, %d keys returned (%.0f ms); "
	       "all found again\n",
	       rounds, killed, logged, writing_ms);
	munmap(m, sizeof *m);
}

/* ---- 5. a store inherited across fork --------------------------------------------------- */

struct t5_shared {
	struct counters sh;
	struct report rep;
	struct val got1, got2;
	memento_stats st;
};

struct t5_run {
	struct t5_shared *m;
	memento_store *store; /* the parent's */
	memento_cache *parent_cache;
};

static int t5_child(void *arg)
{
	struct t5_run *run = arg;
	struct t5_shared *m = run->m;
	struct report *r = &m->rep;
	memento_cache *cache;
	CHILD_CHECK(r, memento_cache_new(&cache) == 0, "cache_new");
	struct world w = { .sh = &m->sh, .tag = 2 };
	memento_class *cls;
	if (child_class(r, cache, "inherited", run->store, "1", &w, &cls) != 0)
		return 1;
	if (child_get(r, cls, 1, &m->got1) != 0 || child_get(r, cls, 2, &m->got2) != 0)
		return 1;
	memento_class_stats(cls, &m->st);
	/* The child may let go of all of it: its caches, then the store. */
	memento_cache_free(cache);
	memento_cache_free(run->parent_cache);
	memento_store_close(run->store);
	return 0;
}

Test(store_procs, an_inherited_store_is_reopened_in_the_child)
{
	struct t5_shared *m = shared_new(sizeof *m);
	memento_store *s = parent_store(MEMENTO_STORE_NOSYNC);
	memento_cache *cache = new_cache();
	struct world w = { .sh = &m->sh, .tag = 1 };
	memento_class *cls = parent_class(cache, "inherited", s, "1", &w);
	struct val mine = parent_get(cls, 1);
	cr_assert_eq(atomic_load(&m->sh.creations), 1);

	struct t5_run run = { m, s, cache };
	pid_t pid = spawn(t5_child, &run);
	expect_ok(pid, &m->rep, 10000, "the child");
	/* The child found the parent's result through the inherited store... */
	cr_assert_eq(m->st.store_hits, 1, "child: %llu store hits", ULL(m->st.store_hits));
	cr_assert(same_val(&m->got1, &mine), "the child got key 1 from pid %llu",
	          ULL(m->got1.creator));
	/* ... and stored its own. */
	cr_assert_eq(m->st.creations, 1);
	cr_assert_eq(m->st.store_writes, 1);
	cr_assert_eq(m->st.store_errors, 0);
	cr_assert_eq(m->got2.creator, (uint64_t)pid);
	cr_assert_eq(atomic_load(&m->sh.creations), 2);

	/* The parent's store and cache still work, and see the child's write. */
	struct val hit = parent_get(cls, 1); /* a memory hit */
	cr_assert(same_val(&hit, &mine));
	memento_cache *again = new_cache();
	memento_class *fresh = parent_class(again, "inherited", s, "1", &w);
	struct val theirs = parent_get(fresh, 2);
	cr_assert(same_val(&theirs, &m->got2), "the parent got key 2 from pid %llu",
	          ULL(theirs.creator));
	struct val back = parent_get(fresh, 1);
	cr_assert(same_val(&back, &mine));
	memento_stats st = stats_of(fresh);
	cr_assert_eq(st.creations, 0);
	cr_assert_eq(st.store_hits, 2);
	/* What the child did to its copy of the store (reading, closing)
	 * cost the parent's nothing: not a failed read either. */
	cr_assert_eq(st.store_errors, 0, "the parent's reads failed %llu times after the child",
	             ULL(st.store_errors));
	struct val third = parent_get(cls, 3); /* and writes */
	cr_assert_eq(third.creator, (uint64_t)getpid());
	st = stats_of(cls);
	cr_assert_eq(st.store_writes, 2);
	cr_assert_eq(st.store_errors, 0);
	memento_cache_free(again);
	memento_cache_free(cache);
	memento_store_close(s);
	munmap(m, sizeof *m);
}

/* ---- 6. a child forked inside create ----------------------------------------------------- */

struct t6_shared {
	struct counters sh;
	struct report rep;
	int rc;
	double get_ms;
	struct val got;
	memento_stats st;
};

struct t6_holder {
	int pipe[2]; /* the child forked in create waits for EOF on pipe[0] */
	pid_t pid;
};

/* Inside the parent's create of the key, under its key lock: fork a child
 * that lives on, with copies of every descriptor, until released. */
static void fork_a_holder(struct world *w, uint64_t key)
{
	(void)key;
	struct t6_holder *h = w->hook_data;
	fflush(NULL);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(99);
		close(h->pipe[1]);
		char c;
		while (read(h->pipe[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	if (pid > 0)
		track(pid);
	h->pid = pid;
}

struct t6_run {
	struct t6_shared *m;
	memento_store *store; /* the parent's (an open of our own would be -EBUSY) */
};

/* A new version: the record is stale, so this get takes the key's lock. */
static int t6_child(void *arg)
{
	struct t6_run *run = arg;
	struct t6_shared *m = run->m;
	struct report *r = &m->rep;
	memento_store *s = run->store;
	memento_cache *cache;
	CHILD_CHECK(r, memento_cache_new(&cache) == 0, "cache_new");
	struct world w = { .sh = &m->sh, .tag = 2 };
	memento_class *cls;
	if (child_class(r, cache, "forking", s, "2", &w, &cls) != 0)
		return 1;
	uint64_t k = 5;
	void *obj = NULL;
	struct timespec t0 = now_monotonic();
	struct timespec deadline = after_ms(t0, 3000);
	m->rc = memento_get_until(cls, &k, &obj, &deadline);
	m->get_ms = ms_between(t0, now_monotonic());
	if (m->rc == 0)
		m->got = *(const struct val *)obj;
	memento_class_stats(cls, &m->st);
	return 0;
}

Test(store_procs, a_fork_inside_create_keeps_no_key_locked)
{
	struct t6_shared *m = shared_new(sizeof *m);
	struct t6_holder holder = { { -1, -1 }, -1 };
	cr_assert_eq(pipe(holder.pipe), 0);
	memento_store *s = parent_store(MEMENTO_STORE_NOSYNC);
	memento_cache *cache = new_cache();
	struct world w = { .sh = &m->sh, .tag = 1, .hook = fork_a_holder, .hook_data = &holder };
	memento_class *cls = parent_class(cache, "forking", s, "1", &w);
	parent_get(cls, 5);
	cr_assert_gt(holder.pid, 0, "fork inside create: %s", strerror(errno));
	close(holder.pipe[0]);

	/* The holder still lives: the key's lock must be free all the same. */
	struct t6_run run = { m, s };
	pid_t pid = spawn(t6_child, &run);
	expect_ok(pid, &m->rep, 10000, "the next version's process");
	cr_assert_eq(m->rc, 0, "the next version's get: %s after %.0f ms (a child forked in "
	             "create kept the key locked?)", memento_strerror(m->rc), m->get_ms);
	cr_assert_eq(m->st.creations, 1);
	cr_assert_eq(m->st.store_stale, 1);
	cr_assert_eq(m->got.creator, (uint64_t)pid);
	cr_assert_eq(waitpid(holder.pid, NULL, WNOHANG), 0, "the holder ended too early");

	close(holder.pipe[1]);
	int status;
	cr_assert_eq(reap(holder.pid, 5000, &status), 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	memento_cache_free(cache);
	memento_store_close(s);
	munmap(m, sizeof *m);
}

/* ---- 7. a get that stops at its deadline leaves the others waiting ------------------- */

/*
 * In one process, a get_until becomes the key's creator and waits for
 * another process's key lock; a plain get of the same key, started later,
 * waits on that creation.  The deadline passes: the get_until alone
 * returns -ETIMEDOUT; the plain get keeps waiting, and computes the key
 * once the other process's creator dies.
 */
enum { T7_DEADLINE_MS = 150, T7_BOUND_MS = 5000 };

struct t7_shared {
	struct counters sh;
	struct report rep[2];
	atomic_int timed_returned, plain_asking, plain_returned;
	int timed_rc, plain_rc;
	struct val got;
	memento_stats st;
};

struct t7_asker {
	memento_class *cls;
	struct t7_shared *m;
};

static void *t7_timed(void *arg)
{
	struct t7_asker *a = arg;
	uint64_t k = T3_KEY;
	void *obj;
	struct timespec deadline = after_ms(now_monotonic(), T7_DEADLINE_MS);
	a->m->timed_rc = memento_get_until(a->cls, &k, &obj, &deadline);
	atomic_store(&a->m->timed_returned, 1);
	return NULL;
}

static void *t7_plain(void *arg)
{
	struct t7_asker *a = arg;
	uint64_t k = T3_KEY;
	void *obj = NULL;
	/* After the timed get became the creator, well before its deadline. */
	sleep_ms(T7_DEADLINE_MS / 3);
	atomic_store(&a->m->plain_asking, 1);
	a->m->plain_rc = memento_get(a->cls, &k, &obj);
	if (a->m->plain_rc == 0)
		a->m->got = *(const struct val *)obj;
	atomic_store(&a->m->plain_returned, 1);
	return NULL;
}

static int t7_child(void *arg)
{
	struct t7_shared *m = arg;
	struct report *r = &m->rep[1];
	memento_store *s;
	if (child_store(r, MEMENTO_STORE_NOSYNC, &s) != 0)
		return 1;
	memento_cache *cache;
	CHILD_CHECK(r, memento_cache_new(&cache) == 0, "cache_new");
	struct world w = { .sh = &m->sh, .tag = 7 };
	memento_class *cls;
	if (child_class(r, cache, "slow", s, "1", &w, &cls) != 0)
		return 1;
	struct t7_asker a = { cls, m };
	pthread_t timed, plain;
	pthread_create(&timed, NULL, t7_timed, &a);
	pthread_create(&plain, NULL, t7_plain, &a);
	pthread_join(timed, NULL);
	pthread_join(plain, NULL);
	memento_class_stats(cls, &m->st);
	memento_cache_free(cache);
	memento_store_close(s);
	return 0;
}

Test(store_procs, a_timed_out_creator_leaves_its_waiters_waiting)
{
	struct t7_shared *m = shared_new(sizeof *m);
	struct t3_shared *h = shared_new(sizeof *h);
	struct t3_run hanger = { h, T3_HANGER, 1, 0 };
	pid_t a = spawn(t3_child, &hanger);
	cr_assert(await_flag(&h->sh.in_create, T7_BOUND_MS), "the creator never reached create");

	pid_t c = spawn(t7_child, m);
	cr_assert(await_flag(&m->timed_returned, T7_BOUND_MS), "the get_until never returned");
	cr_assert_eq(m->timed_rc, -ETIMEDOUT, "get_until: %s", memento_strerror(m->timed_rc));
	cr_assert(atomic_load(&m->plain_asking), "the plain get had not started");
	sleep_ms(50);
	cr_assert_eq(atomic_load(&m->plain_returned), 0, "the plain get returned %s",
	             memento_strerror(m->plain_rc));

	cr_assert_eq(kill(a, SIGKILL), 0);
	int status;
	cr_assert_eq(reap(a, T7_BOUND_MS, &status), 0);
	expect_ok(c, &m->rep[1], T7_BOUND_MS, "the process with two gets");
	cr_assert_eq(m->plain_rc, 0, "the plain get: %s", memento_strerror(m->plain_rc));
	cr_assert_eq(m->got.creator, (uint64_t)c, "made by pid %llu", ULL(m->got.creator));
	cr_assert_eq(m->st.timeouts, 1, "%llu timeouts counted", ULL(m->st.timeouts));
	cr_assert_eq(m->st.creations, 1);
	cr_assert_eq(m->st.failures, 0);
	munmap(h, sizeof *h);
	munmap(m, sizeof *m);
}
