# Regressions from a review of the module's C code: each of these failed,
# crashed or aborted before its fix.
import decimal
import fractions

import pytest

import mementos
from keytypes import ValueKey


def test_an_int_subclass_abs_says_nothing_of_its_key():
    class Evil(int):
        def __abs__(self):
            return "not an int"   # once read as the magnitude: an abort

    class Lying(int):
        def __abs__(self):
            return 2 ** 70        # once taken for the value: a wrong instance

    class T(mementos.mementos):
        def __init__(self, x):
            self.x = x

    assert T(Evil(2 ** 70)).x == 2 ** 70
    assert T(Lying(2 ** 70 + 1)) is not T(2 ** 70)
    assert T(Lying(2 ** 70 + 1)) is T(2 ** 70 + 1)


def test_a_metaclass_that_ignores_writes_still_memoizes():
    class Frozen(mementos.MementoMetaclass):
        def __setattr__(cls, name, value):
            pass                  # the record once died at once: a crash

    class T(metaclass=Frozen):
        def __init__(self, x):
            self.x = x

    for i in range(3):
        assert T(i) is T(i) and T(i).x == i


def test_a_key_function_that_drops_the_record_mid_call():
    def keyfunc(cls, args, kwargs):
        if "__mementos_class__" in cls.__dict__:
            delattr(cls, "__mementos_class__")   # once used freed memory
        return ValueKey(args[0])

    class T(metaclass=mementos.memento_factory("Dropping", keyfunc)):
        def __init__(self, x):
            self.x = x

    assert T(0).x == 0
    assert T(1).x == 1


def test_the_creator_raises_its_own_exception_whatever_fails_meanwhile():
    class Fails(mementos.mementos):
        def __init__(self, i):
            raise KeyError(i)

    class Key(tuple):
        def __del__(self):
            for i in range(100):   # more failures than the ring keeps
                try:
                    Fails(i)
                except KeyError:
                    pass

    class T(metaclass=mementos.memento_factory("Own", lambda cls, args, kw: Key(args))):
        def __init__(self, x):
            raise ValueError("the real error")

    with pytest.raises(ValueError, match="the real error"):
        T(1)


@pytest.mark.parametrize("number", [
    decimal.Decimal(2 ** 53 + 1),
    fractions.Fraction(2 ** 53 + 1),
    decimal.Decimal(2 ** 64 + 1),
    fractions.Fraction(-(2 ** 70) - 3),
])
def test_an_integral_number_past_float_precision_is_its_int(number):
    class T(mementos.mementos):
        def __init__(self, x):
            self.x = x

    assert {int(number): 1}.get(number) == 1       # a dict's verdict
    assert T(number) is T(int(number))


def test_an_interrupt_in_a_key_conversion_is_not_swallowed():
    class Interrupting:
        def __float__(self):
            raise KeyboardInterrupt

        def __hash__(self):
            return 1

    class T(mementos.mementos):
        def __init__(self, x):
            self.x = x

    with pytest.raises(KeyboardInterrupt):
        T(Interrupting())


def test_stats_and_forget_of_a_class_never_constructed_make_nothing():
    class Untouched(mementos.mementos):
        pass

    assert mementos.forget(Untouched, 1) is False
    assert all(v == 0 for v in mementos.stats(Untouched).values())
    assert "__mementos_class__" not in Untouched.__dict__


def test_the_base_class_names_its_module():
    assert mementos.mementos.__module__ == "mementos"
