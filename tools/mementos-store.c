/*
 * mementos-store: looks into, checks and trims a mementos store (the LMDB
 * environment that memento_store_open makes in a directory).
 *
 *   mementos-store PATH stats
 *   mementos-store PATH list [CLASS]
 *   mementos-store PATH verify
 *   mementos-store PATH drop CLASS
 *   mementos-store PATH prune --older-than DAYS
 *
 * Records are read with memento__record_parse (lib/store/record.c), the very
 * code the library reads them with.  The readers (stats, list, verify) open
 * the environment read-only and look at one snapshot: LMDB readers never
 * block writers, so the tool may run beside the programs that use the store.
 * drop and prune write in short transactions (prune commits every
 * PRUNE_BATCH deletions), so that those programs wait little for the writer
 * lock.
 *
 * Exit status: 0 done; 1 a failure (not a store, LMDB error, or verify found
 * bad records); 2 bad usage.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "store/record.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define STORE_KEY_LEN MEMENTO__RECORD_KEY /* record.h: class hash, key hash */
#define FORMAT_KEY "format"  /* meta: u32, the record format version */
#define PRUNE_BATCH 1000     /* deletions per write transaction of prune */
#define GROW_TRIES 8         /* map doublings a write may ask for */
#define SHOW_STR_MAX 64      /* bytes of a string key field shown */
#define SHOW_BYTES_MAX 32    /* bytes of a bytes key field shown */

static const char *progname = "mementos-store";

/* ---- small helpers ------------------------------------------------------------ */

/* Why: every failure is reported the same way, on stderr, with the tool's
 * name, before the command returns 1. */
static void __attribute__((format(printf, 1, 2))) complain(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Why: out of memory is not worth recovering from in a command-line tool;
 * dying with a message beats a half-printed report. */
static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n != 0 ? n : 1);
	if (q == NULL) {
		complain("out of memory");
		exit(1);
	}
	return q;
}

/* A growing string: key descriptions and escaped names are built in one
 * before they are printed or kept. */
struct sbuf {
	char *s;
	size_t len, cap;
};

/* Why: printf into a buffer that grows, so no description is ever cut. */
static void __attribute__((format(printf, 2, 3))) sb_printf(struct sbuf *sb, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		size_t room = sb->cap - sb->len;
		int n = vsnprintf(sb->s != NULL ? sb->s + sb->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < room) {
			sb->len += (size_t)n;
			return;
		}
		sb->cap = sb->cap * 2 + (size_t)n + 64;
		sb->s = xrealloc(sb->s, sb->cap);
	}
}

/* Why: reusing one buffer across records keeps list and verify from
 * allocating per record. */
static void sb_clear(struct sbuf *sb)
{
	sb->len = 0;
	if (sb->s != NULL)
		sb->s[0] = '\0';
}

/* Why: the key's words are little-endian whatever the host (lib/core/key.c). */
static uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Why: bytes of unknown meaning (bytes fields, damaged keys, digests) are
 * shown as hex, at most max of them, "..." marking a cut. */
static void sb_hex(struct sbuf *sb, const unsigned char *p, size_t n, size_t max)
{
	for (size_t i = 0; i < n && i < max; i++)
		sb_printf(sb, "%02x", p[i]);
	if (n > max)
		sb_printf(sb, "...");
}

/* Why: class names and string fields are arbitrary bytes; escaping keeps
 * one record on one line and the terminal safe. */
static void sb_escaped(struct sbuf *sb, const unsigned char *p, size_t n, size_t max)
{
	for (size_t i = 0; i < n && i < max; i++) {
		unsigned char c = p[i];
		if (c == '"' || c == '\\')
			sb_printf(sb, "\\%c", c);
		else if (c == '\n')
			sb_printf(sb, "\\n");
		else if (c == '\t')
			sb_printf(sb, "\\t");
		else if (c < 0x20 || c >= 0x7f)
			sb_printf(sb, "\\x%02x", c);
		else
			sb_printf(sb, "%c", c);
	}
	if (n > max)
		sb_printf(sb, "...");
}

/* Why: a class name as one visible token: escaped, and "" when empty,
 * which a class name may be in a damaged or foreign record. */
static void sb_name(struct sbuf *sb, const char *name, size_t len)
{
	if (len == 0)
		sb_printf(sb, "\"\"");
	else
		sb_escaped(sb, (const unsigned char *)name, len, SIZE_MAX);
}

/* Why: a double shown with the fewest digits that read back as the same
 * value (1.5, not 1.50000000000000000). */
static void sb_double(struct sbuf *sb, double d)
{
	char buf[40];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, d);
		if (strtod(buf, NULL) == d || isnan(d))
			break;
	}
	sb_printf(sb, "%s", buf);
}

/*
 * Why: key bytes are only meaningful as the typed fields memento_key_*
 * appended (lib/core/key.c): a fixed field is a tag word and a value word;
 * a sized field a tag word with its length in the high half, then the
 * bytes, zero-padded to whole words.  Appends "(u:42, s:"abc", ...)" to sb
 * and returns true when the bytes are exactly such fields; otherwise shows
 * what it could, then the rest as "?:hex", and returns false.  Reads only
 * [k, k + n): the lengths inside may lie.
 */
static bool key_describe(struct sbuf *sb, const unsigned char *k, size_t n)
{
	size_t at = 0;
	bool ok = true;
	sb_printf(sb, "(");
	while (at < n) {
		if (at != 0)
			sb_printf(sb, ", ");
		if (n - at < 8) {
			ok = false;
			break;
		}
		uint64_t tag = le64(k + at);
		unsigned char type = (unsigned char)tag;
		if (type == 'u' || type == 'i' || type == 'f' || type == 'p') {
			if ((tag >> 8) != 0 || n - at < 16) {
				ok = false;
				break;
			}
			uint64_t v = le64(k + at + 8);
			if (type == 'u') {
				sb_printf(sb, "u:%" PRIu64, v);
			} else if (type == 'i') {
				int64_t sv;
				memcpy(&sv, &v, sizeof sv);
				sb_printf(sb, "i:%" PRId64, sv);
			} else if (type == 'f') {
				double d;
				memcpy(&d, &v, sizeof d);
				sb_printf(sb, "f:");
				sb_double(sb, d);
			} else {
				sb_printf(sb, "p:0x%" PRIx64, v);
			}
			at += 16;
		} else if (type == 's' || type == 'b') {
			uint64_t len = tag >> 32;
			uint64_t words = (len + 7) & ~(uint64_t)7; /* len < 2^32: no wrap */
			if (((tag >> 8) & 0xffffffu) != 0 || words > n - at - 8) {
				ok = false;
				break;
			}
			const unsigned char *p = k + at + 8;
			for (uint64_t i = len; i < words; i++)
				if (p[i] != 0)
					ok = false; /* padding the library zeroes */
			if (type == 's') {
				sb_printf(sb, "s:\"");
				sb_escaped(sb, p, (size_t)len, SHOW_STR_MAX);
				sb_printf(sb, "\"");
			} else {
				sb_printf(sb, "b:%" PRIu64 " bytes%s", len, len != 0 ? " " : "");
				sb_hex(sb, p, (size_t)len, SHOW_BYTES_MAX);
			}
			at += 8 + (size_t)words;
		} else {
			ok = false;
			break;
		}
	}
	if (!ok && at < n) {
		sb_printf(sb, "?:");
		sb_hex(sb, k + at, n - at, SHOW_BYTES_MAX);
	}
	sb_printf(sb, ")");
	return ok;
}

/* Why: verify recomputes the LMDB key a record must be filed under from
 * the identity it holds, with the library's own layout (record.h). */
static void store_key_of(const char *name, uint32_t name_len, const unsigned char *key,
                         uint32_t key_len, unsigned char out[STORE_KEY_LEN])
{
	memento__record_key(memento__record_class_hash(name, name_len), key, key_len, out);
}

/* Why: the 8-byte prefix every record of a class has in the store (the
 * first bytes of its record keys): drop and stats find a class by it. */
static void class_prefix(const void *name, size_t name_len, unsigned char out[8])
{
	unsigned char k[STORE_KEY_LEN];
	memento__record_key(memento__record_class_hash(name, name_len), NULL, 0, k);
	memcpy(out, k, 8);
}

/*
 * Why: a record whose payload alone is damaged still has a header and
 * identity that its checksum vouches for: memento__record_parse fills *r
 * before it checks the digest.  Returns whether r's identity and times can
 * be trusted.  r must have been zeroed before the parse, so that a parse
 * that stops filling r before the digest makes this false, never wrong.
 */
static bool identity_readable(enum memento__record_fault f, const struct memento__record *r)
{
	return f == MEMENTO__RECORD_OK || (f == MEMENTO__RECORD_DIGEST && r->name != NULL);
}

/* Why: one place that parses, so that every command reads a record the same
 * way, and no stale field of a previous record survives. */
static enum memento__record_fault parse(const MDB_val *v, struct memento__record *r)
{
	memset(r, 0, sizeof *r);
	return memento__record_parse(v->mv_data, v->mv_size, r);
}

/* ---- the environment ------------------------------------------------------------ */

struct store {
	const char *path;
	MDB_env *env;
	MDB_txn *txn; /* readers: the one snapshot they look at */
	MDB_dbi results, meta;
	uint32_t format; /* meta "format"; 0: not written yet */
};

/* Why: LMDB's messages name the problem but not the file or the step. */
static void lmdb_complain(const struct store *st, const char *what, int rc)
{
	complain("%s: %s: %s", st->path, what, mdb_strerror(rc));
}

/* Why: a read or write transaction, adopting a map another process grew
 * (MDB_MAP_RESIZED) instead of failing. */
static int txn_begin(struct store *st, unsigned int flags, MDB_txn **txn)
{
	int rc = mdb_txn_begin(st->env, NULL, flags, txn);
	if (rc == MDB_MAP_RESIZED) {
		rc = mdb_env_set_mapsize(st->env, 0);
		if (rc == 0)
			rc = mdb_txn_begin(st->env, NULL, flags, txn);
	}
	return rc;
}

/* Why: reads meta's "format" so that a store of another format is refused
 * instead of misread.  0 on success (st->format set), 1 on failure. */
static int format_read(struct store *st, MDB_txn *txn)
{
	MDB_val k = { sizeof FORMAT_KEY - 1, (void *)FORMAT_KEY }, v;
	int rc = mdb_get(txn, st->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		st->format = 0; /* a store nobody has written to yet */
		return 0;
	}
	if (rc != 0) {
		lmdb_complain(st, "reading the format", rc);
		return 1;
	}
	if (v.mv_size != sizeof st->format) {
		complain("%s: not a mementos store (its format entry has %zu bytes)", st->path,
		         v.mv_size);
		return 1;
	}
	memcpy(&st->format, v.mv_data, sizeof st->format);
	if (st->format != MEMENTO__RECORD_VERSION) {
		complain("%s: store format %" PRIu32 ", this tool reads format %u", st->path,
		         st->format, MEMENTO__RECORD_VERSION);
		return 1;
	}
	return 0;
}

/* Why: closing in one place, whatever the command did. */
static void store_close(struct store *st)
{
	if (st->txn != NULL)
		mdb_txn_abort(st->txn);
	st->txn = NULL;
	if (st->env != NULL)
		mdb_env_close(st->env);
	st->env = NULL;
}

/*
 * Why: opens the store as the library lays it out (store.c): a directory
 * with data.mdb and lock.mdb, databases "results" and "meta", maxdbs 2,
 * MDB_NOTLS.  Readers get MDB_RDONLY and keep one read transaction in
 * st->txn; writers get the handles only.  Checks first that PATH holds an
 * LMDB file, because a read-write mdb_env_open would make one in any
 * directory.  0, or 1 after a message.
 */
static int store_open(struct store *st, const char *path, bool writable)
{
	memset(st, 0, sizeof *st);
	st->path = path;
	struct stat sb;
	if (stat(path, &sb) != 0) {
		complain("%s: %s", path, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		complain("%s: not a mementos store (a store is a directory)", path);
		return 1;
	}
	size_t n = strlen(path) + sizeof "/data.mdb";
	char *data = xrealloc(NULL, n);
	snprintf(data, n, "%s/data.mdb", path);
	int found = stat(data, &sb);
	int err = errno;
	free(data);
	if (found != 0 || !S_ISREG(sb.st_mode)) {
		if (found != 0 && err != ENOENT)
			complain("%s/data.mdb: %s", path, strerror(err));
		else
			complain("%s: not a mementos store (no data.mdb)", path);
		return 1;
	}

	int rc = mdb_env_create(&st->env);
	if (rc != 0) {
		st->env = NULL;
		lmdb_complain(st, "creating the environment", rc);
		return 1;
	}
	rc = mdb_env_set_maxdbs(st->env, 2);
	if (rc == 0)
		rc = mdb_env_open(st->env, path, MDB_NOTLS | (writable ? 0 : MDB_RDONLY), 0666);
	if (rc != 0) {
		if (rc == MDB_INVALID)
			complain("%s: not a mementos store (data.mdb is not an LMDB file)", path);
		else
			lmdb_complain(st, "opening", rc);
		store_close(st);
		return 1;
	}
	int dead = 0;
	(void)mdb_reader_check(st->env, &dead); /* slots of dead processes */

	MDB_txn *txn;
	rc = txn_begin(st, writable ? 0 : MDB_RDONLY, &txn);
	if (rc != 0) {
		lmdb_complain(st, "beginning a transaction", rc);
		store_close(st);
		return 1;
	}
	rc = mdb_dbi_open(txn, "results", 0, &st->results);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "meta", 0, &st->meta);
	if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
		complain("%s: not a mementos store (no \"results\" and \"meta\" databases)", path);
		mdb_txn_abort(txn);
		store_close(st);
		return 1;
	}
	if (rc != 0) {
		lmdb_complain(st, "opening the databases", rc);
		mdb_txn_abort(txn);
		store_close(st);
		return 1;
	}
	if (format_read(st, txn) != 0) {
		mdb_txn_abort(txn);
		store_close(st);
		return 1;
	}
	if (!writable) {
		st->txn = txn;
		return 0;
	}
	/* The handles outlive a write transaction only if it commits. */
	rc = mdb_txn_commit(txn);
	if (rc != 0) {
		lmdb_complain(st, "opening the databases", rc);
		store_close(st);
		return 1;
	}
	return 0;
}

/* ---- stats ---------------------------------------------------------------------- */

/* One class's totals. */
struct class_stats {
	char *name; /* the record's bytes, NUL added */
	uint32_t name_len;
	uint64_t records, bytes, payload, damaged;
	struct memento__digest *fps; /* every record's fingerprint, counted at the end */
	size_t nfps, capfps;
};

struct class_table {
	struct class_stats *v;
	size_t n, cap;
};

/* Why: records are grouped by the name they hold, not by key prefix, so that
 * two names whose hashes collide are still two classes. */
static struct class_stats *class_find(struct class_table *t, const char *name, uint32_t len,
                                      bool add)
{
	for (size_t i = t->n; i-- > 0;) /* the newest first: records come by class */
		if (t->v[i].name_len == len && memcmp(t->v[i].name, name, len) == 0)
			return &t->v[i];
	if (!add)
		return NULL;
	if (t->n == t->cap) {
		t->cap = t->cap * 2 + 8;
		t->v = xrealloc(t->v, t->cap * sizeof *t->v);
	}
	struct class_stats *c = &t->v[t->n++];
	memset(c, 0, sizeof *c);
	c->name = xrealloc(NULL, (size_t)len + 1);
	memcpy(c->name, name, len);
	c->name[len] = '\0';
	c->name_len = len;
	return c;
}

/* Why: the class a damaged record probably belongs to, by its key prefix,
 * when its own name cannot be trusted. */
static const struct class_stats *class_by_prefix(const struct class_table *t,
                                                 const MDB_val *k)
{
	if (k->mv_size < 8)
		return NULL;
	for (size_t i = 0; i < t->n; i++) {
		unsigned char p[8];
		class_prefix(t->v[i].name, t->v[i].name_len, p);
		if (memcmp(p, k->mv_data, 8) == 0)
			return &t->v[i];
	}
	return NULL;
}

/* Why: frees what class_find allocated. */
static void class_table_free(struct class_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].name);
		free(t->v[i].fps);
	}
	free(t->v);
	memset(t, 0, sizeof *t);
}

/* Why: qsort's order on fingerprints, to count the distinct ones. */
static int digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct memento__digest));
}

/* Why: records hold a fingerprint (a hash of version and inputs), not the
 * version, so the number of distinct fingerprints is what can be said about
 * how many versions or inputs a class's records came from. */
static uint64_t distinct_fingerprints(struct class_stats *c)
{
	if (c->nfps == 0)
		return 0;
	qsort(c->fps, c->nfps, sizeof *c->fps, digest_cmp);
	uint64_t n = 1;
	for (size_t i = 1; i < c->nfps; i++)
		if (memcmp(&c->fps[i], &c->fps[i - 1], sizeof *c->fps) != 0)
			n++;
	return n;
}

/* Why: human-sized byte counts beside the exact ones in the map line. */
static void sb_size(struct sbuf *sb, uint64_t bytes)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		sb_printf(sb, "%" PRIu64 " B", bytes);
	else
		sb_printf(sb, "%.1f %s", v, unit[u]);
}

/* `stats`: per class totals, then LMDB's view of the environment. */
static int cmd_stats(struct store *st)
{
	struct class_table t = { 0 };
	uint64_t total = 0, unreadable = 0, unreadable_bytes = 0;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(st->txn, st->results, &cur);
	if (rc != 0) {
		lmdb_complain(st, "opening a cursor", rc);
		return 1;
	}
	MDB_val k, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct memento__record r;
		enum memento__record_fault f = parse(&v, &r);
		total++;
		if (!identity_readable(f, &r)) {
			unreadable++;
			unreadable_bytes += v.mv_size;
			continue;
		}
		struct class_stats *c = class_find(&t, r.name, r.name_len, true);
		c->records++;
		c->bytes += v.mv_size;
		c->payload += r.payload_len;
		if (f != MEMENTO__RECORD_OK)
			c->damaged++;
		if (c->nfps == c->capfps) {
			c->capfps = c->capfps * 2 + 16;
			c->fps = xrealloc(c->fps, c->capfps * sizeof *c->fps);
		}
		c->fps[c->nfps++] = r.fingerprint;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND) {
		lmdb_complain(st, "reading the records", rc);
		class_table_free(&t);
		return 1;
	}

	MDB_envinfo info;
	MDB_stat es, rs;
	rc = mdb_env_info(st->env, &info);
	if (rc == 0)
		rc = mdb_env_stat(st->env, &es);
	if (rc == 0)
		rc = mdb_stat(st->txn, st->results, &rs);
	if (rc != 0) {
		lmdb_complain(st, "reading the environment's statistics", rc);
		class_table_free(&t);
		return 1;
	}

	struct sbuf sb = { 0 };
	printf("store %s: format %" PRIu32 "%s, %" PRIu64 " records in %zu classes\n", st->path,
	       st->format, st->format == 0 ? " (not written yet)" : "", total, t.n);
	uint64_t used = (uint64_t)info.me_last_pgno + 1;
	uint64_t used_bytes = used * es.ms_psize;
	sb_size(&sb, (uint64_t)info.me_mapsize);
	printf("map: %zu bytes (%s)", info.me_mapsize, sb.s);
	sb_clear(&sb);
	sb_size(&sb, used_bytes);
	printf(", used %" PRIu64 " pages of %u bytes (%s, %.1f%%)\n", used, es.ms_psize, sb.s,
	       info.me_mapsize != 0 ? 100.0 * (double)used_bytes / (double)info.me_mapsize : 0.0);
	printf("results: %zu entries, depth %u, %zu branch, %zu leaf, %zu overflow pages; "
	       "readers %u of %u\n",
	       rs.ms_entries, rs.ms_depth, rs.ms_branch_pages, rs.ms_leaf_pages,
	       rs.ms_overflow_pages, info.me_numreaders, info.me_maxreaders);
	printf("%-24s %10s %14s %14s %8s  %s\n", "class", "records", "bytes", "payload", "damaged",
	       "fingerprints (distinct; records hold a fingerprint, not a version)");
	for (size_t i = 0; i < t.n; i++) {
		struct class_stats *c = &t.v[i];
		sb_clear(&sb);
		sb_name(&sb, c->name, c->name_len);
		printf("%-24s %10" PRIu64 " %14" PRIu64 " %14" PRIu64 " %8" PRIu64 "  %" PRIu64 "\n",
		       sb.s, c->records, c->bytes, c->payload, c->damaged,
		       distinct_fingerprints(c));
	}
	if (unreadable != 0)
		printf("unreadable: %" PRIu64 " damaged records (%" PRIu64
		       " bytes) of no known class; see verify\n",
		       unreadable, unreadable_bytes);
	free(sb.s);
	class_table_free(&t);
	return 0;
}

/* ---- list ----------------------------------------------------------------------- */

/* Why: created_ns is CLOCK_REALTIME in ns; shown as ISO 8601 UTC to the ms. */
static void sb_time(struct sbuf *sb, uint64_t ns)
{
	time_t s = (time_t)(ns / 1000000000u);
	struct tm tm;
	char buf[64];
	if (gmtime_r(&s, &tm) == NULL || strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		sb_printf(sb, "@%" PRIu64 "ns", ns);
		return;
	}
	sb_printf(sb, "%s.%03uZ", buf, (unsigned int)(ns % 1000000000u / 1000000u));
}

/* Why: one line per record, the same for `list` and `list CLASS`. */
static void list_line(struct sbuf *sb, const MDB_val *k, const MDB_val *v)
{
	struct memento__record r;
	enum memento__record_fault f = parse(v, &r);
	sb_clear(sb);
	if (!identity_readable(f, &r)) {
		sb_printf(sb, "? <damaged: %s> lmdb-key=", memento__record_fault_name(f));
		sb_hex(sb, k->mv_data, k->mv_size, STORE_KEY_LEN);
		sb_printf(sb, " size=%zu", v->mv_size);
		puts(sb->s);
		return;
	}
	sb_name(sb, r.name, r.name_len);
	sb_printf(sb, " ");
	key_describe(sb, r.key, r.key_len);
	sb_printf(sb, " payload=%" PRIu64 " created=", r.payload_len);
	sb_time(sb, r.created_ns);
	double ms = (double)r.compute_ns / 1e6;
	sb_printf(sb, ms >= 1 ? " compute=%.3fms fp=" : " compute=%.6fms fp=", ms);
	sb_hex(sb, r.fingerprint.b, 8, 8);
	if (f != MEMENTO__RECORD_OK)
		sb_printf(sb, " <damaged: %s>", memento__record_fault_name(f));
	puts(sb->s);
}

/* Why: true when a record under key k may belong to the class whose
 * prefix is p: damaged records count, another name (a hash collision)
 * does not. */
static bool of_class(const MDB_val *k, const MDB_val *v, const unsigned char p[8],
                     const char *name)
{
	if (k->mv_size < 8 || memcmp(k->mv_data, p, 8) != 0)
		return false;
	struct memento__record r;
	enum memento__record_fault f = parse(v, &r);
	if (!identity_readable(f, &r))
		return true;
	return r.name_len == strlen(name) && memcmp(r.name, name, r.name_len) == 0;
}

/* `list [CLASS]`: every record, or a class's, found by its key prefix. */
static int cmd_list(struct store *st, const char *cls)
{
	unsigned char p[8];
	MDB_cursor *cur;
	int rc = mdb_cursor_open(st->txn, st->results, &cur);
	if (rc != 0) {
		lmdb_complain(st, "opening a cursor", rc);
		return 1;
	}
	MDB_val k = { 0, NULL }, v;
	MDB_cursor_op op = MDB_FIRST;
	if (cls != NULL) {
		class_prefix(cls, strlen(cls), p);
		k = (MDB_val){ sizeof p, p };
		op = MDB_SET_RANGE;
	}
	struct sbuf sb = { 0 };
	for (rc = mdb_cursor_get(cur, &k, &v, op); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (cls != NULL && (k.mv_size < 8 || memcmp(k.mv_data, p, 8) != 0))
			break; /* past the class's records */
		if (cls == NULL || of_class(&k, &v, p, cls))
			list_line(&sb, &k, &v);
	}
	free(sb.s);
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		lmdb_complain(st, "reading the records", rc);
		return 1;
	}
	return 0;
}

/* ---- verify --------------------------------------------------------------------- */

/* One bad record, kept until every good one was seen (for class hints). */
struct bad {
	MDB_val key; /* a copy */
	char *name;  /* escaped, or NULL: unreadable */
	char *what;  /* the fault */
	char *shown; /* the typed key, when readable */
};

/* Why: keeps a bad record's description; the record's bytes are LMDB's and
 * valid only in the transaction. */
static void bad_add(struct bad **v, size_t *n, const MDB_val *k, const struct memento__record *r,
                    bool readable, const char *what)
{
	*v = xrealloc(*v, (*n + 1) * sizeof **v);
	struct bad *b = &(*v)[(*n)++];
	memset(b, 0, sizeof *b);
	b->key.mv_size = k->mv_size;
	b->key.mv_data = xrealloc(NULL, k->mv_size);
	memcpy(b->key.mv_data, k->mv_data, k->mv_size);
	b->what = strdup(what);
	if (b->what == NULL) {
		complain("out of memory");
		exit(1);
	}
	if (readable) {
		struct sbuf sb = { 0 };
		sb_name(&sb, r->name, r->name_len);
		b->name = sb.s;
		sb = (struct sbuf){ 0 };
		key_describe(&sb, r->key, r->key_len);
		b->shown = sb.s;
	}
}

/*
 * `verify`: every record through memento__record_parse (lengths, checksum,
 * payload digest); a readable one must also be filed under the key its
 * identity gives, and its key bytes must be well-formed typed fields.
 * Prints each bad record and a summary; 1 if any is bad.
 */
static int cmd_verify(struct store *st)
{
	struct class_table t = { 0 };
	struct bad *bad = NULL;
	size_t nbad = 0;
	uint64_t total = 0;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(st->txn, st->results, &cur);
	if (rc != 0) {
		lmdb_complain(st, "opening a cursor", rc);
		return 1;
	}
	MDB_val k, v;
	struct sbuf sb = { 0 };
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		total++;
		struct memento__record r;
		enum memento__record_fault f = parse(&v, &r);
		bool readable = identity_readable(f, &r);
		if (f != MEMENTO__RECORD_OK) {
			bad_add(&bad, &nbad, &k, &r, readable, memento__record_fault_name(f));
			continue;
		}
		(void)class_find(&t, r.name, r.name_len, true); /* for the hints */
		unsigned char want[STORE_KEY_LEN];
		store_key_of(r.name, r.name_len, r.key, r.key_len, want);
		if (k.mv_size != STORE_KEY_LEN || memcmp(k.mv_data, want, STORE_KEY_LEN) != 0) {
			bad_add(&bad, &nbad, &k, &r, true,
			        "filed under an LMDB key that is not its identity's");
			continue;
		}
		sb_clear(&sb);
		if (!key_describe(&sb, r.key, r.key_len))
			bad_add(&bad, &nbad, &k, &r, true, "key bytes are not typed fields");
	}
	mdb_cursor_close(cur);
	int status = 0;
	if (rc != MDB_NOTFOUND) {
		lmdb_complain(st, "reading the records", rc);
		status = 1;
	}
	for (size_t i = 0; i < nbad; i++) {
		struct bad *b = &bad[i];
		sb_clear(&sb);
		if (b->name != NULL) {
			sb_printf(&sb, "bad: class %s key %s", b->name, b->shown);
		} else {
			const struct class_stats *c = class_by_prefix(&t, &b->key);
			if (c != NULL) {
				sb_printf(&sb, "bad: class ? (key prefix of ");
				sb_name(&sb, c->name, c->name_len);
				sb_printf(&sb, ")");
			} else {
				sb_printf(&sb, "bad: class ?");
			}
			sb_printf(&sb, " lmdb-key=");
			sb_hex(&sb, b->key.mv_data, b->key.mv_size, STORE_KEY_LEN);
		}
		printf("%s: %s\n", sb.s, b->what);
		free(b->key.mv_data);
		free(b->name);
		free(b->what);
		free(b->shown);
	}
	printf("verify: %" PRIu64 " records, %" PRIu64 " ok, %zu bad\n", total,
	       total - nbad, nbad);
	free(bad);
	free(sb.s);
	class_table_free(&t);
	return status != 0 || nbad != 0 ? 1 : 0;
}

/* ---- drop and prune ------------------------------------------------------------- */

enum verdict { KEEP, DELETE, STOP };

/* What to delete: a class's records, or those older than a time. */
struct deletion {
	const char *cls;       /* drop: the class; NULL for prune */
	unsigned char p[8];    /* drop: its prefix */
	uint64_t cutoff_ns;    /* prune: created before this */
	uint64_t kept_unknown; /* prune: damaged records of unknown age */
};

/* Why: the one rule drop and prune differ by, applied to each record in
 * key order. */
static enum verdict judge(struct deletion *d, const MDB_val *k, const MDB_val *v)
{
	if (d->cls != NULL) {
		if (k->mv_size < 8 || memcmp(k->mv_data, d->p, 8) != 0)
			return STOP; /* past the class's records */
		return of_class(k, v, d->p, d->cls) ? DELETE : KEEP;
	}
	struct memento__record r;
	enum memento__record_fault f = parse(v, &r);
	if (!identity_readable(f, &r)) {
		d->kept_unknown++; /* counted once: a kept record is never seen again */
		return KEEP;
	}
	return r.created_ns < d->cutoff_ns ? DELETE : KEEP;
}

/* Why: a delete may need pages the map does not have: double it, as the
 * library does, with no transaction of this process active. */
static int map_grow(struct store *st)
{
	MDB_envinfo info;
	int rc = mdb_env_info(st->env, &info);
	if (rc != 0)
		return rc;
	if (info.me_mapsize > SIZE_MAX / 2)
		return MDB_MAP_FULL;
	return mdb_env_set_mapsize(st->env, info.me_mapsize * 2);
}

/* A key to go on from, copied out of LMDB's pages. */
struct resume {
	unsigned char b[512]; /* LMDB keys are at most 511 bytes */
	size_t len;
	bool set;
};

/*
 * Why: drop and prune are one walk that deletes what judge says, in write
 * transactions of at most batch deletions each; after a commit the walk
 * goes on from the last deleted key (gone now, so MDB_SET_RANGE lands on
 * the next).  A batch that fails with MDB_MAP_FULL is retried whole after
 * the map grows.  0 with *deleted set, or 1 after a message.
 */
static int delete_where(struct store *st, struct deletion *d, const MDB_val *start, size_t batch,
                        uint64_t *deleted)
{
	struct resume committed = { .len = 0, .set = false }, pending;
	int grows = 0;
	*deleted = 0;
	for (;;) {
		MDB_txn *txn;
		MDB_cursor *cur;
		int rc = txn_begin(st, 0, &txn);
		if (rc != 0) {
			lmdb_complain(st, "beginning a write transaction", rc);
			return 1;
		}
		rc = mdb_cursor_open(txn, st->results, &cur);
		if (rc != 0) {
			mdb_txn_abort(txn);
			lmdb_complain(st, "opening a cursor", rc);
			return 1;
		}
		pending = committed;
		uint64_t kept_before = d->kept_unknown;
		MDB_val k, v;
		if (committed.set) {
			k = (MDB_val){ committed.len, committed.b };
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		} else if (start != NULL) {
			k = *start;
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		} else {
			rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		}
		size_t n = 0;
		bool more = false; /* the batch is full: another transaction follows */
		while (rc == 0) {
			enum verdict verdict = judge(d, &k, &v);
			if (verdict == STOP) {
				rc = MDB_NOTFOUND;
				break;
			}
			if (verdict == DELETE) {
				/* Copied first: k points into a page the delete changes. */
				memcpy(pending.b, k.mv_data, k.mv_size);
				pending.len = k.mv_size;
				pending.set = true;
				rc = mdb_cursor_del(cur, 0);
				if (rc != 0)
					break;
				if (++n == batch) {
					more = true;
					break;
				}
			}
			/* After a delete the cursor already stands on the next
			 * record; LMDB's MDB_NEXT knows it and does not skip. */
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
		mdb_cursor_close(cur);
		if (rc == 0 || rc == MDB_NOTFOUND)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		if (rc == MDB_MAP_FULL && grows++ < GROW_TRIES) {
			d->kept_unknown = kept_before; /* the batch runs again */
			rc = map_grow(st);
			if (rc == 0)
				continue;
		}
		if (rc != 0) {
			lmdb_complain(st, "deleting", rc);
			return 1;
		}
		*deleted += n;
		committed = pending;
		if (!more)
			return 0;
	}
}

/* `drop CLASS`: the class's records, in one write transaction. */
static int cmd_drop(struct store *st, const char *cls)
{
	struct deletion d = { .cls = cls };
	class_prefix(cls, strlen(cls), d.p);
	MDB_val start = { sizeof d.p, d.p };
	uint64_t n;
	if (delete_where(st, &d, &start, SIZE_MAX, &n) != 0)
		return 1;
	struct sbuf sb = { 0 };
	sb_name(&sb, cls, strlen(cls));
	printf("dropped %" PRIu64 " records of class %s\n", n, sb.s);
	free(sb.s);
	return 0;
}

/* `prune --older-than DAYS`: records created more than DAYS days ago, in
 * batches of PRUNE_BATCH deletions. */
static int cmd_prune(struct store *st, double days)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
	double age_ns = days * 86400e9;
	struct deletion d = { .cls = NULL };
	d.cutoff_ns = age_ns >= (double)now_ns ? 0 : now_ns - (uint64_t)age_ns;
	uint64_t n;
	if (delete_where(st, &d, NULL, PRUNE_BATCH, &n) != 0)
		return 1;
	struct sbuf sb = { 0 };
	sb_time(&sb, d.cutoff_ns);
	printf("pruned %" PRIu64 " records created before %s\n", n, sb.s);
	free(sb.s);
	if (d.kept_unknown != 0)
		printf("kept %" PRIu64 " damaged records whose age cannot be read; see verify\n",
		       d.kept_unknown);
	return 0;
}

/* ---- main ----------------------------------------------------------------------- */

/* Why: the same text for --help (stdout, status 0) and bad usage (stderr,
 * status 2). */
static void usage(FILE *out)
{
	fprintf(out,
	        "usage: %s PATH COMMAND [ARGS]\n"
	        "       %s -h | --help\n"
	        "\n"
	        "Looks into a mementos store: the directory a program passed to\n"
	        "memento_store_open.\n"
	        "\n"
	        "commands:\n"
	        "  stats                      records, bytes and distinct fingerprints per class;\n"
	        "                             the LMDB map and the store's format\n"
	        "  list [CLASS]               one line per record: class, typed key, payload\n"
	        "                             size, created (UTC), compute time, fingerprint\n"
	        "  verify                     checks every record (lengths, checksum, payload\n"
	        "                             digest, its LMDB key); status 1 if any is bad\n"
	        "  drop CLASS                 deletes the class's records\n"
	        "  prune --older-than DAYS    deletes records created more than DAYS days ago\n"
	        "                             (DAYS may be fractional)\n"
	        "\n"
	        "stats, list and verify only read, and do not block the store's users.\n"
	        "exit status: 0 done, 1 failure or bad records found, 2 bad usage\n",
	        progname, progname);
}

/* Why: DAYS must be a plain non-negative decimal; anything else is bad
 * usage, not zero. */
static bool days_parse(const char *s, double *days)
{
	char *end;
	errno = 0;
	double d = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || !isfinite(d) || d < 0)
		return false;
	*days = d;
	return true;
}

/* Why: argument checking before anything opens the store, so that bad
 * usage never touches it. */
int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		}
	}
	if (argc < 3) {
		usage(stderr);
		return 2;
	}
	const char *path = argv[1], *cmd = argv[2];
	int nargs = argc - 3;
	char **args = argv + 3;
	const char *cls = NULL;
	double days = 0;
	bool writable = false;
	if (strcmp(cmd, "stats") == 0 || strcmp(cmd, "verify") == 0) {
		if (nargs != 0)
			goto bad;
	} else if (strcmp(cmd, "list") == 0) {
		if (nargs > 1)
			goto bad;
		cls = nargs == 1 ? args[0] : NULL;
	} else if (strcmp(cmd, "drop") == 0) {
		if (nargs != 1 || args[0][0] == '\0')
			goto bad;
		cls = args[0];
		writable = true;
	} else if (strcmp(cmd, "prune") == 0) {
		const char *value = NULL;
		if (nargs == 2 && strcmp(args[0], "--older-than") == 0)
			value = args[1];
		else if (nargs == 1 && strncmp(args[0], "--older-than=", 13) == 0)
			value = args[0] + 13;
		if (value == NULL)
			goto bad;
		if (!days_parse(value, &days)) {
			complain("--older-than: '%s' is not a number of days (0 or more)", value);
			goto bad;
		}
		writable = true;
	} else {
		complain("unknown command '%s'", cmd);
		goto bad;
	}

	struct store st;
	if (store_open(&st, path, writable) != 0)
		return 1;
	int status;
	if (strcmp(cmd, "stats") == 0)
		status = cmd_stats(&st);
	else if (strcmp(cmd, "list") == 0)
		status = cmd_list(&st, cls);
	else if (strcmp(cmd, "verify") == 0)
		status = cmd_verify(&st);
	else if (strcmp(cmd, "drop") == 0)
		status = cmd_drop(&st, cls);
	else
		status = cmd_prune(&st, days);
	store_close(&st);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		complain("writing the output: %s", strerror(errno));
		return 1;
	}
	return status;

bad:
	usage(stderr);
	return 2;
}
