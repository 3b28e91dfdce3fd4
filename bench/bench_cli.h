/*
 * Command-line numbers for the benchmarks' own programs.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTO_BENCH_CLI_H
#define MEMENTO_BENCH_CLI_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* The decimal s, in [min, max]; otherwise (s NULL, not a whole number,
 * out of range) prints usage to stderr and exits with status 2. */
static inline long bench_parse_long(const char *s, long min, long max, void (*usage)(FILE *))
{
	char *end;
	errno = 0;
	long v = s != NULL ? strtol(s, &end, 10) : 0;
	if (s == NULL || errno != 0 || *end != '\0' || v < min || v > max) {
		usage(stderr);
		exit(2);
	}
	return v;
}

#endif /* MEMENTO_BENCH_CLI_H */
