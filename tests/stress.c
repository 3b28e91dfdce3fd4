/*
 * Stress with invariants: many threads (four per core or more) race
 * memento_get, memento_get_until, memento_peek, memento_forget,
 * memento_foreach and memento_count over a few hundred keys of three
 * classes, while creations take random time, fail at random and (for one
 * class) get other keys from inside create.  Every result is checked as it
 * comes back; the run is cut into rounds of about a second, each on a fresh
 * cache, and each round ends with the threads quiet, the cache checked whole
 * (counters, count, every key, a walk), then freed and every destroy checked.
 *
 * The same caches also hold three guarded classes (MEMENTO_LIFETIME_GUARDED:
 * one bounded by count, one that expires and refreshes every few ms, one
 * bounded by weight), whose objects are destroyed while the round runs.
 * A quarter as many threads again use them, and every thread in a sixth
 * mode: inside guards (nested now and then, sleeping now and then),
 * outside guards through counted references that they keep across guards
 * and hand to each other; they forget, walk and call the barrier.  Every
 * object got is re-checked alive at the end of its guard or before its
 * reference goes, and quiet points (the end of each round, and mid-round in
 * that mode) check the counts, the bounds and the allocator's bytes.
 *
 * A plain program, not a Criterion suite, so that the plain, ASan+UBSan and
 * TSan builds run it the same way.  Prints one summary line on stdout; any
 * violation is printed on stderr where it is seen, and the exit status is 1.
 * A hang is reported with what each thread was doing, then abort().
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <mementos.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the checker's own shared counters -------------------------------------------- */

/*
 * The bookkeeping below (forget counters, creations in flight) is shared by
 * all threads.  Outside ThreadSanitizer it is seq_cst: the arguments in the
 * comments assume one order of all of it.  Under ThreadSanitizer it is
 * relaxed, so that it adds no happens-before edge of its own: a forget's
 * count read by a later get would otherwise order everything the forget did
 * before everything the get does, and hide a race inside the library from
 * TSan.  The TSan build runs on x86-64, whose hardware keeps the load-load
 * and store-store orders the arguments need; the one store-then-load order
 * (announce, then look, in creation_begin) has its own fence.
 */
#if defined(__SANITIZE_THREAD__)
#define BOOK memory_order_relaxed
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BOOK memory_order_relaxed
#endif
#endif
#ifndef BOOK
#define BOOK memory_order_seq_cst
#endif

static uint64_t book_load(_Atomic uint64_t *p)
{
	return atomic_load_explicit(p, BOOK);
}

static void book_store(_Atomic uint64_t *p, uint64_t v)
{
	atomic_store_explicit(p, v, BOOK);
}

static void book_inc(_Atomic uint64_t *p)
{
	atomic_fetch_add_explicit(p, 1, BOOK);
}

static void book_dec(_Atomic uint64_t *p)
{
	atomic_fetch_sub_explicit(p, 1, BOOK);
}

/* ---- configuration ---------------------------------------------------------------- */

/* The classes whose objects live until the cache is freed, then the guarded
 * ones; loops over the first NCLASSES are about the former only. */
enum { LEAF, NAMED, COMPOSITE, NCLASSES, BOUNDED = NCLASSES, TIMED, WEIGHED, NALL };
enum { NPARTS = 3, BURST_KEYS = 3, MAX_THREADS = 256, MAX_KEYS = 16384, MIN_KEYS = 12 };

static int nthreads; /* workers: nold of them, then a quarter as many for the guarded classes */
static int nold;
static uint32_t nkeys;  /* keys of the first three classes: [0, nkeys) */
static uint32_t nall;   /* and of the guarded ones: [nkeys, nall) */
static double seconds = 20;
static uint64_t seed;
static bool verbose;

/*
 * The key space: global key indexes [0, nkeys), cut into three classes.
 *   leaf       one u64 field;
 *   named      two string fields; keys 2m and 2m+1 spell the same bytes,
 *              cut in two at different places ("host-" "1x.." and
 *              "host-1" "x.."): typed fields make them two keys; every
 *              eighth m is over 300 bytes long, so its entry gets a slab
 *              chunk of its own (entries above 256 bytes do);
 *   composite  an i64 and an f64 that is 0.0 or -0.0 at random (one key);
 *              its create gets NPARTS other keys (leaf and named).
 * Every fourth composite key is pinned: it is never forgotten, so its own
 * entry is linked for as long as its create runs.
 *
 * Then as many keys again, [nkeys, nall), for the guarded classes, all
 * keyed by one u64 field, the bytes of a leaf key of the same index (the
 * class must keep them apart):
 *   bounded    half of them; max_entries an eighth of its keys, so that
 *              gets evict all the time; failures remembered for G_TTL_NS;
 *   timed      a quarter; expires after G_EXPIRE_NS, refreshed after
 *              G_REFRESH_NS: both fire many times a round;
 *   weighed    a quarter; each object weighs 1 to G_WMAX, max_weight is
 *              its key count (a quarter of the total weight).
 */
struct klass {
	const char *name;
	int id;
	uint32_t base, n;
};

static struct klass classes[NALL] = {
	{ "leaf", LEAF, 0, 0 },         { "named", NAMED, 0, 0 },
	{ "composite", COMPOSITE, 0, 0 }, { "bounded", BOUNDED, 0, 0 },
	{ "timed", TIMED, 0, 0 },       { "weighed", WEIGHED, 0, 0 },
};

#define G_TTL_NS 30000000ull    /* bounded: failures remembered 30 ms */
#define G_EXPIRE_NS 8000000ull  /* timed: 8 ms, two ticks of a 4 ms coarse clock */
#define G_REFRESH_NS 3000000ull /* timed: 3 ms */
#define G_WMAX 7                /* weighed: weights 1..7 */

static uint64_t weigh_cb(const void *obj, void *ctx);

/* The class options of a guarded class; the bounds follow its key count. */
static memento_class_options guarded_options(int c)
{
	memento_class_options o = MEMENTO_CLASS_OPTIONS_INIT;
	o.lifetime = MEMENTO_LIFETIME_GUARDED;
	if (c == BOUNDED) {
		o.max_entries = classes[BOUNDED].n / 8 > 2 ? classes[BOUNDED].n / 8 : 2;
		o.failure_ttl_ns = G_TTL_NS;
	} else if (c == TIMED) {
		o.expire_after_ns = G_EXPIRE_NS;
		o.refresh_after_ns = G_REFRESH_NS;
	} else {
		o.max_weight = classes[WEIGHED].n;
		o.weigh = weigh_cb;
	}
	return o;
}

static bool guarded(int c)
{
	return c >= NCLASSES;
}

static char (*named_parts)[2][384]; /* per named key, its two strings */

static int class_of(uint32_t g)
{
	if (g >= classes[BOUNDED].base)
		return g < classes[TIMED].base ? BOUNDED : g < classes[WEIGHED].base ? TIMED : WEIGHED;
	return g < classes[NAMED].base ? LEAF : g < classes[COMPOSITE].base ? NAMED : COMPOSITE;
}

static uint32_t local_of(uint32_t g)
{
	return g - classes[class_of(g)].base;
}

static bool pinned(uint32_t g)
{
	return class_of(g) == COMPOSITE && local_of(g) % 4 == 0;
}

static const char *key_name(uint32_t g, char *buf, size_t size)
{
	int c = class_of(g);
	if (c == NAMED)
		snprintf(buf, size, "named#%" PRIu32 " (\"%.40s\",\"%.40s\")", local_of(g),
		         named_parts[local_of(g)][0], named_parts[local_of(g)][1]);
	else
		snprintf(buf, size, "%s#%" PRIu32, classes[c].name, local_of(g));
	return buf;
}
#define KEY(g) key_name((g), (char[192]){ 0 }, 192)

/* The keys a composite's create gets; they never wait on anything, so no
 * cycle of waits can form and -EDEADLK is always a bug here. */
static void parts_of(uint32_t g, uint32_t part[NPARTS])
{
	uint32_t i = local_of(g);
	part[0] = classes[LEAF].base + (i * 7) % classes[LEAF].n;
	part[1] = classes[LEAF].base + (i * 7 + 3) % classes[LEAF].n;
	part[2] = classes[NAMED].base + (i * 5) % classes[NAMED].n;
}

/*
 * Injected failures: each key fails with one of its own two errors, so that
 * a caller that receives another key's failure is caught.  None of these is
 * an error the library itself returns.
 */
static const int injected[] = { EIO,    ENOSPC, ECONNREFUSED, EHOSTUNREACH, ENOLINK, EREMOTEIO,
	                        ESTALE, ENOTCONN, EPIPE,      ENODATA,      EPROTO };
#define NINJECTED (sizeof injected / sizeof injected[0])

static int injected_error(uint32_t g, unsigned int pick)
{
	return -injected[(2 * (size_t)g + (pick & 1)) % NINJECTED];
}

static bool own_error(uint32_t g, int rc)
{
	return rc == injected_error(g, 0) || rc == injected_error(g, 1);
}

/* A composite's create passes its parts' failures through. */
static bool allowed_error(uint32_t g, int rc)
{
	if (own_error(g, rc))
		return true;
	if (class_of(g) == COMPOSITE) {
		uint32_t part[NPARTS];
		parts_of(g, part);
		for (int j = 0; j < NPARTS; j++)
			if (own_error(part[j], rc))
				return true;
	}
	return false;
}

/* ---- objects ---------------------------------------------------------------------- */

#define OBJ_MAGIC 0x4f424a53545245ull
enum { OBJ_LIVE = 1, OBJ_FAILED, OBJ_DESTROYED };

/*
 * What create makes.  Objects are freed only after their round's cache is
 * freed and checked, so reading one that destroy already poisoned is well
 * defined.  The plain fields are written before create returns and read by
 * other threads after the library hands them the object: the library's
 * publication must order them (TSan checks that it does).
 */
struct object {
	uint64_t magic;
	/* Atomic so that a destroy running too early, a bug, is still a
	 * well-defined read here; relaxed: it orders nothing else. */
	_Atomic uint32_t state;
	_Atomic uint32_t destroys;
	uint32_t key;
	int cls;
	uint64_t d;       /* forgets of key done when the creating call began */
	uint64_t s_begin; /* forgets of key begun when create began */
	struct object *parts[NPARTS];
	struct object *next; /* the creating thread's list */
	/* Guarded classes.  payload stands for the object's contents: a plain
	 * field that readers check and destroy overwrites, so that TSan sees a
	 * destroy not ordered after a use even when the state check is too
	 * early to catch it. */
	uint64_t payload;
	uint32_t weight;          /* weighed: what weigh returns */
	_Atomic uint32_t weighs;  /* weigh calls: one per object */
};

/* What create tells the call that ran it (through args). */
struct call {
	bool ran;
	int rc;
	struct object *obj;
	uint64_t started; /* on failure: creations of key started when create ended */
	uint64_t ended;   /* ns, CLOCK_MONOTONIC, as create returned */
};

/* Arguments of every class; the key callbacks read only key and negzero. */
struct args {
	uint32_t key;
	bool negzero;
	uint64_t d; /* forgets of key done when this call began */
	struct call *call;
};

/* ---- per-key bookkeeping and the rules it checks ---------------------------------- */

/*
 * memento_forget detaches a creation in flight: its creator and its waiters
 * still get its result, and calls that start after the forget returned may
 * start a second creation of the same key while the first still runs.  So
 * "one creation per key" cannot be checked alone; it is checked against the
 * forgets of that key, counted twice: begun[k] before memento_forget is
 * called, done[k] after it returns.  A call records d = done[k] when it
 * begins.
 *
 * If a call C1 of key k began with done[k] = d, and later begun[k] <= d,
 * then every forget of k that began by then had ended before C1 began: no
 * forget can have unlinked what C1 found or linked.  From this:
 *
 *  R1 (one creation per identity).  Two creations A and B of k may both be
 *     in flight, or B may run after A succeeded, only if a forget unlinked
 *     the entry linked first before the other was linked (a failure
 *     unlinks only after its create returned).  That forget began before
 *     the second one's create began and had not ended when the first one's
 *     call began; so with b = begun[k] read when create begins, b(second)
 *     > d(first).  Either may be the second (a detached creation can reach
 *     its create after its successor did), so the check is b(B) > d(A) or
 *     b(A) > d(B).
 *  R2 (same object).  If a thread got object O for k from a call that began
 *     at d, and begun[k] <= d after its next get or peek of k, that next call
 *     must return O (a ready entry is unlinked only by forget).
 *  R3 (no stale object).  A call that began with done[k] = d must not get an
 *     object whose create began with begun[k] = s_begin < d: some forget
 *     began after that entry was linked and ended before the call, and
 *     unlinked or detached it.
 *  R4 (end of round).  With the threads quiet, an object whose creating
 *     call began with d = begun[k] must still be the key's object.
 *  R5 (failure is not cached).  If a thread's call ran a create of k that
 *     failed, and no forget of k began since that call began, a later get
 *     of k by that thread can receive a failure it did not create only from
 *     a creation that started after the failed one ended: started[k] must
 *     have moved past what the failed create read at its end.  (Its entry
 *     is unlinked after create returns, so an entry linked after that runs
 *     its create later still, and a shared failure means that create ran
 *     to its end.  Not so for a peek's -EINPROGRESS or a timeout: an entry
 *     is linked before its create starts.)
 *
 * None of these can fail when the library keeps its contract: each read of
 * a counter is ordered by the library's own lock or publication with the
 * unlink or link it stands for (see BOOK above).
 */
static _Atomic uint64_t *forgets_begun, *forgets_done;
static _Atomic uint64_t *inflight;  /* [key * nthreads + thread]: creation(d, b), or 0 */
static _Atomic uint64_t *succeeded; /* [key]: creation(d, b) of the successful one with
                                       the largest d, or 0 */
static _Atomic uint64_t *started;   /* [key]: creations begun */

/*
 * R1's view of one creation, packed so that one load reads it whole: the d
 * of its call and b, begun[k] when its create began.  Never 0.  A round
 * would need 2^32 forgets of one key to overflow a half.
 */
static uint64_t creation(uint64_t d, uint64_t b)
{
	return b << 32 | ((d + 1) & 0xffffffffu);
}

static uint64_t creation_d(uint64_t c)
{
	return (c & 0xffffffffu) - 1;
}

static uint64_t creation_b(uint64_t c)
{
	return c >> 32;
}

/* R1 for two creations of one key. */
static bool apart(uint64_t x, uint64_t y)
{
	return creation_b(x) > creation_d(y) || creation_b(y) > creation_d(x);
}

/* ---- workers ---------------------------------------------------------------------- */

enum op { OP_GET, OP_GET_UNTIL, OP_PEEK, OP_FORGET, OP_FOREACH, OP_COUNT, NOPS };
static const char *const op_names[NOPS] = { "get",    "get_until", "peek",
	                                     "forget", "foreach",   "count" };

/* Calls on the guarded classes; the watch of the hang report numbers them
 * after NOPS and "finished". */
enum gop { G_GET, G_GET_UNTIL, G_PEEK, G_FORGET, G_REF, G_RELEASE, G_BARRIER, G_EPERM, NGOPS };
static const char *const gop_names[NGOPS] = { "guarded get",  "guarded get_until",
	                                       "guarded peek", "guarded forget",
	                                       "get_ref",      "ref_release",
	                                       "barrier",      "-EPERM check" };

struct counts {
	uint64_t ops[NOPS];
	/* per class, to add up against memento_class_stats; for a guarded
	 * class gets counts memento_get_ref too, and never a -EPERM */
	uint64_t gets[NALL]; /* memento_get(_until) calls that reached the lookup */
	uint64_t peek_hits[NALL];
	uint64_t creations[NALL], successes[NALL], failures[NALL];
	uint64_t timeouts[NALL], self_deadlocks[NALL];
	/* that the races happened at all */
	uint64_t overlaps;        /* pairs of creations of one key in flight (after a forget) */
	uint64_t shared_failures; /* failures received from another thread's creation */
	uint64_t in_progress;     /* peeks that saw a creation in flight */
	uint64_t forgets_found;   /* forgets that unlinked something */
	uint64_t visits;
	/* guarded classes */
	uint64_t gops[NGOPS];
	uint64_t guards, nested_guards, guard_naps;
	uint64_t rechecked;         /* objects re-checked alive at the end of a guard */
	uint64_t refs_handed;       /* references given to another thread to release */
	uint64_t refs_received;     /* references of another thread released here */
	uint64_t barriers_in_guard; /* barriers called inside a guard: return at once */
	uint64_t remembered;        /* G1: gets that got a remembered failure in its window */
	uint64_t failed_refreshes;  /* gets whose refresh failed, which got the old object */
	uint64_t gforgets_found;
	uint64_t exits_in_guard;    /* retiring threads that exited inside a guard */
};

/* A counted reference a thread keeps, and the object it gave when taken. */
struct held {
	memento_ref *ref;
	struct object *obj;
};
enum { KEPT = 4 };

struct worker {
	int tid;
	pthread_t thread;
	bool retire; /* exits at the end of this round (set by main while quiet) */
	uint64_t rng;
	struct object **last; /* [key]: R2's O, or NULL */
	uint64_t *last_d;     /* [key]: R2's and R5's d */
	uint64_t *last_fail;  /* [key]: R5's started + 1, or 0 */
	struct object *objs;  /* everything this thread's creates made this round */
	/* G1, per guarded key: the error of this thread's failed create, when
	 * that create ended and the d of its call; err 0: none */
	int *gfail_err;
	uint64_t *gfail_ended, *gfail_d;
	struct held kept[KEPT]; /* references held across guards and steps */
	struct counts c;
	/* What the thread is doing, for the hang report only: relaxed. */
	_Atomic int watch_op;
	_Atomic uint32_t watch_key;
	_Atomic int watch_depth;
	_Atomic uint64_t watch_ops;
};

static struct worker *workers;
static __thread struct worker *self;

static uint64_t rnd(struct worker *w)
{
	/* xorshift64* */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return w->rng * 0x2545F4914F6CDD1Dull;
}

static uint32_t below(struct worker *w, uint32_t n)
{
	return (uint32_t)(((rnd(w) >> 32) * n) >> 32);
}

static uint64_t splitmix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* ---- rounds ----------------------------------------------------------------------- */

/*
 * Each round has a mode: how the threads choose their work and how
 * creations behave.  Creation time is none, a yield, 1..short_us µs, or
 * (long_pct) 1-3 ms.  In every mode some work goes to the guarded classes
 * (guarded_share).  The guarded mode sends most of it there and never
 * forgets a key of the first three classes, so that their memory stops
 * growing once every key was made: the allocator's bytes at its two quiet
 * points then say whether the guarded classes' do.
 */
enum mode_id { MIXED, STAMPEDE, FORGET_STORM, SLOW_DEADLINES, FAIL_HEAVY, GUARDED, NMODES };

struct mode {
	const char *name;
	int fail_pct;
	int zero_pct, yield_pct, long_pct;
	uint32_t short_us;
};

static const struct mode modes[NMODES] = {
	[MIXED] = { "mixed", 10, 25, 15, 5, 300 },
	[STAMPEDE] = { "stampede", 20, 10, 0, 10, 500 },
	[FORGET_STORM] = { "forget-storm", 10, 40, 20, 0, 100 },
	[SLOW_DEADLINES] = { "slow-deadlines", 20, 0, 0, 30, 800 },
	[FAIL_HEAVY] = { "fail-heavy", 50, 30, 20, 2, 200 },
	[GUARDED] = { "guarded", 10, 40, 20, 2, 200 },
};

/*
 * The round: set by main while the workers wait at the round barrier, which
 * orders it before their reads; the burst fields likewise by thread 0 before
 * the burst barrier.
 */
static struct {
	int no;
	enum mode_id mode;
	memento_cache *cache;
	memento_class *cls[NALL];
	unsigned int shards;
	bool quit;
	bool burst_stop, burst_pure;
	int nburst;
	uint32_t burst_key[BURST_KEYS];
	_Atomic(struct object *) burst_obj[BURST_KEYS];
} R;

/* A request to end the round: relaxed, the end itself is ordered by
 * `finished` and the barriers. */
static atomic_bool round_stop;
/* Workers done with the round.  Release/acquire: their counters and object
 * lists are complete when main sees the count. */
static atomic_int finished;
static pthread_barrier_t round_barrier, burst_barrier;

/* Set by main around memento_cache_free, read by destroy on the same thread:
 * relaxed, a destroy on any other thread is the bug it catches. */
static atomic_bool freeing;

/* A quiet point inside a round (the guarded mode): main sets `pause_req`, each
 * worker parks between two steps and counts itself in `parked`
 * (release/acquire: what it did is complete when main sees the count);
 * main checks the cache, then clears `pause_req` (release: its checks happen
 * before the workers go on). */
static atomic_bool pause_req;
static atomic_int parked;

/*
 * Counts of the guarded classes that the checks need while the round runs,
 * per class; reset by main at the start of a round.  Bookkeeping: BOOK.
 *   g_in_flight  gets (of any kind) running now: an object whose create
 *                returned may be published until its get returns;
 *   g_created    creates that returned 0 (before their publication);
 *   g_destroyed  destroys run before memento_cache_free.
 */
static _Atomic uint64_t g_in_flight[NALL], g_created[NALL], g_destroyed[NALL];
static _Atomic uint64_t g_worker_destroys; /* of those, run on a worker thread */

/* References handed from thread to thread: a slot per thread, NULL when
 * empty.  Acq_rel exchanges, as a program that passes a reference on must
 * use: the receiver reads the object through it. */
static _Atomic(memento_ref *) *mailbox;

/* The coarse clock's resolution (ns), by which the library's durations may
 * be late. */
static uint64_t coarse_res;

/* ---- violations ------------------------------------------------------------------- */

static atomic_uint violations;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

static void violation(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(int line, const char *fmt, ...)
{
	unsigned int n = atomic_fetch_add(&violations, 1) + 1;
	atomic_store_explicit(&round_stop, true, memory_order_relaxed);
	if (n > 20)
		return; /* the first ones say enough */
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&report_lock);
	char who[32] = "main thread";
	if (self != NULL)
		snprintf(who, sizeof who, "thread %d", self->tid);
	fprintf(stderr, "stress: VIOLATION (round %d %s, %s, stress.c:%d): ", R.no,
	        modes[R.mode].name, who, line);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&report_lock);
	va_end(ap);
}
#define VIOLATION(...) violation(__LINE__, __VA_ARGS__)

/* The symbolic name of 0 or a negative errno, the injected ones included. */
static const char *err_name(int rc)
{
	const char *name = rc < 0 ? strerrorname_np(-rc) : NULL;
	return rc == 0 ? "0" : name != NULL ? name : "an unknown error";
}

/* ---- time ------------------------------------------------------------------------- */

static struct timespec now_monotonic(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t;
}

static uint64_t now_ns(void)
{
	struct timespec t = now_monotonic();
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static struct timespec add_ns(struct timespec t, int64_t ns)
{
	int64_t total = (int64_t)t.tv_nsec + ns % 1000000000;
	t.tv_sec += (time_t)(ns / 1000000000 + (total >= 1000000000) - (total < 0));
	t.tv_nsec = (long)((total % 1000000000 + 1000000000) % 1000000000);
	return t;
}

static bool before(struct timespec a, struct timespec b)
{
	return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

static double seconds_since(struct timespec t)
{
	struct timespec now = now_monotonic();
	return (double)(now.tv_sec - t.tv_sec) + (double)(now.tv_nsec - t.tv_nsec) / 1e9;
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* How long a creation takes, by the round's mode. */
static void creation_time(struct worker *w)
{
	const struct mode *m = &modes[R.mode];
	uint32_t r = below(w, 100);
	if (r < (uint32_t)m->zero_pct)
		return;
	if (r < (uint32_t)(m->zero_pct + m->yield_pct))
		sched_yield();
	else if (r >= (uint32_t)(100 - m->long_pct))
		sleep_ns(1000000 + (int64_t)below(w, 2000000));
	else
		sleep_ns(1000 * (1 + (int64_t)below(w, m->short_us)));
}

/* The call w makes now, the innermost one if create nests them. */
static void watch(struct worker *w, enum op op, uint32_t g)
{
	atomic_store_explicit(&w->watch_op, op, memory_order_relaxed);
	atomic_store_explicit(&w->watch_key, g, memory_order_relaxed);
}

/* The same for a call on a guarded class. */
static void watch_guarded(struct worker *w, enum gop op, uint32_t g)
{
	atomic_store_explicit(&w->watch_op, NOPS + 1 + (int)op, memory_order_relaxed);
	atomic_store_explicit(&w->watch_key, g, memory_order_relaxed);
}

/* ---- the key and create callbacks ------------------------------------------------- */

static int leaf_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	return memento_key_u64(key, local_of(((const struct args *)args)->key));
}

static int named_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	uint32_t i = local_of(((const struct args *)args)->key);
	memento_key_str(key, named_parts[i][0]);
	return memento_key_str(key, named_parts[i][1]);
}

static int composite_key(memento_key *key, const void *args, void *ctx)
{
	const struct args *a = args;
	(void)ctx;
	memento_key_i64(key, (int64_t)local_of(a->key));
	return memento_key_f64(key, a->negzero ? -0.0 : 0.0);
}

/*
 * R1, at the start of a creation of g by w for a call that began at d;
 * returns b.  Announce, then look: of two creations that start together, at
 * least one sees the other (the fence orders the announcing store before
 * the loads; under TSan the stores and loads are relaxed and the fence does
 * it alone).
 */
static uint64_t creation_begin(struct worker *w, uint32_t g, uint64_t d)
{
	book_inc(&started[g]);
	uint64_t me = creation(d, book_load(&forgets_begun[g]));
	_Atomic uint64_t *row = &inflight[(size_t)g * (size_t)nthreads];
	book_store(&row[w->tid], me);
	atomic_thread_fence(memory_order_seq_cst);
	for (int u = 0; u < nthreads; u++) {
		uint64_t other = u != w->tid ? book_load(&row[u]) : 0;
		if (other == 0)
			continue;
		if (!apart(me, other))
			VIOLATION("R1: two creations of %s in flight at once (threads %d and %d) with no "
			          "forget of the key between them (d %" PRIu64 " b %" PRIu64 ", d %" PRIu64
			          " b %" PRIu64 ")",
			          KEY(g), w->tid, u, creation_d(me), creation_b(me), creation_d(other),
			          creation_b(other));
		else
			w->c.overlaps++;
	}
	/* After the look: a creation that ended before it had published its
	 * success here first (creation_end). */
	uint64_t done = book_load(&succeeded[g]);
	if (done != 0 && !apart(me, done))
		VIOLATION("R1: %s created again after a successful creation, with no forget of the key "
		          "between them (d %" PRIu64 " b %" PRIu64 ", d %" PRIu64 " b %" PRIu64 ")",
		          KEY(g), creation_d(me), creation_b(me), creation_d(done), creation_b(done));
	return creation_b(me);
}

static void creation_end(struct worker *w, uint32_t g, uint64_t d, uint64_t b, bool success)
{
	if (success) {
		uint64_t me = creation(d, b), have = book_load(&succeeded[g]);
		while ((have == 0 || creation_d(have) < d) &&
		       !atomic_compare_exchange_weak_explicit(&succeeded[g], &have, me, BOOK, BOOK))
			;
	}
	book_store(&inflight[(size_t)g * (size_t)nthreads + (size_t)w->tid], 0);
}

/* What a live object of g holds in its payload; destroy clears it. */
static uint64_t payload_of(uint32_t g)
{
	return splitmix(g) | 1;
}

static struct object *object_new(struct worker *w, uint32_t g, uint64_t d, uint32_t state)
{
	struct object *o = calloc(1, sizeof *o);
	if (o == NULL) {
		fprintf(stderr, "stress: out of memory\n");
		abort();
	}
	o->magic = OBJ_MAGIC;
	atomic_init(&o->state, state);
	atomic_init(&o->destroys, 0);
	o->key = g;
	o->cls = class_of(g);
	o->d = d;
	o->payload = payload_of(g);
	o->weight = 1 + local_of(g) % G_WMAX;
	atomic_init(&o->weighs, 0);
	o->next = w->objs;
	w->objs = o;
	return o;
}

static int get_checked(struct worker *w, uint32_t g, const struct timespec *deadline,
                       struct object **out);

/*
 * A composite's create gets its parts.  A pinned one also asks for its own
 * key, which must fail at once with -EDEADLK, and peeks at it, which must
 * see its own creation in flight (nothing can have forgotten it).
 */
static int composite_parts(struct worker *w, const struct args *a, struct object *parts[NPARTS])
{
	uint32_t g = a->key;
	if (pinned(g) && below(w, 4) == 0) {
		struct call inner = { 0 };
		struct args again = { .key = g, .negzero = !a->negzero, .d = a->d, .call = &inner };
		void *obj = NULL;
		int rc = memento_get(R.cls[COMPOSITE], &again, &obj);
		w->c.gets[COMPOSITE]++;
		if (rc == -EDEADLK && !inner.ran)
			w->c.self_deadlocks[COMPOSITE]++;
		else
			VIOLATION("a create that gets its own key %s got %s (%s), want -EDEADLK", KEY(g),
			          err_name(rc), inner.ran ? "and create ran again" : "create did not run");
		rc = memento_peek(R.cls[COMPOSITE], &again, &obj);
		if (rc != -EINPROGRESS)
			VIOLATION("a create that peeks at its own pinned key %s got %s, want -EINPROGRESS",
			          KEY(g), err_name(rc));
	}
	uint32_t part[NPARTS];
	parts_of(g, part);
	for (int j = 0; j < NPARTS; j++) {
		int rc = get_checked(w, part[j], NULL, &parts[j]);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int create_cb(void **out, const void *args, void *ctx)
{
	const struct args *a = args;
	const struct klass *k = ctx;
	struct worker *w = self;
	uint32_t g = a->key;
	if (w == NULL) {
		VIOLATION("create of %s ran on a thread that never called get", KEY(g));
		return -EIO;
	}
	if (k != &classes[class_of(g)])
		VIOLATION("create of %s got the ctx of class %s", KEY(g), k->name);
	if (a->call->ran)
		VIOLATION("create of %s ran twice for one call", KEY(g));

	int depth = atomic_load_explicit(&w->watch_depth, memory_order_relaxed);
	atomic_store_explicit(&w->watch_depth, depth + 1, memory_order_relaxed);
	w->c.creations[class_of(g)]++;
	uint64_t s_begin = creation_begin(w, g, a->d);

	struct object *parts[NPARTS] = { 0 };
	int rc = class_of(g) == COMPOSITE ? composite_parts(w, a, parts) : 0;
	creation_time(w);
	if (rc == 0 && below(w, 100) < (uint32_t)modes[R.mode].fail_pct)
		rc = injected_error(g, (unsigned int)rnd(w));

	struct object *o = NULL;
	if (rc == 0) {
		o = object_new(w, g, a->d, OBJ_LIVE);
		memcpy(o->parts, parts, sizeof parts);
		o->s_begin = s_begin;
		*out = o;
		w->c.successes[class_of(g)]++;
	} else {
		/* Half the failures leave an object in *out: the library must
		 * neither hand it out nor destroy it. */
		if (below(w, 2) == 0)
			*out = object_new(w, g, a->d, OBJ_FAILED);
		w->c.failures[class_of(g)]++;
	}
	creation_end(w, g, a->d, s_begin, rc == 0);
	atomic_store_explicit(&w->watch_depth, depth, memory_order_relaxed);
	*a->call = (struct call){ true, rc, o, book_load(&started[g]), 0 };
	return rc;
}

static void destroy_cb(void *obj, void *ctx)
{
	const struct klass *k = ctx;
	struct object *o = obj;
	if (!atomic_load_explicit(&freeing, memory_order_relaxed))
		VIOLATION("destroy ran outside memento_cache_free");
	if (o == NULL || o->magic != OBJ_MAGIC) {
		VIOLATION("destroy got %p, not an object of this test", obj);
		return;
	}
	if (k != &classes[o->cls])
		VIOLATION("destroy of an object of %s got the ctx of class %s", KEY(o->key), k->name);
	if (atomic_fetch_add_explicit(&o->destroys, 1, memory_order_relaxed) != 0)
		VIOLATION("object %p of %s destroyed twice", obj, KEY(o->key));
	if (atomic_load_explicit(&o->state, memory_order_relaxed) == OBJ_FAILED)
		VIOLATION("destroy of the object a failed create of %s left in *obj", KEY(o->key));
	/* Newest first: an object built from others goes before them. */
	for (int j = 0; j < NPARTS; j++)
		if (o->parts[j] != NULL &&
		    atomic_load_explicit(&o->parts[j]->state, memory_order_relaxed) != OBJ_LIVE)
			VIOLATION("composite %s destroyed after its part %s", KEY(o->key),
			          KEY(o->parts[j]->key));
	atomic_store_explicit(&o->state, OBJ_DESTROYED, memory_order_relaxed);
}

/* ---- the guarded classes' callbacks ----------------------------------------------- */

/* This thread's guards of the round's cache, as the library should count
 * them: a destroy must never run on a thread while it is above 0. */
static __thread int guard_depth;
/* Guarded key callbacks run on this thread: a call refused with -EPERM
 * must not have built its key. */
static __thread uint64_t keys_built;

static void op_gforget(struct worker *w, uint32_t g);

static int guarded_key(memento_key *key, const void *args, void *ctx)
{
	(void)ctx;
	keys_built++;
	return memento_key_u64(key, local_of(((const struct args *)args)->key));
}

/*
 * A guarded class's create: g's object or one of g's errors, after the
 * round's creation time.  s_begin lets object_ok check R3, which holds for
 * guarded classes too: a forget drops the key's object, or detaches its
 * creation or its refresh, so that no call that begins after it returns
 * gets an object whose create began before it.  R1, R2 and R5 do not hold:
 * evictions and expiry remove objects without a forget, a refresh creates
 * while the key's object is ready, and a failure may be remembered.
 */
static int create_guarded_cb(void **out, const void *args, void *ctx)
{
	const struct args *a = args;
	const struct klass *k = ctx;
	struct worker *w = self;
	uint32_t g = a->key;
	int c = class_of(g);
	if (w == NULL) {
		VIOLATION("create of %s ran on a thread that never called get", KEY(g));
		return -EIO;
	}
	if (k != &classes[c])
		VIOLATION("create of %s got the ctx of class %s", KEY(g), k->name);
	if (a->call->ran)
		VIOLATION("create of %s ran twice for one call", KEY(g));

	int depth = atomic_load_explicit(&w->watch_depth, memory_order_relaxed);
	atomic_store_explicit(&w->watch_depth, depth + 1, memory_order_relaxed);
	w->c.creations[c]++;
	uint64_t s_begin = book_load(&forgets_begun[g]);
	creation_time(w);
	int rc = 0;
	if (below(w, 100) < (uint32_t)modes[R.mode].fail_pct)
		rc = injected_error(g, (unsigned int)rnd(w));

	struct object *o = NULL;
	if (rc == 0) {
		o = object_new(w, g, a->d, OBJ_LIVE);
		o->s_begin = s_begin;
		*out = o;
		w->c.successes[c]++;
		book_inc(&g_created[c]);
	} else {
		if (below(w, 2) == 0)
			*out = object_new(w, g, a->d, OBJ_FAILED);
		w->c.failures[c]++;
	}
	atomic_store_explicit(&w->watch_depth, depth, memory_order_relaxed);
	*a->call = (struct call){ true, rc, o, 0, now_ns() };
	return rc;
}

/* Once per object, after its create, and only of a live one. */
static uint64_t weigh_cb(const void *obj, void *ctx)
{
	struct object *o = (struct object *)(uintptr_t)obj;
	(void)ctx;
	if (o == NULL || o->magic != OBJ_MAGIC || o->cls != WEIGHED) {
		VIOLATION("weigh got %p, not a weighed object of this test", obj);
		return 1;
	}
	if (atomic_fetch_add_explicit(&o->weighs, 1, memory_order_relaxed) != 0)
		VIOLATION("object %p of %s weighed twice", obj, KEY(o->key));
	if (atomic_load_explicit(&o->state, memory_order_relaxed) != OBJ_LIVE)
		VIOLATION("weigh of a failed or destroyed object of %s", KEY(o->key));
	return o->weight;
}

/*
 * A guarded class's destroy: once per object, never of what a failed create
 * left, never inside a guard of the thread it runs on, during
 * memento_cache_free only on main.  It marks the object dead and clears its
 * payload, which every reader checks.  Now and then, on a worker, it
 * forgets another key of its class, as a destroy may call into the cache:
 * run under a lock of the library (at one shard every key's lock is the
 * same) that would hang, and the hang report would show it.
 */
static void destroy_guarded_cb(void *obj, void *ctx)
{
	const struct klass *k = ctx;
	struct object *o = obj;
	bool at_free = atomic_load_explicit(&freeing, memory_order_relaxed);
	if (o == NULL || o->magic != OBJ_MAGIC) {
		VIOLATION("destroy got %p, not an object of this test", obj);
		return;
	}
	if (k != &classes[o->cls])
		VIOLATION("destroy of an object of %s got the ctx of class %s", KEY(o->key), k->name);
	if (guard_depth != 0)
		VIOLATION("destroy of %p of %s ran inside a guard of its thread (%d deep)", obj,
		          KEY(o->key), guard_depth);
	if (at_free && self != NULL)
		VIOLATION("destroy of %s ran on a worker during memento_cache_free", KEY(o->key));
	if (atomic_fetch_add_explicit(&o->destroys, 1, memory_order_relaxed) != 0)
		VIOLATION("object %p of %s destroyed twice", obj, KEY(o->key));
	if (atomic_load_explicit(&o->state, memory_order_relaxed) == OBJ_FAILED)
		VIOLATION("destroy of the object a failed create of %s left in *obj", KEY(o->key));
	atomic_store_explicit(&o->state, OBJ_DESTROYED, memory_order_relaxed);
	o->payload = 0;
	if (at_free)
		return;
	book_inc(&g_destroyed[o->cls]);
	struct worker *w = self;
	if (w != NULL) {
		book_inc(&g_worker_destroys);
		if (below(w, 16) == 0)
			op_gforget(w, classes[o->cls].base + below(w, classes[o->cls].n));
	}
}

/* ---- checked calls ---------------------------------------------------------------- */

/* An object handed out for g by a call that began at d: its own key, alive, not stale (R3). */
static bool object_ok(struct object *o, uint32_t g, uint64_t d, const char *what)
{
	if (o == NULL || o->magic != OBJ_MAGIC) {
		VIOLATION("%s of %s returned %p, not an object of this test", what, KEY(g), (void *)o);
		return false;
	}
	uint32_t state = atomic_load_explicit(&o->state, memory_order_relaxed);
	if (state != OBJ_LIVE)
		VIOLATION("%s of %s returned %s", what, KEY(g),
		          state == OBJ_FAILED ? "the object of a failed create" : "a destroyed object");
	if (o->key != g)
		VIOLATION("%s of %s returned the object of %s", what, KEY(g), KEY(o->key));
	if (d > o->s_begin)
		VIOLATION("R3: %s of %s returned a stale object: its create began with %" PRIu64
		          " forgets begun, the call began with %" PRIu64 " done",
		          what, KEY(g), o->s_begin, d);
	return true;
}

/*
 * R2 and R5, after a get or peek of g that began at d returned rc (and obj
 * if 0); call is what create said if this call ran it.  `shared` says rc
 * is a failure of another thread's create.
 */
static void track(struct worker *w, uint32_t g, uint64_t d, int rc, struct object *obj,
                  const struct call *call, bool shared, const char *what)
{
	struct object *prev = w->last[g];
	bool no_forget = book_load(&forgets_begun[g]) <= w->last_d[g];
	if (w->last_fail[g] != 0 && no_forget && shared &&
	    book_load(&started[g]) <= w->last_fail[g] - 1)
		VIOLATION("R5: %s of %s returned %s, but this thread's create of the key failed "
		          "before, no forget of the key began since, and no creation started since",
		          what, KEY(g), err_name(rc));
	w->last_fail[g] = call->ran && rc != 0 ? call->started + 1 : 0;
	if (prev != NULL && no_forget) {
		if (rc != 0)
			VIOLATION("R2: %s of %s returned %s, but this thread got its object before and no "
			          "forget of the key began since",
			          what, KEY(g), err_name(rc));
		else if (obj != prev)
			VIOLATION("R2: %s of %s returned object %p, but this thread got %p before and no "
			          "forget of the key began since",
			          what, KEY(g), (void *)obj, (void *)prev);
	}
	w->last[g] = rc == 0 ? obj : NULL;
	w->last_d[g] = d;
}

/*
 * Args for a call on key g whose result track() checks: the forgets of g
 * done before it began, and where its create callback records itself.
 * Either spelling of zero for negzero: the key must not depend on it.
 */
static struct args args_observed(struct worker *w, uint32_t g, struct call *call)
{
	return (struct args){ .key = g,
		              .negzero = rnd(w) & 1,
		              .d = book_load(&forgets_done[g]),
		              .call = call };
}

/* memento_get (deadline NULL) or memento_get_until of key g, checked. */
static int get_checked(struct worker *w, uint32_t g, const struct timespec *deadline,
                       struct object **out)
{
	int c = class_of(g);
	struct call call = { 0 };
	struct args a = args_observed(w, g, &call);
	const char *what = deadline != NULL ? "get_until" : "get";
	void *obj = NULL;
	watch(w, deadline != NULL ? OP_GET_UNTIL : OP_GET, g);
	int rc = deadline != NULL ? memento_get_until(R.cls[c], &a, &obj, deadline)
	                          : memento_get(R.cls[c], &a, &obj);
	w->c.gets[c]++;

	if (call.ran) {
		if (rc != call.rc)
			VIOLATION("%s of %s ran create, which returned %s, but the call returned %s", what,
			          KEY(g), err_name(call.rc), err_name(rc));
		else if (rc == 0 && obj != call.obj)
			VIOLATION("%s of %s ran create, which made %p, but the call returned %p", what,
			          KEY(g), (void *)call.obj, obj);
	} else if (rc == -ETIMEDOUT && deadline != NULL) {
		if (before(now_monotonic(), *deadline))
			VIOLATION("get_until of %s returned -ETIMEDOUT before its deadline", KEY(g));
		w->c.timeouts[c]++;
	} else if (rc != 0) {
		if (allowed_error(g, rc))
			w->c.shared_failures++;
		else
			VIOLATION("%s of %s returned %s (%d)", what, KEY(g), err_name(rc), rc);
	}
	if (rc == 0)
		object_ok(obj, g, a.d, what);
	track(w, g, a.d, rc, obj, &call, !call.ran && allowed_error(g, rc), what);
	if (out != NULL)
		*out = rc == 0 ? obj : NULL;
	return rc;
}

static void op_get(struct worker *w, uint32_t g)
{
	w->c.ops[OP_GET]++;
	struct object *o;
	get_checked(w, g, NULL, &o);
}

/* Deadlines: long past, just past, now, soon, a little later; rarely invalid. */
static struct timespec deadline_pick(struct worker *w, bool past_only)
{
	struct timespec now = now_monotonic(), deadline;
	uint32_t r = below(w, past_only ? 40 : 100);
	if (r < 15)
		deadline = (struct timespec){ 0, 0 };
	else if (r < 30)
		deadline = add_ns(now, -1000);
	else if (r < 40)
		deadline = now;
	else if (r < 70)
		deadline = add_ns(now, 1000 * (int64_t)below(w, 100));
	else if (r < 99)
		deadline = add_ns(now, 1000 * (int64_t)below(w, 2000));
	else
		deadline = (struct timespec){ now.tv_sec, 1000000000L };
	return deadline;
}

static void op_get_until(struct worker *w, uint32_t g, bool past_only)
{
	w->c.ops[OP_GET_UNTIL]++;
	struct timespec deadline = deadline_pick(w, past_only);
	if (deadline.tv_nsec < 1000000000L) {
		get_checked(w, g, &deadline, NULL);
		return;
	}
	struct call call = { 0 };
	struct args a = { .key = g, .d = book_load(&forgets_done[g]), .call = &call };
	void *obj = NULL;
	int rc = memento_get_until(R.cls[class_of(g)], &a, &obj, &deadline);
	if (rc != -EINVAL || call.ran)
		VIOLATION("get_until of %s with tv_nsec 1e9 returned %s%s", KEY(g), err_name(rc),
		          call.ran ? " and ran create" : "");
}

static void op_peek(struct worker *w, uint32_t g)
{
	int c = class_of(g);
	struct call call = { 0 };
	struct args a = args_observed(w, g, &call);
	void *obj = NULL;
	w->c.ops[OP_PEEK]++;
	watch(w, OP_PEEK, g);
	int rc = memento_peek(R.cls[c], &a, &obj);
	if (call.ran)
		VIOLATION("peek of %s ran create", KEY(g));
	if (rc == 0) {
		w->c.peek_hits[c]++;
		object_ok(obj, g, a.d, "peek");
	} else if (rc == -EINPROGRESS) {
		w->c.in_progress++;
	} else if (rc != -ENOENT) {
		VIOLATION("peek of %s returned %s (%d)", KEY(g), err_name(rc), rc);
	}
	track(w, g, a.d, rc, obj, &call, false, "peek");
}

static void op_forget(struct worker *w, uint32_t g)
{
	if (pinned(g))
		g = classes[LEAF].base + local_of(g) % classes[LEAF].n;
	struct args a = { .key = g, .negzero = rnd(w) & 1 };
	w->c.ops[OP_FORGET]++;
	watch(w, OP_FORGET, g);
	book_inc(&forgets_begun[g]);
	int rc = memento_forget(R.cls[class_of(g)], &a);
	book_inc(&forgets_done[g]);
	if (rc == 0)
		w->c.forgets_found++;
	else if (rc != -ENOENT)
		VIOLATION("forget of %s returned %s (%d)", KEY(g), err_name(rc), rc);
}

static int class_index(memento_class *cls)
{
	for (int c = 0; c < NALL; c++)
		if (cls == R.cls[c])
			return c;
	return -1;
}

/*
 * A guarded object that the library keeps valid for this thread now (a
 * guard, a reference, a walk's visit): not destroyed, its payload whole.
 */
static bool object_alive(const struct object *o, const char *what)
{
	if (o == NULL || o->magic != OBJ_MAGIC || !guarded(o->cls)) {
		VIOLATION("%s: %p is not a guarded object of this test", what, (const void *)o);
		return false;
	}
	uint32_t state = atomic_load_explicit(&o->state, memory_order_relaxed);
	if (state != OBJ_LIVE || o->payload != payload_of(o->key)) {
		VIOLATION("%s: object %p of %s used after its destroy (%s)", what, (const void *)o,
		          KEY(o->key), state == OBJ_FAILED ? "a failed create's object" : "destroyed");
		return false;
	}
	return true;
}

/* What a walk saw of the guarded classes. */
struct walk {
	struct worker *w;
	uint64_t n[NALL];  /* objects visited per class */
	uint64_t weight;   /* of the weighed ones */
};

static int visit_cb(memento_class *cls, void *obj, void *ctx)
{
	struct walk *wk = ctx;
	struct object *o = obj;
	int c = class_index(cls);
	if (c < 0 || o == NULL || o->magic != OBJ_MAGIC) {
		VIOLATION("foreach visited %p of class %p, not this test's", obj, (void *)cls);
		return 0;
	}
	if (o->cls != c)
		VIOLATION("foreach visited the object of %s as class %s", KEY(o->key), classes[c].name);
	if (atomic_load_explicit(&o->state, memory_order_relaxed) != OBJ_LIVE)
		VIOLATION("foreach visited a failed or destroyed object of %s", KEY(o->key));
	if (guarded(c) && object_alive(o, "foreach visit")) {
		wk->n[c]++;
		if (c == WEIGHED)
			wk->weight += o->weight;
	}
	if (wk->w != NULL)
		wk->w->c.visits++;
	return 0;
}

/* The most a bounded class's shards hold at once: the bound, each shard's
 * share rounded up (one unit more per shard at most); in units of objects
 * or weight. */
static uint64_t shards_hold(int c)
{
	memento_class_options o = guarded_options(c);
	uint64_t bound = c == BOUNDED ? o.max_entries : o.max_weight;
	return bound + R.shards - 1;
}

/*
 * Loosely, while the round runs: a walk of a bounded class visits what its
 * shards held when the walk began (shards_hold, plus per shard one object
 * published but not yet evicted for it), plus what was published during
 * the walk: the objects of creates that returned before it began but whose
 * gets had not (in flight then), and of creates that returned during it.
 */
static void check_walk_bound(const struct walk *wk, const uint64_t in_flight[NALL],
                             const uint64_t created[NALL])
{
	static const int bounded[] = { BOUNDED, WEIGHED };
	for (int i = 0; i < 2; i++) {
		int c = bounded[i];
		uint64_t unit = c == WEIGHED ? G_WMAX : 1;
		uint64_t late = in_flight[c] + book_load(&g_created[c]) - created[c];
		uint64_t most = shards_hold(c) + (R.shards + late) * unit;
		uint64_t held = c == WEIGHED ? wk->weight : wk->n[c];
		if (held > most)
			VIOLATION("a walk visited %" PRIu64 " %s of %s at %u shards; at most %" PRIu64
			          " (%" PRIu64 " published during the walk)",
			          held, c == WEIGHED ? "weight" : "objects", classes[c].name, R.shards,
			          most, late);
	}
}

static void op_foreach(struct worker *w)
{
	w->c.ops[OP_FOREACH]++;
	watch(w, OP_FOREACH, 0);
	struct walk wk = { .w = w };
	uint64_t in_flight[NALL], created[NALL];
	/* Creates first: one that returns between the two loads has its get
	 * in flight at the second. */
	for (int c = NCLASSES; c < NALL; c++)
		created[c] = book_load(&g_created[c]);
	for (int c = NCLASSES; c < NALL; c++)
		in_flight[c] = book_load(&g_in_flight[c]);
	int rc = memento_foreach(R.cache, visit_cb, &wk);
	if (rc != 0)
		VIOLATION("foreach returned %s", err_name(rc));
	check_walk_bound(&wk, in_flight, created);
}

/* At most one entry per key is linked: the count cannot pass the key space. */
static void op_count(struct worker *w)
{
	w->c.ops[OP_COUNT]++;
	size_t n = memento_count(R.cache);
	if (n > nall)
		VIOLATION("memento_count returned %zu with only %" PRIu32 " keys", n, nall);
}

/* ---- picking keys ----------------------------------------------------------------- */

static int pick_class(struct worker *w)
{
	uint32_t r = below(w, 100);
	return r < 45 ? LEAF : r < 70 ? NAMED : COMPOSITE;
}

/* Half the time one of the class's first `hot` keys, else any. */
static uint32_t pick_key(struct worker *w, int c, uint32_t hot)
{
	uint32_t n = classes[c].n;
	uint32_t i = below(w, 2) == 0 ? below(w, hot < n ? hot : n) : below(w, n);
	return classes[c].base + i;
}

/* ---- the guarded classes: guards, calls, references ------------------------------ */

/*
 * What a thread got inside its outermost guard: each must stay alive, its
 * payload whole, until that guard's leave, inner guards' leaves included.
 */
enum { LOG_MAX = 16 };
struct guard_log {
	int n;
	struct object *obj[LOG_MAX];
};

static void guard_log_add(struct guard_log *log, struct object *o)
{
	if (log != NULL && log->n < LOG_MAX)
		log->obj[log->n++] = o;
}

static void guard_enter(void)
{
	int rc = memento_guard_enter(R.cache);
	if (rc != 0)
		VIOLATION("memento_guard_enter returned %s", err_name(rc));
	guard_depth++;
}

/* The depth drops first: the outermost leave may run destroys here. */
static void guard_leave(void)
{
	guard_depth--;
	memento_guard_leave(R.cache);
}

/* Just before the outermost leave: everything the guard kept. */
static void guard_recheck(struct worker *w, const struct guard_log *log)
{
	for (int i = 0; i < log->n; i++)
		object_alive(log->obj[i], "at the end of its guard");
	w->c.rechecked += (uint64_t)log->n;
}

/*
 * G1 (a failure is remembered; bounded, the class with failure_ttl_ns).
 * If this thread's get of g ran a create that failed and returned its error
 * (a failed refresh returns the old object instead), and no forget of g
 * began since that get began, then until G_TTL_NS after that create ended,
 * less a margin, a get of g returns the same error without running create,
 * and a peek -ENOENT.  The library dates the failure with the coarse clock
 * after create returned, which may be behind by its resolution; the margin
 * is three of them.  `peek` says rc is a peek's.
 */
static void remembered_check(struct worker *w, uint32_t g, uint64_t d, int rc,
                             const struct call *call, bool peek, const char *what)
{
	if (class_of(g) != BOUNDED)
		return;
	int err = w->gfail_err[g];
	if (err != 0 && book_load(&forgets_begun[g]) <= w->gfail_d[g]) {
		uint64_t since = now_ns() - w->gfail_ended[g];
		int want = peek ? -ENOENT : err;
		if (since + 3 * coarse_res >= G_TTL_NS)
			; /* it may be forgotten now */
		else if (rc != want || call->ran)
			VIOLATION("G1: %s of %s returned %s%s %.1f ms after this thread's create of the key "
			          "failed with %s, remembered for %.0f ms, and no forget of it began since",
			          what, KEY(g), err_name(rc), call->ran ? " and ran create" : "",
			          (double)since / 1e6, err_name(err), (double)G_TTL_NS / 1e6);
		else
			w->c.remembered++;
	}
	if (peek)
		return;
	if (call->ran) {
		w->gfail_err[g] = rc != 0 && rc == call->rc ? rc : 0;
		w->gfail_ended[g] = call->ended;
		w->gfail_d[g] = d;
	} else if (rc == 0) {
		w->gfail_err[g] = 0;
	}
}

/*
 * A get, get_until (deadline) or get_ref (ref) of guarded key g, checked as
 * get_checked checks the others' but for R1, R2 and R5, plus G1.  A create
 * that failed may leave the call with an object: the key's current one,
 * when the create was its refresh.  Returns rc; *out gets the object.
 */
static int gget_checked(struct worker *w, uint32_t g, const struct timespec *deadline,
                        memento_ref **ref, struct object **out)
{
	int c = class_of(g);
	struct call call = { 0 };
	struct args a = args_observed(w, g, &call);
	enum gop op = ref != NULL ? G_REF : deadline != NULL ? G_GET_UNTIL : G_GET;
	const char *what = gop_names[op];
	void *obj = NULL;
	watch_guarded(w, op, g);
	book_inc(&g_in_flight[c]);
	int rc;
	if (ref != NULL) {
		rc = memento_get_ref(R.cls[c], &a, ref);
		if (rc == 0)
			obj = memento_ref_object(*ref);
	} else if (deadline != NULL) {
		rc = memento_get_until(R.cls[c], &a, &obj, deadline);
	} else {
		rc = memento_get(R.cls[c], &a, &obj);
	}
	book_dec(&g_in_flight[c]);
	w->c.gets[c]++;
	w->c.gops[op]++;

	if (call.ran && call.rc == 0) {
		if (rc != 0 || obj != call.obj)
			VIOLATION("%s of %s ran create, which made %p, but the call returned %s and %p",
			          what, KEY(g), (void *)call.obj, err_name(rc), obj);
	} else if (call.ran && rc == 0) {
		if (c != TIMED)
			VIOLATION("%s of %s: its create failed with %s, yet it returned an object, and "
			          "the class never refreshes",
			          what, KEY(g), err_name(call.rc));
		w->c.failed_refreshes++;
	} else if (call.ran) {
		if (rc != call.rc)
			VIOLATION("%s of %s ran create, which returned %s, but the call returned %s", what,
			          KEY(g), err_name(call.rc), err_name(rc));
	} else if (rc == -ETIMEDOUT && deadline != NULL) {
		if (before(now_monotonic(), *deadline))
			VIOLATION("%s of %s returned -ETIMEDOUT before its deadline", what, KEY(g));
		w->c.timeouts[c]++;
	} else if (rc != 0) {
		if (allowed_error(g, rc))
			w->c.shared_failures++;
		else
			VIOLATION("%s of %s returned %s (%d)", what, KEY(g), err_name(rc), rc);
	}
	remembered_check(w, g, a.d, rc, &call, false, what);
	if (rc == 0 && object_ok(obj, g, a.d, what))
		object_alive(obj, what);
	*out = rc == 0 ? obj : NULL;
	return rc;
}

static void op_gget(struct worker *w, uint32_t g, struct guard_log *log)
{
	struct object *o;
	if (gget_checked(w, g, NULL, NULL, &o) == 0)
		guard_log_add(log, o);
}

static void op_gget_until(struct worker *w, uint32_t g, struct guard_log *log)
{
	struct timespec deadline = deadline_pick(w, false);
	if (deadline.tv_nsec >= 1000000000L)
		deadline = now_monotonic();
	struct object *o;
	if (gget_checked(w, g, &deadline, NULL, &o) == 0)
		guard_log_add(log, o);
}

static void op_gpeek(struct worker *w, uint32_t g, struct guard_log *log)
{
	int c = class_of(g);
	struct call call = { 0 };
	struct args a = args_observed(w, g, &call);
	void *obj = NULL;
	w->c.gops[G_PEEK]++;
	watch_guarded(w, G_PEEK, g);
	int rc = memento_peek(R.cls[c], &a, &obj);
	if (call.ran)
		VIOLATION("guarded peek of %s ran create", KEY(g));
	if (rc == 0) {
		w->c.peek_hits[c]++;
		if (object_ok(obj, g, a.d, "guarded peek") && object_alive(obj, "guarded peek"))
			guard_log_add(log, obj);
	} else if (rc == -EINPROGRESS) {
		w->c.in_progress++;
	} else if (rc != -ENOENT) {
		VIOLATION("guarded peek of %s returned %s (%d)", KEY(g), err_name(rc), rc);
	}
	remembered_check(w, g, a.d, rc, &call, true, "guarded peek");
}

/* Inside a guard or outside, as forget may be called. */
static void op_gforget(struct worker *w, uint32_t g)
{
	struct args a = { .key = g };
	w->c.gops[G_FORGET]++;
	watch_guarded(w, G_FORGET, g);
	book_inc(&forgets_begun[g]);
	int rc = memento_forget(R.cls[class_of(g)], &a);
	book_inc(&forgets_done[g]);
	if (rc == 0)
		w->c.gforgets_found++;
	else if (rc != -ENOENT)
		VIOLATION("guarded forget of %s returned %s (%d)", KEY(g), err_name(rc), rc);
}

/*
 * A guarded get, get_until or peek outside every guard: -EPERM, before the
 * key callback runs, without a create.
 */
static void op_eperm(struct worker *w, uint32_t g)
{
	int c = class_of(g);
	struct call call = { 0 };
	struct args a = args_observed(w, g, &call);
	struct timespec deadline = add_ns(now_monotonic(), 1000000);
	void *obj = NULL;
	uint64_t built = keys_built;
	uint32_t r = below(w, 3);
	w->c.gops[G_EPERM]++;
	watch_guarded(w, G_EPERM, g);
	int rc = r == 0 ? memento_get(R.cls[c], &a, &obj)
	         : r == 1 ? memento_get_until(R.cls[c], &a, &obj, &deadline)
	                  : memento_peek(R.cls[c], &a, &obj);
	const char *what = r == 0 ? "get" : r == 1 ? "get_until" : "peek";
	if (rc != -EPERM || call.ran || obj != NULL)
		VIOLATION("a %s of %s outside every guard returned %s%s, want -EPERM", what, KEY(g),
		          err_name(rc), call.ran ? " and ran create" : "");
	if (keys_built != built)
		VIOLATION("a %s of %s outside every guard built its key before refusing", what, KEY(g));
}

/* A barrier inside a guard could wait for nothing and destroy nothing: it
 * returns at once (else the hang report shows it), and a destroy it ran
 * would find the guard (destroy_guarded_cb). */
static void op_barrier_in_guard(struct worker *w)
{
	w->c.gops[G_BARRIER]++;
	w->c.barriers_in_guard++;
	watch_guarded(w, G_BARRIER, 0);
	memento_cache_barrier(R.cache);
}

/* Outside every guard: waits for the other threads' guards. */
static void op_barrier(struct worker *w)
{
	w->c.gops[G_BARRIER]++;
	watch_guarded(w, G_BARRIER, 0);
	memento_cache_barrier(R.cache);
}

/* A reference about to go: its object is still the one it gave, alive. */
static void ref_check(memento_ref *ref, const struct object *want, const char *what)
{
	struct object *o = memento_ref_object(ref);
	if (want != NULL && o != want)
		VIOLATION("%s: the reference's object changed from %p to %p", what,
		          (const void *)want, (void *)o);
	object_alive(o, what);
}

static void ref_release(struct worker *w, memento_ref *ref, const struct object *want,
                        const char *what)
{
	ref_check(ref, want, what);
	if (w != NULL) {
		w->c.gops[G_RELEASE]++;
		watch_guarded(w, G_RELEASE, 0);
	}
	memento_ref_release(ref);
}

/*
 * Puts ref in the mailbox slot of another thread that works on the guarded
 * classes (guarded_share), which releases it at its next guarded step; false
 * when there is none or its slot is full.
 */
static bool ref_hand(struct worker *w, memento_ref *ref)
{
	int first = R.mode == GUARDED || nthreads == nold ? 0 : nold;
	int n = nthreads - first;
	if (n < 2)
		return false;
	int to = first + (int)below(w, (uint32_t)n);
	if (to == w->tid)
		to = first + (to - first + 1) % n;
	memento_ref *empty = NULL;
	if (!atomic_compare_exchange_strong_explicit(&mailbox[to], &empty, ref,
	                                             memory_order_acq_rel, memory_order_relaxed))
		return false;
	w->c.refs_handed++;
	return true;
}

/* Releases a reference another thread handed to w, if there is one. */
static void ref_receive(struct worker *w)
{
	if (atomic_load_explicit(&mailbox[w->tid], memory_order_relaxed) == NULL)
		return;
	memento_ref *ref = atomic_exchange_explicit(&mailbox[w->tid], NULL, memory_order_acq_rel);
	if (ref == NULL)
		return;
	ref_release(w, ref, NULL, "a reference another thread handed over");
	w->c.refs_received++;
}

/*
 * A slot of the thread's keep: empty, a reference to g is taken into it
 * (inside a guard or outside); else its reference goes, released here or
 * handed to another thread.  A reference outlives the guards and steps
 * between.
 */
static void op_gref(struct worker *w, uint32_t g)
{
	struct held *h = &w->kept[below(w, KEPT)];
	if (h->ref == NULL) {
		memento_ref *ref;
		struct object *o;
		if (gget_checked(w, g, NULL, &ref, &o) == 0)
			*h = (struct held){ ref, o };
		return;
	}
	ref_check(h->ref, h->obj, "a kept reference");
	if (below(w, 2) != 0 || !ref_hand(w, h->ref))
		ref_release(w, h->ref, h->obj, "a kept reference");
	*h = (struct held){ 0 };
}

/* Every kept reference goes: released, or handed on (main releases what
 * is left in the mailbox). */
static void refs_let_go(struct worker *w)
{
	for (int i = 0; i < KEPT; i++) {
		struct held *h = &w->kept[i];
		if (h->ref == NULL)
			continue;
		ref_check(h->ref, h->obj, "a kept reference");
		if (below(w, 2) != 0 || !ref_hand(w, h->ref))
			ref_release(w, h->ref, h->obj, "a kept reference");
		*h = (struct held){ 0 };
	}
}

/* Bounded 45%, timed 30%, weighed 25%; half the time one of 4 hot keys. */
static uint32_t pick_gkey(struct worker *w)
{
	uint32_t r = below(w, 100);
	return pick_key(w, r < 45 ? BOUNDED : r < 75 ? TIMED : WEIGHED, 4);
}

/* One call inside a guard; now and then on a class that needs no guard,
 * which the guard must leave alone. */
static void op_in_guard(struct worker *w, struct guard_log *log)
{
	uint32_t r = below(w, 100);
	if (r < 8) {
		uint32_t g = pick_key(w, pick_class(w), 3);
		if (r < 5)
			op_get(w, g);
		else
			op_peek(w, g);
		return;
	}
	uint32_t g = pick_gkey(w);
	if (r < 55)
		op_gget(w, g, log);
	else if (r < 67)
		op_gget_until(w, g, log);
	else if (r < 85)
		op_gpeek(w, g, log);
	else if (r < 90)
		op_gforget(w, g);
	else if (r < 98)
		op_gref(w, g);
	else
		op_barrier_in_guard(w);
}

/*
 * One guard: 1 to 8 calls, a quarter of the time some of them inside a
 * nested guard, whose leave must keep what they got; now and then a nap
 * before the end, while removals and destroys go on; then every object got
 * is re-checked, and the outermost leave lets them go.
 */
static void guard_section(struct worker *w)
{
	struct guard_log log = { 0 };
	int n = 1 + (int)below(w, 8);
	bool nested = below(w, 4) == 0;
	int from = nested ? (int)below(w, (uint32_t)n) : n;          /* inner enter before */
	int to = nested ? from + (int)below(w, (uint32_t)(n - from)) : n; /* inner leave after */
	guard_enter();
	w->c.guards++;
	for (int i = 0; i < n; i++) {
		if (i == from) {
			guard_enter();
			w->c.nested_guards++;
		}
		op_in_guard(w, &log);
		if (i == to)
			guard_leave();
	}
	if (below(w, 8) == 0) {
		sleep_ns((int64_t)below(w, 2000000));
		w->c.guard_naps++;
	}
	guard_recheck(w, &log);
	guard_leave();
}

/*
 * A step on the guarded classes: mostly a guard with calls in it; else,
 * outside every guard, a reference taken or let go, a forget, a -EPERM
 * check, a walk or a barrier.  First, a reference handed over is released.
 */
static void step_guarded(struct worker *w)
{
	ref_receive(w);
	uint32_t g = pick_gkey(w);
	uint32_t r = below(w, 1000);
	if (r < 650)
		guard_section(w);
	else if (r < 850)
		op_gref(w, g);
	else if (r < 910)
		op_gforget(w, g);
	else if (r < 950)
		op_eperm(w, g);
	else if (r < 985)
		op_foreach(w);
	else
		op_barrier(w);
}

/* ---- what the threads do, by mode ------------------------------------------------- */

static void step_mixed(struct worker *w, uint32_t forget_pct, uint32_t until_pct)
{
	uint32_t g = pick_key(w, pick_class(w), 3);
	uint32_t r = below(w, 1000);
	if (r < 2)
		op_foreach(w);
	else if (r < 12)
		op_count(w);
	else if (r < 12 + 10 * forget_pct)
		op_forget(w, g);
	else if (r < 12 + 10 * (forget_pct + until_pct))
		op_get_until(w, g, false);
	else if (r < 750)
		op_get(w, g);
	else
		op_peek(w, g);
}

/* Half the threads forget the two hottest keys of each class without
 * pause; the others get and peek them. */
static void step_storm(struct worker *w)
{
	uint32_t g = classes[pick_class(w)].base + below(w, 2);
	uint32_t r = below(w, 100);
	if (w->tid % 2 == 0) {
		r < 70 ? op_forget(w, g) : op_peek(w, g);
		if (r % 2 == 0)
			sched_yield(); /* leave the getters some of the two cores */
	} else if (r < 40)
		op_get(w, g);
	else if (r < 70)
		op_get_until(w, g, false);
	else
		op_peek(w, g);
}

/*
 * Thread 0 picks one to three keys and forgets them; the barrier releases
 * every thread on them at once.  In a pure burst nobody forgets, so every
 * get that succeeds on a key must return one object; in the others two
 * threads forget while the rest get.
 */
static void burst_prepare(struct worker *w, uint64_t n)
{
	R.burst_stop = atomic_load_explicit(&round_stop, memory_order_relaxed);
	if (R.burst_stop)
		return;
	R.burst_pure = n % 2 == 0;
	R.nburst = 1 + (int)below(w, BURST_KEYS);
	for (int i = 0; i < R.nburst; i++) {
		uint32_t g;
		do
			g = pick_key(w, pick_class(w), 4);
		while (pinned(g));
		R.burst_key[i] = g;
		op_forget(w, g);
		atomic_store_explicit(&R.burst_obj[i], NULL, memory_order_relaxed);
	}
}

static void burst_run(struct worker *w)
{
	int ops = 1 + (int)below(w, 4);
	for (int j = 0; j < ops; j++) {
		int i = (w->tid + j) % R.nburst;
		uint32_t g = R.burst_key[i];
		uint32_t r = below(w, 100);
		struct object *o = NULL;
		if (!R.burst_pure && w->tid < 2 && r < 50) {
			op_forget(w, g);
			continue;
		}
		if (r < 50) {
			w->c.ops[OP_GET]++;
			if (get_checked(w, g, NULL, &o) != 0)
				o = NULL;
		} else if (r < 85) {
			op_get_until(w, g, r < 70);
		} else {
			op_peek(w, g);
		}
		if (R.burst_pure && o != NULL) {
			struct object *first = NULL;
			/* Relaxed: only the pointer value is compared. */
			if (!atomic_compare_exchange_strong_explicit(&R.burst_obj[i], &first, o,
			                                             memory_order_relaxed,
			                                             memory_order_relaxed) &&
			    first != o)
				VIOLATION("stampede on %s with no forget: two gets returned %p and %p", KEY(g),
				          (void *)first, (void *)o);
		}
	}
}

/*
 * The share of a thread's steps that go to the guarded classes: in the
 * guarded mode most of every thread's; in the others all of the threads'
 * after the first nold, which race on the first three classes as they did
 * before the guarded classes came (a guarded step takes far longer:
 * creations at every eviction, naps, barriers).  Below four threads there
 * are none of those: a tenth of each one's.
 */
static uint32_t guarded_share(const struct worker *w)
{
	if (R.mode == GUARDED)
		return 85;
	if (nthreads == nold)
		return 10;
	return w->tid >= nold ? 100 : 0;
}

static void run_stampede(struct worker *w)
{
	for (uint64_t n = 0;; n++) {
		if (w->tid == 0)
			burst_prepare(w, n);
		pthread_barrier_wait(&burst_barrier);
		if (R.burst_stop)
			break;
		burst_run(w);
		/* Never a guard across the barrier: another thread may wait in
		 * memento_cache_barrier for it while this one waits for that one. */
		if (below(w, 100) < guarded_share(w))
			step_guarded(w);
		pthread_barrier_wait(&burst_barrier);
	}
}

/* What the hang report calls a parked thread. */
#define WATCH_PARKED (NOPS + 1 + NGOPS)

/* A quiet point: the thread lets its references go and waits for main. */
static void pause_point(struct worker *w)
{
	refs_let_go(w);
	atomic_store_explicit(&w->watch_op, WATCH_PARKED, memory_order_relaxed);
	atomic_fetch_add_explicit(&parked, 1, memory_order_release);
	while (atomic_load_explicit(&pause_req, memory_order_acquire))
		sleep_ns(200000);
}

static void run_round(struct worker *w)
{
	if (R.mode == STAMPEDE && guarded_share(w) < 100) {
		run_stampede(w);
		return;
	}
	while (!atomic_load_explicit(&round_stop, memory_order_relaxed)) {
		if (atomic_load_explicit(&pause_req, memory_order_relaxed))
			pause_point(w);
		if (below(w, 100) < guarded_share(w)) {
			step_guarded(w);
		} else {
			switch (R.mode) {
			case FORGET_STORM:
				step_storm(w);
				break;
			case SLOW_DEADLINES:
				step_mixed(w, 5, 55);
				break;
			case GUARDED:
				step_mixed(w, 0, 20); /* no forgets: see struct mode */
				break;
			default:
				step_mixed(w, 4, 20);
				break;
			}
		}
		uint64_t steps = atomic_load_explicit(&w->watch_ops, memory_order_relaxed);
		atomic_store_explicit(&w->watch_ops, steps + 1, memory_order_relaxed);
	}
}

/* A retiring thread leaves inside a guard, holding an object: the library
 * must end that guard, or main's barrier at the end of the round waits for
 * it (the watchdog) or leaves removed objects undestroyed (the counts). */
static void exit_in_guard(struct worker *w)
{
	guard_enter();
	op_gget(w, pick_gkey(w), NULL);
	w->c.exits_in_guard++;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	self = w;
	for (;;) {
		pthread_barrier_wait(&round_barrier);
		if (R.quit)
			return NULL;
		bool retire = w->retire;
		run_round(w);
		refs_let_go(w);
		if (retire && below(w, 2) == 0)
			exit_in_guard(w);
		watch(w, NOPS, 0);
		atomic_fetch_add_explicit(&finished, 1, memory_order_release);
		if (retire) {
			/* The library ends a guard its thread exits in; any destroy
			 * it then runs here is outside it. */
			guard_depth = 0;
			return NULL; /* with the cache alive: its counts must stay */
		}
	}
}

/* ---- the allocator of odd rounds -------------------------------------------------- */

/*
 * Odd rounds give the cache an allocator that checks what comes back: each
 * block carries its size, free must give the same size, and nothing may be
 * left once the cache is freed.  Relaxed counters: main reads them after
 * every other thread of the round has finished or exited.
 */
struct alloc_stats {
	_Atomic uint64_t allocs, frees, live_bytes;
	_Atomic uint64_t bad_frees;
};

static struct alloc_stats alloc_stats;

struct alloc_header {
	uint64_t magic;
	size_t size;
	size_t align;
};
#define ALLOC_MAGIC 0x414c4c4f43ull
#define ALLOC_ROOM 64 /* the largest alignment the library asks for */

static void *checked_alloc(size_t size, size_t align, void *state)
{
	struct alloc_stats *s = state;
	if (align == 0 || (align & (align - 1)) != 0 || align > ALLOC_ROOM) {
		atomic_fetch_add_explicit(&s->bad_frees, 1, memory_order_relaxed);
		return NULL;
	}
	size_t total = (ALLOC_ROOM + size + ALLOC_ROOM - 1) / ALLOC_ROOM * ALLOC_ROOM;
	char *p = aligned_alloc(ALLOC_ROOM, total);
	if (p == NULL)
		return NULL;
	struct alloc_header *h = (struct alloc_header *)(void *)p;
	*h = (struct alloc_header){ ALLOC_MAGIC, size, align };
	atomic_fetch_add_explicit(&s->allocs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->live_bytes, size, memory_order_relaxed);
	return p + ALLOC_ROOM;
}

static void checked_free(void *ptr, size_t size, void *state)
{
	struct alloc_stats *s = state;
	if (ptr == NULL)
		return;
	struct alloc_header *h = (struct alloc_header *)(void *)((char *)ptr - ALLOC_ROOM);
	if (h->magic != ALLOC_MAGIC || h->size != size) {
		atomic_fetch_add_explicit(&s->bad_frees, 1, memory_order_relaxed);
		return; /* leaked rather than freed wrongly */
	}
	h->magic = 0;
	atomic_fetch_add_explicit(&s->frees, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&s->live_bytes, size, memory_order_relaxed);
	free(h);
}

/* ---- main: rounds, end-of-round checks, the summary ------------------------------- */

static struct counts total;
static uint64_t total_waits, total_rounds;
static memento_stats total_guarded; /* the guarded classes', summed */
static uint64_t total_worker_destroys;
static uint32_t *final_visits;
static struct object **final_obj;

static void add_counts(struct counts *to, const struct counts *from)
{
	uint64_t *t = (uint64_t *)to;
	const uint64_t *f = (const uint64_t *)from;
	for (size_t i = 0; i < sizeof *to / sizeof(uint64_t); i++)
		t[i] += f[i];
}

/* Counters against the library's, with the threads quiet. */
static void check_stats(const struct counts *sum)
{
	for (int c = 0; c < NCLASSES; c++) {
		memento_stats st;
		if (memento_class_stats(R.cls[c], &st) != 0) {
			VIOLATION("memento_class_stats failed");
			continue;
		}
		const char *n = classes[c].name;
		uint64_t lookups = sum->gets[c] + sum->peek_hits[c];
		if (st.creations != sum->creations[c] || st.failures != sum->failures[c])
			VIOLATION("%s: stats say %" PRIu64 " creations, %" PRIu64 " failed; create ran %" PRIu64
			          " times, %" PRIu64 " failed",
			          n, st.creations, st.failures, sum->creations[c], sum->failures[c]);
		if (sum->creations[c] != sum->successes[c] + sum->failures[c])
			VIOLATION("%s: %" PRIu64 " creations are not %" PRIu64 " successes + %" PRIu64 " failures",
			          n, sum->creations[c], sum->successes[c], sum->failures[c]);
		if (st.timeouts != sum->timeouts[c])
			VIOLATION("%s: stats say %" PRIu64 " timeouts, the calls got %" PRIu64, n, st.timeouts,
			          sum->timeouts[c]);
		if (st.deadlocks != sum->self_deadlocks[c])
			VIOLATION("%s: stats say %" PRIu64 " deadlocks, the calls got %" PRIu64, n,
			          st.deadlocks, sum->self_deadlocks[c]);
		/* Every get is a hit or a miss, and so is every peek that found an
		 * object; a get of its own key (-EDEADLK) did neither, strictly. */
		if (st.hits + st.misses > lookups ||
		    st.hits + st.misses + sum->self_deadlocks[c] < lookups || st.hits < sum->peek_hits[c])
			VIOLATION("%s: stats say %" PRIu64 " hits + %" PRIu64 " misses; the calls made %" PRIu64
			          " gets and %" PRIu64 " peeks that found an object",
			          n, st.hits, st.misses, sum->gets[c], sum->peek_hits[c]);
		/* A miss creates or waits (or finds its own key in flight). */
		if (st.creations + st.waits > st.misses ||
		    st.misses > st.creations + st.waits + st.deadlocks || st.timeouts > st.waits)
			VIOLATION("%s: stats say %" PRIu64 " misses, %" PRIu64 " creations, %" PRIu64
			          " waits, %" PRIu64 " timeouts",
			          n, st.misses, st.creations, st.waits, st.timeouts);
		total_waits += st.waits;
	}
}

static memento_stats stats_of(int c)
{
	memento_stats st = { 0 };
	if (memento_class_stats(R.cls[c], &st) != 0)
		VIOLATION("memento_class_stats failed");
	return st;
}

/*
 * The guarded classes' counters against the threads' own, quiet.  A get
 * (of any kind) is a hit or a miss, a refresh's included (a hit that
 * creates), a remembered failure's too (a miss that neither creates nor
 * waits); a call refused with -EPERM is neither.
 */
static void check_guarded_stats(const struct counts *sum)
{
	for (int c = NCLASSES; c < NALL; c++) {
		memento_stats st = stats_of(c);
		const char *n = classes[c].name;
		if (st.creations != sum->creations[c] || st.failures != sum->failures[c] ||
		    sum->creations[c] != sum->successes[c] + sum->failures[c])
			VIOLATION("%s: stats say %" PRIu64 " creations, %" PRIu64 " failed; create ran %" PRIu64
			          " times, %" PRIu64 " succeeded, %" PRIu64 " failed",
			          n, st.creations, st.failures, sum->creations[c], sum->successes[c],
			          sum->failures[c]);
		if (st.timeouts != sum->timeouts[c] || st.deadlocks != 0)
			VIOLATION("%s: stats say %" PRIu64 " timeouts and %" PRIu64 " deadlocks, the calls "
			          "got %" PRIu64 " and none",
			          n, st.timeouts, st.deadlocks, sum->timeouts[c]);
		if (st.hits + st.misses != sum->gets[c] + sum->peek_hits[c] ||
		    st.hits < sum->peek_hits[c])
			VIOLATION("%s: stats say %" PRIu64 " hits + %" PRIu64 " misses; the calls made %" PRIu64
			          " gets and %" PRIu64 " peeks that found an object",
			          n, st.hits, st.misses, sum->gets[c], sum->peek_hits[c]);
		if (st.waits > st.misses || st.timeouts > st.waits)
			VIOLATION("%s: stats say %" PRIu64 " misses, %" PRIu64 " waits, %" PRIu64 " timeouts",
			          n, st.misses, st.waits, st.timeouts);
		if ((c != TIMED && (st.expirations != 0 || st.refreshes != 0)) ||
		    (c == TIMED && st.evictions != 0))
			VIOLATION("%s: stats say %" PRIu64 " evictions, %" PRIu64 " expirations, %" PRIu64
			          " refreshes, which its options rule out",
			          n, st.evictions, st.expirations, st.refreshes);
	}
}

/* Main releases what is left in the mailbox: still another thread. */
static void mailbox_drain(void)
{
	for (int t = 0; t < nthreads; t++) {
		memento_ref *ref = atomic_exchange_explicit(&mailbox[t], NULL, memory_order_acq_rel);
		if (ref != NULL)
			ref_release(NULL, ref, NULL, "a reference left in the mailbox");
	}
}

static uint64_t destroyed_so_far(void)
{
	uint64_t n = 0;
	for (int c = NCLASSES; c < NALL; c++)
		n += book_load(&g_destroyed[c]);
	return n;
}

/*
 * Main's barriers at a quiet point: inside a guard of its own it returns at
 * once and destroys nothing (there is nothing it could wait for that would
 * end); outside, it destroys every object removed and not referenced.
 */
static void quiet_barrier(void)
{
	uint64_t before = destroyed_so_far();
	guard_enter();
	memento_cache_barrier(R.cache);
	if (destroyed_so_far() != before)
		VIOLATION("memento_cache_barrier inside a guard destroyed %" PRIu64 " objects",
		          destroyed_so_far() - before);
	guard_leave();
	memento_cache_barrier(R.cache);
}

/* Forgets every key of class c; returns how many found an entry. */
static uint64_t forget_class(int c)
{
	uint64_t found = 0;
	for (uint32_t i = 0; i < classes[c].n; i++) {
		uint32_t g = classes[c].base + i;
		struct args a = { .key = g };
		book_inc(&forgets_begun[g]);
		int rc = memento_forget(R.cls[c], &a);
		book_inc(&forgets_done[g]);
		if (rc == 0)
			found++;
		else if (rc != -ENOENT)
			VIOLATION("forget of %s returned %s", KEY(g), err_name(rc));
	}
	return found;
}

/* The guarded classes' counters at the end of the round, for the summary. */
static memento_stats guarded_end[NALL];

/*
 * A quiet point (only main uses the cache, nothing is referenced but what
 * the mailbox holds, which goes first), after the barrier: each guarded
 * class within its bound (exactly, at one shard); every object evicted,
 * expired or replaced destroyed; and
 *     creations = live + destroyed + failures,
 * live being what a walk visits, for the classes that neither expire nor
 * remember failures.  A timed class's expired objects are linked but not
 * visited, and a bounded class's remembered failures are linked but no
 * objects: forgetting every key of both, the count falls by what the
 * forgets found, after one more barrier each forgotten object was
 * destroyed, and the same holds with live = 0.  Returns the objects left
 * linked (the weighed ones), which memento_count still counts.
 */
static uint64_t check_guarded_quiet(void)
{
	mailbox_drain();
	quiet_barrier();
	struct walk wk = { .w = NULL };
	int rc = memento_foreach(R.cache, visit_cb, &wk);
	if (rc != 0)
		VIOLATION("the quiet walk returned %s", err_name(rc));
	memento_stats st[NALL];
	for (int c = NCLASSES; c < NALL; c++) {
		st[c] = stats_of(c);
		if (st[c].destroyed != book_load(&g_destroyed[c]) ||
		    st[c].creations - st[c].failures != book_load(&g_created[c]))
			VIOLATION("%s: stats say %" PRIu64 " destroyed and %" PRIu64 " created; destroy ran "
			          "%" PRIu64 " times, create succeeded %" PRIu64 " times",
			          classes[c].name, st[c].destroyed, st[c].creations - st[c].failures,
			          book_load(&g_destroyed[c]), book_load(&g_created[c]));
		if (st[c].destroyed < st[c].evictions + st[c].expirations + st[c].refreshes)
			VIOLATION("%s: after the barrier %" PRIu64 " destroyed, fewer than %" PRIu64
			          " evicted + %" PRIu64 " expired + %" PRIu64 " replaced",
			          classes[c].name, st[c].destroyed, st[c].evictions, st[c].expirations,
			          st[c].refreshes);
	}
	if (wk.n[BOUNDED] > shards_hold(BOUNDED))
		VIOLATION("quiet, at %u shards: bounded holds %" PRIu64 " objects, at most %" PRIu64,
		          R.shards, wk.n[BOUNDED], shards_hold(BOUNDED));
	if (wk.weight > shards_hold(WEIGHED))
		VIOLATION("quiet, at %u shards: weighed holds %" PRIu64 " weight, at most %" PRIu64,
		          R.shards, wk.weight, shards_hold(WEIGHED));
	static const int walked[] = { BOUNDED, WEIGHED };
	for (int i = 0; i < 2; i++) {
		int c = walked[i];
		if (st[c].creations != wk.n[c] + st[c].destroyed + st[c].failures)
			VIOLATION("%s: %" PRIu64 " creations, but %" PRIu64 " live + %" PRIu64
			          " destroyed + %" PRIu64 " failed",
			          classes[c].name, st[c].creations, wk.n[c], st[c].destroyed,
			          st[c].failures);
	}

	size_t count0 = memento_count(R.cache);
	uint64_t found_b = forget_class(BOUNDED), found_t = forget_class(TIMED);
	memento_cache_barrier(R.cache);
	size_t count1 = memento_count(R.cache);
	if (count0 - count1 != found_b + found_t || found_b < wk.n[BOUNDED] ||
	    found_t < wk.n[TIMED])
		VIOLATION("forgetting every bounded and timed key: the count went from %zu to %zu, the "
		          "forgets found %" PRIu64 " and %" PRIu64 ", the walk had visited %" PRIu64
		          " and %" PRIu64,
		          count0, count1, found_b, found_t, wk.n[BOUNDED], wk.n[TIMED]);
	uint64_t forgotten[NALL] = { [BOUNDED] = wk.n[BOUNDED], [TIMED] = found_t };
	uint64_t left[NALL] = { [WEIGHED] = wk.n[WEIGHED] };
	for (int c = NCLASSES; c < NALL; c++) {
		memento_stats after = stats_of(c);
		if (after.destroyed != st[c].destroyed + forgotten[c] ||
		    after.creations != left[c] + after.destroyed + after.failures)
			VIOLATION("%s: after forgetting %" PRIu64 " objects and a barrier, %" PRIu64
			          " destroyed (before: %" PRIu64 "), %" PRIu64 " creations, %" PRIu64
			          " failed, %" PRIu64 " live",
			          classes[c].name, forgotten[c], after.destroyed, st[c].destroyed,
			          after.creations, after.failures, left[c]);
		guarded_end[c] = after;
	}
	return wk.n[WEIGHED];
}

static int final_visit(memento_class *cls, void *obj, void *ctx)
{
	(void)ctx;
	struct object *o = obj;
	if (class_index(cls) >= NCLASSES)
		return 0; /* check_guarded_quiet walked those */
	if (class_index(cls) < 0 || o == NULL || o->magic != OBJ_MAGIC || o->key >= nkeys) {
		VIOLATION("the final walk visited %p, not an object of this test", obj);
		return 0;
	}
	if (final_obj[o->key] != o || class_index(cls) != o->cls)
		VIOLATION("the final walk visited an object of %s that peek does not return",
		          KEY(o->key));
	if (++final_visits[o->key] == 2)
		VIOLATION("the final walk visited the object of %s twice", KEY(o->key));
	return 0;
}

/*
 * With the threads quiet: every key is ready or absent, count and a walk
 * agree with the keys (count also has the guarded_linked entries that
 * check_guarded_quiet left), and R4.  Returns the number of ready
 * keys.
 */
static size_t check_quiet_cache(uint64_t guarded_linked)
{
	size_t ready = 0;
	for (uint32_t g = 0; g < nkeys; g++) {
		struct args a = { .key = g, .negzero = g & 1 };
		void *obj = NULL;
		int rc = memento_peek(R.cls[class_of(g)], &a, &obj);
		final_obj[g] = NULL;
		final_visits[g] = 0;
		if (rc == 0) {
			uint64_t all_done = book_load(&forgets_done[g]);
			if (object_ok(obj, g, all_done, "final peek"))
				final_obj[g] = obj;
			ready++;
		} else if (rc != -ENOENT) {
			VIOLATION("with the threads quiet, peek of %s returned %s", KEY(g),
			          err_name(rc));
		}
	}
	size_t count = memento_count(R.cache);
	if (count != ready + guarded_linked)
		VIOLATION("with the threads quiet, memento_count is %zu but %zu keys are ready and "
		          "%" PRIu64 " guarded objects linked",
		          count, ready, guarded_linked);
	int rc = memento_foreach(R.cache, final_visit, NULL);
	if (rc != 0)
		VIOLATION("the final walk returned %s", err_name(rc));
	for (uint32_t g = 0; g < nkeys; g++)
		if (final_obj[g] != NULL && final_visits[g] == 0)
			VIOLATION("the final walk missed the object of %s", KEY(g));
	/* R4 (not for guarded classes: evictions and expiry remove too) */
	for (int t = 0; t < nthreads; t++)
		for (struct object *o = workers[t].objs; o != NULL; o = o->next)
			if (!guarded(o->cls) &&
			    atomic_load_explicit(&o->state, memory_order_relaxed) == OBJ_LIVE &&
			    book_load(&forgets_begun[o->key]) == o->d && final_obj[o->key] != o)
				VIOLATION("R4: no forget of %s began after the call that created %p, but the "
				          "key's object is %p",
				          KEY(o->key), (void *)o, (void *)final_obj[o->key]);
	return ready;
}

/*
 * Just before memento_cache_free: references to a third of the weighed
 * objects, half of those forgotten, none released.  The free destroys them
 * as the others, once each (check_destroyed_and_free).
 */
static void refs_left_to_free(void)
{
	for (uint32_t i = 0; i < classes[WEIGHED].n; i += 3) {
		uint32_t g = classes[WEIGHED].base + i;
		struct call call = { 0 };
		struct args a = { .key = g, .call = &call };
		void *obj = NULL;
		guard_enter();
		int rc = memento_peek(R.cls[WEIGHED], &a, &obj);
		guard_leave();
		if (rc != 0)
			continue; /* a get would create, and create wants a worker */
		memento_ref *ref = NULL;
		rc = memento_get_ref(R.cls[WEIGHED], &a, &ref);
		if (rc != 0 || call.ran || memento_ref_object(ref) != obj)
			VIOLATION("with the threads quiet, get_ref of ready %s returned %s%s", KEY(g),
			          err_name(rc), call.ran ? " and ran create" : ", another object");
		else if (i % 2 == 0 && memento_forget(R.cls[WEIGHED], &a) != 0)
			VIOLATION("with the threads quiet, forget of ready %s failed", KEY(g));
	}
}

/* After memento_cache_free: destroy ran once per created object, never on a
 * failed one (a guarded object may have been destroyed earlier). */
static void check_destroyed_and_free(void)
{
	for (int t = 0; t < nthreads; t++) {
		struct object *o = workers[t].objs;
		while (o != NULL) {
			struct object *next = o->next;
			uint32_t state = atomic_load_explicit(&o->state, memory_order_relaxed);
			uint32_t n = atomic_load_explicit(&o->destroys, memory_order_relaxed);
			if (state == OBJ_LIVE || (state == OBJ_DESTROYED && n != 1))
				VIOLATION("object %p of %s destroyed %" PRIu32
				          " times by the end of memento_cache_free",
				          (void *)o, KEY(o->key), n);
			o->magic = 0;
			free(o);
			o = next;
		}
		workers[t].objs = NULL;
	}
}

static void worker_start(struct worker *w, uint64_t salt)
{
	w->rng = splitmix(seed ^ splitmix(salt * 1000003u + (uint64_t)w->tid)) | 1;
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
		fprintf(stderr, "stress: cannot start a thread\n");
		exit(1);
	}
}

static void report_hang(void)
{
	fprintf(stderr, "stress: HANG: round %d (%s): %d of %d threads finished after 120 s\n", R.no,
	        modes[R.mode].name, atomic_load(&finished), nthreads);
	for (int t = 0; t < nthreads; t++) {
		struct worker *w = &workers[t];
		int op = atomic_load_explicit(&w->watch_op, memory_order_relaxed);
		fprintf(stderr, "  thread %d: %s %s, %d creates deep, %" PRIu64 " steps\n", t,
		        op < NOPS            ? op_names[op]
		        : op == NOPS         ? "finished"
		        : op < WATCH_PARKED  ? gop_names[op - NOPS - 1]
		                             : "parked",
		        KEY(atomic_load_explicit(&w->watch_key, memory_order_relaxed)),
		        atomic_load_explicit(&w->watch_depth, memory_order_relaxed),
		        atomic_load_explicit(&w->watch_ops, memory_order_relaxed));
	}
	abort();
}

/* The round's guarded classes, after the others. */
static int guarded_classes_new(void)
{
	int rc = 0;
	for (int c = NCLASSES; c < NALL && rc == 0; c++) {
		memento_class_desc desc = { .name = classes[c].name,
			                    .key = guarded_key,
			                    .create = create_guarded_cb,
			                    .destroy = destroy_guarded_cb,
			                    .ctx = &classes[c] };
		memento_class_options o = guarded_options(c);
		rc = memento_class_new_with(R.cache, &desc, &o, &R.cls[c]);
	}
	return rc;
}

/*
 * Main's own calls at quiet points (barriers above all) could hang too,
 * where report_hang's polling does not run: a watchdog thread reports the
 * step main has been in for 120 s, then abort().  Relaxed: a report.
 */
static _Atomic(const char *) main_doing;
static _Atomic uint64_t main_since;

static void main_watch(const char *what)
{
	atomic_store_explicit(&main_since, now_ns(), memory_order_relaxed);
	atomic_store_explicit(&main_doing, what, memory_order_relaxed);
}

static void *watchdog_main(void *arg)
{
	(void)arg;
	for (;;) {
		sleep_ns(1000000000);
		const char *what = atomic_load_explicit(&main_doing, memory_order_relaxed);
		uint64_t since = atomic_load_explicit(&main_since, memory_order_relaxed);
		if (what != NULL && now_ns() - since > 120 * 1000000000ull) {
			fprintf(stderr, "stress: HANG: round %d (%s): the main thread in %s for 120 s\n",
			        R.no, modes[R.mode].name, what);
			abort();
		}
	}
	return NULL;
}

static void round_setup(int no, enum mode_id mode)
{
	static const unsigned int shard_choices[] = { 1, 2, 16, 64 };
	memento_cache_options opt = MEMENTO_CACHE_OPTIONS_INIT;
	opt.shards = shard_choices[no % 4];
	/* The guarded mode's rounds are all odd: one shard, then many. */
	if (mode == GUARDED)
		opt.shards = no / NMODES % 2 == 0 ? 1 : 64;
	opt.initial_capacity = no % 3 == 0 ? nkeys : 0; /* else the tables grow during the round */
	opt.seed = splitmix(seed + (uint64_t)no) | 1;
	if (no % 2 == 1) {
		memset(&alloc_stats, 0, sizeof alloc_stats);
		opt.allocator = (memento_allocator){ checked_alloc, checked_free, &alloc_stats };
	}
	R.no = no;
	R.mode = mode;
	int rc = memento_cache_new_with(&R.cache, &opt);
	static const memento_key_fn keys[NCLASSES] = { leaf_key, named_key, composite_key };
	for (int c = 0; c < NCLASSES && rc == 0; c++) {
		memento_class_desc desc = { .name = classes[c].name,
			                    .key = keys[c],
			                    .create = create_cb,
			                    .destroy = destroy_cb,
			                    .ctx = &classes[c] };
		rc = memento_class_new(R.cache, &desc, &R.cls[c]);
	}
	if (rc == 0)
		rc = guarded_classes_new();
	R.shards = opt.shards;
	if (rc != 0) {
		fprintf(stderr, "stress: cannot make the round's cache: %s\n", memento_strerror(rc));
		exit(1);
	}
	size_t n = nkeys;
	for (size_t i = 0; i < n; i++) {
		atomic_store_explicit(&succeeded[i], 0, memory_order_relaxed);
		atomic_store_explicit(&started[i], 0, memory_order_relaxed);
	}
	for (size_t i = 0; i < nall; i++) {
		atomic_store_explicit(&forgets_begun[i], 0, memory_order_relaxed);
		atomic_store_explicit(&forgets_done[i], 0, memory_order_relaxed);
	}
	for (size_t i = 0; i < n * (size_t)nthreads; i++)
		atomic_store_explicit(&inflight[i], 0, memory_order_relaxed);
	atomic_store_explicit(&g_worker_destroys, 0, memory_order_relaxed);
	for (int c = 0; c < NALL; c++) {
		atomic_store_explicit(&g_in_flight[c], 0, memory_order_relaxed);
		atomic_store_explicit(&g_created[c], 0, memory_order_relaxed);
		atomic_store_explicit(&g_destroyed[c], 0, memory_order_relaxed);
	}
	for (int t = 0; t < nthreads; t++) {
		struct worker *w = &workers[t];
		memset(w->last, 0, n * sizeof *w->last);
		memset(w->last_fail, 0, n * sizeof *w->last_fail);
		memset(w->gfail_err, 0, nall * sizeof *w->gfail_err);
		memset(&w->c, 0, sizeof w->c);
		/* Odd rounds, a quarter of the threads exit at the end of the
		 * round and new ones take their place. */
		w->retire = no % 2 == 1 && t % 4 == (no / 2) % 4;
	}
	atomic_store_explicit(&round_stop, false, memory_order_relaxed);
	atomic_store_explicit(&finished, 0, memory_order_relaxed);
}

/* The allocator's live bytes now (odd rounds). */
static uint64_t live_bytes(void)
{
	return atomic_load_explicit(&alloc_stats.live_bytes, memory_order_relaxed);
}

/* At the guarded mode's quiet point in mid-round, after its checks: the
 * allocator's bytes, and the guarded objects destroyed so far. */
static uint64_t pause_bytes, pause_destroyed;

/*
 * The guarded mode's quiet point in mid-round: the workers park (or have
 * finished, if a violation ended the round), then main checks as at the
 * end, and notes the allocator's bytes.
 */
static void round_pause(void)
{
	atomic_store_explicit(&parked, 0, memory_order_relaxed);
	atomic_store_explicit(&pause_req, true, memory_order_relaxed);
	struct timespec asked = now_monotonic();
	while (atomic_load_explicit(&parked, memory_order_acquire) +
	               atomic_load_explicit(&finished, memory_order_acquire) <
	       nthreads) {
		if (seconds_since(asked) > 120)
			report_hang();
		sleep_ns(1000000);
	}
	if (!atomic_load_explicit(&round_stop, memory_order_relaxed)) {
		main_watch("the mid-round checks");
		check_guarded_quiet();
		pause_bytes = live_bytes();
		pause_destroyed = destroyed_so_far();
		main_watch(NULL);
	}
	atomic_store_explicit(&pause_req, false, memory_order_release);
}

/*
 * The guarded mode's two quiet points, mid-round and at the end, after the
 * same checks (every bounded and timed key forgotten, the barrier): only
 * the weighed class's few objects are left, and the first three classes,
 * never forgotten in this mode, made every key in the first half.  So the
 * bytes must not grow with the length of the round.
 */
static void check_memory_flat(uint64_t mid, uint64_t end)
{
	uint64_t destroyed = destroyed_so_far() - pause_destroyed;
	/* Legitimate growth is a high-water mark: when removed objects waiting
	 * for a long guard (or a preempted thread's) pile up higher than ever
	 * before, a shard's slab takes one more chunk, which it keeps.  Chunks
	 * double up to 64 KiB, so room for two of the largest, and a small one
	 * per shard.  A leak of some 40 bytes per destroyed object is more
	 * (10,000 to 25,000 of them between the two points, TSan included);
	 * an entry is larger than that. */
	uint64_t slack = 2 * 64 * 1024 + (uint64_t)R.shards * 4 * 1024 + 16 * 1024;
	if (end > mid + slack)
		VIOLATION("memory grows with the round: the allocator holds %" PRIu64 " bytes at its end, "
		          "%" PRIu64 " mid-round (at most %" PRIu64 " more), %" PRIu64
		          " guarded objects destroyed between",
		          end, mid, slack, destroyed);
	if (verbose)
		fprintf(stderr,
		        "stress: round %d: %" PRIu64 " bytes mid-round, %" PRIu64 " at the end, %" PRIu64
		        " guarded objects destroyed between\n",
		        R.no, mid, end, destroyed);
}

/* Runs one round of `length` seconds; false once a violation was seen. */
static bool round_run(int no, double length)
{
	round_setup(no, (enum mode_id)(no % NMODES));
	struct timespec start = now_monotonic();
	pthread_barrier_wait(&round_barrier);
	bool paused = R.mode != GUARDED;
	pause_bytes = 0;
	while (seconds_since(start) < length &&
	       !atomic_load_explicit(&round_stop, memory_order_relaxed)) {
		if (!paused && seconds_since(start) >= length / 2) {
			round_pause();
			paused = true;
		}
		sleep_ns(5000000);
	}
	atomic_store_explicit(&round_stop, true, memory_order_relaxed);
	struct timespec stop = now_monotonic();
	while (atomic_load_explicit(&finished, memory_order_acquire) < nthreads) {
		if (seconds_since(stop) > 120)
			report_hang();
		sleep_ns(1000000);
	}
	for (int t = 0; t < nthreads; t++)
		if (workers[t].retire)
			pthread_join(workers[t].thread, NULL);

	main_watch("the end-of-round checks");
	struct counts sum = { 0 };
	for (int t = 0; t < nthreads; t++)
		add_counts(&sum, &workers[t].c);
	check_stats(&sum);
	check_guarded_stats(&sum);
	uint64_t guarded_linked = check_guarded_quiet();
	uint64_t end_bytes = no % 2 == 1 ? live_bytes() : 0;
	size_t ready = check_quiet_cache(guarded_linked);
	if (pause_bytes != 0)
		check_memory_flat(pause_bytes, end_bytes);
	refs_left_to_free();

	main_watch("memento_cache_free");
	atomic_store_explicit(&freeing, true, memory_order_relaxed);
	memento_cache_free(R.cache);
	atomic_store_explicit(&freeing, false, memory_order_relaxed);
	main_watch(NULL);
	R.cache = NULL;
	check_destroyed_and_free();
	if (no % 2 == 1) {
		uint64_t allocs = atomic_load_explicit(&alloc_stats.allocs, memory_order_relaxed);
		uint64_t frees = atomic_load_explicit(&alloc_stats.frees, memory_order_relaxed);
		uint64_t bytes = atomic_load_explicit(&alloc_stats.live_bytes, memory_order_relaxed);
		uint64_t bad = atomic_load_explicit(&alloc_stats.bad_frees, memory_order_relaxed);
		if (allocs != frees || bytes != 0 || bad != 0)
			VIOLATION("allocator: %" PRIu64 " allocations, %" PRIu64 " frees, %" PRIu64
			          " bytes left, %" PRIu64 " frees of a wrong size or pointer or bad alignments",
			          allocs, frees, bytes, bad);
	}

	add_counts(&total, &sum);
	for (int c = NCLASSES; c < NALL; c++) {
		total_guarded.evictions += guarded_end[c].evictions;
		total_guarded.expirations += guarded_end[c].expirations;
		total_guarded.refreshes += guarded_end[c].refreshes;
		total_guarded.destroyed += guarded_end[c].destroyed;
		total_guarded.creations += guarded_end[c].creations;
		total_guarded.failures += guarded_end[c].failures;
	}
	total_worker_destroys += book_load(&g_worker_destroys);
	total_rounds++;
	if (verbose) {
		uint64_t ops = 0;
		for (int i = 0; i < NOPS; i++)
			ops += sum.ops[i];
		memento_stats g = { 0 };
		for (int c = NCLASSES; c < NALL; c++) {
			g.creations += guarded_end[c].creations;
			g.evictions += guarded_end[c].evictions;
			g.expirations += guarded_end[c].expirations;
			g.refreshes += guarded_end[c].refreshes;
			g.destroyed += guarded_end[c].destroyed;
		}
		fprintf(stderr,
		        "stress: round %d %-14s %8" PRIu64 " ops %7" PRIu64 " creations %6" PRIu64
		        " failed %5" PRIu64 " overlaps %zu ready; %2u shards, guarded %6" PRIu64
		        " creations %6" PRIu64 " evicted %5" PRIu64 " expired %5" PRIu64
		        " refreshed %6" PRIu64 " destroyed\n",
		        no, modes[R.mode].name, ops,
		        sum.creations[0] + sum.creations[1] + sum.creations[2],
		        sum.failures[0] + sum.failures[1] + sum.failures[2], sum.overlaps, ready,
		        R.shards, g.creations, g.evictions, g.expirations, g.refreshes, g.destroyed);
	}
	for (int t = 0; t < nthreads; t++)
		if (workers[t].retire)
			worker_start(&workers[t], (uint64_t)no + 1);
	return atomic_load(&violations) == 0;
}

static void keys_setup(void)
{
	classes[LEAF].n = nkeys / 2;
	classes[NAMED].n = (nkeys / 4) & ~1u;
	classes[COMPOSITE].n = nkeys - classes[LEAF].n - classes[NAMED].n;
	classes[NAMED].base = classes[LEAF].n;
	classes[COMPOSITE].base = classes[NAMED].base + classes[NAMED].n;
	classes[BOUNDED].n = nkeys / 2;
	classes[TIMED].n = nkeys / 4;
	classes[WEIGHED].n = nkeys - classes[BOUNDED].n - classes[TIMED].n;
	classes[BOUNDED].base = nkeys;
	classes[TIMED].base = classes[BOUNDED].base + classes[BOUNDED].n;
	classes[WEIGHED].base = classes[TIMED].base + classes[TIMED].n;
	nall = 2 * nkeys;
	named_parts = calloc(classes[NAMED].n, sizeof *named_parts);
	for (uint32_t i = 0; i < classes[NAMED].n; i++) {
		/* Keys 2m and 2m+1: the same bytes, cut after "host-" or one later. */
		char whole[384];
		uint32_t m = i / 2;
		char pad[321];
		memset(pad, 'y', sizeof pad - 1);
		pad[sizeof pad - 1] = '\0';
		snprintf(whole, sizeof whole, "host-%" PRIu32 "%.*s%s.example", m, (int)(m % 40),
		         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", m % 8 == 7 ? pad : "");
		size_t cut = 5 + (i & 1);
		snprintf(named_parts[i][0], sizeof named_parts[i][0], "%.*s", (int)cut, whole);
		snprintf(named_parts[i][1], sizeof named_parts[i][1], "%s", whole + cut);
	}
	size_t n = nkeys;
	forgets_begun = calloc(nall, sizeof *forgets_begun);
	forgets_done = calloc(nall, sizeof *forgets_done);
	mailbox = calloc((size_t)nthreads, sizeof *mailbox);
	succeeded = calloc(n, sizeof *succeeded);
	started = calloc(n, sizeof *started);
	inflight = calloc(n * (size_t)nthreads, sizeof *inflight);
	final_obj = calloc(n, sizeof *final_obj);
	final_visits = calloc(n, sizeof *final_visits);
	workers = calloc((size_t)nthreads, sizeof *workers);
	if (named_parts == NULL || forgets_begun == NULL || forgets_done == NULL ||
	    succeeded == NULL || started == NULL || inflight == NULL || final_obj == NULL ||
	    final_visits == NULL || workers == NULL || mailbox == NULL) {
		fprintf(stderr, "stress: out of memory\n");
		exit(1);
	}
	for (int t = 0; t < nthreads; t++) {
		workers[t].tid = t;
		workers[t].last = calloc(n, sizeof *workers[t].last);
		workers[t].last_d = calloc(n, sizeof *workers[t].last_d);
		workers[t].last_fail = calloc(n, sizeof *workers[t].last_fail);
		workers[t].gfail_err = calloc(nall, sizeof *workers[t].gfail_err);
		workers[t].gfail_ended = calloc(nall, sizeof *workers[t].gfail_ended);
		workers[t].gfail_d = calloc(nall, sizeof *workers[t].gfail_d);
		if (workers[t].last == NULL || workers[t].last_d == NULL ||
		    workers[t].last_fail == NULL || workers[t].gfail_err == NULL ||
		    workers[t].gfail_ended == NULL || workers[t].gfail_d == NULL) {
			fprintf(stderr, "stress: out of memory\n");
			exit(1);
		}
	}
}

/* The races that must have happened for a pass to mean something. */
static int check_exercised(void)
{
	struct {
		const char *what;
		uint64_t n;
	} need[] = {
		{ "gets that waited on another thread's creation", total_waits },
		{ "get_until timeouts", total.timeouts[0] + total.timeouts[1] + total.timeouts[2] },
		{ "failures shared with waiters", total.shared_failures },
		{ "creations of one key in flight together (after a forget)", total.overlaps },
		{ "peeks that saw a creation in flight", total.in_progress },
		{ "forgets that unlinked an entry", total.forgets_found },
		{ "evictions", total_guarded.evictions },
		{ "expirations", total_guarded.expirations },
		{ "refreshes", total_guarded.refreshes },
		{ "refreshes that failed and served the old object", total.failed_refreshes },
		{ "remembered failures returned (G1)", total.remembered },
		{ "destroys on worker threads while the round ran", total_worker_destroys },
		{ "nested guards", total.nested_guards },
		{ "naps inside guards", total.guard_naps },
		{ "guarded forgets that found an entry", total.gforgets_found },
		{ "references released by another thread", total.refs_received },
		{ "barriers", total.gops[G_BARRIER] },
		{ "retiring threads that exited inside a guard", total.exits_in_guard },
	};
	int missing = 0;
	for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
		if (need[i].n == 0) {
			fprintf(stderr, "stress: %s: never happened\n", need[i].what);
			missing++;
		}
	return missing;
}

static void usage(FILE *to)
{
	fprintf(to,
	        "usage: stress [--seconds N] [--threads N] [--keys N] [--seed N] [-v]\n"
	        "  --seconds N  run for about N seconds (default 20)\n"
	        "  --threads N  worker threads (default max(16, 4 x online cores), at most %d),\n"
	        "               and a quarter as many more on the guarded classes\n"
	        "  --keys N     keys over the first three classes, and as many again over the\n"
	        "               guarded ones (default 256, %d to %d)\n"
	        "  --seed N     seed of the threads' choices (default: from the clock)\n"
	        "  -v           a line per round on stderr\n",
	        MAX_THREADS, MIN_KEYS, MAX_KEYS);
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (s == NULL || *s == '\0' || *s == '-')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0')
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t threads = cores > 4 ? (uint64_t)cores * 4 : 16, keys = 256, secs = 20;
	struct timespec boot = now_monotonic();
	seed = splitmix((uint64_t)boot.tv_nsec ^ ((uint64_t)boot.tv_sec << 32) ^ (uint64_t)getpid());
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		uint64_t *to = NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "-v") == 0) {
			verbose = true;
			continue;
		} else if (strcmp(a, "--seconds") == 0) {
			to = &secs;
		} else if (strcmp(a, "--threads") == 0) {
			to = &threads;
		} else if (strcmp(a, "--keys") == 0) {
			to = &keys;
		} else if (strcmp(a, "--seed") == 0) {
			to = &seed;
		}
		if (to == NULL || i + 1 == argc || !parse_u64(argv[++i], to)) {
			fprintf(stderr, "stress: bad argument: %s\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (secs < 1 || secs > 86400 || threads < 1 || threads > MAX_THREADS || keys < MIN_KEYS ||
	    keys > MAX_KEYS) {
		fprintf(stderr, "stress: an argument is out of range\n");
		usage(stderr);
		return 2;
	}
	seconds = (double)secs;
	nold = (int)threads;
	nthreads = nold + nold / 4;
	nkeys = (uint32_t)keys;
	keys_setup();
	struct timespec res;
	clock_getres(CLOCK_MONOTONIC_COARSE, &res);
	coarse_res = (uint64_t)res.tv_sec * 1000000000u + (uint64_t)res.tv_nsec;

	if (pthread_barrier_init(&round_barrier, NULL, (unsigned int)nthreads + 1) != 0 ||
	    pthread_barrier_init(&burst_barrier, NULL, (unsigned int)nold) != 0) {
		fprintf(stderr, "stress: cannot make the barriers\n");
		return 1;
	}
	for (int t = 0; t < nthreads; t++)
		worker_start(&workers[t], 0);
	pthread_t watchdog;
	if (pthread_create(&watchdog, NULL, watchdog_main, NULL) != 0 ||
	    pthread_detach(watchdog) != 0) {
		fprintf(stderr, "stress: cannot start the watchdog\n");
		return 1;
	}

	/* Rounds of about a second (shorter in short runs, so that every mode
	 * gets one); the last one ends at the deadline. */
	double length = seconds / NMODES < 1.0 ? seconds / NMODES : 1.0;
	struct timespec start = now_monotonic();
	int no = 0;
	for (double left; (left = seconds - seconds_since(start)) > 0.05; no++)
		if (!round_run(no, left < length ? left : length))
			break;
	R.quit = true;
	pthread_barrier_wait(&round_barrier);
	for (int t = 0; t < nthreads; t++)
		pthread_join(workers[t].thread, NULL);
	double took = seconds_since(start);

	int missing = violations == 0 && seconds >= 10 ? check_exercised() : 0;
	uint64_t ops = 0;
	for (int i = 0; i < NOPS; i++)
		ops += total.ops[i];
	uint64_t creations = total.creations[0] + total.creations[1] + total.creations[2];
	uint64_t failures = total.failures[0] + total.failures[1] + total.failures[2];
	uint64_t timeouts = total.timeouts[0] + total.timeouts[1] + total.timeouts[2];
	printf("stress: %s: %.1f s, %d+%d threads, %" PRIu32 " keys, seed %" PRIu64 ", %" PRIu64
	       " rounds, %" PRIu64 " ops (get %" PRIu64 ", get_until %" PRIu64 ", peek %" PRIu64
	       ", forget %" PRIu64 ", foreach %" PRIu64 ", count %" PRIu64 "), %" PRIu64
	       " creations, %" PRIu64 " failures injected, %" PRIu64 " waits, %" PRIu64
	       " timeouts, %" PRIu64 " forgets found an entry, %" PRIu64
	       " overlapping creations after a forget; guarded: %" PRIu64 " guards (%" PRIu64
	       " nested), %" PRIu64 " gets, %" PRIu64 " peeks, %" PRIu64 " refs (%" PRIu64
	       " released by another thread), %" PRIu64 " forgets, %" PRIu64 " creations, %" PRIu64
	       " evictions, %" PRIu64 " expirations, %" PRIu64 " refreshes, %" PRIu64
	       " destroyed, %" PRIu64 " objects re-checked, %" PRIu64 " remembered failures, %" PRIu64
	       " barriers (%" PRIu64 " in a guard), %" PRIu64 " -EPERM; %u violations\n",
	       violations == 0 && missing == 0 ? "ok" : "FAILED", took, nold, nthreads - nold, nkeys,
	       seed, total_rounds, ops, total.ops[OP_GET], total.ops[OP_GET_UNTIL], total.ops[OP_PEEK],
	       total.ops[OP_FORGET], total.ops[OP_FOREACH], total.ops[OP_COUNT], creations, failures,
	       total_waits, timeouts, total.forgets_found, total.overlaps, total.guards,
	       total.nested_guards, total.gops[G_GET] + total.gops[G_GET_UNTIL], total.gops[G_PEEK],
	       total.gops[G_REF], total.refs_received, total.gops[G_FORGET], total_guarded.creations,
	       total_guarded.evictions, total_guarded.expirations, total_guarded.refreshes,
	       total_guarded.destroyed, total.rechecked, total.remembered, total.gops[G_BARRIER],
	       total.barriers_in_guard, total.gops[G_EPERM], atomic_load(&violations));
	return violations == 0 && missing == 0 ? 0 : 1;
}
