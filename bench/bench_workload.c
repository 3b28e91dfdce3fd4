/*
 * bench_workload.c: each workload, run in the child process of one
 * (implementation, workload): the tables it needs, its timed phases at
 * every thread count, the checks of exactly-once creation, and its rows.
 *
 * Every table is checked when it is closed: the objects created since it
 * was opened, its count() and the objects its close() destroyed must be
 * equal, and equal to what the workload asked for (hot: 1; uniform: its
 * keys; zipf: the distinct keys the run asked for; insert: every get's key;
 * stampede: one per round, checked per round as well); none may have been
 * destroyed before close.
 *
 * A bounded table (impl.h's open_bounded) gets max(1, keys / 2) as its
 * bound, half the keys the workload can ask for (workload_keys), and
 * evicts: its check is table_close_checked's second half.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "bench_driver.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const bench_workload_names[BENCH_NWORKLOADS] = {
	[BENCH_HOT] = "hot",
	[BENCH_UNIFORM] = "uniform",
	[BENCH_ZIPF] = "zipf",
	[BENCH_INSERT] = "insert",
	[BENCH_STAMPEDE] = "stampede",
};

bool bench_workload_all_hits(enum bench_workload w)
{
	return w == BENCH_HOT || w == BENCH_UNIFORM;
}

/* Each workload's keys.  Any values would do: everyone hashes them with XXH3. */
#define HOT_KEY UINT64_C(0x686f74)
#define UNIFORM_BASE (UINT64_C(1) << 32)
#define ZIPF_BASE UINT64_C(0)
#define STAMPEDE_BASE UINT64_C(1)
/* insert: thread t's keys start at (t + 1) << INSERT_SHIFT, disjoint ranges. */
#define INSERT_SHIFT 40

/* Latency samples kept per point, shared out among its threads; a thread
 * whose share is full keeps no more. */
#define SAMPLES_PER_POINT ((size_t)1 << 24)
#define SAMPLES_PER_THREAD_MIN ((size_t)1 << 12)

static const uint32_t index_zero[1] = { 0 };

/* ---- rows to the parent ------------------------------------------------------------ */

static struct bench_row row_empty(enum bench_workload w, unsigned threads)
{
	return (struct bench_row){
		.kind = BENCH_ROW_POINT,
		.workload = w,
		.threads = threads,
		.ops = NAN,
		.seconds = NAN,
		.mops = NAN,
		.ns_per_op = NAN,
		.p50_ns = NAN,
		.p99_ns = NAN,
		.p999_ns = NAN,
		.bytes_per_entry = NAN,
		.creations = NAN,
		.worst_wake_us = NAN,
	};
}

static int row_send(int fd, const struct bench_row *row)
{
	const char *p = (const char *)row;
	size_t left = sizeof *row;
	while (left > 0) {
		ssize_t n = write(fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			perror("mementos-bench: writing a row to the driver");
			return -1;
		}
		p += n;
		left -= (size_t)n;
	}
	return 0;
}

/* ---- tables and their check ------------------------------------------------------------ */

/* The counts when a table was opened, to tell its objects from others',
 * and the bound it was opened with. */
struct ledger {
	uint64_t created_at_open, destroyed_at_open;
	uint64_t bound; /* 0: not bounded */
};

/* The distinct keys workload w can ask for, which a bounded table's bound
 * is half of.  insert has no fixed number (every get is a new key): it
 * gets uniform's, as does the fill for bytes per entry (BENCH_NWORKLOADS). */
static uint64_t workload_keys(const struct bench_config *cfg, enum bench_workload w)
{
	switch (w) {
	case BENCH_HOT:
		return 1;
	case BENCH_ZIPF:
		return cfg->zipf_keys;
	case BENCH_STAMPEDE:
		return cfg->stampede_rounds;
	default:
		return cfg->uniform_keys;
	}
}

static void *table_open(const struct bench_config *cfg, const struct bench_impl *impl,
                        enum bench_workload w, struct ledger *l)
{
	l->created_at_open = bench_objects_created();
	l->destroyed_at_open = bench_objects_destroyed();
	l->bound = 0;
	if (impl->open_bounded == NULL)
		return impl->open();
	uint64_t half = workload_keys(cfg, w) / 2;
	l->bound = half > 0 ? half : 1;
	return impl->open_bounded(l->bound);
}

static uint64_t table_creations(const struct ledger *l)
{
	return bench_objects_created() - l->created_at_open;
}

/* Any count will do (the table's own counts must still agree). */
#define ANY_COUNT UINT64_MAX

/* What a table was asked for, as its check at close needs it. */
struct asked {
	uint64_t keys; /* distinct keys, or ANY_COUNT */
	bool again;    /* some key was asked for again after its first get (hot,
	                  uniform, zipf), so a bounded table may have evicted it
	                  and created it again; else (insert, stampede, the
	                  bytes/entry fill) never */
};

/*
 * A bounded table's check, once count() has had it destroy what it evicted
 * (impl.h): every object it created was destroyed once, evicted (before
 * close) or held (by close), and nothing else was destroyed before close
 * (its own count of evictions); it held at most its bound plus its slack,
 * and at most one object per key; it created every key asked for, and
 * created one again only after evicting it: exactly once per key when no
 * key was asked for again, else at most once more per eviction.  Says what
 * it checked on stderr (as progress), or what failed.
 */
static int bounded_checked(const struct bench_impl *impl, const char *what,
                           const struct ledger *l, struct asked asked, uint64_t created,
                           uint64_t evicted, uint64_t early, uint64_t count, uint64_t destroyed)
{
	const char *wrong = NULL;
	bool keys_known = asked.keys != ANY_COUNT;
	if (created != early + count || count != destroyed)
		wrong = "objects not destroyed exactly once";
	else if (early != evicted)
		wrong = "objects destroyed before close are not the evicted ones";
	else if (count > l->bound + impl->bound_slack)
		wrong = "more objects held than the bound";
	else if (keys_known && count > asked.keys)
		wrong = "more objects held than keys asked for";
	else if (keys_known && created < asked.keys)
		wrong = "a key asked for was never created";
	else if (keys_known && !asked.again && created != asked.keys)
		wrong = "a key asked for once was created twice";
	else if (keys_known && created - asked.keys > evicted)
		wrong = "more keys created again than evicted";
	fprintf(stderr,
	        "mementos-bench: %s %s: bounded table %s: at most %llu (+%llu) held, %llu at close; "
	        "%llu created, %llu evicted, %llu destroyed before close, %llu at close",
	        impl->name, what, wrong != NULL ? "check FAILED" : "checked",
	        (unsigned long long)l->bound, (unsigned long long)impl->bound_slack,
	        (unsigned long long)count, (unsigned long long)created, (unsigned long long)evicted,
	        (unsigned long long)early, (unsigned long long)destroyed);
	if (keys_known)
		fprintf(stderr, "; %llu keys asked for, %s", (unsigned long long)asked.keys,
		        asked.again ? "created again only after evictions" : "each created once");
	fprintf(stderr, "%s%s\n", wrong != NULL ? ": " : "", wrong != NULL ? wrong : "");
	return wrong != NULL ? -1 : 0;
}

/* Closes table: 0 when created == count() == destroyed == the keys asked
 * for and nothing was destroyed before close, or, for a bounded table, when
 * bounded_checked passes. */
static int table_close_checked(const struct bench_impl *impl, void *table,
                               const struct ledger *l, struct asked asked, const char *what)
{
	uint64_t count = impl->count(table); /* first: a bounded table settles its evictions */
	uint64_t created = table_creations(l);
	uint64_t destroyed_before = bench_objects_destroyed();
	uint64_t early = destroyed_before - l->destroyed_at_open;
	if (l->bound != 0) {
		uint64_t evicted = impl->evictions(table);
		impl->close(table);
		uint64_t destroyed = bench_objects_destroyed() - destroyed_before;
		return bounded_checked(impl, what, l, asked, created, evicted, early, count,
		                       destroyed);
	}
	impl->close(table);
	uint64_t destroyed = bench_objects_destroyed() - destroyed_before;
	if (created == count && count == destroyed && early == 0 &&
	    (asked.keys == ANY_COUNT || created == asked.keys))
		return 0;
	fprintf(stderr,
	        "mementos-bench: %s %s: exactly-once creation violated: %llu created, count() %llu, "
	        "%llu destroyed before close, %llu at close",
	        impl->name, what, (unsigned long long)created, (unsigned long long)count,
	        (unsigned long long)early, (unsigned long long)destroyed);
	if (asked.keys != ANY_COUNT)
		fprintf(stderr, ", %llu keys asked for", (unsigned long long)asked.keys);
	fputc('\n', stderr);
	return -1;
}

/* ---- statistics ------------------------------------------------------------------------------ */

struct rep {
	uint64_t ops;
	double seconds, mops;
	uint64_t creations;
};

static int cmp_rep_mops(const void *a, const void *b)
{
	double x = ((const struct rep *)a)->mops, y = ((const struct rep *)b)->mops;
	return (x > y) - (x < y);
}

/* The repetition with the median throughput (for an even count, the lower
 * of the two middle ones, so that the row is one real run). */
static struct rep rep_median(struct rep *reps, unsigned n)
{
	qsort(reps, n, sizeof *reps, cmp_rep_mops);
	return reps[(n - 1) / 2];
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentiles of every thread's samples together. */
static void percentiles(const struct bench_samples *s, unsigned threads, struct bench_row *row)
{
	size_t n = 0;
	for (unsigned t = 0; t < threads; t++)
		n += s[t].n;
	uint32_t *all = n != 0 ? malloc(n * sizeof *all) : NULL;
	if (all == NULL)
		return; /* no samples (or no memory): the fields stay empty */
	size_t at = 0;
	for (unsigned t = 0; t < threads; t++) {
		memcpy(all + at, s[t].ns, s[t].n * sizeof *all);
		at += s[t].n;
	}
	qsort(all, n, sizeof *all, cmp_u32);
	const double q[3] = { 0.50, 0.99, 0.999 };
	double *out[3] = { &row->p50_ns, &row->p99_ns, &row->p999_ns };
	for (int i = 0; i < 3; i++) {
		size_t rank = (size_t)ceil(q[i] * (double)n);
		*out[i] = all[rank > 0 ? rank - 1 : 0];
	}
	free(all);
}

/* ---- one point of a timed workload -------------------------------------------------------------- */

struct point {
	const struct bench_config *cfg;
	const struct bench_impl *impl;
	enum bench_workload w;
	unsigned threads;
	const struct bench_stream *stream; /* uniform and zipf; NULL otherwise */
	void *table;                       /* hot and uniform: filled, kept */
	const struct ledger *ledger;       /* the filled table's */
	struct bench_source *sources;
	struct bench_samples *samples;     /* uniform and zipf; NULL otherwise */
	uint64_t *ops;
	size_t *cursor; /* uniform and zipf: where the next run reads the stream */
};

static void point_sources(struct point *p)
{
	for (unsigned t = 0; t < p->threads; t++) {
		struct bench_source *s = &p->sources[t];
		switch (p->w) {
		case BENCH_HOT:
			*s = (struct bench_source){ .base = HOT_KEY, .stream = index_zero };
			break;
		case BENCH_UNIFORM:
		case BENCH_ZIPF:
			*s = (struct bench_source){
				.base = p->w == BENCH_UNIFORM ? UNIFORM_BASE : ZIPF_BASE,
				.stream = p->stream->index,
				.start = p->stream->len / p->threads * t,
				.mask = p->stream->len - 1,
			};
			break;
		default:
			*s = (struct bench_source){ .base = (uint64_t)(t + 1) << INSERT_SHIFT };
			break;
		}
	}
}

/* The distinct zipf keys that a run asked for: what it must have created. */
static int zipf_distinct(const struct point *p, uint64_t *distinct)
{
	uint64_t nbits = p->cfg->zipf_keys;
	uint64_t *seen = calloc((nbits + 63) / 64, sizeof *seen);
	if (seen == NULL) {
		fprintf(stderr, "mementos-bench: out of memory counting keys\n");
		return -1;
	}
	for (unsigned t = 0; t < p->threads; t++) {
		const struct bench_source *s = &p->sources[t];
		/* Past one lap of the stream the keys repeat. */
		uint64_t n = p->ops[t] < p->stream->len ? p->ops[t] : p->stream->len;
		for (uint64_t i = 0; i < n; i++) {
			uint32_t k = s->stream[(s->start + i) & s->mask];
			seen[k / 64] |= UINT64_C(1) << (k % 64);
		}
	}
	uint64_t count = 0;
	for (uint64_t i = 0; i < (nbits + 63) / 64; i++)
		count += (uint64_t)__builtin_popcountll(seen[i]);
	free(seen);
	*distinct = count;
	return 0;
}

/*
 * Each run reads the stream from where the run before it, of any point of
 * the workload, stopped: thread t at cursor + len / threads * t.  Runs that
 * started at one offset all asked for the keys the previous run had just
 * pulled into the caches: the later points (more threads) and repetitions
 * ran warmer than the first, and on a machine with a large last-level
 * cache one thread's point looked slow next to two threads' (issue 13's
 * Intel run: floor and tbb 2.4x from one thread to two on two vCPUs).
 */
static void point_starts(struct point *p)
{
	if (p->cursor == NULL)
		return;
	for (unsigned t = 0; t < p->threads; t++)
		p->sources[t].start = (*p->cursor + p->stream->len / p->threads * t) & (p->stream->len - 1);
}

static void point_advance(struct point *p)
{
	if (p->cursor == NULL)
		return;
	uint64_t most = 0;
	for (unsigned t = 0; t < p->threads; t++)
		most = p->ops[t] > most ? p->ops[t] : most;
	*p->cursor = (*p->cursor + (size_t)most) & (p->stream->len - 1);
}

/* One repetition.  zipf and insert start from an empty table each time;
 * hot and uniform reuse the filled one, and must create nothing. */
static int point_rep(struct point *p, struct rep *out)
{
	point_starts(p);
	bool fresh = p->table == NULL;
	struct ledger ledger;
	void *table = fresh ? table_open(p->cfg, p->impl, p->w, &ledger) : p->table;
	if (table == NULL)
		return -1;
	uint64_t created_before = bench_objects_created();
	struct bench_timed run = {
		.impl = p->impl,
		.table = table,
		.threads = p->threads,
		.run_ns = p->cfg->run_ns,
		.batch = p->cfg->batch,
		.sources = p->sources,
		.samples = p->samples,
		.ops = p->ops,
	};
	int rc = bench_timed_run(&run);
	uint64_t created = bench_objects_created() - created_before;
	if (rc == 0)
		point_advance(p);

	/* A bounded table may have evicted keys of the fill, which a run then
	 * creates again: its creations are checked when it closes. */
	if (rc == 0 && !fresh && created != 0 && p->impl->open_bounded == NULL) {
		fprintf(stderr, "mementos-bench: %s %s: %llu creations in a run of hits\n",
		        p->impl->name, bench_workload_names[p->w], (unsigned long long)created);
		rc = -1;
	}
	if (fresh) {
		/* insert asks for each key once; zipf for some again. */
		struct asked asked = { ANY_COUNT, p->w != BENCH_INSERT };
		if (rc == 0 && p->w == BENCH_INSERT)
			asked.keys = run.total_ops;
		else if (rc == 0 && p->w == BENCH_ZIPF && zipf_distinct(p, &asked.keys) != 0)
			rc = -1;
		if (table_close_checked(p->impl, table, &ledger, asked,
		                        bench_workload_names[p->w]) != 0)
			rc = -1;
	}
	*out = (struct rep){
		.ops = run.total_ops,
		.seconds = run.seconds,
		.mops = run.seconds > 0 ? (double)run.total_ops / run.seconds / 1e6 : 0,
		.creations = created,
	};
	return rc;
}

static void progress(const struct point *p, const char *what)
{
	fprintf(stderr, "mementos-bench: %s %s threads=%u%s: %s\n", p->impl->name,
	        bench_workload_names[p->w], p->threads,
	        p->threads > p->cfg->cores ? " (more threads than online cores)" : "", what);
}

static int point_run(struct point *p, int fd)
{
	unsigned reps = p->cfg->reps;
	struct rep rep[reps];
	for (unsigned t = 0; t < p->threads && p->samples != NULL; t++)
		p->samples[t].n = 0;
	point_sources(p);
	for (unsigned r = 0; r < reps; r++)
		if (point_rep(p, &rep[r]) != 0)
			return -1;

	struct rep median = rep_median(rep, reps);
	struct bench_row row = row_empty(p->w, p->threads);
	row.ops = (double)median.ops;
	row.seconds = median.seconds;
	row.mops = median.mops;
	row.ns_per_op = median.ops != 0 ? median.seconds * p->threads * 1e9 / (double)median.ops : NAN;
	/* A filled table's: since it was opened (a bounded one's grow). */
	row.creations = (double)(p->table != NULL ? table_creations(p->ledger) : median.creations);
	if (p->samples != NULL)
		percentiles(p->samples, p->threads, &row);

	char what[160];
	int n = snprintf(what, sizeof what, "%.2f Mops/s (median of %u)", row.mops, reps);
	if (p->table != NULL && p->impl->open_bounded != NULL && n > 0 && (size_t)n < sizeof what)
		snprintf(what + n, sizeof what - (size_t)n,
		         "; %llu creations of evicted keys (%.1f%% of gets; checked at close)",
		         (unsigned long long)median.creations,
		         median.ops != 0 ? 100.0 * (double)median.creations / (double)median.ops : 0.0);
	progress(p, what);
	return row_send(fd, &row);
}

/* Every thread count of a timed workload. */
/*
 * A filled table's first runs come just after the fill, and ran slower than
 * the same runs later (on the dev VM, 1 thread uniform: tbb 246 ns per get
 * first, 222 ns once the 2-thread point had run; the floor 220 and 216):
 * whichever point came first looked penalised.  So hot and uniform run
 * untimed on one thread for WARM_UP_RUNS runs before their first point.
 */
#define WARM_UP_RUNS 3

/* Runs p's table (a copy of p, on one thread) untimed, before its points. */
static int warm_up(const struct point *p)
{
	struct point one = *p;
	one.threads = 1;
	point_sources(&one);
	for (int r = 0; r < WARM_UP_RUNS; r++) {
		struct rep ignored;
		if (point_rep(&one, &ignored) != 0)
			return -1;
	}
	return 0; /* the samples it took are emptied by the first point */
}

static int timed_workload(const struct bench_config *cfg, const struct bench_impl *impl,
                          enum bench_workload w, const struct bench_stream *stream,
                          void *table, const struct ledger *ledger, int fd)
{
	unsigned most = 1;
	for (unsigned i = 0; i < cfg->nthreads; i++)
		most = cfg->threads[i] > most ? cfg->threads[i] : most;
	bool sampled = w == BENCH_UNIFORM || w == BENCH_ZIPF;
	struct bench_source *sources = calloc(most, sizeof *sources);
	struct bench_samples *samples = sampled ? calloc(most, sizeof *samples) : NULL;
	uint64_t *ops = calloc(most, sizeof *ops);
	int rc = sources != NULL && ops != NULL && (!sampled || samples != NULL) ? 0 : -1;
	size_t share = SAMPLES_PER_POINT / most;
	share = share > SAMPLES_PER_THREAD_MIN ? share : SAMPLES_PER_THREAD_MIN;
	for (unsigned t = 0; t < most && sampled && rc == 0; t++) {
		samples[t].cap = share;
		samples[t].ns = malloc(share * sizeof *samples[t].ns);
		rc = samples[t].ns != NULL ? 0 : -1;
	}
	if (rc != 0)
		fprintf(stderr, "mementos-bench: out of memory for %u threads\n", most);

	size_t cursor = 0;
	struct point p = {
		.cfg = cfg,
		.impl = impl,
		.w = w,
		.stream = stream,
		.table = table,
		.ledger = ledger,
		.sources = sources,
		.samples = samples,
		.ops = ops,
		.cursor = stream != NULL ? &cursor : NULL,
	};
	if (table != NULL && rc == 0)
		rc = warm_up(&p);
	for (unsigned i = 0; i < cfg->nthreads && rc == 0; i++) {
		p.threads = cfg->threads[i];
		rc = point_run(&p, fd);
	}

	for (unsigned t = 0; t < most && samples != NULL; t++)
		free(samples[t].ns);
	free(samples);
	free(sources);
	free(ops);
	return rc;
}

/* ---- the workloads ------------------------------------------------------------------------------------ */

static int send_memory(double bytes_per_entry, int fd)
{
	struct bench_row row = row_empty(BENCH_NWORKLOADS, 0);
	row.kind = BENCH_ROW_MEMORY;
	row.bytes_per_entry = bytes_per_entry;
	return row_send(fd, &row);
}

/* hot and uniform: one filled table for every thread count. */
static int filled_workload(const struct bench_config *cfg, const struct bench_impl *impl,
                           enum bench_workload w, const struct bench_stream *uniform, int fd)
{
	struct ledger ledger;
	void *table = table_open(cfg, impl, w, &ledger);
	if (table == NULL)
		return -1;
	size_t keys = w == BENCH_HOT ? 1 : cfg->uniform_keys;
	int rc;
	if (w == BENCH_HOT) {
		rc = bench_fill(impl, table, HOT_KEY, 1, cfg->batch);
	} else {
		double bytes_per_entry;
		fprintf(stderr, "mementos-bench: %s uniform: filling %zu keys\n", impl->name, keys);
		rc = bench_fill_measured(impl, table, UNIFORM_BASE, keys, cfg->batch, &bytes_per_entry);
		if (rc == 0)
			rc = send_memory(bytes_per_entry, fd);
	}
	if (rc == 0)
		rc = timed_workload(cfg, impl, w, w == BENCH_UNIFORM ? uniform : NULL, table, &ledger,
		                    fd);
	struct asked asked = { keys, true }; /* the runs ask again */
	if (table_close_checked(impl, table, &ledger, asked, bench_workload_names[w]) != 0)
		rc = -1;
	return rc;
}

/* Bytes per entry alone, when uniform (which measures it) does not run. */
static int memory_only(const struct bench_config *cfg, const struct bench_impl *impl, int fd)
{
	struct ledger ledger;
	void *table = table_open(cfg, impl, BENCH_NWORKLOADS, &ledger);
	if (table == NULL)
		return -1;
	double bytes_per_entry;
	fprintf(stderr, "mementos-bench: %s: filling %zu keys for bytes/entry\n", impl->name,
	        cfg->uniform_keys);
	int rc = bench_fill_measured(impl, table, UNIFORM_BASE, cfg->uniform_keys, cfg->batch,
	                             &bytes_per_entry);
	struct asked asked = { cfg->uniform_keys, false };
	if (table_close_checked(impl, table, &ledger, asked, "bytes/entry fill") != 0)
		rc = -1;
	return rc == 0 ? send_memory(bytes_per_entry, fd) : -1;
}

static int stampede_workload(const struct bench_config *cfg, const struct bench_impl *impl,
                             int fd)
{
	for (unsigned i = 0; i < cfg->nthreads; i++) {
		struct point p = { .cfg = cfg, .impl = impl, .w = BENCH_STAMPEDE,
		                   .threads = cfg->threads[i] };
		struct ledger ledger;
		void *table = table_open(cfg, impl, BENCH_STAMPEDE, &ledger);
		if (table == NULL)
			return -1;
		struct bench_stampede_result res;
		int rc = bench_stampede_run(impl, table, p.threads, cfg->stampede_rounds, STAMPEDE_BASE,
		                            &res);
		/* A new key each round, asked for in that round only. */
		struct asked asked = { cfg->stampede_rounds, false };
		if (table_close_checked(impl, table, &ledger, asked, "stampede") != 0)
			rc = -1;
		if (rc != 0)
			return -1;

		struct bench_row row = row_empty(BENCH_STAMPEDE, p.threads);
		row.ops = (double)res.ops;
		row.seconds = res.seconds;
		/* Throughput of waiting, mostly: each get lasts about one creation. */
		row.mops = res.seconds > 0 ? (double)res.ops / res.seconds / 1e6 : NAN;
		row.ns_per_op = res.ops != 0 ? res.seconds * p.threads * 1e9 / (double)res.ops : NAN;
		row.creations = (double)res.max_creations;
		row.worst_wake_us = res.worst_wake_us;
		char what[96];
		snprintf(what, sizeof what, "1 creation per round, worst wake %.1f us (%u rounds)",
		         res.worst_wake_us, cfg->stampede_rounds);
		progress(&p, what);
		if (row_send(fd, &row) != 0)
			return -1;
	}
	return 0;
}

int bench_workload_run(const struct bench_config *cfg, const struct bench_impl *impl,
                       enum bench_workload w, const struct bench_stream *uniform,
                       const struct bench_stream *zipf, int fd)
{
	switch (w) {
	case BENCH_HOT:
	case BENCH_UNIFORM:
		bench_object_set_cost(BENCH_COST_NONE, 0);
		return filled_workload(cfg, impl, w, uniform, fd);
	case BENCH_ZIPF:
		bench_object_set_cost(BENCH_COST_SPIN, cfg->spin_iters);
		return timed_workload(cfg, impl, w, zipf, NULL, NULL, fd);
	case BENCH_INSERT:
		bench_object_set_cost(BENCH_COST_NONE, 0);
		return timed_workload(cfg, impl, w, NULL, NULL, NULL, fd);
	case BENCH_STAMPEDE:
		bench_object_set_cost(BENCH_COST_SLEEP, cfg->stampede_sleep_ns);
		return stampede_workload(cfg, impl, fd);
	default:
		bench_object_set_cost(BENCH_COST_NONE, 0);
		return memory_only(cfg, impl, fd);
	}
}
