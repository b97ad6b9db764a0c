# -*- test-case-name: tests.unit.test_headers -*-
"""
An immutable, ordered list of HTTP header fields.

Pure code (parsing, signing, S3 semantics) works on L{HeaderList} rather than
Twisted's mutable C{Headers}: names are lower-case text, values are text
decoded as ISO-8859-1 exactly as received, so no byte is lost and a value can
be turned back into the bytes that were on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from attrs import field, frozen


def _normalise(fields: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((name.lower(), value) for name, value in fields)


@frozen
class HeaderList:
    """
    Header fields in the order they were given.

    :ivar fields: ``(name, value)`` pairs; names are lower-cased on creation.
    """

    fields: tuple[tuple[str, str], ...] = field(default=(), converter=_normalise)

    @classmethod
    def of(cls, *pairs: tuple[str, str], **named: str) -> HeaderList:
        """
        Build a list from pairs and keyword arguments (``content_type`` is
        ``content-type``).
        """
        extra = [(name.replace("_", "-"), value) for name, value in named.items()]
        return cls((*pairs, *extra))

    def get(self, name: str, default: str | None = None) -> str | None:
        """
        :return: the first value of ``name``, or ``default``.
        """
        name = name.lower()
        for key, value in self.fields:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """
        :return: every value of ``name``, in order.
        """
        name = name.lower()
        return [value for key, value in self.fields if key == name]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        name = name.lower()
        return any(key == name for key, _ in self.fields)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def names(self) -> set[str]:
        """
        :return: the set of header names present.
        """
        return {key for key, _ in self.fields}

    def with_(self, name: str, value: str) -> HeaderList:
        """
        :return: a copy where ``name`` has exactly the one value ``value``.
        """
        name = name.lower()
        kept = [(k, v) for k, v in self.fields if k != name]
        kept.append((name, value))
        return HeaderList(kept)

    def without(self, *names: str) -> HeaderList:
        """
        :return: a copy without any of ``names``.
        """
        drop = {n.lower() for n in names}
        return HeaderList([(k, v) for k, v in self.fields if k not in drop])

    def plus(self, other: Iterable[tuple[str, str]]) -> HeaderList:
        """
        :return: a copy with ``other``'s fields appended.
        """
        return HeaderList((*self.fields, *other))


#: The empty header list.
NO_HEADERS = HeaderList()
