/*
 * Command-line numbers and --only lists for the benchmarks' own programs.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTO_BENCH_CLI_H
#define MEMENTO_BENCH_CLI_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Whether the comma-separated list only names name; a NULL list (no --only)
 * names every one. */
static inline bool bench_selected(const char *only, const char *name)
{
	if (only == NULL)
		return true;
	size_t n = strlen(name);
	for (const char *p = only; *p != '\0';) {
		size_t len = strcspn(p, ",");
		if (len == n && strncmp(p, name, n) == 0)
			return true;
		p += len;
		if (*p == ',')
			p++;
	}
	return false;
}

#endif /* MEMENTO_BENCH_CLI_H */
