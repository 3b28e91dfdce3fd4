/*
 * Error names and descriptions, from the one list in MEMENTO_ERRNO_MAP; and
 * the run-time version.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

unsigned int memento_version(void)
{
	return MEMENTO_VERSION_NUMBER;
}

const char *memento_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
#define MEMENTO__DESCRIBE(code, text) \
	case -code:                   \
		return text;
		MEMENTO_ERRNO_MAP(MEMENTO__DESCRIBE)
#undef MEMENTO__DESCRIBE
	default:
		break;
	}
	/* A callback's own error: the C library's text, which is static.
	 * INT_MIN has no positive counterpart to look up. */
	const char *text = err < 0 && err != INT_MIN ? strerrordesc_np(-err) : NULL;
	return text != NULL ? text : "unknown error";
}

const char *memento_err_name(int err)
{
	switch (err) {
	case 0:
		return "OK";
#define MEMENTO__NAME(code, text) \
	case -code:               \
		return #code;
		MEMENTO_ERRNO_MAP(MEMENTO__NAME)
#undef MEMENTO__NAME
	default:
		return "UNKNOWN";
	}
}
