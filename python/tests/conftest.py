# Shared helpers for the suite of the `mementos` extension module.
#
# Run from the build tree:
#   PYTHONPATH=<build>/python /usr/bin/python3 -m pytest -q -p no:cacheprovider python/tests
import os
import threading

import pytest

import mementos


def pytest_report_header(config):
    return "mementos %s from %s" % (mementos.__version__, os.path.abspath(mementos.__file__))


@pytest.fixture
def make_class():
    """make_class(name="Thing", meta=None, record=True): a fresh memoizing
    class whose __init__ stores its arguments (self.args, self.kwargs) and,
    when record is true, appends them to the class's `inits` list, so that a
    test can count how often __init__ ran."""

    def make(name="Thing", meta=None, record=True):
        base = mementos.mementos if meta is None else mementos.with_metaclass(meta)

        def __init__(self, *args, **kwargs):
            self.args = args
            self.kwargs = kwargs
            if record:
                type(self).inits.append((args, kwargs))

        return type(base)(name, (base,), {"__init__": __init__, "inits": []})

    return make


def _run_threads(targets, timeout=30.0):
    """Starts one daemon thread per callable, joins them with a timeout and
    fails the test if one is still alive (a hang) or raised something that
    the callable did not catch itself.  Returns the callables' results."""
    results = [None] * len(targets)
    errors = []

    def wrap(i, fn):
        try:
            results[i] = fn()
        except BaseException as e:  # noqa: B902 - reported below
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(i, fn), daemon=True)
               for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    alive = [t for t in threads if t.is_alive()]
    assert not alive, "%d thread(s) still running after %.0f s: a hang" % (len(alive), timeout)
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def run_threads():
    """The helper above, as a fixture."""
    return _run_threads
