/*
 * memento_store: one LMDB environment in a directory, shared by the
 * processes of a machine, and what a process needs around it.
 *
 * store/ is the persistence layer (docs/design.md, "Persistence"):
 *   record.c    the record format: header, checksum, digest (record.h)
 *   store.c     the environment: open, reads and writes, map growth, fork
 *   keylock.c   one computation per key across processes: OFD byte locks
 *   uri.c, redis.c  a store on a Redis server: addresses, connections, records
 *   lease.c     one computation per key across machines: Redis leases
 *   fill.c      copies from a farther tier, written in the background
 *   buf.c       memento_buf, what encode writes into
 *   persist.c   a class's persistence: the creating get through the store
 *   fingerprint.c  fingerprints and memento_key_result
 *
 * LMDB's rules, and how this file keeps them:
 *   - reader slots belong to transactions (MDB_NOTLS), so any thread may
 *     use any transaction, one at a time; reset read transactions are
 *     pooled, so that a read does not take the reader table's lock;
 *   - dead processes leave reader slots: mdb_reader_check on open and
 *     when the table is full;
 *   - the map is grown (doubled) on MDB_MAP_FULL while no transaction of
 *     this process is active (map_lock held for writing); other processes
 *     then see MDB_MAP_RESIZED and adopt the new size the same way;
 *   - an environment never crosses fork(): the child drops its parent's
 *     (without closing it, which would release the parent's locks held
 *     through the same files) and reopens on first use;
 *   - one environment per directory per process: a second open is -EBUSY.
 *
 * A store may name a next tier (options.next): persist.c reads the tiers
 * in order and fills the nearer ones from a hit further on.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAP_SIZE ((uint64_t)64 << 20)
#define POOL_MAX 16
#define MAX_READERS 1024
#define GROW_TRIES 8
#define FORMAT_KEY "format"

/* This process's environment of a store.  Replaced (never freed) in a
 * child of fork(). */
struct store_env {
	MDB_env *env;
	MDB_dbi results, meta;
	/* Read for every transaction, written to remap (map growth): no
	 * transaction of this process may be active while LMDB remaps. */
	pthread_rwlock_t map_lock;
	pthread_mutex_t pool_lock;
	MDB_txn *pool[POOL_MAX]; /* reset read transactions */
	unsigned int npool;
};

struct memento_store {
	_Atomic(struct store_env *) env; /* NULL in a fork child until reopened */
	pthread_mutex_t lock;            /* reopening, the held key locks */
	char *path;                      /* the directory */
	char *lock_path;                 /* path/keys.lock */
	uint64_t map_size;               /* asked for at open */
	unsigned int flags;
	dev_t dev;
	ino_t ino;
	_Atomic uint32_t users; /* classes using it: checked at close */
	struct memento__key_locks locks; /* this process's key locks (keylock.c) */
	struct memento__redis *redis;   /* a Redis store (redis.c): no env, no locks */
	memento_store *tier_next;       /* options.next, or NULL */
	struct memento__fills fills;    /* an LMDB store's (fill.c) */
	memento_store *prev, *next;     /* the registry, under registry_lock */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static memento_store *registry;

/* LMDB's errors as negative errnos (its own codes are negative, system
 * errors positive). */
static int errno_of(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
		return -ENOSPC;
	case MDB_READERS_FULL:
	case MDB_TXN_FULL:
		return -EAGAIN;
	case MDB_VERSION_MISMATCH:
		return -EPROTO;
	case MDB_INVALID:
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_BAD_TXN:
		return -EIO;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

/* ---- opening ------------------------------------------------------------------ */

static int format_check(struct store_env *se, MDB_txn *txn, bool writable)
{
	MDB_val k = { sizeof FORMAT_KEY - 1, (void *)FORMAT_KEY }, v;
	int rc = mdb_get(txn, se->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		if (!writable)
			return 0; /* an empty store */
		uint32_t format = MEMENTO__RECORD_VERSION;
		v = (MDB_val){ sizeof format, &format };
		return errno_of(mdb_put(txn, se->meta, &k, &v, 0));
	}
	if (rc != 0)
		return errno_of(rc);
	uint32_t format;
	if (v.mv_size != sizeof format)
		return -EPROTO;
	memcpy(&format, v.mv_data, sizeof format);
	return format == MEMENTO__RECORD_VERSION ? 0 : -EPROTO;
}

/* Opens the databases: in a write transaction the first time (to create
 * them), read-only for a READONLY store. */
static int databases_open(struct store_env *se, bool writable)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(se->env, NULL, writable ? 0 : MDB_RDONLY, &txn);
	if (rc != 0)
		return errno_of(rc);
	unsigned int create = writable ? MDB_CREATE : 0;
	rc = mdb_dbi_open(txn, "results", create, &se->results);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "meta", create, &se->meta);
	if (rc == MDB_NOTFOUND && !writable) {
		/* A read-only view of a store nobody has written yet. */
		mdb_txn_abort(txn);
		return -ENOENT;
	}
	if (rc != 0) {
		mdb_txn_abort(txn);
		return errno_of(rc);
	}
	rc = format_check(se, txn, writable);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return errno_of(mdb_txn_commit(txn));
}

static void env_free(struct store_env *se)
{
	while (se->npool > 0)
		mdb_txn_abort(se->pool[--se->npool]);
	if (se->env != NULL)
		mdb_env_close(se->env);
	pthread_rwlock_destroy(&se->map_lock);
	pthread_mutex_destroy(&se->pool_lock);
	free(se);
}

static int env_open(memento_store *s, struct store_env **out)
{
	struct store_env *se = calloc(1, sizeof *se);
	if (se == NULL)
		return -ENOMEM;
	pthread_rwlock_init(&se->map_lock, NULL);
	pthread_mutex_init(&se->pool_lock, NULL);
	bool writable = !(s->flags & MEMENTO_STORE_READONLY);
	int rc = errno_of(mdb_env_create(&se->env));
	if (rc == 0)
		rc = errno_of(mdb_env_set_maxdbs(se->env, 2));
	/* Each process keeps up to POOL_MAX reset read transactions, each
	 * with its reader slot: room for many processes (the first opener's
	 * count holds for all; the lock file is sparse). */
	if (rc == 0)
		rc = errno_of(mdb_env_set_maxreaders(se->env, MAX_READERS));
	if (rc == 0)
		rc = errno_of(mdb_env_set_mapsize(se->env, s->map_size));
	if (rc == 0) {
		unsigned int flags = MDB_NOTLS;
		if (!writable)
			flags |= MDB_RDONLY;
		if (s->flags & MEMENTO_STORE_NOSYNC)
			flags |= MDB_NOSYNC;
		rc = errno_of(mdb_env_open(se->env, s->path, flags, 0666));
	}
	if (rc == 0) {
		int dead;
		(void)mdb_reader_check(se->env, &dead); /* slots of dead processes */
		rc = databases_open(se, writable);
	}
	if (rc != 0) {
		env_free(se);
		return rc;
	}
	*out = se;
	return 0;
}

/* The directory: made if missing (its parent must exist), and a directory. */
static int directory_ready(const char *path, bool writable, struct stat *st)
{
	if (stat(path, st) != 0) {
		if (errno != ENOENT || !writable)
			return -errno;
		if (mkdir(path, 0777) != 0 && errno != EEXIST)
			return -errno;
		if (stat(path, st) != 0)
			return -errno;
	}
	if (!S_ISDIR(st->st_mode))
		return -ENOTDIR;
	if (access(path, writable ? R_OK | W_OK | X_OK : R_OK | X_OK) != 0)
		return -errno;
	return 0;
}

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + 1 + strlen(name) + 1;
	char *p = malloc(n);
	if (p != NULL)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static void store_free(memento_store *s)
{
	memento__fills_free(&s->fills);
	free(s->path);
	free(s->lock_path);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void fork_handlers_register(void);

static int redis_open(memento_store *s, const char *uri, const memento_store_options *o,
                      memento_store **out);
static int lmdb_open(memento_store *s, const char *path, const memento_store_options *o);
static void registry_add(memento_store *s);

static int store_open(memento_store **store, const char *path,
                      const memento_store_options *options)
{
	memento_store_options o = MEMENTO_STORE_OPTIONS_INIT;
	if (path != NULL && strncmp(path, "lmdb:", 5) == 0)
		path += 5; /* the explicit form of a directory */
	if (store == NULL || path == NULL || path[0] == '\0')
		return -EINVAL;
	if (options != NULL) {
		/* An older header's struct, without timeout_ns, will do. */
		if (options->size < offsetof(memento_store_options, timeout_ns))
			return -EINVAL;
		memcpy(&o, options, options->size < sizeof o ? options->size : sizeof o);
	}
	if (o.flags & ~(MEMENTO_STORE_READONLY | MEMENTO_STORE_NOSYNC))
		return -EINVAL;
	unsigned int tiers = 1;
	for (const memento_store *t = o.next; t != NULL; t = t->tier_next)
		tiers++;
	if (tiers > MEMENTO__STORE_TIERS_MAX)
		return -EINVAL;
	pthread_once(&fork_once, fork_handlers_register);

	memento_store *s = calloc(1, sizeof *s);
	if (s == NULL)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	memento__fills_init(&s->fills);
	s->flags = o.flags;
	s->tier_next = o.next;
	int rc;
	if (memento__is_redis_uri(path)) {
		rc = redis_open(s, path, &o, store);
	} else {
		rc = lmdb_open(s, path, &o);
		if (rc == 0)
			*store = s;
	}
	if (rc == 0 && o.next != NULL)
		memento__store_use(o.next, +1);
	return rc;
}

static int lmdb_open(memento_store *s, const char *path, const memento_store_options *o)
{
	s->map_size = o->map_size != 0 ? o->map_size : DEFAULT_MAP_SIZE;
	s->path = strdup(path);
	s->lock_path = path_join(path, "keys.lock");
	if (s->path == NULL || s->lock_path == NULL) {
		store_free(s);
		return -ENOMEM;
	}
	struct stat st;
	int rc = directory_ready(path, !(o->flags & MEMENTO_STORE_READONLY), &st);
	if (rc != 0) {
		store_free(s);
		return rc;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;

	/* Registered before the environment opens, under the registry lock,
	 * so that two opens of one directory cannot both pass. */
	pthread_mutex_lock(&registry_lock);
	for (memento_store *r = registry; r != NULL; r = r->next) {
		if (r->dev == s->dev && r->ino == s->ino) {
			pthread_mutex_unlock(&registry_lock);
			store_free(s);
			return -EBUSY;
		}
	}
	struct store_env *se = NULL;
	rc = env_open(s, &se);
	if (rc == 0) {
		atomic_store_explicit(&s->env, se, memory_order_relaxed);
		registry_add(s);
	}
	pthread_mutex_unlock(&registry_lock);
	if (rc != 0)
		store_free(s);
	return rc;
}

/* Links s into the registry (its fork handler finds it there). */
static void registry_add(memento_store *s)
{
	s->next = registry;
	if (registry != NULL)
		registry->prev = s;
	registry = s;
}

static int redis_open(memento_store *s, const char *uri, const memento_store_options *o,
                      memento_store **out)
{
	int rc = memento__redis_open(&s->redis, uri, o->timeout_ns, o->lease_ns);
	if (rc != 0) {
		store_free(s);
		return rc;
	}
	pthread_mutex_lock(&registry_lock);
	registry_add(s);
	pthread_mutex_unlock(&registry_lock);
	*out = s;
	return 0;
}

int memento_store_open(memento_store **store, const char *path,
                       const memento_store_options *options)
{
	/* The registry lock is held across LMDB's open (and its first commit
	 * for a new store): no cancellation point may leave it held. */
	int cancel = memento__cancel_off();
	int rc = store_open(store, path, options);
	memento__cancel_restore(cancel);
	return rc;
}

void memento_store_close(memento_store *s)
{
	if (s == NULL)
		return;
	/* Closing a store that a class still uses is undefined: catch it in
	 * debug builds. */
	assert(atomic_load_explicit(&s->users, memory_order_relaxed) == 0);
	pthread_mutex_lock(&registry_lock);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		registry = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	pthread_mutex_unlock(&registry_lock);
	memento__fills_stop(s); /* writes what is queued, with the environment */
	struct store_env *se = atomic_load_explicit(&s->env, memory_order_relaxed);
	if (se != NULL)
		env_free(se);
	memento__key_locks_close(s);
	memento__redis_close(s->redis);
	if (s->tier_next != NULL)
		memento__store_use(s->tier_next, -1);
	store_free(s);
}

void memento_store_flush(memento_store *s)
{
	for (; s != NULL; s = s->tier_next)
		memento__fills_flush(s);
}

void memento__store_use(memento_store *s, int delta)
{
	/* Relaxed: a count checked by close, which runs after every user is
	 * gone (the caller's contract orders them). */
	if (delta > 0)
		atomic_fetch_add_explicit(&s->users, 1, memory_order_relaxed);
	else
		atomic_fetch_sub_explicit(&s->users, 1, memory_order_relaxed);
}

bool memento__store_writable(const memento_store *s)
{
	return !(s->flags & MEMENTO_STORE_READONLY);
}

bool memento__store_has_key_locks(const memento_store *s)
{
	return s->redis == NULL;
}

bool memento__store_is_remote(const memento_store *s)
{
	return s->redis != NULL;
}

memento_store *memento__store_next(const memento_store *s)
{
	return s->tier_next;
}

uint64_t memento__store_lease_ns(const memento_store *s)
{
	return memento__redis_lease_ns(s->redis);
}

int memento__store_lease_take(memento_store *s, const char *name,
                              const struct memento__store_key *key, const char *token,
                              struct memento__lease *l)
{
	return memento__redis_lease_take(s->redis, name, key, token, l);
}

static int compare_u64(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b;
}

int memento__store_order(const memento_store *a, const memento_store *b)
{
	if ((a->redis != NULL) != (b->redis != NULL))
		return a->redis != NULL ? 1 : -1;
	if (a->redis == NULL) {
		int c = compare_u64((uint64_t)a->dev, (uint64_t)b->dev);
		return c != 0 ? c : compare_u64((uint64_t)a->ino, (uint64_t)b->ino);
	}
	const struct memento__redis_target *x = memento__redis_target_of(a->redis);
	const struct memento__redis_target *y = memento__redis_target_of(b->redis);
	int c = strcmp(x->host, y->host);
	if (c == 0)
		c = compare_u64((uint64_t)x->port, (uint64_t)y->port);
	return c != 0 ? c : compare_u64((uint64_t)x->db, (uint64_t)y->db);
}

const char *memento__store_lock_path(const memento_store *s)
{
	return s->lock_path;
}

struct memento__fills *memento__store_fills(memento_store *s)
{
	return &s->fills;
}

struct memento__key_locks *memento__store_key_locks(memento_store *s)
{
	return &s->locks;
}

pthread_mutex_t *memento__store_mutex(memento_store *s)
{
	return &s->lock;
}

/* This process's environment: the one opened, or, in a fork child, a new
 * one opened on first use. */
static int env_get(memento_store *s, struct store_env **out)
{
	/* Acquire: pairs with the release below, so the environment that
	 * another thread opened is seen whole. */
	struct store_env *se = atomic_load_explicit(&s->env, memory_order_acquire);
	if (MEMENTO__LIKELY(se != NULL)) {
		*out = se;
		return 0;
	}
	int rc = 0;
	int cancel = memento__cancel_off(); /* LMDB's open under the mutex */
	pthread_mutex_lock(&s->lock);
	se = atomic_load_explicit(&s->env, memory_order_relaxed);
	if (se == NULL) {
		rc = env_open(s, &se);
		if (rc == 0)
			atomic_store_explicit(&s->env, se, memory_order_release);
	}
	pthread_mutex_unlock(&s->lock);
	memento__cancel_restore(cancel);
	*out = se;
	return rc;
}

/* ---- transactions ------------------------------------------------------------ */

/* Another process grew the map: adopt its size, with no transaction of
 * this process active. */
static void map_adopt(struct store_env *se)
{
	pthread_rwlock_wrlock(&se->map_lock);
	(void)mdb_env_set_mapsize(se->env, 0);
	pthread_rwlock_unlock(&se->map_lock);
}

/* The map's size now (under map_lock). */
static size_t map_size_of(struct store_env *se)
{
	MDB_envinfo info;
	return mdb_env_info(se->env, &info) == 0 ? info.me_mapsize : 0;
}

/* Doubles the map that was full at size `full`, with no transaction of
 * this process active; unless another writer of this process grew it
 * meanwhile. */
static int map_grow(struct store_env *se, size_t full)
{
	pthread_rwlock_wrlock(&se->map_lock);
	size_t size = map_size_of(se);
	int rc = 0;
	if (size <= full)
		rc = size == 0 || size > SIZE_MAX / 2 ? ENOSPC : mdb_env_set_mapsize(se->env, size * 2);
	pthread_rwlock_unlock(&se->map_lock);
	return errno_of(rc);
}

/* A read transaction, from the pool when it has one; map_lock is held
 * for reading until read_end. */
static int read_begin(struct store_env *se, MDB_txn **txn)
{
	for (int tries = 0;; tries++) {
		pthread_rwlock_rdlock(&se->map_lock);
		pthread_mutex_lock(&se->pool_lock);
		MDB_txn *t = se->npool > 0 ? se->pool[--se->npool] : NULL;
		pthread_mutex_unlock(&se->pool_lock);
		int rc = t != NULL ? mdb_txn_renew(t) : mdb_txn_begin(se->env, NULL, MDB_RDONLY, &t);
		if (rc == 0) {
			*txn = t;
			return 0;
		}
		if (t != NULL && rc != 0)
			mdb_txn_abort(t);
		pthread_rwlock_unlock(&se->map_lock);
		if (tries >= 2)
			return errno_of(rc);
		if (rc == MDB_MAP_RESIZED) {
			map_adopt(se);
		} else if (rc == MDB_READERS_FULL) {
			int dead;
			(void)mdb_reader_check(se->env, &dead);
		} else {
			return errno_of(rc);
		}
	}
}

static void read_end(struct store_env *se, MDB_txn *txn)
{
	mdb_txn_reset(txn);
	pthread_mutex_lock(&se->pool_lock);
	if (se->npool < POOL_MAX) {
		se->pool[se->npool++] = txn;
		txn = NULL;
	}
	pthread_mutex_unlock(&se->pool_lock);
	if (txn != NULL)
		mdb_txn_abort(txn);
	pthread_rwlock_unlock(&se->map_lock);
}

/* What a read transaction must release if its reader is cancelled inside
 * a visit (a decode callback). */
struct read_scope {
	struct store_env *se;
	MDB_txn *txn;
};

static void read_abandoned(void *arg)
{
	struct read_scope *r = arg;
	read_end(r->se, r->txn);
}

int memento__store_read(memento_store *s, const char *name,
                        const struct memento__store_key *key, memento__store_visit_fn visit,
                        void *ctx)
{
	if (s->redis != NULL)
		return memento__redis_get_record(s->redis, name, key, visit, ctx);
	/* Cancellable only inside visit (a decode callback), which a
	 * cleanup handler covers. */
	int cancel = memento__cancel_off();
	struct store_env *se;
	int rc = env_get(s, &se);
	MDB_txn *txn = NULL;
	if (rc == 0)
		rc = read_begin(se, &txn);
	if (rc != 0) {
		memento__cancel_restore(cancel);
		return rc;
	}
	MDB_val k = { sizeof key->b, (void *)key->b }, v;
	rc = mdb_get(txn, se->results, &k, &v);
	if (rc == 0) {
		struct read_scope scope = { se, txn };
		memento__cancel_restore(cancel);
		pthread_cleanup_push(read_abandoned, &scope);
		rc = visit(v.mv_data, v.mv_size, ctx);
		pthread_cleanup_pop(0);
		cancel = memento__cancel_off();
	} else {
		rc = errno_of(rc);
	}
	read_end(se, txn);
	memento__cancel_restore(cancel);
	return rc;
}

/* One record of a write transaction: made from head (record_write), or
 * copied from bytes as they are. */
struct put {
	const struct memento__store_key *key;
	const struct memento__record *head;
	const void *bytes;
	size_t size;
	bool unless_newer; /* skipped when the key holds a record made later */
};

/* Whether the record in the map (v) was made at or after the one in
 * put: a copy queued before a newer creation must not replace it. */
static bool held_is_newer(const MDB_val *v, const struct put *put)
{
	struct memento__record held, incoming;
	return memento__record_parse(v->mv_data, v->mv_size, &held) == MEMENTO__RECORD_OK &&
	       memento__record_parse(put->bytes, put->size, &incoming) == MEMENTO__RECORD_OK &&
	       held.created_ns >= incoming.created_ns;
}

/* One attempt at a write transaction that puts n records. */
static int write_once(struct store_env *se, const struct put *puts, size_t n)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(se->env, NULL, 0, &txn);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		MDB_val k = { sizeof puts[i].key->b, (void *)puts[i].key->b },
			v = { puts[i].size, NULL }, held;
		if (puts[i].unless_newer && mdb_get(txn, se->results, &k, &held) == 0 &&
		    held_is_newer(&held, &puts[i]))
			continue;
		rc = mdb_put(txn, se->results, &k, &v, MDB_RESERVE);
		if (rc == 0 && puts[i].head != NULL)
			memento__record_write(v.mv_data, puts[i].head);
		else if (rc == 0)
			memcpy(v.mv_data, puts[i].bytes, puts[i].size);
	}
	if (rc == 0)
		return mdb_txn_commit(txn);
	mdb_txn_abort(txn);
	return rc;
}

static int write_growing(memento_store *s, const struct put *puts, size_t n)
{
	struct store_env *se;
	int rc = env_get(s, &se);
	if (rc != 0)
		return rc;
	for (int tries = 0;; tries++) {
		pthread_rwlock_rdlock(&se->map_lock);
		rc = write_once(se, puts, n);
		size_t full = rc == MDB_MAP_FULL ? map_size_of(se) : 0;
		pthread_rwlock_unlock(&se->map_lock);
		if (rc == 0 || tries >= GROW_TRIES)
			return errno_of(rc);
		if (rc == MDB_MAP_FULL) {
			int grown = map_grow(se, full);
			if (grown != 0)
				return grown;
		} else if (rc == MDB_MAP_RESIZED) {
			map_adopt(se);
		} else {
			return errno_of(rc);
		}
	}
}

int memento__store_put_records(memento_store *s, size_t n,
                               const struct memento__store_key *const *keys,
                               const void *const *records, const size_t *lens)
{
	if (n == 0 || n > MEMENTO__STORE_PUT_MAX)
		return -EINVAL;
	struct put puts[MEMENTO__STORE_PUT_MAX];
	for (size_t i = 0; i < n; i++)
		puts[i] = (struct put){
			.key = keys[i], .bytes = records[i], .size = lens[i], .unless_newer = true,
		};
	int cancel = memento__cancel_off(); /* see memento__store_write */
	int rc = write_growing(s, puts, n);
	memento__cancel_restore(cancel);
	return rc;
}

int memento__store_write(memento_store *s, const char *name,
                         const struct memento__store_key *key,
                         const struct memento__record *head)
{
	if (!memento__store_writable(s))
		return -EROFS;
	if (s->redis != NULL)
		return memento__redis_set_record(s->redis, name, key, head);
	/* A write transaction cannot be unwound by a cleanup handler: a
	 * cancellation in its commit (pwrite, fdatasync) would leave LMDB's
	 * writer mutex to a dead thread and the environment unusable. */
	size_t size = memento__record_size(head->name_len, head->key_len, head->payload_len);
	if (size == 0)
		return -E2BIG;
	struct put put = { .key = key, .head = head, .size = size };
	int cancel = memento__cancel_off();
	int rc = write_growing(s, &put, 1);
	memento__cancel_restore(cancel);
	return rc;
}

/* ---- fork ------------------------------------------------------------------------ */

/* Held across fork() so that the child finds every store's list of key
 * locks and its environment pointer settled. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&registry_lock);
	for (memento_store *s = registry; s != NULL; s = s->next) {
		pthread_mutex_lock(&s->lock);
		memento__fills_fork_prepare(s);
		memento__redis_fork_prepare(s->redis);
	}
}

static void fork_parent(void)
{
	for (memento_store *s = registry; s != NULL; s = s->next) {
		memento__redis_fork_parent(s->redis);
		memento__fills_fork_parent(s);
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&registry_lock);
}

static void fork_child(void)
{
	for (memento_store *s = registry; s != NULL; s = s->next) {
		/* The parent's environment stays theirs: dropped, not closed
		 * (closing it would abort its pooled transactions, whose
		 * reader slots are the parent's). */
		atomic_store_explicit(&s->env, NULL, memory_order_relaxed);
		memento__key_locks_drop_inherited(s);
		/* Its Redis connections too: one socket, two readers. */
		memento__redis_fork_child(s->redis);
		memento__fills_fork_child(s);
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&registry_lock);
}

static void fork_handlers_register(void)
{
	(void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}
