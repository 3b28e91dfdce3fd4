# Threads: what the original library gets wrong.  Concurrent constructions of
# one identity run __init__ once and all get the one instance; a failed
# __init__ reaches every waiter as the same exception object; recursion in
# one thread or across threads raises RecursionError instead of hanging.
import random
import threading
import time

import pytest

import mementos


def delta(after, before):
    return {k: after[k] - before[k] for k in after}


def test_barrier_one_init_and_one_instance_per_key(run_threads):
    THREADS, KEYS, ROUNDS = 32, 100, 20
    inits = []

    class Slow(mementos.mementos):
        def __init__(self, round_, k):
            self.key = (round_, k)
            inits.append(self.key)
            time.sleep(0.010)

    before = mementos.stats(Slow)
    for round_ in range(ROUNDS):
        barrier = threading.Barrier(THREADS)

        def worker(seed):
            order = list(range(KEYS))
            random.Random(seed).shuffle(order)
            barrier.wait(10)
            return {k: Slow(round_, k) for k in order}

        got = run_threads([lambda s=s: worker(round_ * THREADS + s) for s in range(THREADS)])
        first = got[0]
        for k in range(KEYS):
            inst = first[k]
            assert type(inst) is Slow and inst.key == (round_, k)
            assert all(g[k] is inst for g in got), "threads got different instances of %r" % k
        # Still the same instance afterwards, from this thread.
        assert all(Slow(round_, k) is first[k] for k in range(KEYS))

    assert len(inits) == KEYS * ROUNDS
    assert len(set(inits)) == KEYS * ROUNDS, "an __init__ ran twice for one key"
    d = delta(mementos.stats(Slow), before)
    assert d["creations"] == KEYS * ROUNDS  # the number of distinct keys
    assert d["failures"] == 0 and d["deadlocks"] == 0 and d["destroyed"] == 0
    assert d["waits"] > 0  # constructions did coalesce
    assert d["misses"] >= d["creations"] + d["waits"]
    # Each call is a hit or a miss: threads' calls, then the checks above.
    assert d["hits"] + d["misses"] == (THREADS + 1) * KEYS * ROUNDS


class Boom(Exception):
    pass


def test_failed_init_shared_by_waiters_then_retried(run_threads):
    THREADS = 16
    inits = []
    raised = []
    fail = [True]

    class Fragile(mementos.mementos):
        def __init__(self, name):
            inits.append(threading.get_ident())
            # Wait until every other thread waits on this attempt (the waits
            # counter), at least 50 ms, at most 10 s, then fail.
            deadline = time.monotonic() + 10
            time.sleep(0.050)
            while (mementos.stats(Fragile)["waits"] - waits_before < THREADS - 1
                   and time.monotonic() < deadline):
                time.sleep(0.002)
            if fail[0]:
                exc = Boom("attempt %d" % len(inits))
                raised.append(exc)
                raise exc
            self.name = name

    before = mementos.stats(Fragile)
    waits_before = before["waits"]
    barrier = threading.Barrier(THREADS)

    def worker():
        barrier.wait(10)
        try:
            Fragile("x")
        except BaseException as e:  # noqa: B902 - compared below
            return e
        return None

    got = run_threads([worker] * THREADS)
    assert len(inits) == 1, "__init__ ran %d times" % len(inits)
    assert len(raised) == 1
    assert all(isinstance(e, Boom) for e in got), got
    assert all(e is raised[0] for e in got), "waiters got different exception objects"
    d = delta(mementos.stats(Fragile), before)
    assert d["creations"] == 1 and d["failures"] == 1 and d["waits"] == THREADS - 1

    # Nothing was cached: the next construction runs __init__ again.
    with pytest.raises(Boom) as info:
        Fragile("x")
    assert info.value is raised[1] and len(inits) == 2
    fail[0] = False
    ok = Fragile("x")
    assert ok.name == "x" and len(inits) == 3
    assert Fragile("x") is ok and len(inits) == 3
    assert mementos.stats(Fragile)["failures"] - before["failures"] == 2


def test_failed_init_exception_carries_traceback():
    class Bad(mementos.mementos):
        def __init__(self):
            raise Boom("here")

    with pytest.raises(Boom) as info:
        Bad()
    names = [entry.name for entry in info.traceback]
    assert "__init__" in names


def test_recursive_construction_raises_recursion_error():
    recurse = [True]
    inits = []

    class Selfish(mementos.mementos):
        def __init__(self, n):
            inits.append(n)
            if recurse[0]:
                Selfish(n)  # its own identity, still being built
            self.n = n

    before = mementos.stats(Selfish)
    with pytest.raises(RecursionError):
        Selfish(1)
    assert issubclass(RecursionError, RuntimeError)
    assert inits == [1]  # not recursing: the inner call did not run __init__
    d = delta(mementos.stats(Selfish), before)
    assert d["deadlocks"] == 1 and d["failures"] == 1 and d["creations"] == 1

    # Another identity is unaffected; this one was not cached.
    recurse[0] = False
    s = Selfish(1)
    assert s.n == 1 and Selfish(1) is s
    assert inits == [1, 1]


def test_indirect_recursion_in_one_thread():
    class Ping(mementos.mementos):
        def __init__(self, n):
            if n < 3:
                Ping(n + 1)
            else:
                Ping(0)  # closes the loop 0 -> 1 -> 2 -> 3 -> 0

    with pytest.raises(RecursionError):
        Ping(0)
    # None of the four was cached: each failed with the innermost error.
    assert all(mementos.forget(Ping, n) is False for n in range(4))


def test_cycle_across_two_threads_raises_instead_of_hanging(run_threads):
    cycle = [True]
    a_in, b_in = threading.Event(), threading.Event()

    class Cyc(mementos.mementos):
        def __init__(self, name):
            self.name = name
            if not cycle[0]:
                return
            # Both threads inside __init__ before either constructs the other.
            if name == "a":
                a_in.set()
                assert b_in.wait(10)
                self.other = Cyc("b")
            else:
                b_in.set()
                assert a_in.wait(10)
                self.other = Cyc("a")

    before = mementos.stats(Cyc)

    def build(name):
        try:
            return Cyc(name)
        except BaseException as e:  # noqa: B902 - checked below
            return e

    got = run_threads([lambda: build("a"), lambda: build("b")], timeout=20)
    assert any(isinstance(g, RecursionError) for g in got), got
    for name, g in zip("ab", got):
        assert isinstance(g, RecursionError) or (type(g) is Cyc and g.name == name), g
    assert mementos.stats(Cyc)["deadlocks"] - before["deadlocks"] >= 1

    cycle[0] = False
    a, b = Cyc("a"), Cyc("b")
    assert (a.name, b.name) == ("a", "b") and Cyc("a") is a and a is not b


def test_nested_construction_of_other_identities(run_threads):
    inits = []

    class Chain(mementos.mementos):
        def __init__(self, n):
            inits.append(n)
            time.sleep(0.001)
            self.n = n
            self.child = Chain(n - 1) if n > 0 else None

    # One thread: a chain of 30 links, each link a cached instance.
    top = Chain(30)
    node, n = top, 30
    while node is not None:
        assert node.n == n and Chain(n) is node
        node, n = node.child, n - 1
    assert sorted(inits) == list(range(31))

    # Eight threads build overlapping chains at once: each link once.
    inits.clear()
    barrier = threading.Barrier(8)

    def worker(i):
        barrier.wait(10)
        return Chain(100 + 40 - 3 * i)

    got = run_threads([lambda i=i: worker(i) for i in range(8)])
    assert sorted(inits) == list(range(31, 141)), "a link was built twice or not at all"
    for i, g in enumerate(got):
        assert g.n == 140 - 3 * i
        assert g is Chain(140 - 3 * i)
        assert g.child is Chain(139 - 3 * i)


def test_forget_while_constructing(run_threads):
    KEYS = 10
    inits = []

    class Item(mementos.mementos):
        def __init__(self, k):
            inits.append(k)
            self.k = k
            if k % 3 == 0:
                time.sleep(0.0005)  # some creations are in flight longer

    before = mementos.stats(Item)
    stop = threading.Event()
    forgotten = []

    def constructor(seed):
        rng = random.Random(seed)
        seen = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            k = rng.randrange(KEYS)
            inst = Item(k)
            assert type(inst) is Item and inst.k == k
            seen += 1
        return seen

    def forgetter():
        rng = random.Random(99)
        count = 0
        while not stop.is_set():
            if mementos.forget(Item, rng.randrange(KEYS)):
                count += 1
            if count % 16 == 0:
                time.sleep(0.0002)
        forgotten.append(count)
        return count

    f = threading.Thread(target=forgetter, daemon=True)
    f.start()
    try:
        counts = run_threads([lambda s=s: constructor(s) for s in range(4)])
    finally:
        stop.set()
        f.join(10)
    assert not f.is_alive(), "forget hangs"
    assert all(c > 0 for c in counts)
    n_forgotten = forgotten[0]
    assert n_forgotten > 0

    d = delta(mementos.stats(Item), before)
    assert d["creations"] == len(inits), "an __init__ ran without being counted, or not"
    assert d["failures"] == 0 and d["deadlocks"] == 0
    # A key is created once, then once more after each forget at most.
    assert KEYS <= d["creations"] <= KEYS + n_forgotten
    assert d["destroyed"] <= d["creations"]
    # Afterwards, one instance per key again.
    for k in range(KEYS):
        inst = Item(k)
        assert inst.k == k and Item(k) is inst


def test_stats_count_waits_and_hits(run_threads):
    class Waited(mementos.mementos):
        def __init__(self):
            # Until the other three wait on this construction (10 s at most):
            # a thread late past the barrier would otherwise find a hit.
            deadline = time.monotonic() + 10
            while (mementos.stats(Waited)["waits"] - before["waits"] < 3
                   and time.monotonic() < deadline):
                time.sleep(0.002)

    before = mementos.stats(Waited)
    barrier = threading.Barrier(4)

    def worker():
        barrier.wait(10)
        return Waited()

    got = run_threads([worker] * 4)
    assert all(g is got[0] for g in got)
    Waited()
    d = delta(mementos.stats(Waited), before)
    assert d["creations"] == 1
    assert d["waits"] == 3
    assert d["hits"] >= 1
    assert d["hits"] + d["misses"] == 5


class SlowKey:
    """A key type of its own (interned): its == and hash let other threads in."""

    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        time.sleep(0.0001)
        return isinstance(other, SlowKey) and other.v == self.v

    def __hash__(self):
        time.sleep(0)
        return hash(self.v)


def test_interned_keys_from_many_threads(run_threads):
    THREADS, KEYS = 16, 20
    inits = []

    class ByValue(mementos.mementos):
        def __init__(self, key):
            inits.append(key.v)
            time.sleep(0.002)
            self.v = key.v

    barrier = threading.Barrier(THREADS)

    def worker(seed):
        order = list(range(KEYS))
        random.Random(seed).shuffle(order)
        barrier.wait(10)
        # Each thread its own key objects, equal to the other threads'.
        return {k: ByValue(SlowKey(k)) for k in order}

    got = run_threads([lambda s=s: worker(s) for s in range(THREADS)])
    assert sorted(inits) == list(range(KEYS)), "an __init__ ran twice for one key"
    for k in range(KEYS):
        assert got[0][k].v == k
        assert all(g[k] is got[0][k] for g in got)
