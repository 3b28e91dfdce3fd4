/*
 * Fills in the background: a record found in a farther tier (Redis) is
 * copied into a nearer LMDB tier by a writer thread of that store, so
 * that the get which found it returns at the speed of the remote read
 * alone, and the copies of many gets share one write transaction (one
 * sync, for a durable store).  docs/design.md, "The Redis tier".
 *
 * A fill is a copy of a record that stays in the farther tier: losing it
 * (a crash, a full queue's fallback failing, a full disk) costs a later
 * remote read, never a result.  So a get counts its fill as written when
 * it is queued, and the writer counts nothing.  The queue is bounded
 * (QUEUE_RECORDS records, QUEUE_BYTES bytes): past that, the get writes
 * its fill itself, as before this file.
 *
 * The writer is one thread per store, started by its first fill, signals
 * blocked; it writes whatever is queued in transactions of up to
 * BATCH_RECORDS records, and sleeps when the queue is empty.
 * memento_store_flush waits until it is idle; close drains the queue and
 * joins it.  fork(): the queue's mutex is held across it;
 * a child drops what its parent had queued (the parent writes it) and
 * starts its own writer with its first fill.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>

#define QUEUE_RECORDS 4096
#define QUEUE_BYTES ((size_t)16 << 20)
#define BATCH_RECORDS MEMENTO__STORE_PUT_MAX

struct memento__fill {
	struct memento__fill *next;
	struct memento__store_key key;
	size_t len;
	unsigned char record[];
};

void memento__fills_init(struct memento__fills *f)
{
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->wake, NULL);
	pthread_cond_init(&f->idle, NULL);
}

static void list_free(struct memento__fill *list)
{
	while (list != NULL) {
		struct memento__fill *x = list;
		list = x->next;
		free(x);
	}
}

/* Writes a list of fills, BATCH_RECORDS per transaction. */
static void write_list(memento_store *s, struct memento__fill *list)
{
	const struct memento__store_key *keys[BATCH_RECORDS];
	const void *records[BATCH_RECORDS];
	size_t lens[BATCH_RECORDS];
	while (list != NULL) {
		size_t n = 0;
		struct memento__fill *batch = list;
		for (; list != NULL && n < BATCH_RECORDS; list = list->next, n++) {
			keys[n] = &list->key;
			records[n] = list->record;
			lens[n] = list->len;
		}
		/* A failure (a full disk) loses copies only: see the top. */
		(void)memento__store_put_records(s, n, keys, records, lens);
		while (batch != list) {
			struct memento__fill *x = batch;
			batch = x->next;
			free(x);
		}
	}
}

static void *writer_main(void *arg)
{
	memento_store *s = arg;
	struct memento__fills *f = memento__store_fills(s);
	pthread_mutex_lock(&f->lock);
	for (;;) {
		while (f->head == NULL && !f->stopping)
			pthread_cond_wait(&f->wake, &f->lock);
		if (f->head == NULL)
			break; /* stopping, and drained */
		struct memento__fill *list = f->head;
		f->head = f->tail = NULL;
		f->records = 0;
		f->bytes = 0;
		f->writing = true;
		pthread_mutex_unlock(&f->lock);
		write_list(s, list);
		pthread_mutex_lock(&f->lock);
		f->writing = false;
		if (f->head == NULL)
			pthread_cond_broadcast(&f->idle);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

int memento__fill_queue(memento_store *s, const struct memento__store_key *key,
                        const void *record, size_t len)
{
	struct memento__fills *f = memento__store_fills(s);
	struct memento__fill *x = malloc(sizeof *x + len);
	if (x == NULL)
		return -ENOMEM;
	x->next = NULL;
	x->key = *key;
	x->len = len;
	memcpy(x->record, record, len);
	int rc = 0;
	pthread_mutex_lock(&f->lock);
	if (!f->running && !f->stopping) {
		/* Signals are the application's: none is delivered here. */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		f->running = pthread_create(&f->writer, NULL, writer_main, s) == 0;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (!f->running || f->records >= QUEUE_RECORDS || f->bytes + len > QUEUE_BYTES) {
		rc = -EAGAIN;
	} else {
		if (f->tail != NULL)
			f->tail->next = x;
		else
			f->head = x;
		f->tail = x;
		f->records++;
		f->bytes += len;
		pthread_cond_signal(&f->wake);
		x = NULL;
	}
	pthread_mutex_unlock(&f->lock);
	free(x);
	return rc;
}

void memento__fills_stop(memento_store *s)
{
	struct memento__fills *f = memento__store_fills(s);
	pthread_mutex_lock(&f->lock);
	f->stopping = true;
	bool running = f->running;
	f->running = false;
	pthread_cond_broadcast(&f->wake);
	pthread_mutex_unlock(&f->lock);
	if (running)
		pthread_join(f->writer, NULL); /* it drains the queue first */
}

void memento__fills_flush(memento_store *s)
{
	struct memento__fills *f = memento__store_fills(s);
	int cancel = memento__cancel_off(); /* a wait under the mutex */
	pthread_mutex_lock(&f->lock);
	while (f->running && (f->head != NULL || f->writing))
		pthread_cond_wait(&f->idle, &f->lock);
	pthread_mutex_unlock(&f->lock);
	memento__cancel_restore(cancel);
}

void memento__fills_free(struct memento__fills *f)
{
	list_free(f->head); /* none, unless the writer never ran */
	f->head = f->tail = NULL;
	pthread_cond_destroy(&f->wake);
	pthread_cond_destroy(&f->idle);
	pthread_mutex_destroy(&f->lock);
}

void memento__fills_fork_prepare(memento_store *s)
{
	pthread_mutex_lock(&memento__store_fills(s)->lock);
}

void memento__fills_fork_parent(memento_store *s)
{
	pthread_mutex_unlock(&memento__store_fills(s)->lock);
}

void memento__fills_fork_child(memento_store *s)
{
	struct memento__fills *f = memento__store_fills(s);
	list_free(f->head);
	f->head = f->tail = NULL;
	f->records = 0;
	f->bytes = 0;
	f->running = false;
	f->writing = false;
	/* The parent's writer (and flushes) may wait on them. */
	pthread_cond_init(&f->wake, NULL);
	pthread_cond_init(&f->idle, NULL);
	pthread_mutex_unlock(&f->lock);
}
