"""Key types the tests share (imported by name: pytest puts this folder on
sys.path, as it has no __init__.py)."""


class ValueKey:
    """A user type with its own == and hash, by value: a key the module
    cannot encode, so it goes through the class's table of interned keys."""

    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        return isinstance(other, ValueKey) and other.v == self.v

    def __hash__(self):
        return hash(self.v)
