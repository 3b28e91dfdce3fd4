/*
 * bench_driver.h: what the files of mementos-bench's driver share.  Private
 * to the driver; implementations see only impl.h.
 *
 *   bench.c           command line, one forked child per (impl, workload), CSV
 *   bench_object.c    bench_object_create/destroy, creation costs, counters
 *   bench_keys.c      the pregenerated key streams: uniform and Zipf samples
 *   bench_gate.c      holds new threads until all are ready
 *   bench_timed.c     a timed phase: threads, a fixed duration, latency samples
 *   bench_stampede.c  rounds of threads asking at once for one slow new key
 *   bench_memory.c    the single-threaded fill, and bytes per entry from RSS
 *   bench_workload.c  each workload from tables to checked rows
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTOS_BENCH_DRIVER_H
#define MEMENTOS_BENCH_DRIVER_H

#include "impl.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the implementations (bench/impls.c) ------------------------------------ */

extern const struct bench_impl *const bench_impls[];
extern const size_t bench_nimpls;

/* ---- workloads and the run's settings ------------------------------------------ */

enum bench_workload {
	BENCH_HOT,
	BENCH_UNIFORM,
	BENCH_ZIPF,
	BENCH_INSERT,
	BENCH_STAMPEDE,
	BENCH_NWORKLOADS
};

extern const char *const bench_workload_names[BENCH_NWORKLOADS];

/* Only hot and uniform are all hits; a HITS_ONLY implementation runs those. */
bool bench_workload_all_hits(enum bench_workload w);

#define BENCH_MAX_THREAD_COUNTS 16

struct bench_config {
	const char *mode;           /* "full", "quick" or "smoke" */
	unsigned reps;              /* timed runs per point; the median is reported */
	uint64_t run_ns;            /* duration of one timed run */
	size_t uniform_keys;        /* keys filled for uniform, and for bytes/entry */
	uint64_t zipf_keys;         /* possible keys of zipf */
	double zipf_theta;
	size_t uniform_stream_len;  /* samples pregenerated; powers of two */
	size_t zipf_stream_len;
	unsigned stampede_rounds;
	uint64_t stampede_sleep_ns; /* the creation's cost in stampede */
	uint64_t spin_iters;        /* about 1 us of spinning: zipf's creation cost */
	unsigned batch;             /* gets per batch, for implementations with batches */
	unsigned threads[BENCH_MAX_THREAD_COUNTS];
	unsigned nthreads;
	unsigned cores;             /* online when the run started */
};

/* Gets per batch unless --batch says otherwise, and the most it takes. */
#define BENCH_BATCH_DEFAULT 64
#define BENCH_BATCH_MAX 65536

/* The bounds of a batch (impl.h), for implementations that have them. */
static inline int bench_batch_begin(const struct bench_impl *impl, void *table)
{
	return impl->begin_batch != NULL ? impl->begin_batch(table) : 0;
}

static inline void bench_batch_end(const struct bench_impl *impl, void *table)
{
	if (impl->end_batch != NULL)
		impl->end_batch(table);
}

/* ---- objects and their creation cost (bench_object.c) ------------------------------ */

enum bench_cost_kind {
	BENCH_COST_NONE,
	BENCH_COST_SPIN,  /* spin_iters of dependent arithmetic */
	BENCH_COST_SLEEP, /* sleep, then stamp the end time in the object */
};

/* Set by the child before it starts any thread; read by every creation. */
void bench_object_set_cost(enum bench_cost_kind kind, uint64_t amount);

/* Loop iterations of the spin that take about ns nanoseconds here. */
uint64_t bench_spin_calibrate(uint64_t ns);

/* Creations and destructions so far in this process.  Exact only when no
 * thread is inside bench_object_create/destroy (after joins, barriers). */
uint64_t bench_objects_created(void);
uint64_t bench_objects_destroyed(void);

/* Where stampede keeps the CLOCK_MONOTONIC ns at which the creation ended. */
#define BENCH_OBJECT_CREATED_AT 0

uint64_t bench_now_ns(void);
void bench_sleep_ns(uint64_t ns);

/* splitmix64: the driver's only random numbers, seeded, so runs repeat. */
uint64_t bench_random(uint64_t *state);

/* ---- key streams (bench_keys.c) ----------------------------------------------------- */

/*
 * Indices pregenerated before anything is timed, shared read-only by every
 * child (built in the parent before the forks).  len is a power of two;
 * thread t of T reads from t * len / T on, cyclically.
 */
struct bench_stream {
	uint32_t *index;
	size_t len;
};

int bench_stream_uniform(struct bench_stream *s, size_t len, uint32_t n, uint64_t seed);
int bench_stream_zipf(struct bench_stream *s, size_t len, uint64_t n, double theta,
                      uint64_t seed);
void bench_stream_free(struct bench_stream *s);

/* ---- the start gate (bench_gate.c) ------------------------------------------------------ */

/* Holds new threads until all of them are ready (registered with the
 * implementation), then lets them go together; or, when one of them could
 * not be started, sends the others home. */
struct bench_gate {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	unsigned ready;
	enum { BENCH_GATE_SHUT, BENCH_GATE_OPEN, BENCH_GATE_ABORTED } state;
};

void bench_gate_init(struct bench_gate *g);
void bench_gate_destroy(struct bench_gate *g);
/* A new thread: announces itself and waits; true when the gate opened. */
bool bench_gate_pass(struct bench_gate *g);
/* The starting thread: waits until n threads are ready and opens the gate,
 * or aborts it at once. */
void bench_gate_release(struct bench_gate *g, unsigned n, bool abort);

/* ---- a timed phase (bench_timed.c) ------------------------------------------------------ */

/* Where one thread's keys come from: base + stream.index[(start + i) & mask]
 * for its i-th get, or base + i without a stream (every get a new key). */
struct bench_source {
	uint64_t base;
	const uint32_t *stream;
	size_t start, mask;
};

/* The i-th key a source gives: from its stream, or base + i without one. */
static inline uint64_t bench_source_key(const struct bench_source *src, uint64_t i)
{
	return src->base + (src->stream != NULL ? src->stream[(src->start + i) & src->mask] : i);
}

/* Latency samples of one thread, kept over the repetitions of one point. */
struct bench_samples {
	uint32_t *ns;
	size_t n, cap;
};

/* Every this-many-th get is timed when latency is sampled. */
#define BENCH_SAMPLE_EVERY 64

struct bench_timed {
	const struct bench_impl *impl;
	void *table;
	unsigned threads;
	uint64_t run_ns;
	unsigned batch;                       /* gets per batch (impl.h's batches) */
	const struct bench_source *sources;   /* one per thread */
	struct bench_samples *samples;        /* one per thread, or NULL */
	/* Filled in by bench_timed_run: */
	uint64_t *ops;                        /* one per thread */
	uint64_t total_ops;
	double seconds;
};

/* Runs one timed phase.  0, or -1 after a message (a failed get, a wrong
 * object, or no thread could start). */
int bench_timed_run(struct bench_timed *run);

/* ---- stampede (bench_stampede.c) ------------------------------------------------------------ */

struct bench_stampede_result {
	uint64_t ops;
	double seconds;         /* from each round's release to its last return */
	uint64_t max_creations; /* per round: must be 1 */
	double worst_wake_us;
};

int bench_stampede_run(const struct bench_impl *impl, void *table, unsigned threads,
                       unsigned rounds, uint64_t first_key, struct bench_stampede_result *out);

/* ---- memory (bench_memory.c) ------------------------------------------------------------------ */

/* Single-threaded: keys base .. base + n - 1, through fill (or get, in
 * batches of `batch` gets when the implementation has batches, when it has
 * no fill).  0, or -1 after a message. */
int bench_fill(const struct bench_impl *impl, void *table, uint64_t base, size_t n,
               unsigned batch);

/* bench_fill, with the resident set size read before and after: bytes per
 * entry in *bytes_per_entry. */
int bench_fill_measured(const struct bench_impl *impl, void *table, uint64_t base, size_t n,
                        unsigned batch, double *bytes_per_entry);

/* ---- rows (bench_workload.c runs them, bench.c prints them) ------------------------------------- */

/* One CSV row, or the bytes-per-entry figure of an implementation; sent from
 * the child to the parent as is (same binary, same layout).  NAN: empty. */
struct bench_row {
	enum { BENCH_ROW_POINT, BENCH_ROW_MEMORY } kind;
	enum bench_workload workload;
	unsigned threads;
	double ops, seconds, mops, ns_per_op;
	double p50_ns, p99_ns, p999_ns;
	double bytes_per_entry;
	double creations;
	double worst_wake_us;
};

/*
 * In the child: runs workload w for every thread count (or only the
 * bytes-per-entry fill when w is BENCH_NWORKLOADS), writing rows to fd.
 * uniform measures bytes per entry with its own fill and sends that too.
 * 0, or -1 after a message.
 */
int bench_workload_run(const struct bench_config *cfg, const struct bench_impl *impl,
                       enum bench_workload w, const struct bench_stream *uniform,
                       const struct bench_stream *zipf, int fd);

#endif /* MEMENTOS_BENCH_DRIVER_H */
