/*
 * A redis-server of the test's own, for the Redis suites (test_redis.c,
 * test_redis_tier.c): on a free loopback port, with a password, saving
 * nothing (--save "", no AOF: a restarted server is empty), its files in
 * a temp_dir_make directory, dying with the process that started it
 * (PR_SET_PDEATHSIG).  server_start returns once the server answers PING
 * with the password; server_connect hands a test a raw hiredis connection
 * to look behind the library's back.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef MEMENTO_TEST_REDIS_SERVER_H
#define MEMENTO_TEST_REDIS_SERVER_H

#include "support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* The server's password, and the same percent-encoded for a URI. */
#define PASSWORD "s3cret:with@odd/chars"
#define PASSWORD_IN_URI "s3cret%3Awith%40odd%2Fchars"

struct redis_server {
	char dir[64]; /* its --dir (and a cluster node's nodes.conf) */
	int port;
	pid_t pid;    /* the running server; 0 or -1: none */
	bool cluster; /* start it as a Redis Cluster node */
};

/* A port the kernel just gave out and took back: free, most likely. */
static inline int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t n = sizeof a;
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &n), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* Whether the loopback port can be bound now. */
static inline bool port_is_free(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	bool free = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return free;
}

/* A free port for a cluster node: its cluster bus takes the port 10000
 * higher, which must exist (Redis refuses ports over 55535) and be free. */
static inline int free_cluster_port(void)
{
	for (int tries = 0; tries < 1000; tries++) {
		int port = free_port();
		if (port <= 55535 && port_is_free(port + 10000))
			return port;
	}
	cr_assert_fail("no free pair of ports for a cluster node");
	return -1;
}

/* The server's URI with this (percent-encoded) password, or none. */
static inline char *uri_of(const struct redis_server *s, char *buf, size_t n,
                           const char *password)
{
	if (password != NULL)
		snprintf(buf, n, "redis://:%s@127.0.0.1:%d", password, s->port);
	else
		snprintf(buf, n, "redis://127.0.0.1:%d", s->port);
	return buf;
}

/* A connection authenticated with the password, each command bounded by
 * timeout_ms; NULL when the server does not answer so. */
static inline redisContext *server_try_connect(const struct redis_server *s, int timeout_ms)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
	if (c == NULL)
		return NULL;
	if (c->err || redisSetTimeout(c, tv) != REDIS_OK) {
		redisFree(c);
		return NULL;
	}
	redisReply *r = redisCommand(c, "AUTH %s", PASSWORD);
	bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;
	freeReplyObject(r);
	if (ok) {
		r = redisCommand(c, "PING");
		ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
		freeReplyObject(r);
	}
	if (!ok) {
		redisFree(c);
		return NULL;
	}
	return c;
}

/* The same, for a test that needs it: asserts that it answers. */
static inline redisContext *server_connect(const struct redis_server *s)
{
	redisContext *c = server_try_connect(s, 5000);
	cr_assert_not_null(c, "redis-server on port %d does not answer", s->port);
	return c;
}

/* Starts redis-server on s->port with s->dir and waits until it answers
 * (with the password). */
static inline void server_start(struct redis_server *s)
{
	char port_s[16], nodes[96];
	snprintf(port_s, sizeof port_s, "%d", s->port);
	snprintf(nodes, sizeof nodes, "%s/nodes.conf", s->dir);
	fflush(NULL);
	s->pid = fork();
	cr_assert_geq(s->pid, 0);
	if (s->pid == 0) {
		/* Dies with the test, and keeps no pipe of the runner open. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		if (s->cluster)
			execlp("redis-server", "redis-server", "--port", port_s, "--bind", "127.0.0.1",
			       "--save", "", "--appendonly", "no", "--dir", s->dir, "--requirepass",
			       PASSWORD, "--loglevel", "warning", "--cluster-enabled", "yes",
			       "--cluster-config-file", nodes, (char *)NULL);
		else
			execlp("redis-server", "redis-server", "--port", port_s, "--bind", "127.0.0.1",
			       "--save", "", "--appendonly", "no", "--dir", s->dir, "--requirepass",
			       PASSWORD, "--loglevel", "warning", (char *)NULL);
		_exit(127);
	}
	for (int waited = 0;; waited += 10) {
		redisContext *c = server_try_connect(s, 200);
		if (c != NULL) {
			redisFree(c);
			return;
		}
		int status;
		cr_assert_eq(waitpid(s->pid, &status, WNOHANG), 0,
		             "redis-server exited (status %d): is it installed?", status);
		cr_assert_lt(waited, 10000, "redis-server did not answer in 10 s");
		sleep_ms(10);
	}
}

/* Kills the server (stopped or not) and reaps it. */
static inline void server_stop(struct redis_server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		s->pid = -1;
	}
}

/* A fresh directory and port, and the server started on them. */
static inline void server_new(struct redis_server *s, const char *tag, bool cluster)
{
	s->pid = -1;
	s->cluster = cluster;
	temp_dir_make(s->dir, tag);
	s->port = cluster ? free_cluster_port() : free_port();
	server_start(s);
}

/* Stops the server, if any, and removes its directory (if made). */
static inline void server_free(struct redis_server *s)
{
	server_stop(s);
	if (s->dir[0] != '\0')
		temp_dir_remove(s->dir);
	s->dir[0] = '\0';
}

#endif /* MEMENTO_TEST_REDIS_SERVER_H */
