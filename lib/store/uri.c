/*
 * Where a Redis store lives: redis://[[user]:password@]host[:port][/db],
 * parsed into its parts.  The user and password may be percent-encoded
 * (%40 for '@', %3A for ':'); an IPv6 host goes in brackets.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <ctype.h>
#include <errno.h>

#define SCHEME "redis://"
#define DEFAULT_PORT 6379

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A copy of [from, to), percent-decoded; NULL on a bad escape, or with
 * *oom set when out of memory. */
static char *decoded(const char *from, const char *to, bool *oom)
{
	char *out = malloc((size_t)(to - from) + 1), *w = out;
	if (out == NULL) {
		*oom = true;
		return NULL;
	}
	for (const char *p = from; p < to; p++) {
		if (*p != '%') {
			*w++ = *p;
			continue;
		}
		if (to - p < 3 || hex_value(p[1]) < 0 || hex_value(p[2]) < 0) {
			free(out);
			return NULL;
		}
		*w++ = (char)(hex_value(p[1]) << 4 | hex_value(p[2]));
		p += 2;
	}
	*w = '\0';
	return out;
}

/* A decimal in [min, max] spanning exactly [from, to). */
static bool number_in(const char *from, const char *to, long min, long max, long *out)
{
	if (from == to || to - from > 10)
		return false;
	long v = 0;
	for (const char *p = from; p < to; p++) {
		if (!isdigit((unsigned char)*p))
			return false;
		v = v * 10 + (*p - '0');
	}
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

void memento__redis_target_free(struct memento__redis_target *t)
{
	free(t->host);
	free(t->user);
	free(t->password);
	*t = (struct memento__redis_target){ 0 };
}

bool memento__is_redis_uri(const char *s)
{
	return strncmp(s, SCHEME, sizeof SCHEME - 1) == 0;
}

int memento__redis_uri_parse(const char *uri, struct memento__redis_target *out)
{
	*out = (struct memento__redis_target){ .port = DEFAULT_PORT };
	if (!memento__is_redis_uri(uri))
		return -EINVAL;
	const char *p = uri + sizeof SCHEME - 1;
	const char *end = p + strlen(p);
	const char *slash = strchr(p, '/');
	const char *auth_end = end;
	if (slash != NULL)
		auth_end = slash;
	/* The userinfo ends at the last '@' before the path. */
	const char *at = NULL;
	for (const char *q = p; q < auth_end; q++)
		if (*q == '@')
			at = q;
	bool oom = false;
	if (at != NULL) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (colon == NULL) {
			out->password = decoded(p, at, &oom); /* redis://password@host */
		} else {
			if (colon > p)
				out->user = decoded(p, colon, &oom);
			out->password = decoded(colon + 1, at, &oom);
			if (colon > p && out->user == NULL)
				goto fail;
		}
		if (out->password == NULL)
			goto fail;
		p = at + 1;
	}
	/* Host: [v6] or up to ':' or the path. */
	const char *host_end;
	if (*p == '[') {
		const char *close = memchr(p, ']', (size_t)(auth_end - p));
		if (close == NULL)
			goto fail;
		out->host = decoded(p + 1, close, &oom);
		host_end = close + 1;
	} else {
		host_end = memchr(p, ':', (size_t)(auth_end - p));
		if (host_end == NULL)
			host_end = auth_end;
		out->host = decoded(p, host_end, &oom);
	}
	if (out->host == NULL || out->host[0] == '\0' || strlen(out->host) > 255)
		goto fail;
	long v;
	if (host_end < auth_end) {
		if (*host_end != ':' || !number_in(host_end + 1, auth_end, 1, 65535, &v))
			goto fail;
		out->port = (int)v;
	}
	if (slash != NULL && slash + 1 < end) {
		if (!number_in(slash + 1, end, 0, 1 << 20, &v))
			goto fail;
		out->db = (int)v;
	}
	return 0;
fail:
	memento__redis_target_free(out);
	return oom ? -ENOMEM : -EINVAL;
}
