/*
 * pykey.c: Python keys as bytes.  Two keys encode alike exactly when a dict
 * would find one under the other, for the types users put in keys:
 *
 *   None                      'N'
 *   int, bool, float == int   'I' sign byte, 4-byte length, magnitude
 *                             (little-endian, no leading zero bytes): so
 *                             1 == 1.0 == True encode alike, as they hash
 *   other float (and inf)     'F' the 8 bytes of the double
 *   NaN, and objects hashed   'O' the object's address: a dict finds them
 *   by identity (classes,         only as themselves; the entry keeps the
 *   functions, instances          key's parts alive, so an address is never
 *   without __eq__/__hash__)      reused while it names one
 *   str                       'S' length, UTF-8 (lone surrogates kept)
 *   bytes                     'B' length, the bytes
 *   tuple                     'T' count, the items
 *   frozenset                 'Z' count, the items' encodings, each with its
 *                             length, in byte order (a set has none)
 *
 * A subclass of these that keeps its base's == and hash encodes as its
 * base, and a number of another type equal to an int or float (numpy's,
 * Decimal, Fraction, complex) as that number (encode_other).  Any other key
 * is PYKEY_OTHER: the module then interns the whole key (module.c).
 * Lengths and counts are 8 bytes, so no encoding is a prefix of another.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "pykey.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void pykey_init(struct pykey *k)
{
	k->bytes = k->inline_room;
	k->len = 0;
	k->cap = sizeof k->inline_room;
}

void pykey_free(struct pykey *k)
{
	if (k->bytes != k->inline_room)
		PyMem_Free(k->bytes);
	pykey_init(k);
}

static int room(struct pykey *k, size_t n)
{
	if (n <= k->cap - k->len)
		return 0;
	size_t cap = k->cap * 2;
	while (cap - k->len < n)
		cap *= 2;
	unsigned char *grown = PyMem_Malloc(cap);
	if (grown == NULL) {
		PyErr_NoMemory();
		return -1;
	}
	memcpy(grown, k->bytes, k->len);
	if (k->bytes != k->inline_room)
		PyMem_Free(k->bytes);
	k->bytes = grown;
	k->cap = cap;
	return 0;
}

static int put(struct pykey *k, const void *p, size_t n)
{
	if (room(k, n) != 0)
		return -1;
	memcpy(k->bytes + k->len, p, n);
	k->len += n;
	return 0;
}

static int put_tag(struct pykey *k, char tag)
{
	return put(k, &tag, 1);
}

/* Little-endian, whatever the machine. */
static int put_u64(struct pykey *k, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	return put(k, b, sizeof b);
}

static int put_sized(struct pykey *k, char tag, const void *p, size_t n)
{
	if (put_tag(k, tag) != 0 || put_u64(k, n) != 0)
		return -1;
	return put(k, p, n);
}

static int put_identity(struct pykey *k, PyObject *o)
{
	if (put_tag(k, 'O') != 0)
		return -1;
	return put_u64(k, (uint64_t)(uintptr_t)o);
}

/* An integer from its sign and magnitude bytes (little-endian). */
static int put_int_bytes(struct pykey *k, int negative, const unsigned char *mag, size_t n)
{
	while (n > 0 && mag[n - 1] == 0)
		n--;
	unsigned char sign = negative && n > 0 ? 1 : 0;
	uint32_t len = (uint32_t)n;
	unsigned char head[5] = { sign, (unsigned char)len, (unsigned char)(len >> 8),
		                  (unsigned char)(len >> 16), (unsigned char)(len >> 24) };
	if (n > UINT32_MAX) {
		PyErr_SetString(PyExc_OverflowError, "mementos: an int key of more than 2^32 bytes");
		return -1;
	}
	if (put_tag(k, 'I') != 0 || put(k, head, sizeof head) != 0)
		return -1;
	return put(k, mag, n);
}

static int put_small_int(struct pykey *k, long long v)
{
	uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(mag >> (8 * i));
	return put_int_bytes(k, v < 0, b, sizeof b);
}

static int put_int(struct pykey *k, PyObject *o)
{
	int overflow = 0;
	long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
	if (v == -1 && PyErr_Occurred())
		return -1;
	if (!overflow)
		return put_small_int(k, v);
	/* Larger than 64 bits: the magnitude through Python's own bytes, by
	 * int's own abs (a subclass's __abs__ says nothing of its value). */
	PyObject *mag = PyLong_Type.tp_as_number->nb_absolute(o);
	if (mag == NULL)
		return -1;
	size_t bits = _PyLong_NumBits(mag);
	if (bits == (size_t)-1 && PyErr_Occurred()) {
		Py_DECREF(mag);
		return -1;
	}
	size_t n = (bits + 7) / 8;
	unsigned char *b = PyMem_Malloc(n != 0 ? n : 1);
	if (b == NULL) {
		Py_DECREF(mag);
		PyErr_NoMemory();
		return -1;
	}
	int rc = _PyLong_AsByteArray((PyLongObject *)mag, b, n, 1, 0);
	Py_DECREF(mag);
	if (rc == 0)
		rc = put_int_bytes(k, overflow < 0, b, n);
	PyMem_Free(b);
	return rc;
}

static int put_float(struct pykey *k, PyObject *o)
{
	double d = PyFloat_AS_DOUBLE(o);
	if (isnan(d))
		return put_identity(k, o); /* a NaN equals nothing, not even itself */
	if (isfinite(d) && d == floor(d)) {
		/* Integral: the int it equals (and hashes as). */
		if (fabs(d) < 9.2e18)
			return put_small_int(k, (long long)d);
		PyObject *i = PyLong_FromDouble(d);
		if (i == NULL)
			return -1;
		int rc = put_int(k, i);
		Py_DECREF(i);
		return rc;
	}
	uint64_t bits;
	memcpy(&bits, &d, sizeof bits);
	return put_tag(k, 'F') != 0 ? -1 : put_u64(k, bits);
}

static int put_str(struct pykey *k, PyObject *o)
{
	Py_ssize_t n;
	const char *utf8 = PyUnicode_AsUTF8AndSize(o, &n);
	if (utf8 != NULL)
		return put_sized(k, 'S', utf8, (size_t)n);
	/* Lone surrogates: no UTF-8 of their own, but a key all the same. */
	if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
		return -1;
	PyErr_Clear();
	PyObject *b = PyUnicode_AsEncodedString(o, "utf-8", "surrogatepass");
	if (b == NULL)
		return -1;
	int rc = put_sized(k, 'S', PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
	Py_DECREF(b);
	return rc;
}

static int encode(struct pykey *k, PyObject *o);

/* Whether o's type compares and hashes by identity, as object does. */
static int by_identity(PyObject *o)
{
	PyTypeObject *t = Py_TYPE(o);
	return t->tp_hash == PyBaseObject_Type.tp_hash &&
	       t->tp_richcompare == PyBaseObject_Type.tp_richcompare;
}

static int put_tuple(struct pykey *k, PyObject *o)
{
	Py_ssize_t n = PyTuple_GET_SIZE(o);
	if (put_tag(k, 'T') != 0 || put_u64(k, (uint64_t)n) != 0)
		return -1;
	for (Py_ssize_t i = 0; i < n; i++) {
		int rc = encode(k, PyTuple_GET_ITEM(o, i));
		if (rc != 0)
			return rc;
	}
	return 0;
}

struct item {
	unsigned char *bytes;
	size_t len;
};

static int by_bytes(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->bytes, y->bytes, n);
	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

static int put_frozenset(struct pykey *k, PyObject *o)
{
	Py_ssize_t n = PySet_GET_SIZE(o);
	struct item *items = PyMem_Calloc((size_t)(n != 0 ? n : 1), sizeof *items);
	if (items == NULL) {
		PyErr_NoMemory();
		return -1;
	}
	int rc = 0;
	Py_ssize_t pos = 0, got = 0;
	PyObject *member;
	Py_hash_t hash;
	while (rc == 0 && _PySet_NextEntry(o, &pos, &member, &hash)) {
		struct pykey one;
		pykey_init(&one);
		rc = encode(&one, member);
		if (rc == 0) {
			items[got].bytes = PyMem_Malloc(one.len != 0 ? one.len : 1);
			if (items[got].bytes == NULL) {
				PyErr_NoMemory();
				rc = -1;
			} else {
				memcpy(items[got].bytes, one.bytes, one.len);
				items[got++].len = one.len;
			}
		}
		pykey_free(&one);
	}
	if (rc == 0) {
		qsort(items, (size_t)got, sizeof *items, by_bytes);
		rc = put_tag(k, 'Z') != 0 || put_u64(k, (uint64_t)got) != 0 ? -1 : 0;
		for (Py_ssize_t i = 0; rc == 0 && i < got; i++)
			rc = put_u64(k, items[i].len) != 0 ? -1 : put(k, items[i].bytes, items[i].len);
	}
	for (Py_ssize_t i = 0; i < got; i++)
		PyMem_Free(items[i].bytes);
	PyMem_Free(items);
	return rc;
}

/* Whether type t compares and hashes as base does (not overridden). */
static int behaves_as(PyTypeObject *t, PyTypeObject *base)
{
	return t->tp_hash == base->tp_hash && t->tp_richcompare == base->tp_richcompare;
}

/* Whether the error set says only that a conversion does not apply (then
 * cleared); KeyboardInterrupt, MemoryError and the like stay set. */
static int conversion_refused(void)
{
	if (!PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_ValueError) &&
	    !PyErr_ExceptionMatches(PyExc_ArithmeticError))
		return 0;
	PyErr_Clear();
	return 1;
}

/* Whether o equals v and hashes as it: 1, 0, or -1 with an error set. */
static int alike(PyObject *o, PyObject *v)
{
	Py_hash_t ho = PyObject_Hash(o);
	Py_hash_t hv = ho != -1 ? PyObject_Hash(v) : -1;
	if (hv == -1)
		return conversion_refused() ? 0 : -1;
	if (ho != hv)
		return 0;
	int same = PyObject_RichCompareBool(o, v, Py_EQ);
	return same >= 0 ? same : conversion_refused() ? 0 : -1;
}

/*
 * o's value as a number of the encoded kinds, when o equals it and hashes
 * as it (as Python's numbers promise across types): 0 with *out a new
 * reference, 0 with *out NULL when there is none, -1 with an error set.
 * An integral value past 2^53, where a float is not exact, is tried as an
 * int too (Decimal(2**53 + 1) == 2**53 + 1); past the float range
 * (Decimal('1e400')) it is not tried: building that int has no bound.
 */
static int number_alike(PyObject *o, PyObject **out)
{
	*out = NULL;
	PyNumberMethods *nb = Py_TYPE(o)->tp_as_number;
	PyObject *v = NULL;
	if (PyComplex_Check(o)) {
		Py_complex c = PyComplex_AsCComplex(o);
		if (PyErr_Occurred())
			return conversion_refused() ? 0 : -1;
		if (c.imag != 0.0)
			return 0;
		v = PyFloat_FromDouble(c.real);
	} else if (PyIndex_Check(o)) {
		v = PyNumber_Index(o);
	} else if (nb != NULL && nb->nb_float != NULL) {
		v = PyNumber_Float(o);
	} else {
		return 0;
	}
	if (v == NULL)
		return conversion_refused() ? 0 : -1;
	int same = alike(o, v);
	if (same == 1) {
		*out = v;
		return 0;
	}
	double d = PyFloat_Check(v) ? PyFloat_AS_DOUBLE(v) : 0.0;
	Py_DECREF(v);
	if (same < 0)
		return -1;
	if (!(isfinite(d) && fabs(d) >= 9007199254740992.0 && nb != NULL && nb->nb_int != NULL))
		return 0;
	v = PyNumber_Long(o);
	if (v == NULL)
		return conversion_refused() ? 0 : -1;
	same = alike(o, v);
	if (same == 1)
		*out = v;
	else
		Py_DECREF(v);
	return same < 0 ? -1 : 0;
}

/* A tuple or frozenset (or a subclass that keeps their == and hash). */
static int put_container(struct pykey *k, PyObject *o)
{
	if (Py_EnterRecursiveCall(" while encoding a mementos key") != 0)
		return -1;
	int rc = PyTuple_Check(o) ? put_tuple(k, o) : put_frozenset(k, o);
	Py_LeaveRecursiveCall();
	return rc;
}

/*
 * Anything but the exact types: a subclass that keeps its base's == and
 * hash (an IntEnum member, numpy's float64) encodes as its base; another
 * number equal to an int or a float (numpy's int64, Decimal(1), 1+0j) as
 * that number; an object compared by identity as its address; the rest is
 * PYKEY_OTHER.  (A type with an __eq__ of its own that equals, say, a str
 * is the one case a dict would join and the encoding keeps apart.)
 */
static int encode_other(struct pykey *k, PyObject *o)
{
	PyTypeObject *t = Py_TYPE(o);
	if (PyLong_Check(o) && behaves_as(t, &PyLong_Type))
		return put_int(k, o);
	if (PyFloat_Check(o) && behaves_as(t, &PyFloat_Type))
		return put_float(k, o);
	if (PyUnicode_Check(o) && behaves_as(t, &PyUnicode_Type))
		return put_str(k, o);
	if (PyBytes_Check(o) && behaves_as(t, &PyBytes_Type))
		return put_sized(k, 'B', PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o));
	if ((PyTuple_Check(o) && behaves_as(t, &PyTuple_Type)) ||
	    (PyFrozenSet_Check(o) && behaves_as(t, &PyFrozenSet_Type)))
		return put_container(k, o);
	if (by_identity(o))
		return put_identity(k, o);
	PyObject *v;
	if (number_alike(o, &v) != 0)
		return -1;
	if (v != NULL) {
		int rc = encode(k, v);
		Py_DECREF(v);
		return rc;
	}
	return PYKEY_OTHER;
}

static int encode(struct pykey *k, PyObject *o)
{
	if (o == Py_None)
		return put_tag(k, 'N');
	if (PyLong_CheckExact(o) || PyBool_Check(o))
		return put_int(k, o);
	if (PyFloat_CheckExact(o))
		return put_float(k, o);
	if (PyUnicode_CheckExact(o))
		return put_str(k, o);
	if (PyBytes_CheckExact(o))
		return put_sized(k, 'B', PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o));
	if (PyTuple_CheckExact(o) || PyFrozenSet_CheckExact(o))
		return put_container(k, o);
	return encode_other(k, o);
}

int pykey_encode(struct pykey *k, PyObject *key)
{
	return encode(k, key);
}

int pykey_encode_call(struct pykey *k, PyObject *cls, PyObject *args, PyObject *kwargs)
{
	Py_ssize_t nargs = PyTuple_GET_SIZE(args);
	Py_ssize_t nkw = kwargs != NULL ? PyDict_GET_SIZE(kwargs) : 0;
	if (put_tag(k, 'T') != 0 || put_u64(k, (uint64_t)(1 + nargs + nkw)) != 0)
		return -1;
	int rc = encode(k, cls);
	for (Py_ssize_t i = 0; rc == 0 && i < nargs; i++)
		rc = encode(k, PyTuple_GET_ITEM(args, i));
	Py_ssize_t pos = 0;
	PyObject *name, *value;
	while (rc == 0 && nkw != 0 && PyDict_Next(kwargs, &pos, &name, &value)) {
		/* Each item is the pair (name, value). */
		rc = put_tag(k, 'T') != 0 || put_u64(k, 2) != 0 ? -1 : encode(k, name);
		if (rc == 0)
			rc = encode(k, value);
	}
	return rc;
}

PyObject *pykey_call_tuple(PyObject *cls, PyObject *args, PyObject *kwargs)
{
	Py_ssize_t nargs = PyTuple_GET_SIZE(args);
	Py_ssize_t nkw = kwargs != NULL ? PyDict_GET_SIZE(kwargs) : 0;
	PyObject *t = PyTuple_New(1 + nargs + nkw);
	if (t == NULL)
		return NULL;
	PyTuple_SET_ITEM(t, 0, Py_NewRef(cls));
	for (Py_ssize_t i = 0; i < nargs; i++)
		PyTuple_SET_ITEM(t, 1 + i, Py_NewRef(PyTuple_GET_ITEM(args, i)));
	Py_ssize_t pos = 0, at = 1 + nargs;
	PyObject *name, *value;
	while (nkw != 0 && PyDict_Next(kwargs, &pos, &name, &value)) {
		PyObject *pair = PyTuple_Pack(2, name, value);
		if (pair == NULL) {
			Py_DECREF(t);
			return NULL;
		}
		PyTuple_SET_ITEM(t, at++, pair);
	}
	return t;
}

int pykey_encode_interned(struct pykey *k, uint64_t id)
{
	pykey_free(k);
	return put_tag(k, 'X') != 0 ? -1 : put_u64(k, id);
}
