/*
 * The Redis building blocks of the scale-out tier (lib/store/uri.c,
 * redis.c) against a real redis-server that each test starts on a free
 * loopback port, with a password, and stops: URIs, credentials, records
 * of any bytes, a server that goes away and comes back, and one that
 * accepts connections and never answers.  Linked with the static library:
 * these functions are internal until memento_store_open reaches them.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "support.h"
#include "internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PASSWORD "s3cret:with@odd/chars"
#define PASSWORD_IN_URI "s3cret%3Awith%40odd%2Fchars"

static char dir[64];
static pid_t server = -1;
static int port;

/* A port the kernel just gave out and took back: free, most likely. */
static int free_port(void)
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

static char *uri_of(char *buf, size_t n, const char *password)
{
	if (password != NULL)
		snprintf(buf, n, "redis://:%s@127.0.0.1:%d", password, port);
	else
		snprintf(buf, n, "redis://127.0.0.1:%d", port);
	return buf;
}

/* Starts redis-server and waits until it answers (with the password). */
static void server_start(void)
{
	char port_s[16];
	snprintf(port_s, sizeof port_s, "%d", port);
	fflush(NULL);
	server = fork();
	cr_assert_geq(server, 0);
	if (server == 0) {
		/* Dies with the test, and keeps no pipe of the runner open. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execlp("redis-server", "redis-server", "--port", port_s, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", "--dir", dir, "--requirepass", PASSWORD,
		       "--loglevel", "warning", (char *)NULL);
		_exit(127);
	}
	char uri[256];
	uri_of(uri, sizeof uri, PASSWORD_IN_URI);
	for (int waited = 0;; waited += 10) {
		struct memento__redis *r;
		if (memento__redis_open(&r, uri, 200000000u) == 0) {
			memento__redis_close(r);
			return;
		}
		int status;
		cr_assert_eq(waitpid(server, &status, WNOHANG), 0,
		             "redis-server exited (status %d): is it installed?", status);
		cr_assert_lt(waited, 10000, "redis-server did not answer in 10 s");
		sleep_ms(10);
	}
}

static void server_stop(void)
{
	if (server > 0) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
		server = -1;
	}
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/mementos-test-redis-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	port = free_port();
	server_start();
}

static void teardown(void)
{
	server_stop();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	(void)system(cmd);
}

TestSuite(redis, .init = setup, .fini = teardown, .timeout = 60);

/* ---- URIs ------------------------------------------------------------------------- */

Test(redis, uris_parse_and_bad_ones_are_refused)
{
	struct memento__redis_target t;
	cr_assert_eq(memento__redis_uri_parse("redis://localhost", &t), 0);
	cr_assert_str_eq(t.host, "localhost");
	cr_assert_eq(t.port, 6379);
	cr_assert_null(t.password);
	cr_assert_eq(t.db, 0);
	memento__redis_target_free(&t);

	cr_assert_eq(memento__redis_uri_parse("redis://u%40x:p%3Aw@[::1]:7001/3", &t), 0);
	cr_assert_str_eq(t.user, "u@x");
	cr_assert_str_eq(t.password, "p:w");
	cr_assert_str_eq(t.host, "::1");
	cr_assert_eq(t.port, 7001);
	cr_assert_eq(t.db, 3);
	memento__redis_target_free(&t);

	cr_assert_eq(memento__redis_uri_parse("redis://:pw@h/", &t), 0);
	cr_assert_null(t.user);
	cr_assert_str_eq(t.password, "pw");
	memento__redis_target_free(&t);

	const char *bad[] = {
		"", "redis:/h", "http://h", "redis://", "redis://:pw@", "redis://h:0",
		"redis://h:65536", "redis://h:12x", "redis://h/x", "redis://[::1", "redis://p%4@h",
		"redis://h:", "redis://h/-1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(memento__redis_uri_parse(bad[i], &t), -EINVAL, "accepted \"%s\"", bad[i]);
}

/* ---- credentials and records ---------------------------------------------------- */

Test(redis, a_wrong_password_fails_the_open)
{
	char uri[256];
	struct memento__redis *r = NULL;
	cr_assert_eq(memento__redis_open(&r, uri_of(uri, sizeof uri, "wrong"), 0), -EACCES);
	cr_assert_eq(memento__redis_open(&r, uri_of(uri, sizeof uri, NULL), 0), 0,
	             "without a password the connection itself works");
	/* ... but no command does. */
	cr_assert_eq(memento__redis_set(r, "k", 1, "v", 1), -EPROTO);
	memento__redis_close(r);
	cr_assert_eq(memento__redis_open(&r, uri_of(uri, sizeof uri, PASSWORD_IN_URI), 0), 0);
	memento__redis_close(r);
}

static int copy_visit(const void *data, size_t len, void *ctx)
{
	void **out = ctx;
	unsigned char *copy = malloc(len + sizeof(size_t));
	memcpy(copy, &len, sizeof len);
	memcpy(copy + sizeof len, data, len);
	*out = copy;
	return 0;
}

Test(redis, records_of_any_bytes_round_trip)
{
	char uri[256];
	struct memento__redis *r;
	cr_assert_eq(memento__redis_open(&r, uri_of(uri, sizeof uri, PASSWORD_IN_URI), 0), 0);
	/* Keys and values with NULs, spaces, CRLF: argv, never formatted. */
	unsigned char key[24], value[5000];
	for (size_t i = 0; i < sizeof key; i++)
		key[i] = (unsigned char)(i * 37);
	for (size_t i = 0; i < sizeof value; i++)
		value[i] = (unsigned char)(i * 131 + 7);
	memcpy(value, "\r\n$-1\r\n \0", 9);
	void *got = NULL;
	cr_assert_eq(memento__redis_get(r, key, sizeof key, copy_visit, &got), -ENOENT);
	cr_assert_eq(memento__redis_set(r, key, sizeof key, value, sizeof value), 0);
	cr_assert_eq(memento__redis_get(r, key, sizeof key, copy_visit, &got), 0);
	size_t len;
	memcpy(&len, got, sizeof len);
	cr_assert_eq(len, sizeof value);
	cr_assert_eq(memcmp((unsigned char *)got + sizeof len, value, sizeof value), 0);
	free(got);
	memento__redis_close(r);
}

/* ---- a server that goes away, comes back, or never answers --------------------- */

Test(redis, a_restarted_server_is_found_again)
{
	char uri[256];
	struct memento__redis *r;
	cr_assert_eq(memento__redis_open(&r, uri_of(uri, sizeof uri, PASSWORD_IN_URI), 200000000u),
	             0);
	cr_assert_eq(memento__redis_set(r, "k", 1, "v1", 2), 0);
	server_stop();
	struct timespec t0 = now_monotonic();
	int rc = memento__redis_set(r, "k", 1, "v2", 2);
	cr_assert_lt(rc, 0, "a write to a dead server succeeded");
	rc = memento__redis_set(r, "k", 1, "v2", 2);
	cr_assert_lt(rc, 0);
	cr_assert_lt(ms_between(t0, now_monotonic()), 1000.0, "a dead server took long");
	server_start();
	cr_assert_eq(memento__redis_set(r, "k", 1, "v3", 2), 0, "not reconnected");
	void *got = NULL;
	cr_assert_eq(memento__redis_get(r, "k", 1, copy_visit, &got), 0);
	cr_assert_eq(memcmp((char *)got + sizeof(size_t), "v3", 2), 0);
	free(got);
	memento__redis_close(r);
}

/* A listener that accepts and never answers: a command costs the timeout. */
Test(redis, a_server_that_never_answers_costs_the_timeout)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(fd, 16), 0); /* the kernel completes handshakes: no accept needed */
	socklen_t n = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &n);
	char uri[128];
	snprintf(uri, sizeof uri, "redis://:pw@127.0.0.1:%d", ntohs(a.sin_port));
	struct memento__redis *r = NULL;
	struct timespec t0 = now_monotonic();
	int rc = memento__redis_open(&r, uri, 150000000u); /* AUTH never answered */
	double ms = ms_between(t0, now_monotonic());
	cr_assert_eq(rc, -ETIMEDOUT, "open: %s", memento_strerror(rc));
	cr_assert_geq(ms, 140.0, "returned before the timeout: %.1f ms", ms);
	cr_assert_lt(ms, 1000.0, "took %.1f ms for a 150 ms timeout", ms);
	close(fd);
}
