/*
 * memento_buf: the growing buffer an encode callback writes a result's
 * bytes into.  Its memory comes from the cache's allocator.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <errno.h>

#define FIRST_CAP 256

int memento_buf_append(memento_buf *buf, const void *data, size_t len)
{
	if (buf == NULL || (data == NULL && len != 0))
		return -EINVAL;
	if (buf->err != 0)
		return buf->err;
	if (len > buf->cap - buf->len) {
		if (len > SIZE_MAX / 2 - buf->len) {
			buf->err = -ENOMEM;
			return buf->err;
		}
		size_t cap = buf->cap != 0 ? buf->cap : FIRST_CAP;
		while (cap < buf->len + len)
			cap *= 2;
		unsigned char *grown = memento__alloc(buf->cache, cap);
		if (grown == NULL) {
			buf->err = -ENOMEM;
			return buf->err;
		}
		if (buf->len != 0)
			memcpy(grown, buf->data, buf->len);
		memento__free(buf->cache, buf->data, buf->cap);
		buf->data = grown;
		buf->cap = cap;
	}
	if (len != 0)
		memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	return 0;
}

void memento__buf_init(memento_buf *buf, memento_cache *cache)
{
	*buf = (memento_buf){ .cache = cache };
}

void memento__buf_free(memento_buf *buf)
{
	memento__free(buf->cache, buf->data, buf->cap);
	buf->data = NULL;
	buf->len = buf->cap = 0;
}
