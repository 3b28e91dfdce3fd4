/*
 * One computation per key across the processes of a machine: a write lock
 * on one byte of the store's keys.lock, at an offset taken from the key's
 * hash (docs/design.md, "Locking").
 *
 * The locks are open file description (OFD) locks: they belong to an open
 * file, not to a process, so each lock in use has a descriptor of its own
 * (kept open afterwards for the next, up to MEMENTO__KEY_LOCK_POOL) and two
 * threads of one process exclude each other as two processes do.  The kernel drops
 * a lock when the last descriptor of its open file closes, which is when
 * its process dies, however it dies.  A fork child inherits descriptors,
 * and with them a share of its parent's locks: the child closes its copies
 * at once (memento__key_locks_drop_inherited), or a lock would outlive its
 * holder's release for as long as the child lives.
 *
 * Distinct keys may share a byte only when 62 bits of their hashes
 * collide; they then wait for each other, which is slow, never wrong.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#define OFFSET_MASK (((uint64_t)1 << 62) - 1)
#define POLL_NS 1000000L /* how often a wait with a deadline tries again */

/* Gives l a descriptor of keys.lock of its own (kept open from an earlier
 * lock, or opened) and lists it, under the store's mutex, which fork()
 * holds too: a child then has either no copy of the descriptor or a
 * listed one, never an unlisted copy that would keep a lock taken later
 * alive. */
static int held_open(memento_store *s, struct memento__key_lock *l)
{
	struct memento__key_locks *ks = memento__store_key_locks(s);
	int cancel = memento__cancel_off(); /* open() under the mutex */
	pthread_mutex_lock(memento__store_mutex(s));
	int rc = 0;
	if (ks->npool > 0)
		l->fd = ks->pool[--ks->npool];
	else
		l->fd = open(memento__store_lock_path(s), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (l->fd < 0) {
		rc = -errno;
	} else {
		l->prev = NULL;
		l->next = ks->held;
		if (ks->held != NULL)
			ks->held->prev = l;
		ks->held = l;
	}
	pthread_mutex_unlock(memento__store_mutex(s));
	memento__cancel_restore(cancel);
	return rc;
}

/* Unlists l and lets go of its byte: the descriptor is kept for the next
 * lock when the unlock worked and there is room, else closed (which
 * releases whatever it held). */
static void held_close(memento_store *s, struct memento__key_lock *l)
{
	struct memento__key_locks *ks = memento__store_key_locks(s);
	int cancel = memento__cancel_off(); /* close() under the mutex */
	pthread_mutex_lock(memento__store_mutex(s));
	if (l->fd >= 0) { /* else a fork child dropped it already */
		if (l->prev != NULL)
			l->prev->next = l->next;
		else
			ks->held = l->next;
		if (l->next != NULL)
			l->next->prev = l->prev;
		struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = l->at,
		                    .l_len = 1 };
		if (ks->npool < MEMENTO__KEY_LOCK_POOL && fcntl(l->fd, F_OFD_SETLK, &fl) == 0)
			ks->pool[ks->npool++] = l->fd;
		else
			close(l->fd);
		l->fd = -1;
	}
	pthread_mutex_unlock(memento__store_mutex(s));
	memento__cancel_restore(cancel);
}

/* Takes the byte: sleeping in the kernel without a deadline, else trying
 * every POLL_NS until it passes. */
static int lock_wait(int fd, off_t at, const struct timespec *deadline)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = at, .l_len = 1 };
	for (;;) {
		if (fcntl(fd, deadline == NULL ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (deadline == NULL || (errno != EAGAIN && errno != EACCES))
			return -errno;
		if (memento__deadline_passed(deadline, NULL))
			return -ETIMEDOUT;
		struct timespec nap = { 0, POLL_NS };
		nanosleep(&nap, NULL);
	}
}

static void lock_abandoned(void *arg)
{
	struct memento__key_lock *l = arg;
	memento__key_unlock(l);
}

int memento__key_lock(memento_store *s, uint64_t hash, const struct timespec *deadline,
                      struct memento__key_lock *l)
{
	l->store = s;
	l->at = (off_t)(hash & OFFSET_MASK);
	int rc = held_open(s, l);
	if (rc != 0) {
		l->store = NULL;
		return rc;
	}
	/* The kernel wait is a cancellation point: a cancelled waiter lets
	 * go of its descriptor on the way out. */
	pthread_cleanup_push(lock_abandoned, l);
	rc = lock_wait(l->fd, l->at, deadline);
	pthread_cleanup_pop(0);
	if (rc != 0)
		memento__key_unlock(l);
	return rc;
}

void memento__key_unlock(struct memento__key_lock *l)
{
	if (l->store == NULL)
		return;
	held_close(l->store, l);
	l->store = NULL;
}

void memento__key_locks_drop_inherited(memento_store *s)
{
	/* In a fork child, under the store's mutex: the threads that hold
	 * these are the parent's; close this process's copies, and those of
	 * the kept descriptors, whose open files the parent shares. */
	struct memento__key_locks *ks = memento__store_key_locks(s);
	for (struct memento__key_lock *l = ks->held; l != NULL; l = l->next) {
		close(l->fd);
		l->fd = -1;
	}
	ks->held = NULL;
	memento__key_locks_close(s);
}

void memento__key_locks_close(memento_store *s)
{
	struct memento__key_locks *ks = memento__store_key_locks(s);
	while (ks->npool > 0)
		close(ks->pool[--ks->npool]);
}
