/*
 * What the store benchmarks (store_bench.c, redis_bench.c) share besides
 * their classes (bench_blob.h): fatal errors, clocks, random bytes,
 * medians and quantiles, the CPU's name, the run's scratch directories, and
 * the results table (rows, printed and written as CSV).
 *
 * Each program is one translation unit: base_dir and the rows are its own.
 * It defines BENCH_NAME, the prefix of its error messages ("store_bench"),
 * before it includes this.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTO_BENCH_UTIL_H
#define MEMENTO_BENCH_UTIL_H

#ifndef BENCH_NAME
#error "define BENCH_NAME (the error messages' prefix) before including bench_util.h"
#endif

#include <mementos.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- fatal errors ------------------------------------------------------------- */

/* A library error (negative errno): its text, and exit 1. */
static inline void die(const char *what, int err)
{
	fprintf(stderr, BENCH_NAME ": %s: %s\n", what, memento_strerror(err));
	exit(1);
}

/* A failed system call: errno's text, not the library's for that code. */
static inline void die_sys(const char *what)
{
	fprintf(stderr, BENCH_NAME ": %s: %s\n", what, strerror(errno));
	exit(1);
}

static inline void die_msg(const char *what)
{
	fprintf(stderr, BENCH_NAME ": %s\n", what);
	exit(1);
}

/* ---- clocks and random bytes ---------------------------------------------------- */

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

/* This thread's CPU time: the client's own work, without the waits. */
static inline uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static inline void sleep_ns(long ns)
{
	struct timespec ts = { ns / 1000000000L, ns % 1000000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static inline uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static inline void fill_random(unsigned char *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)splitmix64(&seed);
}

/* ---- statistics ------------------------------------------------------------------- */

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The q-quantile (0..1) of n values, nearest rank; v is sorted in place. */
static inline double quantile(double *v, size_t n, double q)
{
	qsort(v, n, sizeof *v, cmp_double);
	size_t i = (size_t)ceil(q * (double)n);
	i = i == 0 ? 0 : i - 1;
	return v[i < n ? i : n - 1];
}

static inline double median_of(const double *v, int n)
{
	double s[n];
	memcpy(s, v, (size_t)n * sizeof *s);
	qsort(s, (size_t)n, sizeof *s, cmp_double);
	return n % 2 != 0 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* ---- the machine -------------------------------------------------------------------- */

static inline void cpu_model(char *out, size_t n)
{
	snprintf(out, n, "unknown");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f == NULL)
		return;
	char line[512];
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "model name", 10) != 0)
			continue;
		char *v = strchr(line, ':');
		if (v == NULL)
			break;
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		v[strcspn(v, "\n")] = '\0';
		snprintf(out, n, "%s", v);
		break;
	}
	fclose(f);
}

/* ---- directories ------------------------------------------------------------------ */

/* The run's temporary directory, and directories in it. */
static char base_dir[512];

/* Makes base_dir: DIR/PREFIX-XXXXXX, a fresh one. */
static inline void base_dir_make(const char *dir, const char *prefix)
{
	snprintf(base_dir, sizeof base_dir, "%s/%s-XXXXXX", dir, prefix);
	if (mkdtemp(base_dir) == NULL)
		die_sys(base_dir);
}

static inline char *subdir(const char *name)
{
	static unsigned seq;
	char *p = malloc(strlen(base_dir) + strlen(name) + 32);
	if (p == NULL)
		die("malloc", -ENOMEM);
	sprintf(p, "%s/%s-%u", base_dir, name, seq++);
	if (mkdir(p, 0700) != 0)
		die_sys(p);
	return p;
}

/* Removes a directory and what it holds: plain files (what LMDB, the store
 * and redis-server leave) and directories of them. */
static inline void remove_dir(const char *path)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char f[1024];
		if (snprintf(f, sizeof f, "%s/%s", path, de->d_name) >= (int)sizeof f)
			continue; /* not a path of ours */
		if (unlink(f) != 0 && errno == EISDIR)
			remove_dir(f);
	}
	closedir(d);
	(void)rmdir(path);
}

/* ---- results ------------------------------------------------------------------------ */

struct row {
	char benchmark[16];
	char variant[40];
	char stat[24];
	double value;
	char unit[16];
	double ratio; /* NAN: none */
	char reference[40];
	int rounds;
};

static struct row rows[128];
static int nrows;

static inline void add_row(const char *bench, const char *variant, const char *stat,
                           double value, const char *unit, double ratio, const char *reference,
                           int rounds)
{
	if (nrows == (int)(sizeof rows / sizeof rows[0]))
		die("too many rows", -ENOMEM);
	struct row *r = &rows[nrows++];
	snprintf(r->benchmark, sizeof r->benchmark, "%s", bench);
	snprintf(r->variant, sizeof r->variant, "%s", variant);
	snprintf(r->stat, sizeof r->stat, "%s", stat);
	r->value = value;
	snprintf(r->unit, sizeof r->unit, "%s", unit);
	r->ratio = ratio;
	snprintf(r->reference, sizeof r->reference, "%s", reference != NULL ? reference : "");
	r->rounds = rounds;
}

/* How a program prints its table: the widths of its text columns, the unit
 * whose values get three decimals (the others get one), and the targets
 * shown next to the rows they apply to (judged: met or missed). */
struct table_layout {
	int variant, stat, unit, reference;
	const char *fine_unit;
	const char *(*target_of)(const struct row *r, bool *judged, bool *met);
};

static inline void print_table(FILE *out, const char *cpu, const struct table_layout *t)
{
	fprintf(out, "\n%-11s %-*s %-*s %14s %-*s %8s  %-*s %s\n", "benchmark", t->variant,
	        "variant", t->stat, "stat", "value", t->unit, "unit", "ratio", t->reference,
	        "reference", "target");
	for (int i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		char ratio[16] = "";
		if (!isnan(r->ratio))
			snprintf(ratio, sizeof ratio, "%.3fx", r->ratio);
		bool judged, met;
		const char *target = t->target_of(r, &judged, &met);
		fprintf(out, "%-11s %-*s %-*s ", r->benchmark, t->variant, r->variant, t->stat,
		        r->stat);
		if (strcmp(r->unit, t->fine_unit) == 0)
			fprintf(out, "%14.3f", r->value);
		else
			fprintf(out, "%14.1f", r->value);
		fprintf(out, " %-*s %8s  %-*s %s%s\n", t->unit, r->unit, ratio, t->reference,
		        r->reference, target, judged ? (met ? " (met)" : " (MISSED)") : "");
	}
	fprintf(out, "cpu: %s\n", cpu);
}

static inline void write_csv(const char *path, const char *cpu)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		die_sys(path);
	fprintf(f, "benchmark,variant,stat,value,unit,ratio,reference,rounds,cpu\n");
	for (int i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		fprintf(f, "%s,%s,%s,%.3f,%s,", r->benchmark, r->variant, r->stat, r->value, r->unit);
		if (!isnan(r->ratio))
			fprintf(f, "%.4f", r->ratio);
		fprintf(f, ",%s,%d,\"%s\"\n", r->reference, r->rounds, cpu);
	}
	if (fclose(f) != 0)
		die_sys(path);
}

#endif /* MEMENTO_BENCH_UTIL_H */
