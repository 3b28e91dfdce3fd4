/*
 * mementos-bench: get-or-create under contention, mementos against other
 * caches that also create each key's object exactly once (bench/impl_*.c).
 *
 * The parent parses the command line, calibrates the creation spin and
 * pregenerates the key streams; then, for each (implementation, workload),
 * it forks a child that runs the workload at every thread count and sends
 * its rows back through a pipe.  The parent never starts a thread, so every
 * fork copies a single-threaded process, and no allocator state or memory
 * carries over from one child to the next.  It prints the rows as CSV.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "bench_driver.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define STREAM_SEED_UNIFORM UINT64_C(0x756e69666f726d)
#define STREAM_SEED_ZIPF UINT64_C(0x7a697066)

/* ---- usage ------------------------------------------------------------------------ */

static void usage(FILE *out)
{
	fputs(
"usage: mementos-bench [--quick | --smoke] [--impl LIST] [--workload LIST]\n"
"                      [--threads LIST] [--rounds N] [--batch N] [--seconds S]\n"
"       mementos-bench --list | --help\n"
"\n"
"Runs get-or-create workloads against caches that each create a key's object\n"
"exactly once, and prints CSV on stdout; progress goes to stderr.\n"
"\n"
"  --impl LIST      implementations, comma-separated (default: all built in)\n"
"  --workload LIST  comma-separated, of hot,uniform,zipf,insert,stampede\n"
"                   (default: all)\n"
"  --threads LIST   thread counts, comma-separated (default: 1,2,4,8)\n"
"  --rounds N       run the whole selection N times (1 to 99, default 1), the\n"
"                   implementations in a rotated order each round, and report\n"
"                   for each point the round with the median throughput: on a\n"
"                   shared machine, load that comes and goes then falls on\n"
"                   every implementation alike\n"
"  --batch N        gets per batch, for the implementations that have batches\n"
"                   (below): 1 to 65536, default 64\n"
"  --seconds S      each timed run lasts S seconds (0.001 to 600), instead of\n"
"                   the mode's 1, 0.1 (quick) or 0.005 (smoke)\n"
"  --quick          3 runs of 0.1 s per point, 5 stampede rounds: the whole\n"
"                   default run in under a minute on 2 cores\n"
"  --smoke          tiny sizes, a few ms per point, 1 ms stampede creation:\n"
"                   checks in seconds that the driver and every implementation\n"
"                   work, exactly-once creation included\n"
"  (neither)        full: 5 runs of 1 s per point, 10 stampede rounds\n"
"  --list           the implementations built in, and the workloads\n"
"  --help           this text\n"
"\n"
"Workloads (full and quick sizes; --smoke shrinks them):\n"
"  hot       every thread gets one key, created before timing: all hits\n"
"  uniform   1,000,000 keys filled first by one thread, then uniformly random\n"
"            gets: all hits\n"
"  zipf      Zipf(0.99) over 10,000,000 possible keys, each created on first\n"
"            use by about 1 us of spinning\n"
"  insert    every get is a new key (threads use disjoint ranges): the miss\n"
"            path and table growth\n"
"  stampede  threads released by a barrier all ask for one new key whose\n"
"            creation sleeps 10 ms; a new key each round\n"
"The floor (hits only: a prefilled ck_hs, no cache) runs hot and uniform.\n"
"Keys come from streams pregenerated before timing (zipf, uniform), read\n"
"cyclically from a different offset by each thread.\n"
"\n"
"Batches: mementos-guarded and mementos-bounded (guarded classes) hold one\n"
"guard of the cache per batch of gets, as a server holds one per request.\n"
"The timed loop and the fill run their gets in batches of --batch gets and\n"
"read the stop flag between batches (a run may overshoot by one batch); a\n"
"stampede get is a batch of its own, which ends before the thread waits at\n"
"the round's barrier.  Every object is checked inside its batch.  The other\n"
"implementations have no batches.\n"
"\n"
"Bounds: mementos-bounded holds at most max(1, keys / 2) objects, half the\n"
"distinct keys the workload can ask for: hot 1 (bound 1); uniform and the\n"
"bytes/entry fill their 1,000,000 keys (500,000); zipf its 10,000,000\n"
"possible keys (5,000,000); stampede its rounds (2 quick, 5 full); insert,\n"
"which has no fixed keys, gets uniform's (500,000).  --smoke: 500 for\n"
"uniform, the fill and insert, 5,000 for zipf, 1 for stampede.  mementos\n"
"keeps the bound per writer shard, so the table may hold 15 more.  It\n"
"evicts, and creates an evicted key again when asked for it: its uniform\n"
"runs are not all hits, while hot's one key stays.  Each repetition and\n"
"thread count reads the uniform stream from the same offsets, so a run\n"
"finds keys that earlier runs created again: its share of gets that\n"
"create (about 45% at 1 thread, 20% at 2 in --quick) is on stderr.\n"
"\n"
"Each (implementation, workload) runs in its own child process.  Each point\n"
"(implementation, workload, threads) is run several times, each run for a\n"
"fixed duration; a row reports the run of median throughput.  Every get's\n"
"object is checked to be its key's, and every table to have created each\n"
"key once: objects created == count() == objects destroyed by close == keys\n"
"asked for, none destroyed before close.  A bounded table (mementos-bounded)\n"
"is checked instead, after it destroyed what it evicted, for: objects\n"
"created == destroyed before close + count(), count() == destroyed by close,\n"
"destroyed before close == evicted (the table's own count), count() <=\n"
"bound + 15 and <= keys asked for, every key asked for created, and created\n"
"again only after evictions (created - keys <= evicted); exactly once per\n"
"key where each key is asked for once (insert, stampede, the bytes/entry\n"
"fill).  A stampede round still creates its key exactly once (checked per\n"
"round for every implementation).  It says what it checked on stderr for\n"
"each table.  Any failure: a message, and exit status 1.  Bad arguments:\n"
"usage, and exit status 2.\n"
"\n"
"CSV columns (empty where a value does not apply):\n"
"  impl, workload, threads\n"
"  cores            online cores when the run started\n"
"  ops, seconds     gets, and wall seconds from the first thread's start to\n"
"                   the last one's end, of the reported run (stampede: over\n"
"                   all rounds, each from its release to its last return, so\n"
"                   that ns_per_op is about one creation's sleep)\n"
"  mops             ops / seconds / 1e6, all threads together\n"
"  ns_per_op        seconds * threads * 1e9 / ops: the time one get takes on\n"
"                   its thread, waiting for a core included\n"
"  p50_ns, p99_ns, p999_ns\n"
"                   (uniform, zipf) latency of one get: every 64th call is\n"
"                   timed with clock_gettime, over all runs of the point; the\n"
"                   timer's own cost (two clock_gettime calls) is included\n"
"  bytes_per_entry  growth of the resident set size (/proc/self/statm) over\n"
"                   a one-thread fill of 1,000,000 keys (--smoke: 1,000) into\n"
"                   an empty table, divided by the keys; measured once per\n"
"                   implementation, in a fresh child; includes the 32-byte\n"
"                   objects.  mementos-bounded keeps only its bound of the\n"
"                   keys filled; the growth is still divided by all of them\n"
"  creations        objects the table created: hot 1, uniform its keys, zipf\n"
"                   and insert those of the reported run (one per distinct\n"
"                   key asked for), stampede the most in one round (1).\n"
"                   zipf: creations / ops is the run's miss ratio; it falls\n"
"                   as a run goes on, so in a fixed duration a faster\n"
"                   implementation also meets fewer misses.\n"
"                   mementos-bounded: more, since it creates again the evicted\n"
"                   keys asked for (hot and uniform: since the fill, so the\n"
"                   runs of earlier thread counts included)\n"
"  worst_wake_us    (stampede) longest delay from the end of a creation to a\n"
"                   thread's return with the object, over all rounds\n"
"  oversubscribed   1 when threads > cores, else 0\n",
	      out);
}

static void bad_usage(const char *why, const char *what)
{
	fprintf(stderr, "mementos-bench: %s%s%s\n\n", why, what != NULL ? ": " : "",
	        what != NULL ? what : "");
	usage(stderr);
	exit(2);
}

/* ---- the command line --------------------------------------------------------------- */

struct selection {
	struct bench_config cfg;
	const struct bench_impl *impls[64];
	size_t nimpls;
	bool workloads[BENCH_NWORKLOADS];
	unsigned rounds;
};

static const struct bench_impl *impl_named(const char *name, size_t len)
{
	for (size_t i = 0; i < bench_nimpls; i++)
		if (strlen(bench_impls[i]->name) == len && strncmp(bench_impls[i]->name, name, len) == 0)
			return bench_impls[i];
	return NULL;
}

/* Calls take(item, len, ctx) for each comma-separated item of list. */
static void for_each_item(const char *list, void (*take)(const char *, size_t, void *), void *ctx)
{
	if (*list == '\0')
		bad_usage("empty list", NULL);
	for (const char *at = list;;) {
		size_t len = strcspn(at, ",");
		if (len == 0)
			bad_usage("empty item in list", list);
		take(at, len, ctx);
		if (at[len] == '\0')
			break;
		at += len + 1;
	}
}

static void take_impl(const char *name, size_t len, void *ctx)
{
	struct selection *sel = ctx;
	const struct bench_impl *impl = impl_named(name, len);
	if (impl == NULL) {
		fprintf(stderr, "mementos-bench: no implementation %.*s here (--list names them)\n",
		        (int)len, name);
		usage(stderr);
		exit(2);
	}
	for (size_t i = 0; i < sel->nimpls; i++)
		if (sel->impls[i] == impl)
			return;
	sel->impls[sel->nimpls++] = impl;
}

static void take_workload(const char *name, size_t len, void *ctx)
{
	struct selection *sel = ctx;
	for (int w = 0; w < BENCH_NWORKLOADS; w++) {
		if (strlen(bench_workload_names[w]) == len &&
		    strncmp(bench_workload_names[w], name, len) == 0) {
			sel->workloads[w] = true;
			return;
		}
	}
	fprintf(stderr, "mementos-bench: no workload %.*s\n", (int)len, name);
	usage(stderr);
	exit(2);
}

static void take_threads(const char *item, size_t len, void *ctx)
{
	struct selection *sel = ctx;
	char digits[16];
	unsigned long n = 0;
	if (len < sizeof digits) {
		memcpy(digits, item, len);
		digits[len] = '\0';
		char *end;
		errno = 0;
		n = strtoul(digits, &end, 10);
		if (errno != 0 || *end != '\0' || digits[0] < '0' || digits[0] > '9')
			n = 0;
	}
	if (n < 1 || n > 1024) {
		fprintf(stderr, "mementos-bench: thread counts are 1 to 1024, not %.*s\n", (int)len,
		        item);
		usage(stderr);
		exit(2);
	}
	if (sel->cfg.nthreads == BENCH_MAX_THREAD_COUNTS)
		bad_usage("too many thread counts", NULL);
	sel->cfg.threads[sel->cfg.nthreads++] = (unsigned)n;
}

static void set_mode(struct bench_config *cfg, const char *mode)
{
	cfg->mode = mode;
	cfg->zipf_theta = 0.99;
	if (strcmp(mode, "smoke") == 0) {
		cfg->reps = 2;
		cfg->run_ns = 5 * UINT64_C(1000000);
		cfg->uniform_keys = 1000;
		cfg->zipf_keys = 10000;
		cfg->uniform_stream_len = (size_t)1 << 14;
		cfg->zipf_stream_len = (size_t)1 << 14;
		cfg->stampede_rounds = 3;
		cfg->stampede_sleep_ns = UINT64_C(1000000);
		return;
	}
	bool quick = strcmp(mode, "quick") == 0;
	cfg->reps = quick ? 3 : 5;
	cfg->run_ns = quick ? UINT64_C(100000000) : UINT64_C(1000000000);
	cfg->uniform_keys = 1000000;
	cfg->zipf_keys = 10000000;
	/* Long enough that a run seldom laps its stream: a lapped zipf
	 * stream asks again for keys it already created. */
	cfg->uniform_stream_len = (size_t)1 << (quick ? 20 : 22);
	cfg->zipf_stream_len = (size_t)1 << (quick ? 22 : 24);
	cfg->stampede_rounds = quick ? 5 : 10;
	cfg->stampede_sleep_ns = 10 * UINT64_C(1000000);
}

static void list_impls(void)
{
	int width = 0;
	for (size_t i = 0; i < bench_nimpls; i++)
		width = (int)strlen(bench_impls[i]->name) > width ? (int)strlen(bench_impls[i]->name)
		                                                 : width;
	puts("implementations:");
	for (size_t i = 0; i < bench_nimpls; i++)
		printf("  %-*s %s%s\n", width, bench_impls[i]->name, bench_impls[i]->describe,
		       bench_impls[i]->flags & BENCH_IMPL_HITS_ONLY ? " (hot and uniform only)" : "");
	puts("workloads:");
	for (int w = 0; w < BENCH_NWORKLOADS; w++)
		printf("  %s\n", bench_workload_names[w]);
}

static void parse_args(int argc, char **argv, struct selection *sel)
{
	const char *mode = "full";
	bool any_workload = false;
	double seconds = 0; /* 0: the mode's */
	memset(sel, 0, sizeof *sel);
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *value = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(arg, "--list") == 0) {
			list_impls();
			exit(0);
		} else if (strcmp(arg, "--quick") == 0 || strcmp(arg, "--smoke") == 0) {
			if (strcmp(mode, "full") != 0)
				bad_usage("--quick and --smoke exclude each other", NULL);
			mode = arg + 2;
		} else if (strcmp(arg, "--rounds") == 0 && value != NULL) {
			char *end;
			long n = strtol(value, &end, 10);
			if (*value == '\0' || *end != '\0' || n < 1 || n > 99)
				bad_usage("--rounds takes a number from 1 to 99", value);
			sel->rounds = (unsigned)n;
			i++;
		} else if (strcmp(arg, "--batch") == 0 && value != NULL) {
			char *end;
			long n = strtol(value, &end, 10);
			if (*value == '\0' || *end != '\0' || n < 1 || n > BENCH_BATCH_MAX)
				bad_usage("--batch takes a number from 1 to 65536", value);
			sel->cfg.batch = (unsigned)n;
			i++;
		} else if (strcmp(arg, "--seconds") == 0 && value != NULL) {
			char *end;
			double sec = strtod(value, &end);
			if (*value == '\0' || *end != '\0' || !(sec >= 0.001 && sec <= 600))
				bad_usage("--seconds takes a number from 0.001 to 600", value);
			seconds = sec;
			i++;
		} else if (strcmp(arg, "--impl") == 0 && value != NULL) {
			for_each_item(value, take_impl, sel);
			i++;
		} else if (strcmp(arg, "--workload") == 0 && value != NULL) {
			for_each_item(value, take_workload, sel);
			any_workload = true;
			i++;
		} else if (strcmp(arg, "--threads") == 0 && value != NULL) {
			for_each_item(value, take_threads, sel);
			i++;
		} else {
			bad_usage("unknown argument, or one without its value", arg);
		}
	}
	set_mode(&sel->cfg, mode);
	if (seconds != 0)
		sel->cfg.run_ns = (uint64_t)(seconds * 1e9);
	if (sel->cfg.batch == 0)
		sel->cfg.batch = BENCH_BATCH_DEFAULT;
	if (sel->rounds == 0)
		sel->rounds = 1;
	if (sel->nimpls == 0)
		for (size_t i = 0; i < bench_nimpls; i++)
			sel->impls[sel->nimpls++] = bench_impls[i];
	for (int w = 0; w < BENCH_NWORKLOADS && !any_workload; w++)
		sel->workloads[w] = true;
	if (sel->cfg.nthreads == 0) {
		static const unsigned defaults[] = { 1, 2, 4, 8 };
		for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
			sel->cfg.threads[sel->cfg.nthreads++] = defaults[i];
	}
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	sel->cfg.cores = cores > 0 ? (unsigned)cores : 1;
}

/* ---- children ---------------------------------------------------------------------------- */

/* What the parent keeps of one implementation's rows until it prints them. */
struct impl_rows {
	struct bench_row row[BENCH_NWORKLOADS][BENCH_MAX_THREAD_COUNTS];
	bool have[BENCH_NWORKLOADS][BENCH_MAX_THREAD_COUNTS];
	double bytes_per_entry;
};

static void keep_row(const struct bench_config *cfg, struct impl_rows *rows,
                     const struct bench_row *row)
{
	if (row->kind == BENCH_ROW_MEMORY) {
		rows->bytes_per_entry = row->bytes_per_entry;
		return;
	}
	for (unsigned i = 0; i < cfg->nthreads; i++) {
		/* A thread count listed twice gets the first free place. */
		if (cfg->threads[i] == row->threads && !rows->have[row->workload][i]) {
			rows->row[row->workload][i] = *row;
			rows->have[row->workload][i] = true;
			return;
		}
	}
}

struct streams {
	struct bench_stream uniform, zipf;
};

/* Runs workload w (BENCH_NWORKLOADS: bytes per entry only) of impl in a
 * child; keeps its rows.  0 when the child exited 0. */
static int run_child(const struct selection *sel, const struct bench_impl *impl,
                     enum bench_workload w, const struct streams *streams,
                     struct impl_rows *rows)
{
	const char *what = w < BENCH_NWORKLOADS ? bench_workload_names[w] : "bytes/entry";
	int fds[2];
	if (pipe(fds) != 0) {
		perror("mementos-bench: pipe");
		return -1;
	}
	fflush(NULL); /* or the child would print the parent's buffered output again */
	pid_t pid = fork();
	if (pid < 0) {
		perror("mementos-bench: fork");
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		int rc = bench_workload_run(&sel->cfg, impl, w, &streams->uniform, &streams->zipf,
		                            fds[1]);
		close(fds[1]);
		_exit(rc == 0 ? 0 : 1);
	}

	close(fds[1]);
	struct bench_row row;
	size_t got = 0;
	for (;;) {
		ssize_t n = read(fds[0], (char *)&row + got, sizeof row - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == sizeof row) {
			keep_row(&sel->cfg, rows, &row);
			got = 0;
		}
	}
	close(fds[0]);

	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			perror("mementos-bench: waitpid");
			return -1;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		fprintf(stderr, "mementos-bench: %s %s: the child died of signal %d (%s)\n", impl->name,
		        what, WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		fprintf(stderr, "mementos-bench: %s %s: failed (exit status %d)\n", impl->name, what,
		        WEXITSTATUS(status));
	return -1;
}

/* ---- CSV ---------------------------------------------------------------------------------------- */

static void print_fixed(double v, int decimals)
{
	if (!isnan(v))
		printf("%.*f", decimals, v);
	putchar(',');
}

/* Six significant digits: stampede's throughput is a tiny number. */
static void print_significant(double v)
{
	if (!isnan(v))
		printf("%.6g", v);
	putchar(',');
}

static void print_rows(const struct bench_config *cfg, const struct bench_impl *impl,
                       const struct impl_rows *rows)
{
	for (int w = 0; w < BENCH_NWORKLOADS; w++) {
		for (unsigned i = 0; i < cfg->nthreads; i++) {
			if (!rows->have[w][i])
				continue;
			const struct bench_row *r = &rows->row[w][i];
			printf("%s,%s,%u,%u,", impl->name, bench_workload_names[w], r->threads, cfg->cores);
			print_fixed(r->ops, 0);
			print_fixed(r->seconds, 6);
			print_significant(r->mops);
			print_fixed(r->ns_per_op, 1);
			print_fixed(r->p50_ns, 0);
			print_fixed(r->p99_ns, 0);
			print_fixed(r->p999_ns, 0);
			print_fixed(rows->bytes_per_entry, 1);
			print_fixed(r->creations, 0);
			print_fixed(r->worst_wake_us, 1);
			printf("%d\n", r->threads > cfg->cores);
		}
	}
	fflush(stdout);
}

/* ---- main ------------------------------------------------------------------------------------------ */

static void say_plan(const struct selection *sel)
{
	const struct bench_config *cfg = &sel->cfg;
	fprintf(stderr, "mementos-bench: %s run; implementations:", cfg->mode);
	for (size_t i = 0; i < sel->nimpls; i++)
		fprintf(stderr, " %s", sel->impls[i]->name);
	fprintf(stderr, "; workloads:");
	for (int w = 0; w < BENCH_NWORKLOADS; w++)
		if (sel->workloads[w])
			fprintf(stderr, " %s", bench_workload_names[w]);
	fprintf(stderr, "; threads:");
	for (unsigned i = 0; i < cfg->nthreads; i++)
		fprintf(stderr, " %u", cfg->threads[i]);
	fprintf(stderr, "; %u online cores\n", cfg->cores);
	for (unsigned i = 0; i < cfg->nthreads; i++)
		if (cfg->threads[i] > cfg->cores)
			fprintf(stderr, "mementos-bench: note: %u threads exceed the %u online cores "
			                "(oversubscribed=1 in those rows)\n",
			        cfg->threads[i], cfg->cores);
	fprintf(stderr, "mementos-bench: %u runs of %.3f s per point; zipf creation spins %llu "
	                "iterations (about 1 us)\n",
	        cfg->reps, (double)cfg->run_ns / 1e9, (unsigned long long)cfg->spin_iters);
	bool batched = false;
	for (size_t i = 0; i < sel->nimpls; i++)
		batched |= sel->impls[i]->begin_batch != NULL;
	if (batched)
		fprintf(stderr, "mementos-bench: implementations with batches get in batches of %u\n",
		        cfg->batch);
	if (sel->rounds > 1)
		fprintf(stderr, "mementos-bench: %u rounds, implementations rotated; each point "
		                "reports its median round\n",
		        sel->rounds);
}

/* Builds only the streams that some child will read. */
static int make_streams(const struct selection *sel, struct streams *s)
{
	const struct bench_config *cfg = &sel->cfg;
	bool some_cache = false;
	for (size_t i = 0; i < sel->nimpls; i++)
		some_cache |= !(sel->impls[i]->flags & BENCH_IMPL_HITS_ONLY);
	memset(s, 0, sizeof *s);
	if (sel->workloads[BENCH_UNIFORM]) {
		fprintf(stderr, "mementos-bench: generating %zu uniform samples\n",
		        cfg->uniform_stream_len);
		if (bench_stream_uniform(&s->uniform, cfg->uniform_stream_len,
		                         (uint32_t)cfg->uniform_keys, STREAM_SEED_UNIFORM) != 0)
			return -1;
	}
	if (sel->workloads[BENCH_ZIPF] && some_cache) {
		fprintf(stderr, "mementos-bench: generating %zu Zipf(%.2f) samples over %llu keys\n",
		        cfg->zipf_stream_len, cfg->zipf_theta, (unsigned long long)cfg->zipf_keys);
		if (bench_stream_zipf(&s->zipf, cfg->zipf_stream_len, cfg->zipf_keys, cfg->zipf_theta,
		                      STREAM_SEED_ZIPF) != 0)
			return -1;
	}
	return 0;
}

/* Every selected workload of impl, into rows: first the one that measures
 * bytes per entry (uniform, or a fill of its own), so every row can carry it. */
static int run_impl(const struct selection *sel, const struct bench_impl *impl,
                    const struct streams *streams, struct impl_rows *rows)
{
	bool runs[BENCH_NWORKLOADS], any = false;
	for (int w = 0; w < BENCH_NWORKLOADS; w++) {
		runs[w] = sel->workloads[w] &&
		          (!(impl->flags & BENCH_IMPL_HITS_ONLY) || bench_workload_all_hits(w));
		if (sel->workloads[w] && !runs[w])
			fprintf(stderr, "mementos-bench: %s runs only workloads of hits: skipping %s\n",
			        impl->name, bench_workload_names[w]);
		any |= runs[w];
	}
	if (!any)
		return 0;

	int failed = 0;
	enum bench_workload first = runs[BENCH_UNIFORM] ? BENCH_UNIFORM : BENCH_NWORKLOADS;
	failed |= run_child(sel, impl, first, streams, rows) != 0;
	for (int w = 0; w < BENCH_NWORKLOADS; w++)
		if (runs[w] && w != BENCH_UNIFORM)
			failed |= run_child(sel, impl, (enum bench_workload)w, streams, rows) != 0;
	return failed ? -1 : 0;
}

/* ---- rounds ------------------------------------------------------------------------------------ */

static int by_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int by_row_mops(const void *a, const void *b)
{
	double x = (*(const struct bench_row *const *)a)->mops;
	double y = (*(const struct bench_row *const *)b)->mops;
	return (x > y) - (x < y);
}

/*
 * One implementation's rounds folded into one set of rows: for each point,
 * the whole row of the round whose throughput is the median (the lower of
 * the two middle ones for an even count), so that a row's columns still
 * come from one measurement; bytes per entry is the median of its own.
 */
static void median_rows(const struct bench_config *cfg, const struct impl_rows *rounds,
                        unsigned n, struct impl_rows *out)
{
	memset(out, 0, sizeof *out);
	double v[99];
	unsigned k = 0;
	for (unsigned r = 0; r < n; r++)
		if (!isnan(rounds[r].bytes_per_entry))
			v[k++] = rounds[r].bytes_per_entry;
	qsort(v, k, sizeof v[0], by_double);
	out->bytes_per_entry = k > 0 ? v[(k - 1) / 2] : NAN;
	for (int w = 0; w < BENCH_NWORKLOADS; w++) {
		for (unsigned i = 0; i < cfg->nthreads; i++) {
			const struct bench_row *rows[99];
			k = 0;
			for (unsigned r = 0; r < n; r++)
				if (rounds[r].have[w][i])
					rows[k++] = &rounds[r].row[w][i];
			if (k == 0)
				continue;
			qsort(rows, k, sizeof rows[0], by_row_mops);
			out->row[w][i] = *rows[(k - 1) / 2];
			out->have[w][i] = true;
		}
	}
}

int main(int argc, char **argv)
{
	static struct selection sel;
	parse_args(argc, argv, &sel);
	sel.cfg.spin_iters = bench_spin_calibrate(1000);
	say_plan(&sel);
	struct streams streams;
	if (make_streams(&sel, &streams) != 0) {
		fprintf(stderr, "mementos-bench: out of memory for the key streams\n");
		return 1;
	}

	puts("impl,workload,threads,cores,ops,seconds,mops,ns_per_op,p50_ns,p99_ns,p999_ns,"
	     "bytes_per_entry,creations,worst_wake_us,oversubscribed");
	/* rows[i * rounds + r]: implementation i in round r. */
	struct impl_rows *rows = calloc(sel.nimpls * sel.rounds, sizeof *rows);
	if (rows == NULL) {
		fprintf(stderr, "mementos-bench: out of memory for the results\n");
		return 1;
	}
	int failed = 0;
	for (unsigned r = 0; r < sel.rounds; r++) {
		if (sel.rounds > 1)
			fprintf(stderr, "mementos-bench: round %u of %u\n", r + 1, sel.rounds);
		for (size_t k = 0; k < sel.nimpls; k++) {
			size_t i = (k + r) % sel.nimpls; /* rotated: each round starts elsewhere */
			struct impl_rows *mine = &rows[i * sel.rounds + r];
			mine->bytes_per_entry = NAN;
			failed |= run_impl(&sel, sel.impls[i], &streams, mine) != 0;
			if (sel.rounds == 1)
				print_rows(&sel.cfg, sel.impls[i], mine); /* as soon as it is there */
		}
	}
	for (size_t i = 0; sel.rounds > 1 && i < sel.nimpls; i++) {
		struct impl_rows median;
		median_rows(&sel.cfg, &rows[i * sel.rounds], sel.rounds, &median);
		print_rows(&sel.cfg, sel.impls[i], &median);
	}
	free(rows);

	bench_stream_free(&streams.uniform);
	bench_stream_free(&streams.zipf);
	if (failed)
		fprintf(stderr, "mementos-bench: FAILED (see the messages above)\n");
	return failed ? 1 : 0;
}
