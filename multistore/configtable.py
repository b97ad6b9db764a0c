# -*- test-case-name: tests.unit.test_config -*-
"""
The reader every configuration table is checked with.

L{Table} is a view of one table of the file that knows where it stands
(file, table, field) and reports each problem it finds to a shared
L{Problems}; nothing raises until the whole file has been read, when
L{ConfigError} lists every problem at once. Readers of the daemon's own
tables (L{multistore.configfile}) and of built-in middleware's tables use
it alike.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final


class ConfigError(Exception):
    """
    The configuration is invalid.

    :ivar source: the file (or other source) that was being loaded.
    :ivar problems: one line per problem, each naming its table and field.
    """

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(self.explain())

    def explain(self) -> str:
        """
        :return: a multi-line explanation fit for an operator.
        """
        count = len(self.problems)
        head = f"{self.source}: {count} problem{'s' if count != 1 else ''} found"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


class Problems:
    """
    Collects problems and warnings while a file is read.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{where}: {message}")


MISSING: Final = object()


class Table:
    """
    A view of one table of the file that reports problems with its location.
    """

    def __init__(
        self, data: Mapping[str, Any], where: str, problems: Problems, base: Path
    ) -> None:
        self._data = data
        self.where = where
        self.problems = problems
        self.base = base
        self._secrets: set[str] = set()

    def _field(self, name: str) -> str:
        return f"{self.where}, field '{name}'"

    def error(self, name: str, message: str) -> None:
        self.problems.error(self._field(name), message)

    def warn(self, name: str, message: str) -> None:
        self.problems.warn(self._field(name), message)

    def raw(self, name: str) -> Any:
        return self._data.get(name, MISSING)

    def has(self, name: str) -> bool:
        return name in self._data

    def string(self, name: str, default: Any = MISSING, *, secret: bool = False) -> Any:
        """
        A string field; for secrets, also ``name_file`` and ``name_env``.
        """
        value = self.raw(name)
        if secret:
            value = self._secret(name, value)
        if value is MISSING or value is None:
            if default is MISSING:
                self.error(name, "required, but missing")
                return ""
            return default
        if not isinstance(value, str):
            self.error(name, f"must be a string, not {describe(value)}")
            return "" if default is MISSING else default
        return value

    def _secret(self, name: str, inline: Any) -> Any:
        self._secrets.add(name)
        from_file = self.raw(f"{name}_file")
        from_env = self.raw(f"{name}_env")
        given = [x is not MISSING for x in (inline, from_file, from_env)]
        if sum(given) > 1:
            self.error(name, f"give only one of '{name}', '{name}_file', '{name}_env'")
            return inline
        if from_file is not MISSING:
            return read_secret_file(self, f"{name}_file", from_file)
        if from_env is not MISSING:
            if not isinstance(from_env, str) or from_env not in os.environ:
                self.error(
                    f"{name}_env", f"environment variable {from_env!r} is not set"
                )
                return ""
            return os.environ[from_env]
        return inline

    def boolean(self, name: str, default: Any = MISSING) -> Any:
        value = self.raw(name)
        if value is MISSING:
            if default is MISSING:
                self.error(name, "required, but missing")
                return False
            return default
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
        if not isinstance(value, bool):
            self.error(name, f"must be true or false, not {describe(value)}")
            return default if default is not MISSING else False
        return value

    def number(
        self,
        name: str,
        default: float | int,
        *,
        minimum: float = 0,
        integer: bool = False,
    ) -> Any:
        value = self.raw(name)
        if value is MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(name, f"must be a number, not {describe(value)}")
            return default
        if integer and not isinstance(value, int):
            self.error(name, "must be a whole number")
            return default
        if value < minimum:
            self.error(name, f"must be at least {minimum}, not {value}")
            return default
        return value

    def strings(self, name: str, *, allow_single: bool = False) -> tuple[str, ...]:
        value = self.raw(name)
        if value is MISSING or value is None:
            return ()
        if allow_single and isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(name, f"must be a list of strings, not {describe(value)}")
            return ()
        return tuple(value)

    def tables(self, name: str, label: str) -> list[Table]:
        value = self.raw(name)
        if value is MISSING:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.error(
                name, f"must be an array of tables ([[{name}]]), not {describe(value)}"
            )
            return []
        out = []
        for index, entry in enumerate(value, start=1):
            ident = entry.get(label)
            named = f" ({label} = {ident!r})" if isinstance(ident, str) else ""
            where = f"[[{_path(self.where, name)}]] #{index}{named}"
            out.append(Table(entry, where, self.problems, self.base))
        return out

    def table(self, name: str) -> Table:
        value = self.raw(name)
        where = f"[{_path(self.where, name)}]"
        if value is MISSING:
            value = {}
        elif not isinstance(value, dict):
            self.error(name, f"must be a table, not {describe(value)}")
            value = {}
        return Table(value, where, self.problems, self.base)

    def mapping(self) -> Mapping[str, Any]:
        return self._data

    def timestamp(self, name: str) -> datetime | None:
        value = self.raw(name)
        if value is MISSING or value is None:
            return None
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                self.error(name, f"not an RFC 3339 timestamp: {value!r}")
                return None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        self.error(name, f"must be an RFC 3339 timestamp, not {describe(value)}")
        return None

    def unknown(self, known: frozenset[str] | set[str]) -> None:
        """
        Report keys that are not part of this table's schema (the ``_file``
        and ``_env`` forms are known for secret fields only).
        """
        for key in self._data:
            base = re.sub(r"_(file|env)$", "", key)
            if key not in known and base not in self._secrets:
                self.error(key, "unknown field" + suggest(key, known))


def _path(where: str, name: str) -> str:
    # "[server]" + "x" -> "server.x"; top-level "" + "x" -> "x".
    inner = where.strip("[]").split(" ")[0].strip("[]")
    return f"{inner}.{name}" if inner else name


def describe(value: object) -> str:
    return {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def suggest(key: str, known: frozenset[str] | set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def read_secret_file(table: Table, name: str, value: Any) -> str:
    """
    Read a secret from the file named by ``value``.
    """
    if not isinstance(value, str):
        table.error(name, f"must be a path, not {describe(value)}")
        return ""
    path = table.base / value
    try:
        return path.read_text().rstrip("\r\n")
    except OSError as e:
        table.error(name, f"cannot read {path}: {e.strerror}")
        return ""
