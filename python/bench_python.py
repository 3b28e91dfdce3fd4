"""Memoized constructions from Python: the mementos module against a
pure-Python memoizing metaclass that does what the original mementos 1.x
does (a dict looked up under the key (cls,) + args + tuple(kwargs.items()),
type.__call__ on a miss; written here, not taken from it).

    PYTHONPATH=build/python python3 python/bench_python.py [--rounds N]

Prints CSV on stdout: impl,workload,threads,ns_per_call (median of the
rounds, all threads' calls together, wall time), and on stderr the ratio
reference/mementos per point.  Workload "hit": every call is a hit
(Thing("one") when it exists), each thread making CALLS calls after a
barrier; with the GIL, threads take turns, and the ns per call of all
threads together show what contention adds.  Workload "miss", one thread:
MISSES calls each with a new key, so each runs __init__ and stores the
instance; the garbage collector is off while they are timed (the instances
stay, and its passes over them would be most of the time, for both alike).
The instances of every round stay: later rounds run on larger tables, for
both alike.  A thread count given twice is one point (one median).
"""
import argparse
import gc
import itertools
import statistics
import sys
import threading
import time

import mementos

CALLS = 200_000
MISSES = 50_000


def reference_metaclass():
    cache = {}

    class Reference(type):
        def __call__(cls, *args, **kwargs):
            key = (cls,) + args + tuple(kwargs.items())
            try:
                return cache[key]
            except KeyError:
                made = type.__call__(cls, *args, **kwargs)
                cache[key] = made
                return made

    return Reference


def make_classes():
    class WithMementos(mementos.mementos):
        def __init__(self, name):
            self.name = name

    class WithReference(metaclass=reference_metaclass()):
        def __init__(self, name):
            self.name = name

    return {"mementos": WithMementos, "reference": WithReference}


def run(cls, threads):
    """Wall-clock ns per call, all threads' calls together."""
    cls("one")
    barrier = threading.Barrier(threads + 1)

    def worker():
        barrier.wait()
        for _ in range(CALLS):
            cls("one")
        barrier.wait()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter_ns()
    barrier.wait()
    took = time.perf_counter_ns() - start
    for t in pool:
        t.join()
    return took / (CALLS * threads)


def run_misses(cls, fresh):
    """ns per construction of a new identity, one thread."""
    keys = [next(fresh) for _ in range(MISSES)]
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for key in keys:
            cls(key)
        took = time.perf_counter_ns() - start
    finally:
        gc.enable()
    return took / MISSES


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", default="1,2,4")
    opts = parser.parse_args()
    counts = [int(t) for t in opts.threads.split(",")]
    classes = make_classes()
    fresh = itertools.count()
    points = [("hit", threads) for threads in counts] + [("miss", 1)]
    results = {}
    for _ in range(opts.rounds):
        # Both implementations in each round, so that load falls on both.
        for workload, threads in points:
            for name, cls in classes.items():
                took = run(cls, threads) if workload == "hit" else run_misses(cls, fresh)
                results.setdefault((name, workload, threads), []).append(took)
    print("impl,workload,threads,ns_per_call")
    for workload, threads in points:
        for name in classes:
            print(f"{name},{workload},{threads},"
                  f"{statistics.median(results[(name, workload, threads)]):.1f}")
    for workload, threads in points:
        ratio = statistics.median(results[("reference", workload, threads)]) / statistics.median(
            results[("mementos", workload, threads)])
        print(f"# {workload}, {threads} thread(s): mementos {ratio:.2f}x as fast as the reference",
              file=sys.stderr)


if __name__ == "__main__":
    main()
