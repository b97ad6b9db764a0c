"""
Tests for L{multistore.s3.checksums}.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import zlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from botocore import httpchecksum
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from multistore.s3 import checksums
from multistore.s3.checksums import (
    ALGORITHMS,
    DIGEST_SIZES,
    algorithm_of,
    canonical_algorithm,
    check_checksum_value,
    check_content_md5,
    digest_mismatch,
    discover,
    header_name,
    library_for,
    md5_b64,
    new_checksum,
    new_md5,
    parse_algorithm,
)
from multistore.s3.errors import S3Error

# The published check values: each CRC of the ASCII digits "123456789".
CHECK_INPUT = b"123456789"
CHECK_VALUES = {
    "CRC32": 0xCBF43926,
    "CRC32C": 0xE3069283,
    "CRC64NVME": 0xAE8B14860A799888,
}
# FIPS 180 examples: the digests of "abc".
ABC_DIGESTS = {
    "SHA1": "a9993e364706816aba3e25717850c26c9cd0d89d",
    "SHA256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
}


def reference_crc(reflected_polynomial: int, width: int) -> Callable[[bytes, int], int]:
    """
    A slow, plain CRC for testing: reflected, all-ones start and final XOR
    (the shape CRC32, CRC32C and CRC64NVME share).

    :return: ``extend(data, previous)`` as L{checksums.Extend} describes.
    """
    table = []
    for index in range(256):
        value = index
        for _ in range(8):
            value = (value >> 1) ^ reflected_polynomial if value & 1 else value >> 1
        table.append(value)
    mask = (1 << width) - 1

    def extend(data: bytes, previous: int) -> int:
        crc = previous ^ mask
        for byte in data:
            crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        return crc ^ mask

    return extend


REFERENCE = {
    "CRC32": reference_crc(0xEDB88320, 32),
    "CRC32C": reference_crc(0x82F63B78, 32),
    "CRC64NVME": reference_crc(0x9A6C9329AC4BC9B5, 64),
}


def reference_b64(algorithm: str, data: bytes) -> str:
    """
    :return: the S3 value of ``data``'s checksum, computed without
        L{checksums}.
    """
    if algorithm in REFERENCE:
        raw = REFERENCE[algorithm](data, 0).to_bytes(DIGEST_SIZES[algorithm], "big")
    else:
        raw = hashlib.new(algorithm.lower(), data).digest()
    return base64.b64encode(raw).decode("ascii")


def _module(name: str, **attributes: Any) -> ModuleType:
    module = ModuleType(name)
    for key, value in attributes.items():
        setattr(module, key, value)
    return module


def fake_awscrt(with_crc64nvme: bool = True) -> dict[str, ModuleType]:
    """
    A stand-in for ``awscrt.checksums``, computing with L{REFERENCE}.
    """
    attributes: dict[str, Any] = {
        "crc32c": lambda data, previous_crc32c=0: REFERENCE["CRC32C"](
            data, previous_crc32c
        )
    }
    if with_crc64nvme:
        attributes["crc64nvme"] = lambda data, previous_crc64nvme=0: REFERENCE[
            "CRC64NVME"
        ](data, previous_crc64nvme)
    return {"awscrt.checksums": _module("awscrt.checksums", **attributes)}


def fake_crc32c() -> dict[str, ModuleType]:
    """
    A stand-in for PyPI ``crc32c``.
    """
    return {
        "crc32c": _module(
            "crc32c", crc32c=lambda data, value=0: REFERENCE["CRC32C"](data, value)
        )
    }


def fake_google_crc32c(implementation: str = "c") -> dict[str, ModuleType]:
    """
    A stand-in for ``google_crc32c``.
    """
    return {
        "google_crc32c": _module(
            "google_crc32c",
            implementation=implementation,
            extend=lambda crc, chunk: REFERENCE["CRC32C"](chunk, crc),
        )
    }


def fake_crcmod(extension: bool = True) -> dict[str, ModuleType]:
    """
    A stand-in for ``crcmod``: ``mkCrcFun`` knows the two polynomials
    multistore asks for.
    """
    by_polynomial = {
        0x11EDC6F41: REFERENCE["CRC32C"],
        0x1AD93D23594C93659: REFERENCE["CRC64NVME"],
    }

    def mkCrcFun(
        poly: int,
        initCrc: int,
        rev: bool,
        xorOut: int,
    ) -> Callable[[bytes, int], int]:
        assert (initCrc, rev) == (0, True)
        assert xorOut == (1 << (poly.bit_length() - 1)) - 1
        return by_polynomial[poly]

    modules = {"crcmod": _module("crcmod", mkCrcFun=mkCrcFun)}
    if extension:
        modules["crcmod._crcfunext"] = _module("crcmod._crcfunext")
    return modules


def importer(*groups: Mapping[str, ModuleType]) -> Callable[[str], ModuleType]:
    """
    :return: an importer that finds only the modules in ``groups``.
    """
    modules: dict[str, ModuleType] = {}
    for group in groups:
        modules.update(group)

    def import_module(name: str) -> ModuleType:
        if name not in modules:
            raise ModuleNotFoundError(name)
        return modules[name]

    return import_module


def nothing_importable(name: str) -> ModuleType:
    """
    An importer that finds no module at all.
    """
    raise ModuleNotFoundError(name)


def _real_library(algorithm: str) -> bool:
    """
    :return: whether some library multistore knows computes ``algorithm``
        in this environment, found independently of L{discover}.
    """
    attempts: list[tuple[str, Callable[[ModuleType], bool]]] = [
        ("awscrt.checksums", lambda m: hasattr(m, algorithm.lower())),
        ("crcmod._crcfunext", lambda m: True),
    ]
    if algorithm == "CRC32C":
        attempts += [
            ("crc32c", lambda m: hasattr(m, "crc32c")),
            ("google_crc32c", lambda m: getattr(m, "implementation", "") == "c"),
        ]
    for name, usable in attempts:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if usable(module):
            return True
    return False


class NewChecksumTests(SynchronousTestCase):
    """
    Tests for L{new_checksum} in the environment the tests run in.
    """

    def test_check_values(self) -> None:
        """
        Every algorithm computes its published check value, or (CRC32C and
        CRC64NVME only) is reported as not computable here when, and only
        when, no library for it can be imported.
        """
        for algorithm in ALGORITHMS:
            checksum = new_checksum(algorithm)
            if algorithm in ("CRC32C", "CRC64NVME") and not _real_library(algorithm):
                self.assertIsNone(checksum, algorithm)
                self.assertIsNone(library_for(algorithm))
                continue
            assert checksum is not None, algorithm
            self.assertEqual(checksum.algorithm, algorithm)
            if algorithm in CHECK_VALUES:
                checksum.update(CHECK_INPUT[:3])
                checksum.update(CHECK_INPUT[3:])
                self.assertEqual(
                    int.from_bytes(checksum.digest(), "big"),
                    CHECK_VALUES[algorithm],
                    algorithm,
                )
            else:
                checksum.update(b"abc")
                self.assertEqual(checksum.hexdigest(), ABC_DIGESTS[algorithm])

    def test_builtin_algorithms(self) -> None:
        """
        CRC32, SHA1 and SHA256 are always computed, by Python's own modules.
        """
        self.assertEqual(
            [library_for(a) for a in ("CRC32", "SHA1", "SHA256")],
            ["zlib", "hashlib", "hashlib"],
        )

    def test_case_insensitive(self) -> None:
        """
        Algorithm names are accepted in any case.
        """
        checksum = new_checksum("crc32")
        assert checksum is not None
        self.assertEqual(checksum.algorithm, "CRC32")
        self.assertEqual(library_for("Sha256"), "hashlib")

    def test_unknown(self) -> None:
        """
        An algorithm S3 does not know is a programming error here.
        """
        self.assertRaises(ValueError, new_checksum, "MD4")
        self.assertRaises(ValueError, library_for, "xxhash64")

    def test_empty_values(self) -> None:
        """
        The checksums of no bytes, as S3 shows them.
        """
        expected = {
            "CRC32": "AAAAAA==",
            "SHA1": "2jmj7l5rSw0yVb/vlWAYkK/YBwk=",
            "SHA256": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        }
        for algorithm, value in expected.items():
            checksum = new_checksum(algorithm)
            assert checksum is not None
            self.assertEqual(checksum.b64digest(), value)

    @settings(deadline=None)
    @given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=4))
    def test_matches_botocore(self, data: bytes, cuts: list[int]) -> None:
        """
        Over random bytes fed in random pieces, each checksum computable here
        equals botocore's own (or, where botocore lacks the library, the
        reference CRC).
        """
        pieces = _split(data, cuts)
        botocore_classes = {
            "CRC32": httpchecksum.Crc32Checksum,
            "SHA1": httpchecksum.Sha1Checksum,
            "SHA256": httpchecksum.Sha256Checksum,
        }
        crt = getattr(httpchecksum, "_CRT_CHECKSUM_CLS", {})
        for algorithm in ALGORITHMS:
            checksum = new_checksum(algorithm)
            if checksum is None:
                continue
            for piece in pieces:
                checksum.update(piece)
            cls = botocore_classes.get(algorithm) or crt.get(algorithm.lower())
            if cls is not None:
                theirs = cls()
                theirs.update(data)
                self.assertEqual(checksum.b64digest(), theirs.b64digest(), algorithm)
            self.assertEqual(
                checksum.b64digest(), reference_b64(algorithm, data), algorithm
            )


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    pieces = []
    start = 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


class DiscoverTests(SynchronousTestCase):
    """
    Tests for L{discover}: which library computes CRC32C and CRC64NVME, and
    what happens when none can.
    """

    def _use(self, *groups: Mapping[str, ModuleType]) -> None:
        """
        Make L{new_checksum} use what L{discover} finds among ``groups``.
        """
        self.patch(checksums, "_ENGINES", discover(importer(*groups)))

    def test_nothing_importable(self) -> None:
        """
        Without a library, CRC32C and CRC64NVME cannot be computed:
        L{new_checksum} says so with ``None``; the rest still work.
        """
        self.patch(checksums, "_ENGINES", discover(nothing_importable))
        self.assertIsNone(new_checksum("CRC32C"))
        self.assertIsNone(new_checksum("CRC64NVME"))
        self.assertIsNone(library_for("CRC32C"))
        for algorithm in ("CRC32", "SHA1", "SHA256"):
            self.assertIsNotNone(new_checksum(algorithm))

    def _assert_computes(self, algorithm: str, library: str) -> None:
        self.assertEqual(library_for(algorithm), library)
        checksum = new_checksum(algorithm)
        assert checksum is not None
        checksum.update(CHECK_INPUT[:5])
        checksum.update(b"")
        checksum.update(CHECK_INPUT[5:])
        self.assertEqual(
            checksum.digest(),
            CHECK_VALUES[algorithm].to_bytes(DIGEST_SIZES[algorithm], "big"),
        )

    def test_awscrt(self) -> None:
        """
        ``awscrt.checksums`` computes both, and is preferred.
        """
        self._use(fake_awscrt(), fake_crc32c(), fake_crcmod())
        self._assert_computes("CRC32C", "awscrt")
        self._assert_computes("CRC64NVME", "awscrt")

    def test_old_awscrt(self) -> None:
        """
        An ``awscrt`` without ``crc64nvme`` serves CRC32C; CRC64NVME comes
        from the next library that has it, or from none.
        """
        self._use(fake_awscrt(with_crc64nvme=False), fake_crcmod())
        self._assert_computes("CRC32C", "awscrt")
        self._assert_computes("CRC64NVME", "crcmod")
        self._use(fake_awscrt(with_crc64nvme=False))
        self.assertIsNone(new_checksum("CRC64NVME"))

    def test_crc32c(self) -> None:
        """
        PyPI ``crc32c`` computes CRC32C.
        """
        self._use(fake_crc32c())
        self._assert_computes("CRC32C", "crc32c")
        self.assertIsNone(new_checksum("CRC64NVME"))

    def test_google_crc32c(self) -> None:
        """
        ``google_crc32c`` computes CRC32C when built with its C extension,
        and is left alone otherwise.
        """
        self._use(fake_google_crc32c())
        self._assert_computes("CRC32C", "google-crc32c")
        self._use(fake_google_crc32c(implementation="python"))
        self.assertIsNone(new_checksum("CRC32C"))

    def test_crcmod(self) -> None:
        """
        ``crcmod`` computes both when its C extension is there, and is left
        alone otherwise.
        """
        self._use(fake_crcmod())
        self._assert_computes("CRC32C", "crcmod")
        self._assert_computes("CRC64NVME", "crcmod")
        self._use(fake_crcmod(extension=False))
        self.assertIsNone(new_checksum("CRC32C"))
        self.assertIsNone(new_checksum("CRC64NVME"))

    def test_wrong_library(self) -> None:
        """
        A library that does not compute the published check value (another
        version's argument order, say) is not used; the next one is.
        """
        wrong = {
            "crc32c": _module("crc32c", crc32c=lambda data, value=0: zlib.crc32(data))
        }
        self._use(wrong, fake_crcmod())
        self._assert_computes("CRC32C", "crcmod")

    def test_broken_library(self) -> None:
        """
        A library that fails when called is not used.
        """

        def broken(data: bytes, value: int = 0) -> int:
            raise RuntimeError("broken")

        self._use({"crc32c": _module("crc32c", crc32c=broken)})
        self.assertIsNone(new_checksum("CRC32C"))

    def test_fresh_each_time(self) -> None:
        """
        Each checksum starts from nothing.
        """
        self._use(fake_crcmod())
        first = new_checksum("CRC32C")
        assert first is not None
        first.update(b"some bytes")
        second = new_checksum("CRC32C")
        assert second is not None
        self.assertEqual(second.b64digest(), "AAAAAA==")


class ContentMD5Tests(SynchronousTestCase):
    """
    Tests for L{check_content_md5}, L{md5_b64} and L{new_md5}.
    """

    def test_md5_b64(self) -> None:
        """
        L{md5_b64} is the base64 of the MD5 (RFC 1321's test suite).
        """
        self.assertEqual(md5_b64(b""), "1B2M2Y8AsgTpgAmY7PhCfg==")
        self.assertEqual(
            base64.b64decode(md5_b64(b"abc")).hex(), "900150983cd24fb0d6963f7d28e17f72"
        )

    def test_new_md5(self) -> None:
        """
        L{new_md5} computes the same as L{md5_b64}, piece by piece.
        """
        md5 = new_md5()
        md5.update(b"ab")
        md5.update(b"c")
        self.assertEqual((md5.algorithm, md5.b64digest()), ("MD5", md5_b64(b"abc")))

    def test_valid(self) -> None:
        """
        A well-formed value gives its 16 bytes.
        """
        self.assertEqual(
            check_content_md5("1B2M2Y8AsgTpgAmY7PhCfg=="),
            hashlib.md5(b"", usedforsecurity=False).digest(),
        )

    def test_malformed(self) -> None:
        """
        A value that is not the base64 of 16 bytes is ``InvalidDigest``.
        """
        for value in (
            "",
            "not base64!",
            "1B2M2Y8AsgTpgAmY7PhCfg",  # padding missing
            "AAAAAA==",  # 4 bytes
            base64.b64encode(b"x" * 17).decode(),
            "1B2M2Y8AsgTpgAmY7PhCfg==\u00e9",
        ):
            error = self.assertRaises(S3Error, check_content_md5, value)
            self.assertEqual((error.code, error.status), ("InvalidDigest", 400))


class ChecksumValueTests(SynchronousTestCase):
    """
    Tests for L{check_checksum_value}, L{parse_algorithm}, L{header_name},
    L{algorithm_of} and L{digest_mismatch}.
    """

    def test_valid(self) -> None:
        """
        A value of the algorithm's size is accepted and decoded.
        """
        for algorithm in ALGORITHMS:
            raw = bytes(range(DIGEST_SIZES[algorithm]))
            value = base64.b64encode(raw).decode()
            self.assertEqual(check_checksum_value(algorithm.lower(), value), raw)

    def test_malformed(self) -> None:
        """
        A value that is not the base64 of a digest of the right size is
        ``InvalidRequest``, naming the header.
        """
        for value in ("", "AAAA", "AAAAAAAAAAA=", "!!!!!!==", "AAAAAA"):
            error = self.assertRaises(S3Error, check_checksum_value, "CRC32", value)
            self.assertEqual(error.code, "InvalidRequest")
            self.assertEqual(
                error.message, "Value for x-amz-checksum-crc32 header is invalid."
            )

    def test_malformed_trailer(self) -> None:
        """
        For a trailer, the message says so.
        """
        error = self.assertRaises(
            S3Error, check_checksum_value, "sha256", "AAAAAA==", trailing=True
        )
        self.assertEqual(
            error.message,
            "Value for x-amz-checksum-sha256 trailing header is invalid.",
        )

    def test_parse_algorithm(self) -> None:
        """
        ``x-amz-sdk-checksum-algorithm`` is read in any case; an unknown
        algorithm is ``InvalidRequest``.
        """
        self.assertEqual(parse_algorithm("crc64nvme"), "CRC64NVME")
        self.assertEqual(canonical_algorithm(" Crc32C "), "CRC32C")
        error = self.assertRaises(S3Error, parse_algorithm, "MD5")
        self.assertEqual(error.code, "InvalidRequest")
        self.assertIn("CRC32, CRC32C, CRC64NVME, SHA1, SHA256", error.message)

    def test_header_names(self) -> None:
        """
        L{header_name} and L{algorithm_of} map algorithms and headers both
        ways.
        """
        for algorithm in ALGORITHMS:
            name = header_name(algorithm)
            self.assertEqual(name, "x-amz-checksum-" + algorithm.lower())
            self.assertEqual(algorithm_of(name.upper()), algorithm)
        self.assertIsNone(algorithm_of("x-amz-checksum-md5"))
        self.assertIsNone(algorithm_of("x-amz-checksum-type"))
        self.assertIsNone(algorithm_of("content-md5"))

    def test_mismatch(self) -> None:
        """
        A checksum that does not match is ``BadDigest``, naming the
        algorithm.
        """
        error = digest_mismatch("crc32c")
        self.assertEqual((error.code, error.status), ("BadDigest", 400))
        self.assertEqual(
            error.message,
            "The CRC32C you specified did not match the calculated checksum.",
        )
