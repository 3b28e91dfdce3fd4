/*
 * pykey: a Python key as bytes, so that two keys give the same bytes exactly
 * when a dict would take them for the same key (pykey.c says for which
 * types).  The module hands the bytes to mementos as the key of a get.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTOS_PYKEY_H
#define MEMENTOS_PYKEY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>

/* The encoded bytes: inline for short keys, on the heap past that. */
struct pykey {
	unsigned char *bytes;
	size_t len, cap;
	unsigned char inline_room[240];
};

void pykey_init(struct pykey *k);
void pykey_free(struct pykey *k);

/* A key holds a part of a type pykey does not encode: no exception set. */
#define PYKEY_OTHER (-2)

/* Appends key's encoding.  0; PYKEY_OTHER; or -1 with a Python exception
 * set (RecursionError for a key nested too deeply, MemoryError).  The GIL
 * must be held. */
int pykey_encode(struct pykey *k, PyObject *key);

/* The original's default key, (cls,) + args + tuple(kwargs.items()),
 * encoded without building the tuple.  kwargs may be NULL.  Returns as
 * pykey_encode. */
int pykey_encode_call(struct pykey *k, PyObject *cls, PyObject *args, PyObject *kwargs);

/* Replaces the encoding with that of an interned key's number (module.c):
 * its own tag, so it never meets an encoded key. */
int pykey_encode_interned(struct pykey *k, uint64_t id);

/* The default key as a tuple, for an entry to keep its parts alive. */
PyObject *pykey_call_tuple(PyObject *cls, PyObject *args, PyObject *kwargs);

#endif
