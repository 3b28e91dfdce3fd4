"""Ctrl-C reaches the main thread while it waits for another thread's
construction: the wait ends with KeyboardInterrupt while that __init__ is
still running, and the construction goes on for everyone else."""
import _thread
import signal
import threading
import time

import pytest

import mementos


def wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def slow_class():
    started = threading.Event()
    release = threading.Event()

    class Slow(mementos.mementos):
        def __init__(self, key):
            started.set()
            release.wait(30)

    return Slow, started, release


def construct_in_thread(cls, key):
    made = []
    worker = threading.Thread(target=lambda: made.append(cls(key)))
    worker.start()
    return worker, made


def interrupt_once_waiting(cls, caught, release, signum=signal.SIGINT):
    """Once the main thread waits on cls, simulates the signal; lets the
    construction end when the main thread has caught its exception, or
    after 10 s if it never does (so that a failure does not hang)."""

    def run():
        wait_for(lambda: mementos.stats(cls)["waits"] >= 1)
        _thread.interrupt_main(signum)
        caught.wait(10)
        release.set()

    interrupter = threading.Thread(target=run)
    interrupter.start()
    return interrupter


def test_ctrl_c_ends_a_main_thread_wait_while_init_runs():
    Slow, started, release = slow_class()
    worker, made = construct_in_thread(Slow, 1)
    assert started.wait(10)
    caught = threading.Event()
    interrupter = interrupt_once_waiting(Slow, caught, release)
    during_init = None
    try:
        Slow(1)
    except KeyboardInterrupt:
        # Without the interrupt callback the wait lasts until release is
        # set, and KeyboardInterrupt comes only after Slow(1) returns.
        during_init = not release.is_set()
        caught.set()
    finally:
        release.set()
        interrupter.join()
        worker.join()
    assert during_init is True
    # The construction went on: one __init__, everyone gets its instance.
    assert Slow(1) is made[0]
    counts = mementos.stats(Slow)
    assert counts["creations"] == 1
    assert counts["failures"] == 0


def test_a_handler_that_does_not_raise_lets_the_wait_go_on():
    Slow, started, release = slow_class()
    worker, made = construct_in_thread(Slow, 2)
    assert started.wait(10)
    handled = threading.Event()

    def handler(signum, frame):
        handled.set()

    ran_while_waiting = []
    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        def run():
            wait_for(lambda: mementos.stats(Slow)["waits"] >= 1)
            _thread.interrupt_main(signal.SIGUSR1)
            ran_while_waiting.append(handled.wait(10))
            release.set()

        interrupter = threading.Thread(target=run)
        interrupter.start()
        got = Slow(2)
        interrupter.join()
    finally:
        signal.signal(signal.SIGUSR1, previous)
        release.set()
        worker.join()
    assert ran_while_waiting == [True]
    assert got is made[0]
    assert mementos.stats(Slow)["creations"] == 1


def test_other_threads_waits_are_not_cut_short():
    Slow, started, release = slow_class()
    worker, made = construct_in_thread(Slow, 3)
    assert started.wait(10)
    waiter, waited = construct_in_thread(Slow, 3)
    assert wait_for(lambda: mementos.stats(Slow)["waits"] >= 1)
    # Ctrl-C while another thread waits: the main thread, not waiting,
    # takes it; the waiter's slices (50 ms) go on.
    with pytest.raises(KeyboardInterrupt):
        _thread.interrupt_main()
        time.sleep(10)
    time.sleep(0.2)
    assert waiter.is_alive()
    release.set()
    worker.join()
    waiter.join()
    assert waited[0] is made[0]
    assert mementos.stats(Slow)["waits"] == 1
