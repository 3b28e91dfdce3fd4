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
 *   OP_CLASS_NEW    name cflags:u8                         (CN_* flags)
 *   OP_GET          class args                             (F_NULL_OUT, F_NULL_ARGS)
 *   OP_GET_UNTIL    class deadline:u8 args                 (same flags)
 *   OP_PEEK         class args                             (same flags)
 *   OP_FORGET       class args                             (F_NULL_ARGS)
 *   OP_AGAIN        which:u8 [deadline:u8]                 an earlier args again:
 *                                                          flags & 3 = AGAIN_*
 *   OP_COUNT
 *   OP_FOREACH      stop:u8 ret:u8 nest_at:u8 block        (FE_* flags)
 *   OP_CLASS_FIND   name                                   (FIND_* flags)
 *   OP_STATS        class                                  (F_NULL_OUT)
 *   OP_MISC         which:u8
 *   OP_FAIL         after:u8      the harness's allocator refuses the
 *                                 allocation after `after` more (FAIL_* flags)
 *
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
	/* 12..15 alias the common operations */
};

/* Op flags (the code's high nibble). */
enum {
	F_NULL_OUT = 1,  /* get/peek: obj NULL; stats: stats NULL */
	F_NULL_ARGS = 2, /* get/peek/forget: args NULL (a fixed built-in key) */
};

enum again_kind { AGAIN_GET, AGAIN_PEEK, AGAIN_FORGET, AGAIN_GET_UNTIL };

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

enum create_mode {
	CREATE_OBJECT,   /* a fresh object */
	CREATE_OBJECT2,  /* the same, to make it the common case */
	CREATE_OBJECT3,
	CREATE_NULL,     /* *obj = NULL, return 0: a valid result */
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
