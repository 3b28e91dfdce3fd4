/*
 * The `mementos` module for Python: the original pure-Python library's
 * names (MementoMetaclass, memento_factory, with_metaclass, mementos), with
 * instances kept in a mementos cache, so that concurrent constructions of
 * one identity run __init__ once and the others wait for it.
 *
 * One cache for the process, made at import and never freed (instances
 * live until forgotten or the process ends).  Each memoizing class gets its
 * own guarded mementos class, made on its first construction and kept in
 * the class's own __dict__ (`__mementos_class__`), so keys of two classes
 * never meet, even when a key function leaves the class out.
 *
 * A construction:
 *   key    keyfunc(cls, args, kwargs), or the default (cls,) + args +
 *          tuple(kwargs.items()), encoded to bytes (pykey.c), with the GIL;
 *   hit    memento_peek inside a guard, with the GIL: no wait, no release;
 *   miss   the GIL released around memento_get_ref (a counted reference,
 *          so that no guard is held while __init__ runs); its create
 *          callback takes the GIL back and runs type.__call__(cls, *args,
 *          **kwargs); the cache holds (instance, key), the key keeping
 *          alive the objects that the encoding names by address; a
 *          waiter in the main thread runs Python's signal handlers every
 *          50 ms (the class's interrupt callback), so Ctrl-C ends its wait.
 * A failed __init__ leaves its exception in a ring of recent failures and
 * returns a token as its error, which mementos hands to the creator and to
 * every waiter on that attempt: each raises the same exception object.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "pykey.h"

#include <mementos.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* ---- the process's cache ---------------------------------------------------------- */

static memento_cache *cache; /* made by the module's init, never freed */
static PyObject *class_attr; /* "__mementos_class__" */
static PyObject *key_attr;   /* "__mementos_key__" */
static unsigned long long intern_next; /* numbers of interned keys; with the GIL */

/* What memento_key_bytes takes: MEMENTO_KEY_MAX less its length word. */
#define KEY_BYTES_MAX (MEMENTO_KEY_MAX - 8)

/* ---- failures shared with waiters --------------------------------------------------- */

/* Tokens are negative errors far from any errno: -(FAIL_BASE + n). */
#define FAIL_BASE (1 << 24)
/* Failures kept for waiters still to wake.  Each keeps its exception, and
 * so its traceback's frames, alive until as many newer failures pass. */
#define FAIL_SLOTS 64

/* Written and read with the GIL held. */
static struct {
	unsigned long seq;
	PyObject *exc;
} failures[FAIL_SLOTS];
static unsigned long failure_seq;

/* The current exception, taken: its value, with its traceback attached
 * (NULL when none is set). */
static PyObject *exception_take(void)
{
	PyObject *type, *value, *tb;
	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (tb != NULL && value != NULL)
		PyException_SetTraceback(value, tb);
	Py_XDECREF(type);
	Py_XDECREF(tb);
	return value;
}

/* The current exception, kept for the waiters; *own gets a reference for
 * the creator, which raises its own exception whatever the ring holds by
 * then.  Returns the token. */
static int failure_keep(PyObject **own)
{
	PyObject *value = exception_take();
	if (value == NULL) /* create failed without an exception: not expected */
		value = PyObject_CallFunction(PyExc_RuntimeError, "s",
		                              "mementos: a construction failed without an exception");
	unsigned long seq = ++failure_seq;
	unsigned slot = (unsigned)(seq % FAIL_SLOTS);
	/* The slot is whole before the old exception goes: its __del__ may
	 * let another thread read the ring. */
	PyObject *old = failures[slot].exc;
	failures[slot].exc = Py_XNewRef(value);
	failures[slot].seq = seq;
	Py_XSETREF(*own, value);
	Py_XDECREF(old);
	return -(FAIL_BASE + (int)(seq % FAIL_BASE));
}

static void raise_exception(PyObject *exc)
{
	PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), Py_NewRef(exc),
	              PyException_GetTraceback(exc));
}

static int is_failure_token(int rc)
{
	return rc <= -FAIL_BASE;
}

/* Raises the exception behind a token. */
static void failure_raise(int rc)
{
	unsigned long n = (unsigned long)(-rc - FAIL_BASE);
	unsigned slot = (unsigned)(n % FAIL_SLOTS);
	PyObject *exc = failures[slot].exc;
	if (exc == NULL || failures[slot].seq % FAIL_BASE != n) {
		PyErr_SetString(PyExc_RuntimeError,
		                "mementos: the construction this call waited on failed, and its "
		                "exception was overwritten by newer failures");
		return;
	}
	raise_exception(exc);
}

/* ---- one construction ---------------------------------------------------------------- */

/* What the callbacks of a construction see, through mementos' args. */
struct construction {
	PyObject *cls;
	PyObject *args;
	PyObject *kwargs; /* or NULL */
	PyObject *key;    /* a key function's result, or NULL for the default key */
	const unsigned char *bytes;
	size_t len;
	PyObject *failure; /* the exception this thread's own create raised, or that
	                      ended its wait (a signal handler's), or NULL */
	bool handles_signals; /* this thread may run Python's signal handlers
	                         (runs_signal_handlers); set for a miss */
};

/* Runs without the GIL: the bytes were encoded before. */
static int construction_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	const struct construction *c = args;
	return memento_key_bytes(key, c->bytes, c->len);
}

static int construction_create(void **obj, const void *args, void *ctx)
{
	(void)ctx;
	/* mementos hands create the args of the get that runs it: this
	 * thread's own construction, which it may write. */
	struct construction *c = (struct construction *)args;
	PyGILState_STATE gil = PyGILState_Ensure();
	int rc = 0;
	PyObject *held = NULL;
	PyObject *instance = PyType_Type.tp_call(c->cls, c->args, c->kwargs);
	if (instance != NULL) {
		PyObject *key = c->key != NULL ? Py_NewRef(c->key)
		                               : pykey_call_tuple(c->cls, c->args, c->kwargs);
		if (key != NULL) {
			held = PyTuple_Pack(2, instance, key);
			Py_DECREF(key);
		}
		Py_DECREF(instance);
	}
	if (held != NULL)
		*obj = held;
	else
		rc = failure_keep(&c->failure);
	PyGILState_Release(gil);
	return rc;
}

/* Whether this thread runs Python's signal handlers (the main thread): a
 * private function of 3.11 and 3.12; past those every waiting thread takes
 * the GIL to ask, and PyErr_CheckSignals answers 0 but in the main thread. */
static bool runs_signal_handlers(void)
{
#if PY_VERSION_HEX < 0x030D0000
	return _PyOS_IsMainThread();
#else
	return true;
#endif
}

/* How often a waiting construction asks construction_interrupted: the
 * main thread's delay in answering Ctrl-C while it waits. */
#define INTERRUPT_EVERY_NS 50000000u

/* Asked by a construction waiting for another thread's: the main thread
 * runs Python's signal handlers, and one that raises (Ctrl-C's
 * KeyboardInterrupt) ends the wait with its exception.  Other threads never
 * run handlers: up to 3.12 they wait on without taking the GIL; past it
 * (runs_signal_handlers) they take it to ask, and the answer is 0.  A
 * handler may fork: mementos then has the child's wait create anew. */
static int construction_interrupted(const void *args, void *ctx)
{
	(void)ctx;
	/* This thread's own construction, as in construction_create. */
	struct construction *c = (struct construction *)args;
	if (!c->handles_signals)
		return 0;
	PyGILState_STATE gil = PyGILState_Ensure();
	int rc = 0;
	if (PyErr_CheckSignals() != 0) {
		Py_XSETREF(c->failure, exception_take());
		rc = -EINTR;
	}
	PyGILState_Release(gil);
	return rc;
}

/* The cache's reference: dropped when a forgotten instance is reclaimed. */
static void construction_destroy(void *obj, void *ctx)
{
	(void)ctx;
	PyGILState_STATE gil = PyGILState_Ensure();
	Py_DECREF((PyObject *)obj);
	PyGILState_Release(gil);
}

static PyObject *raise_rc(PyObject *cls, int rc)
{
	if (is_failure_token(rc))
		failure_raise(rc);
	else if (rc == -EDEADLK)
		PyErr_Format(PyExc_RecursionError,
		             "mementos: constructing this %.200s needs itself, in this thread or "
		             "through other threads waiting on each other",
		             ((PyTypeObject *)cls)->tp_name);
	else if (rc == -ENOMEM)
		PyErr_NoMemory();
	else
		PyErr_Format(PyExc_RuntimeError, "mementos: %s", memento_strerror(rc));
	return NULL;
}

/* ---- a class's record ---------------------------------------------------------------- */

/*
 * What a memoizing class carries, in a capsule in its own __dict__
 * (`__mementos_class__`): its mementos class and its table of interned
 * keys.  The record names the class it was made for: a class made from a
 * copy of another's __dict__ (as class-rebuilding decorators do) finds a
 * record that is not its own and makes its own.  The record dies with the
 * class's __dict__, so a new class at a dead one's address starts afresh.
 */
struct record {
	memento_class *memo;
	const PyObject *owner; /* the class, by identity only (no reference) */
	PyObject *keys;        /* interned keys -> their numbers; NULL until needed */
};

static unsigned long long classes_made; /* names mementos classes; with the GIL */

/* The capsule's name.  A capsule is ours when its name is this very
 * string (compared by address: PyCapsule_GetPointer's strcmp was 4% of a
 * hit); the record is also its context, which reads without a compare. */
static const char record_capsule[] = "mementos.record";

/* The record in o when o is one of this module's capsules, else NULL. */
static struct record *record_in(PyObject *o)
{
	if (!PyCapsule_CheckExact(o) || PyCapsule_GetName(o) != record_capsule)
		return NULL;
	return PyCapsule_GetContext(o);
}

static void record_free(PyObject *capsule)
{
	struct record *r = record_in(capsule);
	if (r == NULL)
		return;
	/* The mementos class stays with the cache (a cache never frees a
	 * class); its entries hold their instances until forgotten. */
	Py_XDECREF(r->keys);
	PyMem_Free(r);
}

/*
 * The record of a memoizing class: its own, made on first use unless make
 * is false (then NULL, no exception, when there is none).  *hold gets a
 * reference to the capsule that owns the record: user code (a key
 * function, __eq__, __del__) may replace the class's attribute while the
 * record is in use, so the caller keeps the capsule until it is done.
 */
static struct record *record_of(PyObject *cls, bool make, PyObject **hold)
{
	*hold = NULL;
	PyObject *dict = ((PyTypeObject *)cls)->tp_dict;
	PyObject *capsule = PyDict_GetItemWithError(dict, class_attr);
	if (capsule != NULL) {
		struct record *r = record_in(capsule);
		if (r == NULL) {
			PyErr_Format(PyExc_TypeError,
			             "mementos: %.200s.__mementos_class__ is not this module's "
			             "record", ((PyTypeObject *)cls)->tp_name);
			return NULL;
		}
		if (r->owner == cls) {
			*hold = Py_NewRef(capsule);
			return r;
		}
		/* Copied from another class's __dict__: not ours. */
	} else if (PyErr_Occurred()) {
		return NULL;
	}
	if (!make)
		return NULL;
	/* A name of its own, never used again: a class at a dead class's
	 * address must not find that one's instances or counters. */
	char name[300];
	snprintf(name, sizeof name, "%.200s#%llu", ((PyTypeObject *)cls)->tp_name,
	         ++classes_made);
	memento_class_desc desc = { name, construction_key, construction_create,
		                    construction_destroy, NULL };
	memento_class_options options = MEMENTO_CLASS_OPTIONS_INIT;
	options.lifetime = MEMENTO_LIFETIME_GUARDED;
	options.interrupt = construction_interrupted;
	options.interrupt_every_ns = INTERRUPT_EVERY_NS;
	struct record *r = PyMem_Calloc(1, sizeof *r);
	if (r == NULL) {
		PyErr_NoMemory();
		return NULL;
	}
	int rc = memento_class_new_with(cache, &desc, &options, &r->memo);
	if (rc != 0) {
		PyMem_Free(r);
		if (rc == -ENOSPC)
			PyErr_Format(PyExc_RuntimeError,
			             "mementos: %llu memoizing classes made in this process, the "
			             "most one process may make (MEMENTO_CLASSES_MAX)",
			             classes_made - 1);
		else
			raise_rc(cls, rc);
		return NULL;
	}
	r->owner = cls;
	capsule = PyCapsule_New(r, record_capsule, record_free);
	if (capsule == NULL || PyCapsule_SetContext(capsule, r) != 0) {
		if (capsule != NULL)
			PyCapsule_SetDestructor(capsule, NULL);
		Py_XDECREF(capsule);
		PyMem_Free(r);
		return NULL;
	}
	/* Into the class's own dict, past any metaclass __setattr__. */
	if (PyDict_SetItem(dict, class_attr, capsule) != 0) {
		Py_DECREF(capsule);
		return NULL;
	}
	PyType_Modified((PyTypeObject *)cls);
	*hold = capsule;
	return r;
}

/* What intern_key found. */
enum interned { INTERNED, NOT_INTERNED, INTERN_ERROR };

/*
 * A key pykey does not encode (a type of its own, or too long once
 * encoded), by the number it has in the class's table of such keys: a dict,
 * so its keys compare exactly as a dict compares them (hash, then ==).
 * PyDict_SetDefault keeps one key per equal group even when a user __eq__
 * lets another thread in mid-lookup.  Numbers are never given back: a
 * forgotten key keeps its number, so a key has one number for the class's
 * life, and its instance is made once per number as for any other key.
 * add: false for a forget, which must not grow the table.
 */
static enum interned intern_key(struct record *r, PyObject *key, struct pykey *bytes, bool add)
{
	if (r->keys == NULL) {
		if (!add)
			return NOT_INTERNED;
		r->keys = PyDict_New();
		if (r->keys == NULL)
			return INTERN_ERROR;
	}
	PyObject *table = Py_NewRef(r->keys); /* user code (hash, ==) runs below */
	PyObject *number, *candidate = NULL;
	if (add) {
		candidate = PyLong_FromUnsignedLongLong(++intern_next);
		number = candidate != NULL ? PyDict_SetDefault(table, key, candidate) : NULL;
	} else {
		number = PyDict_GetItemWithError(table, key);
	}
	enum interned got = INTERN_ERROR;
	if (number != NULL) {
		unsigned long long n = PyLong_AsUnsignedLongLong(number);
		if (!(n == (unsigned long long)-1 && PyErr_Occurred()) &&
		    pykey_encode_interned(bytes, n) == 0)
			got = INTERNED;
	} else if (!add && !PyErr_Occurred()) {
		got = NOT_INTERNED;
	}
	Py_XDECREF(candidate);
	Py_DECREF(table);
	return got;
}

/* Builds the construction's key: the metaclass's key function, or the
 * default.  On success (0) c->key holds a new reference (or NULL).  For a
 * forget (add false), 1: the key was never interned, so never made. */
static int construction_begin(struct construction *c, struct pykey *bytes, struct record *r,
                              PyObject *cls, PyObject *args, PyObject *kwargs, bool add)
{
	*c = (struct construction){ cls, args, kwargs, NULL, NULL, 0, NULL, false };
	pykey_init(bytes);
	PyObject *keyfunc = _PyType_Lookup(Py_TYPE(cls), key_attr);
	int rc;
	if (keyfunc != NULL) {
		Py_INCREF(keyfunc); /* the call may change the metaclass */
		PyObject *kw = kwargs != NULL ? Py_NewRef(kwargs) : PyDict_New();
		c->key = kw != NULL ? PyObject_CallFunctionObjArgs(keyfunc, cls, args, kw, NULL) : NULL;
		Py_XDECREF(kw);
		Py_DECREF(keyfunc);
		if (c->key == NULL)
			return -1;
		rc = pykey_encode(bytes, c->key);
	} else {
		rc = pykey_encode_call(bytes, cls, args, kwargs);
	}
	if (rc == PYKEY_OTHER || (rc == 0 && bytes->len > KEY_BYTES_MAX)) {
		if (c->key == NULL)
			c->key = pykey_call_tuple(cls, args, kwargs);
		enum interned got = c->key != NULL ? intern_key(r, c->key, bytes, add) : INTERN_ERROR;
		rc = got == INTERNED ? 0 : got == NOT_INTERNED ? 1 : -1;
	}
	if (rc != 0) {
		Py_CLEAR(c->key);
		pykey_free(bytes);
		return rc;
	}
	c->bytes = bytes->bytes;
	c->len = bytes->len;
	return 0;
}

static void construction_end(struct construction *c, struct pykey *bytes)
{
	Py_CLEAR(c->key);
	Py_CLEAR(c->failure);
	pykey_free(bytes);
}

/* MementoMetaclass.__call__: the one instance of the call's identity. */
static PyObject *memo_call(PyObject *cls, PyObject *args, PyObject *kwargs)
{
	PyObject *hold;
	struct record *r = record_of(cls, true, &hold);
	if (r == NULL)
		return NULL;
	memento_class *memo = r->memo;
	struct construction c;
	struct pykey bytes;
	if (construction_begin(&c, &bytes, r, cls, args, kwargs, true) != 0) {
		Py_DECREF(hold);
		return NULL;
	}

	PyObject *instance = NULL;
	void *held;
	int rc = memento_guard_enter(cache);
	if (rc == 0) {
		/* A hit never blocks: it keeps the GIL. */
		rc = memento_peek(memo, &c, &held);
		if (rc == 0)
			instance = Py_NewRef(PyTuple_GET_ITEM((PyObject *)held, 0));
		memento_guard_leave(cache);
	}
	if (instance == NULL && (rc == -ENOENT || rc == -EINPROGRESS)) {
		/* A miss: the GIL goes while this thread creates or waits; the
		 * create callback takes it back to run __init__.  A counted
		 * reference, not a guard, keeps the result: no guard is held
		 * for as long as an __init__ runs. */
		memento_ref *ref = NULL;
		c.handles_signals = runs_signal_handlers(); /* asked with the GIL */
		Py_BEGIN_ALLOW_THREADS
		rc = memento_get_ref(memo, &c, &ref);
		Py_END_ALLOW_THREADS
		/* Python's reference is taken before mementos' is dropped, with
		 * the GIL back (a release may destroy a forgotten instance). */
		if (rc == 0) {
			instance = Py_NewRef(PyTuple_GET_ITEM((PyObject *)memento_ref_object(ref), 0));
			memento_ref_release(ref);
		}
	}
	/* Raised before construction_end, whose releases may run user code. */
	if (instance == NULL && c.failure != NULL)
		raise_exception(c.failure); /* its own create failed, or a signal handler raised */
	else if (instance == NULL)
		raise_rc(cls, rc);
	construction_end(&c, &bytes);
	Py_DECREF(hold);
	return instance;
}

/* ---- the module's functions ----------------------------------------------------------- */

static PyTypeObject MetaType;

/* Whether o is a class whose metaclass is MementoMetaclass or derives from it. */
static int memoizing(PyObject *o)
{
	return PyType_Check(o) && PyObject_TypeCheck(o, &MetaType);
}

PyDoc_STRVAR(memento_factory_doc,
"memento_factory(name, keyfunc) -> a memoizing metaclass\n\n"
"keyfunc(cls, args, kwargs) returns the identity of a construction.");

static PyObject *memento_factory(PyObject *module, PyObject *const *argv, Py_ssize_t argc);

PyDoc_STRVAR(with_metaclass_doc,
"with_metaclass(meta, base=object) -> a base class whose metaclass is meta\n\n"
"base may be a class or a tuple of classes.");

static PyObject *with_metaclass(PyObject *module, PyObject *args, PyObject *kwargs)
{
	(void)module;
	static char *names[] = { "meta", "base", NULL };
	PyObject *meta, *base = (PyObject *)&PyBaseObject_Type;
	if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:with_metaclass", names, &meta, &base))
		return NULL;
	PyObject *bases = PyTuple_Check(base) ? Py_NewRef(base) : PyTuple_Pack(1, base);
	if (bases == NULL)
		return NULL;
	PyObject *made = PyObject_CallFunction(meta, "sO{}", "NewBase", bases);
	Py_DECREF(bases);
	return made;
}

/* A construction's identity, for forget: the same key as a call. */
PyDoc_STRVAR(forget_doc,
"forget(cls, *args, **kwargs) -> bool\n\n"
"Forgets the instance that cls(*args, **kwargs) stands for: the next such\n"
"construction makes a new one.  The old instance lives on while referenced.\n"
"False when there was none.");

static PyObject *forget(PyObject *module, PyObject *args, PyObject *kwargs)
{
	(void)module;
	if (PyTuple_GET_SIZE(args) < 1 || !memoizing(PyTuple_GET_ITEM(args, 0))) {
		PyErr_SetString(PyExc_TypeError,
		                "forget(cls, *args, **kwargs): cls must be a memoizing class");
		return NULL;
	}
	PyObject *cls = PyTuple_GET_ITEM(args, 0);
	PyObject *rest = PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args));
	if (rest == NULL)
		return NULL;
	PyObject *hold;
	struct record *r = record_of(cls, false, &hold);
	if (r == NULL) {
		Py_DECREF(rest);
		if (PyErr_Occurred())
			return NULL;
		Py_RETURN_FALSE; /* never constructed */
	}
	struct construction c;
	struct pykey bytes;
	int begun = construction_begin(&c, &bytes, r, cls, rest, kwargs, false);
	Py_DECREF(rest);
	if (begun != 0) {
		Py_DECREF(hold);
		if (begun < 0)
			return NULL;
		Py_RETURN_FALSE; /* a key never interned was never made */
	}
	int rc = memento_forget(r->memo, &c);
	construction_end(&c, &bytes);
	Py_DECREF(hold);
	if (rc == 0)
		Py_RETURN_TRUE;
	if (rc == -ENOENT)
		Py_RETURN_FALSE;
	return raise_rc(cls, rc);
}

PyDoc_STRVAR(stats_doc,
"stats(cls) -> dict\n\n"
"The class's counters: hits, misses, creations, failures, waits, deadlocks\n"
"and destroyed (forgotten instances released).");

static PyObject *stats(PyObject *module, PyObject *cls)
{
	(void)module;
	if (!memoizing(cls)) {
		PyErr_SetString(PyExc_TypeError, "stats(cls): cls must be a memoizing class");
		return NULL;
	}
	PyObject *hold;
	struct record *r = record_of(cls, false, &hold);
	memento_stats s = { 0 }; /* a class never constructed counts nothing */
	int rc = 0;
	if (r != NULL) {
		rc = memento_class_stats(r->memo, &s);
		Py_DECREF(hold);
	} else if (PyErr_Occurred()) {
		return NULL;
	}
	if (rc != 0)
		return raise_rc(cls, rc);
	return Py_BuildValue("{sKsKsKsKsKsKsK}", "hits", (unsigned long long)s.hits, "misses",
	                     (unsigned long long)s.misses, "creations",
	                     (unsigned long long)s.creations, "failures",
	                     (unsigned long long)s.failures, "waits", (unsigned long long)s.waits,
	                     "deadlocks", (unsigned long long)s.deadlocks, "destroyed",
	                     (unsigned long long)s.destroyed);
}

static PyMethodDef module_methods[] = {
	{ "memento_factory", (PyCFunction)(void (*)(void))memento_factory, METH_FASTCALL,
	  memento_factory_doc },
	{ "with_metaclass", (PyCFunction)(void (*)(void))with_metaclass,
	  METH_VARARGS | METH_KEYWORDS, with_metaclass_doc },
	{ "forget", (PyCFunction)(void (*)(void))forget, METH_VARARGS | METH_KEYWORDS, forget_doc },
	{ "stats", stats, METH_O, stats_doc },
	{ NULL, NULL, 0, NULL },
};

/* ---- the metaclass ---------------------------------------------------------------------- */

PyDoc_STRVAR(metaclass_doc,
"MementoMetaclass: classes made with it keep one instance per identity,\n"
"(cls,) + args + tuple(kwargs.items()), built once however many threads\n"
"construct it at the same time.");

static PyTypeObject MetaType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "mementos.MementoMetaclass",
	.tp_doc = metaclass_doc,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_call = memo_call,
};

static PyObject *memento_factory(PyObject *module, PyObject *const *argv, Py_ssize_t argc)
{
	(void)module;
	if (argc != 2 || !PyUnicode_Check(argv[0]) || !PyCallable_Check(argv[1])) {
		PyErr_SetString(PyExc_TypeError,
		                "memento_factory(name, keyfunc): a str and a callable");
		return NULL;
	}
	/* type(name, (MementoMetaclass,), {"__mementos_key__": keyfunc}) */
	return PyObject_CallFunction((PyObject *)&PyType_Type, "O(O){OO}", argv[0],
	                             (PyObject *)&MetaType, key_attr, argv[1]);
}

/* ---- the module --------------------------------------------------------------------------- */

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT,
	.m_name = "mementos",
	.m_doc = "Thread-safe memoizing metaclasses on the mementos C library.",
	.m_size = -1,
	.m_methods = module_methods,
};

PyMODINIT_FUNC PyInit_mementos(void);

PyMODINIT_FUNC PyInit_mementos(void)
{
	if (cache == NULL) {
		int rc = memento_cache_new(&cache);
		if (rc != 0) {
			PyErr_Format(PyExc_ImportError, "mementos: cannot make the cache: %s",
			             memento_strerror(rc));
			return NULL;
		}
	}
	if (class_attr == NULL) {
		class_attr = PyUnicode_InternFromString("__mementos_class__");
		key_attr = PyUnicode_InternFromString("__mementos_key__");
		if (class_attr == NULL || key_attr == NULL)
			return NULL;
	}
	MetaType.tp_base = &PyType_Type;
	if (PyType_Ready(&MetaType) != 0)
		return NULL;
	PyObject *m = PyModule_Create(&module_def);
	if (m == NULL)
		return NULL;
	PyObject *base = PyObject_CallFunction((PyObject *)&MetaType, "s(O){ss}", "mementos",
	                                       (PyObject *)&PyBaseObject_Type, "__module__",
	                                       "mementos");
	PyObject *version = PyUnicode_FromFormat("%d.%d.%d", MEMENTO_VERSION_MAJOR,
	                                         MEMENTO_VERSION_MINOR, MEMENTO_VERSION_PATCH);
	int rc = base == NULL || version == NULL ||
	         PyModule_AddObjectRef(m, "MementoMetaclass", (PyObject *)&MetaType) != 0 ||
	         PyModule_AddObjectRef(m, "mementos", base) != 0 ||
	         PyModule_AddObjectRef(m, "__version__", version) != 0;
	Py_XDECREF(base);
	Py_XDECREF(version);
	if (rc != 0) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
