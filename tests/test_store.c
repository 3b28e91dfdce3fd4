/*
 * Persistence in one process: results found in a store instead of
 * created, staleness by version and by fingerprint, early cutoff through
 * memento_key_result, damaged records, encode and decode errors, a
 * read-only store, a full map, and bad input.  Every test has its own
 * store directory under /tmp.  (Several processes: test_store_procs.c.)
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"

#include <fcntl.h>
#include <lmdb.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static void dir_setup(void)
{
	temp_dir_make(dir, "store");
}

static void dir_teardown(void)
{
	temp_dir_remove(dir);
}

TestSuite(store, .init = dir_setup, .fini = dir_teardown, .timeout = 60);

/* ---- a persisted class: value = f(key, input[key]) ------------------------- */

struct val {
	uint64_t key;
	uint64_t value;
};

/* The world the class computes from, and what it saw. */
struct world {
	const char *version;
	uint64_t input[16];  /* the "file contents" of each key */
	uint64_t salt;       /* part of the computation, not of the fingerprint */
	atomic_int creations;
	atomic_int destroys;
	int encode_fails;    /* encode returns -EIO */
	int decode_fails;    /* decode returns -EBADMSG */
	memento_class *upstream; /* when set: the fingerprint depends on it */
	int sleep_ms;
	atomic_int fingerprints; /* fingerprint callback calls */
	_Atomic uint64_t live_input; /* what revalidating tests change under threads */
};

static int val_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_u64(key, *(const uint64_t *)args);
}

static int val_fingerprint(memento_key *key, const void *args, void *ctx)
{
	struct world *w = ctx;
	uint64_t k = *(const uint64_t *)args;
	atomic_fetch_add(&w->fingerprints, 1);
	if (w->upstream != NULL)
		return memento_key_result(key, w->upstream, args);
	return memento_key_u64(key, w->input[k % 16]);
}

/* An upstream-dependent class computes from its upstream's value. */
static int val_create(void **obj, const void *args, void *ctx)
{
	struct world *w = ctx;
	uint64_t k = *(const uint64_t *)args;
	atomic_fetch_add(&w->creations, 1);
	if (w->sleep_ms)
		sleep_ms(w->sleep_ms);
	struct val *v = malloc(sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	v->key = k;
	if (w->upstream != NULL) {
		void *up;
		int rc = memento_get(w->upstream, args, &up);
		if (rc != 0) {
			free(v);
			return rc;
		}
		v->value = ((struct val *)up)->value * 10 + 1;
	} else {
		v->value = k * 1000 + w->input[k % 16] + w->salt;
	}
	*obj = v;
	return 0;
}

static void val_destroy(void *obj, void *ctx)
{
	struct world *w = ctx;
	atomic_fetch_add(&w->destroys, 1);
	free(obj);
}

static int val_encode(const void *obj, memento_buf *out, void *ctx)
{
	struct world *w = ctx;
	if (w->encode_fails)
		return -EIO;
	return memento_buf_append(out, obj, sizeof(struct val));
}

static int val_decode(void **obj, const void *data, size_t len, void *ctx)
{
	struct world *w = ctx;
	if (w->decode_fails || len != sizeof(struct val))
		return -EBADMSG;
	struct val *v = malloc(sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	memcpy(v, data, sizeof *v);
	*obj = v;
	return 0;
}

static memento_store *open_store(unsigned int flags)
{
	memento_store_options so = MEMENTO_STORE_OPTIONS_INIT;
	so.flags = flags | MEMENTO_STORE_NOSYNC;
	memento_store *s = NULL;
	int rc = memento_store_open(&s, dir, &so);
	cr_assert_eq(rc, 0, "store_open: %s", memento_strerror(rc));
	return s;
}

static memento_class *val_class(memento_cache *cache, const char *name, memento_store *store,
                                struct world *w)
{
	memento_class_desc d = { name, val_key, val_create, val_destroy, w };
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	o.store = store;
	o.version = w->version;
	o.fingerprint = val_fingerprint;
	o.encode = val_encode;
	o.decode = val_decode;
	memento_class *cls = NULL;
	int rc = memento_class_new_with(cache, &d, &o, &cls);
	cr_assert_eq(rc, 0, "class_new_with: %s", memento_strerror(rc));
	return cls;
}

static uint64_t value_of(memento_class *cls, uint64_t k)
{
	void *obj = NULL;
	int rc = memento_get(cls, &k, &obj);
	cr_assert_eq(rc, 0, "get %llu: %s", (unsigned long long)k, memento_strerror(rc));
	cr_assert_eq(((struct val *)obj)->key, k);
	return ((struct val *)obj)->value;
}

/* Computes keys [0, n) in a fresh cache with world w; returns the stats. */
static memento_stats run_once(memento_store *s, const char *name, struct world *w, int n)
{
	memento_cache *cache = new_cache();
	memento_class *cls = val_class(cache, name, s, w);
	for (int k = 0; k < n; k++)
		value_of(cls, (uint64_t)k);
	memento_stats st = stats_of(cls);
	memento_cache_free(cache);
	return st;
}

/* ---- found instead of created ---------------------------------------------- */

Test(store, results_come_back_without_create)
{
	memento_store *s = open_store(0);
	struct world w = { .version = "1" };
	memento_stats first = run_once(s, "val", &w, 10);
	cr_assert_eq(first.creations, 10);
	cr_assert_eq(first.store_writes, 10);
	cr_assert_eq(first.store_hits, 0);

	/* The same computation, changed so that a recomputation would show. */
	w.salt = 7;
	memento_cache *c2 = new_cache();
	memento_class *k2 = val_class(c2, "val", s, &w);
	for (uint64_t k = 0; k < 10; k++)
		cr_assert_eq(value_of(k2, k), k * 1000, "key %llu recomputed", (unsigned long long)k);
	memento_cache_free(c2);
	memento_stats again = run_once(s, "val", &w, 10);
	cr_assert_eq(again.creations, 0, "%llu creations", (unsigned long long)again.creations);
	cr_assert_eq(again.store_hits, 10);
	cr_assert_eq(again.store_errors, 0);
	/* Every decoded object was destroyed with its cache. */
	cr_assert_eq(atomic_load(&w.destroys), 30);

	/* A hit in memory does not touch the store. */
	memento_cache *cache = new_cache();
	memento_class *cls = val_class(cache, "val", s, &w);
	for (int i = 0; i < 3; i++)
		value_of(cls, 1);
	memento_stats st = stats_of(cls);
	cr_assert_eq(st.store_hits, 1);
	cr_assert_eq(st.hits, 2);
	memento_cache_free(cache);
	memento_store_close(s);
}

Test(store, a_new_version_recomputes_only_its_class)
{
	memento_store *s = open_store(0);
	struct world a = { .version = "1" }, b = { .version = "1" };
	run_once(s, "a", &a, 8);
	run_once(s, "b", &b, 8);

	a.version = "2";
	a.salt = 5;
	memento_stats sa = run_once(s, "a", &a, 8);
	cr_assert_eq(sa.creations, 8);
	cr_assert_eq(sa.store_stale, 8);
	cr_assert_eq(sa.store_hits, 0);
	memento_stats sb = run_once(s, "b", &b, 8);
	cr_assert_eq(sb.creations, 0, "the other class's results went stale");
	cr_assert_eq(sb.store_hits, 8);

	/* The new version's results replaced the old ones. */
	memento_stats again = run_once(s, "a", &a, 8);
	cr_assert_eq(again.creations, 0);
	cr_assert_eq(again.store_hits, 8);
	memento_store_close(s);
}

Test(store, a_changed_input_recomputes_only_its_key)
{
	memento_store *s = open_store(0);
	struct world w = { .version = "1" };
	run_once(s, "val", &w, 16);
	w.input[3] = 42;
	memento_stats st = run_once(s, "val", &w, 16);
	cr_assert_eq(st.creations, 1);
	cr_assert_eq(st.store_stale, 1);
	cr_assert_eq(st.store_hits, 15);
	memento_store_close(s);
}

/* ---- early cutoff ------------------------------------------------------------- */

struct graph {
	struct world a, b, c;
	memento_cache *cache;
	memento_class *ca, *cb, *cc;
};

static void graph_open(struct graph *g, memento_store *s)
{
	g->cache = new_cache();
	g->ca = val_class(g->cache, "A", s, &g->a);
	g->b.upstream = g->ca;
	g->cb = val_class(g->cache, "B", s, &g->b);
	g->c.upstream = g->cb;
	g->cc = val_class(g->cache, "C", s, &g->c);
}

static void graph_run(struct graph *g, uint64_t want_c)
{
	cr_assert_eq(value_of(g->cc, 1), want_c, "C's value");
	memento_cache_free(g->cache);
	g->cache = NULL;
}

Test(store, early_cutoff_through_a_chain)
{
	memento_store *s = open_store(0);
	struct graph g = { .a = { .version = "1" }, .b = { .version = "1" }, .c = { .version = "1" } };
	g.a.input[1] = 3;
	graph_open(&g, s);
	graph_run(&g, (1003 * 10 + 1) * 10 + 1);
	cr_assert_eq(atomic_load(&g.a.creations), 1);
	cr_assert_eq(atomic_load(&g.b.creations), 1);
	cr_assert_eq(atomic_load(&g.c.creations), 1);

	/* A's code changes but computes the same bytes: only A reruns. */
	g.a.version = "2";
	graph_open(&g, s);
	graph_run(&g, (1003 * 10 + 1) * 10 + 1);
	cr_assert_eq(atomic_load(&g.a.creations), 2);
	cr_assert_eq(atomic_load(&g.b.creations), 1, "B recomputed though A's bytes stayed");
	cr_assert_eq(atomic_load(&g.c.creations), 1);

	/* A's code changes its bytes: B and then C rerun. */
	g.a.version = "3";
	g.a.salt = 1;
	graph_open(&g, s);
	graph_run(&g, (1004 * 10 + 1) * 10 + 1);
	cr_assert_eq(atomic_load(&g.a.creations), 3);
	cr_assert_eq(atomic_load(&g.b.creations), 2, "B not recomputed after A's bytes changed");
	cr_assert_eq(atomic_load(&g.c.creations), 2, "C not recomputed after B's bytes changed");

	/* Nothing changed: nothing reruns. */
	graph_open(&g, s);
	graph_run(&g, (1004 * 10 + 1) * 10 + 1);
	cr_assert_eq(atomic_load(&g.a.creations), 3);
	cr_assert_eq(atomic_load(&g.b.creations), 2);
	cr_assert_eq(atomic_load(&g.c.creations), 2);
	memento_store_close(s);
}

Test(store, upstream_without_store_stands_by_its_fingerprint)
{
	memento_store *s = open_store(0);
	struct world a = { .version = "1" }, b = { .version = "1" };
	for (int round = 0; round < 3; round++) {
		memento_cache *cache = new_cache();
		memento_class *ca = val_class(cache, "A", NULL, &a); /* memory only */
		b.upstream = ca;
		memento_class *cb = val_class(cache, "B", s, &b);
		value_of(cb, 2);
		memento_cache_free(cache);
		if (round == 1)
			a.input[2] = 9; /* A's input changes: B is stale */
	}
	/* Rounds 0 and 2 computed B; round 1 found it. */
	cr_assert_eq(atomic_load(&b.creations), 2);
	memento_store_close(s);
}

/* ---- faults ----------------------------------------------------------------------- */

/* Flips one byte of every record of the store (closed meanwhile). */
static void damage_records(size_t at_from_end)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	cr_assert_eq(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 2);
	cr_assert_eq(mdb_env_open(env, dir, 0, 0666), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	cr_assert_eq(mdb_dbi_open(txn, "results", 0, &dbi), 0);
	cr_assert_eq(mdb_cursor_open(txn, dbi, &cur), 0);
	int n = 0;
	while (mdb_cursor_get(cur, &k, &v, n == 0 ? MDB_FIRST : MDB_NEXT) == 0) {
		unsigned char *copy = malloc(v.mv_size);
		memcpy(copy, v.mv_data, v.mv_size);
		copy[v.mv_size - 1 - at_from_end] ^= 0x20;
		MDB_val nv = { v.mv_size, copy };
		cr_assert_eq(mdb_cursor_put(cur, &k, &nv, MDB_CURRENT), 0);
		free(copy);
		n++;
	}
	cr_assert_gt(n, 0);
	mdb_cursor_close(cur);
	cr_assert_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void damaged_is_recomputed(size_t at_from_end)
{
	memento_store *s = open_store(0);
	struct world w = { .version = "1" };
	run_once(s, "val", &w, 4);
	memento_store_close(s);
	damage_records(at_from_end);
	s = open_store(0);
	memento_stats st = run_once(s, "val", &w, 4);
	cr_assert_eq(st.store_errors, 4);
	cr_assert_eq(st.creations, 4);
	cr_assert_eq(st.store_hits, 0);
	/* Rewritten whole. */
	st = run_once(s, "val", &w, 4);
	cr_assert_eq(st.store_hits, 4);
	cr_assert_eq(st.store_errors, 0);
	memento_store_close(s);
}

Test(store, a_damaged_payload_is_recomputed)
{
	damaged_is_recomputed(0); /* the payload's last byte */
}

Test(store, a_damaged_header_is_recomputed)
{
	damaged_is_recomputed(16 + 8 + 4 + 60); /* inside the header */
}

Test(store, decode_and_encode_errors_cost_a_computation)
{
	memento_store *s = open_store(0);
	struct world w = { .version = "1", .encode_fails = 1 };
	memento_stats st = run_once(s, "val", &w, 3);
	cr_assert_eq(st.creations, 3);
	cr_assert_eq(st.store_errors, 3);
	cr_assert_eq(st.store_writes, 0);
	w.encode_fails = 0;
	st = run_once(s, "val", &w, 3);
	cr_assert_eq(st.creations, 3, "nothing was stored: all recomputed");
	cr_assert_eq(st.store_writes, 3);
	w.decode_fails = 1;
	st = run_once(s, "val", &w, 3);
	cr_assert_eq(st.creations, 3);
	cr_assert_eq(st.store_errors, 3);
	cr_assert_eq(st.store_hits, 0);
	memento_store_close(s);
}

Test(store, a_read_only_store_computes_without_storing)
{
	memento_store *s = open_store(0);
	struct world w = { .version = "1" };
	run_once(s, "val", &w, 2);
	memento_store_close(s);

	s = open_store(MEMENTO_STORE_READONLY);
	memento_stats st = run_once(s, "val", &w, 4);
	cr_assert_eq(st.store_hits, 2);
	cr_assert_eq(st.creations, 2);
	cr_assert_eq(st.store_errors, 2, "a result not stored is counted");
	cr_assert_eq(st.store_writes, 0);
	memento_store_close(s);
}

/* Records much larger than the first map: it must grow, not fail. */
static int big_encode(const void *obj, memento_buf *out, void *ctx)
{
	(void)ctx;
	static unsigned char pad[64 * 1024];
	int rc = memento_buf_append(out, obj, sizeof(struct val));
	for (int i = 0; rc == 0 && i < 4; i++)
		rc = memento_buf_append(out, pad, sizeof pad);
	return rc;
}

static int big_decode(void **obj, const void *data, size_t len, void *ctx)
{
	return val_decode(obj, data, sizeof(struct val) + 0 * len, ctx);
}

Test(store, a_full_map_grows)
{
	memento_store_options so = MEMENTO_STORE_OPTIONS_INIT;
	so.flags = MEMENTO_STORE_NOSYNC;
	so.map_size = 1 << 20; /* 1 MiB; 40 records of 256 KiB need 10 */
	memento_store *s = NULL;
	cr_assert_eq(memento_store_open(&s, dir, &so), 0);
	struct world w = { .version = "1" };
	memento_cache *cache = new_cache();
	memento_class_desc d = { "big", val_key, val_create, val_destroy, &w };
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	o.store = s;
	o.encode = big_encode;
	o.decode = big_decode;
	memento_class *cls;
	cr_assert_eq(memento_class_new_with(cache, &d, &o, &cls), 0);
	for (uint64_t k = 0; k < 40; k++)
		value_of(cls, k);
	memento_stats st = stats_of(cls);
	cr_assert_eq(st.store_writes, 40, "%llu writes, %llu errors",
	             (unsigned long long)st.store_writes, (unsigned long long)st.store_errors);
	memento_cache_free(cache);
	memento_store_close(s);
}

/* ---- bad input ---------------------------------------------------------------------- */

Test(store, bad_paths_and_options_are_refused)
{
	memento_store *s = NULL;
	memento_store_options so = MEMENTO_STORE_OPTIONS_INIT;
	char path[128];
	cr_assert_eq(memento_store_open(NULL, dir, NULL), -EINVAL);
	cr_assert_eq(memento_store_open(&s, NULL, NULL), -EINVAL);
	cr_assert_eq(memento_store_open(&s, "", NULL), -EINVAL);
	so.flags = 0x80;
	cr_assert_eq(memento_store_open(&s, dir, &so), -EINVAL);
	so = (memento_store_options)MEMENTO_STORE_OPTIONS_INIT;
	so.size = 4;
	cr_assert_eq(memento_store_open(&s, dir, &so), -EINVAL);

	snprintf(path, sizeof path, "%s/no/such/dir", dir);
	cr_assert_eq(memento_store_open(&s, path, NULL), -ENOENT);
	snprintf(path, sizeof path, "%s/new", dir);
	so = (memento_store_options)MEMENTO_STORE_OPTIONS_INIT;
	so.flags = MEMENTO_STORE_READONLY;
	cr_assert_eq(memento_store_open(&s, path, &so), -ENOENT, "read-only makes nothing");
	snprintf(path, sizeof path, "%s/file", dir);
	int fd = open(path, O_CREAT | O_WRONLY, 0644);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(memento_store_open(&s, path, NULL), -ENOTDIR);

	/* A directory holding something that is not a store. */
	snprintf(path, sizeof path, "%s/junk", dir);
	cr_assert_eq(mkdir(path, 0777), 0);
	snprintf(path, sizeof path, "%s/junk/data.mdb", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "not an lmdb file, not at all; garbage bytes here", 48), 48);
	close(fd);
	snprintf(path, sizeof path, "%s/junk", dir);
	int rc = memento_store_open(&s, path, NULL);
	cr_assert_lt(rc, 0, "a garbage data file opened");

	/* One directory, once per process. */
	memento_store *a = NULL, *b = NULL;
	cr_assert_eq(memento_store_open(&a, dir, NULL), 0);
	cr_assert_eq(memento_store_open(&b, dir, NULL), -EBUSY);
	snprintf(path, sizeof path, "%s/.", dir);
	cr_assert_eq(memento_store_open(&b, path, NULL), -EBUSY, "another spelling of it");

	memento_cache *cache = new_cache();
	struct world w = { .version = "1" };
	memento_class_desc d = { "val", val_key, val_create, val_destroy, &w };
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	memento_class *cls;
	o.store = a;
	cr_assert_eq(memento_class_new_with(cache, &d, &o, &cls), -EINVAL, "no encode/decode");
	o.encode = val_encode;
	cr_assert_eq(memento_class_new_with(cache, &d, &o, &cls), -EINVAL, "no decode");
	o.decode = val_decode;
	o.flags = 0x40;
	cr_assert_eq(memento_class_new_with(cache, &d, &o, &cls), -EINVAL, "unknown flag");
	o.flags = 0;
	o.lifetime = MEMENTO_LIFETIME_GUARDED;
	o.refresh_after_ns = 1000000;
	cr_assert_eq(memento_class_new_with(cache, &d, &o, &cls), -EINVAL, "refresh with a store");
	o.refresh_after_ns = 0;
	o.lifetime = MEMENTO_LIFETIME_CACHE;
	cr_assert_eq(memento_class_new_with(cache, &d, &o, &cls), 0, "the name was taken");
	memento_cache_free(cache);
	memento_store_close(a);
	memento_store_close(NULL);
}

static int ptr_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_ptr(key, args);
}

Test(store, a_pointer_key_is_refused_and_the_cache_goes_on)
{
	memento_store *s = open_store(0);
	struct world w = { .version = "1" };
	memento_cache *cache = new_cache();
	memento_class_desc d = { "ptr", ptr_key, val_create, val_destroy, &w };
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	o.store = s;
	o.encode = val_encode;
	o.decode = val_decode;
	memento_class *cls;
	cr_assert_eq(memento_class_new_with(cache, &d, &o, &cls), 0);
	uint64_t k = 1;
	void *obj;
	cr_assert_eq(memento_get(cls, &k, &obj), -EINVAL);
	cr_assert_eq(atomic_load(&w.creations), 0);
	memento_class *ok = val_class(cache, "val", s, &w);
	cr_assert_eq(value_of(ok, 1), 1000);
	memento_cache_free(cache);
	memento_store_close(s);
}

/* ---- threads ------------------------------------------------------------------------ */

struct stampede {
	memento_class *cls;
	pthread_barrier_t *go;
	uint64_t values[8];
};

static void *stampede_thread(void *arg)
{
	struct stampede *st = arg;
	pthread_barrier_wait(st->go);
	for (uint64_t k = 0; k < 8; k++)
		st->values[k] = value_of(st->cls, k);
	return NULL;
}

Test(store, threads_asking_at_once_create_once)
{
	memento_store *s = open_store(0);
	for (int round = 0; round < 5; round++) {
		struct world w = { .version = "1", .sleep_ms = 2 };
		w.salt = (uint64_t)round; /* each round's version differs: all stale */
		char version[8];
		snprintf(version, sizeof version, "%d", round);
		w.version = version;
		memento_cache *cache = new_cache();
		memento_class *cls = val_class(cache, "val", s, &w);
		enum { N = 8 };
		pthread_t t[N];
		struct stampede st[N];
		pthread_barrier_t go;
		pthread_barrier_init(&go, NULL, N);
		for (int i = 0; i < N; i++) {
			st[i] = (struct stampede){ cls, &go, { 0 } };
			pthread_create(&t[i], NULL, stampede_thread, &st[i]);
		}
		for (int i = 0; i < N; i++)
			pthread_join(t[i], NULL);
		for (int i = 1; i < N; i++)
			cr_assert_eq(memcmp(st[i].values, st[0].values, sizeof st[0].values), 0);
		cr_assert_eq(atomic_load(&w.creations), 8);
		pthread_barrier_destroy(&go);
		memento_cache_free(cache);
	}
	memento_store_close(s);
}

/* ---- revalidation ------------------------------------------------------------------ */

/* A class whose inputs live in w->live_input, read by both callbacks. */
static int live_fingerprint(memento_key *key, const void *args, void *ctx)
{
	struct world *w = ctx;
	(void)args;
	atomic_fetch_add(&w->fingerprints, 1);
	return memento_key_u64(key, atomic_load(&w->live_input));
}

static int live_create(void **obj, const void *args, void *ctx)
{
	struct world *w = ctx;
	uint64_t input = atomic_load(&w->live_input); /* read first, as a build would */
	atomic_fetch_add(&w->creations, 1);
	if (w->sleep_ms)
		sleep_ms(w->sleep_ms);
	struct val *v = malloc(sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	v->key = *(const uint64_t *)args;
	v->value = input;
	*obj = v;
	return 0;
}

static memento_class *live_class(memento_cache *cache, memento_store *store, struct world *w,
                                 unsigned int flags, memento_lifetime lifetime)
{
	memento_class_desc d = { "live", val_key, live_create, val_destroy, w };
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	o.lifetime = lifetime;
	o.store = store;
	o.version = "1";
	o.fingerprint = live_fingerprint;
	o.encode = val_encode;
	o.decode = val_decode;
	o.flags = flags;
	memento_class *cls = NULL;
	int rc = memento_class_new_with(cache, &d, &o, &cls);
	cr_assert_eq(rc, 0, "class_new_with: %s", memento_strerror(rc));
	return cls;
}

static struct val *live_get(memento_class *cls, uint64_t k)
{
	void *obj = NULL;
	int rc = memento_get(cls, &k, &obj);
	cr_assert_eq(rc, 0, "get: %s", memento_strerror(rc));
	return obj;
}

static void revalidation_sees_a_change(memento_store *store)
{
	struct world w = { .version = "1" };
	memento_cache *cache = new_cache();
	memento_class *cls = live_class(cache, store, &w, MEMENTO_CLASS_REVALIDATE,
	                                MEMENTO_LIFETIME_CACHE);
	atomic_store(&w.live_input, 1);
	struct val *a = live_get(cls, 5);
	cr_assert_eq(live_get(cls, 5), a, "an unchanged input rebuilt the object");
	cr_assert_eq(atomic_load(&w.creations), 1);
	cr_assert_geq(atomic_load(&w.fingerprints), 2, "a hit did not check its fingerprint");
	atomic_store(&w.live_input, 2);
	struct val *b = live_get(cls, 5);
	cr_assert_neq(b, a);
	cr_assert_eq(b->value, 2);
	cr_assert_eq(a->value, 1, "the old object changed (it lives until cache_free)");
	cr_assert_eq(atomic_load(&w.creations), 2);
	cr_assert_eq(live_get(cls, 5), b);
	memento_cache_free(cache);
}

Test(store, revalidation_rebuilds_a_changed_object)
{
	revalidation_sees_a_change(NULL);
	memento_store *s = open_store(0);
	revalidation_sees_a_change(s);
	memento_store_close(s);
}

Test(store, without_revalidation_a_hit_skips_the_fingerprint)
{
	memento_store *s = open_store(0);
	struct world w = { .version = "1" };
	memento_cache *cache = new_cache();
	memento_class *cls = live_class(cache, s, &w, 0, MEMENTO_LIFETIME_CACHE);
	atomic_store(&w.live_input, 1);
	struct val *a = live_get(cls, 5);
	int calls = atomic_load(&w.fingerprints);
	atomic_store(&w.live_input, 2);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(live_get(cls, 5), a);
	cr_assert_eq(atomic_load(&w.fingerprints), calls, "a hit called the fingerprint");
	memento_cache_free(cache);
	memento_store_close(s);
}

Test(store, revalidation_needs_a_fingerprint_and_no_refresh)
{
	struct world w = { .version = "1" };
	memento_cache *cache = new_cache();
	memento_class_desc d = { "live", val_key, live_create, val_destroy, &w };
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	memento_class *cls;
	o.flags = MEMENTO_CLASS_REVALIDATE;
	cr_assert_eq(memento_class_new_with(cache, &d, &o, &cls), -EINVAL);
	o.fingerprint = live_fingerprint;
	o.lifetime = MEMENTO_LIFETIME_GUARDED;
	o.refresh_after_ns = 1000000;
	cr_assert_eq(memento_class_new_with(cache, &d, &o, &cls), -EINVAL);
	o.refresh_after_ns = 0;
	cr_assert_eq(memento_class_new_with(cache, &d, &o, &cls), 0);
	memento_cache_free(cache);
}

struct reval_thread {
	memento_class *cls;
	pthread_barrier_t *go;
	int rounds;
	struct val *got[400];
	memento_cache *cache; /* guarded: each get inside a guard */
};

static void *reval_thread(void *arg)
{
	struct reval_thread *t = arg;
	for (int r = 0; r < t->rounds; r++) {
		pthread_barrier_wait(t->go); /* the input changed */
		if (t->cache != NULL)
			memento_guard_enter(t->cache);
		struct val *v = live_get(t->cls, 1);
		t->got[r] = v;
		if (t->cache != NULL) {
			/* Inside the guard the object must still be whole. */
			cr_assert_eq(v->key, 1);
			memento_guard_leave(t->cache);
		}
		pthread_barrier_wait(t->go); /* all got it */
	}
	return NULL;
}

/* Rounds of N threads that see the input change together.  With a slow
 * create they all find the rebuild in flight; with an instant one, some
 * find it done when they reach the shard lock, and must not rebuild it
 * again. */
static void revalidation_stampedes(memento_lifetime lifetime, int create_ms, int ROUNDS)
{
	enum { N = 8 };
	struct world w = { .version = "1", .sleep_ms = create_ms };
	memento_cache *cache = new_cache();
	memento_class *cls = live_class(cache, NULL, &w, MEMENTO_CLASS_REVALIDATE, lifetime);
	bool guarded = lifetime == MEMENTO_LIFETIME_GUARDED;
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, N + 1);
	pthread_t t[N];
	struct reval_thread rt[N];
	for (int i = 0; i < N; i++) {
		rt[i] = (struct reval_thread){ cls, &go, ROUNDS, { 0 }, guarded ? cache : NULL };
		pthread_create(&t[i], NULL, reval_thread, &rt[i]);
	}
	for (int r = 0; r < ROUNDS; r++) {
		atomic_store(&w.live_input, (uint64_t)r + 100);
		pthread_barrier_wait(&go);
		pthread_barrier_wait(&go);
		cr_assert_eq(atomic_load(&w.creations), r + 1, "round %d: %d creations", r,
		             atomic_load(&w.creations));
		if (!guarded) {
			for (int i = 0; i < N; i++) {
				cr_assert_eq(rt[i].got[r], rt[0].got[r], "two objects in one round");
				cr_assert_eq(rt[i].got[r]->value, (uint64_t)r + 100);
			}
		}
	}
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&go);
	if (guarded) {
		/* Every replaced object was handled as a forget: destroyed. */
		memento_cache_barrier(cache);
		cr_assert_eq(atomic_load(&w.destroys), ROUNDS - 1);
	}
	memento_cache_free(cache);
}

Test(store, threads_seeing_a_change_rebuild_once)
{
	revalidation_stampedes(MEMENTO_LIFETIME_CACHE, 1, 20);
	revalidation_stampedes(MEMENTO_LIFETIME_CACHE, 0, 400);
}

Test(store, a_guarded_class_destroys_what_revalidation_replaced)
{
	revalidation_stampedes(MEMENTO_LIFETIME_GUARDED, 1, 20);
	revalidation_stampedes(MEMENTO_LIFETIME_GUARDED, 0, 400);
}

/* ---- a full disk, a store closed too early ---------------------------------------- */

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* In a child whose files may not grow past what the store has now: big
 * records cannot be written, every get still returns the right object,
 * each refusal is counted, and what could be stored still reads back. */
static int full_disk_child(void)
{
	memento_store *s = NULL;
	if (memento_store_open(&s, dir, NULL) != 0)
		return 10;
	struct world w = { .version = "1" };
	memento_cache *cache = new_cache();
	memento_class_desc d = { "big", val_key, val_create, val_destroy, &w };
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	o.store = s;
	o.encode = big_encode;
	o.decode = big_decode;
	memento_class *cls;
	if (memento_class_new_with(cache, &d, &o, &cls) != 0)
		return 11;
	signal(SIGXFSZ, SIG_IGN); /* writes past the limit fail with EFBIG */
	struct rlimit lim = { 1 << 20, 1 << 20 };
	if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
		return 12;
	for (uint64_t k = 0; k < 16; k++) {
		void *obj;
		if (memento_get(cls, &k, &obj) != 0 || ((struct val *)obj)->value != k * 1000)
			return 13;
	}
	memento_stats st;
	memento_class_stats(cls, &st);
	if (st.store_errors == 0 || st.store_writes + st.store_errors != 16 || st.creations != 16)
		return 14;
	memento_cache_free(cache);
	/* What was written reads back. */
	cache = new_cache();
	if (memento_class_new_with(cache, &d, &o, &cls) != 0)
		return 15;
	for (uint64_t k = 0; k < 16; k++) {
		void *obj;
		if (memento_get(cls, &k, &obj) != 0 || ((struct val *)obj)->value != k * 1000)
			return 16;
	}
	memento_stats again;
	memento_class_stats(cls, &again);
	if (again.store_hits < st.store_writes)
		return 17;
	memento_cache_free(cache);
	memento_store_close(s);
	return 0;
}

Test(store, a_full_disk_costs_writes_not_results)
{
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(full_disk_child());
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "the child died (signal %d)",
	          WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	cr_assert_eq(WEXITSTATUS(status), 0, "the child failed at step %d", WEXITSTATUS(status));
}

#ifndef NDEBUG
Test(store, closing_a_store_in_use_is_caught_in_debug_builds)
{
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		memento_store *s = NULL;
		struct world w = { .version = "1" };
		memento_cache *cache;
		if (memento_store_open(&s, dir, NULL) != 0 || memento_cache_new(&cache) != 0)
			_exit(1);
		memento_class_desc d = { "val", val_key, val_create, val_destroy, &w };
		memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
		o.store = s;
		o.encode = val_encode;
		o.decode = val_decode;
		memento_class *cls;
		if (memento_class_new_with(cache, &d, &o, &cls) != 0)
			_exit(2);
		signal(SIGABRT, SIG_DFL);
		memento_store_close(s); /* the cache still uses it */
		_exit(3);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
	          "no assertion: status %d", status);
}
#endif

Test(store, an_unwritable_directory_is_refused)
{
	if (geteuid() == 0) {
		/* Root writes anywhere; a path under /proc cannot be made. */
		memento_store *s = NULL;
		int rc = memento_store_open(&s, "/proc/mementos-no-such-store", NULL);
		cr_assert_lt(rc, 0);
		return;
	}
	char path[128];
	snprintf(path, sizeof path, "%s/ro", dir);
	cr_assert_eq(mkdir(path, 0555), 0);
	memento_store *s = NULL;
	cr_assert_eq(memento_store_open(&s, path, NULL), -EACCES);
}

/* A revalidating get that finds a creation in flight made from older
 * inputs must not take its object. */
struct slow_get {
	memento_class *cls;
	struct val *got;
};

static void *slow_get(void *arg)
{
	struct slow_get *g = arg;
	g->got = live_get(g->cls, 7);
	return NULL;
}

Test(store, a_revalidating_get_skips_a_creation_from_older_inputs)
{
	struct world w = { .version = "1", .sleep_ms = 150 };
	memento_cache *cache = new_cache();
	memento_class *cls = live_class(cache, NULL, &w, MEMENTO_CLASS_REVALIDATE,
	                                MEMENTO_LIFETIME_CACHE);
	atomic_store(&w.live_input, 1);
	struct slow_get g = { cls, NULL };
	pthread_t t;
	pthread_create(&t, NULL, slow_get, &g);
	while (atomic_load(&w.creations) == 0)
		sleep_ms(1);
	/* The creation from input 1 is in flight; the input changes. */
	atomic_store(&w.live_input, 2);
	struct val *now = live_get(cls, 7);
	pthread_join(t, NULL);
	cr_assert_eq(now->value, 2, "got the object made from input %llu",
	             (unsigned long long)now->value);
	cr_assert_eq(g.got->value, 1);
	cr_assert_eq(atomic_load(&w.creations), 2);
	cr_assert_eq(live_get(cls, 7), now);
	memento_cache_free(cache);
}
