/*
 * The input language of the fuzz_ops harness, shared with make_corpus.c,
 * which writes the seed corpus in it.
 *
 * An input is a program: one options byte, then operations until the bytes
 * run out.  Reading past the end yields zeros, so every byte string is a
 * program, and a mutation of one byte changes one decision.
 *
 *   input   := options op*
 *   options := mode:u8 [countdown:u8] [shards:u8 capacity:u8 seed:u8]
 *              mode & 15 (modulo OPT_COUNT) is an OPT_*, the rest OPTF_*
 *              flags; countdown only with OPTF_FAIL_NEW
 *   op      := code:u8 body          opcode = code & 15, flags = code >> 4
 *
 *   OP_CLASS_NEW    name cflags:u8 [classopts]             (CN_* flags; classopts
 *                                                          only with CN_OPTIONS)
 *   OP_GET          class args                             (F_NULL_OUT, F_NULL_ARGS,
 *                                                          F_MANY)
 *   OP_GET_UNTIL    class deadline:u8 args                 (same flags)
 *   OP_PEEK         class args                             (same flags)
 *   OP_FORGET       class args                             (F_NULL_ARGS)
 *   OP_AGAIN        which:u8 [deadline:u8]                 an earlier args again:
 *                                                          flags & 7 = AGAIN_*
 *   OP_COUNT
 *   OP_FOREACH      stop:u8 ret:u8 nest_at:u8 block        (FE_* flags)
 *   OP_CLASS_FIND   name                                   (FIND_* flags)
 *   OP_STATS        class                                  (F_NULL_OUT)
 *   OP_MISC         which:u8
 *   OP_FAIL         after:u8      the harness's allocator refuses the
 *                                 allocation after `after` more (FAIL_* flags)
 *   OP_GUARD        [block]       flags % 8 = GUARD_*; GUARD_SCOPED (the
 *                                 default) enters, runs block, leaves
 *   OP_GET_REF      class args    memento_get_ref   (F_NULL_OUT, F_NULL_ARGS)
 *   OP_REF          which:u8      a held reference: flags % 8 = REF_*
 *   OP_BARRIER                    memento_cache_barrier (BARRIER_* flags)
 *
 *   classopts := life:u8 oflags:u8 entries:u8 weight:u8
 *              life & 3: 0 CACHE, 1 and 2 GUARDED, 3 a lifetime that is not
 *              one (2, 3, 255, INT_MAX by life >> 5); (life >> 2) & 7 =
 *              CSIZE_*; oflags: OO_* bits; entries and weight: the bounds
 * *
 *   class   := u8              255: NULL; else index modulo the classes made
 *   name    := u8              NAME_* (modulo NAME_COUNT); NAME_INPUT is
 *                              followed by len:u8 and len bytes
 *   args    := nfields:u8 field* keyret:u8 nest_at:u8 block create:u8 block
 *              nfields modulo (MAX_FIELDS + 1); the key block runs inside the
 *              key callback before field nest_at (modulo nfields + 1), the
 *              create block inside create before it returns
 *   field   := kind:u8 payload     FIELD_* (modulo FIELD_COUNT)
 *   keyret  := u8                  low 2 bits KEYRET_*, the rest an argument
 *   create  := u8                  low 3 bits CREATE_*, the rest an argument
 *   block   := len:u8 bytes[len]   a nested program (ops only, no options)
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef FUZZ_OPS_H
#define FUZZ_OPS_H

enum { MAX_FIELDS = 7 };

enum opt_mode {
	OPT_NEW,           /* memento_cache_new */
	OPT_NEW_WITH_NULL, /* memento_cache_new_with(NULL options) */
	OPT_CUSTOM,        /* shards, capacity * 37, seed from the next 3 bytes */
	OPT_SHARDS_MAX,    /* MEMENTO_SHARDS_MAX shards */
	OPT_SHARDS_OVER,   /* MEMENTO_SHARDS_MAX + 1: -EINVAL, then the defaults */
	OPT_CAPACITY_OVER, /* capacity just over the limit: -EINVAL, then defaults */
	OPT_SIZE_SHORT,    /* options->size too small: -EINVAL, then defaults */
	OPT_SIZE_OLD,      /* an older header that knew only size and capacity */
	OPT_ALLOC_HALF,    /* only one of the allocator's functions: -EINVAL */
	OPT_COUNT
};

/* Option flags (the mode byte's high bits). */
enum {
	OPTF_ALLOCATOR = 16, /* the cache gets the harness's allocator (modes with options) */
	OPTF_FAIL_FREE = 32, /* which refuses every allocation in memento_cache_free */
	OPTF_FAIL_NEW = 64,  /* and the countdown-th one while the cache is created */
};

enum opcode {
	OP_CLASS_NEW,
	OP_GET,
	OP_GET_UNTIL,
	OP_PEEK,
	OP_FORGET,
	OP_AGAIN,
	OP_COUNT,
	OP_FOREACH,
	OP_CLASS_FIND,
	OP_STATS,
	OP_MISC,
	OP_FAIL,
	OP_GUARD,
	OP_GET_REF,
	OP_REF,
	OP_BARRIER,
};

/* Op flags (the code's high nibble). */
enum {
	F_NULL_OUT = 1,  /* get/peek: obj NULL; stats: stats NULL */
	F_NULL_ARGS = 2, /* get/peek/forget: args NULL (a fixed built-in key) */
	F_MANY = 4,      /* get: through memento_get_many, one key */
};

enum again_kind {
	AGAIN_GET,
	AGAIN_PEEK,
	AGAIN_FORGET,
	AGAIN_GET_UNTIL,
	AGAIN_GET_REF,       /* memento_get_ref, the reference kept */
	AGAIN_GUARDED_GET,   /* memento_get inside a guard of its own */
	AGAIN_GUARDED_PEEK,  /* memento_peek inside a guard of its own */
	AGAIN_GUARDED_FORGET, /* memento_forget inside a guard of its own */
};

/* OP_GUARD kinds (flags % 8; the others are GUARD_SCOPED). */
enum {
	GUARD_SCOPED,     /* enter, the block, leave */
	GUARD_ENTER,      /* memento_guard_enter alone */
	GUARD_LEAVE,      /* memento_guard_leave alone: ignored outside a guard */
	GUARD_ENTER_NULL, /* memento_guard_enter(NULL): -EINVAL */
	GUARD_LEAVE_NULL, /* memento_guard_leave(NULL): a no-op */
};

/* OP_REF kinds (flags % 8; 4..7 release every held reference). */
enum {
	REF_OBJECT,       /* memento_ref_object of held reference `which` */
	REF_RELEASE,      /* memento_ref_release of held reference `which` */
	REF_RELEASE_NULL, /* memento_ref_release(NULL) */
	REF_OBJECT_NULL,  /* memento_ref_object(NULL) */
	REF_RELEASE_ALL,  /* all of them, oldest first (which odd: newest first) */
};

/* OP_BARRIER flags. */
enum {
	BARRIER_NULL = 1, /* memento_cache_barrier(NULL): a no-op */
};

enum {
	FAIL_STICKY = 1, /* and every allocation after it, until the next OP_FAIL */
	FAIL_NEVER = 2,  /* stop refusing */
};

enum {
	FE_NULL_CACHE = 1,
	FE_NULL_VISIT = 2,
};

enum {
	FIND_NULL_CACHE = 1,
	FIND_NULL_OUT = 2,
};

/* memento_class_new flags (the byte after the name). */
enum {
	CN_NO_KEY = 1,
	CN_NO_CREATE = 2,
	CN_NO_DESTROY = 4,
	CN_NULL_DESC = 8,
	CN_NULL_OUT = 16,
	CN_NULL_CACHE = 32,
	CN_OPTIONS = 64,       /* memento_class_new_with, classopts follow */
	CN_NULL_OPTIONS = 128, /* memento_class_new_with(NULL options), unless CN_OPTIONS */
};

/* classopts: the size the options claim ((life >> 2) & 7; the others are
 * the size of the struct). */
enum {
	CSIZE_SHORT = 4, /* below the struct: 0, 1, 8 or the struct less one byte */
	CSIZE_LONGER,    /* a newer header's larger struct, its tail zero: valid */
	CSIZE_TAIL_SET,  /* the same with a nonzero byte in the tail: -EINVAL */
};

/* classopts' oflags.  Durations are an hour (or about UINT64_MAX with
 * OO_HUGE): they never run out within a run, because the run's time is
 * not deterministic; what they exercise is the options and the paths
 * that check them. */
enum {
	OO_ENTRIES = 1,   /* max_entries = 1 + entries % 8 (entries >= 128: UINT64_MAX) */
	OO_WEIGHT = 2,    /* max_weight = 1 + weight % 32 (weight >= 128: UINT64_MAX) */
	OO_WEIGH = 4,     /* weigh = the harness's: an object's weight comes from create */
	OO_EXPIRE = 8,    /* expire_after_ns */
	OO_REFRESH = 16,  /* refresh_after_ns: half of the duration */
	OO_LATE = 32,     /* refresh_after_ns = the whole duration (+ weight & 1):
	                     with OO_EXPIRE not below it, -EINVAL */
	OO_HUGE = 64,     /* durations near UINT64_MAX instead of an hour */
	OO_TTL = 128,     /* failure_ttl_ns */
};

enum name_kind {
	NAME_A,         /* "a" */
	NAME_B,         /* "b" */
	NAME_AB,        /* "ab" */
	NAME_BASE,      /* "base": the class every run starts with */
	NAME_EMPTY,     /* "" */
	NAME_LONG,      /* 1000 characters */
	NAME_HUGE,      /* 12000 characters */
	NAME_NULL,      /* NULL */
	NAME_INPUT,     /* len:u8 (modulo 32) bytes from the input, up to a NUL */
	NAME_COUNT
};

enum field_kind {
	FIELD_U64_SMALL,  /* u8 */
	FIELD_U64,        /* 8 bytes, little-endian */
	FIELD_I64_SMALL,  /* i8 */
	FIELD_I64,        /* 8 bytes */
	FIELD_F64_SPECIAL, /* u8: index into the special values (NaNs, -0.0, ...) */
	FIELD_F64,        /* 8 bytes, the bits of a double */
	FIELD_STR,        /* len:u8 (modulo 64) bytes; the string stops at a NUL */
	FIELD_STR_LONG,   /* u8: index into the long lengths (around MEMENTO_KEY_MAX) */
	FIELD_BYTES,      /* len:u8 (modulo 64) bytes */
	FIELD_BYTES_LONG, /* u8: index into the long sizes (up to SIZE_MAX) */
	FIELD_PTR_SMALL,  /* u8: 0 is NULL */
	FIELD_PTR,        /* 8 bytes */
	FIELD_STR_NULL,   /* memento_key_str(key, NULL): -EINVAL, sticks */
	FIELD_BYTES_NULL, /* u8 n: memento_key_bytes(key, NULL, n) */
	FIELD_NULL_KEY,   /* u8: a memento_key_* call with a NULL key */
	FIELD_COUNT
};

enum keyret_mode {
	KEYRET_ZERO,     /* return 0 whatever the appends returned */
	KEYRET_LAST,     /* return what the last append returned */
	KEYRET_ERROR,    /* return an error from the error table (argument) */
	KEYRET_POSITIVE, /* return argument + 1: a broken callback */
};

/* A created object's argument (create >> 3) gives its weight, for a class
 * with weigh: an index into the harness's weights (0 counts as 1; the
 * last is heavier than any bound). */
enum create_mode {
	CREATE_OBJECT,   /* a fresh object */
	CREATE_OBJECT2,  /* the same, to make it the common case */
	CREATE_OBJECT3,
	CREATE_NULL,     /* *obj = NULL, return 0: a valid result (an object in a
	                    guarded class, whose destroys the model could not
	                    tell apart otherwise) */
	CREATE_ERROR,    /* return an error from the error table (argument) */
	CREATE_POSITIVE, /* return argument + 1: a broken callback */
	CREATE_ERROR_SET, /* set *obj, then return an error: nothing may be cached */
	CREATE_OBJECT4,
};

enum misc_kind {
	MISC_VERSION,      /* memento_version */
	MISC_ERRORS,       /* memento_strerror and memento_err_name over every code */
	MISC_DEFAULT,      /* memento_default_cache twice */
	MISC_NULLS,        /* every function given NULL where the header allows it */
	MISC_COUNT
};

#endif /* FUZZ_OPS_H */
