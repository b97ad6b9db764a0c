# -*- test-case-name: tests.unit.test_s3_checksums -*-
"""
The checksums an S3 upload may carry, and the checks on their values.

A client names a checksum by algorithm (``x-amz-sdk-checksum-algorithm:
CRC32``) and sends its value in an ``x-amz-checksum-crc32`` header or
trailer: the base64 of the big-endian digest. L{new_checksum} computes one as
the bytes pass; L{check_content_md5} and L{check_checksum_value} refuse
malformed values with the error S3 gives.

CRC32, SHA1 and SHA256 come with Python (``zlib``, ``hashlib``). CRC32C and
CRC64NVME need a compiled library; the first of these that can be imported
and computes the published check value is used:

 - ``awscrt.checksums`` (PyPI ``awscrt``, Debian ``python3-awscrt``): CRC32C,
   and CRC64NVME in releases that have it;
 - ``crc32c`` (PyPI ``crc32c``, Debian ``python3-crc32c``): CRC32C;
 - ``google_crc32c`` (PyPI ``google-crc32c``), when built with its C
   extension: CRC32C;
 - ``crcmod`` (PyPI ``crcmod``, Debian ``python3-crcmod``), when built with
   its C extension: CRC32C and CRC64NVME.

Without one, L{new_checksum} returns ``None`` for that algorithm: the value
cannot be verified here, and is passed on unverified for the backend to
check. Pure-Python fallbacks are deliberately absent: they run at a few MB/s
and would stall the reactor on large uploads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import zlib
from collections.abc import Callable, Mapping
from types import MappingProxyType, ModuleType
from typing import Any, Final, Protocol

from attrs import define

from multistore.s3.errors import S3Error

#: The checksum algorithms S3 knows, by the names clients use (upper-case).
ALGORITHMS: Final = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")

#: The size in bytes of each algorithm's digest (and of MD5's, for
#: ``Content-MD5``).
DIGEST_SIZES: Final[Mapping[str, int]] = MappingProxyType(
    {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32, "MD5": 16}
)

#: The prefix of the header (or trailer) that carries a checksum value.
CHECKSUM_HEADER_PREFIX: Final = "x-amz-checksum-"

# The CRC check values: the CRC of the ASCII digits "123456789", as published
# in the CRC catalogues for CRC-32/ISCSI (CRC32C) and CRC-64/NVME.
_CHECK_INPUT: Final = b"123456789"
_CHECK_VALUES: Final = {"CRC32C": 0xE3069283, "CRC64NVME": 0xAE8B14860A799888}

# crcmod's polynomials, with the x^n term, and the all-ones final XOR.
_CRCMOD_PARAMETERS: Final = {
    "CRC32C": (0x11EDC6F41, 0xFFFFFFFF),
    "CRC64NVME": (0x1AD93D23594C93659, 0xFFFFFFFFFFFFFFFF),
}

#: Extends a CRC: ``extend(data, previous)`` is the CRC of everything before
#: plus ``data``, given the CRC ``previous`` of everything before (0 at the
#: start).
Extend = Callable[[bytes, int], int]

#: Imports a module by name, as L{importlib.import_module} does.
Importer = Callable[[str], ModuleType]


class Engine(Protocol):
    """
    What computes a digest: ``hashlib`` objects, and the CRC engines here.
    """

    def update(self, data: bytes, /) -> None:
        """
        Add bytes.
        """

    def digest(self) -> bytes:
        """
        :return: the digest of every byte added so far.
        """


@define
class _CrcEngine:
    """
    A running CRC over an L{Extend} function.
    """

    _extend: Extend
    _size: int
    _value: int = 0

    def update(self, data: bytes, /) -> None:
        """
        Add bytes.
        """
        if data:
            self._value = self._extend(data, self._value)

    def digest(self) -> bytes:
        """
        :return: the CRC, big-endian.
        """
        return self._value.to_bytes(self._size, "big")


@define
class Checksum:
    """
    A checksum being computed over bytes as they pass.

    :ivar algorithm: the algorithm, upper-case (``CRC32``, ``SHA256``,
        ``MD5``...).
    """

    algorithm: str
    _engine: Engine

    def update(self, data: bytes) -> None:
        """
        Add bytes.
        """
        self._engine.update(data)

    def digest(self) -> bytes:
        """
        :return: the digest of every byte added so far, big-endian.
        """
        return self._engine.digest()

    def b64digest(self) -> str:
        """
        :return: the digest as S3 writes it: base64, with padding.
        """
        return base64.b64encode(self.digest()).decode("ascii")

    def hexdigest(self) -> str:
        """
        :return: the digest in lower-case hex.
        """
        return self.digest().hex()


#: Makes a fresh engine for one algorithm.
EngineFactory = Callable[[], Engine]


def _crc_factory(extend: Extend, size: int) -> EngineFactory:
    return lambda: _CrcEngine(extend, size)


def _passes_check(algorithm: str, extend: Extend) -> bool:
    """
    :return: whether ``extend`` computes the published check value, fed in
        two pieces so that extending is checked too.
    """
    try:
        value = extend(_CHECK_INPUT[4:], extend(_CHECK_INPUT[:4], 0))
    except Exception:
        return False
    return value == _CHECK_VALUES[algorithm]


def _calling(function: Any) -> Extend:
    """
    :param function: a library's ``function(data, previous) -> int``.
    """
    return lambda data, previous: int(function(data, previous))


def _from_awscrt(import_module: Importer) -> dict[str, Extend]:
    checksums = import_module("awscrt.checksums")
    found: dict[str, Extend] = {}
    crc32c = getattr(checksums, "crc32c", None)
    if crc32c is not None:
        found["CRC32C"] = _calling(crc32c)
    crc64nvme = getattr(checksums, "crc64nvme", None)
    if crc64nvme is not None:
        found["CRC64NVME"] = _calling(crc64nvme)
    return found


def _from_crc32c(import_module: Importer) -> dict[str, Extend]:
    return {"CRC32C": _calling(import_module("crc32c").crc32c)}


def _from_google_crc32c(import_module: Importer) -> dict[str, Extend]:
    module = import_module("google_crc32c")
    if getattr(module, "implementation", None) != "c":
        return {}
    extend = module.extend
    return {"CRC32C": lambda data, previous: int(extend(previous, data))}


def _from_crcmod(import_module: Importer) -> dict[str, Extend]:
    # The pure-Python fallback crcmod uses without its extension is too slow.
    import_module("crcmod._crcfunext")
    make = import_module("crcmod").mkCrcFun
    found: dict[str, Extend] = {}
    for algorithm, (polynomial, xor_out) in _CRCMOD_PARAMETERS.items():
        found[algorithm] = _calling(
            make(polynomial, initCrc=0, rev=True, xorOut=xor_out)
        )
    return found


# In order of preference.
_LIBRARIES: Final[tuple[tuple[str, Callable[[Importer], dict[str, Extend]]], ...]] = (
    ("awscrt", _from_awscrt),
    ("crc32c", _from_crc32c),
    ("google-crc32c", _from_google_crc32c),
    ("crcmod", _from_crcmod),
)


def discover(
    import_module: Importer = importlib.import_module,
) -> Mapping[str, tuple[str, EngineFactory]]:
    """
    Find what can compute each algorithm here.

    Called once when this module is imported; tests call it with a stand-in
    importer to see how multistore behaves with or without a library.

    :param import_module: how modules are imported.
    :return: for each algorithm that can be computed, the library's name and
        a factory of its engine. Algorithms without a working library are
        absent.
    """
    found: dict[str, tuple[str, EngineFactory]] = {
        "CRC32": (
            "zlib",
            _crc_factory(lambda data, previous: zlib.crc32(data, previous), 4),
        ),
        "SHA1": ("hashlib", hashlib.sha1),
        "SHA256": ("hashlib", hashlib.sha256),
    }
    for name, load in _LIBRARIES:
        try:
            offered = load(import_module)
        except Exception:  # noqa: S112 - a missing or broken library is skipped
            continue
        for algorithm, extend in offered.items():
            if algorithm not in found and _passes_check(algorithm, extend):
                found[algorithm] = (
                    name,
                    _crc_factory(extend, DIGEST_SIZES[algorithm]),
                )
    return MappingProxyType(found)


_ENGINES: Mapping[str, tuple[str, EngineFactory]] = discover()


def canonical_algorithm(name: str) -> str | None:
    """
    :param name: an algorithm name in any case (``crc32c``, ``Sha256``).
    :return: the name upper-case if it is one of L{ALGORITHMS}, else ``None``.
    """
    upper = name.strip().upper()
    return upper if upper in ALGORITHMS else None


def _known(algorithm: str) -> str:
    canonical = canonical_algorithm(algorithm)
    if canonical is None:
        raise ValueError(f"not a checksum algorithm S3 knows: {algorithm!r}")
    return canonical


def new_checksum(algorithm: str) -> Checksum | None:
    """
    Start a checksum.

    :param algorithm: one of L{ALGORITHMS}, in any case.
    :return: a fresh checksum, or ``None`` if no library here computes
        ``algorithm`` (the value cannot be verified here).
    :raise ValueError: if ``algorithm`` is not one of L{ALGORITHMS}; use
        L{parse_algorithm} on what clients send.
    """
    canonical = _known(algorithm)
    found = _ENGINES.get(canonical)
    if found is None:
        return None
    _, factory = found
    return Checksum(canonical, factory())


def library_for(algorithm: str) -> str | None:
    """
    :param algorithm: one of L{ALGORITHMS}, in any case.
    :return: the name of what computes ``algorithm`` here (``zlib``,
        ``hashlib``, ``awscrt``, ``crc32c``, ``google-crc32c``, ``crcmod``),
        or ``None`` if nothing does.
    :raise ValueError: if ``algorithm`` is not one of L{ALGORITHMS}.
    """
    found = _ENGINES.get(_known(algorithm))
    return None if found is None else found[0]


def new_md5() -> Checksum:
    """
    :return: a fresh MD5, for checking ``Content-MD5``.
    """
    return Checksum("MD5", hashlib.md5(usedforsecurity=False))


def md5_b64(data: bytes) -> str:
    """
    :return: the ``Content-MD5`` value of ``data``: base64 of its MD5.
    """
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode(
        "ascii"
    )


def _decode_b64(value: str, size: int) -> bytes | None:
    try:
        raw = base64.b64decode(value.strip(" \t"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == size else None


def check_content_md5(value: str) -> bytes:
    """
    Check a ``Content-MD5`` value.

    :param value: the header's value.
    :return: the 16-byte digest it carries.
    :raise S3Error: ``InvalidDigest`` if it is not the base64 of 16 bytes.
    """
    raw = _decode_b64(value, 16)
    if raw is None:
        raise S3Error("InvalidDigest")
    return raw


def header_name(algorithm: str) -> str:
    """
    :param algorithm: one of L{ALGORITHMS}, in any case.
    :return: the header (or trailer) carrying its value, such as
        ``x-amz-checksum-crc32``.
    :raise ValueError: if ``algorithm`` is not one of L{ALGORITHMS}.
    """
    return CHECKSUM_HEADER_PREFIX + _known(algorithm).lower()


def algorithm_of(name: str) -> str | None:
    """
    :param name: a header or trailer name, in any case.
    :return: the algorithm whose value a ``x-amz-checksum-*`` header carries
        (``x-amz-checksum-crc32c`` -> ``CRC32C``), or ``None`` if ``name``
        is not such a header or names an unknown algorithm.
    """
    lower = name.strip().lower()
    if not lower.startswith(CHECKSUM_HEADER_PREFIX):
        return None
    return canonical_algorithm(lower[len(CHECKSUM_HEADER_PREFIX) :])


def parse_algorithm(value: str) -> str:
    """
    Read an ``x-amz-sdk-checksum-algorithm`` (or ``x-amz-checksum-algorithm``)
    value.

    :return: the algorithm, upper-case.
    :raise S3Error: ``InvalidRequest`` if it names no algorithm S3 knows.
    """
    canonical = canonical_algorithm(value)
    if canonical is None:
        raise S3Error(
            "InvalidRequest",
            "Checksum algorithm provided is unsupported. Please try again with "
            "any of the valid types: [" + ", ".join(sorted(ALGORITHMS)) + "]",
        )
    return canonical


def check_checksum_value(
    algorithm: str, value: str, *, trailing: bool = False
) -> bytes:
    """
    Check a checksum value as a client sent it.

    :param algorithm: one of L{ALGORITHMS}, in any case.
    :param value: the header's (or trailer's) value.
    :param trailing: whether it came in a trailer (the message says so).
    :return: the digest it carries.
    :raise S3Error: ``InvalidRequest`` if it is not the base64 of a digest
        of the algorithm's size.
    :raise ValueError: if ``algorithm`` is not one of L{ALGORITHMS}.
    """
    canonical = _known(algorithm)
    raw = _decode_b64(value, DIGEST_SIZES[canonical])
    if raw is None:
        where = "trailing header" if trailing else "header"
        raise S3Error(
            "InvalidRequest",
            f"Value for {header_name(canonical)} {where} is invalid.",
        )
    return raw


def digest_mismatch(algorithm: str) -> S3Error:
    """
    :param algorithm: one of L{ALGORITHMS}.
    :return: the error for a checksum that did not match the bytes.
    """
    return S3Error(
        "BadDigest",
        f"The {algorithm.upper()} you specified did not match the calculated checksum.",
    )
