/*
 * store_bench: the persistent store (lib/store/) measured against what the
 * same work costs done by hand, as ratios against a reference measured in
 * the same run.  Medians over rounds; the two sides of each comparison run
 * in alternating order (A B, B A, ...) so that the noise and drift of a
 * shared VM fall on both.
 *
 *   store_hit   a memento_get that misses memory and finds its record in
 *               the store (fingerprint, read, checks, decode, publish),
 *               against the floor: mdb_txn_renew of a reset read txn,
 *               mdb_get, the same decode, mdb_txn_reset; payloads of 64 and
 *               4096 bytes.  Two rows explain the gap: floor+parse adds
 *               the record's checks (record.c compiled in), and
 *               memory-miss+decode is a memory-only class's miss whose
 *               create is the same decode (the cache's side, no store).
 *   memory_hit  a memory hit on a persisted class against one on a
 *               memory-only class: same key function, same objects.
 *   wakeup      processes blocked in memento_get on a key that another
 *               process is creating: how long after the creation they
 *               return (p50, worst), with a NOSYNC and a durable store.
 *   write       records/s creating distinct keys (256-byte encode) through
 *               mementos, against raw LMDB's one-put-per-commit rate with
 *               the same value size and flags; fsync-family calls per write.
 *
 * The executable defines fdatasync, fsync, msync and pwrite: liblmdb's
 * calls bind to these (the executable comes first in symbol lookup), which
 * count and then make the system call themselves.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#define _GNU_SOURCE /* O_DSYNC, syscall, mkdtemp */
#define BENCH_NAME "store_bench"

#include <mementos.h>

#include "bench_blob.h"
#include "bench_cli.h"
#include "bench_util.h"

#include "record.h" /* lib/store/record.h: the layout, and the parse for floor+parse */

#include <lmdb.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAP_SIZE ((uint64_t)256 << 20)
#define STORE_KEY_LEN 24 /* lib/internal.h: 8 bytes of name hash, 16 of key hash */
#define WAKE_MAXP 16

/* ---- interposed sync calls ------------------------------------------------------ */

/* Counted in every process; read only by the one that ran the writes. */
static atomic_ulong n_fdatasync, n_fsync, n_msync, n_dsync_pwrite;
/* Checking each pwrite's descriptor for O_DSYNC costs a system call, so
 * it is done only in the untimed counting pass. */
static atomic_bool count_dsync;

#define INTERPOSE __attribute__((visibility("default")))

INTERPOSE int fdatasync(int fd);
INTERPOSE int fsync(int fd);
INTERPOSE int msync(void *addr, size_t len, int flags);
INTERPOSE ssize_t pwrite(int fd, const void *buf, size_t n, off_t off);

/* syscall() sets errno and returns -1 as the libc wrappers do. */
int fdatasync(int fd)
{
	atomic_fetch_add_explicit(&n_fdatasync, 1, memory_order_relaxed);
	return (int)syscall(SYS_fdatasync, fd);
}

int fsync(int fd)
{
	atomic_fetch_add_explicit(&n_fsync, 1, memory_order_relaxed);
	return (int)syscall(SYS_fsync, fd);
}

int msync(void *addr, size_t len, int flags)
{
	atomic_fetch_add_explicit(&n_msync, 1, memory_order_relaxed);
	return (int)syscall(SYS_msync, addr, len, flags);
}

/* LMDB writes its meta page with pwrite on a second descriptor opened
 * O_DSYNC: a synchronous write that is a device flush of its own, though
 * not an fsync call. */
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (atomic_load_explicit(&count_dsync, memory_order_relaxed)) {
		int fl = fcntl(fd, F_GETFL);
		if (fl >= 0 && (fl & O_DSYNC) == O_DSYNC)
			atomic_fetch_add_explicit(&n_dsync_pwrite, 1, memory_order_relaxed);
	}
	return (ssize_t)syscall(SYS_pwrite64, fd, buf, n, off);
}

struct sync_counts {
	unsigned long fdatasync, fsync, msync, dsync_pwrite;
};

static struct sync_counts sync_counts_now(void)
{
	return (struct sync_counts){
		atomic_load(&n_fdatasync), atomic_load(&n_fsync), atomic_load(&n_msync),
		atomic_load(&n_dsync_pwrite),
	};
}

static struct sync_counts sync_counts_since(struct sync_counts a)
{
	struct sync_counts b = sync_counts_now();
	return (struct sync_counts){ b.fdatasync - a.fdatasync, b.fsync - a.fsync,
		                     b.msync - a.msync, b.dsync_pwrite - a.dsync_pwrite };
}

/* ---- helpers --------------------------------------------------------------------------- */

/* An LMDB call's failure, and a floor's get's: LMDB's code, or a negative
 * errno (the record's checks, the decode). */
static void die_mdb(const char *what, int rc)
{
	if (rc != 0) {
		fprintf(stderr, "store_bench: %s: %s\n", what,
		        rc < 0 ? memento_strerror(rc) : mdb_strerror(rc));
		exit(1);
	}
}

static uint32_t get_u32(const unsigned char *at)
{
	return (uint32_t)at[0] | (uint32_t)at[1] << 8 | (uint32_t)at[2] << 16 |
	       (uint32_t)at[3] << 24;
}

static uint64_t get_u64(const unsigned char *at)
{
	return (uint64_t)get_u32(at) | (uint64_t)get_u32(at + 4) << 32;
}

static const char *fs_name(const char *path)
{
	struct statfs st;
	if (statfs(path, &st) != 0)
		return "?";
	switch ((unsigned long)st.f_type) {
	case 0xEF53UL:
		return "ext4";
	case 0x01021994UL:
		return "tmpfs";
	case 0x58465342UL:
		return "xfs";
	case 0x9123683EUL:
		return "btrfs";
	case 0x794c7630UL:
		return "overlayfs";
	default:
		return "other";
	}
}

/* ---- configuration ------------------------------------------------------------------------ */

struct config {
	int rounds;
	/* store_hit */
	size_t hit_keys, hit_passes;
	/* memory_hit */
	size_t mem_keys, mem_ops;
	/* wakeup */
	int wake_rounds, wake_waiters;
	/* write */
	size_t write_nosync, write_durable;
	size_t payload_only; /* store_hit: 0, or the one payload size to run */
	bool quick;
};

/* ---- store_hit ------------------------------------------------------------------------------ */

/* One payload size: its keys, access order, and the floor's LMDB keys. */
struct hit_set {
	const char *name; /* the class name, "hit64" */
	struct hit_world world;
	size_t n;
	struct hit_args *args;
	uint32_t *order;                    /* shuffled [0, n): both sides' order */
	unsigned char (*lkey)[STORE_KEY_LEN]; /* by index: the record's LMDB key */
	unsigned char (*ident)[16];          /* by index: the memento key bytes */
	unsigned char *payloads;             /* by index: the payload, in memory */
	bool *seen;
};

/* A raw LMDB environment as the store opens one: MDB_NOTLS, two named
 * databases, the same map size. */
struct rawdb {
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *rtxn; /* a reset read transaction, for renew */
};

static void rawdb_open(struct rawdb *db, const char *path, unsigned int flags, bool read_txn)
{
	die_mdb("mdb_env_create", mdb_env_create(&db->env));
	die_mdb("set_maxdbs", mdb_env_set_maxdbs(db->env, 2));
	die_mdb("set_mapsize", mdb_env_set_mapsize(db->env, (size_t)MAP_SIZE));
	die_mdb("mdb_env_open", mdb_env_open(db->env, path, MDB_NOTLS | flags, 0644));
	MDB_txn *txn;
	die_mdb("txn_begin", mdb_txn_begin(db->env, NULL, 0, &txn));
	die_mdb("dbi_open", mdb_dbi_open(txn, "results", MDB_CREATE, &db->dbi));
	die_mdb("commit", mdb_txn_commit(txn));
	db->rtxn = NULL;
	if (read_txn) {
		die_mdb("txn_begin ro", mdb_txn_begin(db->env, NULL, MDB_RDONLY, &db->rtxn));
		mdb_txn_reset(db->rtxn);
	}
}

static void rawdb_close(struct rawdb *db)
{
	if (db->rtxn != NULL)
		mdb_txn_abort(db->rtxn);
	mdb_env_close(db->env);
}

static void hit_set_make(struct hit_set *s, const char *name, size_t payload, size_t n,
                         uint64_t seed)
{
	memset(s, 0, sizeof *s);
	s->name = name;
	s->world.payload = payload;
	s->n = n;
	s->args = calloc(n, sizeof *s->args);
	s->order = calloc(n, sizeof *s->order);
	s->lkey = calloc(n, sizeof *s->lkey);
	s->ident = calloc(n, sizeof *s->ident);
	s->seen = calloc(n, sizeof *s->seen);
	s->payloads = malloc(n * payload);
	if (!s->args || !s->order || !s->lkey || !s->ident || !s->seen || !s->payloads)
		die("calloc", -ENOMEM);
	hit_keys_make(s->args, s->order, s->ident, n, seed);
}

static void hit_set_free(struct hit_set *s)
{
	free(s->args);
	free(s->order);
	free(s->lkey);
	free(s->ident);
	free(s->seen);
	free(s->payloads);
}

/* Where a record's payload starts, checked against its size. */
static int record_payload(const MDB_val *v, const unsigned char **payload, size_t *len)
{
	const unsigned char *p = v->mv_data;
	if (v->mv_size < MEMENTO__RECORD_HEADER)
		return -EIO;
	size_t at = (size_t)MEMENTO__RECORD_HEADER + get_u32(p + 56) + get_u32(p + 60);
	uint64_t plen = get_u64(p + 64);
	if (at > v->mv_size || plen != v->mv_size - at)
		return -EIO;
	*payload = p + at;
	*len = (size_t)plen;
	return 0;
}

/*
 * The floor of a store hit.  noinline: memento_get is a call into a
 * shared library, so the floor must not win by being inlined.
 */
__attribute__((noinline)) static int floor_get(struct rawdb *db, const unsigned char *lkey,
                                               void **obj, void *ctx)
{
	int rc = mdb_txn_renew(db->rtxn);
	if (rc != 0)
		return rc;
	MDB_val k = { STORE_KEY_LEN, (void *)lkey }, v;
	rc = mdb_get(db->rtxn, db->dbi, &k, &v);
	if (rc == 0) {
		const unsigned char *payload;
		size_t len;
		rc = record_payload(&v, &payload, &len);
		if (rc == 0)
			rc = hit_decode(obj, payload, len, ctx);
	}
	mdb_txn_reset(db->rtxn);
	return rc;
}

/* The floor plus what the library checks on every read: the record's
 * checksum and payload digest (memento__record_parse, the library's own
 * code compiled in), and the identity (name and key bytes). */
__attribute__((noinline)) static int floor_parse_get(struct rawdb *db, const unsigned char *lkey,
                                                     const char *name,
                                                     const unsigned char *ident, void **obj,
                                                     void *ctx)
{
	int rc = mdb_txn_renew(db->rtxn);
	if (rc != 0)
		return rc;
	MDB_val k = { STORE_KEY_LEN, (void *)lkey }, v;
	rc = mdb_get(db->rtxn, db->dbi, &k, &v);
	if (rc == 0) {
		struct memento__record r;
		size_t name_len = strlen(name);
		if (memento__record_parse(v.mv_data, v.mv_size, &r) != MEMENTO__RECORD_OK ||
		    r.name_len != name_len || memcmp(r.name, name, name_len) != 0 ||
		    r.key_len != 16 || memcmp(r.key, ident, 16) != 0)
			rc = -EIO;
		else
			rc = hit_decode(obj, r.payload, (size_t)r.payload_len, ctx);
	}
	mdb_txn_reset(db->rtxn);
	return rc;
}

/* A store-hit round: `passes` fresh caches, each getting every key once
 * (all memory misses, all store hits).  Only the gets are timed. */
static double time_store_hits(memento_store *store, struct hit_set *s, size_t passes)
{
	uint64_t total = 0;
	for (size_t p = 0; p < passes; p++) {
		memento_cache *cache = new_cache(s->n, 0);
		memento_class *cls = hit_class(cache, s->name, store, &s->world);
		uint64_t t0 = now_ns();
		for (size_t i = 0; i < s->n; i++) {
			void *obj;
			int rc = memento_get(cls, &s->args[s->order[i]], &obj);
			if (rc != 0)
				die("memento_get (store hit)", rc);
		}
		total += now_ns() - t0;
		memento_stats st;
		memento_class_stats(cls, &st);
		if (st.store_hits != s->n || st.creations != 0 || st.store_errors != 0)
			die("store hits: not every get was a store hit", -EPROTO);
		memento_cache_free(cache);
	}
	return (double)total / (double)(passes * s->n);
}

/* A memory-only class whose create is the same decode, of the same bytes
 * held in memory: what the memory side of a store hit costs (key, table
 * miss, entry, publish) with no store at all. */
static int miss_create(void **obj, const void *args, void *ctx)
{
	const struct hit_set *s = ctx;
	uint64_t i = ((const struct hit_args *)args)->index;
	return hit_decode(obj, s->payloads + i * s->world.payload, s->world.payload, NULL);
}

static double time_miss_decode(struct hit_set *s, size_t passes)
{
	uint64_t total = 0;
	for (size_t p = 0; p < passes; p++) {
		memento_cache *cache = new_cache(s->n, 0);
		memento_class_desc d = { s->name, hit_key, miss_create, hit_destroy, s };
		memento_class *cls;
		int rc = memento_class_new(cache, &d, &cls);
		if (rc != 0)
			die("memento_class_new", rc);
		uint64_t t0 = now_ns();
		for (size_t i = 0; i < s->n; i++) {
			void *obj;
			rc = memento_get(cls, &s->args[s->order[i]], &obj);
			if (rc != 0)
				die("memento_get (miss)", rc);
		}
		total += now_ns() - t0;
		memento_cache_free(cache);
	}
	return (double)total / (double)(passes * s->n);
}

/* The floor's round: the same passes, keys and order; the decoded objects
 * are kept and freed after the pass, untimed, as the cache's are. */
static double time_floor(struct rawdb *db, struct hit_set *s, size_t passes, bool parse)
{
	void **objs = malloc(s->n * sizeof *objs);
	if (objs == NULL)
		die("malloc", -ENOMEM);
	uint64_t total = 0;
	for (size_t p = 0; p < passes; p++) {
		uint64_t t0 = now_ns();
		if (parse) {
			for (size_t i = 0; i < s->n; i++) {
				uint32_t k = s->order[i];
				int rc = floor_parse_get(db, s->lkey[k], s->name, s->ident[k], &objs[i],
				                         &s->world);
				die_mdb("floor_parse_get", rc);
			}
		} else {
			for (size_t i = 0; i < s->n; i++) {
				int rc = floor_get(db, s->lkey[s->order[i]], &objs[i], &s->world);
				die_mdb("floor_get", rc);
			}
		}
		total += now_ns() - t0;
		for (size_t i = 0; i < s->n; i++)
			free(objs[i]);
	}
	free(objs);
	return (double)total / (double)(passes * s->n);
}

/*
 * Where the floor reads from.  Not the store's own directory: an LMDB
 * environment must not be opened twice in one process, and closing the
 * store and reopening its directory raw for every floor round would give
 * each round a fresh map (minor page faults on first touch) and would
 * forbid alternating the two sides.  So the records are copied, byte for
 * byte and in the order the store received them, into a second directory
 * written by raw LMDB: the same keys, the same values, the same named
 * database and the same insertion sequence, hence the same B-tree shape.
 * The copy is read while the store is closed (the one moment its
 * directory is opened raw).
 */
static void copy_records(const char *from, const char *to, struct hit_set *sets, int nsets)
{
	struct rawdb src, dst;
	rawdb_open(&src, from, MDB_NOSYNC, false);
	MDB_txn *rt;
	MDB_cursor *cur;
	die_mdb("txn_begin", mdb_txn_begin(src.env, NULL, MDB_RDONLY, &rt));
	die_mdb("cursor_open", mdb_cursor_open(rt, src.dbi, &cur));
	/* Read everything first: by set and index, so that the copy is
	 * written in the fill's order. */
	size_t total = 0;
	for (int i = 0; i < nsets; i++)
		total += sets[i].n;
	MDB_val *vals = calloc(total, sizeof *vals);
	if (vals == NULL)
		die("calloc", -ENOMEM);
	MDB_val k, v;
	size_t found = 0;
	int rc;
	while ((rc = mdb_cursor_get(cur, &k, &v, found == 0 ? MDB_FIRST : MDB_NEXT)) == 0) {
		const unsigned char *p = v.mv_data, *payload;
		size_t plen;
		if (k.mv_size != STORE_KEY_LEN || record_payload(&v, &payload, &plen) != 0)
			die("copy: not a record", -EIO);
		uint32_t name_len = get_u32(p + 56);
		size_t base = 0;
		int which = -1;
		for (int i = 0; i < nsets; i++) {
			if (strlen(sets[i].name) == name_len &&
			    memcmp(p + MEMENTO__RECORD_HEADER, sets[i].name, name_len) == 0) {
				which = i;
				break;
			}
			base += sets[i].n;
		}
		uint64_t index;
		memcpy(&index, payload, sizeof index);
		if (which < 0 || plen != sets[which].world.payload || index >= sets[which].n ||
		    sets[which].seen[index])
			die("copy: unexpected record", -EIO);
		struct hit_set *s = &sets[which];
		s->seen[index] = true;
		memcpy(s->lkey[index], k.mv_data, STORE_KEY_LEN);
		memcpy(s->payloads + index * plen, payload, plen);
		vals[base + index].mv_size = v.mv_size;
		vals[base + index].mv_data = malloc(v.mv_size);
		if (vals[base + index].mv_data == NULL)
			die("malloc", -ENOMEM);
		memcpy(vals[base + index].mv_data, v.mv_data, v.mv_size);
		found++;
	}
	if (rc != MDB_NOTFOUND || found != total)
		die("copy: records missing", -EIO);
	mdb_cursor_close(cur);
	mdb_txn_abort(rt);
	rawdb_close(&src);

	rawdb_open(&dst, to, MDB_NOSYNC, false);
	MDB_txn *wt;
	die_mdb("txn_begin", mdb_txn_begin(dst.env, NULL, 0, &wt));
	size_t at = 0;
	for (int i = 0; i < nsets; i++) {
		for (size_t j = 0; j < sets[i].n; j++, at++) {
			MDB_val kk = { STORE_KEY_LEN, sets[i].lkey[j] };
			die_mdb("put", mdb_put(wt, dst.dbi, &kk, &vals[at], 0));
			free(vals[at].mv_data);
		}
	}
	die_mdb("commit", mdb_txn_commit(wt));
	rawdb_close(&dst);
	free(vals);
}

static void bench_store_hit(const struct config *cfg)
{
	struct hit_set sets[2];
	hit_set_make(&sets[0], "hit64", 64, cfg->hit_keys, 1);
	hit_set_make(&sets[1], "hit4096", 4096, cfg->hit_keys, 2);
	char *store_dir = subdir("hit-store"), *floor_dir = subdir("hit-floor");
	memento_store_options so = MEMENTO_STORE_OPTIONS_INIT;
	so.map_size = MAP_SIZE;
	so.flags = MEMENTO_STORE_NOSYNC; /* only the fill writes; reads are the same */

	/* The fill: every key created once, in index order, and written. */
	fprintf(stderr, "store_hit: filling %zu keys x 2 sizes\n", cfg->hit_keys);
	memento_store *store;
	int rc = memento_store_open(&store, store_dir, &so);
	if (rc != 0)
		die("memento_store_open", rc);
	memento_cache *cache = new_cache(2 * cfg->hit_keys, 0);
	for (int i = 0; i < 2; i++)
		hit_fill(cache, sets[i].name, store, &sets[i].world, sets[i].args, sets[i].n);
	memento_cache_free(cache);
	memento_store_close(store);
	copy_records(store_dir, floor_dir, sets, 2);

	rc = memento_store_open(&store, store_dir, &so);
	if (rc != 0)
		die("memento_store_open", rc);
	struct rawdb floor;
	rawdb_open(&floor, floor_dir, MDB_NOSYNC, true);

	for (int i = 0; i < 2; i++) {
		struct hit_set *s = &sets[i];
		if (cfg->payload_only != 0 && cfg->payload_only != s->world.payload)
			continue;
		/* Untimed: both sides' maps touched, the read txn pool filled,
		 * and each side's objects checked against the payload. */
		(void)time_store_hits(store, s, 1);
		(void)time_floor(&floor, s, 1, false);
		(void)time_floor(&floor, s, 1, true);
		(void)time_miss_decode(s, 1);

		fprintf(stderr, "store_hit %s: %d rounds of %zu gets per side\n", s->name, cfg->rounds,
		        cfg->hit_passes * s->n);
		/* Each round interleaves its passes too (one pass of each side,
		 * order flipped every pass), so that a burst of noise lands on
		 * every side rather than on one side's whole round. */
		double m[cfg->rounds], f[cfg->rounds], fp[cfg->rounds], md[cfg->rounds];
		double np = (double)cfg->hit_passes;
		for (int r = 0; r < cfg->rounds; r++) {
			m[r] = f[r] = fp[r] = md[r] = 0;
			for (size_t k = 0; k < cfg->hit_passes; k++) {
				if (((size_t)r + k) % 2 == 0) {
					m[r] += time_store_hits(store, s, 1) / np;
					f[r] += time_floor(&floor, s, 1, false) / np;
					fp[r] += time_floor(&floor, s, 1, true) / np;
					md[r] += time_miss_decode(s, 1) / np;
				} else {
					md[r] += time_miss_decode(s, 1) / np;
					fp[r] += time_floor(&floor, s, 1, true) / np;
					f[r] += time_floor(&floor, s, 1, false) / np;
					m[r] += time_store_hits(store, s, 1) / np;
				}
			}
			fprintf(stderr,
			        "  round %d: mementos %.0f  floor %.0f  floor+parse %.0f  "
			        "memory-miss+decode %.0f ns\n",
			        r, m[r], f[r], fp[r], md[r]);
		}
		double mm = median_of(m, cfg->rounds), fm = median_of(f, cfg->rounds),
		       fpm = median_of(fp, cfg->rounds), mdm = median_of(md, cfg->rounds);
		char v[40], ref[40];
		snprintf(ref, sizeof ref, "floor-%zuB", s->world.payload);
		snprintf(v, sizeof v, "mementos-%zuB", s->world.payload);
		add_row("store_hit", v, "median", mm, "ns/op", mm / fm, ref, cfg->rounds);
		add_row("store_hit", ref, "median", fm, "ns/op", NAN, NULL, cfg->rounds);
		snprintf(v, sizeof v, "floor+parse-%zuB", s->world.payload);
		add_row("store_hit", v, "median", fpm, "ns/op", fpm / fm, ref, cfg->rounds);
		snprintf(v, sizeof v, "mementos-%zuB", s->world.payload);
		char ref2[40];
		snprintf(ref2, sizeof ref2, "floor+parse-%zuB", s->world.payload);
		add_row("store_hit", v, "vs_parse", mm, "ns/op", mm / fpm, ref2, cfg->rounds);
		/* Not a floor: a memory-only miss whose create is the decode. */
		snprintf(v, sizeof v, "memory-miss+decode-%zuB", s->world.payload);
		add_row("store_hit", v, "median", mdm, "ns/op", mdm / fm, ref, cfg->rounds);
	}
	rawdb_close(&floor);
	memento_store_close(store);
	remove_dir(store_dir);
	remove_dir(floor_dir);
	free(store_dir);
	free(floor_dir);
	hit_set_free(&sets[0]);
	hit_set_free(&sets[1]);
}

/* ---- memory_hit ---------------------------------------------------------------------------- */

/* Both classes' objects: create hands out &objs[index], so the persisted
 * and the memory-only class return the very same pointers. */
struct mem_world {
	struct hit_args *args;
	uint64_t *objs;
	size_t n;
};

static int mem_create(void **obj, const void *args, void *ctx)
{
	struct mem_world *w = ctx;
	*obj = &w->objs[((const struct hit_args *)args)->index];
	return 0;
}

static int mem_encode(const void *obj, memento_buf *out, void *ctx)
{
	(void)ctx;
	unsigned char b[64] = { 0 };
	memcpy(b, obj, sizeof(uint64_t));
	return memento_buf_append(out, b, sizeof b);
}

static int mem_decode(void **obj, const void *data, size_t len, void *ctx)
{
	struct mem_world *w = ctx;
	uint64_t index;
	if (len != 64)
		return -EBADMSG;
	memcpy(&index, data, sizeof index);
	if (index >= w->n)
		return -EBADMSG;
	*obj = &w->objs[index];
	return 0;
}

static double time_mem_hits(memento_class *cls, const struct hit_set *s, size_t start,
                            size_t ops)
{
	static volatile uintptr_t sink;
	uintptr_t acc = 0;
	uint64_t t0 = now_ns();
	/* In runs along the shuffled order, so that no division is timed. */
	for (size_t done = 0, pos = start % s->n; done < ops; pos = 0) {
		size_t end = s->n - pos < ops - done ? s->n : pos + (ops - done);
		done += end - pos;
		for (; pos < end; pos++) {
			void *obj;
			int rc = memento_get(cls, &s->args[s->order[pos]], &obj);
			if (rc != 0)
				die("memento_get (memory hit)", rc);
			acc += (uintptr_t)obj;
		}
	}
	uint64_t t1 = now_ns();
	sink += acc;
	return (double)(t1 - t0) / (double)ops;
}

static void bench_memory_hit(const struct config *cfg)
{
	struct hit_set s;
	hit_set_make(&s, "mem", 64, cfg->mem_keys, 3);
	struct mem_world w = { s.args, calloc(s.n, sizeof(uint64_t)), s.n };
	if (w.objs == NULL)
		die("calloc", -ENOMEM);
	for (size_t i = 0; i < s.n; i++)
		w.objs[i] = i;
	char *dir = subdir("memhit");
	memento_store_options so = MEMENTO_STORE_OPTIONS_INIT;
	so.map_size = MAP_SIZE;
	so.flags = MEMENTO_STORE_NOSYNC;
	memento_store *store;
	int rc = memento_store_open(&store, dir, &so);
	if (rc != 0)
		die("memento_store_open", rc);

	/* Two caches with the same options, seed and class name: the same
	 * table layout for the same keys; only the class's store differs. */
	memento_cache *pc = new_cache(s.n, 0), *mc = new_cache(s.n, 0);
	memento_class_desc d = { "mem", hit_key, mem_create, NULL, &w };
	memento_class_options po = MEMENTO_CLASS_OPTIONS_INIT;
	po.store = store;
	po.version = "1";
	po.encode = mem_encode;
	po.decode = mem_decode;
	memento_class *pcls, *mcls;
	if ((rc = memento_class_new_with(pc, &d, &po, &pcls)) != 0 ||
	    (rc = memento_class_new(mc, &d, &mcls)) != 0)
		die("memento_class_new", rc);
	fprintf(stderr, "memory_hit: filling %zu keys\n", s.n);
	for (size_t i = 0; i < s.n; i++) {
		void *a, *b;
		if ((rc = memento_get(pcls, &s.args[i], &a)) != 0 ||
		    (rc = memento_get(mcls, &s.args[i], &b)) != 0)
			die("memento_get (fill)", rc);
		if (a != b || a != &w.objs[i])
			die("memory_hit: the two classes disagree", -EPROTO);
	}
	(void)time_mem_hits(pcls, &s, 0, s.n);
	(void)time_mem_hits(mcls, &s, 0, s.n);

	fprintf(stderr, "memory_hit: %d rounds of %zu gets per side, in 16 slices\n", cfg->rounds,
	        cfg->mem_ops);
	/* A round is MEM_SLICES slices per side, alternating A B B A ...: a
	 * burst of noise (a neighbour, an interrupt) lands on both sides
	 * instead of on one side's whole round. */
	enum { MEM_SLICES = 16 };
	size_t slice = cfg->mem_ops / MEM_SLICES;
	double p[cfg->rounds], m[cfg->rounds];
	for (int r = 0; r < cfg->rounds; r++) {
		p[r] = m[r] = 0;
		for (int k = 0; k < MEM_SLICES; k++) {
			size_t start = ((size_t)r * MEM_SLICES + (size_t)k) * slice;
			if ((r + k) % 2 == 0) {
				p[r] += time_mem_hits(pcls, &s, start, slice) / MEM_SLICES;
				m[r] += time_mem_hits(mcls, &s, start, slice) / MEM_SLICES;
			} else {
				m[r] += time_mem_hits(mcls, &s, start, slice) / MEM_SLICES;
				p[r] += time_mem_hits(pcls, &s, start, slice) / MEM_SLICES;
			}
		}
		fprintf(stderr, "  round %d: persisted %.2f  memory-only %.2f ns\n", r, p[r], m[r]);
	}
	memento_stats st;
	memento_class_stats(pcls, &st);
	if (st.creations != s.n || st.store_hits != 0 || st.store_writes != s.n)
		die("memory_hit: the persisted class touched the store on a hit", -EPROTO);
	double pm = median_of(p, cfg->rounds), mm = median_of(m, cfg->rounds);
	add_row("memory_hit", "persisted", "median", pm, "ns/op", pm / mm, "memory-only", cfg->rounds);
	add_row("memory_hit", "memory-only", "median", mm, "ns/op", NAN, NULL, cfg->rounds);
	memento_cache_free(pc);
	memento_cache_free(mc);
	memento_store_close(store);
	remove_dir(dir);
	free(dir);
	free(w.objs);
	hit_set_free(&s);
}

/* ---- wakeup -------------------------------------------------------------------------------- */

/*
 * Shared by the processes (MAP_SHARED, made before fork).  Per round r
 * the creator is process r % nproc; the others wait on the same key.
 */
struct wake_shared {
	pthread_barrier_t start, go;
	int nproc, rounds;
	pid_t pid[WAKE_MAXP];
	_Atomic int entered[WAKE_MAXP]; /* r + 1 once a waiter calls get in round r */
	_Atomic int creations;
	_Atomic int failures;
	uint64_t key_base;
	/* Per round, then per round and process (flat, after this struct). */
	uint64_t *t_create_ret, *t_get_ret, *t_wait_ret, *t_enter;
	unsigned char *confirmed;
};

struct wake_proc {
	struct wake_shared *sh;
	int me;
	int round;
};

/* The state letter of a process: 'S' while it sleeps in the kernel. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return '?';
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	char *paren = strrchr(buf, ')');
	return paren != NULL && paren[1] == ' ' ? paren[2] : '?';
}

/*
 * The creation: lets the waiters go, works ~2 ms, then makes sure every
 * waiter is asleep inside its get (entered, and in state S: the only
 * sleep in a get of a key locked by another process is the key lock)
 * before it returns, so that each one measured really waited.
 */
static int wake_create(void **obj, const void *args, void *ctx)
{
	struct wake_proc *wp = ctx;
	struct wake_shared *sh = wp->sh;
	(void)args;
	atomic_fetch_add(&sh->creations, 1);
	if (wp->round < 0) { /* a warm-up key */
		*obj = NULL;
		return 0;
	}
	int r = wp->round;
	pthread_barrier_wait(&sh->go);
	sleep_ns(2000000);
	uint64_t give_up = now_ns() + 200000000u;
	for (;;) {
		bool all = true;
		for (int j = 0; j < sh->nproc; j++) {
			if (j == wp->me)
				continue;
			bool ok = atomic_load(&sh->entered[j]) == r + 1 && proc_state(sh->pid[j]) == 'S';
			sh->confirmed[(size_t)r * WAKE_MAXP + (size_t)j] = ok;
			all &= ok;
		}
		if (all || now_ns() > give_up)
			break;
		sleep_ns(50000);
	}
	*obj = NULL;
	/* The last moment create can see: the write and commit follow. */
	sh->t_create_ret[r] = now_ns();
	return 0;
}

static void wake_run(struct wake_shared *sh, memento_store *store, int me)
{
	struct wake_proc wp = { sh, me, -1 };
	memento_cache *cache = new_cache(1024, 0);
	memento_class_desc d = { "wake", u64_key, wake_create, NULL, &wp };
	memento_class *cls = persisted_class(cache, &d, NULL, store, marker_encode, marker_decode,
	                                     "memento_class_new_with");
	/* Warm-up: this process's environment (reopened after fork) and its
	 * pooled read transaction, on a key of its own. */
	uint64_t warm = sh->key_base - 1 - (uint64_t)me;
	void *obj;
	int rc;
	if ((rc = memento_get(cls, &warm, &obj)) != 0)
		die("memento_get (warm-up)", rc);

	for (int r = 0; r < sh->rounds; r++) {
		uint64_t key = sh->key_base + (uint64_t)r;
		wp.round = r;
		pthread_barrier_wait(&sh->start);
		if (r % sh->nproc == me) {
			rc = memento_get(cls, &key, &obj);
			sh->t_get_ret[r] = now_ns();
		} else {
			pthread_barrier_wait(&sh->go);
			sh->t_enter[(size_t)r * WAKE_MAXP + (size_t)me] = now_ns();
			atomic_store(&sh->entered[me], r + 1);
			rc = memento_get(cls, &key, &obj);
			sh->t_wait_ret[(size_t)r * WAKE_MAXP + (size_t)me] = now_ns();
		}
		if (rc != 0)
			atomic_fetch_add(&sh->failures, 1);
	}
	pthread_barrier_wait(&sh->start);
	memento_stats st;
	memento_class_stats(cls, &st);
	/* Every get of a round's key that this process did not create was a
	 * store hit. */
	int created = 0;
	for (int r = me; r < sh->rounds; r += sh->nproc)
		created++;
	if (st.creations != (uint64_t)created + 1 ||
	    st.store_hits != (uint64_t)(sh->rounds - created))
		atomic_fetch_add(&sh->failures, 1);
	memento_cache_free(cache);
}

static void bench_wakeup_one(const struct config *cfg, bool durable)
{
	int nproc = cfg->wake_waiters + 1, rounds = cfg->wake_rounds;
	size_t per_round = (size_t)rounds * WAKE_MAXP;
	size_t size = sizeof(struct wake_shared) + 2 * (size_t)rounds * sizeof(uint64_t) +
	              2 * per_round * sizeof(uint64_t) + per_round;
	struct wake_shared *sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	                              -1, 0);
	if (sh == MAP_FAILED)
		die_sys("mmap");
	memset(sh, 0, size);
	uint64_t *at = (uint64_t *)(void *)(sh + 1);
	sh->t_create_ret = at;
	sh->t_get_ret = at + rounds;
	sh->t_wait_ret = at + 2 * rounds;
	sh->t_enter = sh->t_wait_ret + per_round;
	sh->confirmed = (unsigned char *)(sh->t_enter + per_round);
	sh->nproc = nproc;
	sh->rounds = rounds;
	sh->key_base = UINT64_C(1) << 40;
	pthread_barrierattr_t ba;
	pthread_barrierattr_init(&ba);
	pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
	pthread_barrier_init(&sh->start, &ba, (unsigned)nproc);
	pthread_barrier_init(&sh->go, &ba, (unsigned)nproc);

	char *dir = subdir(durable ? "wake-durable" : "wake-nosync");
	memento_store_options so = MEMENTO_STORE_OPTIONS_INIT;
	so.flags = durable ? 0 : MEMENTO_STORE_NOSYNC;
	memento_store *store;
	int rc = memento_store_open(&store, dir, &so);
	if (rc != 0)
		die("memento_store_open", rc);
	fprintf(stderr, "wakeup %s: %d waiters, %d rounds\n", durable ? "durable" : "nosync",
	        cfg->wake_waiters, rounds);
	sh->pid[0] = getpid();
	fflush(NULL);
	for (int i = 1; i < nproc; i++) {
		pid_t pid = fork();
		if (pid < 0)
			die_sys("fork");
		if (pid == 0) {
			sh->pid[i] = getpid();
			wake_run(sh, store, i);
			_exit(0);
		}
		sh->pid[i] = pid; /* also set by the child: whoever is first */
	}
	wake_run(sh, store, 0);
	for (int i = 1; i < nproc; i++) {
		int status;
		if (waitpid(sh->pid[i], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			die("wakeup: a waiter failed", -ECHILD);
	}
	if (atomic_load(&sh->failures) != 0 || atomic_load(&sh->creations) != rounds + nproc)
		die("wakeup: gets failed or a key was created twice", -EPROTO);

	/* delay = a waiter's return - the creator's create return.  Commit
	 * and unlock come after create returns, so this bounds the true
	 * wake-up delay from above.  The creator's own get return comes
	 * after its commit and unlock: delays from it can be negative. */
	size_t nd = 0, unconfirmed = 0, nr = 0;
	double *dc = malloc(per_round * sizeof *dc), *dg = malloc(per_round * sizeof *dg);
	double *first = malloc((size_t)rounds * sizeof *first);
	double *last = malloc((size_t)rounds * sizeof *last);
	double *window = malloc((size_t)rounds * sizeof *window);
	if (!dc || !dg || !first || !last || !window)
		die("malloc", -ENOMEM);
	for (int r = 0; r < rounds; r++) {
		int creator = r % nproc;
		double lo = INFINITY, hi = -INFINITY;
		window[r] = (double)(int64_t)(sh->t_get_ret[r] - sh->t_create_ret[r]);
		for (int j = 0; j < nproc; j++) {
			if (j == creator)
				continue;
			size_t i = (size_t)r * WAKE_MAXP + (size_t)j;
			if (!sh->confirmed[i]) {
				unconfirmed++;
				continue;
			}
			double d = (double)(int64_t)(sh->t_wait_ret[i] - sh->t_create_ret[r]);
			dc[nd] = d;
			dg[nd] = (double)(int64_t)(sh->t_wait_ret[i] - sh->t_get_ret[r]);
			nd++;
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		if (lo <= hi) { /* a round with no waiter seen asleep has neither */
			first[nr] = lo;
			last[nr] = hi;
			nr++;
		}
	}
	if (nd == 0)
		die("wakeup: no waiter was seen waiting", -EPROTO);
	const char *mode = durable ? "durable" : "nosync";
	char v[40];
	double p50 = quantile(dc, nd, 0.5), p99 = quantile(dc, nd, 0.99);
	double worst = dc[nd - 1]; /* dc is sorted now */
	snprintf(v, sizeof v, "%s-all-waiters", mode);
	add_row("wakeup", v, "p50", p50, "ns", NAN, "create-return", (int)nd);
	add_row("wakeup", v, "p99", p99, "ns", NAN, "create-return", (int)nd);
	add_row("wakeup", v, "worst", worst, "ns", NAN, "create-return", (int)nd);
	snprintf(v, sizeof v, "%s-first-waiter", mode);
	add_row("wakeup", v, "p50", quantile(first, nr, 0.5), "ns", NAN, "create-return", (int)nr);
	snprintf(v, sizeof v, "%s-last-waiter", mode);
	add_row("wakeup", v, "p50", quantile(last, nr, 0.5), "ns", NAN, "create-return", (int)nr);
	snprintf(v, sizeof v, "%s-all-waiters", mode);
	add_row("wakeup", v, "p50", quantile(dg, nd, 0.5), "ns", NAN, "creator-get-return", (int)nd);
	/* The creator's encode, write, commit and unlock: what the delays
	 * from create's return hold besides the wake-up itself. */
	snprintf(v, sizeof v, "%s-creator-write+commit", mode);
	add_row("wakeup", v, "p50", quantile(window, (size_t)rounds, 0.5), "ns", NAN,
	        "create-return", rounds);
	if (unconfirmed != 0)
		fprintf(stderr, "wakeup %s: %zu waiter samples dropped (not seen asleep in get)\n",
		        mode, unconfirmed);
	snprintf(v, sizeof v, "%s-dropped", mode);
	add_row("wakeup", v, "count", (double)unconfirmed, "samples", NAN, NULL, rounds);

	free(dc);
	free(dg);
	free(first);
	free(last);
	free(window);
	memento_store_close(store);
	remove_dir(dir);
	free(dir);
	pthread_barrier_destroy(&sh->start);
	pthread_barrier_destroy(&sh->go);
	munmap(sh, size);
}

/* ---- write -------------------------------------------------------------------------------- */

#define WRITE_PAYLOAD 256
#define WRITE_NAME "w256"

static unsigned char write_payload[WRITE_PAYLOAD];

static int write_create(void **obj, const void *args, void *ctx)
{
	(void)args;
	(void)ctx;
	*obj = write_payload;
	return 0;
}

static int write_encode(const void *obj, memento_buf *out, void *ctx)
{
	(void)ctx;
	return memento_buf_append(out, obj, WRITE_PAYLOAD);
}

static int write_decode(void **obj, const void *data, size_t len, void *ctx)
{
	(void)data;
	(void)ctx;
	if (len != WRITE_PAYLOAD)
		return -EBADMSG;
	*obj = write_payload;
	return 0;
}

/* n distinct keys created through a fresh store; returns records/s. */
static double time_mementos_writes(bool durable, size_t n, uint64_t seed, struct sync_counts *sc)
{
	char *dir = subdir("write-mementos");
	memento_store_options so = MEMENTO_STORE_OPTIONS_INIT;
	so.flags = durable ? 0 : MEMENTO_STORE_NOSYNC;
	memento_store *store;
	int rc = memento_store_open(&store, dir, &so);
	if (rc != 0)
		die("memento_store_open", rc);
	memento_cache *cache = new_cache(n, 0);
	memento_class_desc d = { WRITE_NAME, u64_key, write_create, NULL, NULL };
	memento_class *cls = persisted_class(cache, &d, NULL, store, write_encode, write_decode,
	                                     "memento_class_new_with");
	uint64_t *keys = malloc(n * sizeof *keys);
	if (keys == NULL)
		die("malloc", -ENOMEM);
	for (size_t i = 0; i < n; i++)
		keys[i] = splitmix64(&seed);

	struct sync_counts c0 = sync_counts_now();
	uint64_t t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		void *obj;
		if ((rc = memento_get(cls, &keys[i], &obj)) != 0)
			die("memento_get (write)", rc);
	}
	uint64_t t1 = now_ns();
	*sc = sync_counts_since(c0);
	memento_stats st;
	memento_class_stats(cls, &st);
	if (st.store_writes != n || st.creations != n || st.store_errors != 0)
		die("write: not every get wrote a record", -EPROTO);
	memento_cache_free(cache);
	memento_store_close(store);
	remove_dir(dir);
	free(dir);
	free(keys);
	return (double)n * 1e9 / (double)(t1 - t0);
}

/* Raw LMDB: one put per commit, the same env flags (MDB_NOTLS, NOSYNC or
 * not), a named database, 24-byte hashed keys and values the size of the
 * store's records. */
static double time_raw_writes(bool durable, size_t n, uint64_t seed, struct sync_counts *sc)
{
	char *dir = subdir("write-raw");
	struct rawdb db;
	rawdb_open(&db, dir, durable ? 0 : MDB_NOSYNC, false);
	size_t vlen = MEMENTO__RECORD_HEADER + strlen(WRITE_NAME) + 16 + WRITE_PAYLOAD;
	unsigned char *value = malloc(vlen), (*keys)[STORE_KEY_LEN] = malloc(n * STORE_KEY_LEN);
	if (value == NULL || keys == NULL)
		die("malloc", -ENOMEM);
	fill_random(value, vlen, seed);
	for (size_t i = 0; i < n; i++)
		fill_random(keys[i], STORE_KEY_LEN, splitmix64(&seed));

	struct sync_counts c0 = sync_counts_now();
	uint64_t t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		MDB_txn *txn;
		die_mdb("txn_begin", mdb_txn_begin(db.env, NULL, 0, &txn));
		MDB_val k = { STORE_KEY_LEN, keys[i] }, v = { vlen, value };
		die_mdb("put", mdb_put(txn, db.dbi, &k, &v, 0));
		die_mdb("commit", mdb_txn_commit(txn));
	}
	uint64_t t1 = now_ns();
	*sc = sync_counts_since(c0);
	rawdb_close(&db);
	remove_dir(dir);
	free(dir);
	free(value);
	free(keys);
	return (double)n * 1e9 / (double)(t1 - t0);
}

/* fdatasync, fsync and msync per write over every timed write; O_DSYNC
 * pwrites per write from the counting pass (pass/npass). */
static void add_sync_rows(const char *variant, struct sync_counts timed, size_t writes,
                          struct sync_counts pass, size_t npass, int rounds)
{
	double w = (double)writes;
	add_row("write", variant, "fdatasync", (double)timed.fdatasync / w, "calls/write", NAN, NULL,
	        rounds);
	add_row("write", variant, "fsync", (double)timed.fsync / w, "calls/write", NAN, NULL, rounds);
	add_row("write", variant, "msync", (double)timed.msync / w, "calls/write", NAN, NULL, rounds);
	add_row("write", variant, "dsync_pwrite", (double)pass.dsync_pwrite / (double)npass,
	        "calls/write", NAN, NULL, rounds);
}

static void bench_write_one(const struct config *cfg, bool durable)
{
	size_t n = durable ? cfg->write_durable : cfg->write_nosync;
	const char *mode = durable ? "durable" : "nosync";
	fprintf(stderr, "write %s: %d rounds of %zu records per side\n", mode, cfg->rounds, n);
	double m[cfg->rounds], raw[cfg->rounds];
	struct sync_counts msum = { 0 }, rsum = { 0 }, c;
	for (int r = 0; r < cfg->rounds; r++) {
		uint64_t seed = 1000 + (uint64_t)r;
		if (r % 2 == 0) {
			m[r] = time_mementos_writes(durable, n, seed, &c);
			msum.fdatasync += c.fdatasync, msum.fsync += c.fsync, msum.msync += c.msync;
			raw[r] = time_raw_writes(durable, n, seed, &c);
			rsum.fdatasync += c.fdatasync, rsum.fsync += c.fsync, rsum.msync += c.msync;
		} else {
			raw[r] = time_raw_writes(durable, n, seed, &c);
			rsum.fdatasync += c.fdatasync, rsum.fsync += c.fsync, rsum.msync += c.msync;
			m[r] = time_mementos_writes(durable, n, seed, &c);
			msum.fdatasync += c.fdatasync, msum.fsync += c.fsync, msum.msync += c.msync;
		}
		fprintf(stderr, "  round %d: mementos %.0f  raw %.0f records/s\n", r, m[r], raw[r]);
	}
	/* The counting pass, untimed: O_DSYNC writes need a fcntl per pwrite. */
	size_t nc = n < 200 ? n : 200;
	struct sync_counts mc, rc;
	atomic_store(&count_dsync, true);
	(void)time_mementos_writes(durable, nc, 7, &mc);
	(void)time_raw_writes(durable, nc, 7, &rc);
	atomic_store(&count_dsync, false);
	if (durable && (mc.fdatasync == 0 || rc.fdatasync == 0))
		fprintf(stderr, "write: no fdatasync counted in durable mode: the interposition "
		                "did not take (is the symbol exported?)\n");

	double mm = median_of(m, cfg->rounds), rm = median_of(raw, cfg->rounds);
	char v[40], ref[40];
	snprintf(v, sizeof v, "mementos-%s", mode);
	snprintf(ref, sizeof ref, "raw-lmdb-%s", mode);
	add_row("write", v, "median", mm, "records/s", mm / rm, ref, cfg->rounds);
	add_row("write", v, "median", 1e9 / mm, "ns/op", (1e9 / mm) / (1e9 / rm), ref, cfg->rounds);
	add_row("write", ref, "median", rm, "records/s", NAN, NULL, cfg->rounds);
	add_row("write", ref, "median", 1e9 / rm, "ns/op", NAN, NULL, cfg->rounds);
	add_sync_rows(v, msum, (size_t)cfg->rounds * n, mc, nc, cfg->rounds);
	add_sync_rows(ref, rsum, (size_t)cfg->rounds * n, rc, nc, cfg->rounds);
}

/* ---- output --------------------------------------------------------------------------------- */

/* The brief's targets, shown next to the rows they apply to. */
static const char *target_of(const struct row *r, bool *judged, bool *met)
{
	*judged = false;
	if (strcmp(r->benchmark, "store_hit") == 0 && strncmp(r->variant, "mementos-", 9) == 0 &&
	    strcmp(r->stat, "median") == 0) {
		*judged = true;
		*met = r->ratio <= 1.3;
		return "<= 1.3x";
	}
	if (strcmp(r->benchmark, "memory_hit") == 0 && !isnan(r->ratio))
		return "~1.0x";
	if (strcmp(r->benchmark, "wakeup") == 0 && strstr(r->variant, "all-waiters") != NULL &&
	    strcmp(r->stat, "p50") == 0 && strcmp(r->reference, "create-return") == 0) {
		*judged = true;
		*met = r->value < 1e6;
		return "< 1 ms";
	}
	return "";
}

/* ---- main ------------------------------------------------------------------------------------ */

static void usage(FILE *out)
{
	fputs("usage: mementos-store-bench [--quick] [--rounds N] [--csv FILE] [--dir DIR]\n"
	      "                            [--only LIST]\n"
	      "  --quick     small sizes, 3 rounds (unless --rounds): a few seconds\n"
	      "  --rounds N  timed rounds per side (default 5); medians are over rounds\n"
	      "  --csv FILE  write the results as CSV\n"
	      "  --dir DIR   where to make the run's temporary directory (default /tmp)\n"
	      "  --only LIST comma-separated: store_hit,memory_hit,wakeup,write\n"
	      "  --payload N store_hit with one payload size only: 64 or 4096 (for profiling)\n",
	      out);
}

int main(int argc, char **argv)
{
	struct config cfg = {
		.rounds = 5,
		.hit_keys = 4000,
		.hit_passes = 8,
		.mem_keys = 10000,
		.mem_ops = 2000000,
		.wake_rounds = 200,
		.wake_waiters = 3,
		.write_nosync = 5000,
		.write_durable = 200,
	};
	long rounds = 0;
	const char *csv = NULL, *dir = "/tmp", *only = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			cfg.quick = true;
		} else if (strcmp(argv[i], "--rounds") == 0) {
			rounds = bench_parse_long(i + 1 < argc ? argv[++i] : NULL, 1, 1001, usage);
		} else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc) {
			csv = argv[++i];
		} else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			only = argv[++i];
		} else if (strcmp(argv[i], "--payload") == 0) {
			cfg.payload_only = (size_t)bench_parse_long(i + 1 < argc ? argv[++i] : NULL, 1,
			                                            4096, usage);
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
		cfg.hit_keys = 2000;
		cfg.hit_passes = 2;
		cfg.mem_ops = 200000;
		cfg.wake_rounds = 50;
		cfg.write_nosync = 1000;
		cfg.write_durable = 50;
	}
	if (rounds != 0)
		cfg.rounds = (int)rounds;
	if (cfg.payload_only != 0 && cfg.payload_only != 64 && cfg.payload_only != 4096) {
		usage(stderr);
		return 2;
	}

	/* Freed memory stays in the process and large blocks come from the
	 * heap: each store-hit pass frees a cache (or the floor's objects) and
	 * builds another, and a trimmed heap or an unmapped table would put
	 * page faults into the next pass's timed gets, on whichever side
	 * happened to run after a free. */
	mallopt(M_TRIM_THRESHOLD, 1 << 30);
	mallopt(M_MMAP_THRESHOLD, 256 << 20);

	char cpu[256];
	cpu_model(cpu, sizeof cpu);
	base_dir_make(dir, "mementos-store-bench");
	fill_random(write_payload, sizeof write_payload, 99);
	printf("mementos-store-bench: cpu %s; %s (%s); rounds %d%s; command:", cpu, base_dir,
	       fs_name(base_dir), cfg.rounds, cfg.quick ? " (quick)" : "");
	for (int i = 0; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	fflush(stdout);

	if (bench_selected(only, "store_hit"))
		bench_store_hit(&cfg);
	if (bench_selected(only, "memory_hit"))
		bench_memory_hit(&cfg);
	if (bench_selected(only, "wakeup")) {
		bench_wakeup_one(&cfg, false);
		bench_wakeup_one(&cfg, true);
	}
	if (bench_selected(only, "write")) {
		bench_write_one(&cfg, false);
		bench_write_one(&cfg, true);
	}
	remove_dir(base_dir);

	static const struct table_layout layout = { 34, 13, 12, 20, "calls/write", target_of };
	print_table(stdout, cpu, &layout);
	if (csv != NULL)
		write_csv(csv, cpu);
	return 0;
}
