/*
 * Keys: typed, length-prefixed fields; canonical floats; addresses; the size
 * limit; errors from key callbacks.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"

#include <math.h>
#include <string.h>

/* A key callback driven by a script of fields in args. */
enum field_type { F_END, F_U64, F_I64, F_F64, F_STR, F_BYTES, F_PTR, F_FAIL };

struct field {
	enum field_type type;
	uint64_t u;
	int64_t i;
	double f;
	const void *p;
	size_t n;
	int rc; /* F_FAIL: what the callback returns */
};

static int scripted_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	for (const struct field *f = args; f->type != F_END; f++) {
		switch (f->type) {
		case F_U64: memento_key_u64(key, f->u); break;
		case F_I64: memento_key_i64(key, f->i); break;
		case F_F64: memento_key_f64(key, f->f); break;
		case F_STR: memento_key_str(key, f->p); break;
		case F_BYTES: memento_key_bytes(key, f->p, f->n); break;
		case F_PTR: memento_key_ptr(key, f->p); break;
		case F_FAIL: return f->rc;
		case F_END: break;
		}
	}
	return 0; /* errors of the appends stick to the key */
}

static atomic_int scripted_creations;

static int scripted_create(void **out, const void *args, void *ctx)
{
	(void)ctx;
	(void)args;
	int *o = malloc(sizeof *o);
	if (o == NULL)
		return -ENOMEM;
	*o = atomic_fetch_add(&scripted_creations, 1) + 1;
	*out = o;
	return 0;
}

static void scripted_destroy(void *obj, void *ctx)
{
	(void)ctx;
	free(obj);
}

static memento_cache *cache;
static memento_class *cls;

static void setup(void)
{
	cache = new_cache();
	memento_class_desc desc = { "scripted", scripted_key, scripted_create, scripted_destroy, NULL };
	cr_assert_eq(memento_class_new(cache, &desc, &cls), 0);
}

static void teardown(void)
{
	memento_cache_free(cache);
}

static void *get_ok(const struct field *fields)
{
	void *obj = NULL;
	int rc = memento_get(cls, fields, &obj);
	cr_assert_eq(rc, 0, "get: %s", memento_strerror(rc));
	return obj;
}

TestSuite(key, .init = setup, .fini = teardown, .timeout = 30);

Test(key, length_prefix_keeps_string_boundaries)
{
	struct field ab_c[] = { { F_STR, .p = "ab" }, { F_STR, .p = "c" }, { F_END } };
	struct field a_bc[] = { { F_STR, .p = "a" }, { F_STR, .p = "bc" }, { F_END } };
	cr_assert_neq(get_ok(ab_c), get_ok(a_bc));
	cr_assert_eq(get_ok(ab_c), get_ok(ab_c));
	cr_assert_eq(atomic_load(&scripted_creations), 2);
}

Test(key, integer_and_float_types_are_distinct)
{
	struct field u[] = { { F_U64, .u = 1 }, { F_END } };
	struct field i[] = { { F_I64, .i = 1 }, { F_END } };
	struct field f[] = { { F_F64, .f = 1.0 }, { F_END } };
	void *ou = get_ok(u), *oi = get_ok(i), *of = get_ok(f);
	cr_assert(ou != oi && oi != of && ou != of);
	cr_assert_eq(memento_count(cache), 3);
}

Test(key, string_and_bytes_and_pointer_types_are_distinct)
{
	static const char text[8] = "abcdefg";
	uint64_t as_u64;
	memcpy(&as_u64, text, sizeof as_u64);
	struct field s[] = { { F_STR, .p = "abcdefg" }, { F_END } };
	struct field b[] = { { F_BYTES, .p = "abcdefg", .n = 7 }, { F_END } };
	struct field n[] = { { F_U64, .u = as_u64 }, { F_END } };
	struct field p[] = { { F_PTR, .p = (const void *)(uintptr_t)as_u64 }, { F_END } };
	void *o[] = { get_ok(s), get_ok(b), get_ok(n), get_ok(p) };
	for (int x = 0; x < 4; x++)
		for (int y = x + 1; y < 4; y++)
			cr_assert_neq(o[x], o[y], "fields %d and %d collided", x, y);
}

Test(key, negative_zero_is_zero)
{
	struct field pz[] = { { F_F64, .f = 0.0 }, { F_END } };
	struct field nz[] = { { F_F64, .f = -0.0 }, { F_END } };
	cr_assert(signbit(nz[0].f));
	cr_assert_eq(get_ok(pz), get_ok(nz));
	cr_assert_eq(atomic_load(&scripted_creations), 1);
}

Test(key, every_nan_is_one_key)
{
	uint64_t payload_bits = 0x7ff0000000000123ull; /* a signalling NaN with a payload */
	uint64_t negative_bits = 0xfff8000000000000ull;
	double payload, negative;
	memcpy(&payload, &payload_bits, sizeof payload);
	memcpy(&negative, &negative_bits, sizeof negative);
	cr_assert(isnan(payload) && isnan(negative));
	struct field a[] = { { F_F64, .f = NAN }, { F_END } };
	struct field b[] = { { F_F64, .f = payload }, { F_END } };
	struct field c[] = { { F_F64, .f = negative }, { F_END } };
	void *o = get_ok(a);
	cr_assert_eq(get_ok(b), o);
	cr_assert_eq(get_ok(c), o);
	struct field one[] = { { F_F64, .f = 1.0 }, { F_END } };
	cr_assert_neq(get_ok(one), o);
}

Test(key, pointer_keys_on_the_address_not_the_contents)
{
	int x = 7, y = 7;
	struct field px[] = { { F_PTR, .p = &x }, { F_END } };
	struct field py[] = { { F_PTR, .p = &y }, { F_END } };
	struct field px_again[] = { { F_PTR, .p = &x }, { F_END } };
	cr_assert_neq(get_ok(px), get_ok(py));
	cr_assert_eq(get_ok(px), get_ok(px_again));
}

Test(key, empty_key_is_a_singleton)
{
	struct field none[] = { { F_END } };
	struct field empty_bytes[] = { { F_BYTES, .p = NULL, .n = 0 }, { F_END } };
	struct field empty_str[] = { { F_STR, .p = "" }, { F_END } };
	void *o = get_ok(none);
	cr_assert_eq(get_ok(none), o);
	cr_assert_neq(get_ok(empty_bytes), o);
	cr_assert_neq(get_ok(empty_str), get_ok(empty_bytes));
}

Test(key, size_limit_is_exact)
{
	/* One bytes field costs an 8-byte header word; its bytes are padded
	 * to whole words, so one more byte takes a word more. */
	size_t room = MEMENTO_KEY_MAX - 8;
	char *big = malloc(room + 1);
	cr_assert(big != NULL);
	memset(big, 'k', room + 1);
	struct field fits[] = { { F_BYTES, .p = big, .n = room }, { F_END } };
	struct field over[] = { { F_BYTES, .p = big, .n = room + 1 }, { F_END } };
	void *obj;
	cr_assert_eq(memento_get(cls, over, &obj), -E2BIG);
	cr_assert_eq(memento_count(cache), 0);
	void *o = get_ok(fits);
	cr_assert_eq(get_ok(fits), o);
	free(big);
}

Test(key, too_big_fails_cleanly_and_cache_stays_usable)
{
	char *huge = malloc(3 * MEMENTO_KEY_MAX);
	cr_assert(huge != NULL);
	memset(huge, 'h', 3 * MEMENTO_KEY_MAX - 1);
	huge[3 * MEMENTO_KEY_MAX - 1] = '\0';
	struct field too_big[] = { { F_U64, .u = 5 }, { F_STR, .p = huge }, { F_END } };
	void *obj = (void *)&obj;
	cr_assert_eq(memento_get(cls, too_big, &obj), -E2BIG);
	cr_assert_eq(obj, (void *)&obj, "out pointer written on failure");
	cr_assert_eq(memento_peek(cls, too_big, &obj), -E2BIG);
	cr_assert_eq(memento_forget(cls, too_big), -E2BIG);
	/* Many small fields that add up past the limit. */
	struct field many[MEMENTO_KEY_MAX / 16 + 2];
	for (size_t k = 0; k + 1 < sizeof many / sizeof many[0]; k++)
		many[k] = (struct field){ F_U64, .u = k };
	many[sizeof many / sizeof many[0] - 1] = (struct field){ F_END };
	cr_assert_eq(memento_get(cls, many, &obj), -E2BIG);
	cr_assert_eq(memento_count(cache), 0);
	cr_assert_eq(atomic_load(&scripted_creations), 0);
	struct field ok[] = { { F_U64, .u = 5 }, { F_END } };
	cr_assert_eq(get_ok(ok), get_ok(ok));
	free(huge);
}

Test(key, error_sticks_to_the_key)
{
	/* The callback ignores the failed append and returns 0. */
	struct field null_str[] = { { F_STR, .p = NULL }, { F_U64, .u = 1 }, { F_END } };
	void *obj;
	cr_assert_eq(memento_get(cls, null_str, &obj), -EINVAL);
	struct field null_bytes[] = { { F_BYTES, .p = NULL, .n = 3 }, { F_END } };
	cr_assert_eq(memento_get(cls, null_bytes, &obj), -EINVAL);
	cr_assert_eq(memento_count(cache), 0);
}

Test(key, callback_error_is_passed_through_and_nothing_is_inserted)
{
	struct field fail[] = { { F_U64, .u = 1 }, { F_FAIL, .rc = -ENOTCONN }, { F_END } };
	void *obj;
	cr_assert_eq(memento_get(cls, fail, &obj), -ENOTCONN);
	cr_assert_eq(memento_peek(cls, fail, &obj), -ENOTCONN);
	cr_assert_eq(memento_forget(cls, fail), -ENOTCONN);
	struct field positive[] = { { F_FAIL, .rc = 3 }, { F_END } };
	cr_assert_eq(memento_get(cls, positive, &obj), -EINVAL, "a positive return breaks the contract");
	cr_assert_eq(memento_count(cache), 0);
	cr_assert_eq(atomic_load(&scripted_creations), 0);
	struct field fine[] = { { F_U64, .u = 1 }, { F_END } };
	cr_assert_eq(get_ok(fine), get_ok(fine));
}

Test(key, appends_reject_null_key)
{
	cr_assert_eq(memento_key_u64(NULL, 1), -EINVAL);
	cr_assert_eq(memento_key_i64(NULL, 1), -EINVAL);
	cr_assert_eq(memento_key_f64(NULL, 1.0), -EINVAL);
	cr_assert_eq(memento_key_str(NULL, "x"), -EINVAL);
	cr_assert_eq(memento_key_bytes(NULL, "x", 1), -EINVAL);
	cr_assert_eq(memento_key_ptr(NULL, &cache), -EINVAL);
}

/* A key callback that itself gets an object (nested key building). */
static memento_class *inner_cls;

static int nesting_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	const struct field *f = args;
	void *inner = NULL;
	int rc = memento_get(inner_cls, f, &inner);
	if (rc != 0)
		return rc;
	return memento_key_ptr(key, inner);
}

Test(key, key_callback_may_get_other_objects)
{
	memento_class_desc desc = { "nesting", nesting_key, scripted_create, scripted_destroy, NULL };
	memento_class *outer;
	cr_assert_eq(memento_class_new(cache, &desc, &outer), 0);
	inner_cls = cls;
	struct field a[] = { { F_STR, .p = "inner-a" }, { F_END } };
	struct field b[] = { { F_STR, .p = "inner-b" }, { F_END } };
	void *oa, *ob, *oa2;
	cr_assert_eq(memento_get(outer, a, &oa), 0);
	cr_assert_eq(memento_get(outer, b, &ob), 0);
	cr_assert_eq(memento_get(outer, a, &oa2), 0);
	cr_assert_neq(oa, ob);
	cr_assert_eq(oa, oa2);
	cr_assert_eq(memento_count(cache), 4); /* two inner, two outer */
}
