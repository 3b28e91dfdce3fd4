# References over a million constructions, counted by a debug interpreter
# (python3-dbg: sys.gettotalrefcount); skipped by a release one, where
# test_refs.py checks individual objects' counts and tracemalloc instead.
import gc
import sys

import pytest

import mementos
from keytypes import ValueKey

pytestmark = pytest.mark.skipif(not hasattr(sys, "gettotalrefcount"),
                                reason="needs a debug interpreter (python3-dbg)")


class Refused(Exception):
    pass


def churn(cls, rounds):
    for i in range(rounds):
        cls("hit", 1)                      # a hit
        cls("hit", 2.0, k=(1, "x"))        # a hit with kwargs
        cls(ValueKey(7))                    # a hit on an interned key
        if i % 10 == 0:
            cls("new", i)                  # a miss
            mementos.forget(cls, "new", i)  # and its forget
        if i % 50 == 0:
            try:
                cls("fails", i)
            except Refused:
                pass


def test_a_million_constructions_leak_no_reference():
    class Counted(mementos.mementos):
        def __init__(self, *args, **kwargs):
            if args and args[0] == "fails":
                raise Refused(args[1])
            self.args = args

    # The failure ring (64 slots) and the caches warm up first.
    churn(Counted, 20_000)
    gc.collect()
    before = sys.gettotalrefcount()
    churn(Counted, 250_000)  # 750,000 hits, 25,000 misses and forgets, 5,000 failures
    gc.collect()
    after = sys.gettotalrefcount()
    assert after - before < 100, (before, after)
    stats = mementos.stats(Counted)
    assert stats["hits"] >= 3 * 270_000 - 3
    assert stats["destroyed"] >= 27_000 - 1  # forgotten instances were released
