"""os.fork while another thread runs an __init__: the child gets its own
copy of the cache, keeps the instances made before the fork, and makes
again the instance that was being made (it does not wait for a thread it
does not have); the parent goes on as before."""
import _thread
import os
import signal
import threading
import time

import pytest

import mementos


def wait_for_child(pid, seconds=20.0):
    """The child's exit status, or None (and the child killed) if it hangs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_another_thread_constructs():
    parent = os.getpid()
    started = threading.Event()
    release = threading.Event()
    inits = []

    class Thing(mementos.mementos):
        def __init__(self, key):
            inits.append((os.getpid(), key))
            if os.getpid() == parent and key == "slow":
                started.set()
                release.wait(30)

    before = Thing("before")
    made = []
    worker = threading.Thread(target=lambda: made.append(Thing("slow")))
    worker.start()
    try:
        assert started.wait(10)
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code alone
            code = 1
            try:
                slow = Thing("slow")  # made again here, not awaited
                ok = (slow is Thing("slow") and Thing("before") is before
                      and inits.count((os.getpid(), "slow")) == 1
                      and Thing("new") is Thing("new"))
                code = 0 if ok else 2
            finally:
                os._exit(code)
        status = wait_for_child(pid)
    finally:
        release.set()
        worker.join()
    assert status is not None, "the child hung"
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    # The parent: the worker's construction finished as usual.
    assert Thing("slow") is made[0]
    assert inits.count((parent, "slow")) == 1
    assert Thing("before") is before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_signal_handler_that_forks_while_the_main_thread_waits():
    """The handler runs inside the main thread's wait (Ctrl-C support) and
    forks: the child's wait makes the instance itself, since the thread it
    waited on is not in the child; the parent's wait goes on."""
    parent = os.getpid()
    started = threading.Event()
    release = threading.Event()

    class Slow(mementos.mementos):
        def __init__(self, key):
            self.pid = os.getpid()
            if self.pid == parent:
                started.set()
                release.wait(30)

    made = []
    worker = threading.Thread(target=lambda: made.append(Slow(1)))
    worker.start()
    children = []
    statuses = []

    def handler(signum, frame):
        pid = os.fork()
        if pid:
            children.append(pid)

    def interrupt_then_release():
        """Signals the waiting main thread; the worker's __init__ ends only
        once the child has answered (or hung for 20 s)."""
        try:
            while mementos.stats(Slow)["waits"] < 1:
                time.sleep(0.001)
            _thread.interrupt_main(signal.SIGUSR1)
            deadline = time.monotonic() + 10
            while not children and time.monotonic() < deadline:
                time.sleep(0.001)
            if children:
                statuses.append(wait_for_child(children[0]))
        finally:
            release.set()

    previous = signal.signal(signal.SIGUSR1, handler)
    interrupter = threading.Thread(target=interrupt_then_release)
    try:
        assert started.wait(10)
        interrupter.start()
        got = Slow(1)
        if os.getpid() != parent:  # the child
            os._exit(0 if got.pid == os.getpid() else 2)
    finally:
        if os.getpid() == parent:
            release.set()
            interrupter.join()
            worker.join()
            signal.signal(signal.SIGUSR1, previous)
    assert children, "the handler never ran"
    assert statuses[0] is not None, "the child hung"
    assert os.WIFEXITED(statuses[0]) and os.WEXITSTATUS(statuses[0]) == 0, statuses[0]
    assert got is made[0]
