/*
 * A program outside the mementos source tree that uses an installed copy of
 * the library: tests/install/check.sh builds it against the installed header
 * and library (through pkg-config, shared and static, and through the CMake
 * package), then runs it.  It exits 0 only if every check below passes.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <mementos.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "consumer: check failed at line %d: %s\n",  \
			        __LINE__, #cond);                                    \
			failures++;                                                  \
		}                                                                    \
	} while (0)

struct point_args {
	int x, y;
};

struct point {
	int x, y;
};

static int creations;
static int destructions;

static int point_key(memento_key *key, const void *args, void *ctx)
{
	const struct point_args *a = args;
	int err;

	(void)ctx;
	err = memento_key_i64(key, a->x);
	if (err == 0)
		err = memento_key_i64(key, a->y);
	return err;
}

static int point_create(void **obj, const void *args, void *ctx)
{
	const struct point_args *a = args;
	struct point *p;

	(void)ctx;
	p = malloc(sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->x = a->x;
	p->y = a->y;
	creations++;
	*obj = p;
	return 0;
}

static void point_destroy(void *obj, void *ctx)
{
	(void)ctx;
	destructions++;
	free(obj);
}

int main(void)
{
	memento_cache *cache = NULL;
	memento_class *cls = NULL;
	void *first = NULL, *second = NULL, *other = NULL;
	const struct point_args origin = { 0, 0 }, same = { 0, 0 }, elsewhere = { 3, 4 };
	const memento_class_desc desc = {
		.name = "point",
		.key = point_key,
		.create = point_create,
		.destroy = point_destroy,
		.ctx = NULL,
	};
	unsigned int version = memento_version();
	int err;

	printf("mementos runtime version %u, header version %u\n", version,
	       (unsigned int)MEMENTO_VERSION_NUMBER);
	CHECK(version == MEMENTO_VERSION_NUMBER);

	err = memento_cache_new(&cache);
	CHECK(err == 0 && cache != NULL);
	if (cache == NULL)
		return 1;

	err = memento_class_new(cache, &desc, &cls);
	CHECK(err == 0 && cls != NULL);
	if (cls == NULL) {
		fprintf(stderr, "consumer: memento_class_new: %s\n", memento_strerror(err));
		memento_cache_free(cache);
		return 1;
	}

	err = memento_get(cls, &origin, &first);
	CHECK(err == 0);
	err = memento_get(cls, &same, &second);
	CHECK(err == 0);
	CHECK(first != NULL);
	CHECK(first == second);
	CHECK(creations == 1);

	err = memento_get(cls, &elsewhere, &other);
	CHECK(err == 0);
	CHECK(other != NULL && other != first);
	CHECK(creations == 2);
	if (other != NULL)
		CHECK(((struct point *)other)->x == 3 && ((struct point *)other)->y == 4);

	CHECK(strcmp(memento_err_name(-ENOMEM), "ENOMEM") == 0);

	memento_cache_free(cache);
	CHECK(destructions == 2);

	if (failures != 0) {
		fprintf(stderr, "consumer: %d check(s) failed\n", failures);
		return 1;
	}
	printf("consumer: all checks passed\n");
	return 0;
}
