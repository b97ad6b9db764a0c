"""
Read installed systemd units the way systemd does, as far as the package
tests need: settings, environment files and command lines.

The tests run the daemon from the command line the installed unit gives,
with the environment it would have, rather than a copy of either.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from attrs import frozen

#: C{$NAME} and C{${NAME}}, each a whole word of a command line.
_SPLIT_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_WORD_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@frozen
class Unit:
    """
    A unit file's settings.

    :ivar path: where it was read from.
    :ivar sections: for each section, each key's values in order (a key
        given several times has several; an empty assignment empties the
        list, as systemd does for list settings).
    """

    path: Path
    sections: Mapping[str, Mapping[str, tuple[str, ...]]]

    @classmethod
    def read(cls, path: Path) -> Unit:
        """
        Parse a unit file: sections, comments, and lines continued with a
        trailing backslash.
        """
        sections: dict[str, dict[str, list[str]]] = {}
        current: dict[str, list[str]] | None = None
        logical: list[str] = []
        lines: list[str] = []
        for raw in path.read_text().splitlines():
            if logical and raw.lstrip().startswith(("#", ";")):
                continue
            if raw.endswith("\\"):
                logical.append(raw[:-1])
                continue
            lines.append(" ".join([*logical, raw]).strip())
            logical = []
        for line in lines:
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("[") and line.endswith("]"):
                current = sections.setdefault(line[1:-1], {})
                continue
            assert current is not None, f"{path}: {line!r} outside a section"
            key, _, value = line.partition("=")
            values = current.setdefault(key.strip(), [])
            if value.strip():
                values.append(value.strip())
            else:
                values.clear()
        return cls(
            path,
            {
                name: {k: tuple(v) for k, v in keys.items()}
                for name, keys in sections.items()
            },
        )

    def values(self, key: str, section: str = "Service") -> tuple[str, ...]:
        """
        Every value of ``key``, in order (none if it is not set).
        """
        return self.sections.get(section, {}).get(key, ())

    def value(self, key: str, section: str = "Service") -> str | None:
        """
        The value of a single-valued ``key`` (its last assignment wins).
        """
        values = self.values(key, section)
        return values[-1] if values else None

    def words(self, key: str, section: str = "Service") -> list[str]:
        """
        The space-separated words of every assignment of ``key``, e.g. for
        C{SystemCallFilter=} or C{RestrictAddressFamilies=}.
        """
        return [word for value in self.values(key, section) for word in value.split()]


def specifiers(text: str, instance: str | None) -> str:
    """
    Replace the unit specifiers the multistore units use: C{%i}, C{%I}
    (the instance) and C{%%}.

    :raise AssertionError: for any other specifier.
    """

    def replace(match: re.Match[str]) -> str:
        letter = match.group(1)
        if letter == "%":
            return "%"
        assert letter in "iI", f"unexpected specifier %{letter} in {text!r}"
        assert instance is not None, f"%{letter} in a unit with no instance"
        return instance

    return re.sub(r"%(.)", replace, text)


def read_environment_file(path: Path) -> dict[str, str]:
    """
    The assignments of an C{EnvironmentFile=}: C{NAME=value} lines, values
    optionally quoted; blank lines and comments skipped.
    """
    environment: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        name, _, value = line.partition("=")
        words = shlex.split(value, comments=False, posix=True)
        environment[name.strip()] = " ".join(words)
    return environment


def service_environment(unit: Unit, instance: str | None = None) -> dict[str, str]:
    """
    The environment a service's commands get from its unit: C{Environment=}
    assignments, then the C{EnvironmentFile=}s in order (those that exist;
    a leading C{-} makes a missing one no error), which override them.
    """
    environment: dict[str, str] = {}
    for value in unit.values("Environment"):
        for assignment in shlex.split(specifiers(value, instance)):
            name, _, setting = assignment.partition("=")
            environment[name] = setting
    for value in unit.values("EnvironmentFile"):
        optional = value.startswith("-")
        path = Path(specifiers(value.removeprefix("-"), instance))
        if not path.exists():
            assert optional, f"{unit.path}: EnvironmentFile {path} is missing"
            continue
        environment.update(read_environment_file(path))
    return environment


def command_line(
    command: str, environment: Mapping[str, str], instance: str | None = None
) -> list[str]:
    """
    A unit's command line as systemd runs it: split into words like a
    shell would, then each C{$NAME} word replaced by the variable's
    value split at whitespace (no words if unset or empty) and each
    C{${NAME}} word by its value as one word.

    :raise AssertionError: for a command prefix (C{-}, C{@}, C{+}, ...) or
        a variable inside a word, which these tests do not interpret.
    """
    assert command[:1] not in "-@:+!|", f"unexpected command prefix in {command!r}"
    argv: list[str] = []
    for word in shlex.split(specifiers(command, instance)):
        if split := _SPLIT_VARIABLE.fullmatch(word):
            argv.extend(environment.get(split.group(1), "").split())
        elif whole := _WORD_VARIABLE.fullmatch(word):
            argv.append(environment.get(whole.group(1), ""))
        else:
            assert "$" not in word, f"a variable inside the word {word!r}"
            argv.append(word)
    return argv
