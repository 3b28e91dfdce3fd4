# The behaviours that the original pure-Python `mementos` 1.x tests check,
# run against the C module (a drop-in replacement), plus the one documented
# difference: keys are per class.
import collections.abc
import inspect

import pytest

import mementos
from mementos import MementoMetaclass, memento_factory, with_metaclass


def test_exports():
    for name in ("MementoMetaclass", "memento_factory", "with_metaclass", "mementos",
                 "forget", "stats", "__version__"):
        assert hasattr(mementos, name), name
    assert isinstance(mementos.__version__, str)
    assert len(mementos.__version__.split(".")) == 3
    assert issubclass(MementoMetaclass, type)
    assert type(mementos.mementos) is MementoMetaclass


def test_one():
    class Thing(with_metaclass(MementoMetaclass, object)):
        def __init__(self, name):
            self.name = name

    t1 = Thing("one")
    t2 = Thing("one")
    assert t1 is t2
    assert t1.name == "one"
    assert Thing("two") is not t1

    # The call signature is part of the identity.
    o1 = Thing("lovely")
    o2 = Thing(name="lovely")
    assert o1 is not o2
    assert o1.name == o2.name == "lovely"
    assert Thing(name="lovely") is o2

    class OtherThing(with_metaclass(MementoMetaclass, object)):
        def __init__(self, name):
            self.name = name
            self.color = None
            self.weight = None

        def set(self, color=None, weight=None):
            self.color = color or self.color
            self.weight = weight or self.weight
            return self

    ot1 = OtherThing("one").set(color="blue")
    ot2 = OtherThing("one").set(weight=10)
    assert ot1 is ot2
    assert ot1.color == ot2.color == "blue"
    assert ot1.weight == ot2.weight == 10
    # Same arguments, another class: another identity.
    assert OtherThing("one") is not Thing("one")
    assert isinstance(Thing("one"), Thing) and not isinstance(Thing("one"), OtherThing)


def test_simplified_base_class():
    class Thing(mementos.mementos):
        def __init__(self, name):
            self.name = name

    assert type(Thing) is MementoMetaclass
    assert Thing("x") is Thing("x")
    assert Thing("x") is not Thing("y")
    assert Thing("y").name == "y"
    # The ready-made base is memoizing itself, and distinct from its subclass.
    assert mementos.mementos() is mementos.mementos()
    assert mementos.mementos() is not Thing("x")


def test_with_metaclass_default_base_is_object():
    Base = with_metaclass(MementoMetaclass)
    assert type(Base) is MementoMetaclass
    assert Base.__bases__ == (object,)

    class Thing(Base):
        def __init__(self, n):
            self.n = n

    assert Thing(1) is Thing(1)
    assert Thing(1) is not Thing(2)


def test_with_metaclass_tuple_of_bases():
    class A:
        def a(self):
            return "a"

    class B:
        def b(self):
            return "b"

    Base = with_metaclass(MementoMetaclass, (A, B))
    assert type(Base) is MementoMetaclass
    assert Base.__bases__ == (A, B)

    class Thing(Base):
        def __init__(self, n):
            self.n = n

    t = Thing(3)
    assert t is Thing(3)
    assert t is not Thing(4)
    assert isinstance(t, A) and isinstance(t, B)
    assert (t.a(), t.b(), t.n) == ("a", "b", 3)
    assert Thing.__mro__[-3:] == (A, B, object)


def test_with_metaclass_single_class_base():
    class A:
        pass

    Base = with_metaclass(MementoMetaclass, A)
    assert Base.__bases__ == (A,)

    class Thing(Base):
        def __init__(self, n):
            self.n = n

    assert Thing(1) is Thing(1) and isinstance(Thing(1), A)


def test_inline_metaclass():
    class Thing(MementoMetaclass("NewBase", (object,), {})):
        def __init__(self, name):
            self.name = name

    assert type(Thing) is MementoMetaclass
    t1 = Thing("one")
    assert t1 is Thing("one")
    assert t1 is not Thing("two")
    assert t1 is not Thing(name="one")


def test_subclass_has_its_own_instances():
    class Base(mementos.mementos):
        def __init__(self, n):
            self.n = n

    class Sub(Base):
        pass

    assert Sub(1) is Sub(1)
    assert Sub(1) is not Base(1)
    assert type(Sub(1)) is Sub and type(Base(1)) is Base


def test_memento_factory_id_keys():
    IdTracker = memento_factory("IdTracker", lambda cls, args, kwargs: (cls, id(args[0])))
    assert issubclass(IdTracker, MementoMetaclass)
    assert IdTracker.__name__ == "IdTracker"

    class IdTrack(with_metaclass(IdTracker, object)):
        def __init__(self, name, a=0, b=0):
            self.name = name
            self.a = a
            self.b = b

    joe = "joe"
    i1 = IdTrack(joe)
    i2 = IdTrack(joe, 1, 4)
    assert i1 is i2
    # The first construction wins: the later arguments never reached __init__.
    assert (i2.a, i2.b) == (0, 0)
    mary = "mary"
    assert IdTrack(mary) is not i1
    assert IdTrack(mary).name == "mary"


def test_memento_factory_id_only_key():
    IdOnly = memento_factory("IdOnly", lambda cls, args, kwargs: id(args[0]))

    class IdTrack1(with_metaclass(IdOnly, object)):
        def __init__(self, name, *rest):
            self.name = name

    class IdTrack2(with_metaclass(IdOnly, object)):
        def __init__(self, name, *rest):
            self.name = name

    joe = "joe"
    a = IdTrack1(joe)
    assert IdTrack1(joe, 1, 2) is a
    b = IdTrack2(joe)
    assert IdTrack2(joe, 3) is b
    # By design (unlike the original's process-wide dict), keys are per
    # class: a key function that leaves cls out never mixes two classes.
    assert a is not b
    assert type(a) is IdTrack1 and type(b) is IdTrack2


def test_memento_factory_kwargs_key():
    KwMeta = memento_factory("KwMeta", lambda cls, args, kwargs: (cls, kwargs["b"]))

    class KwThing(with_metaclass(KwMeta, object)):
        def __init__(self, a=0, b=0):
            self.a = a
            self.b = b

    k1 = KwThing(a=1, b=2)
    assert KwThing(a=5, b=2) is k1
    assert KwThing(b=2) is k1
    assert k1.a == 1
    k3 = KwThing(a=1, b=3)
    assert k3 is not k1 and k3.b == 3
    # A key function that fails (no 'b') raises its own error.
    with pytest.raises(KeyError):
        KwThing(a=1)


def _hashable(value):
    """A hashable stand-in for value: mappings and sequences as sorted tuples."""
    if isinstance(value, collections.abc.Mapping):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(_hashable(v) for v in value)
    return value


def call_fingerprint(cls, args, kwargs):
    """The hash of the arguments as __init__ would bind them."""
    callargs = inspect.getcallargs(cls.__init__, None, *args, **kwargs)
    return hash(_hashable(callargs))


def test_call_fingerprint_keys():
    Perfect = memento_factory("Perfect", call_fingerprint)

    class PerfectCall(with_metaclass(Perfect, object)):
        def __init__(self, name, a=1, b=2, c=3, **extra):
            self.name = name
            self.a, self.b, self.c = a, b, c
            self.extra = extra

    p = PerfectCall("amy")
    assert PerfectCall("amy", b=2) is p
    assert PerfectCall(c=3, a=1, b=2, name="amy") is p
    assert PerfectCall("amy", 1, 2, 3) is p
    assert PerfectCall("amy", 1, 2, 4) is not p
    assert PerfectCall("bob") is not p
    assert PerfectCall("amy", opts={"x": [1, 2]}) is PerfectCall(opts={"x": [1, 2]}, name="amy")
    assert PerfectCall("amy", opts={"x": [1, 2]}) is not p
