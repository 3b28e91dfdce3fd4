"""Memoized constructions from Python: the mementos module against a
pure-Python memoizing metaclass that does what the original mementos 1.x
does (a dict looked up under the key (cls,) + args + tuple(kwargs.items()),
type.__call__ on a miss; written here, not taken from it).

    PYTHONPATH=build/python python3 python/bench_python.py [--rounds N]

Prints CSV on stdout: impl,threads,ns_per_call (median of the rounds, all
threads' calls together, wall time), and the ratio reference/mementos per
thread count.  Every call is a hit (Thing("one") when it exists), each
thread making CALLS calls after a barrier.  With the GIL, threads take
turns: the ns per call of all threads together show what contention adds.
"""
import argparse
import statistics
import sys
import threading
import time

import mementos

CALLS = 200_000


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", default="1,2,4")
    opts = parser.parse_args()
    counts = [int(t) for t in opts.threads.split(",")]
    classes = make_classes()
    results = {}
    for _ in range(opts.rounds):
        # Both implementations in each round, so that load falls on both.
        for threads in counts:
            for name, cls in classes.items():
                results.setdefault((name, threads), []).append(run(cls, threads))
    print("impl,threads,ns_per_call")
    for (name, threads), values in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"{name},{threads},{statistics.median(values):.1f}")
    for threads in counts:
        ratio = statistics.median(results[("reference", threads)]) / statistics.median(
            results[("mementos", threads)])
        print(f"# {threads} thread(s): mementos {ratio:.2f}x as fast as the reference",
              file=sys.stderr)


if __name__ == "__main__":
    main()
